/*
 * The confinement of a run: the "--sandbox" exec mode of the worker binary
 * (child side) and the run folder and orphan handling (worker side).
 *
 * Confined (the worker is root), a run is three processes: the supervisor,
 * which stays outside as the worker's child; the run's init, PID 1 of the
 * run's namespaces, which sets up its mounts and reaps its orphans; and the
 * run itself, PID 2, as the run's user. The init is not the runtime itself
 * because PID 1 ignores the signals it has no handler for, SIGXCPU and
 * SIGXFSZ among them; when the init exits, the kernel kills whatever is
 * left in the namespace, and the run's mounts go with it.
 */

#define _GNU_SOURCE

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
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/file.h>
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
/* a held run that was not let go */
#define AM_SANDBOX_NOT_RUN 120

/* the run folder is removed with one open directory per level up to this */
#define AM_SANDBOX_MAX_DEPTH 64
#define AM_SANDBOX_MAX_PASSES 1024

/* the run's tmpfs (/tmp, /dev/shm and the run folder) when not given */
#define AM_SANDBOX_TMP_MB 64

/* the sandbox's numeric options, in the order of am_sandbox_opts */
enum {
    AM_SANDBOX_CPU,
    AM_SANDBOX_MEMORY,
    AM_SANDBOX_NPROC,
    AM_SANDBOX_NOFILE,
    AM_SANDBOX_FSIZE,
    AM_SANDBOX_UID, /* from here only when the worker is root */
    AM_SANDBOX_GID,
    AM_SANDBOX_OWN_UID,
    AM_SANDBOX_CONFINE, /* from here only when confined */
    AM_SANDBOX_NO_NETWORK,
    AM_SANDBOX_TMP,
    AM_SANDBOX_GATE, /* given on its own, when the run is held */
    AM_SANDBOX_NOPTS
};

static const char *am_sandbox_opts[AM_SANDBOX_NOPTS] = {"--cpu", "--memory-mb",
    "--nproc", "--nofile", "--fsize-mb", "--uid", "--gid", "--own-uid",
    "--confine", "--no-network", "--tmp-mb", "--gate"};

/* the one option that is not a number: the hidden paths */
#define AM_SANDBOX_HIDE "--hide"

/* argv[1] of the init and the supervisor of a warm confined run */
#define AM_SANDBOX_INIT "--sandbox-init"
#define AM_SANDBOX_SUPERVISE "--sandbox-supervise"


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

static void am_sandbox_watch(int status_fd, pid_t parent)
    __attribute__((noreturn));
static void am_sandbox_warm_exec(int argc, char **argv)
    __attribute__((noreturn));
static void am_sandbox_reap(pid_t run) __attribute__((noreturn));

/* confined: the run's init writes the run's wait status there */
static int am_sandbox_status_fd = -1;


/*
 * The worker died (SIGKILL, a crash) while the run went on. Kill the run:
 * when its user is its own, every process of that user wherever it went
 * (kill(-1) as that user), else the run's process group. Confined, the
 * group holds the run's init, whose end kills the whole namespace.
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


/* dir/name into path (PATH_MAX bytes); a path too long fails the run. */
static void
am_sandbox_join(char *path, const char *dir, const char *name)
{
    if ((size_t) snprintf(path, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "%s", dir);
    }
}


/* Points the standard descriptors at /dev/null. */
static void
am_sandbox_null_stdio(void)
{
    int fd;

    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) {
            close(fd);
        }
    }
}


/*
 * When root, the sandbox forks: the child becomes the run (or, confined,
 * the run's init in the namespaces made here), and this process stays, as
 * root, as the run's parent until it exits, so that a worker that dies
 * does not leave its run behind. It then ends the way the run ended, which
 * is what the worker sees. Returns in the child.
 */
static void
am_sandbox_supervise(long uid, long gid, int own_uid, int ns)
{
    int   fds[2];
    pid_t worker;

    /* not "is it 1": the worker may be PID 1 itself, in a container */
    worker = getppid();

    am_sandbox_uid = (uid_t) uid;
    am_sandbox_gid = (gid_t) gid;
    am_sandbox_own_uid = own_uid;

    fds[0] = -1;

    if (ns) {
        if (pipe2(fds, O_CLOEXEC) != 0) {
            am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "pipe");
        }

        if (unshare(ns) != 0) {
            am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "unshare");
        }
    }

    am_sandbox_child = fork();

    if (am_sandbox_child < 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "fork");
    }

    if (am_sandbox_child == 0) {
        if (ns) {
            close(fds[0]);
            am_sandbox_status_fd = fds[1];
        }
        return;
    }

    if (ns) {
        close(fds[1]);
    }

    am_sandbox_watch(fds[0], worker);
}


