/*
 * Runs, under both reference APIs, and the status of their executions:
 *
 *   POST <start location>PROJECT/NAME                 start, always async
 *   GET  <start location>PROJECT/NAME/executions/ID
 *   POST <api location>NAME/run                       sync, or async
 *   GET  <api location>NAME/executions/ID
 *
 * A run is one call of redis/execution_enqueue.lua, which checks, records
 * the execution and adds its stream entry atomically; a worker does the
 * rest. The execution id is made here rather than in the script so that a
 * synchronous run can wait for it (src/ngx_http_automations_wait.c) before
 * the entry exists: a run finishing very fast is not missed. The two APIs
 * differ in their bodies (a table of fields each), in how they refuse a
 * request (400 and "does not exist" for the start API, as its reference
 * does; 422 and 404 for the Automations API) and in their 202 body.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_url.h"
#include "am_crypto.h"
#include "am_execution.h"
#include "am_name.h"
#include "am_scripts.h"


/* what a run request carries, as the enqueue script's arguments */
typedef struct {
    ngx_str_t seed;
    ngx_str_t input;
    ngx_str_t webhook;
    ngx_str_t webhook_header;
    ngx_str_t ddn_headers;
} ngx_http_automations_run_t;


/*
 * An enqueue under way: its script's keys and arguments, kept for when the
 * script answers with an input_schema this process had not compiled yet
 * (src/ngx_http_automations_schema.c) and the call is made again.
 */
typedef struct {
    ngx_str_t  keys[AM_EXECUTION_ENQUEUE_NKEYS];
    ngx_str_t  args[AM_EXECUTION_ENQUEUE_NARGS];
    ngx_str_t  refused; /* why the input does not match, or empty */
    ngx_uint_t schemas; /* answers with a schema so far */
} ngx_http_automations_enqueue_t;

/* a schema changed this often during one enqueue: Redis is answered 503 */
#define NGX_HTTP_AUTOMATIONS_ENQUEUE_SCHEMAS 3


#define ngx_http_automations_stored(field)                                     \
    offsetof(ngx_http_automations_run_t, field)

/* the start API's body */
static ngx_http_automations_field_t ngx_http_automations_start_fields[] = {

    {ngx_string("webhook"), NGX_HTTP_AUTOMATIONS_JSON_STRING,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_EMPTY,
        ngx_http_automations_check_url, AM_URL_RULE,
        ngx_http_automations_stored(webhook)},

    {ngx_string("webhook_header"), NGX_HTTP_AUTOMATIONS_JSON_OBJECT,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_EMPTY,
        ngx_http_automations_check_webhook_headers,
        "must be an object of strings",
        ngx_http_automations_stored(webhook_header)},

    {ngx_string("seed"), NGX_HTTP_AUTOMATIONS_JSON_OBJECT,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL, NULL, "must be a JSON object",
        ngx_http_automations_stored(seed)},

    {ngx_null_string, 0, 0, NULL, NULL, 0}};

/* the run API's body */
static ngx_http_automations_field_t ngx_http_automations_run_fields[] = {

    {ngx_string("ddn_headers"), NGX_HTTP_AUTOMATIONS_JSON_OBJECT,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL | NGX_HTTP_AUTOMATIONS_FIELD_EMPTY,
        ngx_http_automations_check_headers, "must be an object of strings",
        ngx_http_automations_stored(ddn_headers)},

    {ngx_string("input"), NGX_HTTP_AUTOMATIONS_JSON_ARRAY,
        NGX_HTTP_AUTOMATIONS_FIELD_NULL, ngx_http_automations_check_objects,
        "must be an array of objects", ngx_http_automations_stored(input)},

    {ngx_null_string, 0, 0, NULL, NULL, 0}};


static void ngx_http_automations_enqueue_schema(
    ngx_http_request_t *r, redisReply *reply);


