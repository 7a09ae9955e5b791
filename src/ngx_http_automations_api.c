/*
 * The Automations API (promptql-automations-api.txt) under an automations_api
 * prefix location:
 *
 *   GET    <location>          list          scope read
 *   POST   <location>          create        scope write
 *   GET    <location>NAME      get           scope read
 *   DELETE <location>NAME      delete        scope write
 *
 * Requests are validated here; every read and write of Redis is one script
 * of redis/, whose { status, body } reply is sent as it is.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_json.h"
#include "am_name.h"


#define NGX_HTTP_AUTOMATIONS_TIMEOUT_MAX 3600000

/* the fields of an automation a create request may carry */
#define NGX_HTTP_AUTOMATIONS_FIELDS 7


static void ngx_http_automations_api_create(ngx_http_request_t *r);


/*
 * The path after the location, split at "/" into at most four segments
 * (a trailing "/" is allowed); the number of segments, or 5 when there
 * are more.
 */
ngx_uint_t
ngx_http_automations_path_split(ngx_http_request_t *r, ngx_str_t *seg)
{
    u_char                   *p, *last, *slash;
    ngx_uint_t                n;
    ngx_http_core_loc_conf_t *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->uri.len < clcf->name.len) {
        return 5;
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
        if (n == 4) {
            return 5;
        }

        slash = ngx_strlchr(p, last, '/');

        seg[n].data = p;
        seg[n].len = (slash ? slash : last) - p;

        p = slash ? slash + 1 : last;
    }

    return n;
}


/* "exec_" and 24 lowercase hex digits, as execution ids are made */
ngx_flag_t
ngx_http_automations_execution_id_valid(ngx_str_t *id)
{
    ngx_uint_t i;

    if (id->len != 29 || ngx_strncmp(id->data, "exec_", 5) != 0) {
        return 0;
    }

    for (i = 5; i < 29; i++) {
        if (!((id->data[i] >= '0' && id->data[i] <= '9')
                || (id->data[i] >= 'a' && id->data[i] <= 'f'))) {
            return 0;
        }
    }

    return 1;
}


/* Splits the URI after the location into a route and its names. */
static void
ngx_http_automations_api_parse(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_str_t  seg[4];
    ngx_uint_t n;

    ctx->route = NGX_HTTP_AUTOMATIONS_ROUTE_NOT_FOUND;

    n = ngx_http_automations_path_split(r, seg);

    if (n == 0) {
        ctx->route = NGX_HTTP_AUTOMATIONS_ROUTE_COLLECTION;
        return;
    }

    if (n == 1) {
        ctx->route = NGX_HTTP_AUTOMATIONS_ROUTE_ITEM;

    } else if (n == 2 && seg[1].len == 3
               && ngx_strncmp(seg[1].data, "run", 3) == 0) {
        ctx->route = NGX_HTTP_AUTOMATIONS_ROUTE_RUN;

    } else if (n == 3 && seg[1].len == 10
               && ngx_strncmp(seg[1].data, "executions", 10) == 0) {
        ctx->route = ngx_http_automations_execution_id_valid(&seg[2])
                         ? NGX_HTTP_AUTOMATIONS_ROUTE_EXECUTION
                         : NGX_HTTP_AUTOMATIONS_ROUTE_NOT_FOUND;
        ctx->execution_id = seg[2];

    } else {
        return;
    }

    ctx->name = seg[0];

    if (!am_automation_name_valid((char *) seg[0].data, seg[0].len)) {
        ctx->route = NGX_HTTP_AUTOMATIONS_ROUTE_BAD_NAME;
    }
}


ngx_uint_t
ngx_http_automations_api_scope(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    if (ctx->route == NGX_HTTP_AUTOMATIONS_ROUTE_UNSET) {
        ngx_http_automations_api_parse(r, ctx);
    }

    switch (ctx->route) {

    case NGX_HTTP_AUTOMATIONS_ROUTE_COLLECTION:
    case NGX_HTTP_AUTOMATIONS_ROUTE_ITEM:
        break;

    case NGX_HTTP_AUTOMATIONS_ROUTE_RUN:
        return r->method == NGX_HTTP_POST ? NGX_HTTP_AUTOMATIONS_SCOPE_RUN : 0;

    case NGX_HTTP_AUTOMATIONS_ROUTE_EXECUTION:
        return (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))
                   ? NGX_HTTP_AUTOMATIONS_SCOPE_RUN
                   : 0;

    default:
        return 0;
    }

    switch (r->method) {
    case NGX_HTTP_GET:
    case NGX_HTTP_HEAD:
        return NGX_HTTP_AUTOMATIONS_SCOPE_READ;
    case NGX_HTTP_POST:
    case NGX_HTTP_DELETE:
        return NGX_HTTP_AUTOMATIONS_SCOPE_WRITE;
    default:
        return 0;
    }
}


