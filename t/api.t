#!/usr/bin/perl
# The Automations API (reference/promptql-automations-api.txt) served by
# "automations_api": list, create, get and delete, one story per subtest,
# each checking the status, the JSON body, the headers and what Redis holds
# afterwards (docs/data-model.md).

use strict;
use warnings;

use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use AmTest;

my $t = AmTest->new;

plan skip_all => 'module not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl';

my $JSON = JSON::PP->new->utf8->canonical;
my $TIME = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
my $API = '/automations/v1/';

# the reference's 404 for a credential without the access a call needs
my $NO_PROJECT = qr/^Project not found or user doesn't have access\z/;
my $NO_PROJECT_ADMIN =
    qr/^Project not found or user doesn't have admin access\z/;
my $NO_AUTOMATION = qr/^Automation not found or user doesn't have access\z/;
my $NO_AUTOMATION_ADMIN =
    qr/^Automation not found or user doesn't have admin access\z/;

$t->start_redis;
$t->ctl('project', 'create', 'demo');
$t->ctl('project', 'create', 'other');

my %KEY = (
    rw     => $t->apikey('demo', 'read write run'),
    read   => $t->apikey('demo', 'read'),
    write  => $t->apikey('demo', 'write'),
    run    => $t->apikey('demo', 'run'),
    admin  => $t->apikey('demo', 'admin'),
    other  => $t->apikey('other', 'read write'),
);

my $SECRET = join '', map { sprintf '%x', int rand 16 } 1 .. 40;
$t->write_file('jwt.secret', $SECRET);

sub jwt {
    my (%claims) = @_;
    return AmTest::jwt(alg => 'HS256', key => $SECRET,
        claims => { sub => 'user-1', exp => int(time) + 3600, %claims });
}

$t->write_nginx(<<'EOF');
load_module %%BUILD%%/ngx_http_automations_module.so;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    automations_redis %%REDIS%%;
    automations_jwt_key %%DIR%%/jwt.secret alg=HS256;

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        location /automations/v1/ {
            automations_api;
        }

        location /small/ {
            automations_api;
            automations_max_body_size 4k;
        }

        location /p/ {
            automations_api;
            automations_project $http_x_project;
        }

        location /open/ {
            automations_auth off;
            automations_project demo;
            automations_api;
        }
    }
}
EOF
$t->start_nginx;

# ---------------------------------------------------------------- helpers

my (@not_json, $responses);

# One API request. auth => credential (default: the read/write demo key),
# undef for none; the Content-Type of every answer is recorded.
sub api {
    my ($method, $path, %o) = @_;
    my $auth = exists $o{auth} ? delete $o{auth} : $KEY{rw};
    my %h = %{ delete $o{headers} || {} };

    $h{Authorization} = "Bearer $auth" if defined $auth;
    $h{'Content-Type'} //= 'application/json'
        if defined $o{body} || exists $o{json};

    my $r = $t->http($method, $path, headers => \%h, %o);
    $responses++;
    my $ct = $r->{headers}{'content-type'} // '(none)';
    push @not_json, "$method $path -> $r->{status}: $ct"
        unless $ct =~ m{^application/json\s*(?:;|$)};
    return $r;
}

# One ok(): Redis holds what it held in $before (a redis_snapshot); on failure
# only the lines that differ are shown.
sub redis_unchanged {
    my ($before, $what) = @_;
    my $now = $t->redis_snapshot;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    return ok(1, $what) if $now eq $before;
    my %b = map { $_ => 1 } split /\n/, $before;
    my %n = map { $_ => 1 } split /\n/, $now;
    ok(0, $what);
    diag(join "\n", (map { "- $_" } grep { !$n{$_} } split /\n/, $before),
                    (map { "+ $_" } grep { !$b{$_} } split /\n/, $now));
    return 0;
}

sub names {
    my ($project) = @_;
    return $t->redis('ZRANGE', "am:{$project}:automations", 0, -1);
}

sub automation_keys {
    my ($project) = @_;
    return [ sort @{ $t->redis('KEYS', "am:{$project}:automation:*") } ];
}

