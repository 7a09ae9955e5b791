/*
 * Unit tests of src/worker/webhook.c, printed as TAP. A small HTTP server
 * on 127.0.0.1 runs in the same libuv loop as the engine, answering each
 * case the way it sets in am_srv.mode, and keeps what it received.
 */

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <curl/curl.h>
#include <uv.h>

#include "am_crypto.h"
#include "worker/webhook.h"

#include "tap.h"

/* the example of the Standard Webhooks specification */
#define AM_TEST_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define AM_TEST_MSG_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define AM_TEST_TS 1614265330L
#define AM_TEST_BODY "{\"test\": 2432232314}"
#define AM_TEST_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

#define AM_TEST_WAIT_MS 5000
#define AM_TEST_MANY 20


typedef enum {
    AM_SRV_OK = 0,
    AM_SRV_ERROR,    /* 500 */
    AM_SRV_GONE,     /* 410 */
    AM_SRV_BUSY,     /* 503 with Retry-After: 7 */
    AM_SRV_LIMITED,  /* 429 with Retry-After as an HTTP-date 30 s ahead */
    AM_SRV_REDIRECT, /* 302 to another path on the same server */
    AM_SRV_SLOW,     /* never answers */
    AM_SRV_CLOSE,    /* closes without answering */
    AM_SRV_BIG,      /* 200 with a 3 MiB body */
    AM_SRV_STALL     /* 200 and its headers, then nothing, left open */
} am_srv_mode_t;

typedef struct {
    uv_tcp_t tcp;
    char     buf[65536];
    size_t   len;
    int      answered;
} am_srv_conn_t;

typedef struct {
    uv_write_t     req;
    char          *data;
    am_srv_conn_t *conn;
} am_srv_write_t;

/* the test server: how it answers, and what it saw */
static struct {
    uv_tcp_t      tcp;
    int           port;
    am_srv_mode_t mode;
    int           connections;
    int           requests;
    char          head[8192]; /* request line and headers, NUL-terminated */
    char          body[8192];
    size_t        body_len;
} am_srv;

typedef struct {
    int                 called;
    am_webhook_result_t res;
} am_test_got_t;

static uv_loop_t  am_test_loop;
static uv_timer_t am_test_watchdog;
static int        am_test_expired;
static char       am_test_url[128];


static void
am_srv_closed(uv_handle_t *handle)
{
    free(handle->data);
}


static void
am_srv_close(am_srv_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *) &c->tcp)) {
        uv_close((uv_handle_t *) &c->tcp, am_srv_closed);
    }
}


static void
am_srv_written(uv_write_t *req, int status)
{
    am_srv_write_t *w;

    (void) status;

    w = req->data;
    am_srv_close(w->conn);
    free(w->data);
    free(w);
}


static void
am_srv_send(am_srv_conn_t *c, char *data, size_t len)
{
    am_srv_write_t *w;
    uv_buf_t        buf;

    w = calloc(1, sizeof(am_srv_write_t));
    if (w == NULL) {
        am_test_bail("out of memory");
    }

    w->req.data = w;
    w->data = data;
    w->conn = c;

    buf = uv_buf_init(data, (unsigned) len);

    if (uv_write(&w->req, (uv_stream_t *) &c->tcp, &buf, 1, am_srv_written)
        != 0) {
        am_test_bail("uv_write");
    }
}


/* A status line and headers, Connection: close, then body. */
static void
am_srv_answer(am_srv_conn_t *c, const char *status, const char *extra,
    const char *body, size_t body_len)
{
    char  *data;
    size_t cap;
    int    n;

    cap = 512 + body_len;
    data = malloc(cap);
    if (data == NULL) {
        am_test_bail("out of memory");
    }

    n = snprintf(data, cap,
        "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
        status, extra, body_len);
    memcpy(data + n, body, body_len);

    am_srv_send(c, data, (size_t) n + body_len);
}


static void
am_srv_respond(am_srv_conn_t *c)
{
    static char stall[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nok";

    char     extra[256], date[64];
    char    *big;
    size_t   big_len;
    time_t   t;
    uv_buf_t buf;

    switch (am_srv.mode) {

    case AM_SRV_OK:
        am_srv_answer(c, "200 OK", "", "ok", 2);
        break;

    case AM_SRV_ERROR:
        am_srv_answer(c, "500 Internal Server Error", "", "oops", 4);
        break;

    case AM_SRV_GONE:
        am_srv_answer(c, "410 Gone", "", "", 0);
        break;

    case AM_SRV_BUSY:
        am_srv_answer(
            c, "503 Service Unavailable", "Retry-After: 7\r\n", "", 0);
        break;

    case AM_SRV_LIMITED:
        t = time(NULL) + 30;
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime(&t));
        snprintf(extra, sizeof(extra), "Retry-After: %s\r\n", date);
        am_srv_answer(c, "429 Too Many Requests", extra, "", 0);
        break;

    case AM_SRV_REDIRECT:
        snprintf(extra, sizeof(extra),
            "Location: http://127.0.0.1:%d/elsewhere\r\n", am_srv.port);
        am_srv_answer(c, "302 Found", extra, "", 0);
        break;

    case AM_SRV_SLOW:
        break;

    case AM_SRV_CLOSE:
        am_srv_close(c);
        break;

    case AM_SRV_BIG:
        big_len = 3 * 1024 * 1024;
        big = malloc(big_len);
        if (big == NULL) {
            am_test_bail("out of memory");
        }
        memset(big, 'x', big_len);
        am_srv_answer(c, "200 OK", "", big, big_len);
        free(big);
        break;

    case AM_SRV_STALL:
        buf = uv_buf_init(stall, sizeof(stall) - 1);
        if (uv_try_write((uv_stream_t *) &c->tcp, &buf, 1)
            != (int) sizeof(stall) - 1) {
            am_test_bail("uv_try_write");
        }
        break;
    }
}


