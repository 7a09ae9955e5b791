#include <stdlib.h>
#include <string.h>

#include "am_redis_addr.h"

/* The port of "HOST:PORT"; 6379 when port is NULL, -1 when invalid. */
static int
am_redis_port(const char *port)
{
    char *end;
    long  n;

    if (port == NULL) {
        return 6379;
    }

    n = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || n < 1 || n > 65535) {
        return -1;
    }

    return (int) n;
}

int
am_redis_addr_parse(const char *s, am_redis_addr_t *a)
{
    unsigned char buf[sizeof(struct in6_addr)];
    const char   *host, *port, *end;
    size_t        len;

    memset(a, 0, sizeof(*a));

    if (strncmp(s, "unix:", 5) == 0) {
        a->path = s + 5;
        return a->path[0] == '\0' ? -1 : 0;
    }

    host = s;
    port = NULL;
    end = strchr(s, ':');

    if (s[0] == '[') {
        host = s + 1;
        end = strchr(s, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':')) {
            return -1;
        }
        port = end[1] ? end + 2 : NULL;

    } else if (end != NULL && strrchr(s, ':') == end) {
        /* one colon: IPv4 or localhost, then the port */
        port = end + 1;

    } else {
        /* no colon, or a bare IPv6 address */
        end = s + strlen(s);
    }

    len = (size_t) (end - host);

    if (len == 9 && strncmp(host, "localhost", 9) == 0) {
        host = "127.0.0.1";
    }

    if (len == 0 || len >= sizeof(a->host)) {
        return -1;
    }

    memcpy(a->host, host, len);
    a->host[len] = '\0';
    a->port = am_redis_port(port);

    if (a->port < 0
        || (inet_pton(AF_INET, a->host, buf) != 1
            && inet_pton(AF_INET6, a->host, buf) != 1)) {
        return -1;
    }

    return 0;
}
