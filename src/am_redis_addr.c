#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "am_redis_addr.h"

/* The port after the host; 6379 when there is none, -1 when invalid. */
static int
am_redis_port(const char *port)
{
    char *end;
    long  n;

    if (port == NULL) {
        return AM_REDIS_PORT_DEFAULT;
    }

    if (*port < '0' || *port > '9') {
        return -1;
    }

    n = strtol(port, &end, 10);
    if (*end != '\0' || n < 1 || n > 65535) {
        return -1;
    }

    return (int) n;
}

/*
 * A DNS name: labels of letters, digits and inner '-', separated by dots.
 * Anything else would only fail later, in the resolver, with a vaguer
 * message.
 */
static int
am_redis_host_name(const char *s)
{
    size_t label;

    label = 0;

    for (; *s; s++) {
        if (*s == '.') {
            if (label == 0 || s[-1] == '-') {
                return 0;
            }
            label = 0;
            continue;
        }

        if (*s == '-' && label == 0) {
            return 0;
        }

        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
                || (*s >= '0' && *s <= '9') || *s == '-')
            || ++label > 63) {
            return 0;
        }
    }

    return label > 0 && s[-1] != '-';
}

int
am_redis_addr_parse(const char *s, am_redis_addr_t *a, char *err, size_t errlen)
{
    unsigned char buf[sizeof(struct in6_addr)];
    const char   *host, *port, *end;
    size_t        len;

    memset(a, 0, sizeof(*a));

    if (strncmp(s, "unix:", 5) == 0) {
        a->path = s + 5;
        if (a->path[0] == '\0') {
            snprintf(err, errlen, "\"%s\": the socket path is empty", s);
            return -1;
        }
        return 0;
    }

    if (s[0] == '[') {
        host = s + 1;
        end = strchr(host, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':')) {
            goto invalid;
        }
        port = end[1] ? end + 2 : NULL;

    } else {
        host = s;
        end = strchr(s, ':');
        if (end != NULL && strchr(end + 1, ':') != NULL) {
            snprintf(err, errlen,
                "\"%s\": an IPv6 address goes in brackets: [%s]", s, s);
            return -1;
        }
        port = end ? end + 1 : NULL;
        if (end == NULL) {
            end = s + strlen(s);
        }
    }

    len = (size_t) (end - host);

    if (len == 0 || len > AM_REDIS_HOST_MAX) {
        goto invalid;
    }

    memcpy(a->host, host, len);
    a->host[len] = '\0';

    a->port = am_redis_port(port);
    if (a->port < 0) {
        snprintf(err, errlen, "\"%s\": the port must be 1 to 65535", s);
        return -1;
    }

    if (s[0] == '[') {
        if (inet_pton(AF_INET6, a->host, buf) != 1) {
            goto invalid;
        }
        a->numeric = 1;
        return 0;
    }

    if (strcmp(a->host, "localhost") == 0) {
        strcpy(a->host, "127.0.0.1");
    }

    if (inet_pton(AF_INET, a->host, buf) == 1) {
        a->numeric = 1;
        return 0;
    }

    if (am_redis_host_name(a->host)) {
        return 0;
    }

invalid:

    snprintf(err, errlen, "\"%s\" is not " AM_REDIS_ADDR_SYNTAX, s);
    return -1;
}

int
am_redis_addr_resolve(
    const am_redis_addr_t *a, char *ip, size_t iplen, char *err, size_t errlen)
{
    struct addrinfo hints, *res;
    const void     *in;
    int             rc;

    if (a->numeric) {
        if (strlen(a->host) >= iplen) {
            snprintf(err, errlen, "%s: address too long", a->host);
            return -1;
        }
        strcpy(ip, a->host);
        return 0;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(a->host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(
            err, errlen, "cannot resolve %s: %s", a->host, gai_strerror(rc));
        return -1;
    }

    in =
        res->ai_family == AF_INET
            ? (const void *) &((struct sockaddr_in *) res->ai_addr)->sin_addr
            : (const void *) &((struct sockaddr_in6 *) res->ai_addr)->sin6_addr;

    if (inet_ntop(res->ai_family, in, ip, (socklen_t) iplen) == NULL) {
        freeaddrinfo(res);
        snprintf(err, errlen, "%s: address too long", a->host);
        return -1;
    }

    freeaddrinfo(res);
    return 0;
}
