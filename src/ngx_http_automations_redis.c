/*
 * One async hiredis connection per nginx worker process.
 *
 * hiredis has no event loop of its own: its fd is an nginx connection
 * registered edge-triggered for both directions. Reads are drained until
 * EAGAIN and fed to the hiredis reader; writes are posted to the end of the
 * current event loop iteration, so the commands of every request handled in
 * one iteration leave in one write. Connect and command timeouts are nginx
 * timers; a dropped or stuck connection fails its requests with 503 and is
 * reopened with backoff and jitter.
 *
 * Client-side caching: the subscriber connection also listens on
 * __redis__:invalidate, and the command connection turns CLIENT TRACKING
 * on (OPTIN) with its replies redirected there. A read sent after
 * CLIENT CACHING yes is then tracked: when its key changes, Redis says so
 * on the subscriber connection, and the invalidate handler drops it. A
 * serial changes whenever a cached record may have gone stale without a
 * word (an invalidation, a connection lost, tracking turned on again), so
 * that a reply read before that is not kept.
 *
 * The names of the keys the module reads live here too, at the end: every
 * key starts with automations_redis_prefix, and a project's keys carry the
 * project as a hash tag so that one project stays in one cluster slot.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/async.h>
#include <hiredis/sds.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_crypto.h"
#include "am_scripts.h"

/* exported by hiredis 0.14 but missing from its header */
void redisProcessCallbacks(redisAsyncContext *ac);

#define NGX_HTTP_AUTOMATIONS_BACKOFF_MIN 100
#define NGX_HTTP_AUTOMATIONS_BACKOFF_MAX 5000


/*
 * In this order. Once a connect has started, requests may send: hiredis
 * keeps their commands until the socket is connected, they queue behind
 * AUTH and SELECT, and a failed connect or step answers them, as 503s,
 * within the connect timeout. Only while down (between attempts) do
 * requests fail at once. Up means the handshake has answered.
 */
typedef enum {
    ngx_http_automations_redis_down = 0,
    ngx_http_automations_redis_connecting,
    ngx_http_automations_redis_handshake,
    ngx_http_automations_redis_up
} ngx_http_automations_redis_state_e;


typedef struct {
    ngx_http_request_t                   *request; /* NULL once gone */
    ngx_http_cleanup_t                   *cleanup;
    ngx_http_automations_redis_handler_pt handler;
    ngx_event_t                           timer;
    ngx_msec_t                            start;

    /* kept for a script, to resend it with EVAL after NOSCRIPT */
    am_script_t *script;
    ngx_uint_t   retried;
    int          argc;
    const char **argv;
    size_t      *argvlen;
} ngx_http_automations_redis_call_t;


typedef struct {
    ngx_http_automations_main_conf_t  *amcf;
    ngx_log_t                         *log;
    redisAsyncContext                 *ac;
    ngx_connection_t                  *conn;
    ngx_http_automations_redis_state_e state;
    ngx_flag_t                         write_blocked;
    ngx_flag_t                         exiting;
    ngx_uint_t                         pending;
    ngx_msec_t                         last_activity;
    ngx_msec_t                         backoff;
    ngx_event_t                        connect_timer;
    ngx_event_t                        reconnect_timer;
    ngx_flag_t                         pubsub;
} ngx_http_automations_redis_t;


static void ngx_http_automations_redis_connect(
    ngx_http_automations_redis_t *rd);
static void ngx_http_automations_redis_schedule(
    ngx_http_automations_redis_t *rd);
static void ngx_http_automations_redis_drop(
    ngx_http_automations_redis_t *rd, const char *why);
static void ngx_http_automations_redis_untrack(
    ngx_http_automations_redis_t *rd);
static void ngx_http_automations_redis_track_start(void);
static void ngx_http_automations_redis_tracking_reply(
    redisAsyncContext *ac, void *rep, void *privdata);
static void       ngx_http_automations_redis_refused(redisReply *reply);
static ngx_uint_t ngx_http_automations_redis_cache_next(
    ngx_http_automations_redis_t *rd);


/* the command connection, and the one subscribed to completions */
static ngx_http_automations_redis_t ngx_http_automations_redis;
static ngx_http_automations_redis_t ngx_http_automations_pubsub;

static ngx_http_automations_redis_message_pt
    ngx_http_automations_redis_on_message;

/*
 * This worker process's own completions channel, "<prefix>completions:"
 * and 16 random hex digits: a synchronous run's enqueue names it, and only
 * this process hears that run's completion. The subscriber also listens on
 * "<prefix>completions", where workers of an older release publish.
 */
#define NGX_HTTP_AUTOMATIONS_CHANNEL_RANDOM 8

static ngx_str_t ngx_http_automations_redis_channel;


typedef struct {
    long long  redirect;   /* the subscriber's CLIENT ID, 0 until known */
    ngx_flag_t subscribed; /* to __redis__:invalidate */
    long long  sent;       /* the redirect of a CLIENT TRACKING in flight */
    ngx_flag_t on;
    ngx_flag_t refused; /* said once in the log */
    ngx_uint_t serial;
} ngx_http_automations_tracking_t;

