/*
 * The worker's side of the warm python parents (see warm.h and
 * python_warm.py): their start and restart, the run requests with their
 * descriptors, and the replies. The worker cannot waitpid a run a parent
 * forked, so the parent reports each pid and wait status; the worker
 * still kills a run by its process group, as a cold one.
 *
 * Each parent belongs to a set: the plain one (no preload), or one per
 * preload, known by its key (the module names sorted, comma-separated).
 * A set remembers when it was last asked for and when it may start a
 * parent again (after a death, or once found unfit), so that a parent
 * that keeps failing costs one line and one try per period.
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

#include "am_json.h"
#include "am_name.h"
#include "worker/warm.h"

#define AM_WARM_PYTHON "/usr/bin/python3"

/* the parent reads requests of up to this many bytes */
#define AM_WARM_MAX_REQUEST 65536

/* after a parent died, the next starts after this, doubled each time */
#define AM_WARM_BACKOFF_MS 1000
#define AM_WARM_BACKOFF_MAX_MS 30000

/* a keyed parent not ready by then (its imports hang) is given up */
#define AM_WARM_PRELOAD_MS 30000

/* how long a starting worker waits for its plain parent before it takes runs */
#define AM_WARM_PRESTART_MS 5000

/* a preload that failed is not tried again before this */
#define AM_WARM_UNFIT_MS 300000

/* the sets remembered, parents or not: the oldest without one goes first */
#define AM_WARM_MAX_SETS 64

/* a key: AM_PRELOAD_MAX names, each with its comma */
#define AM_WARM_KEY_MAX (AM_PRELOAD_MAX * (AM_PYTHON_MODULE_MAX + 1))

#define AM_WARM_STR_(x) #x
#define AM_WARM_STR(x) AM_WARM_STR_(x)


typedef struct am_warm_set_s am_warm_set_t;

struct am_warm_set_s {
    am_warm_set_t *next;
    am_warm_t     *parent;     /* starting or ready, or NULL */
    uint64_t       next_start; /* uv_now from which a parent may start */
    uint64_t       backoff;    /* the delay after its parent's next death */
    uint64_t       used;       /* uv_now of the last run that asked */
    char          *key;        /* "" for the plain set */
};

struct am_warm_s {
    uv_loop_t     *loop;
    uv_process_t   process;
    uv_poll_t      poll;
    uv_timer_t     timer; /* a keyed parent's time to get ready */
    int            fd;
    pid_t          pid;
    unsigned       open; /* handles not closed yet */
    unsigned       next_id;
    am_warm_req_t *reqs;
    am_warm_set_t *set; /* NULL once it left its set */
    long           memory_mb;
    void (*log)(const char *fmt, ...);

