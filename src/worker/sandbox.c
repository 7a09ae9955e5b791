/*
 * The confinement of a run: the "--sandbox" exec mode of the worker binary
 * (child side) and the run folder and orphan handling (worker side).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/run.h"
#include "worker/sandbox.h"

/* the child's exit status when the sandbox cannot be set up, or exec fails */
#define AM_SANDBOX_SETUP_FAILED 126
#define AM_SANDBOX_EXEC_FAILED 127

/* the run folder is removed with one open directory per level up to this */
#define AM_SANDBOX_MAX_DEPTH 64
#define AM_SANDBOX_MAX_PASSES 1024

#define AM_SANDBOX_NOPTS 8

/* the last three only when the worker is root and drops privileges */
static const char *am_sandbox_opts[AM_SANDBOX_NOPTS] = {"--cpu", "--memory-mb",
    "--nproc", "--nofile", "--fsize-mb", "--uid", "--gid", "--own-uid"};


/* Reports why the sandbox failed on the run's stderr (its log) and exits. */
static void __attribute__((noreturn, format(printf, 2, 3)))
am_sandbox_fail(int status, const char *fmt, ...)
{
    va_list ap;
    int     e;

    e = errno;

    fprintf(stderr, "sandbox: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s%s\n", e ? ": " : "", e ? strerror(e) : "");

    _exit(status);
}


/* Nothing the worker holds open (Redis, sockets) may reach the automation. */
static void
am_sandbox_close_fds(void)
{
    struct rlimit rl;
    long          fd, max;

#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) {
        return;
    }
#endif

    max = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        max = rl.rlim_cur < (1 << 20) ? (long) rl.rlim_cur : (1 << 20);
    }

    for (fd = 3; fd < max; fd++) {
        (void) close((int) fd);
    }
}


/* The worker ignores SIGPIPE; the automation gets default dispositions. */
static void
am_sandbox_reset_signals(void)
{
    sigset_t set;
    int      sig;

    for (sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            (void) signal(sig, SIG_DFL);
        }
    }

    sigemptyset(&set);
    (void) sigprocmask(SIG_SETMASK, &set, NULL);
}


/* what am_sandbox_orphaned needs, set before its signal can come */
static pid_t am_sandbox_child;
static uid_t am_sandbox_uid;
static gid_t am_sandbox_gid;
static int   am_sandbox_own_uid;


/*
 * The worker died (SIGKILL, a crash) while the run went on. Kill the run:
 * when its user is its own, every process of that user wherever it went
 * (kill(-1) as that user), else the run's process group.
 */
static void
am_sandbox_orphaned(int signo)
{
    pid_t pid;

    (void) signo;

    if (am_sandbox_own_uid) {
        pid = fork();

        if (pid == 0) {
            if (setgid(am_sandbox_gid) == 0 && setuid(am_sandbox_uid) == 0) {
                kill(-1, SIGKILL);
            }
            _exit(0);
        }

        if (pid > 0) {
            waitpid(pid, NULL, 0);
        }
    }

    kill(0, SIGKILL);
    _exit(128 + SIGKILL);
}


/*
 * When the worker is root, the sandbox forks: the child becomes the run,
 * and this process stays, as root, as the run's parent until it exits, so
 * that a worker that dies does not leave its run behind. It then ends the
 * way the run ended, which is what the worker sees. Returns in the child.
 */
static void
am_sandbox_supervise(long uid, long gid, int own_uid)
{
    int              status, fd;
    struct sigaction sa;

    am_sandbox_uid = (uid_t) uid;
    am_sandbox_gid = (gid_t) gid;
    am_sandbox_own_uid = own_uid;

    am_sandbox_child = fork();

    if (am_sandbox_child < 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "fork");
    }

    if (am_sandbox_child == 0) {
        return;
    }

    /* the run's pipes are the run's: EOF on them must not wait for us */
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) {
            close(fd);
        }
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = am_sandbox_orphaned;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);

    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0 || getppid() == 1) {
        am_sandbox_orphaned(SIGTERM);
    }

    while (waitpid(am_sandbox_child, &status, 0) < 0) {
        if (errno != EINTR) {
            _exit(AM_SANDBOX_SETUP_FAILED);
        }
    }

    if (WIFEXITED(status)) {
        _exit(WEXITSTATUS(status));
    }

    /* die of the same signal, so that the worker reports it */
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    signal(WTERMSIG(status), SIG_DFL);
    kill(getpid(), WTERMSIG(status));
    _exit(128 + WTERMSIG(status));
}


