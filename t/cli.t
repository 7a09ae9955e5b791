#!/usr/bin/perl
# automationsctl, the admin CLI: projects, API keys, token pairs and dev
# JWTs, with what each command prints, its exit code, and what it leaves in
# Redis (docs/data-model.md).

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha512);
use JSON::PP;

use AmTest;

my $t = AmTest->new;
my $CTL = $t->build . '/automationsctl';

plan skip_all => "$CTL not built" unless -x $CTL;

$t->start_redis;

my $HEX16 = qr/[0-9a-f]{16}/;
my $HEX64 = qr/[0-9a-f]{64}/;
my $TIME  = qr/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/;

sub keys_of {
    return [ sort @{ $t->redis('KEYS', $_[0]) } ];
}

# Runs the CLI and checks its exit code and the message on stderr.
sub fails {
    my ($want, $msg, $name, @args) = @_;
    my ($code, $out, $err) = $t->ctl(@args);

    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($code, $want, "$name: exit code $want");
    like($err, qr/^automationsctl: .*$msg/m, "$name: message");
    return ($out, $err);
}

subtest 'help and usage errors' => sub {
    for my $arg ('help', '--help', '-h') {
        my ($code, $out) = $t->ctl($arg);
        is($code, 0, "$arg: exit 0");
        like($out, qr/^usage: automationsctl/, "$arg: usage on stdout");
    }

    my ($code, $out, $err) = $t->ctl('frobnicate');
    is($code, 2, 'unknown command: exit 2');
    is($out, '', 'unknown command: nothing on stdout');
    like($err, qr/unknown command "frobnicate".*usage:/s,
        'unknown command: message and usage on stderr');

    fails(2, 'unknown option "--frob"', 'unknown global option',
        '--frob', 'x', 'project', 'list');
    fails(2, 'unknown option "--frob"', 'unknown command option',
        'apikey', 'create', 'demo', '--frob', 'x');
    fails(2, 'project: missing subcommand', 'project without subcommand',
        'project');
    fails(2, 'project: unknown subcommand "frob"', 'unknown subcommand',
        'project', 'frob');
    fails(2, 'apikey create: wrong number of arguments',
        'apikey create without project', 'apikey', 'create');
    fails(2, 'too many arguments', 'project create with two names',
        'project', 'create', 'a', 'b');
    fails(2, 'option --scopes needs a value', 'option without value',
        'apikey', 'create', 'demo', '--scopes');
    fails(2, 'go with apikey create only', '--scopes on apikey list',
        'apikey', 'list', 'demo', '--scopes', 'read');
    fails(2, 'invalid prefix', 'prefix with a brace',
        '--prefix', 'am{', 'project', 'list');
    fails(2, 'invalid database number', 'bad --db',
        '--db', 'two', 'project', 'list');
    is_deeply(keys_of('*'), [], 'usage errors stored nothing');
};

