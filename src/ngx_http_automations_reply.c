/*
 * JSON responses: every answer of the module, success or error, is a JSON
 * body with the right status, sent the same way.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"


static ngx_str_t ngx_http_automations_json_type =
    ngx_string("application/json");


ngx_int_t
ngx_http_automations_send(
    ngx_http_request_t *r, ngx_uint_t status, u_char *body, size_t len)
{
    ngx_int_t   rc;
    ngx_buf_t  *b;
    ngx_chain_t out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
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


size_t
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


u_char *
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