static ngx_flag_t
ngx_http_automations_is_start(ngx_http_automations_ctx_t *ctx)
{
    return ctx->route->api == NGX_HTTP_AUTOMATIONS_HANDLER_START;
}


/* how each API refuses a request it cannot take */
static ngx_uint_t
ngx_http_automations_refused(ngx_http_automations_ctx_t *ctx)
{
    return ngx_http_automations_is_start(ctx) ? NGX_HTTP_BAD_REQUEST : 422;
}


/* the path of an execution's status, under the location of the request */
static ngx_int_t
ngx_http_automations_status_url(
    ngx_http_request_t *r, ngx_str_t *id, ngx_str_t *url)
{
    const char                 *slash;
    ngx_http_automations_ctx_t *ctx;
    ngx_http_core_loc_conf_t   *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    url->len = clcf->name.len + 1 + ctx->project.len + 1 + ctx->name.len
               + sizeof("/executions/") + id->len;
    url->data = ngx_pnalloc(r->pool, url->len);
    if (url->data == NULL) {
        return NGX_ERROR;
    }

    slash = clcf->name.data[clcf->name.len - 1] == '/' ? "" : "/";

    if (ngx_http_automations_is_start(ctx)) {
        url->len = ngx_sprintf(url->data, "%V%s%V/%V/executions/%V",
                       &clcf->name, slash, &ctx->project, &ctx->name, id)
                   - url->data;

    } else {
        url->len = ngx_sprintf(url->data, "%V%s%V/executions/%V", &clcf->name,
                       slash, &ctx->name, id)
                   - url->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_automations_set_location(ngx_http_request_t *r, ngx_str_t *url)
{
    ngx_table_elt_t *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Location");
    h->value = *url;
    r->headers_out.location = h;

    return NGX_OK;
}


/* 202 with the execution's id and status URL: the run goes on */
static ngx_int_t
ngx_http_automations_send_accepted(
    ngx_http_request_t *r, ngx_str_t *id, ngx_str_t *status)
{
    u_char                     *body;
    size_t                      len;
    ngx_str_t                   url;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (ngx_http_automations_status_url(r, id, &url) != NGX_OK
        || ngx_http_automations_set_location(r, &url) != NGX_OK) {
        return NGX_ERROR;
    }

    len = sizeof("{\"status\":\"success\",\"message\":\"Automation '' started "
                 "successfully.\",\"execution_id\":\"\",\"status_url\":\"\"}")
          + ctx->name.len + id->len + url.len + status->len;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_automations_is_start(ctx)) {
        /* exactly the reference's body */
        len = ngx_sprintf(body,
                  "{\"status\":\"success\",\"message\":\"Automation '%V' "
                  "started successfully.\",\"execution_id\":\"%V\"}",
                  &ctx->name, id)
              - body;

    } else {
        len = ngx_sprintf(body,
                  "{\"execution_id\":\"%V\",\"status\":\"%V\","
                  "\"status_url\":\"%V\"}",
                  id, status, &url)
              - body;
    }

    return ngx_http_automations_send(r, NGX_HTTP_ACCEPTED, body, len);
}


/* the answer of a synchronous run, from execution_result.lua or none */
void
ngx_http_automations_run_finish(ngx_http_request_t *r, redisReply *reply)
{
    ngx_int_t                   rc;
    ngx_str_t                   body, status;
    ngx_uint_t                  code;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    ngx_http_automations_metrics_wait(r);

    rc = reply ? ngx_http_automations_script_result(r, reply, &code, &body)
               : NGX_DECLINED;

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc == NGX_DECLINED || code == NGX_HTTP_ACCEPTED) {
        /* unfinished, or unknown while Redis is away: the run goes on */
        if (rc == NGX_DECLINED) {
            ngx_str_set(&status, "queued");
        } else {
            status = body;
        }

        ngx_http_finalize_request(r,
            ngx_http_automations_send_accepted(r, &ctx->execution_id, &status));
        return;
    }

    ngx_http_finalize_request(
        r, ngx_http_automations_send(r, code, body.data, body.len));
}