subtest 'every command answers --help with its own usage' => sub {
    my $usage = $t->ctl('--help');
    my @cmds = $usage =~ /^  ((?:project|apikey|tokenpair|jwt|webhook) \S+(?: set)?)/mg;
    is(scalar @cmds, 14, 'the usage lists 14 commands') or diag($usage);

    # a closed port: help needs no Redis
    my @closed = ('--redis', '127.0.0.1:1');
    for my $cmd (@cmds) {
        my @words = split / /, $cmd;
        my ($code, $out, $err) = $t->ctl(@closed, @words, '--help');
        is("$code $err", '0 ', "$cmd --help: exit 0, nothing on stderr");
        like($out, qr/^usage: automationsctl \[OPTIONS\] \Q$cmd\E /,
            "$cmd --help: its own usage");
        like($out, qr/\n\n[A-Z].+\.\n/s, "$cmd --help: says what it does");
        is(($t->ctl(@closed, 'help', @words))[1], $out, "help $cmd: the same");
        is(($t->ctl(@closed, @words, '-h'))[1], $out, "$cmd -h: the same");
    }

    my ($code, $out) = $t->ctl('apikey', '--help');
    is($code, 0, 'apikey --help: exit 0');
    is_deeply([ $out =~ /^  (apikey \w+)/mg ],
        [ 'apikey create', 'apikey list', 'apikey revoke' ],
        'a group: the usage of each of its commands');

    ($code, $out) = $t->ctl('apikey', 'create', 'demo', '--name', 'x',
        '--help');
    like($out, qr/^usage: automationsctl \[OPTIONS\] apikey create PROJECT/,
        '--help after the arguments: the usage of the command they name');
    ($code, $out) = $t->ctl('webhook', 'secret', 'set', '--help');
    like($out, qr/^usage: .* webhook secret set PROJECT whsec_/,
        'webhook secret set --help: the usage of set, not of secret');
    is_deeply(keys_of('*'), [], '--help ran nothing');

    my ($o, $err) = fails(2, 'apikey create: wrong number of arguments',
        'a wrong command line', 'apikey', 'create');
    like($err, qr/^usage: automationsctl \[OPTIONS\] apikey create PROJECT/m,
        'and the usage of that command on stderr');
    fails(2, 'unknown command "nope"', 'help of an unknown command',
        'help', 'nope');
};

subtest 'redis address and connection errors' => sub {
    fails(1, 'redis: cannot resolve no-such-host\.invalid',
        'a host name that does not resolve', '--redis',
        'no-such-host.invalid:6379', 'project', 'list');
    fails(1, 'invalid redis address "::1:6379": an IPv6 address goes in '
        . 'brackets', 'bare IPv6 refused', '--redis', '::1:6379', 'project',
        'list');
    fails(1, 'invalid redis address', 'bad port',
        '--redis', '127.0.0.1:99999', 'project', 'list');

    my $closed = AmTest::free_port();
    fails(1, "cannot connect to redis at 127\\.0\\.0\\.1:$closed",
        'nothing listening', '--redis', "127.0.0.1:$closed", 'project', 'list');
    fails(1, 'cannot connect to redis at unix:/nonexistent',
        'missing unix socket', '--redis', 'unix:/nonexistent/redis.sock',
        'project', 'list');

    my ($code, $out) = $t->ctl('--redis', 'localhost:' . $t->redis_port,
        'project', 'list');
    is($code, 0, 'localhost is taken as 127.0.0.1');
};

subtest 'project create' => sub {
    is($t->ctl('project', 'create', 'demo'), "project=demo\n", 'prints name');

    my $p = $t->hgetall('am:{demo}:project');
    is($p->{name}, 'demo', 'project hash: name');
    like($p->{created_at}, qr/^$TIME$/, 'project hash: created_at RFC 3339');
    is($t->redis('ZSCORE', 'am:projects', 'demo'), 0, 'listed, score 0');

    fails(1, 'project demo exists', 'duplicate', 'project', 'create', 'demo');
    is($t->hgetall('am:{demo}:project')->{created_at}, $p->{created_at},
        'duplicate left the project unchanged');

    for my $bad ('a/b', '..', 'x' x 65, 'a b', 'a.b', 'é', '') {
        fails(2, 'invalid project name', "bad name '$bad'",
            'project', 'create', $bad);
    }
    is_deeply(keys_of('*'), [ 'am:projects', 'am:{demo}:project' ],
        'bad names stored nothing');
    is($t->ctl('project', 'create', 'x' x 64), 'project=' . 'x' x 64 . "\n",
        '64 characters are fine');
};

subtest 'project list' => sub {
    $t->ctl('project', 'create', $_) for qw(beta alpha Zed a-b_9);
    is($t->ctl('project', 'list'),
        join('', map { "$_\n" }
            'NAME', sort('demo', 'x' x 64, qw(beta alpha Zed a-b_9))),
        'one name per line, sorted');
};

