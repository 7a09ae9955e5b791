/*
 * The commands of automationsctl as data: one row per subcommand, with its
 * synopsis and help. The usage, each command's --help and which commands
 * take --json are all read from this table, so that a new command is a
 * row here and a function in its group's file.
 */

#include <stdio.h>
#include <string.h>

#include "ctl.h"

typedef struct {
    const char *group;    /* "apikey" */
    const char *name;     /* "list", or two words: "secret set" */
    const char *synopsis; /* what follows the name */
    const char *help;     /* what it does, lines of up to 76 columns */
    unsigned    list : 1; /* a listing: a header line, or --json */
} ctl_command_t;

static const ctl_command_t ctl_commands[] = {

    {"project", "create", "NAME",
        "Creates a project, the tenant that owns automations, API keys,\n"
        "executions and a webhook secret. Prints \"project=NAME\".\n",
        0},

    {"project", "list", "[--json]",
        "Lists the projects by name under a header line: NAME.\n"
        "--json: an array of objects {\"name\"}.\n",
        1},

    {"project", "delete", "NAME",
        "Deletes a project and every key of it: automations, API keys,\n"
        "executions. Token pairs that name it stop working for it.\n",
        0},

    {"apikey", "create", "PROJECT [--scopes \"read write run\"] [--name LABEL]",
        "Creates an API key of PROJECT with the given scopes (read, write,\n"
        "run, admin) and an optional label. Prints \"id=\" and \"key=\": the\n"
        "key is shown this once, Redis keeps only its SHA-256 digest.\n",
        0},

    {"apikey", "list", "PROJECT [--json]",
        "Lists the API keys of PROJECT, oldest first, under a header line:\n"
        "ID SCOPES CREATED_AT NAME (scopes joined by commas). The keys\n"
        "themselves are never shown.\n"
        "--json: an array of objects {\"id\", \"scopes\" (array),\n"
        "\"created_at\", \"name\"}.\n",
        1},

    {"apikey", "revoke", "PROJECT ID",
        "Revokes the API key ID of PROJECT: it is refused from now on.\n", 0},

    {"tokenpair", "create", "PROJECT [PROJECT...] [--name LABEL]",
        "Creates a token pair (Authorization: Token ..., X-Api-Key: ...)\n"
        "reaching the given projects. Prints \"id=\", \"token=\" and\n"
        "\"api_key=\": shown this once, Redis keeps only their digests.\n",
        0},

    {"tokenpair", "list", "[--json]",
        "Lists the token pairs, oldest first, under a header line:\n"
        "ID PROJECTS CREATED_AT NAME (projects joined by commas).\n"
        "--json: an array of objects {\"id\", \"projects\" (array),\n"
        "\"created_at\", \"name\"}.\n",
        1},

    {"tokenpair", "revoke", "ID",
        "Revokes the token pair ID: it is refused from now on.\n", 0},

    {"jwt", "mint",
        "--key FILE --alg ALG --project P [--kid KID] [--role admin]\n"
        "    [--sub dev] [--ttl 3600] [--iss ISS] [--aud AUD]",
        "Prints a signed JWT for development, with the claims the module\n"
        "reads. ALG: one the module verifies (HS256, RS256, ES256, ...);\n"
        "FILE holds the secret for HS*, else the private key in PEM. --ttl\n"
        "in seconds. Needs no Redis.\n",
        0},

    {"webhook", "secret", "PROJECT [--rotate [--overlap 24h]]",
        "Prints the project's webhook signing secret (whsec_...), made now\n"
        "when there is none. Deliveries are signed with it the Standard\n"
        "Webhooks way (webhook-signature: v1,<base64>).\n"
        "--rotate: replaces it by a new one, printed. For the --overlap\n"
        "(90s, 30m, 24h, 7d...; 24h by default, 0 for none) deliveries\n"
        "carry a signature made with the replaced secret too\n"
        "(v1,<new> v1,<old>), so receivers can switch without refusing\n"
        "any; stderr tells until when.\n",
        0},

    {"webhook", "secret set", "PROJECT whsec_...|- [--overlap 24h]",
        "Imports a secret: whsec_ and the base64 (with its padding) of 24\n"
        "to 64 bytes; \"-\" reads it from stdin, off the command line. The\n"
        "secret it replaces signs too for the --overlap, as with --rotate.\n"
        "Prints nothing.\n",
        0},

    {"webhook", "dead", "[--json]",
        "Lists the dead-lettered deliveries, oldest first, under a header\n"
        "line: PROJECT/EXECUTION_ID DEAD_SINCE.\n"
        "--json: an array of objects {\"project\", \"execution_id\",\n"
        "\"dead_since\"}.\n",
        1},

    {"webhook", "resend", "PROJECT EXECUTION_ID",
        "Queues a dead-lettered delivery again, its attempts counted anew.\n",
        0},

    {"execution", "list",
        "PROJECT [--automation NAME] [--status STATUS] [--limit 20]\n"
        "    [--cursor CURSOR]",
        "Lists executions of PROJECT (or of one automation), newest first,\n"
        "under a header line: EXECUTION_ID AUTOMATION STATUS CREATED_AT;\n"
        "then \"next CURSOR\" when there are more: pass it to --cursor.\n"
        "STATUS: queued, running, success, error, timed_out, cancelled.\n",
        0},

    {"execution", "cancel", "PROJECT EXECUTION_ID",
        "Cancels an execution that has not finished: a queued one never\n"
        "runs, a running one is killed by its worker. It ends cancelled and\n"
        "its webhook says so. Fails when it has finished already.\n",
        0},

    {"execution", "retry", "PROJECT EXECUTION_ID [--retention 604800]",
        "Queues a new execution from the snapshot of a finished one (code,\n"
        "seed, input, build id, webhook), linked to it by retry_of and\n"
        "retried_by. Prints the new execution's id. --retention: seconds\n"
        "the new record is kept, as the gateway's automations_retention.\n",
        0},

    {NULL, NULL, NULL, NULL, 0}};


