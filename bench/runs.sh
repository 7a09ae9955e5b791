#!/bin/sh
# Runs, measured on loopback in one go, each against a floor measured in
# the same run:
#   1. enqueue throughput of POST /api/start-automation against nginx's own
#      `return 200` on the same nginx (no worker running meanwhile);
#   2. worker throughput: two automations-worker processes draining N queued
#      runs of a trivial sh automation, then of a trivial python one, cold
#      (--python-warm off) and warm (the default). Floors: for python, cold
#      `/usr/bin/python3 -I` starts of the same runner and code, as many at
#      once as the workers run (goal: warm runs >= 5 x that); for sh, bare
#      spawns of the same sandbox and shell, confined the same way, as many
#      at once (goal: >= 0.8 x that);
#   3. sync run overhead: one client posts runs one after another to POST
#      /automations/v1/NAME/run; for each, the request's time (curl) minus
#      its run's own time as the worker measured it (its debug record
#      "run_steps"), p50 and p99 (goal: p50 < 1 ms);
#   4. as root, what confining runs costs: 2. and 3. again with the
#      workers' --no-confine, and one run after another of `echo {}`
#      through automations-sandbox unconfined, confined, confined without
#      network, and through bubblewrap (bwrap) with the same namespaces and
#      mounts, in interleaved rounds, with the CPU time they took (what is
#      not CPU is waiting).
#
#   sh bench/runs.sh     (after `make`; needs wrk, curl, redis-server,
#                         redis-cli)
#   AM_BENCH_SECONDS=10 AM_BENCH_RUNS=5000 AM_BENCH_PY_RUNS=1000
#   AM_BENCH_CONCURRENCY=8 AM_BENCH_SYNC_RUNS=500
#   AM_BENCH_PY_ROUNDS=3 (turns of the python floor and warm runs in 2.)
#   AM_BENCH_SEQUENTIAL=500 (runs per way in 4.)

set -eu

. "$(dirname "$0")/lib.sh"
runs=${AM_BENCH_RUNS:-5000}
py_runs=${AM_BENCH_PY_RUNS:-1000}
conc=${AM_BENCH_CONCURRENCY:-8}
sync_runs=${AM_BENCH_SYNC_RUNS:-500}
py_rounds=${AM_BENCH_PY_ROUNDS:-3}
root=0; [ "$(id -u)" != 0 ] || root=1

bench_start_redis

$ctl project create bench >/dev/null
eval "$($ctl apikey create bench | sed 's/^/apikey_/')"
eval "$($ctl tokenpair create bench | sed 's/^/pair_/')"

bench_start_nginx <<CONF
$bench_globals
worker_processes 2;

http {
    $bench_globals_http
    automations_redis $redis_addr;

    server {
        listen 127.0.0.1:$http_port;
        location /automations/v1/ { automations_api; }
        location /api/start-automation/ { automations_start_api; }
        location = /ok { return 200 "ok"; }
    }
}
CONF

create() {
    curl -sf -X POST "$base/automations/v1/" \
        -H "Authorization: Bearer $apikey_key" -d "$1" >/dev/null
}
create '{"automation_name":"noop","runtime":"sh","code":"echo {}"}'
create '{"automation_name":"noop-py","code":"from datallog import core_task\n@core_task\ndef f(seed):\n    return {}\n"}'

# Each measurement starts without the execution records of the one before.
clear_executions() {
    $rcli eval "for _, k in ipairs(redis.call('keys', 'am:{bench}:execution:*'))
        do redis.call('del', k) end" 0 >/dev/null
}

wrk_run() {
    threads=2; [ "$1" -ge 2 ] || threads=1
    wrk -t$threads -c"$1" -d"${secs}s" --latency -s "$dir/post.lua" "$2" \
        > "$dir/wrk.out"
    awk '/^Requests\/sec/ {r = $2} $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
         END {print r, p50, p99}' "$dir/wrk.out"
}