/* The end of the request's headers, or NULL when not all read yet. */
static const char *
am_srv_head_end(const char *p, size_t len)
{
    size_t i;

    for (i = 0; i + 4 <= len; i++) {
        if (memcmp(p + i, "\r\n\r\n", 4) == 0) {
            return p + i + 4;
        }
    }

    return NULL;
}


/* The value of header name in the last request, or NULL. */
static const char *
am_srv_header(const char *name)
{
    static char value[1024];
    const char *p, *end;
    size_t      n;

    n = strlen(name);

    for (p = strstr(am_srv.head, "\r\n"); p != NULL;
         p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) != 0 || p[2 + n] != ':') {
            continue;
        }

        p += 2 + n + 1;
        while (*p == ' ') {
            p++;
        }

        end = strstr(p, "\r\n");
        n = end ? (size_t) (end - p) : strlen(p);
        if (n >= sizeof(value)) {
            return NULL;
        }

        memcpy(value, p, n);
        value[n] = '\0';
        return value;
    }

    return NULL;
}


/* Keeps the first complete request of a connection and answers it. */
static void
am_srv_request(am_srv_conn_t *c)
{
    const char *end, *cl;
    size_t      head_len, body_len;

    end = am_srv_head_end(c->buf, c->len);
    if (end == NULL) {
        return;
    }

    head_len = (size_t) (end - c->buf);
    if (head_len >= sizeof(am_srv.head)) {
        am_test_bail("request head too long");
    }

    memcpy(am_srv.head, c->buf, head_len);
    am_srv.head[head_len] = '\0';

    cl = am_srv_header("Content-Length");
    body_len = cl ? strtoul(cl, NULL, 10) : 0;

    if (c->len < head_len + body_len) {
        return;
    }

    if (body_len >= sizeof(am_srv.body)) {
        am_test_bail("request body too long");
    }

    memcpy(am_srv.body, end, body_len);
    am_srv.body[body_len] = '\0';
    am_srv.body_len = body_len;
    am_srv.requests++;
    uv_stop(&am_test_loop);

    c->answered = 1;
    am_srv_respond(c);
}


static void
am_srv_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    static char    scratch[4096];
    am_srv_conn_t *c;

    (void) suggested;

    c = handle->data;

    if (c->len == sizeof(c->buf)) {
        *buf = uv_buf_init(scratch, sizeof(scratch));
    } else {
        *buf =
            uv_buf_init(c->buf + c->len, (unsigned) (sizeof(c->buf) - c->len));
    }
}


static void
am_srv_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    am_srv_conn_t *c;

    c = stream->data;

    if (nread < 0) {
        am_srv_close(c);
        return;
    }

    if (buf->base == c->buf + c->len) {
        c->len += (size_t) nread;
    }

    if (!c->answered) {
        am_srv_request(c);
    }
}


static void
am_srv_accept(uv_stream_t *server, int status)
{
    am_srv_conn_t *c;

    if (status != 0) {
        return;
    }

    c = calloc(1, sizeof(am_srv_conn_t));
    if (c == NULL) {
        am_test_bail("out of memory");
    }

    uv_tcp_init(&am_test_loop, &c->tcp);
    c->tcp.data = c;

    if (uv_accept(server, (uv_stream_t *) &c->tcp) != 0) {
        am_srv_close(c);
        return;
    }

    am_srv.connections++;
    uv_read_start((uv_stream_t *) &c->tcp, am_srv_alloc, am_srv_read);
}


static void
am_srv_start(void)
{
    struct sockaddr_in sin;
    int                len;

    uv_ip4_addr("127.0.0.1", 0, &sin);

    if (uv_tcp_init(&am_test_loop, &am_srv.tcp) != 0
        || uv_tcp_bind(&am_srv.tcp, (struct sockaddr *) &sin, 0) != 0
        || uv_listen((uv_stream_t *) &am_srv.tcp, 128, am_srv_accept) != 0) {
        am_test_bail("cannot listen on 127.0.0.1");
    }

    len = sizeof(sin);
    uv_tcp_getsockname(&am_srv.tcp, (struct sockaddr *) &sin, &len);
    am_srv.port = ntohs(sin.sin_port);

    snprintf(am_test_url, sizeof(am_test_url), "http://127.0.0.1:%d/hook",
        am_srv.port);
}


