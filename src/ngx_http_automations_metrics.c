/*
 * automations_metrics: the Prometheus text exposition (format 0.0.4).
 *
 * Three sources, one page:
 *
 *   nginx    counters in a shared memory zone, summed over the worker
 *            processes: requests by endpoint and status (counted in the
 *            log phase), auth refusals, the enqueue and synchronous wait
 *            latencies, the Redis connection of each worker process.
 *            Only atomic adds on the request path: no lock, no Redis.
 *   Redis    read when the page is asked for, with redis/stats.lua (one
 *            round trip on the worker process's connection): the run
 *            stream's depth, pending entries and oldest age, the dead
 *            letters, the live workers.
 *   workers  each worker keeps its counters in a hash of its own that
 *            expires with its heartbeat (redis/worker_beat.lua); the same
 *            script returns those of the live workers, already in this
 *            format, with a worker label, and the page copies them.
 *
 * "automations_metrics_collect off" leaves the zone out, for measuring
 * what counting costs; the page then has the Redis part only.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <nginx.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_scripts.h"
#include "am_version.h"


/* nginx worker processes with a slot for their connection state */
#define NGX_HTTP_AUTOMATIONS_METRICS_SLOTS 256

/* statuses 100 to 599, each counted on its own */
#define NGX_HTTP_AUTOMATIONS_METRICS_STATUS_MIN 100
#define NGX_HTTP_AUTOMATIONS_METRICS_STATUSES 500

#define NGX_HTTP_AUTOMATIONS_METRICS_BUCKETS 12

/* a line of the page is at most this long, worker samples aside */
#define NGX_HTTP_AUTOMATIONS_METRICS_LINE 512


typedef struct {
    /* per bucket, not cumulative; the last is above every bound */
    ngx_atomic_t bucket[NGX_HTTP_AUTOMATIONS_METRICS_BUCKETS + 1];
    ngx_atomic_t sum_ms;
} ngx_http_automations_histogram_t;


typedef struct {
    ngx_atomic_t pid; /* 0: free */
    ngx_atomic_t up;
} ngx_http_automations_slot_t;


/*
 * The zone. requests[] has a row of STATUSES per route of the routing
 * table, then one per API for the requests that matched no route.
 */
typedef struct {
    ngx_uint_t                       endpoints;
    ngx_atomic_t                     refusals[ngx_http_automations_refusal_n];
    ngx_atomic_t                     reconnects;
    ngx_atomic_t                     credentials[2]; /* read, cached */
    ngx_http_automations_histogram_t enqueue;
    ngx_http_automations_histogram_t wait;
    ngx_http_automations_slot_t      slots[NGX_HTTP_AUTOMATIONS_METRICS_SLOTS];
    ngx_atomic_t                     requests[1];
} ngx_http_automations_metrics_shm_t;


typedef struct {
    ngx_http_request_t *r;
    ngx_chain_t        *out;
    ngx_chain_t       **last;
    ngx_buf_t          *b;
} ngx_http_automations_page_t;


static ngx_int_t ngx_http_automations_metrics_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t ngx_http_automations_metrics_log(ngx_http_request_t *r);
static ngx_int_t ngx_http_automations_metrics_handler(ngx_http_request_t *r);


/* bounds in ms: Redis round trips, then waits for a run's result */
static ngx_msec_t ngx_http_automations_enqueue_bounds[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000};

static ngx_msec_t ngx_http_automations_wait_bounds[] = {
    10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000};

static const char *ngx_http_automations_refusal_names[] = {
    "missing", "invalid", "no_project", "project", "scope"};

static const char *ngx_http_automations_api_names[] = {
    "", "automations", "start"};

static ngx_str_t ngx_http_automations_metrics_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");

/* this process's view of the zone; NULL when not counting */
static ngx_http_automations_metrics_shm_t *ngx_http_automations_shm;
static ngx_http_automations_slot_t        *ngx_http_automations_slot;
static ngx_flag_t                          ngx_http_automations_was_up;


