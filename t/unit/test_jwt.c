/*
 * Unit tests of src/am_jwt.c, printed as TAP. Keys are generated at run
 * time into a temporary directory that is removed at the end.
 */

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "am_crypto.h"
#include "am_jwt.h"

#include "tap.h"

/* the tests' "now": 2023-11-14 */
#define AM_TEST_NOW 1700000000L

#define AM_TEST_MAX_FILES 64

#define AM_TEST_MAX_SKIPPED 32


static char am_test_dir[256];
static char am_test_err[256];

static char *am_test_files[AM_TEST_MAX_FILES];
static int   am_test_nfiles;

/* the HMAC secret, without its trailing newline */
static unsigned char am_test_secret[48];

/* what the last am_test_add_jwks() reported as skipped */
static char *am_test_skipped[AM_TEST_MAX_SKIPPED];
static int   am_test_nskipped;

static EVP_PKEY *am_test_rsa, *am_test_ec256, *am_test_ec384, *am_test_ed;


/* The path of a file in the temporary directory (8 rotating buffers). */
static const char *
am_test_path(const char *name)
{
    static char buf[8][512];
    static int  i;

    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", am_test_dir, name);

    return buf[i];
}


static void
am_test_track(const char *path)
{
    if (am_test_nfiles == AM_TEST_MAX_FILES) {
        am_test_bail("too many files");
    }

    am_test_files[am_test_nfiles++] = strdup(path);
}


static void
am_test_write(const char *name, const void *data, size_t len)
{
    const char *path;
    FILE       *f;

    path = am_test_path(name);

    f = fopen(path, "w");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        am_test_bail(path);
    }

    am_test_track(path);
}


static void
am_test_write_str(const char *name, const char *s)
{
    am_test_write(name, s, strlen(s));
}


/* Writes a PEM file: kind "pub", "pkcs1", "key" (PKCS#8) or "trad". */
static void
am_test_write_pem(const char *name, EVP_PKEY *pkey, const char *kind)
{
    OSSL_ENCODER_CTX *ectx;
    const char       *path;
    BIO              *bio;
    int               ok;

    path = am_test_path(name);

    bio = BIO_new_file(path, "w");
    if (bio == NULL) {
        am_test_bail(path);
    }

    if (strcmp(kind, "pub") == 0) {
        ok = PEM_write_bio_PUBKEY(bio, pkey);

    } else if (strcmp(kind, "pkcs1") == 0) {
        ectx = OSSL_ENCODER_CTX_new_for_pkey(
            pkey, EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific", NULL);
        ok = ectx != NULL && OSSL_ENCODER_to_bio(ectx, bio);
        OSSL_ENCODER_CTX_free(ectx);

    } else if (strcmp(kind, "key") == 0) {
        ok = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);

    } else {
        ok = PEM_write_bio_PrivateKey_traditional(
            bio, pkey, NULL, NULL, 0, NULL, NULL);
    }

    BIO_free(bio);

    if (!ok) {
        am_test_bail(path);
    }

    am_test_track(path);
}


/* A self-signed certificate for pkey (Ed25519 signs without a digest). */
static void
am_test_write_cert(const char *name, EVP_PKEY *pkey)
{
    const char *path;
    X509_NAME  *subject;
    X509       *x509;
    BIO        *bio;

    x509 = X509_new();

    if (x509 == NULL || !X509_set_version(x509, 2)
        || !ASN1_INTEGER_set(X509_get_serialNumber(x509), 1)
        || !X509_gmtime_adj(X509_getm_notBefore(x509), 0)
        || !X509_gmtime_adj(X509_getm_notAfter(x509), 3600)
        || !X509_set_pubkey(x509, pkey)) {
        am_test_bail("certificate");
    }

    subject = X509_get_subject_name(x509);

    if (!X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
            (const unsigned char *) "am-test", -1, -1, 0)
        || !X509_set_issuer_name(x509, subject)
        || !X509_sign(
            x509, pkey, EVP_PKEY_is_a(pkey, "ED25519") ? NULL : EVP_sha256())) {
        am_test_bail("certificate");
    }

    path = am_test_path(name);

    bio = BIO_new_file(path, "w");
    if (bio == NULL || !PEM_write_bio_X509(bio, x509)) {
        am_test_bail(path);
    }

    BIO_free(bio);
    X509_free(x509);
    am_test_track(path);
}


/* A BIGNUM parameter of pkey as base64url, left-padded to pad bytes. */
static void
am_test_bn_b64(EVP_PKEY *pkey, const char *param, int pad, char *out)
{
    unsigned char buf[1024];
    BIGNUM       *bn;
    int           n;

    bn = NULL;

    if (!EVP_PKEY_get_bn_param(pkey, param, &bn)) {
        am_test_bail(param);
    }

    n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);

    am_b64url_encode(buf, (size_t) n, out);
}


static char *
am_test_read(const char *path, size_t *len)
{
    FILE *f;
    char *buf;

    buf = malloc(1024 * 1024);
    f = fopen(path, "r");

    if (buf == NULL || f == NULL) {
        am_test_bail(path);
    }

    *len = fread(buf, 1, 1024 * 1024 - 1, f);
    buf[*len] = '\0';
    fclose(f);

    return buf;
}


static char *
am_test_b64(const void *data, size_t len)
{
    char *out;

    out = malloc(AM_B64_LEN(len) + 1);
    if (out == NULL) {
        am_test_bail("malloc");
    }

    am_b64url_encode(data, len, out);

    return out;
}


/* A HS256 token over arbitrary header and payload text. */
static char *
am_test_hs256(const char *header, const char *payload,
    const unsigned char *secret, size_t secret_len)
{
    unsigned char mac[32];
    char         *h, *p, *s, *token;
    size_t        n;

    h = am_test_b64(header, strlen(header));
    p = am_test_b64(payload, strlen(payload));

    n = strlen(h) + strlen(p) + 2 + AM_B64_LEN(32) + 1;
    token = malloc(n);
    if (token == NULL) {
        am_test_bail("malloc");
    }

    snprintf(token, n, "%s.%s", h, p);

    if (am_hmac_sha256(secret, secret_len, token, strlen(token), mac) != 0) {
        am_test_bail("hmac");
    }

    s = am_test_b64(mac, sizeof(mac));
    strcat(token, ".");
    strcat(token, s);

    free(h);
    free(p);
    free(s);

    return token;
}


/*
 * A token over header and payload signed by pkey with OpenSSL directly, to
 * make signatures am_jwt_sign() never would: md NULL for Ed25519; for RSA
 * pad RSA_PKCS1_PADDING, or RSA_PKCS1_PSS_PADDING with saltlen and mgf1.
 */
static char *
am_test_pkey_token(const char *header, const char *payload, EVP_PKEY *pkey,
    const EVP_MD *md, int pad, int saltlen, const EVP_MD *mgf1)
{
    EVP_PKEY_CTX *pctx;
    unsigned char sig[512];
    EVP_MD_CTX   *ctx;
    size_t        n, siglen;
    char         *h, *p, *token;
    int           ok;

    h = am_test_b64(header, strlen(header));
    p = am_test_b64(payload, strlen(payload));

    n = strlen(h) + strlen(p) + 2 + AM_B64_LEN(sizeof(sig)) + 1;
    token = malloc(n);
    if (token == NULL) {
        am_test_bail("malloc");
    }

    snprintf(token, n, "%s.%s", h, p);
    free(h);
    free(p);

    ctx = EVP_MD_CTX_new();
    siglen = sizeof(sig);

    ok = ctx != NULL && EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey) == 1;

    if (ok && pad != 0) {
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, pad) == 1;
    }

    if (ok && pad == RSA_PKCS1_PSS_PADDING) {
        ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, saltlen) == 1
             && EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, mgf1) == 1;
    }

    if (!ok
        || EVP_DigestSign(
               ctx, sig, &siglen, (unsigned char *) token, strlen(token))
               != 1) {
        am_test_bail("EVP_DigestSign");
    }

    EVP_MD_CTX_free(ctx);

    n = strlen(token);
    token[n++] = '.';
    am_b64url_encode(sig, siglen, token + n);

    return token;
}


/* A PS256 token signed the way RFC 7518 says, with OpenSSL directly. */
static char *
am_test_ps256(const char *payload)
{
    return am_test_pkey_token("{\"alg\":\"PS256\"}", payload, am_test_rsa,
        EVP_sha256(), RSA_PKCS1_PSS_PADDING, 32, EVP_sha256());
}


static char *
am_test_hs(const char *header, const char *payload)
{
    return am_test_hs256(
        header, payload, am_test_secret, sizeof(am_test_secret));
}


static char *
am_test_sign(
    const char *alg, const char *key, const char *kid, const char *payload)
{
    char *token;

    token = am_jwt_sign(alg, am_test_path(key), kid, payload, strlen(payload),
        am_test_err, sizeof(am_test_err));
    if (token == NULL) {
        printf("# sign %s with %s: %s\n", alg, key, am_test_err);
    }

    return token;
}


/*
 * Verifies a copy of token held in a buffer of exactly its length, so that
 * valgrind sees any read past the end. Returns the rc; *sub gets the "sub"
 * claim when asked for.
 */