    unsigned ready : 1;
    unsigned dead : 1;
    unsigned exited : 1;
    unsigned keyed : 1;
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

static char          am_warm_plain_key[] = "";
static am_warm_set_t am_warm_plain = {
    NULL, NULL, 0, AM_WARM_BACKOFF_MS, 0, am_warm_plain_key};

/* the keyed sets, most recently used first */
static am_warm_set_t *am_warm_sets;
static unsigned       am_warm_nsets;

/* keyed parent processes not exited yet, retired ones included */
static long am_warm_nkeyed;


static int am_warm_reply(am_warm_t *w, char *msg);

/* am_warm_prestart's wait for the plain parent: its callback and timer */
static void (*am_warm_wait_cb)(void *data);
static void      *am_warm_wait_data;
static uv_timer_t am_warm_wait_timer;


static void
am_warm_wait_closed(uv_handle_t *handle)
{
    (void) handle;
}


/* The plain parent is ready, or lost, or late: the wait is over. */
static void
am_warm_waited(void)
{
    void (*cb)(void *data);

    cb = am_warm_wait_cb;
    if (cb == NULL) {
        return;
    }

    am_warm_wait_cb = NULL;
    uv_close((uv_handle_t *) &am_warm_wait_timer, am_warm_wait_closed);
    cb(am_warm_wait_data);
}


static void
am_warm_wait_timeout(uv_timer_t *timer)
{
    (void) timer;
    am_warm_waited();
}


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
 * Kills the parent, and tells each run it had that it is lost (the
 * parent's death kills them: their processes have it as their death
 * signal's parent). Its set, if any, is left to the caller.
 */
static void
am_warm_stop(am_warm_t *w)
{
    am_warm_req_t *req;

    if (w->dead) {
        return;
    }

    w->dead = 1;

    if (w->set != NULL) {
        w->set->parent = NULL;
        w->set = NULL;
    }

    if (!w->exited && w->pid > 0) {
        (void) kill(w->pid, SIGKILL);
    }

    (void) uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *) &w->timer, am_warm_close_cb);
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


/* "" for the plain parent's lines, " (preload KEY)" for a keyed one's */
static const char *
am_warm_what(am_warm_t *w, char *buf, size_t size)
{
    if (w->set == NULL || w->set->key[0] == '\0') {
        return "";
    }

    snprintf(buf, size, " (preload %s)", w->set->key);
    return buf;
}


/*
 * The keyed parent's imports failed, hung or weigh too much: one line, the
 * set not tried again for AM_WARM_UNFIT_MS, the parent stopped.
 */
static void
am_warm_unfit(am_warm_t *w, const char *why)
{
    char what[AM_WARM_KEY_MAX + 16];

    if (w->set != NULL) {
        if (w->log != NULL) {
            w->log("python warm parent %ld%s %s: runs of that preload go to "
                   "the plain parent for %d s",
                (long) w->pid, am_warm_what(w, what, sizeof(what)), why,
                AM_WARM_UNFIT_MS / 1000);
        }

        uv_update_time(w->loop);
        w->set->next_start = uv_now(w->loop) + AM_WARM_UNFIT_MS;
    }

    am_warm_stop(w);
}


/*
 * The parent is gone or broken: its set's runs go elsewhere (to the plain
 * parent, or cold for the plain set), a new parent after the backoff. A
 * retired parent was expected to go. A keyed parent that dies before it is
 * ready died of its imports: its set is unfit.
 */
static void
am_warm_lose(am_warm_t *w, const char *why)
{
    am_warm_set_t *set;
    char           what[AM_WARM_KEY_MAX + 16];

    if (w->dead) {
        return;
    }

    set = w->set;

    if (set != NULL && w->keyed && !w->ready) {
        am_warm_unfit(w, why);
        return;
    }

    if (set != NULL) {
        if (w->log != NULL) {
            w->log("python warm parent %ld%s %s: %s, a new parent in %lu ms",
                (long) w->pid, am_warm_what(w, what, sizeof(what)), why,
                w->keyed ? "runs of that preload go to the plain parent"
                         : "python runs start cold",
                (unsigned long) set->backoff);
        }

        uv_update_time(w->loop);
        set->next_start = uv_now(w->loop) + set->backoff;
        set->backoff *= 2;
        if (set->backoff > AM_WARM_BACKOFF_MAX_MS) {
            set->backoff = AM_WARM_BACKOFF_MAX_MS;
        }

    } else if (w->reqs != NULL && w->log != NULL) {
        w->log("python warm parent %ld %s with runs in flight", (long) w->pid,
            why);
    }

    am_warm_stop(w);

    if (set == &am_warm_plain) {
        am_warm_waited();
    }
}


static void
am_warm_exit_cb(uv_process_t *process, int64_t exit_status, int term_signal)
{
    am_warm_t *w;
    ssize_t    n;
    char       why[64], msg[256];

    w = process->data;
    w->exited = 1;

    if (w->keyed) {
        am_warm_nkeyed--;
    }

    /*
     * What it said before it went may not have been read yet: a retired
     * parent exits right after its last "exit", which must still end its
     * run as it ended.
     */
    while (
        !w->dead && (n = recv(w->fd, msg, sizeof(msg) - 1, MSG_DONTWAIT)) > 0) {
        msg[n] = '\0';
        if (am_warm_reply(w, msg) != 0) {
            break;
        }
    }

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


/* The resident memory of a process, MiB; 0 when it cannot be read. */
static long
am_warm_rss_mb(pid_t pid)
{
    FILE *f;
    char  path[64], line[128];
    long  kb;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long) pid);

    f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }

    kb = 0;

    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) {
            break;
        }
    }

    (void) fclose(f);

    return kb / 1024;
}


