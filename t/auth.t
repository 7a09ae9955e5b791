#!/usr/bin/perl
# Authentication of the Automations API: JWT bearer tokens (HS*, RS*, ES*,
# JWKS, claims, attacks), API keys, token pairs, and Redis going away during
# a lookup.  Tokens are signed by the harness (AmTest::Jwt), never by our C
# code.  Every refusal is checked next to an accepted twin that differs only
# in what is under test, so a 401 for the wrong reason does not pass.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(hmac_sha256);
use JSON::PP;
use MIME::Base64 ();

use AmTest;
use AmTest::Api qw(bearer now);

my $t = AmTest->new;

plan skip_all => 'module not built'
    unless -f $t->build . '/ngx_http_automations_module.so';

my $JSON = JSON::PP->new->utf8->canonical;
my $MISSING = 'Authentication credentials were not provided.';
my $INVALID = 'Invalid authentication credentials.';
my $NOPROJ  = 'The token names no project.';
my $DENIED  = 'These credentials do not allow this operation.';
my $NOACCESS = 'These credentials have no access to this project.';
my $DOWN    = 'The automations store is unavailable.';

# ------------------------------------------------------------------ setup

$t->start_redis;
$t->ctl('project', 'create', 'demo');
$t->ctl('project', 'create', 'other');

# HS256 secrets: the file holds the secret plus one newline, which the
# module strips (am_jwt.h).
my $SECRET  = 'hs256-secret-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 40);
my $SECRET2 = 'another-secret-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 40);
$t->write_file('hs.secret', "$SECRET\n");

my ($rsa, $rsa_pub)   = $t->gen_key(type => 'rsa',   name => 'rsa');
my ($rsa2, $rsa2_pub) = $t->gen_key(type => 'rsa',   name => 'rsa2');
my ($ec256, $ec256_pub) = $t->gen_key(type => 'ec256', name => 'ec256');
my ($ec384, $ec384_pub) = $t->gen_key(type => 'ec384', name => 'ec384');
my ($jr, $jr_pub) = $t->gen_key(type => 'rsa',   name => 'jwks-rsa');
my ($je, $je_pub) = $t->gen_key(type => 'ec256', name => 'jwks-ec');
my $JWKS_SECRET = 'jwks-oct-secret-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 40);
my $jwks = $t->jwks(file => 'jwks.json', keys => [
    { kid => 'r1', pub => $jr_pub, alg => 'RS256' },
    { kid => 'e1', pub => $je_pub, alg => 'ES256' },
    { kid => 'h1', secret => $JWKS_SECRET, alg => 'HS256' },
]);

my $d = $t->dir;

$t->write_nginx(<<"EOF");
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

        large_client_header_buffers 4 128k;

        location /hs/     { automations_api; automations_jwt_key $d/hs.secret alg=HS256; }
        location /strict/ { automations_api; automations_jwt_key $d/hs.secret alg=HS256;
                            automations_jwt_leeway 0; }
        location /leeway/ { automations_api; automations_jwt_key $d/hs.secret alg=HS256;
                            automations_jwt_leeway 60; }
        location /issaud/ { automations_api; automations_jwt_key $d/hs.secret alg=HS256;
                            automations_jwt_issuer https://issuer.test/;
                            automations_jwt_audience automations; }
        location /claims/ { automations_api; automations_jwt_key $d/hs.secret alg=HS256;
                            automations_jwt_project_claim tenant;
                            automations_jwt_role_claim perms; }
        location /tiny/   { automations_api; automations_jwt_key $d/hs.secret alg=HS256;
                            automations_jwt_max_size 512; }
        location /pinned/ { automations_api; automations_jwt_key $d/hs.secret alg=HS256;
                            automations_project demo; }
        location /rs256/  { automations_api; automations_jwt_key $rsa_pub alg=RS256 kid=k1;
                            automations_jwt_leeway 0; }
        location /rs384/  { automations_api; automations_jwt_key $rsa_pub alg=RS384; }
        location /rs512/  { automations_api; automations_jwt_key $rsa_pub alg=RS512; }
        location /es256/  { automations_api; automations_jwt_key $ec256_pub; }
        location /es384/  { automations_api; automations_jwt_key $ec384_pub alg=ES384; }
        location /jwks/   { automations_api; automations_jwt_jwks $jwks; }

        # the start-automation scheme in front of a service (return would run
        # before the access phase, so the service sits behind proxy_pass)
        location /tok/ {
            automations_auth token;
            automations_project demo;
            automations_auth_scope run;
            proxy_set_header X-Project \$automations_project;
            proxy_set_header X-Subject \$automations_subject;
            proxy_set_header X-Cred \$automations_credential;
            proxy_pass http://127.0.0.1:%%PORT%%/echo/;
        }
        location /echo/ {
            return 200 "\$http_x_project|\$http_x_subject|\$http_x_cred";
        }
    }
}
EOF
$t->start_nginx;

# ---------------------------------------------------------------- helpers