static int
am_test_verify_opts(const am_jwt_keys_t *keys, const char *token, size_t len,
    const am_jwt_opts_t *opts, char *sub, size_t sublen)
{
    const char *path[] = {"sub", NULL};
    yajl_val    claims, v;
    char       *copy;
    int         rc;

    am_test_err[0] = '\0';

    if (token == NULL) {
        snprintf(am_test_err, sizeof(am_test_err), "no token");
        return -2;
    }

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        am_test_bail("malloc");
    }

    memcpy(copy, token, len);

    claims = (yajl_val) 1;
    rc = am_jwt_verify(
        keys, copy, len, opts, &claims, am_test_err, sizeof(am_test_err));
    free(copy);

    if (rc == 0 && (claims == NULL || !YAJL_IS_OBJECT(claims))) {
        return -3;
    }

    if (rc != 0 && claims != NULL) {
        return -4;
    }

    if (sub != NULL) {
        sub[0] = '\0';
        v = (rc == 0) ? yajl_tree_get(claims, path, yajl_t_string) : NULL;
        if (v != NULL) {
            snprintf(sub, sublen, "%s", YAJL_GET_STRING(v));
        }
    }

    yajl_tree_free(claims);

    return rc;
}


static am_jwt_opts_t am_test_opts;


static int
am_test_verify(const am_jwt_keys_t *keys, const char *token)
{
    return am_test_verify_opts(
        keys, token, token ? strlen(token) : 0, &am_test_opts, NULL, 0);
}


/* 1 when verification fails with a reason containing want. */
static int
am_test_refused(const am_jwt_keys_t *keys, const char *token, const char *want)
{
    return am_test_verify(keys, token) == -1
           && strstr(am_test_err, want) != NULL;
}


static am_jwt_keys_t *
am_test_keys(void)
{
    am_jwt_keys_t *keys;

    keys = am_jwt_keys_new();
    if (keys == NULL) {
        am_test_bail("am_jwt_keys_new");
    }

    return keys;
}


static int
am_test_add(
    am_jwt_keys_t *keys, const char *name, const char *alg, const char *kid)
{
    am_test_err[0] = '\0';

    return am_jwt_keys_add_file(
        keys, am_test_path(name), alg, kid, am_test_err, sizeof(am_test_err));
}


static void
am_test_skip(void *data, const char *msg)
{
    (void) data;

    if (am_test_nskipped == AM_TEST_MAX_SKIPPED) {
        am_test_bail("too many skipped keys");
    }

    am_test_skipped[am_test_nskipped++] = strdup(msg);
}


static int
am_test_add_jwks(am_jwt_keys_t *keys, const char *name)
{
    am_test_err[0] = '\0';

    while (am_test_nskipped > 0) {
        free(am_test_skipped[--am_test_nskipped]);
    }

    return am_jwt_keys_add_jwks(keys, am_test_path(name), am_test_skip, NULL,
        am_test_err, sizeof(am_test_err));
}


/* A token's segment i (0..2) replaced by the base64url of data. */
static char *
am_test_replace_segment(const char *token, int i, const void *data, size_t len)
{
    const char *start, *end;
    char       *b64, *out;
    size_t      n;
    int         k;

    start = token;
    for (k = 0; k < i; k++) {
        start = strchr(start, '.') + 1;
    }

    end = strchr(start, '.');
    if (end == NULL) {
        end = start + strlen(start);
    }

    b64 = am_test_b64(data, len);
    n = strlen(token) + strlen(b64) + 1;

    out = malloc(n);
    if (out == NULL) {
        am_test_bail("malloc");
    }

    snprintf(out, n, "%.*s%s%s", (int) (start - token), token, b64, end);
    free(b64);

    return out;
}


/* The decoded signature segment of token. */
static size_t
am_test_signature(const char *token, unsigned char *out)
{
    const char *s;
    long        n;

    s = strrchr(token, '.') + 1;
    n = am_b64url_decode(s, strlen(s), out);

    return n < 0 ? 0 : (size_t) n;
}


static char *
am_test_concat(const char *a, const char *b)
{
    char  *out;
    size_t n;

    n = strlen(a) + strlen(b) + 1;
    out = malloc(n);
    if (out == NULL) {
        am_test_bail("malloc");
    }

    snprintf(out, n, "%s%s", a, b);

    return out;
}


/* The raw public key of an Ed25519 or Ed448 key as base64url. */
static void
am_test_raw_b64(EVP_PKEY *pkey, char *out)
{
    unsigned char buf[64];
    size_t        n;

    n = sizeof(buf);

    if (EVP_PKEY_get_raw_public_key(pkey, buf, &n) != 1) {
        am_test_bail("raw public key");
    }

    am_b64url_encode(buf, n, out);
}