/*
 * The supervisor's part once its child (the run, or the run's init when
 * status_fd is not -1) exists: wait for it, and end as the run ended. The
 * parent must be the process "parent" until this process is watching.
 */
static void
am_sandbox_watch(int status_fd, pid_t parent)
{
    int              status, run_status;
    struct sigaction sa;

    /* the run's pipes are the run's: EOF on them must not wait for us */
    am_sandbox_null_stdio();

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = am_sandbox_orphaned;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);

    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0 || getppid() != parent) {
        am_sandbox_orphaned(SIGTERM);
    }

    while (waitpid(am_sandbox_child, &status, 0) < 0) {
        if (errno != EINTR) {
            _exit(AM_SANDBOX_SETUP_FAILED);
        }
    }

    /* the init's own end is the run's only when it could not tell */
    if (status_fd != -1
        && read(status_fd, &run_status, sizeof(run_status))
               == (ssize_t) sizeof(run_status)) {
        status = run_status;
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
 * A tmpfs at path: the run's own (size MiB, mode 0755), or an empty
 * read-only one over a hidden folder (with a mount point named keep in it,
 * when not NULL).
 */
static void
am_sandbox_tmpfs(const char *path, long size_mb, const char *keep)
{
    unsigned long flags;
    char          opts[64], at[PATH_MAX];

    flags = MS_NOSUID | MS_NODEV | (size_mb > 0 ? 0 : MS_NOEXEC);
    snprintf(opts, sizeof(opts), "size=%ldk,mode=0755",
        size_mb > 0 ? size_mb * 1024 : 16);

    if (mount("tmpfs", path, "tmpfs", flags, opts) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "mount tmpfs on %s", path);
    }

    if (size_mb > 0) {
        return;
    }

    if (keep != NULL) {
        am_sandbox_join(at, path, keep);
        if (mkdir(at, 0755) != 0) {
            am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "mkdir %s", at);
        }
    }

    if (mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY | flags, opts) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "remount %s read-only", path);
    }
}


/* Binds the folder open as fd onto path; it keeps fd's mount's flags. */
static void
am_sandbox_bind_fd(int fd, const char *path)
{
    char from[64];

    snprintf(from, sizeof(from), "/proc/self/fd/%d", fd);

    if (mount(from, path, NULL, MS_BIND, NULL) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "bind onto %s", path);
    }
}


/* A folder in the run's tmpfs: made, given its mode, opened (O_PATH). */
static int
am_sandbox_subdir(int dirfd, const char *name, mode_t mode, long uid, long gid)
{
    int fd;

    if (mkdirat(dirfd, name, 0700) != 0
        || (uid >= 0 && fchownat(dirfd, name, (uid_t) uid, (gid_t) gid, 0) != 0)
        || fchmodat(dirfd, name, mode, 0) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "mkdir %s", name);
    }

    fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "open %s", name);
    }

    return fd;
}


/* Copies the files the worker wrote (code, runner) into the run's tmpfs. */
static void
am_sandbox_copy_files(int from, const char *to, long uid, long gid)
{
    struct dirent *de;
    DIR           *d;
    ssize_t        n;
    char           path[PATH_MAX], buf[65536];
    int            in, out, dfd;

    dfd = dup(from);
    d = dfd != -1 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "read the run folder");
    }

    while ((de = readdir(d)) != NULL) {
        if (de->d_type != DT_REG) {
            continue;
        }

        am_sandbox_join(path, to, de->d_name);
        in = openat(from, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (in == -1 || out == -1 || fchown(out, (uid_t) uid, (gid_t) gid)) {
            am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "copy %s", de->d_name);
        }

        while ((n = read(in, buf, sizeof(buf))) > 0) {
            if (write(out, buf, (size_t) n) != n) {
                am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "copy %s", de->d_name);
            }
        }

        close(in);
        if (n < 0 || close(out) != 0) {
            am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "copy %s", de->d_name);
        }
    }

    closedir(d);
}


/* 1 when path is under (or is) the folder top. */
static int
am_sandbox_under(const char *path, const char *top)
{
    size_t n;

    n = strlen(top);

    return strncmp(path, top, n) == 0 && (path[n] == '/' || path[n] == '\0');
}


/*
 * Makes the folders of path below top (/tmp or /dev/shm), in the run's own
 * tmpfs bound there.
 */
static void
am_sandbox_mkdirs(const char *path, const char *top)
{
    char  at[PATH_MAX];
    char *p;

    snprintf(at, sizeof(at), "%s", path);

    for (p = at + strlen(top) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(at, 0755) != 0 && errno != EEXIST) {
            am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "mkdir %s", at);
        }
        *p = '/';
    }

    if (mkdir(at, 0700) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "mkdir %s", at);
    }
}


