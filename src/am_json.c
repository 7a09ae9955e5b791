/*
 * The project's JSON reader. yajl_tree_parse cannot be used on hostile text:
 * it enables comments (which hid nesting from a depth pre-scan), accepts
 * repeated keys (the last one silently wins), has no depth bound, and
 * yajl_tree_free recurses once per level. Here yajl's event parser, which
 * keeps its own state in a heap byte stack, drives a builder whose depth is
 * counted on the events themselves, so the bound holds whatever the bytes
 * are. Nodes are allocated exactly as yajl_tree allocates them.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "am_json.h"

/* objects with at most this many keys are checked for repeats pairwise */
#define AM_JSON_FEW_KEYS 8

/* the longest part of a repeated key quoted in an error */
#define AM_JSON_KEY_QUOTE 64


typedef struct {
    yajl_val node; /* the open object or array */
    size_t   cap;  /* slots allocated in its keys and values */
    char    *key;  /* object: the key read, waiting for its value */
} am_json_frame_t;

typedef struct {
    yajl_val        root;
    int             depth;
    int             max_depth;
    char           *err;
    size_t          errlen;
    int             failed; /* err holds the builder's own reason */
    am_json_frame_t stack[AM_JSON_DEPTH_LIMIT];
} am_json_builder_t;


static int __attribute__((format(printf, 2, 3)))
am_json_fail(am_json_builder_t *b, const char *fmt, ...)
{
    va_list ap;

    b->failed = 1;

    if (b->err != NULL && b->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(b->err, b->errlen, fmt, ap);
        va_end(ap);
    }

    return 0;
}


/*
 * RFC 3629 UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
 * yajl checks only the shape of multi-byte sequences, and its \u decoder
 * turns a lone low surrogate into bytes that are not UTF-8, so the decoded
 * strings are checked here.
 */
static int
am_json_utf8_valid(const unsigned char *s, size_t len)
{
    size_t        i, n, k;
    unsigned char c, lo, hi;

    for (i = 0; i < len; i += n) {
        c = s[i];
        lo = 0x80;
        hi = 0xbf;

        if (c < 0x80) {
            n = 1;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            if (c == 0xe0) {
                lo = 0xa0;
            } else if (c == 0xed) {
                hi = 0x9f;
            }
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            if (c == 0xf0) {
                lo = 0x90;
            } else if (c == 0xf4) {
                hi = 0x8f;
            }
        } else {
            return 0;
        }

        if (len - i < n || s[i + 1] < lo || s[i + 1] > hi) {
            return 0;
        }

        for (k = 2; k < n; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) {
                return 0;
            }
        }
    }

    return 1;
}


/* A decoded string or key as a C string, or NULL with the reason in b. */
static char *
am_json_text(am_json_builder_t *b, const unsigned char *s, size_t len)
{
    char *p;

    if (memchr(s, '\0', len) != NULL) {
        am_json_fail(b, "strings must not contain \\u0000");
        return NULL;
    }

    if (!am_json_utf8_valid(s, len)) {
        am_json_fail(b, "invalid UTF-8 in a string");
        return NULL;
    }

    p = malloc(len + 1);
    if (p == NULL) {
        am_json_fail(b, "out of memory");
        return NULL;
    }

    memcpy(p, s, len);
    p[len] = '\0';

    return p;
}


static yajl_val
am_json_node(am_json_builder_t *b, yajl_type type)
{
    yajl_val v;

    v = calloc(1, sizeof(struct yajl_val_s));
    if (v == NULL) {
        am_json_fail(b, "out of memory");
        return NULL;
    }

    v->type = type;

    return v;
}


/*
 * Hangs v under the open container (or makes it the root), at once, so
 * that a failure later frees it with the rest of the tree. On failure v is
 * freed here.
 */
