package AmTest::Receiver;

# A small HTTP/1.1 server that stands in for a webhook endpoint.  AmTest
# runs serve() in a forked child (see AmTest::start_receiver); tests read
# what it recorded with read_records().
#
# Every request is appended as one JSON line to <dir>/received.jsonl:
#
#   { "seq": 1, "time": 1700000000.123, "method": "POST",
#     "path": "/hook?x=1", "headers": { "content-type": "...", ... },
#     "header_list": [ ["Content-Type", "..."], ... ],
#     "body": "...", "status": 200 }
#
# Header names in "headers" are lowercased; repeated headers are joined with
# ", " there and kept apart in "header_list".  The body is the raw bytes
# (a chunked request body is decoded).  The record is written before the
# response is sent, so a client that got its answer finds its request
# recorded.
#
# The answer's status is read for every request from <dir>/receiver.status
# when that file exists ("STATUS" or "STATUS RETRY_AFTER_SECONDS"), else it
# is the status given to serve().  <dir>/receiver.delay, if present, holds a
# number of seconds to wait before answering (to test client timeouts).
# Connections are handled one at a time and closed after the response; a
# client that stalls is dropped after a 10 s read timeout, so the server
# never hangs.  It exits when its parent process is gone.

use strict;
use warnings;

use IO::Select;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);
use Errno qw(EINTR EAGAIN);

my $READ_TIMEOUT = 10;
my $MAX_HEADER   = 1024 * 1024;
my $JSON = JSON::PP->new->utf8->canonical;

sub serve {
    my (%o) = @_;
    my $lsock = $o{socket};
    my $dir = $o{dir};
    my $parent = $o{parent};
    my $seq = 0;
    my $sel = IO::Select->new($lsock);

    $SIG{PIPE} = 'IGNORE';
    $SIG{TERM} = $SIG{INT} = sub { POSIX::_exit(0) };

    while (1) {
        exit_if_orphan($parent);
        next unless $sel->can_read(1);
        my $c = $lsock->accept or next;
        binmode $c;
        eval { handle($c, $dir, $o{status} // 200, ++$seq); 1 };
        close $c;
    }
}

sub exit_if_orphan {
    my ($parent) = @_;
    POSIX::_exit(0) if getppid() != $parent;
}

sub handle {
    my ($c, $dir, $default_status, $seq) = @_;
    my $buf = '';
    my $i;

    while (($i = index($buf, "\r\n\r\n")) < 0) {
        die "header too large\n" if length $buf > $MAX_HEADER;
        read_more($c, \$buf) or return;
    }
    my $head = substr($buf, 0, $i);
    $buf = substr($buf, $i + 4);

    my ($line, @hl) = split /\r\n/, $head;
    my ($method, $path) = $line =~ m{^(\S+)\s+(\S+)} or return;
    my (%headers, @list);
    for my $h (@hl) {
        my ($n, $v) = $h =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        push @list, [ $n, $v ];
        my $k = lc $n;
        $headers{$k} = exists $headers{$k} ? "$headers{$k}, $v" : $v;
    }

    if (lc($headers{expect} // '') eq '100-continue') {
        write_all($c, "HTTP/1.1 100 Continue\r\n\r\n");
    }

    my $body = '';
    if (lc($headers{'transfer-encoding'} // '') =~ /chunked/) {
        $body = read_chunked($c, \$buf);
    } elsif (my $len = $headers{'content-length'}) {
        while (length $buf < $len) {
            read_more($c, \$buf) or last;
        }
        $body = substr($buf, 0, $len);
    }

    my ($status, $retry_after) = current_status($dir, $default_status);
    my $rec = {
        seq => $seq, time => time(), method => $method, path => $path,
        headers => \%headers, header_list => \@list, body => $body,
        status => 0 + $status,
    };
    append_line("$dir/received.jsonl", $JSON->encode($rec) . "\n");

    if (my $delay = read_file("$dir/receiver.delay")) {
        sleep($delay) if $delay =~ /^\s*([\d.]+)/ && $1 > 0;
    }

    my $rbody = $status == 204 || $status == 304 ? ''
        : $status =~ /^2/ ? '{"ok":true}'
        : qq({"error":"status $status"});
    my $resp = "HTTP/1.1 $status " . reason($status) . "\r\n"
        . "Content-Type: application/json\r\n"
        . "Content-Length: " . length($rbody) . "\r\n"
        . (defined $retry_after ? "Retry-After: $retry_after\r\n" : '')
        . "Connection: close\r\n\r\n"
        . ($method eq 'HEAD' ? '' : $rbody);
    write_all($c, $resp);
}

sub current_status {
    my ($dir, $default) = @_;
    my $s = read_file("$dir/receiver.status");

    if (defined $s && $s =~ /^\s*(\d{3})(?:\s+(\d+))?/) {
        return ($1, $2);
    }
    return ($default, undef);
}

sub read_chunked {
    my ($c, $buf) = @_;
    my $body = '';

    while (1) {
        my $i;
        while (($i = index($$buf, "\r\n")) < 0) {
            read_more($c, $buf) or return $body;
        }
        my ($size) = substr($$buf, 0, $i) =~ /^([0-9a-fA-F]+)/;
        substr($$buf, 0, $i + 2, '');
        $size = hex($size // 0);
        if ($size == 0) {
            # Trailers, if any, end with an empty line; we do not need them.
            return $body;
        }
        while (length $$buf < $size + 2) {
            read_more($c, $buf) or return $body . $$buf;
        }
        $body .= substr($$buf, 0, $size);
        substr($$buf, 0, $size + 2, '');
    }
}

# Appends what is readable within the read timeout; false on EOF/timeout.
sub read_more {
    my ($c, $buf) = @_;
    my $sel = IO::Select->new($c);

    while (1) {
        $sel->can_read($READ_TIMEOUT) or return 0;
        my $n = sysread($c, $$buf, 65536, length $$buf);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            return 0;
        }
        return $n;
    }
}

sub write_all {
    my ($c, $data) = @_;

    while (length $data) {
        my $n = syswrite($c, $data);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            return;
        }
        substr($data, 0, $n, '');
    }
}

sub append_line {
    my ($file, $line) = @_;

    open(my $fh, '>>', $file) or return;
    binmode $fh;
    syswrite($fh, $line);
    close $fh;
}

sub read_file {
    my ($file) = @_;

    open(my $fh, '<', $file) or return undef;
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s;
}

# All records so far, oldest first; each gets a "json" field holding the
# decoded body when the body is JSON.
sub read_records {
    my ($dir) = @_;
    my $data = read_file("$dir/received.jsonl") // '';
    my @recs;

    for my $line (split /\n/, $data) {
        my $r = eval { $JSON->decode($line) } or next;
        $r->{json} = eval { JSON::PP->new->utf8->allow_nonref->decode($r->{body}) }
            if length $r->{body};
        push @recs, $r;
    }
    return \@recs;
}

my %REASON = (
    200 => 'OK', 201 => 'Created', 202 => 'Accepted', 204 => 'No Content',
    301 => 'Moved Permanently', 302 => 'Found', 400 => 'Bad Request',
    401 => 'Unauthorized', 403 => 'Forbidden', 404 => 'Not Found',
    408 => 'Request Timeout', 410 => 'Gone', 413 => 'Payload Too Large',
    429 => 'Too Many Requests', 500 => 'Internal Server Error',
    502 => 'Bad Gateway', 503 => 'Service Unavailable',
    504 => 'Gateway Timeout',
);

sub reason { $REASON{ $_[0] } // 'Status' }

1;
