package AmTest;

=head1 NAME

AmTest - the automations gateway's own test harness (Perl core only)

=head1 SYNOPSIS

    use Test::More;
    use AmTest;

    my $t = AmTest->new;
    $t->start_redis;
    $t->write_nginx(<<'EOF');
    load_module %%BUILD%%/ngx_http_automations_module.so;
    %%TEST_GLOBALS%%
    events { }
    http {
        %%TEST_GLOBALS_HTTP%%
        automations_redis %%REDIS%%;
        server {
            listen 127.0.0.1:%%PORT%%;
            location /automations/v1/ { automations_api; }
        }
    }
    EOF
    $t->start_nginx;

    $t->ctl('project', 'create', 'demo');
    my $key = $t->apikey('demo', 'read write');      # AmTest::Api
    my $r = $t->api($key, POST => '/automations/v1/',
                    json => { automation_name => 'hello', code => 'print(1)' });
    is($r->{status}, 200, 'automation created');
    is($t->redis('HGET', 'am:{demo}:automation:hello', 'automation_name'),
       'hello');

    $t->error_log_clean;
    done_testing;

Run with C<prove -r -I t/lib t/> from the repository root, with
C<AM_BUILD=/abs/build/dir> (default: C<< <repo>/build >>).

=head1 ENVIRONMENT

    AM_BUILD          build directory (module .so, automationsctl, worker)
    AM_TEST_KEEP=1    keep the temporary directory and print its path
    AM_VALGRIND=1     run nginx under valgrind (single process) and fail the
                      test on any valgrind error or definite leak; known
                      exit-time leaks of stock nginx are suppressed, and
                      t/valgrind.supp and AM_VALGRIND_SUPP (a file) are
                      used too when they exist
    AM_WORKER         worker binary of start_worker and of the tests that
                      honour it (make test-asan: a sanitized one, whose
                      reports sanitizers_clean() turns into a failure)
    AM_NGINX          nginx binary (default /usr/sbin/nginx)
    AM_REDIS_SERVER   redis-server binary (default redis-server in PATH)

=head1 RULES

Every server listens on 127.0.0.1 on a port picked by free_port().  Every
process is started with fork+exec, remembered by PID and stopped by PID
(never by name).  Everything lives in one temporary directory, removed at
the end.  stop_all() runs from DESTROY and from an END block, so processes
are stopped even when a test dies; SIGINT/SIGTERM/SIGHUP make the test exit
through END as well.  A watchdog process per harness object stops the
recorded PIDs and removes the directory if the test is killed outright
(SIGKILL, a CI timeout).

=head1 API

=head2 Object, files

    my $t = AmTest->new(%opts)   opts: build => dir, valgrind => bool
    $t->dir                      temporary directory (absolute)
    $t->build                    build directory (AM_BUILD)
    $t->valgrind                 true when nginx runs under valgrind
    $t->write_file($name, $content)   file in dir (or absolute path); returns path
    $t->read_file($name)              contents or undef

=head2 Redis

    $t->start_redis(requirepass => 'pw', args => [ '--maxmemory', '10mb' ])
        redis-server on 127.0.0.1:redis_port, --dir <dir>/redis,
        appendonly yes, save "", logfile <dir>/redis.log, DEBUG allowed
        from loopback; waits until PING answers.  Calling it again after
        stop_redis reuses the port, data directory and options (unless new
        ones are given): data persists through the AOF.
    $t->stop_redis(signal => 'TERM')   TERM (graceful, AOF flushed) by
        default; signal => 'KILL' simulates a crash.  Waits for the PID.
    $t->redis_port, $t->redis_addr    port (reserved on first use, even
        before start) and "127.0.0.1:PORT"
    $t->redis(@cmd)       reply as Perl data: status/bulk -> string,
        integer -> number, nil -> undef, array -> arrayref; dies on an
        error reply.  Persistent connection, reconnects after a restart.
    $t->redis_try(@cmd)   ($value, undef) or (undef, $error_message)

=head2 nginx

    $t->write_nginx($conf)   writes <dir>/nginx.conf from the whole
        configuration text, which the .t shows as nginx-tests do (see
        the SYNOPSIS).
        Returns the expanded text.  Placeholders: %%TEST_GLOBALS%% (main
        context: daemon off, master_process (off under valgrind),
        error_log <dir>/error.log info, pid), %%TEST_GLOBALS_HTTP%%
        (access_log off, the temp paths in <dir>), %%PORT%% (nginx port,
        the one start_nginx waits for), %%PORT1%%, %%PORT2%%... (more
        free ports), %%REDIS%% (127.0.0.1:redis port), %%REDIS_PORT%%,
        %%DIR%%, %%BUILD%%, %%RECEIVER%% (receiver port).  Ports are picked on first use and
        kept for later rewrites, so a rewritten config can be reloaded.
        Unknown %%NAMES%% die.
    $t->write_nginx(%o)   the older form: the configuration is built
        around snippets.  o: http => snippet, server => snippet (in one
        server on %%PORT%%), main => snippet (main context), events =>
        snippet, workers => N (1), no_module => 1, error_log_level =>
        'info', user => 'name', extra_ports => N.  Same placeholders.
    $t->port, $t->port($n)   nginx port, n-th extra port
    $t->start_nginx          nginx -p <dir> -c <dir>/nginx.conf in the
        foreground (fork+exec); waits until the port accepts connections
        (10 s, 60 s under valgrind); on failure dies with the error log.
    $t->nginx_test_config    nginx -t; returns ($exit_code, $output)
    $t->reload_nginx         HUP; waits for new workers (or an [emerg]);
        returns 1 if the new configuration is running, 0 otherwise.
        Under valgrind (single process, where nginx does not survive a
        HUP) it restarts nginx instead.
    $t->stop_nginx           QUIT, TERM after 10 s, KILL after 15 s (also
        its workers); under valgrind, checks every vg.*.log (one ok()).
    $t->nginx_pid, $t->nginx_worker_pids
    $t->error_log            contents of <dir>/error.log
    $t->error_log_clean(ignore => qr/.../)   one ok(): no line with
        [alert], [emerg], [crit], "core dumped", "exited on", or "signal"
        outside the routine [notice]/[info] lines (nginx logs every HUP,
        QUIT and SIGCHLD there); diag()s the offending lines otherwise.
    $t->clear_error_log      truncates it (nginx appends, so this is safe)