static int
am_json_add(am_json_builder_t *b, yajl_val v)
{
    am_json_frame_t *f;
    const char     **keys;
    yajl_val        *values;
    size_t           len, cap;

    if (v == NULL) {
        return 0;
    }

    if (b->depth == 0) {
        b->root = v;
        return 1;
    }

    f = &b->stack[b->depth - 1];
    len =
        YAJL_IS_OBJECT(f->node) ? f->node->u.object.len : f->node->u.array.len;

    if (len == f->cap) {
        cap = f->cap ? 2 * f->cap : 4;

        if (YAJL_IS_OBJECT(f->node)) {
            keys = realloc(f->node->u.object.keys, cap * sizeof(char *));
            if (keys == NULL) {
                goto nomem;
            }

            f->node->u.object.keys = keys;
        }

        values = realloc(YAJL_IS_OBJECT(f->node) ? f->node->u.object.values
                                                 : f->node->u.array.values,
            cap * sizeof(yajl_val));
        if (values == NULL) {
            goto nomem;
        }

        if (YAJL_IS_OBJECT(f->node)) {
            f->node->u.object.values = values;
        } else {
            f->node->u.array.values = values;
        }

        f->cap = cap;
    }

    if (YAJL_IS_OBJECT(f->node)) {
        f->node->u.object.keys[len] = f->key;
        f->node->u.object.values[len] = v;
        f->node->u.object.len++;
        f->key = NULL;

    } else {
        f->node->u.array.values[len] = v;
        f->node->u.array.len++;
    }

    return 1;

nomem:

    am_json_free(v);
    return am_json_fail(b, "out of memory");
}


static int
am_json_open(am_json_builder_t *b, yajl_type type)
{
    yajl_val v;

    if (b->depth >= b->max_depth) {
        return am_json_fail(
            b, "JSON nested deeper than %d levels", b->max_depth);
    }

    v = am_json_node(b, type);
    if (!am_json_add(b, v)) {
        return 0;
    }

    b->stack[b->depth].node = v;
    b->stack[b->depth].cap = 0;
    b->stack[b->depth].key = NULL;
    b->depth++;

    return 1;
}


static int
am_json_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}


/*
 * Finds a key that appears twice in the object, by sorting a copy of its
 * keys: O(n log n) however large the object is (O(1) for a few keys).
 */
static int
am_json_keys_unique(am_json_builder_t *b, yajl_val obj)
{
    const char **sorted, *dup;
    size_t       i, n, q;

    n = obj->u.object.len;
    dup = NULL;

    if (n <= AM_JSON_FEW_KEYS) {
        /* the usual small object: comparing pairs beats a malloc and sort */
        for (i = 1; i < n && dup == NULL; i++) {
            for (q = 0; q < i; q++) {
                if (strcmp(obj->u.object.keys[q], obj->u.object.keys[i]) == 0) {
                    dup = obj->u.object.keys[i];
                    break;
                }
            }
        }

    } else {
        sorted = malloc(n * sizeof(char *));
        if (sorted == NULL) {
            return am_json_fail(b, "out of memory");
        }

        memcpy(sorted, obj->u.object.keys, n * sizeof(char *));
        qsort(sorted, n, sizeof(char *), am_json_key_cmp);

        for (i = 1; i < n; i++) {
            if (strcmp(sorted[i - 1], sorted[i]) == 0) {
                dup = sorted[i];
                break;
            }
        }

        free(sorted);
    }

    if (dup == NULL) {
        return 1;
    }

    /* quote a bounded part of the key, cut on a character boundary */
    q = strlen(dup);
    if (q > AM_JSON_KEY_QUOTE) {
        q = AM_JSON_KEY_QUOTE;
        while (q > 0 && ((unsigned char) dup[q] & 0xc0) == 0x80) {
            q--;
        }
    }

    return am_json_fail(b, "duplicate key \"%.*s%s\"", (int) q, dup,
        dup[q] != '\0' ? "..." : "");
}


static int
am_json_on_null(void *ctx)
{
    return am_json_add(ctx, am_json_node(ctx, yajl_t_null));
}


static int
am_json_on_boolean(void *ctx, int value)
{
    return am_json_add(
        ctx, am_json_node(ctx, value ? yajl_t_true : yajl_t_false));
}


/* The same fields and flags as yajl_tree gives a number. */
static int
am_json_on_number(void *ctx, const char *s, size_t len)
{
    yajl_val v;
    char    *end;
    size_t   i;

    v = am_json_node(ctx, yajl_t_number);
    if (v == NULL) {
        return 0;
    }

    v->u.number.r = malloc(len + 1);
    if (v->u.number.r == NULL) {
        free(v);
        return am_json_fail(ctx, "out of memory");
    }

    memcpy(v->u.number.r, s, len);
    v->u.number.r[len] = '\0';

    /* the lexer has checked the syntax: an integer is digits after a '-' */
    for (i = (s[0] == '-'); i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        /* void */
    }

    if (i == len) {
        errno = 0;
        v->u.number.i = strtoll(v->u.number.r, NULL, 10);
        if (errno == 0) {
            v->u.number.flags |= YAJL_NUMBER_INT_VALID;
        }
    }

    errno = 0;
    v->u.number.d = strtod(v->u.number.r, &end);
    if (errno == 0 && *end == '\0') {
        v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    }

    return am_json_add(ctx, v);
}