/*
 * Covers every path of the ':'-separated list with an empty one: an empty
 * read-only tmpfs over a folder, /dev/null over anything else. Paths that
 * do not exist are left alone, as is parent (the run folder's, hidden
 * apart).
 */
static void
am_sandbox_hide(const char *list, const char *parent)
{
    struct stat st;
    const char *p, *end;
    char        path[PATH_MAX];
    size_t      n;

    for (p = list; p != NULL && *p != '\0'; p = *end ? end + 1 : end) {
        end = strchr(p, ':');
        if (end == NULL) {
            end = p + strlen(p);
        }

        n = (size_t) (end - p);
        if (n == 0 || n >= sizeof(path) || p[0] != '/') {
            continue;
        }

        memcpy(path, p, n);
        path[n] = '\0';

        /* a symbolic link is followed: what it points to is hidden */
        if (strcmp(path, parent) == 0 || stat(path, &st) != 0) {
            continue;
        }

        if (S_ISDIR(st.st_mode)) {
            am_sandbox_tmpfs(path, 0, NULL);
            continue;
        }

        if (mount("/dev/null", path, NULL, MS_BIND, NULL) != 0
            || mount(NULL, path, NULL,
                   MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
                       | MS_NOEXEC,
                   NULL)
                   != 0) {
            am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "hide %s", path);
        }
    }
}


/*
 * The run's view of the machine, set up by its init in the new mount
 * namespace: the host read-only, one tmpfs of tmp_mb MiB holding /tmp,
 * /dev/shm and a copy of the run folder (at the same path), the run
 * folder's parent (the other runs' folders) and the hidden paths covered,
 * and a /proc of the run's PID namespace.
 */
static void
am_sandbox_mounts(
    const char *dir, long tmp_mb, const char *hidden, long uid, long gid)
{
    struct mount_attr attr;
    char              parent[PATH_MAX], stage[PATH_MAX];
    const char       *base;
    int               host, top, tmp, shm, run;

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "make / private");
    }

    memset(&attr, 0, sizeof(attr));
    attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID;

    if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof(attr)) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "make / read-only");
    }

    host = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (host == -1) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "open %s", dir);
    }

    /* the tmpfs is staged over the run folder, then its parts are bound */
    am_sandbox_tmpfs(dir, tmp_mb > 0 ? tmp_mb : AM_SANDBOX_TMP_MB, NULL);

    top = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (top == -1) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "open %s", dir);
    }

    tmp = am_sandbox_subdir(top, "tmp", 01777, -1, -1);
    shm = am_sandbox_subdir(top, "shm", 01777, -1, -1);
    run = am_sandbox_subdir(top, "run", 0700, uid, gid);

    am_sandbox_join(stage, dir, "run");
    am_sandbox_copy_files(host, stage, uid, gid);
    close(host);

    am_sandbox_bind_fd(tmp, "/tmp");
    am_sandbox_bind_fd(shm, "/dev/shm");

    snprintf(parent, sizeof(parent), "%s", dir);
    base = strrchr(parent, '/');
    if (base == NULL || base == parent) {
        errno = 0;
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "bad run folder %s", dir);
    }
    parent[base - parent] = '\0';
    base = dir + (base - parent) + 1;

    am_sandbox_hide(hidden, parent);

    /*
     * Under a folder that is now the run's own, the path to the run folder
     * is made in it; elsewhere the parent is covered, but for the folder.
     */
    if (am_sandbox_under(dir, "/tmp")) {
        am_sandbox_mkdirs(dir, "/tmp");
    } else if (am_sandbox_under(dir, "/dev/shm")) {
        am_sandbox_mkdirs(dir, "/dev/shm");
    } else {
        am_sandbox_tmpfs(parent, 0, base);
    }

    am_sandbox_bind_fd(run, dir);
    close(tmp);
    close(shm);
    close(run);
    close(top);

    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)
        != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "mount /proc");
    }
}


/*
 * What the run's init does before the run exists: the mounts, the host
 * name, and the run folder (the working directory it started in) as its
 * working directory again, now the run's tmpfs.
 */
static void
am_sandbox_ns_setup(long tmp_mb, const char *hidden, long uid, long gid)
{
    char dir[PATH_MAX];

    /* the worker started the sandbox in the run folder */
    if (getcwd(dir, sizeof(dir)) == NULL || dir[0] != '/') {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "getcwd");
    }

    /* the modes of what the mounts make are the ones asked for */
    umask(0);
    am_sandbox_mounts(dir, tmp_mb, hidden, uid, gid);
    umask(077);

    if (sethostname("automation", sizeof("automation") - 1) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "sethostname");
    }

    if (chdir(dir) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "chdir %s", dir);
    }
}


