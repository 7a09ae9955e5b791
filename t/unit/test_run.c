/*
 * Tests of src/worker/run.c and sandbox.c, printed as TAP: automations run
 * as real sandboxed children on a libuv loop. This binary is also their
 * sandbox, so main() starts with am_sandbox_main() like the worker's.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "worker/run.h"
#include "worker/sandbox.h"
#include "worker/warm.h"

#include "tap.h"

/* a descriptor the test holds open: no automation may see it */
#define AM_TEST_LEAK_FD 100

/*
 * When root, the runs' user: not nobody, whose process limit is shared with
 * whatever else runs as nobody on the machine, nor one fixed uid, which
 * test runs of other checkouts on the same machine would share; above the
 * worker's run users.
 */
#define AM_TEST_UID_BASE 5000000
#define AM_TEST_UID_SLOTS 1000000


typedef struct {
    int             done;
    pid_t           pid;
    uint64_t        started;
    long            wall_ms;
    int             group_gone;
    am_run_status_t status;
    char           *output;
    char           *error;
    char           *log;
    long            execution_time_ms;
    int             exit_code;
    int             term_signal;
} am_test_run_t;


static char  am_test_err[256];
static uid_t am_test_uid;
static char  am_test_dir[64];
static char  am_test_self[PATH_MAX];

static uv_loop_t      *am_test_loop;
static am_run_config_t am_test_cfg;
static am_runtime_t    am_test_runtimes[4];


/* Prints what a run returned, as TAP comments, when a check failed. */
static void
am_test_diag(const am_test_run_t *t)
{
    printf("#   status %d, exit %d, signal %d, %ld ms\n", (int) t->status,
        t->exit_code, t->term_signal, t->wall_ms);
    printf("#   output: %.300s\n", t->output ? t->output : "(null)");
    printf("#   error: %.300s\n", t->error ? t->error : "(null)");
    printf("#   log: %.600s\n", t->log ? t->log : "(null)");
}


static int
am_test_has(const char *s, const char *needle)
{
    return s != NULL && strstr(s, needle) != NULL;
}


static int
am_test_eq(const char *s, const char *expected)
{
    return s != NULL && strcmp(s, expected) == 0;
}


static char *
am_test_dup(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}


static void
am_test_cb(void *data, am_run_result_t *r)
{
    am_test_run_t *t;

    t = data;

    t->done++;
    t->wall_ms = (long) ((uv_hrtime() - t->started) / 1000000);
    t->group_gone = kill(-t->pid, 0) == -1 && errno == ESRCH;
    t->status = r->status;
    t->output = am_test_dup(r->output);
    t->error = am_test_dup(r->error);
    t->log = am_test_dup(r->log);
    t->execution_time_ms = r->execution_time_ms;
    t->exit_code = r->exit_code;
    t->term_signal = r->term_signal;
}


static am_run_t *
am_test_start_net(am_test_run_t *t, const am_run_config_t *cfg,
    const char *runtime, const char *code, const char *payload, long timeout,
    const char *network, int held)
{
    am_run_t *run;

    memset(t, 0, sizeof(*t));
    t->started = uv_hrtime();
    am_test_err[0] = '\0';

    run = am_run_start(am_test_loop, cfg, runtime, code, strlen(code), payload,
        strlen(payload), timeout, network, NULL, held, am_test_cb, t,
        am_test_err, sizeof(am_test_err));

    if (run != NULL) {
        t->pid = am_run_pid(run);
    }

    return run;
}


static am_run_t *
am_test_start(am_test_run_t *t, const am_run_config_t *cfg, const char *runtime,
    const char *code, const char *payload, long timeout)
{
    return am_test_start_net(t, cfg, runtime, code, payload, timeout, NULL, 0);
}


/* One run to its end; the result is in t. */
static void
am_test_run_cfg(am_test_run_t *t, const am_run_config_t *cfg,
    const char *runtime, const char *code, const char *payload, long timeout)
{
    if (am_test_start(t, cfg, runtime, code, payload, timeout) == NULL) {
        printf("# cannot start: %s\n", am_test_err);
        return;
    }

    uv_run(am_test_loop, UV_RUN_DEFAULT);
}


static void
am_test_run(am_test_run_t *t, const char *runtime, const char *code,
    const char *payload, long timeout)
{
    am_test_run_cfg(t, &am_test_cfg, runtime, code, payload, timeout);
}


static void
am_test_clear(am_test_run_t *t)
{
    free(t->output);
    free(t->error);
    free(t->log);
    memset(t, 0, sizeof(*t));
}


/* A run's result, checked; prints it when anything was off. */
static void
am_test_expect(am_test_run_t *t, const char *name, am_run_status_t status,
    const char *output, const char *error_part)
{
    int ok;

    ok = t->done == 1 && t->status == status && t->group_gone
         && (output == NULL ? t->output == NULL : am_test_eq(t->output, output))
         && (error_part == NULL ? t->error == NULL
                                : am_test_has(t->error, error_part));

    am_test_ok(ok, "%s", name);

    if (!ok) {
        am_test_diag(t);
    }
}


/*
 * How many children this process has. Runs' orphans are re-parented to it,
 * so none means that nothing a run started is left anywhere.
 */
static int
am_test_count_children(void)
{
    struct dirent *de;
    char           path[300];
    DIR           *d;
    FILE          *f;
    long           pid;
    int            n;

    d = opendir("/proc/self/task");
    if (d == NULL) {
        return -1;
    }

    n = 0;

    while ((de = readdir(d)) != NULL) {
        snprintf(path, sizeof(path), "/proc/self/task/%s/children", de->d_name);
        f = de->d_name[0] != '.' ? fopen(path, "r") : NULL;
        while (f != NULL && fscanf(f, "%ld", &pid) == 1) {
            printf("#   child %ld\n", pid);
            n++;
        }
        if (f != NULL) {
            fclose(f);
        }
    }

    closedir(d);

    return n;
}


/* The number after "key": in a JSON text, or -1. */
static long
am_test_json_long(const char *json, const char *key)
{
    char        pattern[64];
    const char *p;

    snprintf(pattern, sizeof(pattern), "\"%s\":", key);

    p = json != NULL ? strstr(json, pattern) : NULL;

    return p != NULL ? strtol(p + strlen(pattern), NULL, 10) : -1;
}


static int
am_test_pid_gone(long pid)
{
    return pid > 0 && kill((pid_t) pid, 0) == -1 && errno == ESRCH;
}


static void
am_test_sh(void)
{
    am_test_run_t t;

    am_test_run(&t, "sh", "cat", "{\"seed\": {\"a\": [1, 2.5, \"x\"]}}", 5000);
    am_test_expect(&t, "sh: stdin JSON echoed back, compacted", AM_RUN_SUCCESS,
        "{\"seed\":{\"a\":[1,2.5,\"x\"]}}", NULL);
    am_test_ok(t.exit_code == 0 && t.term_signal == 0
                   && t.execution_time_ms >= 0 && t.execution_time_ms < 5000,
        "sh: exit code 0, execution time measured");
    am_test_clear(&t);

    am_test_run(&t, "sh", "true", "{}", 5000);
    am_test_expect(
        &t, "empty stdout is the output null", AM_RUN_SUCCESS, "null", NULL);
    am_test_clear(&t);

    am_test_run(&t, "sh", "echo 42", "{}", 5000);
    am_test_expect(&t, "a scalar output", AM_RUN_SUCCESS, "42", NULL);
    am_test_clear(&t);

    am_test_run(&t, "sh", "echo hello", "{}", 5000);
    am_test_expect(&t, "non-JSON output is an error", AM_RUN_ERROR, NULL,
        "output is not JSON: ");
    am_test_clear(&t);

    am_test_run(&t, "sh", "echo '{\"a\": 1} trailing'", "{}", 5000);
    am_test_expect(&t, "JSON followed by garbage is an error", AM_RUN_ERROR,
        NULL, "output is not JSON");
    am_test_clear(&t);

    am_test_run(&t, "sh", "echo 'something failed' >&2\nexit 3", "{}", 5000);
    am_test_expect(&t, "exit 3 is an error with the last line of stderr",
        AM_RUN_ERROR, NULL, "exited with status 3: something failed");
    am_test_ok(t.exit_code == 3 && t.term_signal == 0, "exit 3: exit_code 3");
    am_test_clear(&t);

    am_test_run(&t, "sh", "kill -9 $$", "{}", 5000);
    am_test_expect(
        &t, "a signal is an error", AM_RUN_ERROR, NULL, "killed by signal 9");
    am_test_ok(t.exit_code == -1 && t.term_signal == 9,
        "killed: exit_code -1, term_signal 9");
    am_test_clear(&t);
}


