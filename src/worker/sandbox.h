/*
 * What confines a run, used by run.c. In the child: the worker binary's
 * "--sandbox" exec mode (am_sandbox_main, declared in run.h) sets the
 * limits, when root puts the run in namespaces of its own (mount, PID,
 * IPC, UTS, and network when asked), drops to the run's user and execs the
 * runtime. In the worker: the run's private folder, and the adoption,
 * killing and reaping of every process a run leaves behind.
 */

#ifndef AM_SANDBOX_H
#define AM_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>


typedef struct {
    long  cpu_seconds;
    long  memory_mb;
    long  max_processes;
    long  max_open_files;
    long  max_file_mb;
    int   drop;    /* switch to uid/gid (the worker is root) */
    int   own_uid; /* no other run has this uid */
    uid_t uid;
    gid_t gid;

    /* namespaces, only with drop */
    int         confine;    /* own mount, PID, IPC and UTS namespaces */
    int         no_network; /* and an empty network namespace */
    long        tmp_mb;     /* one tmpfs for /tmp, /dev/shm, the run folder */
    const char *hidden;     /* ':'-separated paths covered by empty ones */

    /* held: once confined, writes AM_SANDBOX_READY on stdout, then waits
       for a byte on stdin before it runs */
    int gate;
} am_sandbox_limits_t;

/* the byte a held run writes on stdout once it waits only for the gate */
#define AM_SANDBOX_READY 'R'


/*
 * The child's argv: self --sandbox <limits> -- cmd..., one malloc'd block
 * to free() once the child is spawned; NULL when out of memory.
 */
char **am_sandbox_argv(
    const char *self, const am_sandbox_limits_t *limits, char **cmd);

/*
 * Makes the run folder under root (mode 0700, owned by the run's user when
 * limits->drop) into dir (PATH_MAX bytes). 0, or -1 with err set.
 */
int am_sandbox_mkdir(const char *root, const am_sandbox_limits_t *limits,
    char *dir, char *err, size_t errlen);

/* Writes a new file, owned by the run's user, into the run folder. */
int am_sandbox_write(const char *dir, const char *name, const char *data,
    size_t len, const am_sandbox_limits_t *limits, char *err, size_t errlen);

/*
 * Removes the run folder and everything the run put in it, whatever its
 * modes and depth, without following symbolic links. 0, or -1.
 */
int am_sandbox_rmtree(const char *path);

/*
 * A worker's own folder for its runs' folders: <root>/am-worker-XXXXXX,
 * made into dir (PATH_MAX bytes), with a file "lock" in it that *lock_fd
 * keeps locked (flock) while the worker lives. First removes the folders of
 * workers that died (their lock is free), which would otherwise keep what
 * their runs were given and made. Returns how many it removed, or -1 with
 * err set.
 */
int am_sandbox_claim(
    const char *root, char *dir, int *lock_fd, char *err, size_t errlen);

/* A worker leaving: its folder goes, then its lock. */
void am_sandbox_release(const char *dir, int lock_fd);

/*
 * Makes the worker the reaper of its runs' orphans, so that it can kill and
 * reap them instead of leaving them to init (which may be the worker itself
 * in a container, or may never reap).
 */
void am_sandbox_adopt_orphans(void);

/*
 * SIGKILLs what is left of a finished run's process group and reaps the
 * members the worker adopted. 1 when the group is gone.
 */
int am_sandbox_reap_group(pid_t pgid);

/*
 * Kills and reaps the worker's children that belong to no live run: run
 * descendants that left their process group (setsid) and were re-parented
 * to the worker. live(pgid, data) says whether pgid is a running run's
 * group. Returns how many such processes were still there.
 */
int am_sandbox_sweep(int (*live)(pid_t pgid, void *data), void *data);

#endif