static ngx_uint_t
ngx_http_automations_metrics_nroutes(void)
{
    ngx_uint_t n;

    for (n = 0; ngx_http_automations_routes[n].path; n++) {
        /* void */
    }

    return n;
}


/* automations_metrics: this location serves the page */
char *
ngx_http_automations_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate, or the location has another handler";
    }

    clcf->handler = ngx_http_automations_metrics_handler;

    return NGX_CONF_OK;
}


/* the zone, from the http block's init: unless collecting is off */
ngx_int_t
ngx_http_automations_metrics_zone(
    ngx_conf_t *cf, ngx_http_automations_main_conf_t *amcf)
{
    size_t     size;
    ngx_str_t  name;
    ngx_uint_t endpoints;

    if (!amcf->metrics_collect) {
        return NGX_OK;
    }

    endpoints = ngx_http_automations_metrics_nroutes() + 2;

    size = sizeof(ngx_http_automations_metrics_shm_t)
           + endpoints * NGX_HTTP_AUTOMATIONS_METRICS_STATUSES
                 * sizeof(ngx_atomic_t);

    /* room for the slab allocator's own pages */
    size = ngx_align(size, ngx_pagesize) + 8 * ngx_pagesize;

    ngx_str_set(&name, "automations_metrics");

    amcf->metrics_zone =
        ngx_shared_memory_add(cf, &name, size, &ngx_http_automations_module);
    if (amcf->metrics_zone == NULL) {
        return NGX_ERROR;
    }

    amcf->metrics_zone->init = ngx_http_automations_metrics_init_zone;
    amcf->metrics_zone->data = (void *) (uintptr_t) endpoints;

    return NGX_OK;
}


/* a reload keeps the counters: the zone keeps its name and size */
static ngx_int_t
ngx_http_automations_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                              size;
    ngx_uint_t                          endpoints;
    ngx_slab_pool_t                    *shpool;
    ngx_http_automations_metrics_shm_t *shm;

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    endpoints = (ngx_uint_t) (uintptr_t) shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    size = sizeof(ngx_http_automations_metrics_shm_t)
           + endpoints * NGX_HTTP_AUTOMATIONS_METRICS_STATUSES
                 * sizeof(ngx_atomic_t);

    shm = ngx_slab_calloc(shpool, size);
    if (shm == NULL) {
        return NGX_ERROR;
    }

    shm->endpoints = endpoints;
    shm_zone->data = shm;

    return NGX_OK;
}


/* postconfiguration: requests are counted once they are logged */
ngx_int_t
ngx_http_automations_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt       *h;
    ngx_http_core_main_conf_t *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_automations_metrics_log;

    return NGX_OK;
}


/* a worker process starts (takes its slot) or exits (gives it back) */
void
ngx_http_automations_metrics_process(ngx_flag_t start)
{
    ngx_http_automations_slot_t      *slot;
    ngx_http_automations_main_conf_t *amcf;

    if (!start) {
        slot = ngx_http_automations_slot;

        if (slot && slot->pid == (ngx_atomic_uint_t) ngx_pid) {
            slot->up = 0;
            slot->pid = 0;
        }

        ngx_http_automations_slot = NULL;
        ngx_http_automations_shm = NULL;
        return;
    }

    amcf = ngx_http_cycle_get_module_main_conf(
        ngx_cycle, ngx_http_automations_module);

    if (amcf == NULL || amcf->metrics_zone == NULL) {
        return;
    }

    ngx_http_automations_shm = amcf->metrics_zone->data;

    /* the slot of a process that died is taken by its replacement */
    slot = &ngx_http_automations_shm
                ->slots[ngx_worker % NGX_HTTP_AUTOMATIONS_METRICS_SLOTS];
    slot->up = 0;
    slot->pid = ngx_pid;

    ngx_http_automations_slot = slot;
}


void
ngx_http_automations_metrics_refusal(ngx_http_automations_refusal_e reason)
{
    if (ngx_http_automations_shm) {
        ngx_atomic_fetch_add(&ngx_http_automations_shm->refusals[reason], 1);
    }
}


