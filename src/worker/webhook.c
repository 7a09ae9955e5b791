/*
 * Webhook delivery over libcurl's multi interface on the worker's libuv
 * loop: curl tells us which sockets to watch (one uv_poll_t each) and when
 * to wake it (one uv_timer_t), and we hand readiness back through
 * curl_multi_socket_action(). Nothing here blocks the loop; name lookups
 * happen in curl's resolver thread.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <netinet/in.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "am_crypto.h"
#include "am_header.h"
#include "worker/webhook.h"

#define AM_WEBHOOK_SECRET_MAX 256
#define AM_WEBHOOK_KEY_MAX (AM_WEBHOOK_SECRET_MAX / 4 * 3 + 3)

/* responses are read and dropped; past this much, the rest is not read */
#define AM_WEBHOOK_RESPONSE_MAX (1024 * 1024)

typedef struct am_webhook_delivery_s am_webhook_delivery_t;
typedef struct am_webhook_socket_s   am_webhook_socket_t;

struct am_webhook_delivery_s {
    am_webhook_engine_t   *engine;
    CURL                  *easy;
    struct curl_slist     *headers;
    am_webhook_cb          cb;
    void                  *data;
    am_webhook_result_t    res;
    size_t                 received;
    int                    truncated;
    int                    answered; /* a 2xx and its headers have come */
    int                    opened;   /* sockets opened */
    const char            *refused;  /* why an address was refused */
    uint64_t               started;  /* uv_hrtime() of the post */
    am_webhook_delivery_t *prev;
    am_webhook_delivery_t *next;
};

/* a socket curl asked us to watch */
struct am_webhook_socket_s {
    uv_poll_t            poll;
    curl_socket_t        fd;
    am_webhook_engine_t *engine;
    am_webhook_socket_t *prev;
    am_webhook_socket_t *next;
};

struct am_webhook_engine_s {
    uv_loop_t             *loop;
    CURLM                 *multi;
    uv_timer_t             timer;
    long                   timeout_ms;
    long                   connect_timeout_ms;
    int                    allow_private;
    char                  *user_agent;
    am_webhook_delivery_t *deliveries;
    am_webhook_socket_t   *sockets;
    size_t                 inflight;
    unsigned               handles; /* libuv handles not yet closed */
    int                    closing;
};

static void
am_webhook_handle_closed(uv_handle_t *handle)
{
    am_webhook_engine_t *e;
    am_webhook_socket_t *s;

    if (handle->type == UV_POLL) {
        s = handle->data;
        e = s->engine;
        free(s);

    } else {
        e = handle->data;
    }

    if (--e->handles == 0 && e->closing) {
        free(e->user_agent);
        free(e);
    }
}


static void
am_webhook_socket_close(am_webhook_socket_t *s)
{
    am_webhook_engine_t *e;

    e = s->engine;

    if (s->prev) {
        s->prev->next = s->next;
    } else {
        e->sockets = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }

    uv_close((uv_handle_t *) &s->poll, am_webhook_handle_closed);
}


static void
am_webhook_unlink(am_webhook_delivery_t *d)
{
    am_webhook_engine_t *e;

    e = d->engine;

    if (d->prev) {
        d->prev->next = d->next;
    } else {
        e->deliveries = d->next;
    }
    if (d->next) {
        d->next->prev = d->prev;
    }

    d->prev = NULL;
    d->next = NULL;
    e->inflight--;
}


static void
am_webhook_delivery_free(am_webhook_delivery_t *d)
{
    if (d->easy) {
        curl_easy_cleanup(d->easy);
    }
    curl_slist_free_all(d->headers);
    free(d);
}


/*
 * The error text of a transfer that curl ended with rc: a class of error,
 * never curl's own message, which may name the host or the address.
 */
