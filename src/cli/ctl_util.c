/*
 * Argument handling shared by the commands: option parsing and the checks
 * on names, labels and scopes.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "am_crypto.h"
#include "am_name.h"
#include "ctl.h"

static const char *ctl_scope_words[] = {"read", "write", "run", "admin"};

#define CTL_NSCOPES (sizeof(ctl_scope_words) / sizeof(ctl_scope_words[0]))

void
ctl_error(const char *fmt, ...)
{
    va_list ap;

    fputs("automationsctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const ctl_opt_t *
ctl_opt_find(const ctl_opt_t *opts, const char *arg, size_t len)
{
    for (; opts != NULL && opts->name != NULL; opts++) {
        if (strlen(opts->name) == len && strncmp(opts->name, arg, len) == 0) {
            return opts;
        }
    }

    return NULL;
}

/*
 * Splits a command's arguments into options, each taking one value
 * ("--name VALUE" or "--name=VALUE", in any position), and positionals,
 * stored in pos. "--" ends the options. Returns the number of positionals,
 * or -1 after printing why the arguments are wrong.
 */
int
ctl_parse(int argc, char **argv, const ctl_opt_t *opts, char **pos, int maxpos)
{
    const ctl_opt_t *opt;
    const char      *eq;
    int              i, n, options;

    n = 0;
    options = 1;

    for (i = 0; i < argc; i++) {
        if (!options || argv[i][0] != '-' || argv[i][1] == '\0') {
            if (n == maxpos) {
                ctl_error("too many arguments");
                return -1;
            }
            pos[n++] = argv[i];
            continue;
        }

        if (strcmp(argv[i], "--") == 0) {
            options = 0;
            continue;
        }

        eq = strchr(argv[i], '=');
        opt = ctl_opt_find(
            opts, argv[i], eq ? (size_t) (eq - argv[i]) : strlen(argv[i]));

        if (opt == NULL) {
            ctl_error("unknown option \"%s\"", argv[i]);
            return -1;
        }

        if (eq != NULL) {
            *opt->value = eq + 1;

        } else if (i + 1 < argc) {
            *opt->value = argv[++i];

        } else {
            ctl_error("option %s needs a value", opt->name);
            return -1;
        }
    }

    return n;
}

/* 0 when name is a valid project name, else -1 with a message. */
int
ctl_name_check(const char *what, const char *name)
{
    if (am_project_name_valid(name, strlen(name))) {
        return 0;
    }

    ctl_error("invalid %s name \"%s\": use 1 to %d characters "
              "of A-Z a-z 0-9 _ -",
        what, name, AM_PROJECT_NAME_MAX);
    return -1;
}

/* A label is free text for people, but one line of printable bytes. */
int
ctl_label_check(const char *label)
{
    const unsigned char *p;

    if (strlen(label) > CTL_LABEL_MAX) {
        ctl_error("name is longer than %d bytes", CTL_LABEL_MAX);
        return -1;
    }

    for (p = (const unsigned char *) label; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            ctl_error("name contains a control character");
            return -1;
        }
    }

    return 0;
}

/*
 * Checks a space-separated list of scopes ("scope" or "role" for what,
 * in messages) and writes it to out in the canonical order
 * "read write run admin", each scope once. Returns 0, or -1 with a message.
 */
int
ctl_scopes_normalize(const char *what, const char *in, char *out, size_t size)
{
    const char *p, *end;
    size_t      i, len;
    int         seen[CTL_NSCOPES] = {0};
    int         any;

    for (p = in; *p; p = end) {
        while (*p == ' ') {
            p++;
        }
        for (end = p; *end && *end != ' '; end++) {
            /* void */
        }
        len = (size_t) (end - p);
        if (len == 0) {
            continue;
        }

        for (i = 0; i < CTL_NSCOPES; i++) {
            if (strlen(ctl_scope_words[i]) == len
                && strncmp(ctl_scope_words[i], p, len) == 0) {
                seen[i] = 1;
                break;
            }
        }

        if (i == CTL_NSCOPES) {
            ctl_error("unknown %s \"%.*s\": use read, write, run, admin", what,
                (int) len, p);
            return -1;
        }
    }

    out[0] = '\0';
    any = 0;

    for (i = 0; i < CTL_NSCOPES; i++) {
        if (seen[i]) {
            if (strlen(out) + strlen(ctl_scope_words[i]) + 2 > size) {
                return -1;
            }
            if (any) {
                strcat(out, " ");
            }
            strcat(out, ctl_scope_words[i]);
            any = 1;
        }
    }

    if (!any) {
        ctl_error("no %s given: use read, write, run, admin", what);
        return -1;
    }

    return 0;
}

/* Shows a space-separated list as one word of a listing line. */
void
ctl_commas(char *s)
{
    for (; *s; s++) {
        if (*s == ' ') {
            *s = ',';
        }
    }
}

/* A new credential id: CTL_ID_BYTES random bytes in hex (CTL_ID_LEN + 1). */
int
ctl_new_id(char *id)
{
    if (am_random_hex(id, CTL_ID_BYTES) != 0) {
        ctl_error("cannot get random bytes");
        return -1;
    }

    return 0;
}

/*
 * A new secret "<prefix><64 hex>" in out (CTL_SECRET_MAX bytes) and the
 * digest under which it is stored, the only form Redis ever sees.
 */
int
ctl_new_secret(const char *prefix, char *out, char *digest)
{
    char hex[2 * CTL_SECRET_BYTES + 1];
    int  n;

    if (am_random_hex(hex, CTL_SECRET_BYTES) != 0) {
        ctl_error("cannot get random bytes");
        return -1;
    }

    n = snprintf(out, CTL_SECRET_MAX, "%s%s", prefix, hex);
    OPENSSL_cleanse(hex, sizeof(hex));

    if (n < 0 || n >= CTL_SECRET_MAX) {
        ctl_error("secret too long");
        return -1;
    }

    am_sha256_hex(out, (size_t) n, digest);
    return 0;
}

/*
 * Explains a command line that matches no form of a command group (subs:
 * its subcommands, NULL-terminated), then shows the usage of the command
 * it names, or of the group. n < 0: the parser has already said what is
 * wrong. Returns CTL_USAGE.
 */
int
ctl_bad_usage(const char *group, const char *const *subs, char **pos, int n)
{
    const char *const *s;

    for (s = subs; n > 0 && *s != NULL; s++) {
        if (strcmp(*s, pos[0]) == 0) {
            break;
        }
    }

    if (n == 0) {
        ctl_error("%s: missing subcommand", group);

    } else if (n > 0 && *s == NULL) {
        ctl_error("%s: unknown subcommand \"%s\"", group, pos[0]);

    } else if (n > 0) {
        ctl_error("%s %s: wrong number of arguments", group, pos[0]);
    }

    ctl_command_help(stderr, group, n > 0 ? n : 0, pos);
    return CTL_USAGE;
}
