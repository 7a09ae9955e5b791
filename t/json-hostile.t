#!/usr/bin/perl
# Hostile JSON, as a tenant with write and run scope would send it, through
# nginx and through the worker: nesting hidden behind a comment (which once
# killed the nginx worker with signal 11, and the automations-worker when
# printed as a run's output), bare deep nesting, repeated keys, comments.
# Each is refused with a JSON error that says why, the same nginx worker
# answers afterwards, and the automations-worker ends the execution as
# `error` and takes the next run.

use strict;
use warnings;

use JSON::PP;
use Test::More;

use AmTest;

my $t = AmTest->new;
my $W = $t->build . '/automations-worker';

plan skip_all => 'module, worker or CLI not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl' && -x $W;

my $API = '/automations/v1/';
my $START = '/api/start-automation/';
my $SLOW = $t->slow;
my $N = 400_000;

# the reported body: ~800 KB, nesting a scanner skipping comments misses
my $HIDDEN = '/*"*/' . ('[' x $N) . (']' x $N);
my $BARE = ('[' x $N) . (']' x $N);

$t->start_redis;
$t->ctl('project', 'create', 'demo');

sub fields {
    my ($out) = @_;
    return { $out =~ /^(\w+)=(\S+)$/mg };
}

my $KEY = fields(scalar $t->ctl('apikey', 'create', 'demo',
                                '--scopes', 'read write run'))->{key};
my $PAIR = fields(scalar $t->ctl('tokenpair', 'create', 'demo'));

# one nginx worker, so that "the same worker answers" means something
$t->write_nginx(
    workers => 1,
    http => <<'EOF',
automations_redis %%REDIS%%;
automations_run_wait 10s;
EOF
    server => <<'EOF',
location /automations/v1/ {
    automations_api;
}

location /api/start-automation/ {
    automations_start_api;
}
EOF
);
$t->start_nginx;

$t->spawn(name => 'w1', cmd => [ $W, '--redis', $t->redis_addr,
    '--name', 'w1' ]);

sub api {
    my ($method, $path, %o) = @_;
    my %h = (Authorization => "Bearer $KEY");
    $h{'Content-Type'} = 'application/json' if defined $o{body};
    return $t->http($method, $path, headers => \%h, timeout => 30, %o);
}

sub start {
    my ($path, %o) = @_;
    return $t->http('POST', $path, timeout => 30, headers => {
        Authorization  => "Token $PAIR->{token}",
        'X-Api-Key'    => $PAIR->{api_key},
        'Content-Type' => 'application/json',
    }, %o);
}

