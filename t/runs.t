#!/usr/bin/perl
# Runs through nginx, end to end, with a real automations-worker: the Start
# Automation API (reference/datallog-start-automation-api.txt) literally,
# its webhooks (signed, with the caller's headers), the Automations API's
# run endpoint (reference/promptql-automations-api.txt), execution status
# under both APIs, Idempotency-Key, synchronous waits with clients that go
# away and many at once. Every story checks the status, the exact body, the
# headers, what the webhook receiver got and what Redis holds.

use strict;
use warnings;

use IO::Select;
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
my $REF = 'my-first-datallog-project';
my $SLOW = $t->slow;    # nginx under valgrind is slower

$t->start_redis;
$t->ctl('project', 'create', $_) for 'demo', 'other', $REF;

my %KEY = (
    demo  => $t->apikey('demo', 'read write run'),
    read  => $t->apikey('demo', 'read'),
    other => $t->apikey('other', 'read write run'),
    ref   => $t->apikey($REF, 'read write run'),
);
my %PAIR = map { $_ => $t->tokenpair($_) } 'demo', 'other', $REF;
my %SECRET = map { $_ => $t->webhook_secret($_) } 'demo', $REF;

$t->start_receiver(status => 200);

# two nginx worker processes: a run's completion must reach the one that
# holds the waiting request
$t->write_nginx(<<'EOF');
load_module %%BUILD%%/ngx_http_automations_module.so;
worker_processes 2;
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

        location /short/ {
            automations_api;
            automations_run_wait 1s;
        }

        location /brief/ {
            automations_start_api;
            automations_execution_retention 1h;
        }
    }
}
EOF
$t->start_nginx;

$t->start_worker('w1', '--allow-private-webhooks',
    '--webhook-schedule', '1s,1s', '--visibility-timeout', '2000');

# ---------------------------------------------------------------- helpers

# An Automations API request; auth => API key (default: demo's
# read/write/run key), undef for none.
sub api {
    my ($method, $path, %o) = @_;
    my $auth = exists $o{auth} ? delete $o{auth} : $KEY{demo};
    return $t->api($auth, $method, $path, %o);
}

