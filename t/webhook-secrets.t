#!/usr/bin/perl
# Webhook signing secrets as a receiver sees them: every delivery is checked
# with the official Standard Webhooks library (npm "standardwebhooks",
# installed into the test's folder), across a rotation whose replaced secret
# signs too for an overlap and then stops, an imported secret, and the
# checks on what `automationsctl webhook secret` accepts. Secrets never show
# in the worker's log, the execution records or the CLI's messages. Runs
# are enqueued with redis/execution_enqueue.lua directly, as the gateway
# does.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);

use AmTest;

my $t = AmTest->new;
my $W = $t->build . '/automations-worker';

plan skip_all => "$W not built" unless -x $W;
plan skip_all => 'node and npm are needed (Debian packages nodejs, npm)'
    unless grep({ -x "$_/node" } split /:/, $ENV{PATH})
        && grep({ -x "$_/npm" } split /:/, $ENV{PATH});

my $NPM = $t->dir . '/npm';
my ($code, $out, $err) = $t->_run_capture([ 'npm', 'install', '--no-save',
    '--no-audit', '--no-fund', '--prefix', $NPM, 'standardwebhooks@1' ],
    env => { npm_config_update_notifier => 'false' });
plan skip_all => "npm install standardwebhooks failed: $err" if $code != 0;

# node verify.js REQUEST.json SECRET: prints "verified" or why not
my $VERIFY = $t->write_file('verify.js', <<'JS');
const fs = require('fs');
const { Webhook } = require('standardwebhooks');
const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
try {
    new Webhook(process.argv[3]).verify(req.body, req.headers);
    console.log('verified');
} catch (e) {
    console.log(e.message);
    process.exit(1);
}
JS

my $JSON = JSON::PP->new->canonical;
my $ROOT = $AmTest::ROOT;
my $ENQUEUE = $t->read_file("$ROOT/redis/lib.lua") . "\n"
            . $t->read_file("$ROOT/redis/execution_enqueue.lua");
my @STDERR;    # every message of the CLI, checked for secrets at the end

$t->start_redis;
$t->start_receiver(status => 200);
$t->ctl('project', 'create', 'demo');
$t->redis('HSET', 'am:{demo}:automation:echo', automation_name => 'echo',
    code => q(cat >/dev/null; echo '{"ok":true}'), runtime => 'sh',
    description => '', timeout_ms => '', webhook => '',
    created_at => '2026-01-01T00:00:00Z', updated_at => '2026-01-01T00:00:00Z');
$t->redis('ZADD', 'am:{demo}:automations', 0, 'echo');
$t->start_worker('w1', '--allow-private-webhooks');

# automationsctl, its stderr kept; returns ($code, $out, $err)
sub ctl {
    my @r = $t->ctl(@_);
    push @STDERR, $r[2];
    return @r;
}

my $seq = 0;

# A run of echo with a webhook; returns the request the receiver got.
sub delivery {
    my $id = sprintf('exec_%08x%08x%08x', $$, int(time), ++$seq);
    my $r = $t->redis('EVAL', $ENQUEUE, 2, 'am:{demo}:project', 'am:runs',
        'am:{demo}:', 'demo', 'echo', $id, 'start', 3600, '', "d$id", '', '',
        '', $t->receiver_url('/hook'), '', '');
    die "enqueue: @$r\n" unless $r->[0] eq 'ok';

    $t->wait_for(sub { @{ $t->received_for($id) } }, 15, "delivery of $id");
    return $t->received_for($id)->[0];
}

# What the library says of a request with a secret: "verified", or why not.
sub verify {
    my ($req, $secret) = @_;
    my $file = $t->write_file("req$req->{seq}.json", $JSON->encode(
        { body => $req->{body}, headers => $req->{headers} }));
    my ($c, $o) = $t->_run_capture([ 'node', $VERIFY, $file, $secret ],
        env => { NODE_PATH => "$NPM/node_modules" });
    chomp $o;
    return $o;
}

sub signatures {
    return scalar split / /, $_[0]{headers}{'webhook-signature'} // '';
}

sub new_secret {
    my ($bytes) = @_;
    return 'whsec_' . encode_base64(join('', map { chr int rand 256 }
        1 .. $bytes), '');
}

sub project { return $t->hgetall('am:{demo}:project') }

