#!/usr/bin/perl
# The dashboard: the page automations_dashboard serves (its headers, its
# CSP checked against the page's own inline parts, the API location put in
# it, methods, configuration errors), the two endpoints it reads beside
# the executions (queue/overview, webhooks/dead: JSON, credentials,
# another project's data, bad query arguments), and the page itself driven
# in headless Chromium (t/dashboard/browser.mjs, with puppeteer-core
# installed by npm into the test's folder): sign in with a key, a run
# appears, one is cancelled and retried, hostile data stays text. The
# screenshot is kept as build/artifacts/dashboard.png.

use strict;
use warnings;

use Digest::SHA qw(sha256_base64);
use File::Path qw(make_path);
use FindBin;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time);

use AmTest;

my $t = AmTest->new;

plan skip_all => 'module, worker or CLI not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl'
        && -x $t->build . '/automations-worker';

my $JSON = JSON::PP->new->utf8->canonical;
my $API = '/automations/v1/';
my $ROOT = "$FindBin::Bin/..";
my $CHROMIUM = '/usr/bin/chromium';

$t->start_redis;
$t->ctl('project', 'create', $_) for 'demo', 'other';

my $SECRET = join '', map { sprintf '%x', int rand 16 } 1 .. 40;
$t->write_file('jwt.secret', $SECRET);

sub jwt {
    my ($project) = @_;
    return AmTest::jwt(alg => 'HS256', key => $SECRET,
        claims => { sub => 'user-1', project => $project, role => 'admin',
                    exp => int(time) + 3600 });
}

my %KEY = (
    demo      => $t->apikey('demo', 'read write run'),
    read      => $t->apikey('demo', 'read'),
    other     => $t->apikey('other', 'read write run'),
    jwt       => jwt('demo'),
    jwt_other => jwt('other'),
);

# every delivery dies at its first attempt: 410 Gone
$t->start_receiver(status => 410);

$t->write_nginx(<<'EOF');
load_module %%BUILD%%/ngx_http_automations_module.so;
worker_processes 2;
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

        location /dashboard/ {
            automations_dashboard;
        }

        location = /elsewhere {
            automations_dashboard /gateway/a&b;
        }
    }
}
EOF
$t->start_nginx;

sub api {
    my ($who, $method, $path, %o) = @_;
    return $t->api(defined $who ? $KEY{$who} : undef, $method, "$API$path",
                   %o);
}

sub create {
    my ($who, $body) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = api($who, POST => '', json => { runtime => 'sh', %$body });
    is($r->{status}, 200, "create $body->{automation_name}")
        or diag($r->{body});
}

