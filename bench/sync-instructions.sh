#!/bin/sh
# The instructions each process executes for one synchronous run: nginx
# (one worker process, the module), Redis and the automations-worker, each
# under valgrind's callgrind, while one client posts N trivial sh runs one
# after another to POST /automations/v1/noop/run. A second pass with no
# requests gives what start-up, heartbeats and shut-down cost; the
# difference, divided by N, is printed. Counts, unlike times, come out the
# same on a busy or a quiet machine: a change to the request's path is
# measured here (the run itself, in its sandbox, is not counted).
#
#   sh bench/sync-instructions.sh   (after `make`; needs valgrind, redis-*)
#   AM_BENCH_SYNC_RUNS=300          requests in the measured pass

set -eu

. "$(dirname "$0")/lib.sh"
n=${AM_BENCH_SYNC_RUNS:-300}

command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }

# cg NAME COMMAND... &: COMMAND under callgrind, counted in $dir/NAME.cg
# (exec: $! is its PID)
cg() {
    name=$1
    shift
    exec valgrind --tool=callgrind --callgrind-out-file="$dir/$name.cg" "$@"
}

# one pass of $1 requests, or of $2 seconds doing nothing when $1 is 0:
# prints "nginx redis worker seconds", instructions and the time it took
pass() {
    rm -f "$dir"/*.cg "$dir/redis.pid"
    requests=$1
    cg redis redis-server --bind 127.0.0.1 --port "$redis_port" \
        --dir "$dir" --save '' --appendonly no --daemonize no \
        --logfile "$dir/redis.log" >"$dir/redis.vg" 2>&1 &
    rpid=$!
    until $rcli ping >/dev/null 2>&1; do sleep 0.2; done
    $ctl project create bench >/dev/null
    eval "$($ctl apikey create bench | sed 's/^/apikey_/')"

    cat >"$dir/nginx.conf" <<CONF
$bench_globals
daemon off;
master_process off;

http {
    $bench_globals_http
    automations_redis 127.0.0.1:$redis_port;

    server {
        listen 127.0.0.1:$http_port;
        location /automations/v1/ { automations_api; }
    }
}
CONF
    cg nginx /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" \
        >"$dir/nginx.vg" 2>&1 &
    npid=$!
    cg worker "$build/automations-worker" --redis 127.0.0.1:$redis_port \
        --concurrency 1 --name cg >"$dir/worker.vg" 2>&1 &
    wpid=$!
    until curl -s -o /dev/null "$base/"; do sleep 0.2; done
    curl -sf -X POST "$base/automations/v1/" \
        -H "Authorization: Bearer $apikey_key" \
        -d '{"automation_name":"noop","runtime":"sh","code":"echo {}"}' \
        >/dev/null
    sleep 2

    t0=$(date +%s)
    [ "$requests" -gt 0 ] || sleep "$2"
    /usr/bin/perl -MIO::Socket::INET -e '
        my ($port, $key, $n) = @ARGV;
        my $s = IO::Socket::INET->new("127.0.0.1:$port") or die "connect: $!";
        my $body = q({"input": [{"id": 1}]});
        my $req = "POST /automations/v1/noop/run HTTP/1.1\r\nHost: bench\r\n"
            . "Authorization: Bearer $key\r\n"
            . "Content-Type: application/json\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n$body";
        for (1 .. $n) {
            syswrite($s, $req);
            my $buf = "";
            while (1) {
                sysread($s, $buf, 65536, length $buf) or die "closed";
                my ($head, $res) = $buf =~ /^(.*?\r\n\r\n)(.*)$/s or next;
                $head =~ m{^HTTP/1.1 200 } or die "run: $buf";
                my ($len) = $head =~ /Content-Length: (\d+)/i;
                last if length $res >= $len;
            }
        }' "$http_port" "$apikey_key" "$requests"
    t1=$(date +%s)

    sleep 1
    kill -TERM "$wpid"
    wait "$wpid" || true
    kill -TERM "$npid"
    wait "$npid" || true
    $rcli shutdown nosave >/dev/null 2>&1 || true
    wait "$rpid" || true
    for p in nginx redis worker; do
        printf '%s ' "$(sed -n 's/^summary: //p' "$dir/$p.cg")"
    done
    echo $((t1 - t0))
}

# the idle pass as long as the measured one: heartbeats and timers cost
# the same in both
set -- $(pass "$n")
n1=$1 r1=$2 w1=$3
set -- $(pass 0 "$4")

echo "instructions per synchronous run ($n runs of \`echo {}\`, callgrind):"
printf '  %-10s %9d\n' nginx $(((n1 - $1) / n)) redis $(((r1 - $2) / n)) \
    worker $(((w1 - $3) / n)) 'all three' $(((n1 + r1 + w1 - $1 - $2 - $3) / n))
