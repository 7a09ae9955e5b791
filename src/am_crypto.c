#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "am_crypto.h"

static const char am_hex[] = "0123456789abcdef";

static void
am_hex_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = am_hex[in[i] >> 4];
        out[2 * i + 1] = am_hex[in[i] & 0xf];
    }

    out[2 * n] = '\0';
}

/*
 * SHA-256 as fetched from the default provider once per process: given
 * EVP_sha256(), OpenSSL 3 fetches the implementation again on every call,
 * which was half of the cost of a digest of an API key. It is freed at
 * exit, before OpenSSL's own clean-up (registered earlier, run later), so
 * that valgrind finds nothing left. A race of two threads would fetch it
 * twice; the worker digests on its loop's thread only.
 */
static EVP_MD *am_sha256;

static void
am_sha256_free(void)
{
    EVP_MD_free(am_sha256);
    am_sha256 = NULL;
}

static const EVP_MD *
am_sha256_md(void)
{
    if (am_sha256 == NULL) {
        am_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (am_sha256 == NULL) {
            return EVP_sha256();
        }
        (void) atexit(am_sha256_free);
    }

    return am_sha256;
}

void
am_sha256_hex(const void *data, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int  n;

    if (EVP_Digest(data, len, md, &n, am_sha256_md(), NULL) != 1) {
        /* an all-zero digest never matches a stored one */
        memset(md, 0, 32);
        n = 32;
    }

    am_hex_encode(md, n, out);
}

/*
 * n random bytes as hex: the kernel's CSPRNG (getrandom), the source
 * OpenSSL's own generator is seeded from, in one system call (RAND_bytes
 * took 18,000 instructions per execution id).
 */
int
am_random_hex(char *out, size_t n)
{
    unsigned char buf[64];
    size_t        got;
    ssize_t       r;

    if (n > sizeof(buf)) {
        return -1;
    }

    for (got = 0; got < n; got += (size_t) r) {
        r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) {
                r = 0;
                continue;
            }
            return -1;
        }
    }

    am_hex_encode(buf, n, out);
    return 0;
}

int
am_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

static size_t
am_b64_encode_with(const unsigned char *in, size_t len, char *out,
    const char *alphabet, int pad)
{
    size_t i;
    char  *p;

    p = out;

    for (i = 0; i + 2 < len; i += 3) {
        *p++ = alphabet[in[i] >> 2];
        *p++ = alphabet[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *p++ = alphabet[((in[i + 1] & 0xf) << 2) | (in[i + 2] >> 6)];
        *p++ = alphabet[in[i + 2] & 0x3f];
    }

    if (len - i == 1) {
        *p++ = alphabet[in[i] >> 2];
        *p++ = alphabet[(in[i] & 3) << 4];
        if (pad) {
            *p++ = '=';
            *p++ = '=';
        }

    } else if (len - i == 2) {
        *p++ = alphabet[in[i] >> 2];
        *p++ = alphabet[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *p++ = alphabet[(in[i + 1] & 0xf) << 2];
        if (pad) {
            *p++ = '=';
        }
    }

    *p = '\0';
    return (size_t) (p - out);
}

size_t
am_b64url_encode(const unsigned char *in, size_t len, char *out)
{
    return am_b64_encode_with(in, len, out,
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 0);
}

size_t
am_b64_encode(const unsigned char *in, size_t len, char *out)
{
    return am_b64_encode_with(in, len, out,
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 1);
}

static int
am_b64url_value(int c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

long
am_b64url_decode(const char *in, size_t len, unsigned char *out)
{
    unsigned long acc;
    size_t        i;
    long          n;
    int           v, bits;

    while (len > 0 && in[len - 1] == '=') {
        len--;
    }

    if (len % 4 == 1) {
        return -1;
    }

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        v = am_b64url_value((unsigned char) in[i]);
        if (v < 0) {
            return -1;
        }

        acc = (acc << 6) | (unsigned long) v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
        }
    }

    /* the unused low bits of the last character must be zero */
    if (bits > 0 && (acc & ((1UL << bits) - 1)) != 0) {
        return -1;
    }

    return n;
}

int
am_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
    unsigned char *out)
{
    unsigned int n;

    if (HMAC(am_sha256_md(), key, (int) keylen, data, len, out, &n) == NULL) {
        return -1;
    }

    return 0;
}
