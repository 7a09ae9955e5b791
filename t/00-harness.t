#!/usr/bin/perl

# Self-test of the harness in t/lib: Redis, nginx (without our module), HTTP,
# raw sockets, JWT/JWKS helpers checked against Digest::SHA and the openssl
# command, the webhook receiver, spawned processes and cleanup.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 hmac_sha384 hmac_sha512);
use Config;
use File::Basename ();
use File::Temp qw(tempfile);
use POSIX ();
use JSON::PP;
use Test::More;

use AmTest;

my $t = AmTest->new;
ok(-d $t->dir, 'temporary directory exists');
like($t->build, qr{^/}, 'build directory is absolute');

my ($p1, $p2) = (AmTest::free_port(), AmTest::free_port());
like($p1, qr/^\d+$/, 'free_port returns a port');
isnt($p1, $p2, 'free_port does not repeat itself');

# ------------------------------------------------------------------ redis

$t->start_redis;
my $redis_pid = $t->pid('redis');
ok(AmTest::pid_alive($redis_pid), 'redis-server runs');
is($t->redis_addr, '127.0.0.1:' . $t->redis_port, 'redis_addr');

is($t->redis('PING'), 'PONG', 'status reply');
is($t->redis('SET', 'k', "v\r\nwith crlf"), 'OK', 'SET');
is($t->redis('GET', 'k'), "v\r\nwith crlf", 'bulk reply round trip');
is($t->redis('GET', 'missing'), undef, 'nil reply is undef');
is($t->redis('INCRBY', 'n', 41), 41, 'integer reply');
is($t->redis('INCR', 'n') + 0, 42, 'integer reply is a number');
$t->redis('RPUSH', 'l', 'a', '', "\xe9t\xe9");
$t->redis('RPUSH', 'l', "\x{263a}");
is_deeply($t->redis('LRANGE', 'l', 0, -1),
          [ 'a', '', "\xe9t\xe9", "\xe2\x98\xba" ],
          'array reply, empty string, character string sent as UTF-8');
$t->redis('HSET', 'h', 'f1', 'x', 'f2', 'y');
is_deeply({ @{ $t->redis('HGETALL', 'h') } }, { f1 => 'x', f2 => 'y' },
          'HGETALL as array');
is_deeply($t->redis('MGET', 'k', 'missing'), [ "v\r\nwith crlf", undef ],
          'nil inside an array');
is_deeply($t->redis('LRANGE', 'none', 0, -1), [], 'empty array');

eval { $t->redis('NOSUCHCOMMAND', 'x') };
like($@, qr/ERR unknown command/, 'error reply dies with the message');
my ($v, $err) = $t->redis_try('INCR', 'k');
ok(!defined $v, 'redis_try: no value on error');
like($err, qr/ERR value is not an integer/, 'redis_try: error message');
($v, $err) = $t->redis_try('GET', 'n');
is_deeply([ $v, $err ], [ 42, undef ], 'redis_try: value on success');
my $nested = $t->redis('EVAL', 'return {1, "two", {3}, redis.error_reply("E4")}', 0);
is_deeply([ @$nested[0 .. 2] ], [ 1, 'two', [ 3 ] ], 'nested arrays');
like($nested->[3], qr/E4$/, 'an error inside an array is a string');

# Restart: same port, data back from the AOF, client reconnects by itself.
my $port = $t->redis_port;
$t->redis('SET', 'persist', 'yes');
$t->stop_redis;
ok(!AmTest::pid_alive($redis_pid), 'stop_redis: process gone');
ok(!$t->running('redis'), 'stop_redis: not running');
($v, $err) = eval { $t->redis_try('PING') };
ok($@, 'redis down: command dies (no reply at all)');
$t->start_redis;
is($t->redis_port, $port, 'restart reuses the port');
isnt($t->pid('redis'), $redis_pid, 'restart is a new process');
is($t->redis('GET', 'persist'), 'yes', 'data persisted through the AOF');
is($t->redis('GET', 'n'), 42, 'older data persisted too');
ok(-d $t->dir . '/redis/appendonlydir', 'AOF lives in the temp dir');

