#!/usr/bin/perl
# JWT keys as identity providers publish them: a JWKS that also holds keys
# the gateway does not use (other uses, algorithms, curves, kinds, weak
# keys) passes `nginx -t`, and each skipped key is named in the log with
# why; PS256/384/512 (RSASSA-PSS) and EdDSA (Ed25519) tokens are accepted
# from PEM keys and from the JWKS, and the attacks on them are refused.
# Tokens are signed by the harness (AmTest::Jwt, the openssl command),
# except those of `automationsctl jwt mint`, which openssl checks in turn.

use strict;
use warnings;

use Test::More;
use JSON::PP;

use AmTest;
use AmTest::Api qw(bearer now);

my $t = AmTest->new;

plan skip_all => 'module not built'
    unless -f $t->build . '/ngx_http_automations_module.so';

my $INVALID = 'Invalid authentication credentials.';

# ------------------------------------------------------------------ setup

$t->start_redis;
$t->ctl('project', 'create', 'demo');

my ($rsa, $rsa_pub)     = $t->gen_key(type => 'rsa',     name => 'rsa');
my ($ed, $ed_pub)       = $t->gen_key(type => 'ed25519', name => 'ed');
my ($ed2, $ed2_pub)     = $t->gen_key(type => 'ed25519', name => 'ed2');
my ($ed448, $ed448_pub) = $t->gen_key(type => 'ed448',   name => 'ed448');
my ($p521, $p521_pub)   = $t->gen_key(type => 'ec521',   name => 'p521');
my ($small, $small_pub) = $t->gen_key(type => 'rsa', bits => 1024,
                                      name => 'small');
my $SECRET = 'jwks-oct-secret-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 40);

# kid => the reason the module gives for not using the key
my %SKIPPED = (
    'ed448'    => 'OKP curve "Ed448" is not supported, use Ed25519',
    'p521'     => 'EC curve "P-521" is not supported, use P-256 or P-384',
    'es512'    => 'unsupported alg "ES512"',
    'enc'      => '"use" is "enc"',
    'wrap'     => '"key_ops" lacks "verify"',
    'small'    => 'RSA key has 1024 bits, needs at least 2048',
    'hs-odd'   => 'unsupported alg "HS1024"',
    'hs-noalg' => 'oct key needs alg HS256, HS384 or HS512',
    'weird'    => 'unsupported kty "XYZ", use RSA, EC, OKP or oct',
);

my $jwks = $t->jwks(file => 'idp.json', keys => [
    { kid => 'ps256', pub => $rsa_pub, alg => 'PS256' },
    { kid => 'ed448', pub => $ed448_pub },
    { kid => 'ps384', pub => $rsa_pub, alg => 'PS384' },
    { kid => 'p521',  pub => $p521_pub },
    { kid => 'es512', pub => $p521_pub, alg => 'ES512' },
    { kid => 'ps512', pub => $rsa_pub, alg => 'PS512' },
    { kid => 'enc',   pub => $rsa_pub, alg => 'RSA-OAEP', use => 'enc' },
    { kid => 'wrap',  pub => $rsa_pub, extra => { key_ops => ['wrapKey'] } },
    { kid => 'rs256', pub => $rsa_pub, alg => 'RS256' },
    { kid => 'small', pub => $small_pub, alg => 'RS256' },
    { kid => 'hs-odd',   secret => $SECRET, alg => 'HS1024' },
    { kid => 'hs-noalg', secret => $SECRET },
    { kid => 'weird', secret => $SECRET, extra => { kty => 'XYZ', k => undef } },
    { kid => 'ed1',   pub => $ed_pub, alg => 'EdDSA' },
]);

# nothing in it is for us
my $useless = $t->jwks(file => 'useless.json', keys => [
    { kid => 'ed448', pub => $ed448_pub },
    { kid => 'enc',   pub => $rsa_pub, alg => 'RSA-OAEP', use => 'enc' },
]);

my $d = $t->dir;

my $CONF = <<"EOF";
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

        location /idp/       { automations_api; automations_jwt_jwks $jwks; }
        location /pem-ps256/ { automations_api; automations_jwt_key $rsa_pub alg=PS256; }
        location /pem-ps512/ { automations_api; automations_jwt_key $rsa_pub alg=PS512 kid=k1; }
        location /pem-rs256/ { automations_api; automations_jwt_key $rsa_pub alg=RS256; }
        location /pem-ed/    { automations_api; automations_jwt_key $ed_pub; }
        %%USELESS%%
    }
}
EOF

