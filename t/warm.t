#!/usr/bin/perl
# Warm python runs (--python-warm on, the default): a root worker keeps a
# python parent with the runner loaded and forks one child per run. A warm
# run gets exactly a cold run's confinement (user, limits, process group,
# namespaces, mounts, environment); what a run changes (modules, builtins,
# the environment, /tmp, /dev/shm, threads) does not reach the next one; a
# warm parent killed mid-run fails that execution once, visibly, and runs
# go on cold until a new parent is ready. A confined run is the only copy
# of the parent (its supervisor and init execute automations-sandbox), and
# a worker takes no runs before its parent is ready, so that a backlog does
# not start cold.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use AmTest;

my $t = AmTest->new;
our $W = $t->build . '/automations-worker';

plan skip_all => "$W not built" unless -x $W;
plan skip_all => 'runs are confined only when the worker is root' if $> != 0;

my $JSON = JSON::PP->new->canonical->allow_nonref;
my $ROOT = $AmTest::ROOT;

sub slurp {
    open my $fh, '<', $_[0] or die "$_[0]: $!";
    local $/;
    return scalar <$fh>;
}

my $ENQUEUE = slurp("$ROOT/redis/lib.lua") . "\nlocal function enqueue()\n"
    . slurp("$ROOT/redis/execution_enqueue.lua") . "\nend\nreturn enqueue()\n";

$t->start_redis;
$t->ctl('project', 'create', 'demo');

my $seq = 0;

sub enqueue {
    my ($code, %o) = @_;
    my $name = "w$$-" . ++$seq;
    my $id = sprintf('exec_%012x%012x', $$, $seq);

    $t->redis('HSET', "am:{demo}:automation:$name", automation_name => $name,
        code => $code, runtime => $o{runtime} // 'python', description => '',
        timeout_ms => $o{timeout_ms} // '', webhook => '',
        created_at => '2026-01-01T00:00:00Z',
        updated_at => '2026-01-01T00:00:00Z');
    my $r = $t->redis('EVAL', $ENQUEUE, 2, 'am:{demo}:project', 'am:runs',
        'am:{demo}:', 'demo', $name, $id, 'start', 3600, '', "d$id",
        '', '', '', '', '', '');
    die "enqueue $name: @$r\n" unless $r->[0] eq 'ok';
    return $id;
}

sub record {
    my %h = @{ $t->redis('HGETALL', "am:{demo}:execution:$_[0]") };
    return \%h;
}

