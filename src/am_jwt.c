/*
 * JWS compact serialization (RFC 7515) with the algorithms of RFC 7518 that
 * the gateway supports: HS256/384/512, RS256/384/512, ES256/384.
 *
 * Every key carries the one algorithm it may be used with; the token's "alg"
 * only selects among keys and must match that pin exactly, so "none", an
 * HMAC keyed with a public key, or any other algorithm switch is refused.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "am_crypto.h"
#include "am_json.h"
#include "am_jwt.h"

/* key, secret and JWKS files are small; refuse anything unreasonable */
#define AM_JWT_FILE_MAX (1024 * 1024)

/* JSON nesting allowed in headers, claims and JWKS files */
#define AM_JWT_JSON_DEPTH 32

#define AM_JWT_EC_MAX 48


typedef enum { AM_JWT_HMAC, AM_JWT_RSA, AM_JWT_EC } am_jwt_family_e;

typedef struct {
    const char     *name;
    am_jwt_family_e family;
    const EVP_MD *(*md)(void);
    size_t      ec_len; /* bytes of each of r and s */
    const char *curve;  /* OpenSSL group name */
    const char *crv;    /* JWK / NIST name */
} am_jwt_alg_t;

typedef struct {
    const am_jwt_alg_t *alg;
    char               *kid;
    unsigned char      *secret;
    size_t              secret_len;
    EVP_PKEY           *pkey;
} am_jwt_key_t;

struct am_jwt_keys_s {
    am_jwt_key_t *key;
    size_t        n;
    size_t        nalloc;
};


static const am_jwt_alg_t am_jwt_algs[] = {
    {"HS256", AM_JWT_HMAC, EVP_sha256, 0, NULL, NULL},
    {"HS384", AM_JWT_HMAC, EVP_sha384, 0, NULL, NULL},
    {"HS512", AM_JWT_HMAC, EVP_sha512, 0, NULL, NULL},
    {"RS256", AM_JWT_RSA, EVP_sha256, 0, NULL, NULL},
    {"RS384", AM_JWT_RSA, EVP_sha384, 0, NULL, NULL},
    {"RS512", AM_JWT_RSA, EVP_sha512, 0, NULL, NULL},
    {"ES256", AM_JWT_EC, EVP_sha256, 32, "prime256v1", "P-256"},
    {"ES384", AM_JWT_EC, EVP_sha384, 48, "secp384r1", "P-384"},
};

#define AM_JWT_NALGS (sizeof(am_jwt_algs) / sizeof(am_jwt_algs[0]))


/*
 * Writes a message into err and returns -1. Also drops whatever OpenSSL
 * queued, so that nginx does not report stale errors on an unrelated
 * SSL connection later.
 */
static int __attribute__((format(printf, 3, 4)))
am_jwt_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }

    ERR_clear_error();
    return -1;
}


static const am_jwt_alg_t *
am_jwt_alg_find(const char *name)
{
    size_t i;

    for (i = 0; i < AM_JWT_NALGS; i++) {
        if (strcmp(am_jwt_algs[i].name, name) == 0) {
            return &am_jwt_algs[i];
        }
    }

    return NULL;
}


int
am_jwt_alg_supported(const char *alg)
{
    return alg != NULL && am_jwt_alg_find(alg) != NULL;
}


/* The ES* algorithm for an EC group name (OpenSSL or NIST spelling). */
static const am_jwt_alg_t *
am_jwt_alg_by_curve(const char *curve)
{
    size_t i;

    for (i = 0; i < AM_JWT_NALGS; i++) {
        if (am_jwt_algs[i].family == AM_JWT_EC
            && (strcmp(am_jwt_algs[i].curve, curve) == 0
                || strcmp(am_jwt_algs[i].crv, curve) == 0)) {
            return &am_jwt_algs[i];
        }
    }

    return NULL;
}


/* Reads a whole regular file into a malloc'd, NUL-terminated buffer. */
static int
am_jwt_read_file(
    const char *path, char **data, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    ssize_t     n;
    size_t      size, got;
    char       *buf;
    int         fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return am_jwt_error(err, errlen, "\"%s\": %s", path, strerror(errno));
    }

    if (fstat(fd, &st) == -1) {
        close(fd);
        return am_jwt_error(err, errlen, "\"%s\": %s", path, strerror(errno));
    }

    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return am_jwt_error(err, errlen, "\"%s\": not a regular file", path);
    }

    if (st.st_size > AM_JWT_FILE_MAX) {
        close(fd);
        return am_jwt_error(err, errlen, "\"%s\": file larger than %d bytes",
            path, AM_JWT_FILE_MAX);
    }

    size = (size_t) st.st_size;

    buf = malloc(size + 1);
    if (buf == NULL) {
        close(fd);
        return am_jwt_error(err, errlen, "\"%s\": out of memory", path);
    }

    got = 0;

    while (got < size) {
        n = read(fd, buf + got, size - got);

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1) {
            OPENSSL_clear_free(buf, size + 1);
            close(fd);
            return am_jwt_error(
                err, errlen, "\"%s\": %s", path, strerror(errno));
        }

        if (n == 0) {
            break;
        }

        got += (size_t) n;
    }

    close(fd);

    buf[got] = '\0';
    *data = buf;
    *len = got;

    return 0;
}


/*
 * Reads an HMAC secret file: the bytes minus one trailing "\n" or "\r\n",
 * at least AM_JWT_MIN_SECRET of them, and not a PEM key (an HMAC keyed
 * with a public key is the classic algorithm-confusion attack).
 */
