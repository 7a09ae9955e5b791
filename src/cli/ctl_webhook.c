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

/* what an imported secret may hold: the sizes Standard Webhooks allows */
#define CTL_WHSEC_IMPORT_MIN 24
#define CTL_WHSEC_IMPORT_MAX 64
#define CTL_WHSEC_IMPORT_LEN (6 + AM_B64_LEN(CTL_WHSEC_IMPORT_MAX))

/* a longer overlap would keep a retired secret alive for no good reason */
#define CTL_OVERLAP_MAX_MS (30LL * 24 * 3600 * 1000)
#define CTL_OVERLAP_DEFAULT "24h"

/*
 * Checks an imported secret: "whsec_" then standard base64 with its
 * padding (what the Standard Webhooks libraries decode) of 24 to 64 bytes.
 * 0, or -1 with a message that does not repeat the secret.
 */
static int
ctl_whsec_check(const char *secret)
{
    unsigned char key[CTL_WHSEC_IMPORT_LEN];
    char          b64[CTL_WHSEC_IMPORT_LEN];
    size_t        i, n;
    long          len;

    n = strlen(secret);

    if (strncmp(secret, "whsec_", 6) != 0 || n > CTL_WHSEC_IMPORT_LEN
        || (n - 6) % 4 != 0) {
        goto invalid;
    }

    /* standard base64 onto the base64url alphabet am_crypto decodes */
    for (i = 0; i < n - 6; i++) {
        switch (secret[6 + i]) {
        case '+':
            b64[i] = '-';
            break;
        case '/':
            b64[i] = '_';
            break;
        case '-':
        case '_':
            goto invalid;
        default:
            b64[i] = secret[6 + i];
        }

        /* padding only at the end */
        if (b64[i] == '=' && i + 2 < n - 6) {
            goto invalid;
        }
    }

    len = am_b64url_decode(b64, n - 6, key);
    OPENSSL_cleanse(b64, sizeof(b64));
    OPENSSL_cleanse(key, sizeof(key));

    if (len >= CTL_WHSEC_IMPORT_MIN && len <= CTL_WHSEC_IMPORT_MAX) {
        return 0;
    }

invalid:

    ctl_error("invalid webhook secret: use whsec_ and the base64 (with its "
              "padding) of %d to %d bytes",
        CTL_WHSEC_IMPORT_MIN, CTL_WHSEC_IMPORT_MAX);
    return -1;
}

/*
 * An overlap: a number of seconds, or a number followed by s, m, h or d;
 * 0, or -1 with a message.
 */
static int
ctl_overlap(const char *arg, long long *ms)
{
    long long n, unit;
    char     *end;

    n = strtoll(arg, &end, 10);

    switch (*end) {
    case '\0':
    case 's':
        unit = 1000;
        break;
    case 'm':
        unit = 60 * 1000;
        break;
    case 'h':
        unit = 3600 * 1000;
        break;
    case 'd':
        unit = 24 * 3600 * 1000;
        break;
    default:
        unit = 0;
    }

    if (end == arg || n < 0 || *arg == '+' || unit == 0
        || (*end != '\0' && end[1] != '\0') || n > CTL_OVERLAP_MAX_MS / unit) {
        ctl_error("invalid --overlap \"%s\": a duration such as 90s, 30m, "
                  "24h or 7d, at most 30d",
            arg);
        return -1;
    }

    *ms = n * unit;
    return 0;
}

/* Reads one line from stdin, for a secret kept off the command line. */
static int
ctl_read_secret(char *buf, size_t size)
{
    size_t n;

    if (fgets(buf, (int) size, stdin) == NULL) {
        ctl_error("no webhook secret on stdin");
        return -1;
    }

    n = strcspn(buf, "\r\n");
    if (buf[n] == '\0' && !feof(stdin)) {
        ctl_error("webhook secret on stdin is too long");
        return -1;
    }

    buf[n] = '\0';
    return 0;
}

/*
 * webhook_secret: KEYS[1] "<prefix>{P}:project"; ARGV name, a new secret,
 * "rotate" or "", the overlap in ms. With import NULL, prints the secret in
 * force, made now when there is none or when rotating; with import, makes
 * it the secret in force (import "-": read from stdin) and prints nothing.
 * Tells on stderr until when the replaced secret signs deliveries too.
 */
