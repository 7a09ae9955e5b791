/*
 * automations_health: whether this nginx worker process can serve the
 * APIs, for load balancers and container health checks.
 *
 * 200 when the process's Redis command connection is up and its handshake
 * done, and Redis answers the stats script (redis/stats.lua, one round
 * trip on that connection); 503 with the reason otherwise. Both bodies
 * also say what an operator looks at next: the live workers and the run
 * stream (its depth, pending entries, the age of its oldest entry). No
 * live worker is not a 503: the gateway still accepts runs, they wait.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_scripts.h"


static ngx_int_t ngx_http_automations_health_handler(ngx_http_request_t *r);


/* automations_health: this location answers the health check */
char *
ngx_http_automations_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate, or the location has another handler";
    }

    clcf->handler = ngx_http_automations_health_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_automations_health_unavailable(
    ngx_http_request_t *r, const char *reason)
{
    u_char *p, *body;
    size_t  len;

    len = sizeof("{\"status\":\"unavailable\",\"reason\":\"\",\"pid\":}")
          + ngx_strlen(reason) + NGX_INT_T_LEN;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* reasons are this file's own text, or Redis's errors: no quotes */
    p = ngx_snprintf(body, len,
        "{\"status\":\"unavailable\",\"reason\":\"%s\",\"pid\":%P}", reason,
        ngx_pid);

    return ngx_http_automations_send(
        r, NGX_HTTP_SERVICE_UNAVAILABLE, body, p - body);
}


static void
ngx_http_automations_health_reply(ngx_http_request_t *r, redisReply *reply)
{
    u_char *p, *body;
    size_t  len;

    if (reply == NULL) {
        ngx_http_finalize_request(r, ngx_http_automations_health_unavailable(
                                         r, "Redis did not answer in time"));
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != AM_STATS_REPLY_N) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
            "automations: health check: redis answered %s",
            reply->type == REDIS_REPLY_ERROR ? reply->str : "an unknown reply");
        ngx_http_finalize_request(r, ngx_http_automations_health_unavailable(
                                         r, "Redis answered with an error"));
        return;
    }

    len = sizeof("{\"status\":\"ok\",\"redis\":\"up\",\"pid\":,"
                 "\"workers\":,\"queue\":{\"depth\":,\"pending\":,"
                 "\"oldest_age_ms\":},\"webhooks_dead\":}")
          + 6 * NGX_INT64_LEN;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_snprintf(body, len,
        "{\"status\":\"ok\",\"redis\":\"up\",\"pid\":%P,\"workers\":%L,"
        "\"queue\":{\"depth\":%L,\"pending\":%L,\"oldest_age_ms\":%L},"
        "\"webhooks_dead\":%L}",
        ngx_pid, ngx_http_automations_redis_int(reply, AM_STATS_REPLY_WORKERS),
        ngx_http_automations_redis_int(reply, AM_STATS_REPLY_DEPTH),
        ngx_http_automations_redis_int(reply, AM_STATS_REPLY_PENDING),
        ngx_http_automations_redis_int(reply, AM_STATS_REPLY_OLDEST_MS),
        ngx_http_automations_redis_int(reply, AM_STATS_REPLY_DEAD));

    ngx_http_finalize_request(
        r, ngx_http_automations_send(r, NGX_HTTP_OK, body, p - body));
}


static ngx_int_t
ngx_http_automations_health_handler(ngx_http_request_t *r)
{
    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (!ngx_http_automations_redis_is_up()) {
        return ngx_http_automations_health_unavailable(
            r, ngx_http_automations_redis_ready()
                   ? "the Redis connection is being set up"
                   : "the Redis connection is down");
    }

    if (ngx_http_automations_metrics_stats(
            r, ngx_http_automations_health_reply, 0)
        != NGX_OK) {
        return ngx_http_automations_health_unavailable(
            r, "the Redis connection is down");
    }

    r->main->count++;

    return NGX_DONE;
}
