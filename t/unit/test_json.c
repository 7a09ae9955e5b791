/*
 * Unit tests of src/am_json.c, printed as TAP: what the strict reader
 * accepts and refuses, with which reason, and that hostile shapes (deep
 * nesting hidden in a comment, a huge flat object) stay cheap.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "am_json.h"

#include "tap.h"


static char am_test_err[256];


static yajl_val
am_test_parse(const char *text, int max_depth)
{
    return am_json_parse(
        text, strlen(text), max_depth, am_test_err, sizeof(am_test_err));
}


/* 1 when text is refused with a reason containing want */
static int
am_test_refused(const char *text, const char *want)
{
    yajl_val v;

    v = am_test_parse(text, AM_JSON_MAX_DEPTH);
    if (v != NULL) {
        am_json_free(v);
        return 0;
    }

    if (strstr(am_test_err, want) == NULL) {
        printf("# reason: %s\n", am_test_err);
        return 0;
    }

    return 1;
}


/* 1 when text parses and dumps back as want */
static int
am_test_roundtrip(const char *text, const char *want)
{
    yajl_val v;
    char    *out;
    size_t   n;
    int      ok;

    v = am_test_parse(text, AM_JSON_MAX_DEPTH);
    if (v == NULL) {
        printf("# refused: %s\n", am_test_err);
        return 0;
    }

    out = am_json_dump(v, &n);
    ok = out != NULL && n == strlen(want) && strcmp(out, want) == 0;
    if (!ok) {
        printf("# dumped: %s\n", out ? out : "(null)");
    }

    free(out);
    am_json_free(v);

    return ok;
}


/* n opening brackets then n closing ones, after prefix */
static char *
am_test_nest(const char *prefix, size_t n, size_t *len)
{
    char  *p;
    size_t k;

    k = strlen(prefix);
    p = malloc(k + 2 * n + 1);
    if (p == NULL) {
        am_test_bail("out of memory");
    }

    memcpy(p, prefix, k);
    memset(p + k, '[', n);
    memset(p + k + n, ']', n);
    p[k + 2 * n] = '\0';
    *len = k + 2 * n;

    return p;
}


static void
am_test_accepts(void)
{
    yajl_val v, a;

    am_test_ok(am_test_roundtrip(" {\"a\" : [1, -2.5e3, true, false, null]} ",
                   "{\"a\":[1,-2.5e3,true,false,null]}"),
        "an object with every kind of value round-trips");

    am_test_ok(am_test_roundtrip(
                   "\"\\u00e9\\ud83d\\ude00\"", "\"\xc3\xa9\xf0\x9f\x98\x80\""),
        "escaped BMP character and surrogate pair decode to UTF-8");

    am_test_ok(am_test_roundtrip("\"\xe2\x82\xac\"", "\"\xe2\x82\xac\""),
        "raw UTF-8 is kept");

    am_test_ok(am_test_roundtrip("42", "42"), "a number at the top level");

    am_test_ok(am_test_roundtrip("{}", "{}") && am_test_roundtrip("[]", "[]"),
        "empty object and array");

    v = am_test_parse("{\"n\":7,\"big\":123456789012345678901234,"
                      "\"f\":1.5,\"s\":\"x\"}",
        AM_JSON_MAX_DEPTH);
    am_test_ok(v != NULL && YAJL_IS_INTEGER(am_json_get(v, "n"))
                   && YAJL_GET_INTEGER(am_json_get(v, "n")) == 7,
        "an integer is an integer");
    am_test_ok(v != NULL && !YAJL_IS_INTEGER(am_json_get(v, "big"))
                   && YAJL_IS_DOUBLE(am_json_get(v, "big")),
        "an integer past 64 bits is only a double");
    am_test_ok(v != NULL && !YAJL_IS_INTEGER(am_json_get(v, "f"))
                   && YAJL_GET_DOUBLE(am_json_get(v, "f")) == 1.5,
        "1.5 is a double, not an integer");
    am_test_ok(v != NULL && am_json_get(v, "missing") == NULL,
        "a missing key is NULL");
    yajl_tree_free(v);

    v = am_test_parse("[[[[1]]]]", 4);
    am_test_ok(v != NULL, "nesting at max_depth is accepted");
    a = v;
    while (a != NULL && YAJL_IS_ARRAY(a)) {
        a = a->u.array.len ? a->u.array.values[0] : NULL;
    }
    am_test_ok(a != NULL && YAJL_IS_INTEGER(a), "the innermost value is there");
    /* the tree is compatible with yajl's own free */
    yajl_tree_free(v);

    v = am_test_parse("{\"a\":{\"b\":1},\"b\":{\"a\":2}}", AM_JSON_MAX_DEPTH);
    am_test_ok(v != NULL, "the same key in different objects is fine");
    am_json_free(v);
}