static ngx_http_automations_tracking_t ngx_http_automations_tracking = {
    0, 0, 0, 0, 0, 1};

static ngx_http_automations_redis_invalidate_pt
    ngx_http_automations_redis_on_invalidate;


static void
ngx_http_automations_redis_read_handler(ngx_event_t *rev)
{
    u_char                        buf[16384];
    ssize_t                       n;
    ngx_flag_t                    eof;
    ngx_connection_t             *c;
    redisAsyncContext            *ac;
    ngx_http_automations_redis_t *rd;

    c = rev->data;
    ac = c->data;
    rd = ac->data;

    if (rd->state < ngx_http_automations_redis_handshake) {
        /* connect completion is seen by the write handler */
        return;
    }

    eof = 0;

    for (;;) {
        n = recv(c->fd, buf, sizeof(buf), 0);

        if (n > 0) {
            if (redisReaderFeed(ac->c.reader, (char *) buf, n) != REDIS_OK) {
                ngx_http_automations_redis_drop(rd, "reply buffer failure");
                return;
            }

            continue;
        }

        if (n == -1 && ngx_socket_errno == NGX_EINTR) {
            continue;
        }

        if (n == 0 || ngx_socket_errno != NGX_EAGAIN) {
            eof = 1;
        }

        break;
    }

    rev->ready = 0;

    redisProcessCallbacks(ac);

    if (eof && rd->ac == ac) {
        /* hiredis reads the EOF or error again, reports it and disconnects */
        redisAsyncHandleRead(ac);
    }
}


static void
ngx_http_automations_redis_write_handler(ngx_event_t *wev)
{
    size_t                        before, after;
    ngx_connection_t             *c;
    redisAsyncContext            *ac;
    ngx_http_automations_redis_t *rd;

    c = wev->data;
    ac = c->data;
    rd = ac->data;

    if (rd->state == ngx_http_automations_redis_connecting) {
        redisAsyncHandleWrite(ac);
        return;
    }

    before = sdslen(ac->c.obuf);
    if (before == 0) {
        rd->write_blocked = 0;
        return;
    }

    redisAsyncHandleWrite(ac);

    if (rd->ac != ac) {
        return;
    }

    after = sdslen(ac->c.obuf);

    /* no progress means EAGAIN: the next edge of the socket wakes us */
    rd->write_blocked = (after == before);

    if (after > 0 && !rd->write_blocked && !wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }
}


static void
ngx_http_automations_redis_add_write(void *data)
{
    ngx_connection_t             *c;
    redisAsyncContext            *ac;
    ngx_http_automations_redis_t *rd;

    c = data;
    ac = c->data;
    rd = ac->data;

    if (rd->state >= ngx_http_automations_redis_handshake && !rd->write_blocked
        && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


static void
ngx_http_automations_redis_noop(void *data)
{
}


/* hiredis frees the context: give the fd's nginx connection back */
static void
ngx_http_automations_redis_cleanup(void *data)
{
    ngx_connection_t             *c;
    redisAsyncContext            *ac;
    ngx_http_automations_redis_t *rd;

    c = data;
    ac = c->data;
    rd = ac->data;

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_del_conn(c, NGX_CLOSE_EVENT);
    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    ngx_http_automations_redis_untrack(rd);

    if (rd->state == ngx_http_automations_redis_up && !rd->pubsub) {
        ngx_http_automations_metrics_redis(0);
    }

    rd->ac = NULL;
    rd->conn = NULL;
    rd->state = ngx_http_automations_redis_down;
    rd->write_blocked = 0;
}


static void
ngx_http_automations_redis_setup_reply(
    redisAsyncContext *ac, void *rep, void *privdata)
{
    redisReply                   *reply;
    ngx_http_automations_redis_t *rd;

    reply = rep;
    rd = ac->data;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
            "automations: redis %s failed: %s", (char *) privdata, reply->str);
        redisAsyncDisconnect(ac);
    }
}


/* the handshake is over: requests may use the connection now */
static void
ngx_http_automations_redis_open(ngx_http_automations_redis_t *rd)
{
    if (rd->state != ngx_http_automations_redis_handshake) {
        return;
    }

    rd->state = ngx_http_automations_redis_up;

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
        "automations: redis %s connection to \"%V\" is up",
        rd->pubsub ? "subscriber" : "command", &rd->amcf->redis);

    if (!rd->pubsub) {
        ngx_http_automations_metrics_redis(1);
        ngx_http_automations_redis_track_start();
    }

    if (!rd->pubsub && ngx_http_automations_redis_on_message) {
        /* waiters could not look at their runs while it was down */
        ngx_http_automations_redis_on_message(NULL);
    }
}


