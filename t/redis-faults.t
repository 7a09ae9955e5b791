#!/usr/bin/perl
# The gateway when Redis misbehaves: stopped, crashed, paused, without its
# scripts, behind a password or a unix socket; configuration mistakes that
# "nginx -t" must explain; several worker processes with their own Redis
# connection.  Requests must fail fast with 503 and a JSON body, nothing may
# crash, and service must come back by itself.

use strict;
use warnings;

use JSON::PP;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

use AmTest;
use AmTest::Api qw(bearer);

my $t = AmTest->new;

plan skip_all => 'module not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl';

my $JSON = JSON::PP->new->utf8->canonical;
my $API = '/automations/v1/';

# With the 1 s Redis timeout, an answer while Redis is away must come
# within this: the timeout, a reconnect's 1 s, and a busy machine's share
# (valgrind makes nginx itself much slower).
my $FAST = $t->valgrind ? 6 : 3;

my $SECRET = join '', map { sprintf '%x', int rand 16 } 1 .. 40;

sub jwt_token {
    my (%claims) = @_;
    return AmTest::jwt(alg => 'HS256', key => $SECRET,
        claims => { sub => 'ops', exp => int(time) + 3600, %claims });
}

# Projects demo and other, a demo API key, the JWT secret file.
sub setup {
    my ($h, %o) = @_;
    my %env = defined $o{password}
        ? (env => { AUTOMATIONS_REDIS_PASSWORD => $o{password} }) : ();
    my @pre = %env ? ({%env}) : ();

    $h->ctl(@pre, 'project', 'create', 'demo');
    $h->ctl(@pre, 'project', 'create', 'other');
    my $key = $h->ctl_fields(@pre, 'apikey', 'create', 'demo', '--scopes',
        'read write run')->{key} or die "no key\n";
    $h->write_file('jwt.secret', $SECRET);
    return $key;
}

# The configuration of every story: redis => the automations_redis line,
# timeout => automations_redis_timeout, http => more http{} text,
# workers => worker_processes.
sub nginx_conf {
    my ($h, %o) = @_;
    my $redis = $o{redis} // 'automations_redis %%REDIS%%;';
    my $timeout = $o{timeout} // '1s';
    my $http = $o{http} // '';
    my $workers = $o{workers} // 1;

    $h->write_nginx(<<"EOF");
load_module %%BUILD%%/ngx_http_automations_module.so;
worker_processes $workers;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    $redis
    automations_redis_timeout $timeout;
    automations_jwt_key %%DIR%%/jwt.secret alg=HS256;
    $http

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        location /automations/v1/ {
            automations_api;
        }
    }
}
EOF
}

# A request with a key or a JWT: returns the response and its duration.
sub call {
    my ($h, $auth, $method, $path, %o) = @_;
    my $t0 = time;
    my $r = $h->http($method, $path,
        headers => { Authorization => "Bearer $auth" }, %o);
    $r->{elapsed} = time - $t0;
    $r->{method} = $method;
    return $r;
}

