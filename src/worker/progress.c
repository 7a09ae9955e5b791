#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "worker/progress.h"

#define AM_PROGRESS_READ_MAX 512

/*
 * Opens dir/.progress as the run sees it: its folder is a tmpfs of its own
 * mount namespace, reached through /proc/PID/root of its supervisor, and
 * resolved inside that root without following any symbolic link, so that
 * nothing the run makes leads out of it.
 */
static int
am_progress_open(pid_t pid, const char *dir)
{
    struct open_how how;
    char            root[64], path[PATH_MAX];
    int             rfd, fd;

    snprintf(root, sizeof(root), "/proc/%ld/root", (long) pid);

    if (snprintf(path, sizeof(path), "%s/%s", dir, AM_PROGRESS_FILE)
        >= (int) sizeof(path)) {
        return -1;
    }

    rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rfd == -1) {
        return -1;
    }

    memset(&how, 0, sizeof(how));
    how.flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

    fd = (int) syscall(SYS_openat2, rfd, path, &how, sizeof(how));
    close(rfd);

    return fd;
}

/* The file's first line, NUL-terminated; its length, or -1. */
static ssize_t
am_progress_line(pid_t pid, const char *dir, char *buf, size_t size)
{
    struct stat st;
    ssize_t     n;
    char       *nl;
    int         fd;

    fd = am_progress_open(pid, dir);
    if (fd == -1) {
        return -1;
    }

    n = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1) {
        n = read(fd, buf, size - 1);
    }
    close(fd);

    if (n <= 0) {
        return -1;
    }

    buf[n] = '\0';
    nl = strchr(buf, '\n');
    if (nl != NULL) {
        *nl = '\0';
    }

    return (ssize_t) strlen(buf);
}

int
am_progress_read(pid_t pid, const char *dir, am_progress_t *p)
{
    char          buf[AM_PROGRESS_READ_MAX + 1], *end, *m;
    unsigned char c;
    double        f;
    size_t        i;

    if (am_progress_line(pid, dir, buf, sizeof(buf)) < 0) {
        return 0;
    }

    errno = 0;
    f = strtod(buf, &end);

    if (end == buf || errno != 0 || !isfinite(f) || f < 0.0 || f > 1.0
        || (*end != '\0' && *end != ' ' && *end != '\t')) {
        return 0;
    }

    snprintf(p->fraction, sizeof(p->fraction), "%g", f);

    m = end;
    while (*m == ' ' || *m == '\t') {
        m++;
    }

    /* printable ASCII only: the record's JSON never gets broken UTF-8 */
    for (i = 0; m[i] != '\0' && i < AM_PROGRESS_MESSAGE_MAX; i++) {
        c = (unsigned char) m[i];
        p->message[i] = c < 0x20 || c > 0x7e ? '?' : (char) c;
    }

    p->message[i] = '\0';
    return 1;
}
