/*
 * The run stream's consumer: takes entries (new ones with XREADGROUP,
 * stale ones of dead workers with XAUTOCLAIM), runs each execution in a
 * sandboxed child, writes the result with execution_complete.lua, which
 * also acknowledges the entry. An entry is acknowledged only after its
 * result is stored, so a worker that dies leaves its entries to the others.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_gen.h>

#include "am_execution.h"
#include "am_json.h"
#include "am_name.h"
#include "am_scripts.h"
#include "worker/outschema.h"
#include "worker/progress.h"
#include "worker/worker.h"

#define AM_READ_BLOCK_MS 2000
#define AM_RETRY_MIN_MS 200
#define AM_RETRY_MAX_MS 5000
#define AM_ENTRY_ID_MAX 64
#define AM_LOG_ERROR_MAX 200
/* how often the status of running executions is read, to see cancels */
#define AM_WATCH_MS 250

typedef enum {
    AM_JOB_QUEUED,     /* taken, waiting for a free slot */
    AM_JOB_STARTING,   /* execution_start sent */
    AM_JOB_RUNNING,    /* the child runs */
    AM_JOB_COMPLETING, /* execution_complete sent, or to be sent again */
    AM_JOB_ACKING      /* nothing to run: XACK + XDEL */
} am_job_state_t;

/*
 * What a run needs, as execution_start answers it (indexed like its reply;
 * "" when absent). A stream entry may carry the same, written at enqueue
 * from the same snapshot: the run is then started held while
 * execution_start is on its way, and let go when it answers "run".
 */
typedef struct {
    const char *s[AM_EXECUTION_START_REPLY_N];
    size_t      len[AM_EXECUTION_START_REPLY_N];
} am_job_spec_t;

struct am_job_s {
    am_worker_t   *w;
    am_job_t      *prev;
    am_job_t      *next;
    am_job_state_t state;
    int            abandoned; /* second signal: leave the entry pending */
    int            waiting;   /* a Redis reply is due */

    char entry[AM_ENTRY_ID_MAX];
    char project[AM_PROJECT_NAME_MAX + 1];
    char automation[AM_AUTOMATION_NAME_MAX + 1]; /* for logs and metrics */
    char runtime[AM_NAME_MAX + 1];
    char id[AM_EXECUTION_ID_LEN + 1];
    char key[AM_KEY_MAX];

    am_run_t      *run;
    am_job_spec_t  entry_spec;   /* what the entry carries of the run, if any */
    char          *entry_data;   /* entry_spec's strings */
    int            hold_tried;   /* a held run was started, or could not be */
    int            held_refused; /* and is being stopped */
    char          *held_error;   /* the failure to record once it is gone */
    am_job_state_t held_then;    /* where a refused held run's job goes */
    char          *output_schema; /* the execution's snapshot, or NULL */
    am_progress_t  progress;      /* the last one recorded */
    size_t         output_schema_len;
    uv_timer_t     timer; /* retries of a Redis write */
    uint64_t       retry_ms;

    /* the result, kept until execution_complete succeeds */
    const char *status;
    char       *output;
    size_t      output_len;
    char       *error;
    char       *log;
    size_t      log_len;
    long        time_ms;
    long        time_us;

    /* when each step of the job began, wall clock us, for the debug log */
    uint64_t at_taken;
    uint64_t at_start_sent;
    uint64_t at_start_reply;
    uint64_t at_spawned;
    uint64_t at_result;
    uint64_t at_complete_sent;
};

static void am_job_step(am_job_t *job);
static void am_job_held_gone(am_job_t *job);
static void am_consumer_read(am_worker_t *w);
static void am_consumer_schedule(am_worker_t *w);

/* the wall clock, comparable with Redis's and nginx's timestamps */
static uint64_t
am_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int
am_job_active(am_job_t *job)
{
    return job->state == AM_JOB_STARTING || job->state == AM_JOB_RUNNING;
}

static void
am_job_close_cb(uv_handle_t *h)
{
    am_job_t *job = h->data;

    free(job->output);
    free(job->entry_data);
    free(job->held_error);
    free(job->output_schema);
    free(job->error);
    free(job->log);
    free(job);
}

/*
 * The job is over, its entry acknowledged or left for another worker. A
 * job whose run is held is removed once the run is gone.
 */
static void
am_job_remove(am_job_t *job)
{
    am_worker_t *w = job->w;

    if (job->run != NULL) {
        job->abandoned = 1;
        am_run_cancel(job->run);
        return;
    }

    if (job->prev) {
        job->prev->next = job->next;
    } else {
        w->jobs = job->next;
    }
    if (job->next) {
        job->next->prev = job->prev;
    }

    w->njobs--;
    uv_timer_stop(&job->timer);
    uv_close((uv_handle_t *) &job->timer, am_job_close_cb);

    am_consumer_schedule(w);
    am_worker_check_done(w);
}

static void
am_job_retry_cb(uv_timer_t *t)
{
    am_job_step(t->data);
}

/*
 * Sends the job's Redis write again later, backing off up to 5 s; when the
 * worker is stopping, gives up at once instead: the entry stays pending and
 * another worker runs the execution again.
 */
static void
am_job_retry(am_job_t *job)
{
    if (job->w->draining >= 2) {
        am_log("execution %s not stored before stopping: it stays queued for "
               "another worker",
            job->id[0] ? job->id : job->entry);
        am_job_remove(job);
        return;
    }

    job->retry_ms = job->retry_ms ? job->retry_ms * 2 : AM_RETRY_MIN_MS;
    if (job->retry_ms > AM_RETRY_MAX_MS) {
        job->retry_ms = AM_RETRY_MAX_MS;
    }

    uv_timer_start(&job->timer, am_job_retry_cb, job->retry_ms, 0);
}

static am_job_t *
am_job_find(am_worker_t *w, const char *entry)
{
    am_job_t *job;

    for (job = w->jobs; job; job = job->next) {
        if (strcmp(job->entry, entry) == 0) {
            return job;
        }
    }

    return NULL;
}

