/*
 * automations-worker: executes the runs queued in the Redis stream and
 * delivers their webhooks. Shared declarations of its parts: main.c
 * (options, signals, shutdown), consumer.c (the stream and the runs),
 * deliver.c (webhooks), rds.c (the Redis connections).
 */

#ifndef AM_WORKER_H
#define AM_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "worker/rds.h"
#include "worker/run.h"
#include "worker/webhook.h"

#define AM_KEY_MAX 256
#define AM_NAME_MAX 128
#define AM_SCHEDULE_MAX 32
#define AM_DELIVERIES_MAX 32
#define AM_RUNTIMES_MAX 16

typedef struct am_job_s      am_job_t;
typedef struct am_delivery_s am_delivery_t;

typedef struct {
    /* options */
    am_rds_conf_t       redis;
    char               *password; /* read from --password-file */
    const char         *prefix;
    const char         *group;
    char                name[AM_NAME_MAX + 1]; /* the consumer */
    int                 concurrency;
    int                 max_attempts;
    int                 hold; /* --early-sandbox */
    uint64_t            visibility_ms;
    am_run_config_t     run;
    am_runtime_t        runtimes[AM_RUNTIMES_MAX];      /* run.runtimes */
    int                 runtime_owned[AM_RUNTIMES_MAX]; /* from --runtime */
    uint64_t            schedule[AM_SCHEDULE_MAX]; /* webhook retry delays */
    size_t              nschedule;
    am_webhook_config_t webhook;

    /* key names */
    char stream[AM_KEY_MAX];   /* <prefix>runs */
    char webhooks[AM_KEY_MAX]; /* <prefix>webhooks */
    char dead[AM_KEY_MAX];     /* <prefix>webhooks:dead */
    char channel[AM_KEY_MAX];  /* <prefix>completions */

    uv_loop_t *loop;
    am_rds_t   cmd;    /* scripts, claims, heartbeats */
    am_rds_t   reader; /* the blocking XREADGROUP only */

    /* consumer.c */
    am_job_t  *jobs; /* every entry taken and not yet acknowledged */
    int        njobs;
    int        reading;    /* an XREADGROUP is waiting */
    int        claiming;   /* an XAUTOCLAIM is waiting */
    int        group_ok;   /* the consumer group exists */
    uv_timer_t reclaim;    /* XAUTOCLAIM every visibility/2 */
    uv_timer_t heartbeat;  /* XCLAIM of our entries every visibility/3 */
    uv_timer_t read_retry; /* after an error reply of the reader */
    uv_timer_t watch;      /* cancels of running executions */

    /* deliver.c */
    am_webhook_engine_t *engine;
    am_delivery_t       *deliveries; /* posting or recording a result */
    int                  ndeliveries;
    int                  claiming_webhooks;
    uv_timer_t           deliver; /* webhook_claim every 200 ms */

    /* stats.c */
    uv_timer_t beat;                    /* worker_beat every visibility/3 */
    char       beat_key[AM_KEY_MAX];    /* <prefix>worker:<name> */
    char       workers_key[AM_KEY_MAX]; /* <prefix>workers */

    /* main.c */
    int         draining; /* 1 finish, 2 cancel runs, 3 stop now */
    int         closed;
    uint64_t    redis_down_at; /* draining: since when cmd is unusable */
    uv_timer_t  stop_timer;    /* bounds each step of a shutdown */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    char        run_root[PATH_MAX]; /* this worker's, holding its runs'
                                       folders (am_sandbox_claim) */
    int run_root_lock;
} am_worker_t;

/*
 * options.c: reads the defaults, the AUTOMATIONS_* variables, then argv;
 * 0 to run, 1 after --help, -1 after a message on a usage error. Whatever
 * the result, am_options_free() releases what it kept.
 */
int am_options(am_worker_t *w, int argc, char **argv);

void am_options_free(am_worker_t *w);

/* log.c: records on stderr, as --log-format and --log-level say */
typedef enum {
    AM_LOG_ERROR,
    AM_LOG_WARN,
    AM_LOG_INFO,
    AM_LOG_DEBUG
} am_log_level_t;

/* what a record is about; NULL fields and ms < 0 do not apply */
typedef struct {
    const char *event; /* "run", "webhook"; NULL: "message" */
    const char *execution_id;
    const char *project;
    const char *automation;
    const char *status;
    long        ms;
} am_log_fields_t;

extern const char *am_log_name; /* the worker's, once the options are read */

/* 0, or -1 when the value is not one of the format's or level's names */
int am_log_set_format(const char *format);
int am_log_set_level(const char *level);

/* an info record with no fields */
void am_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void am_log_at(am_log_level_t level, const am_log_fields_t *f, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/*
 * stats.c: the worker's counters, kept in Redis with its heartbeat
 * (redis/worker_beat.lua) for the module's metrics page.
 */
void am_stats_start(am_worker_t *w);
void am_stats_beat(am_worker_t *w);
void am_stats_stop(am_worker_t *w);
void am_stats_run(
    am_worker_t *w, const char *runtime, const char *status, long ms);
void am_stats_webhook(am_worker_t *w, const char *outcome);

/* main.c: closes everything once no job and no delivery is left */
void am_worker_check_done(am_worker_t *w);

/* consumer.c */
void am_consumer_start(am_worker_t *w);

void am_consumer_redis_up(am_worker_t *w, am_rds_t *r);

void am_consumer_drain(am_worker_t *w);

void am_consumer_stop(am_worker_t *w);

/* deliver.c */
int am_deliver_start(am_worker_t *w);

void am_deliver_drain(am_worker_t *w);

void am_deliver_stop(am_worker_t *w);

#endif
