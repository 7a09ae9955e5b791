/*
 * automationsctl execution list|cancel|retry: a project's executions, as
 * the executions endpoints of the gateway show and change them, through the
 * same scripts (execution_list, execution_cancel, execution_retry).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_execution.h"
#include "am_json.h"
#include "am_scripts.h"
#include "ctl.h"

/* the gateway's default automations_retention: 7 days */
#define CTL_RETENTION_DEFAULT "604800"

/* how deep the bodies of the scripts' replies nest */
#define CTL_BODY_DEPTH 8

/*
 * The { status, body } reply of an API script: 0 with the body parsed when
 * the status is 2xx; else -1 after printing the body's detail.
 */
static int
ctl_http_reply(redisReply *r, yajl_val *body)
{
    yajl_val    v, detail;
    char        err[128];
    long long   status;
    const char *text;

    *body = NULL;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != AM_HTTP_REPLY_N
        || r->element[AM_HTTP_REPLY_STATUS]->type != REDIS_REPLY_INTEGER
        || r->element[AM_HTTP_REPLY_BODY]->type != REDIS_REPLY_STRING) {
        ctl_error("unexpected reply from Redis");
        return -1;
    }

    status = r->element[AM_HTTP_REPLY_STATUS]->integer;
    text = r->element[AM_HTTP_REPLY_BODY]->str;

    v = am_json_parse(text, r->element[AM_HTTP_REPLY_BODY]->len, CTL_BODY_DEPTH,
        err, sizeof(err));
    if (v == NULL) {
        ctl_error("unexpected reply from Redis: %s", err);
        return -1;
    }

    if (status < 200 || status > 299) {
        detail = am_json_get(v, "detail");
        ctl_error("%s", YAJL_IS_STRING(detail) ? detail->u.string : text);
        yajl_tree_free(v);
        return -1;
    }

    *body = v;
    return 0;
}

/* Runs an API script whose body is not needed: CTL_OK when it said 2xx. */
static int
ctl_execution_eval(
    ctl_t *ctl, const char *script, int nkeys, int argc, const char **argv)
{
    redisReply *r;
    yajl_val    body;
    int         rc;

    r = ctl_eval(ctl, script, nkeys, argc, argv);
    if (r == NULL) {
        return CTL_FAILED;
    }

    rc = ctl_http_reply(r, &body);
    freeReplyObject(r);

    if (rc != 0) {
        return CTL_FAILED;
    }

    yajl_tree_free(body);
    return CTL_OK;
}

static const char *
ctl_str(yajl_val obj, const char *key)
{
    yajl_val v;

    v = am_json_get(obj, key);
    return YAJL_IS_STRING(v) ? v->u.string : "-";
}