static void
ngx_http_automations_redis_ready_reply(
    redisAsyncContext *ac, void *rep, void *privdata)
{
    redisReply *reply;

    reply = rep;

    if (reply != NULL && reply->type != REDIS_REPLY_ERROR) {
        ngx_http_automations_redis_open(ac->data);
    }
}


/*
 * Every reply on the subscriber connection: the confirmation of SUBSCRIBE
 * (messages may have been missed before it) and each completion message.
 */
static void
ngx_http_automations_redis_subscribed(
    redisAsyncContext *ac, void *rep, void *privdata)
{
    ngx_str_t   payload;
    redisReply *reply, **e;

    reply = rep;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3) {
        return;
    }

    e = reply->element;

    if (e[0]->type != REDIS_REPLY_STRING) {
        return;
    }

    if (ngx_http_automations_redis_on_message == NULL) {
        return;
    }

    /* the last of the two channels listens: ready */
    if (e[0]->len == 9 && ngx_strncmp(e[0]->str, "subscribe", 9) == 0) {
        if (e[1]->type == REDIS_REPLY_STRING
            && e[1]->len == ngx_http_automations_redis_channel.len
            && ngx_strncmp(e[1]->str, ngx_http_automations_redis_channel.data,
                   e[1]->len)
                   == 0) {
            ngx_http_automations_redis_open(ac->data);
            ngx_http_automations_redis_on_message(NULL);
        }
        return;
    }

    if (e[0]->len == 7 && ngx_strncmp(e[0]->str, "message", 7) == 0
        && e[2]->type == REDIS_REPLY_STRING) {
        payload.data = (u_char *) e[2]->str;
        payload.len = e[2]->len;
        ngx_http_automations_redis_on_message(&payload);
    }
}


/*
 * Tracking can start once the command connection is up and the subscriber
 * has told its id and listens to invalidations: the reply to CLIENT
 * TRACKING turns it on.
 */
static void
ngx_http_automations_redis_track_start(void)
{
    ngx_http_automations_redis_t    *rd;
    ngx_http_automations_tracking_t *t;

    t = &ngx_http_automations_tracking;
    rd = &ngx_http_automations_redis;

    if (t->on || t->sent || !t->subscribed || t->redirect == 0
        || rd->state != ngx_http_automations_redis_up) {
        return;
    }

    if (redisAsyncCommand(rd->ac, ngx_http_automations_redis_tracking_reply,
            NULL, "CLIENT TRACKING on REDIRECT %lld OPTIN", t->redirect)
        == REDIS_OK) {
        t->sent = t->redirect;
    }
}


static void
ngx_http_automations_redis_tracking_reply(
    redisAsyncContext *ac, void *rep, void *privdata)
{
    long long                        sent;
    redisReply                      *reply;
    ngx_http_automations_tracking_t *t;

    reply = rep;
    t = &ngx_http_automations_tracking;
    sent = t->sent;
    t->sent = 0;

    if (reply == NULL) {
        /* the command connection is gone, and tracking with it */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* a subscriber gone meanwhile: its successor asks again */
        if (ngx_strstr(reply->str, "redirect") == NULL) {
            ngx_http_automations_redis_refused(reply);
        }
        return;
    }

    if (sent != t->redirect || !t->subscribed) {
        /* the subscriber changed meanwhile: redirect to the new one */
        ngx_http_automations_redis_track_start();
        return;
    }

    t->on = 1;
    t->serial++;
}


/* cached records may be stale from now on: they all go */
static void
ngx_http_automations_redis_untrack(ngx_http_automations_redis_t *rd)
{
    ngx_http_automations_tracking_t *t;

    t = &ngx_http_automations_tracking;

    if (rd->pubsub) {
        t->redirect = 0;
        t->subscribed = 0;
    }

    t->on = 0;
    t->serial++;

    if (ngx_http_automations_redis_on_invalidate) {
        ngx_http_automations_redis_on_invalidate(NULL);
    }
}


/* Redis may forbid CLIENT (ACLs, managed services): every read then goes */
static void
ngx_http_automations_redis_refused(redisReply *reply)
{
    ngx_http_automations_tracking_t *t;

    t = &ngx_http_automations_tracking;

    if (!t->refused) {
        t->refused = 1;
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
            "automations: redis refused client tracking, credentials are "
            "read from redis on every request: %s",
            reply->str);
    }
}


static void
ngx_http_automations_redis_client_id(
    redisAsyncContext *ac, void *rep, void *privdata)
{
    redisReply *reply;

    reply = rep;

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_INTEGER) {
        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_http_automations_redis_refused(reply);
        }
        return;
    }

    ngx_http_automations_tracking.redirect = reply->integer;
    ngx_http_automations_redis_track_start();
}


/*
 * The subscriber's replies on __redis__:invalidate: the confirmation,
 * then a message for each tracked key that changed (an array of its
 * name), or with nil when Redis was flushed.
 */