static int
am_jwt_secret_read(const char *path, unsigned char **secret, size_t *len,
    char *err, size_t errlen)
{
    size_t n, size;
    char  *buf;

    if (am_jwt_read_file(path, &buf, &size, err, errlen) != 0) {
        return -1;
    }

    n = size;

    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r') {
            n--;
        }
    }

    if (n == 0) {
        free(buf);
        return am_jwt_error(err, errlen, "\"%s\": empty HMAC secret", path);
    }

    if (n < AM_JWT_MIN_SECRET) {
        OPENSSL_clear_free(buf, size);
        return am_jwt_error(err, errlen,
            "\"%s\": HMAC secret is %zu bytes, needs at least %d", path, n,
            AM_JWT_MIN_SECRET);
    }

    if (n >= 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
        OPENSSL_clear_free(buf, size);
        return am_jwt_error(
            err, errlen, "\"%s\": is a PEM file, not an HMAC secret", path);
    }

    *secret = (unsigned char *) buf;
    *len = n;

    return 0;
}


/*
 * Decides which algorithm a public or private key is used with: name if
 * given (it must fit the key), else the one implied by an EC curve.
 * where prefixes error messages.
 */
static int
am_jwt_pkey_alg(EVP_PKEY *pkey, const char *name, const char *where,
    const am_jwt_alg_t **out, char *err, size_t errlen)
{
    const am_jwt_alg_t *alg, *by_curve;
    char                curve[64];
    int                 bits;

    alg = NULL;

    if (name != NULL) {
        alg = am_jwt_alg_find(name);
        if (alg == NULL) {
            return am_jwt_error(
                err, errlen, "%s: unsupported alg \"%s\"", where, name);
        }
    }

    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (alg == NULL) {
            return am_jwt_error(err, errlen,
                "%s: RSA key needs alg RS256, RS384 or RS512", where);
        }

        if (alg->family != AM_JWT_RSA) {
            return am_jwt_error(err, errlen,
                "%s: RSA key cannot be used with alg %s", where, alg->name);
        }

        bits = EVP_PKEY_get_bits(pkey);
        if (bits < 2048) {
            return am_jwt_error(err, errlen,
                "%s: RSA key has %d bits, needs at least 2048", where, bits);
        }

        *out = alg;
        return 0;
    }

    if (EVP_PKEY_is_a(pkey, "EC")) {
        if (EVP_PKEY_get_utf8_string_param(
                pkey, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve), NULL)
            != 1) {
            return am_jwt_error(
                err, errlen, "%s: EC key without a named curve", where);
        }

        by_curve = am_jwt_alg_by_curve(curve);
        if (by_curve == NULL) {
            return am_jwt_error(err, errlen,
                "%s: EC curve %s is not supported, use P-256 or P-384", where,
                curve);
        }

        if (alg != NULL && alg != by_curve) {
            return am_jwt_error(err, errlen, "%s: EC key on %s needs alg %s",
                where, by_curve->crv, by_curve->name);
        }

        *out = by_curve;
        return 0;
    }

    return am_jwt_error(err, errlen,
        "%s: unsupported key type %s, use RSA or EC", where,
        EVP_PKEY_get0_type_name(pkey));
}


static void
am_jwt_key_clear(am_jwt_key_t *key)
{
    free(key->kid);

    if (key->secret != NULL) {
        OPENSSL_clear_free(key->secret, key->secret_len);
    }

    EVP_PKEY_free(key->pkey);
}


/* Appends a key; takes ownership of secret and pkey even when it fails. */
static int
am_jwt_keys_push(am_jwt_keys_t *keys, const am_jwt_alg_t *alg, const char *kid,
    unsigned char *secret, size_t secret_len, EVP_PKEY *pkey, char *err,
    size_t errlen)
{
    am_jwt_key_t *key, k;
    size_t        nalloc;

    k.alg = alg;
    k.kid = NULL;
    k.secret = secret;
    k.secret_len = secret_len;
    k.pkey = pkey;

    if (kid != NULL) {
        k.kid = strdup(kid);
        if (k.kid == NULL) {
            goto nomem;
        }
    }

    if (keys->n == keys->nalloc) {
        nalloc = keys->nalloc ? keys->nalloc * 2 : 4;

        key = realloc(keys->key, nalloc * sizeof(am_jwt_key_t));
        if (key == NULL) {
            goto nomem;
        }

        keys->key = key;
        keys->nalloc = nalloc;
    }

    keys->key[keys->n++] = k;

    return 0;

nomem:

    am_jwt_key_clear(&k);
    return am_jwt_error(err, errlen, "out of memory");
}


/* Drops the keys added after the first n, to undo a failed JWKS file. */
static void
am_jwt_keys_truncate(am_jwt_keys_t *keys, size_t n)
{
    while (keys->n > n) {
        am_jwt_key_clear(&keys->key[--keys->n]);
    }
}


am_jwt_keys_t *
am_jwt_keys_new(void)
{
    return calloc(1, sizeof(am_jwt_keys_t));
}


void
am_jwt_keys_free(am_jwt_keys_t *keys)
{
    if (keys == NULL) {
        return;
    }

    am_jwt_keys_truncate(keys, 0);
    free(keys->key);
    free(keys);
}


size_t
am_jwt_keys_count(const am_jwt_keys_t *keys)
{
    return keys->n;
}


/*
 * Decodes a PEM public key: SubjectPublicKeyInfo, PKCS#1 "RSA PUBLIC KEY",
 * or the key of a certificate. Private keys are refused: the gateway only
 * verifies and has no business holding them.
 */
