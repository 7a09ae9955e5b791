/*
 * Automations CRUD, the Automations API (promptql-automations-api.txt)
 * under an automations_api location; the routes are rows of
 * src/ngx_http_automations_route.c.
 *
 *   GET    <location>          list
 *   POST   <location>          create
 *   GET    <location>NAME      get
 *   DELETE <location>NAME      delete
 *
 * Requests are checked here; every read and write of Redis is one script
 * of redis/ (automation_*.lua), whose { status, body } reply is sent as it
 * is, so that the rules of the data model live in one place.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_url.h"
#include "am_scripts.h"


/* a create request's fields, as they go to redis/automation_create.lua */
typedef struct {
    ngx_str_t name;
    ngx_str_t override;
    ngx_str_t code;
    ngx_str_t description;
    ngx_str_t runtime;
    ngx_str_t webhook;
    ngx_str_t timeout_ms;
    ngx_str_t network;
    ngx_str_t input_schema;
    ngx_str_t output_schema;
    ngx_str_t preload;
} ngx_http_automations_automation_t;


#define ngx_http_automations_stored(field)                                     \
    offsetof(ngx_http_automations_automation_t, field)

static ngx_http_automations_field_t ngx_http_automations_create_fields[] = {

    {ngx_string("automation_name"), NGX_HTTP_AUTOMATIONS_JSON_STRING,
        NGX_HTTP_AUTOMATIONS_FIELD_REQUIRED,
        ngx_http_automations_check_automation_name, "must be a string",
        ngx_http_automations_stored(name)},

    {ngx_string("override_existing"), NGX_HTTP_AUTOMATIONS_JSON_BOOLEAN, 0,
        NULL, "must be a boolean", ngx_http_automations_stored(override)},

    {ngx_string("code"), NGX_HTTP_AUTOMATIONS_JSON_STRING,
        NGX_HTTP_AUTOMATIONS_FIELD_REQUIRED | NGX_HTTP_AUTOMATIONS_FIELD_HASH,
        NULL, "must be a string", ngx_http_automations_stored(code)},

    {ngx_string("description"), NGX_HTTP_AUTOMATIONS_JSON_STRING,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_HASH, NULL,
        "must be a string", ngx_http_automations_stored(description)},

    {ngx_string("runtime"), NGX_HTTP_AUTOMATIONS_JSON_STRING,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_HASH,
        ngx_http_automations_check_runtime,
        NGX_HTTP_AUTOMATIONS_RUNTIME_EXPECTED,
        ngx_http_automations_stored(runtime)},

    {ngx_string("webhook"), NGX_HTTP_AUTOMATIONS_JSON_STRING,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_HASH,
        ngx_http_automations_check_url, AM_URL_RULE,
        ngx_http_automations_stored(webhook)},

    {ngx_string("timeout_ms"), NGX_HTTP_AUTOMATIONS_JSON_INTEGER,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_HASH,
        ngx_http_automations_check_timeout,
        NGX_HTTP_AUTOMATIONS_TIMEOUT_EXPECTED,
        ngx_http_automations_stored(timeout_ms)},

    {ngx_string("network"), NGX_HTTP_AUTOMATIONS_JSON_STRING,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_HASH,
        ngx_http_automations_check_network,
        NGX_HTTP_AUTOMATIONS_NETWORK_EXPECTED,
        ngx_http_automations_stored(network)},

    {ngx_string("input_schema"), NGX_HTTP_AUTOMATIONS_JSON_OBJECT,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_HASH,
        ngx_http_automations_check_schema, "must be an object",
        ngx_http_automations_stored(input_schema)},

    {ngx_string("output_schema"), NGX_HTTP_AUTOMATIONS_JSON_OBJECT,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_HASH,
        ngx_http_automations_check_schema, "must be an object",
        ngx_http_automations_stored(output_schema)},

    {ngx_string("preload"), NGX_HTTP_AUTOMATIONS_JSON_ARRAY,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_HASH,
        ngx_http_automations_check_preload,
        NGX_HTTP_AUTOMATIONS_PRELOAD_EXPECTED,
        ngx_http_automations_stored(preload)},

    {ngx_null_string, 0, 0, NULL, NULL, 0}};

/* the arguments before the fields of the automation hash, and its fields */
#define NGX_HTTP_AUTOMATIONS_CREATE_ARGS                                       \
    (AM_AUTOMATION_CREATE_ARG_FIELDS + 9 * 2)


/*
 * Calls an automation_*.lua script. They share the shape of their KEYS and
 * the first ARGV (src/am_scripts.h): the project hash, the project's key
 * base, then per script. The reply is the answer.
 */
