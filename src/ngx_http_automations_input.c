/*
 * Request input: headers, the body, and the checks every value from the
 * client passes before it goes to Redis.
 *
 * A JSON body is read against a table of fields (name, JSON type, flags,
 * check, where stored; see ngx_http_automations_field_t), walked by one
 * function, so that each endpoint declares its fields instead of parsing.
 * Every refusal is said the same way: a check returns why a value is not
 * acceptable, as words that follow the field's name, and the walker makes
 * the sentence in the request pool ("webhook must be an http:// or
 * https:// URL."). Values are copied into the pool before the JSON tree is
 * freed.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "am_execution.h"
#include "am_header.h"
#include "am_json.h"
#include "am_name.h"
#include "am_url.h"


#define NGX_HTTP_AUTOMATIONS_RUNTIME_MAX 32


ngx_table_elt_t *
ngx_http_automations_header(ngx_http_request_t *r, const char *name)
{
    size_t           len;
    ngx_uint_t       i;
    ngx_list_part_t *part;
    ngx_table_elt_t *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0) {
            return &h[i];
        }
    }
}


/* a header value that may go into Redis: 1..max printable ASCII bytes */
ngx_flag_t
ngx_http_automations_header_value_valid(ngx_str_t *v, size_t max)
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


/* an execution id as the module makes them (src/am_execution.h) */
ngx_flag_t
ngx_http_automations_execution_id_valid(ngx_str_t *id)
{
    return am_execution_id_valid((char *) id->data, id->len);
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


/*
 * The checks of ngx_http_automations_field_t rows: the walker has checked
 * the JSON type already.
 */

const char *
ngx_http_automations_check_url(yajl_val v)
{
    if (!am_url_valid(v->u.string, ngx_strlen(v->u.string))) {
        return AM_URL_RULE;
    }

    return NULL;
}


const char *
ngx_http_automations_check_automation_name(yajl_val v)
{
    if (!am_automation_name_valid(v->u.string, ngx_strlen(v->u.string))) {
        return "has an invalid format: 1 to 128 characters of "
               "A-Z a-z 0-9 _ - ., not starting with a dot";
    }

    return NULL;
}


/*
 * the network a run gets: "none" (the worker gives it an empty network
 * namespace) or "default"; the worker fails a run with any other value
 */
const char *
ngx_http_automations_check_network(yajl_val v)
{
    if (ngx_strcmp(v->u.string, "none") != 0
        && ngx_strcmp(v->u.string, "default") != 0) {
        return NGX_HTTP_AUTOMATIONS_NETWORK_EXPECTED;
    }

    return NULL;
}


/* a runtime's name; whether the workers have it is theirs to say */
const char *
ngx_http_automations_check_runtime(yajl_val v)
{
    size_t      i, len;
    const char *s;

    s = v->u.string;
    len = ngx_strlen(s);

    if (len == 0 || len > NGX_HTTP_AUTOMATIONS_RUNTIME_MAX) {
        return NGX_HTTP_AUTOMATIONS_RUNTIME_EXPECTED;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
                || s[i] == '_' || s[i] == '-')) {
            return NGX_HTTP_AUTOMATIONS_RUNTIME_EXPECTED;
        }
    }

    return NULL;
}


const char *
ngx_http_automations_check_timeout(yajl_val v)
{
    /* also the workers' cap: no run is cut short of its timeout */
    if (!am_run_timeout_valid(YAJL_GET_INTEGER(v))) {
        return NGX_HTTP_AUTOMATIONS_TIMEOUT_EXPECTED;
    }

    return NULL;
}


/* the run API's input: an array of objects */
const char *
ngx_http_automations_check_objects(yajl_val v)
{
    size_t i;

    for (i = 0; i < v->u.array.len; i++) {
        if (!YAJL_IS_OBJECT(v->u.array.values[i])) {
            return "must be an array of objects";
        }
    }

    return NULL;
}


/*
 * the python modules an automation's warm parent imports (src/am_name.h):
 * the worker keys parents by the set, so a name given twice is a mistake
 */
const char *
ngx_http_automations_check_preload(yajl_val v)
{
    size_t   i, j, len;
    yajl_val m;

    if (v->u.array.len > AM_PRELOAD_MAX) {
        return "has more than " NGX_HTTP_AUTOMATIONS_STR(
            AM_PRELOAD_MAX) " module names";
    }

    for (i = 0; i < v->u.array.len; i++) {
        m = v->u.array.values[i];

        if (!YAJL_IS_STRING(m)) {
            return NGX_HTTP_AUTOMATIONS_PRELOAD_EXPECTED;
        }

        len = ngx_strlen(m->u.string);

        if (!am_python_module_valid(m->u.string, len)) {
            return "has an invalid module name: identifiers of A-Z a-z 0-9 _ "
                   "joined by dots, at most " NGX_HTTP_AUTOMATIONS_STR(
                       AM_PYTHON_MODULE_MAX) " bytes, not __main__";
        }

        for (j = 0; j < i; j++) {
            if (ngx_strcmp(v->u.array.values[j]->u.string, m->u.string) == 0) {
                return "names a module twice";
            }
        }
    }

    return NULL;
}