=head2 HTTP

    $t->http($method, $path, headers => {..}, body => $bytes,
             json => $perl_data, timeout => s, port => n, host => 'name')
        returns { status, reason, headers (lowercased names; repeated
        headers as arrayrefs), body, json (decoded body, or undef if the
        body is not JSON) }.  Status 599 means a connection error (the
        message is in body).  A new connection per call (keepalive => 1 to
        reuse one); redirects are not followed.  host => sets the Host
        header (the connection still goes to 127.0.0.1).
    $t->raw($bytes, %o)   sends raw bytes on a new connection and returns
        everything read until EOF, timeout (5 s) or until => qr/.../
        matches.  $bytes may be an arrayref of pieces sent pause => s
        (0.1) apart.  close_after => 1: close right after writing and
        return nothing (a client that disconnects).  Send
        "Connection: close" unless you want to wait for the timeout.
    AmTest::parse_response($raw)  { status, headers, body } (de-chunked)

=head2 CLI

    my ($code, $out, $err) = $t->ctl(@args);
    my $out = $t->ctl(@args);     # adds a failing test if exit code != 0
    $t->ctl({ stdin => $bytes, env => {..}, timeout => s }, @args)
        runs <build>/automationsctl --redis 127.0.0.1:<redis_port> @args

=head2 JWT and keys (independent of the project's C code)

    AmTest::jwt(alg => 'HS256', key => $secret_or_private_pem_path,
                kid => 'k1', claims => {..}, header => {..},
                payload => $raw, raw_header => $raw)
        HS256/384/512 (Digest::SHA), RS256/384/512, PS256/384/512,
        ES256/384/512 (openssl command; ES* converted to raw r||s), none
        (empty signature).  header => fields override alg/typ/kid; undef
        removes a field.  Returns the compact token.
    AmTest::b64url($bytes), AmTest::b64url_decode($text)
    my ($key, $pub) = $t->gen_key(type => 'rsa'|'ec256'|'ec384', name => 'k1')
        writes <dir>/k1.key and <dir>/k1.pub
    $t->jwks(file => 'jwks.json', keys => [ { kid, pub => $pub, alg },
                                            { kid, secret => 's', alg } ])
        writes a JWKS (RSA n/e, EC crv/x/y, oct k); returns its path.
        Per key, extra => { field => value } adds/overrides fields.

=head2 Webhook receiver

    $t->start_receiver(status => 200)   pure-Perl HTTP/1.1 server on
        127.0.0.1:receiver_port; records each request in
        <dir>/received.jsonl (see AmTest::Receiver)
    $t->receiver_port, $t->receiver_url($path)
    $t->received              arrayref of { seq, time, method, path,
        headers (lowercased), header_list, body, status, json }
    $t->wait_received($n, $timeout)   polls until >= n requests (10 s);
        returns received() either way
    $t->receiver_status($code, $retry_after)   answer status from now on
        (undef: back to the start_receiver default)
    $t->receiver_delay($seconds)   wait before answering (0 to stop)
    $t->clear_received, $t->stop_receiver

=head2 What the .t files share

Credentials made with automationsctl (apikey, tokenpair, ctl_fields),
requests with them (api, tokenpair_request), execution records and waits
(execution, wait_done, wait_webhook), webhooks (received_for,
verify_signature), requests left open (open_request, read_response),
Redis dumps (redis_dump, redis_snapshot), start_worker: methods of every
harness object, documented in AmTest::Api.

=head2 Processes

    $t->spawn(name => 'worker1', cmd => [..], env => {..}, cwd => dir,
              stdin => $bytes)   fork+exec, stdout+stderr appended to
        <dir>/worker1.log; returns the PID.  env undef values unset.
    $t->kill_proc($name, $signal = 'TERM')
    $t->wait_proc($name, $timeout = 10)   exit code, 128+signal if killed
        by a signal, undef if still running
    $t->running($name), $t->pid($name), $t->proc_log($name)
    $t->stop_proc($name)   TERM, KILL after 10 s, wait
    $t->stop_all           stops spawned processes, the receiver, nginx
        and Redis, by PID (also run by DESTROY and END)
    $t->wait_for(sub { ... }, $timeout = 10, $what)   polls every 50 ms
        until the sub returns true; returns that value, or undef after
        diag("timed out waiting for $what")
    AmTest::free_port()      a free loopback port (bind to 0, close)
    AmTest::pid_alive($pid)  true unless gone or a zombie

nginx, redis and receiver are also process names for running(), pid(),
kill_proc() (e.g. kill_proc('redis', 'STOP') to freeze Redis).

=cut

use strict;
use warnings;

use Cwd qw(abs_path);
use Errno qw(EINTR EAGAIN);
use File::Basename qw(dirname);
use File::Path qw(remove_tree make_path);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Handle;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken refaddr);
use Test::More ();
use Time::HiRes qw(time sleep);

use AmTest::Api ();
use AmTest::Jwt;
use AmTest::Receiver;
use AmTest::Redis;

# The helpers the .t files share (AmTest::Api) are methods of every harness.
our @ISA = ('AmTest::Api');

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $NGINX = $ENV{AM_NGINX} // '/usr/sbin/nginx';
our $REDIS_SERVER = $ENV{AM_REDIS_SERVER} // 'redis-server';
our $NGINX_CORE_SUPP;    # valgrind suppressions, defined below

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;
my %RESERVED = map { $_ => 1 } qw(nginx redis receiver);

# Every live harness object, so that END can stop what DESTROY did not.
my %LIVE;

END {
    local $?;
    for my $t (values %LIVE) {
        $t->_cleanup if $t;
    }
}