my %key;    # label -> { id, key }

subtest 'apikey create' => sub {
    my $out = $t->ctl('apikey', 'create', 'demo');
    like($out, qr/^id=($HEX16)\nkey=(amk_demo_$HEX64)\n\z/, 'prints id, key');
    my ($id, $secret) = $out =~ /^id=(\S+)\nkey=(\S+)/;
    $key{default} = { id => $id, key => $secret };

    my $digest = sha256_hex($secret);
    is_deeply($t->hgetall("am:{demo}:apikey:$digest"), {
        id => $id, project => 'demo', scopes => 'read write run', name => '',
        created_at => $t->hgetall("am:{demo}:apikey:$digest")->{created_at},
        sha256 => $digest,
    }, 'record named by the SHA-256 of the key, fields as documented');
    like($t->hgetall("am:{demo}:apikey:$digest")->{created_at}, qr/^$TIME$/,
        'created_at RFC 3339');
    is($t->redis('HGET', 'am:{demo}:apikeys', $id), $digest, 'index id -> D');

    $out = $t->ctl('apikey', 'create', 'demo', '--scopes', 'admin run',
        '--name', 'ci bot');
    my ($id2, $secret2) = $out =~ /^id=(\S+)\nkey=(\S+)/;
    $key{ci} = { id => $id2, key => $secret2 };
    my $r = $t->hgetall('am:{demo}:apikey:' . sha256_hex($secret2));
    is($r->{scopes}, 'run admin', 'scopes in canonical order');
    is($r->{name}, 'ci bot', 'label stored');

    $out = $t->ctl('apikey', '--scopes=read', 'create', 'demo');
    my ($id3, $secret3) = $out =~ /^id=(\S+)\nkey=(\S+)/;
    $key{reader} = { id => $id3, key => $secret3 };
    is($t->hgetall('am:{demo}:apikey:' . sha256_hex($secret3))->{scopes}, 'read',
        '--scopes=VALUE, before the positionals');

    isnt($id, $id2, 'ids differ');
    isnt($secret, $secret2, 'keys differ');

    my $before = keys_of('*');
    fails(1, 'project nope not found', 'missing project',
        'apikey', 'create', 'nope');
    fails(2, 'unknown scope "fly"', 'unknown scope',
        'apikey', 'create', 'demo', '--scopes', 'read fly');
    fails(2, 'no scope given', 'empty scopes',
        'apikey', 'create', 'demo', '--scopes', '');
    fails(2, 'invalid project name', 'bad project name',
        'apikey', 'create', 'a/b');
    fails(2, 'control character', 'label with a newline',
        'apikey', 'create', 'demo', '--name', "a\nb");
    is_deeply(keys_of('*'), $before, 'failures stored nothing');

    my $dump = $t->redis_snapshot;
    for my $k (values %key) {
        my ($hex) = $k->{key} =~ /_($HEX64)$/;
        unlike($dump, qr/\Q$hex\E/, "secret of $k->{id} is nowhere in Redis");
    }
};

subtest 'apikey list' => sub {
    my ($code, $out) = $t->ctl('apikey', 'list', 'demo');
    is($code, 0, 'exit 0');

    my (undef, @lines) = split /\n/, $out;
    is(scalar @lines, 3, 'one line per key');
    my %line = map { (split / /)[0] => $_ } @lines;
    like($line{ $key{default}{id} },
        qr/^$key{default}{id} read,write,run $TIME$/, 'default key, no label');
    like($line{ $key{ci}{id} }, qr/^$key{ci}{id} run,admin $TIME ci bot$/,
        'labelled key: id scopes created_at name');

    for my $k (values %key) {
        my $hex = substr($k->{key}, -64);
        unlike($out, qr/\Q$hex\E/, 'no secret in the listing');
        my $digest = sha256_hex($k->{key});
        unlike($out, qr/\Q$digest\E/, 'no digest in the listing');
    }

    fails(1, 'project nope not found', 'missing project',
        'apikey', 'list', 'nope');
    ($code, $out) = $t->ctl('apikey', 'list', 'alpha');
    is("$code $out", '0 ', 'project without keys: empty listing');
};