/* an API key or tokenpair looked up in Redis (0) or found cached (1) */
void
ngx_http_automations_metrics_credential(ngx_flag_t cached)
{
    if (ngx_http_automations_shm) {
        ngx_atomic_fetch_add(
            &ngx_http_automations_shm->credentials[cached ? 1 : 0], 1);
    }
}


/* the command connection's handshake answered (1), or it went away */
void
ngx_http_automations_metrics_redis(ngx_flag_t up)
{
    ngx_http_automations_slot_t *slot;

    slot = ngx_http_automations_slot;

    if (slot == NULL || slot->pid != (ngx_atomic_uint_t) ngx_pid) {
        return;
    }

    slot->up = up;

    if (up) {
        if (ngx_http_automations_was_up) {
            ngx_atomic_fetch_add(&ngx_http_automations_shm->reconnects, 1);
        }

        ngx_http_automations_was_up = 1;
    }
}


static void
ngx_http_automations_histogram_add(
    ngx_http_automations_histogram_t *h, ngx_msec_t *bounds, ngx_msec_t ms)
{
    ngx_uint_t i;

    for (i = 0; i < NGX_HTTP_AUTOMATIONS_METRICS_BUCKETS; i++) {
        if (ms <= bounds[i]) {
            break;
        }
    }

    ngx_atomic_fetch_add(&h->bucket[i], 1);
    ngx_atomic_fetch_add(&h->sum_ms, ms);
}


/* a script's reply came after ms: the enqueue's is a metric */
void
ngx_http_automations_metrics_script(const char *name, ngx_msec_t ms)
{
    if (ngx_http_automations_shm
        && ngx_strcmp(name, AM_SCRIPT_EXECUTION_ENQUEUE) == 0) {
        ngx_http_automations_histogram_add(&ngx_http_automations_shm->enqueue,
            ngx_http_automations_enqueue_bounds, ms);
    }
}


/* a synchronous run answers: its result came, or its wait ran out */
void
ngx_http_automations_metrics_wait(ngx_http_request_t *r)
{
    ngx_msec_int_t ms;
    ngx_time_t    *tp;

    if (ngx_http_automations_shm == NULL) {
        return;
    }

    tp = ngx_timeofday();

    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));

    ngx_http_automations_histogram_add(&ngx_http_automations_shm->wait,
        ngx_http_automations_wait_bounds, (ngx_msec_t) ngx_max(ms, 0));
}


static ngx_int_t
ngx_http_automations_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t                       row, status;
    ngx_http_automations_ctx_t      *ctx;
    ngx_http_automations_loc_conf_t *alcf;

    if (ngx_http_automations_shm == NULL || r != r->main) {
        return NGX_OK;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    if (alcf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_NONE) {
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status < NGX_HTTP_AUTOMATIONS_METRICS_STATUS_MIN
        || status >= NGX_HTTP_AUTOMATIONS_METRICS_STATUS_MIN
                         + NGX_HTTP_AUTOMATIONS_METRICS_STATUSES) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (ctx && ctx->route_state == ngx_http_automations_route_found) {
        row = ctx->route - ngx_http_automations_routes;

    } else {
        row = ngx_http_automations_shm->endpoints - 2
              + (alcf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_START);
    }

    ngx_atomic_fetch_add(
        &ngx_http_automations_shm
             ->requests[row * NGX_HTTP_AUTOMATIONS_METRICS_STATUSES + status
                        - NGX_HTTP_AUTOMATIONS_METRICS_STATUS_MIN],
        1);

    return NGX_OK;
}


