/*
 * Credentials kept in Redis: API keys and tokenpairs, found by the SHA-256
 * digest of their secret (the secret itself is never stored), then
 * compared in constant time with the digest the record holds.
 *
 *   API key    amk_<project>_<64 hex>   "<prefix>{<project>}:apikey:<digest>"
 *   tokenpair  token + X-Api-Key        "<prefix>{cred}:tokenpair:<digest>"
 *
 * An API key names its project, so its record lives in that project's
 * slot; a tokenpair does not, so tokenpairs share the "cred" tag. Both
 * kinds are one lookup, told apart by a row of ngx_http_automations_kinds.
 * The reply resumes the access phase (src/ngx_http_automations_access.c).
 * A record read lately comes from the worker process's cache instead
 * (src/ngx_http_automations_cache.c), and the phase goes on at once.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_crypto.h"
#include "am_name.h"


/* the record's fields, read with one HMGET in this order */
#define NGX_HTTP_AUTOMATIONS_CRED_PROJECTS 0
#define NGX_HTTP_AUTOMATIONS_CRED_ID 1
#define NGX_HTTP_AUTOMATIONS_CRED_SHA256 2
#define NGX_HTTP_AUTOMATIONS_CRED_EXTRA 3
#define NGX_HTTP_AUTOMATIONS_CRED_FIELDS 4


struct ngx_http_automations_credential_s {
    ngx_str_t   kind;     /* in the key, $automations_credential, subjects */
    const char *projects; /* the field listing its projects */
    const char *extra;    /* its scopes, or the digest of a second secret */
    ngx_uint_t  scopes;   /* fixed scopes, or 0: read from extra */
    const char *unknown;  /* why a lookup failed, for the log */
    const char *mismatch;
};


static const ngx_http_automations_credential_t ngx_http_automations_kinds[] = {
    {ngx_string("apikey"), "project", "scopes", 0, "unknown or revoked API key",
        "API key digest mismatch"},

    {ngx_string("tokenpair"), "projects", "api_key_sha256",
        NGX_HTTP_AUTOMATIONS_SCOPE_RUN | NGX_HTTP_AUTOMATIONS_SCOPE_READ,
        "unknown or revoked tokenpair", "tokenpair and X-Api-Key do not match"},
};

#define NGX_HTTP_AUTOMATIONS_APIKEY (&ngx_http_automations_kinds[0])
#define NGX_HTTP_AUTOMATIONS_TOKENPAIR (&ngx_http_automations_kinds[1])


/* "read write run admin" and any subset, as credentials and roles list */
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


/* the record's fields, or NGX_DECLINED when it is missing or malformed */
static ngx_int_t
ngx_http_automations_credential_fields(
    ngx_http_request_t *r, redisReply *reply, ngx_str_t *f)
{
    ngx_uint_t i;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != NGX_HTTP_AUTOMATIONS_CRED_FIELDS) {
        return NGX_DECLINED;
    }

    for (i = 0; i < NGX_HTTP_AUTOMATIONS_CRED_FIELDS; i++) {
        if (ngx_http_automations_reply_str(r, reply->element[i], &f[i])
            != NGX_OK) {
            return NGX_DECLINED;
        }
    }

    return f[NGX_HTTP_AUTOMATIONS_CRED_SHA256].len == AM_SHA256_HEX_LEN
               ? NGX_OK
               : NGX_DECLINED;
}


/*
 * Whether the record's digests are those of the secrets presented (both
 * compared, so that the time taken does not tell which one differs), and
 * the credential's scopes.
 */
static ngx_flag_t
ngx_http_automations_credential_match(ngx_http_automations_ctx_t *ctx,
    const ngx_http_automations_credential_t *cred, ngx_str_t *f)
{
    ngx_str_t *extra;
    ngx_flag_t ok;

    extra = &f[NGX_HTTP_AUTOMATIONS_CRED_EXTRA];

    ok = am_ct_equal(ctx->digest.data, f[NGX_HTTP_AUTOMATIONS_CRED_SHA256].data,
        AM_SHA256_HEX_LEN);

    if (cred->scopes) {
        ctx->scopes = cred->scopes;

        if (extra->len != AM_SHA256_HEX_LEN) {
            return 0;
        }

        return ok
               & am_ct_equal(ctx->digest.data + AM_SHA256_HEX_LEN, extra->data,
                   AM_SHA256_HEX_LEN);
    }

    ctx->scopes = ngx_http_automations_scopes_parse(extra->data, extra->len);

    return ok;
}


