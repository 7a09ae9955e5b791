#!/usr/bin/perl
# An automation's "preload": python module names its runs find imported
# already, because a warm python parent of their own (keyed by the set of
# names) imported them before it forked the run. The names are checked at
# create (422 for anything but distinct dotted identifiers, for the python
# runtime only), stored, shown by GET and copied into each execution. A set
# whose parent is not ready yet, cannot import a name or is killed
# mid-run never costs a run more than a cold start: its runs go to the
# plain warm parent, and a killed one fails its execution once, visibly.
# Keyed parents are bounded (--warm-max-parents) and do not carry what one
# run changes into the next.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use AmTest;
use AmTest::Api qw(finished);

my $t = AmTest->new;
my $W = $t->build . '/automations-worker';

plan skip_all => 'module, worker or CLI not built'
    unless -f $t->build . '/ngx_http_automations_module.so'
        && -x $t->build . '/automationsctl' && -x $W;

my $JSON = JSON::PP->new->canonical->allow_nonref;
my $API = '/automations/v1/';

$t->start_redis;
$t->ctl('project', 'create', 'demo');
my $KEY = $t->apikey('demo', 'read write run');

$t->write_nginx(<<'EOF');
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

        location /automations/v1/ {
            automations_api;
        }
    }
}
EOF
$t->start_nginx;

sub create {
    my (%body) = @_;
    return $t->api($KEY, POST => $API,
        body => $JSON->encode({ override_existing => JSON::PP::true, %body }));
}

# ------------------------------------------------------------------- the API

# What a run tells of its modules: which of NAMES were imported before its
# code ran (the runner imports none of them itself).
sub probe {
    my (@names) = @_;
    return "import sys\n"
        . "output = [m in sys.modules for m in "
        . $JSON->encode(\@names) . "]\n";
}

my @SET = ('xml.dom.minidom', 'decimal');

subtest 'create with preload: stored, shown, refused for sh' => sub {
    my $r = create(automation_name => 'pre', code => probe(@SET),
        preload => \@SET);
    is($r->{status}, 200, 'created') or diag($r->{body});

    $r = $t->api($KEY, GET => "${API}pre");
    is_deeply($r->{json}{preload}, \@SET, 'GET shows preload as given');
    is_deeply($JSON->decode($t->redis('HGET', 'am:{demo}:automation:pre',
        'preload')), \@SET, 'the automation hash holds it as JSON');

    $r = create(automation_name => 'none', code => "output = 1\n",
        preload => undef);
    is($r->{status}, 200, 'preload null is as absent');
    is($t->api($KEY, GET => "${API}none")->{json}{preload}, undef,
        'GET shows null without one');
};