/*
 * A synchronous run answered from its completion message, which carried
 * what execution_result.lua would answer; body is in the request's pool.
 */
void
ngx_http_automations_run_answer(
    ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *body)
{
    ngx_http_automations_metrics_wait(r);

    ngx_http_finalize_request(
        r, ngx_http_automations_send(r, status, body->data, body->len));
}


/*
 * The enqueue script's refusals, said as each API says them. NGX_OK when
 * word is not one; else the request has been answered.
 */
static ngx_int_t
ngx_http_automations_enqueue_refused(ngx_http_request_t *r, ngx_str_t *word)
{
    ngx_flag_t                  start;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);
    start = ngx_http_automations_is_start(ctx);

    if (word->len == 10 && ngx_strncmp(word->data, "no_project", 10) == 0) {
        if (start) {
            ngx_http_finalize_request(
                r, ngx_http_automations_send_message(r, NGX_HTTP_FORBIDDEN,
                       "This Project does not exist. consult API"));
        } else {
            ngx_http_automations_finish(
                r, NGX_HTTP_NOT_FOUND, "Project not found");
        }

        return NGX_DONE;
    }

    if (word->len == 13 && ngx_strncmp(word->data, "no_automation", 13) == 0) {
        if (start) {
            ngx_http_finalize_request(
                r, ngx_http_automations_send_message(r, NGX_HTTP_FORBIDDEN,
                       "This Automation does not exist. consult API."));
        } else {
            ngx_http_automations_finish(
                r, NGX_HTTP_NOT_FOUND, "Automation '%V' not found", &ctx->name);
        }

        return NGX_DONE;
    }

    if (word->len == 8 && ngx_strncmp(word->data, "conflict", 8) == 0) {
        ngx_http_automations_finish(
            r, 422, "This Idempotency-Key was used with a different request.");
        return NGX_DONE;
    }

    return NGX_OK;
}


/*
 * The execution is queued: answer 202 at once, or go on waiting for it,
 * which may be an earlier execution with the same Idempotency-Key.
 */
static void
ngx_http_automations_enqueued(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_str_t                   status;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (ctx->waiter == NULL) {
        ngx_str_set(&status, "queued");
        ngx_http_finalize_request(
            r, ngx_http_automations_send_accepted(r, id, &status));
        return;
    }

    if (id->len != ctx->execution_id.len
        || ngx_strncmp(id->data, ctx->execution_id.data, id->len) != 0) {
        ctx->execution_id = *id;
        ngx_http_automations_wait_rekey(r, id);
    }
}


/*
 * The script was sent but its answer was lost: Redis may have queued the
 * run. The 503 names the execution the script would have created, so that
 * the client can look at it instead of starting a duplicate.
 */