sub tok {
    my (%o) = @_;
    my $claims = $o{claims} // { project => 'demo', role => 'admin',
                                 sub => 'alice', exp => now() + 600 };
    return AmTest::jwt(alg => $o{alg} // 'HS256', key => $o{key} // $SECRET,
                       (defined $o{kid} ? (kid => $o{kid}) : ()),
                       ($o{header} ? (header => $o{header}) : ()),
                       claims => $claims);
}

sub get {
    my ($path, $headers) = @_;
    return $t->http(GET => $path, headers => $headers || {});
}

# The last reason the module logged for refusing credentials.
my $log_mark = 0;
sub mark_log { $log_mark = length($t->error_log) }
sub refusal {
    my $log = substr($t->error_log, $log_mark);
    my @r = $log =~ /credentials refused: ([^,\n]*)/g;
    return $r[-1] // '';
}

sub is_200_list {
    my ($r, $name, $want) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 200, "$name: 200") or diag($r->{body});
    ok(ref $r->{json} eq 'HASH' && ref $r->{json}{automations} eq 'ARRAY',
       "$name: the project's listing") or diag($r->{body});
    if ($want) {
        is_deeply([ map { $_->{automation_name} } @{ $r->{json}{automations} } ],
                  $want, "$name: the right project's automations");
    }
}

sub is_401 {
    my ($r, $detail, $name, %o) = @_;
    my $scheme = $o{scheme} // 'Bearer';
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 401, "$name: 401") or diag($r->{body});
    is_deeply($r->{json}, { detail => $detail }, "$name: JSON detail")
        or diag($r->{body});
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         "$name: JSON content type");
    my $www = $r->{headers}{'www-authenticate'};
    ok(defined $www && !ref $www, "$name: one WWW-Authenticate header");
    like($www // '', qr/^\Q$scheme\E realm="automations"/,
         "$name: WWW-Authenticate $scheme realm=\"automations\"");
}

sub is_403 {
    my ($r, $detail, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 403, "$name: 403") or diag($r->{body});
    is_deeply($r->{json}, { detail => $detail }, "$name: JSON detail")
        or diag($r->{body});
    ok(!defined $r->{headers}{'www-authenticate'},
       "$name: no WWW-Authenticate on 403");
}

# A genuine credential without the access an Automations API call needs:
# 404 with the reference's detail for that endpoint (not 403), so that it
# cannot tell another project's automations from absent ones.
sub is_denied {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 404, "$name: 404") or diag($r->{body});
    like($r->{json}{detail} // '',
        qr{^(?:Project|Automation) not found or user doesn't have (?:admin )?access\z},
        "$name: the reference's detail");
    ok(!defined $r->{headers}{'www-authenticate'},
       "$name: no WWW-Authenticate");
}

# Creates an automation in a project with an admin JWT.
sub create {
    my ($project, $name) = @_;
    my $r = $t->http(POST => '/hs/',
        headers => bearer(tok(claims => { project => $project, role => 'admin',
                                          exp => now() + 600 })),
        json => { automation_name => $name, code => 'print(1)' });
    is($r->{status}, 200, "created $project/$name") or diag($r->{body});
}

create('demo', 'demo-only');
create('other', 'other-only');

# ------------------------------------------------------ missing credentials

subtest 'no Authorization header' => sub {
    my $r = get('/hs/');
    is_401($r, $MISSING, 'no header');
    unlike($r->{headers}{'www-authenticate'} // '', qr/error=/,
           'no error= when nothing was sent (RFC 6750 3.1)');
};

subtest 'empty Authorization header' => sub {
    my $raw = $t->raw("GET /hs/ HTTP/1.1\r\nHost: localhost\r\n"
                      . "Authorization: \r\nConnection: close\r\n\r\n");
    my $p = AmTest::parse_response($raw);
    is($p->{status}, 401, 'status 401');
    is_deeply(eval { $JSON->decode($p->{body}) }, { detail => $MISSING },
              'detail: not provided');
    like($p->{headers}{'www-authenticate'} // '', qr/^Bearer realm="automations"/,
         'WWW-Authenticate');
};

subtest 'unknown scheme' => sub {
    my $good = tok();
    is_200_list(get('/hs/', bearer($good)), 'the same token as Bearer');
    is_401(get('/hs/', { Authorization => "Basic " . 'eHh4Onl5eQ==' }),
           $INVALID, 'Basic');
    is_401(get('/hs/', { Authorization => "JWT $good" }), $INVALID,
           'a valid JWT under another scheme');
    is_401(get('/hs/', { Authorization => $good }), $INVALID,
           'a valid JWT without a scheme');
    is_401(get('/hs/', { Authorization => 'Bearer' }), $INVALID,
           '"Bearer" alone');
    like(get('/hs/', { Authorization => 'Basic xxx' })->{headers}{'www-authenticate'},
         qr/error="invalid_token"/, 'error="invalid_token" on a bad credential');
};

# -------------------------------------------------------------- valid JWTs