/* the stats script, for the health check too; NGX_ERROR: Redis is away */
ngx_int_t
ngx_http_automations_metrics_stats(ngx_http_request_t *r,
    ngx_http_automations_redis_handler_pt handler, ngx_flag_t counters)
{
    ngx_str_t                         keys[AM_STATS_NKEYS];
    ngx_str_t                         args[AM_STATS_NARGS];
    ngx_http_automations_main_conf_t *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_automations_module);

    if (amcf->redis.len == 0
        || ngx_http_automations_stream_key(r, &keys[AM_STATS_KEY_STREAM])
               != NGX_OK) {
        return NGX_ERROR;
    }

    keys[AM_STATS_KEY_DEAD].data =
        ngx_pnalloc(r->pool, amcf->prefix.len + sizeof("webhooks:dead"));
    keys[AM_STATS_KEY_WORKERS].data =
        ngx_pnalloc(r->pool, amcf->prefix.len + sizeof("workers"));

    if (keys[AM_STATS_KEY_DEAD].data == NULL
        || keys[AM_STATS_KEY_WORKERS].data == NULL) {
        return NGX_ERROR;
    }

    keys[AM_STATS_KEY_DEAD].len = ngx_sprintf(keys[AM_STATS_KEY_DEAD].data,
                                      "%Vwebhooks:dead", &amcf->prefix)
                                  - keys[AM_STATS_KEY_DEAD].data;
    keys[AM_STATS_KEY_WORKERS].len =
        ngx_sprintf(keys[AM_STATS_KEY_WORKERS].data, "%Vworkers", &amcf->prefix)
        - keys[AM_STATS_KEY_WORKERS].data;

    args[AM_STATS_ARG_PREFIX] = amcf->prefix;

    if (counters) {
        ngx_str_set(&args[AM_STATS_ARG_COUNTERS], "1");
    } else {
        ngx_str_set(&args[AM_STATS_ARG_COUNTERS], "0");
    }

    return ngx_http_automations_redis_script(r, handler, AM_SCRIPT_STATS,
        AM_STATS_NKEYS, keys, AM_STATS_NARGS, args);
}


