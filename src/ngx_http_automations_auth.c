/*
 * Authentication in the access phase, for automations_api locations and for
 * any location with automations_auth (for example in front of proxy_pass).
 *
 *   Authorization: Bearer <jwt>                  verified here, no Redis
 *   Authorization: Bearer amk_<project>_<hex>    API key, looked up by digest
 *   Authorization: [Token ]<token> + X-Api-Key   token pair, looked up too
 *
 * Lookups are async; the phase handler returns NGX_AGAIN and the reply
 * resumes the phases. The outcome lands in the request context and in the
 * $automations_* variables.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_crypto.h"
#include "am_name.h"


static ngx_int_t ngx_http_automations_auth_apikey(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx, ngx_str_t *key);
static ngx_int_t ngx_http_automations_auth_token(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, ngx_str_t *token, ngx_str_t *api_key);
static ngx_int_t ngx_http_automations_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_automations_variable_scopes(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t ngx_http_automations_vars[] = {

    {ngx_string("automations_project"), NULL, ngx_http_automations_variable,
        offsetof(ngx_http_automations_ctx_t, project), 0, 0},

    {ngx_string("automations_subject"), NULL, ngx_http_automations_variable,
        offsetof(ngx_http_automations_ctx_t, subject), 0, 0},

    {ngx_string("automations_credential"), NULL, ngx_http_automations_variable,
        offsetof(ngx_http_automations_ctx_t, credential), 0, 0},

    {ngx_string("automations_scopes"), NULL,
        ngx_http_automations_variable_scopes, 0, 0, 0},

    ngx_http_null_variable};


static ngx_str_t ngx_http_automations_missing =
    ngx_string("Authentication credentials were not provided.");


ngx_http_automations_ctx_t *
ngx_http_automations_get_ctx(ngx_http_request_t *r)
{
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_automations_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_automations_module);
    }

    return ctx;
}


ngx_uint_t
ngx_http_automations_scopes_parse(u_char *p, size_t len)
{
    u_char    *last, *word;
    size_t     n;
    ngx_uint_t scopes;

    scopes = 0;
    last = p + len;

    while (p < last) {
        while (p < last && *p == ' ') {
            p++;
        }

        word = p;

        while (p < last && *p != ' ') {
            p++;
        }

        n = p - word;

        if (n == 4 && ngx_strncmp(word, "read", 4) == 0) {
            scopes |= NGX_HTTP_AUTOMATIONS_SCOPE_READ;

        } else if (n == 5 && ngx_strncmp(word, "write", 5) == 0) {
            scopes |= NGX_HTTP_AUTOMATIONS_SCOPE_WRITE;

        } else if (n == 3 && ngx_strncmp(word, "run", 3) == 0) {
            scopes |= NGX_HTTP_AUTOMATIONS_SCOPE_RUN;

        } else if (n == 5 && ngx_strncmp(word, "admin", 5) == 0) {
            scopes |= NGX_HTTP_AUTOMATIONS_SCOPE_ALL;
        }
    }

    return scopes;
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


/* whether the space-separated list holds name */
static ngx_flag_t
ngx_http_automations_list_has(ngx_str_t *list, ngx_str_t *name)
{
    u_char *p, *last, *word;

    p = list->data;
    last = p + list->len;

    while (p < last) {
        word = p;

        while (p < last && *p != ' ') {
            p++;
        }

        if ((size_t) (p - word) == name->len
            && ngx_strncmp(word, name->data, name->len) == 0) {
            return 1;
        }

        p++;
    }

    return 0;
}


static ngx_int_t
ngx_http_automations_auth_fail(ngx_http_request_t *r, ngx_uint_t status,
    const char *challenge, ngx_str_t *detail)
{
    ngx_int_t                   rc;
    ngx_table_elt_t            *h;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_automations_get_ctx(r);
    if (ctx) {
        ctx->auth_state = ngx_http_automations_auth_done;
        ctx->auth_rc = NGX_DONE;
    }

    if (challenge) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return NGX_DONE;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");
        h->value.data = (u_char *) challenge;
        h->value.len = ngx_strlen(challenge);
        r->headers_out.www_authenticate = h;
    }

    rc = ngx_http_automations_send_detail(r, status, "%V", detail);
    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_automations_auth_invalid(ngx_http_request_t *r, ngx_str_t *reason)
{
    ngx_str_t                        detail;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
        "automations: credentials refused: %V", reason);

    if (alcf->schemes == NGX_HTTP_AUTOMATIONS_AUTH_TOKEN
        || alcf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_START) {
        ngx_str_set(&detail, "Invalid token.");
        return ngx_http_automations_auth_fail(
            r, NGX_HTTP_UNAUTHORIZED, "Token realm=\"automations\"", &detail);
    }

    ngx_str_set(&detail, "Invalid authentication credentials.");

    return ngx_http_automations_auth_fail(r, NGX_HTTP_UNAUTHORIZED,
        "Bearer realm=\"automations\", "
        "error=\"invalid_token\"",
        &detail);
}


