/*
 * The Redis command connection of one nginx worker process: async hiredis
 * driven by nginx events and timers, shared by every request of the worker;
 * and the names of the keys the module uses.
 */

#ifndef _NGX_HTTP_AUTOMATIONS_REDIS_H_INCLUDED_
#define _NGX_HTTP_AUTOMATIONS_REDIS_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

/*
 * Called once per command with the request that sent it. reply is NULL when
 * Redis could not answer in time or the connection dropped; the handler then
 * owes the client a 503. The reply is freed after the handler returns.
 */
typedef void (*ngx_http_automations_redis_handler_pt)(
    ngx_http_request_t *r, redisReply *reply);

/*
 * Called for each completion published on this worker process's channel
 * (ngx_http_automations_redis_waiter_channel) or on "<prefix>completions",
 * and with
 * NULL each time the subscription or the command connection is
 * (re)established: completions may have been missed, or not looked at.
 */
typedef void (*ngx_http_automations_redis_message_pt)(ngx_str_t *payload);

ngx_int_t ngx_http_automations_redis_init_process(ngx_cycle_t *cycle);
void      ngx_http_automations_redis_subscribe(
         ngx_http_automations_redis_message_pt handler);
void ngx_http_automations_redis_exit_process(ngx_cycle_t *cycle);

/* Whether commands can be sent now; when not, answer 503 at once. */
ngx_flag_t ngx_http_automations_redis_ready(void);

/* The channel a synchronous run's completion is published on for this
   worker process: the enqueue of a run it waits for names it. */
ngx_str_t *ngx_http_automations_redis_waiter_channel(void);

/* Whether the connection is up and its handshake has answered. */
ngx_flag_t ngx_http_automations_redis_is_up(void);

/*
 * Sends a command for r. Returns NGX_OK when sent (the handler will run
 * exactly once, unless r is finalized first), or NGX_ERROR when Redis is
 * not available (the handler will not run).
 */
ngx_int_t ngx_http_automations_redis_command(ngx_http_request_t *r,
    ngx_http_automations_redis_handler_pt handler, int argc, const char **argv,
    const size_t *argvlen);

/*
 * Client-side caching. The handler is called with the name of each key a
 * tracked read returned that has changed since, and with NULL whenever
 * every cached record must go: Redis was flushed, a connection dropped,
 * tracking was turned off. Registered before the connections open, or
 * nothing is tracked.
 */
typedef void (*ngx_http_automations_redis_invalidate_pt)(ngx_str_t *key);

void ngx_http_automations_redis_track(
    ngx_http_automations_redis_invalidate_pt handler);

/*
 * Sends a read whose reply may be cached, as ngx_http_automations_redis_
 * command() does. When Redis tracks it, *serial is not 0: the reply may be
 * cached if ngx_http_automations_redis_tracked(*serial) still holds when it
 * arrives (no invalidation came in between that could concern it).
 */
ngx_int_t ngx_http_automations_redis_read(ngx_http_request_t *r,
    ngx_http_automations_redis_handler_pt handler, int argc, const char **argv,
    const size_t *argvlen, ngx_uint_t *serial);

ngx_flag_t ngx_http_automations_redis_tracked(ngx_uint_t serial);

/*
 * Whether a cached record may be used now: tracking is on, nothing Redis
 * sent the subscriber connection waits unread (an invalidation that
 * arrived while this worker process was busy would be applied before the
 * request, not after it), and the command connection, whose tracking it
 * is, was not closed by Redis unnoticed.
 */
ngx_flag_t ngx_http_automations_redis_settled(void);

/*
 * Calls a script of redis/ by name with EVALSHA (EVAL when Redis has lost
 * it). keys and args are ngx_str_t arrays of nkeys and nargs.
 */
ngx_int_t ngx_http_automations_redis_script(ngx_http_request_t *r,
    ngx_http_automations_redis_handler_pt handler, const char *script,
    ngx_uint_t nkeys, ngx_str_t *keys, ngx_uint_t nargs, ngx_str_t *args);

/*
 * Sends a script whose { status, body } reply is the request's answer
 * (ngx_http_automations_script_reply); what a content handler returns:
 * NGX_DONE, or the 503 sent when Redis cannot take the command.
 */
ngx_int_t ngx_http_automations_redis_answer(ngx_http_request_t *r,
    const char *script, ngx_uint_t nkeys, ngx_str_t *keys, ngx_uint_t nargs,
    ngx_str_t *args);

/*
 * Key names, allocated from r's pool. The project's keys carry it as a hash
 * tag; "<prefix>{<project>}:" is also the key base scripts take as ARGV.
 */
ngx_int_t ngx_http_automations_project_key(ngx_http_request_t *r,
    ngx_str_t *project, const char *suffix, ngx_str_t *key);
ngx_int_t ngx_http_automations_execution_key(
    ngx_http_request_t *r, ngx_str_t *project, ngx_str_t *id, ngx_str_t *key);
ngx_int_t ngx_http_automations_credential_key(ngx_http_request_t *r,
    ngx_str_t *tag, ngx_str_t *kind, ngx_str_t *digest, ngx_str_t *key);
ngx_int_t ngx_http_automations_stream_key(
    ngx_http_request_t *r, ngx_str_t *key);

/* element i of an array reply as an integer, 0 when it is not one */
int64_t ngx_http_automations_redis_int(redisReply *reply, ngx_uint_t i);

#endif /* _NGX_HTTP_AUTOMATIONS_REDIS_H_INCLUDED_ */
