/*
 * The worker's options: one table, am_options[], says for each its flag,
 * its environment variable, its range, the field it sets and its help. The
 * table drives the parsing, --help, and README's worker options table
 * (t/worker.t checks that README and --help agree).
 *
 * A value comes from the default, then the variable, then the command line:
 * the last one wins, and each is checked the same way.
 */

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "am_execution.h"
#include "am_name.h"
#include "am_opt.h"
#include "am_redis_addr.h"
#include "worker/worker.h"

#define AM_STR_(x) #x
#define AM_STR(x) AM_STR_(x)

#define AM_DEFAULT_SCHEDULE "5s,30s,2m,10m,30m,1h,2h,4h,8h,8h"
#define AM_HELP_WIDTH 78

/* the field of am_worker_t an option sets */
#define AM_FIELD(f)                                                            \
    .offset = offsetof(am_worker_t, f), .size = sizeof(((am_worker_t *) 0)->f)

typedef enum {
    AM_OPT_STRING, /* a const char * field */
    AM_OPT_NUMBER, /* an integer field of any width, from min to max */
    AM_OPT_FLAG,   /* an int field set to 1; its variable takes 0 or 1 */
    AM_OPT_CALL    /* set() takes the value */
} am_option_kind_t;

/* Takes a value; 0, or -1 with the reason in err. */
typedef int (*am_option_set_pt)(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen);

typedef struct {
    const char      *flag; /* without the "--" */
    const char      *arg;  /* the value in --help, NULL for a flag */
    const char      *env;
    am_option_kind_t kind;
    long             min;
    long             max;
    size_t           offset;
    size_t           size;
    am_option_set_pt set;
    const char      *dflt;  /* applied before the variable, or NULL */
    const char      *shown; /* the default --help shows, when not dflt */
    const char      *help;
} am_option_t;

static int am_opt_password_file(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen);
static int am_opt_name(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen);
static int am_opt_runtime(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen);
static int am_opt_schedule(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen);
static int am_opt_early_sandbox(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen);
static int am_opt_python_warm(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen);
static int am_opt_run_dir(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen);
static int am_opt_log_format(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen);
static int am_opt_log_level(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen);

