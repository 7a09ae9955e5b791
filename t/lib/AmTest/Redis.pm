package AmTest::Redis;

# A tiny pure-Perl Redis client (RESP2, plus the RESP3 types in case a test
# switches with HELLO 3), enough for tests to look at and prepare Redis data.
#
#   my $r = AmTest::Redis->new(host => '127.0.0.1', port => 6379,
#                              password => 'secret', timeout => 10);
#   my $v = $r->command('HGETALL', 'am:{demo}:automation:hello');
#   my ($v, $err) = $r->try('XADD', ...);
#   $r->disconnect;
#
# Replies become Perl data: status and bulk strings -> string, integer ->
# number, nil -> undef, array -> arrayref (RESP3 map -> hashref, boolean ->
# 1/0, double -> number).  An error reply makes command() die with the
# message ("ERR unknown command ..."), while try() returns (undef, $message)
# and ($value, undef) on success.
#
# The connection is opened on first use and kept.  If it turns out to be dead
# (Redis was restarted) the command is sent again once on a new connection;
# a command that reached a dead socket was never executed, so this is safe.

use strict;
use warnings;

use IO::Socket::INET;
use IO::Select;
use Errno qw(EINTR EAGAIN);

sub new {
    my ($class, %o) = @_;

    return bless {
        host     => $o{host} // '127.0.0.1',
        port     => $o{port} // die("AmTest::Redis: port required\n"),
        password => $o{password},
        timeout  => $o{timeout} // 10,
        sock     => undef,
        buf      => '',
    }, $class;
}

sub disconnect {
    my ($self) = @_;

    close($self->{sock}) if $self->{sock};
    $self->{sock} = undef;
    $self->{buf}  = '';
}

# Runs one command; dies on an error reply or when Redis cannot be reached.
sub command {
    my ($self, @cmd) = @_;
    my ($v, $err) = $self->try(@cmd);

    die "redis @{[ _show(@cmd) ]}: $err\n" if defined $err;
    return $v;
}

# Runs one command; returns ($value, undef) or (undef, $error_message).
# A connection failure is not an error reply: it still dies.
sub try {
    my ($self, @cmd) = @_;
    my $req = encode_command(@cmd);

    for my $attempt (1, 2) {
        my $fresh = !$self->{sock};
        $self->_connect if $fresh;

        my $reply = eval { $self->_send($req); $self->_read_reply };
        if (my $e = $@) {
            $self->disconnect;
            die $e if $fresh || $attempt == 2 || $e !~ /^AmTest::Redis: (?:connection closed|write failed)/;
            next;
        }
        return ref $reply eq 'AmTest::Redis::Error'
            ? (undef, $$reply)
            : ($reply, undef);
    }
}

# RESP encoding of a command: an array of bulk strings.  Character strings
# are sent as UTF-8.
sub encode_command {
    my (@cmd) = @_;
    my $out = '*' . scalar(@cmd) . "\r\n";

    for my $arg (@cmd) {
        my $b = defined $arg ? "$arg" : '';
        utf8::encode($b) if utf8::is_utf8($b);
        $out .= '$' . length($b) . "\r\n" . $b . "\r\n";
    }
    return $out;
}

sub _connect {
    my ($self) = @_;
    my $sock = IO::Socket::INET->new(
        PeerAddr => $self->{host},
        PeerPort => $self->{port},
        Proto    => 'tcp',
        Timeout  => $self->{timeout},
    ) or die "AmTest::Redis: cannot connect to $self->{host}:$self->{port}: $@\n";

    binmode($sock);
    $self->{sock} = $sock;
    $self->{buf}  = '';

    if (defined $self->{password} && length $self->{password}) {
        $self->_send(encode_command('AUTH', $self->{password}));
        my $r = $self->_read_reply;
        if (ref $r eq 'AmTest::Redis::Error') {
            $self->disconnect;
            die "AmTest::Redis: AUTH failed: $$r\n";
        }
    }
}

sub _send {
    my ($self, $data) = @_;
    local $SIG{PIPE} = 'IGNORE';

    while (length $data) {
        my $n = syswrite($self->{sock}, $data);
        if (!defined $n) {
            next if $! == EINTR;
            die "AmTest::Redis: write failed: $!\n";
        }
        substr($data, 0, $n, '');
    }
}

# Makes sure at least $need bytes are buffered.
sub _fill {
    my ($self, $need) = @_;
    my $sel = IO::Select->new($self->{sock});

    while (length($self->{buf}) < $need) {
        $sel->can_read($self->{timeout})
            or die "AmTest::Redis: no reply within $self->{timeout} s\n";
        my $n = sysread($self->{sock}, $self->{buf}, 65536, length $self->{buf});
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            die "AmTest::Redis: connection closed: $!\n";
        }
        die "AmTest::Redis: connection closed by server\n" if $n == 0;
    }
}

sub _line {
    my ($self) = @_;
    my $i;

    while (($i = index($self->{buf}, "\r\n")) < 0) {
        $self->_fill(length($self->{buf}) + 1);
    }
    my $line = substr($self->{buf}, 0, $i);
    substr($self->{buf}, 0, $i + 2, '');
    return $line;
}

sub _bytes {
    my ($self, $len) = @_;

    $self->_fill($len + 2);
    my $data = substr($self->{buf}, 0, $len);
    substr($self->{buf}, 0, $len + 2, '');
    return $data;
}

sub _read_reply {
    my ($self) = @_;
    my $line = $self->_line;
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    if ($type eq '+') { return $rest }
    if ($type eq '-') { return bless \$rest, 'AmTest::Redis::Error' }
    if ($type eq ':') { return 0 + $rest }
    if ($type eq '$') { return $rest < 0 ? undef : $self->_bytes($rest) }
    if ($type eq '*' || $type eq '~' || $type eq '>') {
        return undef if $rest < 0;
        # An error nested in an array (EXEC, pipelines) stays a value.
        return [ map { _unbless($self->_read_reply) } 1 .. $rest ];
    }
    if ($type eq '%') {
        my %h;
        for (1 .. $rest) {
            my $k = _unbless($self->_read_reply);
            $h{$k} = _unbless($self->_read_reply);
        }
        return \%h;
    }
    if ($type eq '_') { return undef }
    if ($type eq '#') { return $rest eq 't' ? 1 : 0 }
    if ($type eq ',') { return 0 + $rest }
    if ($type eq '(') { return $rest }
    if ($type eq '=' || $type eq '!') {
        my $s = $self->_bytes($rest);
        return $type eq '!' ? bless(\$s, 'AmTest::Redis::Error') : substr($s, 4);
    }
    $self->disconnect;
    die "AmTest::Redis: protocol error, unexpected line '$line'\n";
}

# Errors inside arrays are returned as "ERR ..." strings.
sub _unbless {
    my ($v) = @_;
    return ref $v eq 'AmTest::Redis::Error' ? $$v : $v;
}

sub _show {
    my $s = join ' ', map { defined $_ ? $_ : '' } @_;
    return length $s > 200 ? substr($s, 0, 200) . '...' : $s;
}

1;
