/*
 * One automation run: the automation's code executed as a sandboxed child
 * process on the worker's libuv loop, its JSON payload on stdin, its JSON
 * output on stdout, its stderr kept (capped) as the log.
 *
 * The worker must ignore SIGPIPE (am_run_start does so) and must not start
 * child processes of its own in a new session: runs adopt and kill every
 * orphan that belongs to no live run (see sandbox.h).
 */

#ifndef AM_RUN_H
#define AM_RUN_H

#include <stddef.h>
#include <sys/types.h>

#include <uv.h>


typedef struct {
    const char *name;      /* "python", "sh" */
    char      **argv;      /* the command: "{file}" in an element is replaced
                              by the path of the code file, "{dir}" by the run
                              folder; argv[0] is an absolute path */
    const char *file_name; /* the code file in the run folder: "main.py" */
} am_runtime_t;

typedef struct {
    am_runtime_t *runtimes;
    size_t        nruntimes;

    /* zero or NULL in any of these means the default */
    long        max_timeout_ms; /* cap on a run's timeout (3600000) */
    long        cpu_seconds;    /* RLIMIT_CPU (ceil(timeout) + 1) */
    long        memory_mb;      /* RLIMIT_AS (512) */
    long        max_processes;  /* RLIMIT_NPROC of the run's uid (64) */
    long        max_open_files; /* RLIMIT_NOFILE (64) */
    size_t      max_output;     /* bytes of stdout (1 MiB), more is an error */
    size_t      max_log;        /* bytes of stderr kept (64 KiB) */
    const char *tmp_root;       /* parent of the run folders ($TMPDIR, /tmp);
                                   must be searchable by the run's uid */
    uid_t       uid;            /* when the worker is root: the user all */
    gid_t       gid;            /* runs execute as; 0: a user per run */
    const char *self_path;      /* the worker binary, for its sandbox mode
                                   (/proc/self/exe resolved) */
    long tmp_mb;                /* confined: one tmpfs per run for /tmp,
                                   /dev/shm and the run folder, MiB (64) */
    const char *hidden;         /* confined: ':'-separated paths runs see
                                   empty (AM_RUN_HIDDEN); the run folders'
                                   parent is always hidden but for the
                                   run's own folder */
    int unconfined;             /* no namespaces even as root (set by
                                   am_run_confinement when they fail) */
    int python_warm;            /* python runs of the built-in runtime
                                   forked by a warm python parent (see
                                   warm.h); off when 0 */
    long warm_max_parents;      /* warm parents keyed by a preload, at
                                   most (see warm.h); none when 0 */
    long warm_parent_memory_mb; /* the resident memory a keyed warm parent
                                   may have after its imports */
    const char *warm_preload_allow;    /* top-level packages a keyed warm
                                          parent may import, or "*" */
    void (*log)(const char *fmt, ...); /* what the warm parent has to say
                                          (started, died), or NULL */
    int ahead;                         /* the next run's folder is made as
                                          a run ends; tmp_root must be one
                                          that is removed at exit */
} am_run_config_t;

#define AM_RUN_HIDDEN                                                          \
    "/etc/nginx:/etc/automations:/etc/redis:/etc/ssl/private:/root:"           \
    "/run/secrets"

/* the automation's "network": egress allowed (the default), or none */
#define AM_RUN_NETWORK_NONE "none"
#define AM_RUN_NETWORK_DEFAULT "default"

typedef enum { AM_RUN_SUCCESS, AM_RUN_ERROR, AM_RUN_TIMED_OUT } am_run_status_t;

typedef struct {
    am_run_status_t status;
    char           *output; /* compact JSON text, or NULL */
    char           *error;  /* human-readable, or NULL on success */
    char           *log;    /* captured stderr, capped, valid UTF-8 */
    long            execution_time_ms;
    long            execution_time_us; /* the same, finer: for step timing */
    int             exit_code;         /* or -1 */
    int             term_signal;       /* or 0 */
} am_run_result_t;

/* result and its strings are freed by the library when the callback returns */
typedef void (*am_run_cb)(void *data, am_run_result_t *result);

typedef struct am_run_s am_run_t;


/* the longest --run-dir: room is left for the folders below it */
#define AM_RUN_DIR_MAX 1024

/* Where the run folders go: cfg->tmp_root, else $TMPDIR, else /tmp. */
const char *am_run_tmp_root(const am_run_config_t *cfg);


