/*
 * JWT (JWS compact serialization) on libcrypto: verification for the module,
 * signing for the CLI. No nginx types here.
 *
 * The algorithm is pinned by the key, never taken from the token alone:
 * a token is accepted only when its "alg" equals the algorithm configured
 * for the key that verifies it.
 */

#ifndef AM_JWT_H
#define AM_JWT_H

#include <stddef.h>
#include <time.h>

#include <yajl/yajl_tree.h>

/* tokens longer than this are refused when am_jwt_opts_t.max_len is 0 */
#define AM_JWT_MAX_LEN 8192

/* HMAC secrets shorter than this are refused (RFC 7518 3.2 for HS256) */
#define AM_JWT_MIN_SECRET 32

typedef struct am_jwt_keys_s am_jwt_keys_t;

am_jwt_keys_t *am_jwt_keys_new(void);
void           am_jwt_keys_free(am_jwt_keys_t *keys);

/* the supported algorithms, as messages list them */
#define AM_JWT_ALGS                                                            \
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, "          \
    "ES256, ES384 or EdDSA"

/*
 * Adds one key read from a file. HS256/HS384/HS512: the file's bytes are the
 * secret, minus one trailing "\n" or "\r\n", at least 32 bytes. Otherwise a
 * PEM public key ("PUBLIC KEY", "RSA PUBLIC KEY" or a certificate): RSA
 * (>= 2048 bits) needs alg RS256/RS384/RS512/PS256/PS384/PS512; EC
 * P-256/P-384 and Ed25519 may leave alg NULL (ES256/ES384 from the curve,
 * EdDSA). kid may be NULL. Returns 0, or -1 with a message naming the file
 * in err.
 */
int am_jwt_keys_add_file(am_jwt_keys_t *keys, const char *path, const char *alg,
    const char *kid, char *err, size_t errlen);

/*
 * Called once for each key of a JWKS file that is skipped, with a message
 * naming the file, the key (its kid, else its index) and why.
 */
typedef void (*am_jwt_skip_pt)(void *data, const char *msg);

/*
 * Adds every key of a JWKS file ({"keys":[...]}) that verifies signatures
 * with a supported algorithm: kty RSA (alg RS* or PS*, RS256 when absent),
 * EC (P-256, P-384), OKP (Ed25519) and oct (needs an HS* alg). A key for
 * another use or algorithm, of another kty or curve, or too weak is skipped
 * and reported to skip (which may be NULL), since identity providers publish
 * such keys next to the ones we use. The file fails, adding nothing, when
 * it is not a JWKS, when a key of a kind we use is malformed, or when no
 * key is left.
 */
int am_jwt_keys_add_jwks(am_jwt_keys_t *keys, const char *path,
    am_jwt_skip_pt skip, void *data, char *err, size_t errlen);

size_t am_jwt_keys_count(const am_jwt_keys_t *keys);

/* 1 when alg is one of the algorithm names this library supports */
int am_jwt_alg_supported(const char *alg);

typedef struct {
    time_t      now;
    long        leeway;   /* seconds, applied to exp and nbf */
    const char *issuer;   /* NULL: not checked; else "iss" must equal it */
    const char *audience; /* NULL: not checked; else "aud" must contain it */
    size_t      max_len;  /* 0 means AM_JWT_MAX_LEN */
} am_jwt_opts_t;

/*
 * Verifies a compact JWS of len bytes (not NUL-terminated). Returns 0 and
 * the payload object in *claims (free with yajl_tree_free), or -1 with a
 * short reason in err ("token expired", "bad signature", ...).
 */
int am_jwt_verify(const am_jwt_keys_t *keys, const char *token, size_t len,
    const am_jwt_opts_t *opts, yajl_val *claims, char *err, size_t errlen);

/*
 * Signs payload (the JSON text of an object) with header
 * {"alg":alg,"typ":"JWT"[,"kid":kid]}. key_path is a secret file for HS*
 * (same rules as am_jwt_keys_add_file) or a PEM private key for RS*, PS*,
 * ES* and EdDSA.
 * Returns a malloc'd NUL-terminated token, or NULL with err.
 */
char *am_jwt_sign(const char *alg, const char *key_path, const char *kid,
    const char *payload, size_t len, char *err, size_t errlen);

#endif
