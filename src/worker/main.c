/*
 * automations-worker: options, signals and the event loop. The work is in
 * consumer.c (runs) and deliver.c (webhooks); see worker.h.
 */

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "am_scripts.h"
#include "worker/worker.h"

#define AM_PREFIX_MAX 64
#define AM_DEFAULT_SCHEDULE "5s,30s,2m,10m,30m,1h,2h,4h,8h,8h"

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

static const char *am_usage_text =
    "usage: automations-worker [OPTIONS]\n"
    "\n"
    "Executes the runs queued in Redis and delivers their webhooks.\n"
    "\n"
    "options (environment variable, default):\n"
    "  --redis IP:PORT|unix:/path    AUTOMATIONS_REDIS, 127.0.0.1:6379\n"
    "  --password PW                 AUTOMATIONS_REDIS_PASSWORD\n"
    "  --db N                        AUTOMATIONS_REDIS_DB, 0\n"
    "  --prefix PREFIX               AUTOMATIONS_PREFIX, am:\n"
    "  --concurrency N               AUTOMATIONS_CONCURRENCY, 4\n"
    "      runs at once in this process\n"
    "  --group NAME                  AUTOMATIONS_GROUP, workers\n"
    "      the stream's consumer group, shared by all workers\n"
    "  --name NAME                   AUTOMATIONS_WORKER_NAME, hostname-pid\n"
    "      this worker's consumer name, in logs and execution records\n"
    "  --visibility-timeout MS       AUTOMATIONS_VISIBILITY_TIMEOUT, 30000\n"
    "      a run pending that long on a dead worker is taken over\n"
    "  --max-attempts N              AUTOMATIONS_MAX_ATTEMPTS, 3\n"
    "      a run interrupted more often ends as an error\n"
    "  --max-timeout MS              AUTOMATIONS_MAX_TIMEOUT, 300000\n"
    "      cap on an automation's timeout_ms (30000 when it has none)\n"
    "  --memory MB                   AUTOMATIONS_MEMORY, 512\n"
    "      address space of a run\n"
    "  --output-max BYTES            AUTOMATIONS_OUTPUT_MAX, 1048576\n"
    "      a run printing more fails\n"
    "  --run-uid UID, --run-gid GID  AUTOMATIONS_RUN_UID, _GID, 65534\n"
    "      the user runs execute as when the worker is root; give each\n"
    "      worker host a user of its own: process limits count per user\n"
    "  --runtime NAME[:FILE]=CMD...  AUTOMATIONS_RUNTIMES (';' between)\n"
    "      adds or replaces a runtime, e.g. \"ruby:main.rb=/usr/bin/ruby "
    "{file}\";\n"
    "      repeatable; built in: python, sh\n"
    "  --webhook-schedule LIST       AUTOMATIONS_WEBHOOK_SCHEDULE,\n"
    "      " AM_DEFAULT_SCHEDULE "\n"
    "      delays before each retry of a failed webhook (ms, s, m, h);\n"
    "      after the last one the webhook is dead-lettered\n"
    "  --webhook-timeout MS          AUTOMATIONS_WEBHOOK_TIMEOUT, 10000\n"
    "  --allow-private-webhooks      AUTOMATIONS_ALLOW_PRIVATE_WEBHOOKS=1\n"
    "      allow webhooks to loopback, private and link-local addresses\n"
    "  -h, --help\n"
    "\n"
    "Keys: <prefix>runs (stream), <prefix>webhooks, <prefix>webhooks:dead;\n"
    "completions are published on <prefix>completions.\n"
    "SIGTERM or SIGINT: finish the runs in flight and exit; a second one\n"
    "cancels them and leaves them to other workers, as does a Redis gone\n"
    "for 5 s meanwhile; a third one stops at once. Either way the worker\n"
    "is gone within seconds and its runs stay queued.\n";

static const char *am_log_name = "-";

