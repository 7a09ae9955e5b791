/*
 * The rules shared by the module, the worker and the CLI (src/am_*.c):
 * the Redis address, key prefixes, execution ids, run timeouts, stored
 * headers, options, and the script contracts of am_scripts.h against the
 * scripts themselves.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "am_execution.h"
#include "am_header.h"
#include "am_name.h"
#include "am_opt.h"
#include "am_redis_addr.h"
#include "am_scripts.h"
#include "tap.h"


static void
am_test_redis_addr(void)
{
    static const struct {
        const char *in;
        const char *host;
        int         port;
        int         numeric;
    } good[] = {
        {"127.0.0.1:6380", "127.0.0.1", 6380, 1},
        {"127.0.0.1", "127.0.0.1", 6379, 1},
        {"localhost:7000", "127.0.0.1", 7000, 1},
        {"localhost", "127.0.0.1", 6379, 1},
        {"[::1]:6381", "::1", 6381, 1},
        {"[::1]", "::1", 6379, 1},
        {"redis.internal:6390", "redis.internal", 6390, 0},
        {"redis-1", "redis-1", 6379, 0},
    };
    static const char *bad[] = {"", ":6379", "::1", "::1:6379", "[::1",
        "[::1]x", "[nothost]:1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:+1", "host:port", "a b:1", "a..b", "unix:", "-", "a-.b",
        "-a", "a-"};

    am_redis_addr_t a;
    char            err[256], ip[64];
    size_t          i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        am_test_ok(am_redis_addr_parse(good[i].in, &a, err, sizeof(err)) == 0
                       && strcmp(a.host, good[i].host) == 0
                       && a.port == good[i].port && a.numeric == good[i].numeric
                       && a.path == NULL,
            "redis address \"%s\": host %s, port %d", good[i].in, good[i].host,
            good[i].port);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        am_test_ok(am_redis_addr_parse(bad[i], &a, err, sizeof(err)) != 0
                       && err[0] != '\0',
            "redis address \"%s\" refused: %s", bad[i], err);
    }

    am_test_ok(
        am_redis_addr_parse("unix:/run/redis.sock", &a, err, sizeof(err)) == 0
            && a.path && strcmp(a.path, "/run/redis.sock") == 0,
        "redis address unix:/run/redis.sock: a socket path");

    am_redis_addr_parse("::1:6379", &a, err, sizeof(err));
    am_test_ok(strstr(err, "[::1:6379]") != NULL,
        "a bare IPv6 address: the message shows the brackets (%s)", err);

    am_redis_addr_parse("[::1]:6380", &a, err, sizeof(err));
    am_test_ok(am_redis_addr_resolve(&a, ip, sizeof(ip), err, sizeof(err)) == 0
                   && strcmp(ip, "::1") == 0,
        "an IP address resolves to itself");

    /* "localhost" is 127.0.0.1 without asking; asked, it is either */
    am_redis_addr_parse("redis-1", &a, err, sizeof(err));
    strcpy(a.host, "localhost");
    am_test_ok(am_redis_addr_resolve(&a, ip, sizeof(ip), err, sizeof(err)) == 0
                   && (strcmp(ip, "127.0.0.1") == 0 || strcmp(ip, "::1") == 0),
        "a host name resolves: localhost is %s", ip);

    am_redis_addr_parse("no-such-host.invalid", &a, err, sizeof(err));
    am_test_ok(am_redis_addr_resolve(&a, ip, sizeof(ip), err, sizeof(err)) != 0
                   && strstr(err, "cannot resolve no-such-host.invalid"),
        "a name that does not resolve: %s", err);
}


