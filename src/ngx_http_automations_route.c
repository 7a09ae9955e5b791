/*
 * Routing: one table of {API, methods, path, scope, handler} for both
 * APIs. The path is what follows the location's prefix: upper-case
 * segments are parameters (PROJECT, NAME, ID), lower-case ones literals.
 *
 * The access phase finds the route once, before authentication, because
 * the route decides the scope a credential needs and, in the start API,
 * the project; the result and the path's parameters stay in the request
 * context. The content handler then only calls the row's handler. A path
 * that matches rows but none for the method is a 405 whose Allow header
 * lists the methods of those rows. A new endpoint is one row here and one
 * handler where it belongs.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_name.h"


/* paths have at most this many segments */
#define NGX_HTTP_AUTOMATIONS_SEGMENTS 5


typedef struct {
    ngx_str_t project;
    ngx_str_t name;
    ngx_str_t id;
} ngx_http_automations_params_t;


ngx_http_automations_route_t ngx_http_automations_routes[] = {

    /* the Automations API, under automations_api */

    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_GET | NGX_HTTP_HEAD, "",
        NGX_HTTP_AUTOMATIONS_SCOPE_READ, ngx_http_automations_automation_list,
        "Project not found or user doesn't have access"},

    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_POST, "",
        NGX_HTTP_AUTOMATIONS_SCOPE_WRITE,
        ngx_http_automations_automation_create,
        "Project not found or user doesn't have admin access"},

    /* the dashboard's: their second segments are no automation's ("run",
     * "executions"), so no automation name is taken from NAME */
    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_GET | NGX_HTTP_HEAD,
        "queue/overview", NGX_HTTP_AUTOMATIONS_SCOPE_READ,
        ngx_http_automations_queue_overview,
        "Project not found or user doesn't have access"},

    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_GET | NGX_HTTP_HEAD,
        "webhooks/dead", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_webhook_dead,
        "Project not found or user doesn't have access"},

    /* before NAME: "executions" lists, it names no automation here */
    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_GET | NGX_HTTP_HEAD,
        "executions", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_execution_list,
        "Project not found or user doesn't have access"},

    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_GET | NGX_HTTP_HEAD, "NAME",
        NGX_HTTP_AUTOMATIONS_SCOPE_READ, ngx_http_automations_automation_get,
        "Automation not found or user doesn't have access"},

    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_DELETE, "NAME",
        NGX_HTTP_AUTOMATIONS_SCOPE_WRITE,
        ngx_http_automations_automation_delete,
        "Automation not found or user doesn't have admin access"},

    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_POST, "NAME/run",
        NGX_HTTP_AUTOMATIONS_SCOPE_RUN, ngx_http_automations_run,
        "Automation not found or user doesn't have access"},

    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_GET | NGX_HTTP_HEAD,
        "NAME/executions/ID", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_execution,
        "Automation not found or user doesn't have access"},

    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_GET | NGX_HTTP_HEAD,
        "NAME/executions", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_execution_list,
        "Automation not found or user doesn't have access"},

    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_POST,
        "NAME/executions/ID/cancel", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_execution_cancel,
        "Automation not found or user doesn't have access"},

    {NGX_HTTP_AUTOMATIONS_HANDLER_API, NGX_HTTP_POST,
        "NAME/executions/ID/retry", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_execution_retry,
        "Automation not found or user doesn't have access"},

    /* the Start Automation API, under automations_start_api */

    {NGX_HTTP_AUTOMATIONS_HANDLER_START, NGX_HTTP_POST, "PROJECT/NAME",
        NGX_HTTP_AUTOMATIONS_SCOPE_RUN, ngx_http_automations_start, NULL},

    {NGX_HTTP_AUTOMATIONS_HANDLER_START, NGX_HTTP_GET | NGX_HTTP_HEAD,
        "PROJECT/NAME/executions/ID", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_start_execution, NULL},

    {NGX_HTTP_AUTOMATIONS_HANDLER_START, NGX_HTTP_GET | NGX_HTTP_HEAD,
        "PROJECT/executions", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_execution_list, NULL},

    {NGX_HTTP_AUTOMATIONS_HANDLER_START, NGX_HTTP_GET | NGX_HTTP_HEAD,
        "PROJECT/NAME/executions", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_execution_list, NULL},

    {NGX_HTTP_AUTOMATIONS_HANDLER_START, NGX_HTTP_POST,
        "PROJECT/NAME/executions/ID/cancel", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_execution_cancel, NULL},

    {NGX_HTTP_AUTOMATIONS_HANDLER_START, NGX_HTTP_POST,
        "PROJECT/NAME/executions/ID/retry", NGX_HTTP_AUTOMATIONS_SCOPE_RUN,
        ngx_http_automations_execution_retry, NULL},

    {0, 0, NULL, 0, NULL, NULL}};


