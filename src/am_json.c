#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "am_json.h"

/*
 * yajl_tree has no depth bound, so the nesting is measured first, outside
 * of strings, before yajl builds anything: 1 when fine, 0 when too deep,
 * -1 for an escaped NUL.
 */
static int
am_json_prescan(const char *p, size_t len, int max_depth)
{
    size_t i;
    int    depth, in_string;

    depth = 0;
    in_string = 0;

    for (i = 0; i < len; i++) {
        if (in_string) {
            if (p[i] == '\\') {
                /* C strings cannot hold an escaped NUL: refuse it */
                if (i + 5 < len && p[i + 1] == 'u' && p[i + 2] == '0'
                    && p[i + 3] == '0' && p[i + 4] == '0' && p[i + 5] == '0') {
                    return -1;
                }
                i++;
            } else if (p[i] == '"') {
                in_string = 0;
            }
            continue;
        }

        switch (p[i]) {
        case '"':
            in_string = 1;
            break;
        case '{':
        case '[':
            if (++depth > max_depth) {
                return 0;
            }
            break;
        case '}':
        case ']':
            depth--;
            break;
        }
    }

    return 1;
}

yajl_val
am_json_parse(
    const char *text, size_t len, int max_depth, char *err, size_t errlen)
{
    yajl_val v;
    char    *s;

    switch (am_json_prescan(text, len, max_depth)) {
    case 0:
        snprintf(err, errlen, "JSON nested deeper than %d levels", max_depth);
        return NULL;
    case -1:
        snprintf(err, errlen, "strings must not contain \\u0000");
        return NULL;
    }

    if (memchr(text, '\0', len) != NULL) {
        snprintf(err, errlen, "NUL byte in JSON text");
        return NULL;
    }

    s = malloc(len + 1);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    memcpy(s, text, len);
    s[len] = '\0';

    err[0] = '\0';
    v = yajl_tree_parse(s, err, errlen);
    free(s);

    if (v == NULL) {
        char *nl;

        if (err[0] == '\0') {
            snprintf(err, errlen, "invalid JSON");
        }

        /* yajl's message spans lines with a caret diagram: keep line one */
        nl = strchr(err, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
    }

    return v;
}

yajl_val
am_json_get(yajl_val v, const char *key)
{
    size_t i;

    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        return NULL;
    }

    for (i = 0; i < v->u.object.len; i++) {
        if (strcmp(v->u.object.keys[i], key) == 0) {
            return v->u.object.values[i];
        }
    }

    return NULL;
}

static int
am_json_gen(yajl_gen g, yajl_val v)
{
    size_t i;

    switch (v->type) {
    case yajl_t_string:
        return yajl_gen_string(
                   g, (const unsigned char *) v->u.string, strlen(v->u.string))
               == yajl_gen_status_ok;
    case yajl_t_number:
        return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r))
               == yajl_gen_status_ok;
    case yajl_t_object:
        if (yajl_gen_map_open(g) != yajl_gen_status_ok) {
            return 0;
        }
        for (i = 0; i < v->u.object.len; i++) {
            if (yajl_gen_string(g, (const unsigned char *) v->u.object.keys[i],
                    strlen(v->u.object.keys[i]))
                    != yajl_gen_status_ok
                || !am_json_gen(g, v->u.object.values[i])) {
                return 0;
            }
        }
        return yajl_gen_map_close(g) == yajl_gen_status_ok;
    case yajl_t_array:
        if (yajl_gen_array_open(g) != yajl_gen_status_ok) {
            return 0;
        }
        for (i = 0; i < v->u.array.len; i++) {
            if (!am_json_gen(g, v->u.array.values[i])) {
                return 0;
            }
        }
        return yajl_gen_array_close(g) == yajl_gen_status_ok;
    case yajl_t_true:
        return yajl_gen_bool(g, 1) == yajl_gen_status_ok;
    case yajl_t_false:
        return yajl_gen_bool(g, 0) == yajl_gen_status_ok;
    default:
        return yajl_gen_null(g) == yajl_gen_status_ok;
    }
}

char *
am_json_dump(yajl_val v, size_t *len)
{
    const unsigned char *buf;
    yajl_gen             g;
    char                *out;
    size_t               n;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NULL;
    }

    out = NULL;

    if (am_json_gen(g, v)
        && yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok) {
        out = malloc(n + 1);
        if (out != NULL) {
            memcpy(out, buf, n);
            out[n] = '\0';
            *len = n;
        }
    }

    yajl_gen_free(g);
    return out;
}
