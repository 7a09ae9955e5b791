/*
 * Responses and script replies: every answer of the module, success or
 * error, is a JSON body with the right status, sent the same way; errors
 * that nginx answers itself in the module's locations get a JSON body too
 * (the header and body filters below). The { status, body } reply of the
 * API scripts of redis/ is read here, since it is sent as it is.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "am_scripts.h"


static ngx_str_t ngx_http_automations_json_type =
    ngx_string("application/json");

static ngx_http_output_header_filter_pt ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt   ngx_http_next_body_filter;


ngx_int_t
ngx_http_automations_send(
    ngx_http_request_t *r, ngx_uint_t status, u_char *body, size_t len)
{
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_chain_t                 out;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_automations_get_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->own_response = 1;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (status == 422) {
        /* nginx has no reason phrase of its own for 422 */
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Entity");
    }
    r->headers_out.content_type = ngx_http_automations_json_type;
    r->headers_out.content_type_len = ngx_http_automations_json_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = len ? 1 : 0;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static size_t
ngx_http_automations_json_escape_len(u_char *src, size_t len)
{
    size_t n;

    for (n = len; len; len--, src++) {
        if (*src == '"' || *src == '\\') {
            n++;

        } else if (*src < 0x20) {
            n += 5;
        }
    }

    return n;
}


static u_char *
ngx_http_automations_json_escape(u_char *dst, u_char *src, size_t len)
{
    static u_char hex[] = "0123456789abcdef";

    for (; len; len--, src++) {
        if (*src == '"' || *src == '\\') {
            *dst++ = '\\';
            *dst++ = *src;

        } else if (*src < 0x20) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[*src >> 4];
            *dst++ = hex[*src & 0xf];

        } else {
            *dst++ = *src;
        }
    }

    return dst;
}


static ngx_int_t
ngx_http_automations_vsend_detail(
    ngx_http_request_t *r, ngx_uint_t status, const char *fmt, va_list args)
{
    u_char msg[512], *last, *body, *p;
    size_t len;

    last = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);

    len = sizeof("{\"detail\":\"\"}") - 1
          + ngx_http_automations_json_escape_len(msg, last - msg);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(body, "{\"detail\":\"", sizeof("{\"detail\":\"") - 1);
    p = ngx_http_automations_json_escape(p, msg, last - msg);
    *p++ = '"';
    *p++ = '}';

    return ngx_http_automations_send(r, status, body, p - body);
}


/* {"detail": "<message>"}, the error body of both reference APIs */
ngx_int_t
ngx_http_automations_send_detail(
    ngx_http_request_t *r, ngx_uint_t status, const char *fmt, ...)
{
    va_list   args;
    ngx_int_t rc;

    va_start(args, fmt);
    rc = ngx_http_automations_vsend_detail(r, status, fmt, args);
    va_end(args);

    return rc;
}


/* {"message": "<message>"}, the start-automation API's 403 body */
ngx_int_t
ngx_http_automations_send_message(
    ngx_http_request_t *r, ngx_uint_t status, const char *message)
{
    u_char *body, *p;
    size_t  len;

    len = ngx_strlen(message);

    body = ngx_pnalloc(r->pool,
        sizeof("{\"message\":\"\"}") - 1
            + ngx_http_automations_json_escape_len((u_char *) message, len));
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(body, "{\"message\":\"", sizeof("{\"message\":\"") - 1);
    p = ngx_http_automations_json_escape(p, (u_char *) message, len);
    *p++ = '"';
    *p++ = '}';

    return ngx_http_automations_send(r, status, body, p - body);
}


/* 405, with the methods the path has */
ngx_int_t
ngx_http_automations_send_not_allowed(ngx_http_request_t *r, ngx_str_t *allow)
{
    ngx_table_elt_t *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value = *allow;

    return ngx_http_automations_send_detail(
        r, NGX_HTTP_NOT_ALLOWED, "Method Not Allowed");
}


/* Sends a detail error and finalizes r: for callbacks and timers. */
void
ngx_http_automations_finish(
    ngx_http_request_t *r, ngx_uint_t status, const char *fmt, ...)
{
    va_list   args;
    ngx_int_t rc;

    va_start(args, fmt);
    rc = ngx_http_automations_vsend_detail(r, status, fmt, args);
    va_end(args);

    ngx_http_finalize_request(r, rc);
}