/* A port on 127.0.0.1 nothing listens on. */
static int
am_test_closed_port(void)
{
    struct sockaddr_in sin;
    socklen_t          len;
    int                fd, port;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(sin);

    if (fd < 0 || bind(fd, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || getsockname(fd, (struct sockaddr *) &sin, &len) != 0) {
        am_test_bail("cannot find a free port");
    }

    port = ntohs(sin.sin_port);
    close(fd);

    return port;
}


static void
am_test_expire(uv_timer_t *timer)
{
    (void) timer;
    am_test_expired = 1;
    uv_stop(&am_test_loop);
}


/*
 * Runs the loop until *n reaches target or ms pass; 1 when reached. The
 * callbacks that change either call uv_stop(): UV_RUN_ONCE runs timers
 * before it polls, and would otherwise block in the poll after them.
 */
static int
am_test_wait(const int *n, int target, uint64_t ms)
{
    am_test_expired = 0;
    uv_timer_start(&am_test_watchdog, am_test_expire, ms, 0);

    while (*n < target && !am_test_expired) {
        uv_run(&am_test_loop, UV_RUN_ONCE);
    }

    uv_timer_stop(&am_test_watchdog);

    return *n >= target;
}


/* Lets the loop run for ms. */
static void
am_test_spin(uint64_t ms)
{
    int never = 0;

    am_test_wait(&never, 1, ms);
}


static void
am_test_record(void *data, const am_webhook_result_t *res)
{
    am_test_got_t *got;

    got = data;
    got->called++;
    got->res = *res;

    /* am_test_wait() checks at once, not after the loop's next wakeup */
    uv_stop(&am_test_loop);
}


/*
 * One delivery of body to url, the server answering with mode; got holds
 * the outcome. Also checks the callback did not run inside the call.
 */
static void
am_test_post(am_webhook_engine_t *e, const char *url, am_srv_mode_t mode,
    const char *const *headers, size_t nheaders, const char *secret,
    am_test_got_t *got, const char *name)
{
    char err[256];
    int  rc;

    am_srv.mode = mode;
    memset(got, 0, sizeof(*got));

    rc = am_webhook_post(e, url, headers, nheaders, AM_TEST_BODY,
        strlen(AM_TEST_BODY), secret, AM_TEST_MSG_ID, AM_TEST_TS,
        am_test_record, got, err, sizeof(err));

    if (rc != 0) {
        printf("# am_webhook_post: %s\n", err);
    }

    am_test_ok(
        rc == 0 && got->called == 0, "%s: started, callback deferred", name);

    am_test_ok(am_test_wait(&got->called, 1, AM_TEST_WAIT_MS),
        "%s: callback called", name);

    if (got->res.error[0] != '\0') {
        printf("# %s: error \"%s\", HTTP %ld\n", name, got->res.error,
            got->res.http_status);
    }
}


static void
am_test_sign(void)
{
    unsigned char key[64], mac[EVP_MAX_MD_SIZE];
    unsigned int  maclen;
    const char   *b64;
    char          expected[128], msg[256], out[AM_WEBHOOK_SIGNATURE_LEN];
    int           keylen, n;

    /* independently of the engine, with OpenSSL's own base64 and HMAC */
    b64 = AM_TEST_SECRET + 6;
    keylen =
        EVP_DecodeBlock(key, (const unsigned char *) b64, (int) strlen(b64));
    n = snprintf(msg, sizeof(msg), "%s.%ld.%s", AM_TEST_MSG_ID, AM_TEST_TS,
        AM_TEST_BODY);
    HMAC(EVP_sha256(), key, keylen, (unsigned char *) msg, (size_t) n, mac,
        &maclen);
    memcpy(expected, "v1,", 3);
    EVP_EncodeBlock((unsigned char *) expected + 3, mac, (int) maclen);

    am_test_ok(strcmp(expected, AM_TEST_SIG) == 0,
        "sign: OpenSSL reproduces the Standard Webhooks example");

    am_test_ok(am_webhook_sign(AM_TEST_SECRET, AM_TEST_MSG_ID, AM_TEST_TS,
                   AM_TEST_BODY, strlen(AM_TEST_BODY), out, sizeof(out))
                       == 0
                   && strcmp(out, AM_TEST_SIG) == 0,
        "sign: the Standard Webhooks example");

    am_test_ok(am_webhook_sign(AM_TEST_SECRET + 6, AM_TEST_MSG_ID, AM_TEST_TS,
                   AM_TEST_BODY, strlen(AM_TEST_BODY), out, sizeof(out))
                       == 0
                   && strcmp(out, AM_TEST_SIG) == 0,
        "sign: the secret without its whsec_ prefix");

    am_test_ok(am_webhook_sign(AM_TEST_SECRET, AM_TEST_MSG_ID, AM_TEST_TS + 1,
                   AM_TEST_BODY, strlen(AM_TEST_BODY), out, sizeof(out))
                       == 0
                   && strcmp(out, AM_TEST_SIG) != 0,
        "sign: another timestamp, another signature");

    am_test_ok(am_webhook_sign("whsec_not*base64", AM_TEST_MSG_ID, AM_TEST_TS,
                   AM_TEST_BODY, strlen(AM_TEST_BODY), out, sizeof(out))
                   == -1,
        "sign: a secret that is not base64 is refused");

    am_test_ok(am_webhook_sign("whsec_", AM_TEST_MSG_ID, AM_TEST_TS,
                   AM_TEST_BODY, strlen(AM_TEST_BODY), out, sizeof(out))
                   == -1,
        "sign: an empty secret is refused");

    am_test_ok(am_webhook_sign(AM_TEST_SECRET, AM_TEST_MSG_ID, AM_TEST_TS,
                   AM_TEST_BODY, strlen(AM_TEST_BODY), out, 10)
                   == -1,
        "sign: a short output buffer is refused");
}


static void
am_test_addresses(void)
{
    static const struct {
        const char *addr;
        const char *why;
    } cases[] = {
        {"127.0.0.1", "loopback"},
        {"127.255.0.9", "loopback"},
        {"10.1.2.3", "private"},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"172.32.0.1", NULL},
        {"192.168.1.1", "private"},
        {"169.254.169.254", "link-local"},
        {"100.64.0.1", "shared"},
        {"100.127.255.255", "shared"},
        {"100.128.0.1", NULL},
        {"0.0.0.0", "unspecified"},
        {"224.0.0.1", "multicast"},
        {"255.255.255.255", "reserved"},
        {"8.8.8.8", NULL},
        {"93.184.216.34", NULL},
        {"::", "unspecified"},
        {"::1", "loopback"},
        {"fc00::1", "private"},
        {"fd12:3456::1", "private"},
        {"fe80::1", "link-local"},
        {"ff02::1", "multicast"},
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:169.254.169.254", "link-local"},
        {"::ffff:8.8.8.8", NULL},
        {"64:ff9b::10.0.0.1", "private"},
        {"2001:4860:4860::8888", NULL},
    };

    struct sockaddr_in  sin;
    struct sockaddr_in6 sin6;
    struct sockaddr    *sa;
    const char         *why;
    size_t              i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&sin, 0, sizeof(sin));
        memset(&sin6, 0, sizeof(sin6));

        if (inet_pton(AF_INET, cases[i].addr, &sin.sin_addr) == 1) {
            sin.sin_family = AF_INET;
            sa = (struct sockaddr *) &sin;
        } else if (inet_pton(AF_INET6, cases[i].addr, &sin6.sin6_addr) == 1) {
            sin6.sin6_family = AF_INET6;
            sa = (struct sockaddr *) &sin6;
        } else {
            am_test_bail(cases[i].addr);
        }

        why = am_webhook_address_refused(sa);

        am_test_ok(cases[i].why ? (why && strcmp(why, cases[i].why) == 0)
                                : why == NULL,
            "address %s: %s", cases[i].addr,
            cases[i].why ? cases[i].why : "allowed");
    }
}