/*
 * The credential is genuine: decide which project the request acts on and
 * whether the credential may do that. NGX_OK, or an answer was sent.
 */
static ngx_int_t
ngx_http_automations_auth_decide(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_str_t                        detail;
    ngx_uint_t                       scope;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    ctx->authenticated = 1;

    if (alcf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_START) {
        /* the project is in the URL; the reference hides whether it exists */
        scope = ngx_http_automations_start_route(r, ctx);

        if (ctx->project.len
            && !ngx_http_automations_list_has(&ctx->projects, &ctx->project)) {
            ctx->auth_state = ngx_http_automations_auth_done;
            ctx->auth_rc = NGX_DONE;
            ngx_http_finalize_request(
                r, ngx_http_automations_send_message(r, NGX_HTTP_FORBIDDEN,
                       "This Project does not exist. consult API"));
            return NGX_DONE;
        }

        goto scope;
    }

    if (alcf->project) {
        if (ngx_http_complex_value(r, alcf->project, &ctx->project) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return NGX_DONE;
        }

        if (alcf->schemes
            && !ngx_http_automations_list_has(&ctx->projects, &ctx->project)) {
            ngx_str_set(
                &detail, "These credentials have no access to this project.");
            ctx->project.len = 0;
            return ngx_http_automations_auth_fail(
                r, NGX_HTTP_FORBIDDEN, NULL, &detail);
        }

    } else if (ngx_strlchr(ctx->projects.data,
                   ctx->projects.data + ctx->projects.len, ' ')
               == NULL) {
        ctx->project = ctx->projects;
    }

    scope = alcf->scope;

    if (alcf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_API) {
        scope = ngx_http_automations_api_scope(r, ctx);
    }

scope:

    if (scope & ~ctx->scopes) {
        ngx_str_set(&detail, "These credentials do not allow this "
                             "operation.");
        return ngx_http_automations_auth_fail(
            r, NGX_HTTP_FORBIDDEN, NULL, &detail);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
        "automations: %V \"%V\" acts on project \"%V\"", &ctx->credential,
        &ctx->subject, &ctx->project);

    ctx->auth_state = ngx_http_automations_auth_done;
    ctx->auth_rc = NGX_OK;

    return NGX_OK;
}


ngx_table_elt_t *
ngx_http_automations_header(ngx_http_request_t *r, const char *name)
{
    size_t           len;
    ngx_uint_t       i;
    ngx_list_part_t *part;
    ngx_table_elt_t *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0) {
            return &h[i];
        }
    }
}


/* strips "scheme " from value, case-insensitively; 1 when it was there */
static ngx_flag_t
ngx_http_automations_strip_scheme(ngx_str_t *value, const char *scheme)
{
    size_t n;

    n = ngx_strlen(scheme);

    if (value->len <= n || value->data[n] != ' '
        || ngx_strncasecmp(value->data, (u_char *) scheme, n) != 0) {
        return 0;
    }

    value->data += n;
    value->len -= n;

    while (value->len && value->data[0] == ' ') {
        value->data++;
        value->len--;
    }

    return 1;
}