static void
am_test_names(void)
{
    char big[AM_PREFIX_MAX + 2];
    char id[AM_EXECUTION_ID_LEN + 1], other[AM_EXECUTION_ID_LEN + 1];

    am_test_ok(am_prefix_valid("am:", 3) && am_prefix_valid("", 0)
                   && am_prefix_valid("a-b.c/d:", 8),
        "prefixes am:, empty, a-b.c/d: accepted");
    am_test_ok(!am_prefix_valid("am{", 3) && !am_prefix_valid("a}", 2)
                   && !am_prefix_valid("a b", 3) && !am_prefix_valid("a\n", 2)
                   && !am_prefix_valid("\xc3\xa9", 2),
        "prefixes with a brace, a space, a control or non-ASCII refused");

    memset(big, 'a', sizeof(big));
    am_test_ok(am_prefix_valid(big, AM_PREFIX_MAX)
                   && !am_prefix_valid(big, AM_PREFIX_MAX + 1),
        "a prefix of %d bytes accepted, one more refused", AM_PREFIX_MAX);

    am_test_ok(am_execution_id_new(id) == 0 && am_execution_id_new(other) == 0
                   && strlen(id) == AM_EXECUTION_ID_LEN
                   && strncmp(id, "exec_", 5) == 0 && strcmp(id, other) != 0,
        "new execution ids: exec_ and hex, each different (%s)", id);
    am_test_ok(
        am_execution_id_valid(id, strlen(id)), "a new execution id is valid");
    am_test_ok(
        !am_execution_id_valid("exec_0123456789abcdef0123456", 28)
            && !am_execution_id_valid("exec_0123456789abcdef0123456A", 29)
            && !am_execution_id_valid("exex_0123456789abcdef01234567", 29),
        "execution ids: short, uppercase, wrong prefix refused");

    am_test_ok(am_run_timeout_valid(1) && am_run_timeout_valid(3600000)
                   && !am_run_timeout_valid(0) && !am_run_timeout_valid(3600001)
                   && !am_run_timeout_valid(-5),
        "run timeouts: 1 to 3600000 ms");
}


static void
am_test_headers(void)
{
    char name[AM_HEADER_NAME_MAX + 1];

    am_test_ok(am_header_name_valid("X-Trace", 7)
                   && am_header_name_valid("a!#$%&'*+-.^_`|~z", 17),
        "header names: tokens accepted");
    am_test_ok(!am_header_name_valid("", 0) && !am_header_name_valid("a:b", 3)
                   && !am_header_name_valid("a b", 3)
                   && !am_header_name_valid("a\0b", 3),
        "header names: empty, ':', space, NUL refused");

    memset(name, 'x', sizeof(name));
    am_test_ok(am_header_name_valid(name, AM_HEADER_NAME_MAX)
                   && !am_header_name_valid(name, AM_HEADER_NAME_MAX + 1),
        "header names: %d bytes at most", AM_HEADER_NAME_MAX);

    am_test_ok(am_header_value_valid("a\tb", 3) && am_header_value_valid("", 0)
                   && !am_header_value_valid("a\r\nb", 4)
                   && !am_header_value_valid("a\x7f", 2),
        "header values: tab accepted, CR LF and DEL refused");

    am_test_ok(am_header_reserved("host", 4)
                   && am_header_reserved("CONTENT-TYPE", 12)
                   && am_header_reserved("Expect", 6)
                   && am_header_reserved("Webhook-Signature", 17)
                   && !am_header_reserved("X-Host", 6)
                   && !am_header_reserved("Hos", 3),
        "reserved headers: any case, whole names only");
}


