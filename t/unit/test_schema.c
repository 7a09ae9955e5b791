/*
 * src/am_schema.c against the official JSON Schema Test Suite (draft
 * 2020-12), printed as TAP with a table per keyword file, then the checks
 * the gateway relies on beyond the suite: where a violation is reported,
 * invalid schemas refused, and hostile schemas stopped by the limits.
 *
 * The suite's folder is argv[1], else $AM_SCHEMA_SUITE, else
 * ../shared/testdata/json-schema-test-suite from the repository root; its
 * draft2020-12 (or tests/draft2020-12) files are read. Without it the
 * suite part is skipped. The last line is "N passed, N failed, N skipped"
 * for the suite.
 */

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "am_json.h"
#include "am_schema.h"

#include "tap.h"

#define AM_TEST_SUITE_DEFAULT "../shared/testdata/json-schema-test-suite"

/* the test files nest deeper than the gateway's request bodies may */
#define AM_TEST_PARSE_DEPTH 64

#define AM_TEST_MAX_FILES 128

/* U+E000 in UTF-8: stands in for \u0000, which the tree cannot hold */
#define AM_TEST_NUL_STANDIN "\xee\x80\x80"

/*
 * What "bounded" means in the limit tests: natively they end in under
 * 0.1 s, under valgrind on a busy machine in about 10 s; unbounded, they
 * would run for hours.
 */
#define AM_TEST_BOUNDED_SECS 30.0

/* how long the last am_test_check's validation took */
static double am_test_secs;


typedef struct {
    char name[64];
    int  passed, failed, skipped;
} am_test_file_t;


static char *
am_test_read(const char *path, size_t *len)
{
    FILE *f;
    char *buf, *p, *q;
    long  size;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    buf = NULL;

    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0
        && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t) size + 1);
        if (buf != NULL && fread(buf, 1, (size_t) size, f) != (size_t) size) {
            free(buf);
            buf = NULL;
        }
    }

    fclose(f);

    if (buf == NULL) {
        return NULL;
    }

    buf[size] = '\0';

    /*
     * Same length, so the text stays valid JSON; a backslash preceded by an
     * odd number of backslashes is itself escaped and starts no \u0000.
     */
    for (p = buf; (p = strstr(p, "\\u0000")) != NULL; p += 6) {
        for (q = p; q > buf && q[-1] == '\\'; q--) {
            /* the backslashes before p */
        }
        if ((p - q) % 2 == 0) {
            memcpy(p, "\\uE000", 6);
        }
    }

    *len = (size_t) size;
    return buf;
}


static int
am_test_has_nul(yajl_val v)
{
    size_t i;

    if (YAJL_IS_STRING(v)) {
        return strstr(v->u.string, AM_TEST_NUL_STANDIN) != NULL;
    }

    if (YAJL_IS_ARRAY(v)) {
        for (i = 0; i < v->u.array.len; i++) {
            if (am_test_has_nul(v->u.array.values[i])) {
                return 1;
            }
        }
    }

    if (YAJL_IS_OBJECT(v)) {
        for (i = 0; i < v->u.object.len; i++) {
            if (strstr(v->u.object.keys[i], AM_TEST_NUL_STANDIN) != NULL
                || am_test_has_nul(v->u.object.values[i])) {
                return 1;
            }
        }
    }

    return 0;
}


