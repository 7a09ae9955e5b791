/*
 * JWS compact serialization (RFC 7515) with the algorithms of RFC 7518 that
 * the gateway supports: HS256/384/512, RS256/384/512, PS256/384/512,
 * ES256/384, and EdDSA with Ed25519 (RFC 8037).
 *
 * Every key carries the one algorithm it may be used with; the token's "alg"
 * only selects among keys and must match that pin exactly, so "none", an
 * HMAC keyed with a public key, or any other algorithm switch is refused.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "am_crypto.h"
#include "am_json.h"
#include "am_jwt_int.h"


/*
 * Writes a message into err and returns -1. Also drops whatever OpenSSL
 * queued, so that nginx does not report stale errors on an unrelated
 * SSL connection later.
 */
int __attribute__((format(printf, 3, 4)))
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


yajl_val
am_jwt_json_parse(const char *p, size_t n, char *err, size_t errlen)
{
    size_t i;
    int    in_str;

    in_str = 0;

    for (i = 0; i < n; i++) {
        if (in_str) {
            if (p[i] == '\\') {
                i++;
            } else if (p[i] == '"') {
                in_str = 0;
            }
        } else if (p[i] == '"') {
            in_str = 1;
        } else if (p[i] == '/') {
            snprintf(err, errlen, "a comment in JSON");
            return NULL;
        }
    }

    return am_json_parse(p, n, AM_JWT_JSON_DEPTH, err, errlen);
}


/* The string of a JSON value, or NULL when v is absent or not a string. */
const char *
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
unsigned char *
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


/*
 * Starts an EVP_DigestSign or EVP_DigestVerify with key for alg: the
 * digest (none for EdDSA, which hashes itself) and, for PS*, the RSASSA-PSS
 * parameters of RFC 7518 3.5, a salt as long as the hash and MGF1 with the
 * same hash, so that no other PSS variant verifies. 1 on success.
 */
static int
am_jwt_digest_init(
    EVP_MD_CTX *ctx, const am_jwt_alg_t *alg, EVP_PKEY *pkey, int sign)
{
    EVP_PKEY_CTX *pctx;
    const EVP_MD *md;

    md = (alg->md != NULL) ? alg->md() : NULL;

    if ((sign ? EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey)
              : EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey))
        != 1) {
        return 0;
    }

    if (alg->family != AM_JWT_PSS) {
        return 1;
    }

    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1
           && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST)
                  == 1
           && EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1;
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

    } else if (siglen != (size_t) EVP_PKEY_get_size(key->pkey)) {
        /*
         * RSA and Ed25519 signatures have one length. OpenSSL's PSS check
         * would take an RSA signature shorn of its leading zero bytes, a
         * second encoding of the same signature.
         */
        return 0;
    }

    ok = 0;

    ctx = EVP_MD_CTX_new();

    if (ctx != NULL && am_jwt_digest_init(ctx, key->alg, key->pkey, 0) == 1
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

    v = am_json_get(claims, name);
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
        s = am_jwt_string(am_json_get(claims, "iss"));

        if (s == NULL || strcmp(s, opts->issuer) != 0) {
            return am_jwt_error(err, errlen, "issuer mismatch");
        }
    }

    if (opts->audience != NULL) {
        v = am_json_get(claims, "aud");

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
    char                jerr[128]; /* the reason is not told to callers */
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

    header = am_jwt_json_parse((char *) hbuf, hlen, jerr, sizeof(jerr));

    if (header == NULL || !YAJL_IS_OBJECT(header)
        || !am_jwt_members_unique(header)) {
        am_jwt_error(err, errlen, "malformed token");
        goto done;
    }

    s = am_jwt_string(am_json_get(header, "alg"));
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
    if (am_json_get(header, "crit") != NULL) {
        am_jwt_error(err, errlen, "unsupported crit header");
        goto done;
    }

    v = am_json_get(header, "kid");
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

    payload = am_jwt_json_parse((char *) pbuf, plen, jerr, sizeof(jerr));

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

    if (ctx == NULL || am_jwt_digest_init(ctx, alg, pkey, 1) != 1
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
    char     err[128];
    int      ok;

    v = am_jwt_json_parse(payload, len, err, sizeof(err));
    ok = (v != NULL && YAJL_IS_OBJECT(v) && am_jwt_members_unique(v));

    yajl_tree_free(v);

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