static EVP_PKEY *
am_jwt_pem_public(
    const char *path, const char *pem, size_t len, char *err, size_t errlen)
{
    const unsigned char *p;
    OSSL_DECODER_CTX    *dctx;
    EVP_PKEY            *pkey;
    size_t               plen;
    X509                *x509;
    BIO                 *bio;

    pkey = NULL;

    if (strstr(pem, "PRIVATE KEY-----") != NULL) {
        am_jwt_error(err, errlen,
            "\"%s\": holds a private key, give the public key", path);
        return NULL;
    }

    if (strstr(pem, "-----BEGIN CERTIFICATE-----") != NULL) {
        bio = BIO_new_mem_buf(pem, (int) len);
        if (bio == NULL) {
            am_jwt_error(err, errlen, "out of memory");
            return NULL;
        }

        x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);

        if (x509 != NULL) {
            pkey = X509_get_pubkey(x509);
            X509_free(x509);
        }

    } else {
        dctx = OSSL_DECODER_CTX_new_for_pkey(
            &pkey, "PEM", NULL, NULL, EVP_PKEY_PUBLIC_KEY, NULL, NULL);
        if (dctx == NULL) {
            am_jwt_error(err, errlen, "out of memory");
            return NULL;
        }

        p = (const unsigned char *) pem;
        plen = len;

        if (OSSL_DECODER_from_data(dctx, &p, &plen) != 1) {
            pkey = NULL;
        }

        OSSL_DECODER_CTX_free(dctx);
    }

    if (pkey == NULL) {
        am_jwt_error(err, errlen,
            "\"%s\": no PEM public key or certificate found", path);
        return NULL;
    }

    ERR_clear_error();
    return pkey;
}


int
am_jwt_keys_add_file(am_jwt_keys_t *keys, const char *path, const char *alg,
    const char *kid, char *err, size_t errlen)
{
    const am_jwt_alg_t *a;
    unsigned char      *secret;
    EVP_PKEY           *pkey;
    size_t              len;
    char               *pem, where[512];

    a = (alg != NULL) ? am_jwt_alg_find(alg) : NULL;

    if (alg != NULL && a == NULL) {
        return am_jwt_error(
            err, errlen, "\"%s\": unsupported alg \"%s\"", path, alg);
    }

    if (a != NULL && a->family == AM_JWT_HMAC) {
        if (am_jwt_secret_read(path, &secret, &len, err, errlen) != 0) {
            return -1;
        }

        return am_jwt_keys_push(keys, a, kid, secret, len, NULL, err, errlen);
    }

    if (am_jwt_read_file(path, &pem, &len, err, errlen) != 0) {
        return -1;
    }

    pkey = am_jwt_pem_public(path, pem, len, err, errlen);
    free(pem);

    if (pkey == NULL) {
        return -1;
    }

    snprintf(where, sizeof(where), "\"%s\"", path);

    if (am_jwt_pkey_alg(pkey, alg, where, &a, err, errlen) != 0) {
        EVP_PKEY_free(pkey);
        return -1;
    }

    return am_jwt_keys_push(keys, a, kid, NULL, 0, pkey, err, errlen);
}


/* Parses JSON text of n bytes with the project's strict reader. */
static yajl_val
am_jwt_json_parse(const char *p, size_t n, char *ebuf, size_t elen)
{
    return am_json_parse(p, n, AM_JWT_JSON_DEPTH, ebuf, elen);
}


/* The value of an object's member, or NULL. */
static yajl_val
am_jwt_member(yajl_val obj, const char *name)
{
    size_t i;

    for (i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], name) == 0) {
            return obj->u.object.values[i];
        }
    }

    return NULL;
}


/* The string of a JSON value, or NULL when v is absent or not a string. */
static const char *
am_jwt_string(yajl_val v)
{
    return (v != NULL && v->type == yajl_t_string) ? v->u.string : NULL;
}


/*
 * 1 when no member name repeats. RFC 7515 lets a parser reject duplicates,
 * and accepting them would let us and a later consumer of the same JSON
 * read different values.
 */
static int
am_jwt_members_unique(yajl_val obj)
{
    size_t i, j;

    for (i = 1; i < obj->u.object.len; i++) {
        for (j = 0; j < i; j++) {
            if (strcmp(obj->u.object.keys[i], obj->u.object.keys[j]) == 0) {
                return 0;
            }
        }
    }

    return 1;
}


/*
 * Decodes base64url into a malloc'd buffer with a NUL after the data.
 * strict refuses the '=' padding that JWS forbids.
 */
static unsigned char *
am_jwt_b64_decode(const char *in, size_t len, int strict, size_t *outlen)
{
    unsigned char *out;
    long           n;

    if (strict && memchr(in, '=', len) != NULL) {
        return NULL;
    }

    out = malloc(len / 4 * 3 + 4);
    if (out == NULL) {
        return NULL;
    }

    n = am_b64url_decode(in, len, out);
    if (n < 0) {
        free(out);
        return NULL;
    }

    out[n] = '\0';
    *outlen = (size_t) n;

    return out;
}


/* A JWK member that must be a base64url string, decoded. */
static unsigned char *
am_jwt_jwk_bytes(yajl_val jwk, const char *name, const char *where, size_t *len,
    char *err, size_t errlen)
{
    unsigned char *out;
    const char    *s;

    s = am_jwt_string(am_jwt_member(jwk, name));

    if (s == NULL) {
        am_jwt_error(
            err, errlen, "%s: \"%s\" missing or not a string", where, name);
        return NULL;
    }

    out = am_jwt_b64_decode(s, strlen(s), 0, len);
    if (out == NULL || *len == 0) {
        free(out);
        am_jwt_error(err, errlen, "%s: \"%s\" is not base64url", where, name);
        return NULL;
    }

    return out;
}


