/*
 * automations-worker: signals and the event loop. The work is in
 * consumer.c (runs) and deliver.c (webhooks), the options in options.c;
 * see worker.h.
 */

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/vfs.h>

#include <linux/magic.h>

#include "am_scripts.h"
#include "am_version.h"
#include "worker/sandbox.h"
#include "worker/worker.h"

/*
 * A shutdown in bounded time, Redis or not: a draining worker whose Redis
 * is unusable that long cancels its runs (their results could not be
 * stored); once runs are cancelled, writes still owed get AM_STOP_GRACE_MS;
 * then the connections are closed, and if runs have still not ended
 * AM_EXIT_GRACE_MS later, the process exits anyway. Entries not
 * acknowledged stay pending for other workers: nothing is lost.
 */
#define AM_DRAIN_CHECK_MS 250
#define AM_DRAIN_REDIS_MS 5000
#define AM_STOP_GRACE_MS 3000
#define AM_EXIT_GRACE_MS 2000

/* where confined runs' folders go by default: a tmpfs on every Linux */
#define AM_WORKER_SHM "/dev/shm"

/* A connection went up or down. */
static void
am_worker_redis_state(am_rds_t *r, int up, void *data)
{
    am_worker_t *w = data;

    if (up) {
        am_consumer_redis_up(w, r);
    }

    if (up && r == &w->cmd) {
        am_stats_beat(w);
    }
}

/* Closes every handle: uv_run() then returns, the loop being empty. */
static void
am_worker_close(am_worker_t *w)
{
    am_log("stopped");

    am_consumer_stop(w);
    am_deliver_stop(w);
    am_stats_stop(w);
    am_rds_close(&w->reader);
    am_rds_close(&w->cmd);
    uv_close((uv_handle_t *) &w->stop_timer, NULL);
    uv_close((uv_handle_t *) &w->sigterm, NULL);
    uv_close((uv_handle_t *) &w->sigint, NULL);
}

void
am_worker_check_done(am_worker_t *w)
{
    if (w->draining && !w->closed && w->njobs == 0 && w->ndeliveries == 0
        && !w->claiming_webhooks) {
        w->closed = 1;
        am_worker_close(w);
    }
}

static void am_worker_stop(am_worker_t *w, int level);

/* AM_EXIT_GRACE_MS after the connections were closed: runs still not over. */
static void
am_worker_exit_now(uv_timer_t *t)
{
    am_worker_t *w = t->data;

    am_log("%d run(s) did not end in time: exiting now, they stay queued",
        w->njobs);
    exit(1);
}

/* AM_STOP_GRACE_MS after the runs were cancelled. */
static void
am_worker_stop_timeout(uv_timer_t *t)
{
    am_worker_t *w = t->data;

    am_log("results not stored in time: stopping now, their runs stay "
           "queued for other workers");
    am_worker_stop(w, 3);
}

/* Every AM_DRAIN_CHECK_MS of a drain: is Redis there to take results? */
static void
am_worker_drain_check(uv_timer_t *t)
{
    am_worker_t *w = t->data;
    uint64_t     now;

    if (w->cmd.ready) {
        w->redis_down_at = 0;
        return;
    }

    now = uv_now(w->loop);
    if (w->redis_down_at == 0) {
        w->redis_down_at = now;
    }

    if (now - w->redis_down_at >= AM_DRAIN_REDIS_MS) {
        am_log("redis unavailable for %d s: cancelling the runs, they stay "
               "queued for other workers",
            AM_DRAIN_REDIS_MS / 1000);
        am_worker_stop(w, 2);
    }
}

/*
 * Takes the shutdown to level: 1 takes no more work and lets what was taken
 * finish, 2 cancels the runs, 3 closes the Redis connections, dropping
 * writes still owed. Each level is bounded by the timer it starts.
 */