/* A field of a stream entry's flat field list, or NULL. */
static const char *
am_entry_field(redisReply *fields, const char *name)
{
    size_t i;

    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY) {
        return NULL;
    }

    for (i = 0; i + 1 < fields->elements; i += 2) {
        if (fields->element[i]->type == REDIS_REPLY_STRING
            && fields->element[i + 1]->type == REDIS_REPLY_STRING
            && strcmp(fields->element[i]->str, name) == 0) {
            return fields->element[i + 1]->str;
        }
    }

    return NULL;
}

/* the fields of a stream entry that carries its run, by reply index */
static const char *am_entry_run_fields[AM_EXECUTION_START_REPLY_N] = {
    [AM_EXECUTION_START_REPLY_RUNTIME] = "runtime",
    [AM_EXECUTION_START_REPLY_CODE] = "code",
    [AM_EXECUTION_START_REPLY_TIMEOUT_MS] = "timeout_ms",
    [AM_EXECUTION_START_REPLY_SEED] = "seed",
    [AM_EXECUTION_START_REPLY_INPUT] = "input",
    [AM_EXECUTION_START_REPLY_BUILD_ID] = "build_id",
    [AM_EXECUTION_START_REPLY_AUTOMATION] = "automation",
    [AM_EXECUTION_START_REPLY_NETWORK] = "network",
    [AM_EXECUTION_START_REPLY_OUTPUT_SCHEMA] = "output_schema",
    [AM_EXECUTION_START_REPLY_PRELOAD] = "preload"};

/*
 * Keeps what the entry carries of its run (execution_enqueue.lua adds it
 * when the run is small and has no ddn_headers), copied, in entry_spec.
 */
static void
am_job_entry_spec(am_job_t *job, redisReply *fields)
{
    am_job_spec_t *spec = &job->entry_spec;
    redisReply    *v[AM_EXECUTION_START_REPLY_N], *name;
    size_t         i, k, size;
    char          *p;

    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY) {
        return;
    }

    memset(v, 0, sizeof(v));

    for (i = 0; i + 1 < fields->elements; i += 2) {
        name = fields->element[i];
        if (name->type != REDIS_REPLY_STRING
            || fields->element[i + 1]->type != REDIS_REPLY_STRING) {
            continue;
        }
        for (k = 0; k < AM_EXECUTION_START_REPLY_N; k++) {
            if (am_entry_run_fields[k] != NULL
                && strcmp(name->str, am_entry_run_fields[k]) == 0) {
                v[k] = fields->element[i + 1];
                break;
            }
        }
    }

    if (v[AM_EXECUTION_START_REPLY_RUNTIME] == NULL
        || v[AM_EXECUTION_START_REPLY_CODE] == NULL) {
        return;
    }

    size = 1;
    for (k = 0; k < AM_EXECUTION_START_REPLY_N; k++) {
        size += v[k] != NULL ? v[k]->len + 1 : 0;
    }

    p = malloc(size);
    if (p == NULL) {
        return;
    }

    job->entry_data = p;
    *p++ = '\0';

    for (k = 0; k < AM_EXECUTION_START_REPLY_N; k++) {
        spec->s[k] = job->entry_data;
        spec->len[k] = 0;
        if (v[k] != NULL) {
            memcpy(p, v[k]->str, v[k]->len);
            p[v[k]->len] = '\0';
            spec->s[k] = p;
            spec->len[k] = v[k]->len;
            p += v[k]->len + 1;
        }
    }

    spec->s[AM_EXECUTION_START_REPLY_PROJECT] = job->project;
    spec->len[AM_EXECUTION_START_REPLY_PROJECT] = strlen(job->project);
}

/*
 * Takes one stream entry [id, [field, value, ...]]. An entry that names no
 * valid execution is acknowledged and deleted without running anything.
 */
static void
am_consumer_take(am_worker_t *w, redisReply *e, int reclaimed)
{
    const char *project, *id;
    am_job_t   *job;

    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 1
        || e->element[0]->type != REDIS_REPLY_STRING
        || e->element[0]->len >= AM_ENTRY_ID_MAX
        || am_job_find(w, e->element[0]->str) != NULL) {
        return;
    }

    job = calloc(1, sizeof(*job));
    if (job == NULL) {
        /* left pending: another worker, or we, will reclaim it */
        am_log("out of memory taking entry %s", e->element[0]->str);
        return;
    }

    job->w = w;
    job->at_taken = am_now_us();
    memcpy(job->entry, e->element[0]->str, e->element[0]->len + 1);
    uv_timer_init(w->loop, &job->timer);
    job->timer.data = job;

    project = am_entry_field(e->elements > 1 ? e->element[1] : NULL, "project");
    id = am_entry_field(e->elements > 1 ? e->element[1] : NULL, "execution_id");

    if (project == NULL || id == NULL
        || !am_project_name_valid(project, strlen(project))
        || !am_execution_id_valid(id, strlen(id))
        || snprintf(job->key, sizeof(job->key), "%s{%s}:execution:%s",
               w->prefix, project, id)
               >= (int) sizeof(job->key)) {
        am_log("stream entry %s names no valid execution: dropped", job->entry);
        job->state = AM_JOB_ACKING;

    } else {
        strcpy(job->project, project);
        strcpy(job->id, id);
        job->state = AM_JOB_QUEUED;
        am_job_entry_spec(job, e->element[1]);
        if (reclaimed) {
            am_log("execution %s reclaimed (entry %s)", job->id, job->entry);
        }
    }

    job->next = w->jobs;
    if (w->jobs) {
        w->jobs->prev = job;
    }
    w->jobs = job;
    w->njobs++;

    if (job->state == AM_JOB_ACKING) {
        am_job_step(job);
    }
}

