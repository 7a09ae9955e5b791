/*
 * What a user does with executions once started, under both APIs:
 *
 *   GET  <api location>executions                    the project's
 *   GET  <api location>NAME/executions               one automation's
 *   POST <api location>NAME/executions/ID/cancel
 *   POST <api location>NAME/executions/ID/retry
 *   GET  <start location>PROJECT/executions
 *   GET  <start location>PROJECT/NAME/executions
 *   POST <start location>PROJECT/NAME/executions/ID/cancel
 *   POST <start location>PROJECT/NAME/executions/ID/retry
 *
 * Lists are newest first, filtered by status and creation time (?status=,
 * ?since=, ?until=, RFC 3339 or seconds since the epoch), a page of
 * ?limit= (1 to 100, 20 by default) with an opaque next_cursor to pass as
 * ?cursor=. Each call is one script of redis/ (execution_list, _cancel,
 * _retry), whose { status, body } is the answer. Ids and names of another
 * project are not found, as with the other endpoints: every key is built
 * from the project of the request.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_automations.h"
#include "ngx_http_automations_redis.h"
#include "am_execution.h"
#include "am_name.h"
#include "am_scripts.h"


#define NGX_HTTP_AUTOMATIONS_LIST_LIMIT 20
#define NGX_HTTP_AUTOMATIONS_LIST_MAX 100

/* ms since the epoch fit in 15 digits until the year 33658 */
#define NGX_HTTP_AUTOMATIONS_MS_DIGITS 15


static ngx_str_t ngx_http_automations_statuses[] = {ngx_string("queued"),
    ngx_string("running"), ngx_string("success"), ngx_string("error"),
    ngx_string("timed_out"), ngx_string("cancelled"), ngx_null_string};


/* "<prefix><name>", a key shared by every project */
static ngx_int_t
ngx_http_automations_global_key(
    ngx_http_request_t *r, const char *name, ngx_str_t *key)
{
    ngx_http_automations_main_conf_t *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_automations_module);

    key->data = ngx_pnalloc(r->pool, amcf->prefix.len + ngx_strlen(name));
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len = ngx_sprintf(key->data, "%V%s", &amcf->prefix, name) - key->data;

    return NGX_OK;
}


/*
 * The start API answers names that cannot exist as absent; NGX_DECLINED
 * when they are well formed, else the code of the 404 sent.
 */
static ngx_int_t
ngx_http_automations_execution_names(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    if (ctx->route->api != NGX_HTTP_AUTOMATIONS_HANDLER_START) {
        return NGX_DECLINED;
    }

    if (!am_project_name_valid((char *) ctx->project.data, ctx->project.len)) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_NOT_FOUND, "Project not found");
    }

    if (ctx->name.data
        && !am_automation_name_valid((char *) ctx->name.data, ctx->name.len)) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_NOT_FOUND, "Automation not found");
    }

    return NGX_DECLINED;
}


/* the unescaped value of query argument name, or an empty string */
static ngx_int_t
ngx_http_automations_query_arg(
    ngx_http_request_t *r, const char *name, ngx_str_t *value)
{
    u_char   *dst, *src;
    ngx_str_t raw;

    ngx_str_null(value);

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &raw) != NGX_OK) {
        return NGX_OK;
    }

    dst = ngx_pnalloc(r->pool, raw.len + 1);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    value->data = dst;
    src = raw.data;
    ngx_unescape_uri(&dst, &src, raw.len, NGX_UNESCAPE_URI);
    value->len = dst - value->data;

    return NGX_OK;
}


