/*
 * automations_credential_cache: the credential records an nginx worker
 * process read lately, so that a request with a known API key or tokenpair
 * goes on without waiting for Redis.
 *
 * Redis tracks each record read for the cache (client-side caching, in
 * src/ngx_http_automations_redis.c) and says when it changes: a revoked
 * key, a deleted project. The entry goes as soon as the worker process
 * reads that, before its next event; every entry goes whenever tracking
 * stops (a connection dropped, Redis restarted or flushed). A reply that
 * an invalidation may have overtaken is not kept.
 *
 * Only records that matched the secrets presented are kept, so guessing
 * keys fills nothing. The table is direct-mapped: a key has one slot, by
 * its hash (the key holds the SHA-256 of the secret), and a new record
 * replaces whatever was there. "valid" bounds how long an entry is
 * trusted anyway.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"


#define NGX_HTTP_AUTOMATIONS_CACHE_FIELDS 8


typedef struct {
    ngx_str_t  key;
    ngx_str_t  field[NGX_HTTP_AUTOMATIONS_CACHE_FIELDS];
    ngx_uint_t nfields;
    ngx_msec_t stored;
} ngx_http_automations_cache_entry_t;


typedef struct {
    ngx_http_automations_cache_entry_t **slot;
    ngx_uint_t                           slots;
    ngx_msec_t                           valid;
    ngx_log_t                           *log;
} ngx_http_automations_cache_t;


static ngx_http_automations_cache_t ngx_http_automations_cache;


/* automations_credential_cache off | max=N [valid=time] */
char *
ngx_http_automations_cache_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_automations_main_conf_t *amcf = conf;

    ngx_int_t  max;
    ngx_str_t *value, s;
    ngx_msec_t valid;
    ngx_uint_t i;

    if (amcf->cache_max != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        amcf->cache_max = 0;
        return NGX_CONF_OK;
    }

    max = NGX_ERROR;
    valid = NGX_CONF_UNSET_MSEC;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "max=", 4) == 0) {
            max = ngx_atoi(value[i].data + 4, value[i].len - 4);
            if (max <= 0 || max > 1048576) {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "valid=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;
            valid = ngx_parse_time(&s, 0);
            if (valid == (ngx_msec_t) NGX_ERROR || valid == 0) {
                goto invalid;
            }
            continue;
        }

        goto invalid;
    }

    if (max == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"automations_credential_cache\" needs \"max=\" or \"off\"");
        return NGX_CONF_ERROR;
    }

    amcf->cache_max = (ngx_uint_t) max;
    amcf->cache_valid = valid;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(
        NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


static ngx_http_automations_cache_entry_t **
ngx_http_automations_cache_slot(ngx_str_t *key)
{
    ngx_http_automations_cache_t *cache;

    cache = &ngx_http_automations_cache;

    return &cache->slot[ngx_hash_key(key->data, key->len) % cache->slots];
}


/* key's entry goes; with NULL, every entry */
static void
ngx_http_automations_cache_invalidate(ngx_str_t *key)
{
    ngx_uint_t                           i;
    ngx_http_automations_cache_t        *cache;
    ngx_http_automations_cache_entry_t **slot;

    cache = &ngx_http_automations_cache;

    if (cache->slot == NULL) {
        return;
    }

    if (key) {
        slot = ngx_http_automations_cache_slot(key);

        if (*slot && (*slot)->key.len == key->len
            && ngx_memcmp((*slot)->key.data, key->data, key->len) == 0) {
            ngx_free(*slot);
            *slot = NULL;
        }

        return;
    }

    for (i = 0; i < cache->slots; i++) {
        if (cache->slot[i]) {
            ngx_free(cache->slot[i]);
            cache->slot[i] = NULL;
        }
    }
}


ngx_int_t
ngx_http_automations_cache_init_process(ngx_cycle_t *cycle)
{
    ngx_http_automations_cache_t     *cache;
    ngx_http_automations_main_conf_t *amcf;

    amcf =
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_automations_module);
    if (amcf == NULL || amcf->redis.len == 0 || amcf->cache_max == 0) {
        return NGX_OK;
    }

    cache = &ngx_http_automations_cache;

    cache->slot =
        ngx_calloc(amcf->cache_max * sizeof(*cache->slot), cycle->log);
    if (cache->slot == NULL) {
        return NGX_ERROR;
    }

    cache->slots = amcf->cache_max;
    cache->valid = amcf->cache_valid;
    cache->log = cycle->log;

    ngx_http_automations_redis_track(ngx_http_automations_cache_invalidate);

    return NGX_OK;
}


void
ngx_http_automations_cache_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_automations_cache_t *cache;

    cache = &ngx_http_automations_cache;

    ngx_http_automations_cache_invalidate(NULL);
    ngx_free(cache->slot);
    cache->slot = NULL;
}


/*
 * The n fields of key's record, copied into pool: NGX_OK, NGX_DECLINED
 * when it is not cached (or no longer valid), NGX_ERROR.
 */
ngx_int_t
ngx_http_automations_cache_get(
    ngx_pool_t *pool, ngx_str_t *key, ngx_str_t *field, ngx_uint_t n)
{
    ngx_uint_t                          i;
    ngx_http_automations_cache_t       *cache;
    ngx_http_automations_cache_entry_t *e, **slot;

    cache = &ngx_http_automations_cache;

    if (cache->slot == NULL) {
        return NGX_DECLINED;
    }

    slot = ngx_http_automations_cache_slot(key);
    e = *slot;

    if (e == NULL || e->nfields != n || e->key.len != key->len
        || ngx_memcmp(e->key.data, key->data, key->len) != 0) {
        return NGX_DECLINED;
    }

    if (ngx_current_msec - e->stored >= cache->valid) {
        ngx_free(e);
        *slot = NULL;
        return NGX_DECLINED;
    }

    if (!ngx_http_automations_redis_settled()) {
        return NGX_DECLINED;
    }

    for (i = 0; i < n; i++) {
        field[i].len = e->field[i].len;
        field[i].data = ngx_pstrdup(pool, &e->field[i]);
        if (field[i].data == NULL && field[i].len) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * Keeps the n fields of key's record, read with serial: unless Redis may
 * have changed it since without the cache hearing of it.
 */
void
ngx_http_automations_cache_put(
    ngx_str_t *key, ngx_str_t *field, ngx_uint_t n, ngx_uint_t serial)
{
    u_char                             *p;
    size_t                              size;
    ngx_uint_t                          i;
    ngx_http_automations_cache_t       *cache;
    ngx_http_automations_cache_entry_t *e, **slot;

    cache = &ngx_http_automations_cache;

    if (cache->slot == NULL || n > NGX_HTTP_AUTOMATIONS_CACHE_FIELDS
        || !ngx_http_automations_redis_tracked(serial)) {
        return;
    }

    size = sizeof(ngx_http_automations_cache_entry_t) + key->len;
    for (i = 0; i < n; i++) {
        size += field[i].len;
    }

    e = ngx_alloc(size, cache->log);
    if (e == NULL) {
        return;
    }

    p = (u_char *) (e + 1);

    e->key.data = p;
    e->key.len = key->len;
    p = ngx_cpymem(p, key->data, key->len);

    for (i = 0; i < n; i++) {
        e->field[i].data = p;
        e->field[i].len = field[i].len;
        p = ngx_cpymem(p, field[i].data, field[i].len);
    }

    e->nfields = n;
    e->stored = ngx_current_msec;

    slot = ngx_http_automations_cache_slot(key);

    if (*slot) {
        ngx_free(*slot);
    }

    *slot = e;
}