ngx_int_t
ngx_http_automations_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        value, reason, detail;
    ngx_table_elt_t                 *x_api_key;
    ngx_http_automations_ctx_t      *ctx;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    if (alcf->schemes == 0
        && alcf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_NONE) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_automations_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ctx->auth_state) {
    case ngx_http_automations_auth_done:
        return ctx->auth_rc;
    case ngx_http_automations_auth_pending:
        return NGX_AGAIN;
    default:
        break;
    }

    if (alcf->schemes == 0) {
        /* automations_auth off: the configured project, full access */
        ctx->scopes = NGX_HTTP_AUTOMATIONS_SCOPE_ALL;
        ngx_str_set(&ctx->credential, "none");
        return ngx_http_automations_auth_decide(r, ctx);
    }

    x_api_key = NULL;

    if (alcf->schemes & NGX_HTTP_AUTOMATIONS_AUTH_TOKEN) {
        x_api_key = ngx_http_automations_header(r, "X-Api-Key");
    }

    if (r->headers_in.authorization == NULL
        || r->headers_in.authorization->value.len == 0
        || (alcf->schemes == NGX_HTTP_AUTOMATIONS_AUTH_TOKEN
            && (x_api_key == NULL || x_api_key->value.len == 0))) {
        return ngx_http_automations_auth_fail(r, NGX_HTTP_UNAUTHORIZED,
            alcf->schemes == NGX_HTTP_AUTOMATIONS_AUTH_TOKEN
                ? "Token realm=\"automations\""
                : "Bearer realm=\"automations\"",
            &ngx_http_automations_missing);
    }

    value = r->headers_in.authorization->value;

    if (x_api_key && x_api_key->value.len
        && !((alcf->schemes
                 & (NGX_HTTP_AUTOMATIONS_AUTH_APIKEY
                     | NGX_HTTP_AUTOMATIONS_AUTH_JWT))
             && value.len > 7
             && ngx_strncasecmp(value.data, (u_char *) "Bearer ", 7) == 0)) {
        /* the start-automation scheme sends "Token <t>" or the bare token */
        (void) ngx_http_automations_strip_scheme(&value, "Token");
        return ngx_http_automations_auth_token(
            r, ctx, &value, &x_api_key->value);
    }

    if (!ngx_http_automations_strip_scheme(&value, "Bearer")) {
        ngx_str_set(&reason, "unsupported authorization scheme");
        return ngx_http_automations_auth_invalid(r, &reason);
    }

    if ((alcf->schemes & NGX_HTTP_AUTOMATIONS_AUTH_APIKEY) && value.len > 4
        && ngx_strncmp(value.data, "amk_", 4) == 0) {
        return ngx_http_automations_auth_apikey(r, ctx, &value);
    }

    if (!(alcf->schemes & NGX_HTTP_AUTOMATIONS_AUTH_JWT)) {
        ngx_str_set(&reason, "not an accepted credential");
        return ngx_http_automations_auth_invalid(r, &reason);
    }

    rc = ngx_http_automations_jwt_verify(r, ctx, &value, &reason);

    if (rc == NGX_DECLINED) {
        return ngx_http_automations_auth_invalid(r, &reason);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->projects.len == 0 && alcf->project == NULL) {
        ngx_str_set(&detail, "The token names no project.");
        return ngx_http_automations_auth_fail(
            r, NGX_HTTP_FORBIDDEN, NULL, &detail);
    }

    return ngx_http_automations_auth_decide(r, ctx);
}


/* the end of a lookup: decide, then resume the phases or finish */
static void
ngx_http_automations_auth_resume(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    if (ngx_http_automations_auth_decide(r, ctx) == NGX_OK) {
        ngx_http_core_run_phases(r);
    }
}


static void
ngx_http_automations_auth_unavailable(ngx_http_request_t *r)
{
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_automations_get_ctx(r);
    ctx->auth_state = ngx_http_automations_auth_done;
    ctx->auth_rc = NGX_DONE;

    ngx_http_automations_finish(
        r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
}


/* copies a bulk string reply element into the request pool */
static ngx_int_t
ngx_http_automations_reply_str(
    ngx_http_request_t *r, redisReply *e, ngx_str_t *s)
{
    if (e->type != REDIS_REPLY_STRING) {
        return NGX_DECLINED;
    }

    s->data = ngx_pnalloc(r->pool, e->len);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, e->str, e->len);
    s->len = e->len;

    return NGX_OK;
}