static int
am_json_on_string(void *ctx, const unsigned char *s, size_t len)
{
    yajl_val v;

    v = am_json_node(ctx, yajl_t_string);
    if (v == NULL) {
        return 0;
    }

    v->u.string = am_json_text(ctx, s, len);
    if (v->u.string == NULL) {
        free(v);
        return 0;
    }

    return am_json_add(ctx, v);
}


static int
am_json_on_start_map(void *ctx)
{
    return am_json_open(ctx, yajl_t_object);
}


static int
am_json_on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    am_json_builder_t *b = ctx;

    b->stack[b->depth - 1].key = am_json_text(b, s, len);

    return b->stack[b->depth - 1].key != NULL;
}


static int
am_json_on_end_map(void *ctx)
{
    am_json_builder_t *b = ctx;

    if (!am_json_keys_unique(b, b->stack[b->depth - 1].node)) {
        return 0;
    }

    b->depth--;
    return 1;
}


static int
am_json_on_start_array(void *ctx)
{
    return am_json_open(ctx, yajl_t_array);
}


static int
am_json_on_end_array(void *ctx)
{
    am_json_builder_t *b = ctx;

    b->depth--;
    return 1;
}


static const yajl_callbacks am_json_callbacks = {
    am_json_on_null,
    am_json_on_boolean,
    NULL,
    NULL,
    am_json_on_number,
    am_json_on_string,
    am_json_on_start_map,
    am_json_on_map_key,
    am_json_on_end_map,
    am_json_on_start_array,
    am_json_on_end_array,
};


