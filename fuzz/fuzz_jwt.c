/*
 * libFuzzer target for JWT verification (src/am_jwt.c) with a fixed key
 * set: one HS256 secret (kid "k1"). The first byte picks what the rest is:
 *
 *   even  a compact token, verified as it is (header parsing, base64url,
 *         signature checks);
 *   odd   header JSON, a newline, payload JSON: both are encoded and signed
 *         with the secret, so that the verifier's JSON and claim checks
 *         are reached past the signature.
 *
 * A token that verifies must carry alg HS256 and give an object of claims.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "am_crypto.h"
#include "am_json.h"
#include "am_jwt.h"

#include "fuzz.h"

static const char am_fuzz_secret[] = "fuzz-secret-of-at-least-32-bytes-long!";

static am_jwt_keys_t *am_fuzz_keys;


static void
am_fuzz_init(void)
{
    char  path[] = "/tmp/am-fuzz-jwt-XXXXXX", err[256];
    FILE *f;
    int   fd;

    fd = mkstemp(path);
    if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
        am_fuzz_fail("cannot write the key file");
    }

    fputs(am_fuzz_secret, f);
    fclose(f);

    am_fuzz_keys = am_jwt_keys_new();
    if (am_fuzz_keys == NULL
        || am_jwt_keys_add_file(
               am_fuzz_keys, path, "HS256", "k1", err, sizeof(err))
               != 0) {
        unlink(path);
        am_fuzz_fail(err);
    }

    unlink(path);
}


/* "b64(header).b64(payload).b64(HMAC-SHA256)", malloc'd, in *len */
static char *
am_fuzz_sign(
    const uint8_t *h, size_t hlen, const uint8_t *p, size_t plen, size_t *len)
{
    unsigned char mac[32];
    char         *t;
    size_t        n;

    t = malloc(AM_B64_LEN(hlen) + AM_B64_LEN(plen) + AM_B64_LEN(32) + 3);
    if (t == NULL) {
        return NULL;
    }

    n = am_b64url_encode(h, hlen, t);
    t[n++] = '.';
    n += am_b64url_encode(p, plen, t + n);

    if (am_hmac_sha256(am_fuzz_secret, sizeof(am_fuzz_secret) - 1, t, n, mac)
        != 0) {
        free(t);
        return NULL;
    }

    t[n++] = '.';
    n += am_b64url_encode(mac, sizeof(mac), t + n);
    *len = n;

    return t;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    am_jwt_opts_t  opts;
    const uint8_t *nl;
    yajl_val       claims, header;
    char          *token, err[256], *dot, *alg;
    size_t         len;
    long           hlen;
    unsigned char *hbuf;
    int            rc;

    if (am_fuzz_keys == NULL) {
        am_fuzz_init();
    }

    if (size == 0) {
        return 0;
    }

    if (data[0] % 2 == 0) {
        token = malloc(size - 1 + 1);
        if (token == NULL) {
            return 0;
        }

        memcpy(token, data + 1, size - 1);
        len = size - 1;

    } else {
        nl = memchr(data + 1, '\n', size - 1);
        if (nl == NULL) {
            return 0;
        }

        token = am_fuzz_sign(
            data + 1, nl - data - 1, nl + 1, size - (nl + 1 - data), &len);
        if (token == NULL) {
            return 0;
        }
    }

    memset(&opts, 0, sizeof(opts));
    opts.now = 1700000000;
    opts.leeway = 30;
    opts.issuer = "https://issuer.example";
    opts.audience = "automations";

    claims = NULL;
    rc = am_jwt_verify(
        am_fuzz_keys, token, len, &opts, &claims, err, sizeof(err));

    if (rc == 0) {
        if (claims == NULL || !YAJL_IS_OBJECT(claims)) {
            am_fuzz_fail("verified claims are not an object");
        }

        /* only the HS256 key exists, so only an HS256 header can verify */
        dot = memchr(token, '.', len);
        hbuf = malloc((dot - token) / 4 * 3 + 3);
        if (hbuf == NULL) {
            am_fuzz_fail("out of memory");
        }

        hlen = am_b64url_decode(token, dot - token, hbuf);
        header = hlen > 0 ? am_json_parse(
                     (char *) hbuf, hlen, AM_JSON_MAX_DEPTH, NULL, 0)
                          : NULL;
        free(hbuf);
        alg = YAJL_GET_STRING(am_json_get(header, "alg"));
        if (alg == NULL || strcmp(alg, "HS256") != 0) {
            am_fuzz_fail("a token verified without an HS256 header");
        }

        am_json_free(header);

    } else if (err[0] == '\0') {
        am_fuzz_fail("refused without a reason");
    }

    am_json_free(claims);
    free(token);

    return 0;
}