# requirepass, in a harness object of its own that DESTROY cleans up.
{
    my $t2 = AmTest->new;
    my $dir2 = $t2->dir;
    $t2->start_redis(requirepass => 's3cret');
    my $pid2 = $t2->pid('redis');
    is($t2->redis('PING'), 'PONG', 'requirepass: harness authenticates');
    my $anon = AmTest::Redis->new(port => $t2->redis_port);
    my (undef, $e) = $anon->try('GET', 'x');
    like($e, qr/NOAUTH/, 'requirepass: anonymous client refused');
    $anon->disconnect;
    $t2->stop_redis;
    $t2->start_redis;
    is($t2->redis('PING'), 'PONG', 'requirepass kept across a restart');
    undef $t2;
    ok(!AmTest::pid_alive($pid2), 'DESTROY stops redis');
    ok(!-d $dir2, 'DESTROY removes the temporary directory')
        unless $ENV{AM_TEST_KEEP};
}

# ------------------------------------------------------------------ nginx

# nginx without our module: the harness alone, with its placeholders.
my $conf_text = <<'EOF';
worker_processes 2;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen 127.0.0.1:%%PORT1%%;
        return 200 "second";
    }

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        location = /ok { return 200 "hi"; }
        location = /json {
            default_type application/json;
            return 200 '{"a":[1,2],"redis":"%%REDIS%%"}';
        }
        location = /host { return 200 "$host"; }
        location = /echo {
            return 200 "$request_method $http_x_test $content_length";
        }
    }
}
EOF
my $conf = $t->write_nginx($conf_text);
unlike($conf, qr/load_module/, 'no_module: no load_module line');
like($conf, qr/worker_processes 2;/, 'workers');
like($conf, qr/listen 127\.0\.0\.1:${\ $t->port };/, '%%PORT%% replaced');
like($conf, qr/listen 127\.0\.0\.1:${\ $t->port(1) };/, '%%PORT1%% replaced');
like($conf, qr/"redis":"127\.0\.0\.1:$port"/, '%%REDIS%% replaced');
unlike($conf, qr/%%/, 'no placeholder left');
eval { $t->write_nginx("# %%NOPE%%\n$conf_text") };
like($@, qr/unknown placeholder %%NOPE%%/, 'unknown placeholder dies');
is($t->write_nginx($conf_text), $conf, 'rewriting keeps the ports');

my ($code, $out) = $t->nginx_test_config;
is($code, 0, 'nginx -t: valid config') or diag($out);
like($out, qr/syntax is ok/, 'nginx -t: output');

$t->start_nginx;
my $nginx_pid = $t->pid('nginx');
my @workers = $t->nginx_worker_pids;
is(scalar @workers, $t->valgrind ? 0 : 2, 'two workers (none under valgrind)')
    or diag("@workers");

my $r = $t->http(GET => '/ok');
is($r->{status}, 200, 'http GET status');
is($r->{body}, 'hi', 'http GET body');
is($r->{json}, undef, 'json undef for a non-JSON body');
like($r->{headers}{server}, qr/nginx/, 'lowercased header names');

$r = $t->http(GET => '/json');
is_deeply($r->{json}, { a => [ 1, 2 ], redis => "127.0.0.1:$port" },
          'json decoded');
is($t->http(GET => '/nope')->{status}, 404, 'not found status');
is($t->http(GET => '/host', host => 'example.test')->{body}, 'example.test',
   'host option sets the Host header');
$r = $t->http(POST => '/echo', headers => { 'X-Test' => 'abc' },
              json => { b => 1 });
is($r->{body}, 'POST abc 7', 'json option sends an encoded body');
is($t->http(GET => '/', port => $t->port(1))->{body}, 'second',
   'extra port');
is($t->http(GET => '/ok', keepalive => 1)->{body}, 'hi', 'keepalive 1');
is($t->http(GET => '/ok', keepalive => 1)->{body}, 'hi', 'keepalive 2');