# Make Ctrl-C, prove's TERM and a closed terminal leave through END.
for my $sig (qw(INT TERM HUP)) {
    next if defined $SIG{$sig} && $SIG{$sig} ne 'DEFAULT' && $SIG{$sig} ne '';
    my $num = { INT => 2, TERM => 15, HUP => 1 }->{$sig};
    $SIG{$sig} = sub { exit(128 + $num) };
}

sub new {
    my ($class, %o) = @_;
    my $dir = tempdir('amtest-XXXXXXXX', TMPDIR => 1, CLEANUP => 0);

    # nginx workers may run as another user (www-data) and must reach the
    # temp paths and key files below this directory.
    chmod 0755, $dir;

    my $self = bless {
        dir      => abs_path($dir),
        build    => abs_path($o{build} // $ENV{AM_BUILD} // "$ROOT/build")
                    // ($o{build} // $ENV{AM_BUILD} // "$ROOT/build"),
        valgrind => $o{valgrind} // $ENV{AM_VALGRIND} // 0,
        keep     => $ENV{AM_TEST_KEEP},
        owner    => $$,
        procs    => {},
        ports    => [],
        vg_seen  => {},
    }, $class;

    $LIVE{ refaddr $self } = $self;
    weaken($LIVE{ refaddr $self });
    $self->_start_watchdog;

    Test::More::diag("AmTest dir: $self->{dir} (kept)") if $self->{keep};
    return $self;
}

# A helper process that outlives a test killed with SIGKILL (a CI timeout,
# say): when its parent is gone it stops every PID listed in <dir>/.pids
# and removes the directory.  A normal exit stops it in _cleanup.
sub _start_watchdog {
    my ($self) = @_;
    my $parent = $$;
    my ($dir, $keep) = @$self{qw(dir keep)};

    $self->_save_pids;
    STDOUT->flush;
    STDERR->flush;
    my $pid = fork();
    die "AmTest: fork: $!\n" unless defined $pid;
    if ($pid) {
        $self->{watchdog} = $pid;
        return;
    }

    $0 = "amtest-watchdog $dir";
    $SIG{$_} = 'IGNORE' for qw(INT HUP PIPE);
    $SIG{TERM} = sub { POSIX::_exit(0) };
    open(STDIN, '<', '/dev/null');
    open(STDOUT, '>', '/dev/null');
    open(STDERR, '>', '/dev/null');
    _close_fds();

    sleep 0.5 while getppid() == $parent;

    my @pids = grep { /^\d+$/ } split /\s+/, (read_file($self, '.pids') // '');
    kill 'TERM', @pids;
    my $end = time + 10;
    sleep 0.1 while time < $end && grep { pid_alive($_) } @pids;
    kill 'KILL', grep { pid_alive($_) } @pids;
    remove_tree($dir) unless $keep;
    POSIX::_exit(0);
}

# In a forked Perl child: closes inherited descriptors (Redis and HTTP
# connections of the test, listening sockets) except stdio and @keep.
sub _close_fds {
    my (@keep) = @_;
    my %keep = map { $_ => 1 } 0, 1, 2, @keep;

    opendir(my $dh, '/proc/self/fd') or return;
    my @fds = grep { /^\d+$/ && !$keep{$_} } readdir $dh;
    closedir $dh;
    POSIX::close($_) for @fds;
}

# Records the PIDs of running processes for the watchdog.
sub _save_pids {
    my ($self) = @_;
    my @pids = map { $_->{pid} }
               grep { !defined $_->{status} } values %{ $self->{procs} };
    my $file = "$self->{dir}/.pids";

    open(my $fh, '>', "$file.tmp") or return;
    print $fh join("\n", @pids), "\n";
    close $fh;
    rename "$file.tmp", $file;
}

sub _stop_watchdog {
    my ($self) = @_;
    my $pid = delete $self->{watchdog} or return;

    kill 'TERM', $pid;
    waitpid($pid, 0);
}

sub dir      { $_[0]{dir} }
sub build    { $_[0]{build} }
sub valgrind { $_[0]{valgrind} ? 1 : 0 }

# A script of redis/ as the build embeds it and Redis gets it: the helpers
# of lib.lua it uses, then the script (redis/embed.pl --print).
sub script {
    my ($self, $name) = @_;
    my $text = `perl $ROOT/redis/embed.pl --print $ROOT/redis $name`;
    die "embed.pl --print $name failed\n" if $? || $text eq '';
    return $text;
}

# How much longer to wait than on a quiet machine: 6 under valgrind, which
# makes nginx 10-50 times slower, times AM_TEST_SLOW (a whole number, 1 by
# default) on a busy one. The harness's timeouts and the tests' $SLOW grow
# by it; waits are polls, so a larger factor costs nothing when all is well.
sub slow {
    my ($self) = @_;
    my $f = $ENV{AM_TEST_SLOW} // 1;
    $f = 1 unless $f =~ /^[1-9][0-9]?\z/;
    return ($self->{valgrind} ? 6 : 1) * $f;
}

sub _scale {
    my ($self, $s) = @_;
    return $s * $self->slow;
}

sub _path {
    my ($self, $name) = @_;
    return $name =~ m{^/} ? $name : "$self->{dir}/$name";
}

sub write_file {
    my ($self, $name, $content) = @_;
    my $path = $self->_path($name);

    make_path(dirname($path));
    open(my $fh, '>', $path) or die "AmTest: $path: $!\n";
    binmode $fh;
    print $fh $content;
    close $fh or die "AmTest: $path: $!\n";
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = $self->_path($name);

    open(my $fh, '<', $path) or return undef;
    binmode $fh;
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s;
}

# ---------------------------------------------------------------- ports

my %PORT_GIVEN;

sub free_port {
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => 0,
            Proto     => 'tcp',
            Listen    => 1,
        ) or die "AmTest: cannot bind a loopback port: $!\n";
        my $port = $s->sockport;
        close $s;
        # Never hand out the same port twice in one test process.
        return $port unless $PORT_GIVEN{$port}++;
    }
    die "AmTest: no free port found\n";
}

sub port {
    my ($self, $n) = @_;

    return $self->{nginx_port} //= free_port() unless $n;
    return $self->{ports}[$n] //= free_port();
}

