/*
 * Runs, under both reference APIs:
 *
 *   POST <start location>PROJECT/AUTOMATION             start, always async
 *   GET  <start location>PROJECT/AUTOMATION/executions/ID
 *   POST <api location>AUTOMATION/run                     sync, or async
 *   GET  <api location>AUTOMATION/executions/ID
 *
 * A run is one call of redis/execution_enqueue.lua, which checks, records
 * and queues it atomically; the worker does the rest. A synchronous run
 * waits for its completion in src/ngx_http_automations_wait.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_crypto.h"
#include "am_json.h"
#include "am_name.h"


/* what a run request carries, as the enqueue script's arguments */
typedef struct {
    ngx_str_t seed;
    ngx_str_t input;
    ngx_str_t webhook;
    ngx_str_t webhook_header;
    ngx_str_t ddn_headers;
} ngx_http_automations_run_t;


static void ngx_http_automations_run_body(ngx_http_request_t *r);


/* Parses <location>PROJECT/AUTOMATION[/executions/ID]; returns the scope. */
ngx_uint_t
ngx_http_automations_start_route(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_str_t  seg[4];
    ngx_uint_t n;

    n = ngx_http_automations_path_split(r, seg);

    ctx->route = NGX_HTTP_AUTOMATIONS_ROUTE_NOT_FOUND;

    if (n == 2) {
        ctx->route = NGX_HTTP_AUTOMATIONS_ROUTE_START;

    } else if (n == 4 && seg[2].len == 10
               && ngx_strncmp(seg[2].data, "executions", 10) == 0
               && ngx_http_automations_execution_id_valid(&seg[3])) {
        ctx->route = NGX_HTTP_AUTOMATIONS_ROUTE_EXECUTION;
        ctx->execution_id = seg[3];

    } else {
        return 0;
    }

    /* names that cannot exist are answered as absent, as the API does */
    ctx->project = seg[0];
    ctx->name = seg[1];

    return NGX_HTTP_AUTOMATIONS_SCOPE_RUN;
}


static ngx_flag_t
ngx_http_automations_run_is_start(ngx_http_automations_ctx_t *ctx)
{
    return ctx->route == NGX_HTTP_AUTOMATIONS_ROUTE_START;
}


