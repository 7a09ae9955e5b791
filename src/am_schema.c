/*
 * JSON Schema draft 2020-12 validation on the yajl tree.
 *
 * Compiling walks the schema through the keywords that hold subschemas,
 * turns every schema object into a node with its keywords decoded
 * (numbers, counts, PCRE2 patterns), records each $id and $anchor under
 * its absolute URI, and finally points every $ref at its node. Validating
 * only reads the nodes, so threads can share them.
 *
 * unevaluatedItems and unevaluatedProperties need to know what the other
 * keywords of a schema and of its valid in-place subschemas evaluated: a
 * "seen" array, one byte per array item or object member, travels down
 * the in-place applicators. A subschema whose failure does not fail its
 * parent (anyOf, oneOf, not, if) writes into a scratch array that is
 * merged only when it is valid.
 *
 * Numbers are compared exactly on their decimal text, so big and precise
 * numbers, and 1.0 as an integer, behave as the specification says.
 */

#define PCRE2_CODE_UNIT_WIDTH 8

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#include "am_schema.h"

#define AM_SCHEMA_URI "https://json-schema.org/draft/2020-12/schema"

/* the base URI of a schema without $id: only ever compared with itself */
#define AM_SCHEMA_DEFAULT_BASE "urn:am-schema:root"

/* clamps exponents so that sums of two stay far from overflow */
#define AM_DEC_EXP_MAX 1000000000000000L


/* a JSON number as 0.d1d2...dn * 10^exp, read from its text in place */
typedef struct {
    const char *mant;
    int         intlen;
    int         first;
    int         n;
    long        exp;
    int         neg;
} am_dec_t;

typedef struct am_node_s am_node_t;

typedef struct {
    const char *key;
    am_node_t  *node;
} am_named_t;

typedef struct {
    pcre2_code *re;
    am_node_t  *node;
} am_pattern_t;

enum {
    AM_T_NULL = 1,
    AM_T_BOOLEAN = 2,
    AM_T_OBJECT = 4,
    AM_T_ARRAY = 8,
    AM_T_NUMBER = 16,
    AM_T_STRING = 32,
    AM_T_INTEGER = 64
};

enum {
    AM_N_MULTIPLE = 1,
    AM_N_MAXIMUM = 2,
    AM_N_EXMAXIMUM = 4,
    AM_N_MINIMUM = 8,
    AM_N_EXMINIMUM = 16
};

struct am_node_s {
    yajl_val    v;
    int         boolean; /* -1 for an object schema */
    char       *base;
    const char *ref;
    am_node_t  *ref_node;

    unsigned types;
    yajl_val enum_v;
    yajl_val const_v;

    unsigned    nums;
    am_dec_t    multiple_of, maximum, ex_maximum, minimum, ex_minimum;
    const char *multiple_text;

    long        max_length, min_length;
    pcre2_code *pattern;

    long        max_items, min_items, max_contains, min_contains;
    int         unique_items;
    size_t      nprefix;
    am_node_t **prefix;
    am_node_t  *items, *contains, *uneval_items;

    long          max_props, min_props;
    yajl_val      required, dep_required;
    size_t        nprops, npatterns, ndeps;
    am_named_t   *props, *deps;
    am_pattern_t *patterns;
    am_node_t    *additional, *prop_names, *uneval_props;

    size_t      nall, nany, none;
    am_node_t **all, **any, **one;
    am_node_t  *not_, *if_, *then_, *else_;
};

/* open addressing, keyed by a string (URIs) or by a pointer (tree nodes) */
typedef struct {
    const void *key;
    am_node_t  *node;
} am_slot_t;

typedef struct {
    am_slot_t *slots;
    size_t     cap, n;
    int        strings;
} am_map_t;

struct am_schema_s {
    am_node_t          **nodes;
    size_t               nnodes, cap;
    char               **keys; /* owned URI strings of the resources */
    size_t               nkeys, keycap;
    am_map_t             resources, compiled;
    pcre2_match_context *mctx;
    int                  has_patterns;
    am_node_t           *root;
    char                *err;
    size_t               errlen;
    int                  failed;
};

typedef struct {
    const char *key; /* NULL for an array index */
    size_t      idx;
} am_step_t;

typedef struct {
    const am_schema_t *s;
    pcre2_match_data  *md;
    long               steps;
    int                depth, quiet, done, npath;
    char              *ptr, *kw;
    size_t             ptrlen, kwlen;
    am_step_t          path[AM_SCHEMA_MAX_DEPTH + 1];
} am_ectx_t;


/* reads the number text s into d; the length of the text */
static size_t
am_dec_parse(const char *s, am_dec_t *d)
{
    const char *p;
    int         k, total, last, eneg;
    long        e;

    d->neg = (*s == '-');
    p = s + d->neg;
    d->mant = p;
    d->intlen = 0;

    while (isdigit((unsigned char) p[d->intlen])) {
        d->intlen++;
    }

    total = d->intlen;
    p += d->intlen;

    if (*p == '.') {
        for (p++; isdigit((unsigned char) *p); p++) {
            total++;
        }
    }

    e = 0;

    if (*p == 'e' || *p == 'E') {
        p++;
        eneg = (*p == '-');
        if (*p == '+' || *p == '-') {
            p++;
        }
        for (; isdigit((unsigned char) *p); p++) {
            if (e < AM_DEC_EXP_MAX) {
                e = e * 10 + (*p - '0');
            }
        }
        e = eneg ? -e : e;
    }

    d->first = -1;
    last = -1;

    for (k = 0; k < total; k++) {
        if (d->mant[k < d->intlen ? k : k + 1] != '0') {
            d->first = d->first < 0 ? k : d->first;
            last = k;
        }
    }

    if (d->first < 0) {
        d->first = 0;
        d->n = 0;
        d->exp = 0;
        d->neg = 0;
    } else {
        d->n = last - d->first + 1;
        d->exp = d->intlen - d->first + e;
    }

    return (size_t) (p - s);
}


static int
am_dec_digit(const am_dec_t *d, int i)
{
    int k;

    k = d->first + i;
    return d->mant[k < d->intlen ? k : k + 1] - '0';
}


static int
am_dec_cmp(const am_dec_t *a, const am_dec_t *b)
{
    int i, c, da, db;

    if (a->neg != b->neg) {
        return a->neg ? -1 : 1;
    }

    if (a->n == 0 || b->n == 0) {
        c = (a->n != 0) - (b->n != 0);

    } else if (a->exp != b->exp) {
        c = a->exp < b->exp ? -1 : 1;

    } else {
        c = 0;
        for (i = 0; i < a->n && i < b->n && c == 0; i++) {
            da = am_dec_digit(a, i);
            db = am_dec_digit(b, i);
            c = (da > db) - (da < db);
        }
        if (c == 0) {
            c = (a->n > b->n) - (a->n < b->n);
        }
    }

    return a->neg ? -c : c;
}


static int
am_dec_is_integer(const am_dec_t *d)
{
    return d->n == 0 || d->exp >= d->n;
}


/*
 * x = X * 10^a and m = M * 10^b with X and M free of trailing zeros: x/m
 * is an integer only when a >= b (else 10^(b-a) would have to divide X),
 * and then when M divides X * 10^(a-b), computed modulo M. A divisor of
 * more than 19 digits does not fit the modular arithmetic and falls back
 * to long double division.
 */
static int
am_dec_is_multiple(
    const am_dec_t *x, const char *xtext, const am_dec_t *m, const char *mtext)
{
    unsigned __int128 r, p, b, mod;
    long              e;
    long double       q;
    int               i;

    if (x->n == 0) {
        return 1;
    }

    e = (x->exp - x->n) - (m->exp - m->n);

    if (e < 0) {
        return 0;
    }

    if (m->n > 19) {
        q = strtold(xtext, NULL) / strtold(mtext, NULL);
        return isfinite(q) && q == floorl(q);
    }

    mod = 0;
    for (i = 0; i < m->n; i++) {
        mod = mod * 10 + am_dec_digit(m, i);
    }

    r = 0;
    for (i = 0; i < x->n; i++) {
        r = (r * 10 + am_dec_digit(x, i)) % mod;
    }

    p = 1 % mod;
    b = 10 % mod;

    while (e) {
        if (e & 1) {
            p = p * b % mod;
        }
        b = b * b % mod;
        e >>= 1;
    }

    return r * p % mod == 0;
}


