#!/usr/bin/perl
# Operating the gateway: the health check (200 while this nginx worker's
# Redis connection is up, 503 with a reason when Redis is gone), the
# Prometheus page (valid for promtool, counters that move with requests,
# the workers' counters from Redis), the worker's JSON log lines, the
# refusal log lines, $automations_execution_id in the access log, and the
# module's release in the start-up line.

use strict;
use warnings;

use File::Temp qw(tempfile);
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

use AmTest;

my $t = AmTest->new;
my $W = $t->build . '/automations-worker';
my ($PROMTOOL) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};

plan skip_all => 'module, worker or CLI not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl' && -x $W;
plan skip_all => 'promtool not installed (Debian package prometheus)'
    unless $PROMTOOL;

my $EXEC = qr/^exec_[0-9a-f]{24}$/;

$t->start_redis;
$t->ctl('project', 'create', 'demo');
my $KEY = $t->apikey('demo', 'read write run');
my $READ = $t->apikey('demo', 'read');
$t->write_file('hs.key', 'observe-test-secret-' x 3);

$t->write_nginx(<<'EOF');
load_module %%BUILD%%/ngx_http_automations_module.so;
worker_processes 2;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    automations_redis %%REDIS%%;
    automations_redis_connect_timeout 300ms;
    automations_run_wait 5s;

    log_format observe '$status $request_method $uri '
                       'exec=$automations_execution_id';

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        access_log %%DIR%%/access.log observe;

        location /automations/v1/ {
            automations_api;
            automations_jwt_key %%DIR%%/hs.key alg=HS256 kid=k1;
        }

        location = /health {
            automations_health;
        }

        location = /metrics {
            automations_metrics;
        }
    }
}
EOF
$t->start_nginx;

# the page, checked by promtool, as { "name{labels}" => value }
sub scrape {
    my $r = $t->http(GET => '/metrics');
    is($r->{status}, 200, 'metrics: 200');
    like($r->{headers}{'content-type'},
         qr{^text/plain; version=0\.0\.4}, 'the exposition format 0.0.4');

    my ($fh, $file) = tempfile(DIR => $t->dir, SUFFIX => '.prom');
    print $fh $r->{body};
    close $fh;
    my ($code, $out, $err) = $t->_run_capture(
        [ '/bin/sh', '-c', "$PROMTOOL check metrics < '$file'" ]);
    is($code, 0, 'promtool check metrics accepts the page')
        or diag("$out$err\n$r->{body}");

    my %m;
    for (split /\n/, $r->{body}) {
        next if /^#/;
        $m{$1} = $2 if /^(\S+(?:\{.*\})?) (\S+)$/;
    }
    return (\%m, $r->{body});
}

sub wait_health {
    my ($status) = @_;
    my $r;
    $t->wait_for(sub {
        $r = $t->http(GET => '/health');
        $r->{status} == $status;
    }, 10, "health $status");
    return $r;
}

subtest 'the start-up line names the module release and nginx' => sub {
    like($t->error_log,
         qr/\[notice\].*automations module \d+\.\d+\.\d+ \(nginx \d+\.\d+\.\d+\)/,
         'notice: automations module X.Y.Z (nginx A.B.C)');
};

subtest 'health: 200 with the queue and the workers' => sub {
    my $r = wait_health(200);
    is($r->{status}, 200, 'Redis up: 200');
    like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON');
    my $j = $r->{json};
    is($j->{status}, 'ok', 'status ok');
    is($j->{redis}, 'up', 'redis up');
    like($j->{pid}, qr/^\d+$/, 'the nginx worker pid');
    is($j->{workers}, 0, 'no live worker yet');
    is_deeply($j->{queue}, { depth => 0, pending => 0, oldest_age_ms => -1 },
              'an empty queue');
    is($j->{webhooks_dead}, 0, 'no dead letters');

    is($t->http(POST => '/health')->{status}, 405, 'POST: 405');
};

subtest 'a queued run shows in health and metrics' => sub {
    my $r = $t->api($KEY, POST => '/automations/v1/',
        json => { automation_name => 'echo', runtime => 'sh',
                  code => q(cat >/dev/null; printf '{"ok":true}') });
    is($r->{status}, 200, 'automation created') or diag($r->{body});

    $r = $t->api($KEY, POST => '/automations/v1/echo/run', json => {},
                 headers => { Prefer => 'respond-async' });
    is($r->{status}, 202, 'run queued, no worker') or diag($r->{body});
    sleep 1.1;

    my $j = wait_health(200)->{json};
    is($j->{queue}{depth}, 1, 'depth 1');
    cmp_ok($j->{queue}{oldest_age_ms}, '>=', 1000, 'the entry is >= 1 s old');

    my ($m) = scrape();
    is($m->{automations_queue_depth}, 1, 'automations_queue_depth 1');
    cmp_ok($m->{automations_queue_oldest_age_seconds}, '>=', 1,
           'automations_queue_oldest_age_seconds >= 1');
    is($m->{automations_redis_scrape_success}, 1, 'Redis answered');
    is($m->{automations_workers_live}, 0, 'no live worker');
};