void
am_log(const char *fmt, ...)
{
    char      record[1280], msg[1024];
    char     *p;
    struct tm tm;
    time_t    now;
    va_list   ap;
    size_t    n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    /* messages quote runs' errors, which may span lines */
    for (p = msg; *p; p++) {
        if ((unsigned char) *p < 0x20 || *p == 0x7f) {
            *p = ' ';
        }
    }

    now = time(NULL);
    gmtime_r(&now, &tm);
    n = strftime(record, sizeof(record), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(
        record + n, sizeof(record) - n - 1, " worker %s: %s", am_log_name, msg);

    /* one write per record: lines of processes sharing stderr never mix */
    n = strlen(record);
    record[n++] = '\n';

    if (write(STDERR_FILENO, record, n) < 0) {
        return;
    }
}

static const char *
am_env(const char *name, const char *dflt)
{
    const char *v;

    v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : dflt;
}

/* A whole number in [min, max]; 0, or -1 with a message. */
static int
am_opt_num(const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    long  n;

    n = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || n < min || n > max) {
        fprintf(stderr,
            "automations-worker: %s: \"%s\" is not a number from %ld to "
            "%ld\n",
            opt, s, min, max);
        return -1;
    }

    *out = n;
    return 0;
}

/* "5s,30s,2m,...": delays in ms, s, m or h; "" for no retry at all. */
static int
am_opt_schedule(am_worker_t *w, const char *s)
{
    const char *p;
    char       *end;
    double      n, unit;

    w->nschedule = 0;

    for (p = s; *p; p = end) {
        if (w->nschedule == AM_SCHEDULE_MAX) {
            fprintf(stderr,
                "automations-worker: --webhook-schedule: at most %d "
                "delays\n",
                AM_SCHEDULE_MAX);
            return -1;
        }

        n = strtod(p, &end);
        if (end == p || n < 0) {
            goto invalid;
        }

        if (strncmp(end, "ms", 2) == 0) {
            unit = 1;
            end += 2;
        } else if (*end == 's') {
            unit = 1000;
            end++;
        } else if (*end == 'm') {
            unit = 60000;
            end++;
        } else if (*end == 'h') {
            unit = 3600000;
            end++;
        } else {
            goto invalid;
        }

        if (n * unit > 7 * 86400000.0) {
            goto invalid;
        }

        w->schedule[w->nschedule++] = (uint64_t) (n * unit);

        if (*end == ',') {
            end++;
            if (*end == '\0') {
                goto invalid;
            }
        } else if (*end != '\0') {
            goto invalid;
        }
    }

    return 0;

invalid:

    fprintf(stderr,
        "automations-worker: --webhook-schedule: \"%s\" is not a comma "
        "list of delays such as 5s,30s,2m,1h (at most 7 days each)\n",
        s);
    return -1;
}

/* Adds a runtime, replacing a built-in or earlier one of the same name. */
static int
am_opt_runtime(am_worker_t *w, const char *spec)
{
    am_runtime_t rt;
    char         err[256];
    size_t       i;

    if (am_run_parse_runtime(spec, &rt, err, sizeof(err)) != 0) {
        fprintf(stderr, "automations-worker: --runtime: %s\n", err);
        return -1;
    }

    for (i = 0; i < w->run.nruntimes; i++) {
        if (strcmp(w->run.runtimes[i].name, rt.name) == 0) {
            break;
        }
    }

    if (i == AM_RUNTIMES_MAX) {
        am_run_free_runtime(&rt);
        fprintf(stderr, "automations-worker: at most %d runtimes\n",
            AM_RUNTIMES_MAX);
        return -1;
    }

    /* the built-in entries are static: only parsed ones are freed */
    if (i < w->run.nruntimes && w->runtime_owned[i]) {
        am_run_free_runtime(&w->run.runtimes[i]);
    }

    w->run.runtimes[i] = rt;
    w->runtime_owned[i] = 1;

    if (i == w->run.nruntimes) {
        w->run.nruntimes++;
    }

    return 0;
}