# -------------------------------------------------------------- processes

# Status of a process: alive unless it is gone or a zombie.
sub pid_alive {
    my ($pid) = @_;

    return 0 unless $pid && kill(0, $pid);
    if (open(my $fh, '<', "/proc/$pid/stat")) {
        my $stat = <$fh> // '';
        return 0 if $stat =~ /^\d+ \(.*\) [ZX] /s;
    }
    return 1;
}

# PIDs of the children of $ppid (nginx workers of a master).
sub _child_pids {
    my ($ppid) = @_;
    my @kids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        open(my $fh, '<', $stat) or next;
        my $line = <$fh> // next;
        my ($pid, $state, $parent) = $line =~ /^(\d+) \(.*\) (\S) (\d+) /s
            or next;
        push @kids, 0 + $pid if $parent == $ppid && $state ne 'Z';
    }
    return sort { $a <=> $b } @kids;
}

# fork+exec with stdin from /dev/null (or $o{stdin} bytes), stdout and
# stderr appended to $o{log} (or to $o{stdout} / $o{stderr}).
sub _fork_exec {
    my ($self, %o) = @_;
    my @cmd = @{ $o{cmd} };
    my $stdin_file;

    if (defined $o{stdin}) {
        $stdin_file = $self->write_file('.stdin.' . ++$self->{stdin_seq},
                                        $o{stdin});
    }

    STDOUT->flush;
    STDERR->flush;
    my $pid = fork();
    die "AmTest: fork: $!\n" unless defined $pid;
    return $pid if $pid;

    # Child: nothing here may return into the test.
    eval {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP PIPE CHLD);
        open(STDIN, '<', $stdin_file // '/dev/null') or die "stdin: $!";
        my $out = $o{stdout} // $o{log};
        my $err = $o{stderr} // $o{log};
        open(STDOUT, '>>', $out) or die "$out: $!";
        if ($err eq $out) {
            open(STDERR, '>&', \*STDOUT) or die "stderr: $!";
        } else {
            open(STDERR, '>>', $err) or die "$err: $!";
        }
        while (my ($k, $v) = each %{ $o{env} || {} }) {
            if (defined $v) { $ENV{$k} = $v } else { delete $ENV{$k} }
        }
        if ($o{cwd}) { chdir $o{cwd} or die "chdir $o{cwd}: $!" }
        exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!";
    };
    print STDERR "AmTest: $@\n";
    POSIX::_exit(127);
}

sub _register {
    my ($self, $name, $pid, %info) = @_;
    $self->{procs}{$name} = { pid => $pid, status => undef, %info };
    $self->_save_pids;
    return $pid;
}

# Reaps $name if it has exited; true while it runs.
sub running {
    my ($self, $name) = @_;
    my $p = $self->{procs}{$name} or return 0;

    return 0 if defined $p->{status};
    my $r = waitpid($p->{pid}, WNOHANG);
    if ($r == $p->{pid}) {
        $p->{status} = $?;
    } elsif ($r < 0 && !pid_alive($p->{pid})) {
        # Not our child (or already reaped elsewhere).
        $p->{status} = -1;
    } else {
        return 1;
    }
    $self->_save_pids;
    return 0;
}

sub pid {
    my ($self, $name) = @_;
    my $p = $self->{procs}{$name} or return undef;
    return $p->{pid};
}

sub proc_log {
    my ($self, $name) = @_;
    my $p = $self->{procs}{$name} or return undef;
    return $self->read_file($p->{log});
}

# What AddressSanitizer, LeakSanitizer and UBSan reported in the logs of
# the processes spawned so far (a sanitized worker: AM_WORKER, see the
# Makefile's test-asan), a line each.
sub sanitizer_reports {
    my ($self) = @_;
    my @r;
    for my $name (sort keys %{ $self->{procs} }) {
        next if $RESERVED{$name};
        my $log = $self->proc_log($name) // next;
        push @r, "$name: $1"
            while $log =~ /^(.*(?:ERROR: \w+Sanitizer|runtime error:).*)$/mg;
    }
    return @r;
}

# With a sanitized worker (AM_WORKER): stops what was spawned, so that
# LeakSanitizer reports at exit, then checks that nothing was reported.
sub sanitizers_clean {
    my ($self) = @_;
    return unless $ENV{AM_WORKER};
    for my $name (sort keys %{ $self->{procs} }) {
        $self->stop_proc($name) if !$RESERVED{$name} && $self->running($name);
    }
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::is_deeply([ $self->sanitizer_reports ], [],
        "$ENV{AM_WORKER}: no sanitizer reports");
}

sub spawn {
    my ($self, %o) = @_;
    my $name = $o{name} or die "AmTest: spawn needs name\n";

    die "AmTest: spawn: '$name' is reserved\n" if $RESERVED{$name};
    die "AmTest: spawn: '$name' is already running\n" if $self->running($name);
    die "AmTest: spawn needs cmd => [...]\n" unless ref $o{cmd} eq 'ARRAY';

    my $log = "$self->{dir}/$name.log";
    my $pid = $self->_fork_exec(%o, log => $log);
    return $self->_register($name, $pid, log => $log, cmd => $o{cmd});
}

