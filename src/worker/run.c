/*
 * A run's life on the worker's loop: the run folder with the code, the
 * sandboxed child, the payload in, the output and the log out, the wall
 * clock; then the kill and reaping of the whole process group, the result
 * to the callback, and the removal of the folder on the thread pool after
 * it (a waiting client need not wait for it too), before the run's user
 * may be given to another run.
 */

/* vfork() */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "am_execution.h"
#include "am_json.h"
#include "worker/run.h"
#include "worker/sandbox.h"
#include "worker/warm.h"

#define AM_RUN_MEMORY_MB 512
#define AM_RUN_MAX_PROCESSES 64
#define AM_RUN_MAX_OPEN_FILES 64
#define AM_RUN_MAX_FILE_MB 64
#define AM_RUN_TMP_MB 64
#define AM_RUN_MAX_OUTPUT (1024 * 1024)
#define AM_RUN_MAX_LOG (64 * 1024)
#define AM_RUN_NOBODY 65534

/* the probe's exit status when it cannot even execute the sandbox */
#define AM_RUN_PROBE_FAILED 125

/*
 * Without --run-uid, each run gets a user of its own: process limits count
 * per user, so one run's fork bomb cannot starve the others, and a run
 * cannot read another's folder. Each worker process takes a block of
 * AM_RUN_UID_SLOTS ids above AM_RUN_UID_BASE, chosen by its pid.
 */
#define AM_RUN_UID_BASE 2000000
#define AM_RUN_UID_SLOTS 1024
#define AM_RUN_UID_BLOCKS 2048

/*
 * Once the child exited: how often, and for how long at most, the rest of
 * its process group is killed and reaped and the pipes are waited for.
 */
#define AM_RUN_REAP_INTERVAL_MS 10
#define AM_RUN_REAP_MS 2000

/* the end of stderr, kept apart for the error's last line */
#define AM_RUN_TAIL 512
#define AM_RUN_LAST_LINE 240

#define AM_RUN_LOG_TRUNCATED "\n[log truncated]"
#define AM_RUN_RUNNER "python_runner.py"
#define AM_RUN_SANDBOX_LIB "automations-sandbox.so"


/* generated from src/worker/python_runner.py at build time */
extern const char am_python_runner[];


struct am_run_s {
    am_run_t              *next; /* in am_run_live while the child runs */
    uv_loop_t             *loop;
    const am_run_config_t *cfg;
    am_run_cb              cb;
    void                  *data;

    uv_process_t process;
    uv_poll_t    exit_watch; /* the pidfd of a vfork'ed child */
    int          pidfd;
    uv_pipe_t    in;
    uv_pipe_t    out;
    uv_pipe_t    err;
    uv_timer_t   timer;
    uv_write_t   write;
    uv_work_t    work;
    unsigned     open; /* handles not closed yet */

    am_warm_req_t warm; /* a warm python run: its parent's reports */

    pid_t    pid;
    int      uid_slot; /* in am_run_uid_taken, or -1 */
    long     timeout_ms;
    long     max_file_mb;
    uint64_t start;
    uint64_t ready;    /* a held run said it waits only for the gate */
    uint64_t released; /* and was let go */
    uint64_t reap_until;
    long     elapsed_us;

    unsigned process_init : 1;
    unsigned watch_init : 1;
    unsigned confined : 1; /* in namespaces of its own */
    unsigned spawned : 1;
    unsigned exited : 1;
    unsigned group_gone : 1;
    unsigned finishing : 1;
    unsigned timed_out : 1;
    unsigned cancelled : 1;
    unsigned overflow : 1;
    unsigned log_dropped : 1;
    unsigned kill_pending : 1; /* warm, killed before its pid was known */
    unsigned warm_lost : 1;    /* its warm parent died first */
    unsigned held : 1;         /* waits for am_run_release() */
    unsigned ready_mark : 1;   /* AM_SANDBOX_READY still to come on stdout */

    int64_t exit_status;
    int     term_signal;

    char  *payload;
    size_t payload_len;

    char  *output;
    size_t output_len;
    size_t output_cap;
    size_t max_output;

    char  *log;
    size_t log_len;
    size_t max_log;

    char   tail[AM_RUN_TAIL];
    size_t tail_len;

    am_run_result_t result;

    char dir[PATH_MAX];
    char buf[65536]; /* last: am_run_start zeroes what comes before */
};


static char *am_run_python_argv[] = {
    "/usr/bin/python3", "-I", "{dir}/" AM_RUN_RUNNER, "{file}", NULL};
static char *am_run_sh_argv[] = {"/bin/sh", "{file}", NULL};

static am_runtime_t am_run_defaults[] = {
    {"python", am_run_python_argv, "main.py"},
    {"sh", am_run_sh_argv, "main.sh"},
};

/* the runs whose child has not exited: their groups are not strays */
static am_run_t *am_run_live;

/* which of this process's run users are taken, until their run is freed */
static unsigned char am_run_uid_taken[AM_RUN_UID_SLOTS];

/*
 * The next run's folder (cfg->ahead), made as a run ends, so that its
 * mkdir and chown are not on the way of the run that takes it. It is
 * empty, and holds the uid slot of the run that will use it: no other run
 * has that user meanwhile.
 */
static struct {
    const am_run_config_t *cfg;  /* NULL: none is ready */
    am_sandbox_limits_t    user; /* drop, uid, gid and own_uid */
    int                    uid_slot;
    char                   dir[PATH_MAX];
} am_run_ahead;


static int am_run_pick_user(
    const am_run_config_t *cfg, am_sandbox_limits_t *limits);
static void        am_run_check(am_run_t *run);
static void        am_run_write_payload(am_run_t *run);
static const char *am_run_self(
    const am_run_config_t *cfg, char *buf, size_t size);


static int
am_run_is_live(pid_t pgid, void *data)
{
    am_run_t *run;

    (void) data;

    for (run = am_run_live; run != NULL; run = run->next) {
        if (run->pid == pgid) {
            return 1;
        }
    }

    return 0;
}


static void
am_run_unlink(am_run_t *run)
{
    am_run_t **p;

    for (p = &am_run_live; *p != NULL; p = &(*p)->next) {
        if (*p == run) {
            *p = run->next;
            return;
        }
    }
}


static void
am_run_free(am_run_t *run)
{
    if (run->uid_slot >= 0) {
        am_run_uid_taken[run->uid_slot] = 0;
    }

    free(run->result.output);
    free(run->result.error);
    free(run->result.log);
    free(run->payload);
    free(run->output);
    free(run->log);
    free(run);
}


