/*
 * What an execution may be, as the module creates it and the worker and the
 * CLI accept it: its id, and the bounds of the run's timeout.
 */

#ifndef AM_EXECUTION_H
#define AM_EXECUTION_H

#include <stddef.h>

/* "exec_" and 24 lowercase hex digits (96 random bits) */
#define AM_EXECUTION_ID_PREFIX "exec_"
#define AM_EXECUTION_ID_PREFIX_LEN 5
#define AM_EXECUTION_ID_LEN 29

/*
 * An automation's timeout_ms: 1 ms to AM_RUN_TIMEOUT_MAX_MS, 30 s when it
 * has none. The maximum is also the workers' default cap (--max-timeout):
 * the module refuses a timeout over it at create (422), so no worker with
 * the default cap cuts a run short of what its automation says. A worker
 * given a lower cap logs each run it cuts.
 */
#define AM_RUN_TIMEOUT_MIN_MS 1
#define AM_RUN_TIMEOUT_DEFAULT_MS 30000
#define AM_RUN_TIMEOUT_MAX_MS 3600000

/*
 * Writes a new execution id and a NUL into id (AM_EXECUTION_ID_LEN + 1
 * bytes); 0, or -1 when the random source fails.
 */
int am_execution_id_new(char *id);

/* 1 when the len bytes of s are an execution id as made above. */
int am_execution_id_valid(const char *s, size_t len);

/* 1 when ms is a timeout_ms an automation may have. */
int am_run_timeout_valid(long long ms);

#endif
