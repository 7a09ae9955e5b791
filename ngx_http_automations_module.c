/*
 * ngx_http_automations_module: an automations gateway inside nginx.
 *
 * This file only wires the module together: directives, configuration,
 * phase and content handler registration, worker start and exit. The work
 * is done in src/ (one concern per file).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"


static ngx_int_t ngx_http_automations_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_automations_postconfiguration(ngx_conf_t *cf);
static void     *ngx_http_automations_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_automations_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_automations_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_automations_merge_loc_conf(
    ngx_conf_t *cf, void *parent, void *child);
static char *ngx_http_automations_redis_addr(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_automations_endpoint(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_automations_auth(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_automations_auth_scope(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_automations_cstring(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_automations_init_process(ngx_cycle_t *cycle);
static void      ngx_http_automations_exit_process(ngx_cycle_t *cycle);


typedef struct {
    ngx_uint_t          handler;
    ngx_http_handler_pt content;
    const char         *example;
} ngx_http_automations_endpoint_t;


static ngx_http_automations_endpoint_t ngx_http_automations_api_endpoint = {
    NGX_HTTP_AUTOMATIONS_HANDLER_API, ngx_http_automations_api_handler,
    "/automations/v1/"};

static ngx_http_automations_endpoint_t ngx_http_automations_start_endpoint = {
    NGX_HTTP_AUTOMATIONS_HANDLER_START, ngx_http_automations_start_handler,
    "/api/start-automation/"};


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
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_str_slot,
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
        ngx_http_automations_auth, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},

    {ngx_string("automations_auth_scope"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
            | NGX_CONF_TAKE1,
        ngx_http_automations_auth_scope, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},

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
    NULL,                              /* init module */
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

    return amcf;
}


static char *
ngx_http_automations_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_automations_main_conf_t *amcf = conf;

    ngx_conf_init_value(amcf->redis_db, 0);
    ngx_conf_init_msec_value(amcf->connect_timeout, 1000);
    ngx_conf_init_msec_value(amcf->timeout, 1000);

    if (amcf->prefix.data == NULL) {
        ngx_str_set(&amcf->prefix, "am:");
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
     *     alcf->jwt_keys = NULL;
     *     alcf->jwt_issuer = { 0, NULL };
     *     alcf->jwt_audience = { 0, NULL };
     */

    alcf->auth = NGX_CONF_UNSET_UINT;
    alcf->scope = NGX_CONF_UNSET_UINT;
    alcf->project = NGX_CONF_UNSET_PTR;
    alcf->jwt_leeway = NGX_CONF_UNSET;
    alcf->jwt_max_size = NGX_CONF_UNSET_SIZE;
    alcf->max_body_size = NGX_CONF_UNSET_SIZE;
    alcf->run_wait = NGX_CONF_UNSET_MSEC;
    alcf->retention = NGX_CONF_UNSET;

    return alcf;
}