/* a row a paragraph: the table reads better than one field a line */
/* clang-format off */
static const am_option_t am_options_table[] = {
    {.flag = "redis", .arg = "ADDR", .env = "AUTOMATIONS_REDIS",
        .kind = AM_OPT_STRING, AM_FIELD(redis.addr), .dflt = "127.0.0.1:6379",
        .help = "where Redis is: " AM_REDIS_ADDR_SYNTAX
                "; a host name is resolved at each connection"},

    {.flag = "password-file", .arg = "FILE",
        .env = "AUTOMATIONS_REDIS_PASSWORD_FILE", .kind = AM_OPT_CALL,
        .set = am_opt_password_file,
        .help = "the Redis password, on the first line of FILE"},

    {.flag = "password", .arg = "PW", .env = "AUTOMATIONS_REDIS_PASSWORD",
        .kind = AM_OPT_STRING, AM_FIELD(redis.password),
        .help = "the Redis password itself; any local user can read a "
                "command line, so prefer the variable or --password-file"},

    {.flag = "db", .arg = "N", .env = "AUTOMATIONS_REDIS_DB",
        .kind = AM_OPT_NUMBER, .min = 0, .max = 65535, AM_FIELD(redis.db),
        .dflt = "0", .help = "the Redis database"},

    {.flag = "prefix", .arg = "PREFIX", .env = "AUTOMATIONS_PREFIX",
        .kind = AM_OPT_STRING, AM_FIELD(prefix), .dflt = "am:",
        .help = "of every Redis key, as the module's; " AM_PREFIX_RULE},

    {.flag = "concurrency", .arg = "N", .env = "AUTOMATIONS_CONCURRENCY",
        .kind = AM_OPT_NUMBER, .min = 1, .max = 1024, AM_FIELD(concurrency),
        .dflt = "4", .help = "runs at once in this process"},

    {.flag = "group", .arg = "NAME", .env = "AUTOMATIONS_GROUP",
        .kind = AM_OPT_STRING, AM_FIELD(group), .dflt = "workers",
        .help = "the stream's consumer group, shared by all workers"},

    {.flag = "name", .arg = "NAME", .env = "AUTOMATIONS_WORKER_NAME",
        .kind = AM_OPT_CALL, .set = am_opt_name, .shown = "HOST-PID",
        .help = "this worker's consumer name, in logs and execution records"},

    {.flag = "log-format", .arg = "FORMAT", .env = "AUTOMATIONS_LOG_FORMAT",
        .kind = AM_OPT_CALL, .set = am_opt_log_format, .dflt = "text",
        .help = "text, or json: one object a line with time, level, worker, "
                "event, execution_id, project, automation, status, ms and "
                "message"},

    {.flag = "log-level", .arg = "LEVEL", .env = "AUTOMATIONS_LOG_LEVEL",
        .kind = AM_OPT_CALL, .set = am_opt_log_level, .dflt = "info",
        .help = "error, warn (failed runs and webhook attempts), info (every "
                "run and attempt) or debug"},

    {.flag = "visibility-timeout", .arg = "MS",
        .env = "AUTOMATIONS_VISIBILITY_TIMEOUT", .kind = AM_OPT_NUMBER,
        .min = 300, .max = 86400000, AM_FIELD(visibility_ms), .dflt = "30000",
        .help = "a dead worker's runs are taken over after this (XAUTOCLAIM); "
                "live workers renew theirs"},

    {.flag = "max-attempts", .arg = "N", .env = "AUTOMATIONS_MAX_ATTEMPTS",
        .kind = AM_OPT_NUMBER, .min = 1, .max = 1000, AM_FIELD(max_attempts),
        .dflt = "3", .help = "a run interrupted more often ends as an error"},

    {.flag = "max-timeout", .arg = "MS", .env = "AUTOMATIONS_MAX_TIMEOUT",
        .kind = AM_OPT_NUMBER, .min = 100, .max = AM_RUN_TIMEOUT_MAX_MS,
        AM_FIELD(run.max_timeout_ms), .dflt = AM_STR(AM_RUN_TIMEOUT_MAX_MS),
        .help = "cap on an automation's timeout_ms ("
                AM_STR(AM_RUN_TIMEOUT_DEFAULT_MS) " when it has none); "
                "the API refuses more than the default, a lower cap is logged "
                "at each run it cuts"},

    {.flag = "memory", .arg = "MB", .env = "AUTOMATIONS_MEMORY",
        .kind = AM_OPT_NUMBER, .min = 16, .max = 1048576,
        AM_FIELD(run.memory_mb), .dflt = "512",
        .help = "address space of a run"},

    {.flag = "output-max", .arg = "BYTES", .env = "AUTOMATIONS_OUTPUT_MAX",
        .kind = AM_OPT_NUMBER, .min = 1024, .max = 1L << 30,
        AM_FIELD(run.max_output), .dflt = "1048576",
        .help = "a run printing more fails"},

    {.flag = "run-uid", .arg = "UID", .env = "AUTOMATIONS_RUN_UID",
        .kind = AM_OPT_NUMBER, .min = 1, .max = 4294967294L,
        AM_FIELD(run.uid), .shown = "a user per run",
        .help = "when the worker is root, runs execute as a user of their own "
                "each (from 2000000 up), so process limits count per run; "
                "this sets one user for all instead"},

    {.flag = "run-gid", .arg = "GID", .env = "AUTOMATIONS_RUN_GID",
        .kind = AM_OPT_NUMBER, .min = 1, .max = 4294967294L,
        AM_FIELD(run.gid), .shown = "the run's uid, or 65534",
        .help = "the group runs execute as when the worker is root"},

    {.flag = "run-tmp-mb", .arg = "MB", .env = "AUTOMATIONS_RUN_TMP_MB",
        .kind = AM_OPT_NUMBER, .min = 1, .max = 65536, AM_FIELD(run.tmp_mb),
        .dflt = "64",
        .help = "a confined run's /tmp, /dev/shm and folder: one tmpfs of "
                "that size"},

    {.flag = "run-hide", .arg = "PATH:PATH...", .env = "AUTOMATIONS_RUN_HIDE",
        .kind = AM_OPT_STRING, AM_FIELD(run.hidden), .dflt = AM_RUN_HIDDEN,
        .help = "what confined runs see empty (besides the other runs' "
                "folders)"},

    {.flag = "run-dir", .arg = "DIR", .env = "AUTOMATIONS_RUN_DIR",
        .kind = AM_OPT_CALL, .set = am_opt_run_dir,
        .shown = "/dev/shm when runs are confined, else $TMPDIR or /tmp",
        .help = "where the worker makes the folder that holds its runs' "
                "folders, removed when it exits (a killed worker's when the "
                "next one starts there); a confined run's folder holds only "
                "its code, which a tmpfs keeps off the disk"},

    {.flag = "no-confine", .env = "AUTOMATIONS_NO_CONFINE",
        .kind = AM_OPT_FLAG, .min = 0, .max = 1, AM_FIELD(run.unconfined),
        .shown = "off",
        .help = "as root, runs without their own mount, PID, IPC, UTS and "
                "network namespaces (see the README); the variable takes 1 "
                "or 0"},

    {.flag = "python-warm", .arg = "on|off", .env = "AUTOMATIONS_PYTHON_WARM",
        .kind = AM_OPT_CALL, .set = am_opt_python_warm, .dflt = "on",
        .help = "python runs forked by a warm python parent (the runner "
                "loaded, nothing of any run) instead of a new interpreter "
                "each, with the same confinement; off: every run starts "
                "python itself"},

    {.flag = "early-sandbox", .arg = "on|off",
        .env = "AUTOMATIONS_EARLY_SANDBOX", .kind = AM_OPT_CALL,
        .set = am_opt_early_sandbox, .dflt = "on",
        .help = "a run whose stream entry carries it (small, no "
                "ddn_headers) gets its sandbox ready while execution_start "
                "is on its way, and runs nothing until that says it may; "
                "off: the sandbox starts after execution_start"},

    {.flag = "warm-max-parents", .arg = "N",
        .env = "AUTOMATIONS_WARM_MAX_PARENTS", .kind = AM_OPT_NUMBER,
        .min = 0, .max = 32, AM_FIELD(run.warm_max_parents), .dflt = "4",
        .help = "warm python parents with an automation's preload imported, "
                "one per set of modules, besides the plain one; past this "
                "the least recently used one stops; 0: none"},

    {.flag = "warm-parent-memory-mb", .arg = "MB",
        .env = "AUTOMATIONS_WARM_PARENT_MEMORY_MB", .kind = AM_OPT_NUMBER,
        .min = 1, .max = 1048576, AM_FIELD(run.warm_parent_memory_mb),
        .dflt = "512",
        .help = "a warm parent whose resident memory exceeds this once its "
                "preload is imported stops, and its set of modules is not "
                "tried again for 5 minutes"},

    {.flag = "warm-preload-allow", .arg = "PKG,...",
        .env = "AUTOMATIONS_WARM_PRELOAD_ALLOW", .kind = AM_OPT_STRING,
        AM_FIELD(run.warm_preload_allow), .dflt = "*",
        .help = "the top-level packages whose modules a warm parent may "
                "preload (the import runs in it, unconfined), or * for any "
                "installed; a run whose preload names another is forked by "
                "the plain parent and imports it itself"},

    {.flag = "runtime", .arg = "NAME[:FILE]=CMD...",
        .env = "AUTOMATIONS_RUNTIMES", .kind = AM_OPT_CALL,
        .set = am_opt_runtime, .shown = "python, sh",
        .help = "adds or replaces a runtime, e.g. \"ruby:main.rb=/usr/bin/ruby "
                "{file}\"; repeatable, ';' between them in the variable"},

    {.flag = "webhook-schedule", .arg = "LIST",
        .env = "AUTOMATIONS_WEBHOOK_SCHEDULE", .kind = AM_OPT_CALL,
        .set = am_opt_schedule, .dflt = AM_DEFAULT_SCHEDULE,
        .help = "delays before each retry of a failed webhook (ms, s, m, h); "
                "after the last one the webhook is dead-lettered"},

    {.flag = "webhook-timeout", .arg = "MS",
        .env = "AUTOMATIONS_WEBHOOK_TIMEOUT", .kind = AM_OPT_NUMBER,
        .min = 100, .max = 600000, AM_FIELD(webhook.timeout_ms),
        .dflt = "10000", .help = "of one webhook request"},

    {.flag = "allow-private-webhooks",
        .env = "AUTOMATIONS_ALLOW_PRIVATE_WEBHOOKS", .kind = AM_OPT_FLAG,
        .min = 0, .max = 1, AM_FIELD(webhook.allow_private), .shown = "off",
        .help = "allow webhooks to loopback, private, link-local and metadata "
                "addresses; the variable takes 1 or 0"},
};
/* clang-format on */