static const char *
ngx_http_automations_error_text(ngx_uint_t status)
{
    switch (status) {
    case NGX_HTTP_BAD_REQUEST:
        return "Bad request.";
    case NGX_HTTP_NOT_FOUND:
        return "Not Found";
    case NGX_HTTP_NOT_ALLOWED:
        return "Method Not Allowed";
    case NGX_HTTP_REQUEST_TIME_OUT:
        return "The request took too long to arrive.";
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return "The request body is too large.";
    case NGX_HTTP_REQUEST_URI_TOO_LARGE:
        return "The request URI is too long.";
    case NGX_HTTP_REQUEST_HEADER_TOO_LARGE:
        return "The request headers are too large.";
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        return "The service is unavailable.";
    default:
        return status >= NGX_HTTP_INTERNAL_SERVER_ERROR ? "Internal error."
                                                        : "Request refused.";
    }
}


/*
 * Errors that nginx itself answers in an automations_api location (a body
 * over the limit, a malformed request, a failure) get a JSON body too, so
 * that API clients always read {"detail": ...}.
 */
static ngx_int_t
ngx_http_automations_header_filter(ngx_http_request_t *r)
{
    u_char                          *p;
    const char                      *text;
    ngx_http_automations_ctx_t      *ctx;
    ngx_http_automations_loc_conf_t *alcf;

    if (r->headers_out.status < NGX_HTTP_BAD_REQUEST || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if ((alcf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_NONE
            && !alcf->api_inside)
        || (ctx && ctx->own_response)) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_automations_get_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    text = ngx_http_automations_error_text(r->headers_out.status);

    p = ngx_pnalloc(r->pool, sizeof("{\"detail\":\"\"}") + ngx_strlen(text));
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->error_body.data = p;
    ctx->error_body.len = ngx_sprintf(p, "{\"detail\":\"%s\"}", text) - p;
    ctx->replace_body = 1;

    r->headers_out.content_type = ngx_http_automations_json_type;
    r->headers_out.content_type_len = ngx_http_automations_json_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = ctx->error_body.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_automations_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                  *b;
    ngx_chain_t                *cl, out;
    ngx_flag_t                  last;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (ctx == NULL || !ctx->replace_body) {
        return ngx_http_next_body_filter(r, in);
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;

        if (cl->buf->last_buf) {
            last = 1;
        }
    }

    if (!last) {
        return NGX_OK;
    }

    ctx->replace_body = 0;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->error_body.data;
    b->last = ctx->error_body.data + ctx->error_body.len;
    b->memory = 1;
    b->last_buf = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


ngx_int_t
ngx_http_automations_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_automations_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_automations_body_filter;

    return NGX_OK;
}


/* copies a bulk string reply element into the request pool */
ngx_int_t
ngx_http_automations_reply_str(
    ngx_http_request_t *r, redisReply *e, ngx_str_t *s)
{
    if (e->type != REDIS_REPLY_STRING) {
        return NGX_DECLINED;
    }

    s->data = ngx_pnalloc(r->pool, e->len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, e->str, e->len);
    s->len = e->len;

    return NGX_OK;
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
        || reply->elements != AM_HTTP_REPLY_N
        || reply->element[AM_HTTP_REPLY_STATUS]->type != REDIS_REPLY_INTEGER
        || reply->element[AM_HTTP_REPLY_BODY]->type != REDIS_REPLY_STRING
        || reply->element[AM_HTTP_REPLY_STATUS]->integer < 200
        || reply->element[AM_HTTP_REPLY_STATUS]->integer > 599) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
            "automations: unexpected redis reply: %s",
            reply == NULL                      ? "none"
            : reply->type == REDIS_REPLY_ERROR ? reply->str
                                               : "wrong shape");
        return NGX_DECLINED;
    }

    *status = (ngx_uint_t) reply->element[AM_HTTP_REPLY_STATUS]->integer;

    return ngx_http_automations_reply_str(
        r, reply->element[AM_HTTP_REPLY_BODY], body);
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
