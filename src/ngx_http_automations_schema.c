/*
 * input_schema and output_schema (JSON Schema draft 2020-12, src/am_schema.h)
 * on the module's side: a schema is compiled at create, so that an invalid
 * or unsupported one is refused there, and a run's input is validated
 * before anything is queued.
 *
 * The module does not read the automation before it enqueues a run: the
 * enqueue script does, atomically with the enqueue. So the script is given
 * the SHA-1 of the input_schema the input was validated with; when the
 * automation's input_schema is another one (or this nginx worker has none
 * yet), the script writes nothing and answers with the schema, which is
 * compiled, kept, and the input validated and sent again. A run costs one
 * round trip while the cache holds its automation's schema, two once per
 * automation and schema change, and a schema is compiled once per nginx
 * worker process, not per request.
 *
 * The cache is per process, NGX_HTTP_AUTOMATIONS_SCHEMAS automations at
 * most, the least recently used dropped first. The worker validates
 * output (src/worker/outschema.c).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "am_json.h"
#include "am_schema.h"


#define NGX_HTTP_AUTOMATIONS_SCHEMAS 256
#define NGX_HTTP_AUTOMATIONS_SHA1_LEN 40


typedef struct {
    ngx_queue_t  queue;
    ngx_str_t    key; /* "<project>/<automation>" */
    u_char       sha1[NGX_HTTP_AUTOMATIONS_SHA1_LEN];
    yajl_val     tree; /* the compiled schema points into it */
    am_schema_t *schema;
} ngx_http_automations_schema_t;


static ngx_queue_t ngx_http_automations_schemas;
static ngx_uint_t  ngx_http_automations_nschemas;


/*
 * The field check of input_schema and output_schema at create: the reason
 * is kept in a static buffer, which is safe in a single-threaded nginx
 * worker as the field walker copies it before the next check.
 */
const char *
ngx_http_automations_check_schema(yajl_val v)
{
    char         err[200];
    am_schema_t *s;

    static char reason[256];

    s = am_schema_compile(v, err, sizeof(err));
    if (s != NULL) {
        am_schema_free(s);
        return NULL;
    }

    ngx_snprintf((u_char *) reason, sizeof(reason) - 1,
        "is not a usable JSON Schema (draft 2020-12): %s%Z", err);

    return reason;
}


static void
ngx_http_automations_schema_free(ngx_http_automations_schema_t *e)
{
    ngx_queue_remove(&e->queue);
    ngx_http_automations_nschemas--;

    am_schema_free(e->schema);
    yajl_tree_free(e->tree);
    ngx_free(e);
}


static ngx_http_automations_schema_t *
ngx_http_automations_schema_find(ngx_str_t *project, ngx_str_t *name)
{
    ngx_queue_t                   *q;
    ngx_http_automations_schema_t *e;

    if (ngx_http_automations_nschemas == 0) {
        return NULL;
    }

    for (q = ngx_queue_head(&ngx_http_automations_schemas);
         q != ngx_queue_sentinel(&ngx_http_automations_schemas);
         q = ngx_queue_next(q)) {
        e = ngx_queue_data(q, ngx_http_automations_schema_t, queue);

        if (e->key.len == project->len + 1 + name->len
            && ngx_strncmp(e->key.data, project->data, project->len) == 0
            && e->key.data[project->len] == '/'
            && ngx_strncmp(
                   e->key.data + project->len + 1, name->data, name->len)
                   == 0) {
            /* the most recently used first */
            ngx_queue_remove(q);
            ngx_queue_insert_head(&ngx_http_automations_schemas, q);
            return e;
        }
    }

    return NULL;
}


/*
 * Keeps the input_schema text the enqueue script sent, compiled, as the
 * one of project/name; an empty one (sha1 too) is none. NGX_OK;
 * NGX_DECLINED with the reason in detail when it does not compile (an
 * automation stored before schemas were checked); NGX_ERROR.
 */