static void
am_test_opt(void)
{
    char  err[256], path[] = "/tmp/am-test-secret-XXXXXX";
    char *s;
    long  n;
    int   fd;

    n = 7;
    am_test_ok(
        am_opt_long("--db", "12", 0, 15, &n, err, sizeof(err)) == 0 && n == 12,
        "a number in range is read");
    am_test_ok(
        am_opt_long("--db", "16", 0, 15, &n, err, sizeof(err)) != 0
            && strcmp(err, "--db: \"16\" is not a number from 0 to 15") == 0
            && n == 12,
        "a number out of range: %s", err);
    am_test_ok(
        am_opt_long("--db", "99999999999999999999", 0, 15, &n, err, sizeof(err))
                != 0
            && am_opt_long("--db", "1x", 0, 15, &n, err, sizeof(err)) != 0
            && am_opt_long("--db", "", 0, 15, &n, err, sizeof(err)) != 0,
        "overflow, trailing junk and empty refused");

    unsetenv("AM_TEST_NUM");
    am_test_ok(
        am_env_long("AM_TEST_NUM", 0, 9, &n, err, sizeof(err)) == 0 && n == 12,
        "an unset variable leaves the value");
    setenv("AM_TEST_NUM", "3", 1);
    am_test_ok(
        am_env_long("AM_TEST_NUM", 0, 9, &n, err, sizeof(err)) == 1 && n == 3,
        "a set variable is read");
    setenv("AM_TEST_NUM", "30", 1);
    am_test_ok(am_env_long("AM_TEST_NUM", 0, 9, &n, err, sizeof(err)) == -1
                   && strstr(err, "AM_TEST_NUM: \"30\"") == err,
        "a variable out of range: %s", err);

    fd = mkstemp(path);
    if (fd < 0 || write(fd, "pw-1\nrest\n", 10) != 10) {
        am_test_bail("cannot write a temporary file");
    }
    close(fd);

    s = am_opt_secret_file(path, err, sizeof(err));
    am_test_ok(s && strcmp(s, "pw-1") == 0, "a secret file: its first line");
    free(s);

    fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0) {
        am_test_bail("cannot empty a temporary file");
    }
    close(fd);

    am_test_ok(am_opt_secret_file(path, err, sizeof(err)) == NULL
                   && strstr(err, "no secret"),
        "an empty secret file refused: %s", err);
    unlink(path);

    am_test_ok(am_opt_secret_file(path, err, sizeof(err)) == NULL
                   && strstr(err, "No such file"),
        "a missing secret file refused: %s", err);
}


/* The highest n of "WHAT[n]" in the script: the positions it uses. */
static int
am_test_max_index(const am_script_t *s, const char *what)
{
    const char *p;
    size_t      len;
    int         max, n;

    len = strlen(what);
    max = 0;

    for (p = s->body; (p = strstr(p, what)) != NULL; p += len) {
        if (p[len] == '[') {
            n = atoi(p + len + 1);
            max = n > max ? n : max;
        }
    }

    return max;
}


