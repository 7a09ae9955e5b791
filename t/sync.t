#!/usr/bin/perl
# Synchronous runs answered from their completion: a small result travels
# in the completion message and the waiting request answers from it, with
# the very bytes a read back of the record gives; a result over the bound
# is announced by id only and still comes back whole; a request whose
# completion is published while nginx's subscription is down still gets
# its result once the subscription is back.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use AmTest;
use AmTest::Api;
use AmTest::Redis;

my $t = AmTest->new;
my $W = $ENV{AM_WORKER} // $t->build . '/automations-worker';

plan skip_all => 'module, worker or CLI not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl' && -x $W;

my $JSON = JSON::PP->new->utf8->canonical;
my $API = '/automations/v1/';
my $SLOW = $t->slow;

# the bound of redis/execution_complete.lua (PUBLISH_MAX)
my $PUBLISH_MAX = 16384;

$t->start_redis;
$t->ctl('project', 'create', 'demo');
my $KEY = $t->apikey('demo', 'read write run');

$t->write_nginx(<<'EOF');
load_module %%BUILD%%/ngx_http_automations_module.so;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    automations_redis %%REDIS%%;
    automations_run_wait 20s;

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        location /automations/v1/ {
            automations_api;
        }
    }
}
EOF
$t->start_nginx;
$t->start_worker('w1');

sub api {
    my ($method, $path, %o) = @_;
    return $t->api($KEY, $method, $path, %o);
}

sub create {
    my ($name, $code) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = api(POST => $API, json => { automation_name => $name,
                                        runtime => 'sh', code => $code });
    is($r->{status}, 200, "create $name") or diag($r->{body});
}

# A connection subscribed to every completions channel (the shared one and
# those of nginx's worker processes); next() is the next message, and
# $CHANNEL the channel it came on.
my $CHANNEL;