static void
am_test_setup(void)
{
    char      n[1024], e[16], x256[64], y256[64], x384[80], y384[80];
    char      jwks[8192], k[80], bad[4096], secret[64], ed[64], ed448x[96];
    char      n1024[256], mixed[16384];
    EVP_PKEY *rsa1024, *ed448, *ed2;

    snprintf(am_test_dir, sizeof(am_test_dir), "%s/am-jwt-XXXXXX",
        getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");

    if (mkdtemp(am_test_dir) == NULL) {
        am_test_bail("mkdtemp");
    }

    am_test_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    am_test_ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    am_test_ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 1024);
    am_test_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ed2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");

    if (am_test_rsa == NULL || am_test_ec256 == NULL || am_test_ec384 == NULL
        || rsa1024 == NULL || am_test_ed == NULL || ed2 == NULL
        || ed448 == NULL) {
        am_test_bail("keygen");
    }

    am_test_write_pem("rsa.pub", am_test_rsa, "pub");
    am_test_write_pem("rsa-pkcs1.pub", am_test_rsa, "pkcs1");
    am_test_write_pem("rsa.key", am_test_rsa, "key");
    am_test_write_pem("rsa-trad.key", am_test_rsa, "trad");
    am_test_write_cert("rsa.crt", am_test_rsa);
    am_test_write_pem("ec256.pub", am_test_ec256, "pub");
    am_test_write_pem("ec256.key", am_test_ec256, "key");
    am_test_write_pem("ec384.pub", am_test_ec384, "pub");
    am_test_write_pem("ec384.key", am_test_ec384, "trad");
    am_test_write_pem("rsa1024.pub", rsa1024, "pub");
    am_test_write_pem("ed25519.pub", am_test_ed, "pub");
    am_test_write_pem("ed25519.key", am_test_ed, "key");
    am_test_write_cert("ed25519.crt", am_test_ed);
    am_test_write_pem("ed25519-2.key", ed2, "key");
    am_test_write_pem("ed448.pub", ed448, "pub");
    am_test_write_pem("ed448.key", ed448, "key");

    am_test_bn_b64(rsa1024, OSSL_PKEY_PARAM_RSA_N, 0, n1024);
    am_test_raw_b64(am_test_ed, ed);
    am_test_raw_b64(ed448, ed448x);

    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(ed2);
    EVP_PKEY_free(ed448);

    /* a printable secret, so that the newline rules are what is tested */
    if (RAND_bytes(am_test_secret, 36) != 1) {
        am_test_bail("RAND_bytes");
    }

    am_b64url_encode(am_test_secret, 36, secret);
    memcpy(am_test_secret, secret, 48);

    am_test_write("hs-nonl.secret", secret, 48);
    memcpy(secret + 48, "\n", 2);
    am_test_write_str("hs.secret", secret);
    memcpy(secret + 48, "\r\n", 3);
    am_test_write_str("hs-crlf.secret", secret);
    memcpy(secret + 48, "\n\n", 3);
    am_test_write_str("hs-2nl.secret", secret);
    am_test_write_str("short.secret", "0123456789012345678901234567890\n");
    am_test_write_str("empty.secret", "");
    am_test_write_str("newline.secret", "\n");
    am_test_write_str("garbage.pub", "-----BEGIN PUBLIC KEY-----\nxx\n");

    am_test_bn_b64(am_test_rsa, OSSL_PKEY_PARAM_RSA_N, 0, n);
    am_test_bn_b64(am_test_rsa, OSSL_PKEY_PARAM_RSA_E, 0, e);
    am_test_bn_b64(am_test_ec256, OSSL_PKEY_PARAM_EC_PUB_X, 32, x256);
    am_test_bn_b64(am_test_ec256, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y256);
    am_test_bn_b64(am_test_ec384, OSSL_PKEY_PARAM_EC_PUB_X, 48, x384);
    am_test_bn_b64(am_test_ec384, OSSL_PKEY_PARAM_EC_PUB_Y, 48, y384);
    am_b64url_encode(am_test_secret, sizeof(am_test_secret), k);

    snprintf(jwks, sizeof(jwks),
        "{\"keys\":[\n"
        " {\"kty\":\"RSA\",\"kid\":\"rsa1\",\"use\":\"sig\","
        "\"n\":\"%s\",\"e\":\"%s\"},\n"
        " {\"kty\":\"RSA\",\"kid\":\"rsa2\",\"alg\":\"RS512\","
        "\"n\":\"%s\",\"e\":\"%s\"},\n"
        " {\"kty\":\"EC\",\"kid\":\"ec1\",\"crv\":\"P-256\","
        "\"x\":\"%s\",\"y\":\"%s\"},\n"
        " {\"kty\":\"EC\",\"kid\":\"ec2\",\"crv\":\"P-384\",\"alg\":\"ES384\","
        "\"x\":\"%s\",\"y\":\"%s\"},\n"
        " {\"kty\":\"oct\",\"kid\":\"hs1\",\"alg\":\"HS512\",\"k\":\"%s\"},\n"
        " {\"kty\":\"RSA\",\"kid\":\"enc1\",\"use\":\"enc\","
        "\"n\":\"%s\",\"e\":\"%s\"},\n"
        " {\"kty\":\"RSA\",\"kid\":\"ps1\",\"alg\":\"PS256\","
        "\"n\":\"%s\",\"e\":\"%s\"},\n"
        " {\"kty\":\"RSA\",\"kid\":\"ps2\",\"alg\":\"PS512\",\"use\":\"sig\","
        "\"key_ops\":[\"verify\"],\"n\":\"%s\",\"e\":\"%s\"},\n"
        " {\"kty\":\"OKP\",\"kid\":\"ed1\",\"crv\":\"Ed25519\",\"x\":\"%s\"},\n"
        " {\"kty\":\"OKP\",\"kid\":\"ed2\",\"crv\":\"Ed25519\","
        "\"alg\":\"EdDSA\",\"use\":\"sig\",\"x\":\"%s\"}\n"
        "]}\n",
        n, e, n, e, x256, y256, x384, y384, k, n, e, n, e, n, e, ed, ed);
    am_test_write_str("jwks.json", jwks);

    /*
     * What an identity provider may publish next to the keys we use: ed1
     * and ps1, and keys for other uses, algorithms, curves and kinds; the
     * one without a kid (index 16) is named by its index.
     */
    snprintf(mixed, sizeof(mixed),
        "{\"keys\":[\n"
        " {\"kty\":\"OKP\",\"kid\":\"ed1\",\"crv\":\"Ed25519\",\"x\":\"%s\"},\n"
        " {\"kty\":\"OKP\",\"kid\":\"ed448\",\"crv\":\"Ed448\",\"x\":\"%s\"},\n"
        " {\"kty\":\"OKP\",\"kid\":\"x25519\",\"crv\":\"X25519\",\"x\":\"%s\"},"
        "\n"
        " {\"kty\":\"oct\",\"kid\":\"hs-odd\",\"alg\":\"HS1\",\"k\":\"%s\"},\n"
        " {\"kty\":\"oct\",\"kid\":\"hs-noalg\",\"k\":\"%s\"},\n"
        " {\"kty\":\"oct\",\"kid\":\"hs-short\",\"alg\":\"HS256\","
        "\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\"},\n"
        " {\"kty\":\"RSA\",\"kid\":\"enc1\",\"use\":\"enc\","
        "\"n\":\"%s\",\"e\":\"%s\"},\n"
        " {\"kty\":\"RSA\",\"kid\":\"oaep\",\"alg\":\"RSA-OAEP-256\","
        "\"n\":\"%s\",\"e\":\"%s\"},\n"
        " {\"kty\":\"RSA\",\"kid\":\"wrap\",\"key_ops\":[\"wrapKey\"],"
        "\"n\":\"%s\",\"e\":\"%s\"},\n"
        " {\"kty\":\"RSA\",\"kid\":\"small\",\"alg\":\"PS256\","
        "\"n\":\"%s\",\"e\":\"%s\"},\n"
        " {\"kty\":\"EC\",\"kid\":\"p521\",\"crv\":\"P-521\","
        "\"x\":\"AA\",\"y\":\"AA\"},\n"
        " {\"kty\":\"EC\",\"kid\":\"p256-es384\",\"crv\":\"P-256\","
        "\"alg\":\"ES384\",\"x\":\"%s\",\"y\":\"%s\"},\n"
        " {\"kty\":\"OKP\",\"kid\":\"ed-es256\",\"crv\":\"Ed25519\","
        "\"alg\":\"ES256\",\"x\":\"%s\"},\n"
        " {\"kty\":\"RSA\",\"kid\":\"rsa-eddsa\",\"alg\":\"EdDSA\","
        "\"n\":\"%s\",\"e\":\"%s\"},\n"
        " {\"kty\":\"AKP\",\"kid\":\"pq\",\"alg\":\"ML-DSA-44\"},\n"
        " {\"kty\":\"XYZ\",\"kid\":\"weird\"},\n"
        " {\"kty\":\"XYZ\"},\n"
        " {\"kty\":\"RSA\",\"kid\":\"ps1\",\"alg\":\"PS256\","
        "\"n\":\"%s\",\"e\":\"%s\"}\n"
        "]}\n",
        ed, ed448x, ed, k, k, n, e, n, e, n, e, n1024, e, x256, y256, ed, n, e,
        n, e);
    am_test_write_str("mixed.json", mixed);

    am_test_write_str("bad-oct.json", "{\"keys\":[{\"kty\":\"oct\",\"k\":\""
                                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                      "AAAAAAAAAAA\"}]}");

    am_test_write_str("bad-okp-len.json",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}");

    am_test_write_str(
        "bad-okp-crv.json", "{\"keys\":[{\"kty\":\"OKP\",\"x\":\"AAAA\"}]}");

    am_test_write_str("bad-okp-x.json",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"A+A/\"}]}");

    am_test_write_str("bad-keyops.json",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
        "\"key_ops\":\"verify\",\"x\":\"AAAA\"}]}");

    am_test_write_str("bad-kty-only.json",
        "{\"keys\":[{\"kty\":\"XYZ\",\"kid\":\"a\"},"
        "{\"kty\":\"OKP\",\"kid\":\"b\",\"crv\":\"X448\"}]}");

    /* a usable key, an unusable one, then a malformed one */
    snprintf(bad, sizeof(bad),
        "{\"keys\":[{\"kty\":\"OKP\",\"kid\":\"ok\",\"crv\":\"Ed25519\","
        "\"x\":\"%s\"},{\"kty\":\"XYZ\",\"kid\":\"other\"},"
        "{\"kty\":\"OKP\",\"kid\":\"broken\",\"crv\":\"Ed25519\"}]}",
        ed);
    am_test_write_str("bad-partial-okp.json", bad);

    snprintf(bad, sizeof(bad),
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"RS256\","
        "\"x\":\"%s\",\"y\":\"%s\"}]}",
        x256, y256);
    am_test_write_str("bad-ec-alg.json", bad);

    snprintf(bad, sizeof(bad),
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
        "\"x\":\"%s\",\"y\":\"%s\"}]}",
        x256, x256);
    am_test_write_str("bad-ec-point.json", bad);

    snprintf(bad, sizeof(bad),
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\","
        "\"x\":\"%s\",\"y\":\"%s\"}]}",
        x256, y256);
    am_test_write_str("bad-ec-len.json", bad);

    /* a good key then a bad one: the file must add nothing */
    snprintf(bad, sizeof(bad),
        "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"ok\",\"crv\":\"P-256\","
        "\"x\":\"%s\",\"y\":\"%s\"},{\"kty\":\"RSA\",\"n\":\"%s\"}]}",
        x256, y256, n);
    am_test_write_str("bad-partial.json", bad);

    am_test_write_str("bad-json.json", "{\"keys\":[");
    am_test_write_str("bad-empty.json", "{\"keys\":[]}");
    am_test_write_str("bad-nokeys.json", "[]");

    snprintf(bad, sizeof(bad),
        "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"%s\","
        "\"e\":\"%s\"}]}",
        n, e);
    am_test_write_str("bad-enc-only.json", bad);
}


static void
am_test_cleanup(void)
{
    int i;

    for (i = 0; i < am_test_nfiles; i++) {
        unlink(am_test_files[i]);
        free(am_test_files[i]);
    }

    rmdir(am_test_dir);

    EVP_PKEY_free(am_test_rsa);
    EVP_PKEY_free(am_test_ec256);
    EVP_PKEY_free(am_test_ec384);
    EVP_PKEY_free(am_test_ed);

    while (am_test_nskipped > 0) {
        free(am_test_skipped[--am_test_nskipped]);
    }
}


static const char *am_test_claims = "{\"sub\":\"alice\",\"exp\":1700003600}";


