# Sourced by bench/*.sh: the temporary directory, the ports, Redis and nginx
# of one benchmark run, and their cleanup.  Each script shows the nginx.conf
# it measures; $bench_globals and $bench_globals_http hold what is not under
# measurement (module, logs, pid, temp path).
#
#   AM_BUILD           build directory (default: <repo>/build)
#   AM_BENCH_SECONDS   seconds per wrk run (10)
#   AM_BENCH_REDIS     tcp (default): nginx and the workers reach Redis on
#                      127.0.0.1; unix: through its unix socket, as a Redis
#                      on the same host can be reached

top=$(cd "$(dirname "$0")/.." && pwd)
build=${AM_BUILD:-$top/build}
secs=${AM_BENCH_SECONDS:-10}
dir=$(mktemp -d)
http_port=$((20000 + $$ % 10000))
redis_port=$((http_port + 1))
base="http://127.0.0.1:$http_port"
redis_sock=$dir/redis.sock
case ${AM_BENCH_REDIS:-tcp} in
    unix) redis_addr=unix:$redis_sock
          chmod 711 "$dir" ;;   # nginx's workers (nobody) reach the socket
    tcp) redis_addr=127.0.0.1:$redis_port ;;
    *) echo "AM_BENCH_REDIS: tcp or unix" >&2; exit 2 ;;
esac
ctl="$build/automationsctl --redis $redis_addr"
rcli="redis-cli -p $redis_port"
worker_pids=""    # automations-worker processes a script started

bench_globals="load_module $build/ngx_http_automations_module.so;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }"
bench_globals_http="access_log off;
    client_body_temp_path $dir/body;"

cleanup() {
    for pid in $worker_pids; do kill "$pid" 2>/dev/null || true; done
    [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null
    sleep 0.5
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# A redis-server without persistence: a benchmark measures the gateway, not
# the disk.
bench_start_redis() {
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" \
        --save '' --appendonly no --daemonize yes \
        --unixsocket "$redis_sock" --unixsocketperm 777 \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    until $rcli ping >/dev/null 2>&1; do sleep 0.1; done
}

# nginx with the configuration read from stdin.
bench_start_nginx() {
    cat > "$dir/nginx.conf"
    /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf"
    sleep 0.5
}
