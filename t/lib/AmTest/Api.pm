package AmTest::Api;

=head1 NAME

AmTest::Api - what the .t files of the gateway share: credentials made with
automationsctl, execution records, webhooks, raw requests, Redis dumps

=head1 SYNOPSIS

    use AmTest;
    use AmTest::Api qw(bearer finished);

    my $t = AmTest->new;            # AmTest inherits the methods below
    my $key = $t->apikey('demo', 'read write run');
    my $r = $t->api($key, GET => '/automations/v1/');
    my $rec = $t->wait_done('demo', $r->{json}{execution_id});

=head1 METHODS (on an AmTest object)

    $t->ctl_fields(@args)      runs automationsctl @args; its "name=value"
                               lines as a hashref (a failing test if the
                               exit code is not 0)
    $t->apikey($project, $scopes)   the key (ctl_fields for its id too)
    $t->tokenpair(@projects)   { id, token, api_key, ... }
    $t->webhook_secret($project)    whsec_... (the project's secret)
    $t->api($auth, $method, $path, %http)   a request with
                               "Authorization: Bearer $auth" (none if $auth
                               is undef), JSON Content-Type for a body
    $t->tokenpair_request($pair, $method, $path, %http)   the same with a
                               token pair: form => 'bare' drops "Token "
    $t->hgetall($key)          hashref
    $t->execution($project, $id)        the execution record (hashref)
    $t->wait_done($project, $id, $s)    waits (15 s) until it finished
    $t->wait_webhook($project, $id, $state, $s)   until its webhook_state
    $t->received_for($id)      requests the receiver got for an execution
    $t->start_worker($name, @args)      automations-worker --redis ...
                               --name $name @args, as process $name
    $t->open_request($method, $path, headers => {..}, body => $b)
                               a request on a new connection, unanswered
                               yet: the socket
    $t->read_response($sock, $timeout)  reads it to EOF: parse_response()
    $t->redis_dump             { key => its content as text }, every key
    $t->redis_snapshot         the same as one text, to compare

=head1 FUNCTIONS (exported on request)

    bearer($token)             { Authorization => "Bearer $token" }
    now()                      time in whole seconds
    finished($status)          success, error or timed_out
    verify_signature($req, $secret)   a received webhook carries a
                               webhook-signature made with $secret

=cut

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_base64);
use Exporter qw(import);
use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw(decode_base64);
use Test::More ();
use Time::HiRes qw(time);

our @EXPORT_OK = qw(bearer now finished verify_signature);

# ---------------------------------------------------------- credentials

sub ctl_fields {
    my ($self, @args) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $out = $self->ctl(@args) // '';
    return { $out =~ /^(\w+)=(.*)$/mg };
}

sub apikey {
    my ($self, $project, $scopes) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $f = $self->ctl_fields('apikey', 'create', $project,
                              '--scopes', $scopes);

    die "AmTest: no API key for $project\n" unless $f->{key};
    return $f->{key};
}

sub tokenpair {
    my ($self, @projects) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return $self->ctl_fields('tokenpair', 'create', @projects);
}

sub webhook_secret {
    my ($self, $project) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $s = $self->ctl('webhook', 'secret', $project);
    chomp $s;
    return $s;
}

sub bearer { return { Authorization => "Bearer $_[0]" } }

# Tokens are checked against the clock of nginx, which may start slowly
# under valgrind: never a time taken once at the start.
sub now { return CORE::time() }

# ------------------------------------------------------------- requests

sub api {
    my ($self, $auth, $method, $path, %o) = @_;
    my %h = %{ delete $o{headers} || {} };

    $h{Authorization} = "Bearer $auth" if defined $auth;
    $h{'Content-Type'} //= 'application/json' if defined $o{body};
    return $self->http($method, $path, headers => \%h, %o);
}

sub tokenpair_request {
    my ($self, $pair, $method, $path, %o) = @_;
    my $form = delete $o{form} // 'token';
    my %h = (
        Authorization => ($form eq 'bare' ? '' : 'Token ') . $pair->{token},
        'X-Api-Key'   => $pair->{api_key},
        %{ delete $o{headers} || {} },
    );

    defined $h{$_} or delete $h{$_} for keys %h;
    $h{'Content-Type'} //= 'application/json' if defined $o{body};
    return $self->http($method, $path, headers => \%h, %o);
}