static void
am_webhook_set_error(am_webhook_delivery_t *d, CURLcode rc)
{
    am_webhook_result_t *res;
    long                 os_errno;

    res = &d->res;

    switch (rc) {

    case CURLE_COULDNT_CONNECT:
        if (d->refused != NULL && d->opened == 0) {
            res->refused = 1;
            snprintf(res->error, sizeof(res->error), "address refused: %s",
                d->refused);
            return;
        }

        os_errno = 0;
        curl_easy_getinfo(d->easy, CURLINFO_OS_ERRNO, &os_errno);

        if (os_errno == ECONNREFUSED) {
            snprintf(res->error, sizeof(res->error), "connection refused");
        } else if (os_errno != 0) {
            snprintf(res->error, sizeof(res->error), "could not connect: %s",
                strerror((int) os_errno));
        } else {
            snprintf(res->error, sizeof(res->error), "could not connect");
        }
        return;

    case CURLE_OPERATION_TIMEDOUT:
        snprintf(res->error, sizeof(res->error), "timed out");
        return;

    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(res->error, sizeof(res->error), "could not resolve host");
        return;

    case CURLE_GOT_NOTHING:
        snprintf(res->error, sizeof(res->error), "empty reply");
        return;

    default:
        snprintf(res->error, sizeof(res->error), "%s", curl_easy_strerror(rc));
    }
}


/* Fills d->res from how curl ended the transfer. */
static void
am_webhook_set_result(am_webhook_delivery_t *d, CURLcode rc)
{
    am_webhook_result_t *res;

    res = &d->res;
    res->duration_ms = (long) ((uv_hrtime() - d->started) / 1000000);

    curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &res->http_status);

    /* the response was cut short by us, not by the network */
    if (rc == CURLE_WRITE_ERROR && (d->truncated || d->answered)) {
        rc = CURLE_OK;
    }

    if (rc != CURLE_OK) {
        am_webhook_set_error(d, rc);
        return;
    }

    if (res->http_status >= 200 && res->http_status < 300) {
        res->delivered = 1;
        res->error[0] = '\0';
        return;
    }

    res->gone = (res->http_status == 410);
    snprintf(res->error, sizeof(res->error), "HTTP %ld", res->http_status);
}


/*
 * Collects the transfers curl has finished, then calls their callbacks: a
 * callback may start deliveries or free the engine, so none is called while
 * curl's message queue is being read.
 */
static void
am_webhook_check_done(am_webhook_engine_t *e)
{
    CURLMsg               *msg;
    am_webhook_delivery_t *d, *done;
    char                  *p;
    int                    left;

    done = NULL;

    while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
        d = (am_webhook_delivery_t *) p;

        am_webhook_set_result(d, msg->data.result);
        am_webhook_unlink(d);

        curl_multi_remove_handle(e->multi, d->easy);

        d->next = done;
        done = d;
    }

    while (done != NULL) {
        d = done;
        done = d->next;

        d->cb(d->data, &d->res);
        am_webhook_delivery_free(d);
    }
}


static void
am_webhook_on_poll(uv_poll_t *poll, int status, int events)
{
    am_webhook_socket_t *s;
    am_webhook_engine_t *e;
    int                  flags, running;

    s = poll->data;
    e = s->engine;

    flags = 0;
    if (status < 0) {
        flags |= CURL_CSELECT_ERR;
    }
    if (events & UV_READABLE) {
        flags |= CURL_CSELECT_IN;
    }
    if (events & UV_WRITABLE) {
        flags |= CURL_CSELECT_OUT;
    }

    /* s may be closed from here on */
    curl_multi_socket_action(e->multi, s->fd, flags, &running);
    am_webhook_check_done(e);
}


static void
am_webhook_on_timer(uv_timer_t *timer)
{
    am_webhook_engine_t *e;
    int                  running;

    e = timer->data;

    curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    am_webhook_check_done(e);
}