/* Builds a public EVP_PKEY of type from OSSL_PARAMs and checks it. */
static EVP_PKEY *
am_jwt_pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY_CTX *ctx, *check;
    OSSL_PARAM   *params;
    EVP_PKEY     *pkey;

    pkey = NULL;
    ctx = NULL;

    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL) {
        return NULL;
    }

    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);

    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = NULL;
        goto done;
    }

    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

    if (check == NULL || EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

    EVP_PKEY_CTX_free(check);

done:

    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);

    return pkey;
}


static EVP_PKEY *
am_jwt_jwk_rsa(yajl_val jwk, const char *where, char *err, size_t errlen)
{
    OSSL_PARAM_BLD *bld;
    unsigned char  *n, *e;
    EVP_PKEY       *pkey;
    size_t          nlen, elen;
    BIGNUM         *bn_n, *bn_e;

    pkey = NULL;
    e = NULL;
    bn_n = NULL;
    bn_e = NULL;
    bld = NULL;

    n = am_jwt_jwk_bytes(jwk, "n", where, &nlen, err, errlen);
    if (n == NULL) {
        return NULL;
    }

    e = am_jwt_jwk_bytes(jwk, "e", where, &elen, err, errlen);
    if (e == NULL) {
        goto done;
    }

    bn_n = BN_bin2bn(n, (int) nlen, NULL);
    bn_e = BN_bin2bn(e, (int) elen, NULL);
    bld = OSSL_PARAM_BLD_new();

    if (bn_n != NULL && bn_e != NULL && bld != NULL
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n)
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e)) {
        pkey = am_jwt_pkey_fromdata("RSA", bld);
    }

    if (pkey == NULL) {
        am_jwt_error(err, errlen, "%s: invalid RSA key", where);
    }

done:

    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);

    return pkey;
}


static EVP_PKEY *
am_jwt_jwk_ec(yajl_val jwk, const char *where, char *err, size_t errlen)
{
    const am_jwt_alg_t *alg;
    OSSL_PARAM_BLD     *bld;
    unsigned char      *x, *y, pub[1 + 2 * AM_JWT_EC_MAX];
    EVP_PKEY           *pkey;
    const char         *crv;
    size_t              xlen, ylen;

    crv = am_jwt_string(am_jwt_member(jwk, "crv"));

    if (crv == NULL) {
        am_jwt_error(err, errlen, "%s: \"crv\" missing or not a string", where);
        return NULL;
    }

    alg = am_jwt_alg_by_curve(crv);

    if (alg == NULL || strcmp(alg->crv, crv) != 0) {
        am_jwt_error(err, errlen,
            "%s: curve \"%s\" is not supported, use P-256 or P-384", where,
            crv);
        return NULL;
    }

    pkey = NULL;
    y = NULL;

    x = am_jwt_jwk_bytes(jwk, "x", where, &xlen, err, errlen);
    if (x == NULL) {
        return NULL;
    }

    y = am_jwt_jwk_bytes(jwk, "y", where, &ylen, err, errlen);
    if (y == NULL) {
        goto done;
    }

    if (xlen != alg->ec_len || ylen != alg->ec_len) {
        am_jwt_error(err, errlen, "%s: \"x\" and \"y\" must be %zu bytes",
            where, alg->ec_len);
        goto done;
    }

    pub[0] = 0x04; /* uncompressed point */
    memcpy(pub + 1, x, xlen);
    memcpy(pub + 1 + xlen, y, ylen);

    bld = OSSL_PARAM_BLD_new();

    if (bld != NULL
        && OSSL_PARAM_BLD_push_utf8_string(
            bld, OSSL_PKEY_PARAM_GROUP_NAME, alg->curve, 0)
        && OSSL_PARAM_BLD_push_octet_string(
            bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + xlen + ylen)) {
        pkey = am_jwt_pkey_fromdata("EC", bld);
    }

    OSSL_PARAM_BLD_free(bld);

    if (pkey == NULL) {
        am_jwt_error(
            err, errlen, "%s: invalid EC key (not on the curve?)", where);
    }

done:

    free(x);
    free(y);

    return pkey;
}


/*
 * Adds one JWK of a JWKS file. Returns 0 when added, 1 when skipped (a key
 * for another use), -1 on error.
 */