static void
am_test_invalid(am_webhook_engine_t *e)
{
    static const char *const crlf_value[] = {"X-Evil", "a\r\nInjected: 1"};
    static const char *const colon_name[] = {"X-Bad:Name", "1"};
    static const char *const space_name[] = {"X Bad", "1"};

    am_test_got_t got;
    char          err[256];
    int           connections;

    memset(&got, 0, sizeof(got));
    connections = am_srv.connections;

    err[0] = '\0';
    am_test_ok(am_webhook_post(e, "ftp://127.0.0.1/x", NULL, 0, "{}", 2, NULL,
                   NULL, 0, am_test_record, &got, err, sizeof(err))
                       == -1
                   && strcmp(err, "unsupported URL scheme") == 0,
        "invalid: ftp:// is refused (%s)", err);

    err[0] = '\0';
    am_test_ok(am_webhook_post(e, "gopher://127.0.0.1/x", NULL, 0, "{}", 2,
                   NULL, NULL, 0, am_test_record, &got, err, sizeof(err))
                   == -1,
        "invalid: gopher:// is refused (%s)", err);

    err[0] = '\0';
    am_test_ok(am_webhook_post(e, "not a url", NULL, 0, "{}", 2, NULL, NULL, 0,
                   am_test_record, &got, err, sizeof(err))
                   == -1,
        "invalid: a URL without a scheme is refused (%s)", err);

    err[0] = '\0';
    am_test_ok(am_webhook_post(e, am_test_url, crlf_value, 1, "{}", 2, NULL,
                   NULL, 0, am_test_record, &got, err, sizeof(err))
                       == -1
                   && strcmp(err, "invalid header") == 0,
        "invalid: a header value with CRLF is refused");

    am_test_ok(am_webhook_post(e, am_test_url, colon_name, 1, "{}", 2, NULL,
                   NULL, 0, am_test_record, &got, err, sizeof(err))
                   == -1,
        "invalid: a header name with ':' is refused");

    am_test_ok(am_webhook_post(e, am_test_url, space_name, 1, "{}", 2, NULL,
                   NULL, 0, am_test_record, &got, err, sizeof(err))
                   == -1,
        "invalid: a header name with a space is refused");

    err[0] = '\0';
    am_test_ok(
        am_webhook_post(e, am_test_url, NULL, 0, "{}", 2, "whsec_not*base64",
            "msg_1", 1, am_test_record, &got, err, sizeof(err))
                == -1
            && strcmp(err, "invalid secret") == 0,
        "invalid: a bad secret is refused");

    am_test_spin(50);

    am_test_ok(got.called == 0 && am_webhook_inflight(e) == 0
                   && am_srv.connections == connections,
        "invalid: no callback, nothing in flight, no connection");
}