/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl waits for, or stop. */
static int
am_webhook_on_socket(
    CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    am_webhook_engine_t *e;
    am_webhook_socket_t *s;
    int                  events;

    (void) easy;

    e = userp;
    s = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            am_webhook_socket_close(s);
            curl_multi_assign(e->multi, fd, NULL);
        }
        return 0;
    }

    if (s == NULL) {
        s = calloc(1, sizeof(am_webhook_socket_t));
        if (s == NULL) {
            return -1;
        }

        if (uv_poll_init_socket(e->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }

        s->poll.data = s;
        s->fd = fd;
        s->engine = e;
        s->next = e->sockets;
        if (e->sockets) {
            e->sockets->prev = s;
        }
        e->sockets = s;
        e->handles++;

        curl_multi_assign(e->multi, fd, s);
    }

    events = 0;
    if (what & CURL_POLL_IN) {
        events |= UV_READABLE;
    }
    if (what & CURL_POLL_OUT) {
        events |= UV_WRITABLE;
    }

    uv_poll_start(&s->poll, events, am_webhook_on_poll);

    return 0;
}


/* CURLMOPT_TIMERFUNCTION: when curl wants am_webhook_on_timer called. */
static int
am_webhook_on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    am_webhook_engine_t *e;

    (void) multi;

    e = userp;

    if (timeout_ms < 0) {
        uv_timer_stop(&e->timer);
    } else {
        uv_timer_start(
            &e->timer, am_webhook_on_timer, (uint64_t) timeout_ms, 0);
    }

    return 0;
}


static int
am_webhook_v4_refused(const unsigned char *a, const char **why)
{
    if (a[0] == 0) {
        *why = "unspecified";
    } else if (a[0] == 127) {
        *why = "loopback";
    } else if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16)
               || (a[0] == 192 && a[1] == 168)) {
        *why = "private";
    } else if (a[0] == 169 && a[1] == 254) {
        *why = "link-local";
    } else if (a[0] == 100 && (a[1] & 0xc0) == 64) {
        /* RFC 6598 shared address space: carrier-grade NAT */
        *why = "shared";
    } else if ((a[0] & 0xf0) == 224) {
        *why = "multicast";
    } else if ((a[0] & 0xf0) == 240) {
        *why = "reserved";
    } else {
        return 0;
    }

    return 1;
}


const char *
am_webhook_address_refused(const struct sockaddr *sa)
{
    static const unsigned char mapped[12] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    static const unsigned char zero[16];

    const unsigned char *a;
    const char          *why;

    if (sa->sa_family == AF_INET) {
        a = (const unsigned char *) &((const struct sockaddr_in *) sa)
                ->sin_addr;
        return am_webhook_v4_refused(a, &why) ? why : NULL;
    }

    if (sa->sa_family != AF_INET6) {
        return "not IP";
    }

    a = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;

    if (memcmp(a, zero, 16) == 0) {
        return "unspecified";
    }
    if (memcmp(a, zero, 15) == 0 && a[15] == 1) {
        return "loopback";
    }

    /* IPv4-mapped, IPv4-compatible and NAT64 addresses reach an IPv4 one */
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, zero, 12) == 0
        || memcmp(a, nat64, 12) == 0) {
        return am_webhook_v4_refused(a + 12, &why) ? why : NULL;
    }

    if ((a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)) {
        return "private";
    }
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) {
        return "link-local";
    }
    if (a[0] == 0xff) {
        return "multicast";
    }

    return NULL;
}


/*
 * CURLOPT_OPENSOCKETFUNCTION: the address curl is about to connect to,
 * after any name lookup, so a name that resolves (or re-resolves) to an
 * internal address is caught too.
 */
static curl_socket_t
am_webhook_open_socket(
    void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    am_webhook_delivery_t *d;
    const char            *why;
    curl_socket_t          fd;

    d = clientp;

    if (purpose != CURLSOCKTYPE_IPCXN) {
        return CURL_SOCKET_BAD;
    }

    if (!d->engine->allow_private) {
        why = am_webhook_address_refused(&addr->addr);

        if (why != NULL) {
            d->refused = why;
            return CURL_SOCKET_BAD;
        }
    }

    fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd != CURL_SOCKET_BAD) {
        d->opened++;
    }

    return fd;
}


