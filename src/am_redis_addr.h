/*
 * Where Redis is: the one syntax of the module's automations_redis, the
 * worker's and the CLI's --redis (AUTOMATIONS_REDIS).
 *
 *   unix:/path/to/socket
 *   HOST[:PORT]          HOST an IPv4 address or a host name
 *   [IPv6][:PORT]        brackets required: a bare "::1:6379" is ambiguous
 *
 * PORT defaults to 6379. "localhost" means 127.0.0.1, so that it never
 * reaches a Redis listening on IPv4 only through ::1. Any other host name is
 * resolved by am_redis_addr_resolve(), which blocks: the module calls it
 * once at configuration load, the CLI when it connects; the worker resolves
 * asynchronously on its loop.
 */

#ifndef AM_REDIS_ADDR_H
#define AM_REDIS_ADDR_H

#include <stddef.h>

#define AM_REDIS_PORT_DEFAULT 6379
#define AM_REDIS_HOST_MAX 253 /* the longest DNS name */

#define AM_REDIS_ADDR_SYNTAX "HOST[:PORT], [IPv6][:PORT] or unix:/path"

typedef struct {
    char        host[AM_REDIS_HOST_MAX + 1]; /* "" for a unix socket */
    int         port;                        /* 6379 when not given */
    int         numeric;                     /* host is an IP address */
    const char *path;                        /* unix socket (in s), or NULL */
} am_redis_addr_t;

/*
 * Parses the NUL-terminated s into a; 0, or -1 with the reason in err
 * (errlen bytes, always NUL-terminated). a->path points into s.
 */
int am_redis_addr_parse(
    const char *s, am_redis_addr_t *a, char *err, size_t errlen);

/*
 * The IP address to connect to, as text in ip (iplen bytes, 46 is enough):
 * a->host itself when numeric, else the first address getaddrinfo() gives
 * for it (blocking). 0, or -1 with the reason in err. Not for unix sockets.
 */
int am_redis_addr_resolve(
    const am_redis_addr_t *a, char *ip, size_t iplen, char *err, size_t errlen);

#endif
