#!/usr/bin/perl
# Early sandboxes: a small run travels with its stream entry, so the worker
# readies the run's sandbox while execution_start is on its way, and lets
# it run only when execution_start says "run".  What a user sees: the same
# payload either way, and a run that must not run (cancelled while queued,
# out of attempts, its worker killed) never runs anything, although its
# sandbox was made.  "Never runs" is checked with an automation that knocks
# on the test's HTTP receiver as the first thing it does.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);
use JSON::PP;

use AmTest;
use AmTest::Api qw(bearer);

my $t = AmTest->new;

plan skip_all => 'module not built'
    unless -f $t->build . '/ngx_http_automations_module.so';

my $API = '/automations/v1/';
my $SLOW = $t->slow;
my $JSON = JSON::PP->new->utf8->canonical;

$t->start_redis;
$t->ctl('project', 'create', 'demo');
my $KEY = $t->apikey('demo', 'read write run');
$t->start_receiver(status => 200);

$t->write_nginx(http => 'automations_redis %%REDIS%%;',
               server => 'location /automations/v1/ { automations_api; }');
$t->start_nginx;

sub api { $t->api($KEY, @_) }

sub create {
    my ($body) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = api(POST => $API, json => { override_existing => JSON::PP::true,
                                        runtime => 'sh', %$body });
    is($r->{status}, 200, "create $body->{automation_name}") or diag($r->{body});
}