# A Start Automation API request with a token pair; pair => project whose
# pair is used (default demo), form => 'bare' for the bare token.
sub start {
    my ($path, %o) = @_;
    my $pair = $PAIR{ delete $o{pair} // 'demo' };
    return $t->tokenpair_request($pair, delete $o{method} // 'POST', $path,
                                 %o);
}

# the path of a Location header (nginx makes it absolute)
sub path_of {
    my ($loc) = @_;
    return undef unless defined $loc;
    $loc =~ s{^https?://[^/]+}{};
    return $loc;
}

# Polls a status URL with $get until the execution has finished.
sub poll_status {
    my ($get) = @_;
    my $r;
    $t->wait_for(sub {
        $r = $get->();
        return $r->{status} == 200 && finished($r->{json}{status});
    }, 15 * $SLOW, 'a finished status');
    return $r;
}

sub exec_keys {
    return join ' ', sort @{ $t->redis('KEYS', 'am:{*}:execution:*') };
}

sub exec_count {
    return scalar @{ $t->redis('KEYS', 'am:{*}:execution:*') };
}

# What shows that a run was queued: the stream's last id and length.
sub stream_state {
    my ($info, $err) = $t->redis_try('XINFO', 'STREAM', 'am:runs');
    return 'no stream' if $err;
    my %h = @$info;
    return "last $h{'last-generated-id'}, length $h{length}";
}

# Nothing in flight: the stream is empty and nothing is pending.
sub wait_idle {
    $t->wait_for(sub {
        my ($len) = $t->redis_try('XLEN', 'am:runs');
        my ($p) = $t->redis_try('XPENDING', 'am:runs', 'workers');
        return !$len && (!$p || !$p->[0]);
    }, 15 * $SLOW, 'an idle stream');
}

# Keys whose content holds $needle.
sub keys_holding {
    my ($needle) = @_;
    my $d = $t->redis_dump;
    return [ sort grep { index($d->{$_}, $needle) >= 0
                         || index($_, $needle) >= 0 } keys %$d ];
}

# A JSON error: status and exactly { $field => $text } (or like $re).
sub is_json_error {
    my ($r, $status, $field, $want, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    is($r->{status}, $status, "$what: $status") or diag($r->{body});
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         "$what: JSON");
    is_deeply([ keys %{ $r->{json} || {} } ], [ $field ],
              "$what: only \"$field\"");
    if (ref $want) {
        like($r->{json}{$field} // '', $want, "$what: $field");
    } else {
        is($r->{json}{$field}, $want, "$what: $field");
    }
}

sub create {
    my ($body, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = api(POST => $API, json => $body,
                (exists $o{auth} ? (auth => $o{auth}) : ()));
    is($r->{status}, 200, "create $body->{automation_name}")
        or diag($r->{body});
}

my $HELLO = qq(from datallog import core_task\n\n\@core_task\n)
          . qq(def hello(seed):\n    return {"message": seed["message"]}\n);

# ---------------------------------------------------------------- stories

my ($ex1_id, $ex2_id);

subtest 'reference example 1: start hello-automation with a seed' => sub {
    create({ automation_name => 'hello-automation', code => $HELLO },
           auth => $KEY{ref});

    # the reference's curl: bare token, X-Api-Key, its body as written
    my $body = <<'EOF';
{
    "seed": {
      "message": "Hello from the API!"
    }
  }
EOF
    my $r = start("$START$REF/hello-automation", pair => $REF,
                  form => 'bare', body => $body);
    is($r->{status}, 202, 'status 202') or diag($r->{body});
    like($r->{body}, qr/^\{"status":"success","message":"Automation 'hello-automation' started successfully\.","execution_id":"exec_[0-9a-f]{24}"\}$/,
         'exactly the reference body');
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         'Content-Type JSON');
    my $id = $ex1_id = $r->{json}{execution_id} // '';
    is(path_of($r->{headers}{location}),
       "$START$REF/hello-automation/executions/$id", 'Location header');

    my $rec = $t->execution($REF, $id);
    is($rec->{execution_id}, $id, 'redis: execution record');
    is($rec->{source}, 'start', 'redis: source start');
    is_deeply($JSON->decode($rec->{seed} // 'null'),
              { message => 'Hello from the API!' }, 'redis: the seed');
    ok($t->redis('TTL', "am:{$REF}:execution:$id") > 6 * 86400,
       'redis: kept for 7 days');

    my $s = poll_status(sub {
        start(path_of($r->{headers}{location}), pair => $REF, form => 'bare',
              method => 'GET')
    });
    is($s->{status}, 200, 'status URL: 200');
    my $j = $s->{json} || {};
    is_deeply([ sort keys %$j ], [ sort qw(execution_id project automation
        status created_at started_at finished_at execution_time_ms output
        error log webhook) ], 'status fields');
    is($j->{status}, 'success', 'status success') or diag($s->{body});
    is_deeply($j->{output}, { message => 'Hello from the API!' },
              'the seed came back as the output');
    is_deeply([ @$j{qw(execution_id project automation)} ],
              [ $id, $REF, 'hello-automation' ], 'names');
    ok(exists $j->{error} && !defined $j->{error}, 'error null');
    ok(exists $j->{webhook} && !defined $j->{webhook}, 'no webhook: null');
    like($j->{$_} // '', $TIME, "$_ RFC 3339") for qw(created_at started_at
                                                      finished_at);
    like($s->{body}, qr/"execution_time_ms":\d+[,}]/,
         'execution_time_ms an integer');
    unlike($s->{body}, qr/"(?:code|seed|input)"/,
           'no code, seed or input in the status');
};

subtest 'reference example 2: custom webhook with a header, signed' => sub {
    $t->clear_received;
    my $hook = $t->receiver_url('/hook');
    my $body = <<"EOF";
{
    "webhook": "$hook",
    "webhook_header": {
      "x-api-key": "my-secret-service-key"
    },
    "seed": {
      "message": "Data for my custom webhook"
    }
  }
EOF
    # The worker is frozen a moment so that the queued run can be seen.
    $t->kill_proc('w1', 'STOP');
    my $r = start("$START$REF/hello-automation", pair => $REF,
                  form => 'bare', body => $body);
    my $id = $ex2_id = $r->{json}{execution_id} // '';
    my $queued = $t->execution($REF, $id);
    my $holding = keys_holding('my-secret-service-key');
    $t->kill_proc('w1', 'CONT');

    is($r->{status}, 202, 'status 202') or diag($r->{body});
    like($id, $EXEC, 'execution id');
    is($queued->{webhook}, $hook, 'redis: the webhook URL in the record');
    is($queued->{webhook_state}, 'pending', 'redis: webhook pending');
    is_deeply($holding, [ "am:{$REF}:execution:$id:secret" ],
              'queued: the header value is only in the :secret hash');

    my $got = $t->wait_received(1);
    is(scalar @$got, 1, 'the receiver got one request');
    my $req = $got->[0] || {};
    is($req->{method}, 'POST', 'POST');
    is($req->{path}, '/hook', 'to the webhook path');
    like($req->{headers}{'content-type'} // '', qr{^application/json},
         'Content-Type application/json');
    is($req->{headers}{'x-api-key'}, 'my-secret-service-key',
       'the caller header');
    is(scalar(grep { lc $_->[0] eq 'x-api-key' } @{ $req->{header_list} }),
       1, 'sent once');

    my $p = $req->{json} || {};
    is_deeply([ sort keys %$p ], [ sort qw(execution_id project automation
        status output error execution_time_ms started_at finished_at) ],
        'webhook body fields');
    is_deeply([ @$p{qw(execution_id project automation status)} ],
              [ $id, $REF, 'hello-automation', 'success' ], 'names, status');
    is_deeply($p->{output}, { message => 'Data for my custom webhook' },
              'output');
    ok(exists $p->{error} && !defined $p->{error}, 'error null');
    like($req->{body}, qr/"execution_time_ms":\d+[,}]/,
         'execution_time_ms an integer');
    like($p->{$_} // '', $TIME, "$_ RFC 3339") for qw(started_at finished_at);

    is($req->{headers}{'webhook-id'}, "msg_$id", 'webhook-id');
    ok(abs(($req->{headers}{'webhook-timestamp'} // 0) - time) < 60,
       'webhook-timestamp is now');
    ok(verify_signature($req, $SECRET{$REF}),
       'webhook-signature verifies (v1, HMAC-SHA256 of id.timestamp.body)')
        or diag($req->{headers}{'webhook-signature'});

    my $rec = $t->wait_webhook($REF, $id, 'delivered');
    my $s = start(path_of($r->{headers}{location}), pair => $REF,
                  method => 'GET');
    is($s->{status}, 200, 'status 200');
    my $log = delete $s->{json}{webhook}{attempt_log};
    is_deeply([ map { $_->{status} } @{ $log || [] } ], [ 200 ],
              'the attempt listed');
    is_deeply($s->{json}{webhook}, { url => $hook, state => 'delivered',
        attempts => 1, last_status => 200, last_error => undef,
        next_attempt_at => undef }, 'webhook delivered, 1 attempt, 200');
    unlike($s->{body}, qr/my-secret-service-key|x-api-key/i,
           'the header is not in the status');
    is_deeply(keys_holding('my-secret-service-key'), [],
              'after delivery no Redis key holds the header value');
    is($t->redis('EXISTS', "am:{$REF}:execution:$id:secret"), 0,
       'the :secret hash is gone');
    is($t->redis('ZSCORE', 'am:webhooks', "$REF/$id"), undef,
       'no longer scheduled');
    unlike($t->proc_log('w1') . $t->error_log, qr/my-secret-service-key/,
           'nor in the worker or nginx logs');
    sleep 0.5;
    is(scalar @{ $t->received }, 1, 'delivered once');
};

subtest 'token pair forms and authentication errors' => sub {
    create({ automation_name => 'echo', runtime => 'sh',
             code => q(payload=$(cat); printf '{"echo":%s}' "$payload") });
    wait_idle();

    my $r = start("${START}demo/echo", body => '{"seed":{"n":1}}');
    is($r->{status}, 202, 'Authorization: Token <t>: 202') or diag($r->{body});
    like($r->{json}{execution_id} // '', $EXEC, 'an execution id');
    $r = start("${START}demo/echo", form => 'bare', body => '{}');
    is($r->{status}, 202, 'bare token: 202');
    $r = start("${START}demo/echo", headers => {
        Authorization => "token $PAIR{demo}{token}" });
    is($r->{status}, 202, 'lower-case scheme, no body: 202');
    $r = start("${START}demo/echo", headers => {
        Authorization => "Bearer $KEY{demo}" });
    is($r->{status}, 202, 'a Bearer API key, an X-Api-Key beside it: 202')
        or diag($r->{body});
    wait_idle();

    my $before = exec_keys();
    my $stream = stream_state();
    my $p = $PAIR{demo};

    my @cases = (
        [ 'no credentials', { Authorization => undef, 'X-Api-Key' => undef },
          401, detail => 'Authentication credentials were not provided.' ],
        [ 'wrong X-Api-Key', { 'X-Api-Key' => 'amx_' . ('0' x 64) },
          401, detail => 'Invalid token.' ],
        [ 'X-Api-Key of another pair', { 'X-Api-Key' => $PAIR{other}{api_key} },
          401, detail => 'Invalid token.' ],
        [ 'unknown token', { Authorization => 'Token amt_' . ('1' x 64) },
          401, detail => 'Invalid token.' ],
        [ 'garbage token', { Authorization => 'Token x y z' },
          401, detail => 'Invalid token.' ],
    );
    for my $c (@cases) {
        my ($what, $h, $status, $field, $text) = @$c;
        my $r = start("${START}demo/echo", headers => $h, body => '{}');
        is_json_error($r, $status, $field, $text, $what);
        if ($status == 401) {
            ok($r->{headers}{'www-authenticate'},
               "$what: WWW-Authenticate");
        }
    }

    is_json_error(start("${START}demo/echo", pair => 'other', body => '{}'),
        403, message => 'This Project does not exist. consult API',
        "other project's pair on demo");
    is_json_error(start("${START}other/echo", body => '{}'),
        403, message => 'This Project does not exist. consult API',
        "demo's pair on other");
    is_json_error(start("${START}demo/no-such-automation", body => '{}'),
        403, message => 'This Automation does not exist. consult API.',
        'unknown automation');
    is_json_error(start("${START}no-such-project/echo", body => '{}'),
        403, message => 'This Project does not exist. consult API',
        'unknown project');
    is_json_error(start("${START}demo/bad%20name", body => '{}'),
        403, message => 'This Automation does not exist. consult API.',
        'impossible automation name');

    is(exec_keys(), $before, 'no execution record was written');
    is(stream_state(), $stream, 'nothing was queued');
};

subtest 'start: wrong body types are 400, nothing queued' => sub {
    wait_idle();
    my $before = exec_keys();
    my $stream = stream_state();

    my @cases = (
        [ 'seed "x"', '{"seed":"x"}', qr/seed/ ],
        [ 'seed []', '{"seed":[]}', qr/seed/ ],
        [ 'seed 1', '{"seed":1}', qr/seed/ ],
        [ 'webhook 1', '{"webhook":1}', qr/webhook/ ],
        [ 'webhook "ftp://x"', '{"webhook":"ftp://x"}', qr/webhook/ ],
        [ 'webhook "not a url"', '{"webhook":"not a url"}', qr/webhook/ ],
        [ 'webhook_header {"a":1}', '{"webhook_header":{"a":1}}',
          qr/webhook_header/ ],
        [ 'webhook_header []', '{"webhook_header":[]}', qr/webhook_header/ ],
        [ 'webhook_header "x"', '{"webhook_header":"x"}', qr/webhook_header/ ],
        [ 'webhook_header {"bad name":"x"}',
          '{"webhook_header":{"bad name":"x"}}', qr/webhook_header/ ],
        [ 'webhook_header value with CRLF',
          '{"webhook_header":{"x-a":"v\r\nX-Injected: 1"}}',
          qr/webhook_header/ ],
        [ 'webhook_header value with LF',
          '{"webhook_header":{"x-a":"v\nb"}}', qr/webhook_header/ ],
        [ 'webhook_header value with a vertical tab',
          '{"webhook_header":{"x-a":"v\u000bb"}}', qr/webhook_header/ ],
        [ 'unknown field', '{"seed":{},"colour":"blue"}', qr/colour/ ],
        [ 'malformed JSON', '{"seed": {"message": }', qr/JSON/ ],
        [ 'truncated JSON', '{"seed":', qr/JSON/ ],
        [ 'not JSON', 'seed=x', qr/JSON/ ],
        [ 'array body', '[]', qr/object/ ],
    );
    for my $c (@cases) {
        my ($what, $body, $re) = @$c;
        my $r = start("${START}demo/echo", body => $body);
        is_json_error($r, 400, detail => $re, $what);
    }

    is(exec_keys(), $before, 'no execution record was written');
    is(stream_state(), $stream, 'nothing was queued');
    is_deeply(keys_holding('X-Injected'), [], 'no trace of the headers');
};

subtest 'webhook: the automation default, or none at all' => sub {
    $t->clear_received;
    my $hook = $t->receiver_url('/default');
    create({ automation_name => 'with-default', runtime => 'sh',
             code => q(echo '{"default":true}'), webhook => $hook });

    my $r = start("${START}demo/with-default", body => '{"seed":{}}');
    is($r->{status}, 202, 'started') or diag($r->{body});
    my $id = $r->{json}{execution_id} // '';
    my $got = $t->wait_received(1);
    is(scalar @$got, 1, 'delivered to the default webhook');
    is($got->[0]{path}, '/default', 'at its path');
    is($got->[0]{json}{execution_id}, $id, 'for this execution');
    ok(verify_signature($got->[0], $SECRET{demo}), 'signed');
    is($t->wait_webhook('demo', $id, 'delivered')->{webhook}, $hook,
       'redis: the default URL recorded');

    # an explicit one wins over the default; "" means the default
    $t->clear_received;
    $r = start("${START}demo/with-default",
               json => { webhook => $t->receiver_url('/explicit') });
    $t->wait_received(1);
    is_deeply([ map { $_->{path} } @{ $t->received } ], [ '/explicit' ],
              'an explicit webhook wins');
    $t->clear_received;
    $r = start("${START}demo/with-default", json => { webhook => '' });
    $t->wait_received(1);
    is_deeply([ map { $_->{path} } @{ $t->received } ], [ '/default' ],
              'an empty webhook means the default');

    $t->clear_received;
    $r = start("${START}demo/echo", json => { seed => { quiet => 1 } });
    is($r->{status}, 202, 'no webhook anywhere: started');
    $id = $r->{json}{execution_id} // '';
    my $rec = $t->wait_done('demo', $id);
    is($rec->{status}, 'success', 'it ran');
    is($rec->{webhook_state}, 'none', 'redis: webhook state none');
    my $s = start(path_of($r->{headers}{location}), method => 'GET');
    ok(exists $s->{json}{webhook} && !defined $s->{json}{webhook},
       'status: webhook null');
    is_deeply($s->{json}{output}{echo}{seed}, { quiet => 1 },
              'the result is kept');
    sleep 1.2;
    is(scalar @{ $t->received }, 0, 'the receiver got nothing');
    ok($t->redis('TTL', "am:{demo}:execution:$id") > 6 * 86400,
       'the record is kept with its retention');
};

my $INPUT = [
    { id => 1, name => 'John Doe', email => 'john@example.com' },
    { id => 2, name => 'Jane Smith', email => 'jane@example.com' },
];

subtest 'run: the reference input example' => sub {
    create({ automation_name => 'data_processor', code => <<'PY' });
from datallog import core_task

@core_task
def process(seed, input):
    print("processing", len(input), "rows")
    return {
        "processed_count": len(input),
        "results": [
            {"id": row["id"], "status": "processed",
             "insights": "Customer profile complete"}
            for row in input
        ],
    }
PY
    my $body = $JSON->encode({ input => $INPUT });
    my $r = api(POST => "${API}data_processor/run", body => $body);
    is($r->{status}, 200, 'status 200') or diag($r->{body});
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         'Content-Type JSON');
    my $j = $r->{json} || {};
    is_deeply([ sort keys %$j ],
              [ qw(execution_id execution_time_ms output status) ],
              'output, execution_time_ms, status, execution_id');
    is_deeply($j->{output}, {
        processed_count => 2,
        results => [
            { id => 1, status => 'processed',
              insights => 'Customer profile complete' },
            { id => 2, status => 'processed',
              insights => 'Customer profile complete' },
        ],
    }, 'the output');
    is($j->{status}, 'success', 'status success');
    like($r->{body}, qr/"execution_time_ms":\d+[,}]/,
         'execution_time_ms an integer');
    like($j->{execution_id} // '', $EXEC, 'execution_id');

    my $rec = $t->execution('demo', $j->{execution_id} // '');
    is($rec->{status}, 'success', 'redis: success');
    is($rec->{source}, 'run', 'redis: source run');
    is_deeply($JSON->decode($rec->{input} // 'null'), $INPUT,
              'redis: the input');
    is($rec->{execution_time_ms}, $j->{execution_time_ms},
       'redis: the same execution time');

    # the answer lasts as long as the run, no more
    my $t0 = time;
    $r = api(POST => "${API}data_processor/run", json => { input => [] });
    is($r->{status}, 200, 'empty input: 200');
    is($r->{json}{output}{processed_count}, 0, 'empty input: 0 rows');
    ok(time - $t0 < 3 * $SLOW, 'answered as soon as it finished');
};

subtest 'run: a failing automation is 422 with the error' => sub {
    create({ automation_name => 'boom', code => <<'PY' });
from datallog import core_task

@core_task
def fail(seed):
    print("about to fail")
    raise ValueError("boom")
PY
    my $r = api(POST => "${API}boom/run", json => { input => [ { a => 1 } ] });
    is($r->{status}, 422, 'status 422') or diag($r->{body});
    my $j = $r->{json} || {};
    is($j->{status}, 'error', 'status error');
    like($j->{error} // '', qr/ValueError: boom/, 'error names the exception');
    ok(exists $j->{output} && !defined $j->{output}, 'output null');
    like($j->{execution_id} // '', $EXEC, 'execution_id');
    like($r->{body}, qr/"execution_time_ms":\d+[,}]/, 'execution_time_ms');

    my $s = api(GET => "${API}boom/executions/$j->{execution_id}");
    is($s->{json}{status}, 'error', 'status: error');
    like($s->{json}{error} // '', qr/ValueError: boom/, 'status: the error');
    like($s->{json}{log} // '', qr/about to fail/, 'status: print() output');
    like($s->{json}{log} // '', qr/Traceback/, 'status: the traceback');
};

subtest 'run: x-ddn-build-id and ddn_headers reach the automation only' => sub {
    create({ automation_name => 'ctx', code => <<'PY' });
from datallog import core_task

@core_task
def show(seed, input, context):
    return {"context": context, "rows": len(input or [])}
PY
    my $ddn = { 'x-hasura-ddn-token' => 'ddn-token-SECRET-42',
                'x-hasura-role' => 'user' };
    my $r = api(POST => "${API}ctx/run",
                headers => { 'x-ddn-build-id' => 'build-7f3a' },
                json => { ddn_headers => $ddn, input => $INPUT });
    is($r->{status}, 200, 'status 200') or diag($r->{body});
    my $id = $r->{json}{execution_id} // '';
    is_deeply($r->{json}{output}, { rows => 2, context => {
        execution_id => $id, project => 'demo', automation => 'ctx',
        build_id => 'build-7f3a', ddn_headers => $ddn } },
        'the automation saw the build id and the ddn_headers');

    my $s = api(GET => "${API}ctx/executions/$id");
    is($s->{status}, 200, 'status URL: 200');
    # The output echoes them here (the automation chose to return them):
    # nothing but that output may hold them.
    my %rest = %{ $s->{json} || {} };
    ok(delete $rest{output}, 'the GET has the output');
    unlike($JSON->encode(\%rest), qr/x-hasura-ddn-token|ddn-token-SECRET-42/,
           'nothing else in the execution GET holds them');
    my @holding = grep { $_ ne "am:{demo}:execution:$id" }
                  @{ keys_holding('ddn-token-SECRET-42') };
    is_deeply(\@holding, [], 'no other Redis key holds them after the run');
    my $rec = $t->execution('demo', $id);
    ok(!grep({ /ddn/ } keys %$rec), 'the record has no ddn field');
    is($t->redis('EXISTS', "am:{demo}:execution:$id:secret"), 0,
       'no :secret hash left');

    # an automation that does not return them: no trace at all
    create({ automation_name => 'ctx-quiet', code => <<'PY' });
from datallog import core_task

@core_task
def quiet(seed, input, context):
    return {"has_token": "x-hasura-ddn-token" in context["ddn_headers"],
            "build": context["build_id"]}
PY
    $r = api(POST => "${API}ctx-quiet/run",
             headers => { 'x-ddn-build-id' => 'b2' },
             json => { ddn_headers => { 'x-hasura-ddn-token' => 'quiet-SECRET-99' },
                       input => [] });
    is($r->{status}, 200, 'status 200') or diag($r->{body});
    is_deeply($r->{json}{output}, { has_token => JSON::PP::true,
                                    build => 'b2' }, 'seen by the code');
    is_deeply(keys_holding('quiet-SECRET-99'), [],
              'no Redis key holds the ddn header value');
    unlike($t->proc_log('w1') . $t->error_log, qr/quiet-SECRET-99/,
           'nor the logs');

    my $bad = api(POST => "${API}ctx/run", json => { ddn_headers => [] });
    is($bad->{status}, 422, 'ddn_headers [] is 422');
    $bad = api(POST => "${API}ctx/run", json => { ddn_headers => { a => 1 } });
    is($bad->{status}, 422, 'ddn_headers {"a":1} is 422');
};

subtest 'run: Prefer: respond-async' => sub {
    my $r = api(POST => "${API}data_processor/run",
                headers => { Prefer => 'respond-async' },
                json => { input => $INPUT });
    is($r->{status}, 202, 'status 202') or diag($r->{body});
    my $j = $r->{json} || {};
    is_deeply([ sort keys %$j ], [ qw(execution_id status status_url) ],
              'execution_id, status, status_url');
    my $id = $j->{execution_id} // '';
    like($id, $EXEC, 'execution_id');
    is($j->{status}, 'queued', 'status queued');
    is($j->{status_url}, "${API}data_processor/executions/$id",
       'status_url');
    is(path_of($r->{headers}{location}), $j->{status_url},
       'Location is the status URL');

    my $s = poll_status(sub { api(GET => $j->{status_url}) });
    is($s->{json}{status}, 'success', 'later: success');
    is($s->{json}{output}{processed_count}, 2, 'later: the output');
};

subtest 'run: longer than automations_run_wait answers 202' => sub {
    create({ automation_name => 'sleepy', runtime => 'sh',
             code => q(sleep 2; echo '{"slept":2}') });
    my $t0 = time;
    my $r = api(POST => '/short/sleepy/run', json => {});
    my $took = time - $t0;
    is($r->{status}, 202, 'status 202') or diag($r->{body});
    # early: the run sleeps 2 s, and its status below says it had not ended
    ok($took >= 0.9 && $took < 3 * $SLOW, "after the 1 s wait ($took s)");
    my $j = $r->{json} || {};
    like($j->{status} // '', qr/^(?:queued|running)$/, "status $j->{status}");
    my $id = $j->{execution_id} // '';
    is($j->{status_url}, "/short/sleepy/executions/$id", 'status_url');
    is(path_of($r->{headers}{location}), $j->{status_url}, 'Location');

    my $s = poll_status(sub { api(GET => $j->{status_url}) });
    is($s->{json}{status}, 'success', 'later: success');
    is_deeply($s->{json}{output}, { slept => 2 }, 'later: the output');
    cmp_ok($s->{json}{execution_time_ms}, '>=', 1900, 'it took 2 s');
};

subtest 'run: refused bodies and credentials, nothing queued' => sub {
    wait_idle();
    my $before = exec_keys();
    my $stream = stream_state();

    my @cases = (
        [ 'input {"a":1}', '{"input":{"a":1}}', 422, qr/input/ ],
        [ 'input "x"', '{"input":"x"}', 422, qr/input/ ],
        [ 'input [1]', '{"input":[1]}', 422, qr/input/ ],
        [ 'unknown field', '{"input":[],"seed":{}}', 422, qr/seed/ ],
        [ 'malformed JSON', '{"input":[', 422, qr/JSON/ ],
    );
    for my $c (@cases) {
        my ($what, $body, $status, $re) = @$c;
        is_json_error(api(POST => "${API}data_processor/run", body => $body),
                      $status, detail => $re, $what);
    }
    is_json_error(api(POST => "${API}data_processor/run", json => {},
                      auth => $KEY{read}),
                  404, detail => qr/^Automation not found or user doesn't have access\z/,
                  'a read-only API key');
    is_json_error(api(POST => "${API}data_processor/run", json => {},
                      auth => undef),
                  401, detail => 'Authentication credentials were not provided.',
                  'no credentials');
    is_json_error(api(POST => "${API}no_such/run", json => {}),
                  404, detail => qr/not found/i, 'unknown automation');
    is_json_error(api(POST => "${API}data_processor/run", json => {},
                      auth => $KEY{other}),
                  404, detail => qr/not found/i,
                  "another project's key: not its automation");
    is_json_error(api(GET => "${API}data_processor/run"),
                  405, detail => qr/.+/, 'GET on run');

    is(exec_keys(), $before, 'no execution record was written');
    is(stream_state(), $stream, 'nothing was queued');
};

subtest 'executions: under both APIs, only for the owner' => sub {
    create({ automation_name => 'logger', code => <<'PY' });
from datallog import core_task

@core_task
def log(seed, input):
    print("hello from print")
    print("second line")
    return {"seed": seed, "rows": len(input or [])}
PY
    my $r = start("${START}demo/logger", json => { seed => { s => 1 } });
    is($r->{status}, 202, 'started') or diag($r->{body});
    my $id = $r->{json}{execution_id} // '';
    my $via_start = "${START}demo/logger/executions/$id";
    my $via_api = "${API}logger/executions/$id";

    my $a = poll_status(sub { start($via_start, method => 'GET') });
    my $b = api(GET => $via_api);
    is($a->{status}, 200, 'start API: 200');
    is($b->{status}, 200, 'Automations API: 200');
    is($a->{body}, $b->{body}, 'the same body');
    my $j = $a->{json} || {};
    is($j->{status}, 'success', 'success');
    is_deeply($j->{output}, { seed => { s => 1 }, rows => 0 }, 'output');
    is($j->{log}, "hello from print\nsecond line\n", 'print() is the log');
    like($j->{$_} // '', $TIME, "$_ RFC 3339") for qw(created_at started_at
                                                      finished_at);
    ok($j->{created_at} le $j->{started_at}
       && $j->{started_at} le $j->{finished_at}, 'in order');

    # and a run of the run API, seen through the start API
    my $run = api(POST => "${API}logger/run", json => { input => [ {} ] });
    is($run->{status}, 200, 'run: 200');
    my $rid = $run->{json}{execution_id} // '';
    my $c = start("${START}demo/logger/executions/$rid", method => 'GET');
    is($c->{status}, 200, 'a run execution under the start API');
    is($c->{json}{output}{rows}, 1, 'with its output');

    is_json_error(api(GET => $via_api, auth => $KEY{other}), 404,
        detail => qr/not found/i, "another project's API key");
    is_json_error(start("${START}other/logger/executions/$id", pair => 'other',
                        method => 'GET'), 404, detail => qr/not found/i,
        "another project's token pair, under its project");
    my $x = start($via_start, pair => 'other', method => 'GET');
    ok($x->{status} == 403 || $x->{status} == 404,
       "another project's token pair on demo: $x->{status}");
    unlike($x->{body}, qr/hello from print/, 'and nothing shown');
    is_json_error(api(GET => "${API}echo/executions/$id"), 404,
        detail => qr/not found/i, 'wrong automation in the path (API)');
    is_json_error(start("${START}demo/echo/executions/$id", method => 'GET'),
        404, detail => qr/not found/i, 'wrong automation in the path (start)');

    for my $bad ('exec_zz', 'exec_' . ('g' x 24), 'exec_' . ('a' x 23),
                 'exec_' . ('a' x 200), 'exec_%2F..%2Fx', 'x' x 30,
                 'exec_' . ('0' x 24)) {
        my $r1 = api(GET => "${API}logger/executions/$bad");
        is($r1->{status}, 404, "id $bad (API): 404");
        my $r2 = start("${START}demo/logger/executions/$bad", method => 'GET');
        is($r2->{status}, 404, "id $bad (start): 404");
    }
    is(api(GET => $via_api, auth => undef)->{status}, 401,
       'no credentials: 401');
    is(api(POST => $via_api, json => {})->{status}, 405, 'POST: 405');
};

subtest 'Idempotency-Key on the start API' => sub {
    $t->clear_received;
    wait_idle();
    my $before = exec_count();
    my $body = $JSON->encode({ seed => { order => 17 },
                               webhook => $t->receiver_url('/idem') });
    my @r = map {
        start("${START}demo/echo", headers => { 'Idempotency-Key' => 'order-17' },
              body => $body)
    } 1 .. 3;
    is_deeply([ map { $_->{status} } @r ], [ 202, 202, 202 ], 'three 202s');
    my $id = $r[0]{json}{execution_id} // '';
    like($id, $EXEC, 'an execution id');
    is_deeply([ map { $_->{json}{execution_id} } @r ], [ ($id) x 3 ],
              'the same execution id each time');
    is_deeply([ map { path_of($_->{headers}{location}) } @r ],
              [ ("${START}demo/echo/executions/$id") x 3 ],
              'the same Location');

    my $other = start("${START}demo/echo",
        headers => { 'Idempotency-Key' => 'order-17' },
        json => { seed => { order => 18 } });
    is_json_error($other, 422, detail => qr/Idempotency-Key/,
                  'same key, other body');

    my @keys = @{ $t->redis('KEYS', 'am:{demo}:idempotency:*') };
    is(scalar @keys, 1, 'one idempotency key');
    ok($t->redis('TTL', $keys[0]) > 86000, 'kept 24 h with a 7-day retention');

    # with a retention shorter than a day: no longer than the execution
    my $brief = start("/brief/demo/echo",
        headers => { 'Idempotency-Key' => 'order-brief' }, body => $body);
    is($brief->{status}, 202, 'a retention of 1 h: 202');
    my ($short) = grep { $_ ne $keys[0] }
        @{ $t->redis('KEYS', 'am:{demo}:idempotency:*') };
    my $ttl = $t->redis('TTL', $short // '');
    ok($ttl > 3000 && $ttl <= 3600, "its key lasts the retention ($ttl s)");
    ok($t->redis('TTL', "am:{demo}:execution:$brief->{json}{execution_id}")
       >= $ttl, 'no longer than the execution');

    my $fresh = start("${START}demo/echo",
        headers => { 'Idempotency-Key' => 'order-18' }, body => $body);
    is($fresh->{status}, 202, 'another key: 202');
    isnt($fresh->{json}{execution_id}, $id, 'another execution');

    $t->wait_done('demo', $id);
    $t->wait_done('demo', $fresh->{json}{execution_id} // '');
    $t->wait_done('demo', $brief->{json}{execution_id} // '');
    $t->wait_webhook('demo', $brief->{json}{execution_id} // '', 'delivered');
    $t->wait_webhook('demo', $id, 'delivered');
    $t->wait_webhook('demo', $fresh->{json}{execution_id} // '', 'delivered');
    my $after = exec_count();
    is($after - $before, 3, 'three execution records in all (the 1 h one too)');
    is($t->execution('demo', $id)->{attempts}, 1, 'run once');
    sleep 0.5;
    is(scalar @{ $t->received_for($id) }, 1, 'the receiver got one delivery');
    is(scalar @{ $t->received }, 3, 'three deliveries in all');

    my $bad = start("${START}demo/echo",
        headers => { 'Idempotency-Key' => 'a b' }, body => '{}');
    is_json_error($bad, 400, detail => qr/Idempotency-Key/,
                  'a key with a space');
    $bad = start("${START}demo/echo",
        headers => { 'Idempotency-Key' => 'k' x 256 }, body => '{}');
    is_json_error($bad, 400, detail => qr/Idempotency-Key/,
                  'a key of 256 characters');
};

subtest 'Idempotency-Key on the run API' => sub {
    wait_idle();
    my $before = exec_count();
    my $body = $JSON->encode({ input => [ { id => 5 } ] });
    my %h = ('Idempotency-Key' => 'run-5');

    my $a = api(POST => "${API}data_processor/run", headers => \%h,
                body => $body);
    my $b = api(POST => "${API}data_processor/run", headers => \%h,
                body => $body);
    is($a->{status}, 200, 'first: 200') or diag($a->{body});
    is($b->{status}, 200, 'second: 200') or diag($b->{body});
    is($b->{json}{execution_id}, $a->{json}{execution_id},
       'the same execution id');
    is_deeply($b->{json}, $a->{json}, 'the same answer');

    my $async = api(POST => "${API}data_processor/run",
        headers => { %h, Prefer => 'respond-async' }, body => $body);
    is($async->{status}, 202, 'async with the same key: 202');
    is($async->{json}{execution_id}, $a->{json}{execution_id},
       'still the same execution');

    is_json_error(api(POST => "${API}data_processor/run", headers => \%h,
                      json => { input => [ { id => 6 } ] }),
                  422, detail => qr/Idempotency-Key/, 'same key, other body');
    is_json_error(api(POST => "${API}logger/run", headers => \%h,
                      body => $body),
                  422, detail => qr/Idempotency-Key/,
                  'same key and body, other automation');

    my $c = api(POST => "${API}data_processor/run",
                headers => { 'Idempotency-Key' => 'run-6' }, body => $body);
    is($c->{status}, 200, 'another key: 200');
    isnt($c->{json}{execution_id}, $a->{json}{execution_id},
         'another execution');

    my $after = exec_count();
    is($after - $before, 2, 'two execution records in all');
    is($t->execution('demo', $a->{json}{execution_id})->{attempts}, 1, 'run once');

    # the same key, sent twice at once, while the first is still running
    my %h2 = ('Idempotency-Key' => 'sleepy-1');
    my @socks = map { send_run('/automations/v1/sleepy/run', '{}', \%h2) }
                1 .. 2;
    my @res = read_all(\@socks, 10 * $SLOW);
    is_deeply([ map { $_->{status} // 0 } @res ], [ 200, 200 ],
              'two concurrent requests with one key: 200 both');
    my %ids = map { ($_->{json}{execution_id} // '') => 1 } @res;
    is(scalar keys %ids, 1, 'one execution') or diag(join ' ', keys %ids);
};

# ------------------------------------------------- concurrency, disconnects

# Sends one run request on a new connection; returns the socket.
sub send_run {
    my ($path, $body, $headers) = @_;
    return $t->open_request(POST => $path, body => $body, headers => {
        Authorization  => "Bearer $KEY{demo}",
        'Content-Type' => 'application/json',
        %{ $headers || {} },
    });
}

# Reads every socket to EOF (or the timeout); returns parsed responses.
sub read_all {
    my ($socks, $timeout) = @_;
    my %buf = map { $_ => '' } 0 .. $#$socks;
    my %open = map { fileno($socks->[$_]) => $_ } 0 .. $#$socks;
    my $sel = IO::Select->new(@$socks);
    my $end = time + $timeout;

    while ($sel->count && (my $left = $end - time) > 0) {
        for my $s ($sel->can_read($left)) {
            my $i = $open{ fileno $s };
            my $n = sysread($s, $buf{$i}, 65536, length $buf{$i});
            next if $n;
            $sel->remove($s);
            close $s;
        }
    }
    close $_ for $sel->handles;
    return map {
        my $r = AmTest::parse_response($buf{$_});
        $r->{json} = eval { $JSON->decode($r->{body}) };
        $r;
    } 0 .. $#$socks;
}

subtest 'a client that leaves during a synchronous run' => sub {
    my @workers = $t->nginx_worker_pids;
    my $before = exec_keys();
    my $body = '{}';
    my $req = "POST ${API}sleepy/run HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $KEY{demo}\r\n"
        . "Content-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";

    # gone at once, before the run is even queued
    $t->raw($req, close_after => 1);
    # gone while waiting for the result
    my $s = send_run("${API}sleepy/run", $body);
    sleep 0.5;
    close $s;
    # gone with half a body
    $t->raw([ substr($req, 0, length($req) - 1) ], close_after => 1);

    my @new;
    $t->wait_for(sub {
        my %old = map { $_ => 1 } split ' ', $before;
        @new = grep { !$old{$_} } split ' ', exec_keys();
        return @new >= 2;
    }, 5 * $SLOW, 'the runs queued');
    is(scalar @new, 2, 'the two complete requests were queued');
    for my $key (@new) {
        my ($id) = $key =~ /:execution:(exec_\w+)$/;
        is($t->wait_done('demo', $id)->{status}, 'success',
           'the run still completed');
    }

    my $r = api(POST => "${API}data_processor/run", json => { input => [] });
    is($r->{status}, 200, 'a later run works');
    is_deeply([ $t->nginx_worker_pids ], \@workers,
              'the nginx worker did not change');
    $t->error_log_clean;
    unlike($t->error_log, qr/\[error\]/, 'no [error] line either')
        or diag(join "\n", grep { /\[error\]/ } split /\n/, $t->error_log);
};

subtest '20 concurrent synchronous runs get their own outputs' => sub {
    create({ automation_name => 'echo-id', code => <<'PY' });
from datallog import core_task

@core_task
def echo(seed, input):
    return {"id": input[0]["id"]}
PY
    my @workers = $t->nginx_worker_pids;
    my @socks = map {
        send_run("${API}echo-id/run", $JSON->encode({ input => [ { id => $_ } ] }))
    } 1 .. 20;
    my @res = read_all(\@socks, 20 * $SLOW);

    is(scalar(grep { ($_->{status} // 0) == 200 } @res), 20, 'all 200')
        or diag(join "\n", map { ($_->{status} // '?') . " $_->{body}" } @res);
    is_deeply([ map { $_->{json}{output}{id} } @res ], [ 1 .. 20 ],
              'each got its own output');
    my %ids = map { ($_->{json}{execution_id} // '') => 1 } @res;
    is(scalar(grep { /$EXEC/ } keys %ids), 20, '20 distinct executions');
    is_deeply([ $t->nginx_worker_pids ], \@workers, 'nginx workers unchanged');

    # and 20 at once on the start API
    my @r = map { start("${START}demo/echo", json => { seed => { n => $_ } }) }
            1 .. 20;
    is(scalar(grep { $_->{status} == 202 } @r), 20, 'start: 20 times 202');
    my @done = map { $t->wait_done('demo', $_->{json}{execution_id} // '') } @r;
    is_deeply([ map { eval { $JSON->decode($_->{output})->{echo}{seed}{n} } }
                @done ], [ 1 .. 20 ], 'each with its own seed');
};

subtest 'large bodies (buffered to a file by nginx), chunked bodies' => sub {
    my @rows = map { { id => $_, text => 'x' x 100 } } 1 .. 2000;
    my $body = $JSON->encode({ input => \@rows });
    cmp_ok(length $body, '>', 200_000, 'a body over 200 kB');
    my $r = api(POST => "${API}data_processor/run", body => $body);
    is($r->{status}, 200, 'run: 200') or diag(substr($r->{body}, 0, 300));
    is($r->{json}{output}{processed_count}, 2000, 'all 2000 rows arrived');
    is($r->{json}{output}{results}[1999]{id}, 2000, 'the last one intact');

    my $seed = { blob => 'y' x 300_000 };
    $r = start("${START}demo/echo", json => { seed => $seed });
    is($r->{status}, 202, 'start with a 300 kB seed: 202');
    my $rec = $t->wait_done('demo', $r->{json}{execution_id} // '');
    is(length(eval { $JSON->decode($rec->{output})->{echo}{seed}{blob} } // ''),
       300_000, 'the seed arrived whole');

    my $json = '{"input":[{"id":41},{"id":42}]}';
    my $chunked = join '', map { sprintf("%x\r\n%s\r\n", length $_, $_) }
                  substr($json, 0, 10), substr($json, 10);
    my $raw = $t->raw("POST ${API}echo-id/run HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $KEY{demo}\r\n"
        . "Content-Type: application/json\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        . "${chunked}0\r\n\r\n", timeout => 10 * $SLOW);
    my $res = AmTest::parse_response($raw);
    is($res->{status}, 200, 'a chunked body: 200') or diag($raw);
    is_deeply(eval { $JSON->decode($res->{body})->{output} }, { id => 41 },
              'a chunked body: parsed');

    my $big = $JSON->encode({ input => [ { s => 'z' x (1024 * 1024) } ] });
    $r = api(POST => "${API}data_processor/run", body => $big);
    is_json_error($r, 413, detail => qr/.+/, 'over the 1m limit');
};

subtest 'runtime sh through both APIs' => sub {
    create({ automation_name => 'sh-sum', runtime => 'sh', code => <<'SH' });
payload=$(cat)
echo "log line" >&2
n=$(printf '%s' "$payload" | grep -o '"id":[0-9]*' | wc -l)
printf '{"rows":%d,"shell":"sh"}\n' "$n"
SH
    my $r = api(POST => "${API}sh-sum/run",
                json => { input => [ { id => 1 }, { id => 2 }, { id => 3 } ] });
    is($r->{status}, 200, 'run: 200') or diag($r->{body});
    is_deeply($r->{json}{output}, { rows => 3, shell => 'sh' }, 'run: output');
    my $s = api(GET => "${API}sh-sum/executions/$r->{json}{execution_id}");
    is($s->{json}{log}, "log line\n", 'stderr is the log');

    $r = start("${START}demo/sh-sum", json => { seed => { id => 9 } });
    is($r->{status}, 202, 'start: 202');
    my $rec = $t->wait_done('demo', $r->{json}{execution_id} // '');
    is($rec->{status}, 'success', 'start: success');
    is_deeply($JSON->decode($rec->{output} // 'null'),
              { rows => 1, shell => 'sh' }, 'start: the seed reached it');
};

subtest 'logs stay clean' => sub {
    $t->error_log_clean;
    unlike($t->proc_log('w1'), qr/my-secret-service-key|ddn-token-SECRET/,
           'the worker log shows no secret');
    ok($t->running('w1'), 'the worker is alive');
};

$t->stop_proc('w1');
$t->stop_nginx;

$t->sanitizers_clean;

done_testing;
