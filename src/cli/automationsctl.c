/*
 * automationsctl: the gateway's admin CLI. Manages projects, API keys,
 * token pairs and webhook secrets and dead letters in Redis through the
 * scripts of redis/, and mints JWTs for development. Exit codes: 0 ok, 1 the
 * operation failed, 2 usage error.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_opt.h"
#include "am_redis_addr.h"
#include "am_version.h"
#include "ctl.h"

static const char *ctl_usage_text =
    "usage: automationsctl [OPTIONS] COMMAND ...\n"
    "\n"
    "options (environment variable, default):\n"
    "  --redis ADDR                AUTOMATIONS_REDIS, 127.0.0.1:6379\n"
    "      " AM_REDIS_ADDR_SYNTAX "\n"
    "  --password-file FILE        AUTOMATIONS_REDIS_PASSWORD_FILE\n"
    "      the Redis password, on the first line of FILE\n"
    "  --password PW               AUTOMATIONS_REDIS_PASSWORD\n"
    "      prefer the variable or the file: others can read command lines\n"
    "  --db N                      AUTOMATIONS_REDIS_DB, 0\n"
    "  --prefix PREFIX             AUTOMATIONS_PREFIX, am:\n"
    "  --version\n"
    "\n"
    "commands (automationsctl COMMAND ... --help tells more of each):\n";

static const char *ctl_usage_end =
    "  help [COMMAND [SUBCOMMAND]]\n"
    "\n"
    "Listings start with a header line naming their columns; --json prints\n"
    "them as a JSON array of objects instead.\n"
    "Scopes and roles: read, write, run, admin. Secrets are shown once.\n";

void
ctl_usage(int to_stderr)
{
    FILE *f;

    f = to_stderr ? stderr : stdout;
    fputs(ctl_usage_text, f);
    ctl_commands_usage(f);
    fputs(ctl_usage_end, f);
}

static const char *
ctl_env(const char *name, const char *dflt)
{
    const char *v;

    v = am_env(name);
    return v ? v : dflt;
}

/* Checks the settings that every Redis command relies on. */
static int
ctl_settings_check(ctl_t *ctl, const char *db, const char *password_file)
{
    char err[512];
    long n;

    if (am_opt_long("--db", db, 0, 65535, &n, err, sizeof(err)) != 0) {
        ctl_error("invalid database number \"%s\"", db);
        return -1;
    }

    ctl->db = (int) n;

    if (!am_prefix_valid(ctl->prefix, strlen(ctl->prefix))) {
        ctl_error("invalid prefix \"%s\": " AM_PREFIX_RULE, ctl->prefix);
        return -1;
    }

    if (password_file != NULL) {
        ctl->password_buf = am_opt_secret_file(password_file, err, sizeof(err));
        if (ctl->password_buf == NULL) {
            ctl_error("--password-file: %s", err);
            return -1;
        }
        ctl->password = ctl->password_buf;
    }

    return 0;
}

/*
 * Reads the global options, in front of the command; returns the index of
 * the command in argv, or -1 after a usage error.
 */
static int
ctl_options(ctl_t *ctl, int argc, char **argv)
{
    const char *db, *password_file, **value;
    int         i;

    ctl->redis = ctl_env("AUTOMATIONS_REDIS", "127.0.0.1:6379");
    ctl->password = ctl_env("AUTOMATIONS_REDIS_PASSWORD", NULL);
    ctl->prefix = ctl_env("AUTOMATIONS_PREFIX", "am:");
    db = ctl_env("AUTOMATIONS_REDIS_DB", "0");
    password_file = ctl_env("AUTOMATIONS_REDIS_PASSWORD_FILE", NULL);

    for (i = 1; i < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            return i;
        }

        if (strcmp(argv[i], "--redis") == 0) {
            value = &ctl->redis;
        } else if (strcmp(argv[i], "--password") == 0) {
            value = &ctl->password;
            password_file = NULL;
        } else if (strcmp(argv[i], "--password-file") == 0) {
            value = &password_file;
        } else if (strcmp(argv[i], "--db") == 0) {
            value = &db;
        } else if (strcmp(argv[i], "--prefix") == 0) {
            value = &ctl->prefix;
        } else {
            ctl_error("unknown option \"%s\"", argv[i]);
            return -1;
        }

        if (i + 1 == argc) {
            ctl_error("option %s needs a value", argv[i]);
            return -1;
        }

        *value = argv[i + 1];
    }

    if (ctl_settings_check(ctl, db, password_file) != 0) {
        return -1;
    }

    return i;
}

