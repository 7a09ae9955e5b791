"""
The warm python parent of automations-worker: python_runner.py and its
imports loaded once, then one fork per run, so that a run pays neither the
interpreter's start nor the runner's imports. Started by the worker as

    python3 -I -c <a bootstrap>

with a SOCK_SEQPACKET socket to the worker on fd 0, whose first packet is
this file's text, python_runner.py's, the path of automations-sandbox.so
and, for a keyed parent, the module names of its preload (NUL-separated);
the bootstrap puts all but the first in sys.argv[1:] and runs this file.
(Forked runs show the parent's command line: a short one.)

A keyed parent imports its modules (importlib, names checked again here)
before its first fork, with /dev/null as stdin: what an import runs is a
library's own code, never an automation's, and it runs as the worker's
user, as this parent does. A name that fails to import is reported
("unfit NAME EXCEPTION") and the parent exits; the worker then sends that
set's runs to the plain parent for a while.

It never reads an automation's code, payload or output: each child enters
the run's sandbox
(am_sandbox_enter, the cold run's confinement without the exec) before it
reads anything of the run, so what a run does stays in its own process.
A run of a root worker is made by am_sandbox_warm_fork instead: the same
supervisor (and, confined, init) and run as am_sandbox_enter's forks would
make, but only the run is a copy of this process (the others are vfork()
children that execute automations-sandbox), since each copy of a python
heap costs more than the rest of a trivial run.

Messages, one per packet, fields separated by NUL bytes:
  worker -> parent  ID, DIR, ENV..., "", SANDBOX-ARGV...  with the run's
                    stdin, stdout and stderr (SCM_RIGHTS): fork a run
  parent -> worker  "ready PID", "pid ID PID", "fail ID",
                    "exit PID WAIT-STATUS" (as waitpid gave it),
                    "unfit NAME EXCEPTION"
The worker shuts its end to stop a parent, which exits once its runs
ended, since they would die with it.
"""

import array
import ctypes
import gc
import importlib
import os
import re
import select
import signal
import socket
import sys
import types

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4

# a worker that dies takes its warm parent along
libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

runner = types.ModuleType("python_runner")
exec(compile(sys.argv[1], "python_runner.py", "exec"), runner.__dict__)

sandbox = ctypes.CDLL(os.fsdecode(sys.argv[2]))
sandbox.am_sandbox_enter.argtypes = [ctypes.c_int,
                                     ctypes.POINTER(ctypes.c_char_p)]
sandbox.am_sandbox_enter.restype = ctypes.c_int
sandbox.am_sandbox_warm_fork.argtypes = [
    ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.c_char_p,
    ctypes.c_int, ctypes.c_int, ctypes.c_int]
sandbox.am_sandbox_warm_fork.restype = ctypes.c_int

# the socket off fd 0, so that an import reading stdin reads nothing
ctl = socket.socket(fileno=os.dup(0))
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 0)
os.close(null)
PARENT = os.getpid()

# src/am_name.h's rule: what the gateway let through
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def send(msg):
    """A message to the worker; a worker gone is the end of this parent
    (its runs' supervisors kill them when it exits)."""
    try:
        ctl.send(msg)
    except OSError:
        os._exit(0)


def set_name(name):
    """The process name (comm) an exec of that file would give."""
    libc.prctl(PR_SET_NAME,
               ctypes.addressof(ctypes.create_string_buffer(name[:15])), 0,
               0, 0)


def supervised(argv):
    """Whether the sandbox's options (before "--") give the run a user of
    its own, and so a supervisor (the worker is root)."""
    options = argv[:argv.index(b"--")] if b"--" in argv else argv
    return any(options[i] == b"--uid" for i in range(2, len(options) - 1, 2))


def warm_child(env, argv):
    """A run am_sandbox_warm_fork made: already confined, as its user."""
    try:
        # what os.fork() does in its child; the descriptors are gone
        ctypes.pythonapi.PyOS_AfterFork_Child()
        ctl.detach()
        os.environ.clear()
        for e in env:
            k, _, v = e.partition(b"=")
            os.environb[k] = v
        cmd = argv.index(b"--") + 1
    except BaseException:
        os._exit(126)
    run(argv, cmd)


def child(run_dir, env, argv, fds):
    """The run: confined first, then the runner, as python3 -I would."""
    try:
        # a parent killed before the supervisor exists takes us along
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != PARENT:
            os._exit(126)
        os.close(ctl.detach())
        os.setsid()
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        os.chdir(run_dir)
        os.environ.clear()
        for e in env:
            k, _, v = e.partition(b"=")
            os.environb[k] = v
        set_name(os.path.basename(argv[0]))
        c_argv = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
        cmd = sandbox.am_sandbox_enter(len(argv), c_argv)
    except BaseException:
        os._exit(126)
    run(argv, cmd)


def run(argv, cmd):
    set_name(os.path.basename(argv[cmd]))

    # the run's collections leave what the parent had alone, so that they
    # do not copy its pages
    gc.freeze()

    # the dispositions python3 sets at its start, reset by the sandbox
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    # python3 -I RUNNER FILE: sys.argv is [RUNNER, FILE]
    sys.argv = [os.fsdecode(a) for a in argv[cmd + 2:]]
    try:
        runner.main()
    finally:
        os._exit(1)


def start(msg, fds):
    fields = msg.split(b"\0")
    ident, run_dir = fields[0], fields[1]
    end = fields.index(b"", 2)
    env, argv = fields[2:end], fields[end + 1:]

    if supervised(argv):
        c_argv = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
        pid = sandbox.am_sandbox_warm_fork(len(argv), c_argv, run_dir, *fds)
        if pid == 0:
            warm_child(env, argv)
    else:
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            child(run_dir, env, argv, fds)

    for fd in fds:
        os.close(fd)

    if pid < 0:
        send(b"fail " + ident)
        return None

    send(b"pid %s %d" % (ident, pid))
    return pid


def preload(names):
    """None once every module is imported, or (name, exception name)."""
    for name in names:
        if (len(name) > 128 or not MODULE.fullmatch(name)
                or "__main__" in name.split(".")):
            return name, "refused"
        try:
            importlib.import_module(name)
        except BaseException as e:
            return name, type(e).__name__
    return None


def serve():
    poll = select.poll()
    poll.register(ctl.fileno(), select.POLLIN)
    children = {}
    fd_size = array.array("i").itemsize
    open_ = True

    # what is loaded now stays out of the children's collections, so that
    # they do not copy the pages the collector would touch
    gc.freeze()
    send(b"ready %d" % PARENT)

    while open_ or children:
        for fd, _ in poll.poll():
            if fd != ctl.fileno():
                pid = children.pop(fd)
                poll.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                send(b"exit %d %d" % (pid, status))
                continue

            msg, anc, _, _ = ctl.recvmsg(65536, socket.CMSG_SPACE(3 * fd_size))
            if not msg:
                poll.unregister(fd)
                open_ = False
                continue

            fds = array.array("i")
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[:len(data) - len(data) % fd_size])
            if len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                raise SystemExit("a run request without its 3 descriptors")

            pid = start(msg, list(fds))
            if pid is not None:
                pidfd = os.pidfd_open(pid)
                children[pidfd] = pid
                poll.register(pidfd, select.POLLIN)


failed = preload([os.fsdecode(a) for a in sys.argv[3:]])
if failed is not None:
    send(b"unfit %s %s" % (failed[0].encode()[:127],
                               failed[1].encode()[:63]))
    sys.exit(0)

serve()
