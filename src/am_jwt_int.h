/*
 * What the two halves of the JWT code share, and nothing else includes:
 * am_jwt_keys.c loads keys (secret files, PEM, JWKS) and pins each to its
 * algorithm; am_jwt.c verifies and signs tokens with them.
 */

#ifndef AM_JWT_INT_H
#define AM_JWT_INT_H

#include <stddef.h>

#include <openssl/evp.h>
#include <yajl/yajl_tree.h>

#include "am_jwt.h"

/* JSON nesting allowed in headers, claims and JWKS files */
#define AM_JWT_JSON_DEPTH 32

/* RSA is RSASSA-PKCS1-v1_5, PSS is RSASSA-PSS; both take the same keys */
typedef enum {
    AM_JWT_HMAC,
    AM_JWT_RSA,
    AM_JWT_PSS,
    AM_JWT_EC,
    AM_JWT_EDDSA
} am_jwt_family_e;

typedef struct {
    const char     *name;
    am_jwt_family_e family;
    const EVP_MD *(*md)(void); /* NULL for EdDSA, which hashes itself */
    size_t      ec_len;        /* bytes of each of r and s */
    const char *curve;         /* OpenSSL group or key type name */
    const char *crv;           /* JWK / NIST name */
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


/* am_jwt_keys.c */

/* The algorithm called name, or NULL when not supported. */
const am_jwt_alg_t *am_jwt_alg_find(const char *name);

/* A whole regular file, malloc'd with a NUL after it; 0, or -1 and err. */
int am_jwt_read_file(
    const char *path, char **data, size_t *len, char *err, size_t errlen);

/* An HMAC secret file as am_jwt_keys_add_file() reads it; 0, or -1. */
int am_jwt_secret_read(const char *path, unsigned char **secret, size_t *len,
    char *err, size_t errlen);

/*
 * The algorithm pkey is used with, in *out: name when it fits the key, else
 * the one an EC curve implies; 0, or -1 with err (prefixed with where).
 */
int am_jwt_pkey_alg(EVP_PKEY *pkey, const char *name, const char *where,
    const am_jwt_alg_t **out, char *err, size_t errlen);


/* am_jwt.c */

/* Writes a message into err, drops OpenSSL's error queue, returns -1. */
int am_jwt_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * JSON text of a header, claims or a JWKS file, with am_json_parse at
 * AM_JWT_JSON_DEPTH; comments, which yajl would take, are refused first.
 * Free the tree with yajl_tree_free; NULL with the reason in err.
 */
yajl_val am_jwt_json_parse(const char *p, size_t n, char *err, size_t errlen);

/* The string of a JSON value, or NULL when v is absent or not a string. */
const char *am_jwt_string(yajl_val v);

/*
 * base64url into a malloc'd buffer with a NUL after the data, or NULL;
 * strict refuses the '=' padding that JWS forbids.
 */
unsigned char *am_jwt_b64_decode(
    const char *in, size_t len, int strict, size_t *outlen);

#endif