sub run_async {
    my ($who, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = api($who, POST => "$name/run", json => $o{json} // {},
                headers => { Prefer => 'respond-async' });
    is($r->{status}, 202, "run $name") or diag($r->{body});
    return $r->{json}{execution_id};
}

my $ECHO = qq(cat >/dev/null; echo '{"ok":true}'\n);

# ------------------------------------------------------------------ page

# the policy the page needs, computed here from the page's source
sub expected_csp {
    my $page = $t->read_file("$ROOT/src/dashboard/index.html");
    my ($script) = $page =~ m{<script>(.*?)</script>}s;
    my ($style) = $page =~ m{<style>(.*?)</style>}s;
    my $h = sub { my $d = sha256_base64($_[0]); "'sha256-$d='" };
    return "default-src 'none'; script-src " . $h->($script)
         . "; style-src " . $h->($style)
         . "; connect-src 'self'; img-src data:; frame-ancestors 'none';"
         . " base-uri 'none'; form-action 'none'";
}

subtest 'the page and its headers' => sub {
    my $r = $t->http(GET => '/dashboard/');
    is($r->{status}, 200, '200 without any credential');
    is($r->{headers}{'content-type'}, 'text/html; charset=utf-8',
       'HTML in UTF-8');
    is($r->{headers}{'content-security-policy'}, expected_csp(),
       "CSP: the page's inline script and style by digest, nothing else");
    is($r->{headers}{'x-content-type-options'}, 'nosniff', 'nosniff');
    is($r->{headers}{'referrer-policy'}, 'no-referrer', 'no referrer');
    is($r->{headers}{'cache-control'}, 'no-cache', 'revalidated');
    is($r->{headers}{'content-length'}, length $r->{body},
       'Content-Length of the body');
    like($r->{body},
         qr{<meta name="automations-api" content="/automations/v1/">},
         'the API location by default');
    unlike($r->{body}, qr/%%API%%/, 'no placeholder left');
    unlike($r->{body}, qr/<(?:img|iframe|link|object)\b|\b(?:src|href)=/i,
           'nothing loaded from elsewhere');

    my $h = $t->http(HEAD => '/dashboard/');
    is($h->{status}, 200, 'HEAD: 200');
    is($h->{body}, '', 'HEAD: no body');
    is($h->{headers}{'content-length'}, length $r->{body},
       'HEAD: the same length');

    $r = $t->http(GET => '/elsewhere');
    like($r->{body},
         qr{<meta name="automations-api" content="/gateway/a&amp;b/">},
         'another API location, escaped, with its final slash');

    for my $method (qw(POST PUT DELETE)) {
        $r = $t->http($method => '/dashboard/', body => 'x=1');
        is($r->{status}, 405, "$method: 405");
        is($r->{headers}{allow}, 'GET, HEAD', "$method: Allow: GET, HEAD");
    }
};

subtest 'nginx -t refuses API locations the page could not call' => sub {
    my $conf = $t->read_file('nginx.conf');

    for my $case (
        [ 'gateway/', 'relative' ],
        [ '//evil.example/', 'another host' ],
        [ 'https://evil.example/', 'a URL' ],
        [ q("/a\\"><script>x</script>"), 'markup' ],
        [ q("/a b"), 'a space' ],
        [ '/a?b', 'a query' ],
    ) {
        my ($arg, $what) = @$case;
        (my $bad = $conf) =~
            s{automations_dashboard /gateway/a&b;}{automations_dashboard $arg;};
        $t->write_file('nginx.conf', $bad);
        my ($code, $out) = $t->nginx_test_config;
        isnt($code, 0, "$what: refused");
        like($out, qr/invalid API location .*: a path on this server/,
             "$what: says why");
    }

    (my $dup = $conf) =~ s{(automations_dashboard;)}{$1 automations_health;};
    $t->write_file('nginx.conf', $dup);
    my ($code, $out) = $t->nginx_test_config;
    isnt($code, 0, 'with another handler: refused');
    like($out, qr/the location has another handler/, 'says why');

    $t->write_file('nginx.conf', $conf);
    ($code) = $t->nginx_test_config;
    is($code, 0, 'the configuration is good again');
};

# ---------------------------------------------------- queue/overview

create('demo', { automation_name => 'echo', code => $ECHO });

subtest 'queue/overview: the queue with no worker' => sub {
    my $id = run_async('demo', 'echo');
    my $r = api('demo', GET => 'queue/overview');
    is($r->{status}, 200, 'answers 200');
    is($r->{headers}{'content-type'}, 'application/json', 'JSON');
    is_deeply([ sort keys %{ $r->{json} } ], [qw(queue workers)],
              'the queue and the workers, nothing else');
    is($r->{json}{queue}{depth}, 1, 'one run queued');
    is($r->{json}{queue}{pending}, 0, 'none taken');
    ok($r->{json}{queue}{oldest_age_ms} >= 0, 'the age of the oldest');
    is($r->{json}{workers}, 0, 'no worker');

    $r = api('read', GET => 'queue/overview');
    is($r->{status}, 200, 'a read-only key sees it too');

    $r = api('jwt', GET => 'queue/overview');
    is($r->{status}, 200, 'and a JWT');

    $r = api('other', GET => 'queue/overview');
    is($r->{json}{queue}{depth}, 1,
       'another project sees the shared queue, not whose runs are in it');
    unlike($r->{body}, qr/demo|echo|exec_/, 'no name, no execution');
};

$t->start_worker('w1', '--allow-private-webhooks', '--concurrency', '3',
    '--visibility-timeout', '6000');

subtest 'queue/overview: the live worker, the queue drained' => sub {
    ok($t->wait_for(sub {
        my $q = api('demo', GET => 'queue/overview')->{json};
        $q->{workers} == 1 && $q->{queue}{depth} == 0;
    }, 15), 'one worker, nothing queued');
    my $r = api('demo', GET => 'queue/overview');
    is($r->{json}{queue}{oldest_age_ms}, -1, 'no oldest entry: -1');
};

# ---------------------------------------------------- webhooks/dead

create('other', { automation_name => 'echo', code => $ECHO });
for my $who ('demo', 'other') {
    create($who, { automation_name => 'hooked', code => $ECHO,
                   webhook => $t->receiver_url("/$who") });
}

# runs whose webhook gets 410 Gone: dead-lettered at once
my %DEAD;
for my $who ('demo', 'demo', 'other') {
    my $id = run_async($who, 'hooked');
    $t->wait_webhook($who, $id, 'dead');
    push @{ $DEAD{$who} }, $id;
}

subtest 'webhooks/dead: the project its own dead letters, newest first' => sub {
    my $r = api('demo', GET => 'webhooks/dead');
    is($r->{status}, 200, 'answers 200');
    is($r->{headers}{'content-type'}, 'application/json', 'JSON');
    is_deeply([ map { $_->{execution_id} } @{ $r->{json}{deliveries} } ],
              [ reverse @{ $DEAD{demo} } ], "demo's two, newest first");
    is($r->{json}{truncated}, JSON::PP::false, 'all of them');

    my $d = $r->{json}{deliveries}[0];
    is_deeply([ sort keys %$d ], [ sort qw(execution_id automation url
        dead_since attempts last_status last_error) ], 'the fields');
    is($d->{automation}, 'hooked', 'the automation');
    is($d->{url}, $t->receiver_url('/demo'), 'the URL');
    is($d->{attempts}, 1, 'one attempt');
    is($d->{last_status}, 410, 'its status');
    like($d->{dead_since}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
         'since when, RFC 3339');

    $r = api('jwt', GET => 'webhooks/dead');
    is_deeply([ map { $_->{execution_id} } @{ $r->{json}{deliveries} } ],
              [ reverse @{ $DEAD{demo} } ], "a JWT of demo: the same");

    for my $who ('other', 'jwt_other') {
        $r = api($who, GET => 'webhooks/dead');
        is_deeply([ map { $_->{execution_id} } @{ $r->{json}{deliveries} } ],
                  $DEAD{other}, "another project's $who: its own only");
        unlike($r->{body}, qr/\Q$_\E/, "$who: never demo's $_")
            for @{ $DEAD{demo} };
    }

    $r = api('demo', GET => 'webhooks/dead?limit=1');
    is(scalar @{ $r->{json}{deliveries} }, 1, 'limit=1: one');
    is($r->{json}{deliveries}[0]{execution_id}, $DEAD{demo}[1],
       'the newest');
    is($r->{json}{truncated}, JSON::PP::true, 'and truncated');
};

subtest 'webhooks/dead: expired executions, a project among many' => sub {
    my $own = 'am:{demo}:webhooks:dead';
    my $mine = [ reverse @{ $DEAD{demo} } ];
    my $listed = sub {
        my $r = api('demo', GET => 'webhooks/dead');
        is($r->{status}, 200, "$_[0]: 200");
        return ([ map { $_->{execution_id} } @{ $r->{json}{deliveries} } ],
                $r->{json}{truncated});
    };

    my $ttl = $t->redis('PTTL', $own);
    ok($ttl > 0 && $ttl <= 7 * 86400 * 1000,
       "the project's index expires with its executions ($ttl ms)");

    # another project's dead letters, many and newer, in the shared set
    # and in its own index
    my $ms = int(time * 1000);
    my @noise = map { sprintf('exec_%024x', $_) } 1 .. 1500;
    $t->redis('ZADD', 'am:webhooks:dead', map { ($ms + $_, "noise/$noise[$_ - 1]") } 1 .. 1500);
    $t->redis('ZADD', 'am:{noise}:webhooks:dead', map { ($ms + $_, $noise[$_ - 1]) } 1 .. 1500);
    my ($got, $trunc) = $listed->('with 1500 newer of another project');
    is_deeply($got, $mine, "demo's own, all of them");
    is($trunc, JSON::PP::false, 'not truncated');

    # demo's index naming executions that have expired: dropped as read,
    # at most 1000 a call
    $t->redis('ZADD', $own, map { ($ms + $_, $noise[$_ - 1]) } 1 .. 1500);
    ($got, $trunc) = $listed->('behind 1500 expired');
    is_deeply($got, [], 'the first call reads 1000 expired, lists none');
    is($trunc, JSON::PP::true, 'and says there is more');
    is($t->redis('ZCARD', $own), 502, 'the 1000 it read are gone');
    ($got, $trunc) = $listed->('the next call');
    is_deeply($got, $mine, "then demo's own");
    is($trunc, JSON::PP::false, 'all of them');
    is($t->redis('ZCARD', $own), 2, 'only the live ones are left');

    $t->redis('DEL', 'am:{noise}:webhooks:dead');
    $t->redis('ZREM', 'am:webhooks:dead', map { "noise/$_" } @noise);
};

subtest 'credentials and hostile input' => sub {
    for my $path ('queue/overview', 'webhooks/dead') {
        my $r = api(undef, GET => $path);
        is($r->{status}, 401, "$path without a credential: 401");
        is($r->{json}{detail}, 'Authentication credentials were not provided.',
           "$path: the API's 401");

        $r = $t->api($KEY{demo} . 'x', GET => "$API$path");
        is($r->{status}, 401, "$path with a wrong key: 401");

        $r = api('demo', POST => $path, json => {});
        is($r->{status}, 405, "POST $path: 405");
        is($r->{headers}{allow}, 'GET', 'Allow: GET');

        $r = api('demo', GET => "$path/x");
        is($r->{status}, 404, "$path/x: 404");
    }

    my $r = api('read', GET => 'webhooks/dead');
    is($r->{status}, 404, 'a read-only key: no dead letters (scope run)');
    is($r->{json}{detail}, "Project not found or user doesn't have access",
       'as the API says it');

    my $before = $t->redis_snapshot;

    for my $limit ('0', '101', '-1', 'abc', '1e2', '%31', '1%00', '9' x 30,
                   '', '+5', '%205') {
        $r = api('demo', GET => "webhooks/dead?limit=$limit");
        is($r->{status}, 400, "limit=$limit: 400");
        is($r->{json}{detail}, 'limit must be an integer from 1 to 100.',
           "limit=$limit: says why");
    }

    $r = api('demo', GET => 'webhooks/dead?limit=100&x=%3Cscript%3E');
    is($r->{status}, 200, 'limit=100 and an unknown argument: 200');

    $r = api('demo', GET => 'queue/overview?depth=-1&%00=1');
    is($r->{status}, 200, 'overview arguments are ignored');

    is($t->redis_snapshot, $before, 'Redis unchanged');
};

# -------------------------------------------------------- the browser

subtest 'the page in headless Chromium' => sub {
    ok(-x $CHROMIUM, "$CHROMIUM is installed (Debian package chromium, "
                     . 'in the Makefile\'s PACKAGES)')
        or return;
    ok(grep({ -x "$_/npm" } split /:/, $ENV{PATH}),
       'npm is installed (Debian packages nodejs, npm)')
        or return;

    my $npm = $t->dir . '/npm';
    my ($code, $out, $err) = $t->_run_capture([ 'npm', 'install',
        '--no-save', '--no-audit', '--no-fund', '--prefix', $npm,
        'puppeteer-core@24' ],
        env => { npm_config_update_notifier => 'false',
                 PUPPETEER_SKIP_DOWNLOAD => '1' });
    is($code, 0, 'npm install puppeteer-core') or return diag($err);

    # the script must find puppeteer-core beside it, in the npm folder
    my $script = $t->write_file("$npm/browser.mjs",
        $t->read_file("$FindBin::Bin/dashboard/browser.mjs"));

    create('demo', { automation_name => 'slow',
                     code => qq(cat >/dev/null; sleep 60; echo '{}'\n) });
    create('demo', { automation_name => 'xss',
        description => '<img src=x onerror="window.__pwned=3">',
        code => q(cat >/dev/null; echo '<script>window.__pwned=2</script>' >&2;)
              . q( echo '{"html":"<img src=x onerror=window.__pwned=1>"}') });

    my $artifacts = $t->build . '/artifacts';
    make_path($artifacts);
    my $shot = "$artifacts/dashboard.png";
    unlink $shot;

    my $cfg = $t->write_file('browser.json', $JSON->encode({
        chromium   => $CHROMIUM,
        profile    => $t->dir . '/chromium-profile',
        url        => 'http://127.0.0.1:' . $t->port . '/dashboard/',
        api        => 'http://127.0.0.1:' . $t->port . $API,
        key        => $KEY{demo},
        jwt        => $KEY{jwt},
        dead_demo  => $DEAD{demo}[0],
        dead_other => $DEAD{other}[0],
        screenshot => $shot,
        wait_ms    => 20000,
        total_ms   => 240000,
    }));

    ($code, $out, $err) = $t->_run_capture([ 'node', $script, $cfg ],
                                           timeout => 300);
    is($code, 0, 'the browser script exits 0') or diag($err);

    my ($ids, $n);
    for my $line (split /\n/, $out) {
        my $m = eval { $JSON->decode($line) } or next;
        if ($m->{ids}) {
            $ids = $m->{ids};
            next;
        }
        $n++;
        ok($m->{ok}, "browser: $m->{check}")
            or diag($JSON->encode([ $m->{detail} ]));
    }
    ok($n >= 30, "every check of the browser reported ($n)");

    ok(-s $shot, "screenshot kept: $shot");

    # what the page did, seen through the API
    my $r = api('demo', GET => "slow/executions/$ids->{slow}");
    is($r->{json}{status}, 'cancelled', 'the run cancelled in the page is');
    $r = api('demo', GET => "slow/executions/$ids->{retry}");
    is($r->{json}{retry_of}, $ids->{slow}, 'the retry made in the page is');
};

subtest 'Redis down: the endpoints answer 503, the page is still served' => sub {
    $t->stop_proc('w1');
    $t->stop_redis;

    for my $path ('queue/overview', 'webhooks/dead') {
        my $r = api('jwt', GET => $path);
        is($r->{status}, 503, "$path: 503");
        is($r->{json}{detail}, 'The automations store is unavailable.',
           "$path: says why");
    }

    my $r = $t->http(GET => '/dashboard/');
    is($r->{status}, 200, 'the page: 200');
};

$t->error_log_clean;
done_testing;