static void
ngx_http_automations_redis_invalidated(
    redisAsyncContext *ac, void *rep, void *privdata)
{
    size_t                           i;
    ngx_str_t                        key;
    redisReply                      *reply, **e;
    ngx_http_automations_tracking_t *t;

    reply = rep;
    t = &ngx_http_automations_tracking;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING) {
        return;
    }

    e = reply->element;

    if (e[0]->len == 9 && ngx_strncmp(e[0]->str, "subscribe", 9) == 0) {
        t->subscribed = 1;
        ngx_http_automations_redis_track_start();
        return;
    }

    if (e[0]->len != 7 || ngx_strncmp(e[0]->str, "message", 7) != 0) {
        return;
    }

    t->serial++;

    if (ngx_http_automations_redis_on_invalidate == NULL) {
        return;
    }

    if (e[2]->type != REDIS_REPLY_ARRAY) {
        ngx_http_automations_redis_on_invalidate(NULL);
        return;
    }

    for (i = 0; i < e[2]->elements; i++) {
        if (e[2]->element[i]->type == REDIS_REPLY_STRING) {
            key.data = (u_char *) e[2]->element[i]->str;
            key.len = e[2]->element[i]->len;
            ngx_http_automations_redis_on_invalidate(&key);
        }
    }
}


/*
 * For a read whose reply may be cached: CLIENT CACHING yes makes Redis
 * track the key of the command sent right after it. The serial to check
 * the reply against, or 0 when tracking is off.
 */
static ngx_uint_t
ngx_http_automations_redis_cache_next(ngx_http_automations_redis_t *rd)
{
    ngx_http_automations_tracking_t *t;

    t = &ngx_http_automations_tracking;

    if (!t->on || rd->state != ngx_http_automations_redis_up
        || redisAsyncCommand(rd->ac, NULL, NULL, "CLIENT CACHING yes")
               != REDIS_OK) {
        return 0;
    }

    return t->serial;
}


static void
ngx_http_automations_redis_on_connect(const redisAsyncContext *cac, int status)
{
    char                              db[NGX_INT_T_LEN + 1];
    am_script_t                      *s;
    redisAsyncContext                *ac;
    ngx_http_automations_redis_t     *rd;
    ngx_http_automations_main_conf_t *amcf;

    ac = (redisAsyncContext *) cac;
    rd = ac->data;
    amcf = rd->amcf;

    if (status != REDIS_OK) {
        if (rd->connect_timer.timer_set) {
            ngx_del_timer(&rd->connect_timer);
        }

        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
            "automations: redis connect to \"%V\" failed: %s", &amcf->redis,
            ac->errstr);
        /* hiredis frees the context after this callback */
        rd->state = ngx_http_automations_redis_down;
        ngx_http_automations_redis_schedule(rd);
        return;
    }

    rd->state = ngx_http_automations_redis_handshake;
    rd->backoff = 0;

    /*
     * the handshake gets a whole connect timeout of its own, from now: the
     * timer armed before connect(2) may already be due when the loop is
     * late (a slow start, a loaded machine)
     */
    ngx_add_timer(&rd->connect_timer, amcf->connect_timeout);

    /*
     * AUTH, SELECT and the scripts, then a PING whose reply opens the
     * connection to requests: a failed step disconnects before that
     */

    if (amcf->redis_password.len) {
        redisAsyncCommand(ac, ngx_http_automations_redis_setup_reply, "AUTH",
            "AUTH %b", amcf->redis_password.data, amcf->redis_password.len);
    }

    if (rd->pubsub) {
        if (ngx_http_automations_redis_on_invalidate) {
            /* before SUBSCRIBE, after which only (UN)SUBSCRIBE may follow */
            redisAsyncCommand(
                ac, ngx_http_automations_redis_client_id, NULL, "CLIENT ID");
            redisAsyncCommand(ac, ngx_http_automations_redis_invalidated, NULL,
                "SUBSCRIBE __redis__:invalidate");
        }

        redisAsyncCommand(ac, ngx_http_automations_redis_subscribed, NULL,
            "SUBSCRIBE %bcompletions %b", amcf->prefix.data, amcf->prefix.len,
            ngx_http_automations_redis_channel.data,
            ngx_http_automations_redis_channel.len);
        return;
    }

    if (amcf->redis_db > 0) {
        ngx_sprintf((u_char *) db, "%i%Z", amcf->redis_db);
        redisAsyncCommand(ac, ngx_http_automations_redis_setup_reply, "SELECT",
            "SELECT %s", db);
    }

    for (s = am_scripts; s->name; s++) {
        redisAsyncCommand(ac, ngx_http_automations_redis_setup_reply,
            "SCRIPT LOAD", "SCRIPT LOAD %b", s->body, s->len);
    }

    redisAsyncCommand(ac, ngx_http_automations_redis_ready_reply, NULL, "PING");
}


