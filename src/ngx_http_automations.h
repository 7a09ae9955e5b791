/*
 * Shared declarations of ngx_http_automations_module: configuration, the
 * per-request context, and the entry points each src/ file offers.
 */

#ifndef _NGX_HTTP_AUTOMATIONS_H_INCLUDED_
#define _NGX_HTTP_AUTOMATIONS_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "am_jwt.h"

/* what a credential may do (docs/data-model.md) */
#define NGX_HTTP_AUTOMATIONS_SCOPE_READ 0x01
#define NGX_HTTP_AUTOMATIONS_SCOPE_WRITE 0x02
#define NGX_HTTP_AUTOMATIONS_SCOPE_RUN 0x04
#define NGX_HTTP_AUTOMATIONS_SCOPE_ALL 0x07

/* the answer whenever Redis cannot serve a request */
#define NGX_HTTP_AUTOMATIONS_UNAVAILABLE "The automations store is unavailable."

/* which credentials a location accepts */
#define NGX_HTTP_AUTOMATIONS_AUTH_JWT 0x01
#define NGX_HTTP_AUTOMATIONS_AUTH_APIKEY 0x02
#define NGX_HTTP_AUTOMATIONS_AUTH_TOKEN 0x04

/* what serves the content of a location */
#define NGX_HTTP_AUTOMATIONS_HANDLER_NONE 0
#define NGX_HTTP_AUTOMATIONS_HANDLER_API 1
#define NGX_HTTP_AUTOMATIONS_HANDLER_START 2

/* the routes of both APIs */
#define NGX_HTTP_AUTOMATIONS_ROUTE_UNSET 0
#define NGX_HTTP_AUTOMATIONS_ROUTE_NOT_FOUND 1
#define NGX_HTTP_AUTOMATIONS_ROUTE_BAD_NAME 2
#define NGX_HTTP_AUTOMATIONS_ROUTE_COLLECTION 3
#define NGX_HTTP_AUTOMATIONS_ROUTE_ITEM 4
#define NGX_HTTP_AUTOMATIONS_ROUTE_RUN 5
#define NGX_HTTP_AUTOMATIONS_ROUTE_EXECUTION 6
#define NGX_HTTP_AUTOMATIONS_ROUTE_START 7


typedef struct {
    ngx_str_t  redis;      /* as written in the conf */
    ngx_str_t  redis_host; /* NUL-terminated IP */
    ngx_int_t  redis_port;
    ngx_str_t  redis_unix; /* NUL-terminated path */
    ngx_str_t  redis_password;
    ngx_int_t  redis_db;
    ngx_str_t  prefix;
    ngx_msec_t connect_timeout;
    ngx_msec_t timeout;
} ngx_http_automations_main_conf_t;


typedef struct {
    ngx_uint_t                handler;
    ngx_uint_t                auth;    /* as set, or unset */
    ngx_uint_t                schemes; /* AUTH_* enforced, 0: off */
    ngx_uint_t                scope;   /* SCOPE_* needed, 0: any */
    ngx_http_complex_value_t *project;

    am_jwt_keys_t *jwt_keys;
    time_t         jwt_leeway;
    ngx_str_t      jwt_issuer;        /* NUL-terminated */
    ngx_str_t      jwt_audience;      /* NUL-terminated */
    ngx_str_t      jwt_project_claim; /* NUL-terminated */
    ngx_str_t      jwt_role_claim;    /* NUL-terminated */
    size_t         jwt_max_size;

    size_t     max_body_size;
    ngx_msec_t run_wait;
    time_t     retention;
} ngx_http_automations_loc_conf_t;


typedef enum {
    ngx_http_automations_auth_none = 0,
    ngx_http_automations_auth_pending,
    ngx_http_automations_auth_done
} ngx_http_automations_auth_state_e;