my $UNTIL = qr/previous secret too until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/;
my (@secrets, $old, $new);

subtest 'a delivery verifies with the project secret' => sub {
    ($code, $old) = ctl('webhook', 'secret', 'demo');
    chomp $old;
    push @secrets, $old;
    is($code, 0, 'secret created');

    my $req = delivery();
    is(signatures($req), 1, 'one signature');
    is(verify($req, $old), 'verified', 'the library verifies it');
    is(verify($req, new_secret(24)), 'No matching signature found',
       'another secret does not');
    is(verify({ %$req, body => "$req->{body} " }, $old),
       'No matching signature found', 'a changed body does not');
};

subtest 'rotate: both signatures during the overlap' => sub {
    ($code, $new, $err) = ctl('webhook', 'secret', 'demo', '--rotate');
    chomp $new;
    push @secrets, $new;
    is($code, 0, 'exit 0');
    like($new, qr{^whsec_[A-Za-z0-9+/]{32}$}, 'prints the new secret');
    isnt($new, $old, 'a new one');
    like($err, $UNTIL, 'says until when the old one signs');

    my $p = project();
    is($p->{webhook_secret}, $new, 'the new secret in force');
    is($p->{webhook_secret_previous}, $old, 'the old one kept');
    my $left = $p->{webhook_secret_previous_until} / 1000 - time;
    ok($left > 24 * 3600 - 60 && $left <= 24 * 3600,
       'for 24 hours by default') or diag("$left s left");

    my $req = delivery();
    my @sig = split / /, $req->{headers}{'webhook-signature'};
    is(scalar @sig, 2, 'two signatures');
    like($_, qr{^v1,[A-Za-z0-9+/]{43}=$}, 'v1,<base64>') for @sig;
    is(verify($req, $new), 'verified', 'verifies with the new secret');
    is(verify($req, $old), 'verified', 'and with the old one');

    ($code, $out, $err) = ctl('webhook', 'secret', 'demo');
    is($out, "$new\n", 'webhook secret shows the new one');
    like($err, $UNTIL, 'and the overlap');
};

subtest 'after the overlap: the new secret only' => sub {
    my $older = $new;
    ($code, $new, $err) = ctl('webhook', 'secret', 'demo', '--rotate',
        '--overlap', '2s');
    chomp $new;
    push @secrets, $new;
    is($code, 0, 'rotate with --overlap 2s');
    is(project()->{webhook_secret_previous}, $older,
       'the secret replaced now is the previous one: the first is gone');

    my $until = project()->{webhook_secret_previous_until} / 1000;
    ok(abs($until - time - 2) < 1, 'for 2 seconds');
    sleep($until - time + 0.3) if $until > time;

    my $req = delivery();
    is(signatures($req), 1, 'one signature');
    is(verify($req, $new), 'verified', 'verifies with the new secret');
    is(verify($req, $older), 'No matching signature found',
       'not with the replaced one');

    ($code, $out, $err) = ctl('webhook', 'secret', 'demo');
    is($err, '', 'no overlap mentioned any more');
    ok(!exists project()->{webhook_secret_previous},
       'the expired secret is dropped from the project');
};

subtest '--overlap 0: the replaced secret stops at once' => sub {
    my $older = $new;
    ($code, $new, $err) = ctl('webhook', 'secret', 'demo', '--rotate',
        '--overlap', '0');
    chomp $new;
    push @secrets, $new;
    is("$code $err", '0 ', 'exit 0, no overlap mentioned');
    ok(!exists project()->{webhook_secret_previous}, 'nothing kept');

    my $req = delivery();
    is(signatures($req), 1, 'one signature');
    is(verify($req, $new), 'verified', 'verifies with the new secret');
    is(verify($req, $older), 'No matching signature found',
       'not with the replaced one');
};

