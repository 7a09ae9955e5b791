/*
 * How listings are printed: for people, one line per record under a header
 * line naming the columns; with --json, for programs, one JSON array of
 * objects on stdout.
 */

#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* Prints the column names, NULL-terminated, as a listing's first line. */
void
ctl_header(const char *const *columns)
{
    const char *const *c;

    for (c = columns; *c != NULL; c++) {
        printf("%s%s", c == columns ? "" : " ", *c);
    }

    putchar('\n');
}

/* A generator with the listing's array opened, or NULL with a message. */
yajl_gen
ctl_json_open(void)
{
    yajl_gen g;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        ctl_error("out of memory");
        return NULL;
    }

    /* labels are free text: refuse to print what is not UTF-8 as JSON */
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);

    if (yajl_gen_array_open(g) != yajl_gen_status_ok) {
        ctl_error("out of memory");
        yajl_gen_free(g);
        return NULL;
    }

    return g;
}

static int
ctl_json_key(yajl_gen g, const char *name)
{
    return yajl_gen_string(g, (const unsigned char *) name, strlen(name))
                   == yajl_gen_status_ok
               ? 0
               : -1;
}

/* "name": "value" in the open object; 0, or -1 with a message. */
int
ctl_json_string(yajl_gen g, const char *name, const char *value)
{
    if (ctl_json_key(g, name) != 0
        || yajl_gen_string(g, (const unsigned char *) value, strlen(value))
               != yajl_gen_status_ok) {
        ctl_error("%s is not valid UTF-8", name);
        return -1;
    }

    return 0;
}

/* "name": [ each word of a space-separated list ]; 0, or -1. */
int
ctl_json_words(yajl_gen g, const char *name, const char *words)
{
    const char *p, *end;

    if (ctl_json_key(g, name) != 0
        || yajl_gen_array_open(g) != yajl_gen_status_ok) {
        return -1;
    }

    for (p = words; *p != '\0'; p = end) {
        while (*p == ' ') {
            p++;
        }

        for (end = p; *end != '\0' && *end != ' '; end++) {
            /* void */
        }

        if (end > p
            && yajl_gen_string(g, (const unsigned char *) p, (size_t) (end - p))
                   != yajl_gen_status_ok) {
            ctl_error("%s is not valid UTF-8", name);
            return -1;
        }
    }

    return yajl_gen_array_close(g) == yajl_gen_status_ok ? 0 : -1;
}

/* Closes the array, prints it on one line and frees g; 0, or -1. */
int
ctl_json_close(yajl_gen g)
{
    const unsigned char *buf;
    size_t               len;
    int                  rc;

    rc = -1;

    if (yajl_gen_array_close(g) == yajl_gen_status_ok
        && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
        fwrite(buf, 1, len, stdout);
        putchar('\n');
        rc = 0;
    }

    yajl_gen_free(g);
    return rc;
}