subtest 'request, refusal and latency counters move' => sub {
    my ($before) = scrape();
    my $list = 'automations_requests_total{api="automations",'
             . 'endpoint="GET /",status="200"}';
    my $missing = 'automations_auth_refusals_total{reason="missing"}';
    my $scope = 'automations_auth_refusals_total{reason="scope"}';

    is($t->api($KEY, GET => '/automations/v1/')->{status}, 200, 'list')
        for 1 .. 3;
    is($t->api(undef, GET => '/automations/v1/')->{status}, 401,
       'no credentials');
    is($t->api($READ, DELETE => '/automations/v1/echo')->{status}, 404,
       'read key deletes: the reference\'s 404');
    is($t->api($KEY, GET => '/automations/v1/a/b/c/d/e')->{status}, 404,
       'no such route');

    my ($after) = scrape();
    is($after->{$list} - ($before->{$list} // 0), 3,
       'three lists counted, over both nginx worker processes');
    is($after->{$missing} - $before->{$missing}, 1, 'one refusal: missing');
    is($after->{$scope} - $before->{$scope}, 1, 'one refusal: scope');
    cmp_ok($after->{'automations_requests_total{api="automations",'
                    . 'endpoint="unmatched",status="404"}'} // 0, '>=', 1,
           'the unmatched path, under "unmatched"');
    cmp_ok($after->{automations_enqueue_duration_seconds_count}, '>=', 1,
           'the enqueue was timed');
    my @up = grep { /^automations_redis_connection_up\{pid="\d+"\}$/ }
             keys %$after;
    is(scalar @up, 2, 'a connection state per nginx worker process');
    is_deeply([ map { $after->{$_} } @up ], [ 1, 1 ], 'both up');
};

subtest 'refused JWTs are logged with their kind, subject, kid and alg' => sub {
    my $jwt = AmTest::jwt(alg => 'HS256', key => 'not-the-right-secret' x 2,
                          kid => 'k1',
                          claims => { sub => 'alice', project => 'demo',
                                      role => 'admin',
                                      exp => time + 600 });
    is($t->api($jwt, GET => '/automations/v1/')->{status}, 401,
       'a bad signature: 401');
    ok($t->wait_for(sub { $t->error_log =~
        /credentials refused: .*\(credential: jwt, subject: "alice", kid: "k1", alg: HS256\)/ },
        5, 'the refusal line'), 'the refusal line names jwt, alice, k1, HS256');

    my $reader = AmTest::jwt(alg => 'HS256', key => 'observe-test-secret-' x 3,
                             kid => 'k1',
                             claims => { sub => 'bob', project => 'demo',
                                         role => 'read', exp => time + 600 });
    is($t->api($reader, DELETE => '/automations/v1/echo')->{status}, 404,
       'a read-only JWT deletes: the reference\'s 404');
    ok($t->wait_for(sub { $t->error_log =~
        /access refused: These credentials do not allow this operation\. \(credential: jwt, subject: "bob", kid: "k1", alg: HS256\)/ },
        5, 'the refusal line'), 'so does the line of a refusal answered 404');
};

subtest 'the worker: JSON log lines, counters in the metrics, health' => sub {
    $t->start_worker('w1', '--visibility-timeout', '1500',
                     '--log-format', 'json', '--log-level', 'info');

    my $r = $t->api($KEY, POST => '/automations/v1/echo/run', json => {});
    is($r->{status}, 200, 'a synchronous run answers 200') or diag($r->{body});
    my $id = $r->{json}{execution_id} // '';
    like($id, $EXEC, 'an execution id');

    my %runs;
    ok($t->wait_for(sub {
        for (split /\n/, $t->proc_log('w1') // '') {
            my $j = eval { decode_json($_) } or next;
            $runs{ $j->{execution_id} } = $j
                if ($j->{event} // '') eq 'run' && $j->{execution_id};
        }
        keys(%runs) >= 2;
    }, 10, 'two run lines'), 'both runs logged');

    my @lines = grep { length } split /\n/, $t->proc_log('w1');
    is(scalar(grep { !eval { decode_json($_); 1 } } @lines), 0,
       'every line of the log is a JSON object');
    my $line = $runs{$id};
    is_deeply([ sort keys %$line ],
              [ sort qw(time level worker event execution_id project
                        automation status ms message) ],
              'the fields of a record');
    is($line->{worker}, 'w1', 'worker');
    is($line->{project}, 'demo', 'project');
    is($line->{automation}, 'echo', 'automation');
    is($line->{status}, 'success', 'status');
    is($line->{level}, 'info', 'level');
    like($line->{ms}, qr/^\d+$/, 'ms');
    like($line->{time}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'time');

    my $m;
    ok($t->wait_for(sub {
        ($m) = scrape();
        ($m->{'automations_worker_runs_total{worker="w1",runtime="sh",'
               . 'status="success"}'} // 0) == 2;
    }, 10, 'the worker counters'), 'two successful sh runs in the metrics');
    is($m->{automations_workers_live}, 1, 'one live worker');
    is($m->{'automations_worker_run_duration_seconds_count{worker="w1",'
            . 'runtime="sh"}'}, 2, 'two run durations');
    is($m->{'automations_worker_run_duration_seconds_bucket{worker="w1",'
            . 'runtime="sh",le="+Inf"}'}, 2, 'in the +Inf bucket too');
    is($m->{automations_queue_depth}, 0, 'the queue is empty again');
    cmp_ok($m->{automations_sync_wait_duration_seconds_count}, '>=', 1,
           'the synchronous wait was timed');

    is(wait_health(200)->{json}{workers}, 1, 'health: one live worker');

    like($t->read_file('access.log'),
         qr/^200 POST \/automations\/v1\/echo\/run exec=\Q$id\E$/m,
         'access log: the run with $automations_execution_id');
    is($t->api($KEY, GET => "/automations/v1/echo/executions/$id")->{status},
       200, 'its status read');
    # nginx writes the line once the answer is sent: the client may be first
    my $read = qr/^200 GET \/automations\/v1\/echo\/executions\/\Q$id\E exec=\Q$id\E$/m;
    $t->wait_for(sub { $t->read_file('access.log') =~ $read }, 5,
                 'the access log line');
    like($t->read_file('access.log'), $read,
         'access log: the status read with $automations_execution_id');
    like($t->read_file('access.log'),
         qr/^200 GET \/automations\/v1\/ exec=-$/m,
         'a list has none');

    $t->stop_proc('w1');
    ok($t->wait_for(sub { (scrape())[0]{automations_workers_live} == 0 }, 10,
                    'the worker to age out'),
       'a stopped worker drops out after its visibility timeout');
    ($m) = scrape();
    ok(!grep({ /worker="w1"/ } keys %$m), 'and its series with it');
};

subtest 'the worker: --log-level drops the records below it' => sub {
    my ($code, undef, $err) = $t->_run_capture([ $W, '--log-format', 'xml' ]);
    is($code, 2, '--log-format xml is refused');
    like($err, qr/text or json/, 'naming the formats');

    $t->start_worker('quiet', '--log-level', 'error', '--log-format', 'json');
    $t->start_worker('chatty', '--log-level', 'info', '--log-format', 'json');
    ok($t->wait_for(sub { ($t->proc_log('chatty') // '') =~ /"started: / },
                    10, 'the info worker starts'), 'info: the start-up record');
    $t->stop_proc($_) for 'quiet', 'chatty';
    is($t->proc_log('quiet') // '', '', 'error: no record of a clean run');
    like($t->proc_log('chatty'), qr/"level":"info".*"message":"stopped"/,
         'info: the stop record');
};

subtest 'a reload keeps the nginx counters' => sub {
    my ($before) = scrape();
    my $k = 'automations_requests_total{api="automations",'
          . 'endpoint="POST /NAME/run",status="202"}';
    ok($before->{$k}, "$k before");
    ok($t->reload_nginx, 'reloaded');
    my ($after) = scrape();
    is($after->{$k}, $before->{$k}, 'the same after the reload');
};

subtest 'health: 503 with a reason when Redis is down' => sub {
    $t->stop_redis;
    my $r = wait_health(503);
    is($r->{status}, 503, 'Redis stopped: 503');
    is($r->{json}{status}, 'unavailable', 'status unavailable');
    like($r->{json}{reason}, qr/Redis/, 'a reason: ' . ($r->{json}{reason} // ''));

    # each nginx worker process sees its own connection go
    my $m;
    ok($t->wait_for(sub {
        ($m) = scrape();
        !grep { /^automations_redis_connection_up/ && $m->{$_} } keys %$m;
    }, 10, 'both connections down'), 'both connections down');
    is($m->{automations_redis_scrape_success}, 0, 'metrics still answer');

    $t->start_redis;
    wait_health(200);
    ok($t->wait_for(sub {
        ($m) = scrape();
        $m->{automations_redis_reconnects_total} >= 2;
    }, 10, 'two reconnects'), 'each worker process reconnected');
};

$t->error_log_clean;
done_testing;