/* A reply string of execution_start, "" when absent or not a string. */
static const char *
am_reply_str(redisReply *r, size_t i, size_t *len)
{
    static const char empty[] = "";

    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_STRING) {
        if (len) {
            *len = 0;
        }
        return empty;
    }

    if (len) {
        *len = r->element[i]->len;
    }
    return r->element[i]->str;
}

/* what execution_start's "run" reply says of the run */
static void
am_job_spec_reply(am_job_spec_t *spec, redisReply *r)
{
    size_t k;

    for (k = 0; k < AM_EXECUTION_START_REPLY_N; k++) {
        spec->s[k] = am_reply_str(r, k, &spec->len[k]);
    }
}

/*
 * Adds text, JSON stored by the gateway, as a value: parsed and re-dumped,
 * so that only valid JSON reaches the run; null when absent or invalid, and
 * also when want_object is set and it is not an object.
 */
static void
am_gen_json(yajl_gen g, const char *text, size_t len, int want_object)
{
    yajl_val v;
    char    *dump, err[64];
    size_t   n;

    v = len ? am_json_parse(text, len, AM_JSON_MAX_DEPTH, err, sizeof(err))
            : NULL;

    if (v == NULL || (want_object && !YAJL_IS_OBJECT(v))) {
        if (want_object) {
            yajl_gen_map_open(g);
            yajl_gen_map_close(g);
        } else {
            yajl_gen_null(g);
        }
        yajl_tree_free(v);
        return;
    }

    dump = am_json_dump(v, &n);
    yajl_tree_free(v);

    if (dump == NULL) {
        yajl_gen_null(g);
        return;
    }

    /* yajl_gen_number() copies its text verbatim: valid JSON, dumped above */
    yajl_gen_number(g, dump, n);
    free(dump);
}

static void
am_gen_str(yajl_gen g, const char *s)
{
    yajl_gen_string(g, (const unsigned char *) s, strlen(s));
}

/*
 * The run's stdin: {"seed", "input", "context": {"execution_id",
 * "project", "automation", "build_id", "ddn_headers"}}. Returns the
 * malloc'd text, or NULL.
 */
static char *
am_job_payload(am_job_t *job, const am_job_spec_t *spec, size_t *len)
{
    const unsigned char *buf;
    yajl_gen             g;
    size_t               n;
    char                *out;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NULL;
    }

    yajl_gen_map_open(g);
    am_gen_str(g, "seed");
    am_gen_json(g, spec->s[AM_EXECUTION_START_REPLY_SEED],
        spec->len[AM_EXECUTION_START_REPLY_SEED], 0);
    am_gen_str(g, "input");
    am_gen_json(g, spec->s[AM_EXECUTION_START_REPLY_INPUT],
        spec->len[AM_EXECUTION_START_REPLY_INPUT], 0);

    am_gen_str(g, "context");
    yajl_gen_map_open(g);
    am_gen_str(g, "execution_id");
    am_gen_str(g, job->id);
    am_gen_str(g, "project");
    am_gen_str(g, job->project);
    am_gen_str(g, "automation");
    am_gen_str(g, spec->s[AM_EXECUTION_START_REPLY_AUTOMATION]);
    am_gen_str(g, "build_id");
    n = spec->len[AM_EXECUTION_START_REPLY_BUILD_ID];
    if (n) {
        yajl_gen_string(g,
            (const unsigned char *) spec->s[AM_EXECUTION_START_REPLY_BUILD_ID],
            n);
    } else {
        yajl_gen_null(g);
    }
    am_gen_str(g, "ddn_headers");
    am_gen_json(g, spec->s[AM_EXECUTION_START_REPLY_DDN_HEADERS],
        spec->len[AM_EXECUTION_START_REPLY_DDN_HEADERS], 1);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);

    out = NULL;
    if (yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok) {
        out = malloc(n + 1);
        if (out != NULL) {
            memcpy(out, buf, n);
            out[n] = '\0';
            *len = n;
        }
    }

    yajl_gen_free(g);
    return out;
}

/*
 * The run's time limit: the automation's timeout_ms, 30 s when it has none.
 * The module refuses timeouts over AM_RUN_TIMEOUT_MAX_MS, the default cap:
 * a worker given a lower --max-timeout says when it cuts one.
 */
static long
am_job_timeout(am_job_t *job, const char *s)
{
    long  max, t;
    char *end;

    max = job->w->run.max_timeout_ms;
    t = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || t <= 0) {
        t = AM_RUN_TIMEOUT_DEFAULT_MS;
    }

    if (t > max) {
        am_log("execution %s: timeout_ms %ld cut to this worker's "
               "--max-timeout %ld",
            job->id, t, max);
        t = max;
    }

    return t;
}

/* Keeps a failure to complete as error with message (e.g. exhausted). */
static void
am_job_fail(am_job_t *job, const char *message)
{
    job->status = "error";
    job->error = strdup(message);
    job->state = AM_JOB_COMPLETING;
    job->retry_ms = 0;
    am_job_step(job);
}

static char *
am_dup(const char *s, size_t len)
{
    char *p;

    p = malloc(len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }

    return p;
}

/* A successful run whose output does not match output_schema is an error. */
static void
am_job_check_output(am_job_t *job)
{
    char err[512];

    if (job->output_schema == NULL || strcmp(job->status, "success") != 0) {
        return;
    }

    if (am_outschema_check(job->output_schema, job->output_schema_len,
            job->output ? job->output : "null",
            job->output ? job->output_len : 4, err, sizeof(err))
        == 1) {
        return;
    }

    job->status = "error";
    free(job->error);
    job->error = strdup(err);
}

