#!/usr/bin/perl
# Edges of the worker found as a new user and as an attacker: a webhook to
# a private address is dead at once and its error names no address; a
# worker whose Redis is gone (or frozen) still ends on SIGTERM, SIGINT or a
# second signal, within seconds, leaving its runs queued; every webhook
# attempt is listed in the execution's status; a receiver that answers 2xx
# is recorded as delivered at once, however slowly it sends the rest, and
# a 2xx that could not be recorded is sent again with the same webhook-id;
# `make run` stops on Ctrl-C with runs in flight, leaving nothing behind.

use strict;
use warnings;

use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use AmTest;
use AmTest::Api;

my $t = AmTest->new;
my $W = $t->build . '/automations-worker';

plan skip_all => 'module, worker or CLI not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl' && -x $W;

my $TIME = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
my $START = '/api/start-automation/';
my $SLOW = $t->slow;

# an IPv4 or IPv6 address in a text, or a host name of this machine
my $ADDRESS = qr{\d+\.\d+\.\d+\.\d+|::|localhost}i;

$t->start_redis;
$t->ctl('project', 'create', 'demo');

my $PAIR = $t->tokenpair('demo');

$t->start_receiver(status => 200);

$t->write_nginx(
    http => 'automations_redis %%REDIS%%;',
    server => <<'EOF',
location /api/start-automation/ {
    automations_start_api;
}
EOF
);
$t->start_nginx;

# An automation of project demo, stored as the gateway stores it.
sub automation {
    my ($name, $code) = @_;

    $t->redis('HSET', "am:{demo}:automation:$name",
        automation_name => $name, code => $code, runtime => 'sh',
        description => '', timeout_ms => '', webhook => '',
        created_at => '2026-01-01T00:00:00Z',
        updated_at => '2026-01-01T00:00:00Z');
    $t->redis('ZADD', 'am:{demo}:automations', 0, $name);
}

automation('quick', q(echo '{"ok":true}'));
automation('long', q(sleep 60; echo '{"slept":60}'));
automation('short', q(sleep 1; echo '{"slept":1}'));

# Starts a run of name through the start API; returns its execution id.
# nginx may answer 503 until it has reconnected to a restarted Redis.
sub run {
    my ($name, %body) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r;
    $t->wait_for(sub {
        $r = $t->tokenpair_request($PAIR, POST => "${START}demo/$name",
                                   json => \%body);
        $r->{status} != 503;
    }, 10 * $SLOW);
    is($r->{status}, 202, "run of $name started") or diag($r->{body});
    return $r->{json}{execution_id} // '';
}

sub status_of {
    my ($name, $id) = @_;
    return $t->tokenpair_request($PAIR,
        GET => "${START}demo/$name/executions/$id");
}

sub record { return $t->execution('demo', $_[0]) }

sub wait_webhook { return $t->wait_webhook('demo', @_) }