/*
 * The run's init (PID 1 of its namespaces): after the mounts, it forks the
 * run, which returns, and reaps every process of the namespace until the
 * run exits; it then hands the run's status to the supervisor and exits,
 * which ends the rest.
 */
static void
am_sandbox_init(long tmp_mb, const char *hidden, long uid, long gid)
{
    pid_t run;

    /* the supervisor is outside the namespace: it may go at any time */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "PR_SET_PDEATHSIG");
    }

    am_sandbox_ns_setup(tmp_mb, hidden, uid, gid);

    run = fork();

    if (run < 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "fork");
    }

    if (run == 0) {
        close(am_sandbox_status_fd);
        return;
    }

    am_sandbox_reap(run);
}


/*
 * The init's part once the run exists: reap every process of the
 * namespace until the run exits, hand the run's status to the supervisor
 * and exit, which ends the rest.
 */
static void
am_sandbox_reap(pid_t run)
{
    pid_t pid;
    int   status;

    am_sandbox_null_stdio();

    for (;;) {
        pid = waitpid(-1, &status, 0);

        if (pid == run) {
            if (write(am_sandbox_status_fd, &status, sizeof(status)) < 0) {
                _exit(AM_SANDBOX_SETUP_FAILED);
            }
            _exit(0);
        }

        if (pid < 0 && errno != EINTR) {
            _exit(AM_SANDBOX_SETUP_FAILED);
        }
    }
}


/*
 * Parses "--sandbox --opt N ... [--hide LIST] -- cmd..." into values (in
 * the order of am_sandbox_opts, -1 when absent) and hidden. Returns the
 * index of cmd, or -1.
 */