typedef struct {
    ngx_http_automations_auth_state_e auth_state;
    ngx_int_t                         auth_rc;

    ngx_str_t  credential; /* jwt, apikey, token */
    ngx_str_t  subject;
    ngx_str_t  projects; /* space-separated */
    ngx_uint_t scopes;
    ngx_str_t  project; /* the one acted on */
    ngx_str_t  digest;  /* of the secrets */
    unsigned   authenticated : 1;

    /* set when the module wrote the response, else nginx's error pages
     * are turned into JSON in automations_api locations */
    unsigned  own_response : 1;
    unsigned  replace_body : 1;
    ngx_str_t error_body;

    /* the Automations API route, parsed once for auth and content */
    ngx_uint_t route;
    ngx_str_t  name; /* the automation */
    ngx_str_t  execution_id;

    /* a run waiting for its result (src/ngx_http_automations_wait.c) */
    void *waiter;
} ngx_http_automations_ctx_t;


extern ngx_module_t ngx_http_automations_module;


ngx_http_automations_ctx_t *ngx_http_automations_get_ctx(ngx_http_request_t *r);
ngx_uint_t ngx_http_automations_scopes_parse(u_char *p, size_t len);
ngx_int_t  ngx_http_automations_execution_key(
     ngx_http_request_t *r, ngx_str_t *project, ngx_str_t *id, ngx_str_t *key);
ngx_int_t ngx_http_automations_project_key(ngx_http_request_t *r,
    ngx_str_t *project, const char *suffix, ngx_str_t *key);

/* auth (src/ngx_http_automations_auth.c) */
ngx_int_t ngx_http_automations_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_automations_add_variables(ngx_conf_t *cf);

/* JWT (src/ngx_http_automations_jwt.c) */
char *ngx_http_automations_jwt_key(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_automations_jwt_jwks(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_automations_jwt_verify(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, ngx_str_t *token, ngx_str_t *reason);

/* the Automations API (src/ngx_http_automations_api.c) */
ngx_uint_t ngx_http_automations_api_scope(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_int_t ngx_http_automations_api_handler(ngx_http_request_t *r);

ngx_uint_t ngx_http_automations_path_split(
    ngx_http_request_t *r, ngx_str_t *seg);
ngx_flag_t       ngx_http_automations_execution_id_valid(ngx_str_t *id);
ngx_table_elt_t *ngx_http_automations_header(
    ngx_http_request_t *r, const char *name);

ngx_int_t ngx_http_automations_script_result(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t *status, ngx_str_t *body);
void      ngx_http_automations_script_reply(
         ngx_http_request_t *r, redisReply *reply);
ngx_int_t ngx_http_automations_not_allowed(
    ngx_http_request_t *r, const char *allow);
ngx_int_t ngx_http_automations_request_body(
    ngx_http_request_t *r, ngx_str_t *body);
ngx_flag_t ngx_http_automations_url_valid(const char *s);

/* runs and executions, both APIs (src/ngx_http_automations_run.c) */
ngx_int_t  ngx_http_automations_run_handler(ngx_http_request_t *r);
ngx_int_t  ngx_http_automations_execution_handler(ngx_http_request_t *r);
ngx_int_t  ngx_http_automations_start_handler(ngx_http_request_t *r);
ngx_uint_t ngx_http_automations_start_route(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
void ngx_http_automations_run_finish(ngx_http_request_t *r, redisReply *reply);

/* waiting for a run's completion (src/ngx_http_automations_wait.c) */
ngx_int_t ngx_http_automations_wait_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_automations_wait(ngx_http_request_t *r, ngx_str_t *id);
void      ngx_http_automations_wait_rekey(ngx_http_request_t *r, ngx_str_t *id);

/* responses (src/ngx_http_automations_reply.c) */
ngx_int_t ngx_http_automations_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_automations_send(
    ngx_http_request_t *r, ngx_uint_t status, u_char *body, size_t len);
ngx_int_t ngx_http_automations_send_detail(
    ngx_http_request_t *r, ngx_uint_t status, const char *fmt, ...);
ngx_int_t ngx_http_automations_send_message(
    ngx_http_request_t *r, ngx_uint_t status, const char *message);
void ngx_http_automations_finish(
    ngx_http_request_t *r, ngx_uint_t status, const char *fmt, ...);
u_char *ngx_http_automations_json_escape(u_char *dst, u_char *src, size_t len);
size_t  ngx_http_automations_json_escape_len(u_char *src, size_t len);

#endif /* _NGX_HTTP_AUTOMATIONS_H_INCLUDED_ */