sub open_request {
    my ($self, $method, $path, %o) = @_;
    my $h = $o{headers} || {};
    my $body = $o{body};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $o{port} // $self->port, Proto => 'tcp', Timeout => 5)
        or die "AmTest: open_request: cannot connect: $@\n";

    binmode $s;
    print $s "$method $path HTTP/1.1\r\nHost: localhost\r\n",
        map({ "$_: $h->{$_}\r\n" } sort keys %$h),
        (defined $body ? ('Content-Length: ' . length($body) . "\r\n") : ()),
        "Connection: close\r\n\r\n", $body // '';
    $s->flush;
    return $s;
}

sub read_response {
    my ($self, $s, $timeout) = @_;
    my $buf = '';
    my $sel = IO::Select->new($s);
    my $end = time + $timeout;

    while ((my $left = $end - time) > 0) {
        last unless $sel->can_read($left);
        last unless sysread($s, $buf, 65536, length $buf);
    }
    close $s;
    return AmTest::parse_response($buf);
}

# ------------------------------------------------------------ executions

sub hgetall {
    my ($self, $key) = @_;
    return { @{ $self->redis('HGETALL', $key) } };
}

sub execution {
    my ($self, $project, $id) = @_;
    return $self->hgetall("am:{$project}:execution:$id");
}

sub finished {
    my ($s) = @_;
    return defined $s && $s =~ /^(?:success|error|timed_out)$/;
}

sub wait_done {
    my ($self, $project, $id, $timeout) = @_;
    $self->wait_for(sub { finished($self->execution($project, $id)->{status}) },
                    $self->_scale($timeout // 15), "execution $id");
    return $self->execution($project, $id);
}

sub wait_webhook {
    my ($self, $project, $id, $state, $timeout) = @_;
    $self->wait_for(sub {
        ($self->execution($project, $id)->{webhook_state} // '') eq $state
    }, $self->_scale($timeout // 15), "webhook of $id $state");
    return $self->execution($project, $id);
}

sub start_worker {
    my ($self, $name, @args) = @_;
    return $self->spawn(name => $name,
        cmd => [ $ENV{AM_WORKER} // $self->build . '/automations-worker',
                 '--redis', $self->redis_addr, '--name', $name, @args ]);
}

# ------------------------------------------------------------- webhooks

sub received_for {
    my ($self, $id) = @_;
    return [ grep { ($_->{json}{execution_id} // '') eq $id }
             @{ $self->received } ];
}

# Standard Webhooks: v1,base64(HMAC-SHA256(id.timestamp.body)) keyed with
# the secret after its "whsec_" prefix, base64-decoded.
sub verify_signature {
    my ($req, $secret) = @_;
    my ($id, $ts, $sig) =
        @{ $req->{headers} }{qw(webhook-id webhook-timestamp webhook-signature)};
    return 0 unless defined $id && defined $ts && defined $sig;
    my $mac = hmac_sha256_base64("$id.$ts.$req->{body}",
                                 decode_base64(substr($secret, 6)));
    $mac .= '=' while length($mac) % 4;
    return scalar grep { $_ eq "v1,$mac" } split / /, $sig;
}

# ---------------------------------------------------------------- redis

# Hash fields are sorted, so that two dumps of the same data are equal.
sub redis_dump {
    my ($self) = @_;
    my %d;

    for my $key (@{ $self->redis('KEYS', '*') }) {
        my $type = $self->redis('TYPE', $key);
        my $v;
        if ($type eq 'hash') {
            my %h = @{ $self->redis('HGETALL', $key) };
            $v = [ map { ($_, $h{$_}) } sort keys %h ];
        } else {
            $v = $type eq 'string' ? [ $self->redis('GET', $key) ]
               : $type eq 'zset'   ? $self->redis('ZRANGE', $key, 0, -1,
                                                  'WITHSCORES')
               : $type eq 'set'    ? [ sort @{ $self->redis('SMEMBERS', $key) } ]
               : $type eq 'list'   ? $self->redis('LRANGE', $key, 0, -1)
               : $type eq 'stream' ? [ map { $_->[0], @{ $_->[1] } }
                                       @{ $self->redis('XRANGE', $key,
                                                       '-', '+') } ]
               : [ "($type)" ];
        }
        $d{$key} = join "\n", map { $_ // '' } @$v;
    }
    return \%d;
}

# The keys a request can change, as text: the workers' heartbeats
# (`am:workers`, `am:worker:NAME`) move on their own clock and are left out.
sub redis_snapshot {
    my ($self) = @_;
    my $d = $self->redis_dump;
    return join '', map { "== $_\n$d->{$_}\n" }
                    grep { !/^am:workers?(?::|$)/ } sort keys %$d;
}

1;
