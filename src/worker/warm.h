/*
 * The warm python parent (python_warm.py): one per worker process, started
 * on the first python run and restarted with backoff when it dies, it forks
 * one child per python run instead of a new interpreter. Each child enters
 * the same sandbox as a cold run, with the same arguments, before it reads
 * anything of the run. Used by run.c only.
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
    const char *lib;    /* automations-sandbox.so */
    const char *runner; /* python_runner.py's text */
    void (*log)(const char *fmt, ...);
} am_warm_config_t;

/*
 * Hands a run to the warm parent: argv is the sandbox's (as for a cold
 * run), env the run's environment, dir the run folder, fds its stdin,
 * stdout and stderr (still the caller's to close). 0 when the parent took
 * it; -1 when there is no parent ready (one is then started, unless one
 * died too recently): the caller starts the run cold.
 */
int am_warm_run(uv_loop_t *loop, const am_warm_config_t *cfg,
    am_warm_req_t *req, char **argv, char **env, const char *dir,
    const int *fds);

/* The ready parent's pid, or 0. */
pid_t am_warm_pid(void);

#endif
