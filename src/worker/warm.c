/*
 * The worker's side of the warm python parent (see warm.h and
 * python_warm.py): its start and restart, the run requests with their
 * descriptors, and the replies. The worker cannot waitpid a run the
 * parent forked, so the parent reports each pid and wait status; the
 * worker still kills a run by its process group, as a cold one.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "worker/warm.h"

#define AM_WARM_PYTHON "/usr/bin/python3"

/* the parent reads requests of up to this many bytes */
#define AM_WARM_MAX_REQUEST 65536

/* after a parent died, the next starts after this, doubled each time */
#define AM_WARM_BACKOFF_MS 1000
#define AM_WARM_BACKOFF_MAX_MS 30000


struct am_warm_s {
    uv_loop_t     *loop;
    uv_process_t   process;
    uv_poll_t      poll;
    int            fd;
    pid_t          pid;
    unsigned       open; /* handles not closed yet */
    unsigned       next_id;
    am_warm_req_t *reqs;
    void (*log)(const char *fmt, ...);

    unsigned ready : 1;
    unsigned dead : 1;
    unsigned exited : 1;
};


/* generated from src/worker/python_warm.py at build time */
extern const char am_python_warm[];

/*
 * The parent's command line, which its forked runs show too: it reads the
 * rest from its first packet (python_warm.py says what).
 */
static const char am_warm_bootstrap[] = "import socket\n"
                                        "import sys\n"
                                        "s = socket.socket(fileno=0)\n"
                                        "m = s.recv(1 << 20).split(b'\\0')\n"
                                        "s.detach()\n"
                                        "sys.argv[1:] = m[1:]\n"
                                        "exec(m[0])\n";

/* the parent runs go to, or NULL */
static am_warm_t *am_warm_current;

/* when the next parent may start (uv_now), and the delay after that one */
static uint64_t am_warm_next_start;
static uint64_t am_warm_backoff = AM_WARM_BACKOFF_MS;


static void
am_warm_close_cb(uv_handle_t *handle)
{
    am_warm_t *w;

    w = handle->data;

    if (handle == (uv_handle_t *) &w->poll) {
        (void) close(w->fd);
    }

    if (--w->open == 0) {
        free(w);
    }
}


/*
 * The parent is gone or broken: runs start cold from here on, a new parent
 * after the backoff, and each run it had is told it is lost (the parent's
 * death kills them: their processes have it as their death signal's
 * parent).
 */
static void
am_warm_lose(am_warm_t *w, const char *why)
{
    am_warm_req_t *req;

    if (w->dead) {
        return;
    }

    w->dead = 1;

    if (am_warm_current == w) {
        am_warm_current = NULL;
    }

    if (w->log != NULL) {
        w->log("python warm parent %ld %s: python runs start cold, a new "
               "parent in %lu ms",
            (long) w->pid, why, (unsigned long) am_warm_backoff);
    }

    uv_update_time(w->loop);
    am_warm_next_start = uv_now(w->loop) + am_warm_backoff;
    am_warm_backoff *= 2;
    if (am_warm_backoff > AM_WARM_BACKOFF_MAX_MS) {
        am_warm_backoff = AM_WARM_BACKOFF_MAX_MS;
    }

    if (!w->exited && w->pid > 0) {
        (void) kill(w->pid, SIGKILL);
    }

    (void) uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *) &w->poll, am_warm_close_cb);

    while (w->reqs != NULL) {
        req = w->reqs;
        w->reqs = req->next;
        req->next = NULL;
        req->parent = NULL;
        req->exited(req, 0, 1);
    }
}


static void
am_warm_exit_cb(uv_process_t *process, int64_t exit_status, int term_signal)
{
    am_warm_t *w;
    char       why[64];

    w = process->data;
    w->exited = 1;

    snprintf(why, sizeof(why), "exited (status %ld, signal %d)",
        (long) exit_status, term_signal);
    am_warm_lose(w, why);

    uv_close((uv_handle_t *) process, am_warm_close_cb);
}


/* Takes the run off the list: the one with that id, or that pid. */
static am_warm_req_t *
am_warm_find(am_warm_t *w, unsigned id, pid_t pid, int unlink)
{
    am_warm_req_t **p, *req;

    for (p = &w->reqs; *p != NULL; p = &(*p)->next) {
        req = *p;
        if ((pid == 0 && req->id == id) || (pid != 0 && req->pid == pid)) {
            if (unlink) {
                *p = req->next;
                req->next = NULL;
                req->parent = NULL;

                if (w->reqs == NULL) {
                    uv_unref((uv_handle_t *) &w->poll);
                }
            }
            return req;
        }
    }

    return NULL;
}