/*
 * The { status, body } reply of an API script: NGX_OK with the body copied
 * into the request pool, NGX_DECLINED for a reply of another shape (logged),
 * NGX_ERROR when out of memory.
 */
ngx_int_t
ngx_http_automations_script_result(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t *status, ngx_str_t *body)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_STRING
        || reply->element[0]->integer < 200
        || reply->element[0]->integer > 599) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
            "automations: unexpected redis reply: %s",
            reply == NULL                      ? "none"
            : reply->type == REDIS_REPLY_ERROR ? reply->str
                                               : "wrong shape");
        return NGX_DECLINED;
    }

    *status = (ngx_uint_t) reply->element[0]->integer;

    body->len = reply->element[1]->len;
    body->data = ngx_pnalloc(r->pool, body->len);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(body->data, reply->element[1]->str, body->len);

    return NGX_OK;
}


/* answers a request with the { status, body } reply of its script */
void
ngx_http_automations_script_reply(ngx_http_request_t *r, redisReply *reply)
{
    ngx_int_t  rc;
    ngx_str_t  body;
    ngx_uint_t status;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        if (reply) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                "automations: redis error: %s", reply->str);
        }

        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
        return;
    }

    rc = ngx_http_automations_script_result(r, reply, &status, &body);

    if (rc == NGX_DECLINED) {
        ngx_http_automations_finish(
            r, NGX_HTTP_INTERNAL_SERVER_ERROR, "Internal error.");
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_finalize_request(
        r, ngx_http_automations_send(r, status, body.data, body.len));
}


/*
 * Calls an API script with the project's keys: KEYS[1] the project hash,
 * ARGV[1] the project's key base, then args.
 */
static ngx_int_t
ngx_http_automations_api_call(ngx_http_request_t *r, const char *script,
    ngx_uint_t nargs, ngx_str_t *args)
{
    ngx_str_t  key, all[2 + NGX_HTTP_AUTOMATIONS_FIELDS * 2 + 3];
    ngx_uint_t i;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_automations_get_ctx(r);

    if (ngx_http_automations_project_key(r, &ctx->project, ":project", &key)
            != NGX_OK
        || ngx_http_automations_project_key(r, &ctx->project, ":", &all[0])
               != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < nargs; i++) {
        all[1 + i] = args[i];
    }

    return ngx_http_automations_redis_script(
        r, ngx_http_automations_script_reply, script, 1, &key, 1 + nargs, all);
}


ngx_int_t
ngx_http_automations_not_allowed(ngx_http_request_t *r, const char *allow)
{
    ngx_table_elt_t *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) allow;
    h->value.len = ngx_strlen(allow);

    return ngx_http_automations_send_detail(
        r, NGX_HTTP_NOT_ALLOWED, "Method Not Allowed");
}


ngx_int_t
ngx_http_automations_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    const char                 *script;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_automations_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) ngx_http_automations_api_scope(r, ctx);

    switch (ctx->route) {

    case NGX_HTTP_AUTOMATIONS_ROUTE_COLLECTION:
        if (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD)) {
            script = "automation_list";
            break;
        }

        if (r->method == NGX_HTTP_POST) {
            script = NULL;
            break;
        }

        return ngx_http_automations_not_allowed(r, "GET, POST");

    case NGX_HTTP_AUTOMATIONS_ROUTE_ITEM:
        if (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD)) {
            script = "automation_get";
            break;
        }

        if (r->method == NGX_HTTP_DELETE) {
            script = "automation_delete";
            break;
        }

        return ngx_http_automations_not_allowed(r, "GET, DELETE");

    case NGX_HTTP_AUTOMATIONS_ROUTE_RUN:
        if (r->method != NGX_HTTP_POST) {
            return ngx_http_automations_not_allowed(r, "POST");
        }

        return ngx_http_automations_run_handler(r);

    case NGX_HTTP_AUTOMATIONS_ROUTE_EXECUTION:
        if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
            return ngx_http_automations_not_allowed(r, "GET");
        }

        return ngx_http_automations_execution_handler(r);

    case NGX_HTTP_AUTOMATIONS_ROUTE_BAD_NAME:
        return ngx_http_automations_send_detail(r, 422,
            "Invalid automation name format: 1 to %d characters of "
            "A-Z a-z 0-9 _ - ., not starting with a dot",
            AM_AUTOMATION_NAME_MAX);

    default:
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_NOT_FOUND, "Not Found");
    }

    if (ctx->project.len == 0) {
        return ngx_http_automations_send_detail(r, NGX_HTTP_FORBIDDEN,
            "These credentials reach several projects: the project "
            "must be set with automations_project.");
    }

    if (!ngx_http_automations_redis_ready()) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }

    if (script == NULL) {
        rc = ngx_http_read_client_request_body(
            r, ngx_http_automations_api_create);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_automations_api_call(
            r, script, ctx->name.len ? 1 : 0, &ctx->name)
        != NGX_OK) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * The request body as one piece of memory: nginx may have kept it in
 * several buffers, or in a temporary file when it was large.
 */
