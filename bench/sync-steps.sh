#!/bin/sh
# Where the time of a synchronous run goes: one client posts trivial sh
# runs one after another to POST /automations/v1/noop/run; Redis's MONITOR
# stamps every command nginx and the worker send, the worker logs when each
# of its steps began (--log-level debug, "run_steps"), and the client stamps
# sending and receiving. All are wall clocks of this machine, joined by
# execution id; the medians of each step are printed, and how long Redis
# took to execute each script (SLOWLOG).
#
#   sh bench/sync-steps.sh      (after `make`; needs redis-server, redis-cli)
#   AM_BENCH_SYNC_RUNS=300 AM_BENCH_CONFINE=1 (0: the worker's --no-confine)
#   AM_BENCH_WORKER_OPTS="--early-sandbox off" (more options of the worker)
#   AM_BENCH_MONITOR=1 (0: no MONITOR, which slows Redis down 2-3x; only
#   the client's and the worker's stamps are joined)

set -eu

. "$(dirname "$0")/lib.sh"
n=${AM_BENCH_SYNC_RUNS:-300}
confine=""
[ "${AM_BENCH_CONFINE:-1}" = 1 ] || confine=--no-confine

bench_start_redis

$ctl project create bench >/dev/null
eval "$($ctl apikey create bench | sed 's/^/apikey_/')"

bench_start_nginx <<CONF
$bench_globals
worker_processes 1;

http {
    $bench_globals_http
    automations_redis $redis_addr;

    # the client keeps one connection for all its requests
    keepalive_requests 1000000;

    server {
        listen 127.0.0.1:$http_port;
        location /automations/v1/ { automations_api; }
    }
}
CONF

curl -sf -X POST "$base/automations/v1/" \
    -H "Authorization: Bearer $apikey_key" \
    -d '{"automation_name":"noop","runtime":"sh","code":"echo {}"}' >/dev/null

"$build/automations-worker" --redis $redis_addr --concurrency 1 \
    --name steps --log-format json --log-level debug $confine \
    ${AM_BENCH_WORKER_OPTS:-} \
    2>"$dir/worker.log" &
worker_pids=$!
sleep 0.5

monitor=${AM_BENCH_MONITOR:-1}
: > "$dir/monitor.log"
$rcli config set slowlog-log-slower-than 0 >/dev/null
$rcli config set slowlog-max-len 1000000 >/dev/null
if [ "$monitor" = 1 ]; then
    $rcli monitor > "$dir/monitor.log" 2>/dev/null &
    monitor_pid=$!
    sleep 0.2
fi

# the client: keep-alive, one request at a time, its own stamps
/usr/bin/perl -MIO::Socket::INET -MTime::HiRes=time -e '
    my ($port, $key, $n) = @ARGV;
    my $s = IO::Socket::INET->new("127.0.0.1:$port") or die "connect: $!";
    my $body = q({"input": [{"id": 1}]});
    my $req = "POST /automations/v1/noop/run HTTP/1.1\r\nHost: bench\r\n"
        . "Authorization: Bearer $key\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    for (1 .. $n) {
        my $t0 = time;
        syswrite($s, $req);
        my $buf = "";
        my ($head, $len, $res);
        while (1) {
            sysread($s, $buf, 65536, length $buf) or die "closed";
            next unless ($head, $res) = $buf =~ /^(.*?\r\n\r\n)(.*)$/s;
            ($len) = $head =~ /Content-Length: (\d+)/i;
            last if length $res >= $len;
        }
        my $t1 = time;
        my ($id) = $res =~ /"execution_id":"(exec_[0-9a-f]+)"/;
        $head =~ m{^HTTP/1.1 (\d+)} && $1 == 200 or die "run: $head$res";
        printf "%s %.6f %.6f\n", $id, $t0, $t1;
    }' "$http_port" "$apikey_key" "$n" > "$dir/client.log"

sleep 0.2
if [ "$monitor" = 1 ]; then
    kill "$monitor_pid"
    wait "$monitor_pid" 2>/dev/null || true
fi
$rcli --json slowlog get -1 > "$dir/slowlog.json"