/*
 * Parses "--sandbox --opt N ... -- cmd..." into values (in the order of
 * am_sandbox_opts, -1 when absent). Returns the index of cmd, or -1.
 */
static int
am_sandbox_parse(int argc, char **argv, long *values)
{
    char *end;
    int   i, k;

    for (k = 0; k < AM_SANDBOX_NOPTS; k++) {
        values[k] = -1;
    }

    for (i = 2; i < argc; i += 2) {
        if (strcmp(argv[i], "--") == 0) {
            return i + 1 < argc ? i + 1 : -1;
        }

        for (k = 0; k < AM_SANDBOX_NOPTS; k++) {
            if (strcmp(argv[i], am_sandbox_opts[k]) == 0) {
                break;
            }
        }

        if (k == AM_SANDBOX_NOPTS || i + 1 >= argc) {
            return -1;
        }

        errno = 0;
        values[k] = strtol(argv[i + 1], &end, 10);
        if (errno || end == argv[i + 1] || *end != '\0' || values[k] < 0) {
            return -1;
        }
    }

    return -1;
}


/* Sets a limit; without privileges it cannot exceed the current hard one. */
static void
am_sandbox_limit(int resource, const char *name, rlim_t soft, rlim_t hard)
{
    struct rlimit rl;

    if (getrlimit(resource, &rl) == 0 && geteuid() != 0
        && rl.rlim_max != RLIM_INFINITY) {
        soft = soft < rl.rlim_max ? soft : rl.rlim_max;
        hard = hard < rl.rlim_max ? hard : rl.rlim_max;
    }

    rl.rlim_cur = soft;
    rl.rlim_max = hard;

    if (setrlimit(resource, &rl) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "setrlimit(%s)", name);
    }
}


static void
am_sandbox_set_limits(const long *v)
{
    rlim_t cpu;

    /* SIGXCPU at the soft limit, SIGKILL one second later */
    cpu = v[0] > 0 ? (rlim_t) v[0] : 1;
    am_sandbox_limit(RLIMIT_CPU, "CPU", cpu, cpu + 1);

    if (v[1] > 0) {
        am_sandbox_limit(
            RLIMIT_AS, "AS", (rlim_t) v[1] << 20, (rlim_t) v[1] << 20);
    }

    if (v[2] > 0) {
        am_sandbox_limit(RLIMIT_NPROC, "NPROC", v[2], v[2]);
    }

    if (v[3] > 0) {
        am_sandbox_limit(RLIMIT_NOFILE, "NOFILE", v[3], v[3]);
    }

    if (v[4] > 0) {
        am_sandbox_limit(
            RLIMIT_FSIZE, "FSIZE", (rlim_t) v[4] << 20, (rlim_t) v[4] << 20);
    }

    am_sandbox_limit(RLIMIT_CORE, "CORE", 0, 0);
}


/*
 * Becomes the run's user, for good: supplementary groups, then gid, then
 * uid, then a check that root cannot be regained. Fails closed.
 */
static void
am_sandbox_drop(long uid, long gid)
{
    if (uid <= 0 || gid <= 0) {
        errno = 0;
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "refusing to run as root");
    }

    if (setgroups(0, NULL) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "setgroups");
    }

    if (setgid((gid_t) gid) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "setgid(%ld)", gid);
    }

    if (setuid((uid_t) uid) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "setuid(%ld)", uid);
    }

    if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
        errno = 0;
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "still root after setuid");
    }
}