static int
am_sandbox_parse(int argc, char **argv, long *values, const char **hidden)
{
    char *end;
    int   i, k;

    for (k = 0; k < AM_SANDBOX_NOPTS; k++) {
        values[k] = -1;
    }

    *hidden = NULL;

    for (i = 2; i < argc; i += 2) {
        if (strcmp(argv[i], "--") == 0) {
            return i + 1 < argc ? i + 1 : -1;
        }

        if (i + 1 >= argc) {
            return -1;
        }

        if (strcmp(argv[i], AM_SANDBOX_HIDE) == 0) {
            *hidden = argv[i + 1];
            continue;
        }

        for (k = 0; k < AM_SANDBOX_NOPTS; k++) {
            if (strcmp(argv[i], am_sandbox_opts[k]) == 0) {
                break;
            }
        }

        if (k == AM_SANDBOX_NOPTS) {
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


/*
 * A held run (--gate 1) waits here, confined and as its user, before
 * anything of the run executes. It first says it is ready: the byte
 * AM_SANDBOX_READY on stdout, which the worker takes off the output and
 * which tells it from when the run only waited. Then the worker sends one
 * byte on stdin when the run may go (its payload follows), or closes stdin
 * when it may not (cancelled meanwhile, finished by another worker), and
 * the run ends here without having run.
 */
static void
am_sandbox_gate(void)
{
    char    c;
    ssize_t n;

    c = AM_SANDBOX_READY;
    do {
        n = write(1, &c, 1);
    } while (n == -1 && errno == EINTR);

    if (n != 1) {
        _exit(AM_SANDBOX_NOT_RUN);
    }

    do {
        n = read(0, &c, 1);
    } while (n == -1 && errno == EINTR);

    if (n != 1) {
        _exit(AM_SANDBOX_NOT_RUN);
    }
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
    cpu = v[AM_SANDBOX_CPU] > 0 ? (rlim_t) v[AM_SANDBOX_CPU] : 1;
    am_sandbox_limit(RLIMIT_CPU, "CPU", cpu, cpu + 1);

    if (v[AM_SANDBOX_MEMORY] > 0) {
        am_sandbox_limit(RLIMIT_AS, "AS", (rlim_t) v[AM_SANDBOX_MEMORY] << 20,
            (rlim_t) v[AM_SANDBOX_MEMORY] << 20);
    }

    if (v[AM_SANDBOX_NPROC] > 0) {
        am_sandbox_limit(
            RLIMIT_NPROC, "NPROC", v[AM_SANDBOX_NPROC], v[AM_SANDBOX_NPROC]);
    }

    if (v[AM_SANDBOX_NOFILE] > 0) {
        am_sandbox_limit(RLIMIT_NOFILE, "NOFILE", v[AM_SANDBOX_NOFILE],
            v[AM_SANDBOX_NOFILE]);
    }

    if (v[AM_SANDBOX_FSIZE] > 0) {
        am_sandbox_limit(RLIMIT_FSIZE, "FSIZE",
            (rlim_t) v[AM_SANDBOX_FSIZE] << 20,
            (rlim_t) v[AM_SANDBOX_FSIZE] << 20);
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
am_sandbox_enter(int argc, char **argv)
{
    long        v[AM_SANDBOX_NOPTS];
    const char *hidden;
    int         cmd, ns;

    if (argc < 2 || strcmp(argv[1], "--sandbox") != 0) {
        return 0;
    }

    am_sandbox_close_fds();
    am_sandbox_reset_signals();
    umask(077);

    errno = 0;
    cmd = am_sandbox_parse(argc, argv, v, &hidden);
    if (cmd < 0 || argv[cmd][0] != '/') {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "bad arguments");
    }

    am_sandbox_set_limits(v);

    if (v[AM_SANDBOX_UID] >= 0 || v[AM_SANDBOX_GID] >= 0) {
        ns = 0;
        if (v[AM_SANDBOX_CONFINE] == 1) {
            ns = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
                 | (v[AM_SANDBOX_NO_NETWORK] == 1 ? CLONE_NEWNET : 0);
        }

        am_sandbox_supervise(v[AM_SANDBOX_UID], v[AM_SANDBOX_GID],
            v[AM_SANDBOX_OWN_UID] == 1, ns);

        if (ns) {
            am_sandbox_init(v[AM_SANDBOX_TMP], hidden, v[AM_SANDBOX_UID],
                v[AM_SANDBOX_GID]);
        }

        am_sandbox_drop(v[AM_SANDBOX_UID], v[AM_SANDBOX_GID]);

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

    if (v[AM_SANDBOX_GATE] == 1) {
        am_sandbox_gate();
    }

    return cmd;
}


int
am_sandbox_main(int argc, char **argv)
{
    int cmd;

    if (argc > 1
        && (strcmp(argv[1], AM_SANDBOX_INIT) == 0
            || strcmp(argv[1], AM_SANDBOX_SUPERVISE) == 0)) {
        am_sandbox_warm_exec(argc, argv);
    }

    cmd = am_sandbox_enter(argc, argv);
    if (cmd == 0) {
        return 0;
    }

    execv(argv[cmd], argv + cmd);
    am_sandbox_fail(AM_SANDBOX_EXEC_FAILED, "cannot execute %s", argv[cmd]);
}


/*
 * Warm runs of a root worker. The warm python parent cannot afford the three
 * copies of its heap that am_sandbox_enter's forks would make (supervisor,
 * init, run): am_sandbox_warm_fork makes the same three processes with one
 * copy. The supervisor is a vfork() of the parent and the init a vfork() of
 * the supervisor, both running on the parent's memory (which stands still
 * meanwhile) and making no change to it; the init forks the run, the one
 * copy, and then the init and the supervisor each execute this program in
 * the role they have ("--sandbox-init", "--sandbox-supervise"), which lets
 * the parent go on. The run returns from am_sandbox_warm_fork as a fork()
 * child returns from fork(), confined and as the run's user, as
 * am_sandbox_enter leaves it. Unconfined (a root worker's --no-confine)
 * there is no init: the supervisor forks the run itself.
 */

/* what the parent prepares before its vfork(), for all three */
typedef struct {
    const char *dir;
    int         fds[3];
    long        v[AM_SANDBOX_NOPTS];
    const char *hidden;
    int         ns;
    int         self; /* this program, opened before any mount hides it */
    char       *init_argv[4];
    char       *supervise_argv[7];
    char        num[5][24];
} am_sandbox_warm_t;

static am_sandbox_warm_t am_sandbox_warm;

#define AM_SANDBOX_WARM_RUN 1


/*
 * Executes this program in another role. By the descriptor opened before
 * the namespaces' mounts: those cover /tmp, /dev/shm and the hidden paths,
 * where the program may live (a build under /tmp).
 */
static void am_sandbox_warm_exec_self(am_sandbox_warm_t *w, char **argv)
    __attribute__((noreturn));

static void
am_sandbox_warm_exec_self(am_sandbox_warm_t *w, char **argv)
{
    char *env[] = {NULL};

#ifdef SYS_execveat
    (void) syscall(SYS_execveat, w->self, "", argv, env, AT_EMPTY_PATH);
#endif
    execve(argv[0], argv, env);
    am_sandbox_fail(AM_SANDBOX_EXEC_FAILED, "cannot execute %s", argv[0]);
}


/* The init, a vfork() child of the supervisor: PID 1 of the namespaces. */
static int __attribute__((noinline))
am_sandbox_warm_init(am_sandbox_warm_t *w, int status_fd)
{
    pid_t run;

    /* the supervisor is outside the namespace: it may go at any time */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "PR_SET_PDEATHSIG");
    }

    am_sandbox_ns_setup(w->v[AM_SANDBOX_TMP], w->hidden, w->v[AM_SANDBOX_UID],
        w->v[AM_SANDBOX_GID]);

    run = _Fork();

    if (run < 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "fork");
    }

    if (run == 0) {
        return AM_SANDBOX_WARM_RUN;
    }

    snprintf(w->num[4], sizeof(w->num[4]), "%ld", (long) run);

    if (dup2(status_fd, 3) != 3) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "dup2");
    }

    am_sandbox_warm_exec_self(w, w->init_argv);
}