static int
am_jwt_jwk_add(am_jwt_keys_t *keys, yajl_val jwk, const char *path,
    size_t index, char *err, size_t errlen)
{
    const am_jwt_alg_t *a;
    unsigned char      *secret;
    const char         *kty, *alg, *kid;
    EVP_PKEY           *pkey;
    yajl_val            v;
    size_t              len;
    char                where[512];

    snprintf(where, sizeof(where), "\"%s\": key %zu", path, index);

    if (!YAJL_IS_OBJECT(jwk)) {
        return am_jwt_error(err, errlen, "%s: not an object", where);
    }

    v = am_jwt_member(jwk, "kid");
    if (v != NULL && !YAJL_IS_STRING(v)) {
        return am_jwt_error(err, errlen, "%s: \"kid\" is not a string", where);
    }

    kid = am_jwt_string(v);

    if (kid != NULL) {
        snprintf(where, sizeof(where), "\"%s\": key \"%s\"", path, kid);
    }

    v = am_jwt_member(jwk, "use");
    if (v != NULL) {
        if (am_jwt_string(v) == NULL) {
            return am_jwt_error(
                err, errlen, "%s: \"use\" is not a string", where);
        }

        if (strcmp(am_jwt_string(v), "sig") != 0) {
            return 1;
        }
    }

    v = am_jwt_member(jwk, "alg");
    if (v != NULL && !YAJL_IS_STRING(v)) {
        return am_jwt_error(err, errlen, "%s: \"alg\" is not a string", where);
    }

    alg = am_jwt_string(v);

    kty = am_jwt_string(am_jwt_member(jwk, "kty"));
    if (kty == NULL) {
        return am_jwt_error(
            err, errlen, "%s: \"kty\" missing or not a string", where);
    }

    if (strcmp(kty, "oct") == 0) {
        a = (alg != NULL) ? am_jwt_alg_find(alg) : NULL;

        if (a == NULL || a->family != AM_JWT_HMAC) {
            return am_jwt_error(err, errlen,
                "%s: oct key needs alg HS256, HS384 or HS512", where);
        }

        secret = am_jwt_jwk_bytes(jwk, "k", where, &len, err, errlen);
        if (secret == NULL) {
            return -1;
        }

        if (len < AM_JWT_MIN_SECRET) {
            OPENSSL_clear_free(secret, len);
            return am_jwt_error(err, errlen,
                "%s: HMAC secret is %zu bytes, needs at least %d", where, len,
                AM_JWT_MIN_SECRET);
        }

        return am_jwt_keys_push(keys, a, kid, secret, len, NULL, err, errlen);
    }

    if (strcmp(kty, "RSA") == 0) {
        pkey = am_jwt_jwk_rsa(jwk, where, err, errlen);
        if (alg == NULL) {
            alg = "RS256";
        }

    } else if (strcmp(kty, "EC") == 0) {
        pkey = am_jwt_jwk_ec(jwk, where, err, errlen);

    } else {
        return am_jwt_error(err, errlen,
            "%s: unsupported kty \"%s\", use RSA, EC or oct", where, kty);
    }

    if (pkey == NULL) {
        return -1;
    }

    if (am_jwt_pkey_alg(pkey, alg, where, &a, err, errlen) != 0) {
        EVP_PKEY_free(pkey);
        return -1;
    }

    return am_jwt_keys_push(keys, a, kid, NULL, 0, pkey, err, errlen);
}


int
am_jwt_keys_add_jwks(
    am_jwt_keys_t *keys, const char *path, char *err, size_t errlen)
{
    const char *keys_path[] = {"keys", NULL};
    yajl_val    root, arr;
    size_t      len, i, n0, added;
    char       *buf, ebuf[128];
    int         rc;

    if (am_jwt_read_file(path, &buf, &len, err, errlen) != 0) {
        return -1;
    }

    ebuf[0] = '\0';
    root = am_jwt_json_parse(buf, len, ebuf, sizeof(ebuf));
    free(buf);

    if (root == NULL) {
        ebuf[strcspn(ebuf, "\r\n")] = '\0';
        return am_jwt_error(
            err, errlen, "\"%s\": invalid JSON: %s", path, ebuf);
    }

    arr = YAJL_IS_OBJECT(root) ? yajl_tree_get(root, keys_path, yajl_t_array)
                               : NULL;
    if (arr == NULL) {
        yajl_tree_free(root);
        return am_jwt_error(err, errlen, "\"%s\": no \"keys\" array", path);
    }

    n0 = keys->n;
    added = 0;
    rc = 0;

    for (i = 0; i < arr->u.array.len; i++) {
        rc = am_jwt_jwk_add(keys, arr->u.array.values[i], path, i, err, errlen);
        if (rc == -1) {
            break;
        }

        if (rc == 0) {
            added++;
        }
    }

    yajl_tree_free(root);

    if (rc == -1) {
        am_jwt_keys_truncate(keys, n0);
        return -1;
    }

    if (added == 0) {
        return am_jwt_error(
            err, errlen, "\"%s\": no signing key in \"keys\"", path);
    }

    return 0;
}


/* Converts a JWS ECDSA signature (r || s, n bytes each) to DER. */
static int
am_jwt_ecdsa_der(const unsigned char *raw, size_t n, unsigned char **der)
{
    ECDSA_SIG *sig;
    BIGNUM    *r, *s;
    int        len;

    sig = ECDSA_SIG_new();
    r = BN_bin2bn(raw, (int) n, NULL);
    s = BN_bin2bn(raw + n, (int) n, NULL);

    if (sig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(sig, r, s)) {
        ECDSA_SIG_free(sig);
        BN_free(r);
        BN_free(s);
        return -1;
    }

    *der = NULL;
    len = i2d_ECDSA_SIG(sig, der);
    ECDSA_SIG_free(sig);

    return len;
}


/* 1 when sig is key's signature of data. */
static int
am_jwt_signature_ok(const am_jwt_key_t *key, const unsigned char *data,
    size_t len, const unsigned char *sig, size_t siglen)
{
    const unsigned char *s;
    unsigned char        mac[EVP_MAX_MD_SIZE], *der;
    unsigned int         maclen;
    EVP_MD_CTX          *ctx;
    size_t               slen;
    int                  ok, derlen;

    if (key->alg->family == AM_JWT_HMAC) {
        if (HMAC(key->alg->md(), key->secret, (int) key->secret_len, data, len,
                mac, &maclen)
            == NULL) {
            return 0;
        }

        return siglen == maclen && am_ct_equal(mac, sig, maclen);
    }

    der = NULL;
    s = sig;
    slen = siglen;

    if (key->alg->family == AM_JWT_EC) {
        if (siglen != 2 * key->alg->ec_len) {
            return 0;
        }

        derlen = am_jwt_ecdsa_der(sig, key->alg->ec_len, &der);
        if (derlen <= 0) {
            return 0;
        }

        s = der;
        slen = (size_t) derlen;
    }

    ok = 0;

    ctx = EVP_MD_CTX_new();

    if (ctx != NULL
        && EVP_DigestVerifyInit(ctx, NULL, key->alg->md(), NULL, key->pkey) == 1
        && EVP_DigestVerify(ctx, s, slen, data, len) == 1) {
        ok = 1;
    }

    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);

    return ok;
}