#define AM_NOPTIONS (sizeof(am_options_table) / sizeof(am_options_table[0]))


/* Writes n into an unsigned or non-negative field of size bytes. */
static void
am_opt_store(void *field, size_t size, long n)
{
    uint64_t u64;
    uint32_t u32;

    if (size == sizeof(uint32_t)) {
        u32 = (uint32_t) n;
        memcpy(field, &u32, size);
    } else {
        u64 = (uint64_t) n;
        memcpy(field, &u64, size);
    }
}


/* One value for option o, from where (the flag or the variable). */
static int
am_opt_set(am_worker_t *w, const am_option_t *o, const char *value,
    const char *where, int from_env, char *err, size_t errlen)
{
    char *field, why[256];
    long  n;

    field = (char *) w + o->offset;

    switch (o->kind) {
    case AM_OPT_STRING:
        *(const char **) field = value;
        return 0;

    case AM_OPT_NUMBER:
    case AM_OPT_FLAG:
        if (o->kind == AM_OPT_FLAG && !from_env) {
            n = 1;
        } else if (am_opt_long(where, value, o->min, o->max, &n, err, errlen)
                   != 0) {
            return -1;
        }
        am_opt_store(field, o->size, n);
        return 0;

    default:
        if (o->set(w, value, from_env, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s: %s", where, why);
            return -1;
        }
        return 0;
    }
}


static int
am_opt_password_file(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen)
{
    char *pw;

    (void) from_env;

    pw = am_opt_secret_file(value, err, errlen);
    if (pw == NULL) {
        return -1;
    }

    free(w->password);
    w->password = pw;
    w->redis.password = pw;
    return 0;
}


static int
am_opt_name(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen)
{
    const unsigned char *p;

    (void) from_env;

    for (p = (const unsigned char *) value; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f) {
            break;
        }
    }

    if (value[0] == '\0' || *p != '\0' || strlen(value) > AM_NAME_MAX) {
        snprintf(err, errlen,
            "\"%s\" is not 1 to %d printable characters without spaces", value,
            AM_NAME_MAX);
        return -1;
    }

    strcpy(w->name, value);
    return 0;
}


