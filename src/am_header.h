/*
 * The HTTP headers a caller may store for later requests: webhook_header
 * (sent with the execution's webhook) and ddn_headers (handed to the run).
 * The module checks them at intake and refuses what breaks these rules; the
 * worker's webhook engine applies the same rules to what it sends.
 *
 * Reserved headers are the ones the webhook request sets itself (framing,
 * body type, Standard Webhooks). The module refuses them in webhook_header
 * with a 422; the engine drops any it is given, so that a record stored
 * before a name became reserved still delivers.
 */

#ifndef AM_HEADER_H
#define AM_HEADER_H

#include <stddef.h>

#define AM_HEADERS_MAX 50        /* headers in one object */
#define AM_HEADER_NAME_MAX 256   /* bytes of a name */
#define AM_HEADER_VALUE_MAX 8192 /* bytes of a value */

/*
 * Host, Content-Length, Content-Type, Transfer-Encoding, Connection,
 * Expect (curl would wait for a 100 Continue), webhook-id,
 * webhook-timestamp, webhook-signature; NULL-terminated.
 */
extern const char *const am_header_reserved_names[];

/* 1 when the len bytes of s are a header name: an RFC 9110 token. */
int am_header_name_valid(const char *s, size_t len);

/* 1 when the len bytes of s are a header value: no control but tab. */
int am_header_value_valid(const char *s, size_t len);

/* 1 when the len bytes of s name a reserved header, in any case. */
int am_header_reserved(const char *s, size_t len);

#endif
