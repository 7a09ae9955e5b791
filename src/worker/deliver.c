/*
 * Webhook deliveries. The schedule lives in Redis (a sorted set of
 * "<project>/<id>" by due time): every 200 ms the worker leases the due
 * ones with webhook_claim.lua, posts each once, and records how it went
 * with webhook_result.lua: delivered, retried later with backoff and
 * jitter, or dead-lettered. A worker that dies mid-delivery loses nothing:
 * the lease runs out and another worker takes the delivery.
 *
 * Deliveries are at least once: a worker that dies after the receiver's
 * 2xx and before webhook_result lands leaves the lease to run out, and the
 * delivery is sent again with the same webhook-id. That window is kept as
 * short as it can be: the engine ends an attempt at the 2xx status and
 * headers, and the outcome goes to Redis before anything else is done.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "am_header.h"
#include "am_json.h"
#include "am_scripts.h"
#include "worker/worker.h"

#define AM_DELIVER_EVERY_MS 200
#define AM_DELIVER_LEASE_EXTRA_MS 5000
#define AM_DELIVER_RETRY_MIN_MS 200
#define AM_DELIVER_RETRY_MAX_MS 5000
#define AM_RETRY_AFTER_MAX_S 86400

struct am_delivery_s {
    am_worker_t   *w;
    am_delivery_t *prev;
    am_delivery_t *next;

    char *member;   /* "<project>/<id>" */
    long  attempts; /* made before this one */
    int   waiting;  /* webhook_result sent */

    /* the outcome, kept until webhook_result succeeds */
    const char *outcome; /* delivered, retry, dead */
    long        http_status;
    long        duration_ms;
    char        error[256];
    uint64_t    delay_ms;
    char        attempt_id[AM_NAME_MAX + 48]; /* unique: see am_delivery_id */

    uv_timer_t timer; /* retries of webhook_result */
    uint64_t   retry_ms;
};

static void am_delivery_record(am_delivery_t *d);

static void
am_delivery_close_cb(uv_handle_t *h)
{
    am_delivery_t *d = h->data;

    free(d->member);
    free(d);
}

static void
am_delivery_remove(am_delivery_t *d)
{
    am_worker_t *w = d->w;

    if (d->prev) {
        d->prev->next = d->next;
    } else {
        w->deliveries = d->next;
    }
    if (d->next) {
        d->next->prev = d->prev;
    }

    w->ndeliveries--;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *) &d->timer, am_delivery_close_cb);

    am_worker_check_done(w);
}

static void
am_delivery_retry_cb(uv_timer_t *t)
{
    am_delivery_record(t->data);
}

static void
am_delivery_result_cb(am_rds_t *r, redisReply *reply, void *data)
{
    am_delivery_t *d = data;

    (void) r;
    d->waiting = 0;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        if (reply != NULL) {
            am_log(
                "webhook %s: webhook_result failed: %s", d->member, reply->str);
        }

        if (d->w->draining >= 2) {
            /* stopping: the lease runs out and the delivery comes back */
            am_log("webhook %s: attempt %ld not recorded before stopping, it "
                   "will be sent again",
                d->member, d->attempts + 1);
            am_delivery_remove(d);
            return;
        }

        d->retry_ms = d->retry_ms ? d->retry_ms * 2 : AM_DELIVER_RETRY_MIN_MS;
        if (d->retry_ms > AM_DELIVER_RETRY_MAX_MS) {
            d->retry_ms = AM_DELIVER_RETRY_MAX_MS;
        }
        uv_timer_start(&d->timer, am_delivery_retry_cb, d->retry_ms, 0);
        return;
    }

    am_delivery_remove(d);
}

/*
 * Records the attempt with webhook_result.lua, again and again until Redis
 * takes it. Should the lease run out meanwhile, another worker may post
 * once more: deliveries are at least once, and receivers deduplicate by
 * webhook-id. The attempt's id makes a second record of it (after a reply
 * lost with the connection) change nothing.
 */