subtest 'set: an imported secret signs' => sub {
    my $older = $new;
    my $imported = new_secret(64);
    push @secrets, $imported;
    like($imported, qr/==$/, '64 bytes: base64 with its padding');

    ($code, $out, $err) = ctl('webhook', 'secret', 'set', 'demo', $imported);
    is("$code $out", '0 ', 'exit 0, nothing printed');
    like($err, $UNTIL, 'the replaced secret overlaps, 24 h by default');
    is(project()->{webhook_secret}, $imported, 'in force');

    my $req = delivery();
    is(signatures($req), 2, 'two signatures');
    is(verify($req, $imported), 'verified', 'verifies with the imported one');
    is(verify($req, $older), 'verified', 'and with the replaced one');

    my $piped = new_secret(24);
    push @secrets, $piped;
    ($code, $out) = ctl({ stdin => "$piped\n" }, 'webhook', 'secret', 'set',
        'demo', '-', '--overlap', '0');
    is($code, 0, '"-" reads the secret from stdin');
    is(project()->{webhook_secret}, $piped, 'in force');
    ok(!exists project()->{webhook_secret_previous}, '--overlap 0 with set');
    is(verify(delivery(), $piped), 'verified', 'and signs');

    ($code, $out, $err) = ctl('webhook', 'secret', 'set', 'demo', $piped);
    is("$code $err", '0 ', 'setting the secret in force changes nothing');
};

subtest 'what webhook secret refuses' => sub {
    my $before = $t->redis_snapshot;
    my $b64 = sub { encode_base64(join('', map { chr int rand 256 }
        1 .. $_[0]), '') };

    my %bad = (
        'no whsec_ prefix'      => $b64->(32),
        'whsec_ alone'          => 'whsec_',
        '23 bytes'              => 'whsec_' . $b64->(23),
        '65 bytes'              => 'whsec_' . $b64->(65),
        'padding left out'      => 'whsec_' . ($b64->(25) =~ s/=+$//r),
        'a character not base64' => 'whsec_' . substr($b64->(30), 0, 39)
                                     . '*',
        'base64url characters'  => 'whsec_' . ('-_' x 20),
        'a space'               => 'whsec_' . substr($b64->(30), 0, 36)
                                     . ' AAA',
    );
    for my $case (sort keys %bad) {
        my $s = $bad{$case};
        ($code, $out, $err) = ctl('webhook', 'secret', 'set', 'demo', $s);
        is($code, 2, "$case: exit 2");
        like($err, qr/invalid webhook secret: use whsec_ and the base64/,
             "$case: says what a secret looks like");
        unlike($err, qr/\Q$s\E/, "$case: without repeating it")
            if length $s > 6;
    }

    ($code, $out, $err) = ctl('webhook', 'secret', 'demo', '--overlap', '1h');
    is($code, 2, '--overlap without --rotate: exit 2');
    like($err, qr/--overlap with --rotate or set/, 'says so');
    for my $o ('5x', '1.5h', '-1h', '31d', 'h') {
        ($code, $out, $err) = ctl('webhook', 'secret', 'demo', '--rotate',
            '--overlap', $o);
        is($code, 2, "--overlap $o: exit 2");
        like($err, qr/invalid --overlap "\Q$o\E"/, "--overlap $o: message");
    }
    ($code, $out, $err) = ctl('webhook', 'secret', 'set', 'demo');
    is($code, 2, 'set without a secret: exit 2');
    ($code, $out, $err) = ctl('webhook', 'dead', '--rotate');
    is($code, 2, '--rotate on webhook dead: exit 2');
    is($t->redis_snapshot, $before, 'nothing changed in Redis');

    ($code, $out, $err) = ctl('webhook', 'secret', 'set', 'nope',
        new_secret(24));
    is($code, 1, 'a missing project: exit 1');
    like($err, qr/project nope not found/, 'says so');
};

subtest 'secrets stay out of logs and execution records' => sub {
    my @ids = map { /execution:([^:]+)$/ ? $1 : () }
        @{ $t->redis('KEYS', 'am:{demo}:execution:*') };
    is(scalar @ids, 6, 'six executions');

    my $records = join "\n",
        map { %{ $t->execution('demo', $_) } } @ids;
    my $log = $t->proc_log('w1');
    my $cli = join "\n", @STDERR;
    my $bodies = join "\n", map { $_->{body} } @{ $t->received };

    for my $s (@secrets) {
        my $key = substr($s, 6);
        unlike($log, qr/\Q$key\E/, 'not in the worker log');
        unlike($records, qr/\Q$key\E/, 'not in the execution records');
        unlike($cli, qr/\Q$key\E/, 'not in the CLI messages');
        unlike($bodies, qr/\Q$key\E/, 'not in the webhook bodies');
    }
};

$t->stop_all;
done_testing;