static void
am_test_python(void)
{
    am_test_run_t t;

    /* the Datallog quick start: the seed is the first argument */
    am_test_run(&t, "python",
        "from datallog import core_task\n"
        "\n"
        "\n"
        "@core_task\n"
        "def hello_automation(seed):\n"
        "    message = seed.get(\"message\", \"Hello, World!\")\n"
        "    print(f\"received: {message}\")\n"
        "    return {\"message\": message, \"length\": len(message)}\n",
        "{\"seed\": {\"message\": \"Hello from the API!\"}, \"input\": null, "
        "\"context\": {\"project\": \"my-first-datallog-project\"}}",
        10000);
    am_test_expect(&t, "python: the Datallog example returns its dict",
        AM_RUN_SUCCESS, "{\"message\":\"Hello from the API!\",\"length\":19}",
        NULL);
    am_test_ok(am_test_has(t.log, "received: Hello from the API!")
                   && !am_test_has(t.output, "received"),
        "python: print() goes to the log, not the output");
    am_test_clear(&t);

    /* the PromptQL run: table rows as "input" */
    am_test_run(&t, "python",
        "@core_task()\n"
        "def process(seed, input):\n"
        "    results = [{\"id\": row[\"id\"], \"status\": \"processed\",\n"
        "                \"insights\": \"Customer profile complete\"}\n"
        "               for row in input]\n"
        "    return {\"processed_count\": len(input), \"results\": results}\n",
        "{\"seed\": null, \"input\": [{\"id\": 1, \"name\": \"John Doe\"}, "
        "{\"id\": 2, \"name\": \"Jane Smith\"}], \"context\": {}}",
        10000);
    am_test_expect(&t, "python: builtin @core_task() with (seed, input)",
        AM_RUN_SUCCESS,
        "{\"processed_count\":2,\"results\":[{\"id\":1,\"status\":"
        "\"processed\",\"insights\":\"Customer profile complete\"},{\"id\":2,"
        "\"status\":\"processed\",\"insights\":\"Customer profile "
        "complete\"}]}",
        NULL);
    am_test_clear(&t);

    am_test_run(&t, "python",
        "from automations import core_task\n"
        "@core_task\n"
        "def run(data, rows, *, context):\n"
        "    return [data, len(rows), context[\"who\"]]\n",
        "{\"seed\": {\"s\": 1}, \"input\": [1, 2, 3], "
        "\"context\": {\"who\": \"me\"}}",
        10000);
    am_test_expect(&t, "python: seed and input by position, context by name",
        AM_RUN_SUCCESS, "[{\"s\":1},3,\"me\"]", NULL);
    am_test_clear(&t);

    am_test_run(&t, "python",
        "import subprocess, sys\n"
        "print('from print')\n"
        "sys.stdout.write('from sys.stdout\\n')\n"
        "subprocess.run(['/bin/echo', 'from a subprocess'])\n"
        "output = {'ok': True}\n",
        "{}", 10000);
    am_test_expect(&t, "python: without @core_task the output variable",
        AM_RUN_SUCCESS, "{\"ok\":true}", NULL);
    am_test_ok(am_test_has(t.log, "from print")
                   && am_test_has(t.log, "from sys.stdout")
                   && am_test_has(t.log, "from a subprocess"),
        "python: print, sys.stdout and subprocesses' stdout go to the log");
    am_test_clear(&t);

    am_test_run(&t, "python", "x = 1\n", "", 10000);
    am_test_expect(&t, "python: no task, no output variable: null",
        AM_RUN_SUCCESS, "null", NULL);
    am_test_clear(&t);

    am_test_run(&t, "python",
        "@core_task\n"
        "async def go(seed):\n"
        "    return seed\n",
        "{\"seed\": \"async\"}", 10000);
    am_test_expect(
        &t, "python: an async core task", AM_RUN_SUCCESS, "\"async\"", NULL);
    am_test_clear(&t);

    am_test_run(&t, "python",
        "@core_task\n"
        "def fail(seed):\n"
        "    raise ValueError('boom')\n",
        "{}", 10000);
    am_test_expect(&t, "python: an exception is an error naming it",
        AM_RUN_ERROR, NULL, "exited with status 1: ValueError: boom");
    am_test_ok(t.exit_code == 1 && am_test_has(t.log, "Traceback")
                   && am_test_has(t.log, "main.py\", line 3, in fail")
                   && !am_test_has(t.log, "python_runner"),
        "python: the traceback is in the log, without the runner's frames");
    am_test_clear(&t);

    am_test_run(&t, "python",
        "import sys\n"
        "sys.stderr.write('x' * 200000 + '\\n')\n"
        "raise ValueError('boom')\n",
        "{}", 10000);
    am_test_expect(&t, "python: the exception is named when the log is cut",
        AM_RUN_ERROR, NULL, "ValueError: boom");
    am_test_clear(&t);

    am_test_run(&t, "python", "output = {1, 2}\n", "{}", 10000);
    am_test_expect(&t, "python: a set is not JSON", AM_RUN_ERROR, NULL,
        "TypeError: the output is not JSON: Object of type set");
    am_test_clear(&t);

    am_test_run(&t, "python", "output = float('nan')\n", "{}", 10000);
    am_test_expect(&t, "python: NaN is not JSON", AM_RUN_ERROR, NULL,
        "ValueError: the output is not JSON");
    am_test_clear(&t);

    am_test_run(&t, "python",
        "@core_task\n"
        "def a(seed): pass\n"
        "@core_task\n"
        "def b(seed): pass\n",
        "{}", 10000);
    am_test_expect(&t, "python: two core tasks are refused", AM_RUN_ERROR, NULL,
        "more than one @core_task function: a, b");
    am_test_clear(&t);

    am_test_run(&t, "python", "import sys\nsys.exit(4)\n", "{}", 10000);
    am_test_expect(&t, "python: sys.exit(4) is exit status 4", AM_RUN_ERROR,
        NULL, "exited with status 4");
    am_test_clear(&t);
}