sub subscriber {
    my (%o) = @_;
    my $s = AmTest::Redis->new(port => $t->redis_port,
                               timeout => ($o{timeout} // 20) * $SLOW);
    $s->command('PSUBSCRIBE', 'am:completions*');
    return sub {
        my $m = eval { $s->_read_reply };
        return undef unless ref $m eq 'ARRAY' && $m->[0] eq 'pmessage';
        $CHANNEL = $m->[2];
        return $m->[3];
    };
}

# A connection that sees every command Redis runs (MONITOR): seen() is
# what ran since, up to a marker sent once the request has its answer.
sub monitor {
    my $m = AmTest::Redis->new(port => $t->redis_port, timeout => 20 * $SLOW);
    $m->command('MONITOR');
    return sub {
        my $mark = 'sync-t-mark-' . rand;
        $t->redis('ECHO', $mark);
        my @seen;
        while (defined(my $l = $m->_read_reply)) {
            last if index($l, $mark) >= 0;
            push @seen, $l;
        }
        $m->disconnect;
        return \@seen;
    };
}

# Whether nginx read execution $id's result back (execution_result: one
# key, the execution, and no argument) among the commands seen.
sub read_back {
    my ($seen, $id) = @_;
    return scalar grep {
        /"evalsha" "[0-9a-f]{40}" "1" "am:\{demo\}:execution:\Q$id\E"$/i
    } @$seen;
}

# The completion message of execution $id among the next ones.
sub message_of {
    my ($next, $id) = @_;
    for (1 .. 50) {
        my $m = $next->() // return undef;
        return $m if $m =~ m{^demo/\Q$id\E(?:\n|$)};
    }
    return undef;
}

# The ids of the completions heard until the one of execution $id.
sub heard_until {
    my ($next, $id) = @_;
    my @ids;
    for (1 .. 50) {
        my $m = $next->() // last;
        my ($heard) = $m =~ m{^demo/(exec_[0-9a-f]+)} or next;
        push @ids, $heard;
        last if $heard eq $id;
    }
    return @ids;
}

sub record { return $t->execution('demo', $_[0]) }

create('small', q(echo '{"greeting": "hello", "n": 42}'));
create('fails', q(echo 'no luck' >&2; exit 3));

subtest 'a small result comes with the completion, as a read back has it'
    => sub {
    my $next = subscriber();
    my $seen = monitor();
    my $r = api(POST => "${API}small/run", json => { input => [] },
                headers => { 'Idempotency-Key' => 'small-1' });
    my $id0 = $r->{json}{execution_id} // '';
    is(read_back($seen->(), $id0), 0,
       'nginx answered without reading the result back');
    is($r->{status}, 200, 'status 200') or diag($r->{body});
    my $id = $r->{json}{execution_id} // '';
    is_deeply($r->{json}{output}, { greeting => 'hello', n => 42 },
              'the output');

    is(message_of($next, $id), "demo/$id\n200\n$r->{body}",
       'the message carried the status and this very body');
    like($CHANNEL, qr/^am:completions:[0-9a-f]{16}$/,
         "on the channel of nginx's worker process, not the shared one");
    is(record($id)->{notify}, $CHANNEL, 'the one the record names');

    # the same Idempotency-Key and request: the finished execution is
    # read back (execution_result.lua) instead of waited for
    my $again = api(POST => "${API}small/run", json => { input => [] },
                    headers => { 'Idempotency-Key' => 'small-1' });
    is($again->{status}, 200, 'read back: 200');
    is($again->{body}, $r->{body}, 'read back: the same bytes');

    my $s = api(GET => "${API}small/executions/$id");
    is($s->{status}, 200, 'GET status: 200');
    is_deeply([ @{ $s->{json} }{qw(execution_id status output
                                   execution_time_ms)} ],
              [ @{ $r->{json} }{qw(execution_id status output
                                   execution_time_ms)} ],
              'GET status: the same execution, output and time');
};

subtest 'a failed run comes with its completion too: 422 and its error'
    => sub {
    my $next = subscriber();
    my $r = api(POST => "${API}fails/run", json => { input => [] },
                headers => { 'Idempotency-Key' => 'fails-1' });
    is($r->{status}, 422, 'status 422') or diag($r->{body});
    my $id = $r->{json}{execution_id} // '';
    like($r->{json}{error} // '', qr/exited with status 3: no luck/,
         'the error');
    is(message_of($next, $id), "demo/$id\n422\n$r->{body}",
       'the message carried it');

    my $again = api(POST => "${API}fails/run", json => { input => [] },
                    headers => { 'Idempotency-Key' => 'fails-1' });
    is($again->{status}, 422, 'read back: 422');
    is($again->{body}, $r->{body}, 'read back: the same bytes');
};

subtest 'a result over the bound is announced by id and comes back whole'
    => sub {
    my $n = $PUBLISH_MAX + 1000;
    create('large', qq(printf '{"text": "'; head -c $n /dev/zero | tr '\\0' x;)
                  . q( printf '"}'));
    my $next = subscriber();
    my $seen = monitor();
    my $r = api(POST => "${API}large/run", json => { input => [] });
    my $lines = $seen->();
    is(read_back($lines, $r->{json}{execution_id} // ''), 1,
       'nginx read it back, once (the check above can see it)')
        or diag(join "\n", grep { /evalsha/i } @$lines);
    is($r->{status}, 200, 'status 200') or diag(substr($r->{body}, 0, 300));
    my $id = $r->{json}{execution_id} // '';
    is(length($r->{json}{output}{text} // ''), $n, "all $n bytes of it");
    is(message_of($next, $id), "demo/$id", 'the message: its id only');
};

subtest 'an asynchronous run publishes no completion' => sub {
    my $next = subscriber();
    my $r = api(POST => "${API}small/run", json => { input => [] },
                headers => { Prefer => 'respond-async' });
    is($r->{status}, 202, 'accepted') or diag($r->{body});
    my $async = $r->{json}{execution_id} // '';
    is(record($async)->{notify}, '', 'the record names no channel');
    $t->wait_for(sub { (record($async)->{status} // '') eq 'success' },
                 10 * $SLOW, 'the async run done');

    # a synchronous run after it: its completion is the first one heard
    my $sync = api(POST => "${API}small/run", json => { input => [] });
    my $id = $sync->{json}{execution_id} // '';
    is_deeply([ heard_until($next, $id) ], [ $id ],
              'only the synchronous one was published');
};

subtest 'a repeated request adds its channel; a record without one: shared'
    => sub {
    # two gateways' workers ask for the same run (the same idempotency
    # key and request) while it runs: each gets the completion
    create('pause', q(sleep 1; echo '{}'));
    my $next = subscriber();
    my $id = 'exec_' . ('b' x 24);
    my @chan = map { 'am:completions:' . ($_ x 16) } qw(1 2);
    my $enqueue = sub {
        my ($chan) = @_;
        return $t->redis('EVAL', $t->script('execution_enqueue'), 2,
            'am:{demo}:project', 'am:runs', 'am:{demo}:', 'demo', 'pause',
            $id, 'run', 3600, 'repeat-key', 'repeat-digest', '', '[]', '',
            '', '', '', '', $chan);
    };
    is_deeply($enqueue->($chan[0]), [ 'ok', $id ], 'queued');
    is_deeply($enqueue->($chan[1]), [ 'exists', $id ], 'the same again');
    is_deeply($enqueue->($chan[1]), [ 'exists', $id ], 'and again');
    is(record($id)->{notify}, "@chan", 'the record names both, once');
    my %got;
    for (1 .. 2) {
        my $m = message_of($next, $id) // last;
        $got{$CHANNEL} = $m;
    }
    is_deeply([ sort keys %got ], \@chan, 'published on both, once each');

    # an execution whose record names no channel (queued by a gateway of
    # an earlier release): the shared channel
    my $r = api(POST => "${API}pause/run", json => { input => [] },
                headers => { Prefer => 'respond-async' });
    my $old = $r->{json}{execution_id} // '';
    $t->redis('HDEL', "am:{demo}:execution:$old", 'notify');
    ok(defined message_of($next, $old), 'published');
    is($CHANNEL, 'am:completions', 'on am:completions');
};

subtest 'a completion published while the subscription is down' => sub {
    create('slow', q(sleep 1; echo '{"late": true}'));
    my $s = $t->open_request(POST => "${API}slow/run",
        body => '{"input": []}',
        headers => { Authorization => "Bearer $KEY",
                     'Content-Type' => 'application/json' });

    # nginx's subscriber is cut again and again while the run finishes,
    # so that its completion is published to nobody
    my $killer = AmTest::Redis->new(port => $t->redis_port);
    my ($cuts, $id) = (0, undef);
    my $end = time + 15 * $SLOW;
    while (time < $end) {
        $cuts += $killer->command('CLIENT', 'KILL', 'TYPE', 'pubsub');
        if (!defined $id) {
            my @k = @{ $t->redis('KEYS', 'am:{demo}:execution:*') };
            ($id) = map { /:execution:(exec_\w+)$/ }
                grep { ($t->redis('HGET', $_, 'automation') // '') eq 'slow' }
                @k;
        }
        last if defined $id
            && ($t->redis('HGET', "am:{demo}:execution:$id", 'status') // '')
               eq 'success'
            && $cuts > 3;
        sleep 0.01;
    }
    ok($cuts > 3, "the subscription was cut ($cuts times)");
    is($t->redis('HGET', "am:{demo}:execution:$id", 'status'), 'success',
       'the run finished meanwhile');

    my $r = $t->read_response($s, 15 * $SLOW);
    is($r->{status}, 200, 'the request still got its answer')
        or diag($r->{body});
    my $j = eval { $JSON->decode($r->{body}) } || {};
    is($j->{execution_id}, $id, 'of its execution');
    is_deeply($j->{output}, { late => JSON::PP::true }, 'with its output');
};

subtest 'logs stay clean' => sub {
    $t->error_log_clean;
};

$t->sanitizers_clean;

done_testing;
