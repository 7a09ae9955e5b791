#!/usr/bin/perl
# What a user does with executions after starting them, through nginx with
# a real worker: input held to the automation's input_schema before
# anything is queued, output to its output_schema; listing executions
# (filters, cursor pages, both APIs, other projects); cancelling queued
# and running ones (webhook, synchronous waiter, races with completion);
# retrying from the same snapshot.

use strict;
use warnings;

use Digest::SHA qw(sha1_hex);
use FindBin;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use AmTest;

my $t = AmTest->new;

plan skip_all => 'module, worker or CLI not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl'
        && -x $t->build . '/automations-worker';

my $JSON = JSON::PP->new->utf8->canonical;
my $API = '/automations/v1/';
my $START = '/api/start-automation/';
my $EXEC = qr/^exec_[0-9a-f]{24}$/;
my $SLOW = $t->slow;
my $ROOT = "$FindBin::Bin/..";

$t->start_redis;
$t->ctl('project', 'create', $_) for 'demo', 'other';

my %KEY = (
    demo  => $t->apikey('demo', 'read write run'),
    other => $t->apikey('other', 'read write run'),
);
my %PAIR = map { $_ => $t->tokenpair($_) } 'demo', 'other';

$t->start_receiver(status => 200);

$t->write_nginx(<<'EOF');
load_module %%BUILD%%/ngx_http_automations_module.so;
worker_processes 2;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    automations_redis %%REDIS%%;
    automations_run_wait 10s;

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        location /automations/v1/ {
            automations_api;
        }

        location /api/start-automation/ {
            automations_start_api;
        }
    }
}
EOF
$t->start_nginx;

# one run at a time: a second execution stays queued behind a slow one
$t->start_worker('w1', '--allow-private-webhooks', '--concurrency', '1',
    '--webhook-schedule', '1s', '--visibility-timeout', '5000');

# ---------------------------------------------------------------- helpers

sub api {
    my ($method, $path, %o) = @_;
    my $auth = exists $o{auth} ? delete $o{auth} : $KEY{demo};
    return $t->api($auth, $method, $path, %o);
}

