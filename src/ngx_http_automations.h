/*
 * Shared declarations of ngx_http_automations_module: configuration, the
 * per-request context, and what each src/ file offers the others, grouped
 * by the file it lives in. The Redis connection has its own header
 * (ngx_http_automations_redis.h), hiredis-style.
 */

#ifndef _NGX_HTTP_AUTOMATIONS_H_INCLUDED_
#define _NGX_HTTP_AUTOMATIONS_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <yajl/yajl_tree.h>

#include "am_execution.h"
#include "am_jwt.h"

/* what a credential may do (docs/data-model.md) */
#define NGX_HTTP_AUTOMATIONS_SCOPE_READ 0x01
#define NGX_HTTP_AUTOMATIONS_SCOPE_WRITE 0x02
#define NGX_HTTP_AUTOMATIONS_SCOPE_RUN 0x04
#define NGX_HTTP_AUTOMATIONS_SCOPE_ALL 0x07

/* the answer whenever Redis cannot serve a request */
#define NGX_HTTP_AUTOMATIONS_UNAVAILABLE "The automations store is unavailable."

/*
 * automations_auth, an ngx_conf_set_bitmask_slot value: 0 while unset,
 * AUTH_OFF for "off", else the schemes a location accepts
 */
#define NGX_HTTP_AUTOMATIONS_AUTH_OFF 0x02
#define NGX_HTTP_AUTOMATIONS_AUTH_JWT 0x04
#define NGX_HTTP_AUTOMATIONS_AUTH_APIKEY 0x08
#define NGX_HTTP_AUTOMATIONS_AUTH_TOKENPAIR 0x10
#define NGX_HTTP_AUTOMATIONS_AUTH_SCHEMES                                      \
    (NGX_HTTP_AUTOMATIONS_AUTH_JWT | NGX_HTTP_AUTOMATIONS_AUTH_APIKEY          \
        | NGX_HTTP_AUTOMATIONS_AUTH_TOKENPAIR)

/* which API a location serves: automations_api, automations_start_api */
#define NGX_HTTP_AUTOMATIONS_HANDLER_NONE 0
#define NGX_HTTP_AUTOMATIONS_HANDLER_API 1
#define NGX_HTTP_AUTOMATIONS_HANDLER_START 2


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

    ngx_flag_t      metrics_collect; /* automations_metrics_collect */
    ngx_shm_zone_t *metrics_zone;

    ngx_uint_t cache_max; /* automations_credential_cache; 0: off */
    ngx_msec_t cache_valid;
} ngx_http_automations_main_conf_t;


typedef struct {
    ngx_uint_t                handler;
    ngx_uint_t                api_inside; /* of a server: see merge */
    ngx_uint_t                auth;       /* AUTH_* as set, 0: unset */
    ngx_uint_t                schemes;    /* AUTH_* enforced, 0: off */
    ngx_uint_t                scope;      /* SCOPE_* needed, 0: any */
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

    ngx_str_t dashboard; /* the page of automations_dashboard */
} ngx_http_automations_loc_conf_t;


typedef enum {
    ngx_http_automations_auth_none = 0,
    ngx_http_automations_auth_pending,
    ngx_http_automations_auth_done
} ngx_http_automations_auth_state_e;


/* what routing made of the path (src/ngx_http_automations_route.c) */
typedef enum {
    ngx_http_automations_route_unset = 0,
    ngx_http_automations_route_found,       /* ctx->route is the row */
    ngx_http_automations_route_not_allowed, /* the path, not the method */
    ngx_http_automations_route_bad_name,    /* a malformed name, 422 */
    ngx_http_automations_route_not_found
} ngx_http_automations_route_state_e;


typedef struct ngx_http_automations_route_s ngx_http_automations_route_t;
typedef struct ngx_http_automations_credential_s
    ngx_http_automations_credential_t;