/* HMGET project scopes id sha256 */
static void
ngx_http_automations_apikey_reply(ngx_http_request_t *r, redisReply *reply)
{
    ngx_str_t                   scopes, id, sha, reason;
    ngx_http_automations_ctx_t *ctx;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        /* no answer, or an error such as LOADING or NOAUTH */
        ngx_http_automations_auth_unavailable(r);
        return;
    }

    ctx = ngx_http_automations_get_ctx(r);

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4
        || ngx_http_automations_reply_str(r, reply->element[0], &ctx->projects)
               != NGX_OK
        || ngx_http_automations_reply_str(r, reply->element[1], &scopes)
               != NGX_OK
        || ngx_http_automations_reply_str(r, reply->element[2], &id) != NGX_OK
        || ngx_http_automations_reply_str(r, reply->element[3], &sha) != NGX_OK
        || sha.len != AM_SHA256_HEX_LEN) {
        ngx_str_set(&reason, "unknown or revoked API key");
        ngx_http_automations_auth_invalid(r, &reason);
        return;
    }

    if (!am_ct_equal(ctx->digest.data, sha.data, AM_SHA256_HEX_LEN)) {
        ngx_str_set(&reason, "API key digest mismatch");
        ngx_http_automations_auth_invalid(r, &reason);
        return;
    }

    ctx->scopes = ngx_http_automations_scopes_parse(scopes.data, scopes.len);

    ctx->subject.data = ngx_pnalloc(r->pool, sizeof("apikey:") - 1 + id.len);
    if (ctx->subject.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->subject.len =
        ngx_sprintf(ctx->subject.data, "apikey:%V", &id) - ctx->subject.data;

    ngx_http_automations_auth_resume(r, ctx);
}