static void
am_test_limits(void)
{
    am_run_config_t cfg;
    am_test_run_t   t;
    long            pid;

    am_test_run(&t, "python", "while True:\n    pass\n", "{}", 1000);
    am_test_expect(&t, "infinite loop: timed out", AM_RUN_TIMED_OUT, NULL,
        "timed out after 1000 ms");
    am_test_ok(t.wall_ms >= 1000 && t.wall_ms < 2500,
        "infinite loop: ended after %ld ms", t.wall_ms);
    am_test_clear(&t);

    cfg = am_test_cfg;
    cfg.max_timeout_ms = 300;
    am_test_run_cfg(&t, &cfg, "sh", "sleep 5", "{}", 60000);
    am_test_expect(&t, "a timeout above the maximum is capped",
        AM_RUN_TIMED_OUT, NULL, "timed out after 300 ms");
    am_test_clear(&t);

    cfg = am_test_cfg;
    cfg.cpu_seconds = 1;
    am_test_run_cfg(&t, &cfg, "python", "while True:\n    pass\n", "{}", 10000);
    am_test_expect(&t, "CPU limit: SIGXCPU", AM_RUN_ERROR, NULL,
        "CPU time limit exceeded");
    am_test_ok(t.term_signal == SIGXCPU && t.wall_ms < 4000,
        "CPU limit: term_signal SIGXCPU after %ld ms", t.wall_ms);
    am_test_clear(&t);

    am_test_run(&t, "python", "b = bytearray(2 * 1024 ** 3)\n", "{}", 10000);
    am_test_expect(
        &t, "memory hog: 2 GB refused", AM_RUN_ERROR, NULL, "MemoryError");
    am_test_clear(&t);

    am_test_run(
        &t, "sh", "head -c 100000000 /dev/zero | tr '\\0' x", "{}", 20000);
    am_test_expect(&t, "100 MB on stdout: output too large", AM_RUN_ERROR, NULL,
        "output too large (limit 1048576 bytes)");
    am_test_ok(
        t.wall_ms < 3000, "100 MB on stdout: stopped after %ld ms", t.wall_ms);
    am_test_clear(&t);

    am_test_run(&t, "sh", "head -c 200000 /dev/zero | tr '\\0' a >&2\necho 1",
        "{}", 5000);
    am_test_expect(&t, "a big log is fine", AM_RUN_SUCCESS, "1", NULL);
    am_test_ok(t.log != NULL && strlen(t.log) == 65536 + 16
                   && am_test_has(t.log, "aaaa\n[log truncated]"),
        "the log is capped at 64 KiB and says so");
    am_test_clear(&t);

    am_test_run(&t, "python",
        "import os\n"
        "while True:\n"
        "    os.fork()\n",
        "{}", 5000);
    am_test_ok(t.done == 1
                   && (t.status == AM_RUN_ERROR || t.status == AM_RUN_TIMED_OUT)
                   && t.group_gone,
        "python fork bomb: %s, no process left",
        t.error ? t.error : "(no error)");
    am_test_clear(&t);

    am_test_run(&t, "sh", "b() { b | b & }\nb\nsleep 5\n", "{}", 1500);
    /* confined, the run ends as soon as its main shell cannot fork */
    am_test_ok(t.done == 1
                   && (t.status == AM_RUN_ERROR || t.status == AM_RUN_TIMED_OUT)
                   && t.group_gone && t.wall_ms < 4000
                   && am_test_has(t.log, "fork"),
        "sh fork bomb: %s after %ld ms, no process left",
        t.error ? t.error : "(no error)", t.wall_ms);
    am_test_clear(&t);

    /* pids a run prints are the test's only when the run is unconfined */
    cfg = am_test_cfg;
    cfg.unconfined = 1;

    am_test_run_cfg(
        &t, &cfg, "sh", "sleep 100 &\necho \"{\\\"pid\\\": $!}\"", "{}", 5000);
    pid = am_test_json_long(t.output, "pid");
    am_test_expect(&t, "background grandchild: the run succeeds",
        AM_RUN_SUCCESS, t.output, NULL);
    am_test_ok(am_test_pid_gone(pid) && t.wall_ms < 3000,
        "background grandchild %ld killed and reaped", pid);
    am_test_clear(&t);

    am_test_run_cfg(&t, &cfg, "sh",
        "setsid sleep 100 >/dev/null 2>&1 &\necho \"{\\\"pid\\\": $!}\"", "{}",
        5000);
    pid = am_test_json_long(t.output, "pid");
    am_test_ok(t.done == 1 && t.status == AM_RUN_SUCCESS
                   && am_test_pid_gone(pid) && t.wall_ms < 3000,
        "setsid escapee %ld killed and reaped", pid);
    am_test_clear(&t);

    am_test_run_cfg(&t, &cfg, "python",
        "import os, time\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        time.sleep(100)\n"
        "        os._exit(0)\n"
        "    os.write(w, str(pid).encode())\n"
        "    os._exit(0)\n"
        "os.close(w)\n"
        "output = {'pid': int(os.read(r, 32))}\n",
        "{}", 5000);
    pid = am_test_json_long(t.output, "pid");
    am_test_ok(t.done == 1 && t.status == AM_RUN_SUCCESS
                   && am_test_pid_gone(pid) && t.wall_ms < 3000,
        "double-forked daemon %ld holding stdout killed and reaped", pid);
    if (!am_test_pid_gone(pid)) {
        am_test_diag(&t);
    }
    am_test_clear(&t);
}


static void
am_test_isolation(void)
{
    am_test_run_t t;
    struct stat   st;
    char          expect[128];

    setenv("AM_TEST_SECRET", "hunter2", 1);

    am_test_run(&t, "sh", "printf '\"%s\"' \"$(env | sort | tr '\\n' ' ')\"",
        "{}", 5000);
    am_test_ok(t.status == AM_RUN_SUCCESS
                   && !am_test_has(t.output, "AM_TEST_SECRET")
                   && am_test_has(t.output, "PATH=/usr/local/bin:/usr/bin:/bin")
                   && am_test_has(t.output, "LANG=C.UTF-8")
                   && am_test_has(t.output, "HOME=/")
                   && am_test_has(t.output, "PYTHONUNBUFFERED=1"),
        "the environment is clean");
    if (t.output != NULL) {
        printf("#   %s\n", t.output);
    }
    am_test_clear(&t);

    am_test_run(&t, "sh", "printf '\"%s\"' \"$PWD\"", "{}", 5000);
    am_test_ok(
        t.status == AM_RUN_SUCCESS && t.output != NULL
            && strncmp(t.output + 1, am_test_dir, strlen(am_test_dir)) == 0,
        "the run's cwd is its folder under tmp_root");
    if (t.output != NULL) {
        t.output[strlen(t.output) - 1] = '\0';
        am_test_ok(stat(t.output + 1, &st) == -1 && errno == ENOENT,
            "the run folder is gone after the callback");
    }
    am_test_clear(&t);

    am_test_run(&t, "sh",
        "mkdir -p a/b/c && echo x > a/b/c/f && chmod 000 a/b/c a/b a\n"
        "ln -s / root-link\n"
        "i=0; while [ $i -lt 80 ]; do mkdir d && cd d; i=$((i+1)); done\n"
        "printf '\"%s\"' \"$HOME\"",
        "{}", 10000);
    if (t.output != NULL) {
        t.output[strlen(t.output) - 1] = '\0';
    }
    am_test_ok(t.status == AM_RUN_SUCCESS && t.output != NULL
                   && stat(t.output + 1, &st) == -1 && errno == ENOENT
                   && stat("/etc/passwd", &st) == 0,
        "a deep, locked folder with a symlink to / is removed, / is not");
    am_test_clear(&t);

    am_test_run(&t, "sh", "ls /proc/$$/fd | tr '\\n' ' ' | sed 's/.*/\"&\"/'",
        "{}", 5000);
    am_test_ok(t.status == AM_RUN_SUCCESS && t.output != NULL
                   && !am_test_has(t.output, "100"),
        "no descriptor of the worker reaches the run: %s",
        t.output ? t.output : "-");
    am_test_clear(&t);

    am_test_run(&t, "sh",
        "printf '[%s, %s, %s, %s]' \"$(ulimit -n)\" \"$(ulimit -v)\" "
        "\"$(ulimit -p)\" \"$(ulimit -c)\"",
        "{}", 5000);
    am_test_expect(&t, "limits: 64 files, 512 MiB, 64 processes, no core",
        AM_RUN_SUCCESS, "[64,524288,64,0]", NULL);
    am_test_clear(&t);

    am_test_run(&t, "sh",
        "printf '\"%s\"' \"$(grep NoNewPrivs /proc/self/status | tr -d "
        "'\\t')\"",
        "{}", 5000);
    am_test_ok(am_test_has(t.output, "NoNewPrivs:1"), "no new privileges: %s",
        t.output ? t.output : "-");
    am_test_clear(&t);

    if (geteuid() == 0) {
        am_test_run(&t, "sh",
            "printf '[%s, %s, \"%s\", \"%s\"]' \"$(id -u)\" \"$(id -g)\" "
            "\"$(id -G)\" \"$(stat -c '%a %u' .)\"",
            "{}", 5000);
        snprintf(expect, sizeof(expect), "[%d,%d,\"%d\",\"700 %d\"]",
            (int) am_test_uid, (int) am_test_uid, (int) am_test_uid,
            (int) am_test_uid);
        am_test_expect(&t, "as root: runs as its user, no groups, 0700 folder",
            AM_RUN_SUCCESS, expect, NULL);
    } else {
        snprintf(expect, sizeof(expect), "[%d]", (int) getuid());
        am_test_run(&t, "sh", "printf '[%s]' \"$(id -u)\"", "{}", 5000);
        am_test_expect(&t, "not root: runs as the worker's user",
            AM_RUN_SUCCESS, expect, NULL);
    }
    am_test_clear(&t);

    am_test_run(&t, "sh", "printf 'a\\377b\\000c' >&2\necho 1", "{}", 5000);
    am_test_ok(am_test_eq(t.log, "a\xef\xbf\xbd"
                                 "b\xef\xbf\xbd"
                                 "c"),
        "the log is made valid UTF-8");
    am_test_clear(&t);
}


