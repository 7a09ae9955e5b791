/*
 * JSON helpers shared by the module, the worker and the CLI: the one strict
 * JSON reader of the project (request bodies, JWTs, JWKS files, run outputs,
 * stored JSON), and compact re-serialisation of a tree.
 */

#ifndef AM_JSON_H
#define AM_JSON_H

#include <stddef.h>

#include <yajl/yajl_tree.h>

#define AM_JSON_MAX_DEPTH 32

/*
 * The deepest nesting any caller may ask for; yajl_gen refuses 128 levels,
 * and am_json_free and am_json_dump keep this many levels on the C stack.
 */
#define AM_JSON_DEPTH_LIMIT 100

/*
 * Parses len bytes (not NUL-terminated) of RFC 8259 JSON into a tree.
 * Refused, with a short reason in err (err may be NULL): comments, trailing
 * garbage, more than one value, nesting deeper than max_depth containers
 * (at most AM_JSON_DEPTH_LIMIT), a repeated key in one object (the reason
 * names it), strings that are not valid UTF-8 or contain \u0000.
 *
 * Nothing recurses on the input: yajl's parser keeps its state in a byte
 * stack and the tree is built from its callbacks with a stack of at most
 * max_depth frames. Time is O(n log n) (keys are sorted at each object's
 * end to find repeats), memory O(n). Size is bounded by each caller (request
 * body size, run output size, JWT size).
 *
 * The tree is malloc'd node by node as yajl_tree_parse does, so both
 * am_json_free and yajl_tree_free release it; the depth bound keeps
 * yajl_tree_free's recursion shallow.
 */
yajl_val am_json_parse(
    const char *text, size_t len, int max_depth, char *err, size_t errlen);

/*
 * Frees a tree without recursion over its first AM_JSON_DEPTH_LIMIT levels
 * (all of a tree from am_json_parse); NULL is fine.
 */
void am_json_free(yajl_val v);

/* The member key of object v, or NULL when absent or v is not an object. */
yajl_val am_json_get(yajl_val v, const char *key);

/*
 * Compact JSON text of v, malloc'd and NUL-terminated, its length in *len;
 * NULL on allocation failure or nesting over AM_JSON_DEPTH_LIMIT. No
 * recursion.
 */
char *am_json_dump(yajl_val v, size_t *len);

#endif