static void
ngx_http_automations_enqueue_unknown(ngx_http_request_t *r)
{
    u_char                     *body;
    size_t                      len;
    ngx_str_t                   url;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (ngx_http_automations_status_url(r, &ctx->execution_id, &url)
        != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    len = sizeof("{\"detail\":\"" NGX_HTTP_AUTOMATIONS_UNAVAILABLE
                 " The run may have been queued: look at status_url before "
                 "starting it again.\",\"execution_id\":\"\","
                 "\"status_url\":\"\"}")
          + ctx->execution_id.len + url.len;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    len = ngx_sprintf(body,
              "{\"detail\":\"" NGX_HTTP_AUTOMATIONS_UNAVAILABLE
              " The run may have been queued: look at status_url before "
              "starting it again.\",\"execution_id\":\"%V\","
              "\"status_url\":\"%V\"}",
              &ctx->execution_id, &url)
          - body;

    ngx_http_finalize_request(r,
        ngx_http_automations_send(r, NGX_HTTP_SERVICE_UNAVAILABLE, body, len));
}


static void
ngx_http_automations_enqueue_reply(ngx_http_request_t *r, redisReply *reply)
{
    ngx_str_t                       word, id;
    ngx_http_automations_ctx_t     *ctx;
    ngx_http_automations_enqueue_t *eq;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        if (reply) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                "automations: redis error: %s", reply->str);
        }

        ngx_http_automations_enqueue_unknown(r);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[AM_EXECUTION_ENQUEUE_REPLY_WHAT]->type
               != REDIS_REPLY_STRING) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
            "automations: unexpected enqueue reply: wrong shape");
        ngx_http_automations_finish(
            r, NGX_HTTP_INTERNAL_SERVER_ERROR, "Internal error.");
        return;
    }

    word.data = (u_char *) reply->element[AM_EXECUTION_ENQUEUE_REPLY_WHAT]->str;
    word.len = reply->element[AM_EXECUTION_ENQUEUE_REPLY_WHAT]->len;

    if (ngx_http_automations_enqueue_refused(r, &word) != NGX_OK) {
        return;
    }

    if (word.len == 6 && ngx_strncmp(word.data, "schema", 6) == 0) {
        ngx_http_automations_enqueue_schema(r, reply);
        return;
    }

    if (word.len == 7 && ngx_strncmp(word.data, "invalid", 7) == 0
        && ctx->enqueue) {
        eq = ctx->enqueue;
        ngx_http_automations_finish(r, 422, "%V", &eq->refused);
        return;
    }

    if (reply->elements != AM_EXECUTION_ENQUEUE_REPLY_N
        || ngx_http_automations_reply_str(
               r, reply->element[AM_EXECUTION_ENQUEUE_REPLY_ID], &id)
               != NGX_OK) {
        ngx_http_automations_finish(
            r, NGX_HTTP_INTERNAL_SERVER_ERROR, "Internal error.");
        return;
    }

    ngx_http_automations_enqueued(r, &id);
}


/* "Prefer: respond-async" (RFC 7240) asks for 202 at once */
static ngx_flag_t
ngx_http_automations_prefer_async(ngx_http_request_t *r)
{
    ngx_table_elt_t *h;

    h = ngx_http_automations_header(r, "Prefer");

    return h != NULL
           && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                  (u_char *) "respond-async", sizeof("respond-async") - 2)
                  != NULL;
}


/*
 * The headers a run may carry: Idempotency-Key, whose digest goes to the
 * script, and x-ddn-build-id. NGX_OK, or the request has been answered.
 */
static ngx_int_t
ngx_http_automations_run_headers(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx, ngx_str_t *args)
{
    ngx_table_elt_t *idem, *build;

    idem = ngx_http_automations_header(r, "Idempotency-Key");
    build = ngx_http_automations_header(r, "x-ddn-build-id");

    if (idem && !ngx_http_automations_header_value_valid(&idem->value, 255)) {
        ngx_http_automations_finish(r, ngx_http_automations_refused(ctx),
            "Idempotency-Key must be 1 to 255 printable characters.");
        return NGX_DONE;
    }

    if (build && !ngx_http_automations_header_value_valid(&build->value, 128)) {
        ngx_http_automations_finish(r, ngx_http_automations_refused(ctx),
            "x-ddn-build-id must be 1 to 128 printable characters.");
        return NGX_DONE;
    }

    if (idem) {
        args[AM_EXECUTION_ENQUEUE_ARG_IDEMPOTENCY].data =
            ngx_pnalloc(r->pool, AM_SHA256_HEX_LEN + 1);
        if (args[AM_EXECUTION_ENQUEUE_ARG_IDEMPOTENCY].data == NULL) {
            return NGX_ERROR;
        }

        am_sha256_hex(idem->value.data, idem->value.len,
            (char *) args[AM_EXECUTION_ENQUEUE_ARG_IDEMPOTENCY].data);
        args[AM_EXECUTION_ENQUEUE_ARG_IDEMPOTENCY].len = AM_SHA256_HEX_LEN;
    }

    if (build) {
        args[AM_EXECUTION_ENQUEUE_ARG_BUILD_ID] = build->value;
    }

    return NGX_OK;
}