# 1. enqueue throughput
cat > "$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"seed": {"message": "bench"}}'
wrk.headers["Authorization"] = "Token $pair_token"
wrk.headers["X-Api-Key"] = "$pair_api_key"
LUA
set -- $(wrk_run 64 "$base/ok")
ok_rps=$1
set -- $(wrk_run 64 "$base/api/start-automation/bench/noop")
start_rps=$1 start_p50=$2 start_p99=$3
queued=$($rcli xlen am:runs)
$rcli del am:runs >/dev/null
clear_executions

# Waits until the length of am:runs is at least (ge) or at most (le) $2,
# asking every 50 ms on one connection (not one redis-cli per question:
# those would take CPU from what is measured).
xlen_until() {
    /usr/bin/perl -MIO::Socket::INET -e '
        my ($port, $op, $n) = @ARGV;
        my $s = IO::Socket::INET->new("127.0.0.1:$port") or die "redis: $!";
        for (;;) {
            print $s "XLEN am:runs\r\n";
            my $len = <$s>;
            $len =~ /^:(\d+)/ or die "redis: $len";
            exit if $op eq "ge" ? $1 >= $n : $1 <= $n;
            select undef, undef, undef, 0.05;
        }' "$redis_port" "$1" "$2"
}

# 2. worker throughput: queue N runs through the API, then start 2 workers
# (with the worker options given after the automation and the count)
drain() {
    automation=$1 count=$2
    shift 2
    cat > "$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{}'
wrk.headers["Authorization"] = "Token $pair_token"
wrk.headers["X-Api-Key"] = "$pair_api_key"
local n = 0
request = function()
    n = n + 1
    if n > $count / 2 then return wrk.format("GET", "/ok") end
    return wrk.format()
end
LUA
    wrk -t2 -c2 -d60s -s "$dir/post.lua" \
        "$base/api/start-automation/bench/$automation" >/dev/null &
    wrk_pid=$!
    # each wrk thread queues about count/2, then only asks for /ok
    xlen_until ge $((count * 9 / 10))
    sleep 1
    kill $wrk_pid 2>/dev/null; wait $wrk_pid 2>/dev/null || true
    n=$($rcli xlen am:runs)
    t0=$(date +%s.%N)
    for i in 1 2; do
        "$build/automations-worker" --redis $redis_addr \
            --concurrency "$conc" --name "bench$i" "$@" 2>>"$dir/worker.log" &
        worker_pids="$worker_pids $!"
    done
    xlen_until le 0
    t1=$(date +%s.%N)
    for pid in $worker_pids; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
    worker_pids=""
    awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d %.0f %.3f\n", n, n / (b - a), b - a }'
}

# the python floor: cold starts of the runner with the same trivial code,
# no sandbox, as many at once as the two workers run
floor() {
    cp "$top/src/worker/python_runner.py" "$dir/python_runner.py"
    printf 'from datallog import core_task\n@core_task\ndef f(seed):\n    return {}\n' \
        > "$dir/main.py"
    t0=$(date +%s.%N)
    seq "$1" | xargs -P "$2" -n 1 /usr/bin/python3 -I "$dir/python_runner.py" \
        "$dir/main.py" >/dev/null
    t1=$(date +%s.%N)
    awk -v n="$1" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d %.0f %.3f\n", n, n / (b - a), b - a }'
}

# A run folder like the worker's, with `echo {}` as main.sh, and the
# sandbox's arguments for each way of running it (see way() below).
sandbox="$build/automations-sandbox"
uid=2999999
runs_root=$dir/runs
chmod 711 "$dir"
mkdir -m 711 "$runs_root"
run_dir=$(mktemp -d -p "$runs_root" am-run-XXXXXX)
echo 'echo {}' > "$run_dir/main.sh"
limits="--cpu 5 --memory-mb 512 --nproc 64 --nofile 64 --fsize-mb 64"
hidden=/etc/nginx:/etc/automations:/etc/redis:/etc/ssl/private:/root
hidden=$hidden:/run/secrets
if [ $root = 1 ]; then
    chown -R "$uid:$uid" "$run_dir"
    limits="$limits --uid $uid --gid $uid --own-uid 1"