static void
am_test_group(am_test_file_t *tf, yajl_val group)
{
    am_schema_t *s;
    yajl_val     schema, tests, t, data, valid;
    const char  *gdesc, *tdesc, *skip;
    char         err[256], ptr[256], kw[64];
    size_t       i;
    int          rc, ok;

    schema = am_json_get(group, "schema");
    tests = am_json_get(group, "tests");
    gdesc = YAJL_GET_STRING(am_json_get(group, "description"));

    if (schema == NULL || !YAJL_IS_ARRAY(tests) || gdesc == NULL) {
        am_test_bail("a test group without schema, tests or description");
    }

    s = NULL;
    skip = NULL;
    err[0] = '\0';

    if (am_test_has_nul(group)) {
        skip = "\\u0000 in a string: the yajl tree holds C strings";

    } else {
        s = am_schema_compile(schema, err, sizeof(err));
        if (s == NULL
            && strncmp(err, AM_SCHEMA_UNSUPPORTED,
                   sizeof(AM_SCHEMA_UNSUPPORTED) - 1)
                   == 0) {
            skip = err;
        }
    }

    for (i = 0; i < tests->u.array.len; i++) {
        t = tests->u.array.values[i];
        data = am_json_get(t, "data");
        valid = am_json_get(t, "valid");
        tdesc = YAJL_GET_STRING(am_json_get(t, "description"));

        if (data == NULL || valid == NULL || tdesc == NULL) {
            am_test_bail("a test without data, valid or description");
        }

        if (skip != NULL) {
            tf->skipped++;
            printf("ok %d - %s: %s: %s # SKIP %s\n", ++am_test_n, tf->name,
                gdesc, tdesc, skip);
            continue;
        }

        if (s == NULL) {
            tf->failed++;
            am_test_ok(0, "%s: %s: %s (schema refused: %s)", tf->name, gdesc,
                tdesc, err);
            continue;
        }

        rc = am_schema_validate(s, data, ptr, sizeof(ptr), kw, sizeof(kw));

        /* a refusal must name the keyword that refused */
        ok = YAJL_IS_TRUE(valid) ? rc == 1 : rc == 0 && kw[0] != '\0';

        if (ok) {
            tf->passed++;
        } else {
            tf->failed++;
        }

        am_test_ok(ok, "%s: %s: %s", tf->name, gdesc, tdesc);
        if (!ok) {
            printf("#   returned %d at \"%s\" by %s\n", rc, ptr, kw);
        }
    }

    am_schema_free(s);
}


static int
am_test_name_cmp(const void *a, const void *b)
{
    return strcmp(
        ((const am_test_file_t *) a)->name, ((const am_test_file_t *) b)->name);
}


static am_test_file_t am_test_files[AM_TEST_MAX_FILES];
static size_t         am_test_nfiles;


/* runs the suite's files; 0 when there is no suite */
static int
am_test_suite(const char *root)
{
    am_test_file_t *files = am_test_files;
    struct dirent  *de;
    yajl_val        doc;
    size_t          len, i, k, n;
    char            dir[1024], path[1280], err[256], *text;
    DIR            *d;

    snprintf(dir, sizeof(dir), "%s/draft2020-12", root);
    d = opendir(dir);

    if (d == NULL) {
        snprintf(dir, sizeof(dir), "%s/tests/draft2020-12", root);
        d = opendir(dir);
    }

    if (d == NULL) {
        printf("# SKIP the test suite: no draft2020-12 folder in %s\n", root);
        return 0;
    }

    n = 0;

    while ((de = readdir(d)) != NULL) {
        len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0
            && len - 5 < sizeof(files[0].name) && n < AM_TEST_MAX_FILES) {
            memset(&files[n], 0, sizeof(files[n]));
            memcpy(files[n].name, de->d_name, len - 5);
            n++;
        }
    }

    closedir(d);
    qsort(files, n, sizeof(files[0]), am_test_name_cmp);

    if (n == 0) {
        am_test_bail("no test files in the suite's draft2020-12 folder");
    }

    for (i = 0; i < n; i++) {
        if (snprintf(path, sizeof(path), "%s/%s.json", dir, files[i].name)
            >= (int) sizeof(path)) {
            am_test_bail("the suite's path is too long");
        }
        text = am_test_read(path, &len);
        if (text == NULL) {
            am_test_bail("cannot read a test file");
        }

        doc = am_json_parse(text, len, AM_TEST_PARSE_DEPTH, err, sizeof(err));
        free(text);

        if (doc == NULL || !YAJL_IS_ARRAY(doc)) {
            printf("# %s: %s\n", path, doc ? "not an array" : err);
            am_test_bail("a test file is not a JSON array");
        }

        for (k = 0; k < doc->u.array.len; k++) {
            am_test_group(&files[i], doc->u.array.values[k]);
        }

        yajl_tree_free(doc);
    }

    am_test_nfiles = n;
    return 1;
}