/* a non-negative integer keyword value (2.0 counts), clamped to LONG_MAX */
static int
am_dec_count(yajl_val v, long *out)
{
    am_dec_t d;
    long     i, n;

    if (!YAJL_IS_NUMBER(v)) {
        return 0;
    }

    am_dec_parse(v->u.number.r, &d);

    if (d.neg || !am_dec_is_integer(&d)) {
        return 0;
    }

    if (d.exp > 18) {
        *out = LONG_MAX;
        return 1;
    }

    n = 0;
    for (i = 0; i < d.exp; i++) {
        n = n * 10 + (i < d.n ? am_dec_digit(&d, (int) i) : 0);
    }

    *out = n;
    return 1;
}


/* URI references (RFC 3986 section 5) */

typedef struct {
    const char *s;
    size_t      len;
    int         has;
} am_part_t;

typedef struct {
    am_part_t scheme, auth, path, query, frag;
} am_uri_t;


static void
am_uri_split(const char *u, am_uri_t *r)
{
    const char *p, *q;

    memset(r, 0, sizeof(*r));
    p = u;

    if (isalpha((unsigned char) *p)) {
        for (q = p;
             isalnum((unsigned char) *q) || *q == '+' || *q == '-' || *q == '.';
             q++) {
            /* the scheme's characters */
        }
        if (*q == ':') {
            r->scheme = (am_part_t){p, (size_t) (q - p), 1};
            p = q + 1;
        }
    }

    if (p[0] == '/' && p[1] == '/') {
        p += 2;
        q = p + strcspn(p, "/?#");
        r->auth = (am_part_t){p, (size_t) (q - p), 1};
        p = q;
    }

    q = p + strcspn(p, "?#");
    r->path = (am_part_t){p, (size_t) (q - p), 1};
    p = q;

    if (*p == '?') {
        p++;
        q = p + strcspn(p, "#");
        r->query = (am_part_t){p, (size_t) (q - p), 1};
        p = q;
    }

    if (*p == '#') {
        p++;
        r->frag = (am_part_t){p, strlen(p), 1};
    }
}


/* RFC 3986 5.2.4; in is modified, out receives at most len bytes */
static size_t
am_uri_remove_dots(char *in, size_t len, char *out)
{
    size_t i, o;

    i = 0;
    o = 0;

    while (i < len) {
        if (len - i >= 3 && memcmp(in + i, "../", 3) == 0) {
            i += 3;
        } else if (len - i >= 2 && memcmp(in + i, "./", 2) == 0) {
            i += 2;
        } else if (len - i >= 3 && memcmp(in + i, "/./", 3) == 0) {
            i += 2;
        } else if (len - i == 2 && memcmp(in + i, "/.", 2) == 0) {
            i += 1;
            in[i] = '/';
        } else if ((len - i >= 4 && memcmp(in + i, "/../", 4) == 0)
                   || (len - i == 3 && memcmp(in + i, "/..", 3) == 0)) {
            /* "/../" and a final "/.." both leave a "/" */
            if (len - i == 3) {
                i += 2;
                in[i] = '/';
            } else {
                i += 3;
            }
            while (o > 0 && out[o - 1] != '/') {
                o--;
            }
            if (o > 0) {
                o--;
            }
        } else if ((len - i == 1 && in[i] == '.')
                   || (len - i == 2 && memcmp(in + i, "..", 2) == 0)) {
            i = len;
        } else {
            do {
                out[o++] = in[i++];
            } while (i < len && in[i] != '/');
        }
    }

    return o;
}


static void
am_put(char *buf, size_t *o, const char *s, size_t len)
{
    memcpy(buf + *o, s, len);
    *o += len;
}


/* the absolute form of reference ref against base, malloc'd */
static char *
am_uri_resolve(const char *ref, const char *base)
{
    am_uri_t  r, b;
    am_part_t auth, query;
    char     *out, *merged;
    size_t    o, size, m;

    am_uri_split(ref, &r);
    am_uri_split(base, &b);

    size = strlen(ref) + strlen(base) + 8;
    out = malloc(size);
    merged = malloc(size);

    if (out == NULL || merged == NULL) {
        free(out);
        free(merged);
        return NULL;
    }

    m = 0;
    auth = r.scheme.has || r.auth.has ? r.auth : b.auth;
    query = r.query;

    if (r.scheme.has || r.auth.has) {
        am_put(merged, &m, r.path.s, r.path.len);

    } else if (r.path.len == 0) {
        am_put(merged, &m, b.path.s, b.path.len);
        query = r.query.has ? r.query : b.query;

    } else if (r.path.s[0] == '/') {
        am_put(merged, &m, r.path.s, r.path.len);

    } else {
        if (b.auth.has && b.path.len == 0) {
            am_put(merged, &m, "/", 1);
        } else {
            for (o = b.path.len; o > 0 && b.path.s[o - 1] != '/'; o--) {
                /* up to the last "/" of the base path */
            }
            am_put(merged, &m, b.path.s, o);
        }
        am_put(merged, &m, r.path.s, r.path.len);
    }

    o = 0;

    if (r.scheme.has || b.scheme.has) {
        am_put(out, &o, r.scheme.has ? r.scheme.s : b.scheme.s,
            r.scheme.has ? r.scheme.len : b.scheme.len);
        am_put(out, &o, ":", 1);
    }

    if (auth.has) {
        am_put(out, &o, "//", 2);
        am_put(out, &o, auth.s, auth.len);
    }

    /* a path without dot segments to remove (URNs) is kept as it is */
    if (r.path.len == 0 || memchr(merged, '.', m) == NULL) {
        am_put(out, &o, merged, m);
    } else {
        o += am_uri_remove_dots(merged, m, out + o);
    }

    if (query.has) {
        am_put(out, &o, "?", 1);
        am_put(out, &o, query.s, query.len);
    }

    if (r.frag.has) {
        am_put(out, &o, "#", 1);
        am_put(out, &o, r.frag.s, r.frag.len);
    }

    out[o] = '\0';
    free(merged);

    return out;
}


/* maps */

static uint64_t
am_hash_bytes(uint64_t h, const void *p, size_t len)
{
    const unsigned char *s;
    size_t               i;

    s = p;
    for (i = 0; i < len; i++) {
        h = (h ^ s[i]) * 0x100000001b3ULL;
    }

    return h;
}


static size_t
am_map_index(const am_map_t *m, const void *key)
{
    uint64_t h;

    h = 0xcbf29ce484222325ULL;
    h = m->strings ? am_hash_bytes(h, key, strlen(key))
                   : am_hash_bytes(h, &key, sizeof(key));

    return (size_t) (h & (m->cap - 1));
}


static int
am_map_same(const am_map_t *m, const void *a, const void *b)
{
    return m->strings ? strcmp(a, b) == 0 : a == b;
}


static am_node_t *
am_map_get(const am_map_t *m, const void *key)
{
    size_t i;

    if (m->cap == 0) {
        return NULL;
    }

    for (i = am_map_index(m, key); m->slots[i].key != NULL;
         i = (i + 1) & (m->cap - 1)) {
        if (am_map_same(m, m->slots[i].key, key)) {
            return m->slots[i].node;
        }
    }

    return NULL;
}


/* 1 when added, 0 when the key is there already, -1 without memory */
static int
am_map_put(am_map_t *m, const void *key, am_node_t *node)
{
    am_map_t old;
    size_t   i;

    if (am_map_get(m, key) != NULL) {
        return 0;
    }

    if ((m->n + 1) * 2 > m->cap) {
        old = *m;
        m->cap = old.cap ? old.cap * 2 : 64;
        m->slots = calloc(m->cap, sizeof(am_slot_t));
        if (m->slots == NULL) {
            *m = old;
            return -1;
        }
        m->n = 0;
        for (i = 0; i < old.cap; i++) {
            if (old.slots[i].key != NULL) {
                am_map_put(m, old.slots[i].key, old.slots[i].node);
            }
        }
        free(old.slots);
    }

    for (i = am_map_index(m, key); m->slots[i].key != NULL;
         i = (i + 1) & (m->cap - 1)) {
        /* the next free slot */
    }

    m->slots[i].key = key;
    m->slots[i].node = node;
    m->n++;

    return 1;
}


/* compiling */

static am_node_t *__attribute__((format(printf, 2, 3)))
am_cerr(am_schema_t *s, const char *fmt, ...)
{
    va_list ap;

    if (!s->failed) {
        va_start(ap, fmt);
        vsnprintf(s->err, s->errlen, fmt, ap);
        va_end(ap);
        s->failed = 1;
    }

    return NULL;
}


static yajl_val
am_get(yajl_val v, const char *key)
{
    size_t i;

    for (i = 0; i < v->u.object.len; i++) {
        if (strcmp(v->u.object.keys[i], key) == 0) {
            return v->u.object.values[i];
        }
    }

    return NULL;
}