/* Every algorithm signs and verifies against keys without kid. */
static void
am_test_roundtrip(void)
{
    static const struct {
        const char *alg;
        const char *key;
    } cases[] = {
        {"HS256", "hs.secret"},
        {"HS384", "hs-crlf.secret"},
        {"HS512", "hs-nonl.secret"},
        {"RS256", "rsa.key"},
        {"RS384", "rsa-trad.key"},
        {"RS512", "rsa.key"},
        {"ES256", "ec256.key"},
        {"ES384", "ec384.key"},
        {"PS256", "rsa.key"},
        {"PS384", "rsa-trad.key"},
        {"PS512", "rsa.key"},
        {"EdDSA", "ed25519.key"},
    };

    am_jwt_keys_t *keys;
    char          *token, sub[32];
    size_t         i;
    int            rc;

    keys = am_test_keys();

    am_test_ok(am_test_add(keys, "hs-nonl.secret", "HS256", NULL) == 0
                   && am_test_add(keys, "hs.secret", "HS384", NULL) == 0
                   && am_test_add(keys, "hs-crlf.secret", "HS512", NULL) == 0,
        "HS keys load from secret files");

    am_test_ok(am_test_add(keys, "rsa.pub", "RS256", NULL) == 0,
        "RSA public key (SubjectPublicKeyInfo) loads");
    am_test_ok(am_test_add(keys, "rsa-pkcs1.pub", "RS384", NULL) == 0,
        "RSA public key (PKCS#1 RSA PUBLIC KEY) loads");
    am_test_ok(am_test_add(keys, "rsa.crt", "RS512", NULL) == 0,
        "RSA key from a certificate loads");
    am_test_ok(am_test_add(keys, "ec256.pub", NULL, NULL) == 0,
        "EC P-256 key loads without alg");
    am_test_ok(am_test_add(keys, "ec384.pub", "ES384", NULL) == 0,
        "EC P-384 key loads with alg ES384");
    am_test_ok(am_test_add(keys, "rsa.pub", "PS256", NULL) == 0
                   && am_test_add(keys, "rsa-pkcs1.pub", "PS384", NULL) == 0
                   && am_test_add(keys, "rsa.crt", "PS512", NULL) == 0,
        "RSA keys load with alg PS256, PS384, PS512");
    am_test_ok(am_test_add(keys, "ed25519.pub", NULL, NULL) == 0,
        "Ed25519 key loads without alg");
    am_test_ok(am_jwt_keys_count(keys) == 12, "12 keys loaded");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        token = am_test_sign(cases[i].alg, cases[i].key, NULL, am_test_claims);
        rc = am_test_verify_opts(keys, token, token ? strlen(token) : 0,
            &am_test_opts, sub, sizeof(sub));
        am_test_ok(rc == 0 && strcmp(sub, "alice") == 0,
            "%s signed with %s verifies, claims returned", cases[i].alg,
            cases[i].key);
        free(token);
    }

    am_jwt_keys_free(keys);
}


static void
am_test_jwks(void)
{
    static const struct {
        const char *kid;
        const char *alg;
        const char *key;
    } cases[] = {
        {"rsa1", "RS256", "rsa.key"},
        {"rsa2", "RS512", "rsa-trad.key"},
        {"ec1", "ES256", "ec256.key"},
        {"ec2", "ES384", "ec384.key"},
        {"hs1", "HS512", "hs.secret"},
        {"ps1", "PS256", "rsa.key"},
        {"ps2", "PS512", "rsa-trad.key"},
        {"ed1", "EdDSA", "ed25519.key"},
        {"ed2", "EdDSA", "ed25519.key"},
    };

    am_jwt_keys_t *keys;
    char          *token;
    size_t         i;

    keys = am_test_keys();

    am_test_ok(am_test_add_jwks(keys, "jwks.json") == 0
                   && am_jwt_keys_count(keys) == 9 && am_test_nskipped == 1
                   && strstr(am_test_skipped[0],
                          "key \"enc1\" skipped: \"use\" is \"enc\"")
                          != NULL,
        "JWKS loads RSA (RS*, PS*), EC, OKP and oct keys, skips use \"enc\"");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        token = am_test_sign(
            cases[i].alg, cases[i].key, cases[i].kid, am_test_claims);
        am_test_ok(am_test_verify(keys, token) == 0,
            "JWKS key \"%s\" verifies %s", cases[i].kid, cases[i].alg);
        free(token);
    }

    token = am_test_sign("RS512", "rsa.key", "rsa1", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "algorithm not allowed"),
        "JWKS RSA key without alg is pinned to RS256: RS512 refused");
    free(token);

    token = am_test_sign("RS256", "rsa.key", "enc1", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "unknown kid"),
        "JWKS key with use \"enc\" is not used");
    free(token);

    token = am_test_sign("RS256", "rsa.key", "nope", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "unknown kid"), "unknown kid");
    free(token);

    token = am_test_sign("ES256", "ec256.key", "ec2", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "algorithm not allowed"),
        "ES256 token with the kid of an ES384 key refused");
    free(token);

    token = am_test_sign("RS256", "rsa.key", NULL, am_test_claims);
    am_test_ok(am_test_verify(keys, token) == -1,
        "token without kid refused when every key has a kid");
    free(token);

    token = am_test_sign("ES256", "ec256.key", "rsa1", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "algorithm not allowed"),
        "ES256 token naming an RSA key's kid refused");
    free(token);

    token = am_test_sign("RS256", "rsa.key", "ps1", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "algorithm not allowed"),
        "RS256 token naming the kid of the same RSA key pinned to PS256");
    free(token);

    token = am_test_sign("PS256", "rsa.key", "rsa1", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "algorithm not allowed"),
        "PS256 token naming the kid of the same RSA key pinned to RS256");
    free(token);

    token = am_test_sign("EdDSA", "ed25519.key", "ps1", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "algorithm not allowed"),
        "EdDSA token naming an RSA key's kid refused");
    free(token);

    token = am_test_sign("EdDSA", "ed25519.key", "nope", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "unknown kid"),
        "EdDSA token with an unknown kid refused");
    free(token);

    token = am_test_sign("EdDSA", "ed25519-2.key", "ed1", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "bad signature"),
        "EdDSA token of another Ed25519 key naming ed1 refused");
    free(token);

    am_jwt_keys_free(keys);

    keys = am_test_keys();

    am_test_ok(am_test_add(keys, "rsa.pub", "RS256", NULL) == 0,
        "RSA key without kid loads");
    token = am_test_sign("RS256", "rsa.key", "rsa1", am_test_claims);
    am_test_ok(am_test_verify(keys, token) == 0,
        "token with a kid verified by the key configured without a kid");
    free(token);

    am_test_ok(am_test_add(keys, "hs.secret", "HS256", "we\"ird/kid") == 0,
        "HS key with kid loads");
    token =
        am_test_sign("HS256", "hs-nonl.secret", "we\"ird/kid", am_test_claims);
    am_test_ok(am_test_verify(keys, token) == 0,
        "kid with quote and slash round-trips through the header");
    free(token);

    am_jwt_keys_free(keys);
}


/* A JWKS of keys we use and keys we do not: each skipped one is reported. */
static void
am_test_jwks_skipped(void)
{
    static const struct {
        const char *key;
        const char *why;
    } skipped[] = {
        {"\"ed448\"", "OKP curve \"Ed448\" is not supported, use Ed25519"},
        {"\"x25519\"", "OKP curve \"X25519\" is not supported"},
        {"\"hs-odd\"", "unsupported alg \"HS1\""},
        {"\"hs-noalg\"", "oct key needs alg HS256, HS384 or HS512"},
        {"\"hs-short\"", "HMAC secret is 16 bytes, needs at least 32"},
        {"\"enc1\"", "\"use\" is \"enc\""},
        {"\"oaep\"", "unsupported alg \"RSA-OAEP-256\""},
        {"\"wrap\"", "\"key_ops\" lacks \"verify\""},
        {"\"small\"", "RSA key has 1024 bits, needs at least 2048"},
        {"\"p521\"", "EC curve \"P-521\" is not supported"},
        {"\"p256-es384\"", "EC key on P-256 needs alg ES256"},
        {"\"ed-es256\"", "Ed25519 key needs alg EdDSA"},
        {"\"rsa-eddsa\"", "RSA key cannot be used with alg EdDSA"},
        {"\"pq\"", "unsupported alg \"ML-DSA-44\""},
        {"\"weird\"", "unsupported kty \"XYZ\""},
        {"16", "unsupported kty \"XYZ\""},
    };

    am_jwt_keys_t *keys;
    char           want[PATH_MAX + 256];
    char          *token;
    size_t         i, n;

    keys = am_test_keys();

    am_test_ok(am_test_add_jwks(keys, "mixed.json") == 0
                   && am_jwt_keys_count(keys) == 2,
        "JWKS with unusable keys loads the 2 usable ones (%s)", am_test_err);

    n = sizeof(skipped) / sizeof(skipped[0]);

    am_test_ok(am_test_nskipped == (int) n, "%zu keys reported skipped, %d", n,
        am_test_nskipped);

    for (i = 0; i < n && i < (size_t) am_test_nskipped; i++) {
        snprintf(want, sizeof(want), "\"%s\": key %s skipped: %s",
            am_test_path("mixed.json"), skipped[i].key, skipped[i].why);
        am_test_ok(strncmp(am_test_skipped[i], want, strlen(want)) == 0,
            "skipped: key %s, %s (%s)", skipped[i].key, skipped[i].why,
            am_test_skipped[i]);
    }

    token = am_test_sign("EdDSA", "ed25519.key", "ed1", am_test_claims);
    am_test_ok(am_test_verify(keys, token) == 0,
        "the usable Ed25519 key of the file verifies");
    free(token);

    token = am_test_sign("PS256", "rsa.key", "ps1", am_test_claims);
    am_test_ok(am_test_verify(keys, token) == 0,
        "the usable PS256 key of the file verifies");
    free(token);

    token = am_test_sign("PS256", "rsa.key", "small", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "unknown kid"),
        "a skipped key's kid is unknown");
    free(token);

    token = am_test_sign("HS256", "hs.secret", "hs-noalg", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "unknown kid"),
        "the kid of a skipped oct key is unknown, whatever alg is tried");
    free(token);

    am_jwt_keys_free(keys);

    keys = am_test_keys();

    am_test_ok(am_jwt_keys_add_jwks(keys, am_test_path("mixed.json"), NULL,
                   NULL, am_test_err, sizeof(am_test_err))
                       == 0
                   && am_jwt_keys_count(keys) == 2,
        "skipped keys need no callback");

    am_jwt_keys_free(keys);
}