/* The project hash and key base of project, the names the scripts need. */
static int
ctl_execution_keys(ctl_t *ctl, const char *project, char *hash, char *base)
{
    if (ctl_name_check("project", project) != 0) {
        return CTL_USAGE;
    }

    if (ctl_key(ctl, hash, project, "project") != 0
        || ctl_key(ctl, base, project, "") != 0 || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    return CTL_OK;
}

/*
 * Prints "<id> <automation> <status> <created_at>" per execution, newest
 * first, then "next <cursor>" when there is a next page.
 */
static int
ctl_execution_list(ctl_t *ctl, const char *project, const char *automation,
    const char *status, const char *limit, const char *cursor)
{
    char         hash[CTL_KEY_MAX], base[CTL_KEY_MAX];
    const char  *argv[AM_EXECUTION_LIST_NKEYS + AM_EXECUTION_LIST_NARGS];
    const char **keys, **args;
    redisReply  *r;
    yajl_val     body, list, e;
    char        *end;
    long         n;
    size_t       i;
    int          rc;

    n = strtol(limit, &end, 10);
    if (*limit == '\0' || *end != '\0' || n < 1 || n > 100) {
        ctl_error("--limit must be from 1 to 100");
        return CTL_USAGE;
    }

    if (automation[0] != '\0'
        && ctl_name_check("automation", automation) != 0) {
        return CTL_USAGE;
    }

    rc = ctl_execution_keys(ctl, project, hash, base);
    if (rc != CTL_OK) {
        return rc;
    }

    keys = argv;
    args = argv + AM_EXECUTION_LIST_NKEYS;
    keys[AM_EXECUTION_LIST_KEY_PROJECT] = hash;
    args[AM_EXECUTION_LIST_ARG_BASE] = base;
    args[AM_EXECUTION_LIST_ARG_AUTOMATION] = automation;
    args[AM_EXECUTION_LIST_ARG_STATUS] = status;
    args[AM_EXECUTION_LIST_ARG_SINCE] = "";
    args[AM_EXECUTION_LIST_ARG_UNTIL] = "";
    args[AM_EXECUTION_LIST_ARG_LIMIT] = limit;
    args[AM_EXECUTION_LIST_ARG_CURSOR] = cursor;

    r = ctl_eval(ctl, AM_SCRIPT_EXECUTION_LIST, AM_EXECUTION_LIST_NKEYS,
        AM_EXECUTION_LIST_NKEYS + AM_EXECUTION_LIST_NARGS, argv);
    if (r == NULL) {
        return CTL_FAILED;
    }

    rc = ctl_http_reply(r, &body);
    freeReplyObject(r);

    if (rc != 0) {
        return CTL_FAILED;
    }

    list = am_json_get(body, "executions");

    printf("EXECUTION_ID AUTOMATION STATUS CREATED_AT\n");

    for (i = 0; YAJL_IS_ARRAY(list) && i < list->u.array.len; i++) {
        e = list->u.array.values[i];
        printf("%s %s %s %s\n", ctl_str(e, "execution_id"),
            ctl_str(e, "automation"), ctl_str(e, "status"),
            ctl_str(e, "created_at"));
    }

    if (YAJL_IS_STRING(am_json_get(body, "next_cursor"))) {
        printf("next %s\n", ctl_str(body, "next_cursor"));
    }

    yajl_tree_free(body);
    return CTL_OK;
}

static int
ctl_execution_cancel(ctl_t *ctl, const char *project, const char *id)
{
    char         hash[CTL_KEY_MAX], base[CTL_KEY_MAX], exec[CTL_KEY_MAX];
    char         rest[CTL_KEY_MAX], webhooks[CTL_KEY_MAX], chan[CTL_KEY_MAX];
    const char  *argv[AM_EXECUTION_CANCEL_NKEYS + AM_EXECUTION_CANCEL_NARGS];
    const char **keys, **args;
    int          rc;

    rc = ctl_execution_keys(ctl, project, hash, base);
    if (rc != CTL_OK) {
        return rc;
    }

    snprintf(rest, sizeof(rest), "execution:%s", id);

    if (ctl_key(ctl, exec, project, rest) != 0
        || ctl_key(ctl, webhooks, NULL, "webhooks") != 0
        || ctl_key(ctl, chan, NULL, "completions") != 0) {
        return CTL_FAILED;
    }

    keys = argv;
    args = argv + AM_EXECUTION_CANCEL_NKEYS;
    keys[AM_EXECUTION_CANCEL_KEY_EXECUTION] = exec;
    keys[AM_EXECUTION_CANCEL_KEY_WEBHOOKS] = webhooks;
    args[AM_EXECUTION_CANCEL_ARG_AUTOMATION] = "";
    args[AM_EXECUTION_CANCEL_ARG_CHANNEL] = chan;

    rc = ctl_execution_eval(ctl, AM_SCRIPT_EXECUTION_CANCEL,
        AM_EXECUTION_CANCEL_NKEYS,
        AM_EXECUTION_CANCEL_NKEYS + AM_EXECUTION_CANCEL_NARGS, argv);
    if (rc != CTL_OK) {
        return rc;
    }

    printf("execution %s cancelled\n", id);
    return CTL_OK;
}

/* Prints the id of the new execution. */
static int
ctl_execution_retry(
    ctl_t *ctl, const char *project, const char *id, const char *retention)
{
    char         hash[CTL_KEY_MAX], base[CTL_KEY_MAX], exec[CTL_KEY_MAX];
    char         rest[CTL_KEY_MAX], stream[CTL_KEY_MAX];
    char         new_id[AM_EXECUTION_ID_LEN + 1], *end;
    const char  *argv[AM_EXECUTION_RETRY_NKEYS + AM_EXECUTION_RETRY_NARGS];
    const char **keys, **args;
    long         n;
    int          rc;

    n = strtol(retention, &end, 10);
    if (*retention == '\0' || *end != '\0' || n < 1) {
        ctl_error("--retention must be a number of seconds");
        return CTL_USAGE;
    }

    rc = ctl_execution_keys(ctl, project, hash, base);
    if (rc != CTL_OK) {
        return rc;
    }

    snprintf(rest, sizeof(rest), "execution:%s", id);

    if (ctl_key(ctl, exec, project, rest) != 0
        || ctl_key(ctl, stream, NULL, "runs") != 0) {
        return CTL_FAILED;
    }

    if (am_execution_id_new(new_id) != 0) {
        ctl_error("cannot get random bytes");
        return CTL_FAILED;
    }

    keys = argv;
    args = argv + AM_EXECUTION_RETRY_NKEYS;
    keys[AM_EXECUTION_RETRY_KEY_EXECUTION] = exec;
    keys[AM_EXECUTION_RETRY_KEY_STREAM] = stream;
    args[AM_EXECUTION_RETRY_ARG_BASE] = base;
    args[AM_EXECUTION_RETRY_ARG_AUTOMATION] = "";
    args[AM_EXECUTION_RETRY_ARG_ID] = new_id;
    args[AM_EXECUTION_RETRY_ARG_RETENTION] = retention;

    rc = ctl_execution_eval(ctl, AM_SCRIPT_EXECUTION_RETRY,
        AM_EXECUTION_RETRY_NKEYS,
        AM_EXECUTION_RETRY_NKEYS + AM_EXECUTION_RETRY_NARGS, argv);
    if (rc != CTL_OK) {
        return rc;
    }

    printf("%s\n", new_id);
    return CTL_OK;
}

int
ctl_execution(ctl_t *ctl, int argc, char **argv)
{
    static const char *const subs[] = {"list", "cancel", "retry", NULL};

    const char *automation = NULL, *status = NULL, *limit = NULL;
    const char *cursor = NULL, *retention = NULL;
    char       *pos[3];
    int         n;

    ctl_opt_t opts[] = {
        {"--automation", &automation},
        {"--status", &status},
        {"--limit", &limit},
        {"--cursor", &cursor},
        {"--retention", &retention},
        {NULL, NULL},
    };

    n = ctl_parse(argc, argv, opts, pos, 3);

    if (n == 2 && strcmp(pos[0], "list") == 0 && retention == NULL) {
        return ctl_execution_list(ctl, pos[1], automation ? automation : "",
            status ? status : "", limit ? limit : "20", cursor ? cursor : "");
    }

    if (n > 0 && (automation || status || limit || cursor)) {
        ctl_error("--automation, --status, --limit and --cursor go with "
                  "execution list only");
        n = -1;
    }

    if (n == 3 && !am_execution_id_valid(pos[2], strlen(pos[2]))) {
        ctl_error("invalid execution id \"%s\"", pos[2]);
        return CTL_USAGE;
    }

    if (n == 3 && strcmp(pos[0], "cancel") == 0 && retention == NULL) {
        return ctl_execution_cancel(ctl, pos[1], pos[2]);
    }

    if (n == 3 && strcmp(pos[0], "retry") == 0) {
        return ctl_execution_retry(
            ctl, pos[1], pos[2], retention ? retention : CTL_RETENTION_DEFAULT);
    }

    return ctl_bad_usage("execution", subs, pos, n);
}
