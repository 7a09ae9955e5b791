/*
 * libFuzzer target for the strict JSON reader (src/am_json.c). Besides
 * "no crash, no leak, no undefined behaviour", every accepted text must
 * give a tree no deeper than the bound asked for, with no repeated key in
 * any object and only valid UTF-8 without NUL in strings, and dumping it
 * must give text that parses again and dumps the same.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_json.h"

#include "fuzz.h"

/* small, so that the depth refusal is reached often */
#define AM_FUZZ_DEPTH 8

typedef struct {
    yajl_val v;
    size_t   depth;
} am_fuzz_item_t;


/*
 * Valid UTF-8 decoded the other way round from am_json.c: by code point,
 * then checking that the shortest form was used and the value is a scalar.
 */
static void
am_fuzz_check_string(const char *str)
{
    const unsigned char *s = (const unsigned char *) str;
    unsigned long        cp, min;
    size_t               n, k;

    while (*s != '\0') {
        if (*s < 0x80) {
            s++;
            continue;
        }

        if ((*s & 0xe0) == 0xc0) {
            n = 2, cp = *s & 0x1f, min = 0x80;
        } else if ((*s & 0xf0) == 0xe0) {
            n = 3, cp = *s & 0x0f, min = 0x800;
        } else if ((*s & 0xf8) == 0xf0) {
            n = 4, cp = *s & 0x07, min = 0x10000;
        } else {
            am_fuzz_fail("invalid UTF-8 lead byte accepted");
        }

        for (k = 1; k < n; k++) {
            if ((s[k] & 0xc0) != 0x80) {
                am_fuzz_fail("invalid UTF-8 continuation accepted");
            }

            cp = (cp << 6) | (s[k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            am_fuzz_fail("overlong, surrogate or out of range UTF-8 accepted");
        }

        s += n;
    }
}


/*
 * Checks the invariants over the whole tree with an explicit work list:
 * the checker must not be what overflows on a deep tree.
 */
static void
am_fuzz_check_tree(yajl_val root, size_t max_depth)
{
    am_fuzz_item_t *work, it;
    size_t          n, cap, i, j, len;
    yajl_val       *values;

    cap = 64;
    work = malloc(cap * sizeof(*work));
    if (work == NULL) {
        return;
    }

    n = 0;
    work[n].v = root;
    work[n].depth = 0;
    n++;

    while (n > 0) {
        it = work[--n];

        if (YAJL_IS_STRING(it.v)) {
            am_fuzz_check_string(it.v->u.string);
        }

        if (YAJL_IS_OBJECT(it.v)) {
            values = it.v->u.object.values;
            len = it.v->u.object.len;

            for (i = 0; i < len; i++) {
                am_fuzz_check_string(it.v->u.object.keys[i]);
            }

            for (i = 0; i < len && i < 64; i++) {
                for (j = i + 1; j < len && j < 64; j++) {
                    if (strcmp(it.v->u.object.keys[i], it.v->u.object.keys[j])
                        == 0) {
                        am_fuzz_fail("repeated key accepted");
                    }
                }
            }

        } else if (YAJL_IS_ARRAY(it.v)) {
            values = it.v->u.array.values;
            len = it.v->u.array.len;

        } else {
            continue;
        }

        if (it.depth + 1 > max_depth) {
            am_fuzz_fail("tree deeper than max_depth");
        }

        for (i = 0; i < len; i++) {
            if (n == cap) {
                cap *= 2;
                work = realloc(work, cap * sizeof(*work));
                if (work == NULL) {
                    am_fuzz_fail("out of memory in the checker");
                }
            }

            work[n].v = values[i];
            work[n].depth = it.depth + 1;
            n++;
        }
    }

    free(work);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    yajl_val v, w;
    char     err[256], *out, *again;
    size_t   n, m;

    v = am_json_parse(
        (const char *) data, size, AM_FUZZ_DEPTH, err, sizeof(err));

    if (v == NULL) {
        if (err[0] == '\0') {
            am_fuzz_fail("refused without a reason");
        }

        return 0;
    }

    am_fuzz_check_tree(v, AM_FUZZ_DEPTH);

    out = am_json_dump(v, &n);
    if (out == NULL) {
        am_fuzz_fail("an accepted tree does not dump");
    }

    w = am_json_parse(out, n, AM_FUZZ_DEPTH, err, sizeof(err));
    if (w == NULL) {
        am_fuzz_fail("the dump of an accepted tree is refused");
    }

    again = am_json_dump(w, &m);
    if (again == NULL || m != n || memcmp(out, again, n) != 0) {
        am_fuzz_fail("dump, parse, dump is not stable");
    }

    free(again);
    free(out);
    am_json_free(w);

    /* both frees must release the same tree shape */
    yajl_tree_free(v);

    return 0;
}