static void
ngx_http_automations_redis_on_disconnect(
    const redisAsyncContext *ac, int status)
{
    ngx_http_automations_redis_t *rd;

    rd = ac->data;
    rd->state = ngx_http_automations_redis_down;

    if (rd->exiting) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
        "automations: redis connection to \"%V\" lost: %s", &rd->amcf->redis,
        ac->errstr ? ac->errstr : "closed");

    ngx_http_automations_redis_schedule(rd);
}


static void
ngx_http_automations_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_automations_redis_t *rd;

    rd = ev->data;

    /* the connect timeout covers the handshake too */
    if (rd->state == ngx_http_automations_redis_up || rd->ac == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
        "automations: redis connect to \"%V\" timed out", &rd->amcf->redis);

    redisAsyncFree(rd->ac);
    ngx_http_automations_redis_schedule(rd);
}


static void
ngx_http_automations_redis_reconnect(ngx_event_t *ev)
{
    ngx_http_automations_redis_connect(ev->data);
}


/* the next connect attempt, after a doubling delay with +-25% jitter */
static void
ngx_http_automations_redis_schedule(ngx_http_automations_redis_t *rd)
{
    ngx_msec_t delay;

    if (rd->exiting || rd->reconnect_timer.timer_set) {
        return;
    }

    rd->backoff =
        rd->backoff ? ngx_min(rd->backoff * 2, NGX_HTTP_AUTOMATIONS_BACKOFF_MAX)
                    : NGX_HTTP_AUTOMATIONS_BACKOFF_MIN;

    delay = rd->backoff * 3 / 4 + (ngx_msec_t) ngx_random() % (rd->backoff / 2);

    ngx_add_timer(&rd->reconnect_timer, delay);
}


static void
ngx_http_automations_redis_connect(ngx_http_automations_redis_t *rd)
{
    ngx_connection_t                 *c;
    redisAsyncContext                *ac;
    ngx_http_automations_main_conf_t *amcf;

    amcf = rd->amcf;

    if (amcf->redis_unix.len) {
        ac = redisAsyncConnectUnix((char *) amcf->redis_unix.data);

    } else {
        ac = redisAsyncConnect(
            (char *) amcf->redis_host.data, (int) amcf->redis_port);
    }

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
            "automations: redis connect to \"%V\" failed: %s", &amcf->redis,
            ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }
        ngx_http_automations_redis_schedule(rd);
        return;
    }

    c = ngx_get_connection(ac->c.fd, rd->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_automations_redis_schedule(rd);
        return;
    }

    c->data = ac;
    c->read->handler = ngx_http_automations_redis_read_handler;
    c->write->handler = ngx_http_automations_redis_write_handler;
    c->read->log = rd->log;
    c->write->log = rd->log;

    ac->data = rd;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_automations_redis_noop;
    ac->ev.delRead = ngx_http_automations_redis_noop;
    ac->ev.addWrite = ngx_http_automations_redis_add_write;
    ac->ev.delWrite = ngx_http_automations_redis_noop;
    ac->ev.cleanup = ngx_http_automations_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_automations_redis_on_connect);
    redisAsyncSetDisconnectCallback(
        ac, ngx_http_automations_redis_on_disconnect);

    rd->ac = ac;
    rd->conn = c;
    rd->state = ngx_http_automations_redis_connecting;
    rd->write_blocked = 0;

    if (ngx_add_conn(c) != NGX_OK) {
        redisAsyncFree(ac);
        ngx_http_automations_redis_schedule(rd);
        return;
    }

    ngx_add_timer(&rd->connect_timer, amcf->connect_timeout);
}


/* Fails every pending command at once and reconnects later. */
static void
ngx_http_automations_redis_drop(
    ngx_http_automations_redis_t *rd, const char *why)
{
    if (rd->ac == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
        "automations: dropping redis connection to \"%V\": %s",
        &rd->amcf->redis, why);

    rd->state = ngx_http_automations_redis_down;
    redisAsyncFree(rd->ac);

    ngx_http_automations_redis_schedule(rd);
}


static void
ngx_http_automations_redis_start(ngx_http_automations_redis_t *rd,
    ngx_cycle_t *cycle, ngx_http_automations_main_conf_t *amcf,
    ngx_flag_t pubsub)
{
    ngx_memzero(rd, sizeof(ngx_http_automations_redis_t));

    rd->amcf = amcf;
    rd->log = cycle->log;
    rd->pubsub = pubsub;

    rd->connect_timer.handler = ngx_http_automations_redis_connect_timeout;
    rd->connect_timer.log = cycle->log;
    rd->connect_timer.data = rd;
    rd->connect_timer.cancelable = 1;

    rd->reconnect_timer.handler = ngx_http_automations_redis_reconnect;
    rd->reconnect_timer.log = cycle->log;
    rd->reconnect_timer.data = rd;
    rd->reconnect_timer.cancelable = 1;

    ngx_http_automations_redis_connect(rd);
}