/*
 * Takes the flags every command knows out of its arguments (up to "--"):
 * --json into ctl, --help and -h into help. Returns the new argc.
 */
static int
ctl_flags(ctl_t *ctl, int argc, char **argv, int *help)
{
    int i, n, options;

    n = 0;
    options = 1;

    for (i = 0; i < argc; i++) {
        if (options && strcmp(argv[i], "--json") == 0) {
            ctl->json = 1;

        } else if (options
                   && (strcmp(argv[i], "--help") == 0
                       || strcmp(argv[i], "-h") == 0)) {
            *help = 1;

        } else {
            if (strcmp(argv[i], "--") == 0) {
                options = 0;
            }
            argv[n++] = argv[i];
        }
    }

    return n;
}

/* help [COMMAND [SUBCOMMAND]] */
static int
ctl_help(int argc, char **argv)
{
    if (argc == 0) {
        ctl_usage(0);
        return CTL_OK;
    }

    if (!ctl_group_known(argv[0])) {
        ctl_error("unknown command \"%s\"", argv[0]);
        ctl_usage(1);
        return CTL_USAGE;
    }

    ctl_command_help(stdout, argv[0], argc - 1, argv + 1);
    return CTL_OK;
}

static int
ctl_run(ctl_t *ctl, int argc, char **argv)
{
    const char *cmd = argv[0];
    int         help;

    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0
        || strcmp(cmd, "--help") == 0) {
        return ctl_help(argc - 1, argv + 1);
    }

    if (!ctl_group_known(cmd)) {
        ctl_error("unknown command \"%s\"", cmd);
        ctl_usage(1);
        return CTL_USAGE;
    }

    help = 0;
    argc = 1 + ctl_flags(ctl, argc - 1, argv + 1, &help);

    if (help) {
        ctl_command_help(stdout, cmd, argc - 1, argv + 1);
        return CTL_OK;
    }

    if (ctl->json && ctl_command_json_check(cmd, argc - 1, argv + 1) != 0) {
        return CTL_USAGE;
    }

    if (strcmp(cmd, "project") == 0) {
        return ctl_project(ctl, argc - 1, argv + 1);
    }

    if (strcmp(cmd, "apikey") == 0) {
        return ctl_apikey(ctl, argc - 1, argv + 1);
    }

    if (strcmp(cmd, "tokenpair") == 0) {
        return ctl_tokenpair(ctl, argc - 1, argv + 1);
    }

    if (strcmp(cmd, "jwt") == 0) {
        return ctl_jwt(argc - 1, argv + 1);
    }

    if (strcmp(cmd, "webhook") == 0) {
        return ctl_webhook(ctl, argc - 1, argv + 1);
    }

    if (strcmp(cmd, "execution") == 0) {
        return ctl_execution(ctl, argc - 1, argv + 1);
    }

    ctl_error("internal error: command \"%s\" has no handler", cmd);
    return CTL_FAILED;
}

int
main(int argc, char **argv)
{
    ctl_t ctl;
    int   i, rc;

    memset(&ctl, 0, sizeof(ctl));

    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        puts("automationsctl " AM_VERSION);
        return CTL_OK;
    }

    i = ctl_options(&ctl, argc, argv);

    if (i < 0 || i == argc) {
        if (i == argc) {
            ctl_error("no command given");
        }
        ctl_usage(1);
        free(ctl.password_buf);
        return CTL_USAGE;
    }

    rc = ctl_run(&ctl, argc - i, argv + i);

    ctl_disconnect(&ctl);
    free(ctl.password_buf);

    if (fflush(stdout) != 0) {
        ctl_error("cannot write the output");
        return CTL_FAILED;
    }

    return rc;
}
