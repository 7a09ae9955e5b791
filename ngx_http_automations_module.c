/*
 * ngx_http_automations_module: an automations gateway inside nginx.
 *
 * This file only wires the module together: directives, configuration,
 * phase and content handler registration, the request context, worker
 * start and exit. The work is done in src/, one concern per file:
 *
 *   route.c       which endpoint a request is, for both APIs (one table)
 *   access.c      the access phase: who calls, on which project, may they
 *   credential.c  API keys and tokenpairs, looked up in Redis
 *   jwt.c         JWT keys and verification
 *   redis.c       the Redis connection of a worker process, and key names
 *   input.c       headers, bodies, and the checks of client values
 *   automation.c  automations CRUD
 *   run.c         runs and execution status
 *   wait.c        waiting for a synchronous run's completion
 *   reply.c       JSON responses and script replies
 *   metrics.c     the Prometheus page and the counters behind it
 *   health.c      the health check
 *   overview.c    a project's view of the queue and of its dead letters
 *   dashboard.c   the dashboard page
 *
 * Directives use nginx's conf slots where one fits; the few handlers here
 * add what a slot cannot say (an error naming the accepted values, checks
 * across directives at merge time).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <nginx.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_name.h"
#include "am_redis_addr.h"
#include "am_version.h"


static ngx_int_t ngx_http_automations_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_automations_postconfiguration(ngx_conf_t *cf);
static void     *ngx_http_automations_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_automations_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_automations_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_automations_merge_loc_conf(
    ngx_conf_t *cf, void *parent, void *child);
static char *ngx_http_automations_redis_addr(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_automations_prefix(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_automations_endpoint(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_automations_auth(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_automations_auth_scope(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_automations_conf_value(ngx_conf_t *cf, ngx_str_t *value,
    ngx_conf_enum_t *values, const char *what);
static char *ngx_http_automations_cstring(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_automations_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_automations_init_process(ngx_cycle_t *cycle);
static void      ngx_http_automations_exit_process(ngx_cycle_t *cycle);


typedef struct {
    ngx_uint_t  handler;
    const char *example;
} ngx_http_automations_endpoint_t;


static ngx_http_automations_endpoint_t ngx_http_automations_api_endpoint = {
    NGX_HTTP_AUTOMATIONS_HANDLER_API, "/automations/v1/"};

static ngx_http_automations_endpoint_t ngx_http_automations_start_endpoint = {
    NGX_HTTP_AUTOMATIONS_HANDLER_START, "/api/start-automation/"};


/*
 * automations_auth off | [jwt] [apikey] [token]; "token" is the tokenpair
 * scheme, under the word configurations already use
 */
static ngx_conf_bitmask_t ngx_http_automations_auth_schemes[] = {
    {ngx_string("off"), NGX_HTTP_AUTOMATIONS_AUTH_OFF},
    {ngx_string("jwt"), NGX_HTTP_AUTOMATIONS_AUTH_JWT},
    {ngx_string("apikey"), NGX_HTTP_AUTOMATIONS_AUTH_APIKEY},
    {ngx_string("token"), NGX_HTTP_AUTOMATIONS_AUTH_TOKENPAIR},
    {ngx_null_string, 0}};


/* automations_auth_scope read | write | run | any */
static ngx_conf_enum_t ngx_http_automations_auth_scopes[] = {
    {ngx_string("read"), NGX_HTTP_AUTOMATIONS_SCOPE_READ},
    {ngx_string("write"), NGX_HTTP_AUTOMATIONS_SCOPE_WRITE},
    {ngx_string("run"), NGX_HTTP_AUTOMATIONS_SCOPE_RUN}, {ngx_string("any"), 0},
    {ngx_null_string, 0}};