/*
 * Starts a run of code with the named runtime; payload is written to the
 * child's stdin. timeout_ms <= 0 means the configured maximum. network is
 * the automation's: NULL, "" or "default" (the host's network), or "none"
 * (an empty network namespace, when confined). preload is the automation's
 * too: NULL, "", or a JSON array of python module names, which picks the
 * warm parent of a python run (see warm.h). The callback
 * fires exactly once, after the child and everything it started are gone and
 * the run folder is removed. Returns NULL with err set when the run cannot
 * start (unknown runtime, folder or spawn failure); no callback then.
 *
 * A held run is set up (folder, code, sandbox, confinement) but runs
 * nothing of its own, and gets no payload, until am_run_release(); a held
 * run that is cancelled instead ends without having run.
 */
am_run_t *am_run_start(uv_loop_t *loop, const am_run_config_t *cfg,
    const char *runtime, const char *code, size_t code_len, const char *payload,
    size_t payload_len, long timeout_ms, const char *network,
    const char *preload, int held, am_run_cb cb, void *data, char *err,
    size_t errlen);

/*
 * Lets a held run go: its code starts, its payload on stdin; its execution
 * time and its timeout count from here.
 */
void am_run_release(am_run_t *run);

/*
 * Once, at the worker's start: whether runs can be confined, tried with a
 * run of /bin/true in every namespace. When they cannot, or the worker is
 * not root, cfg->unconfined is set and msg says what runs can reach, to be
 * logged; msg is empty when runs are confined. Blocks for the probe run.
 */
void am_run_confinement(am_run_config_t *cfg, char *msg, size_t len);

/*
 * Kills a run's process group, used at shutdown: the callback still fires
 * once, with an error "cancelled" unless the child had already exited. Not
 * to be called once the callback has fired.
 */
void am_run_cancel(am_run_t *run);

/*
 * Removes the folder made ahead for the next run (cfg->ahead), if there is
 * one, and frees its user: before its tmp_root goes, or its configuration.
 */
void am_run_drop_ahead(void);

/* The run's process id, which is also its process group id. */
pid_t am_run_pid(const am_run_t *run);

/* The run's folder, its working directory and HOME, owned by the run. */
const char *am_run_dir(const am_run_t *run);

/*
 * The built-in runtimes, a static array: python
 * (/usr/bin/python3 -I {dir}/python_runner.py {file}, main.py) and sh
 * (/bin/sh {file}, main.sh).
 */
size_t am_run_default_runtimes(am_runtime_t **out);

/*
 * Parses "NAME[:FILE]=CMD ARG..." as given to the worker's --runtime, e.g.
 * "ruby:main.rb=/usr/bin/ruby {file}"; arguments are split on blanks. FILE
 * defaults to main.py for python, main.sh for sh, main otherwise. Returns 0,
 * or -1 with err set. Free rt with am_run_free_runtime.
 */
int am_run_parse_runtime(
    const char *spec, am_runtime_t *rt, char *err, size_t errlen);

void am_run_free_runtime(am_runtime_t *rt);

/*
 * The sandbox exec mode of the worker binary: main() calls this first. When
 * argv[1] is "--sandbox" it applies the limits, drops privileges and execs
 * the runtime, never returning; otherwise it returns 0.
 */
/*
 * Starts the worker's plain warm python parent, when python runs are
 * forked, and calls ready(data) once it is ready or could not be (at once
 * when they are not forked): see am_warm_prestart.
 */
void am_run_warm_prestart(uv_loop_t *loop, const am_run_config_t *cfg,
    void (*ready)(void *data), void                              *data);

int am_sandbox_main(int argc, char **argv);

/*
 * All of the sandbox mode but the exec: in a process that is its own
 * process group's leader and in the run folder, it applies the limits and,
 * as root, leaves a supervisor behind and becomes the run itself, confined
 * and as the run's user, exactly as am_sandbox_main would before its exec.
 * Returns there the index of the runtime's command in argv (0 when argv[1]
 * is not "--sandbox"); exits 126 with the reason on stderr when it cannot.
 * The warm python parent calls it in each run's child (automations-sandbox.so).
 */
int am_sandbox_enter(int argc, char **argv);

/*
 * A run of the warm python parent of a root worker, which gets a
 * supervisor (confined or not: see src/worker/sandbox.c),
 * from the same argv as am_sandbox_enter's, in the run folder dir, with the
 * run's stdin, stdout and stderr: in the parent, returns the supervisor's
 * PID (the run's process group, whose exit status is the run's), or -1
 * with errno set; in the run, returns 0, confined and as the run's user.
 */
int am_sandbox_warm_fork(
    int argc, char **argv, const char *dir, int in, int out, int err);

#endif
