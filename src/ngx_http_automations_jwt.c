/*
 * JWT bearer tokens: the automations_jwt_key and automations_jwt_jwks
 * directives load keys at configuration time (the algorithm pinned by each
 * key), and each request's token is verified in place with src/am_jwt.c.
 * The project and role come from configurable claims.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "am_json.h"
#include "am_name.h"


static void
ngx_http_automations_jwt_cleanup(void *data)
{
    am_jwt_keys_free(data);
}


static am_jwt_keys_t *
ngx_http_automations_jwt_keys(
    ngx_conf_t *cf, ngx_http_automations_loc_conf_t *alcf)
{
    ngx_pool_cleanup_t *cln;

    if (alcf->jwt_keys) {
        return alcf->jwt_keys;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    alcf->jwt_keys = am_jwt_keys_new();
    if (alcf->jwt_keys == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_automations_jwt_cleanup;
    cln->data = alcf->jwt_keys;

    return alcf->jwt_keys;
}


/* automations_jwt_key FILE [alg=ALG] [kid=KID] */
char *
ngx_http_automations_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_automations_loc_conf_t *alcf = conf;

    char           err[256];
    ngx_str_t     *value, path;
    ngx_uint_t     i;
    const char    *alg, *kid;
    am_jwt_keys_t *keys;

    value = cf->args->elts;
    alg = NULL;
    kid = NULL;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "alg=", 4) == 0) {
            alg = (char *) value[i].data + 4;

            if (!am_jwt_alg_supported(alg)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                    "unsupported algorithm \"%s\": use " AM_JWT_ALGS, alg);
                return NGX_CONF_ERROR;
            }

        } else if (ngx_strncmp(value[i].data, "kid=", 4) == 0
                   && value[i].len > 4) {
            kid = (char *) value[i].data + 4;

        } else {
            ngx_conf_log_error(
                NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    path = value[1];
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    keys = ngx_http_automations_jwt_keys(cf, alcf);
    if (keys == NULL) {
        return NGX_CONF_ERROR;
    }

    if (am_jwt_keys_add_file(
            keys, (char *) path.data, alg, kid, err, sizeof(err))
        != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a JWKS key that is not for us: said at configuration time, not fatal */
static void
ngx_http_automations_jwt_skipped(void *data, const char *msg)
{
    ngx_conf_log_error(NGX_LOG_WARN, data, 0, "%s", msg);
}


/* automations_jwt_jwks FILE */
char *
ngx_http_automations_jwt_jwks(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_automations_loc_conf_t *alcf = conf;

    char           err[256];
    ngx_str_t     *value, path;
    am_jwt_keys_t *keys;

    value = cf->args->elts;

    path = value[1];
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    keys = ngx_http_automations_jwt_keys(cf, alcf);
    if (keys == NULL) {
        return NGX_CONF_ERROR;
    }

    if (am_jwt_keys_add_jwks(keys, (char *) path.data,
            ngx_http_automations_jwt_skipped, cf, err, sizeof(err))
        != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Appends the strings of a claim (a string, or an array of strings) to a
 * space-separated list; each must satisfy valid(). NGX_DECLINED when the
 * claim has another shape.
 */
static ngx_int_t
ngx_http_automations_jwt_claim(ngx_http_request_t *r, yajl_val v,
    ngx_str_t *list, int (*valid)(const char *s, size_t len))
{
    u_char    *p;
    size_t     len, n;
    ngx_uint_t i, count;
    yajl_val  *items;

    if (v == NULL) {
        return NGX_OK;
    }

    if (YAJL_IS_STRING(v)) {
        items = &v;
        count = 1;

    } else if (YAJL_IS_ARRAY(v)) {
        items = v->u.array.values;
        count = v->u.array.len;

    } else {
        return NGX_DECLINED;
    }

    len = 0;

    for (i = 0; i < count; i++) {
        if (!YAJL_IS_STRING(items[i])) {
            return NGX_DECLINED;
        }

        n = ngx_strlen(items[i]->u.string);

        if (valid && !valid(items[i]->u.string, n)) {
            return NGX_DECLINED;
        }

        len += n + 1;
    }

    if (len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    list->data = p;

    for (i = 0; i < count; i++) {
        if (i) {
            *p++ = ' ';
        }

        p = ngx_cpymem(p, items[i]->u.string, ngx_strlen(items[i]->u.string));
    }

    list->len = p - list->data;

    return NGX_OK;
}


/* who the claims say the caller is: projects, scopes and subject */
static ngx_int_t
ngx_http_automations_jwt_identity(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx, yajl_val claims)
{
    size_t                           len;
    yajl_val                         sub;
    ngx_str_t                        roles;
    ngx_int_t                        rc;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    ngx_str_null(&roles);

    rc = ngx_http_automations_jwt_claim(r,
        am_json_get(claims, (char *) alcf->jwt_project_claim.data),
        &ctx->projects, am_project_name_valid);

    if (rc == NGX_OK) {
        rc = ngx_http_automations_jwt_claim(r,
            am_json_get(claims, (char *) alcf->jwt_role_claim.data), &roles,
            NULL);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    ctx->scopes = ngx_http_automations_scopes_parse(roles.data, roles.len);

    sub = am_json_get(claims, "sub");

    if (YAJL_IS_STRING(sub)) {
        len = ngx_strlen(sub->u.string);
        ctx->subject.data = ngx_pnalloc(r->pool, len);
        if (ctx->subject.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->subject.data, sub->u.string, len);
        ctx->subject.len = len;
    }

    return NGX_OK;
}


/*
 * What the request's token claims to be, for the log line of a refusal:
 * its header's kid and alg, its payload's sub. Nothing of it is trusted; a
 * part that does not decode is left out. Not done for accepted requests,
 * which it would only slow down.
 */
void
ngx_http_automations_jwt_describe(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    u_char    *p, *dot, *last, buf[256];
    ngx_str_t  src, dst, *out[3];
    yajl_val   v, f;
    ngx_uint_t part, i;

    static const char *names[] = {"kid", "alg", "sub"};

    out[0] = &ctx->kid;
    out[1] = &ctx->alg;
    out[2] = &ctx->subject;

    if (r->headers_in.authorization == NULL) {
        return;
    }

    /* "Bearer <token>": the token starts after the last space */
    p = r->headers_in.authorization->value.data;
    last = p + r->headers_in.authorization->value.len;

    while (p < last && ngx_strlchr(p, last, ' ')) {
        p = ngx_strlchr(p, last, ' ') + 1;
    }

    for (part = 0; part < 2 && p < last; part++) {
        dot = ngx_strlchr(p, last, '.');
        if (dot == NULL) {
            return;
        }

        src.data = p;
        src.len = dot - p;
        p = dot + 1;

        dst.data = buf;

        if (ngx_base64_decoded_length(src.len) >= sizeof(buf)
            || ngx_decode_base64url(&dst, &src) != NGX_OK) {
            continue;
        }

        buf[dst.len] = '\0';

        v = yajl_tree_parse((char *) buf, NULL, 0);
        if (v == NULL) {
            continue;
        }

        for (i = part * 2; i < (part ? 3 : 2); i++) {
            f = am_json_get(v, names[i]);

            if (YAJL_IS_STRING(f) && ngx_strlen(f->u.string) <= 128) {
                out[i]->len = ngx_strlen(f->u.string);
                out[i]->data = ngx_pnalloc(r->pool, out[i]->len);

                if (out[i]->data == NULL) {
                    out[i]->len = 0;
                } else {
                    ngx_memcpy(out[i]->data, f->u.string, out[i]->len);
                }
            }
        }

        yajl_tree_free(v);
    }
}


/*
 * Verifies token with the location's keys and rules. NGX_OK with the
 * identity in ctx; NGX_DECLINED with reason, for the log; NGX_ERROR.
 */
ngx_int_t
ngx_http_automations_jwt_verify(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, ngx_str_t *token, ngx_str_t *reason)
{
    char                             err[128];
    size_t                           len;
    yajl_val                         claims;
    ngx_int_t                        rc;
    am_jwt_opts_t                    opts;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    opts.now = ngx_time();
    opts.leeway = alcf->jwt_leeway;
    opts.issuer = alcf->jwt_issuer.len ? (char *) alcf->jwt_issuer.data : NULL;
    opts.audience =
        alcf->jwt_audience.len ? (char *) alcf->jwt_audience.data : NULL;
    opts.max_len = alcf->jwt_max_size;

    if (am_jwt_verify(alcf->jwt_keys, (char *) token->data, token->len, &opts,
            &claims, err, sizeof(err))
        != 0) {
        len = ngx_strlen(err);
        reason->data = ngx_pnalloc(r->pool, len);
        if (reason->data == NULL) {
            return NGX_ERROR;
        }

        reason->len = len;
        ngx_memcpy(reason->data, err, len);

        ngx_str_set(&ctx->credential, "jwt");
        ngx_http_automations_jwt_describe(r, ctx);

        return NGX_DECLINED;
    }

    ngx_str_set(&ctx->credential, "jwt");

    rc = ngx_http_automations_jwt_identity(r, ctx, claims);

    yajl_tree_free(claims);

    if (rc == NGX_DECLINED) {
        ngx_str_set(reason, "malformed project or role claim");
    }

    return rc;
}