# An error answer: the status and {"detail": "..."} matching $re.
sub is_error {
    my ($r, $status, $re, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    is($r->{status}, $status, "$what: status $status")
        or diag("body: $r->{body}");
    is(ref $r->{json}, 'HASH', "$what: JSON object body")
        or return;
    is_deeply([ sort keys %{ $r->{json} } ], ['detail'],
        "$what: only a detail");
    like($r->{json}{detail} // '', $re, "$what: detail says why");
}

# A create request that must be refused and leave Redis as it was.
sub create_refused {
    my ($what, $body, $status, $re, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my $before = $t->redis_snapshot;
    my $r = api(POST => $o{path} // $API, body => $body);
    is_error($r, $status, $re, $what);
    redis_unchanged($before, "$what: nothing written to Redis");
}

sub create_ok {
    my ($body, $what, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my $r = api(POST => $o{path} // $API,
        (ref $body ? (json => $body) : (body => $body)),
        (exists $o{auth} ? (auth => $o{auth}) : ()));
    is($r->{status}, 200, "$what: 200") or diag("body: $r->{body}");
    return $r;
}

sub epoch {
    my ($s) = @_;
    my ($Y, $M, $D, $h, $m, $sec) =
        $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/ or return undef;
    require Time::Local;
    return Time::Local::timegm($sec, $m, $h, $D, $M - 1, $Y);
}

# ------------------------------------------------------------------ stories

# The reference's own example, byte for byte.
my $REFERENCE_BODY = <<'EOF';
{
"automation_name": "my_automation",
"code": "# Your PromptQL automation code here\nprint('Processing data...')",
"input_schema": {
"type": "object",
"properties": {
"data": {
"type": "array",
"items": {
"type": "object"
}
}
}
},
"output_schema": {
"type": "object",
"properties": {
"result": {
"type": "string"
}
}
},
"description": "Processes input data and returns results",
"override_existing": false
}
EOF

my $IN_SCHEMA = { type => 'object', properties => {
    data => { type => 'array', items => { type => 'object' } } } };
my $OUT_SCHEMA = { type => 'object', properties => {
    result => { type => 'string' } } };
my $CODE = "# Your PromptQL automation code here\nprint('Processing data...')";

subtest 'reference example: create my_automation' => sub {
    is_deeply(names('demo'), [], 'no automation yet');

    my $t0 = time;
    my $r = api(POST => $API, body => $REFERENCE_BODY);
    is($r->{status}, 200, 'status 200') or diag($r->{body});
    is_deeply($r->{json}, {
        automation_name => 'my_automation',
        status          => 'created',
        message         => 'Automation created successfully',
    }, 'exactly the reference response');

    my $h = $t->hgetall('am:{demo}:automation:my_automation');
    is($h->{automation_name}, 'my_automation', 'redis: name');
    is($h->{code}, $CODE, 'redis: code, newline decoded');
    is($h->{description}, 'Processes input data and returns results',
        'redis: description');
    is_deeply($JSON->decode($h->{input_schema} // 'null'), $IN_SCHEMA,
        'redis: input_schema as JSON text');
    is_deeply($JSON->decode($h->{output_schema} // 'null'), $OUT_SCHEMA,
        'redis: output_schema as JSON text');
    unlike($h->{input_schema} // '', qr/\s/, 'redis: schema stored compact');
    is($h->{runtime}, 'python', 'redis: runtime defaults to python');
    like($h->{created_at} // '', $TIME, 'redis: created_at RFC 3339 UTC');
    is($h->{updated_at}, $h->{created_at}, 'redis: updated_at = created_at');
    ok(!exists $h->{override_existing}, 'redis: override_existing not stored');
    ok(!exists $h->{webhook} && !exists $h->{timeout_ms},
        'redis: no webhook or timeout_ms when not given');
    my $c = epoch($h->{created_at} // '');
    ok(defined $c && abs($c - $t0) <= 5, 'redis: created_at is now')
        or diag("created_at $h->{created_at}, now " . int $t0);
    is_deeply(names('demo'), ['my_automation'], 'redis: listed in the index');
};

subtest 'reference example: get my_automation' => sub {
    my $r = api(GET => "${API}my_automation");
    is($r->{status}, 200, 'status 200');
    my $a = $r->{json} || {};

    is_deeply([ sort keys %$a ], [ sort qw(automation_name code input_schema
        output_schema description created_at updated_at runtime timeout_ms
        webhook network preload) ],
        'the reference fields plus runtime, timeout_ms, webhook, network, '
        . 'preload');
    is($a->{automation_name}, 'my_automation', 'automation_name');
    is($a->{code}, $CODE, 'code');
    is_deeply($a->{input_schema}, $IN_SCHEMA, 'input_schema');
    is_deeply($a->{output_schema}, $OUT_SCHEMA, 'output_schema');
    is($a->{description}, 'Processes input data and returns results',
        'description');
    like($a->{created_at} // '', $TIME, 'created_at RFC 3339 UTC');
    like($a->{updated_at} // '', $TIME, 'updated_at RFC 3339 UTC');
    is($a->{created_at},
        $t->hgetall('am:{demo}:automation:my_automation')->{created_at},
        'created_at is the stored one');
    is($a->{runtime}, 'python', 'runtime defaults to python');
    ok(!defined $a->{timeout_ms}
        || ($a->{timeout_ms} =~ /^\d+$/ && $a->{timeout_ms} > 0),
        'timeout_ms null or a positive integer');
    is($a->{webhook}, undef, 'webhook null when none was given');
    is($r->{headers}{'content-length'}, length $r->{body},
        'Content-Length matches the body');
};

subtest 'reference example: list, sorted by name' => sub {
    # created out of order; byte order puts digits, then capitals first
    for my $n (qw(zeta alpha Mid beta_2 0first)) {
        create_ok({ automation_name => $n, code => "print('$n')",
            ($n eq 'alpha' ? (description => 'the first letter') : ()) },
            "create $n");
    }

    my $r = api(GET => $API);
    is($r->{status}, 200, 'status 200');
    is_deeply([ keys %{ $r->{json} || {} } ], ['automations'],
        'one field: automations');
    my $list = $r->{json}{automations} || [];
    is_deeply([ map { $_->{automation_name} } @$list ],
        [ qw(0first Mid alpha beta_2 my_automation zeta) ], 'sorted by name');

    my %by = map { $_->{automation_name} => $_ } @$list;
    is_deeply([ sort keys %{ $by{alpha} || {} } ],
        [ qw(automation_name created_at description updated_at) ],
        'items carry the reference fields only (no code)');
    is($by{alpha}{description}, 'the first letter', 'description');
    is($by{my_automation}{description},
        'Processes input data and returns results', 'description (2)');
    is($by{zeta}{description}, undef, 'no description: null');
    is(scalar(grep { ($_->{created_at} // '') =~ $TIME
                  && ($_->{updated_at} // '') =~ $TIME } @$list),
        6, 'every item has RFC 3339 created_at and updated_at');
};

subtest 'reference example: delete' => sub {
    my $r = api(DELETE => "${API}my_automation");
    is($r->{status}, 200, 'status 200');
    is_deeply($r->{json}, {
        automation_name => 'my_automation',
        status          => 'deleted',
        message         => 'Automation deleted successfully',
    }, 'exactly the reference response');
    is($t->redis('EXISTS', 'am:{demo}:automation:my_automation'), 0,
        'redis: hash gone');
    ok(!grep({ $_ eq 'my_automation' } @{ names('demo') }),
        'redis: gone from the index');
    is_deeply([ map { $_->{automation_name} }
                @{ api(GET => $API)->{json}{automations} || [] } ],
        [ qw(0first Mid alpha beta_2 zeta) ], 'gone from the list');

    my $before = $t->redis_snapshot;
    is_error(api(DELETE => "${API}my_automation"), 404, qr/not found/i,
        'delete again');
    is_error(api(GET => "${API}my_automation"), 404, qr/not found/i,
        'get deleted');
    is_error(api(GET => "${API}never_existed"), 404, qr/not found/i,
        'get missing');
    redis_unchanged($before, 'the 404s changed nothing');
};

subtest 'override_existing' => sub {
    create_ok({ automation_name => 'ov', code => 'v1',
        description => 'first', input_schema => { type => 'object' },
        runtime => 'sh', timeout_ms => 5000 }, 'create ov');
    my $first = $t->hgetall('am:{demo}:automation:ov');

    for my $ov (JSON::PP::false, undef) {
        my $what = defined $ov ? 'override_existing false' : 'no override';
        create_refused("$what on an existing name",
            $JSON->encode({ automation_name => 'ov', code => 'v2',
                (defined $ov ? (override_existing => $ov) : ()) }),
            422, qr/already exists/);
    }
    is_deeply($t->hgetall('am:{demo}:automation:ov'), $first,
        'stored record unchanged');

    sleep 1.1;
    my $r = create_ok({ automation_name => 'ov', code => 'v2',
        override_existing => JSON::PP::true }, 'override true');
    is($r->{json}{automation_name}, 'ov', 'names the automation');

    my $h = $t->hgetall('am:{demo}:automation:ov');
    is($h->{code}, 'v2', 'code replaced');
    is($h->{created_at}, $first->{created_at}, 'created_at kept');
    like($h->{updated_at} // '', $TIME, 'updated_at RFC 3339');
    cmp_ok($h->{updated_at} // '', 'gt', $first->{updated_at},
        'updated_at refreshed');
    ok(!exists $h->{description}, 'description not given: dropped');
    ok(!exists $h->{input_schema}, 'input_schema not given: dropped');
    ok(!exists $h->{timeout_ms}, 'timeout_ms not given: dropped');
    is($h->{runtime}, 'python', 'runtime back to the default');

    my $g = api(GET => "${API}ov")->{json};
    is($g->{code}, 'v2', 'GET: new code');
    is($g->{description}, undef, 'GET: description null');
    is($g->{input_schema}, undef, 'GET: input_schema null');
    is($g->{created_at}, $first->{created_at}, 'GET: created_at kept');
    isnt($g->{updated_at}, $g->{created_at}, 'GET: updated_at moved');
    is(scalar(grep { $_ eq 'ov' } @{ names('demo') }), 1,
        'listed once in the index');

    create_ok({ automation_name => 'ov_new', code => 'x',
        override_existing => JSON::PP::true }, 'override true, new name');
    ok($t->redis('EXISTS', 'am:{demo}:automation:ov_new'),
        'override true creates a new automation too');
};

subtest 'runtime, timeout_ms and webhook' => sub {
    create_ok({ automation_name => 'extras', code => 'echo hi',
        runtime => 'sh', timeout_ms => 1500,
        webhook => 'https://hooks.example.com/a?b=c' }, 'create with extras');
    my $h = $t->hgetall('am:{demo}:automation:extras');
    is($h->{runtime}, 'sh', 'redis: runtime');
    is($h->{timeout_ms}, '1500', 'redis: timeout_ms');
    is($h->{webhook}, 'https://hooks.example.com/a?b=c', 'redis: webhook');

    my $r = api(GET => "${API}extras");
    is($r->{json}{runtime}, 'sh', 'GET: runtime');
    ok(!ref $r->{json}{timeout_ms} && $r->{body} =~ /"timeout_ms":1500[,}]/,
        'GET: timeout_ms is the number 1500');
    is($r->{json}{webhook}, 'https://hooks.example.com/a?b=c', 'GET: webhook');

    for my $ok ([ 1, 'http://x' ], [ 3600000, 'http://127.0.0.1:9/h' ]) {
        my ($ms, $url) = @$ok;
        create_ok({ automation_name => "edge_$ms", code => 'c',
            timeout_ms => $ms, webhook => $url }, "timeout_ms $ms, $url");
        is($t->hgetall("am:{demo}:automation:edge_$ms")->{timeout_ms}, $ms,
            "redis: timeout_ms $ms");
    }

    my $base = '{"automation_name":"bad_extra","code":"c",';
    my @bad = (
        [ 'runtime "Py thon"',  '"runtime":"Py thon"',  qr/runtime/ ],
        [ 'runtime ""',         '"runtime":""',         qr/runtime/ ],
        [ 'runtime 1',          '"runtime":1',          qr/runtime/ ],
        [ 'timeout_ms 0',       '"timeout_ms":0',       qr/timeout_ms/ ],
        [ 'timeout_ms -1',      '"timeout_ms":-1',      qr/timeout_ms/ ],
        [ 'timeout_ms 1.5',     '"timeout_ms":1.5',     qr/timeout_ms/ ],
        [ 'timeout_ms "10"',    '"timeout_ms":"10"',    qr/timeout_ms/ ],
        [ 'timeout_ms 3600001', '"timeout_ms":3600001', qr/timeout_ms/ ],
        [ 'timeout_ms true',    '"timeout_ms":true',    qr/timeout_ms/ ],
        [ 'webhook ftp://x',    '"webhook":"ftp://x"',  qr/webhook/ ],
        [ 'webhook "not a url"', '"webhook":"not a url"', qr/webhook/ ],
        [ 'webhook "http://"',  '"webhook":"http://"',  qr/webhook/ ],
        [ 'webhook with a space', '"webhook":"http://a b/"', qr/webhook/ ],
        [ 'webhook 3000 chars',
          '"webhook":"https://example.com/' . ('a' x 2980) . '"',
          qr/webhook/ ],
        [ 'webhook 1', '"webhook":1', qr/webhook/ ],
    );
    for my $b (@bad) {
        create_refused($b->[0], "$base$b->[1]}", 422, $b->[2]);
    }
    is(api(GET => "${API}bad_extra")->{status}, 404, 'never created');
};

subtest 'network: none or default, copied into each execution' => sub {
    for my $net (qw(none default)) {
        create_ok({ automation_name => "net_$net", code => 'echo {}',
            runtime => 'sh', network => $net }, "network $net");
        is($t->hgetall("am:{demo}:automation:net_$net")->{network}, $net,
            "redis: network $net");
        is(api(GET => "${API}net_$net")->{json}{network}, $net,
            "GET: network $net");

        # no worker here: the run stays queued, its record as enqueued
        my $r = api(POST => "${API}net_$net/run", json => { input => [] },
            headers => { Prefer => 'respond-async' });
        is($r->{status}, 202, "run net_$net: queued") or diag($r->{body});
        my $id = $r->{json}{execution_id} // '';
        is($t->hgetall("am:{demo}:execution:$id")->{network}, $net,
            "redis: the execution of net_$net has network $net");
    }

    create_ok({ automation_name => 'net_absent', code => 'c' },
        'network not given');
    ok(!exists $t->hgetall('am:{demo}:automation:net_absent')->{network},
        'redis: no network field');
    my $r = api(GET => "${API}net_absent");
    ok(exists $r->{json}{network} && !defined $r->{json}{network},
        'GET: network null');

    my $base = '{"automation_name":"bad_net","code":"c",';
    for my $b ([ 'network "host"', '"network":"host"' ],
               [ 'network ""', '"network":""' ],
               [ 'network "None"', '"network":"None"' ],
               [ 'network 0', '"network":0' ],
               [ 'network ["none"]', '"network":["none"]' ]) {
        create_refused($b->[0], "$base$b->[1]}", 422,
            qr/network must be "none" or "default"/);
    }
    is(api(GET => "${API}bad_net")->{status}, 404, 'never created');
};

subtest 'bad bodies: clear errors, nothing written' => sub {
    my $keys = automation_keys('demo');
    my $c = '"code":"c"';
    my @cases = (
        # what, body, status, detail
        [ 'malformed JSON', '{"automation_name": "x", "code": }',
          422, qr/JSON/ ],
        [ 'not JSON at all', 'automation_name=x&code=c', 422, qr/JSON/ ],
        [ 'unquoted keys', '{automation_name: "x", code: "c"}', 422,
          qr/JSON/ ],
        [ 'truncated JSON', '{"automation_name":"trunc",' . $c, 422,
          qr/JSON/ ],
        [ 'truncated in a string', '{"automation_name":"tru', 422,
          qr/JSON/ ],
        [ 'trailing garbage', '{"automation_name":"tg",' . $c . '} x', 422,
          qr/JSON/ ],
        [ 'two objects', '{"automation_name":"t1",' . $c
          . '}{"automation_name":"t2",' . $c . '}', 422, qr/JSON/ ],
        [ 'invalid UTF-8', qq({"automation_name":"u8","code":"\xff\xfe"}),
          422, qr/JSON|UTF/i ],
        [ 'NUL byte', qq({"automation_name":"nul","code":"a\0b"}), 422,
          qr/JSON|NUL/ ],
        [ 'empty body', '', 422, qr/empty|JSON/ ],
        [ 'whitespace body', "  \r\n ", 422, qr/JSON|empty/ ],
        [ 'array body', '[]', 422, qr/object/ ],
        [ 'array of an object', '[{"automation_name":"x",' . $c . '}]', 422,
          qr/object/ ],
        [ 'string body', '"x"', 422, qr/object/ ],
        [ 'number body', '1', 422, qr/object/ ],
        [ 'null body', 'null', 422, qr/object/ ],
        [ 'automation_name 1', '{"automation_name":1,' . $c . '}', 422,
          qr/automation_name/ ],
        [ 'automation_name null', '{"automation_name":null,' . $c . '}',
          422, qr/automation_name/ ],
        [ 'automation_name []', '{"automation_name":[],' . $c . '}', 422,
          qr/automation_name/ ],
        [ 'code 1', '{"automation_name":"wt","code":1}', 422, qr/code/ ],
        [ 'code []', '{"automation_name":"wt","code":[]}', 422, qr/code/ ],
        [ 'code {}', '{"automation_name":"wt","code":{}}', 422, qr/code/ ],
        [ 'code null', '{"automation_name":"wt","code":null}', 422,
          qr/code/ ],
        [ 'code true', '{"automation_name":"wt","code":true}', 422,
          qr/code/ ],
        [ 'description 1', '{"automation_name":"wt",' . $c
          . ',"description":1}', 422, qr/description/ ],
        [ 'description {}', '{"automation_name":"wt",' . $c
          . ',"description":{}}', 422, qr/description/ ],
        [ 'input_schema "x"', '{"automation_name":"wt",' . $c
          . ',"input_schema":"x"}', 422, qr/input_schema/ ],
        [ 'input_schema []', '{"automation_name":"wt",' . $c
          . ',"input_schema":[]}', 422, qr/input_schema/ ],
        [ 'input_schema 1', '{"automation_name":"wt",' . $c
          . ',"input_schema":1}', 422, qr/input_schema/ ],
        [ 'output_schema "x"', '{"automation_name":"wt",' . $c
          . ',"output_schema":"x"}', 422, qr/output_schema/ ],
        [ 'output_schema []', '{"automation_name":"wt",' . $c
          . ',"output_schema":[]}', 422, qr/output_schema/ ],
        [ 'override_existing "yes"', '{"automation_name":"wt",' . $c
          . ',"override_existing":"yes"}', 422, qr/override_existing/ ],
        [ 'override_existing 1', '{"automation_name":"wt",' . $c
          . ',"override_existing":1}', 422, qr/override_existing/ ],
        [ 'missing code', '{"automation_name":"nocode"}', 422, qr/code/ ],
        [ 'missing automation_name', '{' . $c . '}', 422,
          qr/automation_name/ ],
        [ 'empty object', '{}', 422, qr/automation_name|code/ ],
        [ 'unknown field', '{"automation_name":"wt",' . $c
          . ',"colour":"blue"}', 422, qr/colour/ ],
        [ 'unknown field set to null', '{"automation_name":"wt",' . $c
          . ',"colour":null}', 422, qr/colour/ ],
        [ 'valid fields after a bad one', '{"automation_name":"wt",'
          . '"description":1,' . $c . '}', 422, qr/description/ ],
    );
    for my $case (@cases) {
        create_refused(@$case);
    }
    is_deeply(automation_keys('demo'), $keys,
        'no automation key appeared');

    # an escaped NUL is valid JSON: refuse it or keep it, never cut there
    my $r = api(POST => $API,
        body => '{"automation_name":"nul_code","code":"a\\u0000b"}');
    my $code = $t->hgetall('am:{demo}:automation:nul_code')->{code};
    ok($r->{status} == 422 && !defined $code
        || $r->{status} == 200 && defined $code && $code eq "a\0b",
        'code "a\\u0000b": refused, or stored whole (not cut at the NUL)')
        or diag("status $r->{status}, stored code: "
                . (defined $code ? "'$code'" : 'none'));
    api(DELETE => "${API}nul_code");
};

subtest 'automation names' => sub {
    my @bad = (
        [ 'empty name', '' ],
        [ '129 characters', 'a' x 129 ],
        [ 'a/b', 'a/b' ],
        [ '..', '..' ],
        [ '../x', '../x' ],
        [ 'a..b', 'a..b' ],
        [ '.hidden', '.hidden' ],
        [ 'a b', 'a b' ],
        [ 'a\tb', "a\tb" ],
        [ 'a\nb', "a\nb" ],
        [ 'a\x01b', "a\x01b" ],
        [ 'a\x7fb', "a\x7fb" ],
        [ 'trailing \0', "ab\0" ],
        [ 'é', "\x{e9}" ],
        [ 'caf\x{e9}', "caf\x{e9}" ],
        [ 'a:b', 'a:b' ],
        [ 'a*', 'a*' ],
        [ '{demo}', '{demo}' ],
        [ 'a\\b', 'a\\b' ],
    );
    my $keys = automation_keys('demo');
    for my $b (@bad) {
        create_refused("name $b->[0]",
            $JSON->encode({ automation_name => $b->[1], code => 'c' }),
            422, qr/name|u0000/);
    }
    is_deeply(automation_keys('demo'), $keys, 'no automation key appeared');

    my $long = join '', map { ('a' .. 'z', 0 .. 9)[$_ % 36] } 1 .. 128;
    for my $n ($long, 'v1.2', 'A-Z_0-9', 'x.', '_') {
        create_ok({ automation_name => $n, code => 'c' },
            'name ' . (length $n > 20 ? length($n) . ' chars' : $n));
        is($t->hgetall("am:{demo}:automation:$n")->{automation_name}, $n,
            'redis: stored under its name');
        my $g = api(GET => "$API$n");
        is($g->{status}, 200, 'GET by that name');
        is($g->{json}{automation_name}, $n, 'GET returns it');
    }

    for my $p ('a%20b', '.hidden', 'a..b', 'caf%C3%A9', 'a%01b', 'a%3Ab',
               'x' x 129) {
        my $before = $t->redis_snapshot;
        my $show = length $p > 20 ? length($p) . ' chars' : $p;
        is_error(api(GET => "$API$p"), 422, qr/name/, "GET $show");
        is_error(api(DELETE => "$API$p"), 422, qr/name/, "DELETE $show");
        redis_unchanged($before, "$show: nothing changed");
    }
};

subtest 'JSON nesting' => sub {
    my $deep = sub {
        my ($n) = @_;
        my $v = { type => 'object' };
        # a valid schema at every depth: schemas are compiled at create
        $v = { items => $v } for 2 .. $n;
        return $v;
    };

    create_refused('input_schema nested 40 deep',
        $JSON->encode({ automation_name => 'deep40', code => 'c',
            input_schema => $deep->(40) }), 422, qr/deep|nest/i);
    create_refused('array nested 1000 deep',
        '{"automation_name":"deeparr","code":"c","input_schema":{"a":'
        . ('[' x 1000) . (']' x 1000) . '}}', 422, qr/deep|nest/i);

    my $twenty = $deep->(20);
    create_ok({ automation_name => 'deep20', code => 'c',
        input_schema => $twenty }, 'input_schema nested 20 deep');
    is_deeply($JSON->decode(
            $t->hgetall('am:{demo}:automation:deep20')->{input_schema} // 'null'),
        $twenty, 'redis: stored intact');
    is_deeply(api(GET => "${API}deep20")->{json}{input_schema}, $twenty,
        'GET: returned intact');

    # brackets inside strings are not nesting
    my $text = '{"description":"' . ('[{' x 100) . '\\"' . '"}';
    create_ok('{"automation_name":"brackets","code":"c","input_schema":'
        . $text . '}', 'brackets inside strings');
    is(api(GET => "${API}brackets")->{json}{input_schema}{description},
        ('[{' x 100) . '"', 'GET: string intact');
};

subtest 'body size limit' => sub {
    my $pad = sub {
        my ($name, $size) = @_;
        my $head = qq({"automation_name":"$name","code":");
        return $head . ('x' x ($size - length($head) - 2)) . '"}';
    };

    my $small = $pad->('fits4k', 4000);
    is(length $small, 4000, '4000-byte body');
    create_ok($small, 'under the 4k limit', path => '/small/');
    is(length($t->hgetall('am:{demo}:automation:fits4k')->{code} // ''),
        4000 - length('{"automation_name":"fits4k","code":""}'),
        'redis: whole code stored');

    my $big = $pad->('big5k', 5120);
    my $before = $t->redis_snapshot;

    my $r = api(POST => '/small/', body => $big);
    is_error($r, 413, qr/too large/i, '5 KB with Content-Length');

    my $raw = $t->raw("POST /small/ HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $KEY{rw}\r\n"
        . "Content-Type: application/json\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        . join('', map { sprintf("400\r\n%s\r\n", substr($big, $_ * 1024, 1024)) }
                   0 .. 4)
        . "0\r\n\r\n");
    my $p = AmTest::parse_response($raw);
    is($p->{status}, 413, '5 KB chunked: 413');
    like($p->{headers}{'content-type'} // '', qr{^application/json},
        '5 KB chunked: JSON');
    my $j = eval { $JSON->decode($p->{body}) } || {};
    like($j->{detail} // '', qr/too large/i, '5 KB chunked: detail');

    redis_unchanged($before, 'nothing written');

    # the limit is per location: the API location keeps the 1m default
    my $r2 = create_ok($pad->('big5k', 5120), 'same 5 KB body elsewhere');
    is(length($t->hgetall('am:{demo}:automation:big5k')->{code} // ''),
        5120 - length('{"automation_name":"big5k","code":""}'),
        'redis: stored in full');
    is_error(api(POST => $API, body => $pad->('huge', 1024 * 1024 + 10)),
        413, qr/too large/i, 'over the 1m default');
};

subtest 'methods and paths' => sub {
    my $before = $t->redis_snapshot;

    for my $m (qw(PUT PATCH DELETE)) {
        my $r = api($m => $API, body => '{}');
        is_error($r, 405, qr/not allowed/i, "$m collection");
        is($r->{headers}{allow}, 'GET, POST', "$m collection: Allow");
    }
    for my $m (qw(POST PUT PATCH)) {
        my $r = api($m => "${API}alpha", body => '{}');
        is_error($r, 405, qr/not allowed/i, "$m item");
        is($r->{headers}{allow}, 'GET, DELETE', "$m item: Allow");
    }
    for my $p ('a/b/c', 'alpha/run/x', 'alpha/x', 'alpha/x/') {
        is_error(api(GET => "$API$p"), 404, qr/not found/i, "GET $API$p");
    }
    redis_unchanged($before, 'nothing changed');
};

subtest 'HEAD is GET without a body' => sub {
    for my $p ($API, "${API}alpha", "${API}missing") {
        my $g = api(GET => $p);
        my $h = api(HEAD => $p);
        is($h->{status}, $g->{status}, "HEAD $p: status $g->{status}");
        is($h->{body}, '', "HEAD $p: no body");
        is($h->{headers}{'content-type'}, 'application/json',
            "HEAD $p: JSON type");
        is($h->{headers}{'content-length'}, $g->{headers}{'content-length'},
            "HEAD $p: GET's Content-Length");
    }
};

subtest 'scopes' => sub {
    my $before = $t->redis_snapshot;

    # read only
    is(api(GET => $API, auth => $KEY{read})->{status}, 200, 'read key: list');
    is(api(GET => "${API}alpha", auth => $KEY{read})->{status}, 200,
        'read key: get');
    is_error(api(POST => $API, auth => $KEY{read},
            json => { automation_name => 'by_reader', code => 'c' }),
        404, $NO_PROJECT_ADMIN, 'read key: create');
    is_error(api(DELETE => "${API}alpha", auth => $KEY{read}), 404,
        $NO_AUTOMATION_ADMIN, 'read key: delete');
    redis_unchanged($before, 'read key: nothing changed');

    # write only
    is_error(api(GET => $API, auth => $KEY{write}), 404, $NO_PROJECT,
        'write key: list');
    is_error(api(GET => "${API}alpha", auth => $KEY{write}), 404,
        $NO_AUTOMATION, 'write key: get');
    create_ok({ automation_name => 'by_writer', code => 'c' },
        'write key: create', auth => $KEY{write});
    ok($t->redis('EXISTS', 'am:{demo}:automation:by_writer'),
        'write key: created in Redis');
    is(api(DELETE => "${API}by_writer", auth => $KEY{write})->{status}, 200,
        'write key: delete');
    is($t->redis('EXISTS', 'am:{demo}:automation:by_writer'), 0,
        'write key: deleted in Redis');

    # run only: nothing of the management API
    for my $req ([ $NO_PROJECT, GET => $API ],
                 [ $NO_PROJECT_ADMIN, POST => $API, json => {} ],
                 [ $NO_AUTOMATION, GET => "${API}alpha" ],
                 [ $NO_AUTOMATION_ADMIN, DELETE => "${API}alpha" ]) {
        my ($re, @call) = @$req;
        is_error(api(@call, auth => $KEY{run}), 404, $re,
            "run key: @call[0, 1]");
    }

    # admin: everything
    create_ok({ automation_name => 'by_admin', code => 'c' },
        'admin key: create', auth => $KEY{admin});
    is(api(GET => "${API}by_admin", auth => $KEY{admin})->{status}, 200,
        'admin key: get');
    is(api(DELETE => "${API}by_admin", auth => $KEY{admin})->{status}, 200,
        'admin key: delete');

    # JWT roles
    my $reader = jwt(project => 'demo', role => 'read');
    is(api(GET => $API, auth => $reader)->{status}, 200, 'JWT read: list');
    is(api(GET => "${API}alpha", auth => $reader)->{status}, 200,
        'JWT read: get');
    my $snap = $t->redis_snapshot;
    is_error(api(POST => $API, auth => $reader,
            json => { automation_name => 'by_jwt_reader', code => 'c' }),
        404, $NO_PROJECT_ADMIN, 'JWT read: create');
    is_error(api(DELETE => "${API}alpha", auth => $reader), 404,
        $NO_AUTOMATION_ADMIN, 'JWT read: delete');
    redis_unchanged($snap, 'JWT read: nothing changed');

    my $writer = jwt(project => 'demo', role => 'write');
    is_error(api(GET => $API, auth => $writer), 404, $NO_PROJECT,
        'JWT write: list');
    create_ok({ automation_name => 'by_jwt_writer', code => 'c' },
        'JWT write: create', auth => $writer);

    my $both = jwt(project => 'demo', role => [ 'read', 'write' ]);
    my $l = api(GET => $API, auth => $both);
    is($l->{status}, 200, 'JWT [read, write]: list');
    ok(grep({ $_->{automation_name} eq 'by_jwt_writer' }
            @{ $l->{json}{automations} || [] }),
        'JWT [read, write]: lists what the writer created');
    create_ok({ automation_name => 'by_jwt_both', code => 'c' },
        'JWT [read, write]: create', auth => $both);
    is(api(DELETE => "${API}by_jwt_both", auth => $both)->{status}, 200,
        'JWT [read, write]: delete');
    is(api(DELETE => "${API}by_jwt_writer", auth => $both)->{status}, 200,
        'JWT [read, write]: delete (2)');

    my $adm = jwt(project => 'demo', role => 'admin');
    is(api(GET => "${API}alpha", auth => $adm)->{status}, 200,
        'JWT admin: get');

    my $none = jwt(project => 'demo');
    is_error(api(GET => $API, auth => $none), 404, $NO_PROJECT,
        'JWT without a role: list');
    is_error(api(POST => "${API}alpha/run", auth => $none, json => {}), 404,
        $NO_AUTOMATION, 'JWT without a role: run');
    is_error(api(GET => "${API}alpha/executions/exec_" . ("0" x 24),
            auth => $none), 404,
        $NO_AUTOMATION, 'JWT without a role: execution');

    # no or bad credentials
    my $r = api(GET => $API, auth => undef);
    is_error($r, 401, qr/credentials/i, 'no credentials');
    like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/,
        'no credentials: WWW-Authenticate');
    is_error(api(GET => $API, auth => 'amk_demo_' . ('0' x 64)), 401,
        qr/invalid/i, 'unknown API key');
    is_error(api(GET => $API, auth => AmTest::jwt(alg => 'HS256',
            key => 'x' x 40, claims => { project => 'demo', role => 'read',
            exp => int(time) + 60 })), 401, qr/invalid/i,
        'JWT signed with another key');
    is_error(api(GET => $API, auth => jwt(project => 'demo', role => 'read',
            exp => int(time) - 3600)), 401, qr/invalid/i, 'expired JWT');
};

subtest 'project isolation' => sub {
    my $demo_before = $t->redis_snapshot;

    my $r = api(GET => $API, auth => $KEY{other});
    is($r->{status}, 200, 'other key: list');
    is_deeply($r->{json}, { automations => [] }, "other sees an empty list");
    is_error(api(GET => "${API}alpha", auth => $KEY{other}), 404,
        qr/not found/i, "other: GET demo's alpha");
    is_error(api(DELETE => "${API}alpha", auth => $KEY{other}), 404,
        qr/not found/i, "other: DELETE demo's alpha");
    redis_unchanged($demo_before, "demo's data untouched");

    my $oj = jwt(project => 'other', role => [ 'read', 'write' ]);
    is_deeply(api(GET => $API, auth => $oj)->{json}, { automations => [] },
        'other JWT: empty list');
    is(api(GET => "${API}alpha", auth => $oj)->{status}, 404,
        "other JWT: demo's alpha not found");

    create_ok({ automation_name => 'alpha', code => 'other code' },
        'other: create its own alpha', auth => $oj);
    is($t->hgetall('am:{other}:automation:alpha')->{code}, 'other code',
        "redis: other's alpha under other's hash tag");
    is($t->hgetall('am:{demo}:automation:alpha')->{code}, "print('alpha')",
        "redis: demo's alpha untouched");
    is(api(GET => "${API}alpha")->{json}{code}, "print('alpha')",
        'demo still gets its own alpha');
    is_deeply([ map { $_->{automation_name} }
                @{ api(GET => $API, auth => $KEY{other})->{json}{automations} } ],
        ['alpha'], 'other lists only its own');
    is(api(DELETE => "${API}alpha", auth => $oj)->{status}, 200,
        "other deletes its alpha");
    ok($t->redis('EXISTS', 'am:{demo}:automation:alpha'),
        "demo's alpha survives");

    # a JWT naming a project that does not exist
    my $ghost = jwt(project => 'ghost', role => 'admin');
    my $snap = $t->redis_snapshot;
    is_error(api(GET => $API, auth => $ghost), 404, qr/Project not found/,
        'unknown project: list');
    is_error(api(GET => "${API}alpha", auth => $ghost), 404,
        qr/Project not found/, 'unknown project: get');
    is_error(api(POST => $API, auth => $ghost,
            json => { automation_name => 'boo', code => 'c' }),
        404, qr/Project not found/, 'unknown project: create');
    # the enqueue script looks for the project only when the automation is
    # not there: it still says which of the two is missing
    for my $prefer (undef, 'respond-async') {
        is_error(api(POST => "${API}alpha/run", auth => $ghost,
                json => { input => [] },
                headers => { $prefer ? (Prefer => $prefer) : () }),
            404, qr/Project not found/,
            'unknown project: run' . ($prefer ? ", $prefer" : ''));
    }
    redis_unchanged($snap, 'unknown project: nothing written');
    is_deeply($t->redis('KEYS', 'am:{ghost}*'), [], 'no ghost keys');

    # a JWT reaching two projects must say which
    my $two = jwt(project => [ 'demo', 'other' ], role => 'read');
    is_error(api(GET => $API, auth => $two), 403, qr/project/i,
        'two projects, none chosen: 403');
};

subtest 'automations_project' => sub {
    my $r = api(GET => '/p/', headers => { 'X-Project' => 'demo' });
    is($r->{status}, 200, 'demo key, X-Project demo: list');
    ok(grep({ $_->{automation_name} eq 'alpha' }
            @{ $r->{json}{automations} || [] }),
        "X-Project demo: demo's automations");
    is(api(GET => '/p/alpha', headers => { 'X-Project' => 'demo' })->{status},
        200, 'X-Project demo: get');

    my $snap = $t->redis_snapshot;
    is_error(api(GET => '/p/', headers => { 'X-Project' => 'other' }), 404,
        $NO_PROJECT, 'demo key, X-Project other');
    is_error(api(POST => '/p/', headers => { 'X-Project' => 'other' },
            json => { automation_name => 'sneaky', code => 'c' }),
        404, $NO_PROJECT_ADMIN, 'demo key, X-Project other: create');
    is_error(api(GET => '/p/alpha', headers => { 'X-Project' => 'other' }),
        404, $NO_AUTOMATION, 'demo key, X-Project other: get');
    is_error(api(GET => '/p/'), 404, $NO_PROJECT, 'no X-Project');
    is_error(api(GET => '/p/', headers => { 'X-Project' => 'ghost' }), 404,
        $NO_PROJECT, 'X-Project of an unknown project');
    redis_unchanged($snap, 'nothing written');

    # a JWT of two projects picks one with X-Project
    my $two = jwt(project => [ 'demo', 'other' ], role => 'read');
    is(api(GET => '/p/alpha', auth => $two,
            headers => { 'X-Project' => 'demo' })->{status},
        200, "two-project JWT, X-Project demo: demo's alpha");
    is_deeply(api(GET => '/p/', auth => $two,
            headers => { 'X-Project' => 'other' })->{json},
        { automations => [] }, 'two-project JWT, X-Project other: its list');

    # automations_auth off: a fixed project, no credentials needed
    my $o = api(GET => '/open/', auth => undef);
    is($o->{status}, 200, 'auth off: list without credentials');
    ok(grep({ $_->{automation_name} eq 'alpha' }
            @{ $o->{json}{automations} || [] }), "auth off: demo's list");
    create_ok({ automation_name => 'open_made', code => 'c' },
        'auth off: create', path => '/open/', auth => undef);
    ok($t->redis('EXISTS', 'am:{demo}:automation:open_made'),
        'auth off: written to demo');
    is(api(GET => '/open/open_made', auth => undef)->{status}, 200,
        'auth off: get');
    is(api(DELETE => '/open/open_made', auth => undef)->{status}, 200,
        'auth off: delete');
    is($t->redis('EXISTS', 'am:{demo}:automation:open_made'), 0,
        'auth off: deleted from demo');
};

subtest 'client disconnects' => sub {
    my @workers = $t->nginx_worker_pids;
    my $before = $t->redis_snapshot;
    my $hdr = "Host: localhost\r\nAuthorization: Bearer $KEY{rw}\r\n";

    for my $i (1 .. 50) {
        my $p = $i % 2 ? $API : "${API}alpha";
        $t->raw("GET $p HTTP/1.1\r\n$hdr\r\n", close_after => 1);
    }
    for my $i (1 .. 20) {
        $t->raw("POST $API HTTP/1.1\r\n$hdr"
            . "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            . qq({"automati), close_after => 1);
    }
    # and while Redis holds the reply back
    $t->redis('CLIENT', 'PAUSE', '300', 'WRITE');
    for my $i (1 .. 10) {
        $t->raw("DELETE ${API}gone_$i HTTP/1.1\r\n$hdr\r\n", close_after => 1);
    }
    sleep 0.5;

    ok($t->running('nginx'), 'nginx still runs');
    is_deeply([ $t->nginx_worker_pids ], \@workers, 'same worker process');
    my $r = api(GET => "${API}alpha");
    is($r->{status}, 200, 'nginx answers normally');
    is($r->{json}{automation_name}, 'alpha', 'with the right body');
    redis_unchanged($before, 'no half-written automation, nothing deleted');
    $t->error_log_clean(name => 'error log clean after disconnects');
};

subtest 'pipelined keepalive requests' => sub {
    my $hdr = "Host: localhost\r\nAuthorization: Bearer $KEY{rw}\r\n";
    my $raw = $t->raw("GET ${API}alpha HTTP/1.1\r\n$hdr\r\n"
        . "GET ${API}missing HTTP/1.1\r\n$hdr\r\n"
        . "GET ${API}zeta HTTP/1.1\r\n${hdr}Connection: close\r\n\r\n");

    my @res;
    while ($raw =~ s{^(HTTP/1\.1 (\d+)[^\r]*\r\n(.*?)\r\n\r\n)}{}s) {
        my ($status, $head) = ($2, $3);
        my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
        my ($ct) = $head =~ /^Content-Type:\s*(\S+)/mi;
        my $body = substr($raw, 0, $len // 0, '');
        push @res, [ $status, $ct, eval { $JSON->decode($body) } ];
    }
    is(scalar @res, 3, 'three responses');
    is_deeply([ map { $_->[0] } @res ], [ 200, 404, 200 ], 'in order');
    is($res[0][2]{automation_name}, 'alpha', 'first: alpha');
    like($res[1][2]{detail} // '', qr/not found/i, 'second: not found');
    is($res[2][2]{automation_name}, 'zeta', 'third: zeta');
    is_deeply([ map { $_->[1] } @res ], [ ('application/json') x 3 ],
        'all JSON');
    is($raw, '', 'nothing else');
};

subtest 'every response is application/json' => sub {
    cmp_ok($responses, '>', 200, "$responses responses checked");
    is_deeply(\@not_json, [], 'all of them application/json');
};

$t->stop_nginx;
$t->error_log_clean;

done_testing;