static void
am_test_refuses(void)
{
    am_test_ok(am_test_refused("{\"a\":1 /* c */}", "comment"),
        "a block comment is refused");
    am_test_ok(am_test_refused("[1, // c\n 2]", "comment"),
        "a line comment is refused");
    am_test_ok(am_test_refused("{\"a\":1} /* c */", "comments are not allowed"),
        "a comment after the value is refused as a comment");
    am_test_ok(am_test_refused("{\"name\":\"a\",\"x\":1,\"name\":\"b\"}",
                   "duplicate key \"name\""),
        "a repeated key is refused by name");
    am_test_ok(am_test_refused("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,"
                               "\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"d\":10}",
                   "duplicate key \"d\""),
        "a repeated key among ten is refused by name");
    am_test_ok(
        am_test_refused("{\"a\":[{\"k\":1,\"k\":2}]}", "duplicate key \"k\""),
        "a repeated key deep inside is refused");
    am_test_ok(am_test_refused("{} x", "trailing garbage"),
        "trailing garbage is refused");
    am_test_ok(am_test_refused("{} {}", "trailing garbage"),
        "a second value is refused");
    am_test_ok(am_test_refused("", "premature EOF"), "empty text is refused");
    am_test_ok(am_test_refused("[1,", "premature EOF"),
        "a truncated array is refused");
    am_test_ok(
        am_test_refused("[1,]", "parse error"), "a trailing comma is refused");
    am_test_ok(
        am_test_refused("{'a':1}", "invalid"), "single quotes are refused");
    am_test_ok(am_test_refused("[\"a\\u0000b\"]", "\\u0000"),
        "an escaped NUL in a string is refused");
    am_test_ok(am_test_refused("{\"a\\u0000\":1}", "\\u0000"),
        "an escaped NUL in a key is refused");
    am_test_ok(
        am_json_parse("[1]\0", 4, 8, am_test_err, sizeof(am_test_err)) == NULL,
        "a raw NUL byte after the value is refused");
    am_test_ok(am_test_refused("\"\xc0\xaf\"", "UTF-8"),
        "an overlong UTF-8 form is refused");
    am_test_ok(am_test_refused("\"\xed\xa0\x80\"", "UTF-8"),
        "a raw UTF-16 surrogate is refused");
    am_test_ok(am_test_refused("\"\\udc00\"", "UTF-8"),
        "a lone escaped low surrogate is refused");
    am_test_ok(am_test_refused("\"\xf4\x90\x80\x80\"", "UTF-8"),
        "a code point past U+10FFFF is refused");
    am_test_ok(am_test_refused("\"\xe2\x82\"", "UTF"),
        "a truncated sequence is refused");
    am_test_ok(am_test_refused("[[1]]", "nested deeper") == 0,
        "shallow nesting passes the depth check");
    am_test_ok(
        am_json_parse("[[[[[1]]]]]", 11, 4, am_test_err, sizeof(am_test_err))
                == NULL
            && strstr(am_test_err, "deeper than 4") != NULL,
        "one level past max_depth is refused");
    am_test_ok(am_json_parse("[1]", 3, 0, NULL, 0) == NULL,
        "a NULL err buffer is allowed");
}