/* How many processes of the machine have text in their command line. */
static int
am_test_procs_with(const char *text)
{
    struct dirent *de;
    char           path[300], cmdline[4096];
    DIR           *d;
    size_t         n, i;
    FILE          *f;
    int            found;

    d = opendir("/proc");
    if (d == NULL) {
        return -1;
    }

    found = 0;

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }

        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }

        n = fread(cmdline, 1, sizeof(cmdline) - 1, f);
        fclose(f);

        for (i = 0; i < n; i++) {
            cmdline[i] = cmdline[i] == '\0' ? ' ' : cmdline[i];
        }
        cmdline[n] = '\0';

        found += strstr(cmdline, text) != NULL;
    }

    closedir(d);

    return found;
}


/* A listening socket on 127.0.0.1; its port, or -1. */
static int
am_test_listen(int *fd)
{
    struct sockaddr_in sin;
    socklen_t          len;

    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(sin);

    if (*fd == -1 || bind(*fd, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || listen(*fd, 16) != 0
        || getsockname(*fd, (struct sockaddr *) &sin, &len) != 0) {
        return -1;
    }

    return ntohs(sin.sin_port);
}


/* A run whose output must be exactly expected, its result shown if not. */
static void
am_test_says(const am_run_config_t *cfg, const char *name, const char *code,
    const char *expected)
{
    am_test_run_t t;

    am_test_run_cfg(&t, cfg, "sh", code, "{}", 10000);
    am_test_expect(&t, name, AM_RUN_SUCCESS, expected, NULL);
    am_test_clear(&t);
}


/*
 * As root: each run in its own mount, PID, IPC, UTS (and network)
 * namespaces, with its own tmpfs, the host read-only and secrets hidden.
 */
static void
am_test_confined(void)
{
    am_run_config_t cfg;
    am_test_run_t   t, other;
    struct stat     st;
    char msg[512], code[1024], hide[64], root[64], shm[64], file[80], mark[32];
    int  port, lfd, fd, i;

    cfg = am_test_cfg;
    am_run_confinement(&cfg, msg, sizeof(msg));

    if (geteuid() != 0) {
        am_test_ok(cfg.unconfined && am_test_has(msg, "not root")
                       && am_test_has(msg, "\"network\": \"none\" is not"),
            "not root: runs are not confined, and the log says so: %s", msg);
        return;
    }

    am_test_ok(!cfg.unconfined && msg[0] == '\0',
        "as root: runs can be confined%s%s", msg[0] ? ": " : "", msg);
    if (cfg.unconfined) {
        return;
    }

    cfg.unconfined = 1;
    am_run_confinement(&cfg, msg, sizeof(msg));
    am_test_ok(am_test_has(msg, "runs are not confined (confinement is turned "
                                "off): they see the host's processes"),
        "confinement turned off is said: %s", msg);

    cfg = am_test_cfg;

    snprintf(code, sizeof(code),
        "n=$(ls /proc | grep -c '^[0-9]')\n"
        "[ -e /proc/%d ] && echo '\"the test is visible\"' && exit\n"
        "[ \"$n\" -le 5 ] && grep -q -- --sandbox /proc/1/cmdline "
        "&& echo '\"own processes\"' || ps ax >&2",
        (int) getpid());
    am_test_says(
        &cfg, "a run sees its own processes only", code, "\"own processes\"");

    am_test_says(&cfg, "a run has its own host name",
        "printf '\"%s\"' "
        "\"$(hostname)\"",
        "\"automation\"");

    am_test_says(&cfg, "/tmp and /dev/shm are writable",
        "echo x > /tmp/am-test-mark && echo y > /dev/shm/am-test-mark "
        "&& echo '\"written\"'",
        "\"written\"");
    am_test_ok(stat("/tmp/am-test-mark", &st) == -1 && errno == ENOENT
                   && stat("/dev/shm/am-test-mark", &st) == -1
                   && errno == ENOENT,
        "what a run writes in /tmp and /dev/shm is not the host's");
    am_test_says(&cfg, "nor the next run's",
        "printf '\"%s\"' \"$(ls -A /dev/shm; ls /tmp/am-test-mark 2>&1 "
        "| grep -v 'No such')\"",
        "\"\"");

    cfg.tmp_mb = 4;
    am_test_says(&cfg, "the quota holds in /tmp",
        "head -c 8000000 /dev/zero > /tmp/big 2>/dev/null "
        "&& echo '\"written\"' || echo '\"full\"'",
        "\"full\"");
    am_test_says(&cfg, "and in the run folder",
        "head -c 8000000 /dev/zero > big 2>/dev/null "
        "&& echo '\"written\"' || echo '\"full\"'",
        "\"full\"");
    am_test_says(&cfg, "for both together, with /dev/shm",
        "head -c 2500000 /dev/zero > /tmp/a && head -c 2500000 /dev/zero "
        "> /dev/shm/b 2>/dev/null && echo '\"written\"' || echo '\"full\"'",
        "\"full\"");
    cfg.tmp_mb = 0;

    am_test_says(&cfg, "the host is read-only, even where its mode says not",
        "touch /var/tmp/am-test-$$ 2>/dev/null && echo '\"written\"' "
        "|| echo '\"read-only\"'",
        "\"read-only\"");

    /* a folder and a file a run's user may read, but must not */
    snprintf(hide, sizeof(hide), "/var/tmp/am-test-hide-XXXXXX");
    snprintf(file, sizeof(file), "%s.conf", hide);
    if (mkdtemp(hide) == NULL || chmod(hide, 0755) != 0) {
        am_test_bail("mkdtemp /var/tmp");
    }
    snprintf(file, sizeof(file), "%s.conf", hide);
    snprintf(msg, sizeof(msg), "%s/key", hide);
    fd = open(msg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1 || write(fd, "secret", 6) != 6 || close(fd) != 0) {
        am_test_bail("write the key");
    }
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1 || write(fd, "password", 8) != 8 || close(fd) != 0) {
        am_test_bail("write the conf");
    }

    snprintf(code, sizeof(code),
        "printf '\"%%s\"' \"$(cat %s/key %s 2>/dev/null; ls -A %s)\"", hide,
        file, hide);
    snprintf(msg, sizeof(msg), "%s:%s", hide, file);
    cfg.hidden = msg;
    am_test_says(
        &cfg, "hidden paths: a folder is empty, a file too", code, "\"\"");
    cfg.hidden = "";
    snprintf(msg, sizeof(msg), "\"secretpasswordkey\"");
    am_test_says(
        &cfg, "(which the run reads when they are not hidden)", code, msg);
    cfg.hidden = NULL;
    snprintf(msg, sizeof(msg), "%s/key", hide);
    (void) unlink(msg);
    (void) unlink(file);
    (void) rmdir(hide);

    /*
     * Another run's folder, while it runs, under /tmp, /dev/shm and
     * elsewhere, a folder down (as a worker's folder holds them): /tmp and
     * /dev/shm stay the run's own, and writable.
     */
    snprintf(root, sizeof(root), "/var/tmp/am-test-root-XXXXXX");
    snprintf(shm, sizeof(shm), "/dev/shm/am-test-root-XXXXXX");
    if (mkdtemp(root) == NULL || chmod(root, 0711) != 0 || mkdtemp(shm) == NULL
        || chmod(shm, 0711) != 0) {
        am_test_bail("mkdtemp /var/tmp, /dev/shm");
    }
    fd = open("/dev/shm/am-test-host", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1 || close(fd) != 0) {
        am_test_bail("/dev/shm/am-test-host");
    }

    for (i = 0; i < 3; i++) {
        cfg.tmp_root = i == 0 ? am_test_dir : i == 1 ? shm : root;
        am_test_start(&other, &cfg, "sh", "sleep 1; echo 1", "{}", 10000);
        am_test_start(&t, &cfg, "sh",
            "[ \"$(ls -A ..)\" = \"$(basename \"$PWD\")\" ] "
            "&& [ ! -e /dev/shm/am-test-host ] && touch /dev/shm/x /tmp/x "
            "&& echo '\"alone\"' || ls -la .. /dev/shm >&2",
            "{}", 10000);
        uv_run(am_test_loop, UV_RUN_DEFAULT);
        am_test_expect(&t,
            i == 0   ? "a run sees no other run's folder (in /tmp)"
            : i == 1 ? "a run sees no other run's folder (in /dev/shm)"
                     : "a run sees no other run's folder (elsewhere)",
            AM_RUN_SUCCESS, "\"alone\"", NULL);
        am_test_ok(am_test_eq(other.output, "1"), "while the other one ran");
        am_test_clear(&t);
        am_test_clear(&other);
    }

    (void) unlink("/dev/shm/am-test-host");
    (void) rmdir(root);
    (void) rmdir(shm);
    cfg.tmp_root = am_test_dir;

    port = am_test_listen(&lfd);
    if (port < 0) {
        am_test_bail("listen");
    }

    snprintf(code, sizeof(code),
        "import socket\n"
        "socket.create_connection(('127.0.0.1', %d), 2).close()\n"
        "output = 'connected'\n",
        port);
    am_test_start_net(&t, &cfg, "python", code, "{}", 10000, "default", 0);
    uv_run(am_test_loop, UV_RUN_DEFAULT);
    am_test_expect(&t, "network default: a run connects to the host",
        AM_RUN_SUCCESS, "\"connected\"", NULL);
    am_test_clear(&t);

    am_test_start_net(&t, &cfg, "python", code, "{}", 10000, "none", 0);
    uv_run(am_test_loop, UV_RUN_DEFAULT);
    am_test_expect(&t, "network none: it cannot", AM_RUN_ERROR, NULL,
        "Network is unreachable");
    am_test_clear(&t);
    close(lfd);

    am_test_start_net(&t, &cfg, "sh",
        "printf '\"%s\"' \"$(tail -n +3 /proc/net/dev | cut -d: -f1 "
        "| tr -d ' \\n')\"",
        "{}", 10000, "none", 0);
    uv_run(am_test_loop, UV_RUN_DEFAULT);
    am_test_expect(
        &t, "network none: only lo is there", AM_RUN_SUCCESS, "\"lo\"", NULL);
    am_test_clear(&t);

    am_test_start_net(&t, &cfg, "sh", "true", "{}", 1000, "internet", 0);
    am_test_ok(t.pid == 0
                   && am_test_eq(am_test_err, "unknown network "
                                              "\"internet\""),
        "an unknown network does not start: %s", am_test_err);

    /* sleeps this test can tell from anything else on the machine */
    snprintf(mark, sizeof(mark), "sleep 99.%d", (int) getpid());
    snprintf(
        code, sizeof(code), "%s & %s & setsid %s & echo 1", mark, mark, mark);
    am_test_run(&t, "sh", code, "{}", 5000);
    am_test_ok(t.done == 1 && am_test_eq(t.output, "1")
                   && am_test_procs_with(mark) == 0,
        "what a run left behind is gone with it");
    am_test_clear(&t);
}