fi

# the sh floor: bare spawns of the sandbox and shell, confined as the
# worker confines them (as root; with $1 "unconfined" as --no-confine
# does), as many at once as the two workers run
sh_floor() {
    how=$1 n=$2 p=$3
    flags=""
    [ $root = 0 ] || [ "$how" = unconfined ] ||
        flags="--confine 1 --no-network 0 --tmp-mb 64 --hide $hidden"
    t0=$(date +%s.%N)
    (cd "$run_dir" && seq "$n" | xargs -P "$p" -I{} setsid $sandbox \
        --sandbox $limits $flags -- /bin/sh "$run_dir/main.sh" >/dev/null)
    t1=$(date +%s.%N)
    awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d %.0f\n", n, n / (b - a) }'
}

set -- $(drain noop "$runs")
sh_runs=$1 sh_rate=$2
set -- $(sh_floor confined "$runs" $((2 * conc)))
sh_floor_rate=$2
set -- $(drain noop-py "$py_runs" --python-warm off)
cold_runs=$1 cold_rate=$2
# the floor and warm runs in turns, so that a machine that speeds up or
# slows down meanwhile (they do) weighs on both alike
floor_runs=0 floor_secs=0 warm_runs=0 warm_secs=0
for round in $(seq "$py_rounds"); do
    set -- $(floor "$py_runs" $((2 * conc)))
    floor_runs=$((floor_runs + $1)) floor_secs=$(awk "BEGIN { print $floor_secs + $3 }")
    set -- $(drain noop-py "$py_runs" --python-warm on)
    warm_runs=$((warm_runs + $1)) warm_secs=$(awk "BEGIN { print $warm_secs + $3 }")
done
floor_rate=$(awk "BEGIN { printf \"%.0f\", $floor_runs / $floor_secs }")
warm_rate=$(awk "BEGIN { printf \"%.0f\", $warm_runs / $warm_secs }")
if [ $root = 1 ]; then
    set -- $(drain noop "$runs" --no-confine)
    free_runs=$1 free_rate=$2
    set -- $(sh_floor unconfined "$runs" $((2 * conc)))
    free_floor_rate=$2
    set -- $(drain noop-py "$py_runs" --python-warm on --no-confine)
    free_warm_runs=$1 free_warm_rate=$2
fi