typedef struct {
    ngx_http_automations_auth_state_e auth_state;
    ngx_int_t                         auth_rc;

    /* who: a credential kind (jwt, apikey, tokenpair, none) and its id */
    ngx_str_t                                credential;
    ngx_str_t                                subject;
    ngx_str_t                                projects; /* space-separated */
    ngx_uint_t                               scopes;
    ngx_str_t                                project; /* the one acted on */
    const ngx_http_automations_credential_t *lookup;  /* one under way */
    ngx_str_t                                record;  /* its key */
    ngx_uint_t                               tracked; /* its serial */
    ngx_str_t                                digest;  /* of the secrets */
    ngx_str_t                                kid;     /* of a JWT */
    ngx_str_t                                alg;     /* of a JWT */
    unsigned                                 authenticated : 1;

    /* set when the module wrote the response, else nginx's error pages
     * are turned into JSON in automations_api locations */
    unsigned  own_response : 1;
    unsigned  replace_body : 1;
    ngx_str_t error_body;

    /* the route, found once in the access phase, and its path parameters */
    ngx_http_automations_route_state_e  route_state;
    const ngx_http_automations_route_t *route;
    ngx_uint_t                          allow; /* methods of the path */
    ngx_str_t                           name;  /* the automation */
    ngx_str_t                           execution_id;

    /* a run waiting for its result (src/ngx_http_automations_wait.c) */
    void *waiter;

    /* a run's enqueue, sent again with the input_schema it was checked
     * with (src/ngx_http_automations_run.c) */
    void *enqueue;
} ngx_http_automations_ctx_t;


/* a content handler: the last column of a row of the routing table */
typedef ngx_int_t (*ngx_http_automations_handler_pt)(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);


/* a row of the routing table (src/ngx_http_automations_route.c) */
struct ngx_http_automations_route_s {
    ngx_uint_t                      api;     /* HANDLER_API, HANDLER_START */
    ngx_uint_t                      methods; /* NGX_HTTP_GET | ... */
    const char                     *path;    /* "NAME/executions/ID" */
    ngx_uint_t                      scope;   /* SCOPE_* needed */
    ngx_http_automations_handler_pt handler;
    const char                     *denied; /* 404 detail, NULL: 403 */
};


/*
 * One field of a JSON request body: its name, JSON type, whether it is
 * required, what else it must satisfy, and the ngx_str_t it is stored in.
 * Endpoints declare tables of them; src/ngx_http_automations_input.c
 * walks a body with one.
 */

#define NGX_HTTP_AUTOMATIONS_JSON_STRING 1
#define NGX_HTTP_AUTOMATIONS_JSON_INTEGER 2
#define NGX_HTTP_AUTOMATIONS_JSON_BOOLEAN 3
#define NGX_HTTP_AUTOMATIONS_JSON_OBJECT 4
#define NGX_HTTP_AUTOMATIONS_JSON_ARRAY 5

#define NGX_HTTP_AUTOMATIONS_FIELD_REQUIRED 0x01
#define NGX_HTTP_AUTOMATIONS_FIELD_NULL 0x02  /* null is as absent */
#define NGX_HTTP_AUTOMATIONS_FIELD_EMPTY 0x04 /* "" or {} is as absent */
#define NGX_HTTP_AUTOMATIONS_FIELD_HASH 0x08  /* an automation hash field */

/* what the checks say, also when the JSON type is wrong */
#define NGX_HTTP_AUTOMATIONS_RUNTIME_EXPECTED                                  \
    "must be a runtime name such as \"python\" or \"sh\""
#define NGX_HTTP_AUTOMATIONS_NETWORK_EXPECTED "must be \"none\" or \"default\""
#define NGX_HTTP_AUTOMATIONS_PRELOAD_EXPECTED                                  \
    "must be an array of python module names"
/* clang-format off */
#define NGX_HTTP_AUTOMATIONS_TIMEOUT_EXPECTED                                  \
    "must be an integer from "                                                 \
    NGX_HTTP_AUTOMATIONS_STR(AM_RUN_TIMEOUT_MIN_MS) " to "                     \
    NGX_HTTP_AUTOMATIONS_STR(AM_RUN_TIMEOUT_MAX_MS)
/* clang-format on */

/* a number macro as a string literal, for messages that state a bound */
#define NGX_HTTP_AUTOMATIONS_STR(n) NGX_HTTP_AUTOMATIONS_STR_(n)
#define NGX_HTTP_AUTOMATIONS_STR_(n) #n

/* NULL when v may be stored, else why not, said after the field's name */
typedef const char *(*ngx_http_automations_check_pt)(yajl_val v);