yajl_val
am_json_parse(
    const char *text, size_t len, int max_depth, char *err, size_t errlen)
{
    am_json_builder_t b;
    yajl_handle       h;
    yajl_status       st;
    unsigned char    *msg;
    size_t            at;
    int               i;

    b.root = NULL;
    b.depth = 0;
    b.max_depth =
        max_depth < AM_JSON_DEPTH_LIMIT ? max_depth : AM_JSON_DEPTH_LIMIT;
    b.err = err;
    b.errlen = errlen;
    b.failed = 0;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    /* comments, trailing garbage and partial values stay off: the default */
    h = yajl_alloc(&am_json_callbacks, NULL, &b);
    if (h == NULL) {
        am_json_fail(&b, "out of memory");
        return NULL;
    }

    st = yajl_parse(h, (const unsigned char *) text, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    if (st != yajl_status_ok && !b.failed) {
        at = yajl_get_bytes_consumed(h);

        /* yajl calls a comment after the value "trailing garbage" */
        if (at + 1 < len && text[at] == '/'
            && (text[at + 1] == '*' || text[at + 1] == '/')) {
            am_json_fail(
                &b, "comments are not allowed in JSON, at byte %zu", at);

        } else if ((msg = yajl_get_error(h, 0, NULL, 0)) != NULL) {
            am_json_fail(&b, "%.*s at byte %zu",
                (int) strcspn((char *) msg, "\r\n"), (char *) msg, at);
            yajl_free_error(h, msg);

        } else {
            am_json_fail(&b, "invalid JSON");
        }
    }

    yajl_free(h);

    if (st == yajl_status_ok) {
        return b.root;
    }

    for (i = 0; i < b.depth; i++) {
        free(b.stack[i].key);
    }

    am_json_free(b.root);
    return NULL;
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


typedef enum { AM_JSON_LEAF, AM_JSON_OPEN, AM_JSON_CLOSE } am_json_event_e;

/*
 * Called by am_json_walk for each value (key is its member key, or NULL),
 * twice for a container: when entering and after its last child. Returns
 * 0 to stop the walk.
 */
typedef int (*am_json_visit_pt)(
    void *data, yajl_val v, const char *key, am_json_event_e ev);

typedef struct {
    yajl_val node;
    size_t   next; /* index of the next child to visit */
} am_json_pos_t;


/* 1 for a container */
static int
am_json_children(yajl_val v, size_t *n, yajl_val **values, const char ***keys)
{
    if (YAJL_IS_OBJECT(v)) {
        *n = v->u.object.len;
        *values = v->u.object.values;
        *keys = v->u.object.keys;
        return 1;
    }

    if (YAJL_IS_ARRAY(v)) {
        *n = v->u.array.len;
        *values = v->u.array.values;
        *keys = NULL;
        return 1;
    }

    return 0;
}


/*
 * Depth-first walk with an explicit stack. A container below
 * AM_JSON_DEPTH_LIMIT levels is passed as a leaf (never one from
 * am_json_parse). Returns 0 when visit stopped it.
 */
static int
am_json_walk(yajl_val root, am_json_visit_pt visit, void *data)
{
    am_json_pos_t stack[AM_JSON_DEPTH_LIMIT], *top;
    yajl_val      v, *values;
    const char   *key, **keys;
    size_t        depth, n;

    depth = 0;
    v = root;
    key = NULL;

    for (;;) {
        if (depth < AM_JSON_DEPTH_LIMIT
            && am_json_children(v, &n, &values, &keys)) {
            if (!visit(data, v, key, AM_JSON_OPEN)) {
                return 0;
            }

            stack[depth].node = v;
            stack[depth].next = 0;
            depth++;

        } else if (!visit(data, v, key, AM_JSON_LEAF)) {
            return 0;
        }

        for (;;) {
            if (depth == 0) {
                return 1;
            }

            top = &stack[depth - 1];
            am_json_children(top->node, &n, &values, &keys);

            if (top->next < n) {
                v = values[top->next];
                key = keys != NULL ? keys[top->next] : NULL;
                top->next++;
                break;
            }

            depth--;

            if (!visit(data, top->node, NULL, AM_JSON_CLOSE)) {
                return 0;
            }
        }
    }
}


static int
am_json_free_visit(void *data, yajl_val v, const char *key, am_json_event_e ev)
{
    size_t i;

    (void) data;
    (void) key;

    switch (ev) {
    case AM_JSON_OPEN:
        return 1;

    case AM_JSON_CLOSE:
        if (YAJL_IS_OBJECT(v)) {
            for (i = 0; i < v->u.object.len; i++) {
                free((char *) v->u.object.keys[i]);
            }

            free(v->u.object.keys);
            free(v->u.object.values);

        } else {
            free(v->u.array.values);
        }

        free(v);
        return 1;

    default:
        /* only a tree not made here can be deeper than the walk goes */
        if (YAJL_IS_OBJECT(v) || YAJL_IS_ARRAY(v)) {
            yajl_tree_free(v);
            return 1;
        }

        if (YAJL_IS_STRING(v)) {
            free(v->u.string);
        } else if (YAJL_IS_NUMBER(v)) {
            free(v->u.number.r);
        }

        free(v);
        return 1;
    }
}


void
am_json_free(yajl_val v)
{
    if (v != NULL) {
        am_json_walk(v, am_json_free_visit, NULL);
    }
}


static int
am_json_dump_visit(void *data, yajl_val v, const char *key, am_json_event_e ev)
{
    yajl_gen        g = data;
    yajl_gen_status st;

    if (key != NULL
        && yajl_gen_string(g, (const unsigned char *) key, strlen(key))
               != yajl_gen_status_ok) {
        return 0;
    }

    switch (v->type) {
    case yajl_t_string:
        st = yajl_gen_string(
            g, (const unsigned char *) v->u.string, strlen(v->u.string));
        break;
    case yajl_t_number:
        st = yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
        break;
    case yajl_t_object:
        if (ev == AM_JSON_LEAF) {
            return 0;
        }
        st = ev == AM_JSON_OPEN ? yajl_gen_map_open(g) : yajl_gen_map_close(g);
        break;
    case yajl_t_array:
        if (ev == AM_JSON_LEAF) {
            return 0;
        }
        st = ev == AM_JSON_OPEN ? yajl_gen_array_open(g)
                                : yajl_gen_array_close(g);
        break;
    case yajl_t_true:
        st = yajl_gen_bool(g, 1);
        break;
    case yajl_t_false:
        st = yajl_gen_bool(g, 0);
        break;
    default:
        st = yajl_gen_null(g);
    }

    return st == yajl_gen_status_ok;
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

    if (am_json_walk(v, am_json_dump_visit, g)
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