static void
am_job_run_cb(void *data, am_run_result_t *res)
{
    am_job_t *job = data;

    job->run = NULL;
    job->at_result = am_now_us();

    if (job->state == AM_JOB_STARTING) {
        am_job_held_gone(job);
        return;
    }

    if (job->abandoned) {
        am_log("execution %s cancelled, left for another worker", job->id);
        am_job_remove(job);
        return;
    }

    switch (res->status) {
    case AM_RUN_SUCCESS:
        job->status = "success";
        break;
    case AM_RUN_TIMED_OUT:
        job->status = "timed_out";
        break;
    default:
        job->status = "error";
    }

    if (res->output != NULL) {
        job->output_len = strlen(res->output);
        job->output = am_dup(res->output, job->output_len);
    }
    if (res->error != NULL) {
        job->error = strdup(res->error);
    }
    if (res->log != NULL) {
        job->log_len = strlen(res->log);
        job->log = am_dup(res->log, job->log_len);
    }
    job->time_ms = (long) res->execution_time_ms;
    job->time_us = res->execution_time_us;

    am_job_check_output(job);

    job->state = AM_JOB_COMPLETING;
    job->retry_ms = 0;
    am_job_step(job);
    am_consumer_schedule(job->w);
}

/*
 * Starts the child: held (until execution_start answers) from what the
 * stream entry carries, or at once from execution_start's reply. A held
 * run that cannot start changes nothing: the reply starts the run then.
 */
static void
am_job_run(am_job_t *job, const am_job_spec_t *spec, int held)
{
    am_worker_t *w = job->w;
    char        *payload, err[256];
    size_t       len, payload_len;

    payload = am_job_payload(job, spec, &payload_len);
    if (payload == NULL) {
        if (!held) {
            am_job_fail(job, "out of memory");
        }
        return;
    }

    snprintf(job->runtime, sizeof(job->runtime), "%s",
        spec->s[AM_EXECUTION_START_REPLY_RUNTIME]);
    snprintf(job->automation, sizeof(job->automation), "%s",
        spec->s[AM_EXECUTION_START_REPLY_AUTOMATION]);

    free(job->output_schema);
    job->output_schema = NULL;
    job->output_schema_len = 0;

    len = spec->len[AM_EXECUTION_START_REPLY_OUTPUT_SCHEMA];
    if (len) {
        job->output_schema =
            am_dup(spec->s[AM_EXECUTION_START_REPLY_OUTPUT_SCHEMA], len);
        if (job->output_schema == NULL) {
            free(payload);
            if (!held) {
                am_job_fail(job, "out of memory");
            }
            return;
        }
        job->output_schema_len = len;
    }

    if (!held) {
        job->state = AM_JOB_RUNNING;
    }

    err[0] = '\0';
    job->run = am_run_start(w->loop, &w->run,
        spec->s[AM_EXECUTION_START_REPLY_RUNTIME],
        spec->s[AM_EXECUTION_START_REPLY_CODE],
        spec->len[AM_EXECUTION_START_REPLY_CODE], payload, payload_len,
        am_job_timeout(job, spec->s[AM_EXECUTION_START_REPLY_TIMEOUT_MS]),
        spec->s[AM_EXECUTION_START_REPLY_NETWORK],
        spec->s[AM_EXECUTION_START_REPLY_PRELOAD], held, am_job_run_cb, job,
        err, sizeof(err));
    free(payload);
    job->at_spawned = am_now_us();

    if (job->run == NULL && !held) {
        am_job_fail(job, err[0] ? err : "the run could not start");
    }
}

/*
 * execution_start did not answer "run" for a job whose run is held: the
 * run is killed before it ran anything, and the job goes on (to then)
 * once it is gone. Returns 0 when there was no held run.
 */
static int
am_job_refuse_held(
    am_job_t *job, am_job_state_t then, const char *what, const char *error)
{
    if (job->run == NULL) {
        return 0;
    }

    am_log("execution %s: execution_start answered %s: its readied sandbox "
           "is stopped before it ran anything",
        job->id, what);

    job->held_then = then;
    job->held_refused = 1;
    if (error != NULL) {
        free(job->held_error);
        job->held_error = strdup(error);
    }

    am_run_cancel(job->run);
    return 1;
}

/* A held run is gone without having run: what its job does next. */
static void
am_job_held_gone(am_job_t *job)
{
    if (job->waiting) {
        /* execution_start's reply decides */
        return;
    }

    if (job->abandoned) {
        am_job_remove(job);
        return;
    }

    switch (job->held_then) {
    case AM_JOB_COMPLETING:
        am_job_fail(job, job->held_error ? job->held_error : "out of memory");
        break;
    case AM_JOB_ACKING:
        job->state = AM_JOB_ACKING;
        job->retry_ms = 0;
        am_job_step(job);
        break;
    default:
        /* execution_start is sent again; its "run" starts the run anew */
        break;
    }
}

