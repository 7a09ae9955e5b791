/*
 * The worker's counters: runs by runtime and status, their durations, and
 * webhook attempts by outcome. They live in this process and go to Redis
 * with each heartbeat (redis/worker_beat.lua, every visibility timeout / 3)
 * as Prometheus text with a worker label, whole each time: a lost beat
 * loses nothing, the next one carries the totals. The hash expires one
 * visibility timeout after the last beat, when the worker is taken for
 * dead, so the module's metrics page (automations_metrics) shows the live
 * workers only, and Prometheus sees a dead worker's series end as it would
 * a target that went away.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_scripts.h"
#include "worker/worker.h"

#define AM_STATS_BUCKETS 12

/* the run statuses of execution_complete, in this order */
static const char *am_stats_statuses[] = {"success", "error", "timed_out"};
#define AM_STATS_NSTATUSES 3

/* webhook_result's outcomes of one attempt */
static const char *am_stats_outcomes[] = {"delivered", "retry", "dead"};
#define AM_STATS_NOUTCOMES 3

/* upper bounds of the run duration buckets, in ms */
static const long am_stats_bounds[AM_STATS_BUCKETS] = {
    10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000};

typedef struct {
    char               name[AM_NAME_MAX + 1];
    unsigned long long runs[AM_STATS_NSTATUSES];
    unsigned long long bucket[AM_STATS_BUCKETS + 1]; /* not cumulative */
    unsigned long long sum_ms;
} am_stats_runtime_t;

static am_stats_runtime_t am_stats_runtimes[AM_RUNTIMES_MAX];
static int                am_stats_nruntimes;
static unsigned long long am_stats_webhooks[AM_STATS_NOUTCOMES];

/* a growing text buffer; on allocation failure the beat is skipped */
typedef struct {
    char  *p;
    size_t len;
    size_t size;
    int    failed;
} am_text_t;

static void am_text_printf(am_text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
am_text_printf(am_text_t *t, const char *fmt, ...)
{
    va_list ap;
    int     n;
    char   *p;

    for (;;) {
        if (t->failed) {
            return;
        }

        va_start(ap, fmt);
        n = vsnprintf(
            t->p ? t->p + t->len : NULL, t->p ? t->size - t->len : 0, fmt, ap);
        va_end(ap);

        if (n < 0) {
            t->failed = 1;
            return;
        }

        if (t->p && t->len + (size_t) n < t->size) {
            t->len += (size_t) n;
            return;
        }

        t->size = (t->size + (size_t) n + 1) * 2;
        p = realloc(t->p, t->size);
        if (p == NULL) {
            t->failed = 1;
            return;
        }
        t->p = p;
    }
}

/* a label value: the worker's name is free text */
static void
am_text_label(am_text_t *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            am_text_printf(t, "\\%c", *s);
        } else if (*s == '\n') {
            am_text_printf(t, "\\n");
        } else {
            am_text_printf(t, "%c", *s);
        }
    }
}

/* "name{worker="W"," with the labels left open for the caller */
static void
am_text_sample(am_text_t *t, const char *name)
{
    am_text_printf(t, "%s{worker=\"", name);
    am_text_label(t, am_log_name);
    am_text_printf(t, "\",");
}

/* ms as seconds, as short as it goes: 2500 is 2.5, 10 is 0.01 */
static void
am_text_seconds(am_text_t *t, unsigned long long ms)
{
    char   s[48];
    size_t n;

    n = (size_t) snprintf(s, sizeof(s), "%llu.%03llu", ms / 1000, ms % 1000);

    while (s[n - 1] == '0') {
        n--;
    }

    if (s[n - 1] == '.') {
        n--;
    }

    am_text_printf(t, "%.*s", (int) n, s);
}

static am_stats_runtime_t *
am_stats_runtime(const char *name)
{
    am_stats_runtime_t *rt;
    int                 i;

    for (i = 0; i < am_stats_nruntimes; i++) {
        if (strcmp(am_stats_runtimes[i].name, name) == 0) {
            return &am_stats_runtimes[i];
        }
    }

    /* execution_start names runtimes of this worker's --runtime list */
    if (am_stats_nruntimes == AM_RUNTIMES_MAX || strlen(name) > AM_NAME_MAX) {
        return NULL;
    }

    rt = &am_stats_runtimes[am_stats_nruntimes++];
    strcpy(rt->name, name);
    return rt;
}

void
am_stats_run(am_worker_t *w, const char *runtime, const char *status, long ms)
{
    am_stats_runtime_t *rt;
    int                 i;

    (void) w;

    rt = am_stats_runtime(runtime && runtime[0] ? runtime : "unknown");
    if (rt == NULL) {
        return;
    }

    for (i = 0; i < AM_STATS_NSTATUSES; i++) {
        if (strcmp(status, am_stats_statuses[i]) == 0) {
            rt->runs[i]++;
            break;
        }
    }

    if (ms < 0) {
        ms = 0;
    }

    for (i = 0; i < AM_STATS_BUCKETS && ms > am_stats_bounds[i]; i++) {
        /* void */
    }

    rt->bucket[i]++;
    rt->sum_ms += (unsigned long long) ms;
}

void
am_stats_webhook(am_worker_t *w, const char *outcome)
{
    int i;

    (void) w;

    for (i = 0; i < AM_STATS_NOUTCOMES; i++) {
        if (strcmp(outcome, am_stats_outcomes[i]) == 0) {
            am_stats_webhooks[i]++;
        }
    }
}