static ngx_int_t
ngx_http_automations_auth_apikey(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx, ngx_str_t *key)
{
    u_char     *sep, *p;
    size_t      argvlen[6];
    ngx_str_t   project, rkey, reason, suffix;
    ngx_uint_t  i;
    const char *argv[6];

    /* amk_<project>_<64 hex>: the project routes the lookup to its slot */

    sep = NULL;
    for (p = key->data + key->len; p > key->data + 4; p--) {
        if (p[-1] == '_') {
            sep = p - 1;
            break;
        }
    }

    if (sep == NULL
        || (size_t) (key->data + key->len - sep - 1) != AM_SHA256_HEX_LEN) {
        ngx_str_set(&reason, "malformed API key");
        return ngx_http_automations_auth_invalid(r, &reason);
    }

    project.data = key->data + 4;
    project.len = sep - project.data;

    for (i = 0; i < AM_SHA256_HEX_LEN; i++) {
        if (!((sep[1 + i] >= '0' && sep[1 + i] <= '9')
                || (sep[1 + i] >= 'a' && sep[1 + i] <= 'f'))) {
            project.len = 0;
        }
    }

    if (!am_project_name_valid((char *) project.data, project.len)) {
        ngx_str_set(&reason, "malformed API key");
        return ngx_http_automations_auth_invalid(r, &reason);
    }

    ctx->digest.data = ngx_pnalloc(r->pool, AM_SHA256_HEX_LEN + 1);
    if (ctx->digest.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    am_sha256_hex(key->data, key->len, (char *) ctx->digest.data);
    ctx->digest.len = AM_SHA256_HEX_LEN;

    suffix.len = sizeof(":apikey:") - 1 + AM_SHA256_HEX_LEN;
    suffix.data = ngx_pnalloc(r->pool, suffix.len + 1);
    if (suffix.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(suffix.data, ":apikey:%V%Z", &ctx->digest);

    if (ngx_http_automations_project_key(
            r, &project, (char *) suffix.data, &rkey)
        != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "HMGET";
    argv[1] = (char *) rkey.data;
    argv[2] = "project";
    argv[3] = "scopes";
    argv[4] = "id";
    argv[5] = "sha256";

    for (i = 0; i < 6; i++) {
        argvlen[i] = (i == 1) ? rkey.len : ngx_strlen(argv[i]);
    }

    ngx_str_set(&ctx->credential, "apikey");

    if (ngx_http_automations_redis_command(
            r, ngx_http_automations_apikey_reply, 6, argv, argvlen)
        != NGX_OK) {
        ctx->auth_state = ngx_http_automations_auth_done;
        ctx->auth_rc = NGX_DONE;
        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
        return NGX_DONE;
    }

    ctx->auth_state = ngx_http_automations_auth_pending;

    return NGX_AGAIN;
}


/* HMGET projects api_key_sha256 id sha256 */
static void
ngx_http_automations_token_reply(ngx_http_request_t *r, redisReply *reply)
{
    ngx_str_t                   key_sha, id, sha, reason;
    ngx_http_automations_ctx_t *ctx;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        /* no answer, or an error such as LOADING or NOAUTH */
        ngx_http_automations_auth_unavailable(r);
        return;
    }

    ctx = ngx_http_automations_get_ctx(r);

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4
        || ngx_http_automations_reply_str(r, reply->element[0], &ctx->projects)
               != NGX_OK
        || ngx_http_automations_reply_str(r, reply->element[1], &key_sha)
               != NGX_OK
        || ngx_http_automations_reply_str(r, reply->element[2], &id) != NGX_OK
        || ngx_http_automations_reply_str(r, reply->element[3], &sha) != NGX_OK
        || key_sha.len != AM_SHA256_HEX_LEN || sha.len != AM_SHA256_HEX_LEN) {
        ngx_str_set(&reason, "unknown or revoked token");
        ngx_http_automations_auth_invalid(r, &reason);
        return;
    }

    /* digest holds the token's and the X-Api-Key's, in that order */
    if (!(am_ct_equal(ctx->digest.data, sha.data, AM_SHA256_HEX_LEN)
            & am_ct_equal(ctx->digest.data + AM_SHA256_HEX_LEN, key_sha.data,
                AM_SHA256_HEX_LEN))) {
        ngx_str_set(&reason, "token and X-Api-Key do not match");
        ngx_http_automations_auth_invalid(r, &reason);
        return;
    }

    ctx->scopes =
        NGX_HTTP_AUTOMATIONS_SCOPE_RUN | NGX_HTTP_AUTOMATIONS_SCOPE_READ;

    ctx->subject.data = ngx_pnalloc(r->pool, sizeof("tokenpair:") - 1 + id.len);
    if (ctx->subject.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->subject.len =
        ngx_sprintf(ctx->subject.data, "tokenpair:%V", &id) - ctx->subject.data;

    ngx_http_automations_auth_resume(r, ctx);
}


static ngx_int_t
ngx_http_automations_auth_token(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, ngx_str_t *token, ngx_str_t *api_key)
{
    size_t      argvlen[6];
    ngx_str_t   rkey, cred, suffix;
    ngx_uint_t  i;
    const char *argv[6];

    ctx->digest.data = ngx_pnalloc(r->pool, 2 * AM_SHA256_HEX_LEN + 1);
    suffix.data =
        ngx_pnalloc(r->pool, sizeof(":tokenpair:") + AM_SHA256_HEX_LEN);
    if (ctx->digest.data == NULL || suffix.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    am_sha256_hex(token->data, token->len, (char *) ctx->digest.data);
    am_sha256_hex(api_key->data, api_key->len,
        (char *) ctx->digest.data + AM_SHA256_HEX_LEN);
    ctx->digest.len = 2 * AM_SHA256_HEX_LEN;

    suffix.len = ngx_sprintf(suffix.data, ":tokenpair:%*s%Z",
                     (size_t) AM_SHA256_HEX_LEN, ctx->digest.data)
                 - suffix.data - 1;

    ngx_str_set(&cred, "cred");

    if (ngx_http_automations_project_key(r, &cred, (char *) suffix.data, &rkey)
        != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "HMGET";
    argv[1] = (char *) rkey.data;
    argv[2] = "projects";
    argv[3] = "api_key_sha256";
    argv[4] = "id";
    argv[5] = "sha256";

    for (i = 0; i < 6; i++) {
        argvlen[i] = (i == 1) ? rkey.len : ngx_strlen(argv[i]);
    }

    ngx_str_set(&ctx->credential, "token");

    if (ngx_http_automations_redis_command(
            r, ngx_http_automations_token_reply, 6, argv, argvlen)
        != NGX_OK) {
        ctx->auth_state = ngx_http_automations_auth_done;
        ctx->auth_rc = NGX_DONE;
        ngx_http_automations_finish(
            r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
        return NGX_DONE;
    }

    ctx->auth_state = ngx_http_automations_auth_pending;

    return NGX_AGAIN;
}


ngx_int_t
ngx_http_automations_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t *var, *v;

    for (v = ngx_http_automations_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_automations_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                  *s;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    /* also after a 403: the log should say who was refused */
    if (ctx == NULL || !ctx->authenticated) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_automations_variable_scopes(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                     *p;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    /* also after a 403: the log should say who was refused */
    if (ctx == NULL || !ctx->authenticated) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, sizeof("read write run"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    if (ctx->scopes & NGX_HTTP_AUTOMATIONS_SCOPE_READ) {
        p = ngx_cpymem(p, "read ", 5);
    }

    if (ctx->scopes & NGX_HTTP_AUTOMATIONS_SCOPE_WRITE) {
        p = ngx_cpymem(p, "write ", 6);
    }

    if (ctx->scopes & NGX_HTTP_AUTOMATIONS_SCOPE_RUN) {
        p = ngx_cpymem(p, "run ", 4);
    }

    v->len = (p > v->data) ? p - v->data - 1 : 0;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