/* the path of an execution's status, under the location of the request */
static ngx_int_t
ngx_http_automations_status_url(
    ngx_http_request_t *r, ngx_str_t *id, ngx_str_t *url)
{
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

    if (ngx_http_automations_run_is_start(ctx)) {
        url->len =
            ngx_sprintf(url->data, "%V%s%V/%V/executions/%V", &clcf->name,
                clcf->name.data[clcf->name.len - 1] == '/' ? "" : "/",
                &ctx->project, &ctx->name, id)
            - url->data;

    } else {
        url->len = ngx_sprintf(url->data, "%V%s%V/executions/%V", &clcf->name,
                       clcf->name.data[clcf->name.len - 1] == '/' ? "" : "/",
                       &ctx->name, id)
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

    if (ngx_http_automations_run_is_start(ctx)) {
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


static void
ngx_http_automations_enqueue_reply(ngx_http_request_t *r, redisReply *reply)
{
    ngx_str_t                   word, id, status;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        if (reply) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                "automations: redis error: %s", reply->str);
        }

        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
            "automations: unexpected enqueue reply: %s",
            reply->type == REDIS_REPLY_ERROR ? reply->str : "wrong shape");
        ngx_http_automations_finish(
            r, NGX_HTTP_INTERNAL_SERVER_ERROR, "Internal error.");
        return;
    }

    word.data = (u_char *) reply->element[0]->str;
    word.len = reply->element[0]->len;

    if (word.len == 10 && ngx_strncmp(word.data, "no_project", 10) == 0) {
        if (ngx_http_automations_run_is_start(ctx)) {
            ngx_http_finalize_request(
                r, ngx_http_automations_send_message(r, NGX_HTTP_FORBIDDEN,
                       "This Project does not exist. consult API"));
            return;
        }

        ngx_http_automations_finish(r, NGX_HTTP_NOT_FOUND, "Project not found");
        return;
    }

    if (word.len == 13 && ngx_strncmp(word.data, "no_automation", 13) == 0) {
        if (ngx_http_automations_run_is_start(ctx)) {
            ngx_http_finalize_request(
                r, ngx_http_automations_send_message(r, NGX_HTTP_FORBIDDEN,
                       "This Automation does not exist. consult API."));
            return;
        }

        ngx_http_automations_finish(
            r, NGX_HTTP_NOT_FOUND, "Automation '%V' not found", &ctx->name);
        return;
    }

    if (word.len == 8 && ngx_strncmp(word.data, "conflict", 8) == 0) {
        ngx_http_automations_finish(
            r, 422, "This Idempotency-Key was used with a different request.");
        return;
    }

    if (reply->elements != 2 || reply->element[1]->type != REDIS_REPLY_STRING) {
        ngx_http_automations_finish(
            r, NGX_HTTP_INTERNAL_SERVER_ERROR, "Internal error.");
        return;
    }

    id.len = reply->element[1]->len;
    id.data = ngx_pnalloc(r->pool, id.len);
    if (id.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memcpy(id.data, reply->element[1]->str, id.len);

    if (ctx->waiter == NULL) {
        ngx_str_set(&status, "queued");
        ngx_http_finalize_request(
            r, ngx_http_automations_send_accepted(r, &id, &status));
        return;
    }

    if (id.len != ctx->execution_id.len
        || ngx_strncmp(id.data, ctx->execution_id.data, id.len) != 0) {
        /* an earlier run with the same Idempotency-Key */
        ctx->execution_id = id;
        ngx_http_automations_wait_rekey(r, &id);
    }
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


/* a header value that may go into Redis: 1..max printable ASCII bytes */
static ngx_flag_t
ngx_http_automations_token_valid(ngx_str_t *v, size_t max)
{
    size_t i;

    if (v->len == 0 || v->len > max) {
        return 0;
    }

    for (i = 0; i < v->len; i++) {
        if (v->data[i] < 0x21 || v->data[i] > 0x7e) {
            return 0;
        }
    }

    return 1;
}


/* Enqueues the run described by run and the request's headers. */
static void
ngx_http_automations_enqueue(
    ngx_http_request_t *r, ngx_http_automations_run_t *run, ngx_str_t *body)
{
    u_char                           *p;
    ngx_str_t                         keys[2], args[14];
    ngx_uint_t                        status;
    ngx_table_elt_t                  *idem, *build;
    ngx_http_automations_ctx_t       *ctx;
    ngx_http_automations_loc_conf_t  *alcf;
    ngx_http_automations_main_conf_t *amcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);
    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_automations_module);

    status =
        ngx_http_automations_run_is_start(ctx) ? NGX_HTTP_BAD_REQUEST : 422;

    ngx_memzero(args, sizeof(args));

    idem = ngx_http_automations_header(r, "Idempotency-Key");
    build = ngx_http_automations_header(r, "x-ddn-build-id");

    if (idem && !ngx_http_automations_token_valid(&idem->value, 255)) {
        ngx_http_automations_finish(r, status,
            "Idempotency-Key must be 1 to 255 printable characters.");
        return;
    }

    if (build && !ngx_http_automations_token_valid(&build->value, 128)) {
        ngx_http_automations_finish(
            r, status, "x-ddn-build-id must be 1 to 128 printable characters.");
        return;
    }

    /* the execution id is made here, so a waiter can exist before it runs */
    p = ngx_pnalloc(r->pool, 5 + 24 + 1 + 2 * (AM_SHA256_HEX_LEN + 1));
    if (p == NULL || am_random_hex((char *) p + 5, 12) != 0) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memcpy(p, "exec_", 5);
    ctx->execution_id.data = p;
    ctx->execution_id.len = 29;
    p += 30;

    if (idem) {
        am_sha256_hex(idem->value.data, idem->value.len, (char *) p);
        args[6].data = p;
        args[6].len = AM_SHA256_HEX_LEN;
        p += AM_SHA256_HEX_LEN + 1;
    }

    /* the same key must come with the same request: compare digests */
    {
        u_char *buf;

        buf = ngx_pnalloc(r->pool, ctx->name.len + 1 + body->len);
        if (buf == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_memcpy(buf, ctx->name.data, ctx->name.len);
        buf[ctx->name.len] = '\n';
        if (body->len) {
            ngx_memcpy(buf + ctx->name.len + 1, body->data, body->len);
        }

        am_sha256_hex(buf, ctx->name.len + 1 + body->len, (char *) p);
        args[7].data = p;
        args[7].len = AM_SHA256_HEX_LEN;
    }

    if (ngx_http_automations_project_key(r, &ctx->project, ":project", &keys[0])
            != NGX_OK
        || ngx_http_automations_project_key(r, &ctx->project, ":", &args[0])
               != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    keys[1].len = amcf->prefix.len + sizeof("runs") - 1;
    keys[1].data = ngx_pnalloc(r->pool, keys[1].len);
    if (keys[1].data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_sprintf(keys[1].data, "%Vruns", &amcf->prefix);

    args[1] = ctx->project;
    args[2] = ctx->name;
    args[3] = ctx->execution_id;

    if (ngx_http_automations_run_is_start(ctx)) {
        ngx_str_set(&args[4], "start");
    } else {
        ngx_str_set(&args[4], "run");
    }

    args[5].data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (args[5].data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    args[5].len =
        ngx_sprintf(args[5].data, "%T", alcf->retention) - args[5].data;

    args[8] = run->seed;
    args[9] = run->input;

    if (build) {
        args[10] = build->value;
    }

    args[11] = run->webhook;
    args[12] = run->webhook_header;
    args[13] = run->ddn_headers;

    if (ctx->route == NGX_HTTP_AUTOMATIONS_ROUTE_RUN
        && !ngx_http_automations_prefer_async(r)) {
        if (ngx_http_automations_wait(r, &ctx->execution_id) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    if (ngx_http_automations_redis_script(r, ngx_http_automations_enqueue_reply,
            "execution_enqueue", 2, keys, 14, args)
        != NGX_OK) {
        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }
}


/* a header name as RFC 9110 allows (a token) */
static ngx_flag_t
ngx_http_automations_header_name_valid(const char *s)
{
    size_t len;

    len = ngx_strlen(s);

    if (len == 0 || len > 256) {
        return 0;
    }

    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
                || (*s >= '0' && *s <= '9')
                || ngx_strchr("!#$%&'*+-.^_`|~", *s) != NULL)) {
            return 0;
        }
    }

    return 1;
}


/*
 * An object of string values, such as webhook_header or ddn_headers. With
 * http set, names are HTTP header names that the webhook request may carry.
 */
static const char *
ngx_http_automations_headers_valid(yajl_val v, ngx_flag_t http)
{
    size_t      i;
    const char *name, *value, *c;

    static const char *reserved[] = {"host", "content-length", "content-type",
        "transfer-encoding", "connection", "webhook-id", "webhook-timestamp",
        "webhook-signature", NULL};
    const char       **rs;

    if (!YAJL_IS_OBJECT(v)) {
        return "must be an object of strings";
    }

    if (v->u.object.len > 50) {
        return "has more than 50 headers";
    }

    for (i = 0; i < v->u.object.len; i++) {
        name = v->u.object.keys[i];

        if (!YAJL_IS_STRING(v->u.object.values[i])) {
            return "must be an object of strings";
        }

        value = v->u.object.values[i]->u.string;

        if (!ngx_http_automations_header_name_valid(name)) {
            return "has an invalid header name";
        }

        if (ngx_strlen(value) > 8192) {
            return "has a value longer than 8192 bytes";
        }

        for (c = value; *c; c++) {
            if ((*c > 0 && *c < 0x20 && *c != '\t') || *c == 0x7f) {
                return "has a value with a control character";
            }
        }

        if (http) {
            for (rs = reserved; *rs; rs++) {
                if (ngx_strcasecmp((u_char *) name, (u_char *) *rs) == 0) {
                    return "sets a header the webhook request sets itself";
                }
            }
        }
    }

    return NULL;
}


/* compact JSON of v into the request pool */
static ngx_int_t
ngx_http_automations_run_json(ngx_http_request_t *r, yajl_val v, ngx_str_t *s)
{
    char  *json;
    size_t len;

    json = am_json_dump(v, &len);
    if (json == NULL) {
        return NGX_ERROR;
    }

    s->data = ngx_pnalloc(r->pool, len);
    if (s->data != NULL) {
        ngx_memcpy(s->data, json, len);
        s->len = len;
    }

    free(json);

    return s->data ? NGX_OK : NGX_ERROR;
}


/*
 * Validates a run body: the start API's {webhook, webhook_header, seed} or
 * the run API's {ddn_headers, input}. NULL when valid, else the detail.
 */
static const char *
ngx_http_automations_run_fields(ngx_http_request_t *r, yajl_val root,
    ngx_http_automations_run_t *run, ngx_flag_t start)
{
    size_t      i, j;
    yajl_val    v;
    const char *key, *err;

    static u_char buf[160];

    if (!YAJL_IS_OBJECT(root)) {
        return "The request body must be a JSON object.";
    }

    for (i = 0; i < root->u.object.len; i++) {
        key = root->u.object.keys[i];
        v = root->u.object.values[i];

        if (start && ngx_strcmp(key, "webhook") == 0) {
            if (YAJL_IS_NULL(v)
                || (YAJL_IS_STRING(v) && v->u.string[0] == '\0')) {
                continue;
            }

            if (!YAJL_IS_STRING(v)
                || !ngx_http_automations_url_valid(v->u.string)) {
                return "webhook must be an http:// or https:// URL.";
            }

            run->webhook.len = ngx_strlen(v->u.string);
            run->webhook.data = ngx_pnalloc(r->pool, run->webhook.len);
            if (run->webhook.data == NULL) {
                return "";
            }

            ngx_memcpy(run->webhook.data, v->u.string, run->webhook.len);
            continue;
        }

        if ((start && ngx_strcmp(key, "webhook_header") == 0)
            || (!start && ngx_strcmp(key, "ddn_headers") == 0)) {
            if (YAJL_IS_NULL(v)) {
                continue;
            }

            err = ngx_http_automations_headers_valid(v, start);
            if (err) {
                ngx_snprintf(buf, sizeof(buf) - 1, "%s %s.%Z", key, err);
                return (char *) buf;
            }

            if (v->u.object.len == 0) {
                /* nothing to keep apart */
                continue;
            }

            if (ngx_http_automations_run_json(
                    r, v, start ? &run->webhook_header : &run->ddn_headers)
                != NGX_OK) {
                return "";
            }

            continue;
        }

        if (start && ngx_strcmp(key, "seed") == 0) {
            if (YAJL_IS_NULL(v)) {
                continue;
            }

            if (!YAJL_IS_OBJECT(v)) {
                return "seed must be a JSON object.";
            }

            if (ngx_http_automations_run_json(r, v, &run->seed) != NGX_OK) {
                return "";
            }

            continue;
        }

        if (!start && ngx_strcmp(key, "input") == 0) {
            if (YAJL_IS_NULL(v)) {
                continue;
            }

            if (!YAJL_IS_ARRAY(v)) {
                return "input must be an array of objects.";
            }

            for (j = 0; j < v->u.array.len; j++) {
                if (!YAJL_IS_OBJECT(v->u.array.values[j])) {
                    return "input must be an array of objects.";
                }
            }

            if (ngx_http_automations_run_json(r, v, &run->input) != NGX_OK) {
                return "";
            }

            continue;
        }

        ngx_snprintf(buf, sizeof(buf) - 1, "Unknown field \"%s\".%Z", key);
        return (char *) buf;
    }

    return NULL;
}


/* the body of a start or run request has been read */
static void
ngx_http_automations_run_body(ngx_http_request_t *r)
{
    char                        err[256];
    yajl_val                    root;
    ngx_str_t                   body;
    ngx_uint_t                  status;
    const char                 *detail;
    ngx_http_automations_run_t  run;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    status =
        ngx_http_automations_run_is_start(ctx) ? NGX_HTTP_BAD_REQUEST : 422;

    ngx_memzero(&run, sizeof(ngx_http_automations_run_t));

    if (ngx_http_automations_request_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (body.len) {
        root = am_json_parse(
            (char *) body.data, body.len, AM_JSON_MAX_DEPTH, err, sizeof(err));
        if (root == NULL) {
            ngx_http_automations_finish(r, status, "Invalid JSON: %s", err);
            return;
        }

        detail = ngx_http_automations_run_fields(
            r, root, &run, ngx_http_automations_run_is_start(ctx));
        yajl_tree_free(root);

        if (detail != NULL) {
            if (detail[0] == '\0') {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            ngx_http_automations_finish(r, status, "%s", detail);
            return;
        }
    }

    ngx_http_automations_enqueue(r, &run, &body);
}


static ngx_int_t
ngx_http_automations_run_read(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (ctx->project.len == 0) {
        return ngx_http_automations_send_detail(r, NGX_HTTP_FORBIDDEN,
            "These credentials reach several projects: the project "
            "must be set with automations_project.");
    }

    if (!ngx_http_automations_redis_ready()) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_automations_run_body);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* POST <api location>AUTOMATION/run */
ngx_int_t
ngx_http_automations_run_handler(ngx_http_request_t *r)
{
    return ngx_http_automations_run_read(r);
}


/* GET .../executions/ID under either API */
ngx_int_t
ngx_http_automations_execution_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_str_t                   key;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ctx->project.len == 0) {
        return ngx_http_automations_send_detail(r, NGX_HTTP_FORBIDDEN,
            "These credentials reach several projects: the project "
            "must be set with automations_project.");
    }

    if (ngx_http_automations_execution_key(
            r, &ctx->project, &ctx->execution_id, &key)
            != NGX_OK
        || ngx_http_automations_redis_script(r,
               ngx_http_automations_script_reply, "execution_get", 1, &key, 1,
               &ctx->name)
               != NGX_OK) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }

    r->main->count++;

    return NGX_DONE;
}


/* the content handler of automations_start_api */
ngx_int_t
ngx_http_automations_start_handler(ngx_http_request_t *r)
{
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_automations_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->route == NGX_HTTP_AUTOMATIONS_ROUTE_UNSET) {
        (void) ngx_http_automations_start_route(r, ctx);
    }

    switch (ctx->route) {

    case NGX_HTTP_AUTOMATIONS_ROUTE_START:
        if (r->method != NGX_HTTP_POST) {
            return ngx_http_automations_not_allowed(r, "POST");
        }

        if (!am_project_name_valid(
                (char *) ctx->project.data, ctx->project.len)) {
            return ngx_http_automations_send_message(r, NGX_HTTP_FORBIDDEN,
                "This Project does not exist. consult API");
        }

        if (!am_automation_name_valid((char *) ctx->name.data, ctx->name.len)) {
            return ngx_http_automations_send_message(r, NGX_HTTP_FORBIDDEN,
                "This Automation does not exist. consult API.");
        }

        return ngx_http_automations_run_read(r);

    case NGX_HTTP_AUTOMATIONS_ROUTE_EXECUTION:
        if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
            return ngx_http_automations_not_allowed(r, "GET");
        }

        if (!am_project_name_valid((char *) ctx->project.data, ctx->project.len)
            || !am_automation_name_valid(
                (char *) ctx->name.data, ctx->name.len)) {
            return ngx_http_automations_send_detail(
                r, NGX_HTTP_NOT_FOUND, "Execution not found");
        }

        return ngx_http_automations_execution_handler(r);

    default:
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_NOT_FOUND, "Not Found");
    }
}
