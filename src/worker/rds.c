/*
 * The worker's asynchronous Redis connections (see rds.h). hiredis has no
 * timers, so one libuv timer per connection does the reconnect backoff and
 * watches for a Redis that stops answering.
 */

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <uv.h>

#include "am_redis_addr.h"
#include "am_scripts.h"
#include "worker/worker.h"

#define AM_RDS_BACKOFF_MIN 100
#define AM_RDS_BACKOFF_MAX 2000
#define AM_RDS_WATCH_MS 500

/* What one command needs when its reply comes. */
typedef struct {
    am_rds_t       *r;
    am_rds_reply_pt cb;
    void           *data;
} am_rds_cmd_t;

/* A script call, kept until its reply in case it must be sent again. */
typedef struct {
    am_script_t    *script;
    int             argc; /* EVAL, script, nkeys, then the caller's */
    const char    **argv;
    size_t         *lens;
    char            nkeys[16];
    am_rds_reply_pt cb;
    void           *data;
} am_rds_eval_t;

/*
 * hiredis's own libuv adapter starts its uv_poll_t again on every command,
 * and libuv then takes the socket out of epoll and puts it back: about four
 * epoll_ctl calls per command, and one more epoll_wait before it is
 * written. Here the socket is watched for reading all along;
 * a command is written when the loop is next about to wait (a
 * uv_prepare_t), with every other command of the same turn, and the socket
 * is watched for writing only while the connect is on its way or the
 * kernel's buffer is full.
 */
typedef struct {
    redisAsyncContext *ac; /* NULL once hiredis let it go */
    uv_poll_t          poll;
    uv_prepare_t       flush;
    int                events;         /* what poll watches now */
    unsigned           read : 1;       /* hiredis wants replies */
    unsigned           wait_write : 1; /* poll for room to write */
    unsigned           flushing : 1;   /* in redisAsyncHandleWrite */
    unsigned           open;           /* handles not closed yet */
} am_rds_ev_t;

static void am_rds_ev_poll_cb(uv_poll_t *poll, int status, int events);

static void
am_rds_ev_watch(am_rds_ev_t *ev)
{
    int events;

    events = (ev->read ? UV_READABLE : 0) | (ev->wait_write ? UV_WRITABLE : 0);

    if (events == ev->events || ev->ac == NULL) {
        return;
    }

    ev->events = events;

    if (events == 0) {
        (void) uv_poll_stop(&ev->poll);
    } else {
        (void) uv_poll_start(&ev->poll, events, am_rds_ev_poll_cb);
    }
}

/*
 * What hiredis has to send, as far as the socket takes it. A connect still
 * on its way (hiredis then neither adds nor removes the write) waits for
 * the socket to be writable.
 */
static void
am_rds_ev_write(am_rds_ev_t *ev)
{
    (void) uv_prepare_stop(&ev->flush);

    ev->flushing = 1;
    redisAsyncHandleWrite(ev->ac);
    ev->flushing = 0;

    if (ev->ac != NULL && !(ev->ac->c.flags & REDIS_CONNECTED)) {
        ev->wait_write = 1;
    }

    am_rds_ev_watch(ev);
}

static void
am_rds_ev_poll_cb(uv_poll_t *poll, int status, int events)
{
    am_rds_ev_t *ev = poll->data;

    if (status < 0) {
        /* libuv stopped watching (POLLERR): a read tells hiredis why */
        ev->events = 0;
        events = UV_READABLE;
    }

    if (ev->ac != NULL && (events & UV_READABLE)) {
        redisAsyncHandleRead(ev->ac);
    }

    if (ev->ac != NULL && (events & UV_WRITABLE)) {
        ev->wait_write = 0;
        am_rds_ev_write(ev);
    }
}

/* (cleanup closes the prepare as it lets the context go: never after) */
static void
am_rds_ev_flush_cb(uv_prepare_t *flush)
{
    am_rds_ev_write(flush->data);
}

static void
am_rds_ev_add_read(void *data)
{
    am_rds_ev_t *ev = data;

    ev->read = 1;
    am_rds_ev_watch(ev);
}

static void
am_rds_ev_del_read(void *data)
{
    am_rds_ev_t *ev = data;

    ev->read = 0;
    am_rds_ev_watch(ev);
}

/*
 * A command to send: written when the loop is about to wait; or, while the
 * connect is on its way or a write was left unfinished (the kernel took
 * part of it), once the socket is writable.
 */
static void
am_rds_ev_add_write(void *data)
{
    am_rds_ev_t *ev = data;

    if (ev->wait_write) {
        return;
    }

    if (ev->flushing || !(ev->ac->c.flags & REDIS_CONNECTED)) {
        ev->wait_write = 1;
        if (!ev->flushing) {
            am_rds_ev_watch(ev);
        }
        return;
    }

    (void) uv_prepare_start(&ev->flush, am_rds_ev_flush_cb);
}