/*
 * The record's fields are those of the secrets presented: who calls, and
 * NGX_OK; else the request was answered (NGX_DONE) or the error to answer.
 */
static ngx_int_t
ngx_http_automations_credential_accept(ngx_http_request_t *r,
    ngx_http_automations_ctx_t                            *ctx,
    const ngx_http_automations_credential_t *cred, ngx_str_t *f)
{
    ngx_str_t reason, *id;

    if (!ngx_http_automations_credential_match(ctx, cred, f)) {
        reason.data = (u_char *) cred->mismatch;
        reason.len = ngx_strlen(cred->mismatch);
        return ngx_http_automations_access_invalid(r, &reason);
    }

    ctx->projects = f[NGX_HTTP_AUTOMATIONS_CRED_PROJECTS];
    id = &f[NGX_HTTP_AUTOMATIONS_CRED_ID];

    ctx->subject.data = ngx_pnalloc(r->pool, cred->kind.len + 1 + id->len);
    if (ctx->subject.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->subject.len = ngx_sprintf(ctx->subject.data, "%V:%V", &cred->kind, id)
                       - ctx->subject.data;

    return NGX_OK;
}


static void
ngx_http_automations_credential_reply(ngx_http_request_t *r, redisReply *reply)
{
    ngx_int_t                   rc;
    ngx_str_t                   f[NGX_HTTP_AUTOMATIONS_CRED_FIELDS];
    ngx_str_t                   reason;
    ngx_http_automations_ctx_t *ctx;
    const ngx_http_automations_credential_t *cred;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        /* no answer, or an error such as LOADING or NOAUTH */
        ngx_http_automations_access_unavailable(r);
        return;
    }

    ctx = ngx_http_automations_get_ctx(r);
    cred = ctx->lookup;

    if (ngx_http_automations_credential_fields(r, reply, f) != NGX_OK) {
        reason.data = (u_char *) cred->unknown;
        reason.len = ngx_strlen(cred->unknown);
        (void) ngx_http_automations_access_invalid(r, &reason);
        return;
    }

    rc = ngx_http_automations_credential_accept(r, ctx, cred, f);

    if (rc == NGX_OK) {
        ngx_http_automations_cache_put(
            &ctx->record, f, NGX_HTTP_AUTOMATIONS_CRED_FIELDS, ctx->tracked);
        ngx_http_automations_access_resume(r, ctx);
        return;
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * Looks up the credential of kind cred under the hash tag, by the first
 * digest in ctx->digest; the reply resumes the access phase.
 */
static ngx_int_t
ngx_http_automations_credential_lookup(ngx_http_request_t *r,
    ngx_http_automations_ctx_t                            *ctx,
    const ngx_http_automations_credential_t *cred, ngx_str_t *tag)
{
    size_t      argvlen[2 + NGX_HTTP_AUTOMATIONS_CRED_FIELDS];
    ngx_int_t   rc;
    ngx_str_t   key, digest, f[NGX_HTTP_AUTOMATIONS_CRED_FIELDS];
    ngx_uint_t  i;
    const char *argv[2 + NGX_HTTP_AUTOMATIONS_CRED_FIELDS];

    digest.data = ctx->digest.data;
    digest.len = AM_SHA256_HEX_LEN;

    if (ngx_http_automations_credential_key(
            r, tag, (ngx_str_t *) &cred->kind, &digest, &key)
        != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "HMGET";
    argv[1] = (char *) key.data;
    argv[2 + NGX_HTTP_AUTOMATIONS_CRED_PROJECTS] = cred->projects;
    argv[2 + NGX_HTTP_AUTOMATIONS_CRED_ID] = "id";
    argv[2 + NGX_HTTP_AUTOMATIONS_CRED_SHA256] = "sha256";
    argv[2 + NGX_HTTP_AUTOMATIONS_CRED_EXTRA] = cred->extra;

    for (i = 0; i < 2 + NGX_HTTP_AUTOMATIONS_CRED_FIELDS; i++) {
        argvlen[i] = (i == 1) ? key.len : ngx_strlen(argv[i]);
    }

    ctx->credential = cred->kind;
    ctx->lookup = cred;
    ctx->record = key;

    rc = ngx_http_automations_cache_get(
        r->pool, &key, f, NGX_HTTP_AUTOMATIONS_CRED_FIELDS);

    if (rc == NGX_OK) {
        ngx_http_automations_metrics_credential(1);

        rc = ngx_http_automations_credential_accept(r, ctx, cred, f);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_automations_access_decide(r, ctx);
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_automations_metrics_credential(0);

    if (ngx_http_automations_redis_read(r,
            ngx_http_automations_credential_reply,
            2 + NGX_HTTP_AUTOMATIONS_CRED_FIELDS, argv, argvlen, &ctx->tracked)
        != NGX_OK) {
        ngx_http_automations_access_unavailable(r);
        return NGX_DONE;
    }

    ctx->auth_state = ngx_http_automations_auth_pending;

    return NGX_AGAIN;
}


/* the project of amk_<project>_<64 lowercase hex>, or an empty string */
static void
ngx_http_automations_apikey_project(ngx_str_t *key, ngx_str_t *project)
{
    u_char    *sep, *p;
    ngx_uint_t i;

    ngx_str_null(project);

    sep = NULL;
    for (p = key->data + key->len; p > key->data + 4; p--) {
        if (p[-1] == '_') {
            sep = p - 1;
            break;
        }
    }

    if (sep == NULL
        || (size_t) (key->data + key->len - sep - 1) != AM_SHA256_HEX_LEN) {
        return;
    }

    for (i = 1; i <= AM_SHA256_HEX_LEN; i++) {
        if (!((sep[i] >= '0' && sep[i] <= '9')
                || (sep[i] >= 'a' && sep[i] <= 'f'))) {
            return;
        }
    }

    project->data = key->data + 4;
    project->len = sep - project->data;
}


/* Authorization: Bearer amk_...: the project routes the lookup to its slot */
ngx_int_t
ngx_http_automations_apikey(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx, ngx_str_t *key)
{
    ngx_str_t project, reason;

    ngx_http_automations_apikey_project(key, &project);

    if (!am_project_name_valid((char *) project.data, project.len)) {
        ngx_str_set(&reason, "malformed API key");
        return ngx_http_automations_access_invalid(r, &reason);
    }

    ctx->digest.data = ngx_pnalloc(r->pool, AM_SHA256_HEX_LEN + 1);
    if (ctx->digest.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    am_sha256_hex(key->data, key->len, (char *) ctx->digest.data);
    ctx->digest.len = AM_SHA256_HEX_LEN;

    return ngx_http_automations_credential_lookup(
        r, ctx, NGX_HTTP_AUTOMATIONS_APIKEY, &project);
}


/* Authorization: [Token ]<token> with X-Api-Key: both digests must match */
ngx_int_t
ngx_http_automations_tokenpair(ngx_http_request_t *r,
    ngx_http_automations_ctx_t *ctx, ngx_str_t *token, ngx_str_t *api_key)
{
    ngx_str_t tag;

    ctx->digest.data = ngx_pnalloc(r->pool, 2 * AM_SHA256_HEX_LEN + 1);
    if (ctx->digest.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    am_sha256_hex(token->data, token->len, (char *) ctx->digest.data);
    am_sha256_hex(api_key->data, api_key->len,
        (char *) ctx->digest.data + AM_SHA256_HEX_LEN);
    ctx->digest.len = 2 * AM_SHA256_HEX_LEN;

    ngx_str_set(&tag, "cred");

    return ngx_http_automations_credential_lookup(
        r, ctx, NGX_HTTP_AUTOMATIONS_TOKENPAIR, &tag);
}
