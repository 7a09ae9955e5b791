/*
 * The access phase, for automations_api and automations_start_api
 * locations and for any location with automations_auth (for example in
 * front of proxy_pass): who calls, on which project, and may they.
 *
 *   Authorization: Bearer <jwt>                  src/ngx_http_automations_jwt.c
 *   Authorization: Bearer amk_<project>_<hex>    API key  } looked up in Redis,
 *   Authorization: [Token ]<token> + X-Api-Key   tokenpair} ..._credential.c
 *
 * The route is found first (src/ngx_http_automations_route.c): it says the
 * scope needed and, in the start API, the project. Lookups are async: the
 * handler returns NGX_AGAIN and the lookup's reply resumes the phases
 * through ngx_http_automations_access_resume(). The outcome lands in the
 * request context and in the $automations_* variables, which also describe
 * a refused caller, for the access log.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"


static ngx_int_t ngx_http_automations_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_automations_variable_execution_id(
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

    {ngx_string("automations_execution_id"), NULL,
        ngx_http_automations_variable_execution_id, 0, 0, 0},

    {ngx_string("automations_scopes"), NULL,
        ngx_http_automations_variable_scopes, 0, 0, 0},

    ngx_http_null_variable};


static ngx_str_t ngx_http_automations_missing =
    ngx_string("Authentication credentials were not provided.");


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


/* the request is answered here: the phase handler returns NGX_DONE */
static ngx_int_t
ngx_http_automations_access_done(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx, ngx_int_t rc)
{
    ctx->auth_state = ngx_http_automations_auth_done;
    ctx->auth_rc = NGX_DONE;

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/* the refusal of genuine credentials, with who they are, for the log */
static void
ngx_http_automations_access_log_refusal(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx, ngx_str_t *detail)
{
    if (ctx->credential.len == 3 && ctx->alg.len == 0
        && ngx_strncmp(ctx->credential.data, "jwt", 3) == 0) {
        ngx_http_automations_jwt_describe(r, ctx);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
        "automations: access refused: %V (credential: %V, subject: "
        "\"%V\", kid: \"%V\", alg: %V)",
        detail, &ctx->credential, &ctx->subject, &ctx->kid, &ctx->alg);
}


static ngx_int_t
ngx_http_automations_access_fail(ngx_http_request_t *r, ngx_uint_t status,
    const char *challenge, ngx_str_t *detail)
{
    ngx_table_elt_t            *h;
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_automations_get_ctx(r);
    if (ctx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_DONE;
    }

    if (status == NGX_HTTP_FORBIDDEN) {
        ngx_http_automations_access_log_refusal(r, ctx, detail);
    }

    if (challenge) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return ngx_http_automations_access_done(
                r, ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");
        h->value.data = (u_char *) challenge;
        h->value.len = ngx_strlen(challenge);
        r->headers_out.www_authenticate = h;
    }

    return ngx_http_automations_access_done(
        r, ctx, ngx_http_automations_send_detail(r, status, "%V", detail));
}


/*
 * A genuine credential without the access a request needs. The Automations
 * API answers 404 there, as its reference does, so that a credential cannot
 * tell another project's automations from absent ones; elsewhere, 403.
 */
static ngx_int_t
ngx_http_automations_access_denied(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx, ngx_str_t *detail)
{
    ngx_str_t denied;

    if (ctx->route_state == ngx_http_automations_route_found
        && ctx->route->denied) {
        denied.data = (u_char *) ctx->route->denied;
        denied.len = ngx_strlen(ctx->route->denied);
        ngx_http_automations_access_log_refusal(r, ctx, detail);
        return ngx_http_automations_access_fail(
            r, NGX_HTTP_NOT_FOUND, NULL, &denied);
    }

    return ngx_http_automations_access_fail(
        r, NGX_HTTP_FORBIDDEN, NULL, detail);
}


/* 401 for credentials that are not genuine; reason goes to the log only */
ngx_int_t
ngx_http_automations_access_invalid(ngx_http_request_t *r, ngx_str_t *reason)
{
    ngx_str_t                        detail;
    ngx_http_automations_ctx_t      *ctx;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);
    ctx = ngx_http_automations_get_ctx(r);

    if (ctx) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
            "automations: credentials refused: %V (credential: %V, "
            "subject: \"%V\", kid: \"%V\", alg: %V)",
            reason, &ctx->credential, &ctx->subject, &ctx->kid, &ctx->alg);
    }

    ngx_http_automations_metrics_refusal(ngx_http_automations_refusal_invalid);

    if (alcf->schemes == NGX_HTTP_AUTOMATIONS_AUTH_TOKENPAIR
        || alcf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_START) {
        ngx_str_set(&detail, "Invalid token.");
        return ngx_http_automations_access_fail(
            r, NGX_HTTP_UNAUTHORIZED, "Token realm=\"automations\"", &detail);
    }

    ngx_str_set(&detail, "Invalid authentication credentials.");

    return ngx_http_automations_access_fail(r, NGX_HTTP_UNAUTHORIZED,
        "Bearer realm=\"automations\", "
        "error=\"invalid_token\"",
        &detail);
}