/*
 * The length of the valid UTF-8 character at p (at most len bytes), or 0
 * when it is invalid, overlong, a surrogate or NUL.
 */
static size_t
am_run_utf8_char(const unsigned char *p, size_t len)
{
    unsigned long cp, min;
    size_t        n, i;

    if (p[0] == 0) {
        return 0;
    }

    if (p[0] < 0x80) {
        return 1;
    }

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2, min = 0x80, cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3, min = 0x800, cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4, min = 0x10000, cp = p[0] & 0x07;
    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n;
}


/*
 * A malloc'd copy of len bytes of s that is valid UTF-8 without NULs, so
 * that it can go into JSON as is: other bytes become U+FFFD.
 */
static char *
am_run_utf8(const char *s, size_t len, const char *suffix)
{
    const unsigned char *p;
    size_t               i, n;
    char                *out, *o;

    out = malloc(len * 3 + strlen(suffix) + 1);
    if (out == NULL) {
        return NULL;
    }

    p = (const unsigned char *) s;
    o = out;

    for (i = 0; i < len; i += n) {
        n = am_run_utf8_char(p + i, len - i);

        if (n == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            n = 1;
            continue;
        }

        memcpy(o, p + i, n);
        o += n;
    }

    strcpy(o, suffix);

    return out;
}


/* The last line of stderr, e.g. a Python exception: "ValueError: boom". */
static void
am_run_last_line(am_run_t *run, char *line, size_t size)
{
    const char *p, *end;
    size_t      n;

    p = run->tail;
    end = run->tail + run->tail_len;

    while (end > p && strchr(" \t\r\n", end[-1]) != NULL) {
        end--;
    }

    for (p = end; p > run->tail && p[-1] != '\n'; p--) {
        /* back to the line's start */
    }

    /* a line longer than the tail: start on a character */
    while (p < end && (*p & 0xc0) == 0x80) {
        p++;
    }

    n = (size_t) (end - p);
    if (n > size - 1) {
        n = size - 1;
    }

    memcpy(line, p, n);
    line[n] = '\0';
}


/* The output as compact JSON (empty output is null), or an error in msg. */
static int
am_run_parse_output(am_run_t *run, char *msg, size_t msglen)
{
    yajl_val    v;
    const char *p;
    size_t      len, n;
    char        reason[256];

    p = run->output;
    len = run->output_len;

    while (len > 0 && strchr(" \t\r\n", p[0]) != NULL) {
        p++, len--;
    }

    while (len > 0 && strchr(" \t\r\n", p[len - 1]) != NULL) {
        len--;
    }

    if (len == 0) {
        run->result.output = strdup("null");
        return run->result.output != NULL ? 0 : -1;
    }

    v = am_json_parse(p, len, AM_JSON_MAX_DEPTH, reason, sizeof(reason));
    if (v == NULL) {
        snprintf(msg, msglen, "output is not JSON: %s", reason);
        return -1;
    }

    run->result.output = am_json_dump(v, &n);
    yajl_tree_free(v);

    if (run->result.output == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }

    return 0;
}


/* Turns what was seen of the child into run->result. */
static void
am_run_make_result(am_run_t *run)
{
    am_run_result_t *r;
    char             msg[512], line[AM_RUN_LAST_LINE];
    int              sig;

    r = &run->result;
    sig = run->term_signal;

    r->status = AM_RUN_ERROR;
    r->execution_time_ms = run->elapsed_us / 1000;
    r->execution_time_us = run->elapsed_us;
    r->exit_code = run->exited && sig == 0 ? (int) run->exit_status : -1;
    r->term_signal = sig;
    r->log = am_run_utf8(
        run->log, run->log_len, run->log_dropped ? AM_RUN_LOG_TRUNCATED : "");

    am_run_last_line(run, line, sizeof(line));

    if (run->cancelled) {
        snprintf(msg, sizeof(msg), "cancelled");

    } else if (run->timed_out) {
        r->status = AM_RUN_TIMED_OUT;
        snprintf(msg, sizeof(msg), "timed out after %ld ms", run->timeout_ms);

    } else if (run->overflow) {
        snprintf(msg, sizeof(msg), "output too large (limit %zu bytes)",
            run->max_output);

    } else if (run->warm_lost) {
        snprintf(
            msg, sizeof(msg), "killed: the warm python parent of the run died");

    } else if (sig == SIGXCPU) {
        snprintf(msg, sizeof(msg), "CPU time limit exceeded");

    } else if (sig == SIGXFSZ) {
        snprintf(msg, sizeof(msg), "file size limit exceeded (%ld MiB)",
            run->max_file_mb);

    } else if (sig != 0) {
        snprintf(msg, sizeof(msg), "killed by signal %d", sig);

    } else if (run->exit_status != 0) {
        snprintf(msg, sizeof(msg), "exited with status %d%s%s",
            (int) run->exit_status, line[0] ? ": " : "", line);

    } else if (am_run_parse_output(run, msg, sizeof(msg)) == 0) {
        r->status = AM_RUN_SUCCESS;
        return;
    }

    r->error = am_run_utf8(msg, strlen(msg), "");
}


static void
am_run_work(uv_work_t *req)
{
    am_run_t *run;

    run = req->data;

    (void) am_sandbox_rmtree(run->dir);
}


static void
am_run_after_work(uv_work_t *req, int status)
{
    (void) status;

    am_run_free(req->data);
}


/*
 * The next run's folder, when none is ready (cfg->ahead): with a user of
 * its own, when runs have theirs, as am_run_configure would pick it.
 */
static void
am_run_make_ahead(const am_run_config_t *cfg)
{
    am_sandbox_limits_t user;
    char                err[256];
    int                 slot;

    if (!cfg->ahead || am_run_ahead.cfg != NULL) {
        return;
    }

    memset(&user, 0, sizeof(user));
    slot = am_run_pick_user(cfg, &user);

    if (am_sandbox_mkdir(
            am_run_tmp_root(cfg), &user, am_run_ahead.dir, err, sizeof(err))
        != 0) {
        if (slot >= 0) {
            am_run_uid_taken[slot] = 0;
        }
        return;
    }

    am_run_ahead.user = user;
    am_run_ahead.uid_slot = slot;
    am_run_ahead.cfg = cfg;
}


void
am_run_drop_ahead(void)
{
    if (am_run_ahead.cfg == NULL) {
        return;
    }

    (void) am_sandbox_rmtree(am_run_ahead.dir);

    if (am_run_ahead.uid_slot >= 0) {
        am_run_uid_taken[am_run_ahead.uid_slot] = 0;
    }

    am_run_ahead.cfg = NULL;
}


