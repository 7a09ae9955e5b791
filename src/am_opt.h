/*
 * Options of the worker and the CLI, given on the command line or in
 * AUTOMATIONS_* environment variables (the option wins): the same checks
 * whichever way a value comes, and messages naming where it came from.
 * Functions that fail write the reason in err (errlen bytes).
 */

#ifndef AM_OPT_H
#define AM_OPT_H

#include <stddef.h>

/* The variable's value, or NULL when it is unset or empty. */
const char *am_env(const char *name);

/*
 * The whole number s in [min, max] into *out; 0, or -1 with the reason
 * ("WHERE: "S" is not a number from MIN to MAX") in err. where names the
 * option or the variable.
 */
int am_opt_long(const char *where, const char *s, long min, long max, long *out,
    char *err, size_t errlen);

/*
 * The variable name as a number in [min, max]: 1 when set and valid, 0 when
 * unset (*out unchanged), -1 with the reason in err.
 */
int am_env_long(
    const char *name, long min, long max, long *out, char *err, size_t errlen);

/*
 * A secret kept in a file, such as a Redis password: its first line,
 * without the line end, malloc'd; NULL with the reason in err when the file
 * cannot be read or the line is empty. Secrets go in files or variables
 * rather than on command lines, which any local user can read in ps.
 */
char *am_opt_secret_file(const char *path, char *err, size_t errlen);

#endif