sub is_json_error {
    my ($r, $status, $re, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    is($r->{status}, $status, "$what: $status")
        or diag(substr($r->{body}, 0, 300));
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         "$what: JSON");
    like($r->{json}{detail} // '', $re, "$what: the reason");
}

sub create {
    my ($name, $code) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = api(POST => $API, json => { automation_name => $name,
                                        runtime => 'sh', code => $code });
    is($r->{status}, 200, "create $name") or diag($r->{body});
}

sub worker_pid {
    my @p = $t->nginx_worker_pids;
    return @p == 1 ? $p[0] : "@p";
}

create('echo', q(printf '{"ok":true}'));

my $pid = worker_pid();
ok($pid, "one nginx worker ($pid)");

subtest 'nesting hidden behind a comment: refused, nginx lives' => sub {
    is_json_error(api(POST => $API, body => $HIDDEN), 422, qr/comment/,
                  'create');
    is_json_error(api(POST => "${API}echo/run", body => $HIDDEN), 422,
                  qr/comment/, 'run');
    is_json_error(start("${START}demo/echo", body => $HIDDEN), 400,
                  qr/comment/, 'start API');

    is(worker_pid(), $pid, 'the same nginx worker is running');
    my $r = api(GET => "${API}echo");
    is($r->{status}, 200, 'and answers the next request');
    unlike($t->error_log, qr/exited on signal|core dumped/,
           'no worker died (error log)');
};

subtest 'deep nesting without a comment: refused by depth' => sub {
    is_json_error(api(POST => $API, body => $BARE), 422,
                  qr/nested deeper than 32/, 'create');
    is_json_error(api(POST => "${API}echo/run", body => $BARE), 422,
                  qr/nested deeper than 32/, 'run');
    my $deep = '{"automation_name":"deep","code":"c","x":'
             . ('[' x 40) . (']' x 40) . '}';
    is_json_error(api(POST => $API, body => $deep), 422,
                  qr/nested deeper than 32/, '40 levels in a field');
    is(api(GET => "${API}deep")->{status}, 404, 'not created');
    is(worker_pid(), $pid, 'the same nginx worker is running');
};

subtest 'repeated keys: refused, naming the key' => sub {
    is_json_error(api(POST => $API, body => '{"automation_name":"dup1",'
                      . '"code":"c","automation_name":"dup2"}'),
                  422, qr/^Invalid JSON: duplicate key "automation_name"$/,
                  'create');
    is(api(GET => "${API}dup1")->{status}, 404, 'first name not created');
    is(api(GET => "${API}dup2")->{status}, 404, 'last name not created');

    is_json_error(api(POST => "${API}echo/run",
                      body => '{"input":[],"input":[{"a":1}]}'),
                  422, qr/duplicate key "input"/, 'run');
    is_json_error(api(POST => "${API}echo/run",
                      body => '{"input":[{"a":1,"b":2,"a":3}]}'),
                  422, qr/duplicate key "a"/, 'run, key deep inside');
    is_json_error(start("${START}demo/echo",
                        body => '{"seed":{},"seed":{"x":1}}'),
                  400, qr/duplicate key "seed"/, 'start API');
};

subtest 'comments: refused' => sub {
    is_json_error(api(POST => $API, body => '{"automation_name":"cm",'
                      . '"code":"c" /* note */}'),
                  422, qr/comment/, 'block comment');
    is_json_error(api(POST => $API, body => qq({"automation_name":"cm",\n)
                      . qq(// note\n"code":"c"})),
                  422, qr/comment/, 'line comment');
    is(api(GET => "${API}cm")->{status}, 404, 'not created');
};

# ----------------------------------------------------- through the worker

my $wpid = $t->pid('w1');

# Runs an automation through the run endpoint; returns the JSON answer.
sub run_of {
    my ($name) = @_;
    my $r = api(POST => "${API}$name/run", json => {});
    return ($r->{status}, $r->{json} || {});
}

sub output_refused {
    my ($name, $code, $re, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    create($name, $code);
    my ($status, $j) = run_of($name);
    is($status, 422, "$what: run answers 422");
    is($j->{status}, 'error', "$what: execution ends error");
    like($j->{error} // '', $re, "$what: the reason");
    ok($t->running('w1') && $t->pid('w1') == $wpid,
       "$what: the worker lives");

    ($status, $j) = run_of('echo');
    is($status, 200, "$what: the next run succeeds");
    is_deeply($j->{output}, { ok => JSON::PP::true() },
              "$what: with its output");
}

output_refused('hidden-output',
    q(printf '/*"*/'; head -c 400000 /dev/zero | tr '\0' '[';)
    . q( head -c 400000 /dev/zero | tr '\0' ']'),
    qr/^output is not JSON: .*comment/, 'output hiding nesting in a comment');

output_refused('deep-output',
    q(head -c 400000 /dev/zero | tr '\0' '[';)
    . q( head -c 400000 /dev/zero | tr '\0' ']'),
    qr/^output is not JSON: JSON nested deeper than 32 levels$/,
    'output nested 400,000 levels');

output_refused('dup-output', q(printf '{"a":1,"b":{"c":1,"c":2}}'),
    qr/^output is not JSON: duplicate key "c"$/, 'output with a repeated key');

output_refused('comment-output', q(printf '{"a":1} // done'),
    qr/^output is not JSON: .*comment/, 'output with a comment');

$t->wait_for(sub {
    my ($p) = $t->redis_try('XPENDING', 'am:runs', 'workers');
    return !$p || !$p->[0];
}, 15 * $SLOW, 'nothing pending');
my ($p) = $t->redis_try('XPENDING', 'am:runs', 'workers');
ok(!$p || !$p->[0], 'no run left pending to be reclaimed');
unlike($t->proc_log('w1') // '', qr/AddressSanitizer|Segmentation|core/,
       'the worker log shows no crash');

$t->stop_proc('w1');
$t->stop_nginx;
$t->error_log_clean;

done_testing;
