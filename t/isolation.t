#!/usr/bin/perl
# Hostile automations, on both runtimes (sh and python), against a real
# automations-worker running as root: a run cannot read the host's
# configuration and keys, another run's folder, other processes (the
# worker's among them) or the Redis password; it cannot authenticate to
# Redis, nor reach it at all with "network": "none"; what it writes in /tmp
# and /dev/shm is capped and gone after it; fork bombs, busy loops and
# memory hogs are contained. After each, the worker still completes a
# normal run. Python runs are warm (forked by the worker's warm python
# parent) unless AM_PYTHON_WARM=off, then cold.

use strict;
use warnings;

use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use AmTest;

my $t = AmTest->new;
my $W = $t->build . '/automations-worker';

plan skip_all => "$W not built" unless -x $W;
plan skip_all => 'runs are confined only when the worker is root' if $> != 0;

# A container without CAP_SYS_ADMIN cannot confine anything; anywhere else
# the worker must.
plan skip_all => 'this machine refuses mount and PID namespaces'
    if system('unshare --mount --pid --ipc --uts --net --fork '
              . 'mount -t tmpfs tmpfs /mnt >/dev/null 2>&1') != 0;

my $JSON = JSON::PP->new->canonical->allow_nonref;
my $ROOT = $AmTest::ROOT;
my $PASSWORD = sprintf('pw-%d-%08x', $$, int(rand(2**32)));
my @DEFAULT_HIDDEN = qw(/etc/nginx /etc/automations /etc/redis
    /etc/ssl/private /root /run/secrets);

sub slurp {
    open my $fh, '<', $_[0] or die "$_[0]: $!";
    local $/;
    return scalar <$fh>;
}

# The gateway's enqueue script, which copies the automation's "network"
# into the execution record, where the worker reads it.
my $ENQUEUE = slurp("$ROOT/redis/lib.lua") . "\nlocal function enqueue()\n"
    . slurp("$ROOT/redis/execution_enqueue.lua") . "\nend\n" . <<'LUA';
return enqueue()
LUA

# A configuration folder and a key file the run's user may read (0644):
# outside /tmp, so that only hiding keeps them from a run.
my $secrets = tempdir('am-isolation-XXXXXX', DIR => '/var/tmp', CLEANUP => 1);
chmod 0755, $secrets;
$t->write_file("$secrets/nginx.conf",
    "automations_redis_password $PASSWORD;\n");
$t->write_file("$secrets/server.key", "-----BEGIN PRIVATE KEY-----\n");
chmod 0644, "$secrets/nginx.conf", "$secrets/server.key";

$t->start_redis(requirepass => $PASSWORD);
$t->ctl({ env => { AUTOMATIONS_REDIS_PASSWORD => $PASSWORD } },
    'project', 'create', 'demo');

my $seq = 0;

# Stores the automation and enqueues a run of it; returns the execution id.
sub enqueue {
    my ($runtime, $code, %o) = @_;
    my $name = "a$$-" . ++$seq;
    my $id = sprintf('exec_%08x%08x%08x', $$, int(time), $seq);

    $t->redis('HSET', "am:{demo}:automation:$name", automation_name => $name,
        code => $code, runtime => $runtime, description => '',
        timeout_ms => $o{timeout_ms} // '', webhook => '',
        network => $o{network} // 'default',
        created_at => '2026-01-01T00:00:00Z',
        updated_at => '2026-01-01T00:00:00Z');
    my $r = $t->redis('EVAL', $ENQUEUE, 2, 'am:{demo}:project', 'am:runs',
        'am:{demo}:', 'demo', $name, $id, 'start', 3600, '', "d$id",
        '', '', '', '', '', '', '');
    die "enqueue $name: @$r\n" unless $r->[0] eq 'ok';
    return $id;
}

sub record {
    my %h = @{ $t->redis('HGETALL', "am:{demo}:execution:$_[0]") };
    return \%h;
}