/*
 * Tries the keys whose kid is kid (NULL: the keys without a kid), each only
 * for its pinned algorithm. Returns 0 when one verifies, else -1 and sets
 * *found when such a key exists and *tried when one had the algorithm.
 */
static int
am_jwt_try_keys(const am_jwt_keys_t *keys, const am_jwt_alg_t *alg,
    const char *kid, const char *data, size_t len, const unsigned char *sig,
    size_t siglen, int *found, int *tried)
{
    const am_jwt_key_t *key;
    size_t              i;

    for (i = 0; i < keys->n; i++) {
        key = &keys->key[i];

        if (kid == NULL ? key->kid != NULL
                        : key->kid == NULL || strcmp(key->kid, kid) != 0) {
            continue;
        }

        *found = 1;

        if (key->alg != alg) {
            continue;
        }

        *tried = 1;

        if (am_jwt_signature_ok(
                key, (const unsigned char *) data, len, sig, siglen)) {
            ERR_clear_error();
            return 0;
        }
    }

    return -1;
}


/*
 * The header's kid picks the keys with that kid; when none has it, or the
 * header has no kid, the keys configured without a kid are the candidates
 * (a single PEM key then accepts tokens from providers that always send a
 * kid). Either way a key is tried only for its pinned algorithm.
 */
static int
am_jwt_verify_signature(const am_jwt_keys_t *keys, const am_jwt_alg_t *alg,
    const char *kid, const char *data, size_t len, const unsigned char *sig,
    size_t siglen, char *err, size_t errlen)
{
    int found, tried;

    found = 0;
    tried = 0;

    if (kid != NULL
        && am_jwt_try_keys(
               keys, alg, kid, data, len, sig, siglen, &found, &tried)
               == 0) {
        return 0;
    }

    if (!found
        && am_jwt_try_keys(
               keys, alg, NULL, data, len, sig, siglen, &found, &tried)
               == 0) {
        return 0;
    }

    if (!found) {
        return am_jwt_error(err, errlen, kid ? "unknown kid" : "no key");
    }

    if (!tried) {
        return am_jwt_error(err, errlen, "algorithm not allowed");
    }

    return am_jwt_error(err, errlen, "bad signature");
}


/* A NumericDate claim: 1 and *t when present, 0 when absent, -1 if bad. */
static int
am_jwt_claim_time(yajl_val claims, const char *name, double *t)
{
    yajl_val v;

    v = am_jwt_member(claims, name);
    if (v == NULL) {
        return 0;
    }

    if (!YAJL_IS_DOUBLE(v)) {
        return -1;
    }

    *t = YAJL_GET_DOUBLE(v);
    return 1;
}


/* Checks exp, nbf, iss and aud against opts. */
static int
am_jwt_check_claims(
    yajl_val claims, const am_jwt_opts_t *opts, char *err, size_t errlen)
{
    const char *s;
    double      now, leeway, t;
    yajl_val    v;
    size_t      i;
    int         rc;

    now = (double) opts->now;
    leeway = (opts->leeway > 0) ? (double) opts->leeway : 0;

    rc = am_jwt_claim_time(claims, "exp", &t);
    if (rc == -1) {
        return am_jwt_error(err, errlen, "invalid exp claim");
    }

    if (rc == 1 && !(now < t + leeway)) {
        return am_jwt_error(err, errlen, "token expired");
    }

    rc = am_jwt_claim_time(claims, "nbf", &t);
    if (rc == -1) {
        return am_jwt_error(err, errlen, "invalid nbf claim");
    }

    if (rc == 1 && now < t - leeway) {
        return am_jwt_error(err, errlen, "not yet valid");
    }

    if (opts->issuer != NULL) {
        s = am_jwt_string(am_jwt_member(claims, "iss"));

        if (s == NULL || strcmp(s, opts->issuer) != 0) {
            return am_jwt_error(err, errlen, "issuer mismatch");
        }
    }

    if (opts->audience != NULL) {
        v = am_jwt_member(claims, "aud");

        s = am_jwt_string(v);

        if (s != NULL && strcmp(s, opts->audience) == 0) {
            return 0;
        }

        if (v != NULL && YAJL_IS_ARRAY(v)) {
            for (i = 0; i < v->u.array.len; i++) {
                s = am_jwt_string(v->u.array.values[i]);

                if (s != NULL && strcmp(s, opts->audience) == 0) {
                    return 0;
                }
            }
        }

        return am_jwt_error(err, errlen, "audience mismatch");
    }

    return 0;
}