static void
am_test_big_payload(void)
{
    am_test_run_t t;
    char         *payload;
    size_t        n;

    n = 1024 * 1024;
    payload = malloc(n + 3);
    if (payload == NULL) {
        am_test_bail("out of memory");
    }

    payload[0] = '"';
    memset(payload + 1, 'p', n);
    payload[n + 1] = '"';
    payload[n + 2] = '\0';

    am_test_run(&t, "sh", "true", payload, 5000);
    am_test_expect(&t, "a 1 MiB payload the code does not read", AM_RUN_SUCCESS,
        "null", NULL);
    am_test_clear(&t);

    payload[n / 2 + 1] = '"';
    payload[n / 2 + 2] = '\0';
    am_test_run(&t, "sh", "cat", payload, 5000);
    am_test_ok(t.status == AM_RUN_SUCCESS && am_test_eq(t.output, payload),
        "a 512 KiB payload echoed back");
    am_test_clear(&t);

    free(payload);
}


static void
am_test_cancel_cb(uv_timer_t *timer)
{
    am_run_cancel(timer->data);
    uv_close((uv_handle_t *) timer, NULL);
}


static void
am_test_release_cb(uv_timer_t *timer)
{
    am_run_release(timer->data);
    uv_close((uv_handle_t *) timer, NULL);
}


/*
 * Held runs: set up, then nothing of the run until am_run_release (the
 * code says "ran" on stderr first thing), or never when cancelled.
 */