/*
 * All handles are closed: the result, the callback, then the folder, and
 * the next run's.
 */
static void
am_run_finish(am_run_t *run)
{
    const am_run_config_t *cfg = run->cfg;

    am_run_make_result(run);
    run->cb(run->data, &run->result);

    run->work.data = run;

    if (uv_queue_work(run->loop, &run->work, am_run_work, am_run_after_work)
        != 0) {
        am_run_work(&run->work);
        am_run_after_work(&run->work, 0);
    }

    am_run_make_ahead(cfg);
}


static void
am_run_close_cb(uv_handle_t *handle)
{
    am_run_t *run;

    run = handle->data;

    if (--run->open > 0) {
        if (handle != (uv_handle_t *) &run->timer) {
            am_run_check(run);
        }
        return;
    }

    if (run->spawned) {
        am_run_finish(run);
    } else {
        am_run_free(run);
    }
}


static void
am_run_close(void *handle)
{
    if (!uv_is_closing(handle)) {
        uv_close(handle, am_run_close_cb);
    }
}


/* The pidfd is closed once its handle no longer polls it. */
static void
am_run_unwatch(am_run_t *run)
{
    if (run->pidfd != -1) {
        (void) uv_poll_stop(&run->exit_watch);
        (void) close(run->pidfd);
        run->pidfd = -1;
    }

    am_run_close(&run->exit_watch);
}


/* Closes every handle; the run ends when the last one is closed. */
static void
am_run_close_all(am_run_t *run)
{
    run->finishing = 1;

    am_run_close(&run->in);
    am_run_close(&run->out);
    am_run_close(&run->err);
    am_run_close(&run->timer);

    if (run->process_init) {
        am_run_close(&run->process);
    }

    if (run->watch_init) {
        am_run_unwatch(run);
    }
}


/*
 * After the child exited, on each event and every few milliseconds: kills
 * and reaps the rest of its process group and any stray descendants, and
 * ends the run once they are gone and the pipes are closed (or too late).
 */
static void
am_run_check(am_run_t *run)
{
    int strays;

    if (!run->exited || run->finishing) {
        return;
    }

    if (!run->group_gone) {
        /* a warm run lost before its pid was known has no group of ours */
        run->group_gone = run->pid <= 0 || am_sandbox_reap_group(run->pid);
    }

    /*
     * A confined run's processes die with its PID namespace before its
     * first process ends: only an unconfined run, or a warm one whose
     * parent died, may leave strays, found by reading /proc (0.1 ms).
     */
    if (!run->group_gone) {
        strays = 1;

    } else if (run->confined && !run->warm_lost) {
        strays = 0;

    } else {
        strays = am_sandbox_sweep(am_run_is_live, NULL);
    }

    if ((strays == 0 && uv_is_closing((uv_handle_t *) &run->out)
            && uv_is_closing((uv_handle_t *) &run->err))
        || uv_now(run->loop) >= run->reap_until) {
        am_run_close_all(run);
    }
}


static void
am_run_reap_cb(uv_timer_t *timer)
{
    am_run_check(timer->data);
}


static uint64_t am_run_waited(const am_run_t *run);


/* The run's first process ended (cold: the worker's child; warm: the
   parent's). */
static void
am_run_exited(am_run_t *run, int64_t exit_status, int term_signal)
{
    run->exited = 1;
    run->exit_status = exit_status;
    run->term_signal = term_signal;
    run->elapsed_us =
        (long) ((uv_hrtime() - run->start - am_run_waited(run)) / 1000);

    am_run_unlink(run);

    uv_update_time(run->loop);
    run->reap_until = uv_now(run->loop) + AM_RUN_REAP_MS;
    uv_timer_stop(&run->timer);
    uv_timer_start(&run->timer, am_run_reap_cb, AM_RUN_REAP_INTERVAL_MS,
        AM_RUN_REAP_INTERVAL_MS);

    am_run_check(run);
}


/* The pidfd of a vfork'ed child is readable: it has exited. */
static void
am_run_pidfd_cb(uv_poll_t *watch, int status, int events)
{
    am_run_t *run;
    pid_t     pid;
    int       ws;

    (void) status;
    (void) events;

    run = watch->data;

    do {
        pid = waitpid(run->pid, &ws, WNOHANG);
    } while (pid == -1 && errno == EINTR);

    if (pid == 0) {
        return;
    }

    am_run_unwatch(run);

    if (pid == -1) {
        /* reaped by someone else: nothing is known of how it ended */
        am_run_exited(run, -1, 0);

    } else if (WIFSIGNALED(ws)) {
        am_run_exited(run, 0, WTERMSIG(ws));

    } else {
        am_run_exited(run, WEXITSTATUS(ws), 0);
    }
}


static void
am_run_exit_cb(uv_process_t *process, int64_t exit_status, int term_signal)
{
    am_run_t *run;

    run = process->data;

    am_run_close(process);
    am_run_exited(run, exit_status, term_signal);
}


/*
 * Kills the run's process group. A warm run's pid comes from its parent a
 * little later than the run starts: until then the kill waits, and its
 * first process is killed by pid too, since it may not lead its group yet.
 */
static void
am_run_kill(am_run_t *run)
{
    if (run->pid <= 0) {
        run->kill_pending = !run->exited;
        return;
    }

    (void) kill(-run->pid, SIGKILL);

    if (!run->exited && run->warm.started != NULL) {
        (void) kill(run->pid, SIGKILL);
    }
}


static void
am_run_warm_started(am_warm_req_t *req, pid_t pid)
{
    am_run_t *run;

    run = req->data;
    run->pid = pid;

    if (run->kill_pending) {
        am_run_kill(run);
    }
}


static void
am_run_warm_exited(am_warm_req_t *req, int status, int lost)
{
    am_run_t *run;

    run = req->data;

    if (lost) {
        run->warm_lost = 1;
        am_run_exited(run, -1, SIGKILL);

    } else if (WIFSIGNALED(status)) {
        am_run_exited(run, 0, WTERMSIG(status));

    } else {
        am_run_exited(run, WEXITSTATUS(status), 0);
    }
}


static void
am_run_timeout_cb(uv_timer_t *timer)
{
    am_run_t *run;

    run = timer->data;

    if (!run->cancelled && !run->overflow) {
        run->timed_out = 1;
    }

    am_run_kill(run);
}


static void
am_run_alloc_cb(uv_handle_t *handle, size_t size, uv_buf_t *buf)
{
    am_run_t *run;

    (void) size;

    run = handle->data;
    *buf = uv_buf_init(run->buf, sizeof(run->buf));
}