subtest 'apikey revoke' => sub {
    my $k = $key{reader};
    my $digest = sha256_hex($k->{key});

    my ($code, $out) = $t->ctl('apikey', 'revoke', 'demo', $k->{id});
    is($code, 0, 'exit 0');
    is($t->redis('EXISTS', "am:{demo}:apikey:$digest"), 0, 'record deleted');
    is($t->redis('HEXISTS', 'am:{demo}:apikeys', $k->{id}), 0,
        'index entry deleted');
    is($t->redis('HLEN', 'am:{demo}:apikeys'), 2, 'other keys kept');

    fails(1, "api key $k->{id} not found in project demo", 'revoked twice',
        'apikey', 'revoke', 'demo', $k->{id});
    fails(1, 'api key 0123456789abcdef not found', 'unknown id',
        'apikey', 'revoke', 'demo', '0123456789abcdef');
    fails(1, 'not found in project alpha', 'id of another project',
        'apikey', 'revoke', 'alpha', $key{ci}{id});
    delete $key{reader};
};

my %pair;

subtest 'tokenpair create' => sub {
    $t->ctl('project', 'create', 'other');
    my $out = $t->ctl('tokenpair', 'create', 'demo', 'other', 'demo',
        '--name', 'partner');
    like($out, qr/^id=$HEX16\ntoken=amt_$HEX64\napi_key=amx_$HEX64\n\z/,
        'prints id, token, api_key');
    my %p = $out =~ /^(\w+)=(\S+)$/mg;
    %pair = %p;

    my $digest = sha256_hex($p{token});
    my $r = $t->hgetall("am:{cred}:tokenpair:$digest");
    is_deeply($r, {
        id => $p{id}, projects => 'demo other',
        api_key_sha256 => sha256_hex($p{api_key}), name => 'partner',
        created_at => $r->{created_at}, sha256 => $digest,
    }, 'record named by the token digest, fields as documented');
    like($r->{created_at}, qr/^$TIME$/, 'created_at RFC 3339');
    is($t->redis('HGET', 'am:{cred}:tokenpairs', $p{id}), $digest,
        'index id -> D');

    my $dump = $t->redis_snapshot;
    for my $s ($p{token}, $p{api_key}) {
        unlike($dump, qr/\Q@{[ substr($s, 4) ]}\E/,
            substr($s, 0, 4) . ' secret is nowhere in Redis');
    }

    my $before = keys_of('*');
    fails(1, 'project ghost not found', 'one project missing',
        'tokenpair', 'create', 'demo', 'ghost');
    fails(2, 'invalid project name', 'bad project name',
        'tokenpair', 'create', 'demo', '..');
    fails(2, 'tokenpair create: wrong number', 'no project',
        'tokenpair', 'create');
    is_deeply(keys_of('*'), $before, 'failures stored nothing');
};

subtest 'tokenpair list and revoke' => sub {
    my $out = $t->ctl('tokenpair', 'create', 'other');
    my %second = $out =~ /^(\w+)=(\S+)$/mg;

    $out = $t->ctl('tokenpair', 'list');
    my (undef, @lines) = split /\n/, $out;
    my %line = map { (split / /)[0] => $_ } @lines;
    is(scalar keys %line, 2, 'one line per pair');
    like($line{ $pair{id} }, qr/^$pair{id} demo,other $TIME partner$/,
        'id projects created_at name');
    like($line{ $second{id} }, qr/^$second{id} other $TIME$/, 'without label');
    for my $s (map { substr($_, 4) } @pair{qw(token api_key)}) {
        unlike($out, qr/\Q$s\E/, 'no secret in the listing');
    }

    is(($t->ctl('tokenpair', 'revoke', $second{id}))[0], 0, 'revoke: exit 0');
    is($t->redis('EXISTS',
        'am:{cred}:tokenpair:' . sha256_hex($second{token})), 0,
        'record deleted');
    is($t->redis('HEXISTS', 'am:{cred}:tokenpairs', $second{id}), 0,
        'index entry deleted');
    fails(1, "token pair $second{id} not found", 'revoked twice',
        'tokenpair', 'revoke', $second{id});
    like($t->ctl('tokenpair', 'list'), qr/^$pair{id} /m,
        'the other pair stays');
};

