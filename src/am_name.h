/*
 * Which project and automation names and which Redis key prefixes are
 * acceptable (docs/data-model.md). Names end up in Redis keys, URLs and
 * file names, so the rules are strict. Each rule has a text for messages.
 */

#ifndef AM_NAME_H
#define AM_NAME_H

#include <stddef.h>

#define AM_PROJECT_NAME_MAX 64
#define AM_AUTOMATION_NAME_MAX 128
#define AM_PREFIX_MAX 64
#define AM_PYTHON_MODULE_MAX 128
#define AM_PRELOAD_MAX 16 /* module names an automation may preload */

#define AM_PREFIX_RULE "at most 64 printable bytes, no braces or spaces"

/* 1 when s is 1..64 bytes of A-Z a-z 0-9 _ - */
int am_project_name_valid(const char *s, size_t len);

/* 1 when s is 1..128 bytes of A-Z a-z 0-9 _ - ., no leading '.', no ".." */
int am_automation_name_valid(const char *s, size_t len);

/*
 * 1 when s is a key prefix: AM_PREFIX_RULE, empty allowed. Every key is
 * "<prefix>{tag}:..." or "<prefix>name": a brace in the prefix would move
 * keys out of their hash tag, and so out of the slot their scripts expect.
 */
int am_prefix_valid(const char *s, size_t len);

/*
 * 1 when s is a python module name an automation may preload: 1..128 bytes,
 * identifiers of A-Z a-z 0-9 _ (not starting with a digit) joined by single
 * dots, none of them "__main__". The warm parent imports it as the worker's
 * user before any run, so nothing that reads as a path, an expression or a
 * program's entry point gets there.
 */
int am_python_module_valid(const char *s, size_t len);

#endif