static int
ctl_webhook_secret(ctl_t *ctl, const char *project, int rotate,
    const char *import, const char *overlap_arg)
{
    unsigned char key[CTL_WHSEC_BYTES];
    char          secret[CTL_WHSEC_IMPORT_LEN + 2], hash[CTL_KEY_MAX];
    char          overlap[24], until[32];
    const char   *argv[AM_WEBHOOK_SECRET_NKEYS + AM_WEBHOOK_SECRET_NARGS];
    const char  **keys, **args;
    redisReply   *r;
    long long     ms, until_ms;
    struct tm     tm;
    time_t        sec;
    int           rc;

    if (ctl_name_check("project", project) != 0
        || ctl_overlap(overlap_arg, &ms) != 0) {
        return CTL_USAGE;
    }

    if (import != NULL) {
        if (strcmp(import, "-") == 0) {
            if (ctl_read_secret(secret, sizeof(secret)) != 0) {
                OPENSSL_cleanse(secret, sizeof(secret));
                return CTL_USAGE;
            }
        } else {
            snprintf(secret, sizeof(secret), "%.*s", (int) sizeof(secret) - 1,
                import);
        }

        if (ctl_whsec_check(secret) != 0) {
            OPENSSL_cleanse(secret, sizeof(secret));
            return CTL_USAGE;
        }

    } else {
        if (RAND_bytes(key, sizeof(key)) != 1) {
            ctl_error("cannot get random bytes");
            return CTL_FAILED;
        }

        memcpy(secret, "whsec_", 6);
        am_b64_encode(key, sizeof(key), secret + 6);
        OPENSSL_cleanse(key, sizeof(key));
    }

    rc = CTL_FAILED;

    if (ctl_key(ctl, hash, project, "project") != 0 || ctl_connect(ctl) != 0) {
        goto done;
    }

    snprintf(overlap, sizeof(overlap), "%lld", ms);

    keys = argv;
    args = argv + AM_WEBHOOK_SECRET_NKEYS;
    keys[AM_WEBHOOK_SECRET_KEY_PROJECT] = hash;
    args[AM_WEBHOOK_SECRET_ARG_PROJECT] = project;
    args[AM_WEBHOOK_SECRET_ARG_SECRET] = secret;
    args[AM_WEBHOOK_SECRET_ARG_ROTATE] =
        (rotate || import != NULL) ? "rotate" : "";
    args[AM_WEBHOOK_SECRET_ARG_OVERLAP_MS] = overlap;

    r = ctl_eval(ctl, AM_SCRIPT_WEBHOOK_SECRET, AM_WEBHOOK_SECRET_NKEYS,
        AM_WEBHOOK_SECRET_NKEYS + AM_WEBHOOK_SECRET_NARGS, argv);
    if (r == NULL) {
        goto done;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != AM_WEBHOOK_SECRET_REPLY_N
        || r->element[AM_WEBHOOK_SECRET_REPLY_SECRET]->type
               != REDIS_REPLY_STRING
        || r->element[AM_WEBHOOK_SECRET_REPLY_PREVIOUS_UNTIL]->type
               != REDIS_REPLY_INTEGER) {
        ctl_error("webhook_secret: unexpected reply");
        freeReplyObject(r);
        goto done;
    }

    until_ms = r->element[AM_WEBHOOK_SECRET_REPLY_PREVIOUS_UNTIL]->integer;

    if (import == NULL) {
        printf("%s\n", r->element[AM_WEBHOOK_SECRET_REPLY_SECRET]->str);
    }

    if (until_ms > 0) {
        sec = (time_t) (until_ms / 1000);
        gmtime_r(&sec, &tm);
        strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(stderr,
            "automationsctl: deliveries carry a signature made with the "
            "previous secret too until %s\n",
            until);
    }

    freeReplyObject(r);
    rc = CTL_OK;

done:

    OPENSSL_cleanse(secret, sizeof(secret));
    return rc;
}