static void *
am_alloc(am_schema_t *s, size_t n, size_t size)
{
    void *p;

    p = calloc(n ? n : 1, size);
    if (p == NULL) {
        am_cerr(s, "out of memory");
    }

    return p;
}


/* the owned copy of a resource URI, kept until am_schema_free */
static char *
am_keep(am_schema_t *s, char *key)
{
    char **keys;

    if (key == NULL) {
        am_cerr(s, "out of memory");
        return NULL;
    }

    if (s->nkeys == s->keycap) {
        keys = realloc(s->keys, (s->keycap * 2 + 16) * sizeof(char *));
        if (keys == NULL) {
            free(key);
            am_cerr(s, "out of memory");
            return NULL;
        }
        s->keys = keys;
        s->keycap = s->keycap * 2 + 16;
    }

    s->keys[s->nkeys++] = key;
    return key;
}


/*
 * ECMA-262 names Unicode general categories in full (\p{Letter}); this
 * PCRE2 knows only the short names, so the long ones are translated.
 */
static char *
am_regex_categories(const char *pattern)
{
    static const char *names[][2] = {{"Letter", "L"}, {"Cased_Letter", "L&"},
        {"Uppercase_Letter", "Lu"}, {"Lowercase_Letter", "Ll"},
        {"Titlecase_Letter", "Lt"}, {"Modifier_Letter", "Lm"},
        {"Other_Letter", "Lo"}, {"Mark", "M"}, {"Nonspacing_Mark", "Mn"},
        {"Spacing_Mark", "Mc"}, {"Enclosing_Mark", "Me"}, {"Number", "N"},
        {"Decimal_Number", "Nd"}, {"digit", "Nd"}, {"Letter_Number", "Nl"},
        {"Other_Number", "No"}, {"Punctuation", "P"}, {"punct", "P"},
        {"Connector_Punctuation", "Pc"}, {"Dash_Punctuation", "Pd"},
        {"Open_Punctuation", "Ps"}, {"Close_Punctuation", "Pe"},
        {"Initial_Punctuation", "Pi"}, {"Final_Punctuation", "Pf"},
        {"Other_Punctuation", "Po"}, {"Symbol", "S"}, {"Math_Symbol", "Sm"},
        {"Currency_Symbol", "Sc"}, {"Modifier_Symbol", "Sk"},
        {"Other_Symbol", "So"}, {"Separator", "Z"}, {"Space_Separator", "Zs"},
        {"Line_Separator", "Zl"}, {"Paragraph_Separator", "Zp"}, {"Other", "C"},
        {"Control", "Cc"}, {"cntrl", "Cc"}, {"Format", "Cf"},
        {"Surrogate", "Cs"}, {"Private_Use", "Co"}, {"Unassigned", "Cn"}};
    const char        *p, *end;
    char              *out;
    size_t             o, i, len;

    out = malloc(strlen(pattern) + 1);
    if (out == NULL) {
        return NULL;
    }

    o = 0;

    for (p = pattern; *p; p++) {
        out[o++] = *p;

        if (*p != '\\' || p[1] == '\0') {
            continue;
        }

        out[o++] = *++p;

        if ((*p != 'p' && *p != 'P') || p[1] != '{'
            || (end = strchr(p + 2, '}')) == NULL) {
            continue;
        }

        len = (size_t) (end - p - 2);

        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (strlen(names[i][0]) == len
                && memcmp(p + 2, names[i][0], len) == 0) {
                o += (size_t) sprintf(out + o, "{%s}", names[i][1]);
                p = end;
                break;
            }
        }
    }

    out[o] = '\0';
    return out;
}


static pcre2_code *
am_regex(am_schema_t *s, const char *pattern)
{
    pcre2_code *re;
    PCRE2_SIZE  off;
    PCRE2_UCHAR msg[120];
    char       *translated;
    int         rc;

    translated = am_regex_categories(pattern);
    if (translated == NULL) {
        am_cerr(s, "out of memory");
        return NULL;
    }

    /* ECMA-262's "$" matches only at the very end */
    re = pcre2_compile((PCRE2_SPTR) translated, PCRE2_ZERO_TERMINATED,
        PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &rc, &off, NULL);
    free(translated);

    if (re == NULL) {
        pcre2_get_error_message(rc, msg, sizeof(msg));
        am_cerr(s, "pattern \"%.60s\" at offset %zu: %s", pattern, (size_t) off,
            (char *) msg);
        return NULL;
    }

    s->has_patterns = 1;
    return re;
}


static am_node_t *am_compile_node(
    am_schema_t *s, yajl_val v, const char *base, int depth);


static am_node_t **
am_compile_list(am_schema_t *s, yajl_val v, const char *kw, size_t *n,
    const char *base, int depth)
{
    am_node_t **list;
    size_t      i;

    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0) {
        am_cerr(s, "%s must be a non-empty array of schemas", kw);
        return NULL;
    }

    list = am_alloc(s, v->u.array.len, sizeof(am_node_t *));
    if (list == NULL) {
        return NULL;
    }

    *n = v->u.array.len;

    for (i = 0; i < v->u.array.len; i++) {
        list[i] = am_compile_node(s, v->u.array.values[i], base, depth);
        if (list[i] == NULL) {
            break;
        }
    }

    return list;
}


static am_named_t *
am_compile_named(am_schema_t *s, yajl_val v, const char *kw, size_t *n,
    const char *base, int depth)
{
    am_named_t *list;
    size_t      i;

    if (!YAJL_IS_OBJECT(v)) {
        am_cerr(s, "%s must be an object of schemas", kw);
        return NULL;
    }

    list = am_alloc(s, v->u.object.len, sizeof(am_named_t));
    if (list == NULL) {
        return NULL;
    }

    *n = v->u.object.len;

    for (i = 0; i < v->u.object.len; i++) {
        list[i].key = v->u.object.keys[i];
        list[i].node = am_compile_node(s, v->u.object.values[i], base, depth);
        if (list[i].node == NULL) {
            break;
        }
    }

    return list;
}


static int
am_strings(yajl_val v)
{
    size_t i;

    if (!YAJL_IS_ARRAY(v)) {
        return 0;
    }

    for (i = 0; i < v->u.array.len; i++) {
        if (!YAJL_IS_STRING(v->u.array.values[i])) {
            return 0;
        }
    }

    return 1;
}


static int
am_compile_types(am_schema_t *s, am_node_t *n, yajl_val v)
{
    static const char *names[] = {
        "null", "boolean", "object", "array", "number", "string", "integer"};
    yajl_val t;
    size_t   i, k, count;

    count = YAJL_IS_ARRAY(v) ? v->u.array.len : 1;

    for (i = 0; i < count; i++) {
        t = YAJL_IS_ARRAY(v) ? v->u.array.values[i] : v;
        for (k = 0; k < 7; k++) {
            if (YAJL_IS_STRING(t) && strcmp(t->u.string, names[k]) == 0) {
                break;
            }
        }
        if (k == 7) {
            am_cerr(s, "type must be a type name or an array of them");
            return 0;
        }
        n->types |= 1u << k;
    }

    return 1;
}


static int
am_compile_number(am_schema_t *s, am_node_t *n, const char *kw, yajl_val v)
{
    static const struct {
        const char *name;
        unsigned    flag;
        size_t      off;
    } kws[] = {
        {"multipleOf", AM_N_MULTIPLE, offsetof(am_node_t, multiple_of)},
        {"maximum", AM_N_MAXIMUM, offsetof(am_node_t, maximum)},
        {"exclusiveMaximum", AM_N_EXMAXIMUM, offsetof(am_node_t, ex_maximum)},
        {"minimum", AM_N_MINIMUM, offsetof(am_node_t, minimum)},
        {"exclusiveMinimum", AM_N_EXMINIMUM, offsetof(am_node_t, ex_minimum)},
    };
    am_dec_t *d;
    size_t    i;

    for (i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
        if (strcmp(kw, kws[i].name) == 0) {
            break;
        }
    }

    if (i == sizeof(kws) / sizeof(kws[0])) {
        return -1;
    }

    if (!YAJL_IS_NUMBER(v)) {
        am_cerr(s, "%s must be a number", kw);
        return 0;
    }

    d = (am_dec_t *) ((char *) n + kws[i].off);
    am_dec_parse(v->u.number.r, d);
    n->nums |= kws[i].flag;

    if (kws[i].flag == AM_N_MULTIPLE) {
        if (d->n == 0 || d->neg) {
            am_cerr(s, "multipleOf must be greater than 0");
            return 0;
        }
        n->multiple_text = v->u.number.r;
    }

    return 1;
}


