#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_opt.h"

#define AM_SECRET_MAX 4096

const char *
am_env(const char *name)
{
    const char *v;

    v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

int
am_opt_long(const char *where, const char *s, long min, long max, long *out,
    char *err, size_t errlen)
{
    char *end;
    long  n;

    errno = 0;
    n = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || errno != 0 || n < min || n > max) {
        snprintf(err, errlen, "%s: \"%s\" is not a number from %ld to %ld",
            where, s, min, max);
        return -1;
    }

    *out = n;
    return 0;
}

int
am_env_long(
    const char *name, long min, long max, long *out, char *err, size_t errlen)
{
    const char *v;

    v = am_env(name);
    if (v == NULL) {
        return 0;
    }

    return am_opt_long(name, v, min, max, out, err, errlen) == 0 ? 1 : -1;
}

char *
am_opt_secret_file(const char *path, char *err, size_t errlen)
{
    FILE  *f;
    char  *s;
    size_t n;

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }

    s = malloc(AM_SECRET_MAX + 1);
    if (s == NULL) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    n = fread(s, 1, AM_SECRET_MAX, f);
    if (ferror(f)) {
        fclose(f);
        free(s);
        snprintf(err, errlen, "%s: cannot read", path);
        return NULL;
    }

    fclose(f);
    s[n] = '\0';
    s[strcspn(s, "\r\n")] = '\0';

    if (s[0] == '\0') {
        free(s);
        snprintf(err, errlen, "%s: no secret on its first line", path);
        return NULL;
    }

    return s;
}