static void
am_job_start_cb(am_rds_t *r, redisReply *reply, void *data)
{
    am_job_t     *job = data;
    am_job_spec_t spec;
    const char   *what;
    char          msg[128];

    (void) r;
    job->waiting = 0;
    job->at_start_reply = am_now_us();

    if (job->abandoned) {
        /* with a held run, once it is gone */
        am_job_remove(job);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING) {
        if (reply != NULL) {
            am_log_at(AM_LOG_ERROR, NULL,
                "execution %s: execution_start failed: %s", job->id,
                reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        }
        /* a held run waits for the first answer only */
        (void) am_job_refuse_held(job, AM_JOB_QUEUED, "nothing", NULL);
        am_job_retry(job);
        return;
    }

    what = reply->element[AM_EXECUTION_START_REPLY_WHAT]->str;

    if (strcmp(what, "run") == 0) {
        job->retry_ms = 0;
        if (job->run != NULL && job->held_refused) {
            /* stopped after a lost answer and not gone yet: ask again once
               it is (the same worker's same entry is the same attempt) */
            am_job_retry(job);
        } else if (job->run != NULL) {
            job->state = AM_JOB_RUNNING;
            am_run_release(job->run);
        } else if (reply->elements >= AM_EXECUTION_START_REPLY_N) {
            am_job_spec_reply(&spec, reply);
            am_job_run(job, &spec, 0);
        } else {
            /* "run" alone, for a run that could not be readied after all:
               asked again, for what the run needs */
            am_job_step(job);
        }

    } else if (strcmp(what, "exhausted") == 0) {
        snprintf(msg, sizeof(msg), "the run was interrupted %lld times",
            reply->elements > AM_EXECUTION_START_REPLY_ATTEMPTS
                    && reply->element[AM_EXECUTION_START_REPLY_ATTEMPTS]->type
                           == REDIS_REPLY_INTEGER
                ? reply->element[AM_EXECUTION_START_REPLY_ATTEMPTS]->integer
                : (long long) job->w->max_attempts);
        if (!am_job_refuse_held(job, AM_JOB_COMPLETING, what, msg)) {
            am_job_fail(job, msg);
        }

    } else if (!am_job_refuse_held(job, AM_JOB_ACKING, what, NULL)) {
        /* "gone" (expired) or "done" (finished already) */
        job->state = AM_JOB_ACKING;
        job->retry_ms = 0;
        am_job_step(job);
    }
}

/*
 * The final log line of an execution: its id, status and time, and the
 * error message, which is the runner's, never headers or secrets.
 */
static void
am_job_log(am_job_t *job, const char *outcome)
{
    am_log_fields_t f;

    if (strcmp(outcome, "ok") != 0) {
        am_log("execution %s finished already (%s)", job->id, outcome);
        return;
    }

    am_stats_run(job->w, job->runtime, job->status, job->time_ms);

    f.event = "run";
    f.execution_id = job->id;
    f.project = job->project;
    f.automation = job->automation[0] ? job->automation : NULL;
    f.status = job->status;
    f.ms = job->time_ms;

    if (job->error != NULL && job->error[0] != '\0') {
        am_log_at(AM_LOG_WARN, &f, "execution %s %s in %ld ms: %.*s", job->id,
            job->status, job->time_ms, AM_LOG_ERROR_MAX, job->error);
    } else {
        am_log_at(AM_LOG_INFO, &f, "execution %s %s in %ld ms", job->id,
            job->status, job->time_ms);
    }
}

/*
 * At debug level, when each step of a run began, in us after the entry was
 * taken (the wall clock of that, too, to line it up with Redis's MONITOR
 * and nginx): what a synchronous run's overhead is made of.
 */
static void
am_job_log_steps(am_job_t *job)
{
    am_log_fields_t f;
    uint64_t        t0, now;

    if (job->at_spawned == 0) {
        return;
    }

    memset(&f, 0, sizeof(f));
    f.event = "run_steps";
    f.execution_id = job->id;
    f.project = job->project;
    f.ms = -1;

    t0 = job->at_taken;
    now = am_now_us();

    am_log_at(AM_LOG_DEBUG, &f,
        "taken %llu, start sent +%llu, start reply +%llu, spawned +%llu, "
        "child %ld us, result +%llu, complete sent +%llu, stored +%llu",
        (unsigned long long) t0, (unsigned long long) (job->at_start_sent - t0),
        (unsigned long long) (job->at_start_reply - t0),
        (unsigned long long) (job->at_spawned - t0), job->time_us,
        (unsigned long long) (job->at_result - t0),
        (unsigned long long) (job->at_complete_sent - t0),
        (unsigned long long) (now - t0));
}

static void
am_job_complete_cb(am_rds_t *r, redisReply *reply, void *data)
{
    am_job_t *job = data;

    (void) r;
    job->waiting = 0;

    if (reply == NULL) {
        am_job_retry(job);
        return;
    }

    if (reply->type != REDIS_REPLY_STATUS
        && reply->type != REDIS_REPLY_STRING) {
        am_log_at(AM_LOG_ERROR, NULL,
            "execution %s: execution_complete failed: %s", job->id,
            reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        am_job_retry(job);
        return;
    }

    am_job_log(job, reply->str);
    am_job_log_steps(job);
    am_job_remove(job);
}

static void
am_job_ack_cb(am_rds_t *r, redisReply *reply, void *data)
{
    am_job_t *job = data;

    (void) r;
    job->waiting = 0;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        am_job_retry(job);
        return;
    }

    am_job_remove(job);
}

static void
am_job_ignore_cb(am_rds_t *r, redisReply *reply, void *data)
{
    (void) r;
    (void) reply;
    (void) data;
}

/* XACK then XDEL, pipelined; the XDEL's reply ends the job. */
static int
am_job_ack(am_job_t *job)
{
    am_worker_t *w = job->w;
    const char  *argv[4];

    argv[0] = "XACK";
    argv[1] = w->stream;
    argv[2] = w->group;
    argv[3] = job->entry;

    if (am_rds_command(&w->cmd, am_job_ignore_cb, NULL, 4, argv, NULL) != 0) {
        return -1;
    }

    argv[0] = "XDEL";
    argv[2] = job->entry;

    return am_rds_command(&w->cmd, am_job_ack_cb, job, 3, argv, NULL);
}

/*
 * Whether the job's run is (or is about to be, am_job_step) readied from
 * its stream entry when execution_start answers: a "run" then needs
 * nothing more, and execution_start leaves the code and the input in Redis.
 */
static int
am_job_holds(const am_job_t *job)
{
    if (job->run != NULL) {
        return !job->held_refused;
    }

    return !job->hold_tried && job->entry_data != NULL && job->w->hold;
}

static int
am_job_send_start(am_job_t *job)
{
    am_worker_t *w = job->w;
    const char  *argv[AM_EXECUTION_START_NKEYS + AM_EXECUTION_START_NARGS];
    const char **keys, **args;
    char         max[16];

    keys = argv;
    args = argv + AM_EXECUTION_START_NKEYS;

    job->at_start_sent = am_now_us();
    snprintf(max, sizeof(max), "%d", w->max_attempts);
    keys[AM_EXECUTION_START_KEY_EXECUTION] = job->key;
    args[AM_EXECUTION_START_ARG_WORKER] = w->name;
    args[AM_EXECUTION_START_ARG_MAX_ATTEMPTS] = max;
    args[AM_EXECUTION_START_ARG_ENTRY] = job->entry;
    args[AM_EXECUTION_START_ARG_HELD] = am_job_holds(job) ? "held" : "";

    return am_rds_eval(&w->cmd, AM_SCRIPT_EXECUTION_START,
        AM_EXECUTION_START_NKEYS,
        AM_EXECUTION_START_NKEYS + AM_EXECUTION_START_NARGS, argv, NULL,
        am_job_start_cb, job);
}

static int
am_job_send_complete(am_job_t *job)
{
    am_worker_t *w = job->w;
    enum { n = AM_EXECUTION_COMPLETE_NKEYS + AM_EXECUTION_COMPLETE_NARGS };

    const char *argv[n], **keys, **args, *ping[1] = {"PING"};
    size_t      lens[n], *arglens;
    char        ms[32];
    int         i;

    keys = argv;
    args = argv + AM_EXECUTION_COMPLETE_NKEYS;
    arglens = lens + AM_EXECUTION_COMPLETE_NKEYS;

    job->at_complete_sent = am_now_us();
    snprintf(ms, sizeof(ms), "%ld", job->time_ms);

    keys[AM_EXECUTION_COMPLETE_KEY_EXECUTION] = job->key;
    keys[AM_EXECUTION_COMPLETE_KEY_STREAM] = w->stream;
    keys[AM_EXECUTION_COMPLETE_KEY_WEBHOOKS] = w->webhooks;
    args[AM_EXECUTION_COMPLETE_ARG_STATUS] = job->status;
    args[AM_EXECUTION_COMPLETE_ARG_OUTPUT] = job->output ? job->output : "";
    args[AM_EXECUTION_COMPLETE_ARG_ERROR] = job->error ? job->error : "";
    args[AM_EXECUTION_COMPLETE_ARG_LOG] = job->log ? job->log : "";
    args[AM_EXECUTION_COMPLETE_ARG_TIME_MS] = ms;
    args[AM_EXECUTION_COMPLETE_ARG_ENTRY] = job->entry;
    args[AM_EXECUTION_COMPLETE_ARG_GROUP] = w->group;
    args[AM_EXECUTION_COMPLETE_ARG_CHANNEL] = w->channel;

    for (i = 0; i < n; i++) {
        lens[i] = strlen(argv[i]);
    }

    /* output and log may hold NUL bytes */
    arglens[AM_EXECUTION_COMPLETE_ARG_OUTPUT] =
        job->output ? job->output_len : 0;
    arglens[AM_EXECUTION_COMPLETE_ARG_LOG] = job->log ? job->log_len : 0;

    /*
     * Redis writes out its replies at the end of its turn, the client it
     * had something for last first. A PING ahead of the script makes this
     * connection the first, and the gateway the script publishes to the
     * last: the gateway that waits for the run has its answer first. The
     * other way round, the worker, woken first on Redis's CPU, kept Redis
     * from the gateway for about 0.1 ms (bench/sync-steps.sh). The PING's
     * reply is not read.
     */
    if (am_rds_command(&w->cmd, am_job_ignore_cb, NULL, 1, ping, NULL) != 0) {
        return -1;
    }

    if (am_rds_eval(&w->cmd, AM_SCRIPT_EXECUTION_COMPLETE,
            AM_EXECUTION_COMPLETE_NKEYS, n, argv, lens, am_job_complete_cb, job)
        != 0) {
        return -1;
    }

    /* now, before the run's folder goes to a thread of the pool, which
       would otherwise run first */
    am_rds_flush(&w->cmd);

    return 0;
}

/*
 * Sends the Redis command of the job's state; when Redis cannot take it
 * now, tries again later. Completions are retried until they succeed:
 * execution_complete changes nothing the second time, so a retry after a
 * lost reply is safe.
 */
static void
am_job_step(am_job_t *job)
{
    int rc;

    if (job->waiting) {
        return;
    }

    switch (job->state) {
    case AM_JOB_STARTING:
        if (job->abandoned) {
            am_job_remove(job);
            return;
        }
        rc = am_job_send_start(job);
        break;
    case AM_JOB_COMPLETING:
        rc = am_job_send_complete(job);
        break;
    case AM_JOB_ACKING:
        rc = am_job_ack(job);
        break;
    default:
        return;
    }

    if (rc != 0) {
        am_job_retry(job);
        return;
    }

    job->waiting = 1;

    /* the sandbox gets ready while execution_start is on its way */
    if (job->state == AM_JOB_STARTING && !job->hold_tried
        && job->entry_data != NULL && job->w->hold) {
        job->hold_tried = 1;
        am_job_run(job, &job->entry_spec, 1);
        /* the run has what it needs: the copy is not read again */
        free(job->entry_data);
        job->entry_data = NULL;
    }
}

/* Starts queued jobs while slots are free, then reads more entries. */
static void
am_consumer_schedule(am_worker_t *w)
{
    am_job_t *job;
    int       active;

    active = 0;
    for (job = w->jobs; job; job = job->next) {
        active += am_job_active(job);
    }

    for (job = w->jobs; job && active < w->concurrency; job = job->next) {
        if (job->state == AM_JOB_QUEUED && w->draining < 2) {
            job->state = AM_JOB_STARTING;
            job->retry_ms = 0;
            am_job_step(job);
            active++;
        }
    }

    am_consumer_read(w);
}

static void am_consumer_group(am_worker_t *w);

static void
am_consumer_retry_cb(uv_timer_t *t)
{
    am_worker_t *w = t->data;

    if (!w->group_ok) {
        am_consumer_group(w);
    } else {
        am_consumer_read(w);
    }
}

static void
am_consumer_read_cb(am_rds_t *r, redisReply *reply, void *data)
{
    am_worker_t *w = data;
    redisReply  *s;
    size_t       i, j;

    (void) r;
    w->reading = 0;

    if (reply == NULL) {
        /* the connection is lost; reading resumes when it is back */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        am_log_at(AM_LOG_ERROR, NULL, "XREADGROUP: %s", reply->str);
        if (strncmp(reply->str, "NOGROUP", 7) == 0) {
            w->group_ok = 0;
        }
        uv_timer_start(&w->read_retry, am_consumer_retry_cb, 1000, 0);
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < reply->elements; i++) {
            s = reply->element[i];
            if (s->type != REDIS_REPLY_ARRAY || s->elements < 2
                || s->element[1]->type != REDIS_REPLY_ARRAY) {
                continue;
            }
            for (j = 0; j < s->element[1]->elements; j++) {
                am_consumer_take(w, s->element[1]->element[j], 0);
            }
        }
    }

    am_consumer_schedule(w);
}