static int
am_compile_count(am_schema_t *s, am_node_t *n, const char *kw, yajl_val v)
{
    static const struct {
        const char *name;
        size_t      off;
    } kws[] = {
        {"maxLength", offsetof(am_node_t, max_length)},
        {"minLength", offsetof(am_node_t, min_length)},
        {"maxItems", offsetof(am_node_t, max_items)},
        {"minItems", offsetof(am_node_t, min_items)},
        {"maxContains", offsetof(am_node_t, max_contains)},
        {"minContains", offsetof(am_node_t, min_contains)},
        {"maxProperties", offsetof(am_node_t, max_props)},
        {"minProperties", offsetof(am_node_t, min_props)},
    };
    size_t i;

    for (i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
        if (strcmp(kw, kws[i].name) == 0) {
            break;
        }
    }

    if (i == sizeof(kws) / sizeof(kws[0])) {
        return -1;
    }

    if (!am_dec_count(v, (long *) ((char *) n + kws[i].off))) {
        am_cerr(s, "%s must be a non-negative integer", kw);
        return 0;
    }

    return 1;
}


static int
am_anchor_name(const char *a)
{
    if (!isalpha((unsigned char) *a) && *a != '_') {
        return 0;
    }

    for (a++; *a; a++) {
        if (!isalnum((unsigned char) *a) && strchr("-._", *a) == NULL) {
            return 0;
        }
    }

    return 1;
}


/* $schema, $id, $anchor, $ref: the node's identity and base URI */
static int
am_compile_ids(am_schema_t *s, am_node_t *n, const char *base)
{
    yajl_val v;
    char    *uri, *hash, *anchor;
    int      rc;

    v = am_get(n->v, "$schema");
    if (v != NULL) {
        if (!YAJL_IS_STRING(v)) {
            am_cerr(s, "$schema must be a string");
            return 0;
        }
        if (strcmp(v->u.string, AM_SCHEMA_URI) != 0
            && strcmp(v->u.string, AM_SCHEMA_URI "#") != 0) {
            am_cerr(s, AM_SCHEMA_UNSUPPORTED "meta-schema %.80s", v->u.string);
            return 0;
        }
    }

    if (am_get(n->v, "$vocabulary") != NULL) {
        am_cerr(s, AM_SCHEMA_UNSUPPORTED "$vocabulary");
        return 0;
    }

    if (am_get(n->v, "$dynamicRef") != NULL
        || am_get(n->v, "$dynamicAnchor") != NULL) {
        am_cerr(s, AM_SCHEMA_UNSUPPORTED "$dynamicRef and $dynamicAnchor");
        return 0;
    }

    v = am_get(n->v, "$id");

    if (v == NULL) {
        n->base = am_keep(s, strdup(base));

    } else {
        if (!YAJL_IS_STRING(v)) {
            am_cerr(s, "$id must be a string");
            return 0;
        }
        uri = am_keep(s, am_uri_resolve(v->u.string, base));
        if (uri == NULL) {
            return 0;
        }
        hash = strchr(uri, '#');
        if (hash != NULL) {
            if (hash[1] != '\0') {
                am_cerr(s, "$id must not have a fragment: %.80s", v->u.string);
                return 0;
            }
            *hash = '\0';
        }
        rc = am_map_put(&s->resources, uri, n);
        if (rc == 0) {
            am_cerr(s, "$id %.80s is used twice", uri);
            return 0;
        }
        if (rc < 0) {
            am_cerr(s, "out of memory");
            return 0;
        }
        n->base = uri;
    }

    if (n->base == NULL) {
        return 0;
    }

    v = am_get(n->v, "$anchor");

    if (v != NULL) {
        if (!YAJL_IS_STRING(v) || !am_anchor_name(v->u.string)) {
            am_cerr(s, "$anchor must be a plain name");
            return 0;
        }
        anchor = malloc(strlen(n->base) + strlen(v->u.string) + 2);
        if (anchor != NULL) {
            sprintf(anchor, "%s#%s", n->base, v->u.string);
        }
        if (am_keep(s, anchor) == NULL) {
            return 0;
        }
        rc = am_map_put(&s->resources, anchor, n);
        if (rc <= 0) {
            am_cerr(s, rc ? "out of memory" : "$anchor %.80s is used twice",
                anchor);
            return 0;
        }
    }

    v = am_get(n->v, "$ref");

    if (v != NULL) {
        if (!YAJL_IS_STRING(v)) {
            am_cerr(s, "$ref must be a string");
            return 0;
        }
        n->ref = v->u.string;
    }

    return 1;
}


static int
am_compile_keyword(
    am_schema_t *s, am_node_t *n, const char *kw, yajl_val v, int depth)
{
    const char *b;
    size_t      i, ignored;
    int         rc;

    b = n->base;

    rc = am_compile_number(s, n, kw, v);
    if (rc >= 0) {
        return rc;
    }

    rc = am_compile_count(s, n, kw, v);
    if (rc >= 0) {
        return rc;
    }

    if (strcmp(kw, "type") == 0) {
        return am_compile_types(s, n, v);

    } else if (strcmp(kw, "enum") == 0) {
        if (!YAJL_IS_ARRAY(v)) {
            am_cerr(s, "enum must be an array");
            return 0;
        }
        n->enum_v = v;

    } else if (strcmp(kw, "const") == 0) {
        n->const_v = v;

    } else if (strcmp(kw, "pattern") == 0) {
        if (!YAJL_IS_STRING(v)) {
            am_cerr(s, "pattern must be a string");
            return 0;
        }
        n->pattern = am_regex(s, v->u.string);

    } else if (strcmp(kw, "uniqueItems") == 0) {
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            am_cerr(s, "uniqueItems must be a boolean");
            return 0;
        }
        n->unique_items = YAJL_IS_TRUE(v);

    } else if (strcmp(kw, "required") == 0) {
        if (!am_strings(v)) {
            am_cerr(s, "required must be an array of strings");
            return 0;
        }
        n->required = v;

    } else if (strcmp(kw, "dependentRequired") == 0) {
        if (!YAJL_IS_OBJECT(v)) {
            am_cerr(s, "dependentRequired must be an object");
            return 0;
        }
        for (i = 0; i < v->u.object.len; i++) {
            if (!am_strings(v->u.object.values[i])) {
                am_cerr(s, "dependentRequired values must be arrays of "
                           "strings");
                return 0;
            }
        }
        n->dep_required = v;

    } else if (strcmp(kw, "properties") == 0) {
        n->props = am_compile_named(s, v, kw, &n->nprops, b, depth);

    } else if (strcmp(kw, "dependentSchemas") == 0) {
        n->deps = am_compile_named(s, v, kw, &n->ndeps, b, depth);

    } else if (strcmp(kw, "$defs") == 0) {
        free(am_compile_named(s, v, kw, &ignored, b, depth));

    } else if (strcmp(kw, "patternProperties") == 0) {
        if (!YAJL_IS_OBJECT(v)) {
            am_cerr(s, "patternProperties must be an object of schemas");
            return 0;
        }
        n->patterns = am_alloc(s, v->u.object.len, sizeof(am_pattern_t));
        if (n->patterns == NULL) {
            return 0;
        }
        n->npatterns = v->u.object.len;
        for (i = 0; i < v->u.object.len && !s->failed; i++) {
            n->patterns[i].re = am_regex(s, v->u.object.keys[i]);
            n->patterns[i].node =
                am_compile_node(s, v->u.object.values[i], b, depth);
        }

    } else if (strcmp(kw, "prefixItems") == 0) {
        n->prefix = am_compile_list(s, v, kw, &n->nprefix, b, depth);

    } else if (strcmp(kw, "allOf") == 0) {
        n->all = am_compile_list(s, v, kw, &n->nall, b, depth);

    } else if (strcmp(kw, "anyOf") == 0) {
        n->any = am_compile_list(s, v, kw, &n->nany, b, depth);

    } else if (strcmp(kw, "oneOf") == 0) {
        n->one = am_compile_list(s, v, kw, &n->none, b, depth);

    } else if (strcmp(kw, "items") == 0) {
        n->items = am_compile_node(s, v, b, depth);

    } else if (strcmp(kw, "contains") == 0) {
        n->contains = am_compile_node(s, v, b, depth);

    } else if (strcmp(kw, "unevaluatedItems") == 0) {
        n->uneval_items = am_compile_node(s, v, b, depth);

    } else if (strcmp(kw, "additionalProperties") == 0) {
        n->additional = am_compile_node(s, v, b, depth);

    } else if (strcmp(kw, "propertyNames") == 0) {
        n->prop_names = am_compile_node(s, v, b, depth);

    } else if (strcmp(kw, "unevaluatedProperties") == 0) {
        n->uneval_props = am_compile_node(s, v, b, depth);

    } else if (strcmp(kw, "not") == 0) {
        n->not_ = am_compile_node(s, v, b, depth);

    } else if (strcmp(kw, "if") == 0) {
        n->if_ = am_compile_node(s, v, b, depth);

    } else if (strcmp(kw, "then") == 0) {
        n->then_ = am_compile_node(s, v, b, depth);

    } else if (strcmp(kw, "else") == 0) {
        n->else_ = am_compile_node(s, v, b, depth);
    }

    /* anything else is an annotation or unknown, and never fails */

    return !s->failed;
}