/* days since 1970-01-01 of a civil date (Howard Hinnant's algorithm) */
static ngx_int_t
ngx_http_automations_days(ngx_int_t y, ngx_int_t m, ngx_int_t d)
{
    ngx_int_t era, yoe, doy, doe;

    y -= m <= 2;
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


/* the decimal number of the len bytes at p, or NGX_ERROR */
static ngx_int_t
ngx_http_automations_digits(u_char *p, size_t len)
{
    return len ? ngx_atoi(p, len) : NGX_ERROR;
}


/*
 * A time as ?since= and ?until= give it, into milliseconds since the
 * epoch, as a string for the script: seconds since the epoch, or RFC 3339
 * "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)". NGX_DECLINED when it
 * is neither.
 */
static ngx_int_t
ngx_http_automations_query_time(
    ngx_http_request_t *r, ngx_str_t *v, ngx_str_t *ms)
{
    u_char    *p, *last;
    ngx_int_t  y, mo, d, h, mi, s, oh, om, off, sec;
    ngx_uint_t i;

    if (v->len == 0) {
        return NGX_OK;
    }

    for (i = 0; i < v->len && v->data[i] >= '0' && v->data[i] <= '9'; i++) {
        /* all digits: seconds */
    }

    if (i == v->len) {
        if (v->len > NGX_HTTP_AUTOMATIONS_MS_DIGITS - 3) {
            return NGX_DECLINED;
        }

        sec = ngx_atoi(v->data, v->len);

    } else {
        p = v->data;
        last = p + v->len;

        if (v->len < 20 || p[4] != '-' || p[7] != '-'
            || (p[10] != 'T' && p[10] != 't') || p[13] != ':' || p[16] != ':') {
            return NGX_DECLINED;
        }

        y = ngx_http_automations_digits(p, 4);
        mo = ngx_http_automations_digits(p + 5, 2);
        d = ngx_http_automations_digits(p + 8, 2);
        h = ngx_http_automations_digits(p + 11, 2);
        mi = ngx_http_automations_digits(p + 14, 2);
        s = ngx_http_automations_digits(p + 17, 2);

        if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23
            || mi < 0 || mi > 59 || s < 0 || s > 60) {
            return NGX_DECLINED;
        }

        p += 19;

        if (*p == '.') {
            for (p++; p < last && *p >= '0' && *p <= '9'; p++) {
                /* a fraction of a second: the indexes count ms, it is cut */
            }
        }

        off = 0;

        if (last - p == 1 && (*p == 'Z' || *p == 'z')) {
            off = 0;

        } else if (last - p == 6 && (*p == '+' || *p == '-') && p[3] == ':') {
            oh = ngx_http_automations_digits(p + 1, 2);
            om = ngx_http_automations_digits(p + 4, 2);

            if (oh == NGX_ERROR || om == NGX_ERROR || oh > 23 || om > 59) {
                return NGX_DECLINED;
            }

            off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);

        } else {
            return NGX_DECLINED;
        }

        sec = ngx_http_automations_days(y, mo, d) * 86400 + (h * 60 + mi) * 60
              + s - off;

        if (sec < 0) {
            return NGX_DECLINED;
        }
    }

    ms->data = ngx_pnalloc(r->pool, NGX_INT64_LEN + 3);
    if (ms->data == NULL) {
        return NGX_ERROR;
    }

    ms->len = ngx_sprintf(ms->data, "%i000", sec) - ms->data;

    return NGX_OK;
}


/* a cursor as execution_list.lua makes it: "<ms>-<execution id>" */
static ngx_flag_t
ngx_http_automations_cursor_valid(ngx_str_t *c)
{
    u_char   *dash;
    ngx_str_t id;

    dash = ngx_strlchr(c->data, c->data + c->len, '-');

    if (dash == NULL || dash == c->data
        || dash - c->data > NGX_HTTP_AUTOMATIONS_MS_DIGITS
        || ngx_atoi(c->data, dash - c->data) == NGX_ERROR) {
        return 0;
    }

    id.data = dash + 1;
    id.len = c->data + c->len - id.data;

    return ngx_http_automations_execution_id_valid(&id);
}


/*
 * The list script's query arguments. NGX_OK; NGX_DECLINED with the
 * reason in detail; NGX_ERROR.
 */