my $raw = $t->raw("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
like($raw, qr{^HTTP/1\.1 200 OK\r\n}, 'raw: status line');
my $pr = AmTest::parse_response($raw);
is($pr->{status}, 200, 'parse_response: status');
is($pr->{body}, 'hi', 'parse_response: body');
$raw = $t->raw([ "GET /ok HTTP/1.1\r\n", "Host: x\r\n", "Connection: close\r\n\r\n" ],
               pause => 0.05);
is(AmTest::parse_response($raw)->{body}, 'hi', 'raw: request in pieces');
$raw = $t->raw("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n", until => qr/\r\n\r\nhi/);
like($raw, qr/hi\z/, 'raw: until stops on a keepalive connection');
is(scalar(() = $t->raw("GET /ok HTTP/1.1\r\nHost: x\r\n", close_after => 1)), 0,
   'raw: close_after returns nothing');

# Config errors, then a reload of a good config.
# the older form: snippets around the harness's own configuration
$t->write_nginx(no_module => 1, server => 'location / { bogus_directive; }');
($code, $out) = $t->nginx_test_config;
isnt($code, 0, 'nginx -t: invalid config fails');
like($out, qr/unknown directive "bogus_directive"/, 'nginx -t: says why');

$t->write_nginx(<<'EOF');
worker_processes 2;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /ok { return 200 "reloaded"; }
    }
}
EOF
ok($t->reload_nginx, 'reload_nginx');
is($t->http(GET => '/ok')->{body}, 'reloaded', 'new config served');
if (!$t->valgrind) {
    my @new_workers = $t->nginx_worker_pids;
    ok(@new_workers && !(grep { my $w = $_; grep { $_ == $w } @workers }
                         @new_workers), 'reload replaced the workers');
    is($t->pid('nginx'), $nginx_pid, 'same master after reload');
}

$t->error_log_clean;
ok(!$t->error_log_problems, 'HUP/QUIT notices are not problems');
{
    my $log = $t->dir . '/error.log';
    open(my $fh, '>>', $log) or die;
    print $fh "2024/01/01 00:00:00 [alert] 1#1: worker process 2 exited on signal 11 (core dumped)\n";
    close $fh;
    is(scalar $t->error_log_problems, 1, 'an [alert] line is a problem');
    is(scalar $t->error_log_problems(ignore => qr/exited on signal 11/), 0,
       'ignore option');
    $t->clear_error_log;
    is($t->error_log, '', 'clear_error_log');
}

# ------------------------------------------------------------------- jwt

my $tok = AmTest::jwt(alg => 'HS256', key => 'secret', kid => 'k1',
                      claims => { sub => 'u1', project => 'demo' });
my @parts = split /\./, $tok, -1;
is(scalar @parts, 3, 'jwt: three parts');
unlike($tok, qr{[+/=]}, 'jwt: base64url without padding');
my $jp = JSON::PP->new;
is_deeply($jp->decode(AmTest::b64url_decode($parts[0])),
          { alg => 'HS256', typ => 'JWT', kid => 'k1' }, 'jwt: header');
is_deeply($jp->decode(AmTest::b64url_decode($parts[1])),
          { sub => 'u1', project => 'demo' }, 'jwt: claims');
is(AmTest::b64url_decode($parts[2]),
   hmac_sha256("$parts[0].$parts[1]", 'secret'), 'jwt: HS256 signature');

for ([ HS384 => \&hmac_sha384 ], [ HS512 => \&hmac_sha512 ]) {
    my ($alg, $f) = @$_;
    my @p = split /\./, AmTest::jwt(alg => $alg, key => 'k', claims => {});
    is(AmTest::b64url_decode($p[2]), $f->("$p[0].$p[1]", 'k'), "jwt: $alg");
}

@parts = split /\./, AmTest::jwt(alg => 'none', claims => { a => 1 }), -1;
is($parts[2], '', 'jwt: none has an empty signature');
@parts = split /\./, AmTest::jwt(alg => 'HS256', key => 'k',
                                 header => { alg => 'RS256', typ => undef });
is_deeply($jp->decode(AmTest::b64url_decode($parts[0])), { alg => 'RS256' },
          'jwt: header overrides and removes fields');
