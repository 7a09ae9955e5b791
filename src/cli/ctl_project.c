/*
 * automationsctl project create|list|delete
 */

#include <stdio.h>
#include <string.h>

#include "am_scripts.h"
#include "ctl.h"

/*
 * What project_create and project_delete take: "<prefix>{P}:project",
 * "<prefix>projects" and the key base "<prefix>{P}:".
 */
typedef struct {
    char project[CTL_KEY_MAX];
    char projects[CTL_KEY_MAX];
    char base[CTL_KEY_MAX];
} ctl_project_keys_t;

static int
ctl_project_keys(ctl_t *ctl, const char *name, ctl_project_keys_t *k)
{
    if (ctl_key(ctl, k->project, name, "project") != 0
        || ctl_key(ctl, k->projects, NULL, "projects") != 0
        || ctl_key(ctl, k->base, name, "") != 0) {
        return -1;
    }

    return 0;
}

/*
 * Runs project_create or project_delete on one project: both take the same
 * KEYS and ARGV, in the same order.
 */
#define CTL_SAME(x) ((int) AM_PROJECT_CREATE_##x == (int) AM_PROJECT_DELETE_##x)
_Static_assert(CTL_SAME(KEY_PROJECT) && CTL_SAME(KEY_PROJECTS)
                   && CTL_SAME(NKEYS) && CTL_SAME(ARG_BASE)
                   && CTL_SAME(ARG_PROJECT) && CTL_SAME(NARGS),
    "project_create and project_delete take the same arguments");

static int
ctl_project_change(ctl_t *ctl, const char *script, const char *name)
{
    ctl_project_keys_t k;
    const char        *argv[AM_PROJECT_CREATE_NKEYS + AM_PROJECT_CREATE_NARGS];
    const char       **keys, **args;
    redisReply        *r;

    if (ctl_name_check("project", name) != 0) {
        return CTL_USAGE;
    }

    if (ctl_project_keys(ctl, name, &k) != 0 || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    keys = argv;
    args = argv + AM_PROJECT_CREATE_NKEYS;
    keys[AM_PROJECT_CREATE_KEY_PROJECT] = k.project;
    keys[AM_PROJECT_CREATE_KEY_PROJECTS] = k.projects;
    args[AM_PROJECT_CREATE_ARG_BASE] = k.base;
    args[AM_PROJECT_CREATE_ARG_PROJECT] = name;

    r = ctl_eval(ctl, script, AM_PROJECT_CREATE_NKEYS,
        AM_PROJECT_CREATE_NKEYS + AM_PROJECT_CREATE_NARGS, argv);
    if (r == NULL) {
        return CTL_FAILED;
    }

    freeReplyObject(r);
    ctl_settle(ctl);
    return CTL_OK;
}

/* [{"name": ...}, ...] */
static int
ctl_project_list_json(redisReply *r)
{
    yajl_gen g;
    size_t   i;

    g = ctl_json_open();
    if (g == NULL) {
        return CTL_FAILED;
    }

    for (i = 0; i < r->elements; i++) {
        if (yajl_gen_map_open(g) != yajl_gen_status_ok
            || ctl_json_string(g, "name", r->element[i]->str) != 0
            || yajl_gen_map_close(g) != yajl_gen_status_ok) {
            yajl_gen_free(g);
            return CTL_FAILED;
        }
    }

    return ctl_json_close(g) == 0 ? CTL_OK : CTL_FAILED;
}

static int
ctl_project_list(ctl_t *ctl)
{
    static const char *const columns[] = {"NAME", NULL};

    char        key[CTL_KEY_MAX];
    const char *argv[4];
    redisReply *r;
    size_t      i;
    int         rc;

    if (ctl_key(ctl, key, NULL, "projects") != 0 || ctl_connect(ctl) != 0) {
        return CTL_FAILED;
    }

    /* every score is 0, so the order is by name */
    argv[0] = "ZRANGE";
    argv[1] = key;
    argv[2] = "0";
    argv[3] = "-1";

    r = ctl_command(ctl, 4, argv);
    if (r == NULL) {
        return CTL_FAILED;
    }

    rc = CTL_OK;

    if (ctl->json) {
        rc = ctl_project_list_json(r);

    } else if (r->elements > 0) {
        ctl_header(columns);

        for (i = 0; i < r->elements; i++) {
            printf("%s\n", r->element[i]->str);
        }
    }

    freeReplyObject(r);
    return rc;
}

int
ctl_project(ctl_t *ctl, int argc, char **argv)
{
    static const char *const subs[] = {"create", "list", "delete", NULL};

    char *pos[2];
    int   n, rc;

    n = ctl_parse(argc, argv, NULL, pos, 2);

    if (n == 1 && strcmp(pos[0], "list") == 0) {
        return ctl_project_list(ctl);
    }

    if (n == 2 && strcmp(pos[0], "create") == 0) {
        rc = ctl_project_change(ctl, AM_SCRIPT_PROJECT_CREATE, pos[1]);
        if (rc == CTL_OK) {
            printf("project=%s\n", pos[1]);
        }
        return rc;
    }

    if (n == 2 && strcmp(pos[0], "delete") == 0) {
        return ctl_project_change(ctl, AM_SCRIPT_PROJECT_DELETE, pos[1]);
    }

    return ctl_bad_usage("project", subs, pos, n);
}