sub start {
    my ($method, $path, %o) = @_;
    my $pair = $PAIR{ delete $o{pair} // 'demo' };
    return $t->tokenpair_request($pair, $method, $path, %o);
}

sub done { ($_[0] // '') =~ /^(?:success|error|timed_out|cancelled)$/ }

sub record { $t->execution($_[1] // 'demo', $_[0]) }

sub wait_final {
    my ($id, $project) = @_;
    $t->wait_for(sub { done(record($id, $project)->{status}) },
                 20 * $SLOW, "execution $id finished");
    return record($id, $project);
}

sub create {
    my ($body) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = api(POST => $API, json => { override_existing => JSON::PP::true,
                                        runtime => 'sh', %$body });
    is($r->{status}, 200, "create $body->{automation_name}")
        or diag($r->{body});
}

# an async run through the Automations API; the execution id
sub run_async {
    my ($name, %o) = @_;
    my $r = api(POST => "$API$name/run", json => $o{json} // {},
                headers => { Prefer => 'respond-async' });
    is($r->{status}, 202, "run $name: 202") or diag($r->{body});
    return $r->{json}{execution_id};
}

sub stream_len { $t->redis('XLEN', 'am:runs') // 0 }

# every run done with and every webhook delivered: the worker changes no
# more keys (a cancelled run's stream entry goes after its webhook)
sub settle {
    $t->wait_for(sub { !$t->redis('ZCARD', 'am:webhooks') && !stream_len() },
                 10 * $SLOW, 'the runs and webhooks settled');
}

sub exec_count { scalar @{ $t->redis('KEYS', 'am:{*}:execution:exec_*') } }

# sh automations: the payload on stdin, the output on stdout
my $ECHO = qq(cat >/dev/null; echo '{"ok":true}'\n);
my $SLEEP30 = qq(cat >/dev/null; sleep 30; echo '{"slept":true}'\n);

# ---------------------------------------------------------------- schemas

# the worker has made its stream and group: Redis changes no more on its own
$t->wait_for(sub { $t->redis('EXISTS', 'am:runs') }, 10 * $SLOW, 'the stream');

subtest 'schemas are checked at create' => sub {
    my $before = $t->redis_snapshot;

    for my $case (
        [ 'a type that is no type', { type => 'banana' }, qr/type/ ],
        [ 'a pattern that is no regex', { pattern => '([a-' }, qr/pattern/ ],
        [ 'minLength negative', { minLength => -1 }, qr/minLength/ ],
        [ '$ref to another document',
          { '$ref' => 'http://example.com/s.json' }, qr/unsupported/ ],
    ) {
        my ($what, $schema, $re) = @$case;
        for my $field (qw(input_schema output_schema)) {
            my $r = api(POST => $API, json => { automation_name => 'bad',
                code => 'x', $field => $schema });
            is($r->{status}, 422, "$field, $what: 422");
            like($r->{json}{detail} // '',
                 qr/^\Q$field\E is not a usable JSON Schema/,
                 "$field, $what: says which field");
            like($r->{json}{detail} // '', $re, "$field, $what: says why");
        }
    }

    is($t->redis_snapshot, $before, 'nothing stored');
};

my $IN = { type => 'object', required => ['id'],
           properties => { id => { type => 'integer' },
                           email => { type => 'string',
                                      pattern => '^[^@]+@[^@]+$' } } };

subtest 'input is validated before anything is queued' => sub {
    create({ automation_name => 'typed', code => $ECHO,
             input_schema => $IN });

    my ($len, $n) = (stream_len(), exec_count());

    # the first request of this schema in an nginx worker, and later ones
    for my $try (1 .. 4) {
        my $r = api(POST => "${API}typed/run",
            json => { input => [ { id => 1 }, { id => 'two' } ] });
        is($r->{status}, 422, "wrong type, try $try: 422");
        is($r->{json}{detail},
           q(The input does not match the automation's input_schema: )
           . q(/input/1/id fails "type"), "try $try: pointer and keyword");
    }

    my $r = api(POST => "${API}typed/run",
        json => { input => [ { id => 1, email => 'nobody' } ] });
    like($r->{json}{detail} // '', qr{/input/0/email fails "pattern"},
         'pattern: pointer and keyword');

    $r = api(POST => "${API}typed/run", json => { input => [ {} ] });
    like($r->{json}{detail} // '', qr{/input/0 fails "required"},
         'required: pointer of the object');

    is(stream_len(), $len, 'nothing queued');
    is(exec_count(), $n, 'no execution recorded');

    $r = api(POST => "${API}typed/run",
        json => { input => [ { id => 1, email => 'a@b.c' }, { id => 2 } ] });
    is($r->{status}, 200, 'valid rows: run') or diag($r->{body});
    is($r->{json}{status}, 'success', 'and it succeeded');

    $r = api(POST => "${API}typed/run", json => {});
    is($r->{status}, 200, 'no input: no rows to refuse');

    # compiled once per nginx worker, not per request: 20 async runs call
    # the enqueue script 20 times, plus at most once more per nginx worker
    # that had not seen this schema yet (MONITOR counts the calls)
    my $sha = sha1_hex($t->script('execution_enqueue'));
    my $mon = IO::Socket::INET->new(PeerAddr => $t->redis_addr)
        or die "monitor: $!";
    print $mon "MONITOR\r\n";
    <$mon>;    # +OK
    for (1 .. 20) {
        $r = api(POST => "${API}typed/run", json => { input => [ { id => 1 } ] },
                 headers => { Prefer => 'respond-async' });
        $r->{status} == 202 or diag($r->{body});
    }
    # the workers' commands go on: read for one second, then stop
    my ($seen, $sel, $end) = ('', IO::Select->new($mon), time + 1);
    while ((my $left = $end - time) > 0) {
        last unless $sel->can_read($left);
        sysread($mon, $seen, 65536, length $seen) or last;
    }
    close $mon;
    my $spent = () = $seen =~ /"EVALSHA" "$sha"/g;
    ok($spent >= 20 && $spent <= 22,
       "20 validated runs: $spent enqueue calls (the schema is cached)");
};

subtest 'a changed input_schema applies at once' => sub {
    my $r = api(POST => "${API}typed/run", json => { input => [ { id => 7 } ] });
    is($r->{status}, 200, 'id 7 fits the first schema');

    create({ automation_name => 'typed', code => $ECHO,
             input_schema => { type => 'object',
                 properties => { id => { type => 'string' } } } });

    # both nginx workers held the first schema: neither uses it any more
    for my $try (1 .. 4) {
        $r = api(POST => "${API}typed/run", json => { input => [ { id => 7 } ] });
        is($r->{status}, 422, "after the change, try $try: 422");
    }

    create({ automation_name => 'typed', code => $ECHO });
    $r = api(POST => "${API}typed/run", json => { input => [ { id => 7 } ] });
    is($r->{status}, 200, 'schema removed: anything goes');
};

subtest 'the start API validates the seed' => sub {
    create({ automation_name => 'seeded', code => $ECHO,
             input_schema => { type => 'object', required => ['message'] } });

    my $r = start(POST => "${START}demo/seeded", json => { seed => {} });
    is($r->{status}, 422, 'seed without message: 422') or diag($r->{body});
    like($r->{json}{detail} // '', qr{: /seed fails "required"$},
         'the pointer is in the body');

    $r = start(POST => "${START}demo/seeded", json => {});
    like($r->{json}{detail} // '', qr{: /seed fails "type"$},
         'no seed is null, not an object');

    $r = start(POST => "${START}demo/seeded",
        json => { seed => { message => 'hi' } });
    is($r->{status}, 202, 'valid seed: started');
    is(wait_final($r->{json}{execution_id})->{status}, 'success', 'it ran');
};

subtest 'output is validated by the worker' => sub {
    my $OUT = { type => 'object', required => ['ok'],
                properties => { ok => { const => JSON::PP::true } } };

    create({ automation_name => 'liar', output_schema => $OUT,
             code => qq(cat >/dev/null; echo '{"ok":false}'\n) });
    my $r = api(POST => "${API}liar/run", json => {});
    is($r->{status}, 422, 'output off its schema: the run failed');
    is($r->{json}{status}, 'error', 'status error');
    is($r->{json}{error}, q(the output does not match the automation's )
       . q(output_schema: "/ok" fails "const"), 'pointer and keyword');
    is(record($r->{json}{execution_id})->{status}, 'error', 'redis: error');

    create({ automation_name => 'honest', output_schema => $OUT,
             code => $ECHO });
    $r = api(POST => "${API}honest/run", json => {});
    is($r->{status}, 200, 'matching output: 200') or diag($r->{body});
    is_deeply($r->{json}{output}, { ok => JSON::PP::true }, 'the output');
};

# ---------------------------------------------------------------- lists

subtest 'list one automation, newest first, in pages' => sub {
    create({ automation_name => 'lister', code => $ECHO });
    my @ids = map { run_async('lister') } 1 .. 5;
    wait_final($_) for @ids;

    my $r = api(GET => "${API}lister/executions");
    is($r->{status}, 200, 'list: 200') or diag($r->{body});
    my @got = map { $_->{execution_id} } @{ $r->{json}{executions} || [] };
    is_deeply(\@got, [ reverse @ids ], 'newest first, all five');
    is($r->{json}{next_cursor}, undef, 'no next page');

    my $item = $r->{json}{executions}[0] || {};
    ok(!exists $item->{output} && !exists $item->{log},
       'items have no output nor log');
    is_deeply([ @$item{qw(project automation status)} ],
              [ 'demo', 'lister', 'success' ], 'item: the status record');

    my @paged;
    my $cursor;
    my $pages = 0;
    do {
        $r = api(GET => "${API}lister/executions?limit=2"
                 . (defined $cursor ? "&cursor=$cursor" : ''));
        is($r->{status}, 200, "page $pages: 200");
        ok(@{ $r->{json}{executions} } <= 2, "page $pages: at most 2");
        push @paged, map { $_->{execution_id} } @{ $r->{json}{executions} };
        $cursor = $r->{json}{next_cursor};
    } while (defined $cursor && ++$pages < 10);
    is_deeply(\@paged, [ reverse @ids ], 'the pages, together: all of them');

    is($t->redis('ZCARD', 'am:{demo}:executions:lister'), 5,
       'redis: the automation index');
    ok($t->redis('TTL', 'am:{demo}:executions:lister') > 0,
       'redis: the index expires');
};

subtest 'list filters: status and time' => sub {
    my $r = api(GET => "${API}executions?status=error&limit=100");
    is($r->{status}, 200, 'project-wide, status=error: 200');
    my @st = map { $_->{status} } @{ $r->{json}{executions} };
    ok(@st >= 1, 'some failed (liar)');
    is(scalar(grep { $_ ne 'error' } @st), 0, 'only errors');

    $r = api(GET => "${API}executions?limit=100");
    my %autos = map { $_->{automation} => 1 } @{ $r->{json}{executions} };
    ok($autos{lister} && $autos{liar} && $autos{typed},
       'project-wide: every automation');

    my $future = int(time) + 3600;
    $r = api(GET => "${API}lister/executions?since=$future");
    is_deeply($r->{json}{executions}, [], 'since in the future: none');

    $r = api(GET => "${API}lister/executions?until=2000-01-01T00:00:00Z");
    is_deeply($r->{json}{executions}, [], 'until 2000: none');

    $r = api(GET => "${API}lister/executions?since=2000-01-01T00:00:00%2B02:00");
    is(scalar @{ $r->{json}{executions} }, 5, 'since 2000 (+02:00): all');

    $r = start(GET => "${START}demo/lister/executions?limit=1");
    is($r->{status}, 200, 'start API, one automation: 200')
        or diag($r->{body});
    is(scalar @{ $r->{json}{executions} }, 1, 'start API: limit 1');
    ok(defined $r->{json}{next_cursor}, 'start API: next_cursor');

    $r = start(GET => "${START}demo/executions");
    is($r->{status}, 200, 'start API, project-wide: 200');
};

subtest 'hostile list requests' => sub {
    my $before = $t->redis_snapshot;

    for my $q ('limit=0', 'limit=101', 'limit=abc', 'limit=-1', 'limit=',
               'cursor=abc', 'cursor=123-exec_zz', 'cursor=-exec_'
               . ('0' x 24), 'cursor=' . ('9' x 20) . '-exec_' . ('0' x 24),
               'cursor=%00', 'status=finished', 'status=', 'since=yesterday',
               'until=2026-13-01T00:00:00Z', 'since=' . ('9' x 30)) {
        my $r = api(GET => "${API}lister/executions?$q");
        is($r->{status}, 400, "$q: 400");
        ok(defined $r->{json}{detail}, "$q: JSON detail");
    }

    my $r = api(GET => "${API}lister/executions?cursor=1-exec_"
                . ('0' x 24));
    is($r->{status}, 200, 'a well-formed cursor from nowhere: 200');
    is_deeply($r->{json}{executions}, [], 'and an empty page');

    $r = api(GET => "${API}lister/executions", auth => $KEY{other});
    is($r->{status}, 404, "another project's automation: 404");
    is($r->{json}{detail}, q(Automation 'lister' not found), 'not found');

    $r = api(GET => "${API}nosuch/executions");
    is($r->{status}, 404, 'no such automation: 404');

    $r = api(GET => "${API}executions", auth => $KEY{other});
    is($r->{status}, 200, 'the other project lists its own');
    is_deeply($r->{json}{executions}, [], 'which are none');

    $r = start(GET => "${START}demo/lister/executions", pair => 'other');
    ok($r->{status} == 403 || $r->{status} == 401,
       "start API, another project's pair: refused ($r->{status})");

    is($t->redis_snapshot, $before, 'nothing changed');
};

subtest 'the indexes are trimmed with the retention' => sub {
    $t->redis('ZADD', 'am:{demo}:executions', 1, 'exec_' . ('a' x 24));
    $t->redis('ZADD', 'am:{demo}:executions:lister', 1, 'exec_' . ('a' x 24));
    my $id = run_async('lister');
    is($t->redis('ZSCORE', 'am:{demo}:executions', 'exec_' . ('a' x 24)),
       undef, 'project index: an entry older than the retention is gone');
    is($t->redis('ZSCORE', 'am:{demo}:executions:lister',
                 'exec_' . ('a' x 24)), undef, 'automation index: too');
    ok(defined $t->redis('ZSCORE', 'am:{demo}:executions', $id),
       'the new one is in');
    wait_final($id);
};

# ---------------------------------------------------------------- cancel

create({ automation_name => 'sleeper', code => $SLEEP30,
         webhook => $t->receiver_url('/cancelled') });

subtest 'cancel a running and a queued execution' => sub {
    my $running = run_async('sleeper');
    $t->wait_for(sub { (record($running)->{status} // '') eq 'running' },
                 10 * $SLOW, 'running');
    my $queued = run_async('sleeper');
    sleep 0.5;
    is(record($queued)->{status}, 'queued', 'the second one waits');

    my $r = api(POST => "${API}sleeper/executions/$queued/cancel");
    is($r->{status}, 200, 'cancel queued: 200') or diag($r->{body});
    is($r->{json}{status}, 'cancelled', 'cancelled');

    my $t0 = time;
    $r = api(POST => "${API}sleeper/executions/$running/cancel");
    is($r->{status}, 200, 'cancel running: 200');
    is($r->{json}{status}, 'cancelled', 'cancelled at once');

    # the slot is free again once the run is killed
    my $next = run_async('lister');
    wait_final($next);
    my $took = time - $t0;
    # killed, not left to sleep its 30 s: the bound leaves a busy machine
    # its time to start the next run
    ok($took < 10 * $SLOW, sprintf('the run was killed: the next ran '
       . 'within %.2f s of the cancel', $took));
    like($t->proc_log('w1'), qr/execution \Q$running\E cancelled: killing/,
         'the worker killed it');

    my $q = record($queued);
    is($q->{status}, 'cancelled', 'queued: stays cancelled');
    ok(!$q->{started_at}, 'queued: never started');
    is(record($running)->{status}, 'cancelled', 'running: ends cancelled');
    is(record($running)->{log} // '', '', 'its later completion changed nothing');

    my $hooks = $t->wait_received(2, 10 * $SLOW);
    my %st = map { ($_->{json}{execution_id} // '') => $_->{json}{status} }
             @$hooks;
    is($st{$running}, 'cancelled', 'webhook of the running one: cancelled');
    is($st{$queued}, 'cancelled', 'webhook of the queued one: cancelled');

    $r = api(POST => "${API}sleeper/executions/$running/cancel");
    is($r->{status}, 409, 'cancel again: 409');
    $r = api(POST => "${API}lister/executions/$next/cancel");
    is($r->{status}, 409, 'cancel a success: 409');
    like($r->{json}{detail} // '', qr/already finished: success/, 'says so');

    $r = api(GET => "${API}sleeper/executions/$running");
    is($r->{json}{status}, 'cancelled', 'status endpoint: cancelled');
};

subtest 'a synchronous waiter gets the cancelled result' => sub {
    my $s = $t->open_request(POST => "${API}sleeper/run",
        headers => { Authorization => "Bearer $KEY{demo}",
                     'Content-Type' => 'application/json' },
        body => '{}');
    my $id;
    $t->wait_for(sub {
        ($id) = grep { (record($_)->{status} // '') eq 'running' }
            map { s/.*://r } grep { !/:secret$/ }
            @{ $t->redis('KEYS', 'am:{demo}:execution:exec_*') };
        return defined $id;
    }, 10 * $SLOW, 'the sync run is running');

    my $r = api(POST => "${API}sleeper/executions/$id/cancel");
    is($r->{status}, 200, 'cancel: 200');

    my $res = $t->read_response($s, 5 * $SLOW);
    is($res->{status}, 422, 'the waiter: 422 at once');
    my $j = eval { $JSON->decode($res->{body}) } || {};
    is($j->{status}, 'cancelled', 'the waiter: status cancelled');
    is($j->{execution_id}, $id, 'the waiter: its execution');
};

subtest 'hostile cancels' => sub {
    my $id = run_async('lister');
    wait_final($id);
    settle();
    my $before = $t->redis_snapshot;

    my $r = api(POST => "${API}lister/executions/$id/cancel",
                auth => $KEY{other});
    is($r->{status}, 404, "another project's execution: 404");
    is($r->{json}{detail}, 'Execution not found', 'not found');

    $r = api(POST => "${API}sleeper/executions/$id/cancel");
    is($r->{status}, 404, 'under another automation name: 404');

    $r = api(POST => "${API}lister/executions/exec_nothex/cancel");
    is($r->{status}, 404, 'a malformed id: 404');

    $r = api(GET => "${API}lister/executions/$id/cancel");
    is($r->{status}, 405, 'GET: 405');

    $r = start(POST => "${START}demo/lister/executions/$id/cancel",
               pair => 'other');
    ok($r->{status} == 403 || $r->{status} == 401,
       "start API, another project's pair: refused ($r->{status})");

    is($t->redis_snapshot, $before, 'nothing changed');
};

subtest 'cancel races completion: exactly one wins' => sub {
    create({ automation_name => 'quick',
             code => qq(cat >/dev/null; sleep 0.3; echo '{"done":1}'\n) });

    my %seen;
    for my $i (1 .. 8) {
        my $id = run_async('quick');
        $t->wait_for(sub { (record($id)->{status} // '') eq 'running' },
                     10 * $SLOW, 'running');
        sleep 0.25 + 0.02 * $i;    # around the moment it finishes
        my $r = api(POST => "${API}quick/executions/$id/cancel");
        my $final = wait_final($id);

        if ($r->{status} == 200) {
            is($final->{status}, 'cancelled', "race $i: cancel won");
            ok(!$final->{output}, "race $i: no output stored");
        } else {
            is($r->{status}, 409, "race $i: completion won, cancel 409");
            is($final->{status}, 'success', "race $i: success kept");
        }
        $seen{ $r->{status} }++;
    }
    diag('cancel won ' . ($seen{200} // 0) . ', completion won '
         . ($seen{409} // 0));
};

# ---------------------------------------------------------------- retry

subtest 'retry from the same snapshot' => sub {
    create({ automation_name => 'echoseed',
             code => qq(cat\n) });
    my $r = start(POST => "${START}demo/echoseed",
                  json => { seed => { n => 42 } });
    is($r->{status}, 202, 'started');
    my $first = $r->{json}{execution_id};
    is(wait_final($first)->{status}, 'success', 'first run: success');

    # the automation changes: the retry runs the snapshot, not this
    create({ automation_name => 'echoseed', code => qq(echo '{"new":1}'\n) });

    $r = start(POST => "${START}demo/echoseed/executions/$first/retry");
    is($r->{status}, 202, 'retry: 202') or diag($r->{body});
    my $second = $r->{json}{execution_id};
    like($second, $EXEC, 'a new execution id');
    isnt($second, $first, 'not the same');
    is($r->{json}{retry_of}, $first, 'says what it retries');

    my $rec = wait_final($second);
    is($rec->{status}, 'success', 'retry: success');
    my $out = eval { $JSON->decode($rec->{output}) } || {};
    is_deeply($out->{seed}, { n => 42 }, 'the same seed');
    is($rec->{code}, qq(cat\n), 'the same code');
    is($rec->{retry_of}, $first, 'redis: retry_of');
    is(record($first)->{retried_by}, $second, 'redis: retried_by');

    my $g = api(GET => "${API}echoseed/executions/$second")->{json};
    is($g->{retry_of}, $first, 'status: retry_of');
    $g = api(GET => "${API}echoseed/executions/$first")->{json};
    is($g->{retried_by}, $second, 'status: retried_by');

    my $l = api(GET => "${API}echoseed/executions")->{json}{executions};
    is($l->[0]{execution_id}, $second, 'listed first');

    # the network too: a retry of an offline run is offline
    create({ automation_name => 'offline', network => 'none',
             code => qq(grep -c : /proc/net/dev\n) });
    my $off = run_async('offline');
    is(wait_final($off)->{output}, '1', 'network none: only lo');
    create({ automation_name => 'offline', code => qq(echo online\n) });
    $r = api(POST => "${API}offline/executions/$off/retry");
    is($r->{status}, 202, 'retry of the offline run: 202');
    my $again = $r->{json}{execution_id};
    is(record($again)->{network}, 'none', 'redis: network none');
    is(wait_final($again)->{output}, '1', 'and it runs with only lo');

    my $running = run_async('sleeper');
    $r = api(POST => "${API}sleeper/executions/$running/retry");
    is($r->{status}, 409, 'retry an unfinished one: 409');
    api(POST => "${API}sleeper/executions/$running/cancel");
    settle();

    my $before = $t->redis_snapshot;
    $r = api(POST => "${API}echoseed/executions/$first/retry",
             auth => $KEY{other});
    is($r->{status}, 404, "another project's execution: 404");
    is($t->redis_snapshot, $before, 'nothing changed');
};

# ---------------------------------------------------------------- progress

subtest 'a running execution shows its last progress' => sub {
    create({ automation_name => 'pyprogress', runtime => 'python',
             code => <<'PY' });
from datallog import core_task, progress
import time

@core_task
def work(seed):
    progress(0.1, "starting")
    time.sleep(0.3)
    progress(0.5, "halfway\nthere")
    time.sleep(30)
    return {}
PY
    create({ automation_name => 'shprogress', code =>
        qq(cat >/dev/null; echo "0.25 a quarter" > .progress; sleep 30\n) });
    create({ automation_name => 'badprogress', code =>
        qq(cat >/dev/null; ln -s /etc/hostname .progress; sleep 1;)
        . qq( rm .progress; echo 7 > .progress; sleep 30\n) });

    for my $case ([ 'pyprogress', 0.5, 'halfway there' ],
                  [ 'shprogress', 0.25, 'a quarter' ]) {
        my ($name, $fraction, $message) = @$case;
        my $id = run_async($name);
        my $g;
        $t->wait_for(sub {
            $g = api(GET => "$API$name/executions/$id")->{json};
            return ($g->{progress}{message} // '') eq $message;
        }, 10 * $SLOW, "$name: progress");
        is($g->{status}, 'running', "$name: running");
        is_deeply($g->{progress}, { fraction => $fraction,
                                    message => $message },
                  "$name: the last progress");
        my $l = api(GET => "$API$name/executions")->{json}{executions}[0];
        is_deeply($l->{progress}, $g->{progress}, "$name: listed too");
        is(api(POST => "$API$name/executions/$id/cancel")->{status}, 200,
           "$name: cancelled");
        is_deeply(api(GET => "$API$name/executions/$id")->{json}{progress},
                  $g->{progress}, "$name: kept once cancelled");
    }

    my $id = run_async('badprogress');
    $t->wait_for(sub { (record($id)->{status} // '') eq 'running' },
                 10 * $SLOW, 'running');
    sleep 2;
    my $rec = record($id);
    ok(!exists $rec->{progress_fraction},
       'a symbolic link, a fraction over 1: nothing recorded');
    api(POST => "${API}badprogress/executions/$id/cancel");
};

# ---------------------------------------------------------------- CLI

subtest 'automationsctl execution list, cancel, retry' => sub {
    my $out = $t->ctl('execution', 'list', 'demo', '--automation', 'lister',
                      '--limit', '2');
    my @lines = split /\n/, $out;
    is(scalar @lines, 4, 'list: header, two executions, the next cursor');
    is(shift @lines, 'EXECUTION_ID AUTOMATION STATUS CREATED_AT',
       'list: the header line');
    like($lines[0], qr/^exec_[0-9a-f]{24} lister success \d{4}-\d\d-\d\dT/,
         'list: id, automation, status, created_at');
    my ($cursor) = ($lines[2] // '') =~ /^next (\S+)$/;
    ok(defined $cursor, 'list: next cursor');

    my $next = $t->ctl('execution', 'list', 'demo', '--automation', 'lister',
                       '--limit', '2', '--cursor', $cursor);
    my ($a) = $lines[0] =~ /^(\S+)/;
    my ($b) = $next =~ /^exec_\S+/m ? $next =~ /^(exec_\S+)/m : ();
    isnt($b, $a, 'list --cursor: the next page');

    my $errs = $t->ctl('execution', 'list', 'demo', '--status', 'error');
    unlike($errs, qr/ (?!error)\w+ \d{4}-/, '--status error: only errors');

    my $id = run_async('sleeper');
    $t->wait_for(sub { (record($id)->{status} // '') eq 'running' },
                 10 * $SLOW, 'running');
    is($t->ctl('execution', 'cancel', 'demo', $id),
       "execution $id cancelled\n", 'cancel');
    is(record($id)->{status}, 'cancelled', 'cancelled in Redis');

    my ($code, undef, $err) = $t->ctl('execution', 'cancel', 'demo', $id);
    is($code, 1, 'cancel again: fails');
    like($err, qr/already finished: cancelled/, 'and says why');

    ($code, undef, $err) = $t->ctl('execution', 'cancel', 'other', $id);
    is($code, 1, 'another project: fails');
    like($err, qr/Execution not found/, 'not found');

    ($code, undef, $err) = $t->ctl('execution', 'cancel', 'demo', 'exec_x');
    is($code, 2, 'a malformed id: usage error');

    ($code, undef, $err) = $t->ctl('execution', 'list', 'demo', '--cursor',
                                   'nonsense');
    is($code, 1, 'a bad cursor: fails');
    like($err, qr/Invalid cursor/, 'and says so');

    my $new = $t->ctl('execution', 'retry', 'demo', $id);
    chomp $new;
    like($new, $EXEC, 'retry: the new id');
    is(record($new)->{retry_of}, $id, 'retry: linked');
    is($t->ctl('execution', 'cancel', 'demo', $new),
       "execution $new cancelled\n", 'and cancel it');
};

$t->stop_nginx;
$t->error_log_clean;

$t->sanitizers_clean;

done_testing;
