#!/usr/bin/perl
# The Debian packages of `make deb`, as an operator installs them: what each
# ships, their dependencies, lintian, the systemd unit, and a request served
# by Debian's nginx with the packaged module, the packaged worker started
# with the packaged environment file, and the packaged automationsctl, all
# unpacked into a scratch root.

use strict;
use warnings;

use Test::More;
use File::Spec;
use File::Temp qw(tempdir);

use AmTest;

my $ROOT = $AmTest::ROOT;
my $BUILD = $ENV{AM_BUILD} // "$ROOT/build";

for my $tool (qw(dpkg-buildpackage dh dh_nginx lintian
                 systemd-analyze)) {
    plan skip_all => "$tool not installed (make deps)"
        unless grep { -x "$_/$tool" } File::Spec->path;
}

my ($VERSION) = `cat '$ROOT/src/am_version.h'` =~ /define AM_VERSION "(.*)"/;
chomp(my $ARCH = `dpkg --print-architecture`);
my %DEB = map { $_ => "$BUILD/deb/${_}_${VERSION}_$ARCH.deb" }
    qw(libnginx-mod-http-automations automations-worker);

# The Makefile rebuilds the packages only when a source changed; BUILD is
# given relative, as the module's nginx add-on script wants it.
my $scratch = tempdir('am-packages-XXXXXXXX', TMPDIR => 1, CLEANUP => 1);
my $rel = File::Spec->abs2rel($BUILD, $ROOT);
system("make -C '$ROOT' deb BUILD='$rel' >'$scratch/make.log' 2>&1");
is($?, 0, 'make deb builds both packages, lintian finds no error')
    or diag(`tail -40 '$scratch/make.log'`);
ok(-f $DEB{$_}, "$_ $VERSION built") for sort keys %DEB;

sub contents {
    my ($deb) = @_;
    return { map { (split ' ', $_)[5] =~ s{^\.}{}r => (split ' ', $_)[0] }
             `dpkg-deb -c '$deb'` };
}

sub field {
    my ($deb, $name) = @_;
    chomp(my $v = `dpkg-deb -f '$deb' $name`);
    return $v;
}

subtest 'libnginx-mod-http-automations: laid out as Debian nginx modules' => sub {
    my $deb = $DEB{'libnginx-mod-http-automations'};
    my $files = contents($deb);

    is($files->{'/usr/lib/nginx/modules/ngx_http_automations_module.so'},
       '-rw-r--r--', 'the module in nginx\'s module folder');
    ok(exists $files->{'/usr/share/nginx/modules-available/'
                       . 'mod-http-automations.conf'},
       'its load file in modules-available');

    # the ABI the installed nginx offers is the one the module was built for
    chomp(my $provides = `dpkg-query -W -f '\${Provides}' nginx 2>/dev/null`);
    my ($abi) = $provides =~ /(nginx-abi-[^\s,]+)/;
    ok($abi, "nginx provides an ABI ($provides)");
    like(field($deb, 'Depends'), qr/(^|, )\Q$abi\E(,|$)/,
         "depends on $abi") if $abi;

    my $ctl = tempdir(DIR => $scratch);
    system('dpkg-deb', '-e', $deb, $ctl);
    like(`cat '$ctl/postinst'`,
         qr{ln -sf /usr/share/nginx/modules-available/\$from\s+\\\s+/etc/nginx/modules-enabled/\$to}s,
         'postinst enables it in modules-enabled');
    like(`cat '$ctl/postinst'`, qr/dpkg-trigger --no-await nginx-reload/,
         'and reloads nginx');
    like(`cat '$ctl/prerm'`, qr{mv /etc/nginx/modules-enabled/\$to },
         'prerm disables it');
};