static void
am_test_jwks_errors(void)
{
    static const struct {
        const char *file;
        const char *want;
        const char *what;
    } cases[] = {
        {"bad-oct.json", "no usable signing key in \"keys\" (1 skipped)",
            "only an oct key without alg"},
        {"bad-kty-only.json", "no usable signing key in \"keys\" (2 skipped)",
            "only keys of other kinds"},
        {"bad-okp-len.json", "\"x\" must be 32 bytes", "Ed25519 x of 3 bytes"},
        {"bad-okp-crv.json", "\"crv\" missing", "OKP key without crv"},
        {"bad-okp-x.json", "\"x\" is not base64url", "OKP x in base64"},
        {"bad-keyops.json", "\"key_ops\" is not an array", "key_ops a string"},
        {"bad-partial-okp.json", "key \"broken\": \"x\" missing",
            "Ed25519 key without x after usable keys"},
        {"bad-ec-alg.json", "no usable signing key",
            "only an EC key with RS256 alg"},
        {"bad-ec-point.json", "invalid EC key", "EC point not on the curve"},
        {"bad-ec-len.json", "must be 48 bytes", "P-384 with P-256 lengths"},
        {"bad-partial.json", "\"e\" missing", "RSA key without e"},
        {"bad-json.json", "invalid JSON", "truncated JSON"},
        {"bad-empty.json", "no usable signing key in \"keys\" (0 skipped)",
            "empty keys array"},
        {"bad-nokeys.json", "no \"keys\" array", "not a JWKS object"},
        {"bad-enc-only.json", "no usable signing key", "only encryption keys"},
        {"missing.json", "No such file", "missing file"},
    };

    am_jwt_keys_t *keys;
    size_t         i;

    keys = am_test_keys();

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        am_test_ok(am_test_add_jwks(keys, cases[i].file) == -1
                       && strstr(am_test_err, cases[i].want) != NULL
                       && strstr(am_test_err, cases[i].file) != NULL,
            "JWKS refused: %s (%s)", cases[i].what, am_test_err);
    }

    am_test_ok(am_jwt_keys_count(keys) == 0, "refused JWKS files add no key");

    am_jwt_keys_free(keys);
}


static void
am_test_key_errors(void)
{
    static const struct {
        const char *file;
        const char *alg;
        const char *want;
        const char *what;
    } cases[] = {
        {"short.secret", "HS256", "31 bytes, needs at least 32",
            "HMAC secret under 32 bytes"},
        {"empty.secret", "HS384", "empty HMAC secret", "empty secret"},
        {"newline.secret", "HS512", "empty HMAC secret",
            "secret of only a newline"},
        {"rsa.pub", "HS256", "is a PEM file", "PEM file as HMAC secret"},
        {"rsa.pub", "ES256", "RSA key cannot be used with alg ES256",
            "RSA key with ES256"},
        {"rsa1024.pub", "RS256", "1024 bits, needs at least 2048",
            "RSA 1024-bit key"},
        {"ec256.pub", "ES384", "EC key on P-256 needs alg ES256",
            "P-256 key with ES384"},
        {"ec384.pub", "RS256", "EC key on P-384 needs alg ES384",
            "P-384 key with RS256"},
        {"ed448.pub", NULL, "unsupported key type ED448", "Ed448 key"},
        {"ed448.pub", "EdDSA", "unsupported key type ED448",
            "Ed448 key with alg EdDSA"},
        {"ed25519.pub", "RS256", "Ed25519 key needs alg EdDSA",
            "Ed25519 key with RS256"},
        {"ed25519.pub", "HS256", "is a PEM file", "Ed25519 PEM as HMAC secret"},
        {"ed25519.key", "EdDSA", "private key", "Ed25519 private key"},
        {"rsa.pub", "EdDSA", "RSA key cannot be used with alg EdDSA",
            "RSA key with EdDSA"},
        {"ec256.pub", "EdDSA", "EC key on P-256 needs alg ES256",
            "P-256 key with EdDSA"},
        {"ec256.pub", "PS256", "EC key on P-256 needs alg ES256",
            "P-256 key with PS256"},
        {"rsa1024.pub", "PS256", "1024 bits, needs at least 2048",
            "RSA 1024-bit key with PS256"},
        {"rsa.key", "RS256", "private key", "private key as public key"},
        {"garbage.pub", "RS256", "no PEM public key", "garbage PEM"},
        {"rsa.pub", "ES512", "unsupported alg \"ES512\"", "alg ES512"},
        {"rsa.pub", "eddsa", "unsupported alg \"eddsa\"", "alg eddsa"},
        {"rsa.pub", "none", "unsupported alg \"none\"", "alg none"},
        {"missing.pem", "RS256", "No such file", "missing file"},
        {".", "RS256", "not a regular file", "a directory"},
    };

    am_jwt_keys_t *keys;
    char           want[PATH_MAX + 64];
    size_t         i;

    keys = am_test_keys();

    snprintf(want, sizeof(want),
        "\"%s\": RSA key needs alg RS256, RS384, RS512, PS256, PS384 or PS512",
        am_test_path("rsa.pub"));
    am_test_ok(am_test_add(keys, "rsa.pub", NULL, NULL) == -1
                   && strcmp(am_test_err, want) == 0,
        "RSA key without alg refused with a message naming the file");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        am_test_ok(am_test_add(keys, cases[i].file, cases[i].alg, NULL) == -1
                       && strstr(am_test_err, cases[i].want) != NULL,
            "key refused: %s (%s)", cases[i].what, am_test_err);
    }

    am_test_ok(am_jwt_keys_count(keys) == 0, "refused keys are not added");

    am_jwt_keys_free(keys);
}


static void
am_test_sign_errors(void)
{
    char *token;

    token = am_test_sign("none", "hs.secret", NULL, am_test_claims);
    am_test_ok(token == NULL, "sign refuses alg none");
    free(token);

    token = am_test_sign("HS256", "hs.secret", NULL, "[1,2]");
    am_test_ok(token == NULL, "sign refuses a payload that is not an object");
    free(token);

    token = am_test_sign("HS256", "hs.secret", NULL, "{\"a\":");
    am_test_ok(token == NULL, "sign refuses truncated JSON");
    free(token);

    token = am_test_sign("RS256", "ec256.key", NULL, am_test_claims);
    am_test_ok(token == NULL, "sign refuses RS256 with an EC key");
    free(token);

    token = am_test_sign("ES384", "ec256.key", NULL, am_test_claims);
    am_test_ok(token == NULL, "sign refuses ES384 with a P-256 key");
    free(token);

    token = am_test_sign("RS256", "rsa.pub", NULL, am_test_claims);
    am_test_ok(token == NULL, "sign refuses a public key");
    free(token);

    token = am_test_sign("HS256", "short.secret", NULL, am_test_claims);
    am_test_ok(token == NULL, "sign refuses a short secret");
    free(token);

    token = am_test_sign("EdDSA", "rsa.key", NULL, am_test_claims);
    am_test_ok(token == NULL, "sign refuses EdDSA with an RSA key");
    free(token);

    token = am_test_sign("PS256", "ed25519.key", NULL, am_test_claims);
    am_test_ok(token == NULL, "sign refuses PS256 with an Ed25519 key");
    free(token);

    token = am_test_sign("EdDSA", "ed448.key", NULL, am_test_claims);
    am_test_ok(token == NULL, "sign refuses EdDSA with an Ed448 key");
    free(token);

    am_test_err[0] = '\0';
}


/* Tokens that try to make the verifier pick an algorithm. */
static void
am_test_alg_attacks(void)
{
    am_jwt_keys_t *rsa, *keys;
    char          *pem, *token, *tok2;
    size_t         len;

    rsa = am_test_keys();
    keys = am_test_keys();

    if (am_test_add(rsa, "rsa.pub", "RS256", NULL) != 0
        || am_test_add(keys, "hs.secret", "HS256", NULL) != 0) {
        am_test_bail(am_test_err);
    }

    token = am_test_hs("{\"alg\":\"none\",\"typ\":\"JWT\"}", am_test_claims);
    tok2 = strdup(token);
    strrchr(tok2, '.')[1] = '\0';

    am_test_ok(am_test_refused(keys, tok2, "algorithm not allowed"),
        "alg none with empty signature refused");
    am_test_ok(am_test_refused(keys, token, "algorithm not allowed"),
        "alg none with a signature refused");
    free(token);
    free(tok2);

    token = am_test_hs("{\"alg\":\"hs256\"}", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "algorithm not allowed"),
        "alg compared case-sensitively");
    free(token);

    token = am_test_hs("{\"typ\":\"JWT\"}", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "malformed"), "missing alg");
    free(token);

    token = am_test_hs("{\"alg\":256}", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "malformed"), "alg not a string");
    free(token);

    token = am_test_hs("{\"alg\":\"HS256\",\"kid\":7}", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "malformed"), "kid not a string");
    free(token);

    token = am_test_hs("{\"alg\":\"HS256\",\"alg\":\"none\"}", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "malformed"),
        "duplicate alg in header refused");
    free(token);

    /* HMAC keyed with the public key's PEM text, with and without "\n" */
    pem = am_test_read(am_test_path("rsa.pub"), &len);

    token = am_test_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", am_test_claims,
        (unsigned char *) pem, len);
    am_test_ok(am_test_refused(rsa, token, "algorithm not allowed"),
        "HS256 keyed with the RSA public PEM refused by the RSA key");
    free(token);

    token = am_test_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", am_test_claims,
        (unsigned char *) pem, len - 1);
    am_test_ok(am_test_refused(rsa, token, "algorithm not allowed"),
        "HS256 keyed with the trimmed RSA public PEM refused");
    free(token);
    free(pem);

    token = am_test_sign("RS384", "rsa.key", NULL, am_test_claims);
    am_test_ok(am_test_refused(rsa, token, "algorithm not allowed"),
        "RS384 token refused by a key pinned to RS256");
    free(token);

    token = am_test_sign("HS384", "hs.secret", NULL, am_test_claims);
    am_test_ok(am_test_refused(keys, token, "algorithm not allowed"),
        "HS384 token refused by a secret pinned to HS256");
    free(token);

    token = am_test_sign("HS256", "hs-2nl.secret", NULL, am_test_claims);
    am_test_ok(am_test_refused(keys, token, "bad signature"),
        "only one trailing newline is trimmed from a secret");
    free(token);

    token = am_test_hs(
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", am_test_claims);
    am_test_ok(am_test_refused(keys, token, "crit"), "crit header refused");
    free(token);

    am_jwt_keys_free(rsa);
    am_jwt_keys_free(keys);
}


