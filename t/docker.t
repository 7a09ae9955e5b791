#!/usr/bin/perl
# The docker/ files, which cannot run on a machine without a Docker engine,
# kept consistent with what they use: the gateway's nginx.conf passes
# `nginx -t` with the module built here (the secrets include and the
# module's load file replaced by what the container writes), the compose
# file names files that exist, and the image is built from sources only.

use strict;
use warnings;

use Test::More;

use AmTest;

my $t = AmTest->new;
my $ROOT = $AmTest::ROOT;

plan skip_all => 'module not built'
    unless -f $t->build . '/ngx_http_automations_module.so';

my $conf = $t->read_file("$ROOT/docker/nginx.conf");
my $d = $t->dir;
$t->write_file('jwt.secret', join '', map { chr(48 + rand 70) } 1 .. 48);

like($conf, qr{^include /etc/nginx/modules-enabled/\*\.conf;$}m,
     'the module is loaded the way its Debian package enables it');
like($conf, qr{^\s*include /etc/nginx/automations-secrets\.conf;$}m,
     'the secrets come from the file the container writes');

(my $here = $conf)
    =~ s{^include /etc/nginx/modules-enabled/\*\.conf;$}
        {load_module ${\ $t->build}/ngx_http_automations_module.so;}m;
$here =~ s{include /etc/nginx/automations-secrets\.conf;}
          {automations_redis_password secret; automations_jwt_key $d/jwt.secret alg=HS256;};
$here =~ s{^(\s*)(access_log|error_log) [^;]+;}{$1$2 $d/$2.log;}mg;
$t->write_file('docker-nginx.conf', $here);

my $out = `/usr/sbin/nginx -t -p '$d' -c '$d/docker-nginx.conf' -g 'pid $d/nginx.pid;' 2>&1`;
is($?, 0, 'docker/nginx.conf: nginx -t succeeds') or diag($out);

for my $directive (qw(automations_health automations_metrics automations_api
                      automations_start_api automations_dashboard)) {
    like($conf, qr/^\s*\Q$directive\E\b/m, "it serves $directive");
}

my $compose = $t->read_file("$ROOT/docker/compose.yaml");
my $dockerfile = $t->read_file("$ROOT/docker/Dockerfile");
my %named = map { $_ => 1 } "$compose$dockerfile" =~ m{\b(docker/[\w.-]+)}g;
ok(-f "$ROOT/$_", "$_ (named in compose.yaml or the Dockerfile) exists")
    for sort keys %named;
like($compose, qr{/healthz}, 'the gateway healthcheck asks /healthz');

my $ignore = $t->read_file("$ROOT/.dockerignore");
like($ignore, qr{^/?build/?$}m, '.dockerignore keeps the host build out');

done_testing;