subtest 'automations-worker: programs, unit, environment file' => sub {
    my $deb = $DEB{'automations-worker'};
    my $files = contents($deb);

    is($files->{"/usr/bin/$_"}, '-rwxr-xr-x', "/usr/bin/$_")
        for qw(automations-worker automations-sandbox automationsctl);
    is($files->{'/usr/lib/automations/automations-sandbox.so'}, '-rw-r--r--',
       'the confinement library of warm python runs');
    is($files->{'/lib/systemd/system/automations-worker@.service'},
       '-rw-r--r--', 'the template unit');
    is($files->{'/etc/default/automations-worker'}, '-rw-------',
       'the environment file, readable by root only (it holds a password)');

    my $ctl = tempdir(DIR => $scratch);
    system('dpkg-deb', '-e', $deb, $ctl);
    is(`cat '$ctl/conffiles'`, "/etc/default/automations-worker\n",
       'the environment file is a conffile');
    like(field($deb, 'Depends'), qr/libuv1/, 'library dependencies found');
};

subtest 'make install: PREFIX and DESTDIR' => sub {
    my $dest = "$scratch/staged";
    my $env = "$dest/etc/default/automations-worker";

    system("make -C '$ROOT' install BUILD='$rel' DESTDIR='$dest' "
           . "PREFIX=/opt/am >>'$scratch/make.log' 2>&1");
    is($?, 0, 'installs') or diag(`tail -20 '$scratch/make.log'`);

    ok(-x "$dest/opt/am/bin/$_", "/opt/am/bin/$_")
        for qw(automations-worker automations-sandbox automationsctl);
    ok(-f "$dest/opt/am/lib/nginx/modules/ngx_http_automations_module.so",
       'the module');
    ok(-f "$dest/opt/am/lib/automations/automations-sandbox.so",
       'the confinement library of warm python runs');
    is(`cat '$dest/opt/am/share/nginx/modules-available/mod-http-automations.conf'`,
       "load_module /opt/am/lib/nginx/modules/ngx_http_automations_module.so;\n",
       'its load file names where it is');
    my $unit = `cat '$dest/opt/am/lib/systemd/system/automations-worker\@.service'`;
    like($unit, qr{^ExecStart=/opt/am/bin/automations-worker$}m,
         'the unit starts the installed worker');
    is((stat $env)[2] & 07777, 0600, 'environment file readable by root only');

    # an operator's settings survive the next install
    open(my $fh, '>>', $env) or die $!;
    print $fh "AUTOMATIONS_CONCURRENCY=9\n";
    close $fh;
    system("make -C '$ROOT' install BUILD='$rel' DESTDIR='$dest' "
           . "PREFIX=/opt/am >>'$scratch/make.log' 2>&1");
    like(`cat '$env'`, qr/^AUTOMATIONS_CONCURRENCY=9$/m,
         'a second install keeps the environment file');
};

# ------------------------------------------------- unpacked in a scratch root

my $sysroot = "$scratch/root";
for my $deb (values %DEB) {
    system('dpkg-deb', '-x', $deb, $sysroot) == 0 or BAIL_OUT("unpack $deb");
}

for my $bin (qw(automations-worker automations-sandbox automationsctl)) {
    is(`'$sysroot/usr/bin/$bin' --version`, "$bin $VERSION\n",
       "$bin --version names the package's version");
}
is(field($DEB{'automations-worker'}, 'Version'), $VERSION,
   'package version is the programs\' version');

# the unit as installed, its paths moved into the scratch root
my $unit = `cat '$sysroot/lib/systemd/system/automations-worker\@.service'`;
(my $moved = $unit) =~ s{^(ExecStart=|EnvironmentFile=-?)/}{$1$sysroot/}mg;
my $unitdir = tempdir(DIR => $scratch);
open(my $fh, '>', "$unitdir/automations-worker\@.service") or die $!;
print $fh $moved;
close $fh;
my $verify = `systemd-analyze verify '$unitdir/automations-worker\@.service' 2>&1`;
is($?, 0, 'systemd-analyze verify accepts the unit');
is($verify, '', 'without a warning') or diag($verify);
like($unit, qr{^ExecStart=/usr/bin/automations-worker$}m,
     'the unit starts the packaged worker');
like($unit, qr{^EnvironmentFile=/etc/default/automations-worker$}m,
     'with the environment file');