sub wait_running {
    my ($id) = @_;
    return $t->wait_for(sub { (record($id)->{status} // '') eq 'running' },
                        10 * $SLOW, "execution $id running");
}

sub worker {
    my ($name, @args) = @_;
    return $t->start_worker($name, '--visibility-timeout', 2000, @args);
}

sub stop_worker {
    my ($name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $t->kill_proc($name, 'TERM');
    is($t->wait_proc($name, 15 * $SLOW), 0, "$name exits 0 on SIGTERM")
        or diag($t->proc_log($name));
}

# -------------------------------------------- webhooks to private addresses

subtest 'webhook to a private address: dead at once, no address shown' => sub {
    $t->clear_received;
    worker('strict', '--webhook-schedule', '1s,1s,1s');

    my $port = $t->receiver_port;
    my %hostile = (
        loopback  => "http://127.0.0.1:$port/private",
        ipv6      => "http://[::1]:$port/private",
        mapped    => "http://[::ffff:127.0.0.1]:$port/private",
        decimal   => "http://2130706433:$port/private",
        metadata  => 'http://169.254.169.254/latest/meta-data/',
        name      => "http://localhost:$port/private",
    );

    for my $case (sort keys %hostile) {
        my $id = run('quick', webhook => $hostile{$case});
        my $rec = wait_webhook($id, 'dead', 10);
        is($rec->{webhook_attempts}, 1, "$case: one attempt, no retry");
        like($rec->{webhook_last_error} // '', qr/^address refused: \S+$/,
             "$case: the error says refused")
            or diag($rec->{webhook_last_error});
        ok(defined $t->redis('ZSCORE', 'am:webhooks:dead', "demo/$id"),
           "$case: in the dead letters");
        is($t->redis('ZSCORE', 'am:webhooks', "demo/$id"), undef,
           "$case: not scheduled again");

        my $s = status_of('quick', $id);
        is($s->{status}, 200, "$case: status 200");
        my $hook = $s->{json}{webhook} || {};
        is($hook->{state}, 'dead', "$case: status says dead");
        my %shown = %$hook;
        delete $shown{url};
        unlike(JSON::PP->new->canonical->encode(\%shown), $ADDRESS,
               "$case: no address in what the project is shown")
            or diag($s->{body});
    }

    is(scalar @{ $t->received }, 0, 'the receiver saw nothing');
    unlike($t->proc_log('strict'), qr/127\.0\.0\.1:$port|::1/,
           'the worker log names no resolved address');
    stop_worker('strict');
};

# ------------------------------------------------------------ every attempt

subtest 'every attempt in the status: a 500, then a 200' => sub {
    $t->clear_received;
    $t->receiver_status(500);
    # the receiver is turned to 200 between the two attempts: 3 s for that
    worker('w1', '--allow-private-webhooks', '--webhook-schedule', '3s,3s');

    my $id = run('quick', webhook => $t->receiver_url('/flaky'));
    $t->wait_for(sub { @{ $t->received_for($id) } >= 1 }, 10 * $SLOW,
                 'a first attempt');
    $t->receiver_status(200);
    my $rec = wait_webhook($id, 'delivered');
    is($rec->{webhook_attempts}, 2, 'two attempts');
    is(scalar @{ $t->received_for($id) }, 2, 'the receiver saw two requests');

    my $s = status_of('quick', $id);
    is($s->{status}, 200, 'status 200') or diag($s->{body});
    my $hook = $s->{json}{webhook} || {};
    is($hook->{attempts}, 2, 'attempts: 2');
    my $log = $hook->{attempt_log} || [];
    is(scalar @$log, 2, 'both attempts listed') or diag($s->{body});
    is_deeply([ map { [ @$_{qw(attempt status error)} ] } @$log ],
              [ [ 1, 500, 'HTTP 500' ], [ 2, 200, undef ] ],
              'in order: 500 then 200');
    for my $a (@$log) {
        like($a->{at} // '', $TIME, "attempt $a->{attempt}: at, RFC 3339");
        like($a->{duration_ms} // '', qr/^\d+$/,
             "attempt $a->{attempt}: a duration in ms");
    }
    cmp_ok($log->[1]{at}, 'ge', $log->[0]{at}, 'the second one is later');
    is_deeply([ sort keys %{ $log->[0] } ],
              [ qw(at attempt duration_ms error status) ],
              'nothing else in an attempt (no address)');

    $t->receiver_status(undef);
    stop_worker('w1');
};

subtest 'the same attempt recorded twice (a lost reply) counts once' => sub {
    $t->clear_received;
    worker('w2', '--allow-private-webhooks');
    my $id = run('quick', webhook => $t->receiver_url('/once'));
    wait_webhook($id, 'delivered');
    stop_worker('w2');

    my $rec = record($id);
    my $script = $t->script('webhook_result');
    $t->redis('EVAL', $script, 2, 'am:webhooks', 'am:webhooks:dead',
        'am:', "demo/$id", 'delivered', 200, '', 0, 0, 5,
        $rec->{webhook_attempt_last_id});
    $rec = record($id);
    is($rec->{webhook_attempts}, 1, 'still one attempt');
    is(scalar @{ status_of('quick', $id)->{json}{webhook}{attempt_log} || [] },
       1, 'listed once');
};

# -------------------------------------------------- 2xx recorded at once

subtest 'a receiver that answers 200 and stalls: delivered at once' => sub {
    my $port = AmTest::free_port();
    my $seen = $t->dir . '/stall.requests';
    $t->spawn(name => 'stall', cmd => [ $^X, '-e', <<'PL', $port, $seen ]);
use strict;
use IO::Socket::INET;
my ($port, $seen) = @ARGV;
my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
    Listen => 16, ReuseAddr => 1) or die "listen: $!";
my @open;
while (1) {
    my $c = $l->accept or next;
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) {
        last unless sysread($c, $buf, 65536, length $buf);
    }
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    next unless defined $body;
    my ($len) = $head =~ /content-length:\s*(\d+)/i;
    while (length($body) < ($len // 0)) {
        last unless sysread($c, $body, 65536, length $body);
    }
    open my $f, '>>', $seen or die;
    print $f "$body\n";
    close $f;
    # the status and headers now, the body never
    syswrite($c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nok");
    push @open, $c;
}
PL
    $t->wait_for(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") },
                 10, 'the stalling receiver');

    worker('w3', '--allow-private-webhooks', '--webhook-timeout', 6000,
           '--webhook-schedule', '1s');
    # the worker's start and the run are not what is measured: the attempt's
    # own time, under the webhook timeout, is (below)
    $t->wait_for(sub { ($t->proc_log('w3') // '') =~ /started: redis/ },
                 10 * $SLOW, 'w3 started');
    my $id = run('quick', webhook => "http://127.0.0.1:$port/stall");
    my $rec = wait_webhook($id, 'delivered', 20 * $SLOW);
    is($rec->{webhook_state}, 'delivered',
       'delivered before the webhook timeout');
    sleep 2;
    my @got = grep { /\Q$id\E/ } split /\n/, ($t->read_file($seen) // '');
    is(scalar @got, 1, 'sent once');
    my $log = status_of('quick', $id)->{json}{webhook}{attempt_log} || [];
    is(scalar @$log, 1, 'one attempt listed');
    cmp_ok($log->[0]{duration_ms} // 1e9, '<', 6000, 'shorter than the timeout');
    stop_worker('w3');
    $t->stop_proc('stall');
};

subtest 'a 2xx not recorded (Redis gone): sent again, same webhook-id' => sub {
    $t->clear_received;
    $t->receiver_delay(1.5);
    worker('d1', '--allow-private-webhooks', '--webhook-timeout', 5000);
    my $id = run('quick', webhook => $t->receiver_url('/again'));
    $t->wait_for(sub { @{ $t->received_for($id) } >= 1 }, 10 * $SLOW,
                 'the receiver has the delivery');
    $t->stop_redis(signal => 'KILL');
    $t->kill_proc('d1', 'TERM');
    is($t->wait_proc('d1', 15 * $SLOW), 0, 'the worker ends all the same')
        or diag($t->proc_log('d1'));
    like($t->proc_log('d1'), qr/not recorded before stopping/,
         'and says the delivery will be sent again');

    $t->receiver_delay(0);
    $t->start_redis;
    worker('d2', '--allow-private-webhooks');
    wait_webhook($id, 'delivered', 20);
    my $got = $t->received_for($id);
    is(scalar @$got, 2, 'the receiver got it twice');
    is_deeply([ map { $_->{headers}{'webhook-id'} } @$got ],
              [ "msg_$id", "msg_$id" ], 'with the same webhook-id');
    stop_worker('d2');
};

# ------------------------------------------- a result the socket cannot take

# The worker writes its commands to Redis as the loop is about to wait, and
# watches for room only when the kernel took part of one: an 8 MB result
# (more than loopback TCP buffers, 4 MB to send and what Redis's side
# takes) completed while Redis is frozen fills the socket's buffers, and
# the rest goes once Redis reads again.
subtest 'a result larger than the socket takes, Redis frozen: sent when it thaws' => sub {
    automation('big', q(sleep 1; printf '{"s":"'; )
        . q(head -c 8000000 /dev/zero | tr '\\0' a; printf '"}'));
    worker('b1', '--output-max', 10_000_000);
    my $id = run('big');
    ok(wait_running($id), 'the run is in flight');

    $t->kill_proc('redis', 'STOP');
    sleep 2.5;    # the run ends, its result is written as far as it goes
    $t->kill_proc('redis', 'CONT');

    $t->wait_for(sub { (record($id)->{status} // '') eq 'success' },
                 20 * $SLOW, "execution $id done");
    my $e = record($id);
    is($e->{status}, 'success', 'completed') or diag($t->proc_log('b1'));
    my $out = eval { decode_json($e->{output} // '') } // {};
    is(length($out->{s} // ''), 8_000_000, 'with the whole output');

    my $next = run('quick');
    $t->wait_for(sub { (record($next)->{status} // '') eq 'success' },
                 10 * $SLOW, "execution $next done");
    is(record($next)->{status}, 'success', 'the connection goes on');
    stop_worker('b1');
};

# ------------------------------------------------- signals with Redis gone

# Starts a worker with a run in flight, stops Redis the way given, sends the
# signals and checks that the worker is gone within $limit seconds; then
# Redis comes back and another worker completes the run: nothing is lost.
sub signal_case {
    my (%o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $name = $o{name};

    worker($name);
    my $id = run($o{automation} // 'long');
    ok(wait_running($id), 'the run is in flight');

    if ($o{redis} eq 'frozen') {
        $t->kill_proc('redis', 'STOP');
    } else {
        $t->stop_redis(signal => 'KILL');
    }
    sleep $o{settle} if $o{settle};

    my $t0 = time;
    for my $sig (@{ $o{signals} }) {
        $t->kill_proc($name, $sig);
        sleep 0.3;
    }
    my $code = $t->wait_proc($name, $o{limit} * $SLOW);
    my $took = time - $t0;
    ok(defined $code, sprintf('%s: gone within %d s (%.1f s)',
                              "@{ $o{signals} }", $o{limit}, $took))
        or diag($t->proc_log($name));
    $t->stop_proc($name) unless defined $code;
    is($code, 0, 'exit 0');
    like($t->proc_log($name), qr/stays? queued/,
         'the log says the run stays queued');

    if ($o{redis} eq 'frozen') {
        $t->kill_proc('redis', 'CONT');
    } else {
        $t->start_redis;
    }
    is($t->redis('XPENDING', 'am:runs', 'workers')->[0], 1,
       'the entry is still pending');
    is(record($id)->{status}, 'running', 'not completed');

    # the run comes back to another worker, whose sh answers at once
    worker("$name-next", '--runtime', 'sh:main.sh=/bin/echo {"done":true}');
    $t->wait_for(sub { (record($id)->{status} // '') eq 'success' },
                 15 * $SLOW, "execution $id done by another worker");
    is(record($id)->{status}, 'success', 'another worker completed it');
    is($t->redis('XPENDING', 'am:runs', 'workers')->[0], 0, 'nothing pending');
    stop_worker("$name-next");
}

subtest 'what workers that are gone and expired executions leave behind goes' => sub {
    my $consumers = sub {
        my %c;
        for my $c (@{ $t->redis('XINFO', 'CONSUMERS', 'am:runs', 'workers') }) {
            my %f = @$c;
            $c{ $f{name} } = $f{pending};
        }
        return \%c;
    };

    # a worker that died holding an entry, one that held nothing
    my $id = 'exec_' . ('0' x 22) . 'ee';
    $t->redis('XADD', 'am:runs', '*', 'project', 'demo', 'execution_id', $id);
    $t->redis('XREADGROUP', 'GROUP', 'workers', 'ghost-held', 'COUNT', 1,
              'STREAMS', 'am:runs', '>');
    $t->redis('XGROUP', 'CREATECONSUMER', 'am:runs', 'workers', 'ghost-idle');
    is($consumers->()->{'ghost-held'}, 1, 'the dead one holds an entry');

    # A beat deletes consumers that are idle and hold nothing; the held
    # entry is reclaimed once idle longer than a visibility timeout (6 s
    # here: the first beats come well before), and only then is its
    # consumer deleted. No warm python parent: the worker beats at once.
    $t->start_worker('tidy', '--visibility-timeout', 6000,
                     '--python-warm', 'off');
    ok($t->wait_for(sub { defined $t->redis('ZSCORE', 'am:workers', 'tidy') },
                    10 * $SLOW, 'the worker beats'), 'the worker is live');
    ok(exists $consumers->()->{'ghost-held'},
       'a consumer holding an entry is kept');

    ok($t->wait_for(sub { my $c = $consumers->();
                          !exists $c->{'ghost-held'} && !exists $c->{'ghost-idle'} },
                    30 * $SLOW, 'the ghosts go'),
       'both are deleted once idle longer than a visibility timeout')
        or diag(explain $consumers->());
    # the beat that drops the ghost may come before the worker is done
    # with the entry it took over: its pending record moved, it was not lost
    ok($t->wait_for(sub { $t->redis('XPENDING', 'am:runs', 'workers')->[0] == 0
                          && $t->redis('XLEN', 'am:runs') == 0 },
                    10 * $SLOW, 'the entry done'),
       'the held entry was reclaimed first and done, not dropped with its consumer')
        or diag(explain $t->redis('XPENDING', 'am:runs', 'workers'));
    # (Redis 7.0 makes a consumer of a blocked XREADGROUP only once it
    # gets an entry: the worker is one since it reclaimed the ghost's)
    ok(exists $consumers->()->{tidy}, 'the live worker stays a consumer');

    # dead letters whose execution expired leave the shared set
    my ($gone, $kept) = map { 'exec_' . ('0' x 22) . $_ } 'd1', 'd2';
    $t->redis('HSET', "am:{demo}:execution:$kept", 'execution_id', $kept);
    $t->redis('ZADD', 'am:webhooks:dead', 1, "demo/$gone", 2, "demo/$kept",
              3, 'no-slash');
    ok($t->wait_for(sub { !defined $t->redis('ZSCORE', 'am:webhooks:dead',
                                             "demo/$gone") },
                    20 * $SLOW, 'the expired dead letter goes'),
       'a dead letter whose execution expired is dropped');
    ok(!defined $t->redis('ZSCORE', 'am:webhooks:dead', 'no-slash'),
       'and one that names no execution');
    ok(defined $t->redis('ZSCORE', 'am:webhooks:dead', "demo/$kept"),
       'one whose execution is there stays');
    $t->redis('ZREM', 'am:webhooks:dead', "demo/$kept");
    $t->redis('DEL', "am:{demo}:execution:$kept");
    stop_worker('tidy');
};

subtest "a killed worker's run folders go when the next one starts" => sub {
    my $root = $t->dir . '/runroot';
    mkdir $root or die "$root: $!";
    my $in = sub {
        my ($name) = @_;
        $t->spawn(name => $name,
                  cmd => [ $W, '--redis', $t->redis_addr, '--name', $name,
                           '--visibility-timeout', 2000, '--run-dir', $root ]);
        $t->wait_for(sub { ($t->proc_log($name) // '') =~ /started: redis/ },
                     10 * $SLOW, "$name started");
    };
    my $folders = sub { [ sort map { s{.*/}{}r } glob "$root/am-worker-*" ] };

    $in->('f1');
    my $id = run('short');
    wait_running($id);
    my ($mine) = @{ $folders->() };
    ok(defined $mine, 'a worker keeps its runs in a folder of its own');
    my @runs = glob "$root/$mine/am-run-*";
    is(scalar @runs, 1, "the run's folder is in it");

    $t->kill_proc('f1', 'KILL');
    is($t->wait_proc('f1', 5), 128 + 9, 'the worker killed mid-run');
    ok(-d "$root/$mine", 'its folder stays behind');

    $in->('f2');
    ok(!-e "$root/$mine", 'the next worker to start removes it')
        or diag(explain $folders->());
    like($t->proc_log('f2'), qr/removed the run folders of 1 worker\(s\) gone/,
         'and says so');
    my ($f2) = @{ $folders->() };
    ok(defined $f2 && $f2 ne $mine, 'and keeps its own');

    $in->('f3');
    is(scalar @{ $folders->() }, 2,
       "a worker that starts leaves a live one's folder alone");
    unlike($t->proc_log('f3'), qr/removed the run folders/, 'removes nothing');

    my $rec = $t->wait_done('demo', $id, 20 * $SLOW);
    is($rec->{status}, 'success', 'the run completed on another worker');

    stop_worker($_) for qw(f2 f3);
    is_deeply($folders->(), [], 'workers that stop remove their folders');

    # by default: a tmpfs for confined runs, $TMPDIR for unconfined ones
    my $tmp = $t->dir . '/tmpdir';
    mkdir $tmp or die "$tmp: $!";
    for my $case ([ 'rd1', [], $> == 0 ? '/dev/shm' : $tmp ],
                  [ 'rd2', [ '--no-confine' ], $tmp ]) {
        my ($name, $args, $where) = @$case;
        $t->spawn(name => $name, env => { TMPDIR => $tmp },
                  cmd => [ $W, '--redis', $t->redis_addr, '--name', $name,
                           @$args ]);
        my $dir;
        $t->wait_for(sub {
            ($dir) = ($t->proc_log($name) // '') =~ /run folders in (\S+)/;
        }, 10 * $SLOW, "$name says where");
        like($dir // '', qr{^\Q$where\E/am-worker-\w{6}$},
             (@$args ? "@$args" : 'by default') . ": run folders in $where");
        ok(defined $dir && -d $dir, 'there')
            or diag($t->proc_log($name), join ' ', glob "$where/am-*");
        stop_worker($name);
        ok(defined $dir && !-e $dir, 'and gone once it stopped');
    }
};

subtest 'Redis gone, SIGTERM: the worker ends' => sub {
    signal_case(name => 's1', redis => 'gone', signals => [ 'TERM' ],
                limit => 20);
};

subtest 'Redis gone, SIGINT: the worker ends' => sub {
    signal_case(name => 's2', redis => 'gone', signals => [ 'INT' ],
                limit => 20);
};

subtest 'Redis gone, a second signal: the worker ends at once' => sub {
    signal_case(name => 's3', redis => 'gone', signals => [ 'TERM', 'TERM' ],
                limit => 5);
};

subtest 'Redis gone, the run over, its result owed: SIGTERM ends it' => sub {
    signal_case(name => 's5', redis => 'gone', automation => 'short',
                settle => 2, signals => [ 'TERM' ], limit => 20);
};

subtest 'Redis frozen, SIGTERM: the worker ends' => sub {
    signal_case(name => 's4', redis => 'frozen', signals => [ 'TERM' ],
                limit => 25);
};

# ------------------------------------------------------------- make run

# The processes whose command line holds one of the given texts.
sub pids_with {
    my (@texts) = @_;
    my @pids;
    for my $f (glob '/proc/[0-9]*/cmdline') {
        my ($pid) = $f =~ m{/proc/(\d+)/};
        next if $pid == $$;
        open my $fh, '<', $f or next;
        my $cmd = do { local $/; <$fh> } // '';
        $cmd =~ tr/\0/ /;
        push @pids, $pid if grep { index($cmd, $_) >= 0 } @texts;
    }
    return @pids;
}

subtest 'make run: Ctrl-C returns with runs in flight, nothing left' => sub {
    my $dir = $t->dir . '/make-run';
    my ($http, $redis) = (AmTest::free_port(), AmTest::free_port());

    # in a session of its own, as in a terminal: Ctrl-C signals its group
    my $pid = $t->spawn(name => 'make-run',
        cmd => [ 'setsid', 'sh', "$AmTest::ROOT/src/dev/run.sh" ],
        env => { AM_BUILD => $t->build, AM_RUN_DIR => $dir,
                 AM_HTTP_PORT => $http, AM_REDIS_PORT => $redis });
    ok($t->wait_for(sub { ($t->proc_log('make-run') // '') =~ /is running/ },
                    30 * $SLOW, 'make run'), 'make run is up')
        or diag($t->proc_log('make-run'));

    my %c = ($t->read_file("$dir/credentials") // '') =~ /^(\w+)=(\S+)$/mg;
    my $r = $t->api($c{apikey_key}, POST => '/automations/v1/', port => $http,
        json => { automation_name => 'nap', runtime => 'sh',
                  override_existing => JSON::PP::true,
                  code => q(sleep 987; echo '{}') });
    is($r->{status}, 200, 'an automation that sleeps') or diag($r->{body});
    my @ids;
    for (1 .. 2) {
        $r = $t->tokenpair_request(
            { token => $c{tokenpair_token}, api_key => $c{tokenpair_api_key} },
            POST => '/api/start-automation/demo/nap', port => $http,
            json => { seed => {} });
        push @ids, $r->{json}{execution_id} // '';
    }
    ok($t->wait_for(sub {
        !grep {
            my $s = $t->tokenpair_request({ token => $c{tokenpair_token},
                    api_key => $c{tokenpair_api_key} },
                GET => "/api/start-automation/demo/nap/executions/$_",
                port => $http);
            ($s->{json}{status} // '') ne 'running';
        } @ids
    }, 10 * $SLOW, 'runs in flight'), 'two runs in flight');

    my @children = pids_with($dir, "127.0.0.1:$redis");
    cmp_ok(scalar @children, '>=', 4, 'Redis, nginx and two workers');

    # Redis has a password, made by make run, and no command line shows it
    my $password = $t->read_file("$dir/redis.password") // '';
    like($password, qr/^[0-9a-f]{48}$/, 'make run made a Redis password');
    is_deeply([ pids_with($password) ], [], 'no command line holds it');
    is((stat "$dir/redis.password")[2] & 07777, 0600,
       'its file is readable by its owner only');
    like(`redis-cli -p $redis ping 2>&1`, qr/NOAUTH/,
         'Redis refuses commands without it');

    my $t0 = time;
    kill 'INT', -$pid;
    my $code = $t->wait_proc('make-run', 20 * $SLOW);
    ok(defined $code, sprintf('Ctrl-C returned (%.1f s)', time - $t0))
        or diag($t->proc_log('make-run'));
    is($code, 0, 'exit 0');
    my @left = grep { AmTest::pid_alive($_) } @children;
    is_deeply(\@left, [], 'Redis, nginx and the workers are gone');
    is_deeply([ pids_with('sleep 987') ], [], 'and the runs too');
    like($t->read_file("$dir/worker.log") // '', qr/stay queued/,
         'the workers left their runs queued');

    kill 'KILL', @left, pids_with('sleep 987');
    $t->stop_proc('make-run') unless defined $code;
};

done_testing;