/* the table per keyword file, and the totals line last */
static void
am_test_table(void)
{
    am_test_file_t total;
    size_t         i;

    memset(&total, 0, sizeof(total));
    printf("# %-24s %6s %6s %7s\n", "keyword", "passed", "failed", "skipped");

    for (i = 0; i < am_test_nfiles; i++) {
        printf("# %-24s %6d %6d %7d\n", am_test_files[i].name,
            am_test_files[i].passed, am_test_files[i].failed,
            am_test_files[i].skipped);
        total.passed += am_test_files[i].passed;
        total.failed += am_test_files[i].failed;
        total.skipped += am_test_files[i].skipped;
    }

    printf("# %-24s %6d %6d %7d\n", "total", total.passed, total.failed,
        total.skipped);
    printf("%d passed, %d failed, %d skipped\n", total.passed, total.failed,
        total.skipped);
}


static yajl_val
am_test_json(const char *text)
{
    yajl_val v;
    char     err[256];

    v = am_json_parse(text, strlen(text), AM_JSON_MAX_DEPTH, err, sizeof(err));
    if (v == NULL) {
        printf("# %s: %s\n", text, err);
        am_test_bail("a test's own JSON does not parse");
    }

    return v;
}


static double
am_test_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* validates instance against schema: rc, and where it failed */
static int
am_test_check(const char *schema, const char *instance, char *ptr,
    size_t ptrlen, char *kw, size_t kwlen)
{
    am_schema_t *s;
    yajl_val     sv, iv;
    char         err[256];
    int          rc;

    sv = am_test_json(schema);
    iv = am_test_json(instance);

    s = am_schema_compile(sv, err, sizeof(err));
    if (s == NULL) {
        printf("# %s: %s\n", schema, err);
        am_test_bail("a test's own schema does not compile");
    }

    am_test_secs = am_test_now();
    rc = am_schema_validate(s, iv, ptr, ptrlen, kw, kwlen);
    am_test_secs = am_test_now() - am_test_secs;

    am_schema_free(s);
    yajl_tree_free(sv);
    yajl_tree_free(iv);

    return rc;
}


static void
am_test_reports(void)
{
    char ptr[64], kw[32];
    int  rc;

    rc = am_test_check("{\"properties\": {\"items\": {\"type\": \"array\","
                       " \"items\": {\"type\": \"object\", \"properties\":"
                       " {\"a/b~c\": {\"maximum\": 3}}}}}}",
        "{\"items\": [{}, {\"a/b~c\": 4}]}", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 0 && strcmp(ptr, "/items/1/a~1b~0c") == 0
                   && strcmp(kw, "maximum") == 0,
        "a violation deep in the input names its JSON pointer and keyword"
        " (got \"%s\" %s)",
        ptr, kw);

    rc = am_test_check(
        "{\"required\": [\"name\"]}", "{}", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 0 && strcmp(ptr, "") == 0 && strcmp(kw, "required") == 0,
        "a missing required member is reported at the object");

    rc = am_test_check("{\"additionalProperties\": false}", "{\"x\": 1}", ptr,
        sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 0 && strcmp(ptr, "/x") == 0
                   && strcmp(kw, "additionalProperties") == 0,
        "a member refused by a false schema names the keyword that applied it");

    rc =
        am_test_check("{\"anyOf\": [{\"type\": \"string\"}, {\"minimum\": 5}]}",
            "3", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 0 && strcmp(kw, "anyOf") == 0,
        "a failed anyOf is reported as anyOf, not as one of its branches");

    rc = am_test_check("{\"definitions\": {\"id\": {\"type\": \"integer\"}},"
                       " \"properties\": {\"id\": {\"$ref\":"
                       " \"#/definitions/id\"}}}",
        "{\"id\": \"x\"}", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 0 && strcmp(ptr, "/id") == 0 && strcmp(kw, "type") == 0,
        "a $ref into draft-07 style definitions (not a 2020-12 keyword) works");

    rc = am_test_check("{\"$id\": \"https://example.com/schemas/a/root.json\","
                       " \"$defs\": {\"x\": {\"$id\": \"../common/./x.json\","
                       " \"type\": \"integer\"}}, \"$ref\":"
                       " \"https://example.com/schemas/common/x.json\"}",
        "\"1\"", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 0 && strcmp(kw, "type") == 0,
        "a relative $id with dot segments resolves against its parent's");

    rc = am_test_check("{\"properties\": {\"a\": {\"type\": \"integer\"}}}",
        "{\"a\": 1.0}", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 1, "1.0 is an integer");

    rc = am_test_check("{\"maximum\": 18446744073709551615}",
        "18446744073709551616", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 0 && strcmp(kw, "maximum") == 0,
        "numbers beyond 64 bits compare exactly");

    rc = am_test_check(
        "{\"multipleOf\": 0.01}", "19.99", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 1, "multipleOf is exact on decimals (19.99 of 0.01)");

    rc = am_test_check("{\"minLength\": 2, \"maxLength\": 2}",
        "\"\xc3\xa9\xe2\x82\xac\"", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 1, "string lengths count code points, not bytes");
}