/* a new execution id (src/am_execution.h) */
static ngx_int_t
ngx_http_automations_execution_id(ngx_http_request_t *r, ngx_str_t *id)
{
    id->data = ngx_pnalloc(r->pool, AM_EXECUTION_ID_LEN + 1);
    if (id->data == NULL || am_execution_id_new((char *) id->data) != 0) {
        return NGX_ERROR;
    }

    id->len = AM_EXECUTION_ID_LEN;

    return NGX_OK;
}


/*
 * The digest of what was asked, automation name and body: the same
 * Idempotency-Key must come with the same request.
 */
static ngx_int_t
ngx_http_automations_request_digest(
    ngx_http_request_t *r, ngx_str_t *name, ngx_str_t *body, ngx_str_t *digest)
{
    u_char *buf;

    buf = ngx_pnalloc(r->pool, name->len + 1 + body->len);
    digest->data = ngx_pnalloc(r->pool, AM_SHA256_HEX_LEN + 1);
    if (buf == NULL || digest->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(buf, name->data, name->len);
    buf[name->len] = '\n';
    if (body->len) {
        ngx_memcpy(buf + name->len + 1, body->data, body->len);
    }

    am_sha256_hex(buf, name->len + 1 + body->len, (char *) digest->data);
    digest->len = AM_SHA256_HEX_LEN;

    return NGX_OK;
}


/* the script's keys and the arguments that do not come from the client */
static ngx_int_t
ngx_http_automations_enqueue_args(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, ngx_str_t *keys, ngx_str_t *args)
{
    ngx_str_t                       *retention;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    if (ngx_http_automations_project_key(r, &ctx->project, ":project",
            &keys[AM_EXECUTION_ENQUEUE_KEY_PROJECT])
            != NGX_OK
        || ngx_http_automations_stream_key(
               r, &keys[AM_EXECUTION_ENQUEUE_KEY_STREAM])
               != NGX_OK
        || ngx_http_automations_project_key(
               r, &ctx->project, ":", &args[AM_EXECUTION_ENQUEUE_ARG_BASE])
               != NGX_OK) {
        return NGX_ERROR;
    }

    args[AM_EXECUTION_ENQUEUE_ARG_PROJECT] = ctx->project;
    args[AM_EXECUTION_ENQUEUE_ARG_AUTOMATION] = ctx->name;
    args[AM_EXECUTION_ENQUEUE_ARG_ID] = ctx->execution_id;

    if (ngx_http_automations_is_start(ctx)) {
        ngx_str_set(&args[AM_EXECUTION_ENQUEUE_ARG_SOURCE], "start");
    } else {
        ngx_str_set(&args[AM_EXECUTION_ENQUEUE_ARG_SOURCE], "run");
    }

    retention = &args[AM_EXECUTION_ENQUEUE_ARG_RETENTION];
    retention->data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (retention->data == NULL) {
        return NGX_ERROR;
    }

    retention->len =
        ngx_sprintf(retention->data, "%T", alcf->retention) - retention->data;

    return NGX_OK;
}


/*
 * Validates the run's input with the input_schema cached for its
 * automation, then calls the enqueue script with the SHA-1 of that schema,
 * marked when the input does not match it: the script then refuses the run
 * if that schema is still the automation's, or sends the new one.
 * NGX_OK; NGX_DONE when the request has been answered; NGX_ERROR.
 */
static ngx_int_t
ngx_http_automations_enqueue_send(ngx_http_request_t *r)
{
    u_char                         *p;
    ngx_int_t                       rc;
    ngx_str_t                      *sha1;
    ngx_http_automations_ctx_t     *ctx;
    ngx_http_automations_enqueue_t *eq;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);
    eq = ctx->enqueue;

    sha1 = &eq->args[AM_EXECUTION_ENQUEUE_ARG_INPUT_SCHEMA_SHA1];

    if (ngx_http_automations_is_start(ctx)) {
        rc = ngx_http_automations_schema_check(r, &ctx->project, &ctx->name,
            &eq->args[AM_EXECUTION_ENQUEUE_ARG_SEED], 0, sha1, &eq->refused);

    } else {
        rc = ngx_http_automations_schema_check(r, &ctx->project, &ctx->name,
            &eq->args[AM_EXECUTION_ENQUEUE_ARG_INPUT], 1, sha1, &eq->refused);
    }

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        p = ngx_pnalloc(r->pool, 1 + sha1->len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        *p = '!';
        ngx_memcpy(p + 1, sha1->data, sha1->len);
        sha1->data = p;
        sha1->len++;

    } else {
        ngx_str_null(&eq->refused);
    }

    if (ngx_http_automations_redis_script(r, ngx_http_automations_enqueue_reply,
            AM_SCRIPT_EXECUTION_ENQUEUE, AM_EXECUTION_ENQUEUE_NKEYS, eq->keys,
            AM_EXECUTION_ENQUEUE_NARGS, eq->args)
        != NGX_OK) {
        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
        return NGX_DONE;
    }

    return NGX_OK;
}


