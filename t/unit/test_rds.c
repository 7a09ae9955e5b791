/*
 * The worker's Redis connection (src/worker/rds.c) against a Redis played
 * by this test on a loopback socket: when commands leave (the loop's turn,
 * or am_rds_flush()), several in one write, a write the kernel takes only
 * in part, replies, and a connection closed with commands in flight.
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "worker/rds.h"
#include "tap.h"

/* what the test's Redis has read, and its socket */
static int    peer = -1;
static char  *got;
static size_t got_len, got_size;

/* the replies the test's commands had: type and text, or none (-1) */
typedef struct {
    int  calls;
    int  type;
    char str[64];
} reply_t;

static int ready_calls;

static void
state_cb(am_rds_t *r, int up, void *data)
{
    (void) r;
    (void) data;

    if (up) {
        ready_calls++;
    }
}

static void
reply_cb(am_rds_t *r, redisReply *reply, void *data)
{
    reply_t *rep = data;

    (void) r;

    rep->calls++;
    rep->type = reply ? reply->type : -1;
    rep->str[0] = '\0';
    if (reply != NULL && reply->str != NULL) {
        snprintf(rep->str, sizeof(rep->str), "%s", reply->str);
    }
}

/* Reads what the peer has now, without waiting; the bytes read. */
static size_t
drain(void)
{
    char    buf[65536];
    ssize_t n;
    size_t  total = 0;

    for (;;) {
        n = recv(peer, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0) {
            break;
        }
        if (got_len + (size_t) n + 1 > got_size) {
            got_size = (got_len + (size_t) n + 1) * 2;
            got = realloc(got, got_size);
            if (got == NULL) {
                am_test_bail("out of memory");
            }
        }
        memcpy(got + got_len, buf, (size_t) n);
        got_len += (size_t) n;
        got[got_len] = '\0';
        total += (size_t) n;
    }

    return total;
}

static void
reset(void)
{
    got_len = 0;
    if (got != NULL) {
        got[0] = '\0';
    }
}

static void
say(const char *s)
{
    if (send(peer, s, strlen(s), 0) != (ssize_t) strlen(s)) {
        am_test_bail("cannot answer");
    }
}

/* Runs the loop's turns until cond holds, for at most about a second. */
#define TURN_UNTIL(loop, cond)                                                 \
    do {                                                                       \
        int turns_;                                                            \
        for (turns_ = 0; turns_ < 1000 && !(cond); turns_++) {                 \
            (void) uv_run(loop, UV_RUN_NOWAIT);                                \
            if (!(cond)) {                                                     \
                (void) poll(NULL, 0, 1);                                       \
            }                                                                  \
        }                                                                      \
    } while (0)

