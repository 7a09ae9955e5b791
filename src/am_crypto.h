/*
 * Small crypto and encoding helpers on libcrypto, shared by the module, the
 * worker and the CLI. No nginx types here.
 */

#ifndef AM_CRYPTO_H
#define AM_CRYPTO_H

#include <stddef.h>

#define AM_SHA256_HEX_LEN 64

/* Lowercase hex SHA-256 of data into out (65 bytes, NUL-terminated). */
void am_sha256_hex(const void *data, size_t len, char *out);

/* n random bytes as 2n lowercase hex chars plus NUL; 0, or -1 on failure. */
int am_random_hex(char *out, size_t n);

/* Constant-time comparison of two n-byte buffers: 1 when equal. */
int am_ct_equal(const void *a, const void *b, size_t n);

/* Base64url without padding; out holds AM_B64_LEN(len) + 1. */
#define AM_B64_LEN(n) (((n) + 2) / 3 * 4)
size_t am_b64url_encode(const unsigned char *in, size_t len, char *out);

/* Standard base64 with padding; out holds AM_B64_LEN(len) + 1. */
size_t am_b64_encode(const unsigned char *in, size_t len, char *out);

/*
 * Decodes base64url (padding optional, no other characters allowed) into
 * out, which holds len / 4 * 3 + 3 bytes; the length, or -1 when invalid.
 */
long am_b64url_decode(const char *in, size_t len, unsigned char *out);

/* HMAC-SHA256 of data into out (32 bytes); 0, or -1 on failure. */
int am_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
    unsigned char *out);

#endif