sub wait_done {
    my ($id) = @_;
    $t->wait_for(sub { (record($id)->{status} // '') =~ /^(success|error|timed_out)$/ },
        30, "execution $id");
    return record($id);
}

sub run {
    my $rec = wait_done(enqueue(@_));
    $rec->{json} = eval { $JSON->decode($rec->{output} // 'null') };
    return $rec;
}

sub start_worker {
    my ($name, @opt) = @_;
    $t->spawn(name => $name, cmd => [ $W, '--redis', $t->redis_addr,
        '--name', $name, '--concurrency', 4, @opt ]);
    ok($t->wait_for(sub { ($t->proc_log($name) // '') =~ /started: redis/ },
        10, "$name start"), "worker $name starts");
}

sub stop_worker {
    my ($name) = @_;
    $t->kill_proc($name, 'TERM');
    is($t->wait_proc($name, 15), 0, "worker $name exits 0 on SIGTERM");
}

# the pids of the warm parents the worker said were ready, oldest first
sub parents {
    my ($name) = @_;
    my @pids = ($t->proc_log($name) // '') =~ /python warm parent (\d+) ready/g;
    return @pids;
}

# The run was forked by the warm parent: the runner does not import ctypes,
# the warm parent does.
my $WARM = "import sys\noutput = 'ctypes' in sys.modules\n";

# What a run can tell of its confinement, with its folder written DIR (its
# name BASE, its worker's folder PARENT) and its user UID. Not compared: the command lines and initial environments of
# the processes in /proc, which are the warm parent's (a short bootstrap,
# PATH and LANG) rather than those of the programs a cold run executes.
my $PROBE = <<'PY';
import os, resource, signal, socket, sys, json
d = os.getcwd()
def norm(v):
    return json.loads(json.dumps(v).replace(d, 'DIR')
                      .replace(os.path.basename(d), 'BASE')
                      .replace(os.path.basename(os.path.dirname(d)), 'PARENT')
                      .replace(str(os.getuid()), 'UID'))
def comm(p):
    try:
        return open('/proc/%s/comm' % p).read()
    except OSError as e:
        return e.strerror
# a warm run's init is a vfork() child of the parent (its name python3)
# until it executes the sandbox, which it does once the run exists
import time
for _ in range(200):
    if comm(1).startswith('automations-san'):
        break
    time.sleep(0.01)
status = dict(l.split(':\t', 1) for l in open('/proc/self/status').read()
              .splitlines() if ':\t' in l)
limits = {n: resource.getrlimit(getattr(resource, n)) for n in
          ('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_NPROC', 'RLIMIT_NOFILE',
           'RLIMIT_FSIZE', 'RLIMIT_CORE')}
mounts = sorted(l.split()[4] + ' ' + l.split()[5].split(',')[0]
                for l in open('/proc/self/mountinfo'))
output = norm({
    'uid_is_gid': os.getuid() == os.getgid() and os.getuid() >= 2000000,
    'euid': os.geteuid() == os.getuid(), 'groups': os.getgroups(),
    'pid': os.getpid(), 'ppid': os.getppid(), 'pgrp': os.getpgrp(),
    'sid': os.getsid(0), 'host': socket.gethostname(), 'cwd': d,
    'umask': os.umask(0o77), 'env': dict(os.environ), 'argv': sys.argv,
    'path': sys.path, 'flags': str(sys.flags),
    'fds': sorted(os.listdir('/proc/self/fd')), 'limits': limits,
    'signals': [str(signal.getsignal(s)) for s in
                (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT,
                 signal.SIGTERM)],
    'status': {k: status[k].strip() for k in
               ('NoNewPrivs', 'CapEff', 'CapBnd', 'Seccomp', 'SigBlk',
                'SigIgn', 'NSpid')},
    'mounts': mounts,
    'procs': {p: comm(p) for p in os.listdir('/proc') if p.isdigit()},
    'stdin': sys.stdin.read(), 'encoding': [sys.stdin.encoding,
        sys.stdout.encoding, sys.stderr.encoding, sys.stderr.errors],
    'files': sorted(os.listdir('.')), 'tmp': os.listdir('/tmp'),
})
PY

# ------------------------------------------------------ the same confinement

start_worker('cold', '--python-warm', 'off');
my $cold = run($PROBE);
is($cold->{status}, 'success', 'cold: the probe runs') or diag(explain $cold);
is(run($WARM)->{json}, JSON::PP::false, 'cold: runs are not forked');
is_deeply([ parents('cold') ], [], 'cold: no warm parent');
stop_worker('cold');

start_worker('w');
run($WARM);
ok($t->wait_for(sub { parents('w') }, 10, 'the warm parent'),
    'the first python run starts a warm parent');
my ($parent) = parents('w');
is(run($WARM)->{json}, JSON::PP::true, 'then python runs are forked by it');

my $warm = run($PROBE);
is($warm->{status}, 'success', 'warm: the probe runs') or diag(explain $warm);
is_deeply($warm->{json}, $cold->{json},
    'warm and cold runs: the same user, limits, process group, namespaces, '
    . 'mounts, environment, signals, descriptors and processes')
    or diag(explain { warm => $warm->{json}, cold => $cold->{json} });

# ------------------------------------------------- nothing reaches the next

subtest 'a run cannot change what the next one gets' => sub {
    my $a = run(<<'PY');
import builtins, json, os, sys, threading, time
json.dumps = lambda *a, **k: '"patched"'
json.loads = None
builtins.leak = 'from the last run'
os.environ['LEAK'] = '1'
sys.modules['datallog'].core_task = None
sys.path.insert(0, '/tmp')
open('/tmp/leak', 'w').write('x')
open('/dev/shm/leak', 'w').write('x')
threading.Thread(target=time.sleep, args=(60,)).start()
output = 'changed'
PY
    is($a->{status}, 'success', 'the changing run ends')
        or diag(explain $a);
    is($a->{output}, '"patched"', 'its own json.dumps made its output');

    my $b = run(<<'PY');
import builtins, json, os, sys, threading
from datallog import core_task
@core_task
def check(seed):
    return [json.dumps({'a': 1}), json.loads('2'),
            hasattr(builtins, 'leak'), 'LEAK' in os.environ,
            '/tmp' in sys.path, os.path.exists('/tmp/leak'),
            [e for e in os.listdir('/dev/shm')
             if not os.getcwd().startswith('/dev/shm/' + e + '/')],
            threading.active_count(), 'ctypes' in sys.modules]
PY
    is($b->{status}, 'success', 'the next run ends') or diag(explain $b);
    is_deeply($b->{json},
        [ '{"a": 1}', 2, JSON::PP::false, JSON::PP::false, JSON::PP::false,
          JSON::PP::false, [], 1, JSON::PP::true ],
        'it gets json, builtins, the environment, sys.path, /tmp, /dev/shm '
        . 'and threads untouched, from the same warm parent');
    is_deeply([ parents('w') ], [ $parent ], 'the same parent all along');
};

# ------------------------------------------ outputs and errors as cold runs

subtest 'results as cold runs give them' => sub {
    my $rec = run("from datallog import core_task\n"
        . "\@core_task\ndef f(seed, input):\n    return {'seed': seed, 'n': input}\n");
    is($rec->{status}, 'success', '@core_task') or diag(explain $rec);
    is_deeply($rec->{json}, { seed => undef, n => undef }, '@core_task output');

    $rec = run("def f():\n    raise ValueError('boom')\nf()\n");
    is($rec->{status}, 'error', 'an exception');
    like($rec->{error}, qr/^exited with status 1: ValueError: boom$/,
        'the error names it');
    like($rec->{log}, qr/File "[^"]*main\.py", line 2, in f/,
        'the traceback shows the code');
    unlike($rec->{log}, qr/python_runner/, 'and not the runner');

    $rec = run("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n");
    is($rec->{error}, 'killed by signal 15', 'a signal, as a cold run');

    $rec = run("import sys\nsys.exit(3)\n");
    like($rec->{error}, qr/^exited with status 3/, 'an exit status');

    $rec = run("while True:\n    pass\n", timeout_ms => 1000);
    is($rec->{status}, 'timed_out', 'a busy loop times out');
};

# ------------------------------------------ one copy of the parent per run

# the children of pid, from /proc/PID/stat's ppid field
sub children {
    my ($pid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $text = eval { slurp($stat) } // next;
        my ($ppid) = $text =~ /\) \S (\d+) / or next;
        push @kids, $stat =~ m{/proc/(\d+)/} if $ppid == $pid;
    }
    return @kids;
}

sub exe { return readlink("/proc/$_[0]/exe") // '' }

subtest 'a confined run copies the warm parent once' => sub {
    my $id = enqueue("import time\ntime.sleep(3)\noutput = 'slept'\n");
    $t->wait_for(sub { (record($id)->{status} // '') eq 'running' }, 10,
        'the run running');
    # the supervisor executes the sandbox once the init has: until then it
    # is a vfork() child still in the parent's memory
    my @w;
    $t->wait_for(sub {
        @w = children($parent);
        my @i = @w == 1 ? children($w[0]) : ();
        return @i == 1 && children($i[0]) == 1
            && exe($w[0]) =~ m{/automations-sandbox\z}
            && exe($i[0]) =~ m{/automations-sandbox\z};
    }, 10, 'the supervisor, the init and the run');
    is(scalar @w, 1, 'the warm parent has one child: the supervisor');
    like(exe($w[0]), qr{/automations-sandbox\z},
        'which executes automations-sandbox, not a copy of the parent');
    my @i = children($w[0]);
    is(scalar @i, 1, 'the supervisor has one child: the init');
    like(exe($i[0]), qr{/automations-sandbox\z}, 'which executes it too');
    my @r = children($i[0]);
    is(scalar @r, 1, 'the init has one child: the run');
    like(exe($r[0]), qr{/python3[.0-9]*\z}, 'the one copy of the parent');
    my $rec = wait_done($id);
    is($rec->{status}, 'success', 'the run ends') or diag(explain $rec);
    is($rec->{output}, '"slept"', 'with its output');
};

# ------------------------------------------------ the parent killed mid-run

subtest 'a warm parent killed mid-run' => sub {
    my $id = enqueue("import time\ntime.sleep(5)\noutput = 'slept'\n");
    $t->wait_for(sub { (record($id)->{status} // '') eq 'running' }, 10,
        'the run running');
    sleep 0.5;
    ok(kill('KILL', $parent), "SIGKILL to the warm parent $parent");

    my $rec = wait_done($id);
    is($rec->{status}, 'error', 'the execution ends as an error');
    like($rec->{error} // '', qr/warm python parent .*died/,
        'which says the warm parent died');
    sleep 1;
    is(record($id)->{status}, 'error', 'and stays so: it is not run again');
    is($t->redis('XLEN', 'am:runs'), 0, 'its stream entry is gone');

    like($t->proc_log('w'), qr/python warm parent $parent .*runs start cold/,
        'the worker says runs start cold');
    ok($t->running('w'), 'the worker lives');

    my $next = run("output = 'next'\n");
    is($next->{json}, 'next', 'the next python run completes');

    ok($t->wait_for(sub { parents('w') >= 2 }, 15, 'a new parent'),
        'a new warm parent is started');
    my $new = (parents('w'))[-1];
    isnt($new, $parent, 'another process');
    ok($t->wait_for(sub { run($WARM)->{json} }, 15, 'warm runs again'),
        'and forks the runs again');
};

stop_worker('w');

# ------------------------------------------- unconfined: one copy as well

subtest '--no-confine: the run is the only copy, as its own user' => sub {
    start_worker('free', '--no-confine');
    my $rec = run($WARM);
    is($rec->{output}, 'true', 'python runs are forked') or diag(explain $rec);
    my ($free) = parents('free');
    ok($free, 'by the warm parent');

    my $id = enqueue("import os, time\ntime.sleep(3)\n"
        . "output = [os.getuid() == os.getgid() and os.getuid() >= 2000000,"
        . " os.getpgrp() == os.getppid()]\n");
    $t->wait_for(sub { (record($id)->{status} // '') eq 'running' }, 10,
        'the run running');
    my @w;
    $t->wait_for(sub { @w = children($free); @w == 1 && children($w[0]) }, 10,
        'the supervisor and the run');
    like(exe($w[0]), qr{/automations-sandbox\z},
        'the supervisor executes automations-sandbox');
    my @r = children($w[0]);
    is(scalar @r, 1, 'it has one child: the run');
    like(exe($r[0]), qr{/python3[.0-9]*\z}, 'the one copy of the parent');
    $rec = wait_done($id);
    is($rec->{status}, 'success', 'the run ends') or diag(explain $rec);
    is($rec->{output}, '[true,true]',
        'as a user of its own, in the supervisor\'s process group');

    $rec = run("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n");
    is($rec->{error}, 'killed by signal 15', 'a signal, as a cold run');
    $rec = run("import sys\nsys.exit(3)\n");
    like($rec->{error}, qr/^exited with status 3/, 'an exit status');
    stop_worker('free');
};

# ------------------------------------- a backlog waits for the warm parent

subtest 'a worker started with python runs queued forks them all' => sub {
    my @ids = map { enqueue($WARM) } 1 .. 6;
    start_worker('backlog');
    my @warm = map { wait_done($_) } @ids;
    is_deeply([ map { $_->{status} } @warm ], [ ('success') x 6 ],
        'the six runs end');
    is_deeply([ map { $_->{output} } @warm ], [ ('true') x 6 ],
        'each forked by the warm parent, none cold while it started');
    like($t->proc_log('backlog'), qr/python warm parent \d+ ready/,
        'which the worker started before it took runs');
    stop_worker('backlog');
};

subtest 'a worker installed under /tmp: warm runs still start' => sub {
    # a confined run gets a /tmp of its own: the sandbox is executed by a
    # descriptor opened before, not by its path (a build under /tmp)
    my $bin = $t->dir . '/bin';
    mkdir $bin or die "$bin: $!";
    for my $f (qw(automations-worker automations-sandbox automations-sandbox.so)) {
        system('cp', $t->build . "/$f", "$bin/$f") == 0 or die "cp $f";
    }
    like($bin, qr{^/tmp/}, 'the copy is under /tmp');
    local $W = "$bin/automations-worker";
    start_worker('in-tmp');
    my $r = run($WARM);
    is($r->{status}, 'success', 'a python run succeeds') or diag($r->{error});
    is($r->{output}, 'true', 'forked by the warm parent');
    stop_worker('in-tmp');
};

done_testing;