ngx_int_t
ngx_http_automations_schema_learn(ngx_http_request_t *r, ngx_str_t *project,
    ngx_str_t *name, ngx_str_t *sha1, ngx_str_t *text, ngx_str_t *detail)
{
    char                           err[200];
    yajl_val                       tree;
    am_schema_t                   *schema;
    ngx_http_automations_schema_t *e;

    if (ngx_http_automations_nschemas == 0) {
        ngx_queue_init(&ngx_http_automations_schemas);
    }

    e = ngx_http_automations_schema_find(project, name);
    if (e != NULL) {
        ngx_http_automations_schema_free(e);
    }

    if (text->len == 0) {
        return NGX_OK;
    }

    if (sha1->len != NGX_HTTP_AUTOMATIONS_SHA1_LEN) {
        return NGX_ERROR;
    }

    tree = am_json_parse(
        (char *) text->data, text->len, AM_JSON_MAX_DEPTH, err, sizeof(err));
    schema = tree ? am_schema_compile(tree, err, sizeof(err)) : NULL;

    if (schema == NULL) {
        yajl_tree_free(tree);

        detail->data = ngx_pnalloc(r->pool, 256);
        if (detail->data == NULL) {
            return NGX_ERROR;
        }

        detail->len =
            ngx_snprintf(detail->data, 256,
                "The automation's input_schema cannot be used: %s", err)
            - detail->data;

        return NGX_DECLINED;
    }

    e = ngx_alloc(
        sizeof(ngx_http_automations_schema_t) + project->len + 1 + name->len,
        r->connection->log);
    if (e == NULL) {
        am_schema_free(schema);
        yajl_tree_free(tree);
        return NGX_ERROR;
    }

    e->key.data = (u_char *) (e + 1);
    e->key.len = ngx_sprintf(e->key.data, "%V/%V", project, name) - e->key.data;
    ngx_memcpy(e->sha1, sha1->data, NGX_HTTP_AUTOMATIONS_SHA1_LEN);
    e->tree = tree;
    e->schema = schema;

    if (ngx_http_automations_nschemas == NGX_HTTP_AUTOMATIONS_SCHEMAS) {
        ngx_http_automations_schema_free(
            ngx_queue_data(ngx_queue_last(&ngx_http_automations_schemas),
                ngx_http_automations_schema_t, queue));
    }

    ngx_queue_insert_head(&ngx_http_automations_schemas, &e->queue);
    ngx_http_automations_nschemas++;

    return NGX_OK;
}


/* validates one instance; the pointer of a violation is under prefix */
static ngx_int_t
ngx_http_automations_schema_instance(ngx_http_request_t *r,
    ngx_http_automations_schema_t *e, yajl_val v, const char *prefix,
    ngx_int_t index, ngx_str_t *detail)
{
    int  rc;
    char ptr[256], keyword[64];

    rc = am_schema_validate(
        e->schema, v, ptr, sizeof(ptr), keyword, sizeof(keyword));

    if (rc == 1) {
        return NGX_OK;
    }

    detail->data = ngx_pnalloc(r->pool, 512);
    if (detail->data == NULL) {
        return NGX_ERROR;
    }

    if (index >= 0) {
        detail->len = ngx_snprintf(detail->data, 512,
                          "The input does not match the automation's "
                          "input_schema: %s/%i%s fails \"%s\"",
                          prefix, index, ptr, keyword)
                      - detail->data;

    } else {
        detail->len = ngx_snprintf(detail->data, 512,
                          "The input does not match the automation's "
                          "input_schema: %s%s fails \"%s\"",
                          prefix, ptr, keyword)
                      - detail->data;
    }

    return NGX_DECLINED;
}


/*
 * Validates a run's input with the cached input_schema of project/name:
 * each row of the run API's input array (rows set), or the start API's
 * seed (null when absent). sha1 gets the SHA-1 of the schema used, empty
 * when none is cached: the enqueue script then says whether there is one.
 * NGX_OK; NGX_DECLINED with detail naming the JSON pointer (in the request
 * body) and keyword of the first violation, to be said once the script
 * confirms the schema is still the automation's; NGX_ERROR.
 */
ngx_int_t
ngx_http_automations_schema_check(ngx_http_request_t *r, ngx_str_t *project,
    ngx_str_t *name, ngx_str_t *json, ngx_flag_t rows, ngx_str_t *sha1,
    ngx_str_t *detail)
{
    char                           err[200];
    size_t                         i;
    yajl_val                       v;
    ngx_int_t                      rc;
    ngx_http_automations_schema_t *e;

    static struct yajl_val_s null = {yajl_t_null, {0}};

    ngx_str_null(sha1);

    e = ngx_http_automations_schema_find(project, name);
    if (e == NULL) {
        return NGX_OK;
    }

    if (json->len == 0) {
        v = NULL;

    } else {
        /* the body's fields have been checked: this parse succeeds */
        v = am_json_parse((char *) json->data, json->len, AM_JSON_MAX_DEPTH,
            err, sizeof(err));
        if (v == NULL) {
            return NGX_ERROR;
        }
    }

    if (rows) {
        rc = NGX_OK;

        for (i = 0; v && i < v->u.array.len && rc == NGX_OK; i++) {
            rc = ngx_http_automations_schema_instance(
                r, e, v->u.array.values[i], "/input", i, detail);
        }

    } else {
        rc = ngx_http_automations_schema_instance(
            r, e, v ? v : &null, "/seed", -1, detail);
    }

    yajl_tree_free(v);

    if (rc != NGX_ERROR) {
        /* a copy: the entry may be dropped before the script is sent */
        sha1->data = ngx_pnalloc(r->pool, NGX_HTTP_AUTOMATIONS_SHA1_LEN);
        if (sha1->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(sha1->data, e->sha1, NGX_HTTP_AUTOMATIONS_SHA1_LEN);
        sha1->len = NGX_HTTP_AUTOMATIONS_SHA1_LEN;
    }

    return rc;
}
