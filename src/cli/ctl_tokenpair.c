/*
 * automationsctl tokenpair create|list|revoke: the start-automation API's
 * credentials, a token "amt_<64 hex>" plus an X-Api-Key "amx_<64 hex>",
 * reaching one or more projects. They live in the shared "{cred}" slot.
 */

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "am_crypto.h"
#include "am_scripts.h"
#include "ctl.h"

#define CTL_PAIR_PROJECTS_MAX 16
#define CTL_CRED_TAG "cred"

/* Drops repeated names, keeping the first of each; the new count. */
static int
ctl_unique(char **names, int n)
{
    int i, j, m;

    m = 0;

    for (i = 0; i < n; i++) {
        for (j = 0; j < m; j++) {
            if (strcmp(names[j], names[i]) == 0) {
                break;
            }
        }
        if (j == m) {
            names[m++] = names[i];
        }
    }

    return m;
}

/*
 * Stores the pair with tokenpair_create, which takes a project hash a
 * project in its KEYS and the project names at the end of its ARGV.
 */
static int
ctl_tokenpair_send(ctl_t *ctl, char **projects, int n, const char *id,
    const char *token_digest, const char *key_digest, const char *label)
{
    char hashes[CTL_PAIR_PROJECTS_MAX][CTL_KEY_MAX];
    char index[CTL_KEY_MAX], base[CTL_KEY_MAX];
    const char
                *argv[AM_TOKENPAIR_CREATE_KEY_PROJECTS + CTL_PAIR_PROJECTS_MAX
              + AM_TOKENPAIR_CREATE_ARG_PROJECTS + CTL_PAIR_PROJECTS_MAX];
    const char **keys, **args;
    redisReply  *r;
    int          i, nkeys;

    if (ctl_key(ctl, index, CTL_CRED_TAG, "tokenpairs") != 0
        || ctl_key(ctl, base, CTL_CRED_TAG, "") != 0) {
        return -1;
    }

    nkeys = AM_TOKENPAIR_CREATE_KEY_PROJECTS + n;
    keys = argv;
    args = argv + nkeys;

    keys[AM_TOKENPAIR_CREATE_KEY_INDEX] = index;
    args[AM_TOKENPAIR_CREATE_ARG_BASE] = base;
    args[AM_TOKENPAIR_CREATE_ARG_ID] = id;
    args[AM_TOKENPAIR_CREATE_ARG_SHA256] = token_digest;
    args[AM_TOKENPAIR_CREATE_ARG_API_KEY_SHA256] = key_digest;
    args[AM_TOKENPAIR_CREATE_ARG_NAME] = label;

    for (i = 0; i < n; i++) {
        if (ctl_key(ctl, hashes[i], projects[i], "project") != 0) {
            return -1;
        }
        keys[AM_TOKENPAIR_CREATE_KEY_PROJECTS + i] = hashes[i];
        args[AM_TOKENPAIR_CREATE_ARG_PROJECTS + i] = projects[i];
    }

    r = ctl_eval(ctl, AM_SCRIPT_TOKENPAIR_CREATE, nkeys,
        nkeys + AM_TOKENPAIR_CREATE_ARG_PROJECTS + n, argv);
    if (r == NULL) {
        return -1;
    }

    freeReplyObject(r);
    return 0;
}

static int
ctl_tokenpair_create(ctl_t *ctl, char **projects, int n, const char *label)
{
    char token[CTL_SECRET_MAX], key[CTL_SECRET_MAX], id[CTL_ID_LEN + 1];
    char token_digest[AM_SHA256_HEX_LEN + 1], key_digest[AM_SHA256_HEX_LEN + 1];
    int  i, rc;

    n = ctl_unique(projects, n);

    if (n > CTL_PAIR_PROJECTS_MAX) {
        ctl_error(
            "a token pair reaches at most %d projects", CTL_PAIR_PROJECTS_MAX);
        return CTL_USAGE;
    }

    for (i = 0; i < n; i++) {
        if (ctl_name_check("project", projects[i]) != 0) {
            return CTL_USAGE;
        }
    }

    if (ctl_label_check(label) != 0) {
        return CTL_USAGE;
    }

    if (ctl_connect(ctl) != 0 || ctl_new_id(id) != 0
        || ctl_new_secret("amt_", token, token_digest) != 0
        || ctl_new_secret("amx_", key, key_digest) != 0) {
        return CTL_FAILED;
    }

    rc = ctl_tokenpair_send(
        ctl, projects, n, id, token_digest, key_digest, label);

    if (rc == 0) {
        printf("id=%s\ntoken=%s\napi_key=%s\n", id, token, key);
    }

    OPENSSL_cleanse(token, sizeof(token));
    OPENSSL_cleanse(key, sizeof(key));
    return rc == 0 ? CTL_OK : CTL_FAILED;
}

static int
ctl_tokenpair_list(ctl_t *ctl)
{
    char index[CTL_KEY_MAX], record[CTL_KEY_MAX];

    if (ctl_key(ctl, index, CTL_CRED_TAG, "tokenpairs") != 0
        || ctl_key(ctl, record, CTL_CRED_TAG, "tokenpair:") != 0
        || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    return ctl_list(ctl, index, record, "projects") == 0 ? CTL_OK : CTL_FAILED;
}

static int
ctl_tokenpair_revoke(ctl_t *ctl, const char *id)
{
    char         index[CTL_KEY_MAX], base[CTL_KEY_MAX];
    const char  *argv[AM_TOKENPAIR_REVOKE_NKEYS + AM_TOKENPAIR_REVOKE_NARGS];
    const char **keys, **args;
    redisReply  *r;

    if (ctl_key(ctl, index, CTL_CRED_TAG, "tokenpairs") != 0
        || ctl_key(ctl, base, CTL_CRED_TAG, "") != 0 || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    keys = argv;
    args = argv + AM_TOKENPAIR_REVOKE_NKEYS;
    keys[AM_TOKENPAIR_REVOKE_KEY_INDEX] = index;
    args[AM_TOKENPAIR_REVOKE_ARG_BASE] = base;
    args[AM_TOKENPAIR_REVOKE_ARG_ID] = id;

    r = ctl_eval(ctl, AM_SCRIPT_TOKENPAIR_REVOKE, AM_TOKENPAIR_REVOKE_NKEYS,
        AM_TOKENPAIR_REVOKE_NKEYS + AM_TOKENPAIR_REVOKE_NARGS, argv);
    if (r == NULL) {
        return CTL_FAILED;
    }

    freeReplyObject(r);
    ctl_settle(ctl);
    return CTL_OK;
}

int
ctl_tokenpair(ctl_t *ctl, int argc, char **argv)
{
    static const char *const subs[] = {"create", "list", "revoke", NULL};

    const char *label = NULL;
    char       *pos[CTL_ARGS_MAX];
    int         n;

    ctl_opt_t opts[] = {
        {"--name", &label},
        {NULL, NULL},
    };

    n = ctl_parse(argc, argv, opts, pos, CTL_ARGS_MAX);

    if (n >= 2 && strcmp(pos[0], "create") == 0) {
        return ctl_tokenpair_create(ctl, pos + 1, n - 1, label ? label : "");
    }

    if (n > 0 && label != NULL) {
        ctl_error("--name goes with tokenpair create only");
        n = -1;
    }

    if (n == 1 && strcmp(pos[0], "list") == 0) {
        return ctl_tokenpair_list(ctl);
    }

    if (n == 2 && strcmp(pos[0], "revoke") == 0) {
        return ctl_tokenpair_revoke(ctl, pos[1]);
    }

    return ctl_bad_usage("tokenpair", subs, pos, n);
}