/* the methods an Allow header may name, in its order; HEAD goes with GET */
static struct {
    ngx_uint_t method;
    ngx_str_t  name;
} ngx_http_automations_methods[] = {{NGX_HTTP_GET, ngx_string("GET")},
    {NGX_HTTP_POST, ngx_string("POST")}, {NGX_HTTP_PUT, ngx_string("PUT")},
    {NGX_HTTP_PATCH, ngx_string("PATCH")},
    {NGX_HTTP_DELETE, ngx_string("DELETE")}, {0, ngx_null_string}};


/*
 * The path after the location, split at "/" (a trailing "/" is allowed);
 * the number of segments, or NGX_HTTP_AUTOMATIONS_SEGMENTS + 1 when there
 * are more than any route has.
 */
static ngx_uint_t
ngx_http_automations_path_split(ngx_http_request_t *r, ngx_str_t *seg)
{
    u_char                   *p, *last, *slash;
    ngx_uint_t                n;
    ngx_http_core_loc_conf_t *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->uri.len < clcf->name.len) {
        return NGX_HTTP_AUTOMATIONS_SEGMENTS + 1;
    }

    p = r->uri.data + clcf->name.len;
    last = r->uri.data + r->uri.len;

    if (clcf->name.len && clcf->name.data[clcf->name.len - 1] != '/' && p < last
        && *p == '/') {
        /* "location /automations" also serves "/automations/..." */
        p++;
    }

    if (p < last && last[-1] == '/') {
        last--;
    }

    for (n = 0; p < last; n++) {
        if (n == NGX_HTTP_AUTOMATIONS_SEGMENTS) {
            return NGX_HTTP_AUTOMATIONS_SEGMENTS + 1;
        }

        slash = ngx_strlchr(p, last, '/');

        seg[n].data = p;
        seg[n].len = (slash ? slash : last) - p;

        p = slash ? slash + 1 : last;
    }

    return n;
}


/* whether one pattern segment accepts seg, noting parameters in params */
static ngx_flag_t
ngx_http_automations_segment_match(u_char *pat, size_t len, ngx_str_t *seg,
    ngx_http_automations_params_t *params)
{
    if (len == 7 && ngx_strncmp(pat, "PROJECT", 7) == 0) {
        params->project = *seg;

    } else if (len == 4 && ngx_strncmp(pat, "NAME", 4) == 0) {
        params->name = *seg;

    } else if (len == 2 && ngx_strncmp(pat, "ID", 2) == 0) {
        params->id = *seg;

    } else if (len != seg->len || ngx_strncmp(pat, seg->data, len) != 0) {
        return 0;
    }

    return 1;
}


/* whether path matches seg; its parameters are then in params */
static ngx_flag_t
ngx_http_automations_path_match(const char *path, ngx_str_t *seg, ngx_uint_t n,
    ngx_http_automations_params_t *params)
{
    u_char                       *p, *last, *slash;
    ngx_uint_t                    i;
    ngx_http_automations_params_t found;

    ngx_memzero(&found, sizeof(ngx_http_automations_params_t));

    p = (u_char *) path;
    last = p + ngx_strlen(path);

    for (i = 0; p < last; i++) {
        slash = ngx_strlchr(p, last, '/');

        if (i == n
            || !ngx_http_automations_segment_match(
                p, (slash ? slash : last) - p, &seg[i], &found)) {
            return 0;
        }

        p = slash ? slash + 1 : last;
    }

    if (i != n) {
        return 0;
    }

    *params = found;

    return 1;
}


/*
 * The rows of the location's API whose path matches: the methods they
 * have, in ctx->allow, and the first one for the request's method.
 */