/* AUTOMATIONS_RUNTIMES: specs separated by ';'. */
static int
am_opt_runtimes_env(am_worker_t *w, const char *env)
{
    char *copy, *spec, *save;
    int   rc;

    copy = strdup(env);
    if (copy == NULL) {
        return -1;
    }

    rc = 0;
    for (spec = strtok_r(copy, ";", &save); spec && rc == 0;
         spec = strtok_r(NULL, ";", &save)) {
        rc = am_opt_runtime(w, spec);
    }

    free(copy);
    return rc;
}

static int
am_opt_defaults(am_worker_t *w, const char **schedule)
{
    am_runtime_t *builtin;
    size_t        n;
    char          host[64];
    const char   *env;

    w->redis.addr = am_env("AUTOMATIONS_REDIS", "127.0.0.1:6379");
    w->redis.password = am_env("AUTOMATIONS_REDIS_PASSWORD", NULL);
    w->prefix = am_env("AUTOMATIONS_PREFIX", "am:");
    w->group = am_env("AUTOMATIONS_GROUP", "workers");
    w->concurrency = 4;
    w->max_attempts = 3;
    w->visibility_ms = 30000;
    w->run.max_timeout_ms = 300000;
    w->webhook.timeout_ms = 10000;
    w->webhook.allow_private =
        strcmp(am_env("AUTOMATIONS_ALLOW_PRIVATE_WEBHOOKS", "0"), "1") == 0;
    *schedule = am_env("AUTOMATIONS_WEBHOOK_SCHEDULE", AM_DEFAULT_SCHEDULE);

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "worker");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(w->name, sizeof(w->name), "%s-%ld", host, (long) getpid());

    n = am_run_default_runtimes(&builtin);
    w->run.runtimes = w->runtimes;
    memcpy(w->runtimes, builtin, n * sizeof(am_runtime_t));
    w->run.nruntimes = n;

    env = am_env("AUTOMATIONS_RUNTIMES", NULL);
    return env ? am_opt_runtimes_env(w, env) : 0;
}

/* An environment variable holding a number, checked like its option. */
static int
am_opt_env_num(const char *env, const char *opt, long min, long max, long *out)
{
    const char *v;

    v = am_env(env, NULL);
    return v ? am_opt_num(opt, v, min, max, out) : 0;
}

enum {
    AM_OPT_REDIS = 256,
    AM_OPT_PASSWORD,
    AM_OPT_DB,
    AM_OPT_PREFIX,
    AM_OPT_CONCURRENCY,
    AM_OPT_GROUP,
    AM_OPT_NAME,
    AM_OPT_VISIBILITY,
    AM_OPT_ATTEMPTS,
    AM_OPT_MAX_TIMEOUT,
    AM_OPT_MEMORY,
    AM_OPT_OUTPUT,
    AM_OPT_RUN_UID,
    AM_OPT_RUN_GID,
    AM_OPT_RUNTIME,
    AM_OPT_SCHEDULE,
    AM_OPT_WEBHOOK_TIMEOUT,
    AM_OPT_ALLOW_PRIVATE
};