subtest 'valid HS256 JWT' => sub {
    is_200_list(get('/hs/', bearer(tok())), 'HS256', ['demo-only']);
    is_200_list(get('/hs/', { Authorization => 'bearer ' . tok() }),
                'scheme name is case-insensitive');
};

for my $case (
    [ '/rs256/', 'RS256', $rsa,   'k1' ],
    [ '/rs384/', 'RS384', $rsa,   undef ],
    [ '/rs512/', 'RS512', $rsa,   undef ],
    [ '/es256/', 'ES256', $ec256, undef ],
    [ '/es384/', 'ES384', $ec384, undef ],
) {
    my ($path, $alg, $key, $kid) = @$case;
    subtest "valid $alg JWT" => sub {
        my $tk = tok(alg => $alg, key => $key, kid => $kid);
        is_200_list(get($path, bearer($tk)), $alg, ['demo-only']);
        # its twin with one signature byte changed
        my ($h, $p, $s) = split /\./, $tk;
        my $sig = AmTest::b64url_decode($s);
        substr($sig, 10, 1) = chr(ord(substr($sig, 10, 1)) ^ 0x01);
        is_401(get($path, bearer("$h.$p." . AmTest::b64url($sig))), $INVALID,
               "$alg with a flipped signature bit");
    };
}

subtest 'JWKS by kid' => sub {
    is_200_list(get('/jwks/', bearer(tok(alg => 'RS256', key => $jr, kid => 'r1'))),
                'RSA key r1', ['demo-only']);
    is_200_list(get('/jwks/', bearer(tok(alg => 'ES256', key => $je, kid => 'e1'))),
                'EC key e1');
    is_200_list(get('/jwks/', bearer(tok(alg => 'HS256', key => $JWKS_SECRET,
                                         kid => 'h1'))), 'oct key h1');
    mark_log();
    is_401(get('/jwks/', bearer(tok(alg => 'RS256', key => $jr, kid => 'e1'))),
           $INVALID, 'RSA token naming the EC key');
    like(refusal(), qr/algorithm/, 'refused: algorithm not allowed for e1');
};

# ----------------------------------------------------------------- attacks

subtest 'alg none' => sub {
    my $claims = { project => 'demo', role => 'admin', exp => now() + 600 };
    for my $none (qw(none None NONE)) {
        my $bare = AmTest::jwt(alg => 'none', claims => $claims,
                               header => { alg => $none });
        like($bare, qr/\.\z/, "$none: empty signature");
        is_401(get('/hs/', bearer($bare)), $INVALID, "alg $none, no signature");
    }
    # a genuine HS256 signature, but the header claims none
    my $signed = AmTest::jwt(alg => 'HS256', key => $SECRET, claims => $claims,
                             header => { alg => 'none' });
    is_401(get('/hs/', bearer($signed)), $INVALID, 'alg none with a signature');
    # same, but the signature stripped from a valid token
    my ($h, $p) = split /\./, tok();
    my $nh = AmTest::b64url($JSON->encode({ alg => 'none', typ => 'JWT' }));
    is_401(get('/hs/', bearer("$nh.$p.")), $INVALID, 'valid payload, alg none');
    is_401(get('/hs/', bearer("$h.$p.")), $INVALID, 'HS256 header, no signature');
    is_401(get('/hs/', bearer("$nh.$p")), $INVALID, 'alg none, two segments');
};