sub conf {
    my ($useless) = @_;
    (my $c = $CONF) =~ s{%%USELESS%%}{
        $useless ? "location /useless/ { automations_api; automations_jwt_jwks $useless; }"
                 : ''}e;
    return $t->write_nginx($c);
}

# ---------------------------------------------------------------- helpers

sub tok {
    my (%o) = @_;
    return AmTest::jwt(alg => $o{alg}, key => $o{key},
                       (defined $o{kid} ? (kid => $o{kid}) : ()),
                       ($o{header} ? (header => $o{header}) : ()),
                       claims => $o{claims} // { project => 'demo', role => 'read',
                                                 sub => 'alice', exp => now() + 600 });
}

sub get {
    my ($path, $token) = @_;
    return $t->http(GET => $path, headers => bearer($token));
}

my $log_mark = 0;
sub mark_log { $log_mark = length($t->error_log) }
# the last refusal line since mark_log: { reason, credential, kid, alg }
sub refusal {
    my @r = substr($t->error_log, $log_mark) =~
        /credentials refused: (.*?) \(credential: (\w*), subject: "[^"]*", kid: "([^"]*)", alg: (\S*)\)/g;
    return {} unless @r;
    my %f;
    @f{qw(reason credential kid alg)} = @r[-4 .. -1];
    return \%f;
}

sub is_200 {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 200, "$name: 200") or diag($r->{body});
    ok(ref $r->{json} eq 'HASH' && ref $r->{json}{automations} eq 'ARRAY',
       "$name: the project's listing") or diag($r->{body});
}