/* One reply of the parent; -1 when it makes no sense. */
static int
am_warm_reply(am_warm_t *w, char *msg)
{
    am_warm_req_t *req;
    unsigned       id;
    long           pid;
    int            status;

    if (sscanf(msg, "ready %ld", &pid) == 1) {
        w->ready = 1;
        am_warm_backoff = AM_WARM_BACKOFF_MS;
        if (w->log != NULL) {
            w->log("python warm parent %ld ready", (long) w->pid);
        }
        return 0;
    }

    if (sscanf(msg, "pid %u %ld", &id, &pid) == 2 && pid > 0) {
        req = am_warm_find(w, id, 0, 0);
        if (req == NULL) {
            return -1;
        }
        req->pid = (pid_t) pid;
        req->started(req, req->pid);
        return 0;
    }

    if (sscanf(msg, "exit %ld %d", &pid, &status) == 2 && pid > 0) {
        req = am_warm_find(w, 0, (pid_t) pid, 1);
        if (req == NULL) {
            return -1;
        }
        req->exited(req, status, 0);
        return 0;
    }

    if (sscanf(msg, "fail %u", &id) == 1) {
        req = am_warm_find(w, id, 0, 1);
        if (req == NULL) {
            return -1;
        }
        /* no fork: as a sandbox that could not be set up */
        req->exited(req, 126 << 8, 0);
        return 0;
    }

    return -1;
}


static void
am_warm_poll_cb(uv_poll_t *poll, int status, int events)
{
    am_warm_t *w;
    ssize_t    n;
    char       msg[256];

    w = poll->data;

    for (;;) {
        n = recv(w->fd, msg, sizeof(msg) - 1, MSG_DONTWAIT);

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }

        if (n <= 0) {
            am_warm_lose(w, "closed its socket");
            return;
        }

        msg[n] = '\0';

        if (am_warm_reply(w, msg) != 0) {
            am_warm_lose(w, "said something unexpected");
            return;
        }

        if (w->dead) {
            return;
        }
    }

    if (status < 0 || (events & UV_DISCONNECT)) {
        am_warm_lose(w, "closed its socket");
    }
}


/* A new parent, not ready yet; NULL when it cannot start. */
static am_warm_t *
am_warm_start(uv_loop_t *loop, const am_warm_config_t *cfg)
{
    uv_process_options_t opts;
    uv_stdio_container_t stdio[3];
    am_warm_t           *w;
    struct iovec         iov[5];
    char                *args[5], *env[3];
    int                  sv[2], rc;

    w = calloc(1, sizeof(am_warm_t));
    if (w == NULL) {
        return NULL;
    }

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        free(w);
        return NULL;
    }

    args[0] = AM_WARM_PYTHON;
    args[1] = "-I";
    args[2] = "-c";
    args[3] = (char *) am_warm_bootstrap;
    args[4] = NULL;

    env[0] = "PATH=/usr/local/bin:/usr/bin:/bin";
    env[1] = "LANG=C.UTF-8";
    env[2] = NULL;

    memset(&opts, 0, sizeof(opts));
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = sv[1];
    stdio[1].flags = UV_IGNORE;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = STDERR_FILENO;

    opts.exit_cb = am_warm_exit_cb;
    opts.file = AM_WARM_PYTHON;
    opts.args = args;
    opts.env = env;
    opts.cwd = "/";
    opts.stdio_count = 3;
    opts.stdio = stdio;

    w->loop = loop;
    w->fd = sv[0];
    w->log = cfg->log;
    w->process.data = w;
    w->poll.data = w;

    rc = uv_spawn(loop, &w->process, &opts);
    (void) close(sv[1]);

    if (rc != 0) {
        if (cfg->log != NULL) {
            cfg->log("python warm parent: cannot start %s: %s", AM_WARM_PYTHON,
                uv_strerror(rc));
        }
        (void) close(sv[0]);
        w->open = 1;
        uv_close((uv_handle_t *) &w->process, am_warm_close_cb);
        return NULL;
    }

    w->pid = w->process.pid;
    w->open = 1;
    uv_unref((uv_handle_t *) &w->process);

    iov[0].iov_base = (char *) am_python_warm;
    iov[0].iov_len = strlen(am_python_warm);
    iov[1].iov_base = "";
    iov[1].iov_len = 1;
    iov[2].iov_base = (char *) cfg->runner;
    iov[2].iov_len = strlen(cfg->runner);
    iov[3].iov_base = "";
    iov[3].iov_len = 1;
    iov[4].iov_base = (char *) cfg->lib;
    iov[4].iov_len = strlen(cfg->lib);

    /* a new socket's buffer takes it whole */
    if (writev(sv[0], iov, 5) < 0) {
        (void) kill(w->pid, SIGKILL);
        (void) close(sv[0]);
        w->dead = 1;
        return NULL;
    }

    if (fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0
        || uv_poll_init(loop, &w->poll, sv[0]) != 0) {
        (void) kill(w->pid, SIGKILL);
        (void) close(sv[0]);
        w->dead = 1;
        return NULL;
    }

    w->open++;
    uv_unref((uv_handle_t *) &w->poll);
    (void) uv_poll_start(
        &w->poll, UV_READABLE | UV_DISCONNECT, am_warm_poll_cb);

    return w;
}


