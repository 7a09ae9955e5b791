#!/usr/bin/perl
# Runs through nginx when things go wrong: a worker killed mid-run, Redis
# restarted with runs queued, a webhook receiver that fails for a while or
# for good (dead letters, resend), and hostile automations run through the
# Automations API. Real workers, real nginx, real Redis.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use AmTest;
use AmTest::Api qw(finished verify_signature);

my $t = AmTest->new;
my $W = $ENV{AM_WORKER} // $t->build . '/automations-worker';

plan skip_all => 'module, worker or CLI not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl' && -x $W;

my $JSON = JSON::PP->new->utf8->canonical;
my $TIME = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
my $EXEC = qr/^exec_[0-9a-f]{24}$/;
my $API = '/automations/v1/';
my $START = '/api/start-automation/';
my $SLOW = $t->slow;

$t->start_redis;
$t->ctl('project', 'create', 'demo');

my $KEY = $t->apikey('demo', 'read write run');
my $PAIR = $t->tokenpair('demo');
my $SECRET = $t->webhook_secret('demo');

$t->start_receiver(status => 200);

$t->write_nginx(<<'EOF');
load_module %%BUILD%%/ngx_http_automations_module.so;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    automations_redis %%REDIS%%;
    automations_run_wait 5s;

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        location /automations/v1/ {
            automations_api;
        }

        location /api/start-automation/ {
            automations_start_api;
        }

        location /long/ {
            automations_api;
            automations_run_wait 20s;
        }
    }
}
EOF
$t->start_nginx;

# Webhook retries 2 s apart: the webhook tests look at a retrying delivery,
# or turn the receiver on, between two attempts.
sub worker {
    my ($name) = @_;
    return $t->start_worker($name, '--allow-private-webhooks',
        '--webhook-schedule', '2s,2s', '--visibility-timeout', '2000');
}

# ---------------------------------------------------------------- helpers

sub api {
    my ($method, $path, %o) = @_;
    return $t->api($KEY, $method, $path, %o);
}

sub start {
    my ($path, %o) = @_;
    return $t->tokenpair_request($PAIR, delete $o{method} // 'POST', $path,
                                 %o);
}

sub create {
    my (%body) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = api(POST => $API, json => \%body);
    is($r->{status}, 200, "create $body{automation_name}") or diag($r->{body});
}

# Every execution here is in project demo.
sub record { return $t->execution('demo', $_[0]) }

sub status_of {
    my ($name, $id) = @_;
    return start("${START}demo/$name/executions/$id", method => 'GET');
}

# A run request on a new connection, left waiting; returns the socket.
sub send_run {
    my ($path, $body) = @_;
    return $t->open_request(POST => $path, body => $body, headers => {
        Authorization  => "Bearer $KEY",
        'Content-Type' => 'application/json',
    });
}