subtest 'listings: a header line, or --json' => sub {
    my $json = JSON::PP->new;

    my @lines = split /\n/, $t->ctl('apikey', 'list', 'demo');
    is($lines[0], 'ID SCOPES CREATED_AT NAME', 'apikey list: header');
    @lines = split /\n/, $t->ctl('tokenpair', 'list');
    is($lines[0], 'ID PROJECTS CREATED_AT NAME', 'tokenpair list: header');
    like($t->ctl('project', 'list'), qr/^NAME\nZed\n/, 'project list: header');
    is($t->ctl('webhook', 'dead'), '', 'an empty listing: no header either');

    my $out = $t->ctl('project', 'list', '--json');
    like($out, qr/^\[.*\]\n\z/, 'project list --json: one line');
    is_deeply($json->decode($out),
        [ map { { name => $_ } } sort('demo', 'x' x 64,
            qw(beta alpha Zed a-b_9 other)) ],
        'project list --json: an object per project, by name');

    my $keys = $json->decode(scalar $t->ctl('apikey', 'list', 'demo', '--json'));
    my %by_id = map { $_->{id} => $_ } @$keys;
    is(scalar @$keys, 2, 'apikey list --json: an object per key');
    is_deeply([ sort keys %{ $keys->[0] } ],
        [ qw(created_at id name scopes) ], 'with id, scopes, created_at, name');
    is_deeply([ @{ $by_id{ $key{ci}{id} } }{qw(scopes name)} ],
        [ [ 'run', 'admin' ], 'ci bot' ], 'scopes as an array, the label');
    my (undef, @text) = split /\n/, $t->ctl('apikey', 'list', 'demo');
    is_deeply([ map { (split / /)[0] } @text ], [ map { $_->{id} } @$keys ],
        'in the order of the text listing');
    for my $k (values %key) {
        my $hex = substr($k->{key}, -64);
        unlike(join('', map { values %$_ } @$keys), qr/\Q$hex\E/,
            'no secret in the JSON');
    }
    is_deeply($json->decode(scalar $t->ctl('apikey', '--json', 'list', 'demo')),
        $keys, '--json before the subcommand');
    is($t->ctl('apikey', 'list', 'alpha', '--json'), "[]\n",
        'no keys: an empty array');

    my $pairs = $json->decode(scalar $t->ctl('tokenpair', 'list', '--json'));
    is_deeply([ map { [ @$_{qw(id name)}, $_->{projects} ] } @$pairs ],
        [ [ $pair{id}, 'partner', [ 'demo', 'other' ] ] ],
        'tokenpair list --json: id, name, projects as an array');
    like($pairs->[0]{created_at}, qr/^$TIME$/, 'and created_at');

    # a label as JSON must carry quotes, backslashes and UTF-8 as they are
    my $label = qq(say "hi" \\ caf\x{e9});
    utf8::encode(my $bytes = $label);
    my $f = $t->ctl_fields('apikey', 'create', 'alpha', '--name', $bytes);
    is($json->decode(scalar $t->ctl('apikey', 'list', 'alpha', '--json'))->[0]{name},
        $bytes, 'a label with quotes, a backslash and UTF-8 survives');
    $t->ctl('apikey', 'revoke', 'alpha', $f->{id});

    $t->redis('ZADD', 'am:webhooks:dead', 1764300000000, 'demo/exec_dead1');
    is($t->ctl('webhook', 'dead'),
        "PROJECT/EXECUTION_ID DEAD_SINCE\ndemo/exec_dead1 2025-11-28T03:20:00Z\n",
        'webhook dead: header, then project/execution and since when');
    is_deeply($json->decode(scalar $t->ctl('webhook', 'dead', '--json')),
        [ { project => 'demo', execution_id => 'exec_dead1',
            dead_since => '2025-11-28T03:20:00Z' } ],
        'webhook dead --json');
    $t->redis('DEL', 'am:webhooks:dead');

    my $before = keys_of('*');
    for my $cmd ([ 'project', 'create', 'j1' ], [ 'apikey', 'create', 'demo' ],
                 [ 'webhook', 'secret', 'demo' ], [ 'jwt', 'mint' ]) {
        fails(2, '--json goes with the listings only: project list, apikey '
            . 'list, tokenpair list, webhook dead', "@$cmd --json",
            @$cmd, '--json');
    }
    is_deeply(keys_of('*'), $before, '--json refused: nothing stored');
};