/*
 * stdout: kept up to max_output; one byte more kills the run. A held run's
 * first byte is AM_SANDBOX_READY, not output.
 */
static void
am_run_read_out(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    am_run_t   *run;
    const char *data;
    size_t      cap, n;
    char       *p;

    run = stream->data;

    if (nread < 0) {
        am_run_close(stream);
        return;
    }

    data = buf->base;
    n = (size_t) nread;

    /* only the first byte may be it: never one of the run's own */
    if (run->ready_mark && n > 0) {
        run->ready_mark = 0;
        if (data[0] == AM_SANDBOX_READY) {
            run->ready = uv_hrtime();
            data++;
            n--;
        }
    }

    if (n == 0) {
        return;
    }

    if (n > run->max_output - run->output_len) {
        run->overflow = !run->timed_out && !run->cancelled;
        am_run_kill(run);
        am_run_close(stream);
        return;
    }

    if (run->output_len + n > run->output_cap) {
        cap = run->output_cap ? run->output_cap * 2 : sizeof(run->buf);
        while (cap < run->output_len + n) {
            cap *= 2;
        }

        p = realloc(run->output, cap);
        if (p == NULL) {
            run->overflow = 1;
            am_run_kill(run);
            am_run_close(stream);
            return;
        }

        run->output = p;
        run->output_cap = cap;
    }

    memcpy(run->output + run->output_len, data, n);
    run->output_len += n;
}


/* Keeps the last bytes of stderr whatever the log's cap. */
static void
am_run_keep_tail(am_run_t *run, const char *p, size_t n)
{
    size_t keep;

    if (n >= AM_RUN_TAIL) {
        memcpy(run->tail, p + n - AM_RUN_TAIL, AM_RUN_TAIL);
        run->tail_len = AM_RUN_TAIL;
        return;
    }

    keep = run->tail_len + n > AM_RUN_TAIL ? AM_RUN_TAIL - n : run->tail_len;
    memmove(run->tail, run->tail + run->tail_len - keep, keep);
    memcpy(run->tail + keep, p, n);
    run->tail_len = keep + n;
}


/* stderr: the log, up to max_log; the rest is read and dropped. */
static void
am_run_read_err(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    am_run_t *run;
    size_t    n;

    run = stream->data;

    if (nread < 0) {
        am_run_close(stream);
        return;
    }

    am_run_keep_tail(run, buf->base, (size_t) nread);

    if (run->log_dropped) {
        return;
    }

    n = run->max_log - run->log_len;
    if ((size_t) nread > n) {
        run->log_dropped = 1;

        /* cut on a character boundary */
        while (n > 0 && (buf->base[n] & 0xc0) == 0x80) {
            n--;
        }
    } else {
        n = (size_t) nread;
    }

    if (n > 0) {
        memcpy(run->log + run->log_len, buf->base, n);
        run->log_len += n;
    }
}


static void
am_run_write_cb(uv_write_t *req, int status)
{
    am_run_t *run;

    (void) status;

    run = req->handle->data;
    am_run_close(&run->in);
}


/* "{file}" and "{dir}" in tmpl replaced; the length, and the text if out. */
static size_t
am_run_subst(const char *tmpl, const char *dir, const char *file, char *out)
{
    const char *p, *with;
    size_t      n, len;

    n = 0;

    for (p = tmpl; *p != '\0'; p += len) {
        if (strncmp(p, "{file}", 6) == 0) {
            with = file, len = 6;
        } else if (strncmp(p, "{dir}", 5) == 0) {
            with = dir, len = 5;
        } else {
            with = NULL, len = 1;
        }

        if (out != NULL) {
            if (with != NULL) {
                memcpy(out + n, with, strlen(with));
            } else {
                out[n] = *p;
            }
        }

        n += with != NULL ? strlen(with) : 1;
    }

    if (out != NULL) {
        out[n] = '\0';
    }

    return n;
}


static void
am_run_free_command(char **cmd)
{
    size_t i;

    for (i = 0; cmd[i] != NULL; i++) {
        free(cmd[i]);
    }

    free(cmd);
}


/* The runtime's command for this run, placeholders replaced. */
static char **
am_run_command(const am_runtime_t *rt, const char *dir)
{
    char   file[PATH_MAX];
    char **cmd;
    size_t n, i;

    if ((size_t) snprintf(file, sizeof(file), "%s/%s", dir, rt->file_name)
        >= sizeof(file)) {
        return NULL;
    }

    for (n = 0; rt->argv[n] != NULL; n++) {
        /* count */
    }

    cmd = calloc(n + 1, sizeof(char *));
    if (cmd == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        cmd[i] = malloc(am_run_subst(rt->argv[i], dir, file, NULL) + 1);
        if (cmd[i] == NULL) {
            am_run_free_command(cmd);
            return NULL;
        }

        (void) am_run_subst(rt->argv[i], dir, file, cmd[i]);
    }

    return cmd;
}


/*
 * The three pipes: the worker's ends become run->in, out and err; the
 * child's ends go to child[] (-1 when not made), closed after the spawn.
 */
static int
am_run_pipes(am_run_t *run, uv_file *child)
{
    uv_pipe_t *handle[3];
    uv_file    fds[2];
    int        i, rc;

    handle[0] = &run->in;
    handle[1] = &run->out;
    handle[2] = &run->err;

    for (i = 0; i < 3; i++) {
        (void) uv_pipe_init(run->loop, handle[i], 0);
        handle[i]->data = run;
        run->open++;
        child[i] = -1;
    }

    for (i = 0; i < 3; i++) {
        rc = i == 0 ? uv_pipe(fds, 0, UV_NONBLOCK_PIPE)
                    : uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
        if (rc != 0) {
            return rc;
        }

        child[i] = fds[i == 0 ? 0 : 1];

        rc = uv_pipe_open(handle[i], fds[i == 0 ? 1 : 0]);
        if (rc != 0) {
            (void) close(fds[i == 0 ? 1 : 0]);
            return rc;
        }
    }

    return 0;
}


/*
 * The warm parents' configuration for a run of preload (NULL or "" for
 * none): automations-sandbox.so beside the sandbox binary self (in a build
 * tree) or in its lib folder (installed), into lib (PATH_MAX bytes). -1
 * when python runs are not forked or the library is missing.
 */