ngx_int_t
ngx_http_automations_request_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char      *p;
    off_t        len;
    ssize_t      n;
    ngx_buf_t   *b;
    ngx_chain_t *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(
                b->file, p, (size_t) (b->file_last - b->file_pos), b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    body->len = p - body->data;

    return NGX_OK;
}


/* a copy of a yajl string in the request pool */
static ngx_int_t
ngx_http_automations_api_string(ngx_http_request_t *r, yajl_val v, ngx_str_t *s)
{
    s->len = ngx_strlen(v->u.string);
    s->data = ngx_pnalloc(r->pool, s->len);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, v->u.string, s->len);

    return NGX_OK;
}


ngx_flag_t
ngx_http_automations_url_valid(const char *s)
{
    size_t i, len;

    len = ngx_strlen(s);

    if (len > 2048
        || (ngx_strncmp(s, "http://", 7) != 0
            && ngx_strncmp(s, "https://", 8) != 0)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((u_char) s[i] <= 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }

    return len > (size_t) (s[4] == 's' ? 8 : 7);
}


static ngx_flag_t
ngx_http_automations_api_runtime_valid(const char *s)
{
    size_t i, len;

    len = ngx_strlen(s);

    if (len == 0 || len > 32) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
                || s[i] == '_' || s[i] == '-')) {
            return 0;
        }
    }

    return 1;
}


/*
 * Validates a create request into script arguments: ARGV name, override,
 * then field/value pairs. Returns NULL when valid, else the error detail.
 */