int
am_jwt_verify(const am_jwt_keys_t *keys, const char *token, size_t len,
    const am_jwt_opts_t *opts, yajl_val *claims, char *err, size_t errlen)
{
    const am_jwt_alg_t *alg;
    unsigned char      *hbuf, *pbuf, *sig;
    const char         *dot1, *dot2, *kid, *end, *s;
    yajl_val            header, payload, v;
    size_t              max, hlen, plen, slen;
    int                 rc;

    *claims = NULL;

    max = (opts->max_len != 0) ? opts->max_len : AM_JWT_MAX_LEN;

    if (len > max) {
        return am_jwt_error(err, errlen, "token too large");
    }

    if (token == NULL || len == 0) {
        return am_jwt_error(err, errlen, "malformed token");
    }

    end = token + len;

    dot1 = memchr(token, '.', len);
    dot2 = (dot1 != NULL) ? memchr(dot1 + 1, '.', end - dot1 - 1) : NULL;

    if (dot2 == NULL || memchr(dot2 + 1, '.', end - dot2 - 1) != NULL
        || dot1 == token || dot2 == dot1 + 1) {
        return am_jwt_error(err, errlen, "malformed token");
    }

    header = NULL;
    payload = NULL;
    rc = -1;

    hbuf = am_jwt_b64_decode(token, dot1 - token, 1, &hlen);
    pbuf = am_jwt_b64_decode(dot1 + 1, dot2 - dot1 - 1, 1, &plen);
    sig = am_jwt_b64_decode(dot2 + 1, end - dot2 - 1, 1, &slen);

    if (hbuf == NULL || pbuf == NULL || sig == NULL) {
        am_jwt_error(err, errlen, "malformed token");
        goto done;
    }

    header = am_jwt_json_parse((char *) hbuf, hlen, NULL, 0);

    if (header == NULL || !YAJL_IS_OBJECT(header)
        || !am_jwt_members_unique(header)) {
        am_jwt_error(err, errlen, "malformed token");
        goto done;
    }

    s = am_jwt_string(am_jwt_member(header, "alg"));
    if (s == NULL) {
        am_jwt_error(err, errlen, "malformed token");
        goto done;
    }

    alg = am_jwt_alg_find(s);
    if (alg == NULL) {
        am_jwt_error(err, errlen, "algorithm not allowed");
        goto done;
    }

    /* no critical extension is understood, so any "crit" is fatal */
    if (am_jwt_member(header, "crit") != NULL) {
        am_jwt_error(err, errlen, "unsupported crit header");
        goto done;
    }

    v = am_jwt_member(header, "kid");
    if (v != NULL && !YAJL_IS_STRING(v)) {
        am_jwt_error(err, errlen, "malformed token");
        goto done;
    }

    kid = am_jwt_string(v);

    if (slen == 0) {
        am_jwt_error(err, errlen, "malformed token");
        goto done;
    }

    if (am_jwt_verify_signature(
            keys, alg, kid, token, dot2 - token, sig, slen, err, errlen)
        != 0) {
        goto done;
    }

    payload = am_jwt_json_parse((char *) pbuf, plen, NULL, 0);

    if (payload == NULL || !YAJL_IS_OBJECT(payload)
        || !am_jwt_members_unique(payload)) {
        am_jwt_error(err, errlen, "claims are not a JSON object");
        goto done;
    }

    if (am_jwt_check_claims(payload, opts, err, errlen) != 0) {
        goto done;
    }

    *claims = payload;
    payload = NULL;
    rc = 0;

done:

    yajl_tree_free(header);
    yajl_tree_free(payload);
    free(hbuf);
    free(pbuf);
    free(sig);

    return rc;
}


/* Reads a PEM private key (PKCS#8 or traditional, unencrypted). */
static EVP_PKEY *
am_jwt_pem_private(const char *path, char *err, size_t errlen)
{
    const unsigned char *p;
    OSSL_DECODER_CTX    *dctx;
    EVP_PKEY            *pkey;
    size_t               len, plen;
    char                *pem;

    if (am_jwt_read_file(path, &pem, &len, err, errlen) != 0) {
        return NULL;
    }

    pkey = NULL;

    dctx = OSSL_DECODER_CTX_new_for_pkey(
        &pkey, "PEM", NULL, NULL, EVP_PKEY_KEYPAIR, NULL, NULL);

    if (dctx != NULL) {
        p = (const unsigned char *) pem;
        plen = len;

        if (OSSL_DECODER_from_data(dctx, &p, &plen) != 1) {
            pkey = NULL;
        }

        OSSL_DECODER_CTX_free(dctx);
    }

    OPENSSL_clear_free(pem, len + 1);

    if (pkey == NULL) {
        am_jwt_error(
            err, errlen, "\"%s\": no unencrypted PEM private key", path);
        return NULL;
    }

    ERR_clear_error();
    return pkey;
}


/*
 * Signs data with a private key into a malloc'd JWS signature; ES* come
 * out of OpenSSL as DER and are turned into r || s.
 */
static unsigned char *
am_jwt_sign_pkey(EVP_PKEY *pkey, const am_jwt_alg_t *alg,
    const unsigned char *data, size_t len, size_t *siglen)
{
    const unsigned char *p;
    const BIGNUM        *r, *s;
    unsigned char       *sig, *raw;
    EVP_MD_CTX          *ctx;
    ECDSA_SIG           *ecdsa;
    size_t               n;

    sig = NULL;
    raw = NULL;

    ctx = EVP_MD_CTX_new();

    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, alg->md(), NULL, pkey) != 1
        || EVP_DigestSign(ctx, NULL, &n, data, len) != 1
        || (sig = malloc(n)) == NULL
        || EVP_DigestSign(ctx, sig, &n, data, len) != 1) {
        goto failed;
    }

    EVP_MD_CTX_free(ctx);
    ctx = NULL;

    if (alg->family != AM_JWT_EC) {
        *siglen = n;
        return sig;
    }

    p = sig;
    ecdsa = d2i_ECDSA_SIG(NULL, &p, (long) n);
    if (ecdsa == NULL) {
        goto failed;
    }

    ECDSA_SIG_get0(ecdsa, &r, &s);

    raw = malloc(2 * alg->ec_len);

    if (raw == NULL || BN_bn2binpad(r, raw, (int) alg->ec_len) < 0
        || BN_bn2binpad(s, raw + alg->ec_len, (int) alg->ec_len) < 0) {
        ECDSA_SIG_free(ecdsa);
        goto failed;
    }

    ECDSA_SIG_free(ecdsa);
    free(sig);

    *siglen = 2 * alg->ec_len;
    return raw;

