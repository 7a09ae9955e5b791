/*
 * automationsctl jwt mint: a signed JWT for development and tests, with the
 * claims the module reads (sub, project, role, iat, exp, iss, aud).
 * Needs no Redis.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_gen.h>

#include "am_jwt.h"
#include "ctl.h"

/* ten years: a longer-lived "development" token is a mistake */
#define CTL_TTL_MAX (10L * 365 * 24 * 3600)

typedef struct {
    const char *key;
    const char *alg;
    const char *kid;
    const char *project;
    const char *role;
    const char *sub;
    const char *ttl;
    const char *iss;
    const char *aud;
} ctl_jwt_args_t;

static int
ctl_gen_pair(yajl_gen g, const char *name, const char *value)
{
    if (value == NULL) {
        return 0;
    }

    if (yajl_gen_string(g, (const unsigned char *) name, strlen(name))
            != yajl_gen_status_ok
        || yajl_gen_string(g, (const unsigned char *) value, strlen(value))
               != yajl_gen_status_ok) {
        ctl_error("claim \"%s\" is not valid UTF-8", name);
        return -1;
    }

    return 0;
}

static int
ctl_gen_time(yajl_gen g, const char *name, long long value)
{
    if (yajl_gen_string(g, (const unsigned char *) name, strlen(name))
            != yajl_gen_status_ok
        || yajl_gen_integer(g, value) != yajl_gen_status_ok) {
        return -1;
    }

    return 0;
}

/* Writes the claims object into g; 0, or -1 with a message. */
static int
ctl_jwt_claims(yajl_gen g, const ctl_jwt_args_t *a, const char *role, long ttl)
{
    long long now;

    now = (long long) time(NULL);

    if (yajl_gen_map_open(g) != yajl_gen_status_ok
        || ctl_gen_pair(g, "sub", a->sub) != 0
        || ctl_gen_pair(g, "project", a->project) != 0
        || ctl_gen_pair(g, "role", role) != 0
        || ctl_gen_time(g, "iat", now) != 0
        || ctl_gen_time(g, "exp", now + ttl) != 0
        || ctl_gen_pair(g, "iss", a->iss) != 0
        || ctl_gen_pair(g, "aud", a->aud) != 0
        || yajl_gen_map_close(g) != yajl_gen_status_ok) {
        return -1;
    }

    return 0;
}

/* Checks what can be checked before reading the key; 0, or -1. */
static int
ctl_jwt_check(const ctl_jwt_args_t *a, char *role, size_t size, long *ttl)
{
    char *end;

    if (a->key == NULL || a->alg == NULL || a->project == NULL) {
        ctl_error("jwt mint needs --key, --alg and --project");
        return -1;
    }

    if (!am_jwt_alg_supported(a->alg)) {
        ctl_error("unsupported algorithm \"%s\": use " AM_JWT_ALGS, a->alg);
        return -1;
    }

    *ttl = strtol(a->ttl, &end, 10);
    if (*a->ttl == '\0' || *end != '\0' || *ttl < 1 || *ttl > CTL_TTL_MAX) {
        ctl_error(
            "invalid --ttl \"%s\": seconds, 1 to %ld", a->ttl, CTL_TTL_MAX);
        return -1;
    }

    if (ctl_name_check("project", a->project) != 0
        || ctl_scopes_normalize("role", a->role, role, size) != 0) {
        return -1;
    }

    return 0;
}

static int
ctl_jwt_mint(const ctl_jwt_args_t *a)
{
    const unsigned char *payload;
    yajl_gen             g;
    size_t               len;
    char                 role[32], err[256], *token;
    long                 ttl;

    if (ctl_jwt_check(a, role, sizeof(role), &ttl) != 0) {
        return CTL_USAGE;
    }

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        ctl_error("out of memory");
        return CTL_FAILED;
    }

    yajl_gen_config(g, yajl_gen_validate_utf8, 1);

    if (ctl_jwt_claims(g, a, role, ttl) != 0) {
        yajl_gen_free(g);
        return CTL_USAGE;
    }

    yajl_gen_get_buf(g, &payload, &len);
    token = am_jwt_sign(
        a->alg, a->key, a->kid, (const char *) payload, len, err, sizeof(err));
    yajl_gen_free(g);

    if (token == NULL) {
        ctl_error("%s", err);
        return CTL_FAILED;
    }

    printf("%s\n", token);
    free(token);
    return CTL_OK;
}

int
ctl_jwt(int argc, char **argv)
{
    static const char *const subs[] = {"mint", NULL};

    ctl_jwt_args_t a = {.role = "admin", .sub = "dev", .ttl = "3600"};
    char          *pos[1];
    int            n;

    ctl_opt_t opts[] = {
        {"--key", &a.key},
        {"--alg", &a.alg},
        {"--kid", &a.kid},
        {"--project", &a.project},
        {"--role", &a.role},
        {"--sub", &a.sub},
        {"--ttl", &a.ttl},
        {"--iss", &a.iss},
        {"--aud", &a.aud},
        {NULL, NULL},
    };

    n = ctl_parse(argc, argv, opts, pos, 1);

    if (n == 1 && strcmp(pos[0], "mint") == 0) {
        return ctl_jwt_mint(&a);
    }

    return ctl_bad_usage("jwt", subs, pos, n);
}