static am_node_t *
am_compile_node(am_schema_t *s, yajl_val v, const char *base, int depth)
{
    am_node_t **nodes;
    am_node_t  *n;
    size_t      i;

    if (s->failed) {
        return NULL;
    }

    if (depth >= AM_SCHEMA_MAX_DEPTH) {
        return am_cerr(s, "schema nested deeper than %d", AM_SCHEMA_MAX_DEPTH);
    }

    if (!YAJL_IS_OBJECT(v) && !YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
        return am_cerr(s, "a schema must be an object or a boolean");
    }

    if (s->nnodes == s->cap) {
        nodes = realloc(s->nodes, (s->cap * 2 + 16) * sizeof(am_node_t *));
        if (nodes == NULL) {
            return am_cerr(s, "out of memory");
        }
        s->nodes = nodes;
        s->cap = s->cap * 2 + 16;
    }

    n = am_alloc(s, 1, sizeof(am_node_t));
    if (n == NULL) {
        return NULL;
    }

    s->nodes[s->nnodes++] = n;
    n->v = v;
    n->boolean = YAJL_IS_OBJECT(v) ? -1 : YAJL_IS_TRUE(v);
    n->max_length = n->min_length = -1;
    n->max_items = n->min_items = -1;
    n->max_contains = n->min_contains = -1;
    n->max_props = n->min_props = -1;

    if (am_map_put(&s->compiled, v, n) < 0) {
        return am_cerr(s, "out of memory");
    }

    if (n->boolean != -1) {
        return n;
    }

    if (!am_compile_ids(s, n, base)) {
        return NULL;
    }

    for (i = 0; i < v->u.object.len; i++) {
        if (!am_compile_keyword(
                s, n, v->u.object.keys[i], v->u.object.values[i], depth + 1)) {
            return NULL;
        }
    }

    return n;
}


/* the text of a URI fragment with its %XX escapes decoded, malloc'd */
static char *
am_percent_decode(const char *s)
{
    char  *out;
    size_t o;
    int    hi, lo;

    out = malloc(strlen(s) + 1);
    if (out == NULL) {
        return NULL;
    }

    for (o = 0; *s; s++) {
        if (*s == '%' && isxdigit((unsigned char) s[1])
            && isxdigit((unsigned char) s[2])) {
            hi = isdigit((unsigned char) s[1]) ? s[1] - '0'
                                               : (tolower(s[1]) - 'a' + 10);
            lo = isdigit((unsigned char) s[2]) ? s[2] - '0'
                                               : (tolower(s[2]) - 'a' + 10);
            out[o++] = (char) (hi * 16 + lo);
            s += 2;
        } else {
            out[o++] = *s;
        }
    }

    out[o] = '\0';
    return out;
}


/* the value at JSON pointer p (decoded) under v, or NULL */
static yajl_val
am_pointer(yajl_val v, char *p)
{
    char  *tok, *next, *r, *w;
    size_t i;

    while (v != NULL && *p == '/') {
        tok = p + 1;
        next = strchr(tok, '/');
        if (next != NULL) {
            *next = '\0';
        }

        for (r = w = tok; *r; r++) {
            if (r[0] == '~' && (r[1] == '0' || r[1] == '1')) {
                *w++ = r[1] == '0' ? '~' : '/';
                r++;
            } else {
                *w++ = *r;
            }
        }
        *w = '\0';

        if (YAJL_IS_OBJECT(v)) {
            v = am_get(v, tok);

        } else if (YAJL_IS_ARRAY(v) && *tok != '\0'
                   && strspn(tok, "0123456789") == strlen(tok)
                   && (tok[0] != '0' || tok[1] == '\0')) {
            i = strtoul(tok, NULL, 10);
            v = i < v->u.array.len ? v->u.array.values[i] : NULL;

        } else {
            v = NULL;
        }

        if (next == NULL) {
            return v;
        }
        *next = '/';
        p = next;
    }

    return *p == '\0' ? v : NULL;
}


static int
am_resolve_ref(am_schema_t *s, am_node_t *n)
{
    am_node_t *res, *target;
    yajl_val   v;
    char      *uri, *hash, *frag;

    uri = am_uri_resolve(n->ref, n->base);
    if (uri == NULL) {
        am_cerr(s, "out of memory");
        return 0;
    }

    hash = strchr(uri, '#');
    frag = NULL;
    target = NULL;

    if (hash != NULL && hash[1] != '\0' && hash[1] != '/') {
        /* a plain-name fragment: an $anchor */
        target = am_map_get(&s->resources, uri);
        if (target == NULL) {
            *hash = '\0';
        }
    } else if (hash != NULL) {
        *hash = '\0';
    }

    if (target == NULL) {
        res = am_map_get(&s->resources, uri);

        if (res == NULL) {
            am_cerr(s,
                AM_SCHEMA_UNSUPPORTED "$ref to another document: "
                                      "%.80s",
                n->ref);
            free(uri);
            return 0;
        }

        if (hash == NULL || hash[1] == '\0') {
            target = res;

        } else if (hash[1] != '/') {
            am_cerr(s, "$ref %.80s: no such $anchor", n->ref);

        } else {
            frag = am_percent_decode(hash + 1);
            v = frag ? am_pointer(res->v, frag) : NULL;
            if (v == NULL) {
                am_cerr(s, "$ref %.80s points to nothing", n->ref);
            } else {
                target = am_map_get(&s->compiled, v);
                if (target == NULL) {
                    /* a schema under a keyword unknown to us */
                    target = am_compile_node(s, v, res->base, 0);
                }
            }
            free(frag);
        }
    }

    free(uri);
    n->ref_node = target;

    return target != NULL;
}


am_schema_t *
am_schema_compile(yajl_val schema, char *err, size_t errlen)
{
    am_schema_t *s;
    size_t       i;

    s = calloc(1, sizeof(am_schema_t));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    s->err = err;
    s->errlen = errlen;
    s->resources.strings = 1;

    s->root = am_compile_node(s, schema, AM_SCHEMA_DEFAULT_BASE, 0);

    /* refs resolve after the whole tree is compiled: the root is known */
    if (s->root != NULL && s->root->boolean == -1
        && am_get(schema, "$id") == NULL
        && am_map_put(&s->resources, AM_SCHEMA_DEFAULT_BASE, s->root) < 0) {
        am_cerr(s, "out of memory");
    }

    /* nodes compiled for a $ref target join the end of the list */
    for (i = 0; i < s->nnodes && !s->failed; i++) {
        if (s->nodes[i]->ref != NULL) {
            am_resolve_ref(s, s->nodes[i]);
        }
    }

    if (!s->failed && s->has_patterns) {
        s->mctx = pcre2_match_context_create(NULL);
        if (s->mctx == NULL) {
            am_cerr(s, "out of memory");
        } else {
            pcre2_set_match_limit(s->mctx, AM_SCHEMA_MATCH_LIMIT);
            pcre2_set_depth_limit(s->mctx, AM_SCHEMA_DEPTH_LIMIT);
            pcre2_set_heap_limit(s->mctx, AM_SCHEMA_HEAP_LIMIT_KB);
        }
    }

    if (s->failed) {
        am_schema_free(s);
        return NULL;
    }

    s->err = NULL;
    return s;
}


void
am_schema_free(am_schema_t *s)
{
    am_node_t *n;
    size_t     i, k;

    if (s == NULL) {
        return;
    }

    for (i = 0; i < s->nnodes; i++) {
        n = s->nodes[i];
        pcre2_code_free(n->pattern);
        for (k = 0; n->patterns != NULL && k < n->npatterns; k++) {
            pcre2_code_free(n->patterns[k].re);
        }
        free(n->patterns);
        free(n->props);
        free(n->deps);
        free(n->prefix);
        free(n->all);
        free(n->any);
        free(n->one);
        free(n);
    }

    for (i = 0; i < s->nkeys; i++) {
        free(s->keys[i]);
    }

    pcre2_match_context_free(s->mctx);
    free(s->resources.slots);
    free(s->compiled.slots);
    free(s->keys);
    free(s->nodes);
    free(s);
}