static void
am_stats_text_runs(am_text_t *t)
{
    am_stats_runtime_t *rt;
    int                 i, s;

    for (i = 0; i < am_stats_nruntimes; i++) {
        rt = &am_stats_runtimes[i];

        for (s = 0; s < AM_STATS_NSTATUSES; s++) {
            am_text_sample(t, "automations_worker_runs_total");
            am_text_printf(t, "runtime=\"%s\",status=\"%s\"} %llu\n", rt->name,
                am_stats_statuses[s], rt->runs[s]);
        }
    }
}

static void
am_stats_text_durations(am_text_t *t)
{
    am_stats_runtime_t *rt;
    unsigned long long  n;
    int                 i, b;

    for (i = 0; i < am_stats_nruntimes; i++) {
        rt = &am_stats_runtimes[i];
        n = 0;

        for (b = 0; b <= AM_STATS_BUCKETS; b++) {
            n += rt->bucket[b];
            am_text_sample(t, "automations_worker_run_duration_seconds_bucket");
            am_text_printf(t, "runtime=\"%s\",le=\"", rt->name);

            if (b < AM_STATS_BUCKETS) {
                am_text_seconds(t, (unsigned long long) am_stats_bounds[b]);
            } else {
                am_text_printf(t, "+Inf");
            }

            am_text_printf(t, "\"} %llu\n", n);
        }

        am_text_sample(t, "automations_worker_run_duration_seconds_sum");
        am_text_printf(t, "runtime=\"%s\"} ", rt->name);
        am_text_seconds(t, rt->sum_ms);
        am_text_printf(t, "\n");

        am_text_sample(t, "automations_worker_run_duration_seconds_count");
        am_text_printf(t, "runtime=\"%s\"} %llu\n", rt->name, n);
    }
}

static void
am_stats_text_webhooks(am_text_t *t)
{
    int i;

    for (i = 0; i < AM_STATS_NOUTCOMES; i++) {
        am_text_sample(t, "automations_worker_webhook_attempts_total");
        am_text_printf(t, "outcome=\"%s\"} %llu\n", am_stats_outcomes[i],
            am_stats_webhooks[i]);
    }
}

static void
am_stats_beat_cb(am_rds_t *r, redisReply *reply, void *data)
{
    (void) r;
    (void) data;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        am_log_at(AM_LOG_WARN, NULL, "worker_beat: %s", reply->str);
    }
}

/* Sends the totals; a beat while Redis is away is simply skipped. */
void
am_stats_beat(am_worker_t *w)
{
    enum { n = AM_WORKER_BEAT_NKEYS + AM_WORKER_BEAT_NARGS };

    const char *argv[n], **args;
    char        ttl[32];
    am_text_t   text[3];
    int         i;

    if (!w->cmd.ready) {
        return;
    }

    memset(text, 0, sizeof(text));
    am_stats_text_runs(&text[0]);
    am_stats_text_durations(&text[1]);
    am_stats_text_webhooks(&text[2]);

    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long) w->visibility_ms);

    args = argv + AM_WORKER_BEAT_NKEYS;
    argv[AM_WORKER_BEAT_KEY_WORKER] = w->beat_key;
    argv[AM_WORKER_BEAT_KEY_WORKERS] = w->workers_key;
    argv[AM_WORKER_BEAT_KEY_STREAM] = w->stream;
    argv[AM_WORKER_BEAT_KEY_DEAD] = w->dead;
    args[AM_WORKER_BEAT_ARG_NAME] = w->name;
    args[AM_WORKER_BEAT_ARG_TTL_MS] = ttl;
    args[AM_WORKER_BEAT_ARG_RUNS] = text[0].p ? text[0].p : "";
    args[AM_WORKER_BEAT_ARG_RUN_SECONDS] = text[1].p ? text[1].p : "";
    args[AM_WORKER_BEAT_ARG_WEBHOOKS] = text[2].p ? text[2].p : "";
    args[AM_WORKER_BEAT_ARG_GROUP] = w->group;
    args[AM_WORKER_BEAT_ARG_PREFIX] = w->prefix;

    if (!text[0].failed && !text[1].failed && !text[2].failed) {
        am_rds_eval(&w->cmd, AM_SCRIPT_WORKER_BEAT, AM_WORKER_BEAT_NKEYS, n,
            argv, NULL, am_stats_beat_cb, NULL);
    }

    for (i = 0; i < 3; i++) {
        free(text[i].p);
    }
}

static void
am_stats_timer_cb(uv_timer_t *t)
{
    am_stats_beat(t->data);
}

void
am_stats_start(am_worker_t *w)
{
    uint64_t every;

    snprintf(
        w->beat_key, sizeof(w->beat_key), "%sworker:%s", w->prefix, w->name);
    snprintf(w->workers_key, sizeof(w->workers_key), "%sworkers", w->prefix);

    every = w->visibility_ms / 3;

    uv_timer_init(w->loop, &w->beat);
    w->beat.data = w;
    uv_timer_start(&w->beat, am_stats_timer_cb, every, every);
}

void
am_stats_stop(am_worker_t *w)
{
    uv_timer_stop(&w->beat);
    uv_close((uv_handle_t *) &w->beat, NULL);
}