static void
am_rds_ev_del_write(void *data)
{
    am_rds_ev_t *ev = data;

    ev->wait_write = 0;
    if (!ev->flushing) {
        am_rds_ev_watch(ev);
    }
}

static void
am_rds_ev_close_cb(uv_handle_t *handle)
{
    am_rds_ev_t *ev = handle->data;

    if (--ev->open == 0) {
        free(ev);
    }
}

static void
am_rds_ev_cleanup(void *data)
{
    am_rds_ev_t *ev = data;

    ev->ac = NULL;
    uv_close((uv_handle_t *) &ev->poll, am_rds_ev_close_cb);
    uv_close((uv_handle_t *) &ev->flush, am_rds_ev_close_cb);
}

static int
am_rds_ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    am_rds_ev_t *ev;

    ev = calloc(1, sizeof(*ev));
    if (ev == NULL) {
        return -1;
    }

    if (uv_poll_init(loop, &ev->poll, ac->c.fd) != 0) {
        free(ev);
        return -1;
    }

    ev->ac = ac;
    ev->poll.data = ev;
    ev->flush.data = ev;
    ev->open = 2;
    (void) uv_prepare_init(loop, &ev->flush);

    ac->ev.data = ev;
    ac->ev.addRead = am_rds_ev_add_read;
    ac->ev.delRead = am_rds_ev_del_read;
    ac->ev.addWrite = am_rds_ev_add_write;
    ac->ev.delWrite = am_rds_ev_del_write;
    ac->ev.cleanup = am_rds_ev_cleanup;

    return 0;
}

int
am_rds_init(am_rds_t *r, uv_loop_t *loop, const am_rds_conf_t *conf,
    const char *name, am_rds_state_pt on_state, void *data, char *err,
    size_t errlen)
{
    char why[512];

    memset(r, 0, sizeof(*r));

    if (am_redis_addr_parse(conf->addr, &r->addr, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "invalid redis address %s", why);
        return -1;
    }

    r->loop = loop;
    r->conf = conf;
    r->name = name;
    r->on_state = on_state;
    r->data = data;
    r->timeout_ms = 5000;
    r->backoff_ms = AM_RDS_BACKOFF_MIN;

    uv_timer_init(loop, &r->timer);
    r->timer.data = r;

    return 0;
}

static void
am_rds_retry_cb(uv_timer_t *t)
{
    am_rds_connect(t->data);
}

/*
 * The connection is gone (failed, dropped, or cut by us): tell the owner
 * once, then try again after a growing delay.
 */
static void
am_rds_lost(am_rds_t *r, const char *why)
{
    int was_ready;

    was_ready = r->ready;
    r->ac = NULL;
    r->ready = 0;
    r->pending = 0;

    if (r->closing) {
        return;
    }

    if (!r->down_logged) {
        am_log_at(AM_LOG_WARN, NULL,
            "redis %s connection to %s: %s; reconnecting", r->name,
            r->conf->addr, why);
        r->down_logged = 1;
    }

    uv_timer_start(&r->timer, am_rds_retry_cb, r->backoff_ms, 0);
    r->backoff_ms *= 2;
    if (r->backoff_ms > AM_RDS_BACKOFF_MAX) {
        r->backoff_ms = AM_RDS_BACKOFF_MAX;
    }

    if (was_ready && r->on_state) {
        r->on_state(r, 0, r->data);
    }
}

/* Cuts the connection now; pending commands get NULL replies. */
static void
am_rds_drop(am_rds_t *r, const char *why)
{
    redisAsyncContext *ac;

    ac = r->ac;
    r->ready = 0;
    r->dropped = why;
    redisAsyncFree(ac);

    /* hiredis calls the disconnect callback only for a connected context */
    if (r->ac == ac) {
        am_rds_lost(r, why);
    }

    r->dropped = NULL;
}

/*
 * Every AM_RDS_WATCH_MS while connecting or connected: a connection whose
 * oldest unanswered command is older than timeout_ms is cut, so a frozen
 * or unreachable Redis is treated like one that went away.
 */
static void
am_rds_watch_cb(uv_timer_t *t)
{
    am_rds_t *r = t->data;

    if (r->ac == NULL || r->pending == 0) {
        return;
    }

    if (am_rds_now(r) - r->last_io > r->timeout_ms) {
        am_rds_drop(r, "no answer in time");
    }
}

static void
am_rds_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    am_rds_cmd_t *cmd = privdata;
    am_rds_t     *r = cmd->r;

    (void) ac;

    if (r->pending > 0) {
        r->pending--;
    }
    r->last_io = am_rds_now(r);

    if (reply == NULL) {
        r->ready = 0;
    }

    cmd->cb(r, reply, cmd->data);
    free(cmd);
}