/* Adds a runtime, replacing a built-in or earlier one of the same name. */
static int
am_opt_runtime_one(am_worker_t *w, const char *spec, char *err, size_t errlen)
{
    am_runtime_t rt;
    size_t       i;

    if (am_run_parse_runtime(spec, &rt, err, errlen) != 0) {
        return -1;
    }

    for (i = 0; i < w->run.nruntimes; i++) {
        if (strcmp(w->run.runtimes[i].name, rt.name) == 0) {
            break;
        }
    }

    if (i == AM_RUNTIMES_MAX) {
        am_run_free_runtime(&rt);
        snprintf(err, errlen, "at most %d runtimes", AM_RUNTIMES_MAX);
        return -1;
    }

    /* the built-in entries are static: only parsed ones are freed */
    if (i < w->run.nruntimes && w->runtime_owned[i]) {
        am_run_free_runtime(&w->run.runtimes[i]);
    }

    w->run.runtimes[i] = rt;
    w->runtime_owned[i] = 1;

    if (i == w->run.nruntimes) {
        w->run.nruntimes++;
    }

    return 0;
}


/* --runtime takes one spec, AUTOMATIONS_RUNTIMES several, ';' between. */
static int
am_opt_runtime(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen)
{
    char *copy, *spec, *save;
    int   rc;

    if (!from_env) {
        return am_opt_runtime_one(w, value, err, errlen);
    }

    copy = strdup(value);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    rc = 0;
    for (spec = strtok_r(copy, ";", &save); spec && rc == 0;
         spec = strtok_r(NULL, ";", &save)) {
        rc = am_opt_runtime_one(w, spec, err, errlen);
    }

    free(copy);
    return rc;
}


/* "on" or "off" into *field */
static int
am_opt_switch(const char *value, int *field, char *err, size_t errlen)
{
    if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
        snprintf(err, errlen, "\"%s\" is neither on nor off", value);
        return -1;
    }

    *field = strcmp(value, "on") == 0;
    return 0;
}