/*
 * RFC 3986 section 5.4's reference resolution examples (those without a
 * fragment), each as a $ref that must land on the $id it resolves to.
 */
static void
am_test_uris(void)
{
    static const char *cases[][2] = {{"g", "http://a/b/c/g"},
        {"./g", "http://a/b/c/g"}, {"g/", "http://a/b/c/g/"},
        {"/g", "http://a/g"}, {"//g", "http://g"}, {"?y", "http://a/b/c/d;p?y"},
        {"g?y", "http://a/b/c/g?y"}, {";x", "http://a/b/c/;x"},
        {"g;x", "http://a/b/c/g;x"}, {".", "http://a/b/c/"},
        {"./", "http://a/b/c/"}, {"..", "http://a/b/"}, {"../", "http://a/b/"},
        {"../g", "http://a/b/g"}, {"../..", "http://a/"},
        {"../../", "http://a/"}, {"../../g", "http://a/g"},
        {"../../../g", "http://a/g"}, {"../../../../g", "http://a/g"},
        {"/./g", "http://a/g"}, {"/../g", "http://a/g"},
        {"g.", "http://a/b/c/g."}, {".g", "http://a/b/c/.g"},
        {"g..", "http://a/b/c/g.."}, {"..g", "http://a/b/c/..g"},
        {"./../g", "http://a/b/g"}, {"./g/.", "http://a/b/c/g/"},
        {"g/./h", "http://a/b/c/g/h"}, {"g/../h", "http://a/b/c/h"},
        {"g;x=1/./y", "http://a/b/c/g;x=1/y"}, {"g;x=1/../y", "http://a/b/c/y"},
        {"g?y/./x", "http://a/b/c/g?y/./x"}, {"http:g", "http:g"}};
    char               schema[512], ptr[64], kw[32];
    size_t             i;
    int                rc, wrong;

    wrong = 0;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(schema, sizeof(schema),
            "{\"$id\": \"http://a/b/c/d;p?q\", \"$defs\": {\"t\": {\"$id\":"
            " \"%s\", \"type\": \"integer\"}}, \"$ref\": \"%s\"}",
            cases[i][1], cases[i][0]);
        rc = am_test_check(schema, "\"x\"", ptr, sizeof(ptr), kw, sizeof(kw));
        if (rc != 0 || strcmp(kw, "type") != 0) {
            printf("# %s did not resolve to %s\n", cases[i][0], cases[i][1]);
            wrong++;
        }
    }

    am_test_ok(wrong == 0,
        "$ref resolves the RFC 3986 examples against the base $id (%d wrong)",
        wrong);
}


static void
am_test_invalid_schemas(void)
{
    static const char *bad[] = {
        "[]",
        "{\"type\": \"text\"}",
        "{\"minLength\": -1}",
        "{\"maxItems\": 1.5}",
        "{\"multipleOf\": 0}",
        "{\"pattern\": \"(\"}",
        "{\"patternProperties\": {\"[\": true}}",
        "{\"required\": [1]}",
        "{\"properties\": {\"a\": 1}}",
        "{\"allOf\": []}",
        "{\"$ref\": \"#/$defs/missing\"}",
        "{\"$ref\": \"#nowhere\"}",
        "{\"$anchor\": \"1bad\"}",
        "{\"$defs\": {\"a\": {\"$id\": \"x\"}, \"b\": {\"$id\": \"x\"}}}",
    };
    am_schema_t *s;
    yajl_val     v;
    size_t       i;
    char         err[256];

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = am_test_json(bad[i]);
        err[0] = '\0';
        s = am_schema_compile(v, err, sizeof(err));
        am_test_ok(s == NULL && err[0] != '\0'
                       && strncmp(err, AM_SCHEMA_UNSUPPORTED,
                              sizeof(AM_SCHEMA_UNSUPPORTED) - 1)
                              != 0,
            "schema %s is refused (%s)", bad[i], err);
        am_schema_free(s);
        yajl_tree_free(v);
    }

    v = am_test_json("{\"$ref\": \"https://example.com/other.json\"}");
    s = am_schema_compile(v, err, sizeof(err));
    am_test_ok(s == NULL
                   && strncmp(err, AM_SCHEMA_UNSUPPORTED,
                          sizeof(AM_SCHEMA_UNSUPPORTED) - 1)
                          == 0,
        "a $ref to another document is refused as unsupported (%s)", err);
    yajl_tree_free(v);
}