/* Sends a command on the context, ready or not; 0, or -1. */
static int
am_rds_send(am_rds_t *r, am_rds_reply_pt cb, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    am_rds_cmd_t *cmd;

    cmd = malloc(sizeof(*cmd));
    if (cmd == NULL) {
        return -1;
    }

    cmd->r = r;
    cmd->cb = cb;
    cmd->data = data;

    if (redisAsyncCommandArgv(r->ac, am_rds_reply_cb, cmd, argc, argv, argvlen)
        != REDIS_OK) {
        free(cmd);
        return -1;
    }

    if (r->pending++ == 0) {
        r->last_io = am_rds_now(r);
    }

    return 0;
}

void
am_rds_flush(am_rds_t *r)
{
    am_rds_ev_t *ev;

    if (r->ac == NULL) {
        return;
    }

    ev = r->ac->ev.data;

    if (ev != NULL && ev->ac != NULL && !ev->wait_write
        && uv_is_active((uv_handle_t *) &ev->flush)) {
        am_rds_ev_write(ev);
    }
}

int
am_rds_command(am_rds_t *r, am_rds_reply_pt cb, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    if (!r->ready || r->ac == NULL) {
        return -1;
    }

    return am_rds_send(r, cb, data, argc, argv, argvlen);
}

/* The last reply of the login sequence (AUTH, SELECT, PING). */
static void
am_rds_login_cb(am_rds_t *r, redisReply *reply, void *data)
{
    (void) data;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* a wrong password or database: said once, tried again quietly */
        am_rds_drop(r, reply->str);
        return;
    }

    if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "PONG") != 0) {
        return;
    }

    if (r->down_logged) {
        am_log("redis %s connection to %s is back", r->name, r->conf->addr);
        r->down_logged = 0;
    }

    r->ready = 1;
    r->backoff_ms = AM_RDS_BACKOFF_MIN;

    if (r->on_state) {
        r->on_state(r, 1, r->data);
    }
}

static void
am_rds_connect_cb(const redisAsyncContext *ac, int status)
{
    am_rds_t *r = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        am_rds_lost(r, ac->errstr[0] ? ac->errstr : "cannot connect");
    }
}

static void
am_rds_disconnect_cb(const redisAsyncContext *ac, int status)
{
    am_rds_t *r = ac->data;

    (void) status;

    if (r->ac == ac) {
        am_rds_lost(r, r->dropped ? r->dropped
                       : ac->err  ? ac->errstr
                                  : "connection closed");
    }
}

/*
 * Opens a connection to ip (NULL: the unix socket) and queues the login
 * behind it: AUTH and SELECT when configured, then a PING whose answer
 * makes the connection ready.
 */
static void
am_rds_open(am_rds_t *r, const char *ip)
{
    redisAsyncContext *ac;
    const char        *argv[2];
    char               db[16];

    ac = ip ? redisAsyncConnect(ip, r->addr.port)
            : redisAsyncConnectUnix(r->addr.path);

    if (ac == NULL || ac->err) {
        am_rds_lost(r, ac ? ac->errstr : "out of memory");
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        return;
    }

    if (am_rds_ev_attach(ac, r->loop) != 0) {
        redisAsyncFree(ac);
        am_rds_lost(r, "cannot watch the socket");
        return;
    }

    ac->data = r;
    r->ac = ac;
    r->pending = 0;
    redisAsyncSetConnectCallback(ac, am_rds_connect_cb);
    redisAsyncSetDisconnectCallback(ac, am_rds_disconnect_cb);

    if (r->conf->password != NULL) {
        argv[0] = "AUTH";
        argv[1] = r->conf->password;
        am_rds_send(r, am_rds_login_cb, NULL, 2, argv, NULL);
    }

    if (r->conf->db != 0) {
        snprintf(db, sizeof(db), "%d", r->conf->db);
        argv[0] = "SELECT";
        argv[1] = db;
        am_rds_send(r, am_rds_login_cb, NULL, 2, argv, NULL);
    }

    argv[0] = "PING";
    if (am_rds_send(r, am_rds_login_cb, NULL, 1, argv, NULL) != 0) {
        am_rds_drop(r, "out of memory");
        return;
    }

    uv_timer_start(
        &r->timer, am_rds_watch_cb, AM_RDS_WATCH_MS, AM_RDS_WATCH_MS);
}