ngx_int_t
ngx_http_automations_redis_init_process(ngx_cycle_t *cycle)
{
    u_char                           *p;
    ngx_http_automations_main_conf_t *amcf;

    amcf =
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_automations_module);
    if (amcf == NULL || amcf->redis.len == 0) {
        return NGX_OK;
    }

    if (ngx_add_conn == NULL || !(ngx_event_flags & NGX_USE_CLEAR_EVENT)) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
            "automations: the event method must be epoll or kqueue");
        return NGX_ERROR;
    }

    if (am_scripts_init() != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
            "automations: SHA-1 of the redis scripts failed");
        return NGX_ERROR;
    }

    ngx_http_automations_redis_channel.len =
        amcf->prefix.len + sizeof("completions:") - 1
        + 2 * NGX_HTTP_AUTOMATIONS_CHANNEL_RANDOM;
    ngx_http_automations_redis_channel.data =
        ngx_pnalloc(cycle->pool, ngx_http_automations_redis_channel.len + 1);
    if (ngx_http_automations_redis_channel.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(ngx_http_automations_redis_channel.data, amcf->prefix.data,
        amcf->prefix.len);
    p = ngx_cpymem(p, "completions:", sizeof("completions:") - 1);

    if (am_random_hex((char *) p, NGX_HTTP_AUTOMATIONS_CHANNEL_RANDOM) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
            "automations: no random bytes for the completions channel");
        return NGX_ERROR;
    }

    ngx_http_automations_redis_start(
        &ngx_http_automations_redis, cycle, amcf, 0);
    ngx_http_automations_redis_start(
        &ngx_http_automations_pubsub, cycle, amcf, 1);

    return NGX_OK;
}


void
ngx_http_automations_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_automations_redis_t *rd;

    ngx_http_automations_redis_on_message = NULL;

    rd = &ngx_http_automations_pubsub;
    rd->exiting = 1;

    if (rd->ac) {
        redisAsyncFree(rd->ac);
    }

    rd = &ngx_http_automations_redis;
    rd->exiting = 1;

    if (rd->ac) {
        redisAsyncFree(rd->ac);
    }
}


void
ngx_http_automations_redis_subscribe(
    ngx_http_automations_redis_message_pt handler)
{
    ngx_http_automations_redis_on_message = handler;
}


ngx_str_t *
ngx_http_automations_redis_waiter_channel(void)
{
    return &ngx_http_automations_redis_channel;
}


ngx_flag_t
ngx_http_automations_redis_is_up(void)
{
    return ngx_http_automations_redis.state == ngx_http_automations_redis_up;
}


ngx_flag_t
ngx_http_automations_redis_ready(void)
{
    return ngx_http_automations_redis.state
           >= ngx_http_automations_redis_connecting;
}


static void
ngx_http_automations_redis_call_cleanup(void *data)
{
    ngx_http_automations_redis_call_t *call = data;

    call->request = NULL;

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }
}


static ngx_int_t
ngx_http_automations_redis_is_noscript(redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR && reply->len >= 8
           && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0;
}


static void
ngx_http_automations_redis_reply(
    redisAsyncContext *ac, void *rep, void *privdata)
{
    redisReply                        *reply;
    ngx_connection_t                  *c;
    ngx_http_request_t                *r;
    ngx_http_automations_redis_t      *rd;
    ngx_http_automations_redis_call_t *call;

    rd = &ngx_http_automations_redis;
    call = privdata;
    reply = rep;

    rd->pending--;

    if (reply == NULL) {
        /* the connection is going away: nothing more may be sent on it */
        rd->state = ngx_http_automations_redis_down;

    } else {
        rd->last_activity = ngx_current_msec;

        if (call->script && !call->retried
            && ngx_http_automations_redis_is_noscript(reply)) {
            /* Redis restarted or flushed its script cache */
            call->retried = 1;
            call->argv[0] = "EVAL";
            call->argvlen[0] = 4;
            call->argv[1] = call->script->body;
            call->argvlen[1] = call->script->len;

            if (redisAsyncCommandArgv(ac, ngx_http_automations_redis_reply,
                    call, call->argc, call->argv, call->argvlen)
                == REDIS_OK) {
                rd->pending++;
                return;
            }
        }
    }

    r = call->request;

    if (r != NULL) {
        if (call->timer.timer_set) {
            ngx_del_timer(&call->timer);
        }

        call->cleanup->handler = NULL;
        c = r->connection;

        if (call->script && reply) {
            ngx_http_automations_metrics_script(
                call->script->name, ngx_current_msec - call->start);
        }

        call->handler(r, reply);
        ngx_http_run_posted_requests(c);
    }

    ngx_free(call);
}