/* The supervisor, a vfork() child of the parent. */
static int __attribute__((noinline))
am_sandbox_warm_supervisor(am_sandbox_warm_t *w)
{
    pid_t init;
    int   k, high[3], status[2];

    (void) setsid();

    /* the run's descriptors as 0, 1 and 2, whatever their numbers were */
    for (k = 0; k < 3; k++) {
        high[k] = fcntl(w->fds[k], F_DUPFD_CLOEXEC, 10);
        if (high[k] < 0) {
            _exit(AM_SANDBOX_SETUP_FAILED);
        }
    }

    for (k = 0; k < 3; k++) {
        if (dup2(high[k], k) != k) {
            _exit(AM_SANDBOX_SETUP_FAILED);
        }
    }

    if (chdir(w->dir) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "chdir %s", w->dir);
    }

    /* unconfined (--no-confine): no init, the supervisor forks the run and
       waits for it itself, without a status pipe on fd 3 */
    if (w->ns == 0) {
        init = _Fork();

        if (init == 0) {
            return AM_SANDBOX_WARM_RUN;
        }

        if (init < 0) {
            am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "fork");
        }

        (void) close(3);
        am_sandbox_warm_exec_self(w, w->supervise_argv);
    }

    if (pipe2(status, O_CLOEXEC) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "pipe");
    }

    if (unshare(w->ns | CLONE_NEWPID) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "unshare");
    }

    init = vfork();

    if (init == 0) {
        return am_sandbox_warm_init(w, status[1]);
    }

    if (init < 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "vfork");
    }

    if (dup2(status[0], 3) != 3) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "dup2");
    }

    am_sandbox_warm_exec_self(w, w->supervise_argv);
}


/* The run, the init's _Fork() child: what am_sandbox_enter leaves. */
static int
am_sandbox_warm_run(am_sandbox_warm_t *w)
{
    am_sandbox_close_fds();
    am_sandbox_reset_signals();
    umask(077);
    am_sandbox_set_limits(w->v);
    am_sandbox_drop(w->v[AM_SANDBOX_UID], w->v[AM_SANDBOX_GID]);

    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "PR_SET_PDEATHSIG");
    }

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "PR_SET_NO_NEW_PRIVS");
    }

    if (w->v[AM_SANDBOX_GATE] == 1) {
        am_sandbox_gate();
    }

    return 0;
}


int
am_sandbox_warm_fork(
    int argc, char **argv, const char *dir, int in, int out, int err)
{
    am_sandbox_warm_t *w;
    sigset_t           all, old;
    pid_t              pid;
    int                cmd, k, e;

    w = &am_sandbox_warm;
    memset(w, 0, sizeof(*w));

    errno = 0;
    cmd = argc > 1 ? am_sandbox_parse(argc, argv, w->v, &w->hidden) : -1;
    if (cmd < 0 || argv[cmd][0] != '/' || w->v[AM_SANDBOX_UID] <= 0
        || w->v[AM_SANDBOX_GID] <= 0) {
        errno = EINVAL;
        return -1;
    }

    w->dir = dir;
    w->fds[0] = in;
    w->fds[1] = out;
    w->fds[2] = err;
    w->ns = w->v[AM_SANDBOX_CONFINE] != 1
                ? 0
                : CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
                      | (w->v[AM_SANDBOX_NO_NETWORK] == 1 ? CLONE_NEWNET : 0);

    snprintf(w->num[0], sizeof(w->num[0]), "%ld", (long) getpid());
    snprintf(w->num[1], sizeof(w->num[1]), "%ld", w->v[AM_SANDBOX_UID]);
    snprintf(w->num[2], sizeof(w->num[2]), "%ld", w->v[AM_SANDBOX_GID]);
    snprintf(w->num[3], sizeof(w->num[3]), "%d", w->v[AM_SANDBOX_OWN_UID] == 1);

    w->init_argv[0] = argv[0];
    w->init_argv[1] = AM_SANDBOX_INIT;
    w->init_argv[2] = w->num[4];
    w->init_argv[3] = NULL;

    w->supervise_argv[0] = argv[0];
    w->supervise_argv[1] = AM_SANDBOX_SUPERVISE;
    for (k = 0; k < 4; k++) {
        w->supervise_argv[2 + k] = w->num[k];
    }
    w->supervise_argv[6] = NULL;

    /* above the descriptors the supervisor and the init put in place */
    k = open(argv[0], O_PATH | O_CLOEXEC);
    w->self = k < 0 ? -1 : fcntl(k, F_DUPFD_CLOEXEC, 10);
    e = errno;
    if (k >= 0) {
        (void) close(k);
    }
    if (w->self < 0) {
        errno = e;
        return -1;
    }

    /* none of the parent's handlers may run on its memory in the vfork()
       children; the run starts with all signals blocked, and unblocks them */
    sigfillset(&all);
    (void) sigprocmask(SIG_SETMASK, &all, &old);

    pid = vfork();

    if (pid == 0) {
        if (am_sandbox_warm_supervisor(&am_sandbox_warm)
            == AM_SANDBOX_WARM_RUN) {
            return am_sandbox_warm_run(&am_sandbox_warm);
        }
        _exit(AM_SANDBOX_SETUP_FAILED);
    }

    e = errno;
    (void) sigprocmask(SIG_SETMASK, &old, NULL);
    (void) close(w->self);
    errno = e;

    return pid;
}