/* validating */

static void
am_record(am_ectx_t *x, const char *kw)
{
    size_t      o, i;
    const char *k;
    char        num[24];

    o = 0;

    for (i = 0; i < (size_t) x->npath; i++) {
        k = x->path[i].key;
        if (k == NULL) {
            snprintf(num, sizeof(num), "%zu", x->path[i].idx);
            k = num;
        }
        if (o + 1 < x->ptrlen) {
            x->ptr[o++] = '/';
        }
        for (; *k; k++) {
            if ((*k == '~' || *k == '/') && o + 2 < x->ptrlen) {
                x->ptr[o++] = '~';
                x->ptr[o++] = *k == '~' ? '0' : '1';
            } else if (*k != '~' && *k != '/' && o + 1 < x->ptrlen) {
                x->ptr[o++] = *k;
            }
        }
    }

    if (x->ptrlen) {
        x->ptr[o] = '\0';
    }

    if (x->kwlen) {
        snprintf(x->kw, x->kwlen, "%s", kw);
    }

    x->done = 1;
}


static int
am_fail(am_ectx_t *x, const char *kw)
{
    if (!x->quiet && !x->done) {
        am_record(x, kw);
    }

    return 0;
}


static int
am_limit(am_ectx_t *x)
{
    am_record(x, "limit");
    return -1;
}


/*
 * Counts work proportional to n bytes or members against the step budget,
 * so that long strings, numbers and containers cost what they take; true
 * when the budget is spent.
 */
static int
am_charge(am_ectx_t *x, size_t n)
{
    x->steps += (long) (n / 64);
    return x->steps > AM_SCHEMA_MAX_STEPS;
}


static size_t
am_len(yajl_val v)
{
    return YAJL_IS_OBJECT(v)  ? v->u.object.len
           : YAJL_IS_ARRAY(v) ? v->u.array.len
                              : 0;
}


static int
am_is_integer(am_ectx_t *x, yajl_val v)
{
    am_dec_t d;

    am_charge(x, am_dec_parse(v->u.number.r, &d));
    return am_dec_is_integer(&d);
}


static uint64_t
am_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}


/* a hash equal for equal instances (1 and 1.0, members in any order) */
static int
am_hash(am_ectx_t *x, yajl_val v, int depth, uint64_t *out)
{
    uint64_t h, sub, key;
    am_dec_t d;
    size_t   i, len;
    int      k;

    if (depth > AM_SCHEMA_MAX_DEPTH || ++x->steps > AM_SCHEMA_MAX_STEPS) {
        return -1;
    }

    h = 0xcbf29ce484222325ULL + (uint64_t) v->type;

    if (YAJL_IS_STRING(v)) {
        len = strlen(v->u.string);
        am_charge(x, len);
        h = am_hash_bytes(h, v->u.string, len);

    } else if (YAJL_IS_NUMBER(v)) {
        am_charge(x, am_dec_parse(v->u.number.r, &d));
        h = am_hash_bytes(h, &d.exp, sizeof(d.exp));
        h = am_hash_bytes(h, &d.neg, sizeof(d.neg));
        for (k = 0; k < d.n; k++) {
            h = (h ^ (uint64_t) am_dec_digit(&d, k)) * 0x100000001b3ULL;
        }

    } else if (YAJL_IS_ARRAY(v)) {
        for (i = 0; i < v->u.array.len; i++) {
            if (am_hash(x, v->u.array.values[i], depth + 1, &sub) < 0) {
                return -1;
            }
            h = am_mix(h ^ sub);
        }

    } else if (YAJL_IS_OBJECT(v)) {
        for (i = 0; i < v->u.object.len; i++) {
            if (am_hash(x, v->u.object.values[i], depth + 1, &sub) < 0) {
                return -1;
            }
            len = strlen(v->u.object.keys[i]);
            am_charge(x, len);
            key =
                am_hash_bytes(0xcbf29ce484222325ULL, v->u.object.keys[i], len);
            h += am_mix(key ^ am_mix(sub));
        }
    }

    *out = h;
    return 0;
}


/* 1 equal, 0 not, -1 over a limit */
static int
am_equal(am_ectx_t *x, yajl_val a, yajl_val b, int depth)
{
    am_dec_t da, db;
    size_t   i, k;
    int      rc;

    if (depth > AM_SCHEMA_MAX_DEPTH || ++x->steps > AM_SCHEMA_MAX_STEPS) {
        return -1;
    }

    if (a->type != b->type) {
        return 0;
    }

    switch (a->type) {
    case yajl_t_string:
        am_charge(x, strlen(a->u.string));
        return strcmp(a->u.string, b->u.string) == 0;

    case yajl_t_number:
        am_charge(x, am_dec_parse(a->u.number.r, &da));
        am_charge(x, am_dec_parse(b->u.number.r, &db));
        return am_dec_cmp(&da, &db) == 0;

    case yajl_t_array:
        if (a->u.array.len != b->u.array.len) {
            return 0;
        }
        for (i = 0; i < a->u.array.len; i++) {
            rc = am_equal(
                x, a->u.array.values[i], b->u.array.values[i], depth + 1);
            if (rc != 1) {
                return rc;
            }
        }
        return 1;

    case yajl_t_object:
        if (a->u.object.len != b->u.object.len) {
            return 0;
        }
        for (i = 0; i < a->u.object.len; i++) {
            for (k = 0; k < b->u.object.len; k++) {
                if (++x->steps > AM_SCHEMA_MAX_STEPS) {
                    return -1;
                }
                if (strcmp(a->u.object.keys[i], b->u.object.keys[k]) == 0) {
                    break;
                }
            }
            if (k == b->u.object.len) {
                return 0;
            }
            rc = am_equal(
                x, a->u.object.values[i], b->u.object.values[k], depth + 1);
            if (rc != 1) {
                return rc;
            }
        }
        return 1;

    default:
        return 1;
    }
}


typedef struct {
    uint64_t h;
    size_t   i;
} am_hashed_t;


static int
am_hashed_cmp(const void *a, const void *b)
{
    const am_hashed_t *x = a, *y = b;

    return (x->h > y->h) - (x->h < y->h);
}


/* 1 when the items are unique: sorted by hash, equal hashes compared */
static int
am_unique(am_ectx_t *x, yajl_val v)
{
    am_hashed_t *hs;
    size_t       i, j, k, l, n;
    int          rc, eq;

    n = v->u.array.len;
    hs = malloc((n ? n : 1) * sizeof(am_hashed_t));
    if (hs == NULL) {
        return -1;
    }

    rc = 1;

    for (i = 0; i < n && rc == 1; i++) {
        hs[i].i = i;
        if (am_hash(x, v->u.array.values[i], 0, &hs[i].h) < 0) {
            rc = -1;
        }
    }

    if (rc == 1) {
        qsort(hs, n, sizeof(am_hashed_t), am_hashed_cmp);
    }

    for (i = 0; i < n && rc == 1; i = j) {
        for (j = i + 1; j < n && hs[j].h == hs[i].h; j++) {
            /* the run of equal hashes */
        }
        for (k = i; k < j && rc == 1; k++) {
            for (l = k + 1; l < j && rc == 1; l++) {
                eq = am_equal(x, v->u.array.values[hs[k].i],
                    v->u.array.values[hs[l].i], 0);
                rc = eq < 0 ? -1 : !eq;
            }
        }
    }

    free(hs);
    return rc;
}


/* 1 match, 0 none, -1 when a PCRE2 limit stopped it */
static int
am_match(am_ectx_t *x, pcre2_code *re, const char *str)
{
    size_t len;
    int    rc;

    len = strlen(str);

    if (++x->steps > AM_SCHEMA_MAX_STEPS || am_charge(x, len)) {
        return -1;
    }

    rc = pcre2_match(re, (PCRE2_SPTR) str, len, 0, 0, x->md, x->s->mctx);

    return rc >= 0 ? 1 : rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}


static int am_eval(am_ectx_t *x, const am_node_t *n, yajl_val inst,
    unsigned char *seen, const char *via);


static void
am_merge(unsigned char *into, const unsigned char *from, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        into[i] |= from[i];
    }
}


/*
 * Evaluates a subschema whose failure alone does not fail the schema:
 * quietly, and with its annotations kept only when it is valid.
 */
