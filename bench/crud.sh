#!/bin/sh
# Authenticated, Redis-backed GET /automations/v1/{name} against nginx's own
# `return 200` on the same nginx, in the same run, on loopback.
#
#   sh bench/crud.sh            (after `make`; needs wrk and redis-server)
#   AM_BENCH_SECONDS=10 AM_BENCH_CONNECTIONS=64 AM_BENCH_WORKERS=2

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${AM_BUILD:-$top/build}
secs=${AM_BENCH_SECONDS:-10}
conns=${AM_BENCH_CONNECTIONS:-64}
workers=${AM_BENCH_WORKERS:-2}
dir=$(mktemp -d)
http_port=$((20000 + $$ % 10000))
redis_port=$((http_port + 1))
ctl="$build/automationsctl --redis 127.0.0.1:$redis_port"

cleanup() {
    [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null
    sleep 0.5
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" --save '' \
    --appendonly no --daemonize yes --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log"
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/jwt.secret"
$ctl project create bench >/dev/null
jwt=$($ctl jwt mint --key "$dir/jwt.secret" --alg HS256 --project bench \
      --role admin --ttl 3600)

cat > "$dir/nginx.conf" <<CONF
load_module $build/ngx_http_automations_module.so;
worker_processes $workers;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    automations_redis 127.0.0.1:$redis_port;
    automations_jwt_key $dir/jwt.secret alg=HS256;
    server {
        listen 127.0.0.1:$http_port;
        location /automations/v1/ { automations_api; }
        location = /ok { return 200 "ok"; }
    }
}
CONF
/usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf"
sleep 0.5

curl -sf -X POST "http://127.0.0.1:$http_port/automations/v1/" \
    -H "Authorization: Bearer $jwt" \
    -d '{"automation_name":"hello","code":"print(1)","description":"bench"}' \
    >/dev/null
curl -sf "http://127.0.0.1:$http_port/automations/v1/hello" \
    -H "Authorization: Bearer $jwt" >/dev/null

# wrk --latency prints "50%  1.2ms" ... in its distribution table
run() {
    wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" > "$dir/wrk.out"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$dir/wrk.out")
    p50=$(awk '$1 == "50%" {print $2}' "$dir/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$dir/wrk.out")
    errors=$(awk '/Non-2xx|Socket errors/' "$dir/wrk.out")
    echo "$rps $p50 $p99"
    [ -z "$errors" ] || echo "  $errors" >&2
}

set -- $(run "http://127.0.0.1:$http_port/ok")
base_rps=$1 base_p50=$2 base_p99=$3
set -- $(run -H "Authorization: Bearer $jwt" \
        "http://127.0.0.1:$http_port/automations/v1/hello")
get_rps=$1 get_p50=$2 get_p99=$3

echo "workers=$workers connections=$conns seconds=$secs"
printf '%-36s %12s %10s %10s\n' test 'requests/s' p50 p99
printf '%-36s %12s %10s %10s\n' 'return 200' "$base_rps" "$base_p50" "$base_p99"
printf '%-36s %12s %10s %10s\n' 'GET /automations/v1/hello (JWT)' \
    "$get_rps" "$get_p50" "$get_p99"
awk -v a="$get_rps" -v b="$base_rps" \
    'BEGIN { printf "ratio: %.1f %% of return 200 (target >= 40 %%)\n", 100 * a / b }'