static void
am_test_delivered(am_webhook_engine_t *e)
{
    static const char *const headers[] = {"Authorization", "Bearer abc",
        "X-Trace", "t-1", "Content-Type", "text/plain", "X-Empty", ""};

    am_test_got_t got;
    unsigned char mac[32];
    const char   *v;
    char          expected[AM_WEBHOOK_SIGNATURE_LEN], msg[512];
    long          keylen;
    unsigned char key[64];
    int           n;

    am_test_post(
        e, am_test_url, AM_SRV_OK, headers, 4, AM_TEST_SECRET, &got, "200");

    am_test_ok(got.res.delivered && got.res.http_status == 200
                   && got.res.error[0] == '\0' && !got.res.gone
                   && got.res.retry_after_s == -1,
        "200: delivered");

    am_test_ok(strncmp(am_srv.head, "POST /hook HTTP/1.1\r\n", 21) == 0,
        "200: a POST to the URL's path");

    am_test_ok(am_srv.body_len == strlen(AM_TEST_BODY)
                   && strcmp(am_srv.body, AM_TEST_BODY) == 0,
        "200: the body arrives as given");

    v = am_srv_header("Content-Type");
    am_test_ok(v && strcmp(v, "application/json") == 0
                   && strstr(am_srv.head, "text/plain") == NULL,
        "200: Content-Type is application/json, the caller's is dropped");

    v = am_srv_header("Authorization");
    am_test_ok(v && strcmp(v, "Bearer abc") == 0,
        "200: custom header Authorization arrives");

    v = am_srv_header("X-Trace");
    am_test_ok(
        v && strcmp(v, "t-1") == 0, "200: custom header X-Trace arrives");

    v = am_srv_header("X-Empty");
    am_test_ok(v && *v == '\0', "200: an empty custom header arrives empty");

    v = am_srv_header("User-Agent");
    am_test_ok(v && strcmp(v, "automations-worker/1") == 0,
        "200: the default User-Agent");

    am_test_ok(am_srv_header("Expect") == NULL, "200: no Expect header");

    v = am_srv_header("webhook-id");
    am_test_ok(v && strcmp(v, AM_TEST_MSG_ID) == 0, "200: webhook-id as given");

    v = am_srv_header("webhook-timestamp");
    am_test_ok(v && strtol(v, NULL, 10) == AM_TEST_TS,
        "200: webhook-timestamp as given");

    /* recompute from what arrived, with the key decoded here */
    keylen = am_b64url_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 32, key);
    n = snprintf(
        msg, sizeof(msg), "%s.%ld.%s", AM_TEST_MSG_ID, AM_TEST_TS, am_srv.body);
    am_hmac_sha256(key, (size_t) keylen, msg, (size_t) n, mac);
    memcpy(expected, "v1,", 3);
    am_b64_encode(mac, sizeof(mac), expected + 3);

    v = am_srv_header("webhook-signature");
    am_test_ok(v && strcmp(v, expected) == 0 && strcmp(v, AM_TEST_SIG) == 0,
        "200: webhook-signature verifies (%s)", v ? v : "none");

    am_test_ok(am_webhook_inflight(e) == 0, "200: nothing left in flight");

    am_test_post(e, am_test_url, AM_SRV_OK, NULL, 0, NULL, &got, "unsigned");

    am_test_ok(got.res.delivered && am_srv_header("webhook-id") != NULL
                   && strcmp(am_srv_header("webhook-id"), AM_TEST_MSG_ID) == 0
                   && am_srv_header("webhook-signature") == NULL,
        "unsigned: delivered with webhook-id, without a signature");
}