static ngx_int_t
ngx_http_automations_automation_script(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, const char *script, ngx_uint_t nargs,
    ngx_str_t *args)
{
    ngx_str_t keys[AM_AUTOMATION_CREATE_NKEYS];

    if (ngx_http_automations_project_key(r, &ctx->project, ":project",
            &keys[AM_AUTOMATION_CREATE_KEY_PROJECT])
            != NGX_OK
        || ngx_http_automations_project_key(
               r, &ctx->project, ":", &args[AM_AUTOMATION_CREATE_ARG_BASE])
               != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_automations_redis_script(r,
        ngx_http_automations_script_reply, script, AM_AUTOMATION_CREATE_NKEYS,
        keys, nargs, args);
}


/* a request without a body: list, get (with the name), delete (too) */
static ngx_int_t
ngx_http_automations_automation_call(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, const char *script, ngx_uint_t nargs)
{
    ngx_int_t rc;
    ngx_str_t args[AM_AUTOMATION_GET_NARGS];

    rc = ngx_http_automations_project_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    args[AM_AUTOMATION_GET_ARG_NAME] = ctx->name;

    if (ngx_http_automations_automation_script(r, ctx, script, nargs, args)
        != NGX_OK) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }

    r->main->count++;

    return NGX_DONE;
}


ngx_int_t
ngx_http_automations_automation_list(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    return ngx_http_automations_automation_call(
        r, ctx, AM_SCRIPT_AUTOMATION_LIST, AM_AUTOMATION_LIST_NARGS);
}


ngx_int_t
ngx_http_automations_automation_get(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    return ngx_http_automations_automation_call(
        r, ctx, AM_SCRIPT_AUTOMATION_GET, AM_AUTOMATION_GET_NARGS);
}


ngx_int_t
ngx_http_automations_automation_delete(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    return ngx_http_automations_automation_call(
        r, ctx, AM_SCRIPT_AUTOMATION_DELETE, AM_AUTOMATION_DELETE_NARGS);
}


/*
 * The create script's ARGV after the key base: name, override, then the
 * field/value pairs of the hash (FIELD_HASH rows); runtime defaults to
 * python.
 */
static ngx_uint_t
ngx_http_automations_create_args(
    ngx_http_automations_automation_t *a, ngx_str_t *args)
{
    ngx_str_t                          *value;
    ngx_uint_t                          n;
    const ngx_http_automations_field_t *f;

    if (a->override.data == NULL) {
        ngx_str_set(&a->override, "0");
    }

    if (a->runtime.data == NULL) {
        ngx_str_set(&a->runtime, "python");
    }

    args[AM_AUTOMATION_CREATE_ARG_NAME] = a->name;
    args[AM_AUTOMATION_CREATE_ARG_OVERRIDE] = a->override;
    n = AM_AUTOMATION_CREATE_ARG_FIELDS;

    for (f = ngx_http_automations_create_fields; f->name.len; f++) {
        value = (ngx_str_t *) ((u_char *) a + f->offset);

        if ((f->flags & NGX_HTTP_AUTOMATIONS_FIELD_HASH) && value->data) {
            args[n++] = f->name;
            args[n++] = *value;
        }
    }

    return n;
}


/* the body of a create request has been read */
static void
ngx_http_automations_create_body(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_str_t                         body, detail;
    ngx_str_t                         args[NGX_HTTP_AUTOMATIONS_CREATE_ARGS];
    ngx_uint_t                        nargs;
    ngx_http_automations_ctx_t       *ctx;
    ngx_http_automations_automation_t a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (ngx_http_automations_request_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (body.len == 0) {
        ngx_http_automations_finish(
            r, 422, "The request body is empty: a JSON object is expected.");
        return;
    }

    ngx_memzero(&a, sizeof(ngx_http_automations_automation_t));

    rc = ngx_http_automations_fields(
        r, &body, ngx_http_automations_create_fields, &a, &detail);

    if (rc == NGX_DECLINED) {
        ngx_http_automations_finish(r, 422, "%V", &detail);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    nargs = ngx_http_automations_create_args(&a, args);

    /* only the built-in python runtime runs warm (src/worker/warm.h) */
    if (a.preload.data != NULL
        && (a.runtime.len != sizeof("python") - 1
            || ngx_strncmp(a.runtime.data, "python", a.runtime.len) != 0)) {
        ngx_http_automations_finish(
            r, 422, "preload goes with the python runtime only.");
        return;
    }

    if (ngx_http_automations_automation_script(
            r, ctx, AM_SCRIPT_AUTOMATION_CREATE, nargs, args)
        != NGX_OK) {
        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }
}


ngx_int_t
ngx_http_automations_automation_create(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_int_t rc;

    rc = ngx_http_automations_project_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_automations_create_body);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}
