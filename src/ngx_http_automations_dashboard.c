/*
 * automations_dashboard [API location]: one page, built into the module
 * (src/dashboard/index.html), from which a user watches and acts on their
 * project through the Automations API: automations, executions, the queue,
 * dead-lettered webhooks; cancel and retry.
 *
 * The page holds no data and asks for no credential itself: the browser
 * sends every API request with the credential the user typed in, so the
 * API's checks are the only ones. The page is made once per location when
 * the configuration is read, with the API's location in it; requests get
 * those bytes as they are. Its Content-Security-Policy is computed from the
 * page at build time (src/dashboard/embed.pl): the page's own inline script
 * and style run, nothing else does, and it talks to its own origin only.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"


/* the generated page (build/gen/ngx_http_automations_dashboard_page.c) */
extern const char   ngx_http_automations_dashboard_page[];
extern const size_t ngx_http_automations_dashboard_page_len;
extern const char   ngx_http_automations_dashboard_csp[];


#define NGX_HTTP_AUTOMATIONS_DASHBOARD_API "%%API%%"


typedef struct {
    ngx_str_t name;
    ngx_str_t value;
} ngx_http_automations_dashboard_header_t;


static ngx_http_automations_dashboard_header_t
    ngx_http_automations_dashboard_headers[] = {
        /* the policy computed with the page: set by the handler */
        {ngx_string("Content-Security-Policy"), ngx_null_string},
        {ngx_string("X-Content-Type-Options"), ngx_string("nosniff")},
        {ngx_string("Referrer-Policy"), ngx_string("no-referrer")},
        /* revalidated each time: a new module brings a new page */
        {ngx_string("Cache-Control"), ngx_string("no-cache")},
        {ngx_null_string, ngx_null_string}};


static ngx_str_t ngx_http_automations_dashboard_type =
    ngx_string("text/html; charset=utf-8");


static ngx_int_t ngx_http_automations_dashboard_handler(ngx_http_request_t *r);


/*
 * Whether a location given to automations_dashboard is a path the page may
 * call: absolute, on the page's origin (connect-src 'self'), made of the
 * characters RFC 3986 allows in a path.
 */
static ngx_flag_t
ngx_http_automations_dashboard_api_valid(ngx_str_t *api)
{
    u_char     c;
    ngx_uint_t i;

    if (api->len == 0 || api->data[0] != '/'
        || (api->len > 1 && api->data[1] == '/')) {
        return 0;
    }

    for (i = 0; i < api->len; i++) {
        c = api->data[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || (c != '\0' && ngx_strchr("-._~!$&'()*+,;=:@/%", c))) {
            continue;
        }

        return 0;
    }

    return 1;
}


/* the page with api, HTML-escaped, in place of its placeholder */
static ngx_int_t
ngx_http_automations_dashboard_make(
    ngx_conf_t *cf, ngx_str_t *api, ngx_str_t *page)
{
    u_char *p, *at, *src, *last;
    size_t  len, escaped;

    src = (u_char *) ngx_http_automations_dashboard_page;
    last = src + ngx_http_automations_dashboard_page_len;

    at = ngx_strnstr(src, NGX_HTTP_AUTOMATIONS_DASHBOARD_API,
        ngx_http_automations_dashboard_page_len);
    if (at == NULL) {
        return NGX_ERROR;
    }

    /* the placeholder is in a '"'-quoted attribute: '&' is all to escape */
    escaped = api->len + ngx_escape_html(NULL, api->data, api->len);
    len = ngx_http_automations_dashboard_page_len
          - (sizeof(NGX_HTTP_AUTOMATIONS_DASHBOARD_API) - 1) + escaped;

    page->data = ngx_pnalloc(cf->pool, len);
    if (page->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(page->data, src, at - src);
    p = (u_char *) ngx_escape_html(p, api->data, api->len);
    at += sizeof(NGX_HTTP_AUTOMATIONS_DASHBOARD_API) - 1;
    p = ngx_cpymem(p, at, last - at);

    page->len = p - page->data;

    return NGX_OK;
}


/* automations_dashboard [API location]: this location serves the page */
char *
ngx_http_automations_dashboard(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_automations_loc_conf_t *alcf = conf;

    ngx_str_t                *value, api;
    ngx_http_core_loc_conf_t *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate, or the location has another handler";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 1) {
        ngx_str_set(&api, "/automations/v1/");

    } else {
        api = value[1];

        if (!ngx_http_automations_dashboard_api_valid(&api)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "invalid API location \"%V\": a path on this server, such "
                "as \"/automations/v1/\"",
                &api);
            return NGX_CONF_ERROR;
        }

        if (api.data[api.len - 1] != '/') {
            /* the page appends "executions" and the like to it */
            api.data = ngx_pnalloc(cf->pool, value[1].len + 1);
            if (api.data == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memcpy(api.data, value[1].data, value[1].len);
            api.data[api.len++] = '/';
        }
    }

    if (ngx_http_automations_dashboard_make(cf, &api, &alcf->dashboard)
        != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf->handler = ngx_http_automations_dashboard_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_automations_dashboard_handler(ngx_http_request_t *r)
{
    ngx_int_t                                rc;
    ngx_buf_t                               *b;
    ngx_str_t                                allow;
    ngx_chain_t                              out;
    ngx_table_elt_t                         *h;
    ngx_http_automations_loc_conf_t         *alcf;
    ngx_http_automations_dashboard_header_t *hd;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        ngx_str_set(&allow, "GET, HEAD");
        return ngx_http_automations_send_not_allowed(r, &allow);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    for (hd = ngx_http_automations_dashboard_headers; hd->name.len; hd++) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        h->key = hd->name;

        if (hd->value.data) {
            h->value = hd->value;

        } else {
            h->value.data = (u_char *) ngx_http_automations_dashboard_csp;
            h->value.len = ngx_strlen(ngx_http_automations_dashboard_csp);
        }
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = alcf->dashboard.len;
    r->headers_out.content_type = ngx_http_automations_dashboard_type;
    r->headers_out.content_type_len = ngx_http_automations_dashboard_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = alcf->dashboard.data;
    b->last = alcf->dashboard.data + alcf->dashboard.len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