/* room for len more bytes at the end of the page */
static u_char *
ngx_http_automations_page_room(ngx_http_automations_page_t *pg, size_t len)
{
    ngx_buf_t   *b;
    ngx_chain_t *cl;

    if (pg->b && (size_t) (pg->b->end - pg->b->last) >= len) {
        return pg->b->last;
    }

    b = ngx_create_temp_buf(pg->r->pool, ngx_max(len, 16384));
    if (b == NULL) {
        return NULL;
    }

    cl = ngx_alloc_chain_link(pg->r->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;
    *pg->last = cl;
    pg->last = &cl->next;
    pg->b = b;

    return b->last;
}


static ngx_int_t
ngx_http_automations_page_printf(
    ngx_http_automations_page_t *pg, const char *fmt, ...)
{
    u_char *p;
    va_list args;

    p = ngx_http_automations_page_room(pg, NGX_HTTP_AUTOMATIONS_METRICS_LINE);
    if (p == NULL) {
        return NGX_ERROR;
    }

    va_start(args, fmt);
    pg->b->last =
        ngx_vslprintf(p, p + NGX_HTTP_AUTOMATIONS_METRICS_LINE, fmt, args);
    va_end(args);

    return NGX_OK;
}


static ngx_int_t
ngx_http_automations_page_family(ngx_http_automations_page_t *pg,
    const char *name, const char *type, const char *help)
{
    return ngx_http_automations_page_printf(
        pg, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}


/* ms as seconds, as short as it goes: 2500 is 2.5, 10 is 0.01 */
static u_char *
ngx_http_automations_page_seconds(u_char *buf, ngx_msec_t ms)
{
    u_char     frac[4];
    ngx_uint_t n;

    n = 3;
    ngx_sprintf(frac, "%03M", ms % 1000);

    while (n && frac[n - 1] == '0') {
        n--;
    }

    if (n == 0) {
        return ngx_sprintf(buf, "%M%Z", ms / 1000);
    }

    return ngx_sprintf(buf, "%M.%*s%Z", ms / 1000, (size_t) n, frac);
}


static ngx_int_t
ngx_http_automations_page_histogram(ngx_http_automations_page_t *pg,
    const char *name, ngx_http_automations_histogram_t *h, ngx_msec_t *bounds)
{
    u_char            le[32], sum[32];
    ngx_uint_t        i;
    ngx_atomic_uint_t n;

    n = 0;

    for (i = 0; i < NGX_HTTP_AUTOMATIONS_METRICS_BUCKETS; i++) {
        n += h->bucket[i];
        ngx_http_automations_page_seconds(le, bounds[i]);

        if (ngx_http_automations_page_printf(
                pg, "%s_bucket{le=\"%s\"} %uA\n", name, le, n)
            != NGX_OK) {
            return NGX_ERROR;
        }
    }

    n += h->bucket[NGX_HTTP_AUTOMATIONS_METRICS_BUCKETS];
    ngx_http_automations_page_seconds(sum, h->sum_ms);

    return ngx_http_automations_page_printf(pg,
        "%s_bucket{le=\"+Inf\"} %uA\n%s_sum %s\n%s_count %uA\n", name, n, name,
        sum, name, n);
}


/* "GET /NAME/run": the first method of a row, and its path */
static ngx_int_t
ngx_http_automations_page_requests(
    ngx_http_automations_page_t *pg, ngx_http_automations_metrics_shm_t *shm)
{
    ngx_uint_t                          row, s, api;
    ngx_atomic_uint_t                   n;
    const char                         *method, *path;
    const ngx_http_automations_route_t *route;

    if (ngx_http_automations_page_family(pg, "automations_requests_total",
            "counter",
            "Requests to the APIs, by endpoint (a route, or \"unmatched\") "
            "and status.")
        != NGX_OK) {
        return NGX_ERROR;
    }

    for (row = 0; row < shm->endpoints; row++) {
        if (row < shm->endpoints - 2) {
            route = &ngx_http_automations_routes[row];
            api = route->api;
            path = route->path;
            method = (route->methods & NGX_HTTP_GET)      ? "GET "
                     : (route->methods & NGX_HTTP_POST)   ? "POST "
                     : (route->methods & NGX_HTTP_DELETE) ? "DELETE "
                                                          : "";
        } else {
            api = row - (shm->endpoints - 2) + NGX_HTTP_AUTOMATIONS_HANDLER_API;
            method = "";
            path = NULL;
        }

        for (s = 0; s < NGX_HTTP_AUTOMATIONS_METRICS_STATUSES; s++) {
            n = shm->requests[row * NGX_HTTP_AUTOMATIONS_METRICS_STATUSES + s];

            if (n == 0) {
                continue;
            }

            if (ngx_http_automations_page_printf(pg,
                    "automations_requests_total{api=\"%s\",endpoint=\"%s%s%s\","
                    "status=\"%ui\"} %uA\n",
                    ngx_http_automations_api_names[api], method,
                    path ? "/" : "unmatched", path ? path : "",
                    s + NGX_HTTP_AUTOMATIONS_METRICS_STATUS_MIN, n)
                != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/* what the zone holds: every nginx worker process's counts */
static ngx_int_t
ngx_http_automations_page_nginx(
    ngx_http_automations_page_t *pg, ngx_http_automations_metrics_shm_t *shm)
{
    ngx_uint_t i;

    if (ngx_http_automations_page_requests(pg, shm) != NGX_OK
        || ngx_http_automations_page_family(pg,
               "automations_auth_refusals_total", "counter",
               "Requests refused by the access phase, by reason.")
               != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < ngx_http_automations_refusal_n; i++) {
        if (ngx_http_automations_page_printf(pg,
                "automations_auth_refusals_total{reason=\"%s\"} %uA\n",
                ngx_http_automations_refusal_names[i], shm->refusals[i])
            != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_automations_page_family(pg,
            "automations_credential_lookups_total", "counter",
            "API keys and tokenpairs looked up, in Redis or in the worker "
            "process's cache (automations_credential_cache).")
            != NGX_OK
        || ngx_http_automations_page_printf(pg,
               "automations_credential_lookups_total{source=\"redis\"} %uA\n"
               "automations_credential_lookups_total{source=\"cache\"} %uA\n",
               shm->credentials[0], shm->credentials[1])
               != NGX_OK
        || ngx_http_automations_page_family(pg,
               "automations_enqueue_duration_seconds", "histogram",
               "Round trip of a run's enqueue script to Redis (ms resolution).")
               != NGX_OK
        || ngx_http_automations_page_histogram(pg,
               "automations_enqueue_duration_seconds", &shm->enqueue,
               ngx_http_automations_enqueue_bounds)
               != NGX_OK
        || ngx_http_automations_page_family(pg,
               "automations_sync_wait_duration_seconds", "histogram",
               "Synchronous runs, from the request to the answer (the "
               "result, or 202 when the wait ran out).")
               != NGX_OK
        || ngx_http_automations_page_histogram(pg,
               "automations_sync_wait_duration_seconds", &shm->wait,
               ngx_http_automations_wait_bounds)
               != NGX_OK
        || ngx_http_automations_page_family(pg,
               "automations_redis_connection_up", "gauge",
               "Whether the Redis command connection of each nginx worker "
               "process is up, its handshake done.")
               != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_AUTOMATIONS_METRICS_SLOTS; i++) {
        if (shm->slots[i].pid
            && ngx_http_automations_page_printf(pg,
                   "automations_redis_connection_up{pid=\"%uA\"} %uA\n",
                   shm->slots[i].pid, shm->slots[i].up)
                   != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_automations_page_family(pg,
            "automations_redis_reconnects_total", "counter",
            "Times a worker process's Redis command connection came back "
            "after it was lost.")
        != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_automations_page_printf(
        pg, "automations_redis_reconnects_total %uA\n", shm->reconnects);
}


static ngx_int_t
ngx_http_automations_page_gauge(ngx_http_automations_page_t *pg,
    const char *name, const char *help, const char *value)
{
    if (ngx_http_automations_page_family(pg, name, "gauge", help) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_automations_page_printf(pg, "%s %s\n", name, value);
}


/* an integer of the stats reply as text, "0" when it is not one */
static u_char *
ngx_http_automations_page_int(redisReply *reply, ngx_uint_t i, u_char *buf)
{
    redisReply *e;

    e = reply->element[i];

    if (e->type != REDIS_REPLY_INTEGER || e->integer < 0) {
        return ngx_sprintf(buf, "0%Z");
    }

    return ngx_sprintf(buf, "%L%Z", (int64_t) e->integer);
}


/* the workers' samples, copied as the stats script joined them */
static ngx_int_t
ngx_http_automations_page_workers(
    ngx_http_automations_page_t *pg, redisReply *reply)
{
    u_char     *p;
    ngx_uint_t  i;
    redisReply *e;

    static struct {
        ngx_uint_t  field;
        const char *name, *type, *help;
    } families[] = {
        {AM_STATS_REPLY_RUNS, "automations_worker_runs_total", "counter",
            "Runs a live worker finished, by runtime and status."},
        {AM_STATS_REPLY_RUN_SECONDS, "automations_worker_run_duration_seconds",
            "histogram", "How long runs took, by runtime."},
        {AM_STATS_REPLY_WEBHOOKS, "automations_worker_webhook_attempts_total",
            "counter", "Webhook attempts of a live worker, by outcome."}};

    for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        e = reply->element[families[i].field];

        if (ngx_http_automations_page_family(
                pg, families[i].name, families[i].type, families[i].help)
            != NGX_OK) {
            return NGX_ERROR;
        }

        if (e->type != REDIS_REPLY_STRING || e->len == 0) {
            continue;
        }

        p = ngx_http_automations_page_room(pg, e->len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        pg->b->last = ngx_cpymem(p, e->str, e->len);
    }

    return NGX_OK;
}


/* what Redis says: the queue, the dead letters, the workers */
static ngx_int_t
ngx_http_automations_page_redis(
    ngx_http_automations_page_t *pg, redisReply *reply)
{
    u_char      buf[NGX_INT64_LEN + 8];
    ngx_flag_t  ok;
    redisReply *e;

    ok = reply && reply->type == REDIS_REPLY_ARRAY
         && reply->elements == AM_STATS_REPLY_N;

    if (ngx_http_automations_page_gauge(pg, "automations_redis_scrape_success",
            "Whether Redis answered this page's questions.", ok ? "1" : "0")
        != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ok) {
        return NGX_OK;
    }

    e = reply->element[AM_STATS_REPLY_OLDEST_MS];

    if (e->type == REDIS_REPLY_INTEGER && e->integer >= 0) {
        ngx_http_automations_page_seconds(buf, (ngx_msec_t) e->integer);
    } else {
        ngx_sprintf(buf, "0%Z");
    }

    if (ngx_http_automations_page_gauge(pg,
            "automations_queue_oldest_age_seconds",
            "Age of the oldest entry of the run stream (queued or running); "
            "0 when it is empty.",
            (char *) buf)
        != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_automations_page_int(reply, AM_STATS_REPLY_DEPTH, buf);
    if (ngx_http_automations_page_gauge(pg, "automations_queue_depth",
            "Entries of the run stream: runs queued or running.", (char *) buf)
        != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_automations_page_int(reply, AM_STATS_REPLY_PENDING, buf);
    if (ngx_http_automations_page_gauge(pg, "automations_queue_pending",
            "Entries a worker took and has not acknowledged yet.", (char *) buf)
        != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_automations_page_int(reply, AM_STATS_REPLY_DEAD, buf);
    if (ngx_http_automations_page_gauge(pg, "automations_webhooks_dead_letters",
            "Webhook deliveries given up on, waiting for a resend.",
            (char *) buf)
        != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_automations_page_int(reply, AM_STATS_REPLY_WORKERS, buf);
    if (ngx_http_automations_page_gauge(pg, "automations_workers_live",
            "Workers whose heartbeat has not run out.", (char *) buf)
        != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_automations_page_workers(pg, reply);
}


static ngx_int_t
ngx_http_automations_metrics_send(ngx_http_request_t *r, redisReply *reply)
{
    ngx_int_t                   rc;
    ngx_chain_t                *cl;
    ngx_http_automations_page_t pg;

    pg.r = r;
    pg.out = NULL;
    pg.last = &pg.out;
    pg.b = NULL;

    if (ngx_http_automations_page_family(&pg, "automations_build_info", "gauge",
            "The module's release and nginx's; always 1.")
            != NGX_OK
        || ngx_http_automations_page_printf(&pg,
               "automations_build_info{version=\"" AM_VERSION
               "\",nginx=\"" NGINX_VERSION "\"} 1\n")
               != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if ((ngx_http_automations_shm
            && ngx_http_automations_page_nginx(&pg, ngx_http_automations_shm)
                   != NGX_OK)
        || ngx_http_automations_page_redis(&pg, reply) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_http_automations_metrics_type;
    r->headers_out.content_type_len = ngx_http_automations_metrics_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = 0;

    for (cl = pg.out; cl; cl = cl->next) {
        r->headers_out.content_length_n += cl->buf->last - cl->buf->pos;

        if (cl->next == NULL) {
            cl->buf->last_buf = 1;
            cl->buf->last_in_chain = 1;
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, pg.out);
}


static void
ngx_http_automations_metrics_reply(ngx_http_request_t *r, redisReply *reply)
{
    ngx_http_finalize_request(r, ngx_http_automations_metrics_send(r, reply));
}


static ngx_int_t
ngx_http_automations_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t rc;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_automations_redis_ready()
        && ngx_http_automations_metrics_stats(
               r, ngx_http_automations_metrics_reply, 1)
               == NGX_OK) {
        r->main->count++;
        return NGX_DONE;
    }

    return ngx_http_automations_metrics_send(r, NULL);
}