static void
am_delivery_record(am_delivery_t *d)
{
    am_worker_t *w = d->w;
    const char  *argv[AM_WEBHOOK_RESULT_NKEYS + AM_WEBHOOK_RESULT_NARGS];
    const char **keys, **args;
    char         status[16], delay[32], before[24], duration[24];

    if (d->waiting) {
        return;
    }

    keys = argv;
    args = argv + AM_WEBHOOK_RESULT_NKEYS;

    snprintf(status, sizeof(status), "%ld", d->http_status);
    snprintf(delay, sizeof(delay), "%llu", (unsigned long long) d->delay_ms);
    snprintf(before, sizeof(before), "%ld", d->attempts);
    snprintf(duration, sizeof(duration), "%ld", d->duration_ms);

    keys[AM_WEBHOOK_RESULT_KEY_WEBHOOKS] = w->webhooks;
    keys[AM_WEBHOOK_RESULT_KEY_DEAD] = w->dead;
    args[AM_WEBHOOK_RESULT_ARG_PREFIX] = w->prefix;
    args[AM_WEBHOOK_RESULT_ARG_MEMBER] = d->member;
    args[AM_WEBHOOK_RESULT_ARG_OUTCOME] = d->outcome;
    args[AM_WEBHOOK_RESULT_ARG_HTTP_STATUS] = status;
    args[AM_WEBHOOK_RESULT_ARG_ERROR] = d->error;
    args[AM_WEBHOOK_RESULT_ARG_DELAY_MS] = delay;
    args[AM_WEBHOOK_RESULT_ARG_ATTEMPTS_BEFORE] = before;
    args[AM_WEBHOOK_RESULT_ARG_DURATION_MS] = duration;
    args[AM_WEBHOOK_RESULT_ARG_ATTEMPT_ID] = d->attempt_id;

    if (am_rds_eval(&w->cmd, AM_SCRIPT_WEBHOOK_RESULT, AM_WEBHOOK_RESULT_NKEYS,
            AM_WEBHOOK_RESULT_NKEYS + AM_WEBHOOK_RESULT_NARGS, argv, NULL,
            am_delivery_result_cb, d)
        != 0) {
        am_delivery_result_cb(&w->cmd, NULL, d);
        return;
    }

    d->waiting = 1;
}

/* A random factor in [0.8, 1.2], so retries of many webhooks spread out. */
static double
am_jitter(void)
{
    return 0.8 + 0.4 * ((double) random() / (double) RAND_MAX);
}

/* Decides what comes after a failed attempt: a retry later, or the end. */
static void
am_delivery_failed(am_delivery_t *d, const am_webhook_result_t *res)
{
    am_worker_t *w = d->w;
    long         retry_after;
    uint64_t     delay;

    /* a refused address stays refused: a day of retries would not help */
    if (res->gone || res->refused || (size_t) d->attempts + 1 > w->nschedule) {
        d->outcome = "dead";
        return;
    }

    delay = (uint64_t) ((double) w->schedule[d->attempts] * am_jitter());

    retry_after = res->retry_after_s;
    if (retry_after > AM_RETRY_AFTER_MAX_S) {
        retry_after = AM_RETRY_AFTER_MAX_S;
    }
    if (retry_after > 0 && delay < (uint64_t) retry_after * 1000) {
        delay = (uint64_t) retry_after * 1000;
    }

    d->outcome = "retry";
    d->delay_ms = delay;
}

static void
am_delivery_log(am_delivery_t *d)
{
    long n = d->attempts + 1;

    if (strcmp(d->outcome, "delivered") == 0) {
        am_log("webhook %s delivered (HTTP %ld, attempt %ld)", d->member,
            d->http_status, n);

    } else if (strcmp(d->outcome, "retry") == 0) {
        am_log("webhook %s attempt %ld failed: %s; next in %llu ms", d->member,
            n, d->error, (unsigned long long) d->delay_ms);

    } else {
        am_log("webhook %s dead-lettered after attempt %ld: %s", d->member, n,
            d->error);
    }
}