static int
am_run_warm_config(const am_run_config_t *cfg, const char *self,
    const char *preload, am_warm_config_t *wcfg, char *lib)
{
    const char *p;
    static int  said;

    if (!cfg->python_warm || (p = strrchr(self, '/')) == NULL
        || snprintf(lib, PATH_MAX, "%.*s/" AM_RUN_SANDBOX_LIB, (int) (p - self),
               self)
               >= PATH_MAX) {
        return -1;
    }

    if (access(lib, R_OK) != 0
        && snprintf(lib, PATH_MAX,
               "%.*s/../lib/automations/" AM_RUN_SANDBOX_LIB, (int) (p - self),
               self)
               >= PATH_MAX) {
        return -1;
    }

    if (access(lib, R_OK) != 0) {
        if (!said && cfg->log != NULL) {
            cfg->log("python runs start cold: no %s", lib);
        }
        said = 1;
        return -1;
    }

    wcfg->lib = lib;
    wcfg->runner = am_python_runner;
    wcfg->log = cfg->log;
    wcfg->preload = preload;
    wcfg->allow = cfg->warm_preload_allow;
    wcfg->max_parents = cfg->warm_max_parents;
    wcfg->parent_memory_mb = cfg->warm_parent_memory_mb;

    return 0;
}


/*
 * Hands a python run to a warm parent (see warm.h) when one of its parents
 * is ready (the one of its preload, or else the plain one): the same
 * sandbox arguments, environment and folder as a cold run. 0 when a parent
 * took it.
 */
static int
am_run_spawn_warm(am_run_t *run, const am_run_config_t *cfg,
    const am_runtime_t *rt, char **argv, char **env, const uv_file *child,
    const char *preload)
{
    am_warm_config_t wcfg;
    char             lib[PATH_MAX];

    if (rt->argv != am_run_python_argv
        || am_run_warm_config(cfg, argv[0], preload, &wcfg, lib) != 0) {
        return -1;
    }

    run->warm.data = run;
    run->warm.started = am_run_warm_started;
    run->warm.exited = am_run_warm_exited;

    run->start = uv_hrtime();

    if (am_warm_run(run->loop, &wcfg, &run->warm, argv, env, run->dir, child)
        != 0) {
        run->warm.started = NULL;
        return -1;
    }

    return 0;
}


void
am_run_warm_prestart(uv_loop_t *loop, const am_run_config_t *cfg,
    void (*ready)(void *data), void                         *data)
{
    am_warm_config_t wcfg;
    const char      *self;
    char             lib[PATH_MAX], selfbuf[PATH_MAX];

    self = am_run_self(cfg, selfbuf, sizeof(selfbuf));

    if (self == NULL || am_run_warm_config(cfg, self, NULL, &wcfg, lib) != 0) {
        ready(data);
        return;
    }

    am_warm_prestart(loop, &wcfg, ready, data);
}


/* Whether this kernel has pidfd_open(2) (Linux 5.3), asked once. */
static int
am_run_has_pidfd(void)
{
    static int has = -1;
    int        fd;

    if (has == -1) {
        fd = (int) syscall(SYS_pidfd_open, getpid(), 0);
        has = fd != -1;
        if (fd != -1) {
            (void) close(fd);
        }
    }

    return has;
}


/*
 * The child of am_run_spawn_pidfd, sharing the worker's memory until it
 * execs: what uv_spawn's child does (every signal back to its default and
 * unblocked, a new session, the pipes, the run folder), with system calls
 * only. On failure, errno goes to *err for the parent.
 */
static void
am_run_child(const char *dir, const char *self, char **argv, char **env,
    const uv_file *child, volatile int *err)
{
    sigset_t none;
    int      sig, i;

    for (sig = 1; sig < 32; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            (void) signal(sig, SIG_DFL);
        }
    }

    sigemptyset(&none);

    if (setsid() != -1) {
        for (i = 0; i < 3 && dup2(child[i], i) != -1; i++) {
            /* next */
        }

        if (i == 3 && chdir(dir) == 0) {
            (void) sigprocmask(SIG_SETMASK, &none, NULL);
            execve(self, argv, env);
        }
    }

    *err = errno;
    _exit(127);
}


/*
 * Starts the sandbox with vfork(2), which does not copy the worker's
 * memory: uv_spawn forks, which for a process of the worker's size takes
 * a millisecond or more while the whole loop waits. The child is watched
 * through a pidfd. 0; 1 when it cannot be done here (uv_spawn then does
 * it); or a libuv error.
 */
static int
am_run_spawn_pidfd(am_run_t *run, const char *self, char **argv, char **env,
    const uv_file *child)
{
    sigset_t     all, old;
    pid_t        pid;
    int          fd, rc;
    volatile int err;

    /* a dup2 onto a descriptor still to be duplicated would clobber it */
    if (!am_run_has_pidfd() || child[0] < 3 || child[1] < 3 || child[2] < 3) {
        return 1;
    }

    err = 0;

    /* no handler of the worker may run in the child, on its memory */
    sigfillset(&all);
    (void) pthread_sigmask(SIG_SETMASK, &all, &old);

    run->start = uv_hrtime();
    pid = vfork();

    if (pid == 0) {
        am_run_child(run->dir, self, argv, env, child, &err);
    }

    rc = pid == -1 ? errno : err;
    (void) pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (pid == -1) {
        return uv_translate_sys_error(rc);
    }

    if (rc != 0) {
        (void) waitpid(pid, NULL, 0);
        return uv_translate_sys_error(rc);
    }

    fd = (int) syscall(SYS_pidfd_open, pid, 0);

    if (fd == -1 || uv_poll_init(run->loop, &run->exit_watch, fd) != 0) {
        rc = fd == -1 ? uv_translate_sys_error(errno) : UV_EIO;
        if (fd != -1) {
            (void) close(fd);
        }
        (void) kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
        return rc;
    }

    run->pid = pid;
    run->pidfd = fd;
    run->exit_watch.data = run;
    run->watch_init = 1;
    run->open++;

    (void) uv_poll_start(&run->exit_watch, UV_READABLE, am_run_pidfd_cb);

    return 0;
}


/*
 * Spawns "self --sandbox <limits> -- <command>" in a new session, with a
 * clean environment, in the run folder, or has the warm python parent fork
 * it. 0, or a libuv error.
 */