subtest 'project delete' => sub {
    # automations as the module stores them
    for my $a (qw(hello bye)) {
        $t->redis('HSET', "am:{demo}:automation:$a", 'automation_name', $a,
            'code', 'x', 'runtime', 'sh');
        $t->redis('ZADD', 'am:{demo}:automations', 0, $a);
    }
    $t->redis('HSET', 'am:{other}:automation:keep', 'automation_name', 'keep');
    $t->redis('ZADD', 'am:{other}:automations', 0, 'keep');
    my $other_key = $t->ctl('apikey', 'create', 'other');

    ok(scalar @{ keys_of('am:{demo}:*') } >= 6, 'demo has keys to delete');
    my $other_before = keys_of('am:{other}:*');

    my ($code, $out) = $t->ctl('project', 'delete', 'demo');
    is($code, 0, 'exit 0');
    is_deeply(keys_of('am:{demo}:*'), [], 'no key of the project is left');
    is($t->redis('ZSCORE', 'am:projects', 'demo'), undef, 'unlisted');
    is_deeply(keys_of('am:{other}:*'), $other_before,
        'the other project is untouched');
    unlike($t->ctl('project', 'list'), qr/^demo$/m, 'not in project list');

    fails(1, 'project demo not found', 'deleted twice',
        'project', 'delete', 'demo');
    fails(2, 'invalid project name', 'bad name', 'project', 'delete', 'a/b');
    is($t->ctl('project', 'create', 'demo'), "project=demo\n",
        'the name can be used again');
    is($t->ctl('apikey', 'list', 'demo'), '', 'without the old keys');
};