static const struct option am_long_options[] = {
    {"redis", required_argument, NULL, AM_OPT_REDIS},
    {"password", required_argument, NULL, AM_OPT_PASSWORD},
    {"db", required_argument, NULL, AM_OPT_DB},
    {"prefix", required_argument, NULL, AM_OPT_PREFIX},
    {"concurrency", required_argument, NULL, AM_OPT_CONCURRENCY},
    {"group", required_argument, NULL, AM_OPT_GROUP},
    {"name", required_argument, NULL, AM_OPT_NAME},
    {"visibility-timeout", required_argument, NULL, AM_OPT_VISIBILITY},
    {"max-attempts", required_argument, NULL, AM_OPT_ATTEMPTS},
    {"max-timeout", required_argument, NULL, AM_OPT_MAX_TIMEOUT},
    {"memory", required_argument, NULL, AM_OPT_MEMORY},
    {"output-max", required_argument, NULL, AM_OPT_OUTPUT},
    {"run-uid", required_argument, NULL, AM_OPT_RUN_UID},
    {"run-gid", required_argument, NULL, AM_OPT_RUN_GID},
    {"runtime", required_argument, NULL, AM_OPT_RUNTIME},
    {"webhook-schedule", required_argument, NULL, AM_OPT_SCHEDULE},
    {"webhook-timeout", required_argument, NULL, AM_OPT_WEBHOOK_TIMEOUT},
    {"allow-private-webhooks", no_argument, NULL, AM_OPT_ALLOW_PRIVATE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Numbers from the environment first, so that options override them. */
static int
am_opt_env(am_worker_t *w, long *concurrency, long *attempts, long *db)
{
    long n;

    n = (long) w->visibility_ms;
    if (am_opt_env_num("AUTOMATIONS_REDIS_DB", "--db", 0, 65535, db) != 0
        || am_opt_env_num(
               "AUTOMATIONS_CONCURRENCY", "--concurrency", 1, 1024, concurrency)
               != 0
        || am_opt_env_num(
               "AUTOMATIONS_MAX_ATTEMPTS", "--max-attempts", 1, 1000, attempts)
               != 0
        || am_opt_env_num("AUTOMATIONS_VISIBILITY_TIMEOUT",
               "--visibility-timeout", 300, 86400000, &n)
               != 0
        || am_opt_env_num("AUTOMATIONS_MAX_TIMEOUT", "--max-timeout", 100,
               86400000, &w->run.max_timeout_ms)
               != 0
        || am_opt_env_num(
               "AUTOMATIONS_MEMORY", "--memory", 16, 1048576, &w->run.memory_mb)
               != 0
        || am_opt_env_num("AUTOMATIONS_WEBHOOK_TIMEOUT", "--webhook-timeout",
               100, 600000, &w->webhook.timeout_ms)
               != 0) {
        return -1;
    }

    w->visibility_ms = (uint64_t) n;

    n = 0;
    if (am_opt_env_num("AUTOMATIONS_RUN_UID", "--run-uid", 1, 4294967294L, &n)
        != 0) {
        return -1;
    }
    if (n) {
        w->run.uid = (uid_t) n;
    }

    n = 0;
    if (am_opt_env_num("AUTOMATIONS_RUN_GID", "--run-gid", 1, 4294967294L, &n)
        != 0) {
        return -1;
    }
    if (n) {
        w->run.gid = (gid_t) n;
    }

    if (am_opt_env_num(
            "AUTOMATIONS_OUTPUT_MAX", "--output-max", 1024, 1L << 30, &n)
        != 0) {
        return -1;
    }
    if (am_env("AUTOMATIONS_OUTPUT_MAX", NULL)) {
        w->run.max_output = (size_t) n;
    }

    if (am_env("AUTOMATIONS_WORKER_NAME", NULL)) {
        snprintf(w->name, sizeof(w->name), "%s",
            am_env("AUTOMATIONS_WORKER_NAME", NULL));
    }

    return 0;
}

/* Checks what options cannot check one by one; builds the key names. */
static int
am_opt_check(am_worker_t *w)
{
    const unsigned char *p;

    /* a brace in the prefix would move the keys out of their hash tag */
    if (strlen(w->prefix) > AM_PREFIX_MAX
        || strpbrk(w->prefix, "{} \t\r\n") != NULL) {
        fprintf(stderr,
            "automations-worker: invalid prefix \"%s\": at most %d bytes, "
            "no braces or spaces\n",
            w->prefix, AM_PREFIX_MAX);
        return -1;
    }

    for (p = (const unsigned char *) w->name; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f) {
            break;
        }
    }

    if (w->name[0] == '\0' || *p != '\0' || w->group[0] == '\0'
        || strlen(w->group) > AM_NAME_MAX) {
        fprintf(stderr, "automations-worker: --name and --group take 1 to "
                        "128 printable characters, no spaces\n");
        return -1;
    }

    snprintf(w->stream, sizeof(w->stream), "%sruns", w->prefix);
    snprintf(w->webhooks, sizeof(w->webhooks), "%swebhooks", w->prefix);
    snprintf(w->dead, sizeof(w->dead), "%swebhooks:dead", w->prefix);
    snprintf(w->channel, sizeof(w->channel), "%scompletions", w->prefix);

    if (w->webhook.timeout_ms < 5000) {
        w->webhook.connect_timeout_ms = w->webhook.timeout_ms;
    }

    return 0;
}

/* Reads the options; 0 to run, 1 after --help, -1 on a usage error. */
static int
am_options(am_worker_t *w, int argc, char **argv)
{
    const char *schedule;
    long        concurrency, attempts, db, n;
    int         c;

    if (am_opt_defaults(w, &schedule) != 0) {
        return -1;
    }

    concurrency = w->concurrency;
    attempts = w->max_attempts;
    db = 0;

    if (am_opt_env(w, &concurrency, &attempts, &db) != 0) {
        return -1;
    }

    while ((c = getopt_long(argc, argv, "h", am_long_options, NULL)) != -1) {
        n = 0;

        switch (c) {
        case 'h':
            fputs(am_usage_text, stdout);
            return 1;
        case AM_OPT_REDIS:
            w->redis.addr = optarg;
            break;
        case AM_OPT_PASSWORD:
            w->redis.password = optarg;
            break;
        case AM_OPT_DB:
            if (am_opt_num("--db", optarg, 0, 65535, &db) != 0) {
                return -1;
            }
            break;
        case AM_OPT_PREFIX:
            w->prefix = optarg;
            break;
        case AM_OPT_CONCURRENCY:
            if (am_opt_num("--concurrency", optarg, 1, 1024, &concurrency)
                != 0) {
                return -1;
            }
            break;
        case AM_OPT_GROUP:
            w->group = optarg;
            break;
        case AM_OPT_NAME:
            snprintf(w->name, sizeof(w->name), "%s", optarg);
            break;
        case AM_OPT_VISIBILITY:
            if (am_opt_num("--visibility-timeout", optarg, 300, 86400000, &n)
                != 0) {
                return -1;
            }
            w->visibility_ms = (uint64_t) n;
            break;
        case AM_OPT_ATTEMPTS:
            if (am_opt_num("--max-attempts", optarg, 1, 1000, &attempts) != 0) {
                return -1;
            }
            break;
        case AM_OPT_MAX_TIMEOUT:
            if (am_opt_num("--max-timeout", optarg, 100, 86400000,
                    &w->run.max_timeout_ms)
                != 0) {
                return -1;
            }
            break;
        case AM_OPT_MEMORY:
            if (am_opt_num("--memory", optarg, 16, 1048576, &w->run.memory_mb)
                != 0) {
                return -1;
            }
            break;
        case AM_OPT_OUTPUT:
            if (am_opt_num("--output-max", optarg, 1024, 1L << 30, &n) != 0) {
                return -1;
            }
            w->run.max_output = (size_t) n;
            break;
        case AM_OPT_RUN_UID:
            if (am_opt_num("--run-uid", optarg, 1, 4294967294L, &n) != 0) {
                return -1;
            }
            w->run.uid = (uid_t) n;
            break;
        case AM_OPT_RUN_GID:
            if (am_opt_num("--run-gid", optarg, 1, 4294967294L, &n) != 0) {
                return -1;
            }
            w->run.gid = (gid_t) n;
            break;
        case AM_OPT_RUNTIME:
            if (am_opt_runtime(w, optarg) != 0) {
                return -1;
            }
            break;
        case AM_OPT_SCHEDULE:
            schedule = optarg;
            break;
        case AM_OPT_WEBHOOK_TIMEOUT:
            if (am_opt_num("--webhook-timeout", optarg, 100, 600000,
                    &w->webhook.timeout_ms)
                != 0) {
                return -1;
            }
            break;
        case AM_OPT_ALLOW_PRIVATE:
            w->webhook.allow_private = 1;
            break;
        default:
            fputs(am_usage_text, stderr);
            return -1;
        }
    }

    if (optind < argc) {
        fprintf(stderr, "automations-worker: unexpected argument \"%s\"\n",
            argv[optind]);
        return -1;
    }

    w->concurrency = (int) concurrency;
    w->max_attempts = (int) attempts;
    w->redis.db = (int) db;

    if (am_opt_schedule(w, schedule) != 0) {
        return -1;
    }

    return am_opt_check(w);
}

/* A connection went up or down. */
static void
am_worker_redis_state(am_rds_t *r, int up, void *data)
{
    am_worker_t *w = data;

    if (r == &w->cmd) {
        w->redis_down_at = up ? 0 : uv_now(w->loop);
    }

    if (up) {
        am_consumer_redis_up(w, r);
    }
}

/* Closes every handle: uv_run() then returns, the loop being empty. */
static void
am_worker_close(am_worker_t *w)
{
    am_log("stopped");

    am_consumer_stop(w);
    am_deliver_stop(w);
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
        uv_timer_start(&w->stop_timer, am_worker_drain_check,
            AM_DRAIN_CHECK_MS, AM_DRAIN_CHECK_MS);
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

static int
am_worker_start(am_worker_t *w)
{
    if (am_deliver_start(w) != 0) {
        fprintf(stderr, "automations-worker: cannot start the webhook "
                        "engine (libcurl without an asynchronous resolver?)\n");
        return -1;
    }

    am_consumer_start(w);

    /* not usable until the first connection is made */
    w->redis_down_at = uv_now(w->loop);
    uv_timer_init(w->loop, &w->stop_timer);
    w->stop_timer.data = w;

    uv_signal_init(w->loop, &w->sigterm);
    uv_signal_init(w->loop, &w->sigint);
    w->sigterm.data = w;
    w->sigint.data = w;
    uv_signal_start(&w->sigterm, am_worker_signal, SIGTERM);
    uv_signal_start(&w->sigint, am_worker_signal, SIGINT);

    am_rds_connect(&w->cmd);
    am_rds_connect(&w->reader);

    am_log("started: redis %s, stream %s, group %s, concurrency %d",
        w->redis.addr, w->stream, w->group, w->concurrency);
    return 0;
}

static void
am_worker_free(am_worker_t *w)
{
    size_t i;

    for (i = 0; i < w->run.nruntimes; i++) {
        if (w->runtime_owned[i]) {
            am_run_free_runtime(&w->run.runtimes[i]);
        }
    }
}

int
main(int argc, char **argv)
{
    static am_worker_t w;
    char               self[PATH_MAX], sandbox[PATH_MAX], *p;
    sigset_t           stop;
    ssize_t            n;
    int                rc;

    am_sandbox_main(argc, argv);

    signal(SIGPIPE, SIG_IGN);

    /* a SIGTERM before the loop watches for it waits, rather than kill */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL);

    rc = am_options(&w, argc, argv);
    if (rc != 0) {
        am_worker_free(&w);
        return rc > 0 ? 0 : 2;
    }

    am_log_name = w.name;

    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        fprintf(stderr, "automations-worker: cannot find its own binary\n");
        am_worker_free(&w);
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

    if (am_scripts_init() != 0) {
        fprintf(stderr, "automations-worker: cannot digest the scripts\n");
        am_worker_free(&w);
        return 1;
    }

    srandom((unsigned) time(NULL) ^ (unsigned) getpid());

    w.loop = uv_default_loop();

    if (am_worker_redis(&w) != 0) {
        am_worker_free(&w);
        return 2;
    }

    if (am_worker_start(&w) != 0) {
        am_worker_free(&w);
        return 1;
    }

    sigprocmask(SIG_UNBLOCK, &stop, NULL);

    uv_run(w.loop, UV_RUN_DEFAULT);
    uv_loop_close(w.loop);
    am_worker_free(&w);

    return 0;
}