@parts = split /\./, AmTest::jwt(alg => 'HS256', key => 'k', payload => '{bad');
is(AmTest::b64url_decode($parts[1]), '{bad', 'jwt: raw payload');

# openssl verification of RS*/ES* tokens, independent of AmTest::Jwt.
sub openssl_verify {
    my ($md, $pub, $input, $sig) = @_;
    my ($ifh, $in) = tempfile(UNLINK => 1);
    my ($sfh, $sf) = tempfile(UNLINK => 1);
    binmode $_ for $ifh, $sfh;
    print $ifh $input;
    print $sfh $sig;
    close $_ for $ifh, $sfh;
    my $res = `openssl dgst -$md -verify $pub -signature $sf $in 2>&1`;
    return $res =~ /Verified OK/ ? 1 : 0;
}

my ($rsa_key, $rsa_pub) = $t->gen_key(type => 'rsa', name => 'r1');
ok(-s $rsa_key && -s $rsa_pub, 'gen_key rsa: files');
like($t->read_file($rsa_pub), qr/BEGIN PUBLIC KEY/, 'gen_key: public PEM');
for my $bits (256, 384, 512) {
    @parts = split /\./, AmTest::jwt(alg => "RS$bits", key => $rsa_key,
                                     claims => { x => 1 });
    my $sig = AmTest::b64url_decode($parts[2]);
    is(length $sig, 256, "RS$bits: 2048-bit signature");
    ok(openssl_verify("sha$bits", $rsa_pub, "$parts[0].$parts[1]", $sig),
       "RS$bits verifies with openssl");
    ok(!openssl_verify("sha$bits", $rsa_pub, "$parts[0].$parts[1]x", $sig),
       "RS$bits: tampered input does not verify");
}

for ([ ec256 => 'ES256', 32, 'sha256', 'P-256' ],
     [ ec384 => 'ES384', 48, 'sha384', 'P-384' ]) {
    my ($type, $alg, $size, $md, $crv) = @$_;
    my ($key, $pub) = $t->gen_key(type => $type, name => $type);
    # Several tokens, so that r or s with a leading zero byte shows up.
    my $all = 1;
    for my $i (1 .. 8) {
        @parts = split /\./, AmTest::jwt(alg => $alg, key => $key,
                                         claims => { i => $i });
        my $sig = AmTest::b64url_decode($parts[2]);
        $all &&= length($sig) == 2 * $size
            && openssl_verify($md, $pub, "$parts[0].$parts[1]",
                              AmTest::Jwt::raw_to_der($sig));
    }
    ok($all, "$alg: raw r||s of 2x$size bytes verifies with openssl");

    my $jwks = $t->jwks(file => "$type.jwks",
                        keys => [ { kid => $type, pub => $pub, alg => $alg } ]);
    my $k = $jp->decode($t->read_file($jwks))->{keys}[0];
    is($k->{kty}, 'EC', "$alg jwk: kty");
    is($k->{crv}, $crv, "$alg jwk: crv");
    is(length AmTest::b64url_decode($k->{x}), $size, "$alg jwk: x size");
    is(length AmTest::b64url_decode($k->{y}), $size, "$alg jwk: y size");
    is_deeply([ @$k{qw(kid alg use)} ], [ $type, $alg, 'sig' ],
              "$alg jwk: kid, alg, use");
}

my $jwks = $t->jwks(file => 'jwks.json', keys => [
    { kid => 'r1', pub => $rsa_pub, alg => 'RS256' },
    { kid => 'h1', secret => 'hmac-secret', alg => 'HS256',
      extra => { use => undef, x_test => 1 } },
]);
my $set = $jp->decode($t->read_file($jwks));
is(scalar @{ $set->{keys} }, 2, 'jwks: two keys');
my ($rk, $hk) = @{ $set->{keys} };
my ($modulus) = `openssl rsa -pubin -in $rsa_pub -noout -modulus 2>/dev/null`
    =~ /Modulus=([0-9A-F]+)/;
