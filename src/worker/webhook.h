/*
 * Webhook delivery: one HTTP POST per call over libcurl's multi interface,
 * driven by the worker's libuv loop. Retries and their schedule are the
 * caller's (they live in Redis); this engine makes one attempt and reports
 * how it went.
 */

#ifndef AM_WEBHOOK_H
#define AM_WEBHOOK_H

#include <stddef.h>
#include <sys/socket.h>

#include <uv.h>

/* "v1," and the base64 of a SHA-256 HMAC, plus NUL */
#define AM_WEBHOOK_SIGNATURE_LEN 48

/* the secret in force and, while a rotation overlaps, the one it replaced */
#define AM_WEBHOOK_SECRETS_MAX 2

/* as many signatures separated by spaces, plus NUL */
#define AM_WEBHOOK_SIGNATURES_LEN                                              \
    (AM_WEBHOOK_SECRETS_MAX * AM_WEBHOOK_SIGNATURE_LEN)

typedef struct am_webhook_engine_s am_webhook_engine_t;

typedef struct {
    long        timeout_ms;         /* whole request (default 10000) */
    long        connect_timeout_ms; /* default 5000 */
    int         allow_private;      /* 1: loopback/private/link-local allowed */
    const char *user_agent;         /* default "automations-worker/1" */
} am_webhook_config_t;

/*
 * How an attempt went. error never names an address or a host: it is shown
 * to the project, and the address the URL led to may be an internal one.
 */
typedef struct {
    long http_status;   /* 0 when no response */
    long retry_after_s; /* Retry-After (seconds or HTTP-date), -1 if absent */
    long duration_ms;   /* from the post to the answer or the failure */
    char error[256];    /* "" on a 2xx, else "HTTP 500", "timed out", ... */
    int  delivered;     /* 1 on 2xx */
    int  gone;          /* 1 on 410: stop retrying */
    int  refused;       /* 1 when every address was refused by the address
                           policy (see allow_private): stop retrying */
} am_webhook_result_t;

typedef void (*am_webhook_cb)(void *data, const am_webhook_result_t *res);

/*
 * A delivery engine on loop; cfg may be NULL for the defaults. NULL when out
 * of memory, or when libcurl resolves names synchronously (it would block
 * the loop).
 */
am_webhook_engine_t *am_webhook_engine_new(
    uv_loop_t *loop, const am_webhook_config_t *cfg);

/*
 * Cancels what is in flight, each callback being called once, from here,
 * with error "cancelled", and closes the engine's libuv handles. The memory
 * goes with the last close callback, so the loop must run once more before
 * uv_loop_close(): the usual uv_run(loop, UV_RUN_DEFAULT) at shutdown does
 * it. The engine must not be used after this call.
 */
void am_webhook_engine_free(am_webhook_engine_t *e);

/*
 * Starts a POST of body to url (http or https only). The attempt ends as
 * soon as a 2xx status line and its headers have come: the body of such an
 * answer is not read, so that a receiver that has taken the delivery is
 * recorded as such at once, whatever it does next. headers holds nheaders
 * (name, value) pairs, sent as given, except the reserved ones of
 * am_header.h, which the engine sets itself and drops from headers:
 * Content-Type is always application/json, Expect is sent empty, and the
 * webhook-* headers are the engine's. With msg_id, the request carries the
 * Standard Webhooks headers webhook-id (msg_id) and webhook-timestamp (ts),
 * and with a secret ("whsec_<base64>") webhook-signature too. secret may
 * list up to AM_WEBHOOK_SECRETS_MAX secrets separated by single spaces: the
 * delivery then carries one signature made with each, in that order.
 *
 * 0: cb will be called exactly once, from the loop, never from this call.
 * -1: nothing started, err says why ("invalid URL", "unsupported URL
 * scheme", "invalid header", "invalid secret"); retrying will not help.
 */
int am_webhook_post(am_webhook_engine_t *e, const char *url,
    const char *const *headers, size_t nheaders, const char *body,
    size_t body_len, const char *secret, const char *msg_id, long ts,
    am_webhook_cb cb, void *data, char *err, size_t errlen);

/*
 * The Standard Webhooks signature of body: "v1," and the base64 of the
 * HMAC-SHA256, keyed by the decoded secret, of msg_id "." ts "." body.
 * out holds AM_WEBHOOK_SIGNATURE_LEN bytes; 0, or -1 on a bad secret.
 */
int am_webhook_sign(const char *secret, const char *msg_id, long ts,
    const char *body, size_t len, char *out, size_t outlen);

/* The number of deliveries in flight. */
size_t am_webhook_inflight(const am_webhook_engine_t *e);

/*
 * Why the engine will not connect to sa unless allow_private ("loopback",
 * "private", "link-local", ...), or NULL for a public address.
 */
const char *am_webhook_address_refused(const struct sockaddr *sa);

#endif