/* Retry-After: delay-seconds or an HTTP-date; -1 when unusable. */
static long
am_webhook_parse_retry_after(const char *v)
{
    char  *end;
    long   n;
    time_t t, now;

    if (*v >= '0' && *v <= '9') {
        errno = 0;
        n = strtol(v, &end, 10);
        return (errno != 0 || *end != '\0') ? -1 : n;
    }

    t = curl_getdate(v, NULL);
    if (t == -1) {
        return -1;
    }

    now = time(NULL);
    return t > now ? (long) (t - now) : 0;
}


/* CURLOPT_HEADERFUNCTION: looks for Retry-After in the final response. */
static size_t
am_webhook_on_header(char *buf, size_t size, size_t n, void *userdata)
{
    am_webhook_delivery_t *d;
    size_t                 len, i;
    long                   status;
    char                   value[64];

    d = userdata;
    len = size * n;

    /* a new status line: forget what a 1xx response said */
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        d->res.retry_after_s = -1;
        return len;
    }

    /*
     * The end of a 2xx answer's headers: the receiver has the delivery, so
     * the attempt ends here (returning 0 stops the transfer) rather than
     * after a body nobody reads, which would widen the time in which a
     * worker that dies sends the delivery again.
     */
    if ((len == 2 && buf[0] == '\r' && buf[1] == '\n')
        || (len == 1 && buf[0] == '\n')) {
        status = 0;
        curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &status);

        if (status >= 200 && status < 300) {
            d->answered = 1;
            return 0;
        }

        return len;
    }

    if (len < 12 || strncasecmp(buf, "Retry-After:", 12) != 0) {
        return len;
    }

    for (i = 12; i < len && (buf[i] == ' ' || buf[i] == '\t'); i++) {
        /* void */
    }

    while (len > i
           && (buf[len - 1] == '\r' || buf[len - 1] == '\n'
               || buf[len - 1] == ' ' || buf[len - 1] == '\t')) {
        len--;
    }

    if (len - i >= sizeof(value)) {
        return size * n;
    }

    memcpy(value, buf + i, len - i);
    value[len - i] = '\0';

    d->res.retry_after_s = am_webhook_parse_retry_after(value);

    return size * n;
}


/* CURLOPT_WRITEFUNCTION: the response body is not needed, only drained. */
static size_t
am_webhook_on_body(char *buf, size_t size, size_t n, void *userdata)
{
    am_webhook_delivery_t *d;

    (void) buf;

    d = userdata;
    d->received += size * n;

    if (d->received > AM_WEBHOOK_RESPONSE_MAX) {
        d->truncated = 1;
        return 0;
    }

    return size * n;
}


/* A header as am_header.h allows; name and value NUL-terminated. */
static int
am_webhook_header_valid(const char *name, const char *value)
{
    return name != NULL && value != NULL
           && am_header_name_valid(name, strlen(name))
           && am_header_value_valid(value, strlen(value));
}


/* Appends "name: value" (curl sends "name;" as an empty header). */
static int
am_webhook_header_add(
    struct curl_slist **list, const char *name, const char *value)
{
    struct curl_slist *l;
    size_t             len;
    char              *line;

    len = strlen(name) + strlen(value) + 3;

    line = malloc(len);
    if (line == NULL) {
        return -1;
    }

    if (*value == '\0') {
        snprintf(line, len, "%s;", name);
    } else {
        snprintf(line, len, "%s: %s", name, value);
    }

    l = curl_slist_append(*list, line);
    free(line);

    if (l == NULL) {
        return -1;
    }

    *list = l;
    return 0;
}


