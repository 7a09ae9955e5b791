/*
 * The CLI's Redis connection: synchronous hiredis, key names, and calls of
 * the embedded scripts of redis/.
 */

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "am_redis_addr.h"
#include "am_scripts.h"
#include "ctl.h"

#define CTL_TIMEOUT_SEC 10

static int
ctl_login(ctl_t *ctl)
{
    const char *argv[2];
    char        db[16];
    redisReply *r;

    if (ctl->password != NULL) {
        argv[0] = "AUTH";
        argv[1] = ctl->password;
        r = ctl_command(ctl, 2, argv);
        if (r == NULL) {
            return -1;
        }
        freeReplyObject(r);
    }

    if (ctl->db != 0) {
        snprintf(db, sizeof(db), "%d", ctl->db);
        argv[0] = "SELECT";
        argv[1] = db;
        r = ctl_command(ctl, 2, argv);
        if (r == NULL) {
            return -1;
        }
        freeReplyObject(r);
    }

    return 0;
}

/* Connects, authenticates and selects the database; 0, or -1 with a message. */
int
ctl_connect(ctl_t *ctl)
{
    struct timeval  tv = {CTL_TIMEOUT_SEC, 0};
    am_redis_addr_t a;
    char            ip[INET6_ADDRSTRLEN], err[512];

    if (am_redis_addr_parse(ctl->redis, &a, err, sizeof(err)) != 0) {
        ctl_error("invalid redis address %s", err);
        return -1;
    }

    if (a.path == NULL
        && am_redis_addr_resolve(&a, ip, sizeof(ip), err, sizeof(err)) != 0) {
        ctl_error("redis: %s", err);
        return -1;
    }

    ctl->c = a.path ? redisConnectUnixWithTimeout(a.path, tv)
                    : redisConnectWithTimeout(ip, a.port, tv);

    if (ctl->c == NULL) {
        ctl_error("out of memory");
        return -1;
    }

    if (ctl->c->err) {
        ctl_error(
            "cannot connect to redis at %s: %s", ctl->redis, ctl->c->errstr);
        ctl_disconnect(ctl);
        return -1;
    }

    if (redisSetTimeout(ctl->c, tv) != REDIS_OK || ctl_login(ctl) != 0) {
        ctl_disconnect(ctl);
        return -1;
    }

    return 0;
}

void
ctl_disconnect(ctl_t *ctl)
{
    if (ctl->c != NULL) {
        redisFree(ctl->c);
        ctl->c = NULL;
    }
}

/*
 * Writes "<prefix>{tag}:rest" into buf (CTL_KEY_MAX bytes), or
 * "<prefix>rest" when tag is NULL. The prefix and names are bounded, so
 * this only fails on a bug; 0, or -1.
 */
int
ctl_key(const ctl_t *ctl, char *buf, const char *tag, const char *rest)
{
    int n;

    if (tag != NULL) {
        n = snprintf(buf, CTL_KEY_MAX, "%s{%s}:%s", ctl->prefix, tag, rest);
    } else {
        n = snprintf(buf, CTL_KEY_MAX, "%s%s", ctl->prefix, rest);
    }

    if (n < 0 || n >= CTL_KEY_MAX) {
        ctl_error("key name too long");
        return -1;
    }

    return 0;
}

/* Returns the reply, or NULL after printing the I/O or Redis error. */
static redisReply *
ctl_call(ctl_t *ctl, int argc, const char **argv, int from_script)
{
    redisReply *r;

    r = redisCommandArgv(ctl->c, argc, argv, NULL);

    if (r == NULL) {
        ctl_error("redis at %s: %s", ctl->redis, ctl->c->errstr);
        return NULL;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        /* the scripts' own errors are written for the user */
        if (from_script && strncmp(r->str, "ERR ", 4) != 0) {
            ctl_error("%s", r->str);
        } else {
            ctl_error("redis: %s", r->str);
        }
        freeReplyObject(r);
        return NULL;
    }

    return r;
}

redisReply *
ctl_command(ctl_t *ctl, int argc, const char **argv)
{
    return ctl_call(ctl, argc, argv, 0);
}

/*
 * Runs the embedded script called name with argv[0 .. nkeys-1] as KEYS and
 * the rest as ARGV. EVAL with the body is simple and costs nothing for a
 * CLI; the module uses EVALSHA.
 */
redisReply *
ctl_eval(ctl_t *ctl, const char *name, int nkeys, int argc, const char **argv)
{
    const char  *args[CTL_ARGS_MAX + 3];
    am_script_t *s;
    char         n[16];

    s = am_script_find(name);
    if (s == NULL || argc > CTL_ARGS_MAX) {
        ctl_error("internal error: script %s", name);
        return NULL;
    }

    snprintf(n, sizeof(n), "%d", nkeys);
    args[0] = "EVAL";
    args[1] = s->body;
    args[2] = n;
    memcpy(&args[3], argv, (size_t) argc * sizeof(char *));

    return ctl_call(ctl, argc + 3, args, 1);
}

/*
 * After a change that revokes credentials: one more round trip. Redis
 * writes the invalidations of a change to the nginx credential caches
 * (client-side caching) in the same turn of its event loop as the change's
 * reply, but after that reply; it answers a later command only after that
 * turn. Once this PING is answered, every nginx on this host has the
 * invalidation in its socket, and its next request refuses the credential.
 * The change is done either way: a failed PING is only reported.
 */
void
ctl_settle(ctl_t *ctl)
{
    const char *argv[1] = {"PING"};
    redisReply *r;

    r = ctl_command(ctl, 1, argv);
    if (r != NULL) {
        freeReplyObject(r);
    }
}