/*
 * RSASSA-PSS and EdDSA against tokens that switch algorithm, PSS
 * parameters or signature encoding.
 */
static void
am_test_pss_eddsa_attacks(void)
{
    static const struct {
        const char *header;
        int         sha;
        int         pad;
        int         saltlen;
        int         mgf1;
        const char *what;
    } pss[] = {
        {"{\"alg\":\"PS256\"}", 256, RSA_PKCS1_PADDING, 0, 0,
            "PS256 header over an RS256 (PKCS#1 v1.5) signature"},
        {"{\"alg\":\"PS256\"}", 256, RSA_PKCS1_PSS_PADDING, RSA_PSS_SALTLEN_MAX,
            256, "PSS salt of maximal length"},
        {"{\"alg\":\"PS256\"}", 256, RSA_PKCS1_PSS_PADDING, 0, 256,
            "PSS without salt"},
        {"{\"alg\":\"PS256\"}", 256, RSA_PKCS1_PSS_PADDING, 20, 256,
            "PSS salt of 20 bytes"},
        {"{\"alg\":\"PS256\"}", 256, RSA_PKCS1_PSS_PADDING, 32, 1,
            "PSS with MGF1-SHA1"},
        {"{\"alg\":\"PS256\"}", 384, RSA_PKCS1_PSS_PADDING, 48, 384,
            "PSS over SHA-384"},
    };

    am_jwt_keys_t *ps, *rs, *ed;
    const EVP_MD  *md, *mgf1;
    unsigned char  buf[600];
    size_t         i, n, len;
    char          *token, *bad, *pem;
    int            tries;

    ps = am_test_keys();
    rs = am_test_keys();
    ed = am_test_keys();

    if (am_test_add(ps, "rsa.pub", "PS256", NULL) != 0
        || am_test_add(rs, "rsa.pub", "RS256", NULL) != 0
        || am_test_add(ed, "ed25519.crt", NULL, NULL) != 0) {
        am_test_bail(am_test_err);
    }

    token = am_test_ps256(am_test_claims);
    am_test_ok(am_test_verify(ps, token) == 0,
        "PS256 of OpenSSL (salt 32, MGF1-SHA256) verifies");
    am_test_ok(am_test_refused(rs, token, "algorithm not allowed"),
        "PS256 token refused by the same key pinned to RS256");
    free(token);

    token = am_test_sign("RS256", "rsa.key", NULL, am_test_claims);
    am_test_ok(am_test_verify(rs, token) == 0
                   && am_test_refused(ps, token, "algorithm not allowed"),
        "RS256 token refused by the same key pinned to PS256");
    free(token);

    token = am_test_sign("PS384", "rsa.key", NULL, am_test_claims);
    am_test_ok(am_test_refused(ps, token, "algorithm not allowed"),
        "PS384 token refused by a key pinned to PS256");
    free(token);

    token = am_test_pkey_token("{\"alg\":\"RS256\"}", am_test_claims,
        am_test_rsa, EVP_sha256(), RSA_PKCS1_PSS_PADDING, 32, EVP_sha256());
    am_test_ok(am_test_refused(rs, token, "bad signature"),
        "RS256 header over a PSS signature refused by the RS256 key");
    free(token);

    for (i = 0; i < sizeof(pss) / sizeof(pss[0]); i++) {
        md = (pss[i].sha == 256) ? EVP_sha256() : EVP_sha384();
        mgf1 = (pss[i].mgf1 == 1)     ? EVP_sha1()
               : (pss[i].mgf1 == 384) ? EVP_sha384()
                                      : EVP_sha256();

        token = am_test_pkey_token(pss[i].header, am_test_claims, am_test_rsa,
            md, pss[i].pad, pss[i].saltlen, mgf1);
        am_test_ok(am_test_refused(ps, token, "bad signature"),
            "PS256 key refuses: %s", pss[i].what);
        free(token);
    }

    token = am_test_hs("{\"alg\":\"none\"}", am_test_claims);
    strrchr(token, '.')[1] = '\0';
    am_test_ok(am_test_refused(ps, token, "algorithm not allowed")
                   && am_test_refused(ed, token, "algorithm not allowed"),
        "alg none refused by PS256 and Ed25519 keys");
    free(token);

    /* RSA signatures have the modulus' length and no other */
    token = am_test_ps256(am_test_claims);
    n = am_test_signature(token, buf + 1);
    buf[0] = 0;

    bad = am_test_replace_segment(token, 2, buf, n + 1);
    am_test_ok(n == 256 && am_test_refused(ps, bad, "bad signature"),
        "PS256 signature with a leading zero byte added refused");
    free(bad);

    bad = am_test_replace_segment(token, 2, buf + 1, n - 1);
    am_test_ok(am_test_refused(ps, bad, "bad signature"),
        "PS256 signature missing its last byte refused");
    free(bad);

    bad = am_test_replace_segment(token, 2, buf + 2, n - 1);
    am_test_ok(am_test_refused(ps, bad, "bad signature"),
        "PS256 signature missing its first byte refused");
    free(bad);
    free(token);

    /* PSS is randomized: sign until a signature starts with a zero byte */
    token = NULL;

    for (tries = 0; tries < 5000; tries++) {
        token = am_test_ps256(am_test_claims);

        if (am_test_signature(token, buf) == 256 && buf[0] == 0) {
            break;
        }

        free(token);
        token = NULL;
    }

    if (token == NULL) {
        am_test_bail("no PS256 signature with a leading zero in 5000");
    }

    bad = am_test_replace_segment(token, 2, buf + 1, 255);
    am_test_ok(am_test_verify(ps, token) == 0
                   && am_test_refused(ps, bad, "bad signature"),
        "PS256 signature shorn of its leading zero byte refused");
    free(bad);
    free(token);

    token = am_test_sign(
        "PS256", "rsa.key", NULL, "{\"sub\":\"alice\",\"role\":\"user\"}");
    bad = am_test_replace_segment(
        token, 1, "{\"sub\":\"alice\",\"role\":\"admin\"}", 30);
    am_test_ok(am_test_verify(ps, token) == 0
                   && am_test_refused(ps, bad, "bad signature"),
        "tampered PS256 payload refused");
    free(bad);
    free(token);

    /* Ed25519 */
    token = am_test_pkey_token(
        "{\"alg\":\"EdDSA\"}", am_test_claims, am_test_ed, NULL, 0, 0, NULL);
    am_test_ok(am_test_verify(ed, token) == 0,
        "EdDSA of OpenSSL verifies with the key of a certificate");
    n = am_test_signature(token, buf);

    bad = am_test_replace_segment(token, 2, buf, 63);
    am_test_ok(n == 64 && am_test_refused(ed, bad, "bad signature"),
        "EdDSA signature of 63 bytes refused");
    free(bad);

    buf[64] = 0;
    bad = am_test_replace_segment(token, 2, buf, 65);
    am_test_ok(am_test_refused(ed, bad, "bad signature"),
        "EdDSA signature of 65 bytes refused");
    free(bad);

    buf[63] ^= 0x80;
    bad = am_test_replace_segment(token, 2, buf, 64);
    am_test_ok(am_test_refused(ed, bad, "bad signature"),
        "EdDSA signature with S's top bit flipped refused");
    free(bad);

    memset(buf, 0, 64);
    bad = am_test_replace_segment(token, 2, buf, 64);
    am_test_ok(am_test_refused(ed, bad, "bad signature"),
        "EdDSA signature of zeros refused");
    free(bad);

    bad = am_test_replace_segment(
        token, 1, "{\"sub\":\"mallory\",\"exp\":1700003600}", 37);
    am_test_ok(am_test_refused(ed, bad, "bad signature"),
        "tampered EdDSA payload refused");
    free(bad);
    free(token);

    token = am_test_sign("EdDSA", "ed25519-2.key", NULL, am_test_claims);
    am_test_ok(am_test_refused(ed, token, "bad signature"),
        "EdDSA token of another Ed25519 key refused");
    free(token);

    token = am_test_sign("ES256", "ec256.key", NULL, am_test_claims);
    am_test_ok(am_test_refused(ed, token, "algorithm not allowed"),
        "ES256 token refused by an Ed25519 key");
    free(token);

    /* HS256 keyed with what is public about the Ed25519 key */
    pem = am_test_read(am_test_path("ed25519.pub"), &len);

    token = am_test_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", am_test_claims,
        (unsigned char *) pem, len);
    am_test_ok(am_test_refused(ed, token, "algorithm not allowed"),
        "HS256 keyed with the Ed25519 public PEM refused");
    free(token);
    free(pem);

    n = sizeof(buf);
    EVP_PKEY_get_raw_public_key(am_test_ed, buf, &n);
    token = am_test_hs256("{\"alg\":\"HS256\"}", am_test_claims, buf, n);
    am_test_ok(am_test_refused(ed, token, "algorithm not allowed"),
        "HS256 keyed with the raw Ed25519 public key refused");
    free(token);

    am_jwt_keys_free(ps);
    am_jwt_keys_free(rs);
    am_jwt_keys_free(ed);
}