/* one header of webhook_header or ddn_headers (src/am_header.h) */
static const char *
ngx_http_automations_header_check(const char *name, yajl_val value)
{
    size_t len;

    if (!YAJL_IS_STRING(value)) {
        return "must be an object of strings";
    }

    if (!am_header_name_valid(name, ngx_strlen(name))) {
        return "has an invalid header name";
    }

    len = ngx_strlen(value->u.string);

    if (len > AM_HEADER_VALUE_MAX) {
        return "has a value longer than " NGX_HTTP_AUTOMATIONS_STR(
            AM_HEADER_VALUE_MAX) " bytes";
    }

    if (!am_header_value_valid(value->u.string, len)) {
        return "has a value with a control character";
    }

    return NULL;
}


/* an object of header names and string values, such as ddn_headers */
const char *
ngx_http_automations_check_headers(yajl_val v)
{
    size_t      i;
    const char *reason;

    if (v->u.object.len > AM_HEADERS_MAX) {
        return "has more than " NGX_HTTP_AUTOMATIONS_STR(
            AM_HEADERS_MAX) " headers";
    }

    for (i = 0; i < v->u.object.len; i++) {
        reason = ngx_http_automations_header_check(
            v->u.object.keys[i], v->u.object.values[i]);
        if (reason) {
            return reason;
        }
    }

    return NULL;
}


/* headers for the webhook request, which sets some headers itself */
const char *
ngx_http_automations_check_webhook_headers(yajl_val v)
{
    size_t      i;
    const char *reason, *name;

    reason = ngx_http_automations_check_headers(v);
    if (reason) {
        return reason;
    }

    for (i = 0; i < v->u.object.len; i++) {
        name = v->u.object.keys[i];

        if (am_header_reserved(name, ngx_strlen(name))) {
            return "sets a header the webhook request sets itself";
        }
    }

    return NULL;
}


static ngx_flag_t
ngx_http_automations_json_is(yajl_val v, ngx_uint_t type)
{
    switch (type) {
    case NGX_HTTP_AUTOMATIONS_JSON_STRING:
        return YAJL_IS_STRING(v);
    case NGX_HTTP_AUTOMATIONS_JSON_INTEGER:
        return YAJL_IS_INTEGER(v);
    case NGX_HTTP_AUTOMATIONS_JSON_BOOLEAN:
        return YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v);
    case NGX_HTTP_AUTOMATIONS_JSON_OBJECT:
        return YAJL_IS_OBJECT(v);
    default: /* NGX_HTTP_AUTOMATIONS_JSON_ARRAY */
        return YAJL_IS_ARRAY(v);
    }
}


/* whether v is as good as absent for f: null, or "" and {} when allowed */
static ngx_flag_t
ngx_http_automations_field_absent(
    const ngx_http_automations_field_t *f, yajl_val v)
{
    if (YAJL_IS_NULL(v)) {
        return f->flags & NGX_HTTP_AUTOMATIONS_FIELD_NULL;
    }

    if (!(f->flags & NGX_HTTP_AUTOMATIONS_FIELD_EMPTY)) {
        return 0;
    }

    return (YAJL_IS_STRING(v) && v->u.string[0] == '\0')
           || (YAJL_IS_OBJECT(v) && v->u.object.len == 0);
}


