/*
 * JWT keys: HMAC secret files, PEM public keys and certificates, JWKS
 * files. Each key is pinned to the one algorithm it may be used with (see
 * am_jwt.c for why), decided here when it is loaded.
 *
 * A JWKS is often published by someone else, for more than us: keys for
 * encryption, for algorithms or curves we do not implement, retired weak
 * keys. Those are skipped and reported rather than failing the file, so
 * that a provider adding such a key does not stop the gateway from
 * starting; a key of a kind we use that is malformed still fails it.
 */

#include <errno.h>
#include <fcntl.h>
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
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <yajl/yajl_tree.h>

#include "am_json.h"
#include "am_jwt_int.h"

/* key, secret and JWKS files are small; refuse anything unreasonable */
#define AM_JWT_FILE_MAX (1024 * 1024)

/* bytes of the longest EC coordinate (P-384) */
#define AM_JWT_EC_MAX 48

/* bytes of an Ed25519 public key (RFC 8032 5.1.5) */
#define AM_JWT_ED25519_LEN 32


static const am_jwt_alg_t am_jwt_algs[] = {
    {"HS256", AM_JWT_HMAC, EVP_sha256, 0, NULL, NULL},
    {"HS384", AM_JWT_HMAC, EVP_sha384, 0, NULL, NULL},
    {"HS512", AM_JWT_HMAC, EVP_sha512, 0, NULL, NULL},
    {"RS256", AM_JWT_RSA, EVP_sha256, 0, NULL, NULL},
    {"RS384", AM_JWT_RSA, EVP_sha384, 0, NULL, NULL},
    {"RS512", AM_JWT_RSA, EVP_sha512, 0, NULL, NULL},
    {"PS256", AM_JWT_PSS, EVP_sha256, 0, NULL, NULL},
    {"PS384", AM_JWT_PSS, EVP_sha384, 0, NULL, NULL},
    {"PS512", AM_JWT_PSS, EVP_sha512, 0, NULL, NULL},
    {"ES256", AM_JWT_EC, EVP_sha256, 32, "prime256v1", "P-256"},
    {"ES384", AM_JWT_EC, EVP_sha384, 48, "secp384r1", "P-384"},
    {"EdDSA", AM_JWT_EDDSA, NULL, 0, "ED25519", "Ed25519"},
};

#define AM_JWT_NALGS (sizeof(am_jwt_algs) / sizeof(am_jwt_algs[0]))


const am_jwt_alg_t *
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
int
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
int
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
 * given (it must fit the key), else the one implied by an EC curve or an
 * Ed25519 key. where prefixes error messages.
 */