static void
am_test_held(void)
{
    am_test_run_t t;
    uv_timer_t    timer;
    am_run_t     *run;
    int           i;

    for (i = 0; i < 2; i++) {
        run = am_test_start_net(
            &t, &am_test_cfg, "sh", "echo ran >&2; cat", "[7]", 5000, NULL, 1);
        if (run == NULL) {
            am_test_ok(0, "held run: cannot start: %s", am_test_err);
            return;
        }

        uv_timer_init(am_test_loop, &timer);
        timer.data = run;
        uv_timer_start(
            &timer, i == 0 ? am_test_release_cb : am_test_cancel_cb, 300, 0);
        uv_run(am_test_loop, UV_RUN_DEFAULT);

        if (i == 0) {
            am_test_expect(&t, "held, then let go: its payload, exactly",
                AM_RUN_SUCCESS, "[7]", NULL);
            am_test_ok(am_test_has(t.log, "ran") && t.wall_ms >= 300,
                "held, then let go: it ran after %ld ms", t.wall_ms);
        } else {
            am_test_expect(&t, "held, then cancelled: an error", AM_RUN_ERROR,
                NULL, "cancelled");
            am_test_ok(!am_test_has(t.log, "ran"),
                "held, then cancelled: nothing of it ran");
        }

        am_test_clear(&t);
    }

    /*
     * Held 600 ms, then let go: the run's time and its timeout (1 s) leave
     * out its wait at the gate, so its own 600 ms sleep neither times out
     * nor counts the wait; its output has nothing of the gate.
     */
    run = am_test_start_net(
        &t, &am_test_cfg, "sh", "sleep 0.6; cat", "[8]", 1000, NULL, 1);
    if (run == NULL) {
        am_test_ok(0, "held run: cannot start: %s", am_test_err);
        return;
    }

    uv_timer_init(am_test_loop, &timer);
    timer.data = run;
    uv_timer_start(&timer, am_test_release_cb, 600, 0);
    uv_run(am_test_loop, UV_RUN_DEFAULT);

    am_test_expect(&t, "held 600 ms with a 1 s timeout, then a 600 ms run",
        AM_RUN_SUCCESS, "[8]", NULL);
    am_test_ok(t.execution_time_ms >= 600 && t.execution_time_ms < 1000
                   && t.wall_ms >= 1200,
        "its execution time leaves out the wait: %ld ms (wall %ld ms)",
        t.execution_time_ms, t.wall_ms);
    am_test_clear(&t);
}


static void
am_test_concurrency(void)
{
    am_test_run_t t[3], c;
    uv_timer_t    timer;
    am_run_t     *run;
    int           i, ok;

    ok = 1;

    for (i = 0; i < 3; i++) {
        ok &= am_test_start(&t[i], &am_test_cfg, i == 1 ? "python" : "sh",
                  i == 1 ? "output = 'py'\n" : "sleep 0.2; cat",
                  i == 0   ? "[0]"
                  : i == 1 ? "{}"
                           : "[2]",
                  5000)
              != NULL;
    }

    uv_run(am_test_loop, UV_RUN_DEFAULT);

    am_test_ok(ok && am_test_eq(t[0].output, "[0]")
                   && am_test_eq(t[1].output, "\"py\"")
                   && am_test_eq(t[2].output, "[2]"),
        "three concurrent runs, each with its own result");
    if (!ok || !am_test_eq(t[1].output, "\"py\"")) {
        for (i = 0; i < 3; i++) {
            am_test_diag(&t[i]);
        }
    }

    for (i = 0; i < 3; i++) {
        am_test_clear(&t[i]);
    }

    run = am_test_start(&c, &am_test_cfg, "sh", "sleep 30", "{}", 60000);
    uv_timer_init(am_test_loop, &timer);
    timer.data = run;
    uv_timer_start(&timer, am_test_cancel_cb, 200, 0);
    uv_run(am_test_loop, UV_RUN_DEFAULT);
    am_test_expect(
        &c, "cancel: an error, once", AM_RUN_ERROR, NULL, "cancelled");
    am_test_ok(c.wall_ms < 2000, "cancel: ended after %ld ms", c.wall_ms);
    am_test_clear(&c);
}


static void
am_test_tick(uv_timer_t *timer)
{
    (void) timer;
}


/* Runs the loop until cond() holds, at most ms; 1 when it held. */
static int
am_test_until(int (*cond)(void), long ms)
{
    uv_timer_t timer;
    uint64_t   end;
    int        ok;

    uv_timer_init(am_test_loop, &timer);
    uv_timer_start(&timer, am_test_tick, 10, 10);

    end = uv_hrtime() + (uint64_t) ms * 1000000;
    while (!(ok = cond()) && uv_hrtime() < end) {
        uv_run(am_test_loop, UV_RUN_ONCE);
    }

    /* the runs under way go on: the timer only has to be closed */
    uv_close((uv_handle_t *) &timer, NULL);
    uv_run(am_test_loop, UV_RUN_NOWAIT);

    return ok;
}


/* What the warm parent's side says, as TAP comments. */
static void
am_test_log(const char *fmt, ...)
{
    va_list ap;

    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}


static int
am_test_warm_ready(void)
{
    return am_warm_pid() != 0;
}


static int
am_test_never(void)
{
    return 0;
}


static int
am_test_no_children(void)
{
    return am_test_count_children() == 0;
}


/* the warm parent imports ctypes, the runner does not */
#define AM_TEST_FORKED "import sys\noutput = 'ctypes' in sys.modules\n"

/*
 * Warm python runs: the first one starts the parent and runs cold, the
 * next ones are forked; a kill before the parent said the run's pid still
 * kills it; a parent killed mid-run fails that run, and the next goes cold.
 */
static void
am_test_warm(void)
{
    am_run_config_t cfg;
    am_test_run_t   t;
    am_run_t       *run;
    char            sandbox[PATH_MAX], *p;
    pid_t           parent;

    snprintf(sandbox, sizeof(sandbox), "%s", am_test_self);
    p = strrchr(sandbox, '/');
    if (p == NULL
        || p - sandbox + sizeof("/../automations-sandbox.so")
               > sizeof(sandbox)) {
        am_test_bail("the sandbox path");
    }
    strcpy(p, "/../automations-sandbox");

    cfg = am_test_cfg;
    cfg.self_path = sandbox;
    cfg.python_warm = 1;
    cfg.log = am_test_log;

    am_test_run_cfg(&t, &cfg, "python", AM_TEST_FORKED, "{}", 10000);
    am_test_expect(
        &t, "warm: the first python run, cold", AM_RUN_SUCCESS, "false", NULL);
    am_test_clear(&t);

    am_test_ok(am_test_until(am_test_warm_ready, 10000),
        "warm: then the parent is ready");
    parent = am_warm_pid();

    am_test_run_cfg(&t, &cfg, "python", AM_TEST_FORKED, "{}", 10000);
    am_test_ok(t.done == 1 && am_test_eq(t.output, "true"),
        "warm: the next one is forked");
    am_test_clear(&t);

    am_test_run_cfg(&t, &cfg, "python", "while True:\n    pass\n", "{}", 500);
    am_test_ok(
        t.done == 1 && t.status == AM_RUN_TIMED_OUT && t.term_signal == SIGKILL,
        "warm: a busy loop times out, killed");
    if (t.status != AM_RUN_TIMED_OUT) {
        am_test_diag(&t);
    }
    am_test_clear(&t);

    run = am_test_start(
        &t, &cfg, "python", "import time\ntime.sleep(30)\n", "{}", 60000);
    am_test_ok(run != NULL && am_run_pid(run) == 0,
        "warm: the pid is not known when the run starts");
    if (run != NULL) {
        am_run_cancel(run);
        uv_run(am_test_loop, UV_RUN_DEFAULT);
    }
    am_test_ok(t.done == 1 && t.status == AM_RUN_ERROR
                   && am_test_eq(t.error, "cancelled") && t.wall_ms < 5000,
        "warm: cancelled before its pid came: killed once it came");
    am_test_clear(&t);

    run = am_test_start(
        &t, &cfg, "python", "import time\ntime.sleep(30)\n", "{}", 60000);
    am_test_until(am_test_never, 300);
    am_test_ok(kill(parent, SIGKILL) == 0, "warm: the parent killed mid-run");
    uv_run(am_test_loop, UV_RUN_DEFAULT);
    am_test_ok(t.done == 1 && t.status == AM_RUN_ERROR
                   && am_test_has(t.error, "warm python parent")
                   && t.wall_ms < 5000,
        "warm: that run fails, once, at once");
    if (t.done != 1 || !am_test_has(t.error, "warm python parent")) {
        am_test_diag(&t);
    }
    am_test_clear(&t);

    am_test_run_cfg(&t, &cfg, "python", AM_TEST_FORKED, "{}", 10000);
    am_test_ok(t.done == 1 && am_test_eq(t.output, "false"),
        "warm: the next run starts cold");
    am_test_clear(&t);

    am_test_ok(am_test_until(am_test_no_children, 5000) && am_warm_pid() == 0,
        "warm: nothing of the parent or its runs is left");
}