subtest 'bad preloads: 422, nothing written' => sub {
    my @long = ('m' x 129);
    my @many = map { "m$_" } 1 .. 17;
    my @cases = (
        [ 'sh runtime', { runtime => 'sh', preload => ['decimal'] },
          qr/python runtime only/ ],
        [ 'a string', { preload => 'decimal' }, qr/^preload must be an array/ ],
        [ 'an object', { preload => { decimal => 1 } }, qr/^preload must be/ ],
        [ 'a number', { preload => [1] }, qr/^preload must be an array/ ],
        [ 'null in it', { preload => [undef] }, qr/^preload must be an array/ ],
        [ 'a nested array', { preload => [['decimal']] }, qr/^preload must/ ],
        [ 'a shell command', { preload => ['os; rm -rf /'] },
          qr/^preload has an invalid module name/ ],
        [ 'a path', { preload => ['../x'] }, qr/invalid module name/ ],
        [ 'a slash', { preload => ['xml/dom'] }, qr/invalid module name/ ],
        [ 'an expression', { preload => ['__import__("os")'] },
          qr/invalid module name/ ],
        [ 'empty', { preload => [''] }, qr/invalid module name/ ],
        [ 'a leading dot', { preload => ['.decimal'] }, qr/invalid module/ ],
        [ 'two dots', { preload => ['xml..dom'] }, qr/invalid module name/ ],
        [ 'a trailing dot', { preload => ['xml.'] }, qr/invalid module name/ ],
        [ 'a leading digit', { preload => ['1xml'] }, qr/invalid module/ ],
        [ 'a space', { preload => ['xml dom'] }, qr/invalid module name/ ],
        [ 'a NUL', { preload => ["xml\0dom"] }, qr/must not contain \\u0000/ ],
        [ 'non-ASCII', { preload => ["\x{3b1}lpha"] }, qr/invalid module/ ],
        [ '__main__', { preload => ['json.__main__'] },
          qr/invalid module name/ ],
        [ 'too long', { preload => \@long }, qr/invalid module name/ ],
        [ 'too many', { preload => \@many }, qr/more than 16 module names/ ],
        [ 'a duplicate', { preload => [ 'decimal', 'json', 'decimal' ] },
          qr/names a module twice/ ],
    );
    my $before = $t->redis_snapshot;

    for my $c (@cases) {
        my ($what, $extra, $detail) = @$c;
        my $r = create(automation_name => 'bad', code => "output = 1\n",
            %$extra);
        is($r->{status}, 422, "$what: 422");
        like($r->{json}{detail} // '', $detail, "$what: says why");
    }

    is($t->redis_snapshot, $before, 'Redis unchanged');

    my $r = create(automation_name => 'edge', code => "output = 1\n",
        preload => [ @many[0 .. 15] ]);
    is($r->{status}, 200, '16 names are fine');
    $r = create(automation_name => 'edge', code => "output = 1\n",
        preload => [ 'm' x 128, '_x.Y_1.z' ]);
    is($r->{status}, 200, 'a 128-byte name and underscores are fine');
};

if ($> != 0) {
    diag('the runs need a root worker, as warm.t: not run');
    done_testing;
    exit 0;
}

# ------------------------------------------------------------------ the runs

sub enqueue {
    my ($name) = @_;
    my $r = $t->api($KEY, POST => "${API}$name/run",
        headers => { Prefer => 'respond-async' }, body => '{}');
    die "run $name: $r->{status} $r->{body}\n" unless $r->{status} == 202;
    return $r->{json}{execution_id};
}

sub run {
    my ($name) = @_;
    my $rec = $t->wait_done('demo', enqueue($name), 30);
    $rec->{json} = eval { $JSON->decode($rec->{output} // 'null') };
    return $rec;
}

# runs NAME until its output is WANT (a keyed parent may not be ready for
# the first runs); whether it came, and every run succeeded on the way
sub run_until {
    my ($name, $want, $seconds) = @_;
    my ($ok, $all) = (0, 1);
    my $end = time + $seconds;

    while (time < $end) {
        my $rec = run($name);
        $all &&= $rec->{status} eq 'success';
        diag(explain $rec) if $rec->{status} ne 'success';
        if ($JSON->encode($rec->{json}) eq $JSON->encode($want)) {
            $ok = 1;
            last;
        }
        sleep 0.2;
    }
    return ($ok, $all);
}

sub start_worker {
    my ($name, @opt) = @_;
    $t->start_worker($name, '--concurrency', 4, @opt);
    ok($t->wait_for(sub { ($t->proc_log($name) // '') =~ /started: redis/ },
        10, "$name start"), "worker $name starts");
}

sub stop_worker {
    my ($name) = @_;
    $t->kill_proc($name, 'TERM');
    is($t->wait_proc($name, 15), 0, "worker $name exits 0 on SIGTERM");
}

# the pids of the keyed parents of KEY the worker said were ready
sub keyed {
    my ($name, $key) = @_;
    return ($t->proc_log($name) // '')
        =~ /python warm parent (\d+) ready \(preload \Q$key\E\)/g;
}

# the worker's children that are warm parents (their bootstrap's command
# line: cold runs are the sandbox's or python_runner.py's)
sub parent_count {
    my ($name) = @_;
    my $pid = $t->pid($name);
    my $n = 0;

    for my $dir (glob '/proc/[0-9]*') {
        open my $fh, '<', "$dir/stat" or next;
        my $stat = <$fh> // '';
        close $fh;
        next unless $stat =~ /\) \S+ (\d+)/ && $1 == $pid;
        open $fh, '<', "$dir/cmdline" or next;
        my $cmd = do { local $/; <$fh> } // '';
        close $fh;
        $n++ if $cmd =~ /^\/usr\/bin\/python3\0-I\0-c\0import socket/;
    }
    return $n;
}

my $KEYSTR = join ',', sort @SET;

start_worker('w');

subtest 'a keyed parent serves the runs of its set' => sub {
    create(automation_name => 'plain', code => probe(@SET));
    my ($ok, $all) = run_until('plain', [ JSON::PP::false, JSON::PP::false ],
        20);
    ok($ok && $all, 'without preload, runs find neither module imported');
    ok($t->wait_for(sub { ($t->proc_log('w') // '') =~ /warm parent \d+ ready$/m },
        10, 'the plain parent'), 'the plain warm parent is ready');

    ($ok, $all) = run_until('pre', [ JSON::PP::true, JSON::PP::true ], 20);
    ok($ok, 'with preload, a run finds both imported before its code ran');
    ok($all, 'every run succeeded, also before the keyed parent was ready');
    is(scalar(() = keyed('w', $KEYSTR)), 1,
        "the worker says its parent for $KEYSTR is ready, once");

    my $rec = run('pre');
    is_deeply($rec->{json}, [ JSON::PP::true, JSON::PP::true ],
        'the next run too');
    is_deeply(run('plain')->{json}, [ JSON::PP::false, JSON::PP::false ],
        'and runs without preload still get the plain parent');
};

subtest 'a run cannot change what the next one of its set gets' => sub {
    create(automation_name => 'spoil', preload => \@SET, code => <<'PY');
import decimal, sys
import xml.dom.minidom as minidom
decimal.getcontext().prec = 3
decimal.Decimal = None
minidom.parseString = None
sys.modules['json'].dumps = lambda *a, **k: '"spoiled"'
output = 'ignored'
PY
    create(automation_name => 'check', preload => \@SET, code => <<'PY');
import sys
pre = [m in sys.modules for m in ('decimal', 'xml.dom.minidom')]
import decimal, json
import xml.dom.minidom as minidom
output = pre + [decimal.getcontext().prec,
                str(decimal.Decimal('1') / decimal.Decimal('3'))[:8],
                minidom.parseString('<a/>').documentElement.tagName,
                json.dumps(1)]
PY
    my ($ok) = run_until('check',
        [ JSON::PP::true, JSON::PP::true, 28, '0.333333', 'a', '1' ], 20);
    ok($ok, 'the checking run is served by the keyed parent');

    my $a = run('spoil');
    is($a->{status}, 'success', 'the spoiling run ends');
    is($a->{json}, 'spoiled', 'its own json.dumps made its output');

    my $b = run('check');
    is_deeply($b->{json},
        [ JSON::PP::true, JSON::PP::true, 28, '0.333333', 'a', '1' ],
        'the next run of the set gets decimal, minidom and json untouched')
        or diag(explain $b);
    is(scalar(() = keyed('w', $KEYSTR)), 1, 'from the same keyed parent');
};

subtest 'an execution keeps the preload it was started with' => sub {
    create(automation_name => 'snap', preload => ['decimal'],
        code => probe('decimal', 'fractions'));
    my $id = enqueue('snap');
    is($t->execution('demo', $id)->{preload}, '["decimal"]',
        'the execution record holds the preload');
    $t->wait_done('demo', $id, 30);

    create(automation_name => 'snap', preload => ['fractions'],
        code => probe('decimal', 'fractions'));
    my $r = $t->api($KEY, POST => "${API}snap/executions/$id/retry",
        body => '{}');
    is($r->{status}, 202, 'retried') or diag($r->{body});
    my $again = $r->{json}{execution_id} // '';
    is($t->execution('demo', $again)->{preload}, '["decimal"]',
        'a retry runs the first preload, not the automation\'s new one');
    is($t->wait_done('demo', $again, 30)->{status}, 'success',
        'and succeeds');
};

subtest 'a preload that cannot be imported' => sub {
    create(automation_name => 'missing', code => "output = 'fine'\n",
        preload => [ 'no_such_module_here', 'decimal' ]);

    for my $i (1 .. 4) {
        my $rec = run('missing');
        is($rec->{status}, 'success', "run $i succeeds");
        is($rec->{json}, 'fine', "run $i output");
        sleep 0.3;
    }

    my $line = qr/python warm parent \d+ \(preload decimal,no_such_module_here\) cannot import no_such_module_here \(ModuleNotFoundError\): runs of that preload go to the plain parent for 300 s/;
    ok($t->wait_for(sub { ($t->proc_log('w') // '') =~ $line }, 10,
        'the unfit line'), 'the worker logs the set as unfit')
        or diag($t->proc_log('w'));
    is(scalar(() = ($t->proc_log('w') // '') =~ /$line/g), 1,
        'once, not at each run');
    ok($t->running('w'), 'the worker lives');
};

subtest 'a keyed parent killed mid-run' => sub {
    my ($parent) = keyed('w', $KEYSTR);
    create(automation_name => 'sleep', preload => \@SET, code => <<'PY');
import sys, time
if 'decimal' not in sys.modules:
    raise SystemExit('not forked by the keyed parent')
time.sleep(5)
output = 'slept'
PY
    my $id = enqueue('sleep');
    $t->wait_for(sub { ($t->execution('demo', $id)->{status} // '') eq 'running' },
        10, 'the run running');
    sleep 0.5;
    ok(kill('KILL', $parent), "SIGKILL to the keyed parent $parent");

    my $rec = $t->wait_done('demo', $id, 30);
    is($rec->{status}, 'error', 'the execution ends as an error');
    like($rec->{error} // '', qr/warm python parent .*died/,
        'which says the warm parent died');
    sleep 1;
    is($t->execution('demo', $id)->{status}, 'error',
        'and stays so: it is not run again');
    is($t->redis('XPENDING', 'am:runs', 'workers')->[0], 0,
        'its stream entry is acknowledged');
    like($t->proc_log('w'),
        qr/python warm parent $parent \(preload \Q$KEYSTR\E\) .*runs of that preload go to the plain parent/,
        'the worker says where the set goes meanwhile');

    my ($ok, $all) = run_until('pre', [ JSON::PP::true, JSON::PP::true ], 20);
    ok($all, 'the next runs of the set succeed');
    ok($ok, 'and a new keyed parent serves them again');
    my @pids = keyed('w', $KEYSTR);
    is(scalar(@pids), 2, 'a second parent of the set');
    isnt($pids[-1], $parent, 'another process');
};

stop_worker('w');

subtest 'keyed parents are bounded' => sub {
    start_worker('few', '--warm-max-parents', 2);
    my @mods = qw(fractions statistics csv difflib textwrap);
    for my $m (@mods) {
        create(automation_name => "one-$m", preload => [$m],
            code => "import sys\noutput = '$m' in sys.modules\n");
    }

    my ($most, $all, $runs) = (0, 1, 0);
    for my $round (1 .. 4) {
        my @ids = map { enqueue("one-$_") } @mods;
        for my $id (@ids) {
            $t->wait_for(sub {
                my $n = parent_count('few');
                $most = $n if $n > $most;
                finished($t->execution('demo', $id)->{status});
            }, 30, "execution $id");
            $all &&= $t->execution('demo', $id)->{status} eq 'success';
            $runs++;
        }
    }

    is($runs, 20, 'twenty runs of five sets');
    ok($all, 'all succeeded');
    cmp_ok($most, '<=', 3, 'never more than 2 keyed parents and the plain '
        . 'one at once');
    cmp_ok($most, '>=', 2, 'keyed parents were started');
    like($t->proc_log('few'), qr/\(preload \w+\) stops: the least recently used/,
        'the least recently used ones are stopped');
    stop_worker('few');
};

subtest 'a parent stopped for another set finishes its runs first' => sub {
    start_worker('one', '--warm-max-parents', 1);
    create(automation_name => 'frac-sleep', preload => ['fractions'],
        code => <<'PY');
import sys, time
if 'fractions' not in sys.modules:
    raise SystemExit('not forked by the keyed parent')
time.sleep(3)
output = 'slept'
PY
    my ($ok) = run_until('one-fractions', JSON::PP::true, 20);
    ok($ok, 'the parent of fractions serves its set');

    my $id = enqueue('frac-sleep');
    $t->wait_for(sub { ($t->execution('demo', $id)->{status} // '') eq 'running' },
        10, 'the run running');
    sleep 0.5;

    is(run('one-csv')->{status}, 'success', 'a run of another set');
    like($t->proc_log('one'),
        qr/\(preload fractions\) stops: the least recently used/,
        'which stops the parent of fractions');

    my $rec = $t->wait_done('demo', $id, 30);
    is($rec->{status}, 'success', 'its run in flight still succeeds')
        or diag(explain $rec);
    is($rec->{output}, '"slept"', 'with its output');

    ($ok) = run_until('one-csv', JSON::PP::true, 20);
    ok($ok, 'then the other set gets its parent');
    stop_worker('one');
};

# Runs of NAME, N of them: their outputs, and whether all succeeded.
sub runs_of {
    my ($name, $n) = @_;
    my (@out, $all);
    $all = 1;
    for (1 .. $n) {
        my $rec = run($name);
        $all &&= $rec->{status} eq 'success';
        push @out, $JSON->encode($rec->{json});
        sleep 0.3;
    }
    return (\@out, $all);
}

subtest 'modules that act when imported are never preloaded' => sub {
    start_worker('egg');
    create(automation_name => 'egg', preload => [ 'antigravity', 'this' ],
        code => probe('antigravity', 'this', 'webbrowser'));
    my ($out, $all) = runs_of('egg', 6);
    ok($all, 'the runs succeed');
    is_deeply($out, [ ('[false,false,false]') x 6 ],
        'none finds them imported: no parent imported them');
    unlike($t->proc_log('egg') // '', qr/preload antigravity/,
        'no parent was started for them');
    stop_worker('egg');
};

subtest '--warm-preload-allow: only the packages it names' => sub {
    start_worker('allow', '--warm-preload-allow', 'xml, json');
    create(automation_name => 'xmlonly', preload => ['xml.dom.minidom'],
        code => probe('xml.dom.minidom'));
    my ($ok, $all) = run_until('xmlonly', [ JSON::PP::true ], 20);
    ok($ok && $all, 'xml.dom.minidom, in an allowed package: preloaded');

    my ($out);
    ($out, $all) = runs_of('pre', 6);
    ok($all, 'runs naming decimal too succeed');
    is_deeply($out, [ ('[false,false]') x 6 ],
        'but find nothing preloaded: decimal is not allowed, so neither is the set');
    is(scalar(() = keyed('allow', $KEYSTR)), 0, 'no parent for that set');
    stop_worker('allow');
};

subtest 'a keyed parent over --warm-parent-memory-mb' => sub {
    start_worker('small', '--warm-parent-memory-mb', 1);
    create(automation_name => 'heavy', preload => ['decimal'],
        code => "output = 'ran'\n");

    my $line = qr/python warm parent \d+ \(preload decimal\) uses \d+ MiB once its imports are done, over --warm-parent-memory-mb 1: runs of that preload go to the plain parent for 300 s/;
    my $seen = $t->wait_for(sub {
        is(run('heavy')->{status}, 'success', 'a run of the set succeeds');
        ($t->proc_log('small') // '') =~ $line;
    }, 20, 'the memory line');
    ok($seen, 'the worker stops the parent and says why');
    is(scalar(() = keyed('small', 'decimal')), 0, 'it never served a run');
    stop_worker('small');
};

done_testing;
