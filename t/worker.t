#!/usr/bin/perl
# automations-worker: runs queued in the Redis stream are executed, their
# results stored, their webhooks delivered (signed, retried, dead-lettered),
# across several workers, a worker killed mid-run, a Redis restart and
# hostile automations; plus `automationsctl webhook`. Runs are enqueued with
# redis/execution_enqueue.lua directly, as the gateway does.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);

use AmTest;
use AmTest::Api qw(finished verify_signature);

my $t = AmTest->new;
my $W = $t->build . '/automations-worker';

plan skip_all => "$W not built" unless -x $W;

my $JSON = JSON::PP->new->canonical;
my $ROOT = $AmTest::ROOT;
my $TIME = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

sub slurp {
    open my $fh, '<', $_[0] or die "$_[0]: $!";
    local $/;
    return scalar <$fh>;
}

my $ENQUEUE = slurp("$ROOT/redis/lib.lua") . "\n"
            . slurp("$ROOT/redis/execution_enqueue.lua");

$t->start_redis;
$t->start_receiver(status => 200);
$t->ctl('project', 'create', 'demo');

# An automation of project demo, stored as the gateway stores it.
sub automation {
    my ($name, $runtime, $code, %o) = @_;

    $t->redis('HSET', "am:{demo}:automation:$name",
        automation_name => $name, code => $code, runtime => $runtime,
        description => '', timeout_ms => $o{timeout_ms} // '',
        webhook => $o{webhook} // '', created_at => '2026-01-01T00:00:00Z',
        updated_at => '2026-01-01T00:00:00Z');
    $t->redis('ZADD', 'am:{demo}:automations', 0, $name);
}

my $seq = 0;

