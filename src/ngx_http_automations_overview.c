/*
 * What a project's dashboard shows beside its automations and executions,
 * as endpoints of the Automations API:
 *
 *   GET <api location>queue/overview   the run stream and the live workers
 *   GET <api location>webhooks/dead    the project's dead-lettered
 *                                      deliveries, newest first
 *
 * The queue and the workers are shared by every project: the overview
 * says how busy they are (redis/stats.lua, as the health check reads it),
 * never what the other projects run, and leaves out the dead letters of
 * all projects that the health check counts. Dead letters are listed by
 * redis/webhook_dead.lua, which keeps those of the request's project only.
 * Both paths have two segments so that no automation name is taken from
 * GET NAME.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_scripts.h"


#define NGX_HTTP_AUTOMATIONS_DEAD_LIMIT 20
#define NGX_HTTP_AUTOMATIONS_DEAD_MAX 100


static void
ngx_http_automations_overview_reply(ngx_http_request_t *r, redisReply *reply)
{
    u_char *p, *body;
    size_t  len;

    if (reply == NULL) {
        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != AM_STATS_REPLY_N) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
            "automations: queue overview: redis answered %s",
            reply->type == REDIS_REPLY_ERROR ? reply->str : "an unknown reply");
        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
        return;
    }

    len = sizeof("{\"queue\":{\"depth\":,\"pending\":,\"oldest_age_ms\":},"
                 "\"workers\":}")
          + 4 * NGX_INT64_LEN;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_snprintf(body, len,
        "{\"queue\":{\"depth\":%L,\"pending\":%L,\"oldest_age_ms\":%L},"
        "\"workers\":%L}",
        ngx_http_automations_redis_int(reply, AM_STATS_REPLY_DEPTH),
        ngx_http_automations_redis_int(reply, AM_STATS_REPLY_PENDING),
        ngx_http_automations_redis_int(reply, AM_STATS_REPLY_OLDEST_MS),
        ngx_http_automations_redis_int(reply, AM_STATS_REPLY_WORKERS));

    ngx_http_finalize_request(
        r, ngx_http_automations_send(r, NGX_HTTP_OK, body, p - body));
}


/* GET queue/overview */
ngx_int_t
ngx_http_automations_queue_overview(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_int_t rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_automations_project_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_automations_metrics_stats(
            r, ngx_http_automations_overview_reply, 0)
        != NGX_OK) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * ?limit= of the dead letters, 1 to DEAD_MAX: NGX_OK with it in limit,
 * NGX_DECLINED when it is something else
 */
static ngx_int_t
ngx_http_automations_dead_limit(ngx_http_request_t *r, ngx_str_t *limit)
{
    ngx_int_t n;
    ngx_str_t v;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &v) != NGX_OK) {
        ngx_str_set(
            limit, NGX_HTTP_AUTOMATIONS_STR(NGX_HTTP_AUTOMATIONS_DEAD_LIMIT));
        return NGX_OK;
    }

    /* digits need no unescaping: anything escaped is refused */
    n = (v.len && v.len <= 3) ? ngx_atoi(v.data, v.len) : NGX_ERROR;

    if (n < 1 || n > NGX_HTTP_AUTOMATIONS_DEAD_MAX) {
        return NGX_DECLINED;
    }

    *limit = v;

    return NGX_OK;
}


/* GET webhooks/dead */
ngx_int_t
ngx_http_automations_webhook_dead(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_int_t rc;
    ngx_str_t keys[AM_WEBHOOK_DEAD_NKEYS];
    ngx_str_t args[AM_WEBHOOK_DEAD_NARGS];

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_automations_project_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_automations_dead_limit(r, &args[AM_WEBHOOK_DEAD_ARG_LIMIT])
        != NGX_OK) {
        return ngx_http_automations_send_detail(r, NGX_HTTP_BAD_REQUEST,
            "limit must be an integer from 1 to " NGX_HTTP_AUTOMATIONS_STR(
                NGX_HTTP_AUTOMATIONS_DEAD_MAX) ".");
    }

    if (ngx_http_automations_project_key(
            r, &ctx->project, ":project", &keys[AM_WEBHOOK_DEAD_KEY_PROJECT])
            != NGX_OK
        || ngx_http_automations_project_key(
               r, &ctx->project, ":", &args[AM_WEBHOOK_DEAD_ARG_BASE])
               != NGX_OK
        || ngx_http_automations_project_key(r, &ctx->project, ":webhooks:dead",
               &keys[AM_WEBHOOK_DEAD_KEY_DEAD])
               != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_automations_redis_answer(r, AM_SCRIPT_WEBHOOK_DEAD,
        AM_WEBHOOK_DEAD_NKEYS, keys, AM_WEBHOOK_DEAD_NARGS, args);
}