/*
 * The init ("--sandbox-init RUN-PID", the status pipe on fd 3) and the
 * supervisor ("--sandbox-supervise PARENT UID GID OWN-UID", the status
 * pipe on fd 3) of a warm confined run, once executed.
 */
static void
am_sandbox_warm_exec(int argc, char **argv)
{
    char *end;
    long  n[4];
    int   k, count;

    count = strcmp(argv[1], AM_SANDBOX_INIT) == 0 ? 1 : 4;

    errno = 0;
    if (argc != 2 + count) {
        am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "bad arguments");
    }

    for (k = 0; k < count; k++) {
        n[k] = strtol(argv[2 + k], &end, 10);
        if (errno || end == argv[2 + k] || *end != '\0' || n[k] < 0) {
            am_sandbox_fail(AM_SANDBOX_SETUP_FAILED, "bad arguments");
        }
    }

#ifdef SYS_close_range
    (void) syscall(SYS_close_range, 4U, ~0U, 0U);
#endif
    am_sandbox_reset_signals();

    if (count == 1) {
        am_sandbox_status_fd = 3;
        am_sandbox_reap((pid_t) n[0]);
    }

    am_sandbox_uid = (uid_t) n[1];
    am_sandbox_gid = (gid_t) n[2];
    am_sandbox_own_uid = n[3] == 1;
    am_sandbox_child = -1;

    am_sandbox_watch(3, (pid_t) n[0]);
}


char **
am_sandbox_argv(const char *self, const am_sandbox_limits_t *limits, char **cmd)
{
    size_t n, ncmd, k;
    char **argv, *num;
    long   v[AM_SANDBOX_NOPTS];
    int    nopts;

    v[AM_SANDBOX_CPU] = limits->cpu_seconds;
    v[AM_SANDBOX_MEMORY] = limits->memory_mb;
    v[AM_SANDBOX_NPROC] = limits->max_processes;
    v[AM_SANDBOX_NOFILE] = limits->max_open_files;
    v[AM_SANDBOX_FSIZE] = limits->max_file_mb;
    v[AM_SANDBOX_UID] = (long) limits->uid;
    v[AM_SANDBOX_GID] = (long) limits->gid;
    v[AM_SANDBOX_OWN_UID] = limits->own_uid;
    v[AM_SANDBOX_CONFINE] = 1;
    v[AM_SANDBOX_NO_NETWORK] = limits->no_network ? 1 : 0;
    v[AM_SANDBOX_TMP] = limits->tmp_mb;

    nopts = !limits->drop      ? AM_SANDBOX_UID
            : !limits->confine ? AM_SANDBOX_CONFINE
                               : AM_SANDBOX_GATE;

    for (ncmd = 0; cmd[ncmd] != NULL; ncmd++) {
        /* count */
    }

    /* the pointers, then the numbers' text */
    n = 2 + 2 * AM_SANDBOX_NOPTS + 2 + 1 + ncmd + 1;
    argv = malloc(n * sizeof(char *) + AM_SANDBOX_NOPTS * 24);
    if (argv == NULL) {
        return NULL;
    }

    num = (char *) (argv + n);
    n = 0;
    argv[n++] = (char *) self;
    argv[n++] = "--sandbox";

    for (k = 0; k < (size_t) nopts; k++, num += 24) {
        snprintf(num, 24, "%ld", v[k]);
        argv[n++] = (char *) am_sandbox_opts[k];
        argv[n++] = num;
    }

    if (limits->drop && limits->confine && limits->hidden != NULL
        && limits->hidden[0] != '\0') {
        argv[n++] = AM_SANDBOX_HIDE;
        argv[n++] = (char *) limits->hidden;
    }

    if (limits->gate) {
        argv[n++] = (char *) am_sandbox_opts[AM_SANDBOX_GATE];
        argv[n++] = "1";
    }

    argv[n++] = "--";

    for (k = 0; k < ncmd; k++) {
        argv[n++] = cmd[k];
    }

    argv[n] = NULL;

    return argv;
}