static void
am_test_claims_checks(void)
{
    static const struct {
        const char *payload;
        long        leeway;
        const char *iss;
        const char *aud;
        const char *want; /* NULL: accepted */
        const char *what;
    } cases[] = {
        {"{\"exp\":1699999990}", 0, NULL, NULL, "token expired", "expired"},
        {"{\"exp\":1700000000}", 0, NULL, NULL, "token expired",
            "expired at exactly now"},
        {"{\"exp\":1699999990}", 30, NULL, NULL, NULL,
            "expired but within leeway"},
        {"{\"exp\":1699999960}", 30, NULL, NULL, "token expired",
            "expired beyond leeway"},
        {"{\"exp\":1700000000.5}", 0, NULL, NULL, NULL, "fractional exp"},
        {"{\"exp\":\"1800000000\"}", 0, NULL, NULL, "invalid exp",
            "exp as a string"},
        {"{\"exp\":1e999}", 0, NULL, NULL, "invalid exp", "exp overflowing"},
        {"{\"exp\":null}", 0, NULL, NULL, "invalid exp", "exp null"},
        {"{}", 0, NULL, NULL, NULL, "no exp at all"},
        {"{\"nbf\":1700000100}", 0, NULL, NULL, "not yet valid",
            "nbf in the future"},
        {"{\"nbf\":1700000100}", 200, NULL, NULL, NULL,
            "nbf in the future within leeway"},
        {"{\"nbf\":1700000000}", 0, NULL, NULL, NULL, "nbf exactly now"},
        {"{\"nbf\":true}", 0, NULL, NULL, "invalid nbf", "nbf not a number"},
        {"{\"iat\":1900000000}", 0, NULL, NULL, NULL, "iat ignored"},
        {"{\"iss\":\"https://idp\"}", 0, "https://idp", NULL, NULL,
            "issuer matches"},
        {"{\"iss\":\"https://evil\"}", 0, "https://idp", NULL,
            "issuer mismatch", "issuer differs"},
        {"{\"iss\":\"https://idp/\"}", 0, "https://idp", NULL,
            "issuer mismatch", "issuer with a trailing slash"},
        {"{}", 0, "https://idp", NULL, "issuer mismatch", "issuer missing"},
        {"{\"iss\":[\"https://idp\"]}", 0, "https://idp", NULL,
            "issuer mismatch", "issuer as an array"},
        {"{\"iss\":\"https://evil\"}", 0, NULL, NULL, NULL,
            "issuer not checked when not configured"},
        {"{\"aud\":\"api\"}", 0, NULL, "api", NULL, "audience string matches"},
        {"{\"aud\":\"web\"}", 0, NULL, "api", "audience mismatch",
            "audience string differs"},
        {"{\"aud\":[\"web\",\"api\"]}", 0, NULL, "api", NULL,
            "audience array contains it"},
        {"{\"aud\":[\"web\",\"apis\"]}", 0, NULL, "api", "audience mismatch",
            "audience array lacks it"},
        {"{\"aud\":[1,null,{}]}", 0, NULL, "api", "audience mismatch",
            "audience array of non-strings"},
        {"{\"aud\":[]}", 0, NULL, "api", "audience mismatch",
            "audience empty array"},
        {"{}", 0, NULL, "api", "audience mismatch", "audience missing"},
        {"{\"iss\":\"https://idp\",\"aud\":[\"api\"],\"exp\":1700000001,"
         "\"nbf\":1699999999}",
            0, "https://idp", "api", NULL, "all claims checked and valid"},
        {"[1,2]", 0, NULL, NULL, "not a JSON object", "payload is an array"},
        {"\"alice\"", 0, NULL, NULL, "not a JSON object",
            "payload is a string"},
        {"42", 0, NULL, NULL, "not a JSON object", "payload is a number"},
        {"null", 0, NULL, NULL, "not a JSON object", "payload is null"},
        {"{\"a\":1", 0, NULL, NULL, "not a JSON object",
            "payload is truncated JSON"},
        {"{\"a\":1}x", 0, NULL, NULL, "not a JSON object",
            "payload with trailing garbage"},
        {"{\"a\":1/*x*/}", 0, NULL, NULL, "not a JSON object",
            "payload with a comment"},
        {"{\"exp\":1,\"exp\":1900000000}", 0, NULL, NULL, "not a JSON object",
            "payload with duplicate exp"},
        {"{\"a\":\"\xff\"}", 0, NULL, NULL, "not a JSON object",
            "payload with invalid UTF-8"},
    };

    am_jwt_keys_t *keys;
    char          *token;
    size_t         i;
    int            rc;

    keys = am_test_keys();

    if (am_test_add(keys, "hs.secret", "HS256", NULL) != 0) {
        am_test_bail(am_test_err);
    }

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        am_test_opts.leeway = cases[i].leeway;
        am_test_opts.issuer = cases[i].iss;
        am_test_opts.audience = cases[i].aud;

        token = am_test_hs("{\"alg\":\"HS256\"}", cases[i].payload);
        rc = am_test_verify(keys, token);
        free(token);

        if (cases[i].want == NULL) {
            am_test_ok(rc == 0, "accepted: %s", cases[i].what);

        } else {
            am_test_ok(rc == -1 && strstr(am_test_err, cases[i].want) != NULL,
                "refused: %s", cases[i].what);
        }
    }

    am_test_opts.leeway = 0;
    am_test_opts.issuer = NULL;
    am_test_opts.audience = NULL;

    am_jwt_keys_free(keys);
}


/* Nested arrays around a payload, depth levels deep. */
static char *
am_test_nested(int depth)
{
    char *p;
    int   i;

    p = malloc(2 * (size_t) depth + 16);
    if (p == NULL) {
        am_test_bail("malloc");
    }

    strcpy(p, "{\"a\":");
    for (i = 1; i < depth; i++) {
        strcat(p, "[");
    }
    strcat(p, "1");
    for (i = 1; i < depth; i++) {
        strcat(p, "]");
    }
    strcat(p, "}");

    return p;
}