/* Checks url is an http or https URL curl can parse. */
static int
am_webhook_check_url(const char *url, char *err, size_t errlen)
{
    CURLU    *u;
    CURLUcode rc;
    char     *scheme;
    int       ok;

    u = curl_url();
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    scheme = NULL;
    rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc == CURLUE_OK) {
        rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    }

    ok = (rc == CURLUE_OK
          && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0));

    if (!ok) {
        snprintf(err, errlen,
            (rc == CURLUE_OK || rc == CURLUE_UNSUPPORTED_SCHEME)
                ? "unsupported URL scheme"
                : "invalid URL");
    }

    curl_free(scheme);
    curl_url_cleanup(u);

    return ok ? 0 : -1;
}


/*
 * The webhook-signature value: a signature for each secret of a list
 * separated by single spaces, in its order, space-separated as Standard
 * Webhooks lists them, so that a receiver holding either secret accepts the
 * delivery while a rotation overlaps. out holds AM_WEBHOOK_SIGNATURES_LEN
 * bytes.
 */
static int
am_webhook_sign_all(const char *secrets, const char *msg_id, long ts,
    const char *body, size_t len, char *out)
{
    const char *p, *end;
    size_t      n, used;
    char        secret[6 + AM_WEBHOOK_SECRET_MAX + 1];
    int         count, rc;

    used = 0;
    count = 0;

    for (p = secrets; *p != '\0'; p = (*end == ' ') ? end + 1 : end) {
        end = strchr(p, ' ');
        if (end == NULL) {
            end = p + strlen(p);
        }

        n = (size_t) (end - p);
        if (n == 0 || n >= sizeof(secret) || count == AM_WEBHOOK_SECRETS_MAX) {
            return -1;
        }

        memcpy(secret, p, n);
        secret[n] = '\0';

        if (count > 0) {
            out[used++] = ' ';
        }

        rc = am_webhook_sign(secret, msg_id, ts, body, len, out + used,
            AM_WEBHOOK_SIGNATURES_LEN - used);
        OPENSSL_cleanse(secret, n);

        if (rc != 0) {
            return -1;
        }

        used += strlen(out + used);
        count++;
    }

    return count > 0 ? 0 : -1;
}


/* The request's headers: the caller's, then the engine's own. */
static int
am_webhook_build_headers(am_webhook_delivery_t *d, const char *const *headers,
    size_t nheaders, const char *body, size_t body_len, const char *secret,
    const char *msg_id, long ts, char *err, size_t errlen)
{
    struct curl_slist *l;
    size_t             i;
    char               sig[AM_WEBHOOK_SIGNATURES_LEN], tsbuf[24];

    for (i = 0; i < nheaders; i++) {
        if (!am_webhook_header_valid(headers[2 * i], headers[2 * i + 1])) {
            snprintf(err, errlen, "invalid header");
            return -1;
        }
    }

    /* webhook-id goes out signed or not: receivers de-duplicate with it */
    if (secret != NULL || msg_id != NULL) {
        if (msg_id == NULL || !am_webhook_header_valid("webhook-id", msg_id)
            || *msg_id == '\0') {
            snprintf(err, errlen, "invalid message id");
            return -1;
        }
    }

    if (secret != NULL) {
        if (am_webhook_sign_all(secret, msg_id, ts, body, body_len, sig) != 0) {
            snprintf(err, errlen, "invalid secret");
            return -1;
        }
    }

    for (i = 0; i < nheaders; i++) {
        /* the engine sets these itself (am_header.h) */
        if (am_header_reserved(headers[2 * i], strlen(headers[2 * i]))) {
            continue;
        }

        if (am_webhook_header_add(
                &d->headers, headers[2 * i], headers[2 * i + 1])
            != 0) {
            goto nomem;
        }
    }

    if (am_webhook_header_add(&d->headers, "Content-Type", "application/json")
        != 0) {
        goto nomem;
    }

    /* "Expect:" stops curl from waiting for a 100 Continue on large bodies */
    l = curl_slist_append(d->headers, "Expect:");
    if (l == NULL) {
        goto nomem;
    }
    d->headers = l;

    if (msg_id != NULL) {
        snprintf(tsbuf, sizeof(tsbuf), "%ld", ts);

        if (am_webhook_header_add(&d->headers, "webhook-id", msg_id) != 0
            || am_webhook_header_add(&d->headers, "webhook-timestamp", tsbuf)
                   != 0) {
            goto nomem;
        }
    }

    if (secret != NULL
        && am_webhook_header_add(&d->headers, "webhook-signature", sig) != 0) {
        goto nomem;
    }

    return 0;

nomem:

    snprintf(err, errlen, "out of memory");
    return -1;
}