static void
ngx_http_automations_route_match(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, ngx_http_automations_params_t *params)
{
    ngx_str_t                        seg[NGX_HTTP_AUTOMATIONS_SEGMENTS];
    ngx_uint_t                       n;
    ngx_http_automations_route_t    *rt;
    ngx_http_automations_params_t    found;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    n = ngx_http_automations_path_split(r, seg);

    ctx->route = NULL;
    ctx->allow = 0;

    for (rt = ngx_http_automations_routes; rt->path; rt++) {
        if (rt->api != alcf->handler
            || !ngx_http_automations_path_match(rt->path, seg, n, &found)) {
            continue;
        }

        /* the parameters of the row chosen, or of the first that matched:
         * a literal row ("executions") comes before a NAME row */
        if (ctx->allow == 0) {
            *params = found;
        }

        ctx->allow |= rt->methods;

        if (ctx->route == NULL && (rt->methods & r->method)) {
            ctx->route = rt;
            *params = found;
        }
    }
}


/*
 * Finds the row of the request's location, method and path, and keeps its
 * parameters in ctx. The Automations API answers a malformed automation
 * name with 422; the start API answers as if it did not exist, which its
 * handlers do once the credential has been checked.
 */
void
ngx_http_automations_route_find(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_http_automations_params_t    params;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    ngx_memzero(&params, sizeof(ngx_http_automations_params_t));
    ctx->route_state = ngx_http_automations_route_not_found;

    ngx_http_automations_route_match(r, ctx, &params);

    if (ctx->allow == 0) {
        return;
    }

    if (params.name.data && alcf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_API
        && !am_automation_name_valid(
            (char *) params.name.data, params.name.len)) {
        ctx->route_state = ngx_http_automations_route_bad_name;
        return;
    }

    if (params.id.data
        && !ngx_http_automations_execution_id_valid(&params.id)) {
        ctx->route = NULL;
        return;
    }

    ctx->route_state = ctx->route ? ngx_http_automations_route_found
                                  : ngx_http_automations_route_not_allowed;
    ctx->name = params.name;
    ctx->execution_id = params.id;

    if (params.project.data) {
        ctx->project = params.project;
    }
}


/* the scope the request's route needs; none for an answer without a row */
ngx_uint_t
ngx_http_automations_route_scope(ngx_http_automations_ctx_t *ctx)
{
    return ctx->route_state == ngx_http_automations_route_found
               ? ctx->route->scope
               : 0;
}


/* 405 with the methods the path has in the Allow header */
static ngx_int_t
ngx_http_automations_route_405(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    u_char    *p;
    ngx_str_t  allow;
    ngx_uint_t i;

    p = ngx_pnalloc(r->pool, sizeof("GET, POST, PUT, PATCH, DELETE"));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    allow.data = p;

    for (i = 0; ngx_http_automations_methods[i].method; i++) {
        if (!(ctx->allow & ngx_http_automations_methods[i].method)) {
            continue;
        }

        if (p > allow.data) {
            p = ngx_cpymem(p, ", ", 2);
        }

        p = ngx_cpymem(p, ngx_http_automations_methods[i].name.data,
            ngx_http_automations_methods[i].name.len);
    }

    allow.len = p - allow.data;

    return ngx_http_automations_send_not_allowed(r, &allow);
}


/* the content handler of automations_api and automations_start_api */
ngx_int_t
ngx_http_automations_content_handler(ngx_http_request_t *r)
{
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_automations_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->route_state == ngx_http_automations_route_unset) {
        /* subrequests skip the access phase */
        ngx_http_automations_route_find(r, ctx);
    }

    switch (ctx->route_state) {

    case ngx_http_automations_route_found:
        return ctx->route->handler(r, ctx);

    case ngx_http_automations_route_not_allowed:
        return ngx_http_automations_route_405(r, ctx);

    case ngx_http_automations_route_bad_name:
        return ngx_http_automations_send_detail(r, 422,
            "Invalid automation name format: 1 to %d characters of "
            "A-Z a-z 0-9 _ - ., not starting with a dot",
            AM_AUTOMATION_NAME_MAX);

    default:
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_NOT_FOUND, "Not Found");
    }
}


/*
 * What every handler that reads or writes a project needs: one project
 * chosen by the access phase, and Redis. NGX_DECLINED when the handler may
 * go on, as for nginx's phase handlers; else the code of the answer sent.
 */
ngx_int_t
ngx_http_automations_project_ready(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    if (ctx->project.len == 0) {
        return ngx_http_automations_send_detail(r, NGX_HTTP_FORBIDDEN,
            "These credentials reach several projects: the project "
            "must be set with automations_project.");
    }

    if (!ngx_http_automations_redis_ready()) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }

    return NGX_DECLINED;
}