subtest 'HS256 signed with the RSA public key (alg confusion)' => sub {
    my $pem = $t->read_file($rsa_pub);
    (my $pem_trimmed = $pem) =~ s/\n\z//;
    for my $secret ([ $pem, 'PEM bytes' ], [ $pem_trimmed, 'PEM without final newline' ]) {
        for my $kid ('k1', undef) {
            mark_log();
            my $tk = tok(alg => 'HS256', key => $secret->[0], kid => $kid);
            is_401(get('/rs256/', bearer($tk)), $INVALID,
                   "$secret->[1], kid " . ($kid // 'none'));
        }
    }
    is_200_list(get('/rs256/', bearer(tok(alg => 'RS256', key => $rsa, kid => 'k1'))),
                'the RS256 location accepts its own key');
};

subtest 'alg mismatch' => sub {
    mark_log();
    is_401(get('/rs256/', bearer(tok(alg => 'RS384', key => $rsa, kid => 'k1'))),
           $INVALID, 'RS384 token to the RS256 key');
    like(refusal(), qr/algorithm/, 'refused: algorithm not allowed');
    is_200_list(get('/rs384/', bearer(tok(alg => 'RS384', key => $rsa))),
                'the same RS384 token shape where RS384 is pinned');
    is_401(get('/rs384/', bearer(tok(alg => 'RS256', key => $rsa))), $INVALID,
           'RS256 token to the RS384 key');
    is_401(get('/es256/', bearer(tok(alg => 'ES384', key => $ec384))), $INVALID,
           'ES384 token to the ES256 key');
    is_401(get('/hs/', bearer(tok(alg => 'HS512', key => $SECRET))), $INVALID,
           'HS512 with the right secret to the HS256 key');
    is_401(get('/rs256/', bearer(tok(alg => 'PS256', key => $rsa, kid => 'k1'))),
           $INVALID, 'PS256 (unsupported) with the RSA key');
};

subtest 'exp and nbf' => sub {
    my %c = (project => 'demo', role => 'admin');
    is_200_list(get('/strict/', bearer(tok(claims => { %c, exp => now() + 60 }))),
                'exp in the future, leeway 0');
    mark_log();
    is_401(get('/strict/', bearer(tok(claims => { %c, exp => now() - 20 }))),
           $INVALID, 'exp 20 s ago, leeway 0');
    like(refusal(), qr/expired/, 'refused: expired');
    is_401(get('/strict/', bearer(tok(claims => { %c, exp => now() - 1 }))),
           $INVALID, 'exp 1 s ago, leeway 0');
    is_200_list(get('/leeway/', bearer(tok(claims => { %c, exp => now() - 20 }))),
                'exp 20 s ago, leeway 60');
    is_401(get('/leeway/', bearer(tok(claims => { %c, exp => now() - 120 }))),
           $INVALID, 'exp 120 s ago, leeway 60');

    is_200_list(get('/strict/', bearer(tok(claims => { %c, nbf => now() - 5 }))),
                'nbf in the past');
    mark_log();
    is_401(get('/strict/', bearer(tok(claims => { %c, nbf => now() + 300 }))),
           $INVALID, 'nbf in 5 minutes, leeway 0');
    like(refusal(), qr/yet|nbf/, 'refused: not yet valid');
    is_200_list(get('/leeway/', bearer(tok(claims => { %c, nbf => now() + 20 }))),
                'nbf in 20 s, leeway 60');
    is_401(get('/strict/', bearer(tok(claims => { %c, exp => now() . 'x' }))),
           $INVALID, 'exp not a number');
};

subtest 'issuer and audience' => sub {
    my %c = (project => 'demo', role => 'admin', exp => now() + 600,
             iss => 'https://issuer.test/', aud => 'automations');
    is_200_list(get('/issaud/', bearer(tok(claims => \%c))), 'right iss and aud');
    is_200_list(get('/issaud/', bearer(tok(claims => { %c, aud => [ 'x', 'automations' ] }))),
                'aud as an array containing the audience');
    is_401(get('/issaud/', bearer(tok(claims => { %c, iss => 'https://evil.test/' }))),
           $INVALID, 'wrong iss');
    is_401(get('/issaud/', bearer(tok(claims => { %c, iss => 'https://issuer.test' }))),
           $INVALID, 'iss without its final slash');
    my %no_iss = %c; delete $no_iss{iss};
    is_401(get('/issaud/', bearer(tok(claims => \%no_iss))), $INVALID, 'no iss');
    is_401(get('/issaud/', bearer(tok(claims => { %c, aud => 'other' }))),
           $INVALID, 'wrong aud');
    is_401(get('/issaud/', bearer(tok(claims => { %c, aud => [ 'x', 'y' ] }))),
           $INVALID, 'aud array without the audience');
    my %no_aud = %c; delete $no_aud{aud};
    is_401(get('/issaud/', bearer(tok(claims => \%no_aud))), $INVALID, 'no aud');
    is_200_list(get('/hs/', bearer(tok(claims => { %c, iss => 'x', aud => 'y' }))),
                'iss and aud are not checked where not configured');
};

subtest 'unknown kid in a JWKS-only location' => sub {
    mark_log();
    is_401(get('/jwks/', bearer(tok(alg => 'RS256', key => $jr, kid => 'zz'))),
           $INVALID, 'kid zz, signed by a JWKS key');
    like(refusal(), qr/kid/, 'refused: unknown kid');
    is_401(get('/jwks/', bearer(tok(alg => 'RS256', key => $jr))),
           $INVALID, 'no kid, signed by a JWKS key');
    is_401(get('/jwks/', bearer(tok(alg => 'RS256', key => $jr,
                                    header => { kid => 1 }))),
           $INVALID, 'kid not a string');
};

subtest 'broken base64' => sub {
    my $hdr = AmTest::b64url($JSON->encode({ alg => 'HS256', typ => 'JWT' }));
    my $claims = { project => 'demo', role => 'admin', exp => now() + 600 };
    my $pl = AmTest::b64url($JSON->encode($claims));
    my $sign = sub { my ($in) = @_; "$in." . AmTest::b64url(hmac_sha256($in, $SECRET)) };

    is_200_list(get('/hs/', bearer($sign->("$hdr.$pl"))),
                'hand-built token is accepted');

    # each of these is correctly signed over exactly what is sent
    (my $star = $pl) =~ s/^(.{5})./$1*/;
    is_401(get('/hs/', bearer($sign->("$hdr.$star"))), $INVALID, "'*' in the payload");

    # a payload whose base64 length % 4 is 2 or 3: standard base64 adds '='
    my $pad_claims = $JSON->encode($claims);
    $pad_claims .= ' ' while length(AmTest::b64url($pad_claims)) % 4 < 2;
    my $pp = AmTest::b64url($pad_claims);
    is_200_list(get('/hs/', bearer($sign->("$hdr.$pp"))),
                'payload needing padding, unpadded');
    my $eq = '=' x (4 - length($pp) % 4);
    is_401(get('/hs/', bearer($sign->("$hdr.$pp$eq"))), $INVALID,
           "payload with '$eq' padding");
    my $tk = tok();
    is_401(get('/hs/', bearer("$tk=")), $INVALID, "'=' after the signature");
    # '?' and '>' runs give '/' and '+' in standard base64 whatever the offset
    my $odd = $JSON->encode({ %$claims, note => '???>>>' x 4 });
    (my $std = MIME::Base64::encode_base64($odd, '')) =~ s/=+$//;
    like($std, qr{[+/]}, 'the standard-alphabet payload has + or /');
    is_200_list(get('/hs/', bearer($sign->("$hdr." . AmTest::b64url($odd)))),
                'the same claims in base64url');
    is_401(get('/hs/', bearer($sign->("$hdr.$std"))), $INVALID,
           'standard base64 alphabet (+ /) in the payload');
    is_401(get('/hs/', bearer($sign->("$hdr." . AmTest::b64url('{"project":')))),
           $INVALID, 'payload is not JSON');
    is_401(get('/hs/', bearer($sign->("$hdr." . AmTest::b64url('["demo"]')))),
           $INVALID, 'payload is not an object');
};

subtest 'wrong number of segments' => sub {
    my $tk = tok();
    my ($h, $p, $s) = split /\./, $tk;
    is_401(get('/hs/', bearer("$h.$p")), $INVALID, '2 segments');
    is_401(get('/hs/', bearer("$tk.$s")), $INVALID, '4 segments');
    is_401(get('/hs/', bearer("$h..$s")), $INVALID, 'empty payload segment');
    is_401(get('/hs/', bearer('..')), $INVALID, 'only dots');
    is_401(get('/hs/', bearer('x')), $INVALID, 'one segment');
};

subtest 'oversized tokens' => sub {
    my %c = (project => 'demo', role => 'admin', exp => now() + 600);
    # validly signed; only the size differs
    my $under = tok(claims => { %c, pad => 'x' x 5500 });
    cmp_ok(length $under, '<', 8192, 'a token under 8k');
    is_200_list(get('/hs/', bearer($under)), 'token under the default 8k limit');
    my $over = tok(claims => { %c, pad => 'x' x 5500 . 'y' x 1000 });
    cmp_ok(length $over, '>', 8192, 'a token over 8k');
    mark_log();
    is_401(get('/hs/', bearer($over)), $INVALID, 'token over the default 8k limit');
    like(refusal(), qr/large|size|long/, 'refused: too large');
    my $huge = tok(claims => { %c, pad => 'x' x 75_000 });
    cmp_ok(length $huge, '>', 100_000, 'a 100 KB token');
    is_401(get('/hs/', bearer($huge)), $INVALID, '100 KB token');
    is_200_list(get('/hs/', bearer(tok())), 'nginx still answers');
    ok($t->running('nginx'), 'nginx still runs');
};

subtest 'tampered payload' => sub {
    my $tk = tok();
    my ($h, $p, $s) = split /\./, $tk;
    my $claims = $JSON->decode(AmTest::b64url_decode($p));
    is($claims->{project}, 'demo', 'signed for demo');
    $claims->{project} = 'other';
    my $forged = "$h." . AmTest::b64url($JSON->encode($claims)) . ".$s";
    mark_log();
    is_401(get('/hs/', bearer($forged)), $INVALID, 'project changed after signing');
    like(refusal(), qr/signature/, 'refused: bad signature');
    $claims->{project} = 'demo';
    $claims->{role} = 'admin';
    $claims->{exp} = now() + 999999;
    is_401(get('/hs/', bearer("$h." . AmTest::b64url($JSON->encode($claims)) . ".$s")),
           $INVALID, 'exp extended after signing');
};

subtest 'signature from a different key' => sub {
    is_401(get('/hs/', bearer(tok(key => $SECRET2))), $INVALID, 'another HS256 secret');
    is_401(get('/rs256/', bearer(tok(alg => 'RS256', key => $rsa2, kid => 'k1'))),
           $INVALID, 'another RSA key, same kid');
    is_401(get('/jwks/', bearer(tok(alg => 'RS256', key => $rsa2, kid => 'r1'))),
           $INVALID, 'another RSA key, JWKS kid r1');
    is_401(get('/es256/', bearer(tok(alg => 'ES256', key => $je))),
           $INVALID, 'another P-256 key');
};

subtest 'other header and signature tricks' => sub {
    my $hdr = AmTest::b64url($JSON->encode({ alg => 'HS256', typ => 'JWT' }));
    my $sign = sub { my ($in) = @_; "$in." . AmTest::b64url(hmac_sha256($in, $SECRET)) };
    my $dup = '{"project":"other","role":"admin","project":"demo"}';
    is_401(get('/hs/', bearer($sign->("$hdr." . AmTest::b64url($dup)))), $INVALID,
           'duplicate project claim');
    my $duph = '{"alg":"none","alg":"HS256","typ":"JWT"}';
    my $pl = AmTest::b64url($JSON->encode({ project => 'demo', role => 'admin' }));
    is_401(get('/hs/', bearer($sign->(AmTest::b64url($duph) . ".$pl"))), $INVALID,
           'duplicate alg in the header');
    is_401(get('/hs/', bearer(tok(header => { crit => ['exp'], exp => 1 }))), $INVALID,
           'crit header');
    is_200_list(get('/hs/', bearer(tok(header => { typ => undef }))), 'no typ is fine');

    # ECDSA: JWS wants r||s; the same signature DER-encoded is refused
    my $es = tok(alg => 'ES256', key => $ec256);
    my ($h, $p, $sig) = split /\./, $es;
    my $der = AmTest::Jwt::raw_to_der(AmTest::b64url_decode($sig));
    is_401(get('/es256/', bearer("$h.$p." . AmTest::b64url($der))), $INVALID,
           'ES256 signature in DER form');
    is_200_list(get('/es256/', bearer($es)), 'the same signature as r||s');
};

# ------------------------------------------------------------------ claims

subtest 'automations_jwt_max_size: a longer token is refused with JSON' => sub {
    is_200_list(get('/tiny/', bearer(tok())), 'a short token', ['demo-only']);
    my $long = tok(claims => { project => 'demo', role => 'admin',
                               exp => now() + 600, pad => 'x' x 600 });
    cmp_ok(length $long, '>', 512, 'the token is over 512 bytes');
    my $r = get('/tiny/', bearer($long));
    is($r->{status}, 401, 'over automations_jwt_max_size: 401')
        or diag($r->{body});
    like($r->{headers}{'content-type'} // '', qr{^application/json},
        '401: JSON');
    ok(defined(($r->{json} || {})->{detail}), '401: a detail');
    is(get('/hs/', bearer($long))->{status}, 200,
        'the same token under the 8k default');
};

subtest 'missing project claim' => sub {
    my $r = get('/hs/', bearer(tok(claims => { role => 'admin', exp => now() + 600 })));
    is_denied($r, 'no project claim');
    is_denied(get('/hs/', bearer(tok(claims => { project => [], role => 'admin' }))), 'empty project array');
    # a pinned project is not a grant: the token must name it
    is_denied(get('/pinned/', bearer(tok(claims => { role => 'admin' }))),
           'no project claim where automations_project names the project');
    is_200_list(get('/pinned/', bearer(tok())), 'a demo token there', ['demo-only']);
};

subtest "a token for project 'other' sees other's data only" => sub {
    my $o = tok(claims => { project => 'other', role => 'admin', exp => now() + 600 });
    is_200_list(get('/hs/', bearer($o)), 'list', ['other-only']);
    is(get('/hs/other-only', bearer($o))->{status}, 200, "get other's automation");
    is(get('/hs/demo-only', bearer($o))->{status}, 404, "demo's automation: 404");
    my $r = $t->http(DELETE => '/hs/demo-only', headers => bearer($o));
    is($r->{status}, 404, "delete demo's automation: 404");
    ok($t->redis('EXISTS', 'am:{demo}:automation:demo-only'),
       "demo's automation is still there");
    is_denied(get('/pinned/', bearer($o)),
           "other's token where automations_project is demo");
};

subtest 'a token naming several projects' => sub {
    my $tk = tok(claims => { project => [ 'other', 'demo' ], role => 'read',
                             exp => now() + 600 });
    my $r = get('/hs/', bearer($tk));
    is($r->{status}, 403, 'no automations_project: 403') or diag($r->{body});
    like($r->{json}{detail} // '', qr/several projects/, 'detail says why');
    is_200_list(get('/pinned/', bearer($tk)), 'automations_project demo picks demo',
                ['demo-only']);
};

subtest 'custom claim names' => sub {
    my %std = (project => 'demo', role => 'admin', exp => now() + 600);
    is_200_list(get('/claims/', bearer(tok(claims => { tenant => 'other', perms => 'read',
                                                       exp => now() + 600 }))),
                'tenant/perms', ['other-only']);
    is_denied(get('/claims/', bearer(tok(claims => \%std))),
           'project/role claims are not read there');
    is_denied(get('/claims/', bearer(tok(claims => { tenant => 'demo', role => 'admin' }))), 'role claim ignored: no perms');
    my $r = $t->http(POST => '/claims/',
        headers => bearer(tok(claims => { tenant => 'demo', perms => 'read' })),
        json => { automation_name => 'nope', code => 'x' });
    is_denied($r, 'perms read cannot create');
    is_200_list(get('/claims/', bearer(tok(claims => { tenant => 'demo',
                                                       perms => [ 'write', 'read' ] }))),
                'perms as an array');
};

subtest 'role missing: 404 on every operation' => sub {
    my $tk = tok(claims => { project => 'demo', sub => 'norole', exp => now() + 600 });
    my $h = bearer($tk);
    is_denied(get('/hs/', $h), 'list');
    is_denied(get('/hs/demo-only', $h), 'get');
    is_denied($t->http(POST => '/hs/', headers => $h,
                    json => { automation_name => 'sneaky', code => 'x' }), 'create');
    is_denied($t->http(DELETE => '/hs/demo-only', headers => $h), 'delete');
    ok(!$t->redis('EXISTS', 'am:{demo}:automation:sneaky'), 'nothing created');
    ok($t->redis('EXISTS', 'am:{demo}:automation:demo-only'), 'nothing deleted');
    is_denied(get('/hs/', bearer(tok(claims => { project => 'demo', role => 'superuser' }))), 'unknown role');
    is_200_list(get('/hs/', bearer(tok(claims => { project => 'demo', role => 'read' }))),
                'role read can list');
};

subtest 'malformed project claim' => sub {
    for my $bad ([ 42, 'a number' ], [ 'a/b', '"a/b"' ], [ 'x' x 65, '65 bytes' ],
                 [ 'de mo', 'a space' ], [ { p => 'demo' }, 'an object' ],
                 [ [ 'demo', 7 ], 'an array with a number' ]) {
        is_401(get('/hs/', bearer(tok(claims => { project => $bad->[0], role => 'admin',
                                                  exp => now() + 600 }))),
               $INVALID, "project claim: $bad->[1]");
    }
    is_401(get('/hs/', bearer(tok(claims => { project => 'demo', role => 5 }))),
           $INVALID, 'role claim a number');
};

# ---------------------------------------------------------------- API keys

my $read = $t->ctl_fields('apikey', 'create', 'demo', '--scopes', 'read');
like($read->{key} // '', qr/^amk_demo_[0-9a-f]{64}$/, 'read API key created');
my $other_key = $t->ctl_fields('apikey', 'create', 'other', '--scopes', 'admin');

subtest 'API keys' => sub {
    my $key = $read->{key};
    is_200_list(get('/hs/', bearer($key)), 'valid key', ['demo-only']);
    is_200_list(get('/hs/', bearer($other_key->{key})), "other's key sees other's data",
                ['other-only']);

    # one hex digit of the secret changed
    (my $wrong = $key) =~ s/(.)$/$1 eq '0' ? '1' : '0'/e;
    isnt($wrong, $key, 'changed one hex digit');
    mark_log();
    is_401(get('/hs/', bearer($wrong)), $INVALID, 'wrong secret');
    (my $wrong2 = $key) =~ s/^(amk_demo_.{10})(.)/$1 . ($2 eq 'a' ? 'b' : 'a')/e;
    is_401(get('/hs/', bearer($wrong2)), $INVALID, 'wrong secret (a middle digit)');

    my $hex = 'ab' x 32;
    for my $m ('amk_', 'amk_demo_short', "amk_bad/name_$hex", "amk_demo_${hex}0",
               "amk__$hex", 'amk_demo_' . uc($hex), "amk_demo_" . substr($hex, 1),
               "amk_other_" . substr($key, 9)) {
        is_401(get('/hs/', bearer($m)), $INVALID, "malformed or foreign: $m");
    }
};

subtest 'revoked API key' => sub {
    my $k = $t->ctl_fields('apikey', 'create', 'demo', '--scopes', 'read');
    is_200_list(get('/hs/', bearer($k->{key})), 'before revoking');
    $t->ctl('apikey', 'revoke', 'demo', $k->{id});
    is_401(get('/hs/', bearer($k->{key})), $INVALID, 'after revoking');
    is_200_list(get('/hs/', bearer($read->{key})), 'another key still works');
};

subtest "another project's key on automations_project demo" => sub {
    is_200_list(get('/pinned/', bearer($read->{key})), "demo's key", ['demo-only']);
    is_denied(get('/pinned/', bearer($other_key->{key})), "other's key");
};

subtest 'API key scopes' => sub {
    my $r = $t->http(POST => '/hs/', headers => bearer($read->{key}),
                     json => { automation_name => 'by-read-key', code => 'x' });
    is_denied($r, 'read key: create');
    $r = $t->http(DELETE => '/hs/demo-only', headers => bearer($read->{key}));
    is_denied($r, 'read key: delete');
    is(get('/hs/demo-only', bearer($read->{key}))->{status}, 200, 'read key: get');
    ok(!$t->redis('EXISTS', 'am:{demo}:automation:by-read-key'), 'nothing created');
    ok($t->redis('EXISTS', 'am:{demo}:automation:demo-only'), 'nothing deleted');

    my $w = $t->ctl_fields('apikey', 'create', 'demo', '--scopes', 'write');
    $r = $t->http(POST => '/hs/', headers => bearer($w->{key}),
                  json => { automation_name => 'by-write-key', code => 'x' });
    is($r->{status}, 200, 'write key: create') or diag($r->{body});
    is_denied(get('/hs/', bearer($w->{key})), 'write key: list');
    is($t->http(DELETE => '/hs/by-write-key', headers => bearer($w->{key}))->{status},
       200, 'write key: delete');
};

# ------------------------------------------------------------- token pairs

subtest 'token pairs' => sub {
    my $p = $t->ctl_fields('tokenpair', 'create', 'demo');
    like($p->{token} // '', qr/^amt_[0-9a-f]{64}$/, 'token');
    like($p->{api_key} // '', qr/^amx_[0-9a-f]{64}$/, 'X-Api-Key');

    my $r = get('/tok/x', { Authorization => "Token $p->{token}",
                            'X-Api-Key' => $p->{api_key} });
    is($r->{status}, 200, 'Token <t> + X-Api-Key: 200') or diag($r->{body});
    is($r->{body}, "demo|tokenpair:$p->{id}|tokenpair", 'the service sees who calls');

    $r = get('/tok/x', { Authorization => $p->{token}, 'X-Api-Key' => $p->{api_key} });
    is($r->{status}, 200, 'bare token + X-Api-Key: 200');
    is($r->{body}, "demo|tokenpair:$p->{id}|tokenpair", 'the service sees who calls (bare)');

    is_401(get('/tok/x', { Authorization => "Token $p->{token}" }), $MISSING,
           'no X-Api-Key', scheme => 'Token');
    is_401(get('/tok/x', { Authorization => "Token $p->{token}", 'X-Api-Key' => '' }),
           $MISSING, 'empty X-Api-Key', scheme => 'Token');
    is_401(get('/tok/x', { 'X-Api-Key' => $p->{api_key} }), $MISSING,
           'no Authorization', scheme => 'Token');

    (my $wrong = $p->{api_key}) =~ s/(.)$/$1 eq '0' ? '1' : '0'/e;
    is_401(get('/tok/x', { Authorization => "Token $p->{token}", 'X-Api-Key' => $wrong }),
           'Invalid token.', 'wrong X-Api-Key', scheme => 'Token');
    (my $wrong_t = $p->{token}) =~ s/(.)$/$1 eq '0' ? '1' : '0'/e;
    is_401(get('/tok/x', { Authorization => "Token $wrong_t", 'X-Api-Key' => $p->{api_key} }),
           'Invalid token.', 'wrong token', scheme => 'Token');
    is_401(get('/tok/x', { Authorization => "Token $p->{api_key}", 'X-Api-Key' => $p->{token} }),
           'Invalid token.', 'token and X-Api-Key swapped', scheme => 'Token');
    is_401(get('/tok/x', { Authorization => 'Bearer ' . tok() }), $MISSING,
           'a JWT where only token pairs are accepted', scheme => 'Token');

    my $o = $t->ctl_fields('tokenpair', 'create', 'other');
    is_403(get('/tok/x', { Authorization => "Token $o->{token}", 'X-Api-Key' => $o->{api_key} }),
           $NOACCESS, "a pair for project 'other'");
    my $both = $t->ctl_fields('tokenpair', 'create', 'other', 'demo');
    $r = get('/tok/x', { Authorization => "Token $both->{token}",
                         'X-Api-Key' => $both->{api_key} });
    is($r->{status}, 200, 'a pair for other and demo');
    is($r->{body}, "demo|tokenpair:$both->{id}|tokenpair", 'acts on demo');

    $t->ctl('tokenpair', 'revoke', $p->{id});
    is_401(get('/tok/x', { Authorization => "Token $p->{token}", 'X-Api-Key' => $p->{api_key} }),
           'Invalid token.', 'revoked pair', scheme => 'Token');
    is(get('/tok/x', { Authorization => "Token $both->{token}",
                       'X-Api-Key' => $both->{api_key} })->{status}, 200,
       'another pair still works');
};

# ------------------------------------------------------------ Redis down

subtest 'Redis down during an API-key lookup' => sub {
    my $h = bearer($read->{key});
    is_200_list(get('/hs/', $h), 'before');
    $t->stop_redis;
    my $r = get('/hs/', $h);
    is($r->{status}, 503, 'Redis down: 503') or diag($r->{body});
    is_deeply($r->{json}, { detail => $DOWN }, 'JSON detail');
    like($r->{headers}{'content-type'} // '', qr{^application/json}, 'JSON content type');
    $r = get('/tok/x', { Authorization => "Token amt_" . ('0' x 64),
                         'X-Api-Key' => 'amx_' . ('0' x 64) });
    is($r->{status}, 503, 'token-pair lookup with Redis down: 503');

    $t->start_redis;
    my $back = $t->wait_for(sub { get('/hs/', $h)->{status} == 200 },
                            $t->valgrind ? 60 : 15, 'the module to reconnect');
    ok($back, 'works again after Redis is back');
    is_200_list(get('/hs/', $h), 'after', ['demo-only']);
};

$t->stop_nginx;
$t->error_log_clean;

done_testing;