static ngx_command_t ngx_http_automations_commands[] = {

    {ngx_string("automations_redis"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_http_automations_redis_addr, NGX_HTTP_MAIN_CONF_OFFSET, 0, NULL},

    {ngx_string("automations_redis_password"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offsetof(ngx_http_automations_main_conf_t, redis_password), NULL},

    {ngx_string("automations_redis_db"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_num_slot, NGX_HTTP_MAIN_CONF_OFFSET,
        offsetof(ngx_http_automations_main_conf_t, redis_db), NULL},

    {ngx_string("automations_redis_prefix"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_http_automations_prefix,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offsetof(ngx_http_automations_main_conf_t, prefix), NULL},

    {ngx_string("automations_redis_connect_timeout"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_msec_slot,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offsetof(ngx_http_automations_main_conf_t, connect_timeout), NULL},

    {ngx_string("automations_redis_timeout"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_msec_slot,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offsetof(ngx_http_automations_main_conf_t, timeout), NULL},

    {ngx_string("automations_metrics_collect"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offsetof(ngx_http_automations_main_conf_t, metrics_collect), NULL},

    {ngx_string("automations_credential_cache"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE12, ngx_http_automations_cache_conf,
        NGX_HTTP_MAIN_CONF_OFFSET, 0, NULL},

    {ngx_string("automations_metrics"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        ngx_http_automations_metrics, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},

    {ngx_string("automations_health"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        ngx_http_automations_health, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},

    {ngx_string("automations_dashboard"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
        ngx_http_automations_dashboard, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},

    {ngx_string("automations_api"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        ngx_http_automations_endpoint, NGX_HTTP_LOC_CONF_OFFSET, 0,
        &ngx_http_automations_api_endpoint},

    {ngx_string("automations_start_api"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        ngx_http_automations_endpoint, NGX_HTTP_LOC_CONF_OFFSET, 0,
        &ngx_http_automations_start_endpoint},

    {ngx_string("automations_run_wait"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, run_wait), NULL},

    {ngx_string("automations_execution_retention"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_conf_set_sec_slot, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, retention), NULL},

    {ngx_string("automations_auth"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_1MORE,
        ngx_http_automations_auth, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, auth),
        ngx_http_automations_auth_schemes},

    {ngx_string("automations_auth_scope"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_http_automations_auth_scope, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, scope),
        ngx_http_automations_auth_scopes},

    {ngx_string("automations_project"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_http_set_complex_value_slot, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, project), NULL},

    {ngx_string("automations_jwt_key"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE123,
        ngx_http_automations_jwt_key, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},

    {ngx_string("automations_jwt_jwks"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_http_automations_jwt_jwks, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},

    {ngx_string("automations_jwt_leeway"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_conf_set_sec_slot, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, jwt_leeway), NULL},

    {ngx_string("automations_jwt_issuer"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_http_automations_cstring, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, jwt_issuer), NULL},

    {ngx_string("automations_jwt_audience"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_http_automations_cstring, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, jwt_audience), NULL},

    {ngx_string("automations_jwt_project_claim"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_http_automations_cstring, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, jwt_project_claim), NULL},

    {ngx_string("automations_jwt_role_claim"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_http_automations_cstring, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, jwt_role_claim), NULL},

    {ngx_string("automations_jwt_max_size"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_conf_set_size_slot, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, jwt_max_size), NULL},

    {ngx_string("automations_max_body_size"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_conf_set_size_slot, NGX_HTTP_LOC_CONF_OFFSET,
        offsetof(ngx_http_automations_loc_conf_t, max_body_size), NULL},

    ngx_null_command};


static ngx_http_module_t ngx_http_automations_module_ctx = {
    ngx_http_automations_preconfiguration,  /* preconfiguration */
    ngx_http_automations_postconfiguration, /* postconfiguration */

    ngx_http_automations_create_main_conf, /* create main configuration */
    ngx_http_automations_init_main_conf,   /* init main configuration */

    NULL, /* create server configuration */
    NULL, /* merge server configuration */

    ngx_http_automations_create_loc_conf, /* create location configuration */
    ngx_http_automations_merge_loc_conf   /* merge location configuration */
};


ngx_module_t ngx_http_automations_module = {NGX_MODULE_V1,
    &ngx_http_automations_module_ctx,  /* module context */
    ngx_http_automations_commands,     /* module directives */
    NGX_HTTP_MODULE,                   /* module type */
    NULL,                              /* init master */
    ngx_http_automations_init_module,  /* init module */
    ngx_http_automations_init_process, /* init process */
    NULL,                              /* init thread */
    NULL,                              /* exit thread */
    ngx_http_automations_exit_process, /* exit process */
    NULL,                              /* exit master */
    NGX_MODULE_V1_PADDING};


static ngx_int_t
ngx_http_automations_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_automations_add_variables(cf);
}


static ngx_int_t
ngx_http_automations_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt       *h;
    ngx_http_core_main_conf_t *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_automations_access_handler;

    if (ngx_http_automations_metrics_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_automations_filter_init(cf);
}


static void *
ngx_http_automations_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_automations_main_conf_t *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_automations_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    amcf->redis_db = NGX_CONF_UNSET;
    amcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    amcf->timeout = NGX_CONF_UNSET_MSEC;
    amcf->metrics_collect = NGX_CONF_UNSET;
    amcf->cache_max = NGX_CONF_UNSET_UINT;
    amcf->cache_valid = NGX_CONF_UNSET_MSEC;

    return amcf;
}


static char *
ngx_http_automations_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_automations_main_conf_t *amcf = conf;

    ngx_conf_init_value(amcf->redis_db, 0);
    ngx_conf_init_msec_value(amcf->connect_timeout, 1000);
    ngx_conf_init_msec_value(amcf->timeout, 1000);
    ngx_conf_init_value(amcf->metrics_collect, 1);
    ngx_conf_init_uint_value(amcf->cache_max, 1024);
    ngx_conf_init_msec_value(amcf->cache_valid, 60000);

    if (amcf->prefix.data == NULL) {
        ngx_str_set(&amcf->prefix, "am:");
    }

    if (ngx_http_automations_metrics_zone(cf, amcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_automations_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_automations_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     alcf->handler = NGX_HTTP_AUTOMATIONS_HANDLER_NONE;
     *     alcf->auth = 0;
     *     alcf->jwt_keys = NULL;
     *     alcf->jwt_issuer = { 0, NULL };
     *     alcf->jwt_audience = { 0, NULL };
     */

    alcf->scope = NGX_CONF_UNSET_UINT;
    alcf->project = NGX_CONF_UNSET_PTR;
    alcf->jwt_leeway = NGX_CONF_UNSET;
    alcf->jwt_max_size = NGX_CONF_UNSET_SIZE;
    alcf->max_body_size = NGX_CONF_UNSET_SIZE;
    alcf->run_wait = NGX_CONF_UNSET_MSEC;
    alcf->retention = NGX_CONF_UNSET;

    return alcf;
}


/*
 * The schemes a location enforces: as set by automations_auth at this level
 * or above, else by default JWT (when keys are configured) and API keys in
 * the APIs' locations, and tokenpairs too in the start API's.
 */
static void
ngx_http_automations_merge_schemes(ngx_http_automations_loc_conf_t *conf)
{
    if (conf->auth) {
        conf->schemes = conf->auth & NGX_HTTP_AUTOMATIONS_AUTH_SCHEMES;
        return;
    }

    switch (conf->handler) {

    case NGX_HTTP_AUTOMATIONS_HANDLER_START:
        conf->schemes = NGX_HTTP_AUTOMATIONS_AUTH_TOKENPAIR
                        | NGX_HTTP_AUTOMATIONS_AUTH_APIKEY;
        break;

    case NGX_HTTP_AUTOMATIONS_HANDLER_API:
        conf->schemes = NGX_HTTP_AUTOMATIONS_AUTH_APIKEY;
        break;

    default:
        conf->schemes = 0;
        return;
    }

    if (conf->jwt_keys) {
        conf->schemes |= NGX_HTTP_AUTOMATIONS_AUTH_JWT;
    }
}


/* what a location's directives together cannot do; NULL when none */
static const char *
ngx_http_automations_merge_check(
    ngx_conf_t *cf, ngx_http_automations_loc_conf_t *conf)
{
    ngx_http_automations_main_conf_t *amcf;

    if (conf->retention < 1) {
        return "\"automations_execution_retention\" must be at least 1s";
    }

    if ((conf->auth & NGX_HTTP_AUTOMATIONS_AUTH_JWT)
        && conf->jwt_keys == NULL) {
        return "\"automations_auth jwt\" needs \"automations_jwt_key\" or "
               "\"automations_jwt_jwks\"";
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_automations_module);

    if (amcf->redis.len == 0
        && (conf->handler != NGX_HTTP_AUTOMATIONS_HANDLER_NONE
            || (conf->schemes
                & (NGX_HTTP_AUTOMATIONS_AUTH_APIKEY
                    | NGX_HTTP_AUTOMATIONS_AUTH_TOKENPAIR)))) {
        return "this location needs Redis: set \"automations_redis\" in the "
               "http block";
    }

    if (conf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_START
        && conf->schemes == 0) {
        return "automations_start_api cannot run with \"automations_auth off\"";
    }

    if (conf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_API && conf->schemes == 0
        && conf->project == NULL) {
        return "automations_api with \"automations_auth off\" "
               "needs \"automations_project\"";
    }

    return NULL;
}


static char *
ngx_http_automations_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_automations_loc_conf_t *prev = parent;
    ngx_http_automations_loc_conf_t *conf = child;

    const char               *err;
    ngx_http_core_loc_conf_t *clcf;

    /*
     * A header too large for nginx's buffers (a long JWT) is refused before
     * any location is chosen, with the server's configuration: the server
     * holding an API location answers such errors in JSON too.
     */
    if (conf->handler != NGX_HTTP_AUTOMATIONS_HANDLER_NONE) {
        prev->api_inside = 1;
    }

    /* auth stays unset through the levels that do not set it */
    if (conf->auth == 0) {
        conf->auth = prev->auth;
    }

    ngx_conf_merge_uint_value(conf->scope, prev->scope, 0);
    ngx_conf_merge_ptr_value(conf->project, prev->project, NULL);

    if (conf->jwt_keys == NULL) {
        conf->jwt_keys = prev->jwt_keys;
    }

    ngx_conf_merge_value(conf->jwt_leeway, prev->jwt_leeway, 30);
    ngx_conf_merge_str_value(conf->jwt_issuer, prev->jwt_issuer, "");
    ngx_conf_merge_str_value(conf->jwt_audience, prev->jwt_audience, "");
    ngx_conf_merge_str_value(
        conf->jwt_project_claim, prev->jwt_project_claim, "project");
    ngx_conf_merge_str_value(
        conf->jwt_role_claim, prev->jwt_role_claim, "role");
    ngx_conf_merge_size_value(conf->jwt_max_size, prev->jwt_max_size, 8192);
    ngx_conf_merge_size_value(
        conf->max_body_size, prev->max_body_size, 1024 * 1024);

    ngx_conf_merge_msec_value(conf->run_wait, prev->run_wait, 30000);
    ngx_conf_merge_sec_value(conf->retention, prev->retention, 7 * 86400);

    if (conf->handler != NGX_HTTP_AUTOMATIONS_HANDLER_NONE) {
        /* nginx enforces it while reading, also for chunked bodies */
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        clcf->client_max_body_size = conf->max_body_size;

        /*
         * a body that fits is read into memory, never into a temp file
         * that the workers' user may not be allowed to write
         */
        clcf->client_body_buffer_size = conf->max_body_size;
        clcf->client_body_in_single_buffer = 1;
        clcf->client_body_in_file_only = 0;
    }

    ngx_http_automations_merge_schemes(conf);

    err = ngx_http_automations_merge_check(cf, conf);
    if (err) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * automations_redis: the syntax of the worker's and the CLI's --redis
 * (src/am_redis_addr.h). A host name is resolved here, once, when the
 * configuration is read: a worker process connects to the address without
 * a resolver call that would block it.
 */
static char *
ngx_http_automations_redis_addr(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_automations_main_conf_t *amcf = conf;

    char            err[512], ip[NGX_INET6_ADDRSTRLEN + 1];
    size_t          len;
    ngx_str_t      *value;
    am_redis_addr_t a;

    if (amcf->redis.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    amcf->redis = value[1];

    /* ngx_conf_read_token() NUL-terminates every argument */
    if (am_redis_addr_parse((char *) value[1].data, &a, err, sizeof(err))
        != 0) {
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "invalid redis address %s", err);
        return NGX_CONF_ERROR;
    }

    if (a.path) {
        amcf->redis_unix.data = (u_char *) a.path;
        amcf->redis_unix.len = ngx_strlen(a.path);
        return NGX_CONF_OK;
    }

    if (am_redis_addr_resolve(&a, ip, sizeof(ip), err, sizeof(err)) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "redis: %s", err);
        return NGX_CONF_ERROR;
    }

    len = ngx_strlen(ip);

    amcf->redis_host.data = ngx_pnalloc(cf->pool, len + 1);
    if (amcf->redis_host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(amcf->redis_host.data, (u_char *) ip, len + 1);
    amcf->redis_host.len = len;
    amcf->redis_port = a.port;

    return NGX_CONF_OK;
}


/* automations_redis_prefix: braces would move keys out of their slot */
static char *
ngx_http_automations_prefix(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t *value;

    value = cf->args->elts;

    if (!am_prefix_valid((char *) value[1].data, value[1].len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "invalid key prefix \"%V\": " AM_PREFIX_RULE, &value[1]);
        return NGX_CONF_ERROR;
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


/* automations_api and automations_start_api: which API a location serves */
static char *
ngx_http_automations_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_automations_loc_conf_t *alcf = conf;

    ngx_http_automations_endpoint_t *ep = cmd->post;
    ngx_http_core_loc_conf_t        *clcf;

    if (alcf->handler != NGX_HTTP_AUTOMATIONS_HANDLER_NONE) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->regex || clcf->exact_match || clcf->named) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"%V\" directive must be in a prefix location, such as "
            "\"location %s\"",
            &cmd->name, ep->example);
        return NGX_CONF_ERROR;
    }

    alcf->handler = ep->handler;
    clcf->handler = ngx_http_automations_content_handler;

    return NGX_CONF_OK;
}


/*
 * Whether value is one of values; when not, an error naming them all.
 * nginx's own slots only say "invalid value".
 */
static char *
ngx_http_automations_conf_value(
    ngx_conf_t *cf, ngx_str_t *value, ngx_conf_enum_t *values, const char *what)
{
    u_char           list[128], *p;
    ngx_conf_enum_t *e;

    p = list;

    for (e = values; e->name.len; e++) {
        if (e->name.len == value->len
            && ngx_strcasecmp(e->name.data, value->data) == 0) {
            return NGX_CONF_OK;
        }

        p = ngx_slprintf(p, list + sizeof(list), "%s\"%V\"",
            e == values ? "" : (e[1].name.len ? ", " : " or "), &e->name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid %s \"%V\": use %*s", what,
        value, p - list, list);

    return NGX_CONF_ERROR;
}


/* automations_auth: a bitmask slot, with "off" only on its own */
static char *
ngx_http_automations_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_automations_loc_conf_t *alcf = conf;

    ngx_str_t *value;
    ngx_uint_t i;

    if (alcf->auth) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (cf->args->nelts > 2
            && ngx_strcasecmp(value[i].data, (u_char *) "off") == 0) {
            return "takes \"off\" only on its own";
        }

        /* ngx_conf_bitmask_t is an ngx_conf_enum_t: a name and a number */
        if (ngx_http_automations_conf_value(cf, &value[i],
                (ngx_conf_enum_t *) ngx_http_automations_auth_schemes, "scheme")
            != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return ngx_conf_set_bitmask_slot(cf, cmd, conf);
}


/* automations_auth_scope: an enum slot */
static char *
ngx_http_automations_auth_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t *value;

    value = cf->args->elts;

    if (ngx_http_automations_conf_value(
            cf, &value[1], ngx_http_automations_auth_scopes, "scope")
        != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_conf_set_enum_slot(cf, cmd, conf);
}


/* a string directive whose value is also NUL-terminated for C libraries */
static char *
ngx_http_automations_cstring(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char *p = conf;

    ngx_str_t *field, *value;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "must not be empty";
    }

    /* ngx_conf_read_token() NUL-terminates every argument */
    *field = value[1];

    return NGX_CONF_OK;
}


/* the request context, made on first use by any part of the module */
ngx_http_automations_ctx_t *
ngx_http_automations_get_ctx(ngx_http_request_t *r)
{
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_automations_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_automations_module);
    }

    return ctx;
}


/* the release in the error log at each start and reload */
static ngx_int_t
ngx_http_automations_init_module(ngx_cycle_t *cycle)
{
    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
        "automations module " AM_VERSION " (nginx " NGINX_VERSION ")");

    return NGX_OK;
}


static ngx_int_t
ngx_http_automations_init_process(ngx_cycle_t *cycle)
{
    ngx_http_automations_metrics_process(1);

    /* before the connections open: the subscriber listens for it */
    if (ngx_http_automations_cache_init_process(cycle) != NGX_OK
        || ngx_http_automations_redis_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_automations_wait_init_process(cycle);
}


static void
ngx_http_automations_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_automations_redis_exit_process(cycle);
    ngx_http_automations_cache_exit_process(cycle);
    ngx_http_automations_metrics_process(0);
}
