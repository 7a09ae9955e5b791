#!/bin/sh
# Authenticated, Redis-backed GET /automations/v1/{name} against nginx's own
# `return 200` on the same nginx, in the same run, on loopback: with a JWT
# (verified in nginx), then with an API key (looked up in Redis, or found
# in automations_credential_cache).
#
#   sh bench/crud.sh            (after `make`; needs wrk and redis-server)
#   AM_BENCH_SECONDS=10 AM_BENCH_CONNECTIONS=64 AM_BENCH_WORKERS=2
#   AM_BENCH_METRICS=off       without automations_metrics' counters
#   AM_BENCH_CREDENTIAL_CACHE=off   every API key looked up in Redis

set -eu

. "$(dirname "$0")/lib.sh"
conns=${AM_BENCH_CONNECTIONS:-64}
workers=${AM_BENCH_WORKERS:-2}
metrics=${AM_BENCH_METRICS:-on}
credential_cache="max=1024"
[ "${AM_BENCH_CREDENTIAL_CACHE:-on}" = on ] || credential_cache=off

bench_start_redis

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/jwt.secret"
$ctl project create bench >/dev/null
jwt=$($ctl jwt mint --key "$dir/jwt.secret" --alg HS256 --project bench \
      --role admin --ttl 3600)
eval "$($ctl apikey create bench | sed 's/^/apikey_/')"

bench_start_nginx <<CONF
$bench_globals
worker_processes $workers;

http {
    $bench_globals_http
    automations_redis $redis_addr;
    automations_metrics_collect $metrics;
    automations_credential_cache $credential_cache;
    automations_jwt_key $dir/jwt.secret alg=HS256;

    server {
        listen 127.0.0.1:$http_port;
        location /automations/v1/ { automations_api; }
        location = /ok { return 200 "ok"; }
    }
}
CONF

curl -sf -X POST "$base/automations/v1/" \
    -H "Authorization: Bearer $jwt" \
    -d '{"automation_name":"hello","code":"print(1)","description":"bench"}' \
    >/dev/null
curl -sf "$base/automations/v1/hello" \
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

set -- $(run "$base/ok")
base_rps=$1 base_p50=$2 base_p99=$3
set -- $(run -H "Authorization: Bearer $jwt" \
        "$base/automations/v1/hello")
get_rps=$1 get_p50=$2 get_p99=$3
set -- $(run -H "Authorization: Bearer $apikey_key" \
        "$base/automations/v1/hello")
key_rps=$1 key_p50=$2 key_p99=$3

echo "workers=$workers connections=$conns seconds=$secs metrics=$metrics"
printf '%-36s %12s %10s %10s\n' test 'requests/s' p50 p99
printf '%-36s %12s %10s %10s\n' 'return 200' "$base_rps" "$base_p50" "$base_p99"
printf '%-36s %12s %10s %10s\n' 'GET /automations/v1/hello (JWT)' \
    "$get_rps" "$get_p50" "$get_p99"
printf '%-36s %12s %10s %10s\n' \
    "GET, API key (cache $credential_cache)" "$key_rps" "$key_p50" "$key_p99"
awk -v a="$get_rps" -v b="$base_rps" \
    'BEGIN { printf "ratio: %.1f %% of return 200 (target >= 40 %%)\n", 100 * a / b }'
awk -v a="$key_rps" -v b="$base_rps" \
    'BEGIN { printf "API key: %.1f %% of return 200\n", 100 * a / b }'
