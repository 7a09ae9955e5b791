/*
 * One asynchronous Redis connection of the worker, on its libuv loop: it
 * connects by IP, host name (resolved anew at each connection) or unix
 * socket, authenticates, selects the database,
 * reconnects with backoff when Redis goes away, and drops a connection that
 * stops answering. Scripts of redis/ are called by digest, with the body
 * sent once when Redis does not know it yet.
 */

#ifndef AM_RDS_H
#define AM_RDS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "am_redis_addr.h"

typedef struct am_rds_s am_rds_t;

/* Called once per command: reply is NULL when the connection was lost. */
typedef void (*am_rds_reply_pt)(am_rds_t *r, redisReply *reply, void *data);

/* Called when the connection becomes usable (up = 1) or is lost (up = 0). */
typedef void (*am_rds_state_pt)(am_rds_t *r, int up, void *data);

typedef struct {
    const char *addr;     /* as am_redis_addr.h reads it */
    const char *password; /* NULL: no AUTH */
    int         db;
} am_rds_conf_t;

struct am_rds_s {
    uv_loop_t           *loop;
    const am_rds_conf_t *conf;
    const char          *name; /* in log lines: "commands", "reader" */
    am_redis_addr_t      addr;

    uv_getaddrinfo_t   resolve;
    int                resolving;
    redisAsyncContext *ac;
    int                ready;   /* connected, authenticated, selected */
    int                closing; /* am_rds_close() called: no reconnect */
    int                down_logged;
    const char        *dropped; /* why am_rds_drop() cuts the connection */
    unsigned           backoff_ms;

    /* a reply must come within timeout_ms of the oldest command sent */
    uint64_t   timeout_ms;
    unsigned   pending;
    uint64_t   last_io;
    uv_timer_t timer; /* reconnect backoff, then the watchdog */

    am_rds_state_pt on_state;
    void           *data;
};

/*
 * Checks the address and prepares r; 0, or -1 with the reason in err. The
 * first connection is made by am_rds_connect().
 */
int am_rds_init(am_rds_t *r, uv_loop_t *loop, const am_rds_conf_t *conf,
    const char *name, am_rds_state_pt on_state, void *data, char *err,
    size_t errlen);

/*
 * Connects; a failure or a later loss is retried with backoff, and
 * on_state says when the connection is ready.
 */
void am_rds_connect(am_rds_t *r);

/*
 * Sends a command. 0: cb will be called once, with the reply or NULL.
 * -1: the connection is not usable now, nothing was sent, cb is not called.
 */
int am_rds_command(am_rds_t *r, am_rds_reply_pt cb, void *data, int argc,
    const char **argv, const size_t *argvlen);

/*
 * Runs the embedded script called name: argv[0 .. nkeys-1] are its KEYS,
 * the rest its ARGV, of argvlen[i] bytes (argvlen NULL: NUL-terminated
 * strings). The arguments are copied. Same contract as am_rds_command();
 * an error reply of the script is passed on to cb.
 */
int am_rds_eval(am_rds_t *r, const char *name, int nkeys, int argc,
    const char **argv, const size_t *argvlen, am_rds_reply_pt cb, void *data);

/* Writes the commands sent so far now, not when the loop is about to wait. */
void am_rds_flush(am_rds_t *r);

/*
 * Closes the connection for good: commands in flight get NULL replies,
 * the state callback is not called again, the timer is closed.
 */
void am_rds_close(am_rds_t *r);

/* Milliseconds of the loop's clock. */
#define am_rds_now(r) uv_now((r)->loop)

#endif