static int
am_eval_apart(am_ectx_t *x, const am_node_t *n, yajl_val inst,
    unsigned char *track, const char *via)
{
    unsigned char *tmp;
    int            rc;

    tmp = NULL;

    if (track != NULL) {
        tmp = calloc(am_len(inst) + 1, 1);
        if (tmp == NULL || am_charge(x, am_len(inst))) {
            free(tmp);
            return am_limit(x);
        }
    }

    x->quiet++;
    rc = am_eval(x, n, inst, tmp, via);
    x->quiet--;

    if (rc == 1 && track != NULL) {
        am_merge(track, tmp, am_len(inst));
    }

    free(tmp);
    return rc;
}


static int
am_eval_at(am_ectx_t *x, const am_node_t *n, yajl_val inst, const char *key,
    size_t idx, const char *via)
{
    int rc;

    if (x->npath >= AM_SCHEMA_MAX_DEPTH) {
        return am_limit(x);
    }

    x->path[x->npath].key = key;
    x->path[x->npath].idx = idx;
    x->npath++;
    rc = am_eval(x, n, inst, NULL, via);
    x->npath--;

    return rc;
}


static int
am_eval_number(am_ectx_t *x, const am_node_t *n, yajl_val inst)
{
    am_dec_t d;

    if (am_charge(x, am_dec_parse(inst->u.number.r, &d))) {
        return am_limit(x);
    }

    if ((n->nums & AM_N_MULTIPLE)
        && !am_dec_is_multiple(
            &d, inst->u.number.r, &n->multiple_of, n->multiple_text)) {
        return am_fail(x, "multipleOf");
    }

    if ((n->nums & AM_N_MAXIMUM) && am_dec_cmp(&d, &n->maximum) > 0) {
        return am_fail(x, "maximum");
    }

    if ((n->nums & AM_N_EXMAXIMUM) && am_dec_cmp(&d, &n->ex_maximum) >= 0) {
        return am_fail(x, "exclusiveMaximum");
    }

    if ((n->nums & AM_N_MINIMUM) && am_dec_cmp(&d, &n->minimum) < 0) {
        return am_fail(x, "minimum");
    }

    if ((n->nums & AM_N_EXMINIMUM) && am_dec_cmp(&d, &n->ex_minimum) <= 0) {
        return am_fail(x, "exclusiveMinimum");
    }

    return 1;
}


static int
am_eval_string(am_ectx_t *x, const am_node_t *n, yajl_val inst)
{
    const unsigned char *p;
    long                 len;
    int                  rc;

    len = 0;

    if (n->max_length >= 0 || n->min_length >= 0) {
        /* code points: every byte but UTF-8 continuation bytes */
        for (p = (const unsigned char *) inst->u.string; *p; p++) {
            len += (*p & 0xc0) != 0x80;
        }
        if (am_charge(
                x, (size_t) (p - (const unsigned char *) inst->u.string))) {
            return am_limit(x);
        }
    }

    if (n->max_length >= 0 && len > n->max_length) {
        return am_fail(x, "maxLength");
    }

    if (n->min_length >= 0 && len < n->min_length) {
        return am_fail(x, "minLength");
    }

    if (n->pattern != NULL) {
        rc = am_match(x, n->pattern, inst->u.string);
        if (rc < 0) {
            return am_limit(x);
        }
        if (rc == 0) {
            return am_fail(x, "pattern");
        }
    }

    return 1;
}


static int
am_eval_array(
    am_ectx_t *x, const am_node_t *n, yajl_val inst, unsigned char *track)
{
    yajl_val *items;
    size_t    i, len;
    long      count, min;
    int       rc;

    items = inst->u.array.values;
    len = inst->u.array.len;

    if (n->max_items >= 0 && len > (size_t) n->max_items) {
        return am_fail(x, "maxItems");
    }

    if (n->min_items >= 0 && len < (size_t) n->min_items) {
        return am_fail(x, "minItems");
    }

    if (n->unique_items) {
        rc = am_unique(x, inst);
        if (rc < 0) {
            return am_limit(x);
        }
        if (rc == 0) {
            return am_fail(x, "uniqueItems");
        }
    }

    for (i = 0; i < len && i < n->nprefix; i++) {
        rc = am_eval_at(x, n->prefix[i], items[i], NULL, i, "prefixItems");
        if (rc != 1) {
            return rc;
        }
        if (track != NULL) {
            track[i] = 1;
        }
    }

    for (i = n->nprefix; n->items != NULL && i < len; i++) {
        rc = am_eval_at(x, n->items, items[i], NULL, i, "items");
        if (rc != 1) {
            return rc;
        }
        if (track != NULL) {
            track[i] = 1;
        }
    }

    if (n->contains != NULL) {
        count = 0;

        for (i = 0; i < len; i++) {
            x->quiet++;
            rc = am_eval(x, n->contains, items[i], NULL, "contains");
            x->quiet--;
            if (rc < 0) {
                return rc;
            }
            if (rc == 1) {
                count++;
                if (track != NULL) {
                    track[i] = 1;
                }
            }
        }

        min = n->min_contains >= 0 ? n->min_contains : 1;

        if (count < min) {
            return am_fail(
                x, n->min_contains >= 0 ? "minContains" : "contains");
        }

        if (n->max_contains >= 0 && count > n->max_contains) {
            return am_fail(x, "maxContains");
        }
    }

    return 1;
}


/* 1 when obj has the member key (its index in *at), 0 when not, -1 when
 * the step budget is spent */
static int
am_has(am_ectx_t *x, yajl_val obj, const char *key, size_t *at)
{
    size_t i;

    if (++x->steps > AM_SCHEMA_MAX_STEPS
        || am_charge(x, obj->u.object.len * 4)) {
        return -1;
    }

    for (i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            if (at != NULL) {
                *at = i;
            }
            return 1;
        }
    }

    return 0;
}


static int
am_eval_members(am_ectx_t *x, const am_node_t *n, yajl_val inst,
    unsigned char *track, unsigned char *hit)
{
    const char *key;
    size_t      i, k;
    int         rc;

    for (k = 0; k < n->nprops; k++) {
        rc = am_has(x, inst, n->props[k].key, &i);
        if (rc <= 0) {
            if (rc < 0) {
                return am_limit(x);
            }
            continue;
        }
        rc = am_eval_at(x, n->props[k].node, inst->u.object.values[i],
            n->props[k].key, 0, "properties");
        if (rc != 1) {
            return rc;
        }
        if (track != NULL) {
            track[i] = 1;
        }
        hit[i] = 1;
    }

    for (i = 0; n->npatterns && i < inst->u.object.len; i++) {
        key = inst->u.object.keys[i];
        for (k = 0; k < n->npatterns; k++) {
            rc = am_match(x, n->patterns[k].re, key);
            if (rc < 0) {
                return am_limit(x);
            }
            if (rc == 0) {
                continue;
            }
            rc = am_eval_at(x, n->patterns[k].node, inst->u.object.values[i],
                key, 0, "patternProperties");
            if (rc != 1) {
                return rc;
            }
            if (track != NULL) {
                track[i] = 1;
            }
            hit[i] = 1;
        }
    }

    for (i = 0; n->additional != NULL && i < inst->u.object.len; i++) {
        if (hit[i]) {
            continue;
        }
        rc = am_eval_at(x, n->additional, inst->u.object.values[i],
            inst->u.object.keys[i], 0, "additionalProperties");
        if (rc != 1) {
            return rc;
        }
        if (track != NULL) {
            track[i] = 1;
        }
    }

    return 1;
}