sub wait_done {
    my ($id, $timeout) = @_;
    $t->wait_for(sub { (record($id)->{status} // '') =~ /^(success|error|timed_out)$/ },
        $timeout // 30, "execution $id");
    return record($id);
}

# Runs code to its end; returns the record, output decoded.
sub run {
    my $rec = wait_done(enqueue(@_));
    $rec->{json} = eval { $JSON->decode($rec->{output} // 'null') };
    return $rec;
}

# The run's own uids: a block per worker process, chosen by its pid.
sub run_uid_procs {
    my $base = 2000000 + 1024 * ($t->pid('w') % 2048);
    my $n = 0;
    for my $status (glob '/proc/[0-9]*/status') {
        open my $fh, '<', $status or next;
        while (<$fh>) {
            if (/^Uid:\s+(\d+)/) {
                $n++ if $1 >= $base && $1 < $base + 1024;
                last;
            }
        }
    }
    return $n;
}

# After a hostile run: the worker is alive, takes a normal run, and nothing
# the hostile run started is left.
sub worker_fine {
    my ($what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok($t->running('w'), "$what: the worker lives");
    my $rec = run('sh', q(echo '{"ok":true}'));
    is($rec->{status}, 'success', "$what: the worker completes a normal run")
        or diag(explain $rec);
    ok($t->wait_for(sub { run_uid_procs() == 0 }, 5, 'run processes gone'),
       "$what: no process of the run is left");
}

my $hidden = join(':', $secrets, @DEFAULT_HIDDEN);
my $warm = ($ENV{AM_PYTHON_WARM} // 'on') eq 'on';
$t->spawn(name => 'w', cmd => [ $W, '--redis', $t->redis_addr, '--name', 'w',
        '--concurrency', 4, '--run-tmp-mb', 16, '--run-hide', $hidden,
        '--max-timeout', 20000, '--memory', 256,
        '--python-warm', $warm ? 'on' : 'off' ],
    env => { AUTOMATIONS_REDIS_PASSWORD => $PASSWORD });

ok($t->wait_for(sub { ($t->proc_log('w') // '') =~ /started: redis/ }, 10,
    'worker start'), 'the worker starts');
unlike($t->proc_log('w'), qr/not confined/,
    'as root, it confines runs and does not say otherwise');

my $redis_port = $t->redis_port;
my $worker_pid = $t->pid('w');

# the warm parent imports ctypes, the runner does not
my $forked = "import sys\noutput = 'ctypes' in sys.modules\n";
run('python', $forked);
if ($warm) {
    ok($t->wait_for(sub {
            ($t->proc_log('w') // '') =~ /python warm parent \d+ ready/ },
        10, 'the warm parent'), 'a warm python parent is ready');
}
is(run('python', $forked)->{json} ? 'warm' : 'cold', $warm ? 'warm' : 'cold',
    'python runs are ' . ($warm ? 'warm' : 'cold'));

# ------------------------------------------------------------ host files

subtest 'host configuration and keys are hidden' => sub {
    my $files = "$secrets/nginx.conf $secrets/server.key";
    my %code = (
        sh => qq(printf '%s' "\$(cat $files 2>/dev/null; ls -A $secrets)" )
            . q(| /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))'),
        python => <<PY,
import os
seen = ''
for f in '$files'.split():
    try:
        seen += open(f).read()
    except OSError:
        pass
output = seen + ''.join(os.listdir('$secrets'))
PY
    );
    for my $rt (qw(sh python)) {
        my $rec = run($rt, $code{$rt});
        is($rec->{status}, 'success', "$rt: the run reads") or diag($rec->{log});
        is($rec->{json}, '', "$rt: nothing of the hidden folder");
    }

    # what the host has of its own, when it has it
    for my $f (grep { -e } '/etc/nginx/nginx.conf', '/etc/redis/redis.conf') {
        my $rec = run('sh', qq(test -s $f && echo '"read"' || echo '"empty"'));
        is($rec->{json}, 'empty', "$f is not readable");
    }

    # /var/tmp is writable by all, on the host
    my $rec = run('sh', q(touch /var/tmp/am-isolation-$$ 2>/dev/null )
        . q(&& echo '"w"' || echo '"ro"'));
    is($rec->{json}, 'ro', 'the host is read-only, even where all may write');
    worker_fine('host files');
};

# ------------------------------------------------------- another run's folder

subtest "another run's folder, while it runs" => sub {
    my %code = (
        sh => q(printf '"%s"' "$(ls -A .. | tr '\n' ' ')"),
        python => "import os\noutput = ' '.join(os.listdir('..')) + ' '\n",
    );
    for my $rt (qw(sh python)) {
        my $slow = enqueue('sh', "sleep 2; echo '{\"slow\":1}'");
        $t->wait_for(sub { (record($slow)->{status} // '') eq 'running' }, 10,
            'the slow run running');
        my $rec = run($rt, $code{$rt});
        is($rec->{status}, 'success', "$rt: the run lists its parent")
            or diag($rec->{log});
        like($rec->{json}, qr/^am-run-\w+ $/, "$rt: it sees its own folder only");
        is(wait_done($slow)->{status}, 'success', "$rt: beside a running one");
    }
};

# ----------------------------------------------------------------- processes

subtest 'a run sees its own processes only' => sub {
    my %code = (
        sh => q(for p in /proc/[0-9]*; do printf '%s,' "$(tr '\0' ' ' < $p/cmdline)"; done )
            . q(| /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))'),
        # a warm run's init (PID 1) executes the sandbox once the run
        # exists: while it does, its command line reads empty
        python => <<'PY',
import os, time
def cmd(p):
    for _ in range(200):
        try:
            c = open('/proc/%s/cmdline' % p).read()
        except OSError:
            return ''
        if c:
            return c.replace('\0', ' ')
        time.sleep(0.01)
    return ''
output = ','.join(cmd(p) for p in os.listdir('/proc') if p.isdigit())
PY
    );
    for my $rt (qw(sh python)) {
        my $rec = run($rt, $code{$rt});
        is($rec->{status}, 'success', "$rt: the run lists /proc")
            or diag("status $rec->{status}, error " . ($rec->{error} // "")
                    . "\n" . substr($rec->{log} // "", 0, 400));
        my @cmd = grep { length } split /,/, $rec->{json} // '';
        ok(@cmd >= 2 && @cmd <= 6, "$rt: a handful of processes (" . @cmd . ')')
            or diag(explain \@cmd);
        my @programs = map { (split ' ')[0] =~ s{.*/}{}r } @cmd;
        is_deeply([ grep { /^(automations-worker|redis-server|nginx|perl)/ }
                    @programs ],
            [], "$rt: neither the worker, Redis, nginx nor the test")
            or diag(explain \@cmd);
    }

    my $rec = run('sh', "test -e /proc/$worker_pid && echo '\"seen\"' || echo '\"unseen\"'");
    is($rec->{json}, 'unseen', "the worker's /proc entry is not there")
        or diag("worker pid $worker_pid; " . explain $rec);
};

# ------------------------------------------------------------------ Redis

subtest 'Redis: the password is nowhere to read, AUTH fails' => sub {
    my $find = <<PY;
import os
found = []
for p in os.listdir('/proc'):
    for f in ('cmdline', 'environ'):
        try:
            if b'$PASSWORD' in open('/proc/%s/%s' % (p, f), 'rb').read():
                found.append(p + '/' + f)
        except OSError:
            pass
for k, v in os.environ.items():
    if '$PASSWORD' in v:
        found.append('env ' + k)
output = found
PY
    my $rec = run('python', $find);
    is($rec->{status}, 'success', 'python: the run searches') or diag($rec->{log});
    is_deeply($rec->{json}, [], 'no cmdline or environ holds the password');

    my $sh = run('sh', qq(grep -rl '$PASSWORD' /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null; env | grep -c '$PASSWORD' || :));
    is($sh->{status}, 'success', 'sh: neither') or diag(explain $sh);
    is($sh->{json}, 0, 'sh: nothing found');

    my %ping = (
        python => <<PY,
import socket
s = socket.create_connection(('127.0.0.1', $redis_port), 2)
s.sendall(b'PING\\r\\nCONFIG GET requirepass\\r\\nKEYS *\\r\\n')
s.settimeout(2)
data = b''
while data.count(b'\\r\\n') < 3:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
output = data.decode()
PY
        sh => qq(perl -MIO::Socket::INET -e '
            my \$s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$redis_port",
                Timeout => 2) or die "connect: \$!\\n";
            print \$s "PING\\r\\nCONFIG GET requirepass\\r\\nKEYS *\\r\\n";
            my \$r = ""; while (\$r !~ /(\\r\\n.*){3}/s) {
                sysread(\$s, my \$b, 4096) or last; \$r .= \$b }
            \$r =~ s/\\r\\n/ /g; print qq("\$r")'),
    );
    for my $rt (qw(sh python)) {
        my $rec = run($rt, $ping{$rt});
        is($rec->{status}, 'success', "$rt: default network: Redis answers")
            or diag(explain $rec);
        my @noauth = ($rec->{json} // '') =~ /NOAUTH/g;
        is(scalar @noauth, 3, "$rt: every command is refused: NOAUTH")
            or diag($rec->{json});

        $rec = run($rt, $ping{$rt}, network => 'none');
        is($rec->{status}, 'error', "$rt: network none: no connection");
        like($rec->{error} // '', qr/unreachable|connect/i,
            "$rt: network none: unreachable") or diag(explain $rec);
    }
    worker_fine('Redis');
};

# ---------------------------------------------------------- /tmp, /dev/shm

subtest '/tmp and /dev/shm: capped, private, gone after' => sub {
    my $mark = "am-isolation-$$";
    my %fill = (
        sh => qq(head -c 100000000 /dev/zero > /tmp/$mark 2>/dev/null; )
            . qq(echo x > /dev/shm/$mark; printf '[%s, %s]' )
            . qq("\$(stat -c %s /tmp/$mark)" "\$(df -k /tmp | tail -1 | awk '{print \$2}')"),
        python => <<PY,
import os, shutil
try:
    with open('/tmp/$mark', 'wb') as f:
        while True:
            f.write(b'\\0' * 1048576)
except OSError:
    pass
open('/dev/shm/$mark', 'w').write('x')
output = [os.path.getsize('/tmp/$mark'), shutil.disk_usage('/tmp').total // 1024]
PY
    );
    for my $rt (qw(sh python)) {
        my $rec = run($rt, $fill{$rt});
        is($rec->{status}, 'success', "$rt: the run fills /tmp")
            or diag(explain $rec);
        my ($size, $total) = @{ $rec->{json} || [ 0, 0 ] };
        ok($size > 0 && $size <= 16 * 1048576 && $total == 16 * 1024,
           "$rt: stopped at the 16 MiB quota ($size bytes)");
        ok(!-e "/tmp/$mark" && !-e "/dev/shm/$mark",
           "$rt: nothing of it on the host");

        # the run's own /dev/shm holds the way to its folder when the
        # worker keeps the run folders there (its default as root)
        $rec = run('sh', q(own=${PWD#/dev/shm/}; own=${own%%/*}; )
            . qq(printf '"%s"' "\$(ls -A /dev/shm | grep -vxF "\${own:-/}"; ls /tmp/$mark 2>/dev/null)"));
        is($rec->{json}, '', "$rt: nor for the next run");
    }
    worker_fine('/tmp');
};

# ------------------------------------------------------------ resource hogs

my %HOG = (
    'fork bomb' => {
        sh => "b() { b | b & }\nb\nsleep 30\n",
        python => "import os\nwhile True:\n    os.fork()\n",
        timeout_ms => 3000,
        expect => qr/^(error|timed_out)$/,
    },
    'busy loop' => {
        sh => "while :; do :; done\n",
        python => "while True:\n    pass\n",
        timeout_ms => 1500,
        expect => qr/^timed_out$/,
    },
    'memory hog' => {
        sh => q(awk 'BEGIN { s = "x"; while (1) s = s s }'),
        python => "b = []\nwhile True:\n    b.append(bytearray(64 * 1024 * 1024))\n",
        timeout_ms => 10000,
        expect => qr/^error$/,
    },
);

for my $what (sort keys %HOG) {
    subtest $what => sub {
        my $h = $HOG{$what};
        for my $rt (qw(sh python)) {
            my $t0 = time;
            my $rec = run($rt, $h->{$rt}, timeout_ms => $h->{timeout_ms});
            like($rec->{status}, $h->{expect},
                "$rt: ends as $rec->{status}: " . ($rec->{error} // ''));
            ok(time - $t0 < $h->{timeout_ms} / 1000 + 10,
               "$rt: within its time limit");
            worker_fine("$rt $what");
        }
    };
}

$t->kill_proc('w', 'TERM');
is($t->wait_proc('w', 15), 0, 'the worker exits 0 on SIGTERM');

done_testing;