static ngx_int_t
ngx_http_automations_list_args(
    ngx_http_request_t *r, ngx_str_t *args, const char **detail)
{
    ngx_int_t  limit;
    ngx_str_t  v, *st;
    ngx_uint_t i;

    static const struct {
        const char *name;
        ngx_uint_t  arg;
        const char *detail;
    } times[] = {
        {"since", AM_EXECUTION_LIST_ARG_SINCE,
            "since must be an RFC 3339 time or seconds since the epoch."},
        {"until", AM_EXECUTION_LIST_ARG_UNTIL,
            "until must be an RFC 3339 time or seconds since the epoch."},
    };

    if (ngx_http_automations_query_arg(r, "limit", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (v.data == NULL) {
        ngx_str_set(&args[AM_EXECUTION_LIST_ARG_LIMIT],
            NGX_HTTP_AUTOMATIONS_STR(NGX_HTTP_AUTOMATIONS_LIST_LIMIT));

    } else {
        limit = v.len <= 3 ? ngx_atoi(v.data, v.len) : NGX_ERROR;

        if (limit < 1 || limit > NGX_HTTP_AUTOMATIONS_LIST_MAX) {
            *detail =
                "limit must be an integer from 1 to " NGX_HTTP_AUTOMATIONS_STR(
                    NGX_HTTP_AUTOMATIONS_LIST_MAX) ".";
            return NGX_DECLINED;
        }

        args[AM_EXECUTION_LIST_ARG_LIMIT] = v;
    }

    if (ngx_http_automations_query_arg(
            r, "cursor", &args[AM_EXECUTION_LIST_ARG_CURSOR])
        != NGX_OK) {
        return NGX_ERROR;
    }

    if (args[AM_EXECUTION_LIST_ARG_CURSOR].data
        && !ngx_http_automations_cursor_valid(
            &args[AM_EXECUTION_LIST_ARG_CURSOR])) {
        *detail = "cursor is not one a list of executions gave.";
        return NGX_DECLINED;
    }

    if (ngx_http_automations_query_arg(
            r, "status", &args[AM_EXECUTION_LIST_ARG_STATUS])
        != NGX_OK) {
        return NGX_ERROR;
    }

    st = &args[AM_EXECUTION_LIST_ARG_STATUS];

    if (st->data) {
        for (i = 0; ngx_http_automations_statuses[i].len; i++) {
            if (st->len == ngx_http_automations_statuses[i].len
                && ngx_strncmp(
                       st->data, ngx_http_automations_statuses[i].data, st->len)
                       == 0) {
                break;
            }
        }

        if (ngx_http_automations_statuses[i].len == 0) {
            *detail = "status must be one of queued, running, success, "
                      "error, timed_out, cancelled.";
            return NGX_DECLINED;
        }
    }

    for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        if (ngx_http_automations_query_arg(r, times[i].name, &v) != NGX_OK) {
            return NGX_ERROR;
        }

        switch (ngx_http_automations_query_time(r, &v, &args[times[i].arg])) {
        case NGX_OK:
            break;
        case NGX_DECLINED:
            *detail = times[i].detail;
            return NGX_DECLINED;
        default:
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* GET [PROJECT/][NAME/]executions */
ngx_int_t
ngx_http_automations_execution_list(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_int_t   rc;
    ngx_str_t   keys[AM_EXECUTION_LIST_NKEYS], args[AM_EXECUTION_LIST_NARGS];
    const char *detail;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_automations_execution_names(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_automations_project_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    ngx_memzero(args, sizeof(args));

    rc = ngx_http_automations_list_args(r, args, &detail);

    if (rc == NGX_DECLINED) {
        return ngx_http_automations_send_detail(
            r, NGX_HTTP_BAD_REQUEST, "%s", detail);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    args[AM_EXECUTION_LIST_ARG_AUTOMATION] = ctx->name;

    if (ngx_http_automations_project_key(
            r, &ctx->project, ":project", &keys[AM_EXECUTION_LIST_KEY_PROJECT])
            != NGX_OK
        || ngx_http_automations_project_key(
               r, &ctx->project, ":", &args[AM_EXECUTION_LIST_ARG_BASE])
               != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_automations_redis_answer(r, AM_SCRIPT_EXECUTION_LIST,
        AM_EXECUTION_LIST_NKEYS, keys, AM_EXECUTION_LIST_NARGS, args);
}


/* what cancel and retry check before their script */
static ngx_int_t
ngx_http_automations_execution_ready(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_int_t rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_automations_execution_names(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_automations_project_ready(r, ctx);
}


/* POST [PROJECT/]NAME/executions/ID/cancel */
ngx_int_t
ngx_http_automations_execution_cancel(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_int_t rc;
    ngx_str_t keys[AM_EXECUTION_CANCEL_NKEYS], args[AM_EXECUTION_CANCEL_NARGS];

    rc = ngx_http_automations_execution_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    args[AM_EXECUTION_CANCEL_ARG_AUTOMATION] = ctx->name;

    if (ngx_http_automations_execution_key(r, &ctx->project, &ctx->execution_id,
            &keys[AM_EXECUTION_CANCEL_KEY_EXECUTION])
            != NGX_OK
        || ngx_http_automations_global_key(
               r, "webhooks", &keys[AM_EXECUTION_CANCEL_KEY_WEBHOOKS])
               != NGX_OK
        || ngx_http_automations_global_key(
               r, "completions", &args[AM_EXECUTION_CANCEL_ARG_CHANNEL])
               != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_automations_redis_answer(r, AM_SCRIPT_EXECUTION_CANCEL,
        AM_EXECUTION_CANCEL_NKEYS, keys, AM_EXECUTION_CANCEL_NARGS, args);
}


/* POST [PROJECT/]NAME/executions/ID/retry */
ngx_int_t
ngx_http_automations_execution_retry(
    ngx_http_request_t *r, ngx_http_automations_ctx_t *ctx)
{
    ngx_int_t                        rc;
    ngx_str_t                        keys[AM_EXECUTION_RETRY_NKEYS];
    ngx_str_t                        args[AM_EXECUTION_RETRY_NARGS];
    ngx_str_t                       *id, *retention;
    ngx_http_automations_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_automations_module);

    rc = ngx_http_automations_execution_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    args[AM_EXECUTION_RETRY_ARG_AUTOMATION] = ctx->name;

    id = &args[AM_EXECUTION_RETRY_ARG_ID];
    id->data = ngx_pnalloc(r->pool, AM_EXECUTION_ID_LEN + 1);
    retention = &args[AM_EXECUTION_RETRY_ARG_RETENTION];
    retention->data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);

    if (id->data == NULL || retention->data == NULL
        || am_execution_id_new((char *) id->data) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    id->len = AM_EXECUTION_ID_LEN;
    retention->len =
        ngx_sprintf(retention->data, "%T", alcf->retention) - retention->data;

    if (ngx_http_automations_execution_key(r, &ctx->project, &ctx->execution_id,
            &keys[AM_EXECUTION_RETRY_KEY_EXECUTION])
            != NGX_OK
        || ngx_http_automations_stream_key(
               r, &keys[AM_EXECUTION_RETRY_KEY_STREAM])
               != NGX_OK
        || ngx_http_automations_project_key(
               r, &ctx->project, ":", &args[AM_EXECUTION_RETRY_ARG_BASE])
               != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_automations_redis_answer(r, AM_SCRIPT_EXECUTION_RETRY,
        AM_EXECUTION_RETRY_NKEYS, keys, AM_EXECUTION_RETRY_NARGS, args);
}