subtest 'global options: --prefix, --db, password, password file' => sub {
    is($t->ctl('--prefix', 'x:', 'project', 'create', 'p1'), "project=p1\n",
        '--prefix');
    is($t->redis('HGET', 'x:{p1}:project', 'name'), 'p1', 'keys use it');
    is($t->redis('ZSCORE', 'x:projects', 'p1'), 0, 'list key uses it');
    is($t->ctl({ env => { AUTOMATIONS_PREFIX => 'x:' } }, 'project', 'list'),
        "NAME\np1\n", 'AUTOMATIONS_PREFIX');

    $t->ctl('--db', '2', 'project', 'create', 'indb2');
    is($t->redis('EXISTS', 'am:{indb2}:project'), 0, 'not in db 0');
    $t->redis('SELECT', 2);
    is($t->redis('EXISTS', 'am:{indb2}:project'), 1, '--db 2');
    $t->redis('SELECT', 0);
    is($t->ctl({ env => { AUTOMATIONS_REDIS_DB => 2 } }, 'project', 'list'),
        "NAME\nindb2\n", 'AUTOMATIONS_REDIS_DB');

    my $t2 = AmTest->new;
    $t2->start_redis(requirepass => 'pw');
    my ($code, $out, $err) = $t2->ctl('project', 'list');
    is($code, 1, 'no password: exit 1');
    like($err, qr/^automationsctl: redis: NOAUTH/, 'no password: message');
    is($t2->ctl('--password', 'pw', 'project', 'create', 'sec'),
        "project=sec\n", '--password');
    is($t2->ctl({ env => { AUTOMATIONS_REDIS_PASSWORD => 'pw' } },
        'project', 'list'), "NAME\nsec\n", 'AUTOMATIONS_REDIS_PASSWORD');
    my $file = $t2->write_file('redis-password', "pw\n");
    is($t2->ctl('--password-file', $file, 'project', 'list'), "NAME\nsec\n",
        '--password-file: its first line');
    is($t2->ctl({ env => { AUTOMATIONS_REDIS_PASSWORD_FILE => $file } },
        'project', 'list'), "NAME\nsec\n", 'AUTOMATIONS_REDIS_PASSWORD_FILE');
    ($code, $out, $err) = $t2->ctl('--password-file', "$file.none",
        'project', 'list');
    is($code, 2, 'a missing password file: exit 2');
    like($err, qr/^automationsctl: --password-file: \S+\.none: No such file/,
        'and the message names it');
    $t2->stop_all;
};

subtest 'jwt mint HS256' => sub {
    my $secret = 'k' x 40;
    my $file = $t->write_file('hs.key', "$secret\n");

    # no Redis needed: point at a closed port
    my ($code, $out, $err) = $t->ctl('--redis', '127.0.0.1:1', 'jwt', 'mint',
        '--key', $file, '--alg', 'HS256', '--kid', 'k1', '--project', 'demo',
        '--role', 'read', '--sub', 'alice', '--ttl', '60', '--iss', 'me',
        '--aud', 'you');
    is($code, 0, 'exit 0, without Redis') or diag($err);
    chomp(my $jwt = $out);
    my ($h, $p, $s) = split /\./, $jwt;

    is_deeply(decode_json(AmTest::b64url_decode($h)),
        { alg => 'HS256', typ => 'JWT', kid => 'k1' }, 'header');
    my $c = decode_json(AmTest::b64url_decode($p));
    is_deeply([ @$c{qw(sub project role iss aud)} ],
        [ qw(alice demo read me you) ], 'claims');
    is($c->{exp} - $c->{iat}, 60, 'exp = iat + ttl');
    ok(abs($c->{iat} - time) < 10, 'iat is now');
    is($s, AmTest::b64url(hmac_sha256("$h.$p", $secret)),
        'HMAC-SHA256 over header.payload with the file minus its newline');

    $jwt = $t->ctl('jwt', 'mint', '--key', $file, '--alg', 'HS512',
        '--project', 'demo');
    chomp $jwt;
    ($h, $p, $s) = split /\./, $jwt;
    is_deeply(decode_json(AmTest::b64url_decode($h)), { alg => 'HS512', typ => 'JWT' },
        'header without kid');
    $c = decode_json(AmTest::b64url_decode($p));
    is_deeply([ sort keys %$c ], [ qw(exp iat project role sub) ],
        'no iss or aud unless given');
    is_deeply([ @$c{qw(sub role)} ], [ 'dev', 'admin' ],
        'defaults: sub dev, role admin');
    is($c->{exp} - $c->{iat}, 3600, 'default ttl 3600');
    is($s, AmTest::b64url(hmac_sha512("$h.$p", $secret)), 'HS512 signature');

    my $short = $t->write_file('short.key', "short\n");
    my @base = ('jwt', 'mint', '--alg', 'HS256', '--project', 'demo');
    fails(1, '', 'secret under 32 bytes', @base, '--key', $short);
    fails(1, 'nofile', 'missing key file', @base, '--key', "$file.nofile");
    fails(2, 'needs --key', 'no --key', @base);
    fails(2, 'unsupported algorithm "none"', 'alg none',
        'jwt', 'mint', '--key', $file, '--alg', 'none', '--project', 'demo');
    fails(2, 'invalid project name', 'bad project',
        'jwt', 'mint', '--key', $file, '--alg', 'HS256', '--project', 'a b');
    fails(2, 'invalid --ttl', 'ttl 0', @base, '--key', $file, '--ttl', '0');
    fails(2, 'invalid --ttl', 'ttl not a number',
        @base, '--key', $file, '--ttl', '1h');
    fails(2, 'unknown role "boss"', 'unknown role',
        @base, '--key', $file, '--role', 'boss');
    fails(2, 'jwt: missing subcommand', 'no mint', 'jwt', '--key', $file);
};