int
main(void)
{
    static const char  ping[] = "*1\r\n$4\r\nPING\r\n";
    static const char  echo_a[] = "*2\r\n$4\r\nECHO\r\n$1\r\na\r\n";
    struct sockaddr_in sin;
    socklen_t          slen;
    am_rds_conf_t      conf;
    am_rds_t           r;
    uv_loop_t          loop;
    reply_t            one, two, big_rep, lost;
    char               addr[64], err[256], *big;
    const char        *argv[2];
    size_t             big_len, want, expect;
    int                lfd, turns;

    if (uv_loop_init(&loop) != 0) {
        am_test_bail("uv_loop_init");
    }

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    slen = sizeof(sin);
    if (lfd == -1 || bind(lfd, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || listen(lfd, 1) != 0
        || getsockname(lfd, (struct sockaddr *) &sin, &slen) != 0) {
        am_test_bail("cannot listen on 127.0.0.1");
    }

    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
    memset(&conf, 0, sizeof(conf));
    conf.addr = addr;

    if (am_rds_init(&r, &loop, &conf, "test", state_cb, NULL, err, sizeof(err))
        != 0) {
        am_test_bail(err);
    }

    am_rds_connect(&r);

    /* the connect was made at once: the listener has it */
    peer = accept(lfd, NULL, NULL);
    if (peer == -1) {
        am_test_bail("accept");
    }

    TURN_UNTIL(&loop, (drain(), got_len >= sizeof(ping) - 1));
    am_test_ok(strcmp(got, ping) == 0, "the login is a PING");
    say("+PONG\r\n");
    TURN_UNTIL(&loop, r.ready);
    am_test_ok(r.ready && ready_calls == 1, "ready after the PONG");

    /* a command waits for the loop's turn; am_rds_flush writes it now */
    reset();
    memset(&one, 0, sizeof(one));
    argv[0] = "ECHO";
    argv[1] = "a";
    am_test_ok(am_rds_command(&r, reply_cb, &one, 2, argv, NULL) == 0,
        "a command is taken");
    am_test_ok(drain() == 0, "nothing is written before the loop's turn");
    am_rds_flush(&r);
    drain();
    am_test_ok(strcmp(got, echo_a) == 0,
        "am_rds_flush writes it at once (got %zu bytes)", got_len);

    /* the turn has nothing left to write */
    reset();
    (void) uv_run(&loop, UV_RUN_NOWAIT);
    am_test_ok(drain() == 0, "the loop's turn writes nothing more");

    say("$1\r\na\r\n");
    TURN_UNTIL(&loop, one.calls > 0);
    am_test_ok(one.calls == 1 && one.type == REDIS_REPLY_STRING
                   && strcmp(one.str, "a") == 0,
        "its reply comes to its callback");

    /* nothing queued: a flush does nothing */
    am_rds_flush(&r);
    am_test_ok(drain() == 0, "a flush with nothing to send writes nothing");

    /* two commands of one turn leave in one write, in order */
    reset();
    memset(&one, 0, sizeof(one));
    memset(&two, 0, sizeof(two));
    argv[0] = "PING";
    (void) am_rds_command(&r, reply_cb, &one, 1, argv, NULL);
    argv[0] = "ECHO";
    (void) am_rds_command(&r, reply_cb, &two, 2, argv, NULL);
    am_test_ok(drain() == 0, "two commands wait for the turn");
    (void) uv_run(&loop, UV_RUN_NOWAIT);
    drain();
    expect = sizeof(ping) - 1 + sizeof(echo_a) - 1;
    am_test_ok(got_len == expect && strncmp(got, ping, sizeof(ping) - 1) == 0
                   && strcmp(got + sizeof(ping) - 1, echo_a) == 0,
        "the turn writes both, in order (got %zu of %zu bytes)", got_len,
        expect);
    say("+PONG\r\n$1\r\na\r\n");
    TURN_UNTIL(&loop, two.calls > 0);
    am_test_ok(one.calls == 1 && strcmp(one.str, "PONG") == 0 && two.calls == 1
                   && strcmp(two.str, "a") == 0,
        "each reply to its own callback");

    /*
     * A command larger than the kernel takes at once: the flush writes what
     * fits, the rest leaves as the peer reads, whole and in order.
     */
    big_len = 8 << 20;
    big = malloc(big_len + 1);
    if (big == NULL) {
        am_test_bail("out of memory");
    }
    memset(big, 'x', big_len);
    big[big_len] = '\0';
    reset();
    memset(&big_rep, 0, sizeof(big_rep));
    argv[0] = "ECHO";
    argv[1] = big;
    (void) am_rds_command(&r, reply_cb, &big_rep, 2, argv, NULL);
    am_rds_flush(&r);
    want = sizeof("*2\r\n$4\r\nECHO\r\n$8388608\r\n\r\n") - 1 + big_len;
    am_test_ok(drain() < want, "the kernel takes part of a big command");
    for (turns = 0; turns < 100000 && got_len < want; turns++) {
        (void) uv_run(&loop, UV_RUN_NOWAIT);
        drain();
    }
    am_test_ok(got_len == want && got[want - 3] == 'x'
                   && memcmp(got + want - 2, "\r\n", 2) == 0,
        "the rest follows as the peer reads (%zu of %zu bytes)", got_len, want);
    say("+OK\r\n");
    TURN_UNTIL(&loop, big_rep.calls > 0);
    am_test_ok(big_rep.calls == 1 && strcmp(big_rep.str, "OK") == 0,
        "the big command has its reply");
    free(big);

    /* closed with a command in flight: its callback has NULL */
    memset(&lost, 0, sizeof(lost));
    argv[0] = "PING";
    (void) am_rds_command(&r, reply_cb, &lost, 1, argv, NULL);
    am_rds_flush(&r);
    am_rds_close(&r);
    TURN_UNTIL(&loop, lost.calls > 0);
    am_test_ok(lost.calls == 1 && lost.type == -1,
        "a command in flight at close gets no reply");
    am_test_ok(am_rds_command(&r, reply_cb, &lost, 1, argv, NULL) == -1,
        "a closed connection takes no command");
    am_rds_flush(&r);
    am_test_ok(1, "a flush after close does nothing");

    (void) uv_run(&loop, UV_RUN_DEFAULT);
    am_test_ok(uv_loop_close(&loop) == 0, "every handle is closed");

    close(peer);
    close(lfd);
    free(got);

    return am_test_done();
}