static void
am_test_malformed(void)
{
    static const struct {
        const char *token;
        const char *what;
    } literal[] = {
        {"", "empty token"},
        {".", "one dot"},
        {"..", "only dots"},
        {"...", "three dots"},
        {"abc", "one segment"},
        {"eyJhbGciOiJIUzI1NiJ9.e30", "two segments"},
        {"eyJhbGciOiJIUzI1NiJ9..AAAA", "empty payload segment"},
        {".e30.AAAA", "empty header segment"},
        {"eyJhbGciOiJIUzI1NiJ9.e30.", "empty signature segment"},
    };

    am_jwt_keys_t *keys;
    am_jwt_opts_t  big;
    unsigned char  buf[512];
    const char    *dot;
    size_t         i, n, len;
    char          *token, *bad, *pad, c;
    int            all;

    keys = am_test_keys();

    if (am_test_add(keys, "hs.secret", "HS256", NULL) != 0
        || am_test_add(keys, "ec256.pub", "ES256", NULL) != 0
        || am_test_add(keys, "rsa.pub", "RS256", NULL) != 0) {
        am_test_bail(am_test_err);
    }

    for (i = 0; i < sizeof(literal) / sizeof(literal[0]); i++) {
        am_test_ok(am_test_refused(keys, literal[i].token, "malformed"),
            "malformed: %s", literal[i].what);
    }

    token = am_test_hs("{\"alg\":\"HS256\"}", am_test_claims);
    am_test_ok(am_test_verify(keys, token) == 0, "HS256 reference token");

    bad = am_test_concat(token, ".AAAA");
    am_test_ok(am_test_refused(keys, bad, "malformed"), "four segments");
    free(bad);

    bad = am_test_concat(token, ".");
    am_test_ok(
        am_test_refused(keys, bad, "malformed"), "four segments, last empty");
    free(bad);

    bad = strdup(token);
    bad[3] = '!';
    am_test_ok(am_test_refused(keys, bad, "malformed"),
        "invalid base64url character in the header");
    bad[3] = '+';
    am_test_ok(am_test_refused(keys, bad, "malformed"),
        "standard base64 '+' in the header");
    strcpy(bad, token);
    bad[strlen(bad) - 2] = '/';
    am_test_ok(am_test_refused(keys, bad, "malformed"),
        "standard base64 '/' in the signature");
    strcpy(bad, token);
    bad[strchr(bad, '.') - bad + 2] = ' ';
    am_test_ok(am_test_refused(keys, bad, "malformed"), "space in the payload");
    free(bad);

    bad = am_test_concat(token, "\n");
    am_test_ok(am_test_refused(keys, bad, "malformed"), "trailing newline");
    free(bad);

    /* the signature of HS256 is 43 characters: "=" is its padding */
    bad = am_test_concat(token, "=");
    am_test_ok(am_test_refused(keys, bad, "malformed"),
        "'=' padding on the signature");
    free(bad);

    /* {"alg":"HS256"} is 15 bytes: 20 characters, "==" would not be
     * padding, but the header {"alg":"HS256","x":1} needs it */
    free(token);
    token = am_test_hs("{\"alg\":\"HS256\",\"x\":12}", am_test_claims);
    dot = strchr(token, '.');
    len = strlen(token);
    pad = malloc(len + 3);
    snprintf(pad, len + 3, "%.*s==%s", (int) (dot - token), token, dot);
    am_test_ok(am_test_verify(keys, token) == 0
                   && am_test_refused(keys, pad, "malformed"),
        "'=' padding on the header");
    free(pad);

    /* characters added to make a length that no base64 can have */
    n = (size_t) (5 - (dot - token) % 4) % 4;
    pad = malloc(len + n + 1);
    snprintf(pad, len + n + 1, "%.*s%.*s%s", (int) (dot - token), token,
        (int) n, "AAAA", dot);
    am_test_ok(strchr(pad, '.') - pad > dot - token
                   && (strchr(pad, '.') - pad) % 4 == 1
                   && am_test_refused(keys, pad, "malformed"),
        "header of impossible base64 length");
    free(pad);

    /* "e30" is "{}", "e31" has non-zero unused bits */
    free(token);
    token = am_test_hs("{\"alg\":\"HS256\"}", "{}");
    bad = strdup(token);
    dot = strchr(bad, '.');
    am_test_ok(strncmp(dot, ".e30.", 5) == 0 && am_test_verify(keys, bad) == 0,
        "payload {} verifies");
    bad[dot - bad + 3] = '1';
    am_test_ok(am_test_refused(keys, bad, "malformed"),
        "non-canonical base64 (unused bits set)");
    free(bad);
    free(token);

    token = am_test_hs("[\"alg\",\"HS256\"]", am_test_claims);
    am_test_ok(
        am_test_refused(keys, token, "malformed"), "header is not an object");
    free(token);

    token = am_test_hs("{\"alg\":\"HS256\"", am_test_claims);
    am_test_ok(
        am_test_refused(keys, token, "malformed"), "header is truncated JSON");
    free(token);

    bad = am_test_nested(33);
    token = am_test_hs("{\"alg\":\"HS256\"}", bad);
    am_test_ok(am_test_refused(keys, token, "not a JSON object"),
        "payload nested 33 deep refused");
    free(token);
    free(bad);

    bad = am_test_nested(32);
    token = am_test_hs("{\"alg\":\"HS256\"}", bad);
    am_test_ok(
        am_test_verify(keys, token) == 0, "payload nested 32 deep accepted");
    free(token);
    free(bad);

    bad = am_test_nested(3000);
    token = am_test_hs("{\"alg\":\"HS256\"}", bad);
    am_test_ok(am_test_refused(keys, token, "not a JSON object"),
        "payload nested 3000 deep refused without crashing");
    free(token);
    free(bad);

    /* a 100 KB token, valid in every other way */
    n = 100 * 1024;
    bad = malloc(n + 64);
    snprintf(bad, n + 64, "{\"sub\":\"alice\",\"pad\":\"%0*d\"}", (int) n, 0);
    token = am_test_hs("{\"alg\":\"HS256\"}", bad);
    free(bad);

    am_test_ok(am_test_refused(keys, token, "token too large"),
        "100 KB token refused with the default max_len");

    big = am_test_opts;
    big.max_len = 200 * 1024;
    am_test_ok(
        am_test_verify_opts(keys, token, strlen(token), &big, NULL, 0) == 0,
        "100 KB token accepted with max_len 200 KB");

    big.max_len = strlen(token) - 1;
    am_test_ok(
        am_test_verify_opts(keys, token, strlen(token), &big, NULL, 0) == -1
            && strstr(am_test_err, "too large") != NULL,
        "token one byte over max_len refused");
    free(token);

    /* tampering */
    token = am_test_sign(
        "RS256", "rsa.key", NULL, "{\"sub\":\"alice\",\"role\":\"user\"}");
    bad = am_test_replace_segment(
        token, 1, "{\"sub\":\"alice\",\"role\":\"admin\"}", 30);
    am_test_ok(am_test_verify(keys, token) == 0
                   && am_test_refused(keys, bad, "bad signature"),
        "tampered RS256 payload refused");
    free(bad);

    bad = strdup(token);
    dot = strchr(bad, '.') + 1;
    c = *dot;
    bad[dot - bad] = (c == 'A') ? 'B' : 'A';
    am_test_ok(am_test_refused(keys, bad, "bad signature"),
        "one changed payload character refused");
    free(bad);
    free(token);

    /* ECDSA signatures are r || s of exactly 64 bytes for ES256 */
    token = am_test_sign("ES256", "ec256.key", NULL, am_test_claims);
    n = am_test_signature(token, buf);
    am_test_ok(n == 64 && am_test_verify(keys, token) == 0,
        "ES256 signature is 64 bytes");

    bad = am_test_replace_segment(token, 2, buf, 63);
    am_test_ok(am_test_refused(keys, bad, "bad signature"),
        "ES256 signature of 63 bytes refused");
    free(bad);

    buf[64] = 0;
    bad = am_test_replace_segment(token, 2, buf, 65);
    am_test_ok(am_test_refused(keys, bad, "bad signature"),
        "ES256 signature of 65 bytes refused");
    free(bad);

    memmove(buf + 1, buf, 64);
    buf[0] = 0;
    bad = am_test_replace_segment(token, 2, buf + 1, 64);
    am_test_ok(
        am_test_verify(keys, bad) == 0, "ES256 signature re-encoded verifies");
    free(bad);

    memset(buf, 0, 64);
    bad = am_test_replace_segment(token, 2, buf, 64);
    am_test_ok(am_test_refused(keys, bad, "bad signature"),
        "ES256 signature of zeros refused");
    free(bad);
    free(token);

    /* a DER signature (what OpenSSL produces) is not a JWS signature */
    {
        ECDSA_SIG     *sig;
        unsigned char *der;
        int            derlen;

        token = am_test_sign("ES256", "ec256.key", NULL, am_test_claims);
        am_test_signature(token, buf);

        sig = ECDSA_SIG_new();
        ECDSA_SIG_set0(
            sig, BN_bin2bn(buf, 32, NULL), BN_bin2bn(buf + 32, 32, NULL));
        der = NULL;
        derlen = i2d_ECDSA_SIG(sig, &der);
        bad = am_test_replace_segment(token, 2, der, (size_t) derlen);
        am_test_ok(am_test_refused(keys, bad, "bad signature"),
            "ES256 DER-encoded signature refused");
        free(bad);
        OPENSSL_free(der);
        ECDSA_SIG_free(sig);
        free(token);
    }

    /* every single-character change and every truncation fails cleanly */
    token = am_test_hs("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", am_test_claims);
    len = strlen(token);
    all = 1;

    for (i = 0; i < len; i++) {
        static const char repl[] = {
            '.', '=', 'A', 'g', '_', '-', '\0', (char) 0xff, ' ', '"'};
        size_t k;

        for (k = 0; k < sizeof(repl); k++) {
            if (token[i] == repl[k]) {
                continue;
            }

            bad = strdup(token);
            bad[i] = repl[k];

            if (am_test_verify_opts(keys, bad, len, &am_test_opts, NULL, 0)
                != -1) {
                printf("# accepted: byte %zu set to 0x%02x\n", i,
                    (unsigned char) repl[k]);
                all = 0;
            }

            free(bad);
        }
    }

    am_test_ok(all, "every single-byte change of a token refused");

    all = 1;
    for (i = 0; i < len; i++) {
        if (am_test_verify_opts(keys, token, i, &am_test_opts, NULL, 0) != -1) {
            all = 0;
        }
    }

    am_test_ok(all, "every truncation of a token refused");

    /* the token is followed by more bytes: only len is read */
    bad = am_test_concat(token, "garbage.more");
    am_test_ok(am_test_verify_opts(keys, bad, len, &am_test_opts, NULL, 0) == 0,
        "bytes after len are not read");
    free(bad);
    free(token);

    am_jwt_keys_free(keys);
}


int
main(void)
{
    am_test_opts.now = AM_TEST_NOW;

    am_test_setup();

    am_test_roundtrip();
    am_test_jwks();
    am_test_jwks_skipped();
    am_test_jwks_errors();
    am_test_key_errors();
    am_test_sign_errors();
    am_test_alg_attacks();
    am_test_pss_eddsa_attacks();
    am_test_claims_checks();
    am_test_malformed();

    am_test_cleanup();

    return am_test_done();
}