static void
am_delivery_post_cb(void *data, const am_webhook_result_t *res)
{
    am_delivery_t *d = data;

    if (d->w->draining >= 2 && !res->delivered) {
        /* cancelled at shutdown: the lease runs out, another worker posts */
        am_delivery_remove(d);
        return;
    }

    d->http_status = res->http_status;
    d->duration_ms = res->duration_ms;
    snprintf(d->error, sizeof(d->error), "%s", res->error);

    if (res->delivered) {
        d->outcome = "delivered";
        d->error[0] = '\0';
    } else {
        am_delivery_failed(d, res);
    }

    /*
     * Redis first: the sooner it knows, the fewer deliveries sent twice.
     * d outlives a removal until the loop closes its timer.
     */
    am_delivery_record(d);
    am_delivery_log(d);
}

/* An id no other attempt of any worker has: the worker, a count, a time. */
static void
am_delivery_id(am_delivery_t *d)
{
    static unsigned long long n;

    snprintf(d->attempt_id, sizeof(d->attempt_id), "%s/%llu/%llu", d->w->name,
        ++n, (unsigned long long) uv_hrtime());
}

/*
 * The caller's webhook_header object as (name, value) pairs; members that
 * are not strings are skipped. Returns the count; *tree is to be freed.
 */
static size_t
am_delivery_headers(const char *json, const char **out, yajl_val *tree)
{
    yajl_val v;
    char     err[64];
    size_t   i, n;

    *tree = NULL;
    if (json[0] == '\0') {
        return 0;
    }

    v = am_json_parse(json, strlen(json), AM_JSON_MAX_DEPTH, err, sizeof(err));
    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        return 0;
    }

    n = 0;
    for (i = 0; i < v->u.object.len && n < AM_HEADERS_MAX; i++) {
        if (YAJL_IS_STRING(v->u.object.values[i])) {
            out[2 * n] = v->u.object.keys[i];
            out[2 * n + 1] = YAJL_GET_STRING(v->u.object.values[i]);
            n++;
        }
    }

    *tree = v;
    return n;
}

/* Posts one claimed delivery: f holds its AM_WEBHOOK_CLAIM_REPLY_* fields. */
static void
am_delivery_start(am_worker_t *w, redisReply **f)
{
    const char    *headers[2 * AM_HEADERS_MAX];
    am_delivery_t *d;
    redisReply    *body;
    const char    *secret;
    yajl_val       tree;
    size_t         n;
    char           err[256];

    d = calloc(1, sizeof(*d));
    if (d == NULL
        || (d->member = strdup(f[AM_WEBHOOK_CLAIM_REPLY_MEMBER]->str))
               == NULL) {
        /* the lease runs out and the delivery comes back */
        free(d);
        return;
    }

    d->w = w;
    d->attempts = strtol(f[AM_WEBHOOK_CLAIM_REPLY_ATTEMPTS]->str, NULL, 10);
    am_delivery_id(d);
    uv_timer_init(w->loop, &d->timer);
    d->timer.data = d;

    d->next = w->deliveries;
    if (w->deliveries) {
        w->deliveries->prev = d;
    }
    w->deliveries = d;
    w->ndeliveries++;

    body = f[AM_WEBHOOK_CLAIM_REPLY_BODY];
    secret = f[AM_WEBHOOK_CLAIM_REPLY_SECRET]->str;

    n = am_delivery_headers(
        f[AM_WEBHOOK_CLAIM_REPLY_HEADERS]->str, headers, &tree);
    err[0] = '\0';

    if (am_webhook_post(w->engine, f[AM_WEBHOOK_CLAIM_REPLY_URL]->str, headers,
            n, body->str, body->len, secret[0] ? secret : NULL,
            f[AM_WEBHOOK_CLAIM_REPLY_WEBHOOK_ID]->str, (long) time(NULL),
            am_delivery_post_cb, d, err, sizeof(err))
        != 0) {
        /* a bad URL or secret: retrying cannot help */
        d->outcome = "dead";
        snprintf(
            d->error, sizeof(d->error), "%s", err[0] ? err : "cannot post");
        am_delivery_record(d);
        am_delivery_log(d);
    }

    yajl_tree_free(tree);
}

