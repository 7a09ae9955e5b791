package AmTest::Jwt;

# JWT, JWK and key helpers for tests, written independently of the project's
# C code so that tests never trust our own signer or parser.  HMAC uses
# Digest::SHA; RSA, ECDSA and EdDSA run the `openssl` command.
#
#   my $tok = AmTest::Jwt::jwt(alg => 'RS256', key => '/tmp/x/k1.key',
#                              kid => 'k1', claims => { sub => 'u1' });
#   my ($key, $pub) = AmTest::Jwt::gen_key(dir => $dir, type => 'ec256',
#                                          name => 'k1');
#   my $jwk  = AmTest::Jwt::jwk({ kid => 'k1', pub => $pub, alg => 'ES256' });
#   AmTest::Jwt::write_jwks("$dir/jwks.json", [ { ... }, { ... } ]);
#
# AmTest re-exports these as AmTest::jwt(), $t->gen_key() and $t->jwks().

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 hmac_sha384 hmac_sha512);
use File::Temp qw(tempfile);
use JSON::PP;
use POSIX ();
use MIME::Base64 qw(encode_base64 decode_base64);

my %HMAC = (
    HS256 => \&hmac_sha256,
    HS384 => \&hmac_sha384,
    HS512 => \&hmac_sha512,
);

my %DIGEST = (
    RS256 => 'sha256', RS384 => 'sha384', RS512 => 'sha512',
    PS256 => 'sha256', PS384 => 'sha384', PS512 => 'sha512',
    ES256 => 'sha256', ES384 => 'sha384', ES512 => 'sha512',
);

# Size in bytes of each of r and s in a JWS ECDSA signature.
my %EC_SIZE = (ES256 => 32, ES384 => 48, ES512 => 66);

my $JSON = JSON::PP->new->utf8->canonical;

