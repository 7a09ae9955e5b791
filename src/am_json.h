/*
 * JSON helpers shared by the module, the worker and the CLI: a bounded
 * parse into a yajl tree, and compact re-serialisation of a subtree.
 */

#ifndef AM_JSON_H
#define AM_JSON_H

#include <stddef.h>

#include <yajl/yajl_tree.h>

#define AM_JSON_MAX_DEPTH 32

/*
 * Parses len bytes (not NUL-terminated) into a tree. Refuses nesting deeper
 * than max_depth and invalid UTF-8. Returns the tree (free it with
 * yajl_tree_free), or NULL with a short reason in err.
 */
yajl_val am_json_parse(
    const char *text, size_t len, int max_depth, char *err, size_t errlen);

/* The member key of object v, or NULL when absent or v is not an object. */
yajl_val am_json_get(yajl_val v, const char *key);

/*
 * Compact JSON text of v, malloc'd and NUL-terminated, its length in *len;
 * NULL on allocation failure.
 */
char *am_json_dump(yajl_val v, size_t *len);

#endif