# Enqueues a run like POST /start-automation; returns its execution id.
sub enqueue {
    my ($name, %o) = @_;
    my $id = sprintf('exec_%08x%08x%08x', $$, int(time), ++$seq);
    my $json = sub { defined $_[0] ? $JSON->encode($_[0]) : '' };

    my $r = $t->redis('EVAL', $ENQUEUE, 2, 'am:{demo}:project', 'am:runs',
        'am:{demo}:', 'demo', $name, $id, 'start', 3600, '', "d$id",
        $json->($o{seed}), $json->($o{input}), $o{build_id} // '',
        $o{webhook} // '', $json->($o{headers}), $json->($o{ddn}));
    die "enqueue $name: @$r\n" unless $r->[0] eq 'ok';
    return $id;
}

# Every execution here is in project demo.
sub record { return $t->execution('demo', $_[0]) }

sub output {
    my ($rec) = @_;
    return eval { JSON::PP->new->allow_nonref->decode($rec->{output}) };
}

# Stops a worker with SIGTERM and checks that it exited 0.
sub stop_worker {
    my ($name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $t->kill_proc($name, 'TERM');
    is($t->wait_proc($name, 15), 0, "$name exits 0 on SIGTERM")
        or diag($t->proc_log($name));
}

my @FAST = ('--webhook-schedule', '1s,1s,1s', '--allow-private-webhooks',
            '--visibility-timeout', 3000);

automation('echo', 'sh', 'payload=$(cat); printf \'{"echo":%s}\' "$payload"');
automation('hello-automation', 'python', <<'PY');
from datallog import core_task


@core_task
def hello(seed):
    return {"message": "Hello, " + seed["message"], "seed": seed}
PY
automation('quick', 'sh', q(sleep 0.1; echo '{"ok":true}'));
automation('slow', 'sh', q(sleep 3; echo '{"slept":3}'));

# ---------------------------------------------------------------- basics

subtest 'help and options' => sub {
    my ($code, $out) = $t->_run_capture([ $W, '--help' ]);
    is($code, 0, '--help exits 0');
    like($out, qr/--$_\b/, "--help documents --$_") for qw(redis password db
        prefix concurrency group name visibility-timeout max-attempts
        max-timeout memory output-max runtime webhook-schedule
        webhook-timeout allow-private-webhooks);
    like($out, qr/AUTOMATIONS_REDIS\b/, '--help names the environment');

    ($code, undef, my $err) = $t->_run_capture([ $W, '--redis', '::1:6379' ]);
    is($code, 2, 'a bare IPv6 address is refused');
    like($err, qr/invalid redis address "::1:6379": an IPv6 address goes in brackets: \[::1:6379\]/,
        'and the message says how to write it');

    ($code, undef, $err) = $t->_run_capture([ $W, '--webhook-schedule', '5x' ]);
    is($code, 2, 'a bad schedule is refused');

    for my $dir ('runs', '', '/' . ('x' x 1024)) {
        ($code, undef, $err) = $t->_run_capture([ $W, '--run-dir', $dir ]);
        is($code, 2, 'a --run-dir of ' . length($dir) . ' bytes, not absolute '
           . 'or too long, is refused');
        like($err, qr/--run-dir: not an absolute path of at most 1024 bytes/,
             'and says why');
    }
};

# --help and README.md's worker table are the same table (src/worker/options.c)
subtest "README's worker options are --help's" => sub {
    my (undef, $out) = $t->_run_capture([ $W, '--help' ]);
    my (@help, $row);
    for (split /\n/, $out) {
        if (/^  (--\S+(?: \S+)?)\s+(AUTOMATIONS_\w+)(?: \((.*)\))?$/) {
            push @help, $row = [ $1, $2, $3 // '', '' ];
        } elsif ($row && /^      (\S.*)$/) {
            $row->[3] .= ($row->[3] eq '' ? '' : ' ') . $1;
        } else {
            undef $row;
        }
    }

    my @readme;
    for (split /\n/, slurp("$ROOT/README.md")) {
        push @readme, [ $1, $2, $3, $4 ]
            if /^\| `(--[^`]+)` \| `(AUTOMATIONS_\w+)` \| (.*?) ?\| (.*) \|$/;
    }

    ok(@help >= 19, scalar(@help) . ' options in --help');
    is_deeply(\@readme, \@help,
        'README: the same options, variables, defaults and help, in order');
};

subtest 'a Redis host name is resolved at each connection' => sub {
    $t->spawn(name => 'unresolved', cmd => [ $W, '--redis',
        'no-such-host.invalid:6379', '--name', 'unresolved' ]);
    ok($t->wait_for(sub { ($t->proc_log('unresolved') // '')
            =~ /connection to no-such-host\.invalid:6379: cannot resolve no-such-host\.invalid/ },
        10, 'the resolver error'),
        'a name that does not resolve: said, and the worker keeps trying');
    stop_worker('unresolved');
};

subtest 'the Redis password from a file or the environment' => sub {
    my $p = AmTest->new;
    $p->start_redis(requirepass => 'pw-Worker-1');
    my $file = $p->dir . '/redis-password';
    open my $fh, '>', $file or die "$file: $!";
    print $fh "pw-Worker-1\n";
    close $fh;

    my $group_of = sub {
        my $r = eval { $p->redis('XINFO', 'GROUPS', "$_[0]runs") } || [];
        return ref $r->[0] ? { @{ $r->[0] } }->{name} // '' : '';
    };

    $p->spawn(name => 'pwfile', cmd => [ $W, '--redis', $p->redis_addr,
        '--password-file', $file, '--prefix', 'f:' ]);
    ok($p->wait_for(sub { $group_of->('f:') eq 'workers' }, 10, 'group f:'),
        '--password-file: the worker logs in and creates its group');

    $p->spawn(name => 'pwenv', cmd => [ $W, '--redis', $p->redis_addr,
        '--prefix', 'e:' ], env => { AUTOMATIONS_REDIS_PASSWORD => 'pw-Worker-1' });
    ok($p->wait_for(sub { $group_of->('e:') eq 'workers' }, 10, 'group e:'),
        'AUTOMATIONS_REDIS_PASSWORD: the same');

    $p->spawn(name => 'nopw', cmd => [ $W, '--redis', $p->redis_addr,
        '--prefix', 'n:' ]);
    ok($p->wait_for(sub { ($p->proc_log('nopw') // '') =~ /NOAUTH/ }, 10, 'NOAUTH'),
        'no password: the worker says NOAUTH');
    is($group_of->('n:'), '', 'and has created nothing');

    my ($code, undef, $err) = $p->_run_capture([ $W, '--password-file',
        $p->dir . '/none' ]);
    is($code, 2, 'a missing password file: exit 2');
    like($err, qr{^automations-worker: --password-file: \S+/none: No such file},
        'and the message names it');

    $p->stop_all;
};

$t->start_worker('w1', @FAST, '--memory', 256);

subtest 'sh automation: payload in, JSON out' => sub {
    my $id = enqueue('echo', seed => { message => 'hi' },
                     input => { n => 1 }, build_id => 'b7',
                     ddn => { 'x-hasura-role' => 'user' });
    my $rec = $t->wait_done('demo', $id);

    is($rec->{status}, 'success', 'status success');
    my $out = output($rec)->{echo};
    is_deeply($out->{seed}, { message => 'hi' }, 'seed passed');
    is_deeply($out->{input}, { n => 1 }, 'input passed');
    is_deeply($out->{context}, { execution_id => $id, project => 'demo',
        automation => 'echo', build_id => 'b7',
        ddn_headers => { 'x-hasura-role' => 'user' } }, 'context passed');
    like($rec->{execution_time_ms}, qr/^\d+$/, 'execution time');
    like($rec->{$_}, $TIME, $_) for qw(started_at finished_at);
    is($rec->{worker}, 'w1', 'worker recorded');
    is($rec->{webhook_state}, 'none', 'no webhook');
    is($t->redis('EXISTS', "am:{demo}:execution:$id:secret"), 0,
       'the secret headers are gone');
    is($t->redis('XLEN', 'am:runs'), 0, 'the entry is deleted');
    is($t->redis('XPENDING', 'am:runs', 'workers')->[0], 0,
       'and acknowledged');

    my $empty = $t->wait_done('demo', enqueue('echo'));
    my $o = output($empty)->{echo};
    is_deeply([ @$o{qw(seed input)}, $o->{context}{build_id},
                $o->{context}{ddn_headers} ], [ undef, undef, undef, {} ],
              'absent seed, input, build id, ddn headers');
};

subtest 'python @core_task automation with a seed' => sub {
    my $id = enqueue('hello-automation',
                     seed => { message => 'Hello from the API!' });
    my $rec = $t->wait_done('demo', $id);

    is($rec->{status}, 'success', 'status success') or diag($rec->{log});
    is_deeply(output($rec), { message => 'Hello, Hello from the API!',
        seed => { message => 'Hello from the API!' } },
        'the seed is the first argument, the return value the output');
};

subtest 'webhook: delivered, signed, with the caller headers' => sub {
    my $secret = $t->ctl('webhook', 'secret', 'demo');
    chomp $secret;
    like($secret, qr/^whsec_[A-Za-z0-9+\/]{32}$/, 'secret created');
    is($t->ctl('webhook', 'secret', 'demo'), "$secret\n",
       'the same secret the second time');
    is($t->redis('HGET', 'am:{demo}:project', 'webhook_secret'), $secret,
       'stored in the project');

    $t->clear_received;
    my $id = enqueue('echo', seed => { a => 1 },
        webhook => $t->receiver_url('/hook?x=1'),
        headers => { Authorization => 'Token tok-123',
                     'X-Api-Key' => 'key-456' });
    my $rec = $t->wait_done('demo', $id);
    is($rec->{status}, 'success', 'run succeeded');

    my $got = $t->wait_received(1);
    is(scalar @$got, 1, 'one request');
    my $req = $got->[0];
    is($req->{method}, 'POST', 'POST');
    is($req->{path}, '/hook?x=1', 'to the webhook URL');
    like($req->{headers}{'content-type'}, qr{^application/json}, 'JSON');
    is($req->{headers}{authorization}, 'Token tok-123', 'custom header');
    is($req->{headers}{'x-api-key'}, 'key-456', 'second custom header');

    my $body = $req->{json};
    is($body->{$_}, $rec->{$_}, "body $_")
        for qw(execution_id project automation status started_at
               finished_at);
    is($body->{execution_time_ms}, $rec->{execution_time_ms},
       'body execution_time_ms');
    is_deeply($body->{output}, output($rec), 'body output');
    ok(exists $body->{error} && !defined $body->{error}, 'body error null');

    my ($msgid, $ts, $sig) =
        @{ $req->{headers} }{qw(webhook-id webhook-timestamp webhook-signature)};
    is($msgid, "msg_$id", 'webhook-id');
    ok(abs($ts - time) < 60, 'webhook-timestamp is now');
    ok(verify_signature($req, $secret), 'signature verifies')
        or diag("webhook-signature: $sig");

    $rec = $t->wait_webhook('demo', $id, 'delivered');
    is($rec->{webhook_attempts}, 1, 'one attempt');
    is($rec->{webhook_last_status}, 200, 'last status 200');
    is($t->redis('EXISTS', "am:{demo}:execution:$id:secret"), 0,
       'the webhook headers are gone after delivery');
    is($t->redis('ZSCORE', 'am:webhooks', "demo/$id"), undef,
       'no longer scheduled');
    unlike($t->proc_log('w1'), qr/tok-123|key-456|x-hasura-role|\Q$secret\E/,
           'the log shows no header or secret');

    my ($code, $out, $err) = $t->ctl('webhook', 'secret', 'demo', '--rotate');
    is($code, 0, 'rotate');
    isnt($out, "$secret\n", 'a new secret');
    ($code, $out, $err) = $t->ctl('webhook', 'secret', 'nope');
    is($code, 1, 'secret of a missing project fails');
    like($err, qr/project nope not found/, 'and says so');
    $t->redis('HSET', 'am:{demo}:project', 'webhook_secret', $secret);
};

subtest 'no webhook: record kept, nothing sent' => sub {
    $t->clear_received;
    my $rec = $t->wait_done('demo', enqueue('echo', seed => { quiet => 1 }));
    is($rec->{status}, 'success', 'run succeeded');
    is($rec->{webhook_state}, 'none', 'webhook state none');
    sleep 0.6;
    is(scalar @{ $t->received }, 0, 'nothing sent');
    ok($t->redis('TTL', "am:{demo}:execution:$rec->{execution_id}") > 3000,
       'the record is kept with its retention');
};

# --------------------------------------------------------------- webhooks

subtest 'webhook retried: 500, then 200' => sub {
    $t->clear_received;
    $t->receiver_status(500);
    my $id = enqueue('echo', webhook => $t->receiver_url('/retry'));
    $t->wait_for(sub { @{ $t->received_for($id) } >= 2 }, 10, 'two attempts');
    my $mid = record($id);
    is($mid->{webhook_state}, 'retrying', 'state retrying meanwhile');
    is($mid->{webhook_last_status}, 500, 'last status 500');
    like($mid->{webhook_last_error}, qr/500/, 'last error');
    $t->receiver_status(200);

    my $rec = $t->wait_webhook('demo', $id, 'delivered');
    cmp_ok($rec->{webhook_attempts}, '>=', 3, 'three attempts or more');
    my %ids = map { $_->{headers}{'webhook-id'} => 1 } @{ $t->received_for($id) };
    is_deeply([ keys %ids ], [ "msg_$id" ], 'the same webhook-id each time');
    $t->receiver_status(undef);
};

subtest 'webhook dead-lettered, then resent' => sub {
    $t->clear_received;
    $t->receiver_status(500);
    my $id = enqueue('echo', webhook => $t->receiver_url('/dead'));
    my $rec = $t->wait_webhook('demo', $id, 'dead', 20);

    is($rec->{webhook_attempts}, 4, 'first attempt and 3 retries');
    is(scalar @{ $t->received_for($id) }, 4, 'the receiver saw 4 requests');
    ok(defined $t->redis('ZSCORE', 'am:webhooks:dead', "demo/$id"),
       'in the dead letters');
    is($t->redis('ZSCORE', 'am:webhooks', "demo/$id"), undef,
       'no longer scheduled');
    like($t->ctl('webhook', 'dead'), qr{^demo/$id \d{4}-\d\d-\d\dT[\d:]+Z$}m,
         'webhook dead lists it');

    my ($code, $out, $err) = $t->ctl('webhook', 'resend', 'demo',
        'exec_' . '0' x 24);
    is($code, 1, 'resend of an unknown execution fails');
    like($err, qr/execution not found/, 'and says so');

    ($code, $out, $err) = $t->ctl('webhook', 'resend', 'demo', 'nope');
    is($code, 2, 'resend of something that is no execution id: usage');
    like($err, qr/invalid execution id "nope"/, 'and says so');

    $t->receiver_status(200);
    ($code, $out, $err) = $t->ctl('webhook', 'resend', 'demo', $id);
    is($code, 0, 'resend') or diag($err);
    $rec = $t->wait_webhook('demo', $id, 'delivered');
    is($rec->{webhook_attempts}, 1, 'delivered at the first new attempt');
    is(scalar @{ $t->received_for($id) }, 5, 'one more request');
    is($t->redis('ZSCORE', 'am:webhooks:dead', "demo/$id"), undef,
       'out of the dead letters');
    unlike($t->ctl('webhook', 'dead'), qr/\Q$id\E/, 'not listed any more');

    ($code, $out, $err) = $t->ctl('webhook', 'resend', 'demo', $id);
    is($code, 1, 'resend of a delivered webhook fails');
    like($err, qr/not dead-lettered/, 'and says so');
    $t->receiver_status(undef);
};

subtest 'webhook answered 410: dead at once' => sub {
    $t->clear_received;
    $t->receiver_status(410);
    my $id = enqueue('echo', webhook => $t->receiver_url('/gone'));
    my $rec = $t->wait_webhook('demo', $id, 'dead');
    is($rec->{webhook_attempts}, 1, 'one attempt');
    is($rec->{webhook_last_status}, 410, 'status 410');
    sleep 1.5;
    is(scalar @{ $t->received_for($id) }, 1, 'never retried');
    $t->receiver_status(undef);
};

# ------------------------------------------------------ hostile automations

subtest 'hostile automations end as errors, the worker keeps serving' => sub {
    automation('spin', 'sh', 'while :; do :; done', timeout_ms => 1000);
    automation('hog', 'python', <<'PY');
a = []
while True:
    a.append(bytearray(16 * 1024 * 1024))
PY
    automation('flood', 'sh', 'head -c 100000000 /dev/zero | tr "\0" x');
    automation('text', 'sh', 'echo hello world');
    automation('exit3', 'sh', q(echo '{"partial":true}'; exit 3));
    automation('forkbomb', 'sh', 'b() { b | b; }; b',
               timeout_ms => 2000);

    my %id = map { $_ => enqueue($_) } qw(spin hog flood text exit3);
    my %rec = map { $_ => $t->wait_done('demo', $id{$_}, 20) } keys %id;

    is($rec{spin}{status}, 'timed_out', 'infinite loop: timed out');
    cmp_ok($rec{spin}{execution_time_ms}, '<', 5000, 'within its timeout');
    is($rec{$_}{status}, 'error', "$_: error") for qw(hog flood text exit3);
    ok(length($rec{flood}{output} // '') < 2 * 1024 * 1024,
       'the flood is not stored');
    note("$_: $rec{$_}{error}") for sort keys %rec;
    like($rec{exit3}{error}, qr/3/, 'exit 3: the error names the code');

    my $fb = $t->wait_done('demo', enqueue('forkbomb'), 30);
    ok($fb->{status} eq 'error' || $fb->{status} eq 'timed_out',
       "fork bomb: $fb->{status}");

    my $ok = $t->wait_done('demo', enqueue('echo', seed => { after => 'hostile' }), 20);
    is($ok->{status}, 'success', 'a normal run afterwards succeeds')
        or diag($ok->{error}, $ok->{log});
    ok($t->running('w1'), 'the worker is alive');
};

# The private-address check needs a worker without --allow-private-webhooks.
stop_worker('w1');

subtest 'runs execute as the configured unprivileged user' => sub {
    plan skip_all => 'needs root' if $> != 0;

    automation('whoami', 'sh', q(printf '{"uid":%s,"gid":%s}' "$(id -u)" "$(id -g)"));
    $t->start_worker('wu', '--run-uid', 64123, '--run-gid', 64124);
    my $rec = $t->wait_done('demo', enqueue('whoami'));
    is_deeply(output($rec), { uid => 64123, gid => 64124 },
              '--run-uid and --run-gid apply');
    stop_worker('wu');

    # by default each run has a user of its own, so that process limits
    # and folders are not shared between runs
    automation('whoami-slow', 'sh',
        q(sleep 0.5; printf '{"uid":%s}' "$(id -u)"));
    $t->start_worker('wu2', '--concurrency', 4);
    my @ids = map { enqueue('whoami-slow') } 1 .. 4;
    my @uids = map { output($t->wait_done('demo', $_))->{uid} } @ids;
    my %distinct = map { $_ => 1 } @uids;
    is(scalar keys %distinct, 4, 'concurrent runs: four different users')
        or diag("@uids");
    ok(!grep({ $_ == 0 || $_ == 65534 } @uids), 'none is root or nobody');
    stop_worker('wu2');
};

subtest 'private webhook address refused' => sub {
    $t->clear_received;
    $t->start_worker('strict', '--webhook-schedule', '1s');
    my $id = enqueue('echo', webhook => $t->receiver_url('/private'));
    my $rec = $t->wait_done('demo', $id);
    is($rec->{status}, 'success', 'the run itself succeeds');
    $rec = $t->wait_webhook('demo', $id, 'dead', 10);
    like($rec->{webhook_last_error}, qr/refused/, 'the error says refused')
        or diag($rec->{webhook_last_error});
    is($rec->{webhook_attempts}, 1, 'dead at once, not retried');
    is(scalar @{ $t->received }, 0, 'the receiver saw nothing');
    stop_worker('strict');
};

# ------------------------------------------------------------ many workers

subtest 'two workers share 40 runs' => sub {
    $t->start_worker('a', @FAST);
    $t->start_worker('b', @FAST);
    # both take runs from the first: one slow to start would find none left
    for my $w (qw(a b)) {
        $t->wait_for(sub { ($t->proc_log($w) // '') =~ /started: redis/ },
                     10 * $t->slow, "$w started");
    }
    my @ids = map { enqueue('quick') } 1 .. 40;
    my $done = $t->wait_for(sub {
        !grep { !finished(record($_)->{status}) } @ids }, 30, '40 runs');
    ok($done, 'all 40 finished');
    my %by;
    my $success = 0;
    for (@ids) {
        my $rec = record($_);
        $by{ $rec->{worker} }++;
        $success++ if $rec->{status} eq 'success';
    }
    is($success, 40, 'all succeeded');
    ok($by{a} && $by{b}, "each worker ran some (a: "
       . ($by{a} // 0) . ", b: " . ($by{b} // 0) . ")");
    is($t->redis('XLEN', 'am:runs'), 0, 'stream empty');
    stop_worker($_) for qw(a b);
};

subtest 'a worker killed mid-run: another one completes the run once' => sub {
    $t->clear_received;
    $t->start_worker('k1', @FAST, '--visibility-timeout', 2000);
    my $id = enqueue('slow', webhook => $t->receiver_url('/killed'));
    $t->wait_for(sub { (record($id)->{status} // '') eq 'running' }, 10,
                 'run started');
    is(record($id)->{worker}, 'k1', 'k1 runs it');
    $t->kill_proc('k1', 'KILL');
    $t->wait_proc('k1', 5);

    $t->start_worker('k2', @FAST, '--visibility-timeout', 2000);
    my $rec = $t->wait_done('demo', $id, 20);
    is($rec->{status}, 'success', 'completed');
    is($rec->{worker}, 'k2', 'by the other worker');
    is($rec->{attempts}, 2, 'second attempt');
    like($t->proc_log('k2'), qr/execution \Q$id\E reclaimed/, 'k2 says so');
    $t->wait_webhook('demo', $id, 'delivered');
    my %ids = map { $_->{headers}{'webhook-id'} => 1 } @{ $t->received_for($id) };
    is_deeply([ keys %ids ], [ "msg_$id" ], 'exactly one webhook-id');
    is($t->redis('XLEN', 'am:runs'), 0, 'entry deleted');
    is($t->redis('XPENDING', 'am:runs', 'workers')->[0], 0, 'nothing pending');
    stop_worker('k2');
};

subtest 'Redis restarted with runs in flight and queued' => sub {
    automation('second', 'sh', q(sleep 1; echo '{"ok":1}'));
    $t->start_worker('r1', @FAST, '--concurrency', 2);
    my @ids = map { enqueue('second') } 1 .. 5;
    $t->wait_for(sub { grep { (record($_)->{status} // '') eq 'running' } @ids },
                 10, 'runs started');
    $t->stop_redis;
    sleep 1.5;
    $t->start_redis;
    my $done = $t->wait_for(sub {
        !grep { !finished(record($_)->{status}) } @ids }, 30, 'all runs');
    ok($done, 'all finished after Redis came back');
    is(scalar(grep { record($_)->{status} eq 'success' } @ids), 5,
       'all succeeded');
    like($t->proc_log('r1'), qr/reconnecting/, 'the worker saw Redis go');
    ok($t->running('r1'), 'and kept running');
    is($t->redis('XLEN', 'am:runs'), 0, 'stream empty');
    stop_worker('r1');
};

subtest 'SIGTERM with a run in flight: the run completes, exit 0' => sub {
    $t->start_worker('t1', @FAST);
    my $id = enqueue('second');
    $t->wait_for(sub { (record($id)->{status} // '') eq 'running' }, 10,
                 'run started');
    $t->kill_proc('t1', 'TERM');
    is($t->wait_proc('t1', 15), 0, 'exit 0');
    is(record($id)->{status}, 'success', 'the run completed first');
    is($t->redis('XLEN', 'am:runs'), 0, 'and was acknowledged');
};

subtest 'second signal: the run is cancelled and left queued' => sub {
    $t->start_worker('t2', @FAST);
    my $id = enqueue('slow');
    $t->wait_for(sub { (record($id)->{status} // '') eq 'running' }, 10,
                 'run started');
    $t->kill_proc('t2', 'TERM');
    sleep 0.2;
    $t->kill_proc('t2', 'INT');
    is($t->wait_proc('t2', 10), 0, 'exit 0');
    is(record($id)->{status}, 'running', 'not completed');
    is($t->redis('XPENDING', 'am:runs', 'workers')->[0], 1,
       'the entry is still pending');

    $t->start_worker('t3', @FAST, '--visibility-timeout', 1000);
    my $rec = $t->wait_done('demo', $id, 15);
    is($rec->{status}, 'success', 'another worker ran it');
    stop_worker('t3');
};

subtest 'execution_start: a repeated call is not another attempt' => sub {
    my $start = slurp("$ROOT/redis/lib.lua") . "\n"
              . slurp("$ROOT/redis/execution_start.lua");
    my $id = enqueue('quick');
    my $key = "am:{demo}:execution:$id";
    my $call = sub { $t->redis('EVAL', $start, 1, $key, @_) };

    is($call->('wa', 3, '1-1')->[0], 'run', 'first call runs');
    $call->('wa', 3, '1-1');
    is($t->redis('HGET', $key, 'attempts'), 1,
       'the same worker and entry again (a retry after a drop): 1 attempt');
    $call->('wb', 3, '1-1');
    is($t->redis('HGET', $key, 'attempts'), 2, 'another worker: 2 attempts');
    $call->('wc', 3, '1-1');
    is_deeply($call->('wd', 3, '1-1'), [ 'exhausted', 3 ],
              'past --max-attempts: exhausted');
    # no worker runs now: drop the record and its stream entry (the next
    # worker creates the stream and its group again)
    $t->redis('DEL', $key, 'am:runs');
};

subtest 'another runtime; interrupted too often, expired, not an execution' => sub {
    my $tired = enqueue('echo');
    $t->redis('HSET', "am:{demo}:execution:$tired", attempts => 3);
    my $gone = enqueue('echo');
    $t->redis('DEL', "am:{demo}:execution:$gone");
    $t->redis('XADD', 'am:runs', '*', 'project', '../x', 'execution_id', '1');

    automation('perlish', 'perl', q(print '{"lang":"perl"}';));
    my $perl = enqueue('perlish');

    $t->start_worker('x1', @FAST, '--runtime', 'perl:main.pl=/usr/bin/perl {file}');
    is(output($t->wait_done('demo', $perl))->{lang}, 'perl', 'a runtime added by --runtime');
    my $rec = $t->wait_done('demo', $tired);
    is($rec->{status}, 'error', 'a run past --max-attempts fails');
    is($rec->{error}, 'the run was interrupted 3 times', 'and says why');
    ok($t->wait_for(sub { $t->redis('XLEN', 'am:runs') == 0 }, 10),
       'every entry is acknowledged and deleted');
    is($t->redis('EXISTS', "am:{demo}:execution:$gone"), 0,
       'the expired record is not recreated');
    like($t->proc_log('x1'), qr/names no valid execution/,
         'the bad entry is logged');
    stop_worker('x1');
};

# ---------------------------------------------------------------- valgrind

SKIP: {
    skip 'valgrind not installed', 1 unless grep { -x "$_/valgrind" }
        split /:/, $ENV{PATH};

    subtest 'valgrind: no errors, no definite leaks' => sub {
        my $log = $t->dir . '/vg.worker.log';
        $t->spawn(name => 'vg', cmd => [ 'valgrind', '--leak-check=full',
            '--trace-children=no', '--errors-for-leak-kinds=definite',
            '--show-leak-kinds=definite', '--num-callers=30',
            "--log-file=$log", $W, '--redis', $t->redis_addr, '--name', 'vg',
            @FAST ]);
        my @ids = (enqueue('echo', seed => { vg => 1 },
                           webhook => $t->receiver_url('/vg')),
                   enqueue('hello-automation', seed => { message => 'vg' }),
                   enqueue('text'));
        $t->wait_done('demo', $_, 60) for @ids;
        is(record($ids[0])->{status}, 'success', 'run under valgrind');
        $t->wait_webhook('demo', $ids[0], 'delivered', 30);
        $t->kill_proc('vg', 'TERM');
        is($t->wait_proc('vg', 60), 0, 'exit 0');

        my $vg = $t->read_file($log) // '';
        like($vg, qr/ERROR SUMMARY: 0 errors/, 'no errors')
            or diag($vg);
        unlike($vg, qr/definitely lost: [1-9]/, 'no definite leaks')
            or diag($vg);
    };
}

done_testing;
