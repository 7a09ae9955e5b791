/*
 * The Redis scripts of redis/, embedded at build time (redis/embed.pl).
 * Callers use EVALSHA with the digest and fall back to EVAL on NOSCRIPT.
 */

#ifndef AM_SCRIPTS_H
#define AM_SCRIPTS_H

#include <stddef.h>

typedef struct {
    const char *name;
    const char *body;
    size_t      len;
    char        sha1[41];
} am_script_t;

extern am_script_t am_scripts[];

/* Fills in every script's SHA-1 hex digest; returns 0, or -1 on failure. */
int am_scripts_init(void);

/* The script called name, or NULL. */
am_script_t *am_script_find(const char *name);

#endif