/*
 * Waits for new entries, as many as there are free slots, on the reader
 * connection that does nothing else (XREADGROUP BLOCK holds it).
 */
static void
am_consumer_read(am_worker_t *w)
{
    const char *argv[11];
    char        count[16], block[16];
    int         free_slots;

    free_slots = w->concurrency - w->njobs;

    if (w->draining || w->reading || !w->group_ok || !w->reader.ready
        || free_slots <= 0) {
        return;
    }

    snprintf(count, sizeof(count), "%d", free_slots);
    snprintf(block, sizeof(block), "%d", AM_READ_BLOCK_MS);

    argv[0] = "XREADGROUP";
    argv[1] = "GROUP";
    argv[2] = w->group;
    argv[3] = w->name;
    argv[4] = "COUNT";
    argv[5] = count;
    argv[6] = "BLOCK";
    argv[7] = block;
    argv[8] = "STREAMS";
    argv[9] = w->stream;
    argv[10] = ">";

    if (am_rds_command(&w->reader, am_consumer_read_cb, w, 11, argv, NULL)
        == 0) {
        w->reading = 1;
    }
}

static void
am_consumer_group_cb(am_rds_t *r, redisReply *reply, void *data)
{
    am_worker_t *w = data;

    (void) r;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "BUSYGROUP", 9) != 0) {
        am_log_at(AM_LOG_ERROR, NULL, "XGROUP CREATE %s %s: %s", w->stream,
            w->group, reply->str);
        uv_timer_start(&w->read_retry, am_consumer_retry_cb, 1000, 0);
        return;
    }

    w->group_ok = 1;
    am_consumer_read(w);
}