# The id of the execution that a synchronous run request (source "run")
# has started, of $automation if given; waits for it (undef if none).
sub running_run {
    my ($automation) = @_;
    my $id;

    $t->wait_for(sub {
        for my $k (@{ $t->redis('KEYS', 'am:{demo}:execution:*') }) {
            my ($e) = $k =~ /:execution:(exec_\w+)$/ or next;
            my $rec = record($e);
            next unless ($rec->{source} // '') eq 'run'
                     && ($rec->{status} // '') eq 'running'
                     && (!defined $automation
                         || ($rec->{automation} // '') eq $automation);
            $id = $e;
            return 1;
        }
        return 0;
    }, 10 * $SLOW, 'the run started');
    return $id;
}

# ---------------------------------------------------------------- stories

create(automation_name => 'slow3', runtime => 'sh',
       code => q(sleep 3; echo '{"slept":3}'));
create(automation_name => 'quick', runtime => 'sh',
       code => q(payload=$(cat); printf '{"echo":%s}' "$payload"));
create(automation_name => 'ok', code => <<'PY');
from datallog import core_task

@core_task
def ok(seed, input):
    return {"ok": True, "rows": len(input or [])}
PY

worker('w1');
worker('w2');

subtest 'a worker killed mid-run: the run completes once' => sub {
    $t->clear_received;
    my $r = start("${START}demo/slow3",
                  json => { webhook => $t->receiver_url('/killed') });
    is($r->{status}, 202, 'started') or diag($r->{body});
    my $id = $r->{json}{execution_id} // '';

    $t->wait_for(sub { (record($id)->{status} // '') eq 'running' },
                 10 * $SLOW, 'the run started');
    my $victim = record($id)->{worker} // '';
    ok($victim eq 'w1' || $victim eq 'w2', "$victim runs it");
    my $other = $victim eq 'w1' ? 'w2' : 'w1';
    $t->kill_proc($victim, 'KILL');
    is($t->wait_proc($victim, 5), 128 + 9, "$victim killed");

    my $rec = $t->wait_done('demo', $id, 20);
    is($rec->{status}, 'success', 'completed');
    is($rec->{worker}, $other, "by $other");
    is($rec->{attempts}, 2, 'at the second attempt');
    is_deeply($JSON->decode($rec->{output} // 'null'), { slept => 3 },
              'the output');
    is(scalar @{ $t->redis('KEYS', 'am:{demo}:execution:*') }, 1,
       'one execution record');

    $t->wait_webhook('demo', $id, 'delivered');
    sleep 0.5;
    my $got = $t->received_for($id);
    my %ids = map { ($_->{headers}{'webhook-id'} // '') => 1 } @$got;
    is_deeply([ keys %ids ], [ "msg_$id" ], 'exactly one webhook-id');
    note(scalar(@$got) . ' delivery(ies) of that webhook-id');
    cmp_ok(scalar @$got, '>=', 1, 'delivered');
    is(scalar(grep { ($_->{json}{status} // '') eq 'success' } @$got),
       scalar @$got, 'every delivery says success');

    my $s = status_of('slow3', $id);
    is($s->{json}{status}, 'success', 'status API: success');
    is($s->{json}{webhook}{state}, 'delivered', 'status API: delivered');
    is($t->redis('XLEN', 'am:runs'), 0, 'the stream is empty');
    is($t->redis('XPENDING', 'am:runs', 'workers')->[0], 0, 'nothing pending');

    worker($victim);
};

subtest 'a synchronous run survives a worker killed under it' => sub {
    my $sock = send_run('/long/slow3/run', '{}');

    my $id = running_run();
    my $victim = record($id // '')->{worker} // 'w1';
    $t->kill_proc($victim, 'KILL');
    $t->wait_proc($victim, 5);

    my $res = $t->read_response($sock, 20 * $SLOW);
    my $j = eval { $JSON->decode($res->{body}) } || {};
    is($res->{status}, 200, 'the waiting client got 200')
        or diag("$res->{status} $res->{body}");
    is_deeply($j->{output}, { slept => 3 }, 'with the output');
    is($j->{execution_id}, $id, 'of that execution');
    is(record($id // '')->{attempts}, 2, 'run twice, completed once');

    worker($victim);
};

# Live processes that descend from $pid: { pid => "comm" }.
sub descendants {
    my ($pid) = @_;
    my (%kids, %comm);
    for my $stat (glob '/proc/[0-9]*/stat') {
        open(my $fh, '<', $stat) or next;
        my $line = <$fh> // next;
        my ($p, $c, $state, $pp) = $line =~ /^(\d+) \((.*)\) (\S) (\d+) /s
            or next;
        next if $state eq 'Z';
        push @{ $kids{$pp} }, $p;
        $comm{$p} = $c;
    }
    my %out;
    my @todo = ($pid);
    while (defined(my $p = shift @todo)) {
        for my $k (@{ $kids{$p} || [] }) {
            $out{$k} = $comm{$k};
            push @todo, $k;
        }
    }
    return \%out;
}

subtest 'a killed worker leaves no process of its run behind' => sub {
    create(automation_name => 'lingering', runtime => 'sh', code =>
        q{(while :; do sleep 0.2; done) >/dev/null 2>&1 & sleep 3; echo '{"done":true}'});
    my $r = start("${START}demo/lingering", json => {});
    my $id = $r->{json}{execution_id} // '';
    $t->wait_for(sub { (record($id)->{status} // '') eq 'running' },
                 10 * $SLOW, 'the run started');
    my $victim = record($id)->{worker} // 'w1';
    my $before = {};
    $t->wait_for(sub {
        $before = descendants($t->pid($victim));
        return grep { $_ eq 'sleep' } values %$before;
    }, 10 * $SLOW, 'the run forked');
    ok(scalar(grep { $_ eq 'sleep' } values %$before),
       "the run's processes under $victim: "
       . join(' ', map { "$_($before->{$_})" } sort keys %$before));

    $t->kill_proc($victim, 'KILL');
    $t->wait_proc($victim, 5);
    my $left = {};
    $t->wait_for(sub {
        $left = { map { $_ => 1 } grep { AmTest::pid_alive($_) } keys %$before };
        return !%$left;
    }, 5 * $SLOW);
    my $new = {};
    $new = { %$new, %{ descendants($_) } } for keys %$left;
    is_deeply([ sort keys %$left ], [],
              'none of them outlives the worker')
        or diag('left: ' . join(' ', map { "$_($before->{$_})" } sort keys %$left)
                . '; their new children: ' . join(' ', sort keys %$new));
    # clean up what this test started
    kill 'KILL', keys %$left, keys %$new;

    worker($victim);
    my $rec = $t->wait_done('demo', $id, 20);
    is($rec->{status}, 'success', 'the run completed elsewhere');
    is_deeply($JSON->decode($rec->{output} // 'null'), { done => JSON::PP::true },
              'with its output');
    my $w = $rec->{worker} // '';
    ok($t->wait_for(sub {
        !grep { $_ eq 'sleep' || $_ eq 'sh' } values %{ descendants($t->pid($w)) }
    }, 3), 'after a normal end, its background loop is gone too');
};

subtest 'Redis restarted with runs queued' => sub {
    $t->stop_proc($_) for qw(w1 w2);

    my @ids;
    for my $n (1 .. 10) {
        my $r = start("${START}demo/quick", json => { seed => { n => $n } });
        is($r->{status}, 202, "run $n queued") or diag($r->{body});
        push @ids, $r->{json}{execution_id} // '';
    }
    is($t->redis('XLEN', 'am:runs'), 10, 'ten entries in the stream');

    $t->stop_redis;
    my $t0 = time;
    my $down = start("${START}demo/quick", json => {});
    ok(time - $t0 < 2, 'while Redis is down, the answer is quick');
    is($down->{status}, 503, 'while Redis is down: 503');
    is_deeply($down->{json},
              { detail => 'The automations store is unavailable.' },
              'with a JSON detail');

    $t->start_redis;
    ok($t->wait_for(sub { status_of('quick', $ids[0])->{status} == 200 },
                    15 * $SLOW, 'nginx answering'),
       'nginx answers again after the restart');
    is(record($_)->{status}, 'queued', 'still queued') for $ids[0];

    worker('w1');
    my $all = $t->wait_for(sub {
        !grep { !finished(record($_)->{status}) } @ids
    }, 20 * $SLOW, 'all ten runs');
    ok($all, 'all ten finished');
    is_deeply([ map { record($_)->{status} } @ids ],
              [ ('success') x 10 ], 'all succeeded');
    is_deeply([ map { eval { $JSON->decode(record($_)->{output})->{echo}{seed}{n} } }
                @ids ], [ 1 .. 10 ], 'each with its own seed');

    # the subscriber connection came back too: a synchronous run is heard
    $t0 = time;
    my $r = api(POST => "${API}quick/run", json => { input => [ { a => 1 } ] });
    is($r->{status}, 200, 'a synchronous run after the restart: 200')
        or diag($r->{body});
    ok(time - $t0 < 5 * $SLOW, 'answered as soon as it finished');
    worker('w2');
};

subtest 'a synchronous run waiting across a Redis restart' => sub {
    my $sock = send_run('/long/slow3/run', '{}');
    my $id = running_run('slow3');

    $t->stop_redis;
    sleep 1;
    $t->start_redis;

    my $res = $t->read_response($sock, 20 * $SLOW);
    my $j = eval { $JSON->decode($res->{body}) } || {};
    is($res->{status}, 200, 'the waiting client got 200')
        or diag($res->{status} . ' ' . $res->{body});
    is($j->{execution_id}, $id, 'for its execution');
    is_deeply($j->{output}, { slept => 3 }, 'with the output');
    my $rec = $t->wait_done('demo', $id // '', 15);
    is($rec->{status}, 'success', 'redis: success');
    ok($t->running('w1') && $t->running('w2'), 'the workers kept running');
    ok($t->wait_for(sub { status_of('slow3', $id // '')->{status} == 200 },
                    15 * $SLOW, 'nginx answering'), 'nginx answers again');
};

subtest 'a synchronous run waiting across an nginx reload' => sub {
    plan skip_all => 'nginx under valgrind restarts instead of reloading'
        if $t->valgrind;
    my @old = $t->nginx_worker_pids;
    my $sock = send_run('/long/slow3/run', '{}');
    sleep 0.5;
    $t->kill_proc('nginx', 'HUP');
    my $res = $t->read_response($sock, 20);
    is($res->{status}, 200, 'the waiting client got 200 from the old worker')
        or diag("$res->{status} $res->{body}");
    is_deeply(eval { $JSON->decode($res->{body})->{output} }, { slept => 3 },
              'with the output');
    ok($t->wait_for(sub { !grep { AmTest::pid_alive($_) } @old }, 10),
       'then the old worker exits');
    my $r = api(POST => "${API}quick/run", json => { input => [] });
    is($r->{status}, 200, 'the new worker runs too');
};

subtest 'receiver failing, then up: delivered, same webhook-id' => sub {
    $t->clear_received;
    $t->receiver_status(500);
    my $r = start("${START}demo/quick",
                  json => { webhook => $t->receiver_url('/flaky'),
                            webhook_header => { 'X-Token' => 'flaky-1' } });
    is($r->{status}, 202, 'started') or diag($r->{body});
    my $id = $r->{json}{execution_id} // '';
    $t->wait_for(sub { @{ $t->received_for($id) } >= 2 }, 10 * $SLOW,
                 'two attempts');

    my $mid = status_of('quick', $id)->{json}{webhook} || {};
    is($mid->{state}, 'retrying', 'state retrying meanwhile');
    is($mid->{last_status}, 500, 'last status 500');
    like($mid->{next_attempt_at} // '', $TIME, 'next attempt RFC 3339');
    $t->receiver_status(200);

    my $rec = $t->wait_webhook('demo', $id, 'delivered');
    cmp_ok($rec->{webhook_attempts}, '>=', 2, 'two attempts or more');
    my $got = $t->received_for($id);
    is(scalar @$got, $rec->{webhook_attempts}, 'one request per attempt');
    my %ids = map { ($_->{headers}{'webhook-id'} // '') => 1 } @$got;
    is_deeply([ keys %ids ], [ "msg_$id" ], 'the same webhook-id each time');
    is(scalar(grep { verify_signature($_, $SECRET) } @$got), scalar @$got,
       'every attempt is signed');
    is(scalar(grep { ($_->{headers}{'x-token'} // '') eq 'flaky-1' } @$got),
       scalar @$got, 'every attempt has the caller header');
    my $s = status_of('quick', $id)->{json}{webhook} || {};
    is_deeply([ @$s{qw(state last_status last_error next_attempt_at)} ],
              [ 'delivered', 200, undef, undef ], 'status: delivered');
    is($t->redis('EXISTS', "am:{demo}:execution:$id:secret"), 0,
       'the headers are gone after delivery');
    $t->receiver_status(undef);
};

subtest 'receiver down (connection refused), then back' => sub {
    $t->clear_received;
    $t->stop_receiver;
    my $r = start("${START}demo/quick",
                  json => { webhook => $t->receiver_url('/down') });
    is($r->{status}, 202, 'started') or diag($r->{body});
    my $id = $r->{json}{execution_id} // '';
    $t->wait_for(sub { (record($id)->{webhook_attempts} // 0) >= 1 },
                 10 * $SLOW, 'a first attempt');
    my $mid = record($id);
    is($mid->{webhook_state}, 'retrying', 'retrying');
    ok(length($mid->{webhook_last_error} // ''), 'with an error: '
       . ($mid->{webhook_last_error} // ''));
    $t->start_receiver(status => 200);

    my $rec = $t->wait_webhook('demo', $id, 'delivered');
    cmp_ok($rec->{webhook_attempts}, '>=', 2, 'delivered at a retry');
    is(scalar @{ $t->received_for($id) }, 1, 'the receiver saw it once');
};

subtest 'receiver always failing: dead, listed, resent' => sub {
    $t->clear_received;
    $t->receiver_status(500);
    my $r = start("${START}demo/quick",
                  json => { webhook => $t->receiver_url('/dead') });
    is($r->{status}, 202, 'started') or diag($r->{body});
    my $id = $r->{json}{execution_id} // '';

    my $rec = $t->wait_webhook('demo', $id, 'dead', 15);
    is($rec->{webhook_attempts}, 3, 'three attempts (first + 2s, 2s)');
    is(scalar @{ $t->received_for($id) }, 3, 'the receiver saw three');
    my $s = status_of('quick', $id)->{json}{webhook} || {};
    is_deeply([ @$s{qw(state attempts last_status next_attempt_at)} ],
              [ 'dead', 3, 500, undef ], 'status: dead');
    ok(defined $t->redis('ZSCORE', 'am:webhooks:dead', "demo/$id"),
       'in the dead letters');
    like(scalar $t->ctl('webhook', 'dead'),
         qr{^demo/\Q$id\E \d{4}-\d\d-\d\dT[\d:]+Z$}m, 'webhook dead lists it');

    $t->receiver_status(200);
    my ($code, $out, $err) = $t->ctl('webhook', 'resend', 'demo', $id);
    is($code, 0, 'resend') or diag($err);
    $rec = $t->wait_webhook('demo', $id, 'delivered');
    is($rec->{webhook_attempts}, 1, 'delivered at the first new attempt');
    my $got = $t->received_for($id);
    is(scalar @$got, 4, 'one more request');
    my %ids = map { ($_->{headers}{'webhook-id'} // '') => 1 } @$got;
    is_deeply([ keys %ids ], [ "msg_$id" ], 'the same webhook-id');
    unlike(scalar $t->ctl('webhook', 'dead'), qr/\Q$id\E/,
           'not listed any more');
    is(status_of('quick', $id)->{json}{webhook}{state}, 'delivered',
       'status: delivered');
    $t->receiver_status(undef);
};

subtest 'hostile automations through the run API' => sub {
    create(automation_name => 'spin', runtime => 'sh',
           code => 'while :; do :; done', timeout_ms => 1000);
    create(automation_name => 'hog', code => <<'PY');
a = []
while True:
    a.append(bytearray(16 * 1024 * 1024))
PY
    create(automation_name => 'forkbomb', runtime => 'sh',
           code => 'b() { b | b; }; b', timeout_ms => 2000);
    create(automation_name => 'flood', runtime => 'sh',
           code => 'head -c 100000000 /dev/zero | tr "\0" x');
    create(automation_name => 'text', runtime => 'sh',
           code => 'echo hello world');
    create(automation_name => 'exit3', runtime => 'sh',
           code => q(echo '{"partial":true}'; exit 3));

    my %want = (
        spin     => qr/time/i,
        hog      => qr/memory|MemoryError|killed|signal/i,
        forkbomb => qr/.+/,
        flood    => qr/output|large|limit/i,
        text     => qr/JSON/i,
        exit3    => qr/\b3\b/,
    );
    for my $name (qw(spin hog forkbomb flood text exit3)) {
        my $t0 = time;
        my $r = api(POST => "${API}$name/run", json => { input => [] },
                    timeout => 30 * $SLOW);
        my $took = sprintf '%.1f', time - $t0;
        is($r->{status}, 422, "$name: 422 ($took s)") or diag($r->{body});
        my $j = $r->{json} || {};
        is($j->{status}, 'error', "$name: status error");
        like($j->{error} // '', $want{$name}, "$name: $j->{error}");
        ok(length($r->{body}) < 64 * 1024, "$name: a small answer");
        my $s = api(GET => "${API}$name/executions/" . ($j->{execution_id} // ''));
        # a fork bomb ends when its forks fail, or at its timeout on a
        # machine too busy for that to come first
        like($s->{json}{status}, $name eq 'spin' ? qr/^timed_out$/
                : $name eq 'forkbomb' ? qr/^(error|timed_out)$/ : qr/^error$/,
           "$name: execution status $s->{json}{status}");
        ok(length($s->{body}) < 256 * 1024, "$name: a small status");
    }

    # A fork bomb that keeps its processes must not starve the runs of
    # other workers and projects (they all run as the same user).
    create(automation_name => 'holder', timeout_ms => 2000, code => <<'PY');
import os, time
n = 0
while True:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    n += 1
print("forked", n, flush=True)
time.sleep(60)
PY
    my $bomb = api(POST => "${API}holder/run",
                   headers => { Prefer => 'respond-async' }, json => {});
    is($bomb->{status}, 202, 'a fork bomb started');
    my $bid = $bomb->{json}{execution_id} // '';
    $t->wait_for(sub { (record($bid)->{status} // '') eq 'running' }, 5,
                 'the bomb running');
    sleep 0.5;
    my $r = api(POST => "${API}ok/run", json => { input => [ {} ] });
    is($r->{status}, 200, 'a normal run during the fork bomb succeeds')
        or diag($r->{body});
    $r = api(POST => "${API}quick/run", json => { input => [ { b => 1 } ] });
    is($r->{status}, 200, 'a normal sh run (it forks) during the bomb succeeds')
        or diag($r->{body});
    my $held = scalar(keys %{ descendants($t->pid('w1')) })
             + scalar(keys %{ descendants($t->pid('w2')) });
    my $nobody = grep { ((stat $_)[4] // -1) == 65534 } glob '/proc/[0-9]*';
    note("processes under the workers during the bomb: $held; "
         . "of uid 65534 on this machine: $nobody");
    my $brec = $t->wait_done('demo', $bid, 15);
    is($brec->{status}, 'timed_out', 'the bomb timed out');
    note("bomb log: " . ($brec->{log} // ''));

    $r = api(POST => "${API}ok/run", json => { input => [ {}, {} ] });
    is($r->{status}, 200, 'a normal run afterwards succeeds') or diag($r->{body});
    is_deeply($r->{json}{output}, { ok => JSON::PP::true, rows => 2 },
              'with its output');
    ok($t->running('w1') && $t->running('w2'), 'both workers are alive');
};

subtest 'nginx stayed healthy' => sub {
    $t->error_log_clean;
    my @errors = grep { /\[error\]/
                        && !/redis connection to .* lost|redis connect to .* failed/ }
                 split /\n/, $t->error_log;
    is_deeply(\@errors, [], 'no [error] but the Redis restart');
    ok($t->running('nginx'), 'nginx runs');
};

$t->stop_proc($_) for qw(w1 w2);
$t->stop_nginx;

$t->sanitizers_clean;

done_testing;