static int
am_opt_python_warm(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen)
{
    (void) from_env;

    return am_opt_switch(value, &w->run.python_warm, err, errlen);
}


static int
am_opt_early_sandbox(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen)
{
    (void) from_env;

    return am_opt_switch(value, &w->hold, err, errlen);
}


/* An absolute path, short enough for the run folders below it. */
static int
am_opt_run_dir(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen)
{
    (void) from_env;

    if (value[0] != '/' || strlen(value) > AM_RUN_DIR_MAX) {
        snprintf(err, errlen, "not an absolute path of at most %d bytes",
            AM_RUN_DIR_MAX);
        return -1;
    }

    w->run.tmp_root = value;
    return 0;
}


/* "5s,30s,2m,...": delays in ms, s, m or h; "" for no retry at all. */
static int
am_opt_schedule(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen)
{
    const char *p;
    char       *end;
    double      n, unit;

    (void) from_env;

    w->nschedule = 0;

    for (p = value; *p; p = end) {
        if (w->nschedule == AM_SCHEDULE_MAX) {
            snprintf(err, errlen, "at most %d delays", AM_SCHEDULE_MAX);
            return -1;
        }

        n = strtod(p, &end);
        if (end == p || n < 0) {
            goto invalid;
        }

        if (strncmp(end, "ms", 2) == 0) {
            unit = 1;
            end += 2;
        } else if (*end == 's') {
            unit = 1000;
            end++;
        } else if (*end == 'm') {
            unit = 60000;
            end++;
        } else if (*end == 'h') {
            unit = 3600000;
            end++;
        } else {
            goto invalid;
        }

        if (n * unit > 7 * 86400000.0) {
            goto invalid;
        }

        w->schedule[w->nschedule++] = (uint64_t) (n * unit);

        if (*end == ',') {
            end++;
            if (*end == '\0') {
                goto invalid;
            }
        } else if (*end != '\0') {
            goto invalid;
        }
    }

    return 0;

invalid:

    snprintf(err, errlen,
        "\"%s\" is not a comma list of delays such as 5s,30s,2m,1h (at most "
        "7 days each)",
        value);
    return -1;
}


/* The defaults that are not in the table: the name and the runtimes. */
static void
am_opt_defaults(am_worker_t *w)
{
    am_runtime_t *builtin;
    size_t        n;
    char          host[64];

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "worker");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(w->name, sizeof(w->name), "%s-%ld", host, (long) getpid());

    n = am_run_default_runtimes(&builtin);
    w->run.runtimes = w->runtimes;
    memcpy(w->runtimes, builtin, n * sizeof(am_runtime_t));
    w->run.nruntimes = n;
}


/* Checks what options cannot check one by one; builds the key names. */
static int
am_opt_check(am_worker_t *w, char *err, size_t errlen)
{
    if (!am_prefix_valid(w->prefix, strlen(w->prefix))) {
        snprintf(
            err, errlen, "invalid prefix \"%s\": " AM_PREFIX_RULE, w->prefix);
        return -1;
    }

    if (w->group[0] == '\0' || strlen(w->group) > AM_NAME_MAX) {
        snprintf(err, errlen, "--group takes 1 to %d characters", AM_NAME_MAX);
        return -1;
    }

    snprintf(w->stream, sizeof(w->stream), "%sruns", w->prefix);
    snprintf(w->webhooks, sizeof(w->webhooks), "%swebhooks", w->prefix);
    snprintf(w->dead, sizeof(w->dead), "%swebhooks:dead", w->prefix);
    snprintf(w->channel, sizeof(w->channel), "%scompletions", w->prefix);

    if (w->webhook.timeout_ms < 5000) {
        w->webhook.connect_timeout_ms = w->webhook.timeout_ms;
    }

    return 0;
}


/* Writes text from column indent, wrapped before AM_HELP_WIDTH. */
static void
am_opt_wrap(FILE *f, const char *text, int indent)
{
    const char *p, *space, *end;
    int         width;

    width = AM_HELP_WIDTH - indent;

    for (p = text; *p; p = end) {
        end = p + strlen(p);

        if (end - p > width) {
            for (space = p + width; space > p && *space != ' '; space--) {
                /* back to the last space that fits */
            }
            end = space > p ? space : p + width;
        }

        fprintf(f, "%*s%.*s\n", indent, "", (int) (end - p), p);

        while (*end == ' ') {
            end++;
        }
    }
}