static int
am_webhook_setup(am_webhook_delivery_t *d, const char *url, const char *body,
    size_t body_len)
{
    am_webhook_engine_t *e;
    CURL                *c;

    e = d->engine;
    c = d->easy;

    /* curl keeps a copy of the body, so the caller's may go at once */
    if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK
        || curl_easy_setopt(
               c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len)
               != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, body ? body : "")
               != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_USERAGENT, e->user_agent) != CURLE_OK) {
        return -1;
    }

    curl_easy_setopt(c, CURLOPT_PRIVATE, d);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, d->headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, e->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, e->connect_timeout_ms);

    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");

    /* a proxy from the environment would connect past the address check */
    curl_easy_setopt(c, CURLOPT_PROXY, "");

    /*
     * A transfer that ends (times out) while its name lookup still runs
     * would otherwise have curl_easy_cleanup() join the resolver thread,
     * blocking the loop until getaddrinfo() returns; this leaves the thread
     * to finish and free its data on its own.
     */
    curl_easy_setopt(c, CURLOPT_QUICK_EXIT, 1L);

    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, am_webhook_open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, d);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, am_webhook_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, am_webhook_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, d);

    return 0;
}


int
am_webhook_post(am_webhook_engine_t *e, const char *url,
    const char *const *headers, size_t nheaders, const char *body,
    size_t body_len, const char *secret, const char *msg_id, long ts,
    am_webhook_cb cb, void *data, char *err, size_t errlen)
{
    am_webhook_delivery_t *d;

    if (e->closing) {
        snprintf(err, errlen, "engine closed");
        return -1;
    }

    if (am_webhook_check_url(url, err, errlen) != 0) {
        return -1;
    }

    d = calloc(1, sizeof(am_webhook_delivery_t));
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    d->engine = e;
    d->cb = cb;
    d->data = data;
    d->res.retry_after_s = -1;
    d->started = uv_hrtime();

    if (am_webhook_build_headers(d, headers, nheaders, body, body_len, secret,
            msg_id, ts, err, errlen)
        != 0) {
        am_webhook_delivery_free(d);
        return -1;
    }

    d->easy = curl_easy_init();

    if (d->easy == NULL || am_webhook_setup(d, url, body, body_len) != 0
        || curl_multi_add_handle(e->multi, d->easy) != CURLM_OK) {
        snprintf(err, errlen, "out of memory");
        am_webhook_delivery_free(d);
        return -1;
    }

    /* the transfer starts from the timer curl has just asked for */

    d->next = e->deliveries;
    if (e->deliveries) {
        e->deliveries->prev = d;
    }
    e->deliveries = d;
    e->inflight++;

    return 0;
}


