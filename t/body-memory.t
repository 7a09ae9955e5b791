#!/usr/bin/perl
# API request bodies up to automations_max_body_size are read into memory:
# they work even where nginx cannot write a body temp file (a make run as
# root from a folder the "nobody" workers cannot enter got 500 for bodies
# over ~8 KB). Here client_body_temp_path is a plain file, so any temp file
# would fail. Errors nginx gives before it picks a location are JSON too.

use strict;
use warnings;

use JSON::PP;
use Test::More;

use AmTest;

my $t = AmTest->new;

plan skip_all => 'module not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl';

$t->start_redis;
$t->ctl('project', 'create', 'demo');
my $key = $t->apikey('demo', 'read write run');

$t->write_file('not-a-folder', "a file where nginx wants a folder\n");

$t->write_nginx(<<'EOF_CONF');
load_module %%BUILD%%/ngx_http_automations_module.so;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    automations_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        client_body_temp_path %%DIR%%/not-a-folder;

        location /automations/v1/ {
            automations_api;
            automations_max_body_size 200k;
        }
    }
}
EOF_CONF
$t->start_nginx;

sub create {
    my ($name, $code_size, %o) = @_;
    my $body = JSON::PP->new->canonical->encode({
        automation_name => $name, runtime => 'sh',
        code => 'echo {} #' . ('x' x $code_size) });
    return $t->http(POST => '/automations/v1/', body => $body,
        headers => { Authorization => "Bearer $key",
                     'Content-Type' => 'application/json',
                     %{ $o{headers} || {} } });
}

my $r = create('big', 100 * 1024);
is($r->{status}, 200, '100 KB body: created') or diag($r->{body});
is(length($t->hgetall('am:{demo}:automation:big')->{code} // ''),
    length('echo {} #') + 100 * 1024, 'redis: the whole code stored');

$r = create('huge', 210 * 1024);
is($r->{status}, 413, 'over automations_max_body_size: 413');
like($r->{headers}{'content-type'} // '', qr{^application/json},
    '413: JSON');
like($r->{json}{detail} // '', qr/too large/i, '413: detail says why');
is($t->hgetall('am:{demo}:automation:huge')->{code}, undef,
    'redis: nothing stored');

unlike($t->read_file('error.log') // '', qr/\[(?:crit|alert|emerg)\]/,
    'no temp file attempted');

# a JWT longer than nginx's header buffers is refused before any location
# is chosen: in a server with an API location, that answer is JSON too
$r = $t->http(GET => '/automations/v1/',
    headers => { Authorization => 'Bearer ' . ('x' x 20000) });
is($r->{status}, 400, 'a header over the buffers: 400');
like($r->{headers}{'content-type'} // '', qr{^application/json},
    'that 400 is JSON');
ok(defined $r->{json}{detail}, '400: a detail') or diag($r->{body});

done_testing;
