/*
 * Synchronous runs wait here for their completion without blocking nginx.
 *
 * Each worker process keeps its waiters in a tree keyed by execution id.
 * The subscriber connection hears every completion published by the
 * workers. A completion carries the run's answer when it is small
 * (redis/execution_complete.lua): a waiter whose id is heard answers from
 * it at once, with no other round trip to Redis; for a larger one, or a
 * cancel, it fetches its result with the command connection (the same
 * bytes, from redis/lib.lua execution_result). A waiter is registered
 * before its run is enqueued, so that a
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
    unsigned            heard : 1; /* its completion came while fetching */
    unsigned            expired : 1;
} ngx_http_automations_waiter_t;


static void ngx_http_automations_wait_fetch(ngx_http_automations_waiter_t *w);


static ngx_rbtree_t      ngx_http_automations_waiters;
static ngx_rbtree_node_t ngx_http_automations_waiters_sentinel;
static ngx_queue_t       ngx_http_automations_waiters_all;
static ngx_uint_t        ngx_http_automations_waiters_fetching;


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


static void
ngx_http_automations_wait_fetching(
    ngx_http_automations_waiter_t *w, unsigned on)
{
    if (w->fetching != on) {
        w->fetching = on;
        ngx_http_automations_waiters_fetching += on ? 1 : (ngx_uint_t) -1;
    }
}


/*
 * A completion for id found no waiter in the tree: one fetching its
 * result (out of the tree meanwhile) may have read it just before the run
 * finished, and would otherwise wait on a message already gone. It fetches
 * again.
 */
static void
ngx_http_automations_wait_heard(ngx_str_t *id)
{
    ngx_queue_t                   *q;
    ngx_http_automations_waiter_t *w;

    if (ngx_http_automations_waiters_fetching == 0) {
        return;
    }

    for (q = ngx_queue_head(&ngx_http_automations_waiters_all);
         q != ngx_queue_sentinel(&ngx_http_automations_waiters_all);
         q = ngx_queue_next(q)) {
        w = ngx_queue_data(q, ngx_http_automations_waiter_t, queue);

        if (w->fetching && w->sn.str.len == id->len
            && ngx_strncmp(w->sn.str.data, id->data, id->len) == 0) {
            w->heard = 1;
        }
    }
}


/* A finished run answered from its completion message. */
static void
ngx_http_automations_wait_answer(
    ngx_http_automations_waiter_t *w, ngx_uint_t status, ngx_str_t *body)
{
    ngx_str_t           copy;
    ngx_connection_t   *c;
    ngx_http_request_t *r;

    r = w->request;
    c = r->connection;

    ngx_http_automations_wait_remove(w);

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }

    /* the message is hiredis's, freed once this callback returns */
    copy.len = body->len;
    copy.data = ngx_pnalloc(r->pool, body->len);

    if (copy.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);

    } else {
        ngx_memcpy(copy.data, body->data, body->len);
        ngx_http_automations_run_answer(r, status, &copy);
    }

    ngx_http_run_posted_requests(c);
}


/*
 * A completion was published, or (NULL) the subscription came back. The
 * message is "<project>/<id>", then "\n<status>\n<body>" when it carries
 * the run's answer.
 */
static void
ngx_http_automations_wait_message(ngx_str_t *payload)
{
    u_char                        *slash, *nl, *last, *p;
    ngx_int_t                      status;
    ngx_str_t                      id, body;
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

    last = payload->data + payload->len;

    slash = ngx_strlchr(payload->data, last, '/');
    if (slash == NULL) {
        return;
    }

    id.data = slash + 1;
    nl = ngx_strlchr(id.data, last, '\n');
    id.len = (nl ? nl : last) - id.data;

    status = NGX_ERROR;
    ngx_str_null(&body);

    if (nl != NULL) {
        p = ngx_strlchr(nl + 1, last, '\n');

        if (p != NULL) {
            status = ngx_atoi(nl + 1, p - nl - 1);
            body.data = p + 1;
            body.len = last - body.data;
        }

        if (status < NGX_HTTP_OK || status > 599 || body.len == 0) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                "automations: unexpected completion message for \"%V\"", &id);
            status = NGX_ERROR;
        }
    }

    if (status == NGX_ERROR && !ngx_http_automations_redis_ready()) {
        /* the command connection resyncs every waiter once it is back */
        return;
    }

    for (;;) {
        sn = ngx_str_rbtree_lookup(&ngx_http_automations_waiters, &id,
            ngx_crc32_short(id.data, id.len));
        if (sn == NULL) {
            ngx_http_automations_wait_heard(&id);
            return;
        }

        w = (ngx_http_automations_waiter_t *) sn;

        if (status == NGX_ERROR) {
            ngx_http_automations_wait_fetch(w);

        } else {
            ngx_http_automations_wait_answer(w, (ngx_uint_t) status, &body);
        }
    }
}


static void
ngx_http_automations_wait_reply(ngx_http_request_t *r, redisReply *reply)
{
    ngx_http_automations_ctx_t    *ctx;
    ngx_http_automations_waiter_t *w;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);
    w = ctx->waiter;
    ngx_http_automations_wait_fetching(w, 0);

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == AM_HTTP_REPLY_N
        && reply->element[AM_HTTP_REPLY_STATUS]->type == REDIS_REPLY_INTEGER
        && reply->element[AM_HTTP_REPLY_STATUS]->integer == NGX_HTTP_ACCEPTED
        && !w->expired) {
        if (w->heard) {
            /* it finished after this read: read again */
            w->heard = 0;
            ngx_http_automations_wait_fetch(w);
            return;
        }

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

    ngx_http_automations_wait_fetching(w, 1);

    if (ngx_http_automations_execution_key(r, &ctx->project, &w->sn.str, &key)
            != NGX_OK
        || ngx_http_automations_redis_script(r, ngx_http_automations_wait_reply,
               AM_SCRIPT_EXECUTION_RESULT, AM_EXECUTION_RESULT_NKEYS, &key,
               AM_EXECUTION_RESULT_NARGS, NULL)
               != NGX_OK) {
        /* Redis is unavailable: the run goes on, answer with its URL */
        ngx_http_automations_wait_fetching(w, 0);

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
    ngx_http_automations_wait_fetching(w, 0);
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