sub run_async {
    my ($name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = api(POST => "$API$name/run", json => $o{json} // { input => [] },
                headers => { Prefer => 'respond-async' });
    is($r->{status}, 202, "run $name: 202") or diag($r->{body});
    return $r->{json}{execution_id};
}

sub record { $t->execution('demo', $_[0]) }

sub finished { ($_[0] // '') =~ /^(?:success|error|timed_out|cancelled)$/ }

sub wait_final {
    my ($id) = @_;
    $t->wait_for(sub { finished(record($id)->{status}) }, 20 * $SLOW,
                 "execution $id finished");
    return record($id);
}

# the stream's entries as { id, fields => { name => value } }
sub entries {
    my $xs = $t->redis('XRANGE', 'am:runs', '-', '+') // [];
    return [ map { { id => $_->[0], fields => { @{ $_->[1] } } } } @$xs ];
}

sub stream_empty {
    $t->wait_for(sub { !($t->redis('XLEN', 'am:runs') // 0) }, 20 * $SLOW,
                 'the stream is empty');
}

sub knocks { scalar grep { $_->{path} eq "/knock/$_[0]" } @{ $t->received } }

# stops the worker until a new entry has reached it, then Redis, so that
# the worker takes the entry but gets no answer to execution_start
sub hold {
    my ($worker, $enqueue) = @_;
    # a run first: the worker has just asked for more entries, so its
    # XREADGROUP BLOCK is far from running out while it is stopped
    is(api(POST => "${API}echo/run", json => { input => [] })->{status}, 200,
       'the worker is taking entries');
    $t->kill_proc($worker, 'STOP');
    my @r = $enqueue->();
    sleep 0.3;
    $t->kill_proc('redis', 'STOP');
    $t->kill_proc($worker, 'CONT');
    ok($t->wait_for(sub { held_pids() >= 1 }, 5 * $SLOW), 'a sandbox is held');
    return @r;
}

# processes of held sandboxes: the cold path's "--gate 1"
sub held_pids {
    my @pids;
    for my $p (glob '/proc/[0-9]*/cmdline') {
        open my $fh, '<', $p or next;
        my $cmd = do { local $/; <$fh> } // '';
        push @pids, $p =~ m{/proc/(\d+)/} if $cmd =~ /\0--gate\x001\0/;
    }
    return @pids;
}

my $port = $t->receiver_port;

# the payload, as output: what the run was given
create({ automation_name => 'echo', code => "cat\n" });

# a knock on the receiver, as the first thing it does (before it reads
# its payload): proof that the code ran
sub knocker {
    my ($name) = @_;
    create({ automation_name => $name, code => <<"SH" });
/usr/bin/python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], data=b"x")' "http://127.0.0.1:$port/knock/$name"
cat >/dev/null
echo '{"knocked": true}'
SH
}
create({ automation_name => 'py', runtime => 'python',
         code => "output = {'ok': True}\n" });
create({ automation_name => 'big', code => ('#' x 9000) . "\ncat\n" });

subtest 'a small run travels with its entry; secrets and big runs do not' => sub {
    my $small = run_async('echo', json => { input => [ { id => 1 } ] });
    my $ddn = run_async('echo', json => { input => [],
        ddn_headers => { 'x-hasura-ddn-token' => 'SECRET-ddn' } });
    my $big = run_async('big');

    my %e = map { $_->{fields}{execution_id} => $_->{fields} } @{ entries() };
    is($e{$small}{code}, "cat\n", 'small: the code is in the entry');
    is($e{$small}{runtime}, 'sh', 'small: the runtime');
    is($e{$small}{automation}, 'echo', 'small: the automation');
    is($e{$small}{input}, '[{"id":1}]', 'small: the input');
    is_deeply([ sort keys %{ $e{$ddn} } ], [ 'execution_id', 'project' ],
              'with ddn_headers: only its name');
    unlike($JSON->encode($e{$ddn}), qr/SECRET/, 'no secret in the stream');
    is_deeply([ sort keys %{ $e{$big} } ], [ 'execution_id', 'project' ],
              'a big run: only its name');

    $t->start_worker('w1');
    for my $id ($small, $ddn, $big) {
        is(wait_final($id)->{status}, 'success', "$id: success");
    }
    is(decode_json(record($ddn)->{output})->{context}{ddn_headers}
           {'x-hasura-ddn-token'}, 'SECRET-ddn', 'the secret reached its run');
    $t->stop_proc('w1');
};

subtest 'an early and a late sandbox give a run the same payload' => sub {
    my %out;
    for my $early (qw(on off)) {
        $t->start_worker("p-$early", '--early-sandbox', $early);
        my $r = api(POST => "${API}echo/run", headers => { 'x-ddn-build-id' => 'b-1' },
                    json => { input => [ { id => 1, s => "\x{e9}" } ] });
        is($r->{status}, 200, "early $early: 200") or diag($r->{body});
        my $o = $r->{json}{output};
        $o->{context}{execution_id} = 'X' if ref $o eq 'HASH';
        $out{$early} = $o;
        $t->stop_proc("p-$early");
    }
    ok(ref $out{on} eq 'HASH' && $out{on}{context}{build_id} eq 'b-1',
       'the payload, with its context');
    is_deeply($out{on}, $out{off}, 'the same payload both ways');
};

subtest 'a run cancelled while its sandbox is held never runs' => sub {
    knocker('k-cancel');
    $t->start_worker('c');
    sleep 0.5 * $SLOW;    # blocked in XREADGROUP
    my ($id) = hold('c', sub {
        my $id = run_async('k-cancel');
        is(api(POST => "${API}k-cancel/executions/$id/cancel")->{status}, 200,
           'cancelled while queued');
        return $id;
    });
    sleep 1;
    is(knocks('k-cancel'), 0, 'held for a second: it ran nothing');
    $t->kill_proc('redis', 'CONT');
    stream_empty();
    like($t->proc_log('c'),
         qr/execution \Q$id\E: execution_start answered done: its readied sandbox is stopped/,
         'execution_start answered done: the sandbox was stopped');
    ok($t->wait_for(sub { !held_pids() }, 5 * $SLOW), 'and is gone');
    is(record($id)->{status}, 'cancelled', 'the run stays cancelled');

    my $ok = run_async('k-cancel');
    is(wait_final($ok)->{status}, 'success', 'a run that may run, runs');
    $t->wait_received(1, 5);
    sleep 0.3;
    is(knocks('k-cancel'), 1, '... and knocks, once');
    $t->stop_proc('c');
};

subtest 'python runs, warm or not, are readied and stopped alike' => sub {
    for my $warm (qw(on off)) {
        my $id = run_async('py');
        is(api(POST => "${API}py/executions/$id/cancel")->{status}, 200,
           'cancelled while queued');
        ok(entries()->[0]{fields}{code}, 'its entry carries the run');
        $t->start_worker('p', '--python-warm', $warm);
        stream_empty();
        like($t->proc_log('p'),
             qr/execution \Q$id\E: execution_start answered done: its readied sandbox is stopped/,
             "python-warm $warm: readied, then stopped");
        is(record($id)->{status}, 'cancelled', 'stays cancelled');
        my $r = api(POST => "${API}py/run", json => { input => [] });
        is($r->{status}, 200, "python-warm $warm: a run") or diag($r->{body});
        is_deeply($r->{json}{output}, { ok => JSON::PP::true },
                  'gets its payload and answers');
        $t->stop_proc('p');
    }
};

subtest 'a run out of attempts is failed without running' => sub {
    knocker('k-tired');
    my $id = run_async('k-tired');
    $t->redis('HSET', "am:{demo}:execution:$id", 'attempts', 2,
              'claim', 'another-worker 1-1');
    $t->start_worker('a', '--max-attempts', 2);
    my $r = wait_final($id);
    is($r->{status}, 'error', 'error');
    like($r->{error} // '', qr/interrupted 2 times/, 'the reason');
    like($t->proc_log('a'), qr/\Q$id\E: execution_start answered exhausted/,
         'its readied sandbox was stopped');
    sleep 0.5;
    is(knocks('k-tired'), 0, 'it never knocked');
    $t->stop_proc('a');
};

# Redis's SLOWLOG keeps every command while $code runs: the arguments of
# each execution_start of execution $id, oldest first, after $code
sub starts_of {
    my ($id, $code) = @_;
    $t->redis('CONFIG', 'SET', 'slowlog-log-slower-than', 0);
    $t->redis('SLOWLOG', 'RESET');
    my @r = $code->();
    $t->redis('CONFIG', 'SET', 'slowlog-log-slower-than', 10000);
    $id = $id->(@r) if ref $id;
    # EVALSHA sha 1 <execution key> worker max-attempts entry held
    my @starts = grep { ($_->[2] // '') eq '1'
                        && ($_->[3] // '') =~ /:execution:\Q$id\E$/ }
        reverse map { $_->[3] } @{ $t->redis('SLOWLOG', 'GET', -1) };
    return (\@starts, @r);
}

subtest 'execution_start leaves a held run\'s code and input in Redis' => sub {
    $t->start_worker('m');
    sleep 0.5 * $SLOW;
    my ($starts, $r) = starts_of(sub { $_[0]{json}{execution_id} // '' },
        sub { api(POST => "${API}echo/run", json => { input => [ { id => 7 } ] }) });
    is($r->{status}, 200, 'a held run') or diag($r->{body});
    is_deeply($r->{json}{output}{input}, [ { id => 7 } ], 'gets its payload');
    is_deeply([ map { $_->[-1] } @$starts ], [ 'held' ],
              'one execution_start, told that the run is held');
    is(record($r->{json}{execution_id})->{attempts}, 1, 'one attempt');
    $t->stop_proc('m');
};

subtest 'a run its worker cannot ready is asked for in full, once' => sub {
    create({ automation_name => 'odd', runtime => 'no-such-runtime',
             code => "cat\n" });
    $t->start_worker('o');
    sleep 0.5 * $SLOW;
    my ($starts, $id, $r) = starts_of(sub { $_[0] }, sub {
        my $id = run_async('odd');
        return ($id, wait_final($id));
    });
    is($r->{status}, 'error', 'error');
    like($r->{error} // '', qr/unknown runtime "no-such-runtime"/,
         'the reason a late sandbox gives');
    # told held, answered "run" alone, then asked in full
    is_deeply([ map { $_->[-1] } @$starts ], [ 'held', '' ],
              'execution_start: held, then in full');
    is($r->{attempts}, 1, 'one attempt, although asked twice');
    stream_empty();
    $t->stop_proc('o');
};

subtest 'a held sandbox runs nothing, and goes with its worker' => sub {
    knocker('k-held');
    $t->start_worker('h', '--visibility-timeout', 2000);
    sleep 0.5 * $SLOW;
    my ($id) = hold('h', sub { run_async('k-held') });
    sleep 1;
    is(knocks('k-held'), 0, 'held for a second: it ran nothing');

    $t->kill_proc('h', 'KILL');
    $t->wait_proc('h', 5);
    ok($t->wait_for(sub { !held_pids() }, 5 * $SLOW),
       'the held sandbox went with its worker');
    $t->kill_proc('redis', 'CONT');
    sleep 0.3;
    is(knocks('k-held'), 0, 'without having run');

    $t->start_worker('h2', '--visibility-timeout', 2000);
    is(wait_final($id)->{status}, 'success', 'another worker ran it');
    $t->wait_received(1, 5);
    sleep 0.3;
    is(knocks('k-held'), 1, 'exactly once');
    $t->stop_proc('h2');
};

ok($t->error_log_clean, 'no alerts or crashes in the error log');

$t->sanitizers_clean;

done_testing;
