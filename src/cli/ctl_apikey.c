/*
 * automationsctl apikey create|list|revoke: project-scoped API keys
 * "amk_<project>_<64 hex>", stored as their SHA-256 digest only.
 */

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "am_crypto.h"
#include "am_scripts.h"
#include "ctl.h"

#define CTL_SCOPES_MAX 32

/* "<prefix>{P}:project" and the key base "<prefix>{P}:" */
typedef struct {
    char project[CTL_KEY_MAX];
    char base[CTL_KEY_MAX];
} ctl_apikey_keys_t;

static int
ctl_apikey_keys(ctl_t *ctl, const char *project, ctl_apikey_keys_t *k)
{
    if (ctl_key(ctl, k->project, project, "project") != 0
        || ctl_key(ctl, k->base, project, "") != 0) {
        return -1;
    }

    return 0;
}

/* Stores a new key with apikey_create; the key is printed once, then
 * forgotten. */
static int
ctl_apikey_create(
    ctl_t *ctl, const char *project, const char *scopes_arg, const char *label)
{
    ctl_apikey_keys_t k;
    const char       *argv[AM_APIKEY_CREATE_NKEYS + AM_APIKEY_CREATE_NARGS];
    const char      **keys, **args;
    redisReply       *r;
    char              scopes[CTL_SCOPES_MAX], id[CTL_ID_LEN + 1];
    char              secret[CTL_SECRET_MAX], prefix[CTL_SECRET_MAX];
    char              digest[AM_SHA256_HEX_LEN + 1];

    if (ctl_name_check("project", project) != 0
        || ctl_label_check(label) != 0) {
        return CTL_USAGE;
    }

    if (ctl_scopes_normalize("scope", scopes_arg, scopes, sizeof(scopes))) {
        return CTL_USAGE;
    }

    snprintf(prefix, sizeof(prefix), "amk_%s_", project);

    if (ctl_apikey_keys(ctl, project, &k) != 0 || ctl_connect(ctl) != 0
        || ctl_new_id(id) != 0 || ctl_new_secret(prefix, secret, digest) != 0) {
        return CTL_FAILED;
    }

    keys = argv;
    args = argv + AM_APIKEY_CREATE_NKEYS;
    keys[AM_APIKEY_CREATE_KEY_PROJECT] = k.project;
    args[AM_APIKEY_CREATE_ARG_BASE] = k.base;
    args[AM_APIKEY_CREATE_ARG_PROJECT] = project;
    args[AM_APIKEY_CREATE_ARG_ID] = id;
    args[AM_APIKEY_CREATE_ARG_SHA256] = digest;
    args[AM_APIKEY_CREATE_ARG_SCOPES] = scopes;
    args[AM_APIKEY_CREATE_ARG_NAME] = label;

    r = ctl_eval(ctl, AM_SCRIPT_APIKEY_CREATE, AM_APIKEY_CREATE_NKEYS,
        AM_APIKEY_CREATE_NKEYS + AM_APIKEY_CREATE_NARGS, argv);
    if (r != NULL) {
        printf("id=%s\nkey=%s\n", id, secret);
        freeReplyObject(r);
    }

    OPENSSL_cleanse(secret, sizeof(secret));
    return r != NULL ? CTL_OK : CTL_FAILED;
}

static int
ctl_apikey_list(ctl_t *ctl, const char *project)
{
    ctl_apikey_keys_t k;
    const char       *argv[2];
    redisReply       *r;
    char              index[CTL_KEY_MAX], record[CTL_KEY_MAX];
    int               exists;

    if (ctl_name_check("project", project) != 0) {
        return CTL_USAGE;
    }

    if (ctl_apikey_keys(ctl, project, &k) != 0
        || ctl_key(ctl, index, project, "apikeys") != 0
        || ctl_key(ctl, record, project, "apikey:") != 0
        || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    argv[0] = "EXISTS";
    argv[1] = k.project;

    r = ctl_command(ctl, 2, argv);
    if (r == NULL) {
        return CTL_FAILED;
    }

    exists = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);

    if (!exists) {
        ctl_error("project %s not found", project);
        return CTL_FAILED;
    }

    return ctl_list(ctl, index, record, "scopes") == 0 ? CTL_OK : CTL_FAILED;
}

static int
ctl_apikey_revoke(ctl_t *ctl, const char *project, const char *id)
{
    ctl_apikey_keys_t k;
    const char       *argv[AM_APIKEY_REVOKE_NKEYS + AM_APIKEY_REVOKE_NARGS];
    const char      **keys, **args;
    redisReply       *r;

    if (ctl_name_check("project", project) != 0) {
        return CTL_USAGE;
    }

    if (ctl_apikey_keys(ctl, project, &k) != 0 || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    keys = argv;
    args = argv + AM_APIKEY_REVOKE_NKEYS;
    keys[AM_APIKEY_REVOKE_KEY_PROJECT] = k.project;
    args[AM_APIKEY_REVOKE_ARG_BASE] = k.base;
    args[AM_APIKEY_REVOKE_ARG_PROJECT] = project;
    args[AM_APIKEY_REVOKE_ARG_ID] = id;

    r = ctl_eval(ctl, AM_SCRIPT_APIKEY_REVOKE, AM_APIKEY_REVOKE_NKEYS,
        AM_APIKEY_REVOKE_NKEYS + AM_APIKEY_REVOKE_NARGS, argv);
    if (r == NULL) {
        return CTL_FAILED;
    }

    freeReplyObject(r);
    ctl_settle(ctl);
    return CTL_OK;
}

int
ctl_apikey(ctl_t *ctl, int argc, char **argv)
{
    static const char *const subs[] = {"create", "list", "revoke", NULL};

    const char *scopes = NULL, *label = NULL;
    char       *pos[3];
    int         n;

    ctl_opt_t opts[] = {
        {"--scopes", &scopes},
        {"--name", &label},
        {NULL, NULL},
    };

    n = ctl_parse(argc, argv, opts, pos, 3);

    if (n == 2 && strcmp(pos[0], "create") == 0) {
        return ctl_apikey_create(ctl, pos[1],
            scopes ? scopes : "read write run", label ? label : "");
    }

    if (n > 0 && (scopes != NULL || label != NULL)) {
        ctl_error("--scopes and --name go with apikey create only");
        n = -1;
    }

    if (n == 2 && strcmp(pos[0], "list") == 0) {
        return ctl_apikey_list(ctl, pos[1]);
    }

    if (n == 3 && strcmp(pos[0], "revoke") == 0) {
        return ctl_apikey_revoke(ctl, pos[1], pos[2]);
    }

    return ctl_bad_usage("apikey", subs, pos, n);
}