/* The request's text: ID, DIR, ENV..., "", ARGV..., NUL-separated. */
static size_t
am_warm_request(char *buf, size_t size, unsigned id, const char *dir,
    char **env, char **argv)
{
    size_t n, len, i;
    char   num[16];

    snprintf(num, sizeof(num), "%u", id);
    n = 0;

#define AM_WARM_ADD(s)                                                         \
    len = strlen(s) + 1;                                                       \
    if (n + len > size) {                                                      \
        return 0;                                                              \
    }                                                                          \
    memcpy(buf + n, s, len);                                                   \
    n += len

    AM_WARM_ADD(num);
    AM_WARM_ADD(dir);

    for (i = 0; env[i] != NULL; i++) {
        AM_WARM_ADD(env[i]);
    }

    AM_WARM_ADD("");

    for (i = 0; argv[i] != NULL; i++) {
        AM_WARM_ADD(argv[i]);
    }

#undef AM_WARM_ADD

    /* the last NUL is the end, not an empty field */
    return n - 1;
}


int
am_warm_run(uv_loop_t *loop, const am_warm_config_t *cfg, am_warm_req_t *req,
    char **argv, char **env, const char *dir, const int *fds)
{
    struct msghdr   msg;
    struct cmsghdr *cm;
    struct iovec    iov;
    am_warm_t      *w;
    size_t          len;
    unsigned        id;
    char           *buf;
    union {
        char           space[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;

    w = am_warm_current;

    if (w == NULL) {
        uv_update_time(loop);
        if (uv_now(loop) >= am_warm_next_start) {
            am_warm_current = am_warm_start(loop, cfg);
            if (am_warm_current == NULL) {
                am_warm_next_start = uv_now(loop) + AM_WARM_BACKOFF_MAX_MS;
            }
        }
        return -1;
    }

    if (!w->ready) {
        return -1;
    }

    buf = malloc(AM_WARM_MAX_REQUEST);
    if (buf == NULL) {
        return -1;
    }

    id = ++w->next_id;
    len = am_warm_request(buf, AM_WARM_MAX_REQUEST, id, dir, env, argv);
    if (len == 0) {
        free(buf);
        return -1;
    }

    iov.iov_base = buf;
    iov.iov_len = len;

    memset(&msg, 0, sizeof(msg));
    memset(&control, 0, sizeof(control));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof(control.space);

    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(3 * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, 3 * sizeof(int));

    while (sendmsg(w->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        if (errno == EINTR) {
            continue;
        }

        free(buf);

        /* a full socket is a busy parent: this run goes cold */
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            am_warm_lose(w, "cannot be written to");
        }

        return -1;
    }

    free(buf);

    req->id = id;
    req->pid = 0;
    req->parent = w;
    req->next = w->reqs;
    w->reqs = req;

    /* as a cold run's process handle: the loop lives until the run ended */
    uv_ref((uv_handle_t *) &w->poll);

    return 0;
}


pid_t
am_warm_pid(void)
{
    return am_warm_current != NULL && am_warm_current->ready
               ? am_warm_current->pid
               : 0;
}
