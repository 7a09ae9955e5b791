/*
 * automationsctl webhook secret|dead|resend: a project's webhook signing
 * secret, the dead-lettered deliveries, and sending one of them again.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "am_crypto.h"
#include "am_execution.h"
#include "am_scripts.h"
#include "ctl.h"

/* Standard Webhooks: "whsec_" and the base64 of the key, 24 bytes here */
#define CTL_WHSEC_BYTES 24
#define CTL_WHSEC_MAX (6 + AM_B64_LEN(CTL_WHSEC_BYTES) + 1)

/* Prints the project's secret in force, made or rotated by webhook_secret. */
static int
ctl_webhook_secret(ctl_t *ctl, const char *project, int rotate)
{
    unsigned char key[CTL_WHSEC_BYTES];
    char          secret[CTL_WHSEC_MAX], hash[CTL_KEY_MAX];
    const char   *argv[AM_WEBHOOK_SECRET_NKEYS + AM_WEBHOOK_SECRET_NARGS];
    const char  **keys, **args;
    redisReply   *r;

    if (ctl_name_check("project", project) != 0) {
        return CTL_USAGE;
    }

    if (ctl_key(ctl, hash, project, "project") != 0 || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    if (RAND_bytes(key, sizeof(key)) != 1) {
        ctl_error("cannot get random bytes");
        return CTL_FAILED;
    }

    memcpy(secret, "whsec_", 6);
    am_b64_encode(key, sizeof(key), secret + 6);
    OPENSSL_cleanse(key, sizeof(key));

    keys = argv;
    args = argv + AM_WEBHOOK_SECRET_NKEYS;
    keys[AM_WEBHOOK_SECRET_KEY_PROJECT] = hash;
    args[AM_WEBHOOK_SECRET_ARG_PROJECT] = project;
    args[AM_WEBHOOK_SECRET_ARG_SECRET] = secret;
    args[AM_WEBHOOK_SECRET_ARG_ROTATE] = rotate ? "rotate" : "";

    r = ctl_eval(ctl, AM_SCRIPT_WEBHOOK_SECRET, AM_WEBHOOK_SECRET_NKEYS,
        AM_WEBHOOK_SECRET_NKEYS + AM_WEBHOOK_SECRET_NARGS, argv);
    OPENSSL_cleanse(secret, sizeof(secret));

    if (r == NULL) {
        return CTL_FAILED;
    }

    if (r->type == REDIS_REPLY_STRING) {
        printf("%s\n", r->str);
    }

    freeReplyObject(r);
    return CTL_OK;
}

/* Lists "<project>/<id> <dead since>", oldest first. */
static int
ctl_webhook_dead(ctl_t *ctl)
{
    char        key[CTL_KEY_MAX], ts[32];
    const char *argv[5];
    redisReply *r;
    struct tm   tm;
    time_t      sec;
    size_t      i;

    if (ctl_key(ctl, key, NULL, "webhooks:dead") != 0
        || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    argv[0] = "ZRANGE";
    argv[1] = key;
    argv[2] = "0";
    argv[3] = "-1";
    argv[4] = "WITHSCORES";

    r = ctl_command(ctl, 5, argv);
    if (r == NULL) {
        return CTL_FAILED;
    }

    for (i = 0; i + 1 < r->elements; i += 2) {
        /* scores are milliseconds of the Redis clock */
        sec = (time_t) (strtod(r->element[i + 1]->str, NULL) / 1000);
        gmtime_r(&sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%s %s\n", r->element[i]->str, ts);
    }

    freeReplyObject(r);
    return CTL_OK;
}

/* Queues a dead-lettered webhook again with webhook_resend. */
static int
ctl_webhook_resend(ctl_t *ctl, const char *project, const char *id)
{
    char         exec[CTL_KEY_MAX], rest[CTL_KEY_MAX], member[CTL_KEY_MAX];
    char         schedule[CTL_KEY_MAX], dead[CTL_KEY_MAX];
    const char  *argv[AM_WEBHOOK_RESEND_NKEYS + AM_WEBHOOK_RESEND_NARGS];
    const char **keys, **args;
    redisReply  *r;

    if (ctl_name_check("project", project) != 0) {
        return CTL_USAGE;
    }

    if (!am_execution_id_valid(id, strlen(id))) {
        ctl_error("invalid execution id \"%s\"", id);
        return CTL_USAGE;
    }

    snprintf(rest, sizeof(rest), "execution:%s", id);
    snprintf(member, sizeof(member), "%s/%s", project, id);

    if (ctl_key(ctl, exec, project, rest) != 0
        || ctl_key(ctl, schedule, NULL, "webhooks") != 0
        || ctl_key(ctl, dead, NULL, "webhooks:dead") != 0
        || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    keys = argv;
    args = argv + AM_WEBHOOK_RESEND_NKEYS;
    keys[AM_WEBHOOK_RESEND_KEY_EXECUTION] = exec;
    keys[AM_WEBHOOK_RESEND_KEY_WEBHOOKS] = schedule;
    keys[AM_WEBHOOK_RESEND_KEY_DEAD] = dead;
    args[AM_WEBHOOK_RESEND_ARG_MEMBER] = member;

    r = ctl_eval(ctl, AM_SCRIPT_WEBHOOK_RESEND, AM_WEBHOOK_RESEND_NKEYS,
        AM_WEBHOOK_RESEND_NKEYS + AM_WEBHOOK_RESEND_NARGS, argv);
    if (r == NULL) {
        return CTL_FAILED;
    }

    freeReplyObject(r);
    printf("webhook %s queued again\n", member);
    return CTL_OK;
}

int
ctl_webhook(ctl_t *ctl, int argc, char **argv)
{
    static const char *const subs[] = {"secret", "dead", "resend", NULL};

    char *args[CTL_ARGS_MAX], *pos[CTL_ARGS_MAX];
    int   i, n, nargs, rotate;

    /* --rotate is a flag, which ctl_parse() does not know */
    rotate = 0;
    nargs = 0;

    for (i = 0; i < argc && nargs < CTL_ARGS_MAX; i++) {
        if (strcmp(argv[i], "--rotate") == 0) {
            rotate = 1;
        } else {
            args[nargs++] = argv[i];
        }
    }

    n = ctl_parse(nargs, args, NULL, pos, CTL_ARGS_MAX);

    if (n == 2 && strcmp(pos[0], "secret") == 0) {
        return ctl_webhook_secret(ctl, pos[1], rotate);
    }

    if (n > 0 && rotate) {
        ctl_error("--rotate goes with webhook secret only");
        n = -1;
    }

    if (n == 1 && strcmp(pos[0], "dead") == 0) {
        return ctl_webhook_dead(ctl);
    }

    if (n == 3 && strcmp(pos[0], "resend") == 0) {
        return ctl_webhook_resend(ctl, pos[1], pos[2]);
    }

    return ctl_bad_usage("webhook", subs, pos, n);
}