static void
am_rds_resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    am_rds_t   *r = req->data;
    const void *in;
    char        ip[INET6_ADDRSTRLEN], why[320];

    r->resolving = 0;

    if (r->closing) {
        uv_freeaddrinfo(res);
        return;
    }

    if (status < 0) {
        snprintf(why, sizeof(why), "cannot resolve %s: %s", r->addr.host,
            uv_strerror(status));
        am_rds_lost(r, why);
        return;
    }

    in =
        res->ai_family == AF_INET
            ? (const void *) &((struct sockaddr_in *) res->ai_addr)->sin_addr
            : (const void *) &((struct sockaddr_in6 *) res->ai_addr)->sin6_addr;

    if (inet_ntop(res->ai_family, in, ip, sizeof(ip)) == NULL) {
        uv_freeaddrinfo(res);
        am_rds_lost(r, "unusable address");
        return;
    }

    uv_freeaddrinfo(res);
    am_rds_open(r, ip);
}

/*
 * A host name is resolved on the loop's thread pool at each connection, so
 * that Redis may move to another address and a slow resolver never holds
 * the runs and webhooks in flight.
 */
void
am_rds_connect(am_rds_t *r)
{
    struct addrinfo hints;
    int             rc;

    if (r->addr.path != NULL || r->addr.numeric) {
        am_rds_open(r, r->addr.path ? NULL : r->addr.host);
        return;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    r->resolve.data = r;

    rc = uv_getaddrinfo(
        r->loop, &r->resolve, am_rds_resolved_cb, r->addr.host, NULL, &hints);
    if (rc != 0) {
        am_rds_lost(r, uv_strerror(rc));
        return;
    }

    r->resolving = 1;
}

static void
am_rds_eval_free(am_rds_eval_t *ev)
{
    int i;

    for (i = 3; i < ev->argc; i++) {
        free((char *) ev->argv[i]);
    }

    free(ev->argv);
    free(ev->lens);
    free(ev);
}

/*
 * The reply of EVALSHA, or of the EVAL sent after a NOSCRIPT (a Redis that
 * restarted or was flushed has forgotten the script).
 */
static void
am_rds_eval_cb(am_rds_t *r, redisReply *reply, void *data)
{
    am_rds_eval_t *ev = data;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "NOSCRIPT", 8) == 0
        && strcmp(ev->argv[0], "EVALSHA") == 0) {
        ev->argv[0] = "EVAL";
        ev->lens[0] = 4;
        ev->argv[1] = ev->script->body;
        ev->lens[1] = ev->script->len;

        if (am_rds_send(r, am_rds_eval_cb, ev, ev->argc, ev->argv, ev->lens)
            == 0) {
            return;
        }

        reply = NULL;
    }

    ev->cb(r, reply, ev->data);
    am_rds_eval_free(ev);
}

int
am_rds_eval(am_rds_t *r, const char *name, int nkeys, int argc,
    const char **argv, const size_t *argvlen, am_rds_reply_pt cb, void *data)
{
    am_rds_eval_t *ev;
    am_script_t   *s;
    size_t         len;
    char          *p;
    int            i;

    s = am_script_find(name);
    if (s == NULL || !r->ready) {
        return -1;
    }

    ev = calloc(1, sizeof(*ev));
    if (ev == NULL) {
        return -1;
    }

    ev->argc = argc + 3;
    ev->argv = calloc((size_t) ev->argc, sizeof(char *));
    ev->lens = calloc((size_t) ev->argc, sizeof(size_t));
    if (ev->argv == NULL || ev->lens == NULL) {
        am_rds_eval_free(ev);
        return -1;
    }

    snprintf(ev->nkeys, sizeof(ev->nkeys), "%d", nkeys);
    ev->script = s;
    ev->cb = cb;
    ev->data = data;
    ev->argv[0] = "EVALSHA";
    ev->argv[1] = s->sha1;
    ev->lens[1] = strlen(s->sha1);
    ev->argv[2] = ev->nkeys;
    ev->lens[2] = strlen(ev->nkeys);
    ev->lens[0] = 7;

    for (i = 0; i < argc; i++) {
        len = argvlen ? argvlen[i] : strlen(argv[i]);
        p = malloc(len + 1);
        if (p == NULL) {
            ev->argc = i + 3;
            am_rds_eval_free(ev);
            return -1;
        }
        memcpy(p, argv[i], len);
        p[len] = '\0';
        ev->argv[i + 3] = p;
        ev->lens[i + 3] = len;
    }

    if (am_rds_command(r, am_rds_eval_cb, ev, ev->argc, ev->argv, ev->lens)
        != 0) {
        am_rds_eval_free(ev);
        return -1;
    }

    return 0;
}

void
am_rds_close(am_rds_t *r)
{
    if (r->closing) {
        return;
    }

    r->closing = 1;
    uv_timer_stop(&r->timer);

    if (r->resolving) {
        /* a resolution under way still calls back, which sees closing */
        uv_cancel((uv_req_t *) &r->resolve);
    }

    uv_close((uv_handle_t *) &r->timer, NULL);

    if (r->ac != NULL) {
        am_rds_drop(r, "closing");
    }
}