static void
am_test_runtimes_config(void)
{
    am_run_config_t cfg;
    am_runtime_t    rt;
    am_test_run_t   t;
    char            err[256];

    am_test_ok(am_run_parse_runtime("ruby:main.rb=/usr/bin/ruby -w {file}", &rt,
                   err, sizeof(err))
                       == 0
                   && am_test_eq(rt.name, "ruby")
                   && am_test_eq(rt.file_name, "main.rb")
                   && am_test_eq(rt.argv[0], "/usr/bin/ruby")
                   && am_test_eq(rt.argv[1], "-w")
                   && am_test_eq(rt.argv[2], "{file}") && rt.argv[3] == NULL,
        "parse: ruby:main.rb=/usr/bin/ruby -w {file}");
    am_run_free_runtime(&rt);

    am_test_ok(am_run_parse_runtime("python=/usr/bin/python3 -I "
                                    "{dir}/python_runner.py {file}",
                   &rt, err, sizeof(err))
                       == 0
                   && am_test_eq(rt.file_name, "main.py"),
        "parse: python gets main.py");
    am_run_free_runtime(&rt);

    am_test_ok(
        am_run_parse_runtime("x=bin/x", &rt, err, sizeof(err)) == -1
            && am_run_parse_runtime("=/bin/x", &rt, err, sizeof(err)) == -1
            && am_run_parse_runtime("x", &rt, err, sizeof(err)) == -1
            && am_run_parse_runtime("x=", &rt, err, sizeof(err)) == -1
            && am_run_parse_runtime("x:../f=/bin/x", &rt, err, sizeof(err))
                   == -1
            && am_run_parse_runtime("x:a/b=/bin/x", &rt, err, sizeof(err)) == -1
            && am_run_parse_runtime("x y=/bin/x", &rt, err, sizeof(err)) == -1,
        "parse: relative commands, bad names and file names refused");

    am_test_start(&t, &am_test_cfg, "ruby", "1", "{}", 1000);
    am_test_ok(t.pid == 0 && am_test_has(am_test_err, "unknown runtime"),
        "an unknown runtime does not start: %s", am_test_err);

    am_test_run(&t, "dirsh", "printf '\"%s\"' \"$0\"", "{}", 5000);
    am_test_ok(t.status == AM_RUN_SUCCESS && am_test_has(t.output, "/run.sh\""),
        "a configured runtime with {dir} and its own file name");
    am_test_clear(&t);

    am_test_run(&t, "ghost", "1", "{}", 5000);
    am_test_expect(&t, "a runtime that cannot be executed", AM_RUN_ERROR, NULL,
        "exited with status 127: sandbox: cannot execute /nonexistent/ghost");
    am_test_clear(&t);

    cfg = am_test_cfg;
    cfg.self_path = "/nonexistent/automations-worker";
    am_test_start(&t, &cfg, "sh", "true", "{}", 1000);
    uv_run(am_test_loop, UV_RUN_DEFAULT);
    am_test_ok(
        t.pid == 0 && t.done == 0 && am_test_has(am_test_err, "cannot start"),
        "a missing worker binary: no run, %s", am_test_err);

    cfg = am_test_cfg;
    cfg.tmp_root = "/nonexistent";
    am_test_start(&t, &cfg, "sh", "true", "{}", 1000);
    am_test_ok(
        t.pid == 0 && am_test_has(am_test_err, "cannot make a run folder"),
        "a missing tmp_root: no run, %s", am_test_err);
}


static void
am_test_setup(void)
{
    am_runtime_t *defaults;
    char          err[256];
    ssize_t       n;
    size_t        i, ndefaults;
    int           fd;

    signal(SIGPIPE, SIG_IGN);

    n = readlink("/proc/self/exe", am_test_self, sizeof(am_test_self) - 1);
    if (n <= 0) {
        am_test_bail("readlink /proc/self/exe");
    }
    am_test_self[n] = '\0';

    snprintf(am_test_dir, sizeof(am_test_dir), "/tmp/am-test-run-XXXXXX");
    if (mkdtemp(am_test_dir) == NULL || chmod(am_test_dir, 0711) != 0) {
        am_test_bail("mkdtemp");
    }

    ndefaults = am_run_default_runtimes(&defaults);
    for (i = 0; i < ndefaults; i++) {
        am_test_runtimes[i] = defaults[i];
    }

    if (am_run_parse_runtime("dirsh:run.sh=/bin/sh {dir}/run.sh",
            &am_test_runtimes[i++], err, sizeof(err))
            != 0
        || am_run_parse_runtime("ghost=/nonexistent/ghost {file}",
               &am_test_runtimes[i++], err, sizeof(err))
               != 0) {
        am_test_bail(err);
    }

    am_test_cfg.runtimes = am_test_runtimes;
    am_test_cfg.nruntimes = i;
    am_test_cfg.tmp_root = am_test_dir;
    am_test_cfg.self_path = am_test_self;
    am_test_uid = AM_TEST_UID_BASE + (uid_t) getpid() % AM_TEST_UID_SLOTS;
    am_test_cfg.uid = am_test_uid;
    am_test_cfg.gid = am_test_uid;

    fd = open("/dev/null", O_RDONLY);
    if (fd == -1 || dup2(fd, AM_TEST_LEAK_FD) == -1) {
        am_test_bail("dup2");
    }
    close(fd);

    am_test_loop = uv_default_loop();
}


/*
 * The folders a worker's start removes under its root: those of workers
 * gone (a lock file nobody holds), never a live worker's (locked), one
 * being made (no lock yet), a link to a folder, or a folder of another
 * user; a file inside a dead worker's folder goes with it.
 */