sub b64url {
    my ($bytes) = @_;
    my $s = encode_base64($bytes, '');

    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

sub b64url_decode {
    my ($s) = @_;

    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return decode_base64($s);
}

# Builds a compact JWS.
#
#   alg     HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512,
#           EdDSA (Ed25519 or Ed448 key) or none (empty signature); used to
#           sign and, unless header overrides it, written into the header
#   key     HMAC secret (string) or path of a private PEM key
#   kid     written into the header when given
#   header  extra header fields; they override alg/typ/kid, and an undef
#           value removes a field (to build tokens that lie about alg)
#   claims  payload hashref (encoded canonical)
#   payload raw payload bytes instead of claims (to test broken JSON)
#   raw_header  raw header bytes instead of the generated JSON
#
# Returns "header.payload.signature".
sub jwt {
    my (%o) = @_;
    my $alg = $o{alg} // 'HS256';
    my %h = (alg => $alg, typ => 'JWT');

    $h{kid} = $o{kid} if defined $o{kid};
    while (my ($k, $v) = each %{ $o{header} || {} }) {
        if (defined $v) { $h{$k} = $v } else { delete $h{$k} }
    }

    my $header = $o{raw_header} // $JSON->encode(\%h);
    my $payload = $o{payload} // $JSON->encode($o{claims} || {});
    my $input = b64url($header) . '.' . b64url($payload);

    return $input . '.' . b64url(sign($alg, $o{key}, $input));
}

# Signs $input the JWS way; returns the raw signature bytes.
sub sign {
    my ($alg, $key, $input) = @_;

    return '' if $alg eq 'none';
    return $HMAC{$alg}->($input, $key // '') if $HMAC{$alg};

    # EdDSA signs the message itself (RFC 8032), no digest first
    if ($alg eq 'EdDSA') {
        die "AmTest::Jwt: EdDSA needs key => private PEM path\n"
            unless defined $key && -r $key;
        return openssl_io($input, 'pkeyutl', '-sign', '-inkey', $key,
                          '-rawin', '-in');
    }

    my $md = $DIGEST{$alg} or die "AmTest::Jwt: unsupported alg '$alg'\n";
    die "AmTest::Jwt: $alg needs key => private PEM path\n"
        unless defined $key && -r $key;

    my @pss = $alg =~ /^PS/
        ? ('-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest')
        : ();
    my $sig = openssl_io($input, 'dgst', "-$md", '-sign', $key, @pss);

    return $EC_SIZE{$alg} ? der_to_raw($sig, $EC_SIZE{$alg}) : $sig;
}

# ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } to r||s, each
# left-padded to $size bytes.
sub der_to_raw {
    my ($der, $size) = @_;
    my @b = unpack('C*', $der);
    my $i = 0;

    die "AmTest::Jwt: bad DER signature\n" unless $b[$i++] == 0x30;
    _der_len(\@b, \$i);

    my $out = '';
    for (1, 2) {
        die "AmTest::Jwt: bad DER integer\n" unless $b[$i++] == 0x02;
        my $len = _der_len(\@b, \$i);
        my $int = pack('C*', @b[$i .. $i + $len - 1]);
        $i += $len;
        $int =~ s/^\x00+//;
        die "AmTest::Jwt: integer too long\n" if length $int > $size;
        $out .= ("\x00" x ($size - length $int)) . $int;
    }
    return $out;
}

sub _der_len {
    my ($b, $i) = @_;
    my $len = $b->[$$i++];

    return $len if $len < 0x80;
    my $n = $len & 0x7f;
    $len = 0;
    $len = ($len << 8) | $b->[$$i++] for 1 .. $n;
    return $len;
}

# The reverse, r||s to DER, for tests that verify an ES* token with openssl.
sub raw_to_der {
    my ($raw) = @_;
    my $half = length($raw) / 2;
    my $body = '';

    for my $part (substr($raw, 0, $half), substr($raw, $half)) {
        (my $int = $part) =~ s/^\x00+//;
        $int = "\x00" . $int if $int eq '' || ord($int) & 0x80;
        $body .= "\x02" . _der_enc_len(length $int) . $int;
    }
    return "\x30" . _der_enc_len(length $body) . $body;
}

sub _der_enc_len {
    my ($len) = @_;
    return chr($len) if $len < 0x80;
    my $b = '';
    while ($len) { $b = chr($len & 0xff) . $b; $len >>= 8 }
    return chr(0x80 | length $b) . $b;
}

# Runs `openssl @args` with $input in a temporary file given as the last
# argument (if defined); returns stdout, dies with stderr on failure.
sub openssl_io {
    my ($input, @args) = @_;
    my (@tmp, $in, $err);

    if (defined $input) {
        ($in, my $inpath) = tempfile(UNLINK => 1);
        binmode $in;
        print $in $input;
        close $in;
        push @args, $inpath;
        push @tmp, $inpath;
    }
    my ($efh, $epath) = tempfile(UNLINK => 1);
    push @tmp, $epath;

    my $pid = open(my $out, '-|');
    die "AmTest::Jwt: fork: $!\n" unless defined $pid;
    if (!$pid) {
        open(STDERR, '>', $epath);
        open(STDIN, '<', '/dev/null');
        exec('openssl', @args) or POSIX::_exit(127);
    }
    binmode $out;
    my $data = do { local $/; <$out> };
    close $out;
    my $rc = $? >> 8;

    if ($rc != 0) {
        $err = do { local (@ARGV, $/) = ($epath); <> } // '';
        unlink @tmp;
        die "AmTest::Jwt: openssl @args failed ($rc): $err\n";
    }
    unlink @tmp;
    return $data // '';
}

# Generates a key pair with the openssl command.
#   type  rsa (default 2048 bits, option bits), ec256, ec384, ec521,
#         ed25519, ed448
# Writes <dir>/<name>.key (private PEM) and <dir>/<name>.pub (public PEM),
# world-readable so that nginx workers running as another user can read
# them; returns both paths.
sub gen_key {
    my (%o) = @_;
    my $type = $o{type} // 'rsa';
    my $name = $o{name} // $type;
    my $key = "$o{dir}/$name.key";
    my $pub = "$o{dir}/$name.pub";
    my %curve = (ec256 => 'P-256', ec384 => 'P-384', ec521 => 'P-521');
    my %okp = (ed25519 => 'ED25519', ed448 => 'ED448');
    my @gen;

    if ($type eq 'rsa') {
        @gen = ('-algorithm', 'RSA',
                '-pkeyopt', 'rsa_keygen_bits:' . ($o{bits} // 2048));
    } elsif ($curve{$type}) {
        @gen = ('-algorithm', 'EC',
                '-pkeyopt', "ec_paramgen_curve:$curve{$type}",
                '-pkeyopt', 'ec_param_enc:named_curve');
    } elsif ($okp{$type}) {
        @gen = ('-algorithm', $okp{$type});
    } else {
        die "AmTest::Jwt: unknown key type '$type'\n";
    }

    openssl_io(undef, 'genpkey', @gen, '-out', $key);
    openssl_io(undef, 'pkey', '-in', $key, '-pubout', '-out', $pub);
    chmod 0644, $key, $pub;
    return ($key, $pub);
}

# Public key components read from `openssl pkey -pubin -text -noout`.
# Returns { kty => 'RSA', n => bytes, e => bytes },
# { kty => 'EC', crv => 'P-256', x => bytes, y => bytes } or
# { kty => 'OKP', crv => 'Ed25519', x => bytes }.
sub pub_components {
    my ($pub) = @_;
    my $text = openssl_io(undef, 'pkey', '-pubin', '-in', $pub, '-text', '-noout');

    if ($text =~ /^Modulus:\s*\n((?:\s+[0-9a-f:]+\n)+)/m) {
        my $n = _hex_block($1);
        $n =~ s/^\x00+//;
        my ($e) = $text =~ /^Exponent:\s*(\d+)/m
            or die "AmTest::Jwt: no exponent in $pub\n";
        my $eb = '';
        while ($e) { $eb = chr($e & 0xff) . $eb; $e = int($e / 256) }
        return { kty => 'RSA', n => $n, e => $eb };
    }

    if ($text =~ /^(ED25519|ED448) Public-Key:\s*\npub:\s*\n((?:\s+[0-9a-f:]+\n)+)/m) {
        return { kty => 'OKP', crv => $1 eq 'ED25519' ? 'Ed25519' : 'Ed448',
                 x => _hex_block($2) };
    }

    if ($text =~ /^pub:\s*\n((?:\s+[0-9a-f:]+\n)+)/m) {
        my $point = _hex_block($1);
        my ($crv) = $text =~ /^NIST CURVE:\s*(\S+)/m;
        die "AmTest::Jwt: unknown curve in $pub\n" unless $crv;
        die "AmTest::Jwt: compressed EC point in $pub\n"
            unless substr($point, 0, 1) eq "\x04";
        my $half = (length($point) - 1) / 2;
        return { kty => 'EC', crv => $crv,
                 x => substr($point, 1, $half),
                 y => substr($point, 1 + $half) };
    }

    die "AmTest::Jwt: cannot parse public key $pub:\n$text\n";
}

sub _hex_block {
    my ($block) = @_;
    $block =~ s/[\s:]//g;
    return pack('H*', $block);
}

# One JWK from { kid, alg, pub => public PEM path } or
# { kid, alg, secret => HMAC secret }.  Optional extra => { field => value }
# is merged last (undef removes a field), e.g. { use => 'enc' }.
sub jwk {
    my ($k) = @_;
    my %j;

    if (defined $k->{secret}) {
        %j = (kty => 'oct', k => b64url($k->{secret}));
    } elsif (defined $k->{pub}) {
        my $c = pub_components($k->{pub});
        %j = $c->{kty} eq 'RSA'
            ? (kty => 'RSA', n => b64url($c->{n}), e => b64url($c->{e}))
            : $c->{kty} eq 'OKP'
            ? (kty => 'OKP', crv => $c->{crv}, x => b64url($c->{x}))
            : (kty => 'EC', crv => $c->{crv},
               x => b64url($c->{x}), y => b64url($c->{y}));
    } else {
        die "AmTest::Jwt: jwk needs pub => path or secret => string\n";
    }

    $j{kid} = $k->{kid} if defined $k->{kid};
    $j{alg} = $k->{alg} if defined $k->{alg};
    $j{use} = $k->{use} // 'sig';
    while (my ($f, $v) = each %{ $k->{extra} || {} }) {
        if (defined $v) { $j{$f} = $v } else { delete $j{$f} }
    }
    return \%j;
}

# Writes { "keys": [ jwk, ... ] } to $file; returns the data written.
sub write_jwks {
    my ($file, $keys) = @_;
    my $set = { keys => [ map { jwk($_) } @$keys ] };

    open(my $fh, '>', $file) or die "AmTest::Jwt: $file: $!\n";
    print $fh JSON::PP->new->canonical->pretty->encode($set);
    close $fh;
    chmod 0644, $file;
    return $set;
}

1;