typedef struct {
    ngx_str_t                     name;
    ngx_uint_t                    type;  /* JSON_* */
    ngx_uint_t                    flags; /* FIELD_* */
    ngx_http_automations_check_pt check;
    const char                   *expect; /* said when the type is wrong */
    size_t                        offset; /* of an ngx_str_t in the result */
} ngx_http_automations_field_t;


extern ngx_module_t ngx_http_automations_module;


/* why the access phase refused a request, a label of the metrics */
typedef enum {
    ngx_http_automations_refusal_missing = 0, /* no credentials */
    ngx_http_automations_refusal_invalid,     /* not genuine */
    ngx_http_automations_refusal_no_project,  /* a JWT naming none */
    ngx_http_automations_refusal_project,     /* not this project */
    ngx_http_automations_refusal_scope,       /* not this operation */
    ngx_http_automations_refusal_n
} ngx_http_automations_refusal_e;


/* the module (ngx_http_automations_module.c) */
ngx_http_automations_ctx_t *ngx_http_automations_get_ctx(ngx_http_request_t *r);

/* routing (src/ngx_http_automations_route.c); the table ends with NULL */
extern ngx_http_automations_route_t ngx_http_automations_routes[];

void ngx_http_automations_route_find(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_uint_t ngx_http_automations_route_scope(ngx_http_automations_ctx_t *ctx);
ngx_int_t  ngx_http_automations_content_handler(ngx_http_request_t *r);
ngx_int_t  ngx_http_automations_project_ready(
     ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);

/* the access phase and $automations_* (src/ngx_http_automations_access.c) */
ngx_int_t ngx_http_automations_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_automations_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_automations_access_invalid(
    ngx_http_request_t *r, ngx_str_t *reason);
void ngx_http_automations_access_resume(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
void      ngx_http_automations_access_unavailable(ngx_http_request_t *r);
ngx_int_t ngx_http_automations_access_decide(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);

/* API keys and tokenpairs (src/ngx_http_automations_credential.c) */
ngx_uint_t ngx_http_automations_scopes_parse(u_char *p, size_t len);
ngx_int_t  ngx_http_automations_apikey(
     ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx, ngx_str_t *key);
ngx_int_t ngx_http_automations_tokenpair(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, ngx_str_t *token, ngx_str_t *api_key);

/* credential records kept by a worker (src/ngx_http_automations_cache.c) */
char *ngx_http_automations_cache_conf(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_automations_cache_init_process(ngx_cycle_t *cycle);
void      ngx_http_automations_cache_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_automations_cache_get(
    ngx_pool_t *pool, ngx_str_t *key, ngx_str_t *field, ngx_uint_t n);
void ngx_http_automations_cache_put(
    ngx_str_t *key, ngx_str_t *field, ngx_uint_t n, ngx_uint_t serial);

/* JWT (src/ngx_http_automations_jwt.c) */
char *ngx_http_automations_jwt_key(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_automations_jwt_jwks(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_automations_jwt_verify(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, ngx_str_t *token, ngx_str_t *reason);
void      ngx_http_automations_jwt_describe(
         ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);

/* request input (src/ngx_http_automations_input.c) */
ngx_table_elt_t *ngx_http_automations_header(
    ngx_http_request_t *r, const char *name);
ngx_flag_t ngx_http_automations_header_value_valid(ngx_str_t *v, size_t max);
ngx_flag_t ngx_http_automations_execution_id_valid(ngx_str_t *id);
ngx_int_t  ngx_http_automations_request_body(
     ngx_http_request_t *r, ngx_str_t *body);
ngx_int_t   ngx_http_automations_fields(ngx_http_request_t *r, ngx_str_t *body,
      const ngx_http_automations_field_t *fields, void *out, ngx_str_t *detail);
const char *ngx_http_automations_check_url(yajl_val v);
const char *ngx_http_automations_check_headers(yajl_val v);
const char *ngx_http_automations_check_webhook_headers(yajl_val v);
const char *ngx_http_automations_check_automation_name(yajl_val v);
const char *ngx_http_automations_check_runtime(yajl_val v);
const char *ngx_http_automations_check_timeout(yajl_val v);
const char *ngx_http_automations_check_network(yajl_val v);
const char *ngx_http_automations_check_objects(yajl_val v);
const char *ngx_http_automations_check_preload(yajl_val v);

/* automations CRUD (src/ngx_http_automations_automation.c) */
ngx_int_t ngx_http_automations_automation_list(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_int_t ngx_http_automations_automation_create(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_int_t ngx_http_automations_automation_get(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_int_t ngx_http_automations_automation_delete(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);

/* runs and execution status, both APIs (src/ngx_http_automations_run.c) */
ngx_int_t ngx_http_automations_run(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_int_t ngx_http_automations_start(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_int_t ngx_http_automations_execution(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_int_t ngx_http_automations_start_execution(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
void ngx_http_automations_run_finish(ngx_http_request_t *r, redisReply *reply);
void ngx_http_automations_run_answer(
    ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *body);

/* input_schema and output_schema (src/ngx_http_automations_schema.c) */
const char *ngx_http_automations_check_schema(yajl_val v);
ngx_int_t   ngx_http_automations_schema_learn(ngx_http_request_t *r,
      ngx_str_t *project, ngx_str_t *name, ngx_str_t *sha1, ngx_str_t *text,
      ngx_str_t *detail);
ngx_int_t   ngx_http_automations_schema_check(ngx_http_request_t *r,
      ngx_str_t *project, ngx_str_t *name, ngx_str_t *json, ngx_flag_t rows,
      ngx_str_t *sha1, ngx_str_t *detail);

/* executions: list, cancel, retry (src/ngx_http_automations_execution.c) */
ngx_int_t ngx_http_automations_execution_list(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_int_t ngx_http_automations_execution_cancel(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_int_t ngx_http_automations_execution_retry(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);

/* waiting for a run's completion (src/ngx_http_automations_wait.c) */
ngx_int_t ngx_http_automations_wait_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_automations_wait(ngx_http_request_t *r, ngx_str_t *id);
void      ngx_http_automations_wait_rekey(ngx_http_request_t *r, ngx_str_t *id);

/* responses and script replies (src/ngx_http_automations_reply.c) */
ngx_int_t ngx_http_automations_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_automations_send(
    ngx_http_request_t *r, ngx_uint_t status, u_char *body, size_t len);
ngx_int_t ngx_http_automations_send_detail(
    ngx_http_request_t *r, ngx_uint_t status, const char *fmt, ...);
ngx_int_t ngx_http_automations_send_message(
    ngx_http_request_t *r, ngx_uint_t status, const char *message);
ngx_int_t ngx_http_automations_send_not_allowed(
    ngx_http_request_t *r, ngx_str_t *allow);
void ngx_http_automations_finish(
    ngx_http_request_t *r, ngx_uint_t status, const char *fmt, ...);
ngx_int_t ngx_http_automations_script_result(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t *status, ngx_str_t *body);
void      ngx_http_automations_script_reply(
         ngx_http_request_t *r, redisReply *reply);
ngx_int_t ngx_http_automations_reply_str(
    ngx_http_request_t *r, redisReply *e, ngx_str_t *s);

/* counters and /metrics (src/ngx_http_automations_metrics.c) */
char *ngx_http_automations_metrics(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_automations_metrics_zone(
    ngx_conf_t *cf, ngx_http_automations_main_conf_t *amcf);
ngx_int_t ngx_http_automations_metrics_init(ngx_conf_t *cf);
void      ngx_http_automations_metrics_process(ngx_flag_t start);
void      ngx_http_automations_metrics_refusal(
         ngx_http_automations_refusal_e reason);
void      ngx_http_automations_metrics_credential(ngx_flag_t cached);
void      ngx_http_automations_metrics_redis(ngx_flag_t up);
void      ngx_http_automations_metrics_script(const char *name, ngx_msec_t ms);
void      ngx_http_automations_metrics_wait(ngx_http_request_t *r);
ngx_int_t ngx_http_automations_metrics_stats(ngx_http_request_t *r,
    void (*handler)(ngx_http_request_t *r, redisReply *reply),
    ngx_flag_t counters);

/* the health check (src/ngx_http_automations_health.c) */
char *ngx_http_automations_health(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* a project's queue overview and dead letters
 * (src/ngx_http_automations_overview.c) */
ngx_int_t ngx_http_automations_queue_overview(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);
ngx_int_t ngx_http_automations_webhook_dead(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx);

/* the dashboard page (src/ngx_http_automations_dashboard.c) */
char *ngx_http_automations_dashboard(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

#endif /* _NGX_HTTP_AUTOMATIONS_H_INCLUDED_ */