static void
am_opt_usage(FILE *f)
{
    const am_option_t *o;
    const char        *dflt;
    char               left[64];

    fputs("usage: automations-worker [OPTIONS]\n"
          "\n"
          "Executes the runs queued in Redis and delivers their webhooks.\n"
          "Each option can be set in its environment variable instead; the\n"
          "option wins. Defaults in parentheses.\n"
          "\n",
        f);

    for (o = am_options_table; o < am_options_table + AM_NOPTIONS; o++) {
        snprintf(left, sizeof(left), "--%s%s%s", o->flag, o->arg ? " " : "",
            o->arg ? o->arg : "");
        dflt = o->shown ? o->shown : o->dflt;

        fprintf(f, "  %-30s %s", left, o->env);
        if (dflt) {
            fprintf(f, " (%s)", dflt);
        }
        fputc('\n', f);
        am_opt_wrap(f, o->help, 6);
    }

    fputs("  -h, --help\n"
          "  --version\n"
          "\n"
          "Keys: <prefix>runs (stream), <prefix>webhooks, "
          "<prefix>webhooks:dead;\n"
          "completions go to the channels an execution names, or to\n"
          "<prefix>completions when it names none.\n"
          "SIGTERM or SIGINT: finish the runs in flight and exit; a second "
          "one\n"
          "cancels them and leaves them to other workers, as does a Redis "
          "gone\n"
          "for 5 s meanwhile; a third one stops at once. Either way the "
          "worker\n"
          "is gone within seconds and its runs stay queued.\n",
        f);
}


static int
am_opt_log_format(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen)
{
    (void) w;
    (void) from_env;

    if (am_log_set_format(value) != 0) {
        snprintf(err, errlen, "use text or json");
        return -1;
    }

    return 0;
}

static int
am_opt_log_level(
    am_worker_t *w, const char *value, int from_env, char *err, size_t errlen)
{
    (void) w;
    (void) from_env;

    if (am_log_set_level(value) != 0) {
        snprintf(err, errlen, "use error, warn, info or debug");
        return -1;
    }

    return 0;
}

int
am_options(am_worker_t *w, int argc, char **argv)
{
    struct option      longopts[AM_NOPTIONS + 2];
    const am_option_t *o;
    const char        *v;
    char               err[512], where[64];
    size_t             i;
    int                c;

    am_opt_defaults(w);

    for (i = 0; i < AM_NOPTIONS; i++) {
        o = &am_options_table[i];
        longopts[i].name = o->flag;
        longopts[i].has_arg = o->arg ? required_argument : no_argument;
        longopts[i].flag = NULL;
        longopts[i].val = 256 + (int) i;

        snprintf(where, sizeof(where), "--%s", o->flag);

        if (o->dflt
            && am_opt_set(w, o, o->dflt, where, 0, err, sizeof(err)) != 0) {
            goto failed;
        }
    }

    longopts[i] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[i + 1] = (struct option){NULL, 0, NULL, 0};

    for (o = am_options_table; o < am_options_table + AM_NOPTIONS; o++) {
        v = am_env(o->env);
        if (v && am_opt_set(w, o, v, o->env, 1, err, sizeof(err)) != 0) {
            goto failed;
        }
    }

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            am_opt_usage(stdout);
            return 1;
        }

        if (c < 256 || c >= 256 + (int) AM_NOPTIONS) {
            /* getopt_long() said which option */
            fprintf(stderr, "automations-worker: see --help\n");
            return -1;
        }

        o = &am_options_table[c - 256];
        snprintf(where, sizeof(where), "--%s", o->flag);

        if (am_opt_set(w, o, optarg, where, 0, err, sizeof(err)) != 0) {
            goto failed;
        }
    }

    if (optind < argc) {
        snprintf(err, sizeof(err), "unexpected argument \"%s\"", argv[optind]);
        goto failed;
    }

    if (am_opt_check(w, err, sizeof(err)) == 0) {
        return 0;
    }

failed:

    fprintf(stderr, "automations-worker: %s\n", err);
    return -1;
}


void
am_options_free(am_worker_t *w)
{
    size_t i;

    for (i = 0; i < w->run.nruntimes; i++) {
        if (w->runtime_owned[i]) {
            am_run_free_runtime(&w->run.runtimes[i]);
        }
    }

    free(w->password);
    w->password = NULL;
}