/*
 * The project a request outside the start API acts on: the configured
 * one, which the credential must reach, or the credential's only one.
 */
static ngx_int_t
ngx_http_automations_access_project(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_str_t                        detail;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    if (alcf->project == NULL) {
        if (ngx_strlchr(
                ctx->projects.data, ctx->projects.data + ctx->projects.len, ' ')
            == NULL) {
            ctx->project = ctx->projects;
        }

        return NGX_OK;
    }

    if (ngx_http_complex_value(r, alcf->project, &ctx->project) != NGX_OK) {
        return ngx_http_automations_access_done(
            r, ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    if (alcf->schemes
        && !ngx_http_automations_list_has(&ctx->projects, &ctx->project)) {
        ngx_str_set(
            &detail, "These credentials have no access to this project.");
        ctx->project.len = 0;
        ngx_http_automations_metrics_refusal(
            ngx_http_automations_refusal_project);
        return ngx_http_automations_access_denied(r, ctx, &detail);
    }

    return NGX_OK;
}


/*
 * The credential is genuine: decide which project the request acts on and
 * whether the credential may do that. NGX_OK, or an answer was sent.
 */
ngx_int_t
ngx_http_automations_access_decide(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_int_t                        rc;
    ngx_str_t                        detail;
    ngx_uint_t                       scope;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    ctx->authenticated = 1;

    if (alcf->handler != NGX_HTTP_AUTOMATIONS_HANDLER_START) {
        rc = ngx_http_automations_access_project(r, ctx);
        if (rc != NGX_OK) {
            return rc;
        }

    } else if (ctx->project.len
               && !ngx_http_automations_list_has(
                   &ctx->projects, &ctx->project)) {
        /* the project is in the URL; the reference hides whether it exists */
        ngx_http_automations_metrics_refusal(
            ngx_http_automations_refusal_project);
        return ngx_http_automations_access_done(r, ctx,
            ngx_http_automations_send_message(r, NGX_HTTP_FORBIDDEN,
                "This Project does not exist. consult API"));
    }

    scope = (alcf->handler == NGX_HTTP_AUTOMATIONS_HANDLER_NONE)
                ? alcf->scope
                : ngx_http_automations_route_scope(ctx);

    if (scope & ~ctx->scopes) {
        ngx_str_set(&detail, "These credentials do not allow this operation.");
        ngx_http_automations_metrics_refusal(
            ngx_http_automations_refusal_scope);
        return ngx_http_automations_access_denied(r, ctx, &detail);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
        "automations: %V \"%V\" acts on project \"%V\"", &ctx->credential,
        &ctx->subject, &ctx->project);

    ctx->auth_state = ngx_http_automations_auth_done;
    ctx->auth_rc = NGX_OK;

    return NGX_OK;
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


/* Authorization: Bearer <jwt>, verified in place */
static ngx_int_t
ngx_http_automations_access_jwt(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx, ngx_str_t *token)
{
    ngx_int_t                        rc;
    ngx_str_t                        reason, detail;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    rc = ngx_http_automations_jwt_verify(r, ctx, token, &reason);

    if (rc == NGX_DECLINED) {
        return ngx_http_automations_access_invalid(r, &reason);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->projects.len == 0 && alcf->project == NULL) {
        ngx_str_set(&detail, "The token names no project.");
        ngx_http_automations_metrics_refusal(
            ngx_http_automations_refusal_no_project);
        return ngx_http_automations_access_denied(r, ctx, &detail);
    }

    return ngx_http_automations_access_decide(r, ctx);
}


/* whether the request uses the start-automation scheme, a tokenpair */
static ngx_flag_t
ngx_http_automations_access_is_tokenpair(
    ngx_http_request_t *r, ngx_table_elt_t *x_api_key)
{
    ngx_str_t                       *value;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);
    value = &r->headers_in.authorization->value;

    if (x_api_key == NULL || x_api_key->value.len == 0) {
        return 0;
    }

    /* with X-Api-Key, "Bearer" still means a JWT or an API key if allowed */
    return !((alcf->schemes
                 & (NGX_HTTP_AUTOMATIONS_AUTH_APIKEY
                     | NGX_HTTP_AUTOMATIONS_AUTH_JWT))
             && value->len > 7
             && ngx_strncasecmp(value->data, (u_char *) "Bearer ", 7) == 0);
}


/* which credential the request carries, and its check */
static ngx_int_t
ngx_http_automations_access_authenticate(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_str_t                        value, reason;
    ngx_table_elt_t                 *x_api_key;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    x_api_key = (alcf->schemes & NGX_HTTP_AUTOMATIONS_AUTH_TOKENPAIR)
                    ? ngx_http_automations_header(r, "X-Api-Key")
                    : NULL;

    if (r->headers_in.authorization == NULL
        || r->headers_in.authorization->value.len == 0
        || (alcf->schemes == NGX_HTTP_AUTOMATIONS_AUTH_TOKENPAIR
            && (x_api_key == NULL || x_api_key->value.len == 0))) {
        ngx_http_automations_metrics_refusal(
            ngx_http_automations_refusal_missing);
        return ngx_http_automations_access_fail(r, NGX_HTTP_UNAUTHORIZED,
            alcf->schemes == NGX_HTTP_AUTOMATIONS_AUTH_TOKENPAIR
                ? "Token realm=\"automations\""
                : "Bearer realm=\"automations\"",
            &ngx_http_automations_missing);
    }

    value = r->headers_in.authorization->value;

    if (ngx_http_automations_access_is_tokenpair(r, x_api_key)) {
        /* the start-automation scheme sends "Token <t>" or the bare token */
        (void) ngx_http_automations_strip_scheme(&value, "Token");
        return ngx_http_automations_tokenpair(
            r, ctx, &value, &x_api_key->value);
    }

    if (!ngx_http_automations_strip_scheme(&value, "Bearer")) {
        ngx_str_set(&reason, "unsupported authorization scheme");
        return ngx_http_automations_access_invalid(r, &reason);
    }

    if ((alcf->schemes & NGX_HTTP_AUTOMATIONS_AUTH_APIKEY) && value.len > 4
        && ngx_strncmp(value.data, "amk_", 4) == 0) {
        return ngx_http_automations_apikey(r, ctx, &value);
    }

    if (!(alcf->schemes & NGX_HTTP_AUTOMATIONS_AUTH_JWT)) {
        ngx_str_set(&reason, "not an accepted credential");
        return ngx_http_automations_access_invalid(r, &reason);
    }

    return ngx_http_automations_access_jwt(r, ctx, &value);
}


ngx_int_t
ngx_http_automations_access_handler(ngx_http_request_t *r)
{
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

    if (alcf->handler != NGX_HTTP_AUTOMATIONS_HANDLER_NONE) {
        ngx_http_automations_route_find(r, ctx);
    }

    if (alcf->schemes == 0) {
        /* automations_auth off: the configured project, full access */
        ctx->scopes = NGX_HTTP_AUTOMATIONS_SCOPE_ALL;
        ngx_str_set(&ctx->credential, "none");
        return ngx_http_automations_access_decide(r, ctx);
    }

    return ngx_http_automations_access_authenticate(r, ctx);
}


/* the end of a lookup: decide, then resume the phases or finish */
void
ngx_http_automations_access_resume(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    if (ngx_http_automations_access_decide(r, ctx) == NGX_OK) {
        ngx_http_core_run_phases(r);
    }
}


/* a lookup found Redis unavailable: 503 */
void
ngx_http_automations_access_unavailable(ngx_http_request_t *r)
{
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_automations_get_ctx(r);
    ctx->auth_state = ngx_http_automations_auth_done;
    ctx->auth_rc = NGX_DONE;

    ngx_http_automations_finish(
        r, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_AUTOMATIONS_UNAVAILABLE);
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


/* the execution a request created or read; "-" in logs for the others */
static ngx_int_t
ngx_http_automations_variable_execution_id(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_automations_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_automations_module);

    if (ctx == NULL || !ctx->authenticated || ctx->execution_id.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->execution_id.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->execution_id.data;

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
