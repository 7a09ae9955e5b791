#!/usr/bin/perl
# The module's authentication in front of any location (automations_auth):
# here before proxy_pass to a service that echoes what it was told, with the
# $automations_* variables passed upstream and logged.  `return` would run
# before the access phase, so the protected service sits behind proxy_pass.

use strict;
use warnings;

use Test::More;

use AmTest;
use AmTest::Api qw(bearer now);

my $t = AmTest->new;

plan skip_all => 'module not built'
    unless -f $t->build . '/ngx_http_automations_module.so';

my $MISSING = 'Authentication credentials were not provided.';
my $INVALID = 'Invalid authentication credentials.';
my $DENIED  = 'These credentials do not allow this operation.';
my $NOPROJ  = 'The token names no project.';

$t->start_redis;
$t->ctl('project', 'create', 'demo');
$t->ctl('project', 'create', 'other');

my $SECRET = 'proxy-secret-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 40);
$t->write_file('hs.secret', "$SECRET\n");

my $d = $t->dir;

$t->write_nginx(<<"EOF");
load_module %%BUILD%%/ngx_http_automations_module.so;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    automations_redis %%REDIS%%;
    automations_jwt_key $d/hs.secret alg=HS256;

    log_format am '\$automations_credential|\$automations_subject|\$automations_project|\$automations_scopes|\$status|\$request_uri';
    log_format echo '\$request_uri|\$http_x_subject';

    # automations_auth at server level: every location that does not override it
    server {
        listen 127.0.0.1:%%PORT1%%;
        automations_auth jwt apikey;
        automations_auth_scope run;
        access_log $d/inherit.log am;
        proxy_set_header X-Project \$automations_project;
        proxy_set_header X-Subject \$automations_subject;
        proxy_set_header X-Cred \$automations_credential;
        proxy_set_header X-Scopes \$automations_scopes;
        location /a/ { proxy_pass http://127.0.0.1:%%PORT%%/echo/a/; }
        location /b/ { automations_auth off; proxy_pass http://127.0.0.1:%%PORT%%/echo/b/; }
        location /c/ { automations_auth apikey; proxy_pass http://127.0.0.1:%%PORT%%/echo/c/; }
        location /d/ { automations_auth_scope read; proxy_pass http://127.0.0.1:%%PORT%%/echo/d/; }
    }

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        location /svc/ {
            automations_auth jwt apikey;
            automations_auth_scope read;
            proxy_set_header X-Project \$automations_project;
            proxy_set_header X-Subject \$automations_subject;
            proxy_set_header X-Cred \$automations_credential;
            proxy_set_header X-Scopes \$automations_scopes;
            proxy_pass http://127.0.0.1:%%PORT%%/echo/;
            access_log $d/svc.log am;

            location /svc/open/ {
                automations_auth off;
                proxy_pass http://127.0.0.1:%%PORT%%/echo/open/;
            }
        }

        location /echo/ {
            access_log $d/echo.log echo;
            return 200 "\$http_x_project|\$http_x_subject|\$http_x_cred|\$http_x_scopes";
        }
    }
}
EOF
$t->start_nginx;

# ---------------------------------------------------------------- helpers

sub tok {
    my (%claims) = @_;
    return AmTest::jwt(alg => 'HS256', key => $SECRET,
        claims => { project => 'demo', role => 'read', sub => 'alice',
                    exp => now() + 600, %claims });
}

sub get {
    my ($path, $headers, %o) = @_;
    return $t->http(GET => $path, headers => $headers || {}, %o);
}

my $seq = 0;
sub uniq { return $_[0] . '-' . ++$seq }

# Lines of a log file, waiting until one matches $re (requests are logged
# when they finish, which may be a moment after the client has the answer).
sub log_lines {
    my ($file, $re) = @_;
    my $lines = sub { [ split /\n/, $t->read_file($file) // '' ] };
    $t->wait_for(sub { grep { /$re/ } @{ $lines->() } }, 10, "$re in $file")
        if $re;
    return $lines->();
}

# Whether the service behind proxy_pass saw a request for $uri: a later
# request that does reach it is waited for first, so that "not seen" is not
# just "not yet logged".
sub upstream_saw {
    my ($uri) = @_;
    my $probe = uniq('/svc/probe');
    my $r = get($probe, bearer(tok()));
    (my $echo = $probe) =~ s{^/svc/}{/echo/};
    log_lines('echo.log', qr/^\Q$echo\E\|/);
    return scalar grep { /^\Q$uri\E\|/ } @{ log_lines('echo.log') };
}

sub is_401 {
    my ($r, $detail, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 401, "$name: 401") or diag($r->{body});
    is_deeply($r->{json}, { detail => $detail }, "$name: JSON detail")
        or diag($r->{body});
    like($r->{headers}{'www-authenticate'} // '', qr/^Bearer realm="automations"/,
         "$name: WWW-Authenticate");
}

sub is_403 {
    my ($r, $detail, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 403, "$name: 403") or diag($r->{body});
    is_deeply($r->{json}, { detail => $detail }, "$name: JSON detail")
        or diag($r->{body});
}

my $key_rr = $t->ctl_fields('apikey', 'create', 'demo', '--scopes', 'read run');
my $key_w  = $t->ctl_fields('apikey', 'create', 'demo', '--scopes', 'write');
my $key_o  = $t->ctl_fields('apikey', 'create', 'other', '--scopes', 'admin');
like($key_rr->{key} // '', qr/^amk_demo_[0-9a-f]{64}$/, 'API keys created');

# ------------------------------------------------------------------ tests

subtest 'valid JWT: the service learns who calls' => sub {
    my $u = uniq('/svc/jwt');
    my $r = get($u, bearer(tok()));
    is($r->{status}, 200, 'status 200') or diag($r->{body});
    is($r->{body}, 'demo|alice|jwt|read', 'project|subject|credential|scopes');

    $r = get(uniq('/svc/jwt'), bearer(tok(role => 'admin', sub => 'root')));
    is($r->{body}, 'demo|root|jwt|read write run', 'admin role: every scope');

    $r = get(uniq('/svc/jwt'), bearer(tok(project => 'other', role => [ 'run', 'read' ])));
    is($r->{body}, 'other|alice|jwt|read run', "project 'other', roles as an array");

    $r = get(uniq('/svc/jwt'), { %{ bearer(tok()) }, 'X-Project' => 'evil',
                                 'X-Subject' => 'mallory', 'X-Cred' => 'none',
                                 'X-Scopes' => 'admin' });
    is($r->{body}, 'demo|alice|jwt|read', 'client headers of the same names are replaced');
};

subtest 'API key: apikey:<id> subject' => sub {
    my $r = get(uniq('/svc/key'), bearer($key_rr->{key}));
    is($r->{status}, 200, 'status 200') or diag($r->{body});
    is($r->{body}, "demo|apikey:$key_rr->{id}|apikey|read run",
       'project|apikey:<id>|apikey|scopes');
    $r = get(uniq('/svc/key'), bearer($key_o->{key}));
    is($r->{body}, "other|apikey:$key_o->{id}|apikey|read write run",
       "other's admin key");
};

subtest 'no or bad credentials: 401, the service is never called' => sub {
    my @cases = (
        [ 'no credentials', {}, $MISSING ],
        [ 'bad JWT signature', bearer(AmTest::jwt(alg => 'HS256', key => 'x' x 40,
                                      claims => { project => 'demo', role => 'read' })),
          $INVALID ],
        [ 'unknown API key', bearer('amk_demo_' . ('0' x 64)), $INVALID ],
        [ 'token-pair scheme', { Authorization => 'Token amt_' . ('0' x 64),
                                 'X-Api-Key' => 'amx_' . ('0' x 64) }, $INVALID ],
        [ 'Basic', { Authorization => 'Basic YTpi' }, $INVALID ],
    );
    my @uris;
    for my $c (@cases) {
        my $u = uniq('/svc/denied');
        push @uris, [ $u, $c->[0] ];
        is_401(get($u, $c->[1]), $c->[2], $c->[0]);
    }
    for (@uris) {
        (my $echo = $_->[0]) =~ s{^/svc/}{/echo/};
        ok(!upstream_saw($echo), "$_->[1]: the service was not called");
    }
    # the same check sees a request that did get through
    my $u = uniq('/svc/allowed');
    is(get($u, bearer(tok()))->{status}, 200, 'a valid request');
    (my $echo = $u) =~ s{^/svc/}{/echo/};
    ok(upstream_saw($echo), 'the service was called for it');
};

subtest 'wrong scope: 403, the service is never called' => sub {
    my $u1 = uniq('/svc/scope');
    is_403(get($u1, bearer(tok(role => 'run'))), $DENIED, 'JWT with role run only');
    my $u2 = uniq('/svc/scope');
    is_403(get($u2, bearer($key_w->{key})), $DENIED, 'API key with scope write only');
    my $u3 = uniq('/svc/scope');
    my %no_role = (project => 'demo', sub => 'x', exp => now() + 60);
    is_403(get($u3, bearer(AmTest::jwt(alg => 'HS256', key => $SECRET, claims => \%no_role))),
           $DENIED, 'JWT without a role');
    my $u4 = uniq('/svc/scope');
    is_403(get($u4, bearer(AmTest::jwt(alg => 'HS256', key => $SECRET,
                                       claims => { role => 'read', exp => now() + 60 }))),
           $NOPROJ, 'JWT without a project');
    for my $u ($u1, $u2, $u3, $u4) {
        (my $echo = $u) =~ s{^/svc/}{/echo/};
        ok(!upstream_saw($echo), "$u: the service was not called");
    }
};

subtest 'automations_auth off in a nested location' => sub {
    my $u = uniq('/svc/open/x');
    my $r = get($u);
    is($r->{status}, 200, 'no credentials: 200') or diag($r->{body});
    is($r->{body}, '|||', 'no identity passed on');
    $r = get(uniq('/svc/open/x'), { 'X-Project' => 'evil', 'X-Subject' => 'mallory' });
    is($r->{body}, '|||', 'client cannot forge the identity headers');
    (my $echo = $u) =~ s{^/svc/}{/echo/};
    ok(upstream_saw($echo), 'the service was called');
    is(get(uniq('/svc/x'))->{status}, 401, 'the parent location still needs credentials');
};

subtest 'automations_auth at server level is inherited' => sub {
    my $p = $t->port(1);
    my $r = get('/a/1', {}, port => $p);
    is_401($r, $MISSING, '/a/ inherits: no credentials');
    $r = get('/a/2', bearer(tok(role => 'run')), port => $p);
    is($r->{status}, 200, '/a/ with a JWT (role run)') or diag($r->{body});
    is($r->{body}, 'demo|alice|jwt|run', '/a/: identity passed on');
    $r = get('/a/3', bearer($key_rr->{key}), port => $p);
    is($r->{status}, 200, '/a/ with an API key');
    is_403(get('/a/4', bearer(tok(role => 'read')), port => $p), $DENIED,
           '/a/ inherits the server scope run');

    $r = get('/b/1', {}, port => $p);
    is($r->{status}, 200, '/b/ (off): no credentials needed');
    is($r->{body}, '|||', '/b/: no identity');

    is_401(get('/c/1', bearer(tok(role => 'run')), port => $p), $INVALID,
           '/c/ (apikey only): a valid JWT is refused');
    $r = get('/c/2', bearer($key_rr->{key}), port => $p);
    is($r->{status}, 200, '/c/: an API key is accepted');
    is($r->{body}, "demo|apikey:$key_rr->{id}|apikey|read run", '/c/: identity');
    is_403(get('/c/3', bearer($key_w->{key}), port => $p), $DENIED,
           '/c/ still inherits the server scope run');

    is(get('/d/1', bearer(tok(role => 'read')), port => $p)->{status}, 200,
       '/d/ overrides the scope (read), inherits automations_auth');
    is_401(get('/d/2', {}, port => $p), $MISSING, '/d/: still needs credentials');

    my $log = join "\n", @{ log_lines('inherit.log', qr{\|/d/2$}) };
    like($log, qr{^jwt\|alice\|demo\|run\|200\|/a/2$}m, 'logged: /a/ JWT');
    like($log, qr{^-\|-\|-\|-\|401\|/a/1$}m, 'logged: /a/ refused');
    like($log, qr{^-\|-\|-\|-\|200\|/b/1$}m, 'logged: /b/ without identity');
};

subtest 'the variables in an access_log' => sub {
    my $u1 = uniq('/svc/log');
    get($u1, bearer(tok(sub => 'logged-user')));
    my $u2 = uniq('/svc/log');
    get($u2, bearer($key_rr->{key}));
    my $u3 = uniq('/svc/log');
    get($u3);
    my $u4 = uniq('/svc/log');
    get($u4, bearer(tok(role => 'write')));
    my $log = join "\n", @{ log_lines('svc.log', qr/\Q$u4\E$/) };
    like($log, qr{^jwt\|logged-user\|demo\|read\|200\|\Q$u1\E$}m, 'JWT request');
    like($log, qr{^apikey\|apikey:$key_rr->{id}\|demo\|read run\|200\|\Q$u2\E$}m,
         'API key request');
    like($log, qr{^-\|-\|-\|-\|401\|\Q$u3\E$}m, 'refused request: no identity');
    like($log, qr{^jwt\|alice\|demo\|write\|403\|\Q$u4\E$}m,
         'forbidden request: logged with who was refused');
};

subtest 'JWTs need no Redis; API keys fail fast without it' => sub {
    $t->stop_redis;
    my $r = get(uniq('/svc/noredis'), bearer(tok()));
    is($r->{status}, 200, 'JWT with Redis down: 200') or diag($r->{body});
    is($r->{body}, 'demo|alice|jwt|read', 'identity');
    $r = get(uniq('/svc/noredis'), bearer($key_rr->{key}));
    is($r->{status}, 503, 'API key with Redis down: 503') or diag($r->{body});
    is_deeply($r->{json}, { detail => 'The automations store is unavailable.' },
              '503 JSON detail');
    $t->start_redis;
    ok($t->wait_for(sub { get('/svc/back', bearer($key_rr->{key}))->{status} == 200 },
                    $t->valgrind ? 60 : 15, 'reconnect'),
       'API keys work again once Redis is back');
};

$t->stop_nginx;
$t->error_log_clean;

done_testing;