/*
 * Lists "<project>/<id> <dead since>", oldest first, or as JSON objects
 * {project, execution_id, dead_since}.
 */
static int
ctl_webhook_dead(ctl_t *ctl)
{
    static const char *const columns[] = {
        "PROJECT/EXECUTION_ID", "DEAD_SINCE", NULL};

    char        key[CTL_KEY_MAX], ts[32], *member, *slash;
    const char *argv[5];
    redisReply *r;
    yajl_gen    g;
    struct tm   tm;
    time_t      sec;
    size_t      i;
    int         rc;

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

    g = NULL;
    rc = CTL_OK;

    if (ctl->json) {
        g = ctl_json_open();
        if (g == NULL) {
            freeReplyObject(r);
            return CTL_FAILED;
        }

    } else if (r->elements > 0) {
        ctl_header(columns);
    }

    for (i = 0; i + 1 < r->elements; i += 2) {
        /* scores are milliseconds of the Redis clock */
        sec = (time_t) (strtod(r->element[i + 1]->str, NULL) / 1000);
        gmtime_r(&sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);

        member = r->element[i]->str;

        if (g == NULL) {
            printf("%s %s\n", member, ts);
            continue;
        }

        /* members are "<project>/<execution id>" (webhook_result.lua) */
        slash = strchr(member, '/');
        if (slash != NULL) {
            *slash = '\0';
        }

        if (yajl_gen_map_open(g) != yajl_gen_status_ok
            || ctl_json_string(g, "project", member) != 0
            || ctl_json_string(g, "execution_id", slash ? slash + 1 : "") != 0
            || ctl_json_string(g, "dead_since", ts) != 0
            || yajl_gen_map_close(g) != yajl_gen_status_ok) {
            rc = CTL_FAILED;
            break;
        }
    }

    if (g != NULL) {
        if (rc == CTL_OK) {
            rc = ctl_json_close(g) == 0 ? CTL_OK : CTL_FAILED;
        } else {
            yajl_gen_free(g);
        }
    }

    freeReplyObject(r);
    return rc;
}

/* Queues a dead-lettered webhook again with webhook_resend. */
static int
ctl_webhook_resend(ctl_t *ctl, const char *project, const char *id)
{
    char         exec[CTL_KEY_MAX], rest[CTL_KEY_MAX], member[CTL_KEY_MAX];
    char         schedule[CTL_KEY_MAX], dead[CTL_KEY_MAX];
    char         own[CTL_KEY_MAX];
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
        || ctl_key(ctl, own, project, "webhooks:dead") != 0
        || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    keys = argv;
    args = argv + AM_WEBHOOK_RESEND_NKEYS;
    keys[AM_WEBHOOK_RESEND_KEY_EXECUTION] = exec;
    keys[AM_WEBHOOK_RESEND_KEY_WEBHOOKS] = schedule;
    keys[AM_WEBHOOK_RESEND_KEY_DEAD] = dead;
    keys[AM_WEBHOOK_RESEND_KEY_PROJECT_DEAD] = own;
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

    const char *overlap = NULL;
    char       *args[CTL_ARGS_MAX], *pos[CTL_ARGS_MAX];
    int         i, n, nargs, rotate;

    ctl_opt_t opts[] = {
        {"--overlap", &overlap},
        {NULL, NULL},
    };

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

    n = ctl_parse(nargs, args, opts, pos, CTL_ARGS_MAX);

    if (n == 2 && strcmp(pos[0], "secret") == 0
        && (rotate || overlap == NULL)) {
        return ctl_webhook_secret(
            ctl, pos[1], rotate, NULL, overlap ? overlap : CTL_OVERLAP_DEFAULT);
    }

    /* "secret set P S": a project named "set" still has "secret set" */
    if (n == 4 && strcmp(pos[0], "secret") == 0 && strcmp(pos[1], "set") == 0
        && !rotate) {
        return ctl_webhook_secret(
            ctl, pos[2], 0, pos[3], overlap ? overlap : CTL_OVERLAP_DEFAULT);
    }

    if (n > 0 && (rotate || overlap != NULL)) {
        ctl_error("--rotate and --overlap go with webhook secret only, "
                  "--overlap with --rotate or set");
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
