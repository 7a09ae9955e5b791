#!/usr/bin/perl
# automations_credential_cache: an nginx worker process keeps the API keys
# and tokenpairs it read lately, and Redis tells it when one changes
# (client-side caching).  What a user sees: a known key costs no lookup, a
# revoked, changed or deleted one is refused on the very next request, and
# whenever nginx may have missed a change (a connection dropped, Redis
# flushed) nothing cached is trusted.  "Next" once Redis has answered the
# writer again: it sends the invalidation right after the change's reply.
# Counted with the metrics page and with Redis's own count of HMGET calls.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);

use AmTest;
use AmTest::Api qw(bearer);

my $t = AmTest->new;

plan skip_all => 'module not built'
    unless -f $t->build . '/ngx_http_automations_module.so';

$t->start_redis;
$t->ctl('project', 'create', 'demo');

# %%CACHE%% is replaced by each configuration's automations_credential_cache
my $conf = <<'EOF';
load_module %%BUILD%%/ngx_http_automations_module.so;
%%TEST_GLOBALS%%
worker_processes %%WORKERS%%;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    automations_redis %%REDIS%%;
    %%CACHE%%

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        location /automations/v1/ { automations_api; }
        location /tok/ {
            automations_auth token;
            automations_auth_scope read;
            proxy_set_header X-Subject $automations_subject;
            proxy_pass http://127.0.0.1:%%PORT%%/echo/;
        }
        location /echo/ { return 200 "$http_x_subject"; }
        location = /metrics { automations_metrics; }
    }
}
EOF

sub configure {
    my ($cache, $workers) = @_;
    (my $c = $conf) =~ s/%%CACHE%%/$cache/;
    $c =~ s/%%WORKERS%%/$workers \/\/ 1/e;
    $t->write_nginx($c);
}