/* "[item,item,...]", n items, malloc'd */
static char *
am_test_array(size_t n, const char *item)
{
    size_t i, len;
    char  *buf, *p;

    len = strlen(item);
    buf = malloc(n * (len + 1) + 3);
    if (buf == NULL) {
        am_test_bail("out of memory");
    }

    p = buf;
    *p++ = '[';
    for (i = 0; i < n; i++) {
        if (i > 0) {
            *p++ = ',';
        }
        memcpy(p, item, len);
        p += len;
    }
    *p++ = ']';
    *p = '\0';

    return buf;
}


static void
am_test_limits(void)
{
    char   ptr[64], kw[32], *text, *array, *p;
    size_t i;
    int    rc;

    rc = am_test_check(
        "{\"$ref\": \"#\"}", "1", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == -1 && strcmp(kw, "limit") == 0,
        "a $ref cycle that never reaches the input ends at the depth limit");

    /* each level doubles the work: 2^40 evaluations without the budget */
    text = malloc(40 * 96 + 64);
    if (text == NULL) {
        am_test_bail("out of memory");
    }
    p = text + sprintf(text, "{\"$defs\": {\"d0\": {\"type\": \"string\"}");
    for (i = 1; i <= 40; i++) {
        p += sprintf(p,
            ", \"d%zu\": {\"anyOf\": [{\"$ref\": \"#/$defs/d%zu\"},"
            " {\"$ref\": \"#/$defs/d%zu\"}]}",
            i, i - 1, i - 1);
    }
    sprintf(p, "}, \"$ref\": \"#/$defs/d40\"}");
    rc = am_test_check(text, "1", ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == -1 && strcmp(kw, "limit") == 0
                   && am_test_secs < AM_TEST_BOUNDED_SECS,
        "an exponential schema ends at the step budget (%.3f s)", am_test_secs);
    free(text);

    /* catastrophic backtracking on a string of 40 "a" and a "b" */
    rc = am_test_check("{\"pattern\": \"^(a+)+$\"}",
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\"", ptr, sizeof(ptr), kw,
        sizeof(kw));
    am_test_ok(rc == -1 && strcmp(kw, "limit") == 0
                   && am_test_secs < AM_TEST_BOUNDED_SECS,
        "a backtracking pattern ends at the PCRE2 match limit (%.3f s)",
        am_test_secs);

    rc = am_test_check("{\"pattern\": \"^a+$\"}", "\"aaaa\"", ptr, sizeof(ptr),
        kw, sizeof(kw));
    am_test_ok(rc == 1, "an ordinary pattern still matches under the limits");

    /* 20000 distinct items: sorted by hash, not compared pairwise */
    text = malloc(20000 * 8 + 16);
    if (text == NULL) {
        am_test_bail("out of memory");
    }
    p = text + sprintf(text, "[0");
    for (i = 1; i < 20000; i++) {
        p += sprintf(p, ",%zu", i);
    }
    sprintf(p, ",1.0]");
    rc = am_test_check(
        "{\"uniqueItems\": true}", text, ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 0 && strcmp(kw, "uniqueItems") == 0
                   && am_test_secs < AM_TEST_BOUNDED_SECS,
        "uniqueItems on 20001 items finds 1 and 1.0 equal (%.3f s)",
        am_test_secs);
    free(text);

    /*
     * Each level walks a 20000-item array twice over: the budget must
     * count the items, not only the schemas.
     */
    text = malloc(20 * 128 + 64);
    if (text == NULL) {
        am_test_bail("out of memory");
    }
    p = text + sprintf(text, "{\"$defs\": {\"d0\": {\"items\": true}");
    for (i = 1; i <= 20; i++) {
        p += sprintf(p,
            ", \"d%zu\": {\"anyOf\": [{\"allOf\": [{\"$ref\": "
            "\"#/$defs/d%zu\"}, false]}, {\"$ref\": \"#/$defs/d%zu\"}]}",
            i, i - 1, i - 1);
    }
    sprintf(p, "}, \"$ref\": \"#/$defs/d20\"}");
    array = am_test_array(20000, "0");
    rc = am_test_check(text, array, ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == -1 && strcmp(kw, "limit") == 0
                   && am_test_secs < AM_TEST_BOUNDED_SECS,
        "a schema that re-walks a long input ends at the step budget"
        " (%.3f s)",
        am_test_secs);
    free(text);
    free(array);

    array = am_test_array(20000, "{\"id\": 1, \"name\": \"n\"}");
    rc = am_test_check(
        "{\"type\": \"array\", \"items\": {\"type\": \"object\","
        " \"required\": [\"id\", \"name\"], \"properties\": {\"id\":"
        " {\"type\": \"integer\"}, \"name\": {\"type\": \"string\","
        " \"maxLength\": 100}}, \"additionalProperties\": false}}",
        array, ptr, sizeof(ptr), kw, sizeof(kw));
    am_test_ok(rc == 1,
        "an input of 20000 records validates within the budget (%.3f s)",
        am_test_secs);
    free(array);
}