static void
am_test_contracts(void)
{
    static const struct {
        const char *name;
        int         nkeys;
        int         nargs;
    } c[] = {
        {AM_SCRIPT_APIKEY_CREATE, AM_APIKEY_CREATE_NKEYS,
            AM_APIKEY_CREATE_NARGS},
        {AM_SCRIPT_APIKEY_REVOKE, AM_APIKEY_REVOKE_NKEYS,
            AM_APIKEY_REVOKE_NARGS},
        {AM_SCRIPT_AUTOMATION_DELETE, AM_AUTOMATION_DELETE_NKEYS,
            AM_AUTOMATION_DELETE_NARGS},
        {AM_SCRIPT_AUTOMATION_GET, AM_AUTOMATION_GET_NKEYS,
            AM_AUTOMATION_GET_NARGS},
        {AM_SCRIPT_AUTOMATION_LIST, AM_AUTOMATION_LIST_NKEYS,
            AM_AUTOMATION_LIST_NARGS},
        {AM_SCRIPT_EXECUTION_CANCEL, AM_EXECUTION_CANCEL_NKEYS,
            AM_EXECUTION_CANCEL_NARGS},
        {AM_SCRIPT_EXECUTION_COMPLETE, AM_EXECUTION_COMPLETE_NKEYS,
            AM_EXECUTION_COMPLETE_NARGS},
        {AM_SCRIPT_EXECUTION_ENQUEUE, AM_EXECUTION_ENQUEUE_NKEYS,
            AM_EXECUTION_ENQUEUE_NARGS},
        {AM_SCRIPT_EXECUTION_GET, AM_EXECUTION_GET_NKEYS,
            AM_EXECUTION_GET_NARGS},
        {AM_SCRIPT_EXECUTION_LIST, AM_EXECUTION_LIST_NKEYS,
            AM_EXECUTION_LIST_NARGS},
        {AM_SCRIPT_EXECUTION_RESULT, AM_EXECUTION_RESULT_NKEYS,
            AM_EXECUTION_RESULT_NARGS},
        {AM_SCRIPT_EXECUTION_PROGRESS, AM_EXECUTION_PROGRESS_NKEYS,
            AM_EXECUTION_PROGRESS_NARGS},
        {AM_SCRIPT_EXECUTION_RETRY, AM_EXECUTION_RETRY_NKEYS,
            AM_EXECUTION_RETRY_NARGS},
        {AM_SCRIPT_EXECUTION_START, AM_EXECUTION_START_NKEYS,
            AM_EXECUTION_START_NARGS},
        {AM_SCRIPT_PROJECT_CREATE, AM_PROJECT_CREATE_NKEYS,
            AM_PROJECT_CREATE_NARGS},
        {AM_SCRIPT_PROJECT_DELETE, AM_PROJECT_DELETE_NKEYS,
            AM_PROJECT_DELETE_NARGS},
        {AM_SCRIPT_STATS, AM_STATS_NKEYS, AM_STATS_NARGS},
        {AM_SCRIPT_TOKENPAIR_REVOKE, AM_TOKENPAIR_REVOKE_NKEYS,
            AM_TOKENPAIR_REVOKE_NARGS},
        {AM_SCRIPT_WEBHOOK_CLAIM, AM_WEBHOOK_CLAIM_NKEYS,
            AM_WEBHOOK_CLAIM_NARGS},
        {AM_SCRIPT_WEBHOOK_DEAD, AM_WEBHOOK_DEAD_NKEYS, AM_WEBHOOK_DEAD_NARGS},
        {AM_SCRIPT_WEBHOOK_RESEND, AM_WEBHOOK_RESEND_NKEYS,
            AM_WEBHOOK_RESEND_NARGS},
        {AM_SCRIPT_WEBHOOK_RESULT, AM_WEBHOOK_RESULT_NKEYS,
            AM_WEBHOOK_RESULT_NARGS},
        {AM_SCRIPT_WEBHOOK_SECRET, AM_WEBHOOK_SECRET_NKEYS,
            AM_WEBHOOK_SECRET_NARGS},
        {AM_SCRIPT_WORKER_BEAT, AM_WORKER_BEAT_NKEYS, AM_WORKER_BEAT_NARGS},
    };

    const am_script_t *s;
    size_t             i, n;

    for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        s = am_script_find(c[i].name);
        am_test_ok(s && am_test_max_index(s, "KEYS") == c[i].nkeys
                       && am_test_max_index(s, "ARGV") == c[i].nargs,
            "%s: %d KEYS and %d ARGV, as its script uses", c[i].name,
            c[i].nkeys, c[i].nargs);
    }

    /* the variadic ones: their fixed positions come first */
    s = am_script_find(AM_SCRIPT_AUTOMATION_CREATE);
    am_test_ok(s && strstr(s->body, "ARGV[4..]")
                   && AM_AUTOMATION_CREATE_ARG_FIELDS == 3,
        "automation_create: field pairs from ARGV[4]");
    s = am_script_find(AM_SCRIPT_TOKENPAIR_CREATE);
    am_test_ok(s && strstr(s->body, "KEYS[2..n+1]")
                   && strstr(s->body, "ARGV[6..n+5]")
                   && AM_TOKENPAIR_CREATE_KEY_PROJECTS == 1
                   && AM_TOKENPAIR_CREATE_ARG_PROJECTS == 5,
        "tokenpair_create: projects from KEYS[2] and ARGV[6]");

    for (n = 0, s = am_scripts; s->name; s++) {
        n++;
    }
    am_test_ok(n == sizeof(c) / sizeof(c[0]) + 2,
        "every script has its contract (%zu scripts)", n);
}


int
main(void)
{
    if (am_scripts_init() != 0) {
        am_test_bail("cannot digest the scripts");
    }

    am_test_redis_addr();
    am_test_names();
    am_test_headers();
    am_test_opt();
    am_test_contracts();

    return am_test_done();
}