static int
am_run_spawn(am_run_t *run, const am_run_config_t *cfg, const char *self,
    const am_runtime_t *rt, const am_sandbox_limits_t *limits,
    const char *preload)
{
    uv_process_options_t opts;
    uv_stdio_container_t stdio[3];
    uv_file              child[3];
    char                 home[PATH_MAX + 8], tmpdir[PATH_MAX + 8];
    char               **cmd, **argv, *env[7];
    int                  rc, i;

    snprintf(home, sizeof(home), "HOME=%s", run->dir);
    snprintf(tmpdir, sizeof(tmpdir), "TMPDIR=%s", run->dir);
    env[0] = "PATH=/usr/local/bin:/usr/bin:/bin";
    env[1] = home;
    env[2] = "LANG=C.UTF-8";
    env[3] = tmpdir;
    env[4] = "PYTHONDONTWRITEBYTECODE=1";
    env[5] = "PYTHONUNBUFFERED=1";
    env[6] = NULL;

    cmd = am_run_command(rt, run->dir);
    argv = cmd != NULL ? am_sandbox_argv(self, limits, cmd) : NULL;
    rc = am_run_pipes(run, child);

    if (argv == NULL && rc == 0) {
        rc = UV_ENOMEM;
    }

    if (rc == 0
        && am_run_spawn_warm(run, cfg, rt, argv, env, child, preload) != 0
        && (rc = am_run_spawn_pidfd(run, self, argv, env, child)) == 1) {
        rc = 0;
        memset(&opts, 0, sizeof(opts));
        for (i = 0; i < 3; i++) {
            stdio[i].flags = UV_INHERIT_FD;
            stdio[i].data.fd = child[i];
        }

        opts.exit_cb = am_run_exit_cb;
        opts.file = self;
        opts.args = argv;
        opts.env = env;
        opts.cwd = run->dir;
        opts.flags = UV_PROCESS_DETACHED;
        opts.stdio_count = 3;
        opts.stdio = stdio;

        run->process.data = run;
        run->start = uv_hrtime();
        rc = uv_spawn(run->loop, &run->process, &opts);
        run->process_init = 1;
        run->open++;
    }

    for (i = 0; i < 3; i++) {
        if (child[i] != -1) {
            (void) close(child[i]);
        }
    }

    free(argv);
    if (cmd != NULL) {
        am_run_free_command(cmd);
    }

    return rc;
}


/* Reading, writing and the wall clock, once the child runs. */
static void
am_run_begin(am_run_t *run)
{
    run->spawned = 1;
    if (run->process_init) {
        run->pid = run->process.pid;
    } else if (!run->watch_init) {
        run->pid = run->warm.pid;
    }
    run->next = am_run_live;
    am_run_live = run;

    if (uv_read_start(
            (uv_stream_t *) &run->out, am_run_alloc_cb, am_run_read_out)
        != 0) {
        am_run_close(&run->out);
    }

    if (uv_read_start(
            (uv_stream_t *) &run->err, am_run_alloc_cb, am_run_read_err)
        != 0) {
        am_run_close(&run->err);
    }

    if (!run->held) {
        am_run_write_payload(run);
    }

    uv_update_time(run->loop);
    uv_timer_start(
        &run->timer, am_run_timeout_cb, (uint64_t) run->timeout_ms, 0);
}


/* the payload on stdin, after the byte that lets a held run go */
static void
am_run_write_payload(am_run_t *run)
{
    static char go[] = "G";
    uv_buf_t    buf[2];
    unsigned    n;

    n = 0;

    if (run->held) {
        buf[n++] = uv_buf_init(go, 1);
        run->held = 0;
    }

    if (run->payload_len) {
        buf[n++] = uv_buf_init(run->payload, (unsigned) run->payload_len);
    }

    if (n == 0
        || uv_write(
               &run->write, (uv_stream_t *) &run->in, buf, n, am_run_write_cb)
               != 0) {
        am_run_close(&run->in);
    }
}


/*
 * How long a held run waited at its gate, ready, for am_run_release(): not
 * the run's own time. 0 when it was not ready yet when let go (or its
 * AM_SANDBOX_READY was read only after).
 */
static uint64_t
am_run_waited(const am_run_t *run)
{
    if (run->ready == 0 || run->released <= run->ready) {
        return 0;
    }

    return run->released - run->ready;
}


/*
 * The run's clock leaves out its wait at the gate, which is the gateway's
 * (execution_start on its way), not the run's: its execution time is the
 * sandbox's set-up and the run, as for a run not held, and its timeout
 * starts again with what the set-up took already taken off. Until now the
 * timeout bounded how long the held sandbox waits.
 */
void
am_run_release(am_run_t *run)
{
    uint64_t used_ms, left_ms;

    if (!run->held || run->exited || run->cancelled || run->timed_out) {
        return;
    }

    run->released = uv_hrtime();
    used_ms = (run->released - run->start - am_run_waited(run)) / 1000000;
    left_ms = (uint64_t) run->timeout_ms > used_ms
                  ? (uint64_t) run->timeout_ms - used_ms
                  : 1;

    uv_update_time(run->loop);
    uv_timer_start(&run->timer, am_run_timeout_cb, left_ms, 0);
    am_run_write_payload(run);
}


static const am_runtime_t *
am_run_find(const am_run_config_t *cfg, const char *name)
{
    size_t i;

    for (i = 0; i < cfg->nruntimes; i++) {
        if (strcmp(cfg->runtimes[i].name, name) == 0) {
            return &cfg->runtimes[i];
        }
    }

    return NULL;
}


static int
am_run_needs_runner(const am_runtime_t *rt)
{
    size_t i;

    for (i = 0; rt->argv[i] != NULL; i++) {
        if (strstr(rt->argv[i], "{dir}/" AM_RUN_RUNNER) != NULL) {
            return 1;
        }
    }

    return 0;
}


/*
 * The user a run executes as: when the worker is root and no uid is
 * configured, one of its own (a slot of am_run_uid_taken, taken here, is
 * returned); else the one configured, or nobody (-1 is returned).
 */
static int
am_run_pick_user(const am_run_config_t *cfg, am_sandbox_limits_t *limits)
{
    int k;

    limits->drop = geteuid() == 0;
    limits->uid = cfg->uid > 0 ? cfg->uid : AM_RUN_NOBODY;
    limits->gid = cfg->gid > 0 ? cfg->gid : AM_RUN_NOBODY;
    limits->own_uid = 0;

    if (cfg->uid > 0 || !limits->drop) {
        return -1;
    }

    for (k = 0; k < AM_RUN_UID_SLOTS; k++) {
        if (!am_run_uid_taken[k]) {
            am_run_uid_taken[k] = 1;
            limits->uid =
                (uid_t) (AM_RUN_UID_BASE
                         + AM_RUN_UID_SLOTS * (getpid() % AM_RUN_UID_BLOCKS)
                         + k);
            limits->gid = cfg->gid > 0 ? cfg->gid : (gid_t) limits->uid;
            limits->own_uid = 1;
            return k;
        }
    }

    return -1;
}