static void
ngx_http_automations_redis_call_timeout(ngx_event_t *ev)
{
    ngx_connection_t                  *c;
    ngx_http_request_t                *r;
    ngx_http_automations_redis_t      *rd;
    ngx_http_automations_redis_call_t *call;

    rd = &ngx_http_automations_redis;
    call = ev->data;
    r = call->request;

    call->request = NULL;
    call->cleanup->handler = NULL;
    c = r->connection;

    ngx_log_error(NGX_LOG_ERR, c->log, 0,
        "automations: redis did not answer in %M ms", rd->amcf->timeout);

    call->handler(r, NULL);

    /* nothing came back for a whole timeout: the connection is stuck */
    if (rd->pending > 0
        && ngx_current_msec - rd->last_activity >= rd->amcf->timeout) {
        ngx_http_automations_redis_drop(rd, "no reply within the timeout");
    }

    ngx_http_run_posted_requests(c);
}


/*
 * A call, allocated outside the request pool since it may outlive the
 * request; a script's arguments are copied into it, to be sent again with
 * EVAL should Redis answer NOSCRIPT.
 */
static ngx_http_automations_redis_call_t *
ngx_http_automations_redis_call_new(ngx_http_request_t *r, am_script_t *script,
    int argc, const char **argv, const size_t *argvlen)
{
    int                                i;
    size_t                             size;
    u_char                            *p;
    ngx_http_automations_redis_call_t *call;

    size = sizeof(ngx_http_automations_redis_call_t);

    if (script) {
        size += argc * (sizeof(char *) + sizeof(size_t));
        for (i = 0; i < argc; i++) {
            size += argvlen[i];
        }
    }

    call = ngx_calloc(size, r->connection->log);
    if (call == NULL || script == NULL) {
        return call;
    }

    call->script = script;
    call->argc = argc;
    call->argv = (const char **) (call + 1);
    call->argvlen = (size_t *) (call->argv + argc);
    p = (u_char *) (call->argvlen + argc);

    for (i = 0; i < argc; i++) {
        call->argv[i] = (char *) p;
        call->argvlen[i] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    return call;
}


/*
 * Sends argv for r. With script set, argv is copied into the call so that
 * the NOSCRIPT fallback can resend it.
 */
static ngx_int_t
ngx_http_automations_redis_send(ngx_http_request_t *r,
    ngx_http_automations_redis_handler_pt handler, am_script_t *script,
    int argc, const char **argv, const size_t *argvlen, ngx_uint_t *serial)
{
    ngx_http_cleanup_t                *cln;
    ngx_http_automations_redis_t      *rd;
    ngx_http_automations_redis_call_t *call;

    rd = &ngx_http_automations_redis;

    if (rd->state < ngx_http_automations_redis_connecting) {
        return NGX_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    call = ngx_http_automations_redis_call_new(r, script, argc, argv, argvlen);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->request = r;
    call->cleanup = cln;
    call->handler = handler;
    call->start = ngx_current_msec;

    if (script) {
        argv = call->argv;
        argvlen = call->argvlen;
    }

    if (serial) {
        *serial = ngx_http_automations_redis_cache_next(rd);
    }

    if (redisAsyncCommandArgv(
            rd->ac, ngx_http_automations_redis_reply, call, argc, argv, argvlen)
        != REDIS_OK) {
        ngx_free(call);
        return NGX_ERROR;
    }

    if (rd->pending++ == 0) {
        rd->last_activity = ngx_current_msec;
    }

    cln->handler = ngx_http_automations_redis_call_cleanup;
    cln->data = call;

    call->timer.handler = ngx_http_automations_redis_call_timeout;
    call->timer.data = call;
    call->timer.log = r->connection->log;
    ngx_add_timer(&call->timer, rd->amcf->timeout);

    return NGX_OK;
}


ngx_int_t
ngx_http_automations_redis_command(ngx_http_request_t *r,
    ngx_http_automations_redis_handler_pt handler, int argc, const char **argv,
    const size_t *argvlen)
{
    return ngx_http_automations_redis_send(
        r, handler, NULL, argc, argv, argvlen, NULL);
}


ngx_int_t
ngx_http_automations_redis_read(ngx_http_request_t *r,
    ngx_http_automations_redis_handler_pt handler, int argc, const char **argv,
    const size_t *argvlen, ngx_uint_t *serial)
{
    *serial = 0;

    return ngx_http_automations_redis_send(
        r, handler, NULL, argc, argv, argvlen, serial);
}


ngx_flag_t
ngx_http_automations_redis_settled(void)
{
    u_char                        c;
    ssize_t                       n;
    ngx_http_automations_redis_t *rd, *cmd;

    rd = &ngx_http_automations_pubsub;
    cmd = &ngx_http_automations_redis;

    if (!ngx_http_automations_tracking.on || rd->conn == NULL
        || rd->state != ngx_http_automations_redis_up || cmd->conn == NULL
        || cmd->state != ngx_http_automations_redis_up) {
        return 0;
    }

    /* what Redis said is all read: nothing waits on the socket */
    if (recv(rd->conn->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) != -1
        || ngx_socket_errno != NGX_EAGAIN) {
        return 0;
    }

    /*
     * and the tracking connection is not closed unnoticed: its tracking
     * ended with it (replies waiting there are other requests')
     */
    n = recv(cmd->conn->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return n > 0 || (n == -1 && ngx_socket_errno == NGX_EAGAIN);
}


ngx_flag_t
ngx_http_automations_redis_tracked(ngx_uint_t serial)
{
    ngx_http_automations_tracking_t *t;

    t = &ngx_http_automations_tracking;

    return serial != 0 && t->on && serial == t->serial;
}


void
ngx_http_automations_redis_track(
    ngx_http_automations_redis_invalidate_pt handler)
{
    ngx_http_automations_redis_on_invalidate = handler;
}


ngx_int_t
ngx_http_automations_redis_script(ngx_http_request_t *r,
    ngx_http_automations_redis_handler_pt handler, const char *name,
    ngx_uint_t nkeys, ngx_str_t *keys, ngx_uint_t nargs, ngx_str_t *args)
{
    u_char       nk[NGX_INT_T_LEN];
    size_t       argvlen[32];
    ngx_uint_t   i, argc;
    const char  *argv[32];
    am_script_t *script;

    script = am_script_find(name);

    if (script == NULL || 3 + nkeys + nargs > 32) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
            "automations: bad call of redis script \"%s\"", name);
        return NGX_ERROR;
    }

    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = script->sha1;
    argvlen[1] = 40;
    argv[2] = (char *) nk;
    argvlen[2] = ngx_sprintf(nk, "%ui", nkeys) - nk;
    argc = 3;

    for (i = 0; i < nkeys; i++, argc++) {
        argv[argc] = (char *) keys[i].data;
        argvlen[argc] = keys[i].len;
    }

    for (i = 0; i < nargs; i++, argc++) {
        argv[argc] = (char *) args[i].data;
        argvlen[argc] = args[i].len;
    }

    return ngx_http_automations_redis_send(
        r, handler, script, (int) argc, argv, argvlen, NULL);
}


/* "<prefix>{<project>}<suffix>", the key of one of the project's records */
ngx_int_t
ngx_http_automations_project_key(ngx_http_request_t *r, ngx_str_t *project,
    const char *suffix, ngx_str_t *key)
{
    size_t                            len;
    ngx_http_automations_main_conf_t *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_automations_module);

    len = ngx_strlen(suffix);

    key->data = ngx_pnalloc(r->pool, amcf->prefix.len + project->len + 2 + len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len =
        ngx_sprintf(key->data, "%V{%V}%s", &amcf->prefix, project, suffix)
        - key->data;

    return NGX_OK;
}


/* "<prefix>{<project>}:execution:<id>", an execution record */
ngx_int_t
ngx_http_automations_execution_key(
    ngx_http_request_t *r, ngx_str_t *project, ngx_str_t *id, ngx_str_t *key)
{
    ngx_http_automations_main_conf_t *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_automations_module);

    key->data = ngx_pnalloc(r->pool,
        amcf->prefix.len + project->len + sizeof("{}:execution:") + id->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len = ngx_sprintf(
                   key->data, "%V{%V}:execution:%V", &amcf->prefix, project, id)
               - key->data;

    return NGX_OK;
}


/* "<prefix>{<tag>}:<kind>:<digest>", a credential found by its digest */
ngx_int_t
ngx_http_automations_credential_key(ngx_http_request_t *r, ngx_str_t *tag,
    ngx_str_t *kind, ngx_str_t *digest, ngx_str_t *key)
{
    ngx_http_automations_main_conf_t *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_automations_module);

    key->data = ngx_pnalloc(r->pool,
        amcf->prefix.len + tag->len + kind->len + sizeof("{}::") + digest->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len =
        ngx_sprintf(key->data, "%V{%V}:%V:%V", &amcf->prefix, tag, kind, digest)
        - key->data;

    return NGX_OK;
}


/* "<prefix>runs", the stream every worker reads */
ngx_int_t
ngx_http_automations_stream_key(ngx_http_request_t *r, ngx_str_t *key)
{
    ngx_http_automations_main_conf_t *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_automations_module);

    key->data = ngx_pnalloc(r->pool, amcf->prefix.len + sizeof("runs") - 1);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len = ngx_sprintf(key->data, "%Vruns", &amcf->prefix) - key->data;

    return NGX_OK;
}


int64_t
ngx_http_automations_redis_int(redisReply *reply, ngx_uint_t i)
{
    redisReply *e;

    e = reply->element[i];

    return e->type == REDIS_REPLY_INTEGER ? (int64_t) e->integer : 0;
}


ngx_int_t
ngx_http_automations_redis_answer(ngx_http_request_t *r, const char *script,
    ngx_uint_t nkeys, ngx_str_t *keys, ngx_uint_t nargs, ngx_str_t *args)
{
    if (ngx_http_automations_redis_script(r, ngx_http_automations_script_reply,
            script, nkeys, keys, nargs, args)
        != NGX_OK) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
    }

    r->main->count++;

    return NGX_DONE;
}
