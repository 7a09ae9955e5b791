/*
 * Where Redis is, as the worker and the CLI accept it: "unix:/path",
 * "IPv4[:PORT]", "[IPv6][:PORT]", a bare IPv6 address or "localhost[:PORT]".
 * Host names are refused: resolving one could block, and the nginx module
 * refuses them too.
 */

#ifndef AM_REDIS_ADDR_H
#define AM_REDIS_ADDR_H

#include <arpa/inet.h>

typedef struct {
    char        host[INET6_ADDRSTRLEN]; /* an IP address, "" for a socket */
    int         port;                   /* 6379 when not given */
    const char *path;                   /* unix socket (in s), or NULL */
} am_redis_addr_t;

/* 0, or -1 when s is none of the forms above */
int am_redis_addr_parse(const char *s, am_redis_addr_t *a);

#endif