/*
 * A new folder <root>/<prefix>XXXXXX into dir (PATH_MAX bytes), mode 0700;
 * what names it in err. 0, or -1.
 */
static int
am_sandbox_mkdtemp(const char *root, const char *prefix, const char *what,
    char *dir, char *err, size_t errlen)
{
    if ((size_t) snprintf(dir, PATH_MAX, "%s/%sXXXXXX", root, prefix)
        >= PATH_MAX) {
        snprintf(err, errlen, "%s path too long", what);
        return -1;
    }

    if (mkdtemp(dir) == NULL) {
        snprintf(err, errlen, "cannot make a %s in %s: %s", what, root,
            strerror(errno));
        return -1;
    }

    return 0;
}


int
am_sandbox_mkdir(const char *root, const am_sandbox_limits_t *limits, char *dir,
    char *err, size_t errlen)
{
    if (am_sandbox_mkdtemp(root, "am-run-", "run folder", dir, err, errlen)
        != 0) {
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


#define AM_SANDBOX_WORKER "am-worker-"
#define AM_SANDBOX_LOCK "lock"

/*
 * Whether the worker folder name under root (fd) belongs to a worker that
 * is gone: a folder of this user, not a link, whose lock can be taken. A
 * folder without a lock yet is one being made (see am_sandbox_claim).
 */
static int
am_sandbox_worker_gone(int root, const char *name)
{
    struct stat st;
    int         dir, lock, gone;

    dir = openat(root, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir == -1) {
        return 0;
    }

    gone = 0;

    if (fstat(dir, &st) == 0 && st.st_uid == geteuid()) {
        lock = openat(dir, AM_SANDBOX_LOCK, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

        if (lock != -1) {
            gone = flock(lock, LOCK_EX | LOCK_NB) == 0;
            (void) close(lock);
        }
    }

    (void) close(dir);

    return gone;
}


int
am_sandbox_claim(
    const char *root, char *dir, int *lock_fd, char *err, size_t errlen)
{
    struct dirent *de;
    char           path[PATH_MAX], tmp[PATH_MAX];
    DIR           *d;
    int            swept, fd;

    swept = 0;
    d = opendir(root);
    if (d == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", root, strerror(errno));
        return -1;
    }

    while ((de = readdir(d)) != NULL) {
        if (strncmp(
                de->d_name, AM_SANDBOX_WORKER, sizeof(AM_SANDBOX_WORKER) - 1)
                != 0
            || !am_sandbox_worker_gone(dirfd(d), de->d_name)) {
            continue;
        }

        if ((size_t) snprintf(path, sizeof(path), "%s/%s", root, de->d_name)
                < sizeof(path)
            && am_sandbox_rmtree(path) == 0) {
            swept++;
        }
    }

    (void) closedir(d);

    if (am_sandbox_mkdtemp(
            root, AM_SANDBOX_WORKER, "worker folder", dir, err, errlen)
        != 0) {
        return -1;
    }

    /* runs of another user go through it to their own folder */
    if (chmod(dir, 0711) != 0) {
        snprintf(err, errlen, "cannot chmod %s: %s", dir, strerror(errno));
        (void) rmdir(dir);
        return -1;
    }

    /*
     * The lock is taken before it gets its name: a worker sweeping at the
     * same time never finds it free while this one lives.
     */
    snprintf(tmp, sizeof(tmp), "%s/" AM_SANDBOX_LOCK ".new", dir);
    snprintf(path, sizeof(path), "%s/" AM_SANDBOX_LOCK, dir);

    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd == -1 || flock(fd, LOCK_EX | LOCK_NB) != 0
        || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot lock %s: %s", dir, strerror(errno));
        if (fd != -1) {
            (void) close(fd);
        }
        (void) am_sandbox_rmtree(dir);
        return -1;
    }

    *lock_fd = fd;

    return swept;
}


void
am_sandbox_release(const char *dir, int lock_fd)
{
    (void) am_sandbox_rmtree(dir);
    (void) close(lock_fd);
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