/usr/bin/perl -MJSON::PP -e '
    my ($client, $monitor, $worker, $slowlog) = @ARGV;
    my (%t, %ids);

    open my $c, "<", $client or die;
    while (<$c>) {
        my ($id, $t0, $t1) = split;
        $t{$id}{send} = $t0;
        $t{$id}{recv} = $t1;
    }

    # EVALSHA <sha> <numkeys> <keys...> <args...>: which script it is
    # follows from its keys; the first command nginx sends for a request
    # (its credential lookup) is the one before its enqueue
    open my $m, "<", $monitor or die;
    my $last_other;
    while (<$m>) {
        my ($ts) = /^(\d+\.\d+)/ or next;
        my @a = /"((?:[^"\\]|\\.)*)"/g;
        my ($id) = /(exec_[0-9a-f]{24})/;
        if (!defined $id) {
            $last_other = $ts if $a[0] !~ /^(XREADGROUP|XCLAIM|XAUTOCLAIM|HGET)$/i
                && !/worker_beat|workers/;
            next;
        }
        next unless $a[0] eq "EVALSHA" && exists $t{$id};
        my $keys = $a[2];
        my $step = $keys == 2 ? "enqueue" : $keys == 3 ? "complete"
            : @a > 4 ? "start" : "fetch";
        $t{$id}{$step} //= $ts;
        $t{$id}{lookup} //= $last_other if $step eq "enqueue";
    }

    open my $w, "<", $worker or die;
    while (<$w>) {
        next unless /"event":"run_steps"/;
        my ($id) = /"execution_id":"(exec_[0-9a-f]+)"/;
        my ($t0, $ss, $sr, $sp, $child, $res, $cs, $st) = /taken (\d+), start sent \+(\d+), start reply \+(\d+), spawned \+(\d+), child (\d+) us, result \+(\d+), complete sent \+(\d+), stored \+(\d+)/;
        next unless exists $t{$id};
        $t0 /= 1e6;
        $t{$id}{taken} = $t0;
        $t{$id}{start_reply} = $t0 + $sr / 1e6;
        $t{$id}{spawned} = $t0 + $sp / 1e6;
        $t{$id}{child_us} = $child;
        $t{$id}{result} = $t0 + $res / 1e6;
        $t{$id}{complete_sent} = $t0 + $cs / 1e6;
        $t{$id}{stored} = $t0 + $st / 1e6;
    }

    my @steps = (
        ["client sends -> nginx looks the credential up", "send", "lookup"],
        ["-> nginx sends the enqueue", "lookup", "enqueue"],
        ["enqueue -> worker has the entry", "enqueue", "taken"],
        ["-> worker sends execution_start", "taken", "start"],
        ["-> start reply back at the worker", "start", "start_reply"],
        ["entry -> child spawned (folder, code, fork+exec)", "taken", "spawned"],
        ["-> result at the worker (child, reap, rmtree)", "spawned", "result"],
        ["-> worker sends execution_complete", "result", "complete"],
        ["-> complete reply back at the worker", "complete", "stored"],
        ["complete -> nginx fetches the result", "complete", "fetch"],
        ["fetch (or complete) -> client has the answer", "last", "recv"],
        ["client sends -> worker has the entry", "send", "taken"],
        ["worker has the entry -> start reply back", "taken", "start_reply"],
        ["result at the worker -> complete sent", "result", "complete_sent"],
        ["-> complete reply back", "complete_sent", "stored"],
        ["complete reply back -> client has the answer", "stored", "recv"],
        ["whole request", "send", "recv"],
    );
    my @ids = grep { exists $t{$_}{stored} } keys %t;
    for my $id (@ids) {
        $t{$id}{last} = $t{$id}{fetch} // $t{$id}{complete};
        $t{$id}{overhead} = ($t{$id}{recv} - $t{$id}{send}) * 1e6
            - $t{$id}{child_us};
    }
    sub median { my @v = sort { $a <=> $b } @_; @v ? $v[int(@v / 2)] : "nan" }
    sub pct { my ($p, @v) = @_; @v = sort { $a <=> $b } @v;
        @v ? $v[int(@v * $p)] : "nan" }
    printf "sync run steps, %d runs of `echo {}` (sh), medians in us:\n",
        scalar @ids;
    for my $s (@steps) {
        my @d = map { ($t{$_}{$s->[2]} - $t{$_}{$s->[1]}) * 1e6 }
            grep { defined $t{$_}{$s->[1]} && defined $t{$_}{$s->[2]} } @ids;
        next unless @d;
        printf "  %-48s %8.0f  (%d)\n", $s->[0], median(@d), scalar @d;
    }
    printf "  %-48s %8.0f\n", "the child, as the worker measured it",
        median(map { $t{$_}{child_us} } @ids);
    printf "  %-48s %8.0f\n", "spawned -> result, less the child",
        median(map { ($t{$_}{result} - $t{$_}{spawned}) * 1e6
                     - $t{$_}{child_us} } @ids);
    my @o = map { $t{$_}{overhead} } @ids;
    printf "  overhead (request - child): p50 %.0f us, p99 %.0f us\n",
        median(@o), pct(0.99, @o);
    printf "  runs answered without a fetch: %d of %d\n",
        scalar(grep { !defined $t{$_}{fetch} } @ids), scalar @ids;

    # [id, time, us, [command, args...], client, name]
    open my $sl, "<", $slowlog or die;
    my %exec;
    for my $e (@{ decode_json(join "", <$sl>) }) {
        my @a = @{ $e->[3] };
        next unless uc $a[0] eq "EVALSHA" && "@a" =~ /(exec_[0-9a-f]{24})/
            && exists $t{$1};
        my $step = $a[2] == 2 ? "enqueue" : $a[2] == 3 ? "complete"
            : @a > 4 ? "start" : "fetch";
        push @{ $exec{$step} }, $e->[2];
    }
    print "  Redis executing each script (SLOWLOG), median us:";
    printf " %s %d", $_, median(@{ $exec{$_} })
        for grep { $exec{$_} } qw(enqueue start complete fetch);
    print "\n";
' "$dir/client.log" "$dir/monitor.log" "$dir/worker.log" "$dir/slowlog.json"