/*
 * Creates the consumer group (and the stream) unless it exists. Done on
 * every connection of the reader: a Redis that lost its data comes back
 * without them.
 */
static void
am_consumer_group(am_worker_t *w)
{
    const char *argv[6];

    if (w->draining) {
        return;
    }

    argv[0] = "XGROUP";
    argv[1] = "CREATE";
    argv[2] = w->stream;
    argv[3] = w->group;
    argv[4] = "0";
    argv[5] = "MKSTREAM";

    am_rds_command(&w->reader, am_consumer_group_cb, w, 6, argv, NULL);
}

static void
am_consumer_reclaim_cb(am_rds_t *r, redisReply *reply, void *data)
{
    am_worker_t *w = data;
    redisReply  *list;
    size_t       i;

    (void) r;
    w->claiming = 0;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* NOGROUP before the reader created the group: nothing to reclaim */
        if (strncmp(reply->str, "NOGROUP", 7) != 0) {
            am_log_at(AM_LOG_ERROR, NULL, "XAUTOCLAIM: %s", reply->str);
        }
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || reply->element[1]->type != REDIS_REPLY_ARRAY) {
        return;
    }

    list = reply->element[1];
    for (i = 0; i < list->elements; i++) {
        am_consumer_take(w, list->element[i], 1);
    }

    am_consumer_schedule(w);
}

/*
 * Every visibility/2: takes over the entries that stayed pending longer
 * than the visibility timeout, those of a worker that died (a live one
 * refreshes its entries with heartbeats).
 */
static void
am_consumer_reclaim(uv_timer_t *t)
{
    am_worker_t *w = t->data;
    const char  *argv[8];
    char         idle[32], count[16];
    int          free_slots;

    free_slots = w->concurrency - w->njobs;

    if (w->draining || w->claiming || free_slots <= 0) {
        return;
    }

    snprintf(idle, sizeof(idle), "%llu", (unsigned long long) w->visibility_ms);
    snprintf(count, sizeof(count), "%d", free_slots);

    argv[0] = "XAUTOCLAIM";
    argv[1] = w->stream;
    argv[2] = w->group;
    argv[3] = w->name;
    argv[4] = idle;
    argv[5] = "0-0";
    argv[6] = "COUNT";
    argv[7] = count;

    if (am_rds_command(&w->cmd, am_consumer_reclaim_cb, w, 8, argv, NULL)
        == 0) {
        w->claiming = 1;
    }
}

/*
 * Every visibility/3: XCLAIM ... JUSTID of our own entries resets their
 * idle time, so that a long run of a live worker is never reclaimed.
 */
static void
am_consumer_heartbeat(uv_timer_t *t)
{
    am_worker_t *w = t->data;
    const char **argv;
    am_job_t    *job;
    int          argc;

    if (w->njobs == 0 || !w->cmd.ready) {
        return;
    }

    argv = malloc((size_t) (w->njobs + 6) * sizeof(char *));
    if (argv == NULL) {
        return;
    }

    argc = 0;
    argv[argc++] = "XCLAIM";
    argv[argc++] = w->stream;
    argv[argc++] = w->group;
    argv[argc++] = w->name;
    argv[argc++] = "0";

    for (job = w->jobs; job; job = job->next) {
        argv[argc++] = job->entry;
    }

    argv[argc++] = "JUSTID";

    am_rds_command(&w->cmd, am_job_ignore_cb, NULL, argc, argv, NULL);
    free(argv);
}

