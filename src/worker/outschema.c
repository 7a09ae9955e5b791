#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_crypto.h"
#include "am_json.h"
#include "am_schema.h"
#include "worker/outschema.h"

typedef struct {
    char               digest[AM_SHA256_HEX_LEN + 1];
    yajl_val           tree; /* the schema points into it */
    am_schema_t       *schema;
    unsigned long long used;
} am_outschema_t;

static am_outschema_t     am_outschemas[AM_OUTSCHEMA_CACHE];
static unsigned long long am_outschema_clock;

static void
am_outschema_drop(am_outschema_t *s)
{
    am_schema_free(s->schema);
    yajl_tree_free(s->tree);
    memset(s, 0, sizeof(*s));
}

/* The compiled schema of text, from the cache or compiled into it. */
static am_schema_t *
am_outschema_get(const char *text, size_t len, char *err, size_t errlen)
{
    am_outschema_t *s, *victim;
    char            digest[AM_SHA256_HEX_LEN + 1], why[200];
    yajl_val        tree;
    am_schema_t    *schema;
    size_t          i;

    am_sha256_hex(text, len, digest);
    victim = &am_outschemas[0];

    for (i = 0; i < AM_OUTSCHEMA_CACHE; i++) {
        s = &am_outschemas[i];
        if (s->schema != NULL && strcmp(s->digest, digest) == 0) {
            s->used = ++am_outschema_clock;
            return s->schema;
        }
        if (s->used < victim->used) {
            victim = s;
        }
    }

    tree = am_json_parse(text, len, AM_JSON_MAX_DEPTH, why, sizeof(why));
    schema = tree ? am_schema_compile(tree, why, sizeof(why)) : NULL;

    if (schema == NULL) {
        yajl_tree_free(tree);
        snprintf(err, errlen, "the output_schema cannot be used: %s", why);
        return NULL;
    }

    am_outschema_drop(victim);
    memcpy(victim->digest, digest, sizeof(digest));
    victim->tree = tree;
    victim->schema = schema;
    victim->used = ++am_outschema_clock;

    return schema;
}

int
am_outschema_check(const char *schema, size_t schema_len, const char *output,
    size_t output_len, char *err, size_t errlen)
{
    am_schema_t *s;
    yajl_val     v;
    char         ptr[256], keyword[64], why[128];
    int          rc;

    s = am_outschema_get(schema, schema_len, err, errlen);
    if (s == NULL) {
        return -1;
    }

    v = am_json_parse(output, output_len, AM_JSON_MAX_DEPTH, why, sizeof(why));
    if (v == NULL) {
        snprintf(err, errlen, "the output is not JSON: %s", why);
        return -1;
    }

    rc = am_schema_validate(s, v, ptr, sizeof(ptr), keyword, sizeof(keyword));
    yajl_tree_free(v);

    if (rc == 1) {
        return 1;
    }

    snprintf(err, errlen,
        "the output does not match the automation's output_schema: "
        "\"%s\" fails \"%s\"",
        ptr, keyword);

    return 0;
}

void
am_outschema_free(void)
{
    size_t i;

    for (i = 0; i < AM_OUTSCHEMA_CACHE; i++) {
        if (am_outschemas[i].schema != NULL) {
            am_outschema_drop(&am_outschemas[i]);
        }
    }
}
