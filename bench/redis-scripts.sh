#!/bin/sh
# How much work Redis does for one synchronous run: the instructions it
# executes (valgrind's callgrind) for execution_enqueue, execution_start
# and execution_complete, the three scripts of a run of a small sh
# automation, each run as the gateway and the worker call it. Instruction
# counts, unlike times, come out the same on a busy or a quiet machine, and
# on a fast or a slow one: a change to redis/*.lua is measured here.
#
#   sh bench/redis-scripts.sh      (needs redis-server, redis-cli, valgrind)
#   AM_BENCH_SCRIPT_RUNS=2000      runs per measurement
#
# Each measurement starts a Redis under callgrind, feeds it the set-up and
# then N enqueues; N enqueues and starts; N of all three. The differences,
# less a Redis fed the set-up only, divided by N, are printed.

set -eu

. "$(dirname "$0")/lib.sh"
n=${AM_BENCH_SCRIPT_RUNS:-2000}

command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }

# RESP for: the scripts loaded, a project and its automation, the group,
# then N runs of the scripts named ("" for none)
commands() {
    perl -MDigest::SHA=sha1_hex -e '
        my ($top, $n, @which) = @ARGV;
        my %want = map { $_ => 1 } @which;
        sub slurp { open my $f, "<", $_[0] or die "$_[0]: $!"; local $/; <$f> }
        sub resp { my $s = "*" . @_ . "\r\n";
                   $s .= "\$" . length($_) . "\r\n$_\r\n" for @_; $s }
        my %sha;
        for my $s (qw(execution_enqueue execution_start execution_complete)) {
            # the text the build embeds
            my $body = `perl "$top/redis/embed.pl" --print "$top/redis" $s`;
            die "embed.pl --print $s failed\n" if $? || $body eq "";
            $sha{$s} = sha1_hex($body);
            print resp("SCRIPT", "LOAD", $body);
        }
        print resp("HSET", "am:{bench}:project", "name", "bench");
        print resp("HSET", "am:{bench}:automation:noop",
            automation_name => "noop", runtime => "sh", code => "echo {}",
            timeout_ms => "", webhook => "", network => "default",
            input_schema => "", output_schema => "", preload => "");
        print resp("XGROUP", "CREATE", "am:runs", "workers", "\$", "MKSTREAM");
        for my $i (1 .. $n) {
            my $id = sprintf("exec_%024x", $i);
            my $key = "am:{bench}:execution:$id";
            print resp("EVALSHA", $sha{execution_enqueue}, 2,
                "am:{bench}:project", "am:runs", "am:{bench}:", "bench",
                "noop", $id, "run", 604800, "", "", "", "", "", "", "", "",
                "", "am:completions:0123456789abcdef") if $want{enqueue};
            # the run travels with its entry: the worker holds it
            print resp("EVALSHA", $sha{execution_start}, 1, $key, "w1", 3,
                "0-$i", "held") if $want{start};
            print resp("EVALSHA", $sha{execution_complete}, 3, $key,
                "am:runs", "am:webhooks", "success", "{}", "", "", 1, "0-$i",
                "workers", "am:completions") if $want{complete};
        }' "$top" "$@"
}

# instructions Redis executed, fed what commands() writes for "$@"
instructions() {
    out=$dir/callgrind.out
    rm -f "$out"
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" \
        --save '' --appendonly no --daemonize no \
        --logfile "$dir/redis.log" >"$dir/valgrind.log" 2>&1 &
    vg=$!
    until $rcli ping >/dev/null 2>&1; do sleep 0.2; done
    # the gateway's worker process waits for these runs (a synchronous
    # run names its channel): PUBLISH has a subscriber
    $rcli subscribe am:completions:0123456789abcdef >/dev/null 2>&1 &
    sub=$!
    sleep 0.3
    commands "$@" | $rcli --pipe >/dev/null
    $rcli shutdown nosave >/dev/null 2>&1 || true
    wait $vg || true
    kill $sub 2>/dev/null || true
    wait $sub 2>/dev/null || true
    sed -n 's/^summary: //p' "$out"
}

base=$(instructions 0)
enqueue=$(instructions "$n" enqueue)
start=$(instructions "$n" enqueue start)
all=$(instructions "$n" enqueue start complete)

echo "Redis instructions per synchronous run ($n runs, callgrind):"
printf '  %-20s %9d\n' execution_enqueue $(((enqueue - base) / n)) \
    execution_start $(((start - enqueue) / n)) \
    execution_complete $(((all - start) / n)) \
    'all three' $(((all - base) / n))