int
am_sandbox_main(int argc, char **argv)
{
    long values[AM_SANDBOX_NOPTS];
    int  cmd;

    if (argc < 2 || strcmp(argv[1], "--sandbox") != 0) {
        return 0;
    }

    am_sandbox_close_fds();
    am_sandbox_reset_signals();
    umask(077);

    errno = 0;
    cmd = am_sandbox_parse(argc, argv, values);
    if (cmd < 0 || argv[cmd][0] != '/') {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "bad arguments");
    }

    am_sandbox_set_limits(values);

    if (values[5] >= 0 || values[6] >= 0) {
        am_sandbox_supervise(values[5], values[6], values[7] == 1);
        am_sandbox_drop(values[5], values[6]);

    } else if (geteuid() == 0 || getuid() == 0) {
        errno = 0;
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "refusing to run as root");
    }

    /* a worker that dies does not leave its run behind (set after setuid,
       which clears it) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "PR_SET_PDEATHSIG");
    }

    /* setuid binaries (su, mount...) stay unprivileged from here on */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "PR_SET_NO_NEW_PRIVS");
    }

    execv(argv[cmd], argv + cmd);
    am_sandbox_fail(AM_SANDBOX_EXEC_FAILED, "cannot execute %s", argv[cmd]);
}


char **
am_sandbox_argv(const char *self, const am_sandbox_limits_t *limits, char **cmd)
{
    size_t n, ncmd, k;
    char **argv, *num;
    long   values[AM_SANDBOX_NOPTS];
    int    nopts;

    values[0] = limits->cpu_seconds;
    values[1] = limits->memory_mb;
    values[2] = limits->max_processes;
    values[3] = limits->max_open_files;
    values[4] = limits->max_file_mb;
    values[5] = (long) limits->uid;
    values[6] = (long) limits->gid;
    values[7] = limits->own_uid;
    nopts = limits->drop ? AM_SANDBOX_NOPTS : AM_SANDBOX_NOPTS - 3;

    for (ncmd = 0; cmd[ncmd] != NULL; ncmd++) {
        /* count */
    }

    /* the pointers, then the numbers' text */
    n = 2 + 2 * AM_SANDBOX_NOPTS + 1 + ncmd + 1;
    argv = malloc(n * sizeof(char *) + AM_SANDBOX_NOPTS * 24);
    if (argv == NULL) {
        return NULL;
    }

    num = (char *) (argv + n);
    n = 0;
    argv[n++] = (char *) self;
    argv[n++] = "--sandbox";

    for (k = 0; k < (size_t) nopts; k++, num += 24) {
        snprintf(num, 24, "%ld", values[k]);
        argv[n++] = (char *) am_sandbox_opts[k];
        argv[n++] = num;
    }

    argv[n++] = "--";

    for (k = 0; k < ncmd; k++) {
        argv[n++] = cmd[k];
    }

    argv[n] = NULL;

    return argv;
}


int
am_sandbox_mkdir(const char *root, const am_sandbox_limits_t *limits, char *dir,
    char *err, size_t errlen)
{
    if ((size_t) snprintf(dir, PATH_MAX, "%s/am-run-XXXXXX", root)
        >= PATH_MAX) {
        snprintf(err, errlen, "run folder path too long");
        return -1;
    }

    if (mkdtemp(dir) == NULL) {
        snprintf(err, errlen, "cannot make a run folder in %s: %s", root,
            strerror(errno));
        return -1;
    }

    if (limits->drop && chown(dir, limits->uid, limits->gid) != 0) {
        snprintf(err, errlen, "cannot chown %s: %s", dir, strerror(errno));
        (void) rmdir(dir);
        return -1;
    }

    return 0;
}


int
am_sandbox_write(const char *dir, const char *name, const char *data,
    size_t len, const am_sandbox_limits_t *limits, char *err, size_t errlen)
{
    char    path[PATH_MAX];
    ssize_t n;
    int     fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd == -1) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }

    while (len > 0) {
        n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            (void) close(fd);
            return -1;
        }
        data += n;
        len -= (size_t) n;
    }

    if ((limits->drop && fchown(fd, limits->uid, limits->gid) != 0)
        || close(fd) != 0) {
        snprintf(err, errlen, "cannot finish %s: %s", path, strerror(errno));
        return -1;
    }

    return 0;
}


/*
 * Opens a subdirectory of the run folder for removal, giving it back the
 * permissions the run may have taken away from its owner.
 */