subtest 'jwt mint RS256' => sub {
    my $key = $t->dir . '/rsa.key';
    my $pub = $t->dir . '/rsa.pub';
    system('openssl', 'genpkey', '-quiet', '-algorithm', 'RSA',
        '-pkeyopt', 'rsa_keygen_bits:2048', '-out', $key) == 0
        or return fail('openssl genpkey');
    system('openssl', 'pkey', '-in', $key, '-pubout', '-out', $pub) == 0
        or return fail('openssl pkey -pubout');

    my $jwt = $t->ctl('jwt', 'mint', '--key', $key, '--alg', 'RS256',
        '--kid', 'r1', '--project', 'demo', '--role', 'run');
    chomp $jwt;
    my ($h, $p, $s) = split /\./, $jwt;
    is_deeply(decode_json(AmTest::b64url_decode($h)),
        { alg => 'RS256', typ => 'JWT', kid => 'r1' }, 'header');
    is(decode_json(AmTest::b64url_decode($p))->{role}, 'run', 'role claim');

    $t->write_file('rs.data', "$h.$p");
    $t->write_file('rs.sig', AmTest::b64url_decode($s));
    my $d = $t->dir;
    my $cmd = "openssl dgst -sha256 -verify $pub -signature $d/rs.sig"
        . " $d/rs.data 2>&1";
    my $v = `$cmd`;
    like($v, qr/Verified OK/, 'openssl verifies the signature');

    fails(1, '', 'RSA key with HS256',
        'jwt', 'mint', '--key', $key, '--alg', 'HS256', '--project', 'demo');
};

subtest 'no leaks under valgrind' => sub {
    plan skip_all => 'valgrind not installed'
        unless grep { -x "$_/valgrind" } split /:/, $ENV{PATH};

    my $log = $t->dir . '/vg.ctl.log';
    my @vg = ('valgrind', '--leak-check=full', '--show-leak-kinds=all',
        '--errors-for-leak-kinds=all', '--error-exitcode=99',
        "--log-file=$log", $CTL, '--redis', $t->redis_addr);

    for my $cmd ([ 'project', 'create', 'vgproject' ],
                 [ 'apikey', 'create', 'vgproject', '--name', 'vg' ],
                 [ 'apikey', 'list', 'vgproject', '--json' ],
                 [ 'apikey', 'list', 'vgproject' ],
                 [ 'webhook', 'secret', 'vgproject', '--rotate' ],
                 [ 'webhook', 'secret', 'set', '--help' ],
                 [ 'project', 'create', 'vgproject' ])
    {
        my $rc = system(join(' ', map { quotemeta } @vg, @$cmd)
            . ' >/dev/null 2>&1') >> 8;
        my $text = $t->read_file($log) // '';
        like($text, qr/ERROR SUMMARY: 0 errors/, "@$cmd: no valgrind errors")
            or diag($text);
        like($text, qr/All heap blocks were freed|in use at exit: 0 bytes/,
            "@$cmd: nothing leaked");
        isnt($rc, 99, "@$cmd: valgrind exit code");
    }
};

$t->stop_all;
done_testing;