/* The configuration with its defaults applied, for one run. */
static void
am_run_configure(am_run_t *run, const am_run_config_t *cfg, long timeout_ms,
    int no_network, am_sandbox_limits_t *limits)
{
    long max;

    max = cfg->max_timeout_ms > 0 ? cfg->max_timeout_ms : AM_RUN_TIMEOUT_MAX_MS;
    run->timeout_ms = timeout_ms > 0 && timeout_ms < max ? timeout_ms : max;
    run->max_output = cfg->max_output ? cfg->max_output : AM_RUN_MAX_OUTPUT;
    run->max_log = cfg->max_log ? cfg->max_log : AM_RUN_MAX_LOG;
    run->max_file_mb = AM_RUN_MAX_FILE_MB;

    limits->cpu_seconds = cfg->cpu_seconds > 0
                              ? cfg->cpu_seconds
                              : (run->timeout_ms + 999) / 1000 + 1;
    limits->memory_mb = cfg->memory_mb > 0 ? cfg->memory_mb : AM_RUN_MEMORY_MB;
    limits->max_processes =
        cfg->max_processes > 0 ? cfg->max_processes : AM_RUN_MAX_PROCESSES;
    limits->max_open_files =
        cfg->max_open_files > 0 ? cfg->max_open_files : AM_RUN_MAX_OPEN_FILES;
    limits->max_file_mb = AM_RUN_MAX_FILE_MB;
    limits->confine = geteuid() == 0 && !cfg->unconfined;
    limits->no_network = limits->confine && no_network;
    limits->tmp_mb = cfg->tmp_mb > 0 ? cfg->tmp_mb : AM_RUN_TMP_MB;
    limits->hidden = cfg->hidden != NULL ? cfg->hidden : AM_RUN_HIDDEN;

    /* the folder made ahead comes with its user, and is the run's now */
    if (am_run_ahead.cfg == cfg) {
        limits->drop = am_run_ahead.user.drop;
        limits->uid = am_run_ahead.user.uid;
        limits->gid = am_run_ahead.user.gid;
        limits->own_uid = am_run_ahead.user.own_uid;
        run->uid_slot = am_run_ahead.uid_slot;
        memcpy(run->dir, am_run_ahead.dir, sizeof(run->dir));
        am_run_ahead.cfg = NULL;
        return;
    }

    run->uid_slot = am_run_pick_user(cfg, limits);
}


/* The worker's own binary, for the sandbox mode; NULL when unknown. */
static const char *
am_run_self(const am_run_config_t *cfg, char *buf, size_t size)
{
    ssize_t n;

    if (cfg->self_path != NULL) {
        return cfg->self_path;
    }

    n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0) {
        return NULL;
    }

    buf[n] = '\0';

    return buf;
}


const char *
am_run_tmp_root(const am_run_config_t *cfg)
{
    const char *p;

    if (cfg->tmp_root != NULL) {
        return cfg->tmp_root;
    }

    p = getenv("TMPDIR");

    return p != NULL && p[0] == '/' ? p : "/tmp";
}


/*
 * Once per process: a closed stdin must not kill the worker, and the runs'
 * orphans must come back to it.
 */
static void
am_run_init_process(void)
{
    static int done;

    if (!done) {
        (void) signal(SIGPIPE, SIG_IGN);
        am_sandbox_adopt_orphans();
        done = 1;
    }
}


/*
 * Runs /bin/true through the sandbox the way a confined run without
 * network runs, and waits for it: 0 when it worked, else -1 with the
 * sandbox's complaint in why.
 */
static int
am_run_probe(const am_run_config_t *cfg, char *why, size_t len)
{
    am_sandbox_limits_t limits;
    const char         *self;
    char                dir[PATH_MAX], selfbuf[PATH_MAX], **argv, *p;
    char               *cmd[] = {"/bin/true", NULL};
    ssize_t             n;
    size_t              got;
    pid_t               pid;
    int                 fds[2], status, null;

    memset(&limits, 0, sizeof(limits));
    limits.cpu_seconds = 5;
    limits.drop = 1;
    limits.uid = cfg->uid > 0 ? cfg->uid : AM_RUN_NOBODY;
    limits.gid = cfg->gid > 0 ? cfg->gid : AM_RUN_NOBODY;
    limits.confine = 1;
    limits.no_network = 1;
    limits.tmp_mb = cfg->tmp_mb > 0 ? cfg->tmp_mb : AM_RUN_TMP_MB;
    limits.hidden = cfg->hidden != NULL ? cfg->hidden : AM_RUN_HIDDEN;

    self = am_run_self(cfg, selfbuf, sizeof(selfbuf));
    if (self == NULL) {
        snprintf(why, len, "cannot find the sandbox binary");
        return -1;
    }

    if (am_sandbox_mkdir(am_run_tmp_root(cfg), &limits, dir, why, len) != 0) {
        return -1;
    }

    argv = am_sandbox_argv(self, &limits, cmd);
    if (argv == NULL || pipe(fds) != 0) {
        snprintf(why, len, "out of resources");
        free(argv);
        (void) am_sandbox_rmtree(dir);
        return -1;
    }

    pid = fork();

    if (pid == 0) {
        null = open("/dev/null", O_RDWR);
        if (null == -1 || chdir(dir) != 0 || dup2(null, 0) == -1
            || dup2(null, 1) == -1 || dup2(fds[1], 2) == -1) {
            _exit(AM_RUN_PROBE_FAILED);
        }
        execv(self, argv);
        _exit(AM_RUN_PROBE_FAILED);
    }

    free(argv);
    close(fds[1]);

    got = 0;
    while (got < len - 1 && (n = read(fds[0], why + got, len - 1 - got)) > 0) {
        got += (size_t) n;
    }
    why[got] = '\0';
    close(fds[0]);

    status = -1;
    if (pid > 0) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            /* again */
        }
    }

    (void) am_sandbox_rmtree(dir);

    if (status == 0) {
        return 0;
    }

    p = strchr(why, '\n');
    if (p != NULL) {
        *p = '\0';
    }

    if (why[0] == '\0') {
        snprintf(why, len, "the probe run failed (status %d)", status);
    }

    return -1;
}


void
am_run_confinement(am_run_config_t *cfg, char *msg, size_t len)
{
    char why[256];

    msg[0] = '\0';

    if (geteuid() != 0) {
        snprintf(why, sizeof(why), "the worker is not root");
        cfg->unconfined = 1;

    } else if (cfg->unconfined) {
        snprintf(why, sizeof(why), "confinement is turned off");

    } else if (am_run_probe(cfg, why, sizeof(why)) != 0) {
        cfg->unconfined = 1;

    } else {
        return;
    }

    snprintf(msg, len,
        "runs are not confined (%s): they see the host's processes, /tmp, "
        "/dev/shm, network and every file their user may read, and "
        "\"network\": \"none\" is not enforced",
        why);
}