int
am_webhook_sign(const char *secret, const char *msg_id, long ts,
    const char *body, size_t len, char *out, size_t outlen)
{
    unsigned char key[AM_WEBHOOK_KEY_MAX], mac[32];
    char          b64[AM_WEBHOOK_SECRET_MAX], tsbuf[24], *msg, *p;
    size_t        n, i, idlen, tslen;
    long          keylen;
    int           rc;

    if (secret == NULL || msg_id == NULL || outlen < AM_WEBHOOK_SIGNATURE_LEN) {
        return -1;
    }

    if (strncmp(secret, "whsec_", 6) == 0) {
        secret += 6;
    }

    /* standard base64: mapped onto the base64url alphabet am_crypto decodes */
    n = strlen(secret);
    if (n == 0 || n > sizeof(b64)) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        switch (secret[i]) {
        case '+':
            b64[i] = '-';
            break;
        case '/':
            b64[i] = '_';
            break;
        case '-':
        case '_':
            return -1;
        default:
            b64[i] = secret[i];
        }
    }

    keylen = am_b64url_decode(b64, n, key);
    if (keylen <= 0) {
        return -1;
    }

    idlen = strlen(msg_id);
    tslen = (size_t) snprintf(tsbuf, sizeof(tsbuf), "%ld", ts);

    msg = malloc(idlen + tslen + len + 2);
    if (msg == NULL) {
        OPENSSL_cleanse(key, sizeof(key));
        return -1;
    }

    p = msg;
    memcpy(p, msg_id, idlen);
    p += idlen;
    *p++ = '.';
    memcpy(p, tsbuf, tslen);
    p += tslen;
    *p++ = '.';
    if (len > 0) {
        memcpy(p, body, len);
        p += len;
    }

    rc = am_hmac_sha256(key, (size_t) keylen, msg, (size_t) (p - msg), mac);

    OPENSSL_cleanse(key, sizeof(key));
    free(msg);

    if (rc != 0) {
        return -1;
    }

    memcpy(out, "v1,", 3);
    am_b64_encode(mac, sizeof(mac), out + 3);

    return 0;
}


size_t
am_webhook_inflight(const am_webhook_engine_t *e)
{
    return e->inflight;
}


am_webhook_engine_t *
am_webhook_engine_new(uv_loop_t *loop, const am_webhook_config_t *cfg)
{
    static int           curl_ready;
    am_webhook_engine_t *e;
    const char          *ua;

    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return NULL;
        }
        curl_ready = 1;
    }

    /* without a resolver thread or c-ares, lookups would block the loop */
    if (!(curl_version_info(CURLVERSION_NOW)->features
            & CURL_VERSION_ASYNCHDNS)) {
        return NULL;
    }

    e = calloc(1, sizeof(am_webhook_engine_t));
    if (e == NULL) {
        return NULL;
    }

    e->loop = loop;
    e->timeout_ms = (cfg && cfg->timeout_ms > 0) ? cfg->timeout_ms : 10000;
    e->connect_timeout_ms =
        (cfg && cfg->connect_timeout_ms > 0) ? cfg->connect_timeout_ms : 5000;
    e->allow_private = cfg ? cfg->allow_private : 0;

    ua = (cfg && cfg->user_agent) ? cfg->user_agent : "automations-worker/1";

    e->user_agent = strdup(ua);
    e->multi = curl_multi_init();

    if (e->user_agent == NULL || e->multi == NULL) {
        if (e->multi) {
            curl_multi_cleanup(e->multi);
        }
        free(e->user_agent);
        free(e);
        return NULL;
    }

    uv_timer_init(loop, &e->timer);
    e->timer.data = e;
    e->handles = 1;

    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, am_webhook_on_socket);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, am_webhook_on_timeout);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);

    return e;
}


void
am_webhook_engine_free(am_webhook_engine_t *e)
{
    am_webhook_delivery_t *d;

    if (e->closing) {
        return;
    }

    e->closing = 1;

    while ((d = e->deliveries) != NULL) {
        am_webhook_unlink(d);
        curl_multi_remove_handle(e->multi, d->easy);

        snprintf(d->res.error, sizeof(d->res.error), "cancelled");
        d->cb(d->data, &d->res);
        am_webhook_delivery_free(d);
    }

    /* closes the connections curl keeps for reuse, telling us of each */
    curl_multi_cleanup(e->multi);
    e->multi = NULL;

    while (e->sockets != NULL) {
        am_webhook_socket_close(e->sockets);
    }

    uv_close((uv_handle_t *) &e->timer, am_webhook_handle_closed);
}