# 3. sync runs, one client, one worker waiting (with the worker options
# given): prints the request's p50 and p99, the overhead's p50 and p99 (in
# ms) and how many runs were measured
sync_overhead() {
    "$build/automations-worker" --redis $redis_addr --concurrency 4 \
        --name sync --log-format json --log-level debug "$@" \
        2>"$dir/sync-worker.log" &
    worker_pids="$!"
    sleep 0.5
    clear_executions
    /usr/bin/perl -e '
        my ($url, $key, $n) = @ARGV;
        for my $i (1 .. $n) {
            print "next\n" if $i > 1;
            print qq(url = "$url"\n),
                qq(header = "Authorization: Bearer $key"\n),
                qq(header = "Content-Type: application/json"\n),
                qq(data = "{\\"input\\": [{\\"id\\": 1}]}"\n),
                qq(write-out = "\\t%{http_code} %{time_total}\\n"\n);
        }' "$base/automations/v1/noop/run" "$apikey_key" "$sync_runs" \
        > "$dir/sync.curl"
    curl -s -K "$dir/sync.curl" > "$dir/sync.out" || true
    for pid in $worker_pids; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
    worker_pids=""
    /usr/bin/perl -e '
        my ($out, $log) = @ARGV;
        my (%child, @req, @over);
        open my $l, "<", $log or die;
        while (<$l>) {
            next unless /"event":"run_steps"/;
            my ($id) = /"execution_id":"(exec_\w+)"/;
            $child{$id} = $1 / 1000 if /child (\d+) us/;
        }
        open my $o, "<", $out or die;
        while (<$o>) {
            my ($id) = /"execution_id":"(exec_\w+)"/ or next;
            my ($code, $secs) = /\t(\d+) ([\d.]+)$/ or next;
            next unless $code == 200 && defined $child{$id};
            push @req, $secs * 1000;
            push @over, $secs * 1000 - $child{$id};
        }
        sub pct { my ($p, @v) = @_; @v = sort { $a <=> $b } @v;
            @v ? $v[int($#v * $p + 0.5)] : -1 }
        printf "%.2f %.2f %.2f %.2f %d\n", pct(0.5, @req), pct(0.99, @req),
            pct(0.5, @over), pct(0.99, @over), scalar @req;
    ' "$dir/sync.out" "$dir/sync-worker.log"
}

set -- $(sync_overhead)
sync_p50=$1 sync_p99=$2 over_p50=$3 over_p99=$4 sync_n=$5
if [ $root = 1 ]; then
    set -- $(sync_overhead --no-confine)
    free_sync_p50=$1 free_over_p50=$3 free_over_p99=$4 free_sync_n=$5
fi

echo "enqueue: 2 nginx workers, 64 connections, ${secs}s"
printf '  %-34s %10s req/s\n' 'return 200' "$ok_rps"
printf '  %-34s %10s req/s  p50 %s  p99 %s  (%s runs queued)\n' \
    'POST /api/start-automation' "$start_rps" "$start_p50" "$start_p99" "$queued"
awk -v a="$start_rps" -v b="$ok_rps" \
    'BEGIN { printf "  ratio: %.1f %% of return 200 (target >= 20 %%)\n", 100 * a / b }'
echo "workers: 2 processes, --concurrency $conc each"
printf '  %-34s %10s executions/s (%s runs)\n' 'trivial sh' "$sh_rate" "$sh_runs"
printf '  %-34s %10s runs/s (%d at once)\n' 'floor: bare sandbox + sh spawns' \
    "$sh_floor_rate" $((2 * conc))
awk -v w="$sh_rate" -v f="$sh_floor_rate" 'BEGIN {
    printf "  ratio: sh runs %.2f x the floor (goal >= 0.8)\n", w / f }'
printf '  %-34s %10s executions/s (%s runs)\n' 'trivial python, cold' "$cold_rate" "$cold_runs"
printf '  %-34s %10s executions/s (%s runs)\n' 'trivial python, warm' "$warm_rate" "$warm_runs"
printf '  %-34s %10s starts/s (%s, %d at once)\n' 'floor: /usr/bin/python3 -I runner, cold' \
    "$floor_rate" "$floor_runs" $((2 * conc))
awk -v w="$warm_rate" -v c="$cold_rate" -v f="$floor_rate" 'BEGIN {
    printf "  ratio: warm python runs %.2f x the floor (goal >= 5), cold ones %.2f x\n",
        w / f, c / f }'
echo "sync run, 1 client, $sync_n runs of \`echo {}\` (sh):"
printf '  request p50 %s ms, p99 %s ms\n' "$sync_p50" "$sync_p99"
printf '  overhead (request - the run'"'"'s own time): p50 %s ms, p99 %s ms (goal: p50 < 1 ms)\n' \
    "$over_p50" "$over_p99"

[ $root = 1 ] || exit 0

# 4. confinement
echo "confinement: the same measurements with the workers' --no-confine"
printf '  %-34s %10s executions/s, floor %s runs/s, ratio %s\n' \
    'trivial sh, unconfined' "$free_rate" "$free_floor_rate" \
    "$(awk -v w="$free_rate" -v f="$free_floor_rate" 'BEGIN { printf "%.2f", w / f }')"
printf '  %-34s %10s executions/s (%s runs), %s x the python floor\n' \
    'trivial python, warm, unconfined' "$free_warm_rate" "$free_warm_runs" \
    "$(awk -v w="$free_warm_rate" -v f="$floor_rate" 'BEGIN { printf "%.2f", w / f }')"
printf '  %-34s request p50 %s ms, overhead p50 %s ms, p99 %s ms\n' \
    'sync run, unconfined' "$free_sync_p50" "$free_over_p50" "$free_over_p99"
awk -v c="$sh_rate" -v f="$free_rate" -v cs="$sync_p50" -v fs="$free_sync_p50" \
    -v slots=$((2 * conc)) 'BEGIN {
    printf "  confining costs: sh drain %.2f ms more per run and worker slot, sync request p50 +%.2f ms\n",
        1000 * slots / c - 1000 * slots / f, cs - fs }'