am_run_t *
am_run_start(uv_loop_t *loop, const am_run_config_t *cfg, const char *runtime,
    const char *code, size_t code_len, const char *payload, size_t payload_len,
    long timeout_ms, const char *network, const char *preload, int held,
    am_run_cb cb, void *data, char *err, size_t errlen)
{
    const am_runtime_t *rt;
    am_sandbox_limits_t limits;
    const char         *self;
    char                selfbuf[PATH_MAX];
    am_run_t           *run;
    int                 rc, no_network;

    rt = am_run_find(cfg, runtime);
    if (rt == NULL) {
        snprintf(err, errlen, "unknown runtime \"%s\"", runtime);
        return NULL;
    }

    no_network = network != NULL && strcmp(network, AM_RUN_NETWORK_NONE) == 0;

    if (network != NULL && network[0] != '\0' && !no_network
        && strcmp(network, AM_RUN_NETWORK_DEFAULT) != 0) {
        snprintf(err, errlen, "unknown network \"%.64s\"", network);
        return NULL;
    }

    self = am_run_self(cfg, selfbuf, sizeof(selfbuf));
    if (self == NULL) {
        snprintf(err, errlen, "cannot find the worker binary");
        return NULL;
    }

    am_run_init_process();

    /* all but the read buffer, which each read fills before it is read:
       zeroing its 64 KB was a third of the instructions a run cost the
       worker */
    run = malloc(sizeof(am_run_t));
    if (run == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memset(run, 0, offsetof(am_run_t, buf));

    run->loop = loop;
    run->cfg = cfg;
    run->cb = cb;
    run->data = data;
    run->pidfd = -1;
    am_run_configure(run, cfg, timeout_ms, no_network, &limits);
    run->confined = limits.confine;
    run->held = held ? 1 : 0;
    run->ready_mark = run->held;
    limits.gate = run->held;

    run->payload = malloc(payload_len + 1);
    run->log = malloc(run->max_log);
    if (run->payload == NULL || run->log == NULL) {
        snprintf(err, errlen, "out of memory");
        if (run->dir[0] != '\0') {
            (void) am_sandbox_rmtree(run->dir);
        }
        am_run_free(run);
        return NULL;
    }

    memcpy(run->payload, payload, payload_len);
    run->payload_len = payload_len;

    /* made ahead (am_run_configure took it), or now */
    if (run->dir[0] == '\0'
        && am_sandbox_mkdir(
               am_run_tmp_root(cfg), &limits, run->dir, err, errlen)
               != 0) {
        am_run_free(run);
        return NULL;
    }

    if (am_sandbox_write(
            run->dir, rt->file_name, code, code_len, &limits, err, errlen)
            != 0
        || (am_run_needs_runner(rt)
            && am_sandbox_write(run->dir, AM_RUN_RUNNER, am_python_runner,
                   strlen(am_python_runner), &limits, err, errlen)
                   != 0)) {
        (void) am_sandbox_rmtree(run->dir);
        am_run_free(run);
        return NULL;
    }

    (void) uv_timer_init(loop, &run->timer);
    run->timer.data = run;
    run->open = 1;

    rc = am_run_spawn(run, cfg, self, rt, &limits, preload);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start %s: %s", self, uv_strerror(rc));
        (void) am_sandbox_rmtree(run->dir);
        am_run_close_all(run);
        return NULL;
    }

    am_run_begin(run);

    return run;
}


void
am_run_cancel(am_run_t *run)
{
    if (run->exited) {
        return;
    }

    if (!run->timed_out && !run->overflow) {
        run->cancelled = 1;
    }

    am_run_kill(run);
}


pid_t
am_run_pid(const am_run_t *run)
{
    return run->pid;
}


const char *
am_run_dir(const am_run_t *run)
{
    return run->dir;
}


size_t
am_run_default_runtimes(am_runtime_t **out)
{
    *out = am_run_defaults;

    return sizeof(am_run_defaults) / sizeof(am_run_defaults[0]);
}


/* Letters, digits, '_', '-' (and '.' when dot): 1 when s is such a name. */
static int
am_run_name_ok(const char *s, int dot, size_t max)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
                || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'
                || (dot && s[i] == '.'))) {
            return 0;
        }
    }

    return i > 0 && i <= max && s[0] != '.';
}


int
am_run_parse_runtime(
    const char *spec, am_runtime_t *rt, char *err, size_t errlen)
{
    char  *s, *cmd, *file, *tok, *save, **argv;
    size_t n;

    memset(rt, 0, sizeof(*rt));

    s = strdup(spec);
    argv = calloc(strlen(spec) / 2 + 2, sizeof(char *));
    if (s == NULL || argv == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    cmd = strchr(s, '=');
    if (cmd == NULL) {
        snprintf(err, errlen, "runtime \"%s\": expected NAME=COMMAND", spec);
        goto failed;
    }

    *cmd++ = '\0';

    file = strchr(s, ':');
    if (file != NULL) {
        *file++ = '\0';
    } else {
        file = strcmp(s, "python") == 0 ? "main.py"
               : strcmp(s, "sh") == 0   ? "main.sh"
                                        : "main";
    }

    if (!am_run_name_ok(s, 0, 32)) {
        snprintf(err, errlen, "runtime \"%s\": bad name", spec);
        goto failed;
    }

    if (!am_run_name_ok(file, 1, 64) || strcmp(file, AM_RUN_RUNNER) == 0) {
        snprintf(err, errlen, "runtime \"%s\": bad file name", spec);
        goto failed;
    }

    n = 0;
    for (tok = strtok_r(cmd, " \t", &save); tok != NULL;
         tok = strtok_r(NULL, " \t", &save)) {
        argv[n++] = tok;
    }

    if (n == 0 || argv[0][0] != '/') {
        snprintf(err, errlen,
            "runtime \"%s\": the command must start with an absolute path",
            spec);
        goto failed;
    }

    rt->name = s;
    rt->argv = argv;
    rt->file_name = file;

    return 0;

failed:

    free(s);
    free(argv);

    return -1;
}


void
am_run_free_runtime(am_runtime_t *rt)
{
    free((char *) rt->name);
    free(rt->argv);
    memset(rt, 0, sizeof(*rt));
}