is(uc unpack('H*', AmTest::b64url_decode($rk->{n})), $modulus,
   'jwks: RSA n matches openssl -modulus');
is($rk->{e}, 'AQAB', 'jwks: RSA e');
is_deeply($hk, { kty => 'oct', kid => 'h1', alg => 'HS256', x_test => 1,
                 k => AmTest::b64url('hmac-secret') }, 'jwks: oct key, extra');

# --------------------------------------------------------------- receiver

$t->start_receiver;
my $rport = $t->receiver_port;
$r = $t->http(POST => '/hook?x=1', port => $rport,
              headers => { 'X-Api-Key' => 'key1', Authorization => 'Token t1' },
              json => { result => 'done', n => 3 });
is($r->{status}, 200, 'receiver answers 200');
my $recs = $t->wait_received(1, 5);
is(scalar @$recs, 1, 'receiver recorded one request');
my $rec = $recs->[0];
is($rec->{method}, 'POST', 'recorded method');
is($rec->{path}, '/hook?x=1', 'recorded path');
is($rec->{headers}{'x-api-key'}, 'key1', 'recorded header');
is($rec->{headers}{authorization}, 'Token t1', 'recorded Authorization');
is($rec->{headers}{'content-type'}, 'application/json', 'recorded type');
is($rec->{body}, '{"n":3,"result":"done"}', 'recorded body');
is_deeply($rec->{json}, { result => 'done', n => 3 }, 'recorded json');
ok($rec->{time} > time - 60, 'recorded time');

$t->receiver_status(500, 7);
$r = $t->http(POST => '/hook', port => $rport, body => 'x');
is($r->{status}, 500, 'receiver_status 500');
is($r->{headers}{'retry-after'}, 7, 'receiver_status Retry-After');
$t->receiver_status(200);
is($t->http(POST => '/hook', port => $rport, body => 'y')->{status}, 200,
   'receiver_status back to 200');
$raw = $t->raw("POST /chunked HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n"
               . "Expect: 100-continue\r\n\r\n",
               port => $rport, until => qr/100 Continue\r\n\r\n/);
like($raw, qr/^HTTP\/1\.1 100 Continue/, 'receiver: 100-continue');
$raw = $t->raw([ "POST /c HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n",
                 "3\r\nabc\r\n", "2\r\nde\r\n0\r\n\r\n" ], port => $rport);
like($raw, qr/^HTTP\/1\.1 200/, 'receiver: chunked request answered');
$t->raw("POST /gone HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", port => $rport,
        close_after => 1);
$recs = $t->wait_received(6, 5);
is(scalar @$recs, 6, 'receiver survives a client that leaves');
is($recs->[1]{status}, 500, 'recorded answered status');
is($recs->[4]{body}, 'abcde', 'chunked body decoded');
is($t->http(GET => '/after', port => $rport)->{status}, 200,
   'receiver still serving');

# -------------------------------------------------------------- processes

$t->spawn(name => 'sleeper', cmd => [ 'sleep', '30' ]);
ok($t->running('sleeper'), 'spawn: running');
is($t->wait_proc('sleeper', 0.2), undef, 'wait_proc: undef while running');
$t->kill_proc('sleeper', 'TERM');
is($t->wait_proc('sleeper', 5), 128 + 15, 'wait_proc: 128+signal');

$t->spawn(name => 'echo', cmd => [ 'sh', '-c', 'echo "$FOO"; echo err >&2; exit 3' ],
          env => { FOO => 'bar' });
is($t->wait_proc('echo', 5), 3, 'wait_proc: exit code');
is($t->proc_log('echo'), "bar\nerr\n", 'spawn: env, stdout and stderr in log');
ok(-f $t->dir . '/echo.log', 'spawn: <name>.log');

is($t->wait_for(sub { 'yes' }, 1), 'yes', 'wait_for returns the value');
my $t0 = time;
is($t->wait_for(sub { 0 }, 0.3), undef, 'wait_for times out');