# one run after another, the way the worker starts them (own session, in
# the run folder, as a user of its own), each way in turn per round
seq_runs=${AM_BENCH_SEQUENTIAL:-500}
bwrap="bwrap --new-session --die-with-parent --unshare-pid --unshare-ipc"
bwrap="$bwrap --unshare-uts --hostname automation --ro-bind / /"
bwrap="$bwrap --size 67108864 --tmpfs /tmp --size 67108864 --tmpfs /dev/shm"
bwrap="$bwrap --proc /proc"
for p in $(echo "$hidden" | tr : ' '); do
    [ -d "$p" ] && bwrap="$bwrap --tmpfs $p --remount-ro $p"
done
bwrap="$bwrap --tmpfs $runs_root --bind $run_dir $run_dir --chdir $run_dir"
# the sandbox binary again, when the build is under a path hidden above
bwrap="$bwrap --ro-bind $sandbox $sandbox"

way() {
    case $1 in
    unconfined) set -- $sandbox --sandbox $limits ;;
    confined) set -- $sandbox --sandbox $limits --confine 1 --no-network 0 \
        --tmp-mb 64 --hide $hidden ;;
    no-network) set -- $sandbox --sandbox $limits --confine 1 --no-network 1 \
        --tmp-mb 64 --hide $hidden ;;
    bwrap) set -- $bwrap -- $sandbox --sandbox $limits ;;
    bwrap-no-network) set -- $bwrap --unshare-net -- $sandbox --sandbox \
        $limits ;;
    esac
    setsid "$@" -- /bin/sh "$run_dir/main.sh"
}

# the CPU time (user + system, s) of a subshell's children, from `times`
cpu_of() {
    awk 'NR == 2 { for (i = 1; i <= 2; i++) {
            split($i, t, "m"); sub("s", "", t[2]); s += t[1] * 60 + t[2] }
        print s }'
}

ways="unconfined confined no-network bwrap bwrap-no-network"
for w in $ways; do
    [ "$(cd "$run_dir" && way $w </dev/null 2>&1)" = "{}" ] || {
        echo "  $w: a run failed"; exit 1; }
    echo 0 > "$dir/$w.ns"
    echo 0 > "$dir/$w.cpu"
done
rounds=5
for r in $(seq $rounds); do
    for w in $ways; do
        t0=$(date +%s%N)
        (cd "$run_dir" && i=0 && while [ $i -lt $((seq_runs / rounds)) ]; do
            way $w </dev/null >/dev/null 2>&1 || exit 1; i=$((i + 1))
        done && times > "$dir/times") || { echo "  $w: a run failed"; exit 1; }
        cpu=$(cpu_of < "$dir/times")
        t1=$(date +%s%N)
        echo $(($(cat "$dir/$w.ns") + t1 - t0)) > "$dir/$w.ns"
        awk -v a="$(cat "$dir/$w.cpu")" -v b="$cpu" 'BEGIN { print a + b }' \
            > "$dir/$w.cpu"
    done
done

echo "confinement: $seq_runs runs of \`echo {}\` one after another, each way"
for w in $ways; do
    awk -v w="$w" -v n="$seq_runs" -v ns="$(cat "$dir/$w.ns")" \
        -v cpu="$(cat "$dir/$w.cpu")" \
        'BEGIN { printf "  %-34s %7.2f ms/run %7.0f runs/s, CPU %5.2f ms/run\n",
                 w, ns / n / 1e6, n / (ns / 1e9), cpu * 1000 / n }'
done