typedef struct {
    const am_schema_t *s;
    yajl_val           good, bad;
    int                wrong;
} am_test_thread_t;


static void *
am_test_thread(void *arg)
{
    am_test_thread_t *t = arg;
    char              ptr[64], kw[32];
    int               i;

    for (i = 0; i < 2000; i++) {
        if (am_schema_validate(t->s, t->good, ptr, sizeof(ptr), kw, sizeof(kw))
            != 1) {
            t->wrong++;
        }
        if (am_schema_validate(t->s, t->bad, ptr, sizeof(ptr), kw, sizeof(kw))
                != 0
            || strcmp(ptr, "/tags/1") != 0 || strcmp(kw, "pattern") != 0) {
            t->wrong++;
        }
    }

    return NULL;
}


/* one compiled schema, validated from four threads at once */
static void
am_test_threads(void)
{
    am_test_thread_t t[4];
    pthread_t        tid[4];
    am_schema_t     *s;
    yajl_val         sv, good, bad;
    char             err[256];
    int              i, wrong, started;

    sv = am_test_json(
        "{\"$defs\": {\"tag\": {\"type\": \"string\","
        " \"pattern\": \"^[a-z]+$\"}}, \"properties\": {\"tags\":"
        " {\"items\": {\"$ref\": \"#/$defs/tag\"}}}, \"anyOf\":"
        " [{\"required\": [\"tags\"]}, {\"required\": [\"name\"]}],"
        " \"unevaluatedProperties\": false}");
    good = am_test_json("{\"tags\": [\"a\", \"bc\"]}");
    bad = am_test_json("{\"tags\": [\"a\", \"B\"]}");

    s = am_schema_compile(sv, err, sizeof(err));
    if (s == NULL) {
        am_test_bail(err);
    }

    started = 0;
    for (i = 0; i < 4; i++) {
        t[i] = (am_test_thread_t){s, good, bad, 0};
        if (pthread_create(&tid[i], NULL, am_test_thread, &t[i]) == 0) {
            started++;
        }
    }

    wrong = 0;
    for (i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        wrong += t[i].wrong;
    }

    am_test_ok(started == 4 && wrong == 0,
        "four threads validating against one compiled schema all get the"
        " right answers (%d wrong)",
        wrong);

    am_schema_free(s);
    yajl_tree_free(sv);
    yajl_tree_free(good);
    yajl_tree_free(bad);
}


int
main(int argc, char **argv)
{
    const char *root;
    int         rc, ran;

    am_test_reports();
    am_test_uris();
    am_test_invalid_schemas();
    am_test_limits();
    am_test_threads();

    root = argc > 1 ? argv[1] : getenv("AM_SCHEMA_SUITE");
    ran = am_test_suite(root ? root : AM_TEST_SUITE_DEFAULT);

    rc = am_test_done();

    if (ran) {
        am_test_table();
    }

    return rc;
}