# ctl runs <build>/automationsctl; check it with a stand-in script.
{
    my $fake = $t->dir . '/fakebuild';
    $t->write_file("$fake/automationsctl",
                   qq{#!/bin/sh\necho "args: \$*"\necho "to err" >&2\n}
                   . qq{[ "\$1 \$2 \$3" = "--redis 127.0.0.1:$port fail" ] && exit 4\n}
                   . qq{[ "\$3" = "cat" ] && cat\nexit 0\n});
    chmod 0755, "$fake/automationsctl";
    local $t->{build} = $fake;
    my ($c, $so, $se) = $t->ctl('project', 'create', 'demo');
    is($c, 0, 'ctl: exit code');
    is($so, "args: --redis 127.0.0.1:$port project create demo\n", 'ctl: stdout');
    is($se, "to err\n", 'ctl: stderr');
    ($c) = $t->ctl('fail');
    is($c, 4, 'ctl: failing exit code in list context');
    is(scalar $t->ctl('ok'), "args: --redis 127.0.0.1:$port ok\n",
       'ctl: scalar context returns stdout');
    is(scalar $t->ctl({ stdin => "piped\n" }, 'cat'),
       "args: --redis 127.0.0.1:$port cat\npiped\n", 'ctl: stdin option');
}

# --------------------------------------------------------------- stop_all

$t->spawn(name => 'sleeper2', cmd => [ 'sleep', '30' ]);
my %pids = (
    redis    => $t->pid('redis'),
    nginx    => $t->pid('nginx'),
    receiver => $t->pid('receiver'),
    sleeper2 => $t->pid('sleeper2'),
    map { ("worker $_" => $_) } $t->nginx_worker_pids,
);
is(scalar(grep { AmTest::pid_alive($_) } values %pids), scalar keys %pids,
   'all processes run before stop_all');
$t->stop_all;
for my $name (sort keys %pids) {
    ok(!AmTest::pid_alive($pids{$name}), "stop_all: $name ($pids{$name}) gone");
}
is($t->http(GET => '/ok')->{status}, 599, 'http: 599 when nginx is down');
$t->error_log_clean;

# A test that dies, and a test killed with SIGKILL, leave nothing behind:
# END stops the processes in the first case, the watchdog in the second.
my $child_script = <<'EOS';
use strict;
use warnings;
use AmTest;
my $t = AmTest->new;
$t->start_redis;
$t->write_nginx(no_module => 1, server => 'location / { return 200; }');
$t->start_nginx;
$t->start_receiver;
$t->spawn(name => 'sleeper', cmd => [ 'sleep', '60' ]);
print join(' ', $$, $t->dir, $t->{watchdog},
           map({ $t->pid($_) } qw(redis nginx receiver sleeper)),
           $t->nginx_worker_pids), "\n";
STDOUT->flush;
die "dying on purpose\n" if $ARGV[0] eq 'die';
sleep 60;
EOS
my $lib = File::Basename::dirname($INC{'AmTest.pm'});

# The orphans of the killed test go to PID 1, which in some containers never
# reaps them; become their subreaper (prctl PR_SET_CHILD_SUBREAPER, x86_64
# syscall number) so that they can be reaped here.
my $subreaper = $Config{archname} =~ /^x86_64-linux/
    && syscall(157, 36, 1, 0, 0, 0) == 0;
for my $how (qw(die KILL)) {
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open(STDERR, '>', '/dev/null');
        delete $ENV{AM_TEST_KEEP};
        exec($^X, "-I$lib", '-e', $child_script, $how) or POSIX::_exit(127);
    }
    my ($child, $dir, @pids) = split ' ', (<$fh> // '');
    ok($dir && @pids >= 5, "$how: child test started its processes")
        or diag("got: $child $dir @pids");
    kill 'KILL', $child if $how eq 'KILL';
    close $fh;
    my $gone = $t->wait_for(sub {
        !(grep { AmTest::pid_alive($_) } @pids) && !-d $dir
    }, 20);
    ok($gone, "$how: all processes gone and directory removed")
        or diag(join ' ', map { "$_:" . AmTest::pid_alive($_) } @pids);
    if ($subreaper) {
        1 while waitpid(-1, POSIX::WNOHANG()) > 0;
    }
}

done_testing;