static void
am_worker_stop(am_worker_t *w, int level)
{
    w->draining = level;
    uv_timer_stop(&w->stop_timer);

    switch (level) {
    case 1:
        am_rds_close(&w->reader);
        uv_timer_start(&w->stop_timer, am_worker_drain_check, AM_DRAIN_CHECK_MS,
            AM_DRAIN_CHECK_MS);
        break;
    case 2:
        uv_timer_start(
            &w->stop_timer, am_worker_stop_timeout, AM_STOP_GRACE_MS, 0);
        break;
    default:
        uv_timer_start(&w->stop_timer, am_worker_exit_now, AM_EXIT_GRACE_MS, 0);

        /* commands in flight get NULL replies: their jobs may end here */
        am_rds_close(&w->cmd);
        if (w->closed) {
            return;
        }
    }

    am_consumer_drain(w);
    am_deliver_drain(w);
    am_worker_check_done(w);
}

static void
am_worker_signal(uv_signal_t *s, int signum)
{
    am_worker_t *w = s->data;

    if (w->closed) {
        return;
    }

    if (w->draining == 3) {
        am_log("%s again: exiting now", strsignal(signum));
        exit(1);
    }

    switch (w->draining) {
    case 0:
        am_log("%s: finishing %d run(s) and %d webhook(s), then exiting",
            strsignal(signum), w->njobs, w->ndeliveries);
        break;
    case 1:
        am_log("%s again: cancelling the runs, they stay queued for other "
               "workers",
            strsignal(signum));
        break;
    default:
        am_log("%s again: stopping now, what is not stored stays queued for "
               "other workers",
            strsignal(signum));
    }

    am_worker_stop(w, w->draining + 1);
}

/* The two Redis connections; 0, or -1 when the address is wrong. */
static int
am_worker_redis(am_worker_t *w)
{
    char err[512];

    if (am_rds_init(&w->cmd, w->loop, &w->redis, "commands",
            am_worker_redis_state, w, err, sizeof(err))
            != 0
        || am_rds_init(&w->reader, w->loop, &w->redis, "reader",
               am_worker_redis_state, w, err, sizeof(err))
               != 0) {
        fprintf(stderr, "automations-worker: %s\n", err);
        return -1;
    }

    /* XREADGROUP BLOCK holds the reader: its reply may take that long */
    w->reader.timeout_ms += 2000;
    return 0;
}

/* The warm python parent is ready (or will not be): take runs. */
static void
am_worker_read(void *data)
{
    am_worker_t *w = data;

    if (!w->draining) {
        am_rds_connect(&w->reader);
    }
}

static int
am_worker_start(am_worker_t *w)
{
    if (am_deliver_start(w) != 0) {
        fprintf(stderr, "automations-worker: cannot start the webhook "
                        "engine (libcurl without an asynchronous resolver?)\n");
        return -1;
    }

    am_consumer_start(w);
    am_stats_start(w);

    uv_timer_init(w->loop, &w->stop_timer);
    w->stop_timer.data = w;

    uv_signal_init(w->loop, &w->sigterm);
    uv_signal_init(w->loop, &w->sigint);
    w->sigterm.data = w;
    w->sigint.data = w;
    uv_signal_start(&w->sigterm, am_worker_signal, SIGTERM);
    uv_signal_start(&w->sigint, am_worker_signal, SIGINT);

    am_rds_connect(&w->cmd);
    am_run_warm_prestart(w->loop, &w->run, am_worker_read, w);

    am_log("started: redis %s, stream %s, group %s, concurrency %d",
        w->redis.addr, w->stream, w->group, w->concurrency);
    return 0;
}

/* Whether path is a tmpfs this worker may write in. */
static int
am_worker_is_tmpfs(const char *path)
{
    struct statfs fs;

    return statfs(path, &fs) == 0 && fs.f_type == TMPFS_MAGIC
           && access(path, W_OK | X_OK) == 0;
}