static int
am_sandbox_open_dir(int dirfd, const char *name)
{
    int fd, flags;

    flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

    fd = openat(dirfd, name, flags);
    if (fd == -1 && errno == EACCES && fchmodat(dirfd, name, 0700, 0) == 0) {
        fd = openat(dirfd, name, flags);
    }

    if (fd != -1) {
        (void) fchmod(fd, 0700);
    }

    return fd;
}


/*
 * Empties directory fd, one open directory per level. Below the depth cap a
 * subdirectory is moved up into the run folder (top) for a later pass, so
 * no tree is too deep and ".." is never followed.
 */
static void
am_sandbox_empty(int top, int fd, int depth, unsigned *moved)
{
    struct dirent *de;
    DIR           *d;
    char           name[32];
    int            sub, dfd;

    dfd = dup(fd);
    if (dfd == -1) {
        return;
    }

    d = fdopendir(dfd);
    if (d == NULL) {
        (void) close(dfd);
        return;
    }

    rewinddir(d);

    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }

        if (unlinkat(fd, de->d_name, 0) == 0 || errno != EISDIR) {
            continue;
        }

        if (depth >= AM_SANDBOX_MAX_DEPTH) {
            snprintf(name, sizeof(name), ".am-deep-%u", (*moved)++);
            (void) renameat(fd, de->d_name, top, name);
            continue;
        }

        sub = am_sandbox_open_dir(fd, de->d_name);
        if (sub == -1) {
            continue;
        }

        am_sandbox_empty(top, sub, depth + 1, moved);
        (void) close(sub);
        (void) unlinkat(fd, de->d_name, AT_REMOVEDIR);
    }

    (void) closedir(d);
}


int
am_sandbox_rmtree(const char *path)
{
    unsigned moved;
    int      top, pass, rc;

    top = am_sandbox_open_dir(AT_FDCWD, path);
    if (top == -1) {
        return errno == ENOENT ? 0 : -1;
    }

    moved = 0;
    rc = -1;

    for (pass = 0; pass < AM_SANDBOX_MAX_PASSES; pass++) {
        am_sandbox_empty(top, top, 0, &moved);

        if (rmdir(path) == 0) {
            rc = 0;
            break;
        }

        if (errno != ENOTEMPTY && errno != EEXIST) {
            break;
        }
    }

    (void) close(top);

    return rc;
}


void
am_sandbox_adopt_orphans(void)
{
    (void) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}


int
am_sandbox_reap_group(pid_t pgid)
{
    int status;

    (void) kill(-pgid, SIGKILL);

    while (waitpid(-pgid, &status, WNOHANG) > 0) {
        /* an adopted member */
    }

    return kill(-pgid, 0) == -1 && errno == ESRCH;
}


/* Kills and reaps the children listed in one thread's children file. */
static int
am_sandbox_sweep_task(
    const char *tid, int (*live)(pid_t pgid, void *data), void *data)
{
    char  path[300];
    FILE *f;
    long  pid;
    pid_t pgid;
    int   n, status;

    snprintf(path, sizeof(path), "/proc/self/task/%s/children", tid);

    f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }

    n = 0;

    while (fscanf(f, "%ld", &pid) == 1) {
        pgid = getpgid((pid_t) pid);

        /* the worker's own helpers, a run's main process or its group */
        if (pgid == -1 || pgid == getpgrp() || live(pgid, data)) {
            continue;
        }

        (void) kill((pid_t) pid, SIGKILL);
        (void) kill(-pgid, SIGKILL);

        if (waitpid((pid_t) pid, &status, WNOHANG) != (pid_t) pid) {
            n++;
        }
    }

    (void) fclose(f);

    return n;
}


int
am_sandbox_sweep(int (*live)(pid_t pgid, void *data), void *data)
{
    struct dirent *de;
    DIR           *d;
    int            n;

    d = opendir("/proc/self/task");
    if (d == NULL) {
        return 0;
    }

    n = 0;

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            n += am_sandbox_sweep_task(de->d_name, live, data);
        }
    }

    (void) closedir(d);

    return n;
}
