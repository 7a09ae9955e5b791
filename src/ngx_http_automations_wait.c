/*
 * Synchronous runs wait here for their completion without blocking nginx.
 *
 * Each worker process keeps its waiters in a tree keyed by execution id.
 * The subscriber connection hears every completion published by the
 * workers; a waiter whose id is heard fetches its result with the command
 * connection. A waiter is registered before its run is enqueued, so that a
 * run finishing very fast is not missed, and all waiters check their run
 * again whenever the subscription is re-established. A timer bounds each
 * wait; past it the client gets 202 and the status URL.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "am_scripts.h"
#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"


typedef struct {
    ngx_str_node_t      sn; /* first: the tree works on it */
    ngx_queue_t         queue;
    ngx_http_request_t *request;
    ngx_event_t         timer;
    unsigned            in_tree : 1;
    unsigned            fetching : 1;
    unsigned            expired : 1;
} ngx_http_automations_waiter_t;


static void ngx_http_automations_wait_fetch(ngx_http_automations_waiter_t *w);


static ngx_rbtree_t      ngx_http_automations_waiters;
static ngx_rbtree_node_t ngx_http_automations_waiters_sentinel;
static ngx_queue_t       ngx_http_automations_waiters_all;


static void
ngx_http_automations_wait_insert(ngx_http_automations_waiter_t *w)
{
    w->sn.node.key = ngx_crc32_short(w->sn.str.data, w->sn.str.len);
    ngx_rbtree_insert(&ngx_http_automations_waiters, &w->sn.node);
    w->in_tree = 1;
}


static void
ngx_http_automations_wait_remove(ngx_http_automations_waiter_t *w)
{
    if (w->in_tree) {
        ngx_rbtree_delete(&ngx_http_automations_waiters, &w->sn.node);
        w->in_tree = 0;
    }
}


/* a completion was published, or (NULL) the subscription came back */
static void
ngx_http_automations_wait_message(ngx_str_t *payload)
{
    u_char                        *slash;
    ngx_str_t                      id;
    ngx_queue_t                   *q, *next;
    ngx_str_node_t                *sn;
    ngx_http_automations_waiter_t *w;

    if (payload == NULL) {
        for (q = ngx_queue_head(&ngx_http_automations_waiters_all);
             q != ngx_queue_sentinel(&ngx_http_automations_waiters_all);
             q = next) {
            next = ngx_queue_next(q);
            w = ngx_queue_data(q, ngx_http_automations_waiter_t, queue);

            if (w->in_tree) {
                ngx_http_automations_wait_fetch(w);
            }
        }

        return;
    }

    slash = ngx_strlchr(payload->data, payload->data + payload->len, '/');
    if (slash == NULL) {
        return;
    }

    id.data = slash + 1;
    id.len = payload->data + payload->len - id.data;

    if (!ngx_http_automations_redis_ready()) {
        /* the command connection resyncs every waiter once it is back */
        return;
    }

    for (;;) {
        sn = ngx_str_rbtree_lookup(&ngx_http_automations_waiters, &id,
            ngx_crc32_short(id.data, id.len));
        if (sn == NULL) {
            return;
        }

        ngx_http_automations_wait_fetch((ngx_http_automations_waiter_t *) sn);
    }
}


static void
ngx_http_automations_wait_reply(ngx_http_request_t *r, redisReply *reply)
{
    ngx_http_automations_ctx_t    *ctx;
    ngx_http_automations_waiter_t *w;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);
    w = ctx->waiter;
    w->fetching = 0;

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == AM_HTTP_REPLY_N
        && reply->element[AM_HTTP_REPLY_STATUS]->type == REDIS_REPLY_INTEGER
        && reply->element[AM_HTTP_REPLY_STATUS]->integer == NGX_HTTP_ACCEPTED
        && !w->expired) {
        /* not finished after all (a resync): keep waiting */
        ngx_http_automations_wait_insert(w);
        return;
    }

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }

    ngx_http_automations_run_finish(r, reply);
}


static void
ngx_http_automations_wait_fetch(ngx_http_automations_waiter_t *w)
{
    ngx_str_t                   key;
    ngx_http_request_t         *r;
    ngx_http_automations_ctx_t *ctx;

    r = w->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    ngx_http_automations_wait_remove(w);

    if (!ngx_http_automations_redis_ready() && !w->expired) {
        /* Redis is coming back: its resync looks again */
        ngx_http_automations_wait_insert(w);
        return;
    }

    w->fetching = 1;

    if (ngx_http_automations_execution_key(r, &ctx->project, &w->sn.str, &key)
            != NGX_OK
        || ngx_http_automations_redis_script(r, ngx_http_automations_wait_reply,
               AM_SCRIPT_EXECUTION_RESULT, AM_EXECUTION_RESULT_NKEYS, &key,
               AM_EXECUTION_RESULT_NARGS, NULL)
               != NGX_OK) {
        /* Redis is unavailable: the run goes on, answer with its URL */
        w->fetching = 0;

        if (w->timer.timer_set) {
            ngx_del_timer(&w->timer);
        }

        ngx_http_automations_run_finish(r, NULL);
        ngx_http_run_posted_requests(r->connection);
    }
}


static void
ngx_http_automations_wait_timeout(ngx_event_t *ev)
{
    ngx_http_automations_waiter_t *w;

    w = ev->data;
    w->expired = 1;

    if (!w->fetching) {
        ngx_http_automations_wait_fetch(w);
    }
}


static void
ngx_http_automations_wait_cleanup(void *data)
{
    ngx_http_automations_waiter_t *w = data;

    ngx_http_automations_wait_remove(w);
    ngx_queue_remove(&w->queue);

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }
}


ngx_int_t
ngx_http_automations_wait(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_http_cleanup_t              *cln;
    ngx_http_automations_ctx_t      *ctx;
    ngx_http_automations_waiter_t   *w;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    w = ngx_pcalloc(r->pool, sizeof(ngx_http_automations_waiter_t));
    cln = ngx_http_cleanup_add(r, 0);

    if (w == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    w->request = r;
    w->sn.str = *id;

    w->timer.handler = ngx_http_automations_wait_timeout;
    w->timer.data = w;
    w->timer.log = r->connection->log;

    ngx_http_automations_wait_insert(w);
    ngx_queue_insert_tail(&ngx_http_automations_waiters_all, &w->queue);
    ngx_add_timer(&w->timer, alcf->run_wait);

    cln->handler = ngx_http_automations_wait_cleanup;
    cln->data = w;

    ctx->waiter = w;

    /* notice a client that leaves while its run goes on */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_OK;
}


/*
 * The run turned out to be an earlier one (same Idempotency-Key): wait for
 * that one instead, and look at once whether it has finished.
 */
void
ngx_http_automations_wait_rekey(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_http_automations_ctx_t    *ctx;
    ngx_http_automations_waiter_t *w;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);
    w = ctx->waiter;

    ngx_http_automations_wait_remove(w);
    w->sn.str = *id;
    ngx_http_automations_wait_insert(w);

    ngx_http_automations_wait_fetch(w);
}


ngx_int_t
ngx_http_automations_wait_init_process(ngx_cycle_t *cycle)
{
    ngx_rbtree_init(&ngx_http_automations_waiters,
        &ngx_http_automations_waiters_sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&ngx_http_automations_waiters_all);

    ngx_http_automations_redis_subscribe(ngx_http_automations_wait_message);

    return NGX_OK;
}