/*
 * During a rotation's overlap the engine gets two secrets, the new one
 * first: one signature each, in that order (Standard Webhooks' list).
 */
static void
am_test_rotation(am_webhook_engine_t *e)
{
    /* 25 bytes: base64 with its padding, as an imported secret may be */
    static const char *new_secret =
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGA==";

    am_test_got_t got;
    const char   *v;
    char          sig[AM_WEBHOOK_SIGNATURE_LEN], both[256], err[256];

    am_test_ok(am_webhook_sign(new_secret, AM_TEST_MSG_ID, AM_TEST_TS,
                   AM_TEST_BODY, strlen(AM_TEST_BODY), sig, sizeof(sig))
                   == 0,
        "rotation: a padded secret signs");

    snprintf(both, sizeof(both), "%s %s", new_secret, AM_TEST_SECRET);
    am_test_post(e, am_test_url, AM_SRV_OK, NULL, 0, both, &got, "rotation");

    snprintf(both, sizeof(both), "%s %s", sig, AM_TEST_SIG);
    v = am_srv_header("webhook-signature");
    am_test_ok(got.res.delivered && v && strcmp(v, both) == 0,
        "rotation: v1,<new> v1,<old> (%s)", v ? v : "none");

    snprintf(both, sizeof(both), "%s %s %s", new_secret, AM_TEST_SECRET,
        AM_TEST_SECRET);
    am_test_ok(am_webhook_post(e, am_test_url, NULL, 0, "{}", 2, both, "msg_1",
                   1, am_test_record, &got, err, sizeof(err))
                       == -1
                   && strcmp(err, "invalid secret") == 0,
        "rotation: three secrets are refused");

    snprintf(both, sizeof(both), "%s  %s", new_secret, AM_TEST_SECRET);
    am_test_ok(am_webhook_post(e, am_test_url, NULL, 0, "{}", 2, both, "msg_1",
                   1, am_test_record, &got, err, sizeof(err))
                   == -1,
        "rotation: an empty secret between two spaces is refused");
}


static void
am_test_failures(am_webhook_engine_t *e, am_webhook_engine_t *fast)
{
    am_test_got_t got;
    char          url[128];
    int           requests;

    am_test_post(e, am_test_url, AM_SRV_ERROR, NULL, 0, NULL, &got, "500");
    am_test_ok(!got.res.delivered && !got.res.gone && got.res.http_status == 500
                   && strcmp(got.res.error, "HTTP 500") == 0,
        "500: not delivered, HTTP 500");

    am_test_post(e, am_test_url, AM_SRV_GONE, NULL, 0, NULL, &got, "410");
    am_test_ok(!got.res.delivered && got.res.gone && got.res.http_status == 410,
        "410: gone");

    am_test_post(e, am_test_url, AM_SRV_BUSY, NULL, 0, NULL, &got, "503");
    am_test_ok(!got.res.delivered && got.res.http_status == 503
                   && got.res.retry_after_s == 7,
        "503: Retry-After: 7 read as %ld", got.res.retry_after_s);

    am_test_post(e, am_test_url, AM_SRV_LIMITED, NULL, 0, NULL, &got, "429");
    am_test_ok(!got.res.delivered && got.res.http_status == 429
                   && got.res.retry_after_s >= 27
                   && got.res.retry_after_s <= 31,
        "429: Retry-After as an HTTP-date read as %ld s",
        got.res.retry_after_s);

    requests = am_srv.requests;
    am_test_post(e, am_test_url, AM_SRV_REDIRECT, NULL, 0, NULL, &got, "302");
    am_test_spin(100);
    am_test_ok(!got.res.delivered && got.res.http_status == 302
                   && strcmp(got.res.error, "HTTP 302") == 0
                   && am_srv.requests == requests + 1,
        "302: not followed, HTTP 302");

    am_test_post(fast, am_test_url, AM_SRV_SLOW, NULL, 0, NULL, &got, "slow");
    am_test_ok(!got.res.delivered && got.res.http_status == 0
                   && strcmp(got.res.error, "timed out") == 0,
        "slow: timed out");

    am_test_post(e, am_test_url, AM_SRV_CLOSE, NULL, 0, NULL, &got, "close");
    am_test_ok(!got.res.delivered && got.res.http_status == 0
                   && got.res.error[0] != '\0',
        "close: closed without an answer is an error (%s)", got.res.error);

    am_test_post(e, am_test_url, AM_SRV_BIG, NULL, 0, NULL, &got, "big");
    am_test_ok(got.res.delivered && got.res.http_status == 200,
        "big: a 3 MiB answer is not read to the end, still delivered");

    am_test_post(fast, am_test_url, AM_SRV_STALL, NULL, 0, NULL, &got, "stall");
    am_test_ok(got.res.delivered && got.res.http_status == 200
                   && got.res.duration_ms < 300,
        "stall: a 200 whose body never comes is delivered at its headers, "
        "in %ld ms",
        got.res.duration_ms);

    snprintf(
        url, sizeof(url), "http://127.0.0.1:%d/hook", am_test_closed_port());
    am_test_post(e, url, AM_SRV_OK, NULL, 0, NULL, &got, "refused");
    am_test_ok(!got.res.delivered && got.res.http_status == 0
                   && strcmp(got.res.error, "connection refused") == 0,
        "refused: a closed port is connection refused");
}