failed:

    EVP_MD_CTX_free(ctx);
    free(sig);
    free(raw);

    return NULL;
}


/* The header {"alg":...,"typ":"JWT"[,"kid":...]} as base64url. */
static char *
am_jwt_header_b64(const am_jwt_alg_t *alg, const char *kid)
{
    const unsigned char *buf;
    yajl_gen             g;
    size_t               len;
    char                *out;

    out = NULL;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NULL;
    }

    yajl_gen_map_open(g);
    yajl_gen_string(g, (const unsigned char *) "alg", 3);
    yajl_gen_string(g, (const unsigned char *) alg->name, strlen(alg->name));
    yajl_gen_string(g, (const unsigned char *) "typ", 3);
    yajl_gen_string(g, (const unsigned char *) "JWT", 3);

    if (kid != NULL) {
        yajl_gen_string(g, (const unsigned char *) "kid", 3);
        yajl_gen_string(g, (const unsigned char *) kid, strlen(kid));
    }

    if (yajl_gen_map_close(g) == yajl_gen_status_ok
        && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
        out = malloc(AM_B64_LEN(len) + 1);
        if (out != NULL) {
            am_b64url_encode(buf, len, out);
        }
    }

    yajl_gen_free(g);

    return out;
}


/* 0 when payload is the JSON text of an object the verifier would take. */
static int
am_jwt_payload_valid(const char *payload, size_t len)
{
    yajl_val v;
    char    *copy;
    int      ok;

    copy = malloc(len + 1);
    if (copy == NULL) {
        return -1;
    }

    memcpy(copy, payload, len);
    copy[len] = '\0';

    v = am_jwt_json_parse(copy, len, NULL, 0);
    ok = (v != NULL && YAJL_IS_OBJECT(v) && am_jwt_members_unique(v));

    yajl_tree_free(v);
    free(copy);

    return ok ? 0 : -1;
}


char *
am_jwt_sign(const char *alg_name, const char *key_path, const char *kid,
    const char *payload, size_t len, char *err, size_t errlen)
{
    const am_jwt_alg_t *alg;
    unsigned char       mac[EVP_MAX_MD_SIZE], *secret, *sig;
    unsigned int        maclen;
    EVP_PKEY           *pkey;
    size_t              slen, n, hlen;
    char               *header, *token, *p, where[512];

    alg = (alg_name != NULL) ? am_jwt_alg_find(alg_name) : NULL;
    if (alg == NULL) {
        am_jwt_error(err, errlen, "unsupported alg \"%s\"",
            alg_name ? alg_name : "(null)");
        return NULL;
    }

    if (am_jwt_payload_valid(payload, len) != 0) {
        am_jwt_error(err, errlen, "payload is not a JSON object");
        return NULL;
    }

    header = am_jwt_header_b64(alg, kid);
    if (header == NULL) {
        am_jwt_error(err, errlen, "out of memory");
        return NULL;
    }

    hlen = strlen(header);

    /* header "." payload "." signature (at most 1024 bytes, RSA 8192) */
    token = malloc(hlen + 1 + AM_B64_LEN(len) + 1 + AM_B64_LEN(1024) + 1);
    if (token == NULL) {
        free(header);
        am_jwt_error(err, errlen, "out of memory");
        return NULL;
    }

    p = token;
    memcpy(p, header, hlen);
    p += hlen;
    *p++ = '.';
    p += am_b64url_encode((const unsigned char *) payload, len, p);
    n = (size_t) (p - token);
    free(header);

    sig = NULL;

    if (alg->family == AM_JWT_HMAC) {
        if (am_jwt_secret_read(key_path, &secret, &slen, err, errlen) != 0) {
            goto failed;
        }

        p = (char *) HMAC(alg->md(), secret, (int) slen,
            (unsigned char *) token, n, mac, &maclen);
        OPENSSL_clear_free(secret, slen);

        if (p == NULL) {
            am_jwt_error(err, errlen, "HMAC failed");
            goto failed;
        }

        slen = maclen;

    } else {
        pkey = am_jwt_pem_private(key_path, err, errlen);
        if (pkey == NULL) {
            goto failed;
        }

        snprintf(where, sizeof(where), "\"%s\"", key_path);

        if (am_jwt_pkey_alg(pkey, alg->name, where, &alg, err, errlen) != 0) {
            EVP_PKEY_free(pkey);
            goto failed;
        }

        sig = am_jwt_sign_pkey(pkey, alg, (unsigned char *) token, n, &slen);
        EVP_PKEY_free(pkey);

        if (sig == NULL || slen > 1024) {
            free(sig);
            am_jwt_error(err, errlen, "\"%s\": signing failed", key_path);
            goto failed;
        }
    }

    p = token + n;
    *p++ = '.';
    am_b64url_encode(sig ? sig : mac, slen, p);

    free(sig);
    OPENSSL_cleanse(mac, sizeof(mac));

    return token;

failed:

    free(token);
    return NULL;
}