static void
am_watch_cb(am_rds_t *r, redisReply *reply, void *data)
{
    am_worker_t *w = r->data;
    am_job_t    *job;
    char        *entry = data;

    /* by entry, not by pointer: the job may be gone when the reply comes */
    job = am_job_find(w, entry);
    free(entry);

    if (job == NULL || job->state != AM_JOB_RUNNING || job->run == NULL
        || reply == NULL || reply->type != REDIS_REPLY_STRING
        || strcmp(reply->str, "cancelled") != 0) {
        return;
    }

    /* execution_cancel.lua has finished the execution: its completion
     * after the kill changes nothing */
    am_log("execution %s cancelled: killing its run", job->id);
    am_run_cancel(job->run);
}

/* Records the run's progress when it said something new. */
static void
am_job_progress(am_job_t *job)
{
    am_worker_t  *w = job->w;
    am_progress_t p;
    const char *argv[AM_EXECUTION_PROGRESS_NKEYS + AM_EXECUTION_PROGRESS_NARGS];

    memset(&p, 0, sizeof(p));

    if (!am_progress_read(am_run_pid(job->run), am_run_dir(job->run), &p)
        || memcmp(&p, &job->progress, sizeof(p)) == 0) {
        return;
    }

    argv[AM_EXECUTION_PROGRESS_KEY_EXECUTION] = job->key;
    argv[AM_EXECUTION_PROGRESS_NKEYS + AM_EXECUTION_PROGRESS_ARG_FRACTION] =
        p.fraction;
    argv[AM_EXECUTION_PROGRESS_NKEYS + AM_EXECUTION_PROGRESS_ARG_MESSAGE] =
        p.message;

    if (am_rds_eval(&w->cmd, AM_SCRIPT_EXECUTION_PROGRESS,
            AM_EXECUTION_PROGRESS_NKEYS,
            AM_EXECUTION_PROGRESS_NKEYS + AM_EXECUTION_PROGRESS_NARGS, argv,
            NULL, am_job_ignore_cb, NULL)
        == 0) {
        job->progress = p;
    }
}

/*
 * Every AM_WATCH_MS: the status of each running execution, so that a
 * cancelled one is killed well within a second. A read of one short field
 * per run is cheap, and unlike a pub/sub message it is not lost while the
 * connection is down.
 */
static void
am_consumer_watch(uv_timer_t *t)
{
    am_worker_t *w = t->data;
    am_job_t    *job;
    const char  *argv[3];
    char        *entry;

    if (!w->cmd.ready) {
        return;
    }

    for (job = w->jobs; job; job = job->next) {
        if (job->state != AM_JOB_RUNNING || job->run == NULL
            || job->abandoned) {
            continue;
        }

        entry = strdup(job->entry);
        if (entry == NULL) {
            return;
        }

        argv[0] = "HGET";
        argv[1] = job->key;
        argv[2] = "status";

        if (am_rds_command(&w->cmd, am_watch_cb, entry, 3, argv, NULL) != 0) {
            free(entry);
            return;
        }

        am_job_progress(job);
    }
}

void
am_consumer_start(am_worker_t *w)
{
    uint64_t reclaim, beat;

    uv_timer_init(w->loop, &w->reclaim);
    uv_timer_init(w->loop, &w->heartbeat);
    uv_timer_init(w->loop, &w->read_retry);
    uv_timer_init(w->loop, &w->watch);
    w->watch.data = w;
    w->reclaim.data = w;
    w->heartbeat.data = w;
    w->read_retry.data = w;

    reclaim = w->visibility_ms / 2;
    beat = w->visibility_ms / 3;

    uv_timer_start(&w->reclaim, am_consumer_reclaim, reclaim, reclaim);
    uv_timer_start(&w->heartbeat, am_consumer_heartbeat, beat, beat);
    uv_timer_start(&w->watch, am_consumer_watch, AM_WATCH_MS, AM_WATCH_MS);
}

/* A connection is usable again: resume what waited for it. */
void
am_consumer_redis_up(am_worker_t *w, am_rds_t *r)
{
    am_job_t *job;

    if (r == &w->reader) {
        w->group_ok = 0;
        am_consumer_group(w);
        return;
    }

    for (job = w->jobs; job; job = job->next) {
        if (uv_is_active((uv_handle_t *) &job->timer)) {
            uv_timer_stop(&job->timer);
            job->retry_ms = 0;
            am_job_step(job);
        }
    }
}

/*
 * A shutdown step (see am_worker_stop): at 1, no more entries are taken,
 * and what was taken is finished; from 2, the runs are cancelled and their
 * entries left pending for another worker, and results already produced
 * get one more try to be written (a failure is not retried any more).
 */
void
am_consumer_drain(am_worker_t *w)
{
    am_job_t *job, *next;

    uv_timer_stop(&w->reclaim);
    uv_timer_stop(&w->read_retry);

    if (w->draining < 2) {
        return;
    }

    for (job = w->jobs; job; job = next) {
        next = job->next;

        switch (job->state) {
        case AM_JOB_QUEUED:
            am_job_remove(job);
            break;
        case AM_JOB_STARTING:
            job->abandoned = 1;
            if (!job->waiting) {
                am_job_remove(job);
            }
            break;
        case AM_JOB_RUNNING:
            job->abandoned = 1;
            if (job->run != NULL) {
                am_run_cancel(job->run);
            }
            break;
        default:
            if (uv_is_active((uv_handle_t *) &job->timer)) {
                uv_timer_stop(&job->timer);
                am_job_step(job);
            }
            break;
        }
    }
}

void
am_consumer_stop(am_worker_t *w)
{
    uv_close((uv_handle_t *) &w->reclaim, NULL);
    uv_close((uv_handle_t *) &w->heartbeat, NULL);
    uv_close((uv_handle_t *) &w->read_retry, NULL);
    uv_close((uv_handle_t *) &w->watch, NULL);
    am_outschema_free();
}