static void
am_test_private(am_webhook_engine_t *strict)
{
    am_test_got_t got;
    char          url[128];
    int           connections;

    connections = am_srv.connections;

    am_test_post(
        strict, am_test_url, AM_SRV_OK, NULL, 0, NULL, &got, "private");
    am_test_spin(50);
    am_test_ok(!got.res.delivered && got.res.refused
                   && strcmp(got.res.error, "address refused: loopback") == 0
                   && am_srv.connections == connections,
        "private: 127.0.0.1 refused without connecting, the address unsaid");

    snprintf(
        url, sizeof(url), "http://[::ffff:127.0.0.1]:%d/hook", am_srv.port);
    am_test_post(strict, url, AM_SRV_OK, NULL, 0, NULL, &got, "mapped");
    am_test_ok(!got.res.delivered && got.res.refused
                   && strcmp(got.res.error, "address refused: loopback") == 0,
        "mapped: ::ffff:127.0.0.1 refused");

    am_test_post(strict, "http://169.254.169.254/latest/meta-data/", AM_SRV_OK,
        NULL, 0, NULL, &got, "metadata");
    am_test_ok(!got.res.delivered && got.res.refused
                   && strcmp(got.res.error, "address refused: link-local") == 0,
        "metadata: 169.254.169.254 refused");

    /* a name: the check applies to what it resolves to */
    snprintf(url, sizeof(url), "http://localhost:%d/hook", am_srv.port);
    am_test_post(strict, url, AM_SRV_OK, NULL, 0, NULL, &got, "localhost");
    am_test_spin(50);
    am_test_ok(!got.res.delivered && got.res.refused
                   && strcmp(got.res.error, "address refused: loopback") == 0
                   && am_srv.connections == connections,
        "localhost: its resolved address is refused");
}


static void
am_test_concurrent(am_webhook_engine_t *e)
{
    am_test_got_t got[AM_TEST_MANY];
    char          err[256];
    int           i, done, delivered, requests, started;

    am_srv.mode = AM_SRV_OK;
    requests = am_srv.requests;
    memset(got, 0, sizeof(got));
    started = 0;

    for (i = 0; i < AM_TEST_MANY; i++) {
        started += am_webhook_post(e, am_test_url, NULL, 0, AM_TEST_BODY,
                       strlen(AM_TEST_BODY), AM_TEST_SECRET, AM_TEST_MSG_ID,
                       AM_TEST_TS, am_test_record, &got[i], err, sizeof(err))
                   == 0;
    }

    am_test_ok(
        started == AM_TEST_MANY && am_webhook_inflight(e) == AM_TEST_MANY,
        "concurrent: %d in flight", AM_TEST_MANY);

    done = 0;
    am_test_expired = 0;
    uv_timer_start(&am_test_watchdog, am_test_expire, AM_TEST_WAIT_MS, 0);

    while (done < AM_TEST_MANY && !am_test_expired) {
        uv_run(&am_test_loop, UV_RUN_ONCE);

        for (done = 0, i = 0; i < AM_TEST_MANY; i++) {
            done += got[i].called;
        }
    }

    uv_timer_stop(&am_test_watchdog);

    for (delivered = 0, i = 0; i < AM_TEST_MANY; i++) {
        delivered += got[i].called == 1 && got[i].res.delivered;
    }

    am_test_ok(delivered == AM_TEST_MANY
                   && am_srv.requests == requests + AM_TEST_MANY
                   && am_webhook_inflight(e) == 0,
        "concurrent: all %d delivered once each", AM_TEST_MANY);
}


static am_webhook_engine_t *am_test_chain_engine;
static am_test_got_t        am_test_chain_second;

/* A callback that starts another delivery. */
static void
am_test_chain(void *data, const am_webhook_result_t *res)
{
    char err[256];

    am_test_record(data, res);

    if (am_webhook_post(am_test_chain_engine, am_test_url, NULL, 0, "{}", 2,
            NULL, NULL, 0, am_test_record, &am_test_chain_second, err,
            sizeof(err))
        != 0) {
        am_test_bail(err);
    }
}


static void
am_test_reentrant(am_webhook_engine_t *e)
{
    am_test_got_t got;
    char          err[256];

    am_srv.mode = AM_SRV_OK;
    memset(&got, 0, sizeof(got));
    memset(&am_test_chain_second, 0, sizeof(am_test_chain_second));
    am_test_chain_engine = e;

    am_webhook_post(e, am_test_url, NULL, 0, "{}", 2, NULL, NULL, 0,
        am_test_chain, &got, err, sizeof(err));

    am_test_ok(am_test_wait(&am_test_chain_second.called, 1, AM_TEST_WAIT_MS)
                   && got.res.delivered && am_test_chain_second.res.delivered,
        "reentrant: a delivery started from a callback is delivered");
}