my ($caps) = $unit =~ /^CapabilityBoundingSet=((?:.*\\\n)*.*)$/m;
$caps =~ s/\\\n//g;
my @caps = map { lc s/^CAP_//r } split ' ', $caps;
ok(@caps && grep($_ eq 'setuid', @caps), "bounding set: @caps");

my $t = AmTest->new(build => "$sysroot/usr/bin");
my $PW = 'packaged-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 16);

$t->start_redis(requirepass => $PW);

# the environment file as an operator fills it in
my %env;
for (split /\n/, `cat '$sysroot/etc/default/automations-worker'`) {
    next if /^\s*(#|$)/;
    my ($k, $v) = /^(\w+)=(.*)$/ or die "not KEY=VALUE: $_";
    $env{$k} = $v;
}
ok(exists $env{$_}, "environment file sets $_")
    for qw(AUTOMATIONS_REDIS AUTOMATIONS_REDIS_PASSWORD);
$env{AUTOMATIONS_REDIS} = $t->redis_addr;
$env{AUTOMATIONS_REDIS_PASSWORD} = $PW;

my $ctl_env = { env => { AUTOMATIONS_REDIS_PASSWORD => $PW } };
my ($code, $out, $err) = $t->ctl($ctl_env, 'project', 'create', 'pkg');
is($code, 0, 'packaged automationsctl creates a project') or diag($err);
($code, $out, $err) = $t->ctl($ctl_env, 'apikey', 'create', 'pkg',
                              '--scopes', 'read write run');
my ($key) = $out =~ /^key=(\S+)$/m;
ok($key, 'and an API key') or diag($err);

# Debian's nginx.conf includes modules-enabled/*.conf, the package's load
# file linked there; it names the module relative to nginx's prefix, which
# here is the test folder.
symlink("$sysroot/usr/lib/nginx/modules", $t->dir . '/modules') or die $!;
$t->write_nginx(
    no_module => 1,
    main => "include $sysroot/usr/share/nginx/modules-available/"
          . "mod-http-automations.conf;",
    http => "automations_redis %%REDIS%%;\n"
          . "automations_redis_password $PW;\n",
    server => "location /automations/v1/ { automations_api; }\n",
);
$t->start_nginx;

# As the unit runs it: root, without new privileges, with the unit's
# capability bounding set, so that a run still gets a user of its own.
my @worker = ("$sysroot/usr/bin/automations-worker");
my $confined = $> == 0 && grep { -x "$_/setpriv" } File::Spec->path;
unshift @worker, 'setpriv', '--no-new-privs', '--bounding-set',
    join(',', '-all', map { "+$_" } @caps), '--'
    if $confined;
$t->spawn(name => 'worker', cmd => \@worker, env => \%env);

my %auth = (Authorization => "Bearer $key");
my $r = $t->http(POST => '/automations/v1/', headers => \%auth, json => {
    automation_name => 'whoami', runtime => 'sh',
    code => q(printf '{"uid":%s}' "$(id -u)"),
});
is($r->{status}, 200, 'the packaged module creates an automation')
    or diag($r->{body});

$r = $t->http(GET => '/automations/v1/whoami', headers => \%auth);
is($r->{status}, 200, 'and serves it back');
is($r->{json}{runtime}, 'sh', 'as created');

$r = $t->http(POST => '/automations/v1/whoami/run', headers => \%auth,
              json => {}, timeout => 20);
is($r->{status}, 200, 'the packaged worker runs it')
    or diag($r->{body}, $t->proc_log('worker'));
is($r->{json}{status}, 'success', 'successfully');
SKIP: {
    skip 'the worker drops privileges only as root', 1 unless $> == 0;
    like($r->{json}{output}{uid}, qr/^[1-9]\d*$/,
         'as a user of its own' . ($confined ? ', within the unit\'s '
                                   . 'capabilities and no-new-privileges'
                                   : ''));
}

unlike($t->error_log, qr/\[(alert|emerg|crit)\]/, 'nginx logged no error');

$t->stop_all;
done_testing;
