/*
 * The warm python parents (python_warm.py): the plain one per worker
 * process, started on the first python run and restarted with backoff when
 * it dies, forks one child per python run instead of a new interpreter.
 * Each child enters the same sandbox as a cold run, with the same
 * arguments, before it reads anything of the run.
 *
 * An automation's "preload" (python module names) gets parents of its own,
 * keyed by the sorted set of names, which import them before their first
 * fork: at most max_parents of them, the least recently used one stopped
 * (once its runs ended) for a new set. A set's first run starts its parent
 * and goes to the plain one meanwhile: no run waits for an import. A set
 * whose import fails, takes too long or leaves its parent over
 * parent_memory_mb is not tried again for a while, and its runs go to the
 * plain parent. Used by run.c only.
 */

#ifndef AM_WARM_H
#define AM_WARM_H

#include <stdint.h>
#include <sys/types.h>

#include <uv.h>


typedef struct am_warm_s     am_warm_t;
typedef struct am_warm_req_s am_warm_req_t;

/*
 * A run handed to the parent. started fires once with the pid of the run's
 * first process (its process group leader, the supervisor when confined);
 * exited fires once with its wait status as waitpid(2) gives it, or with
 * lost set (status 0) when the parent died first: the run is then being
 * killed, its first process with it. exited may come without started.
 */
struct am_warm_req_s {
    am_warm_req_t *next;
    am_warm_t     *parent;
    unsigned       id;
    pid_t          pid;
    void          *data;
    void (*started)(am_warm_req_t *req, pid_t pid);
    void (*exited)(am_warm_req_t *req, int status, int lost);
};

typedef struct {
    const char *lib;       /* automations-sandbox.so */
    const char *runner;    /* python_runner.py's text */
    const char *preload;   /* the run's: a JSON array of module names, or
                              NULL or "" for none */
    const char *allow;     /* top-level packages a parent may import,
                              comma-separated, or "*" for any */
    long max_parents;      /* keyed parents at once; none when 0 */
    long parent_memory_mb; /* a keyed parent's resident memory, at most */
    void (*log)(const char *fmt, ...);
} am_warm_config_t;

/*
 * Hands a run to a warm parent: argv is the sandbox's (as for a cold run),
 * env the run's environment, dir the run folder, fds its stdin, stdout and
 * stderr (still the caller's to close). 0 when a parent took it: the one
 * of cfg->preload when it is ready, else the plain one; -1 when neither is
 * ready (each missing one is then started, unless it failed too recently):
 * the caller starts the run cold.
 */
int am_warm_run(uv_loop_t *loop, const am_warm_config_t *cfg,
    am_warm_req_t *req, char **argv, char **env, const char *dir,
    const int *fds);

/*
 * Starts the plain parent, and calls ready(data) once it is ready, or
 * could not start, or died, or after AM_WARM_PRESTART_MS (at once when it
 * is ready already or cannot start now): a worker that starts with runs
 * queued takes them once they can be forked rather than all cold.
 */
void am_warm_prestart(uv_loop_t *loop, const am_warm_config_t *cfg,
    void (*ready)(void *data), void                           *data);

/* The ready plain parent's pid, or 0. */
pid_t am_warm_pid(void);

#endif