static void
ctl_command_line(FILE *f, const ctl_command_t *c)
{
    fprintf(f, "%s %s %s\n", c->group, c->name, c->synopsis);
}


/* Prints one line per command, for the general usage. */
void
ctl_commands_usage(FILE *f)
{
    const ctl_command_t *c;

    for (c = ctl_commands; c->group != NULL; c++) {
        fputs("  ", f);
        ctl_command_line(f, c);
    }
}


int
ctl_group_known(const char *group)
{
    const ctl_command_t *c;

    for (c = ctl_commands; c->group != NULL; c++) {
        if (strcmp(c->group, group) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * Where in argv (the arguments after the group) the command c is named:
 * the index of its first word, which options may precede, followed by its
 * second word if it has one; -1 when it is not named.
 */
static int
ctl_command_at(const ctl_command_t *c, int argc, char **argv)
{
    const char *space;
    size_t      len;
    int         i;

    space = strchr(c->name, ' ');
    len = space ? (size_t) (space - c->name) : strlen(c->name);

    for (i = 0; i < argc; i++) {
        if (strlen(argv[i]) == len && strncmp(argv[i], c->name, len) == 0) {
            break;
        }
    }

    if (i == argc) {
        return -1;
    }

    if (space != NULL && (i + 1 == argc || strcmp(argv[i + 1], space + 1))) {
        return -1;
    }

    return i;
}


/*
 * The command of group that argv names: the one named first, and of two
 * named at the same place ("secret", "secret set") the longer; or NULL.
 */
static const ctl_command_t *
ctl_command_find(const char *group, int argc, char **argv)
{
    const ctl_command_t *c, *best;
    int                  at, first;

    best = NULL;
    first = argc;

    for (c = ctl_commands; c->group != NULL; c++) {
        if (strcmp(c->group, group) != 0) {
            continue;
        }

        at = ctl_command_at(c, argc, argv);
        if (at >= 0
            && (at < first
                || (at == first && strlen(c->name) > strlen(best->name)))) {
            first = at;
            best = c;
        }
    }

    return best;
}


/*
 * Prints the help of the command that group and argv name, or the lines of
 * every command of the group when argv names none of them.
 */
void
ctl_command_help(FILE *f, const char *group, int argc, char **argv)
{
    const ctl_command_t *c;

    c = ctl_command_find(group, argc, argv);

    if (c != NULL) {
        fputs("usage: automationsctl [OPTIONS] ", f);
        ctl_command_line(f, c);
        fprintf(f, "\n%s\nOPTIONS: see automationsctl --help\n", c->help);
        return;
    }

    fprintf(f, "usage: automationsctl [OPTIONS] %s SUBCOMMAND ...\n\n", group);

    for (c = ctl_commands; c->group != NULL; c++) {
        if (strcmp(c->group, group) == 0) {
            fputs("  ", f);
            ctl_command_line(f, c);
        }
    }

    fprintf(f, "\nautomationsctl %s SUBCOMMAND --help tells more.\n", group);
}


/*
 * -1 when --json was given to a command that argv names and that lists
 * nothing, with a message naming those that do; 0 otherwise (an unknown
 * subcommand is the group's to refuse).
 */
int
ctl_command_json_check(const char *group, int argc, char **argv)
{
    const ctl_command_t *c;
    const char          *sep;

    c = ctl_command_find(group, argc, argv);

    if (c == NULL || c->list) {
        return 0;
    }

    fputs("automationsctl: --json goes with the listings only:", stderr);
    sep = " ";

    for (c = ctl_commands; c->group != NULL; c++) {
        if (c->list) {
            fprintf(stderr, "%s%s %s", sep, c->group, c->name);
            sep = ", ";
        }
    }

    fputc('\n', stderr);
    return -1;
}