# lookups so far, as the metrics page counts them, and Redis's HMGET calls
sub counts {
    my $body = $t->http(GET => '/metrics')->{body};
    my %n = map { $_ => 0 } qw(redis cache);
    $n{$1} = $2
        while $body =~ /^automations_credential_lookups_total\{source="(\w+)"\} (\d+)$/mg;
    my ($hmget) = ($t->redis('INFO', 'commandstats') // '')
        =~ /^cmdstat_hmget:calls=(\d+)/m;
    return { %n, hmget => $hmget // 0 };
}

sub list { $t->http(GET => '/automations/v1/', headers => bearer($_[0])) }

sub key { $t->ctl_fields('apikey', 'create', 'demo', '--scopes', $_[0] // 'read') }

# until the worker process's subscriber is back and tracking again: a key
# read twice is then served from the cache the second time
sub tracking_again {
    my ($k) = @_;
    return $t->wait_for(sub {
        my $before = counts()->{cache};
        list($k->{key}) for 1 .. 2;
        return counts()->{cache} > $before;
    }, 10);
}

configure('', 1);
$t->start_nginx;

# nginx caches nothing until its tracking of Redis is set up, which follows
# its start: a throw-away key tells when it is
ok(tracking_again(key()), 'nginx caches credentials');

subtest 'a known API key is read from Redis once' => sub {
    my $k = key();
    my $before = counts();
    for my $i (1 .. 10) {
        is(list($k->{key})->{status}, 200, "request $i");
    }
    my $after = counts();
    is($after->{redis} - $before->{redis}, 1, 'one lookup in Redis');
    is($after->{cache} - $before->{cache}, 9, 'nine from the cache');
    is($after->{hmget} - $before->{hmget}, 1, 'Redis saw one HMGET');
};

subtest 'a revoked API key is refused on the next request, every time' => sub {
    my $refused = 0;
    for (1 .. 20) {
        my $k = key();
        list($k->{key}) for 1 .. 2;
        $t->ctl('apikey', 'revoke', 'demo', $k->{id});
        $refused++ if list($k->{key})->{status} == 401;
    }
    is($refused, 20, '20 keys revoked, 20 refused at once');
};

subtest 'a record deleted in Redis: refused once Redis answers the writer again' => sub {
    # Redis writes the DEL's reply before the invalidation it sends nginx
    # (same turn of its loop), so a request sent the instant the reply
    # arrives may, on a loaded host, still find the record cached. Any
    # later reply comes after the invalidation: from then on, refused.
    # automationsctl's revocations end with such a round trip.
    my $accepted = 0;
    for (1 .. 30) {
        my $k = key();
        list($k->{key}) for 1 .. 2;
        my ($record) = grep { $t->redis('HGET', $_, 'id') eq $k->{id} }
            @{ $t->redis('KEYS', 'am:{demo}:apikey:*') };
        $t->redis('DEL', $record);
        $t->redis('PING');
        $accepted++ if list($k->{key})->{status} != 401;
    }
    is($accepted, 0, '30 records deleted, none accepted after');

    # without the round trip: refused within moments all the same
    my $k = key();
    list($k->{key}) for 1 .. 2;
    my ($record) = grep { $t->redis('HGET', $_, 'id') eq $k->{id} }
        @{ $t->redis('KEYS', 'am:{demo}:apikey:*') };
    $t->redis('DEL', $record);
    ok($t->wait_for(sub { list($k->{key})->{status} == 401 }, 5),
       'a DEL alone: refused within moments');
};

subtest 'a key changed in Redis: the next request sees the change' => sub {
    my $k = key('read write');
    is(list($k->{key})->{status}, 200, 'listing with read');
    is(list($k->{key})->{status}, 200, 'again, cached');
    my ($record) = grep { $t->redis('HGET', $_, 'id') eq $k->{id} }
        @{ $t->redis('KEYS', 'am:{demo}:apikey:*') };
    ok($record, 'the record');
    $t->redis('HSET', $record, 'scopes', 'write');
    $t->redis('PING');
    is(list($k->{key})->{status}, 404, 'read taken away: listing refused');
};

subtest 'a deleted project: its keys are refused' => sub {
    $t->ctl('project', 'create', 'gone');
    my $k = $t->ctl_fields('apikey', 'create', 'gone');
    is(list($k->{key})->{status}, 200, 'before') for 1 .. 2;
    $t->ctl('project', 'delete', 'gone');
    is(list($k->{key})->{status}, 401, 'after the project is deleted');
};

subtest 'a revoked tokenpair is refused on the next request' => sub {
    my $p = $t->ctl_fields('tokenpair', 'create', 'demo');
    my $h = { Authorization => "Token $p->{token}", 'X-Api-Key' => $p->{api_key} };
    my $before = counts();
    is($t->http(GET => '/tok/x', headers => $h)->{body}, "tokenpair:$p->{id}",
       'accepted') for 1 .. 3;
    my $after = counts();
    is($after->{cache} - $before->{cache}, 2, 'twice from the cache');
    (my $wrong = $p->{api_key}) =~ s/(.)$/$1 eq '0' ? '1' : '0'/e;
    is($t->http(GET => '/tok/x', headers => { %$h, 'X-Api-Key' => $wrong })->{status},
       401, 'a cached pair still needs its X-Api-Key');
    $t->ctl('tokenpair', 'revoke', $p->{id});
    is($t->http(GET => '/tok/x', headers => $h)->{status}, 401, 'revoked');
};

subtest 'unknown keys are not cached' => sub {
    my $hex = join '', map { (0 .. 9, 'a' .. 'f')[rand 16] } 1 .. 64;
    my $before = counts();
    is(list("amk_demo_$hex")->{status}, 401, 'unknown key') for 1 .. 3;
    is(counts()->{hmget} - $before->{hmget}, 3, 'looked up each time');
};

subtest 'the subscriber connection drops: nothing cached is trusted' => sub {
    my ($k, $other) = (key(), key());
    list($_->{key}) for $k, $k, $other;
    # while nginx is not subscribed, a change cannot reach it
    $t->redis('CLIENT', 'KILL', 'TYPE', 'pubsub');
    $t->ctl('apikey', 'revoke', 'demo', $k->{id});
    is(list($k->{key})->{status}, 401, 'a key revoked meanwhile is refused');
    ok(tracking_again($other), 'cached again once the subscriber is back');
    $t->ctl('apikey', 'revoke', 'demo', $other->{id});
    is(list($other->{key})->{status}, 401, 'and revoking still reaches it');
};

subtest 'the command connection drops: nothing cached is trusted' => sub {
    my ($k, $other) = (key(), key());
    list($_->{key}) for $k, $k, $other;
    my ($id) = ($t->redis('CLIENT', 'LIST') =~ /^id=(\d+) .*\bflags=\w*t/m);
    ok($id, "nginx's tracking connection");
    $t->redis('CLIENT', 'KILL', 'ID', $id);
    $t->ctl('apikey', 'revoke', 'demo', $k->{id});
    ok($t->wait_for(sub { list($other->{key})->{status} == 200 }, 10),
       'nginx reconnected');
    is(list($k->{key})->{status}, 401, 'a key revoked meanwhile is refused');
    ok(tracking_again($other), 'cached again');
};

subtest 'Redis flushed: nothing cached is trusted' => sub {
    my $k = key();
    list($k->{key}) for 1 .. 2;
    $t->redis('FLUSHALL');
    # Redis may send its flush notice a moment after FLUSHALL's reply
    ok($t->wait_for(sub { list($k->{key})->{status} == 401 }, 5),
       'the key went with the flush');
    $t->ctl('project', 'create', 'demo');
};

subtest 'entries expire after valid=' => sub {
    configure('automations_credential_cache max=16 valid=1s;', 1);
    ok($t->reload_nginx, 'reloaded with valid=1s');
    ok(tracking_again(key()), 'the new nginx caches');
    my $k = key();
    my $before = counts();
    list($k->{key}) for 1 .. 2;
    sleep 1.2;
    list($k->{key});
    is(counts()->{hmget} - $before->{hmget}, 2, 'read again after a second');
};

subtest 'automations_credential_cache off: every request reads Redis' => sub {
    configure('automations_credential_cache off;', 1);
    ok($t->reload_nginx, 'reloaded');
    my $k = key();
    my $before = counts();
    is(list($k->{key})->{status}, 200, 'accepted') for 1 .. 4;
    my $after = counts();
    is($after->{hmget} - $before->{hmget}, 4, 'four HMGETs');
    is($after->{cache} - $before->{cache}, 0, 'none from a cache');
};

subtest 'two worker processes: a revocation reaches both' => sub {
    configure('', 2);
    ok($t->reload_nginx, 'reloaded with two workers');
    my @keys = map { key() } 1 .. 5;
    sleep 0.5;
    for my $k (@keys) {
        list($k->{key}) for 1 .. 6;    # new connections: both workers
    }
    $t->ctl('apikey', 'revoke', 'demo', $_->{id}) for @keys;
    my $accepted = grep { $_ != 401 } map {
        my $k = $_; map { list($k->{key})->{status} } 1 .. 6
    } @keys;
    is($accepted, 0, 'no revoked key accepted by either worker');
};

subtest 'Redis refuses CLIENT: every request reads Redis, all still work' => sub {
    configure('', 1);
    $t->redis('ACL', 'SETUSER', 'default', '-client');
    $t->clear_error_log;
    ok($t->reload_nginx, 'reloaded');
    my $k = key();
    my $before = counts();
    is(list($k->{key})->{status}, 200, 'accepted') for 1 .. 3;
    is(counts()->{hmget} - $before->{hmget}, 3, 'three HMGETs');
    ok($t->wait_for(sub { ($t->error_log // '') =~ /refused client tracking/ }, 5),
       'the log says why');
    $t->redis('ACL', 'SETUSER', 'default', '+@all');
};

subtest 'configuration errors' => sub {
    for my $bad ('max=0', 'max=x', 'valid=1s', 'max=8 valid=0', 'max=8 ttl=1s',
                 'on') {
        configure("automations_credential_cache $bad;", 1);
        my ($code, $out) = $t->nginx_test_config;
        isnt($code, 0, "\"$bad\" refused");
        like($out, qr/automations_credential_cache|invalid parameter/,
             '... saying so');
    }
    configure('', 1);
};

ok($t->error_log_clean, 'no alerts or crashes in the error log');

done_testing;