static char *
ngx_http_automations_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_automations_loc_conf_t *prev = parent;
    ngx_http_automations_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_automations_main_conf_t *amcf;

    if (conf->auth == NGX_CONF_UNSET_UINT) {
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

    if (conf->retention < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"automations_execution_retention\" must be at least 1s");
        return NGX_CONF_ERROR;
    }

    if (conf->handler != NGX_HTTP_AUTOMATIONS_HANDLER_NONE) {
        /* nginx enforces it while reading, also for chunked bodies */
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        clcf->client_max_body_size = conf->max_body_size;
    }

    /*
     * auth stays unset through the levels that do not set it; schemes is
     * what this level enforces: by default JWT (when keys are configured)
     * and API keys for automations_api, nothing elsewhere
     */

    if (conf->auth != NGX_CONF_UNSET_UINT) {
        conf->schemes = conf->auth;

        if ((conf->schemes & NGX_HTTP_AUTOMATIONS_AUTH_JWT)
            && conf->jwt_keys == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "\"automations_auth jwt\" needs "
                "\"automations_jwt_key\" or "
                "\"automations_jwt_jwks\"");
            return NGX_CONF_ERROR;
        }

    } else if (conf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_START) {
        conf->schemes =
            NGX_HTTP_AUTOMATIONS_AUTH_TOKEN | NGX_HTTP_AUTOMATIONS_AUTH_APIKEY;

        if (conf->jwt_keys) {
            conf->schemes |= NGX_HTTP_AUTOMATIONS_AUTH_JWT;
        }

    } else if (conf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_API) {
        conf->schemes = NGX_HTTP_AUTOMATIONS_AUTH_APIKEY;

        if (conf->jwt_keys) {
            conf->schemes |= NGX_HTTP_AUTOMATIONS_AUTH_JWT;
        }

    } else {
        conf->schemes = 0;
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_automations_module);

    if (amcf->redis.len == 0
        && (conf->handler != NGX_HTTP_AUTOMATIONS_HANDLER_NONE
            || (conf->schemes
                & (NGX_HTTP_AUTOMATIONS_AUTH_APIKEY
                    | NGX_HTTP_AUTOMATIONS_AUTH_TOKEN)))) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "this location needs Redis: set \"automations_redis\" in the "
            "http block");
        return NGX_CONF_ERROR;
    }

    if (conf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_START
        && conf->schemes == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "automations_start_api cannot run with \"automations_auth off\"");
        return NGX_CONF_ERROR;
    }

    if (conf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_API && conf->schemes == 0
        && conf->project == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "automations_api with \"automations_auth off\" "
            "needs \"automations_project\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_automations_redis_addr(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_automations_main_conf_t *amcf = conf;

    u_char         *colon;
    ngx_str_t      *value, host;
    ngx_int_t       port;
    ngx_uint_t      i;
    struct in6_addr in6;
    struct in_addr  in;

    if (amcf->redis.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    amcf->redis = value[1];

    if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        amcf->redis_unix.len = value[1].len - 5;
        amcf->redis_unix.data = ngx_pnalloc(cf->pool, value[1].len - 4);
        if (amcf->redis_unix.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(amcf->redis_unix.data, value[1].data + 5, value[1].len - 4);

        if (amcf->redis_unix.len == 0) {
            return "has an empty unix socket path";
        }

        return NGX_CONF_OK;
    }

    colon = NULL;

    for (i = value[1].len; i > 0; i--) {
        if (value[1].data[i - 1] == ':') {
            colon = &value[1].data[i - 1];
            break;
        }
    }

    if (colon == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"%V\" is not ADDRESS:PORT or unix:PATH", &value[1]);
        return NGX_CONF_ERROR;
    }

    host.data = value[1].data;
    host.len = colon - value[1].data;

    if (host.len > 2 && host.data[0] == '[' && host.data[host.len - 1] == ']') {
        host.data++;
        host.len -= 2;
    }

    port = ngx_atoi(colon + 1, value[1].data + value[1].len - colon - 1);
    if (port < 1 || port > 65535) {
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "invalid port in \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    amcf->redis_port = port;

    if (host.len == 9 && ngx_strncmp(host.data, "localhost", 9) == 0) {
        ngx_str_set(&host, "127.0.0.1");
    }

    amcf->redis_host.data = ngx_pnalloc(cf->pool, host.len + 1);
    if (amcf->redis_host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(amcf->redis_host.data, host.data, host.len + 1);
    amcf->redis_host.len = host.len;

    /* a host name would need a blocking resolver call in every worker */
    if (inet_pton(AF_INET, (char *) amcf->redis_host.data, &in) != 1
        && inet_pton(AF_INET6, (char *) amcf->redis_host.data, &in6) != 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"%V\" is not an IP address: host names are not "
            "resolved, use an IP address or unix:PATH",
            &host);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
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
    clcf->handler = ep->content;

    return NGX_CONF_OK;
}


static char *
ngx_http_automations_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_automations_loc_conf_t *alcf = conf;

    ngx_str_t *value;
    ngx_uint_t i;

    if (alcf->auth != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    alcf->auth = 0;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strcmp(value[i].data, "jwt") == 0) {
            alcf->auth |= NGX_HTTP_AUTOMATIONS_AUTH_JWT;

        } else if (ngx_strcmp(value[i].data, "apikey") == 0) {
            alcf->auth |= NGX_HTTP_AUTOMATIONS_AUTH_APIKEY;

        } else if (ngx_strcmp(value[i].data, "token") == 0) {
            alcf->auth |= NGX_HTTP_AUTOMATIONS_AUTH_TOKEN;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "invalid scheme \"%V\": use \"off\", or any of "
                "\"jwt\", \"apikey\", \"token\"",
                &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_automations_auth_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_automations_loc_conf_t *alcf = conf;

    ngx_str_t *value;

    if (alcf->scope != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "any") == 0) {
        alcf->scope = 0;
        return NGX_CONF_OK;
    }

    alcf->scope =
        ngx_http_automations_scopes_parse(value[1].data, value[1].len);

    if (alcf->scope == 0 || ngx_strcmp(value[1].data, "admin") == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "invalid scope \"%V\": use \"read\", \"write\", "
            "\"run\" or \"any\"",
            &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
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


static ngx_int_t
ngx_http_automations_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_automations_redis_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_automations_wait_init_process(cycle);
}


static void
ngx_http_automations_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_automations_redis_exit_process(cycle);
}