static const char *
ngx_http_automations_api_fields(
    ngx_http_request_t *r, yajl_val root, ngx_str_t *args, ngx_uint_t *nargs)
{
    char       *json;
    size_t      i, len;
    yajl_val    v;
    ngx_str_t  *a;
    ngx_flag_t  has_name, has_code, has_runtime;
    const char *key;

    if (!YAJL_IS_OBJECT(root)) {
        return "The request body must be a JSON object.";
    }

    ngx_str_set(&args[1], "0");
    a = &args[2];
    has_name = 0;
    has_code = 0;
    has_runtime = 0;

    for (i = 0; i < root->u.object.len; i++) {
        key = root->u.object.keys[i];
        v = root->u.object.values[i];

        if (ngx_strcmp(key, "automation_name") == 0) {
            if (!YAJL_IS_STRING(v)) {
                return "automation_name must be a string.";
            }

            if (!am_automation_name_valid(
                    v->u.string, ngx_strlen(v->u.string))) {
                return "Invalid automation name format: 1 to 128 characters "
                       "of A-Z a-z 0-9 _ - ., not starting with a dot.";
            }

            if (ngx_http_automations_api_string(r, v, &args[0]) != NGX_OK) {
                return "";
            }

            has_name = 1;
            continue;
        }

        if (ngx_strcmp(key, "override_existing") == 0) {
            if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
                return "override_existing must be a boolean.";
            }

            if (YAJL_IS_TRUE(v)) {
                ngx_str_set(&args[1], "1");
            }

            continue;
        }

        if (YAJL_IS_NULL(v) && ngx_strcmp(key, "code") != 0) {
            /* an optional field sent as null is the same as absent */
            if (ngx_strcmp(key, "description") != 0
                && ngx_strcmp(key, "input_schema") != 0
                && ngx_strcmp(key, "output_schema") != 0
                && ngx_strcmp(key, "runtime") != 0
                && ngx_strcmp(key, "timeout_ms") != 0
                && ngx_strcmp(key, "webhook") != 0) {
                goto unknown;
            }

            continue;
        }

        a[0].data = (u_char *) key;
        a[0].len = ngx_strlen(key);

        if (ngx_strcmp(key, "code") == 0) {
            if (!YAJL_IS_STRING(v)) {
                return "code must be a string.";
            }

            has_code = 1;

        } else if (ngx_strcmp(key, "description") == 0) {
            if (!YAJL_IS_STRING(v)) {
                return "description must be a string.";
            }

        } else if (ngx_strcmp(key, "runtime") == 0) {
            if (!YAJL_IS_STRING(v)
                || !ngx_http_automations_api_runtime_valid(v->u.string)) {
                return "runtime must be a runtime name such as \"python\" "
                       "or \"sh\".";
            }

            has_runtime = 1;

        } else if (ngx_strcmp(key, "webhook") == 0) {
            if (!YAJL_IS_STRING(v)
                || !ngx_http_automations_url_valid(v->u.string)) {
                return "webhook must be an http:// or https:// URL.";
            }

        } else if (ngx_strcmp(key, "timeout_ms") == 0) {
            if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1
                || YAJL_GET_INTEGER(v) > NGX_HTTP_AUTOMATIONS_TIMEOUT_MAX) {
                return "timeout_ms must be an integer from 1 to 3600000.";
            }

            a[1].data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
            if (a[1].data == NULL) {
                return "";
            }

            a[1].len =
                ngx_sprintf(a[1].data, "%L", (int64_t) YAJL_GET_INTEGER(v))
                - a[1].data;
            a += 2;
            continue;

        } else if (ngx_strcmp(key, "input_schema") == 0
                   || ngx_strcmp(key, "output_schema") == 0) {
            if (!YAJL_IS_OBJECT(v)) {
                return ngx_strcmp(key, "input_schema") == 0
                           ? "input_schema must be an object."
                           : "output_schema must be an object.";
            }

            json = am_json_dump(v, &len);
            if (json == NULL) {
                return "";
            }

            a[1].data = ngx_pnalloc(r->pool, len);
            if (a[1].data != NULL) {
                ngx_memcpy(a[1].data, json, len);
                a[1].len = len;
            }

            free(json);

            if (a[1].data == NULL) {
                return "";
            }

            a += 2;
            continue;

        } else {
            goto unknown;
        }

        if (ngx_http_automations_api_string(r, v, &a[1]) != NGX_OK) {
            return "";
        }

        a += 2;
    }

    if (!has_name) {
        return "automation_name is required.";
    }

    if (!has_code) {
        return "code is required.";
    }

    if (!has_runtime) {
        ngx_str_set(&a[0], "runtime");
        ngx_str_set(&a[1], "python");
        a += 2;
    }

    *nargs = a - args;

    /* keys live in the tree: copy them before it is freed */
    for (a = &args[2]; a < args + *nargs; a += 2) {
        u_char *p;

        p = ngx_pnalloc(r->pool, a->len);
        if (p == NULL) {
            return "";
        }

        ngx_memcpy(p, a->data, a->len);
        a->data = p;
    }

    return NULL;

unknown :

{
    static u_char buf[128];

    ngx_snprintf(buf, sizeof(buf) - 1, "Unknown field \"%s\".%Z", key);
    return (char *) buf;
}
}


static void
ngx_http_automations_api_create(ngx_http_request_t *r)
{
    char        err[256];
    yajl_val    root;
    ngx_str_t   body;
    ngx_uint_t  nargs;
    ngx_str_t   args[2 + NGX_HTTP_AUTOMATIONS_FIELDS * 2];
    const char *detail;

    if (ngx_http_automations_request_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (body.len == 0) {
        ngx_http_automations_finish(r, 422,
            "The request body is empty: "
            "a JSON object is expected.");
        return;
    }

    root = am_json_parse(
        (char *) body.data, body.len, AM_JSON_MAX_DEPTH, err, sizeof(err));
    if (root == NULL) {
        ngx_http_automations_finish(r, 422, "Invalid JSON: %s", err);
        return;
    }

    detail = ngx_http_automations_api_fields(r, root, args, &nargs);
    yajl_tree_free(root);

    if (detail != NULL) {
        if (detail[0] == '\0') {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_automations_finish(r, 422, "%s", detail);
        return;
    }

    if (ngx_http_automations_api_call(r, "automation_create", nargs, args)
        != NGX_OK) {
        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }
}