static void
am_test_claim(void)
{
    char        root[PATH_MAX / 2], path[PATH_MAX], dir[PATH_MAX];
    char        own[PATH_MAX];
    char        err[512];
    const char *names[] = {"am-worker-dead", "am-worker-live", "am-worker-new",
        "am-worker-other", "elsewhere"};
    struct stat st;
    size_t      i;
    int         fd, live, lock, other, swept;

    snprintf(root, sizeof(root), "%s/claim-XXXXXX", am_test_dir);
    if (mkdtemp(root) == NULL) {
        am_test_bail("mkdtemp");
    }

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", root, names[i]);
        if (mkdir(path, 0700) != 0) {
            am_test_bail("mkdir");
        }
    }

    /* the dead: a lock, a run folder with a file; the others: locks */
    live = -1;
    other = -1;
    for (i = 0; i < 5; i++) {
        if (i == 2) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s/lock", root, names[i]);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd == -1) {
            am_test_bail("lock");
        }
        if (i == 1) {
            if (flock(fd, LOCK_EX) != 0) {
                am_test_bail("flock");
            }
            live = fd;
        } else {
            close(fd);
        }
    }
    snprintf(path, sizeof(path), "%s/am-worker-dead/am-run-x", root);
    if (mkdir(path, 0700) != 0) {
        am_test_bail("mkdir");
    }
    snprintf(path, sizeof(path), "%s/am-worker-dead/am-run-x/file", root);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    close(fd);
    snprintf(path, sizeof(path), "%s/am-worker-other", root);
    other = chown(path, am_test_uid, am_test_uid);
    snprintf(path, sizeof(path), "%s/am-worker-link", root);
    snprintf(dir, sizeof(dir), "%s/elsewhere", root);
    if (symlink(dir, path) != 0) {
        am_test_bail("symlink");
    }

    swept = am_sandbox_claim(root, own, &lock, err, sizeof(err));
    am_test_ok(swept == 1, "claim: one dead worker's folder removed (%d) %s",
        swept, swept < 0 ? err : "");

    snprintf(path, sizeof(path), "%s/am-worker-dead", root);
    am_test_ok(lstat(path, &st) == -1 && errno == ENOENT,
        "claim: the dead worker's folder and its run folder are gone");

    for (i = 1; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", root, names[i]);
        am_test_ok(lstat(path, &st) == 0 && S_ISDIR(st.st_mode)
                       && (i != 3 || other == 0),
            "claim: %s stays", names[i]);
    }
    snprintf(path, sizeof(path), "%s/am-worker-link", root);
    am_test_ok(lstat(path, &st) == 0 && S_ISLNK(st.st_mode),
        "claim: a link named like a worker folder stays, and its target");

    am_test_ok(swept >= 0 && strncmp(own, root, strlen(root)) == 0
                   && lstat(own, &st) == 0 && (st.st_mode & 07777) == 0711,
        "claim: its own folder, mode 0711");

    /* a second worker: this one's folder is live */
    snprintf(dir, sizeof(dir), "%s", own);
    swept = am_sandbox_claim(root, own, &fd, err, sizeof(err));
    am_test_ok(swept == 0 && lstat(dir, &st) == 0,
        "claim: a live worker's new folder is left to it");

    am_sandbox_release(own, fd);
    am_sandbox_release(dir, lock);
    am_test_ok(lstat(dir, &st) == -1 && lstat(own, &st) == -1,
        "release: the folders go");

    close(live);
    for (i = 1; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", root, names[i]);
        (void) am_sandbox_rmtree(path);
    }
    snprintf(path, sizeof(path), "%s/am-worker-link", root);
    (void) unlink(path);
    am_test_ok(rmdir(root) == 0, "claim: nothing else left");
}


/* The one entry of folder root into path; how many there are. */
static int
am_test_only_entry(const char *root, char *path, size_t len)
{
    struct dirent *de;
    DIR           *d;
    int            n;

    n = 0;
    path[0] = '\0';
    d = opendir(root);
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            snprintf(path, len, "%s/%s", root, de->d_name);
            n++;
        }
    }
    if (d != NULL) {
        closedir(d);
    }

    return n;
}


/*
 * cfg.ahead: as a run ends, the next run's folder is made, empty, for a
 * user of its own; the next run takes it, and the one after has another.
 */
static void
am_test_ahead(uid_t uid)
{
    static am_run_config_t cfg;
    am_test_run_t          t;
    struct stat            st;
    char                   root[128], made[PATH_MAX], again[PATH_MAX];
    char                   expect[PATH_MAX + 64];
    const char            *code;
    int                    n, ok;

    snprintf(root, sizeof(root), "%s/ahead", am_test_dir);
    if (mkdir(root, 0711) != 0) {
        am_test_ok(0, "ahead: mkdir %s", root);
        return;
    }

    cfg = am_test_cfg;
    cfg.tmp_root = root;
    cfg.uid = uid;
    cfg.gid = uid;
    cfg.ahead = 1;
    code = "printf '\"%s %s\"' \"$PWD\" \"$(id -u)\"";

    am_test_run_cfg(&t, &cfg, "sh", code, "{}", 5000);
    n = am_test_only_entry(root, made, sizeof(made));
    ok = t.status == AM_RUN_SUCCESS && n == 1 && t.output != NULL
         && strncmp(t.output + 1, made, strlen(made)) != 0;
    am_test_ok(ok, "ahead: one folder is ready once a run ended (%d)", n);
    am_test_clear(&t);

    ok = n == 1 && lstat(made, &st) == 0 && S_ISDIR(st.st_mode)
         && (st.st_mode & 07777) == 0700
         && (uid == 0 ? st.st_uid >= 2000000 : st.st_uid == uid)
         && am_test_only_entry(made, again, sizeof(again)) == 0;
    am_test_ok(ok, "ahead: it is empty, 0700, for %s",
        uid == 0 ? "a run user of its own" : "the user configured");

    am_test_run_cfg(&t, &cfg, "sh", code, "{}", 5000);
    snprintf(expect, sizeof(expect), "\"%s %u\"", made, (unsigned) st.st_uid);
    am_test_ok(t.status == AM_RUN_SUCCESS && am_test_eq(t.output, expect),
        "ahead: the next run has it, as its user");
    if (!am_test_eq(t.output, expect)) {
        printf("#   expected %s\n", expect);
        am_test_diag(&t);
    }
    am_test_clear(&t);

    n = am_test_only_entry(root, again, sizeof(again));
    am_test_ok(n == 1 && strcmp(again, made) != 0 && lstat(made, &st) == -1
                   && errno == ENOENT,
        "ahead: that folder went with its run, another is ready");

    /* a run of another configuration makes its own folder */
    am_test_run(&t, "sh", code, "{}", 5000);
    am_test_ok(t.status == AM_RUN_SUCCESS && am_test_has(t.output, am_test_dir)
                   && !am_test_has(t.output, root)
                   && am_test_only_entry(root, made, sizeof(made)) == 1
                   && strcmp(again, made) == 0,
        "ahead: a run of another configuration does not take it");
    am_test_clear(&t);

    am_run_drop_ahead();
    am_test_ok(
        am_test_only_entry(root, again, sizeof(again)) == 0 && rmdir(root) == 0,
        "ahead: am_run_drop_ahead removes it");
}


static void
am_test_cleanup(void)
{
    struct dirent *de;
    DIR           *d;
    int            left;

    left = 0;
    d = opendir(am_test_dir);
    while (d != NULL && (de = readdir(d)) != NULL) {
        left += de->d_name[0] != '.';
    }
    if (d != NULL) {
        closedir(d);
    }

    am_test_ok(
        left == 0 && rmdir(am_test_dir) == 0, "no run folder left in tmp_root");

    am_test_ok(
        am_test_count_children() == 0, "no process started by a run is left");


    am_run_free_runtime(&am_test_runtimes[2]);
    am_run_free_runtime(&am_test_runtimes[3]);
    close(AM_TEST_LEAK_FD);
    uv_loop_close(am_test_loop);
}


int
main(int argc, char **argv)
{
    am_sandbox_main(argc, argv);

    am_test_setup();

    am_test_sh();
    am_test_python();
    am_test_limits();
    am_test_isolation();
    am_test_confined();
    am_test_big_payload();
    am_test_concurrency();
    am_test_held();
    am_test_warm();
    am_test_runtimes_config();
    am_test_claim();
    am_test_ahead(am_test_uid);
    if (geteuid() == 0) {
        am_test_ahead(0);
    }

    am_test_cleanup();

    return am_test_done();
}