/* Frees an engine with a delivery in flight, after the server has it. */
static void
am_test_cancel(am_webhook_engine_t *e)
{
    am_test_got_t got;
    char          err[256];
    int           requests;

    am_srv.mode = AM_SRV_SLOW;
    requests = am_srv.requests;
    memset(&got, 0, sizeof(got));

    am_webhook_post(e, am_test_url, NULL, 0, "{}", 2, NULL, NULL, 0,
        am_test_record, &got, err, sizeof(err));

    am_test_wait(&am_srv.requests, requests + 1, AM_TEST_WAIT_MS);

    am_webhook_engine_free(e);

    am_test_ok(got.called == 1 && strcmp(got.res.error, "cancelled") == 0
                   && !got.res.delivered,
        "cancel: freeing the engine cancels what is in flight");

    am_test_spin(50);

    am_test_ok(got.called == 1, "cancel: the callback ran once");
}


static am_webhook_engine_t *am_test_doomed;

/* A callback that frees the engine it was called from. */
static void
am_test_free_engine(void *data, const am_webhook_result_t *res)
{
    am_test_record(data, res);
    am_webhook_engine_free(am_test_doomed);
}


/*
 * Frees an engine from one delivery's callback while another is still in
 * flight (its server never answers, its connection times out later).
 */
static void
am_test_free_in_callback(void)
{
    am_webhook_config_t cfg;
    am_test_got_t       first, second;
    char                url[128], err[256];

    memset(&cfg, 0, sizeof(cfg));
    cfg.allow_private = 1;
    cfg.connect_timeout_ms = 2000;

    am_test_doomed = am_webhook_engine_new(&am_test_loop, &cfg);
    if (am_test_doomed == NULL) {
        am_test_bail("am_webhook_engine_new");
    }

    memset(&first, 0, sizeof(first));
    memset(&second, 0, sizeof(second));
    am_srv.mode = AM_SRV_SLOW;

    am_webhook_post(am_test_doomed, am_test_url, NULL, 0, "{}", 2, NULL, NULL,
        0, am_test_record, &second, err, sizeof(err));

    snprintf(
        url, sizeof(url), "http://127.0.0.1:%d/hook", am_test_closed_port());
    am_webhook_post(am_test_doomed, url, NULL, 0, "{}", 2, NULL, NULL, 0,
        am_test_free_engine, &first, err, sizeof(err));

    am_test_wait(&first.called, 1, AM_TEST_WAIT_MS);
    am_test_spin(50);

    am_test_ok(first.called == 1 && second.called == 1
                   && strcmp(second.res.error, "cancelled") == 0,
        "free in callback: the other delivery is cancelled, once");
}


static void
am_srv_listener_closed(uv_handle_t *handle)
{
    (void) handle;
}


int
main(void)
{
    am_webhook_engine_t *e, *fast, *strict;
    am_webhook_config_t  cfg;

    signal(SIGPIPE, SIG_IGN);

    if (uv_loop_init(&am_test_loop) != 0) {
        am_test_bail("uv_loop_init");
    }

    uv_timer_init(&am_test_loop, &am_test_watchdog);
    am_srv_start();

    am_test_ok(
        curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS,
        "libcurl resolves names asynchronously (%s)",
        curl_version_info(CURLVERSION_NOW)->version);

    memset(&cfg, 0, sizeof(cfg));
    cfg.timeout_ms = 3000;
    cfg.allow_private = 1;
    e = am_webhook_engine_new(&am_test_loop, &cfg);

    cfg.timeout_ms = 300;
    fast = am_webhook_engine_new(&am_test_loop, &cfg);

    strict = am_webhook_engine_new(&am_test_loop, NULL);

    if (e == NULL || fast == NULL || strict == NULL) {
        am_test_bail("am_webhook_engine_new");
    }

    am_test_sign();
    am_test_addresses();
    am_test_invalid(e);
    am_test_delivered(e);
    am_test_rotation(e);
    am_test_failures(e, fast);
    am_test_private(strict);
    am_test_concurrent(e);
    am_test_reentrant(e);
    am_test_cancel(fast);
    am_test_free_in_callback();

    am_webhook_engine_free(e);
    am_webhook_engine_free(strict);

    uv_close((uv_handle_t *) &am_srv.tcp, am_srv_listener_closed);
    uv_close((uv_handle_t *) &am_test_watchdog, NULL);
    uv_run(&am_test_loop, UV_RUN_DEFAULT);

    am_test_ok(uv_loop_close(&am_test_loop) == 0,
        "all handles closed after the engines are freed");

    curl_global_cleanup();

    return am_test_done();
}