static void
am_deliver_claim_cb(am_rds_t *r, redisReply *reply, void *data)
{
    am_worker_t *w = data;
    size_t       i, j;

    (void) r;
    w->claiming_webhooks = 0;

    if (reply == NULL || w->engine == NULL) {
        /* an unposted claim comes back when its lease runs out */
        am_worker_check_done(w);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        if (reply->type == REDIS_REPLY_ERROR) {
            am_log("webhook_claim: %s", reply->str);
        }
        return;
    }

    for (i = 0; i + AM_WEBHOOK_CLAIM_REPLY_N <= reply->elements;
         i += AM_WEBHOOK_CLAIM_REPLY_N) {
        for (j = 0; j < AM_WEBHOOK_CLAIM_REPLY_N; j++) {
            if (reply->element[i + j]->type != REDIS_REPLY_STRING) {
                break;
            }
        }
        if (j == AM_WEBHOOK_CLAIM_REPLY_N) {
            am_delivery_start(w, &reply->element[i]);
        }
    }

    am_worker_check_done(w);
}

/* Every 200 ms: leases the due deliveries, as many as there is room for. */
static void
am_deliver_tick(uv_timer_t *t)
{
    am_worker_t *w = t->data;
    const char  *argv[AM_WEBHOOK_CLAIM_NKEYS + AM_WEBHOOK_CLAIM_NARGS];
    const char **keys, **args;
    char         lease[32], most[16];
    int          room;

    room = AM_DELIVERIES_MAX - w->ndeliveries;

    if (w->draining || w->claiming_webhooks || room <= 0 || !w->cmd.ready) {
        return;
    }

    snprintf(lease, sizeof(lease), "%ld",
        w->webhook.timeout_ms + AM_DELIVER_LEASE_EXTRA_MS);
    snprintf(most, sizeof(most), "%d", room);

    keys = argv;
    args = argv + AM_WEBHOOK_CLAIM_NKEYS;
    keys[AM_WEBHOOK_CLAIM_KEY_WEBHOOKS] = w->webhooks;
    args[AM_WEBHOOK_CLAIM_ARG_PREFIX] = w->prefix;
    args[AM_WEBHOOK_CLAIM_ARG_LEASE_MS] = lease;
    args[AM_WEBHOOK_CLAIM_ARG_MOST] = most;

    if (am_rds_eval(&w->cmd, AM_SCRIPT_WEBHOOK_CLAIM, AM_WEBHOOK_CLAIM_NKEYS,
            AM_WEBHOOK_CLAIM_NKEYS + AM_WEBHOOK_CLAIM_NARGS, argv, NULL,
            am_deliver_claim_cb, w)
        == 0) {
        w->claiming_webhooks = 1;
    }
}

int
am_deliver_start(am_worker_t *w)
{
    w->engine = am_webhook_engine_new(w->loop, &w->webhook);
    if (w->engine == NULL) {
        return -1;
    }

    uv_timer_init(w->loop, &w->deliver);
    w->deliver.data = w;
    uv_timer_start(
        &w->deliver, am_deliver_tick, AM_DELIVER_EVERY_MS, AM_DELIVER_EVERY_MS);

    return 0;
}

/*
 * Frees the engine, whose posts in flight end in their callbacks from
 * here; w->engine is cleared first, as those callbacks may end the worker.
 */
static void
am_deliver_cancel(am_worker_t *w)
{
    am_webhook_engine_t *e;

    e = w->engine;
    w->engine = NULL;

    if (e != NULL) {
        am_webhook_engine_free(e);
    }
}

/*
 * A shutdown step (see am_worker_stop): no more claims. At 1 the posts in
 * flight finish (each is bounded by the webhook timeout); from 2 they are
 * cancelled, and their leases bring them back to another worker, and an
 * outcome not yet recorded gets one more try.
 */
void
am_deliver_drain(am_worker_t *w)
{
    am_delivery_t *d, *next;

    uv_timer_stop(&w->deliver);

    if (w->draining < 2) {
        return;
    }

    am_deliver_cancel(w);

    for (d = w->deliveries; d; d = next) {
        next = d->next;

        if (uv_is_active((uv_handle_t *) &d->timer)) {
            uv_timer_stop(&d->timer);
            am_delivery_record(d);
        }
    }
}

void
am_deliver_stop(am_worker_t *w)
{
    uv_close((uv_handle_t *) &w->deliver, NULL);
    am_deliver_cancel(w);
}