# a 401 for the reason under test, not for any other
sub is_refused {
    my ($path, $token, $reason, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    mark_log();
    my $r = get($path, $token);
    is($r->{status}, 401, "$name: 401") or diag($r->{body});
    is_deeply($r->{json}, { detail => $INVALID }, "$name: JSON detail");
    my $f = refusal();
    is($f->{reason}, $reason, "$name: refused for \"$reason\"");
    is($f->{credential}, 'jwt', "$name: the log names the credential kind");
}

# the token with its signature replaced by $sig (raw bytes)
sub with_sig {
    my ($token, $sig) = @_;
    my ($h, $p) = split /\./, $token;
    return "$h.$p." . AmTest::b64url($sig);
}

sub sig_of { AmTest::b64url_decode((split /\./, $_[0])[2]) }

# the token with the claims replaced, signature kept
sub with_claims {
    my ($token, $claims) = @_;
    my ($h, undef, $s) = split /\./, $token;
    return "$h." . AmTest::b64url(JSON::PP->new->canonical->encode($claims)) . ".$s";
}

# ---------------------------------------------------------- loading keys

subtest 'a JWKS with keys we do not use passes nginx -t' => sub {
    conf();
    my ($code, $out) = $t->nginx_test_config;
    is($code, 0, 'nginx -t succeeds') or diag($out);
    like($out, qr/syntax is ok/, 'syntax is ok');
    for my $kid (sort keys %SKIPPED) {
        like($out, qr/\[warn\] .*"\Q$jwks\E": key "\Q$kid\E" skipped: \Q$SKIPPED{$kid}\E in \S+nginx\.conf:\d+/,
             "nginx -t warns: key $kid skipped, $SKIPPED{$kid}");
    }
    for my $kid (qw(ps256 ps384 ps512 rs256 ed1)) {
        unlike($out, qr/key "$kid"/, "key $kid is used, not mentioned");
    }
};

subtest 'a JWKS of which no key is usable fails nginx -t' => sub {
    conf($useless);
    my ($code, $out) = $t->nginx_test_config;
    isnt($code, 0, 'nginx -t fails');
    like($out, qr/\[emerg\] .*"\Q$useless\E": no usable signing key in "keys" \(2 skipped\)/,
         'it says no key is usable') or diag($out);
    like($out, qr/\[warn\] .*"\Q$useless\E": key "ed448" skipped: OKP curve "Ed448"/,
         'and why each key was skipped');
};

conf();
$t->start_nginx;

subtest 'the skipped keys are named in the error log' => sub {
    my $log = $t->error_log;
    for my $kid (sort keys %SKIPPED) {
        like($log, qr/\[warn\] .*key "\Q$kid\E" skipped: \Q$SKIPPED{$kid}\E/,
             "error.log: key $kid skipped");
    }
};

# ------------------------------------------------------------- accepted

subtest 'PS256, PS384, PS512 and EdDSA from the JWKS' => sub {
    for my $case ([ 'PS256', $rsa, 'ps256' ], [ 'PS384', $rsa, 'ps384' ],
                  [ 'PS512', $rsa, 'ps512' ], [ 'EdDSA', $ed, 'ed1' ],
                  [ 'RS256', $rsa, 'rs256' ]) {
        my ($alg, $key, $kid) = @$case;
        is_200(get('/idp/', tok(alg => $alg, key => $key, kid => $kid)),
               "$alg, kid $kid");
    }
};

subtest 'PS256, PS512 and EdDSA from PEM keys' => sub {
    is_200(get('/pem-ps256/', tok(alg => 'PS256', key => $rsa)), 'PS256');
    is_200(get('/pem-ps512/', tok(alg => 'PS512', key => $rsa, kid => 'k1')),
           'PS512, kid k1');
    is_200(get('/pem-ed/', tok(alg => 'EdDSA', key => $ed)),
           'EdDSA, the algorithm implied by the Ed25519 key');
    is_200(get('/pem-ed/', tok(alg => 'EdDSA', key => $ed, kid => 'any')),
           'EdDSA with a kid, verified by the key configured without one');
};

# -------------------------------------------------------------- attacks

subtest 'alg confusion between PKCS#1 v1.5 and PSS on one RSA key' => sub {
    is_refused('/pem-ps256/', tok(alg => 'RS256', key => $rsa),
               'algorithm not allowed', 'RS256 token to the PS256 key');
    is_refused('/pem-rs256/', tok(alg => 'PS256', key => $rsa),
               'algorithm not allowed', 'PS256 token to the RS256 key');
    is_200(get('/pem-rs256/', tok(alg => 'RS256', key => $rsa)),
           'the RS256 key takes RS256');
    is_refused('/pem-ps256/', tok(alg => 'PS384', key => $rsa),
               'algorithm not allowed', 'PS384 token to the PS256 key');
    is_refused('/idp/', tok(alg => 'RS256', key => $rsa, kid => 'ps256'),
               'algorithm not allowed', 'RS256 token naming the JWKS PS256 key');
    is_refused('/idp/', tok(alg => 'PS256', key => $rsa, kid => 'rs256'),
               'algorithm not allowed', 'PS256 token naming the JWKS RS256 key');
    # an RS256 signature under a header that says PS256
    my $rs = tok(alg => 'RS256', key => $rsa, header => { alg => 'PS256' });
    is_refused('/pem-ps256/', $rs, 'bad signature',
               'PKCS#1 v1.5 signature presented as PS256');
};

subtest 'HS256 keyed with the Ed25519 public key' => sub {
    my $pem = $t->read_file($ed_pub);
    (my $trimmed = $pem) =~ s/\n\z//;
    my $raw = AmTest::Jwt::pub_components($ed_pub)->{x};
    for my $secret ([ $pem, 'PEM' ], [ $trimmed, 'PEM without final newline' ],
                    [ $raw, 'raw 32-byte key' ]) {
        is_refused('/pem-ed/', tok(alg => 'HS256', key => $secret->[0]),
                   'algorithm not allowed', "PEM key: secret is the $secret->[1]");
        is_refused('/idp/', tok(alg => 'HS256', key => $secret->[0], kid => 'ed1'),
                   'algorithm not allowed', "JWKS key ed1: secret is the $secret->[1]");
    }
};

subtest 'alg none' => sub {
    for my $path ('/pem-ed/', '/pem-ps256/') {
        my $none = AmTest::jwt(alg => 'none',
                               claims => { project => 'demo', exp => now() + 600 });
        is_refused($path, $none, 'algorithm not allowed', "alg none to $path");
    }
    my $signed = tok(alg => 'EdDSA', key => $ed, header => { alg => 'none' });
    is_refused('/pem-ed/', $signed, 'algorithm not allowed',
               'alg none over a genuine Ed25519 signature');
};

subtest 'wrong kid' => sub {
    is_refused('/idp/', tok(alg => 'EdDSA', key => $ed, kid => 'nope'),
               'unknown kid', 'kid nope');
    is_refused('/idp/', tok(alg => 'EdDSA', key => $ed448, kid => 'ed448'),
               'unknown kid', 'the kid of a skipped Ed448 key');
    is_refused('/idp/', tok(alg => 'EdDSA', key => $ed2, kid => 'ed1'),
               'bad signature', 'another Ed25519 key naming ed1');
    is_refused('/idp/', tok(alg => 'EdDSA', key => $ed, kid => 'ps256'),
               'algorithm not allowed', 'EdDSA token naming an RSA key');
    is_refused('/pem-ps512/', tok(alg => 'PS512', key => $rsa, kid => 'k2'),
               'unknown kid', 'PS512, kid k2 where only k1 is configured');
    is_refused('/idp/', tok(alg => 'EdDSA', key => $ed, kid => 'nope'),
               'unknown kid', 'kid nope, once more');
    my $f = refusal();
    is($f->{kid}, 'nope', 'the refusal line names the kid');
    is($f->{alg}, 'EdDSA', 'and the algorithm');
};

subtest 'bad signature length' => sub {
    my $e = tok(alg => 'EdDSA', key => $ed);
    my $s = sig_of($e);
    is(length $s, 64, 'an Ed25519 signature is 64 bytes');
    is_refused('/pem-ed/', with_sig($e, substr($s, 0, 63)), 'bad signature',
               'Ed25519 signature of 63 bytes');
    is_refused('/pem-ed/', with_sig($e, "$s\0"), 'bad signature',
               'Ed25519 signature of 65 bytes');
    is_refused('/pem-ed/', with_sig($e, "\0" x 64), 'bad signature',
               'Ed25519 signature of zeros');

    my $p = tok(alg => 'PS256', key => $rsa);
    $s = sig_of($p);
    is(length $s, 256, 'a PS256 signature with a 2048-bit key is 256 bytes');
    is_refused('/pem-ps256/', with_sig($p, "\0$s"), 'bad signature',
               'PS256 signature with a leading zero byte');
    is_refused('/pem-ps256/', with_sig($p, substr($s, 0, 255)), 'bad signature',
               'PS256 signature of 255 bytes');
    is_refused('/pem-ps256/', with_sig($p, ''), 'malformed token',
               'PS256 signature empty');
};

subtest 'tampered payload' => sub {
    my %c = (project => 'demo', role => 'read', sub => 'alice', exp => now() + 600);
    for my $case ([ '/pem-ps256/', 'PS256', $rsa ], [ '/pem-ed/', 'EdDSA', $ed ],
                  [ '/idp/', 'PS512', $rsa, 'ps512' ], [ '/idp/', 'EdDSA', $ed, 'ed1' ]) {
        my ($path, $alg, $key, $kid) = @$case;
        my $tk = tok(alg => $alg, key => $key, kid => $kid, claims => \%c);
        is_200(get($path, $tk), "$alg to $path, as signed");
        is_refused($path, with_claims($tk, { %c, role => 'admin' }), 'bad signature',
                   "$alg to $path, role changed to admin");
    }
};

# ---------------------------------------------------- automationsctl mint

subtest 'automationsctl jwt mint signs PS256 and EdDSA' => sub {
    my $work = $t->dir;
    for my $case ([ 'PS256', $rsa, '/pem-ps256/' ], [ 'PS512', $rsa, '/pem-ps512/', 'k1' ],
                  [ 'EdDSA', $ed, '/pem-ed/' ]) {
        my ($alg, $key, $path, $kid) = @$case;
        my ($code, $out, $err) = $t->ctl('jwt', 'mint', '--key', $key, '--alg', $alg,
                                         '--project', 'demo', '--role', 'read',
                                         ($kid ? ('--kid', $kid) : ()));
        is($code, 0, "$alg: minted") or diag($err);
        chomp $out;
        is_200(get($path, $out), "$alg: the minted token is accepted");

        # checked by openssl, not by our verifier
        my ($h, $p, $s) = split /\./, $out;
        $t->write_file('mint.in', "$h.$p");
        $t->write_file('mint.sig', AmTest::b64url_decode($s));
        my $pub = $alg eq 'EdDSA' ? $ed_pub : $rsa_pub;
        my @verify = $alg eq 'EdDSA'
            ? ('pkeyutl', '-verify', '-pubin', '-inkey', $pub, '-rawin',
               '-sigfile', "$work/mint.sig", '-in', "$work/mint.in")
            : ('dgst', '-sha' . substr($alg, 2), '-verify', $pub,
               '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest',
               '-signature', "$work/mint.sig", "$work/mint.in");
        my $ok = eval { AmTest::Jwt::openssl_io(undef, @verify); 1 };
        ok($ok, "$alg: openssl verifies the signature") or diag($@);
    }

    my ($code, undef, $err) = $t->ctl('jwt', 'mint', '--key', $ed448, '--alg', 'EdDSA',
                                      '--project', 'demo');
    isnt($code, 0, 'EdDSA with an Ed448 key: refused');
    like($err, qr/unsupported key type ED448/, 'it says why');

    ($code, undef, $err) = $t->ctl('jwt', 'mint', '--key', $rsa, '--alg', 'ES512',
                                   '--project', 'demo');
    isnt($code, 0, 'unsupported algorithm: refused');
    like($err, qr/use HS256, .*PS256, PS384, PS512, .*EdDSA/,
         'the message lists the algorithms');
};

$t->error_log_clean;

done_testing;