static int
am_eval_object(
    am_ectx_t *x, const am_node_t *n, yajl_val inst, unsigned char *track)
{
    struct yajl_val_s name;
    unsigned char    *hit;
    yajl_val          names;
    size_t            i, k, len;
    int               rc;

    len = inst->u.object.len;

    if (n->max_props >= 0 && len > (size_t) n->max_props) {
        return am_fail(x, "maxProperties");
    }

    if (n->min_props >= 0 && len < (size_t) n->min_props) {
        return am_fail(x, "minProperties");
    }

    for (i = 0; n->required != NULL && i < n->required->u.array.len; i++) {
        rc = am_has(x, inst, n->required->u.array.values[i]->u.string, NULL);
        if (rc != 1) {
            return rc < 0 ? am_limit(x) : am_fail(x, "required");
        }
    }

    for (i = 0; n->dep_required != NULL && i < n->dep_required->u.object.len;
         i++) {
        rc = am_has(x, inst, n->dep_required->u.object.keys[i], NULL);
        if (rc < 0) {
            return am_limit(x);
        }
        names = n->dep_required->u.object.values[i];
        for (k = 0; rc == 1 && k < names->u.array.len; k++) {
            rc = am_has(x, inst, names->u.array.values[k]->u.string, NULL);
            if (rc != 1) {
                return rc < 0 ? am_limit(x) : am_fail(x, "dependentRequired");
            }
        }
    }

    if (n->nprops || n->npatterns || n->additional != NULL) {
        hit = calloc(len + 1, 1);
        if (hit == NULL || am_charge(x, len)) {
            free(hit);
            return am_limit(x);
        }
        rc = am_eval_members(x, n, inst, track, hit);
        free(hit);
        if (rc != 1) {
            return rc;
        }
    }

    for (i = 0; n->prop_names != NULL && i < len; i++) {
        name.type = yajl_t_string;
        name.u.string = (char *) inst->u.object.keys[i];
        x->quiet++;
        rc = am_eval(x, n->prop_names, &name, NULL, "propertyNames");
        x->quiet--;
        if (rc != 1) {
            return rc < 0 ? rc : am_fail(x, "propertyNames");
        }
    }

    for (i = 0; i < n->ndeps; i++) {
        rc = am_has(x, inst, n->deps[i].key, NULL);
        if (rc < 0) {
            return am_limit(x);
        }
        if (rc == 1) {
            rc = am_eval(x, n->deps[i].node, inst, track, "dependentSchemas");
            if (rc != 1) {
                return rc;
            }
        }
    }

    return 1;
}


static int
am_eval_applicators(
    am_ectx_t *x, const am_node_t *n, yajl_val inst, unsigned char *track)
{
    size_t i, valid;
    int    rc;

    if (n->ref_node != NULL) {
        rc = am_eval(x, n->ref_node, inst, track, "$ref");
        if (rc != 1) {
            return rc;
        }
    }

    for (i = 0; i < n->nall; i++) {
        rc = am_eval(x, n->all[i], inst, track, "allOf");
        if (rc != 1) {
            return rc;
        }
    }

    valid = 0;

    /* without annotations to collect, the first valid branch is enough */
    for (i = 0; i < n->nany && (track != NULL || valid == 0); i++) {
        rc = am_eval_apart(x, n->any[i], inst, track, "anyOf");
        if (rc < 0) {
            return rc;
        }
        valid += rc;
    }

    if (n->nany && valid == 0) {
        return am_fail(x, "anyOf");
    }

    valid = 0;

    for (i = 0; i < n->none && valid < 2; i++) {
        rc = am_eval_apart(x, n->one[i], inst, track, "oneOf");
        if (rc < 0) {
            return rc;
        }
        valid += rc;
    }

    if (n->none && valid != 1) {
        return am_fail(x, "oneOf");
    }

    if (n->not_ != NULL) {
        rc = am_eval_apart(x, n->not_, inst, NULL, "not");
        if (rc != 0) {
            return rc < 0 ? rc : am_fail(x, "not");
        }
    }

    if (n->if_ != NULL) {
        rc = am_eval_apart(x, n->if_, inst, track, "if");
        if (rc < 0) {
            return rc;
        }
        if (rc == 1 && n->then_ != NULL) {
            return am_eval(x, n->then_, inst, track, "then");
        }
        if (rc == 0 && n->else_ != NULL) {
            return am_eval(x, n->else_, inst, track, "else");
        }
    }

    return 1;
}


static int
am_eval_keywords(
    am_ectx_t *x, const am_node_t *n, yajl_val inst, unsigned char *track)
{
    size_t   i;
    unsigned t;
    int      rc;

    if (n->types) {
        t = YAJL_IS_NULL(inst)                          ? AM_T_NULL
            : YAJL_IS_TRUE(inst) || YAJL_IS_FALSE(inst) ? AM_T_BOOLEAN
            : YAJL_IS_OBJECT(inst)                      ? AM_T_OBJECT
            : YAJL_IS_ARRAY(inst)                       ? AM_T_ARRAY
            : YAJL_IS_NUMBER(inst)                      ? AM_T_NUMBER
                                                        : AM_T_STRING;

        if (!(n->types & t)
            && !(t == AM_T_NUMBER && (n->types & AM_T_INTEGER)
                 && am_is_integer(x, inst))) {
            return am_fail(x, "type");
        }
    }

    if (n->const_v != NULL) {
        rc = am_equal(x, inst, n->const_v, 0);
        if (rc != 1) {
            return rc < 0 ? am_limit(x) : am_fail(x, "const");
        }
    }

    if (n->enum_v != NULL) {
        rc = 0;
        for (i = 0; i < n->enum_v->u.array.len && rc == 0; i++) {
            rc = am_equal(x, inst, n->enum_v->u.array.values[i], 0);
        }
        if (rc != 1) {
            return rc < 0 ? am_limit(x) : am_fail(x, "enum");
        }
    }

    rc = YAJL_IS_NUMBER(inst)   ? am_eval_number(x, n, inst)
         : YAJL_IS_STRING(inst) ? am_eval_string(x, n, inst)
         : YAJL_IS_ARRAY(inst)  ? am_eval_array(x, n, inst, track)
         : YAJL_IS_OBJECT(inst) ? am_eval_object(x, n, inst, track)
                                : 1;
    if (rc != 1) {
        return rc;
    }

    return am_eval_applicators(x, n, inst, track);
}


static int
am_eval_unevaluated(
    am_ectx_t *x, const am_node_t *n, yajl_val inst, unsigned char *local)
{
    size_t i;
    int    rc;

    for (i = 0; n->uneval_items != NULL && YAJL_IS_ARRAY(inst)
                && i < inst->u.array.len;
         i++) {
        if (!local[i]) {
            rc = am_eval_at(x, n->uneval_items, inst->u.array.values[i], NULL,
                i, "unevaluatedItems");
            if (rc != 1) {
                return rc;
            }
            local[i] = 1;
        }
    }

    for (i = 0; n->uneval_props != NULL && YAJL_IS_OBJECT(inst)
                && i < inst->u.object.len;
         i++) {
        if (!local[i]) {
            rc = am_eval_at(x, n->uneval_props, inst->u.object.values[i],
                inst->u.object.keys[i], 0, "unevaluatedProperties");
            if (rc != 1) {
                return rc;
            }
            local[i] = 1;
        }
    }

    return 1;
}


/*
 * seen, when not NULL, has a byte per item or member of inst, set for
 * those this schema evaluated; via is the keyword that applied it, named
 * when it is the false schema.
 */
static int
am_eval(am_ectx_t *x, const am_node_t *n, yajl_val inst, unsigned char *seen,
    const char *via)
{
    unsigned char *local;
    int            rc;

    /* true counts too: a loop over a long array may apply nothing else */
    if (++x->steps > AM_SCHEMA_MAX_STEPS || x->depth >= AM_SCHEMA_MAX_DEPTH) {
        return am_limit(x);
    }

    if (n->boolean >= 0) {
        return n->boolean ? 1 : am_fail(x, via);
    }

    local = NULL;

    if ((n->uneval_items != NULL && YAJL_IS_ARRAY(inst))
        || (n->uneval_props != NULL && YAJL_IS_OBJECT(inst))) {
        local = calloc(am_len(inst) + 1, 1);
        if (local == NULL || am_charge(x, am_len(inst))) {
            free(local);
            return am_limit(x);
        }
    }

    x->depth++;
    rc = am_eval_keywords(x, n, inst, local ? local : seen);

    if (rc == 1 && local != NULL) {
        rc = am_eval_unevaluated(x, n, inst, local);
        if (rc == 1 && seen != NULL) {
            am_merge(seen, local, am_len(inst));
        }
    }

    x->depth--;
    free(local);

    return rc;
}


int
am_schema_validate(const am_schema_t *s, yajl_val instance, char *ptr,
    size_t ptrlen, char *keyword, size_t kwlen)
{
    am_ectx_t x;
    int       rc;

    x.s = s;
    x.md = NULL;
    x.steps = 0;
    x.depth = 0;
    x.quiet = 0;
    x.done = 0;
    x.npath = 0;
    x.ptr = ptr;
    x.ptrlen = ptrlen;
    x.kw = keyword;
    x.kwlen = kwlen;

    if (ptrlen) {
        ptr[0] = '\0';
    }

    if (kwlen) {
        keyword[0] = '\0';
    }

    if (s->has_patterns) {
        /* one pair suffices: only whether a pattern matches matters */
        x.md = pcre2_match_data_create(1, NULL);
        if (x.md == NULL) {
            return am_limit(&x);
        }
    }

    rc = am_eval(&x, s->root, instance, NULL, "false");

    pcre2_match_data_free(x.md);
    return rc;
}