int
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
                "%s: RSA key needs alg RS256, RS384, RS512, PS256, PS384 "
                "or PS512",
                where);
        }

        if (alg->family != AM_JWT_RSA && alg->family != AM_JWT_PSS) {
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

    if (EVP_PKEY_is_a(pkey, "ED25519")) {
        by_curve = am_jwt_alg_find("EdDSA");

        if (alg != NULL && alg != by_curve) {
            return am_jwt_error(
                err, errlen, "%s: Ed25519 key needs alg EdDSA", where);
        }

        *out = by_curve;
        return 0;
    }

    return am_jwt_error(err, errlen,
        "%s: unsupported key type %s, use RSA, EC or Ed25519", where,
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


/* A JWK member that must be a base64url string, decoded. */
static unsigned char *
am_jwt_jwk_bytes(yajl_val jwk, const char *name, const char *where, size_t *len,
    char *err, size_t errlen)
{
    unsigned char *out;
    const char    *s;

    s = am_jwt_string(am_json_get(jwk, name));

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


/* An EC public key on the curve of alg. */
static EVP_PKEY *
am_jwt_jwk_ec(yajl_val jwk, const am_jwt_alg_t *alg, const char *where,
    char *err, size_t errlen)
{
    OSSL_PARAM_BLD *bld;
    unsigned char  *x, *y, pub[1 + 2 * AM_JWT_EC_MAX];
    EVP_PKEY       *pkey;
    size_t          xlen, ylen;

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


static EVP_PKEY *
am_jwt_jwk_ed25519(yajl_val jwk, const char *where, char *err, size_t errlen)
{
    unsigned char *x;
    EVP_PKEY      *pkey;
    size_t         xlen;

    x = am_jwt_jwk_bytes(jwk, "x", where, &xlen, err, errlen);
    if (x == NULL) {
        return NULL;
    }

    pkey = NULL;

    if (xlen != AM_JWT_ED25519_LEN) {
        am_jwt_error(err, errlen, "%s: \"x\" must be %d bytes", where,
            AM_JWT_ED25519_LEN);

    } else {
        pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xlen);
        if (pkey == NULL) {
            am_jwt_error(err, errlen, "%s: invalid Ed25519 key", where);
        }
    }

    free(x);

    return pkey;
}


/* The "crv" of an EC or OKP JWK, or NULL and err. */
static const char *
am_jwt_jwk_crv(yajl_val jwk, const char *where, char *err, size_t errlen)
{
    const char *crv;

    crv = am_jwt_string(am_json_get(jwk, "crv"));
    if (crv == NULL) {
        am_jwt_error(err, errlen, "%s: \"crv\" missing or not a string", where);
    }

    return crv;
}


/* 1 when a JWK's "key_ops" (an array of strings) allows "verify". */
static int
am_jwt_jwk_verifies(yajl_val ops)
{
    const char *s;
    size_t      i;

    for (i = 0; i < ops->u.array.len; i++) {
        s = am_jwt_string(ops->u.array.values[i]);

        if (s != NULL && strcmp(s, "verify") == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * Adds one JWK of a JWKS file. Returns 0 when added; 1 when skipped, a key
 * we do not use, with why in msg; -1 when malformed, with the error in msg.
 */
static int
am_jwt_jwk_add(am_jwt_keys_t *keys, yajl_val jwk, const char *path,
    size_t index, char *msg, size_t msglen)
{
    const am_jwt_alg_t *a;
    unsigned char      *secret;
    const char         *kty, *alg, *kid, *crv, *use;
    EVP_PKEY           *pkey;
    yajl_val            v;
    size_t              len;
    char                where[512], skipped[600];

    snprintf(where, sizeof(where), "\"%s\": key %zu", path, index);

    if (!YAJL_IS_OBJECT(jwk)) {
        return am_jwt_error(msg, msglen, "%s: not an object", where);
    }

    v = am_json_get(jwk, "kid");
    if (v != NULL && !YAJL_IS_STRING(v)) {
        return am_jwt_error(msg, msglen, "%s: \"kid\" is not a string", where);
    }

    kid = am_jwt_string(v);

    if (kid != NULL) {
        snprintf(where, sizeof(where), "\"%s\": key \"%s\"", path, kid);
    }

    snprintf(skipped, sizeof(skipped), "%s skipped", where);

    v = am_json_get(jwk, "use");
    if (v != NULL && !YAJL_IS_STRING(v)) {
        return am_jwt_error(msg, msglen, "%s: \"use\" is not a string", where);
    }

    use = am_jwt_string(v);

    if (use != NULL && strcmp(use, "sig") != 0) {
        am_jwt_error(msg, msglen, "%s: \"use\" is \"%s\"", skipped, use);
        return 1;
    }

    v = am_json_get(jwk, "key_ops");
    if (v != NULL && !YAJL_IS_ARRAY(v)) {
        return am_jwt_error(
            msg, msglen, "%s: \"key_ops\" is not an array", where);
    }

    if (v != NULL && !am_jwt_jwk_verifies(v)) {
        am_jwt_error(msg, msglen, "%s: \"key_ops\" lacks \"verify\"", skipped);
        return 1;
    }

    v = am_json_get(jwk, "alg");
    if (v != NULL && !YAJL_IS_STRING(v)) {
        return am_jwt_error(msg, msglen, "%s: \"alg\" is not a string", where);
    }

    alg = am_jwt_string(v);

    if (alg != NULL && !am_jwt_alg_supported(alg)) {
        am_jwt_error(msg, msglen, "%s: unsupported alg \"%s\"", skipped, alg);
        return 1;
    }

    kty = am_jwt_string(am_json_get(jwk, "kty"));
    if (kty == NULL) {
        return am_jwt_error(
            msg, msglen, "%s: \"kty\" missing or not a string", where);
    }

    if (strcmp(kty, "oct") == 0) {
        a = (alg != NULL) ? am_jwt_alg_find(alg) : NULL;

        if (a == NULL || a->family != AM_JWT_HMAC) {
            am_jwt_error(msg, msglen,
                "%s: oct key needs alg HS256, HS384 or HS512", skipped);
            return 1;
        }

        secret = am_jwt_jwk_bytes(jwk, "k", where, &len, msg, msglen);
        if (secret == NULL) {
            return -1;
        }

        if (len < AM_JWT_MIN_SECRET) {
            OPENSSL_clear_free(secret, len);
            am_jwt_error(msg, msglen,
                "%s: HMAC secret is %zu bytes, needs at least %d", skipped, len,
                AM_JWT_MIN_SECRET);
            return 1;
        }

        return am_jwt_keys_push(keys, a, kid, secret, len, NULL, msg, msglen);
    }

    if (strcmp(kty, "RSA") == 0) {
        pkey = am_jwt_jwk_rsa(jwk, where, msg, msglen);
        if (alg == NULL) {
            alg = "RS256";
        }

    } else if (strcmp(kty, "EC") == 0) {
        crv = am_jwt_jwk_crv(jwk, where, msg, msglen);
        if (crv == NULL) {
            return -1;
        }

        a = am_jwt_alg_by_curve(crv);

        if (a == NULL || strcmp(a->crv, crv) != 0) {
            am_jwt_error(msg, msglen,
                "%s: EC curve \"%s\" is not supported, use P-256 or P-384",
                skipped, crv);
            return 1;
        }

        pkey = am_jwt_jwk_ec(jwk, a, where, msg, msglen);

    } else if (strcmp(kty, "OKP") == 0) {
        crv = am_jwt_jwk_crv(jwk, where, msg, msglen);
        if (crv == NULL) {
            return -1;
        }

        if (strcmp(crv, "Ed25519") != 0) {
            am_jwt_error(msg, msglen,
                "%s: OKP curve \"%s\" is not supported, use Ed25519", skipped,
                crv);
            return 1;
        }

        pkey = am_jwt_jwk_ed25519(jwk, where, msg, msglen);

    } else {
        am_jwt_error(msg, msglen,
            "%s: unsupported kty \"%s\", use RSA, EC, OKP or oct", skipped,
            kty);
        return 1;
    }

    if (pkey == NULL) {
        return -1;
    }

    /* what is left is a sound key used otherwise: alg, or RSA size */
    if (am_jwt_pkey_alg(pkey, alg, skipped, &a, msg, msglen) != 0) {
        EVP_PKEY_free(pkey);
        return 1;
    }

    return am_jwt_keys_push(keys, a, kid, NULL, 0, pkey, msg, msglen);
}


int
am_jwt_keys_add_jwks(am_jwt_keys_t *keys, const char *path, am_jwt_skip_pt skip,
    void *data, char *err, size_t errlen)
{
    const char *keys_path[] = {"keys", NULL};
    yajl_val    root, arr;
    size_t      len, i, n0, added, skipped;
    char       *buf, ebuf[128], msg[1024];
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
    skipped = 0;
    rc = 0;

    for (i = 0; i < arr->u.array.len; i++) {
        rc = am_jwt_jwk_add(
            keys, arr->u.array.values[i], path, i, msg, sizeof(msg));

        if (rc == -1) {
            break;
        }

        if (rc == 1) {
            skipped++;

            if (skip != NULL) {
                skip(data, msg);
            }

        } else {
            added++;
        }
    }

    yajl_tree_free(root);

    if (rc == -1) {
        am_jwt_keys_truncate(keys, n0);
        return am_jwt_error(err, errlen, "%s", msg);
    }

    if (added == 0) {
        return am_jwt_error(err, errlen,
            "\"%s\": no usable signing key in \"keys\" (%zu skipped)", path,
            skipped);
    }

    return 0;
}