sub kill_proc {
    my ($self, $name, $signal) = @_;
    my $p = $self->{procs}{$name} or die "AmTest: no process '$name'\n";

    return 0 unless $self->running($name);
    return kill($signal // 'TERM', $p->{pid});
}

# Exit code, 128+signal when killed by a signal, undef if still running
# after $timeout seconds.
sub wait_proc {
    my ($self, $name, $timeout) = @_;
    my $p = $self->{procs}{$name} or die "AmTest: no process '$name'\n";
    my $end = time + ($timeout // 10);

    while ($self->running($name)) {
        return undef if time > $end;
        sleep 0.02;
    }
    return _exit_code($p->{status});
}

sub _exit_code {
    my ($st) = @_;
    return -1 if $st < 0;
    return 128 + ($st & 127) if $st & 127;
    return $st >> 8;
}

# Sends each signal of @plan ([signal, seconds to wait], ...) until the
# process is gone.  Returns its exit code, undef if it survived.
sub _stop_named {
    my ($self, $name, @plan) = @_;

    for my $step (@plan) {
        my ($sig, $wait) = @$step;
        last unless $self->running($name);
        $self->kill_proc($name, $sig);
        my $code = $self->wait_proc($name, $wait);
        return $code if defined $code;
    }
    return $self->running($name) ? undef
         : _exit_code($self->{procs}{$name}{status} // -1);
}

sub stop_proc {
    my ($self, $name) = @_;
    return $self->_stop_named($name, [ 'TERM', 10 ], [ 'KILL', 5 ]);
}

sub stop_all {
    my ($self) = @_;

    for my $name (sort keys %{ $self->{procs} }) {
        next if $RESERVED{$name};
        $self->stop_proc($name) if $self->running($name);
    }
    $self->stop_receiver;
    $self->stop_nginx;
    $self->stop_redis;
}

# The end of a harness object: stop everything, remove the directory.
sub _cleanup {
    my ($self) = @_;

    return if $self->{cleaned} || $$ != $self->{owner};
    $self->{cleaned} = 1;
    local $self->{in_cleanup} = 1;
    local $?;
    local $@;

    eval { $self->stop_all; 1 } or print STDERR "AmTest: cleanup: $@";
    $self->_stop_watchdog;
    if ($self->{keep}) {
        print STDERR "# AmTest: kept $self->{dir}\n";
    } else {
        remove_tree($self->{dir});
    }
    delete $LIVE{ refaddr $self };
}

sub DESTROY {
    my ($self) = @_;
    $self->_cleanup;
}

sub wait_for {
    my ($self, $cb, $timeout, $what) = @_;
    my $end = time + ($timeout // 10);

    while (1) {
        my $v = $cb->();
        return $v if $v;
        last if time > $end;
        sleep 0.05;
    }
    Test::More::diag("timed out after " . ($timeout // 10)
                     . " s waiting for $what") if defined $what;
    return undef;
}

# Runs a command to completion; returns ($exit_code, $stdout, $stderr).
sub _run_capture {
    my ($self, $cmd, %o) = @_;
    my $n = ++$self->{run_seq};
    my $out = "$self->{dir}/.run$n.out";
    my $err = "$self->{dir}/.run$n.err";
    my $name = ".run$n";

    my $pid = $self->_fork_exec(%o, cmd => $cmd, stdout => $out, stderr => $err);
    $self->_register($name, $pid);
    my $code = $self->wait_proc($name, $o{timeout} // $self->_scale(60));
    if (!defined $code) {
        $code = $self->_stop_named($name, [ 'KILL', 5 ]) // -1;
        Test::More::diag("@$cmd: killed after timeout");
    }
    delete $self->{procs}{$name};

    my ($so, $se) = ($self->read_file($out) // '', $self->read_file($err) // '');
    unlink $out, $err;
    return ($code, $so, $se);
}

# ------------------------------------------------------------------ redis

sub redis_port {
    my ($self) = @_;
    return $self->{redis_port} //= free_port();
}

sub redis_addr {
    my ($self) = @_;
    return '127.0.0.1:' . $self->redis_port;
}

sub start_redis {
    my ($self, %o) = @_;

    die "AmTest: redis is already running\n" if $self->running('redis');

    # A restart keeps the options of the first start unless told otherwise.
    my $opts = $self->{redis_opts} = { %{ $self->{redis_opts} || {} }, %o };
    my $data = "$self->{dir}/redis";
    make_path($data);

    my @cmd = (
        $REDIS_SERVER,
        '--port', $self->redis_port, '--bind', '127.0.0.1',
        '--dir', $data, '--appendonly', 'yes', '--save', '',
        '--daemonize', 'no', '--logfile', "$self->{dir}/redis.log",
        '--enable-debug-command', 'local',
    );
    push @cmd, '--requirepass', $opts->{requirepass}
        if defined $opts->{requirepass};
    push @cmd, @{ $opts->{args} || [] };

    my $log = "$self->{dir}/redis.out";
    my $pid = $self->_fork_exec(cmd => \@cmd, log => $log);
    $self->_register('redis', $pid, log => $log);

    $self->{rc}->disconnect if $self->{rc};
    $self->{rc} = AmTest::Redis->new(
        port => $self->redis_port, password => $opts->{requirepass},
        timeout => $self->_scale(10));

    my $probe = AmTest::Redis->new(
        port => $self->redis_port, password => $opts->{requirepass},
        timeout => 2);
    my $end = time + 10;
    while (1) {
        if (!$self->running('redis')) {
            die "AmTest: redis-server exited at start:\n"
                . ($self->read_file($log) // '')
                . ($self->read_file('redis.log') // '');
        }
        my ($pong) = eval { $probe->try('PING') };
        $probe->disconnect;
        last if defined $pong && $pong eq 'PONG';
        if (time > $end) {
            $self->_stop_named('redis', [ 'KILL', 5 ]);
            die "AmTest: redis-server did not answer PING within 10 s:\n"
                . ($self->read_file('redis.log') // '');
        }
        sleep 0.05;
    }
    return $pid;
}

sub stop_redis {
    my ($self, %o) = @_;

    $self->{rc}->disconnect if $self->{rc};
    return undef unless $self->running('redis');
    return $self->_stop_named('redis', [ $o{signal} // 'TERM', 10 ],
                              [ 'KILL', 5 ]);
}

sub _redis_client {
    my ($self) = @_;
    return $self->{rc} //= AmTest::Redis->new(
        port => $self->redis_port,
        password => ($self->{redis_opts} || {})->{requirepass},
        timeout => $self->_scale(10));
}

sub redis {
    my ($self, @cmd) = @_;
    return $self->_redis_client->command(@cmd);
}

sub redis_try {
    my ($self, @cmd) = @_;
    return $self->_redis_client->try(@cmd);
}

# ------------------------------------------------------------------ nginx

# The .t gives the whole configuration (one argument), as nginx-tests do;
# the older form builds it from snippets (%o) around the same globals.
sub write_nginx {
    my $self = shift;
    my $conf;

    if (@_ == 1) {
        $conf = shift;
        $self->{error_log_level} = 'info';
    } else {
        $conf = $self->_nginx_template(@_);
    }

    $self->port;
    $conf = $self->_expand($conf);
    $self->write_file('nginx.conf', $conf);
    return $conf;
}

sub _nginx_template {
    my ($self, %o) = @_;
    my $workers = $o{workers} // 1;

    $self->port($_) for 1 .. ($o{extra_ports} // 0);
    $self->{error_log_level} = $o{error_log_level} // 'info';

    my $conf = "# written by AmTest\n";
    $conf .= "load_module %%BUILD%%/ngx_http_automations_module.so;\n"
        unless $o{no_module};
    $conf .= "user $o{user};\n" if $o{user};
    $conf .= "worker_processes $workers;\n";
    $conf .= "%%TEST_GLOBALS%%\n";
    $conf .= ($o{main} // '') . "\n";
    $conf .= "events {\n    worker_connections 1024;\n"
           . _indent($o{events}, 4) . "}\n\n";
    $conf .= "http {\n"
           . "    %%TEST_GLOBALS_HTTP%%\n\n"
           . _indent($o{http}, 4) . "\n"
           . "    server {\n"
           . "        listen 127.0.0.1:%%PORT%%;\n"
           . "        server_name localhost;\n\n"
           . _indent($o{server}, 8)
           . "    }\n"
           . "}\n";
    return $conf;
}

# What every configuration needs for the harness and is not under test:
# where nginx writes its files, and master_process off under valgrind.
sub _test_globals {
    my ($self) = @_;
    my $d = $self->{dir};
    my $level = $self->{error_log_level} // 'info';

    return "daemon off;\n"
        . 'master_process ' . ($self->{valgrind} ? 'off' : 'on') . ";\n"
        . "error_log $d/error.log $level;\n"
        . "pid $d/nginx.pid;\n";
}

sub _test_globals_http {
    my ($self) = @_;
    my $d = $self->{dir};

    return join "\n    ", 'access_log off;',
        map { "${_}_temp_path $d/${_}_temp;" }
            qw(client_body proxy fastcgi uwsgi scgi);
}

sub _indent {
    my ($text, $n) = @_;
    return '' unless defined $text && length $text;
    my $pad = ' ' x $n;
    $text =~ s/^\s*\n//;
    $text =~ s/\s+\z//;
    $text =~ s/^/$pad/mg;
    return "$text\n";
}

sub _expand {
    my ($self, $text) = @_;

    $text =~ s{%%([A-Z_]+?)(\d*)%%}{
        my ($k, $n) = ($1, $2);
        $k eq 'PORT'        ? $self->port($n)
      : $n ne ''            ? die("AmTest: unknown placeholder %%$k$n%%\n")
      : $k eq 'REDIS'       ? $self->redis_addr
      : $k eq 'REDIS_PORT'  ? $self->redis_port
      : $k eq 'DIR'         ? $self->{dir}
      : $k eq 'BUILD'       ? $self->{build}
      : $k eq 'RECEIVER'    ? $self->receiver_port
      : $k eq 'TEST_GLOBALS'      ? $self->_test_globals
      : $k eq 'TEST_GLOBALS_HTTP' ? $self->_test_globals_http
      : die("AmTest: unknown placeholder %%$k%%\n")
    }ge;
    return $text;
}

sub _nginx_cmd {
    my ($self, $elog, @extra) = @_;
    my $d = $self->{dir};
    return ($NGINX, '-p', "$d/", '-c', "$d/nginx.conf", '-e', "$d/$elog",
            @extra);
}

# The early messages of nginx -t go to a log of their own, so that the
# errors a test provokes on purpose do not end up in error.log.
sub nginx_test_config {
    my ($self) = @_;
    my ($code, $out, $err) =
        $self->_run_capture([ $self->_nginx_cmd('nginx-t.log', '-t') ]);
    return ($code, $err . $out);
}

sub nginx_pid { $_[0]->pid('nginx') }

sub nginx_worker_pids {
    my ($self) = @_;
    return () unless $self->running('nginx');
    return _child_pids($self->pid('nginx'));
}

sub start_nginx {
    my ($self) = @_;
    my $d = $self->{dir};

    die "AmTest: call write_nginx first\n" unless -f "$d/nginx.conf";
    die "AmTest: nginx is already running\n" if $self->running('nginx');

    my @cmd = $self->_nginx_cmd('error.log');
    if ($self->{valgrind}) {
        my @supp = ($self->write_file('nginx-core.supp', $NGINX_CORE_SUPP),
                    grep { $_ && -f $_ }
                        "$ROOT/t/valgrind.supp", $ENV{AM_VALGRIND_SUPP});
        unshift @cmd, 'valgrind', '--trace-children=yes', '--leak-check=full',
            '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
            '--num-callers=30', "--log-file=$d/vg.%p.log",
            map { "--suppressions=$_" } @supp;
    }
    unlink "$d/nginx.pid";

    my $log = "$d/nginx.out";
    my $pid = $self->_fork_exec(cmd => \@cmd, log => $log);
    $self->_register('nginx', $pid, log => $log);

    my $timeout = $self->{valgrind} ? 60 : 10;
    my $ok = $self->wait_for(sub {
        return 'exited' unless $self->running('nginx');
        my $pidfile = $self->read_file('nginx.pid') // '';
        return 0 unless $pidfile =~ /^\s*(\d+)/ && $1 == $pid;
        return _can_connect($self->port) ? 'up' : 0;
    }, $timeout);

    return $pid if $ok && $ok eq 'up';

    my $why = $ok ? 'nginx exited at start'
                  : "nginx did not accept connections within $timeout s";
    $self->_stop_named('nginx', [ 'TERM', 5 ], [ 'KILL', 5 ])
        if $self->running('nginx');
    die "AmTest: $why (status "
        . ($self->wait_proc('nginx', 0) // 'running') . "):\n"
        . ($self->read_file($log) // '') . ($self->error_log // '');
}

# Memory that stock nginx (Debian's stripped /usr/sbin/nginx) never frees
# in single-process mode: the environment array, and the connections and
# events that ngx_event_process_init (static, hence obj:) allocates.  Once
# the cycle pool is gone at exit they show up as "definitely lost", at
# random.  Only allocations made by nginx's own binary match: a leak in our
# module has a frame in the module's .so instead.
$NGINX_CORE_SUPP = <<"EOF";
{
   nginx-core-environment-at-exit
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   fun:ngx_set_environment
}
{
   nginx-core-event-process-init-at-exit
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   obj:$NGINX
   fun:ngx_single_process_cycle
}
EOF

sub _can_connect {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
        Timeout => 1,
    ) or return 0;
    close $s;
    return 1;
}

sub reload_nginx {
    my ($self) = @_;

    die "AmTest: nginx is not running\n" unless $self->running('nginx');
    # nginx in single-process mode (master_process off, as under valgrind)
    # does not survive a HUP (connections of the old cycle leak), so the
    # reload becomes a restart there.
    if ($self->{valgrind}) {
        $self->stop_nginx;
        return eval { $self->start_nginx; 1 } ? 1 : 0;
    }

    my %old = map { $_ => 1 } $self->nginx_worker_pids;
    my $log_size = -s "$self->{dir}/error.log" // 0;
    my $emerg = sub {
        my $log = $self->error_log // '';
        return substr($log, $log_size) =~ /\[emerg\]/;
    };

    $self->kill_proc('nginx', 'HUP');

    my $r = $self->wait_for(sub {
        return 'failed' if $emerg->();
        return (grep { !$old{$_} } $self->nginx_worker_pids) ? 'ok' : 0;
    }, 10);
    return 0 unless $r && $r eq 'ok';

    # Old workers finish their requests and go; give them a moment so that
    # the next request reaches a new worker.
    $self->wait_for(sub { !grep { $old{$_} } $self->nginx_worker_pids }, 5);
    return 1;
}

sub stop_nginx {
    my ($self) = @_;
    my $pid = $self->pid('nginx');

    if ($self->running('nginx')) {
        my @workers = _child_pids($pid);
        my $code = $self->_stop_named('nginx',
            [ 'QUIT', $self->_scale(10) ], [ 'TERM', $self->_scale(5) ],
            [ 'KILL', 5 ]);
        # Workers left behind by a killed master: stop them by PID too.
        for my $w (@workers) {
            next unless pid_alive($w);
            kill 'KILL', $w;
        }
        $self->wait_for(sub { !grep { pid_alive($_) } @workers }, 5);
    }
    $self->_check_valgrind if $self->{valgrind};
}

# One ok() per stop: every new vg.*.log must report no errors and no
# definitely lost bytes.  From cleanup (after done_testing) only failures
# are reported, since a passing extra test would break the plan.
sub _check_valgrind {
    my ($self) = @_;
    my @bad;
    my $n = 0;

    for my $file (sort glob "$self->{dir}/vg.*.log") {
        next if $self->{vg_seen}{$file}++;
        $n++;
        my $log = $self->read_file($file) // '';
        my ($errors) = $log =~ /ERROR SUMMARY: ([\d,]+) errors/;
        my @lost = $log =~ /definitely lost: ([\d,]+) bytes/g;
        my $why = !defined $errors ? 'no ERROR SUMMARY (process killed?)'
                : $errors ne '0'   ? "$errors errors"
                : (grep { $_ ne '0' } @lost) ? 'definitely lost bytes'
                : undef;
        push @bad, [ $file, $why, $log ] if $why;
    }
    return unless $n;

    local $Test::Builder::Level = $Test::Builder::Level + 2;
    if (@bad) {
        Test::More::ok(0, 'valgrind: no errors, no definite leaks');
        Test::More::diag("$_->[0]: $_->[1]\n$_->[2]") for @bad;
    } elsif (!$self->{in_cleanup}) {
        Test::More::ok(1, "valgrind: no errors, no definite leaks ($n logs)");
    }
}

sub error_log {
    my ($self) = @_;
    return $self->read_file('error.log') // '';
}

sub clear_error_log {
    my ($self) = @_;
    truncate("$self->{dir}/error.log", 0);
}

sub error_log_problems {
    my ($self, %o) = @_;
    my @ignore = ref $o{ignore} eq 'ARRAY' ? @{ $o{ignore} }
               : defined $o{ignore}        ? ($o{ignore}) : ();

    return grep {
        my $l = $_;
        (      $l =~ /\[(?:alert|emerg|crit)\]/
            || $l =~ /core dumped|exited on/
            || ($l =~ /signal/ && $l !~ /\[(?:notice|info|debug)\]/))
        && !grep { $l =~ $_ } @ignore
    } split /\n/, $self->error_log;
}

sub error_log_clean {
    my ($self, %o) = @_;
    my @bad = $self->error_log_problems(%o);

    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::ok(!@bad, $o{name} // 'error log clean')
        or Test::More::diag(join "\n", @bad);
    return !@bad;
}

# ------------------------------------------------------------------- http

sub http {
    my ($self, $method, $path, %o) = @_;
    my $port = $o{port} // $self->port;
    my $host = $o{host} // '127.0.0.1';
    my %h = %{ $o{headers} || {} };
    my $body = $o{body};

    if (exists $o{json}) {
        $body = $JSON->encode($o{json});
        $h{'Content-Type'} = 'application/json'
            unless grep { lc eq 'content-type' } keys %h;
    }
    utf8::encode($body) if defined $body && utf8::is_utf8($body);

    my %args = (
        timeout      => $o{timeout} // $self->_scale(10),
        max_redirect => 0,
        agent        => 'AmTest/1',
        no_proxy     => [ $host ],
    );
    my $ua = $o{keepalive}
        ? ($self->{ua}{"$host:$port:$args{timeout}"} //= HTTP::Tiny->new(%args))
        : HTTP::Tiny->new(%args);

    my $url = $path =~ m{^https?://} ? $path : "http://$host:$port$path";
    local $SIG{PIPE} = 'IGNORE';
    my $res = $ua->request($method, $url, {
        headers => \%h,
        peer    => '127.0.0.1',
        (defined $body ? (content => $body) : ()),
    });

    my $json;
    if (length($res->{content} // '') && $res->{status} != 599) {
        $json = eval { $JSON->decode($res->{content}) };
    }
    return {
        status  => $res->{status},
        reason  => $res->{reason},
        headers => $res->{headers} || {},
        body    => $res->{content} // '',
        json    => $json,
    };
}

sub raw {
    my ($self, $bytes, %o) = @_;
    my $timeout = $o{timeout} // $self->_scale(5);
    my @pieces = ref $bytes eq 'ARRAY' ? @$bytes : ($bytes);
    local $SIG{PIPE} = 'IGNORE';

    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $o{port} // $self->port,
        Proto => 'tcp', Timeout => $timeout,
    ) or die "AmTest: raw: cannot connect: $@\n";
    binmode $s;

    for my $i (0 .. $#pieces) {
        sleep($o{pause} // 0.1) if $i;
        my $data = $pieces[$i];
        utf8::encode($data) if utf8::is_utf8($data);
        while (length $data) {
            my $n = syswrite($s, $data);
            if (!defined $n) {
                next if $! == EINTR || $! == EAGAIN;
                last;
            }
            substr($data, 0, $n, '');
        }
    }

    if ($o{close_after}) {
        close $s;
        return;
    }

    my $buf = '';
    my $sel = IO::Select->new($s);
    my $end = time + $timeout;
    while ((my $left = $end - time) > 0) {
        last unless $sel->can_read($left);
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
        last if $o{until} && $buf =~ $o{until};
    }
    close $s;
    return $buf;
}

# Parses one raw HTTP response: { status, headers (lowercased), body }.
sub parse_response {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw // '', 2;
    my ($line, @lines) = split /\r\n/, $head // '';
    my ($status) = ($line // '') =~ m{^HTTP/\d\.\d\s+(\d+)};
    my %h;

    for (@lines) {
        my ($n, $v) = /^([^:]+):\s*(.*)$/ or next;
        $n = lc $n;
        $h{$n} = exists $h{$n} ? "$h{$n}, $v" : $v;
    }
    $body //= '';
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $size = hex $1;
            last unless $size;
            $out .= substr($body, 0, $size, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }
    return { status => $status, headers => \%h, body => $body };
}

# -------------------------------------------------------------------- cli

sub ctl {
    my $self = shift;
    my %o = ref $_[0] eq 'HASH' ? %{ shift() } : ();
    my @args = @_;
    my @cmd = ("$self->{build}/automationsctl", '--redis', $self->redis_addr,
               @args);

    my ($code, $out, $err) = $self->_run_capture(\@cmd, %o);
    return ($code, $out, $err) if wantarray;

    if ($code != 0) {
        local $Test::Builder::Level = $Test::Builder::Level + 1;
        Test::More::ok(0, "automationsctl @args");
        Test::More::diag("exit code $code\nstdout: $out\nstderr: $err");
    }
    return $out;
}

# -------------------------------------------------------------------- jwt

sub jwt          { AmTest::Jwt::jwt(@_) }
sub b64url       { AmTest::Jwt::b64url(@_) }
sub b64url_decode { AmTest::Jwt::b64url_decode(@_) }

sub gen_key {
    my ($self, %o) = @_;
    return AmTest::Jwt::gen_key(%o, dir => $self->{dir});
}

sub jwks {
    my ($self, %o) = @_;
    my $file = $self->_path($o{file} // 'jwks.json');

    AmTest::Jwt::write_jwks($file, $o{keys} || []);
    return $file;
}

# --------------------------------------------------------------- receiver

sub receiver_port {
    my ($self) = @_;
    return $self->{receiver_port} //= free_port();
}

sub receiver_url {
    my ($self, $path) = @_;
    return 'http://127.0.0.1:' . $self->receiver_port . ($path // '/');
}

sub start_receiver {
    my ($self, %o) = @_;

    die "AmTest: receiver is already running\n" if $self->running('receiver');

    my $sock = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => $self->receiver_port,
        Proto => 'tcp', Listen => 128, ReuseAddr => 1,
    ) or die "AmTest: receiver cannot listen on "
             . $self->receiver_port . ": $!\n";

    my $log = "$self->{dir}/receiver.log";
    my $parent = $$;
    STDOUT->flush;
    STDERR->flush;
    my $pid = fork();
    die "AmTest: fork: $!\n" unless defined $pid;

    if (!$pid) {
        eval {
            open(STDIN, '<', '/dev/null');
            open(STDOUT, '>>', $log);
            open(STDERR, '>&', \*STDOUT);
            _close_fds(fileno $sock);
            AmTest::Receiver::serve(socket => $sock, dir => $self->{dir},
                                    status => $o{status}, parent => $parent);
        };
        print STDERR "receiver: $@" if $@;
        POSIX::_exit(0);
    }

    close $sock;
    $self->_register('receiver', $pid, log => $log);
    return $pid;
}

sub stop_receiver {
    my ($self) = @_;
    return undef unless $self->running('receiver');
    return $self->_stop_named('receiver', [ 'TERM', 5 ], [ 'KILL', 5 ]);
}

sub received {
    my ($self) = @_;
    return AmTest::Receiver::read_records($self->{dir});
}

sub wait_received {
    my ($self, $n, $timeout) = @_;
    my $recs;

    $self->wait_for(sub {
        $recs = $self->received;
        return @$recs >= $n;
    }, $timeout // $self->_scale(10));
    return $recs;
}

sub clear_received {
    my ($self) = @_;
    unlink "$self->{dir}/received.jsonl";
}

sub receiver_status {
    my ($self, $code, $retry_after) = @_;
    my $file = "$self->{dir}/receiver.status";

    return unlink $file unless defined $code;
    $self->write_file($file,
        $code . (defined $retry_after ? " $retry_after" : '') . "\n");
}

sub receiver_delay {
    my ($self, $seconds) = @_;
    $self->write_file('receiver.delay', ($seconds // 0) . "\n");
}

1;
