/*
 * Runs a fuzz target's function over saved inputs, without libFuzzer, so
 * that `make test` replays the seed corpus and every crash input found, with
 * any compiler. Arguments are files or folders (read one level deep);
 * without any, fuzz/corpus/T and fuzz/crashes/T for the target T it was
 * built for (AM_REPLAY_TARGET). TAP out: one line per input; a crash or a
 * broken invariant aborts the run.
 */

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int am_replay_n;


static int
am_replay_file(const char *path)
{
    FILE    *f;
    uint8_t *buf;
    long     size;
    size_t   got;

    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0) {
        printf("not ok %d - %s: %s\n", ++am_replay_n, path, strerror(errno));
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }

    /* one byte more so that an empty input is not a NULL pointer */
    buf = malloc((size_t) size + 1);
    if (buf == NULL) {
        fclose(f);
        printf("not ok %d - %s: out of memory\n", ++am_replay_n, path);
        return -1;
    }

    got = fread(buf, 1, (size_t) size, f);
    fclose(f);

    LLVMFuzzerTestOneInput(buf, got);
    free(buf);

    printf("ok %d - %s (%zu bytes)\n", ++am_replay_n, path, got);
    fflush(stdout);

    return 0;
}


static int
am_replay_path(const char *path)
{
    struct dirent *e;
    struct stat    st;
    DIR           *d;
    char           file[4096];
    int            rc;

    if (stat(path, &st) != 0) {
        /* a target without crash inputs has no crash folder */
        return 0;
    }

    if (!S_ISDIR(st.st_mode)) {
        return am_replay_file(path);
    }

    d = opendir(path);
    if (d == NULL) {
        printf("not ok %d - %s: %s\n", ++am_replay_n, path, strerror(errno));
        return -1;
    }

    rc = 0;

    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }

        snprintf(file, sizeof(file), "%s/%s", path, e->d_name);

        if (stat(file, &st) == 0 && S_ISREG(st.st_mode)
            && am_replay_file(file) != 0) {
            rc = -1;
        }
    }

    closedir(d);

    return rc;
}


int
main(int argc, char **argv)
{
    int i, rc;

    rc = 0;

    if (argc == 1) {
        rc |= am_replay_path("fuzz/corpus/" AM_REPLAY_TARGET) != 0;
        rc |= am_replay_path("fuzz/crashes/" AM_REPLAY_TARGET) != 0;
    }

    for (i = 1; i < argc; i++) {
        if (am_replay_path(argv[i]) != 0) {
            rc = 1;
        }
    }

    if (am_replay_n == 0) {
        printf("not ok 1 - no input to replay\n");
        am_replay_n = 1;
        rc = 1;
    }

    printf("1..%d\n", am_replay_n);

    return rc;
}