/*
 * The enqueue script answered with the automation's input_schema, which
 * this process had not compiled: compile it, validate, send again.
 */
static void
ngx_http_automations_enqueue_schema(ngx_http_request_t *r, redisReply *reply)
{
    ngx_int_t                       rc;
    ngx_str_t                       sha1, text, detail;
    ngx_http_automations_ctx_t     *ctx;
    ngx_http_automations_enqueue_t *eq;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);
    eq = ctx->enqueue;

    if (eq == NULL || reply->elements != AM_EXECUTION_ENQUEUE_REPLY_SCHEMA_N
        || ngx_http_automations_reply_str(
               r, reply->element[AM_EXECUTION_ENQUEUE_REPLY_SCHEMA_SHA1], &sha1)
               != NGX_OK
        || ngx_http_automations_reply_str(
               r, reply->element[AM_EXECUTION_ENQUEUE_REPLY_SCHEMA], &text)
               != NGX_OK) {
        ngx_http_automations_finish(
            r, NGX_HTTP_INTERNAL_SERVER_ERROR, "Internal error.");
        return;
    }

    if (++eq->schemas == NGX_HTTP_AUTOMATIONS_ENQUEUE_SCHEMAS) {
        /* the schema changes faster than it can be checked */
        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
        return;
    }

    rc = ngx_http_automations_schema_learn(
        r, &ctx->project, &ctx->name, &sha1, &text, &detail);

    if (rc == NGX_DECLINED) {
        ngx_http_automations_finish(r, 422, "%V", &detail);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_automations_enqueue_send(r);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


/* Enqueues the run of a request whose body is checked into run. */
static void
ngx_http_automations_enqueue(
    ngx_http_request_t *r, ngx_http_automations_run_t *run, ngx_str_t *body)
{
    ngx_int_t                       rc;
    ngx_str_t                      *args;
    ngx_http_automations_ctx_t     *ctx;
    ngx_http_automations_enqueue_t *eq;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    eq = ngx_pcalloc(r->pool, sizeof(ngx_http_automations_enqueue_t));
    if (eq == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->enqueue = eq;
    args = eq->args;

    rc = ngx_http_automations_run_headers(r, ctx, args);
    if (rc == NGX_DONE) {
        return;
    }

    if (rc != NGX_OK
        || ngx_http_automations_execution_id(r, &ctx->execution_id) != NGX_OK
        || ngx_http_automations_request_digest(
               r, &ctx->name, body, &args[AM_EXECUTION_ENQUEUE_ARG_DIGEST])
               != NGX_OK
        || ngx_http_automations_enqueue_args(r, ctx, eq->keys, args)
               != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    args[AM_EXECUTION_ENQUEUE_ARG_SEED] = run->seed;
    args[AM_EXECUTION_ENQUEUE_ARG_INPUT] = run->input;
    args[AM_EXECUTION_ENQUEUE_ARG_WEBHOOK] = run->webhook;
    args[AM_EXECUTION_ENQUEUE_ARG_WEBHOOK_HEADERS] = run->webhook_header;
    args[AM_EXECUTION_ENQUEUE_ARG_DDN_HEADERS] = run->ddn_headers;

    /* the waiter exists before the entry, so no completion is missed */
    if (!ngx_http_automations_is_start(ctx)
        && !ngx_http_automations_prefer_async(r)
        && ngx_http_automations_wait(r, &ctx->execution_id) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* its completion is published for this process only */
    if (ctx->waiter != NULL) {
        args[AM_EXECUTION_ENQUEUE_ARG_WAITER] =
            *ngx_http_automations_redis_waiter_channel();
    }

    if (ngx_http_automations_enqueue_send(r) == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


/* the body of a start or run request has been read */
static void
ngx_http_automations_run_body(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_str_t                           body, detail;
    ngx_http_automations_run_t          run;
    ngx_http_automations_ctx_t         *ctx;
    const ngx_http_automations_field_t *fields;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    ngx_memzero(&run, sizeof(ngx_http_automations_run_t));

    if (ngx_http_automations_request_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (body.len) {
        fields = ngx_http_automations_is_start(ctx)
                     ? ngx_http_automations_start_fields
                     : ngx_http_automations_run_fields;

        rc = ngx_http_automations_fields(r, &body, fields, &run, &detail);

        if (rc == NGX_DECLINED) {
            ngx_http_automations_finish(
                r, ngx_http_automations_refused(ctx), "%V", &detail);
            return;
        }

        if (rc != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_http_automations_enqueue(r, &run, &body);
}


/* POST <api location>NAME/run, and a start once its names are checked */
ngx_int_t
ngx_http_automations_run(ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_int_t rc;

    rc = ngx_http_automations_project_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_automations_run_body);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* POST <start location>PROJECT/NAME: absent is what bad names are */
ngx_int_t
ngx_http_automations_start(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    if (!am_project_name_valid((char *) ctx->project.data, ctx->project.len)) {
        return ngx_http_automations_send_message(
            r, NGX_HTTP_FORBIDDEN, "This Project does not exist. consult API");
    }

    if (!am_automation_name_valid((char *) ctx->name.data, ctx->name.len)) {
        return ngx_http_automations_send_message(r, NGX_HTTP_FORBIDDEN,
            "This Automation does not exist. consult API.");
    }

    return ngx_http_automations_run(r, ctx);
}


/* GET <api location>NAME/executions/ID */
ngx_int_t
ngx_http_automations_execution(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_int_t rc;
    ngx_str_t keys[AM_EXECUTION_GET_NKEYS], args[AM_EXECUTION_GET_NARGS];

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_automations_project_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    args[AM_EXECUTION_GET_ARG_AUTOMATION] = ctx->name;

    if (ngx_http_automations_execution_key(r, &ctx->project, &ctx->execution_id,
            &keys[AM_EXECUTION_GET_KEY_EXECUTION])
            != NGX_OK
        || ngx_http_automations_redis_script(r,
               ngx_http_automations_script_reply, AM_SCRIPT_EXECUTION_GET,
               AM_EXECUTION_GET_NKEYS, keys, AM_EXECUTION_GET_NARGS, args)
               != NGX_OK) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }

    r->main->count++;

    return NGX_DONE;
}


/* GET <start location>PROJECT/NAME/executions/ID */
ngx_int_t
ngx_http_automations_start_execution(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    if (!am_project_name_valid((char *) ctx->project.data, ctx->project.len)
        || !am_automation_name_valid((char *) ctx->name.data, ctx->name.len)) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_NOT_FOUND, "Execution not found");
    }

    return ngx_http_automations_execution(r, ctx);
}