/* This worker's folder of run folders, under root (am_sandbox_claim). */
static int
am_worker_claim(am_worker_t *w, const char *root)
{
    char err[PATH_MAX + 128];
    int  swept;

    swept = am_sandbox_claim(
        root, w->run_root, &w->run_root_lock, err, sizeof(err));
    if (swept < 0) {
        fprintf(stderr, "automations-worker: %s\n", err);
        return -1;
    }

    if (swept > 0) {
        am_log("removed the run folders of %d worker(s) gone", swept);
    }

    /* removed at exit (am_sandbox_release), with the folder made ahead */
    w->run.tmp_root = w->run_root;
    w->run.ahead = 1;
    return 0;
}

int
main(int argc, char **argv)
{
    static am_worker_t w;
    char               self[PATH_MAX], sandbox[PATH_MAX], *p;
    char               confinement[512];
    sigset_t           stop;
    ssize_t            n;
    int                rc, shm;

    am_sandbox_main(argc, argv);

    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        puts("automations-worker " AM_VERSION);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);

    /* a SIGTERM before the loop watches for it waits, rather than kill */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL);

    rc = am_options(&w, argc, argv);
    if (rc != 0) {
        am_options_free(&w);
        return rc > 0 ? 0 : 2;
    }

    am_log_name = w.name;

    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        fprintf(stderr, "automations-worker: cannot find its own binary\n");
        am_options_free(&w);
        return 1;
    }
    self[n] = '\0';

    /* automations-sandbox next to the worker starts faster than the worker */
    p = strrchr(self, '/');
    if (p != NULL
        && (size_t) (p - self) + sizeof("/automations-sandbox")
               <= sizeof(sandbox)) {
        memcpy(sandbox, self, (size_t) (p - self));
        strcpy(sandbox + (p - self), "/automations-sandbox");

        if (access(sandbox, X_OK) == 0) {
            w.run.self_path = sandbox;
        }
    }

    if (w.run.self_path == NULL) {
        w.run.self_path = self;
    }

    w.run.log = am_log;

    /*
     * The runs' folders go into one of this worker's: a worker killed
     * mid-run leaves its folder, which the next one to start removes. A
     * confined run only reads its code there, so a tmpfs saves the disk
     * a write per run; an unconfined one writes there, so not in memory.
     */
    shm = w.run.tmp_root == NULL && geteuid() == 0 && !w.run.unconfined
          && am_worker_is_tmpfs(AM_WORKER_SHM);
    if (am_worker_claim(&w, shm ? AM_WORKER_SHM : am_run_tmp_root(&w.run))
        != 0) {
        am_options_free(&w);
        return 1;
    }

    /* what runs cannot be kept from, said once */
    am_run_confinement(&w.run, confinement, sizeof(confinement));
    if (confinement[0] != '\0') {
        am_log("%s", confinement);
    }

    if (shm && w.run.unconfined) {
        am_sandbox_release(w.run_root, w.run_root_lock);
        w.run.tmp_root = NULL;
        if (am_worker_claim(&w, am_run_tmp_root(&w.run)) != 0) {
            am_options_free(&w);
            return 1;
        }
    }

    am_log("run folders in %s", w.run_root);

    if (am_scripts_init() != 0) {
        fprintf(stderr, "automations-worker: cannot digest the scripts\n");
        am_sandbox_release(w.run_root, w.run_root_lock);
        am_options_free(&w);
        return 1;
    }

    srandom((unsigned) time(NULL) ^ (unsigned) getpid());

    w.loop = uv_default_loop();

    if (am_worker_redis(&w) != 0) {
        am_sandbox_release(w.run_root, w.run_root_lock);
        am_options_free(&w);
        return 2;
    }

    if (am_worker_start(&w) != 0) {
        am_sandbox_release(w.run_root, w.run_root_lock);
        am_options_free(&w);
        return 1;
    }

    sigprocmask(SIG_UNBLOCK, &stop, NULL);

    uv_run(w.loop, UV_RUN_DEFAULT);
    uv_loop_close(w.loop);
    am_run_drop_ahead();
    am_sandbox_release(w.run_root, w.run_root_lock);
    am_options_free(&w);

    return 0;
}