# A 503 with {"detail": ...}, answered fast.
sub is_unavailable {
    my ($r, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    is($r->{status}, 503, "$what: 503") or diag("body: $r->{body}");
    like($r->{headers}{'content-type'} // '', qr{^application/json},
        "$what: JSON");
    like(($r->{json} || {})->{detail} // '', qr/unavailable/i,
        "$what: detail") unless $r->{method} eq 'HEAD';
    cmp_ok($r->{elapsed}, '<', $FAST, "$what: within $FAST s")
        or diag(sprintf 'took %.2f s', $r->{elapsed});
}

sub create {
    my ($h, $key, $name, $code, %o) = @_;
    return call($h, $key, POST => $API,
        json => { automation_name => $name, code => $code // "print('$name')" },
        %o);
}

# Waits until a GET of $name answers 200 again (Redis reconnected).
sub recovers {
    my ($h, $key, $name, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $t0 = time;
    my $last;

    my $ok = $h->wait_for(sub {
        $last = call($h, $key, GET => "$API$name", timeout => 5);
        return $last->{status} == 200;
    }, $h->valgrind ? 30 : 10, $what);
    ok($ok, sprintf('%s: answers again (after %.1f s)', $what, time - $t0))
        or diag("last answer: $last->{status} $last->{body}");
    return $last;
}

# The established TCP connections of process $pid to 127.0.0.1:$port.
sub redis_sockets {
    my ($pid, $port) = @_;
    my %inode;

    opendir(my $dh, "/proc/$pid/fd") or return ();
    for (readdir $dh) {
        my $l = readlink("/proc/$pid/fd/$_") // next;
        $inode{$1} = 1 if $l =~ /^socket:\[(\d+)\]$/;
    }
    closedir $dh;

    my @found;
    open(my $fh, '<', '/proc/net/tcp') or return ();
    while (<$fh>) {
        my @f = split ' ';
        next unless @f > 9 && $f[2] =~ /^0100007F:([0-9A-F]{4})$/;
        push @found, $f[9] if hex($1) == $port && $f[3] eq '01'
                              && $inode{ $f[9] };
    }
    close $fh;
    return @found;
}

# --------------------------------------------------------------- stories

$t->start_redis;
my $KEY = setup($t);
my $JWT = jwt_token(project => 'demo', role => [ 'read', 'write' ]);
nginx_conf($t);
$t->start_nginx;

subtest 'Redis stopped during traffic' => sub {
    is(create($t, $KEY, 'before_stop')->{status}, 200,
        'created before the outage');

    # a client that keeps calling through the outage and records answers
    my $log = $t->dir . '/traffic.log';
    my $stop = $t->dir . '/traffic.stop';
    STDOUT->flush;
    STDERR->flush;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open(my $fh, '>', $log) or POSIX::_exit(1);
        $fh->autoflush(1);
        my $i = 0;
        until (-e $stop) {
            $i++;
            my @req = $i % 3 == 0 ? (POST => $API, json =>
                          { automation_name => "during_$i", code => 'c' })
                    : $i % 3 == 1 ? (GET => "${API}before_stop")
                    : (GET => $API);
            my $auth = $i % 2 ? $KEY : $JWT;
            my $r = eval { call($t, $auth, @req, timeout => 10) };
            my $ct = $r->{headers}{'content-type'} // '-';
            my $detail = (($r->{json} || {})->{detail}) // '-';
            $detail =~ s/\s+/_/g;
            printf $fh "%d %s %s %s %.3f %s %s\n", $i, $req[0], $req[1],
                $r ? $r->{status} : 'died', $r ? $r->{elapsed} : 0, $ct,
                $req[0] eq 'POST' ? "during_$i" : $detail;
            sleep 0.02;
        }
        close $fh;
        POSIX::_exit(0);
    }

    sleep 0.5;
    $t->stop_redis;
    ok(!$t->running('redis'), 'Redis is stopped');
    sleep 1;

    is_unavailable(call($t, $KEY, GET => "${API}before_stop"),
        'API key, GET');
    is_unavailable(call($t, $JWT, GET => $API), 'JWT, list');
    is_unavailable(create($t, $KEY, 'while_down'), 'API key, create');
    is_unavailable(call($t, $JWT, DELETE => "${API}before_stop"),
        'JWT, delete');
    is_unavailable(call($t, $KEY, HEAD => "${API}before_stop"), 'HEAD');

    sleep 1;
    $t->start_redis;
    my $r = recovers($t, $KEY, 'before_stop', 'after the restart');
    is(($r->{json} || {})->{code}, "print('before_stop')",
        'data created before the outage is still there');

    sleep 0.5;
    $t->write_file($stop, '');
    waitpid($pid, 0);
    is($?, 0, 'traffic client finished');

    my @lines = split /\n/, $t->read_file($log) // '';
    my @rec = map { [ split / / ] } @lines;
    cmp_ok(scalar @rec, '>', 20, scalar(@rec) . ' requests during the test');
    my %by;
    $by{ $_->[3] }++ for @rec;
    is_deeply([ sort keys %by ], [ 200, 503 ],
        'every answer was 200 or 503, both seen')
        or diag(explain \%by);
    my @bad503 = grep { $_->[3] eq '503'
        && ($_->[5] !~ m{^application/json} || $_->[4] >= $FAST) } @rec;
    is(scalar @bad503, 0, 'every 503 was fast JSON') or diag(explain \@bad503);
    my @made = map { $_->[6] } grep { $_->[1] eq 'POST' && $_->[3] eq '200' }
        @rec;
    cmp_ok(scalar @made, '>', 0, scalar(@made) . ' creates answered 200');
    my @lost = grep { !$t->redis('EXISTS', "am:{demo}:automation:$_") } @made;
    is_deeply(\@lost, [], 'every create answered 200 is in Redis');

    is(create($t, $KEY, 'after_restart')->{status}, 200, 'create works');
    is(call($t, $JWT, DELETE => "${API}after_restart")->{status}, 200,
        'delete works');
    ok($t->running('nginx'), 'nginx still runs');
    like($t->error_log, qr/\[error\].*redis/, 'the outage is in the log');
    $t->error_log_clean(name => 'no alert, crit or signal in the log');
};

subtest 'Redis crashes (KILL) and comes back' => sub {
    is(create($t, $KEY, 'before_crash')->{status}, 200, 'created');
    $t->stop_redis(signal => 'KILL');
    is_unavailable(call($t, $KEY, GET => "${API}before_crash"),
        'while crashed');
    $t->start_redis;
    my $r = recovers($t, $KEY, 'before_crash', 'after the crash');
    is(($r->{json} || {})->{automation_name}, 'before_crash',
        'acknowledged data survived');
    $t->error_log_clean;
};

subtest 'Redis paused' => sub {
    my @workers = $t->nginx_worker_pids;
    $t->clear_error_log;

    $t->redis('CLIENT', 'PAUSE', '5000', 'ALL');
    my $paused_at = time;
    my $a = call($t, $KEY, GET => "${API}before_stop");
    my $b = call($t, $JWT, GET => $API);
    my $elapsed = time - $paused_at;
    ok($elapsed < 5, sprintf('both answered while paused (%.2f s)', $elapsed));

    is_unavailable($a, 'API key, GET');
    cmp_ok($a->{elapsed}, '>=', 0.8,
        sprintf('API key, GET: waited for the 1 s timeout (%.2f s)',
            $a->{elapsed}));
    # the stuck connection was dropped: no need to wait again
    is_unavailable($b, 'JWT, list');

    my $r = recovers($t, $KEY, 'before_stop', 'after the pause');
    is(($r->{json} || {})->{automation_name}, 'before_stop', 'right body');
    is(call($t, $JWT, GET => $API)->{status}, 200, 'list works too');
    is_deeply([ $t->nginx_worker_pids ], \@workers, 'no worker restarted');
    like($t->error_log, qr/redis did not answer in 1000 ms/,
        'the timeout is logged');
    $t->error_log_clean;
};

subtest 'Redis stalls after a run was sent: the 503 names the execution' => sub {
    my $runner = jwt_token(project => 'demo', role => 'admin');

    # the JWT needs no Redis: the first command is the enqueue itself
    $t->redis('CLIENT', 'PAUSE', '2500', 'ALL');
    my $r = $t->http(POST => "${API}before_stop/run",
        json => { input => [] },
        headers => { Authorization => "Bearer $runner",
                     Prefer => 'respond-async' });
    is($r->{status}, 503, 'stalled enqueue: 503') or diag($r->{body});
    like(($r->{json} || {})->{detail} // '', qr/may have been queued/,
        '503: detail says the run may be queued');
    my $id = ($r->{json} || {})->{execution_id} // '';
    like($id, qr/^exec_[0-9a-f]{24}\z/, '503: execution_id');
    is(($r->{json} || {})->{status_url},
        "${API}before_stop/executions/$id", '503: status_url');

    # here nginx dropped the stalled connection before Redis ran the
    # script, so the status URL says for sure that nothing was queued
    sleep 3;
    my $s = call($t, $runner, GET => "${API}before_stop/executions/$id");
    is($s->{status}, 404, 'the status URL answers: not queued')
        or diag($s->{body});
    like(($s->{json} || {})->{detail} // '', qr/not found/i,
        'the status URL: JSON detail');
    $t->error_log_clean;
};

subtest 'Redis loses its scripts' => sub {
    $t->redis('CONFIG', 'RESETSTAT');
    $t->redis('SCRIPT', 'FLUSH');

    my $r = call($t, $KEY, GET => "${API}before_stop");
    is($r->{status}, 200, 'GET after SCRIPT FLUSH');
    is(($r->{json} || {})->{automation_name}, 'before_stop', 'right body');
    my $l = call($t, $JWT, GET => $API);
    is($l->{status}, 200, 'list after SCRIPT FLUSH');
    ok(grep({ $_->{automation_name} eq 'before_stop' }
            @{ ($l->{json} || {})->{automations} || [] }), 'right list');

    $t->redis('SCRIPT', 'FLUSH');
    is(create($t, $KEY, 'after_flush', 'flushed')->{status}, 200,
        'create after SCRIPT FLUSH');
    is($t->redis('HGET', 'am:{demo}:automation:after_flush', 'code'),
        'flushed', 'written to Redis');
    $t->redis('SCRIPT', 'FLUSH');
    is(call($t, $KEY, DELETE => "${API}after_flush")->{status}, 200,
        'delete after SCRIPT FLUSH');
    is($t->redis('EXISTS', 'am:{demo}:automation:after_flush'), 0,
        'deleted from Redis');

    my $stats = $t->redis('INFO', 'commandstats');
    my ($evals) = $stats =~ /^cmdstat_eval:calls=(\d+)/m;
    cmp_ok($evals // 0, '>=', 4, 'the module fell back to EVAL')
        or diag($stats);
    $t->error_log_clean;
};

$t->stop_nginx;
$t->error_log_clean(name => 'main scenario: error log clean');

subtest 'Redis with a password' => sub {
    my $p = AmTest->new;
    $p->start_redis(requirepass => 'pw-Secret-1');
    my $key = setup($p, password => 'pw-Secret-1');
    my $jwt = jwt_token(project => 'demo', role => 'admin');

    nginx_conf($p, http => 'automations_redis_password pw-Secret-1;');
    $p->start_nginx;

    is(create($p, $key, 'secured')->{status}, 200, 'create');
    is($p->redis('HGET', 'am:{demo}:automation:secured', 'automation_name'),
        'secured', 'written to Redis');
    my $g = call($p, $jwt, GET => "${API}secured");
    is($g->{status}, 200, 'get');
    is(($g->{json} || {})->{code}, "print('secured')", 'get: body');
    is_deeply([ map { $_->{automation_name} }
                @{ (call($p, $key, GET => $API)->{json} || {})->{automations} || [] } ],
        ['secured'], 'list');
    is(call($p, $key, DELETE => "${API}secured")->{status}, 200, 'delete');
    is($p->redis('EXISTS', 'am:{demo}:automation:secured'), 0,
        'deleted from Redis');
    $p->error_log_clean;
    $p->stop_nginx;

    nginx_conf($p, http => 'automations_redis_password wrong-password;');
    $p->clear_error_log;
    $p->start_nginx;
    my $ok = $p->wait_for(sub { $p->error_log =~ /AUTH failed/ },
        $p->valgrind ? 30 : 5);
    ok($ok, 'the error log says AUTH failed')
        or diag($p->error_log);

    my %seen;
    my @slow;
    for my $i (1 .. 30) {
        my $r = $i % 2 ? create($p, $key, "nope_$i")
                       : call($p, $jwt, GET => $API);
        $seen{ $r->{status} }++;
        push @slow, $r->{elapsed} if $r->{elapsed} >= $FAST;
        sleep 0.05;
    }
    is_deeply(\%seen, { 503 => 30 }, 'wrong password: every request 503')
        or diag(explain \%seen);
    is_deeply(\@slow, [], 'all answered fast');
    is_unavailable(call($p, $jwt, GET => $API), 'wrong password, list');
    is_deeply($p->redis('KEYS', 'am:{demo}:automation:*'), [],
        'nothing written');
    ok($p->running('nginx'), 'nginx still runs');
    $p->error_log_clean;
    $p->stop_nginx;

    # Requests that arrive while AUTH is still unanswered: Redis is paused
    # while nginx connects, so that they queue behind AUTH.
    my $pause = $p->valgrind ? 10 : 1.5;
    nginx_conf($p, http => 'automations_redis_password wrong-password;',
        timeout => ($pause * 4) . 's');
    $p->redis('CLIENT', 'PAUSE', int($pause * 1000), 'ALL');
    my $paused_at = time;
    $p->start_nginx;
    my @socks = map {
        my ($auth, $method, $path) = @$_;
        $p->open_request($method, $path, headers => bearer($auth));
    } [ $key, GET => "${API}secured" ], [ $jwt, GET => $API ];
    my @res = map { $p->read_response($_, $pause * 4) } @socks;
    # their commands queue behind AUTH; the handshake is bounded by the
    # connect timeout (1s by default), then they are answered 503
    cmp_ok(time - $paused_at, '>', 0.8,
        'the requests waited behind AUTH, up to the connect timeout');
    for my $i (0, 1) {
        my $what = ('API key, GET', 'JWT, list')[$i];
        is($res[$i]{status}, 503,
            "$what queued behind a failing AUTH: 503")
            or diag("got: " . ($res[$i]{status} // 'none') . " $res[$i]{body}");
    }
    $p->stop_nginx;
};

subtest 'Redis on a unix socket' => sub {
    my $u = AmTest->new;
    my $sock = $u->dir . '/redis.sock';
    $u->start_redis(args => [ '--unixsocket', $sock,
                              '--unixsocketperm', '777' ]);
    my $key = setup($u);

    nginx_conf($u, redis => "automations_redis unix:$sock;");
    $u->start_nginx;

    is(create($u, $key, 'via_socket')->{status}, 200, 'create');
    is($u->redis('HGET', 'am:{demo}:automation:via_socket', 'code'),
        "print('via_socket')", 'written to Redis');
    is(call($u, $key, GET => "${API}via_socket")->{status}, 200, 'get');
    is(scalar @{ (call($u, $key, GET => $API)->{json} || {})->{automations}
                 || [] }, 1, 'list');
    is(call($u, $key, DELETE => "${API}via_socket")->{status}, 200, 'delete');
    is($u->redis('EXISTS', 'am:{demo}:automation:via_socket'), 0,
        'deleted from Redis');

    my @socket_clients = grep { /addr=\Q$sock\E/ || /laddr=\Q$sock\E/ }
        split /\n/, $u->redis('CLIENT', 'LIST');
    cmp_ok(scalar @socket_clients, '>=', 1,
        'nginx is connected through the socket');
    $u->error_log_clean;
    $u->stop_nginx;
};

subtest 'nginx -t explains configuration mistakes' => sub {
    my $c = AmTest->new;
    $c->write_file('jwt.secret', $SECRET);

    # Each case: its http{} text and one location of the server.
    my $conf = sub {
        my ($http, $location) = @_;
        return <<"EOF";
load_module %%BUILD%%/ngx_http_automations_module.so;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    $http

    server {
        listen 127.0.0.1:%%PORT%%;

        $location
    }
}
EOF
    };
    my $redis = 'automations_redis 127.0.0.1:6379;';

    my @cases = (
        [ 'a Redis host name that does not resolve',
          'automations_redis no-such-host.invalid:6379;', '',
          qr/redis: cannot resolve no-such-host\.invalid/ ],
        [ 'a bare IPv6 address for Redis',
          'automations_redis ::1:6379;', '',
          qr/invalid redis address "::1:6379": an IPv6 address goes in brackets/ ],
        [ 'Redis port 0',
          'automations_redis 127.0.0.1:0;', '',
          qr/invalid redis address "127\.0\.0\.1:0": the port must be 1 to 65535/ ],
        [ 'a key prefix with a brace',
          "$redis\n    automations_redis_prefix \"am{x}:\";", '',
          qr/invalid key prefix "am\{x\}:"/ ],
        [ 'automations_auth jwt without a key',
          $redis, 'location /x/ { automations_auth jwt; }',
          qr/"automations_auth jwt" needs "automations_jwt_key"/ ],
        [ 'automations_jwt_key on a missing file',
          "$redis\n    automations_jwt_key %%DIR%%/missing.secret alg=HS256;",
          '',
          qr/missing\.secret.*No such file/ ],
        [ 'automations_api in an exact location',
          $redis, 'location = /x { automations_api; }',
          qr/"automations_api" directive must be in a prefix location/ ],
        [ 'automations_api in a regex location',
          $redis, 'location ~ ^/x { automations_api; }',
          qr/"automations_api" directive must be in a prefix location/ ],
        [ 'automations_auth off without a project',
          $redis, 'location /x/ { automations_api; automations_auth off; }',
          qr/needs "automations_project"/ ],
        [ 'an unknown auth scheme',
          $redis, 'location /x/ { automations_auth basic; }',
          qr/invalid scheme "basic"/ ],
        [ 'automations_api without automations_redis',
          '', 'location /x/ { automations_api; }',
          qr/needs Redis: set "automations_redis" in the http block/ ],
        [ 'automations_start_api with automations_auth off',
          $redis,
          'location /x/ { automations_start_api; automations_auth off; }',
          qr/automations_start_api cannot run with "automations_auth off"/ ],
    );
    for my $case (@cases) {
        my ($what, $http, $location, $re) = @$case;
        $c->write_nginx($conf->($http, $location));
        my ($code, $out) = $c->nginx_test_config;
        isnt($code, 0, "$what: nginx -t fails");
        like($out, qr/\[emerg\] .*$re.* in \S+nginx\.conf:\d+/,
            "$what: says what is wrong, and where") or diag($out);
    }

    $c->write_nginx($conf->(
        "$redis\n    automations_jwt_key %%DIR%%/jwt.secret alg=HS256;",
        'location /automations/v1/ { automations_api; automations_auth jwt; }'));
    my ($code, $out) = $c->nginx_test_config;
    is($code, 0, 'a correct configuration passes') or diag($out);
};

subtest 'two workers, each with its own Redis connection' => sub {
    my $w = AmTest->new;
    $w->start_redis;
    my $key = setup($w);

    # reuseport spreads connections over both workers (not under valgrind:
    # nginx runs one process there, which accepts on one socket only)
    my $reuseport = $w->valgrind ? '' : ' reuseport';
    my $port = $w->valgrind ? $w->port : $w->port(1);
    nginx_conf($w, workers => 2, http => <<"EOF");
server {
        listen 127.0.0.1:%%PORT1%%$reuseport;

        location /automations/v1/ {
            automations_api;
            add_header X-Worker \$pid always;
        }
    }
EOF
    $w->start_nginx;

    my @workers = $w->nginx_worker_pids;
    is(scalar @workers, 2, 'two worker processes') unless $w->valgrind;

    my (%status, %pids, @wrong);
    for my $i (1 .. 100) {
        my $c = create($w, $key, "w$i", "code $i", port => $port);
        $status{ $c->{status} }++;
        $pids{ $c->{headers}{'x-worker'} // '?' }++;
        my $g = $w->http(GET => "${API}w$i", port => $port,
            headers => { Authorization => "Bearer $key" });
        $status{ $g->{status} }++;
        $pids{ $g->{headers}{'x-worker'} // '?' }++;
        push @wrong, "w$i" unless (($g->{json} || {})->{code} // '') eq "code $i";
    }
    is_deeply(\%status, { 200 => 200 }, '200 requests, all 200')
        or diag(explain \%status);
    is_deeply(\@wrong, [], 'every GET returned what was created');
    is($w->redis('ZCARD', 'am:{demo}:automations'), 100, 'redis: 100 listed');

    unless ($w->valgrind) {
        is_deeply([ sort { $a <=> $b } grep { $_ ne '?' } keys %pids ],
            \@workers, 'both workers answered');
        # command connections: not ours, not subscribed to anything
        my $me = $w->redis('CLIENT', 'ID');
        my @cmd = grep { !/^id=$me / && / sub=0 psub=0 / }
            split /\n/, $w->redis('CLIENT', 'LIST');
        is(scalar @cmd, 2, 'two command connections to Redis')
            or diag(join "\n", @cmd);
        for my $pid (@workers) {
            cmp_ok(scalar redis_sockets($pid, $w->redis_port), '>=', 1,
                "worker $pid holds its own connection to Redis");
        }
    }
    $w->error_log_clean;
    $w->stop_nginx;
};

done_testing;
