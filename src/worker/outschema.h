/*
 * A run's output held to its automation's output_schema (src/am_schema.h).
 * A schema is compiled once per worker process and kept by the digest of
 * its text; the last AM_OUTSCHEMA_CACHE schemas used are kept.
 */

#ifndef AM_OUTSCHEMA_H
#define AM_OUTSCHEMA_H

#include <stddef.h>

#define AM_OUTSCHEMA_CACHE 32

/*
 * Validates output (JSON text) with schema (JSON text, the snapshot of the
 * execution). Returns 1 when it matches; 0 when not, with err saying the
 * JSON pointer and keyword of the first violation; -1 when the schema or
 * the output cannot be read, with err saying why.
 */
int am_outschema_check(const char *schema, size_t schema_len,
    const char *output, size_t output_len, char *err, size_t errlen);

/* Frees the compiled schemas, at exit. */
void am_outschema_free(void);

#endif