/* One reply of the parent; -1 when it makes no sense. */
static int
am_warm_reply(am_warm_t *w, char *msg)
{
    am_warm_req_t *req;
    unsigned       id;
    long           pid, rss;
    int            status;
    char           name[AM_PYTHON_MODULE_MAX], kind[64], why[256];
    char           what[AM_WARM_KEY_MAX + 16];

    if (sscanf(msg, "ready %ld", &pid) == 1) {
        (void) uv_timer_stop(&w->timer);

        if (w->keyed && w->memory_mb > 0
            && (rss = am_warm_rss_mb(w->pid)) > w->memory_mb) {
            snprintf(why, sizeof(why),
                "uses %ld MiB once its imports are done, over "
                "--warm-parent-memory-mb %ld",
                rss, w->memory_mb);
            am_warm_unfit(w, why);
            return 0;
        }

        w->ready = 1;

        if (w->set != NULL) {
            w->set->backoff = AM_WARM_BACKOFF_MS;
        }

        if (w->log != NULL) {
            w->log("python warm parent %ld ready%s", (long) w->pid,
                am_warm_what(w, what, sizeof(what)));
        }

        if (w->set == &am_warm_plain) {
            am_warm_waited();
        }
        return 0;
    }

    if (sscanf(msg, "unfit %127s %63s", name, kind) == 2) {
        snprintf(why, sizeof(why), "cannot import %s (%s)", name, kind);
        am_warm_unfit(w, why);
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


static void
am_warm_timer_cb(uv_timer_t *timer)
{
    am_warm_t *w;

    w = timer->data;

    if (!w->ready) {
        am_warm_unfit(
            w, "is not ready after " AM_WARM_STR(AM_WARM_PRELOAD_MS) " ms");
    }
}


/*
 * A new parent of set, not ready yet; NULL when it cannot start. A keyed
 * parent gets its module names after the paths, and AM_WARM_PRELOAD_MS to
 * import them.
 */
static am_warm_t *
am_warm_start(uv_loop_t *loop, const am_warm_config_t *cfg, am_warm_set_t *set)
{
    uv_process_options_t opts;
    uv_stdio_container_t stdio[3];
    am_warm_t           *w;
    struct iovec         iov[5 + 2 * AM_PRELOAD_MAX];
    char                *args[5], *env[3], *p, *end;
    int                  sv[2], rc, n;

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
    w->keyed = set->key[0] != '\0';
    w->memory_mb = cfg->parent_memory_mb;
    w->process.data = w;
    w->poll.data = w;
    w->timer.data = w;

    (void) uv_timer_init(loop, &w->timer);
    uv_unref((uv_handle_t *) &w->timer);
    w->open = 1;

    rc = uv_spawn(loop, &w->process, &opts);
    (void) close(sv[1]);
    w->open++;

    if (rc != 0) {
        if (cfg->log != NULL) {
            cfg->log("python warm parent: cannot start %s: %s", AM_WARM_PYTHON,
                uv_strerror(rc));
        }
        (void) close(sv[0]);
        uv_close((uv_handle_t *) &w->timer, am_warm_close_cb);
        uv_close((uv_handle_t *) &w->process, am_warm_close_cb);
        return NULL;
    }

    w->pid = w->process.pid;
    uv_unref((uv_handle_t *) &w->process);

    if (w->keyed) {
        am_warm_nkeyed++;
    }

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
    n = 5;

    for (p = set->key;
         *p != '\0' && n + 2 <= (int) (sizeof(iov) / sizeof(iov[0]));
         p = end + (*end == ',')) {
        end = strchrnul(p, ',');
        iov[n].iov_base = "";
        iov[n].iov_len = 1;
        iov[n + 1].iov_base = p;
        iov[n + 1].iov_len = (size_t) (end - p);
        n += 2;
    }

    /* a new socket's buffer takes it whole */
    if (writev(sv[0], iov, n) < 0 || fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0
        || uv_poll_init(loop, &w->poll, sv[0]) != 0) {
        (void) kill(w->pid, SIGKILL);
        (void) close(sv[0]);
        w->dead = 1;
        uv_close((uv_handle_t *) &w->timer, am_warm_close_cb);
        return NULL;
    }

    w->open++;
    uv_unref((uv_handle_t *) &w->poll);
    (void) uv_poll_start(
        &w->poll, UV_READABLE | UV_DISCONNECT, am_warm_poll_cb);

    if (w->keyed) {
        (void) uv_timer_start(
            &w->timer, am_warm_timer_cb, AM_WARM_PRELOAD_MS, 0);
    }

    w->set = set;

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


/*
 * Installed with python and run at import, not at a call: programs started
 * (a web browser), installs (ensurepip, venv), test suites or windows. Their
 * modules are never preloaded, whatever --warm-preload-allow says.
 */
static const char *am_warm_never[] = {"antigravity", "ensurepip", "idlelib",
    "lib2to3", "pip", "test", "this", "tkinter", "turtle", "turtledemo", "venv",
    NULL};


/* 1 when allow names the top-level package of module name, len bytes */
static int
am_warm_listed(const char *list, const char *name, size_t len)
{
    const char *p, *end;

    for (p = list; *p != '\0'; p = end) {
        while (*p == ',' || *p == ' ') {
            p++;
        }

        end = p + strcspn(p, ", ");

        if ((size_t) (end - p) == len && memcmp(p, name, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* 1 when a warm parent may import module name */
static int
am_warm_allowed(const char *allow, const char *name)
{
    size_t       len;
    const char **n;

    len = strcspn(name, ".");

    for (n = am_warm_never; *n != NULL; n++) {
        if (strlen(*n) == len && memcmp(*n, name, len) == 0) {
            return 0;
        }
    }

    if (allow == NULL || strcmp(allow, "*") == 0) {
        return 1;
    }

    return am_warm_listed(allow, name, len);
}


/*
 * The set's key from a run's preload (a JSON array of module names, as
 * stored by the gateway): the names sorted, without repeats, joined by
 * commas; "" for none. -1 when it is not such an array (the gateway
 * checked it, but the record is Redis's, and the names go to an import) or
 * names a module no parent may import (see am_warm_allowed): the run goes
 * to the plain parent and imports what it needs itself, confined.
 */
static int
am_warm_key(const char *preload, const char *allow, char *key, size_t size)
{
    yajl_val    v, m;
    const char *names[AM_PRELOAD_MAX], *t;
    size_t      i, j, n, len, k;
    char        err[64];

    key[0] = '\0';

    if (preload == NULL || preload[0] == '\0') {
        return 0;
    }

    v = am_json_parse(preload, strlen(preload), 2, err, sizeof(err));
    if (v == NULL || !YAJL_IS_ARRAY(v) || v->u.array.len > AM_PRELOAD_MAX) {
        am_json_free(v);
        return -1;
    }

    n = 0;

    for (i = 0; i < v->u.array.len; i++) {
        m = v->u.array.values[i];

        if (!YAJL_IS_STRING(m)
            || !am_python_module_valid(m->u.string, strlen(m->u.string))
            || !am_warm_allowed(allow, m->u.string)) {
            am_json_free(v);
            return -1;
        }

        for (j = n; j > 0 && strcmp(names[j - 1], m->u.string) > 0; j--) {
            names[j] = names[j - 1];
        }

        if (j > 0 && strcmp(names[j - 1], m->u.string) == 0) {
            for (; j < n; j++) {
                names[j] = names[j + 1];
            }
            continue;
        }

        names[j] = m->u.string;
        n++;
    }

    k = 0;

    for (i = 0; i < n; i++) {
        t = names[i];
        len = strlen(t);

        if (k + len + 2 > size) {
            am_json_free(v);
            return -1;
        }

        if (i > 0) {
            key[k++] = ',';
        }

        memcpy(key + k, t, len);
        k += len;
    }

    key[k] = '\0';
    am_json_free(v);

    return 0;
}


/*
 * The keyed set of key, moved to the front of the list (most recently
 * used); a new one when there is none. Past AM_WARM_MAX_SETS, the least
 * recently used set without a parent is forgotten (with its backoff).
 * NULL when there is no room or no memory.
 */
static am_warm_set_t *
am_warm_set(const char *key, uint64_t now)
{
    am_warm_set_t **p, **drop, *set;

    drop = NULL;

    for (p = &am_warm_sets; *p != NULL; p = &(*p)->next) {
        set = *p;

        if (strcmp(set->key, key) == 0) {
            *p = set->next;
            goto found;
        }

        if (set->parent == NULL) {
            drop = p;
        }
    }

    if (am_warm_nsets >= AM_WARM_MAX_SETS) {
        if (drop == NULL) {
            return NULL;
        }

        set = *drop;
        *drop = set->next;
        am_warm_nsets--;
        free(set->key);
        free(set);
    }

    set = calloc(1, sizeof(am_warm_set_t));
    if (set == NULL) {
        return NULL;
    }

    set->key = strdup(key);
    if (set->key == NULL) {
        free(set);
        return NULL;
    }

    set->backoff = AM_WARM_BACKOFF_MS;
    am_warm_nsets++;

found:

    set->used = now;
    set->next = am_warm_sets;
    am_warm_sets = set;

    return set;
}


/*
 * Makes room for another keyed parent: the least recently used one leaves
 * its set and stops once its runs ended (the parent exits when its socket
 * is shut and its last child is gone). It still counts until it exited.
 */
static void
am_warm_retire(void)
{
    am_warm_set_t *set, *last;
    am_warm_t     *w;
    long           active;

    last = NULL;
    active = 0;

    for (set = am_warm_sets; set != NULL; set = set->next) {
        if (set->parent != NULL) {
            last = set;
            active++;
        }
    }

    /* one retired parent at a time: the others keep serving meanwhile */
    if (last == NULL || am_warm_nkeyed > active) {
        return;
    }

    w = last->parent;

    if (w->log != NULL) {
        w->log("python warm parent %ld (preload %s) stops: the least "
               "recently used of --warm-max-parents",
            (long) w->pid, last->key);
    }

    last->parent = NULL;
    w->set = NULL;

    if (!w->ready || w->reqs == NULL) {
        am_warm_stop(w);
        return;
    }

    (void) shutdown(w->fd, SHUT_WR);
}


/*
 * The set's parent when it is ready. Otherwise NULL, and a parent is
 * started when the set may have one now (and, keyed, when there is room,
 * which is made for the next run).
 */
static am_warm_t *
am_warm_parent(uv_loop_t *loop, const am_warm_config_t *cfg, am_warm_set_t *set,
    uint64_t now)
{
    if (set->parent != NULL) {
        return set->parent->ready ? set->parent : NULL;
    }

    if (now < set->next_start) {
        return NULL;
    }

    if (set != &am_warm_plain && am_warm_nkeyed >= cfg->max_parents) {
        am_warm_retire();
        return NULL;
    }

    set->parent = am_warm_start(loop, cfg, set);

    if (set->parent == NULL) {
        set->next_start = now + AM_WARM_BACKOFF_MAX_MS;
    }

    return NULL;
}


/* Sends the run to w; 0, or -1 when w cannot take it now. */
static int
am_warm_send(am_warm_t *w, am_warm_req_t *req, char **argv, char **env,
    const char *dir, const int *fds)
{
    struct msghdr   msg;
    struct cmsghdr *cm;
    struct iovec    iov;
    size_t          len;
    unsigned        id;
    char           *buf;
    union {
        char           space[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;

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

        /* a full socket is a busy parent: this run goes elsewhere */
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


int
am_warm_run(uv_loop_t *loop, const am_warm_config_t *cfg, am_warm_req_t *req,
    char **argv, char **env, const char *dir, const int *fds)
{
    am_warm_set_t *set;
    am_warm_t     *w;
    uint64_t       now;
    char           key[AM_WARM_KEY_MAX];

    uv_update_time(loop);
    now = uv_now(loop);

    if (cfg->max_parents > 0
        && am_warm_key(cfg->preload, cfg->allow, key, sizeof(key)) == 0
        && key[0] != '\0' && (set = am_warm_set(key, now)) != NULL
        && (w = am_warm_parent(loop, cfg, set, now)) != NULL
        && am_warm_send(w, req, argv, env, dir, fds) == 0) {
        return 0;
    }

    w = am_warm_parent(loop, cfg, &am_warm_plain, now);

    if (w == NULL) {
        return -1;
    }

    return am_warm_send(w, req, argv, env, dir, fds);
}


pid_t
am_warm_pid(void)
{
    return am_warm_plain.parent != NULL && am_warm_plain.parent->ready
               ? am_warm_plain.parent->pid
               : 0;
}


void
am_warm_prestart(uv_loop_t *loop, const am_warm_config_t *cfg,
    void (*ready)(void *data), void                      *data)
{
    uv_update_time(loop);

    if (am_warm_parent(loop, cfg, &am_warm_plain, uv_now(loop)) != NULL
        || am_warm_plain.parent == NULL || am_warm_wait_cb != NULL) {
        ready(data);
        return;
    }

    am_warm_wait_cb = ready;
    am_warm_wait_data = data;
    (void) uv_timer_init(loop, &am_warm_wait_timer);
    (void) uv_timer_start(
        &am_warm_wait_timer, am_warm_wait_timeout, AM_WARM_PRESTART_MS, 0);
    uv_unref((uv_handle_t *) &am_warm_wait_timer);
}
