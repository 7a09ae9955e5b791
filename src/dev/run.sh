#!/bin/sh
# `make run`: Redis, nginx with the module, and a demo project on localhost,
# in the foreground until Ctrl-C. Everything lives in $AM_RUN_DIR.
#
#   AM_HTTP_PORT   nginx port (8080)
#   AM_REDIS_PORT  Redis port (6390)
#   AM_WORKERS     automations-worker processes (2)
#   AM_RUN_DIR     state folder (./run): Redis data, logs, credentials

set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${AM_BUILD:-$top/build}
run=${AM_RUN_DIR:-$top/run}
http_port=${AM_HTTP_PORT:-8080}
redis_port=${AM_REDIS_PORT:-6390}
workers=${AM_WORKERS:-2}
ctl="$build/automationsctl --redis 127.0.0.1:$redis_port"
redis_pid=""
nginx_pid=""
worker_pids=""
stopping=""

# running, and not a zombie waiting to be reaped
alive() {
    kill -0 "$1" 2>/dev/null && ! grep -qs '^State:.*Z' "/proc/$1/status"
}

# Waits up to $1 seconds for the other PIDs to be gone; 1 if some are not.
wait_gone() {
    n=$(($1 * 10))
    shift
    while [ $n -gt 0 ]; do
        live=""
        for pid in "$@"; do
            if alive "$pid"; then live="$live $pid"; fi
        done
        [ -n "$live" ] || return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# Stops the given PIDs: TERM; TERM again after 3 s (a worker then cancels
# its runs, which stay queued for the next start); KILL after 5 s more.
stop_pids() {
    grace=3
    for sig in TERM TERM KILL; do
        live=""
        for pid in "$@"; do
            if alive "$pid"; then live="$live $pid"; fi
        done
        [ -n "$live" ] || break
        kill -s "$sig" $live 2>/dev/null || true
        [ "$sig" = KILL ] || wait_gone $grace $live || true
        grace=5
    done
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true
    done
}

# Ctrl-C: the workers first, while Redis is there to take their results,
# then nginx, then Redis. Another Ctrl-C meanwhile kills them all at once.
stop() {
    if [ -n "$stopping" ]; then
        kill -s KILL $worker_pids $nginx_pid $redis_pid 2>/dev/null || true
        trap - EXIT
        exit 130
    fi
    stopping=1
    echo
    echo "stopping..."
    [ -z "$worker_pids" ] || stop_pids $worker_pids
    [ -z "$nginx_pid" ] || stop_pids $nginx_pid
    [ -z "$redis_pid" ] || stop_pids $redis_pid
    trap - EXIT
    exit 0
}
trap stop INT TERM HUP EXIT

# Children run in sessions of their own, so that Ctrl-C reaches this script
# only, which stops them in order (a worker whose Redis went first would
# have to give up the results of its runs).

mkdir -p "$run/redis"

# Redis has a password, made once: runs can reach Redis over the network,
# and must not be able to authenticate. It is in files only this user
# reads, never on a command line (any local user reads those).
if [ ! -s "$run/redis.password" ]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' \
        > "$run/redis.password")
fi
redis_password=$(cat "$run/redis.password")
export AUTOMATIONS_REDIS_PASSWORD_FILE="$run/redis.password"
export REDISCLI_AUTH="$redis_password"
(umask 077; printf 'requirepass %s\n' "$redis_password" > "$run/redis.conf")

setsid redis-server "$run/redis.conf" --bind 127.0.0.1 --port "$redis_port" \
    --dir "$run/redis" --appendonly yes --save '' --daemonize no \
    --logfile "$run/redis.log" &
redis_pid=$!

i=0
until redis-cli -p "$redis_port" ping 2>/dev/null | grep -qx PONG; do
    i=$((i + 1))
    [ $i -lt 50 ] || { echo "redis did not start: see $run/redis.log"; exit 1; }
    sleep 0.1
done

# the demo project and credentials, made once and kept in $run
if [ ! -s "$run/jwt.secret" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$run/jwt.secret"
fi

if ! $ctl project list | grep -qx demo || [ ! -s "$run/credentials" ]; then
    $ctl project create demo >/dev/null 2>&1 || true
    {
        $ctl apikey create demo --scopes "read write run" --name make-run \
            | sed 's/^/apikey_/'
        $ctl tokenpair create demo --name make-run | sed 's/^/tokenpair_/'
    } > "$run/credentials"
fi
. "$run/credentials"
chmod 600 "$run/jwt.secret" "$run/credentials"

jwt=$($ctl jwt mint --key "$run/jwt.secret" --alg HS256 --project demo \
      --role admin --sub demo-user --ttl 86400)

(umask 077; sed -e "s|@MODULE@|$build/ngx_http_automations_module.so|" \
    -e "s|@RUN@|$run|g" -e "s|@HTTP_PORT@|$http_port|" \
    -e "s|@REDIS@|127.0.0.1:$redis_port|" \
    -e "s|@REDIS_PASSWORD@|$redis_password|" \
    -e "s|@JWT_SECRET@|$run/jwt.secret|" \
    "$top/docs/nginx.conf.example" > "$run/nginx.conf")

setsid /usr/sbin/nginx -p "$run" -c "$run/nginx.conf" -g 'daemon off;' &
nginx_pid=$!

i=0
until curl -s -o /dev/null "http://127.0.0.1:$http_port/"; do
    i=$((i + 1))
    [ $i -lt 50 ] || { echo "nginx did not start: see $run/error.log"; exit 1; }
    sleep 0.1
done

# webhooks of the demo go to loopback, which workers refuse by default
i=0
while [ $i -lt "$workers" ]; do
    i=$((i + 1))
    setsid "$build/automations-worker" --redis "127.0.0.1:$redis_port" \
        --name "make-run-$i" --allow-private-webhooks \
        2>>"$run/worker.log" &
    worker_pids="$worker_pids $!"
done

base="http://127.0.0.1:$http_port"

cat <<MSG

The automations gateway is running (Ctrl-C stops it).

  nginx    $base   (config: $run/nginx.conf, log: $run/error.log)
  dashboard  $base/dashboard/   (sign in with the API key or the JWT below)
  redis    127.0.0.1:$redis_port   (data: $run/redis, password: $run/redis.password)
  workers  $workers   (log: $run/worker.log)

Demo project "demo" and its credentials (also in $run/credentials):

  API key (read write run):  $apikey_key
  JWT (admin, 24 h):         $jwt
  token pair:                Authorization: Token $tokenpair_token
                             X-Api-Key: $tokenpair_api_key

Try it:

  curl -s -X POST $base/automations/v1/ \\
    -H 'Authorization: Bearer $apikey_key' -H 'Content-Type: application/json' \\
    -d '{"automation_name": "hello", "code": "print(\"hi\")", "description": "says hi", "override_existing": true}'

  curl -s $base/automations/v1/ -H 'Authorization: Bearer $jwt'

  curl -s $base/automations/v1/hello -H 'Authorization: Bearer $apikey_key'

  curl -s -X DELETE $base/automations/v1/hello -H 'Authorization: Bearer $jwt'

  curl -s $base/internal/ -H 'Authorization: Bearer $apikey_key'

Run automations:

  curl -s -X POST $base/automations/v1/ \\
    -H 'Authorization: Bearer $apikey_key' \\
    -d '{"automation_name": "hello-automation", "override_existing": true, "code": "from datallog import core_task\\n\\n@core_task\\ndef hello(seed):\\n    return {\\"message\\": seed[\\"message\\"]}\\n"}'

  curl -s -X POST $base/api/start-automation/demo/hello-automation \\
    -H 'Authorization: Token $tokenpair_token' -H 'X-Api-Key: $tokenpair_api_key' \\
    -d '{"seed": {"message": "Hello from the API!"}}'

  curl -s -X POST $base/automations/v1/ \\
    -H 'Authorization: Bearer $apikey_key' \\
    -d '{"automation_name": "data_processor", "override_existing": true, "code": "@core_task\\ndef process(seed, input):\\n    return {\\"processed_count\\": len(input), \\"results\\": [{\\"id\\": row[\\"id\\"], \\"status\\": \\"processed\\"} for row in input]}\\n"}'

  curl -s -X POST $base/automations/v1/data_processor/run \\
    -H 'Authorization: Bearer $apikey_key' \\
    -d '{"input": [{"id": 1, "name": "John Doe"}, {"id": 2, "name": "Jane Smith"}]}'

Watch it:

  curl -s $base/healthz
  curl -s $base/metrics

MSG

wait