static ngx_int_t
ngx_http_automations_copy(
    ngx_http_request_t *r, const char *s, size_t len, ngx_str_t *to)
{
    /* one byte more: a stored empty string is not a NULL one */
    to->data = ngx_pnalloc(r->pool, len + 1);
    if (to->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(to->data, s, len);
    to->len = len;

    return NGX_OK;
}


/* v as it goes to Redis: text as is, numbers in decimal, the rest as JSON */
static ngx_int_t
ngx_http_automations_field_store(ngx_http_request_t *r,
    const ngx_http_automations_field_t *f, yajl_val v, ngx_str_t *to)
{
    char     *json;
    size_t    len;
    u_char    num[NGX_INT64_LEN];
    ngx_int_t rc;

    switch (f->type) {

    case NGX_HTTP_AUTOMATIONS_JSON_STRING:
        return ngx_http_automations_copy(
            r, v->u.string, ngx_strlen(v->u.string), to);

    case NGX_HTTP_AUTOMATIONS_JSON_INTEGER:
        len = ngx_sprintf(num, "%L", (int64_t) YAJL_GET_INTEGER(v)) - num;
        return ngx_http_automations_copy(r, (char *) num, len, to);

    case NGX_HTTP_AUTOMATIONS_JSON_BOOLEAN:
        return ngx_http_automations_copy(r, YAJL_IS_TRUE(v) ? "1" : "0", 1, to);

    default:
        json = am_json_dump(v, &len);
        if (json == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_automations_copy(r, json, len, to);
        free(json);

        return rc;
    }
}


/* "<field> <reason>." in the request pool */
static ngx_int_t
ngx_http_automations_field_refuse(ngx_http_request_t *r, const char *name,
    const char *reason, ngx_str_t *detail)
{
    size_t len;

    len = ngx_strlen(name) + 1 + ngx_strlen(reason) + 1;

    detail->data = ngx_pnalloc(r->pool, len);
    if (detail->data == NULL) {
        return NGX_ERROR;
    }

    detail->len =
        ngx_sprintf(detail->data, "%s %s.", name, reason) - detail->data;

    return NGX_DECLINED;
}


/* Unknown field "<name>". in the request pool */
static ngx_int_t
ngx_http_automations_field_unknown(
    ngx_http_request_t *r, const char *name, ngx_str_t *detail)
{
    detail->data =
        ngx_pnalloc(r->pool, sizeof("Unknown field \"\".") + ngx_strlen(name));
    if (detail->data == NULL) {
        return NGX_ERROR;
    }

    detail->len =
        ngx_sprintf(detail->data, "Unknown field \"%s\".", name) - detail->data;

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_automations_field(ngx_http_request_t *r,
    const ngx_http_automations_field_t *f, yajl_val v, void *out,
    ngx_str_t *detail)
{
    const char *reason;

    if (ngx_http_automations_field_absent(f, v)) {
        return NGX_OK;
    }

    if (!ngx_http_automations_json_is(v, f->type)) {
        return ngx_http_automations_field_refuse(
            r, (char *) f->name.data, f->expect, detail);
    }

    reason = f->check ? f->check(v) : NULL;

    if (reason) {
        return ngx_http_automations_field_refuse(
            r, (char *) f->name.data, reason, detail);
    }

    if (ngx_http_automations_field_store(
            r, f, v, (ngx_str_t *) ((u_char *) out + f->offset))
        != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static const ngx_http_automations_field_t *
ngx_http_automations_field_find(
    const ngx_http_automations_field_t *fields, const char *name)
{
    for (; fields->name.len; fields++) {
        if (ngx_strcmp(fields->name.data, name) == 0) {
            return fields;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_automations_fields_walk(ngx_http_request_t *r, yajl_val root,
    const ngx_http_automations_field_t *fields, void *out, ngx_str_t *detail)
{
    size_t                              i;
    ngx_int_t                           rc;
    ngx_str_t                          *to;
    const char                         *key;
    const ngx_http_automations_field_t *f;

    if (!YAJL_IS_OBJECT(root)) {
        ngx_str_set(detail, "The request body must be a JSON object.");
        return NGX_DECLINED;
    }

    for (i = 0; i < root->u.object.len; i++) {
        key = root->u.object.keys[i];
        f = ngx_http_automations_field_find(fields, key);

        if (f == NULL) {
            return ngx_http_automations_field_unknown(r, key, detail);
        }

        rc = ngx_http_automations_field(
            r, f, root->u.object.values[i], out, detail);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    for (f = fields; f->name.len; f++) {
        to = (ngx_str_t *) ((u_char *) out + f->offset);

        if ((f->flags & NGX_HTTP_AUTOMATIONS_FIELD_REQUIRED)
            && to->data == NULL) {
            return ngx_http_automations_field_refuse(
                r, (char *) f->name.data, "is required", detail);
        }
    }

    return NGX_OK;
}


/*
 * Reads body, a JSON object, into the ngx_str_t of out that fields name.
 * NGX_OK; NGX_DECLINED with detail saying why the body is refused;
 * NGX_ERROR.
 */
ngx_int_t
ngx_http_automations_fields(ngx_http_request_t *r, ngx_str_t *body,
    const ngx_http_automations_field_t *fields, void *out, ngx_str_t *detail)
{
    char      err[256];
    yajl_val  root;
    ngx_int_t rc;

    root = am_json_parse(
        (char *) body->data, body->len, AM_JSON_MAX_DEPTH, err, sizeof(err));

    if (root == NULL) {
        detail->data = ngx_pnalloc(r->pool, sizeof("Invalid JSON: ") + 256);
        if (detail->data == NULL) {
            return NGX_ERROR;
        }

        detail->len =
            ngx_sprintf(detail->data, "Invalid JSON: %s", err) - detail->data;

        return NGX_DECLINED;
    }

    rc = ngx_http_automations_fields_walk(r, root, fields, out, detail);

    yajl_tree_free(root);

    return rc;
}