static void
am_test_long_key(void)
{
    char   text[420];
    char   key[201];
    size_t n;

    /* a 200-byte key of two-byte characters, so that the cut falls inside */
    for (n = 0; n < 100; n++) {
        key[2 * n] = (char) 0xc3;
        key[2 * n + 1] = (char) 0xa9;
    }
    key[200] = '\0';

    snprintf(text, sizeof(text), "{\"%s\":1,\"%s\":2}", key, key);
    am_test_ok(am_test_parse(text, 4) == NULL
                   && strstr(am_test_err, "...\"") != NULL
                   && strlen(am_test_err) < 100,
        "a long repeated key is quoted shortened: %s", am_test_err);
    am_test_ok(strstr(am_test_err, "\xc3\"") == NULL
                   && strstr(am_test_err, "\xc3.") == NULL,
        "and cut on a character boundary");
}


static void
am_test_hostile(void)
{
    yajl_val v;
    char    *text, *p;
    size_t   len, i, n;
    clock_t  t0;
    double   secs;

    /* the reported attack: the comment used to hide the nesting */
    text = am_test_nest("/*\"*/", 400000, &len);
    v = am_json_parse(
        text, len, AM_JSON_MAX_DEPTH, am_test_err, sizeof(am_test_err));
    am_test_ok(v == NULL && strstr(am_test_err, "comment") != NULL,
        "comment then 400,000 brackets: refused (%s)", am_test_err);
    free(text);

    text = am_test_nest("", 400000, &len);
    v = am_json_parse(
        text, len, AM_JSON_MAX_DEPTH, am_test_err, sizeof(am_test_err));
    am_test_ok(v == NULL && strstr(am_test_err, "deeper than 32") != NULL,
        "400,000 bare brackets: refused by depth (%s)", am_test_err);
    free(text);

    text = am_test_nest("", 400000, &len);
    v = am_json_parse(text, len, 1 << 30, am_test_err, sizeof(am_test_err));
    am_test_ok(v == NULL && strstr(am_test_err, "deeper than 100") != NULL,
        "a huge max_depth is capped at AM_JSON_DEPTH_LIMIT");
    free(text);

    text = am_test_nest("", AM_JSON_DEPTH_LIMIT, &len);
    v = am_json_parse(
        text, len, AM_JSON_DEPTH_LIMIT, am_test_err, sizeof(am_test_err));
    p = am_json_dump(v, &n);
    am_test_ok(v != NULL && p != NULL && n == len && memcmp(p, text, n) == 0,
        "%d levels parse and dump back", AM_JSON_DEPTH_LIMIT);
    free(p);
    am_json_free(v);
    free(text);

    /* about 1 MB: 75,000 distinct keys, then one key again at the end */
    len = 0;
    text = malloc(1100000);
    if (text == NULL) {
        am_test_bail("out of memory");
    }

    text[len++] = '{';
    for (i = 0; i < 75000; i++) {
        len += sprintf(text + len, "\"key%06zu\":0,", i);
    }
    len += sprintf(text + len, "\"key%06d\":1}", 4242);

    t0 = clock();
    v = am_json_parse(
        text, len, AM_JSON_MAX_DEPTH, am_test_err, sizeof(am_test_err));
    secs = (double) (clock() - t0) / CLOCKS_PER_SEC;
    am_test_ok(v == NULL && strstr(am_test_err, "key004242") != NULL,
        "a 1 MB object with one repeat: refused by name");
    am_test_ok(secs < 2.0, "in %.3f s (not quadratic)", secs);

    text[len - 12] = 'X';
    v = am_json_parse(
        text, len, AM_JSON_MAX_DEPTH, am_test_err, sizeof(am_test_err));
    am_test_ok(v != NULL && v->u.object.len == 75001,
        "without the repeat, all 75,001 members are there");
    am_json_free(v);
    free(text);
}


int
main(void)
{
    am_test_accepts();
    am_test_refuses();
    am_test_long_key();
    am_test_hostile();

    return am_test_done();
}
