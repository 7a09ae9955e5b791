/*
 * JSON Schema draft 2020-12 on the yajl tree: an automation's input_schema
 * and output_schema, compiled once and then shared read-only by every
 * thread that validates against it.
 *
 * Implemented: the core applicators ($ref, $defs, $id, $anchor, allOf,
 * anyOf, oneOf, not, if/then/else, dependentSchemas, properties,
 * patternProperties, additionalProperties, propertyNames, prefixItems,
 * items, contains, unevaluatedItems, unevaluatedProperties) and the
 * validation vocabulary; format, content* and the meta-data keywords are
 * annotations and never fail. Not implemented: $ref to a document other
 * than the schema itself, $dynamicRef/$dynamicAnchor, custom meta-schemas
 * and $vocabulary: compiling such a schema fails with an error that starts
 * with AM_SCHEMA_UNSUPPORTED.
 *
 * Bounded: pattern runs through PCRE2 with match, depth and heap limits;
 * one validation takes at most AM_SCHEMA_MAX_STEPS steps (a step is a
 * schema applied, a member looked up, an equality compared, or 64 bytes of
 * input read: 40 to 120 ms at most on a loaded 2-core machine) and nests at
 * most AM_SCHEMA_MAX_DEPTH schemas deep (a $ref cycle ends there), so a
 * hostile schema or instance ends with an error instead of stalling. An
 * input of 20000 small records takes about 150000 steps.
 */

#ifndef AM_SCHEMA_H
#define AM_SCHEMA_H

#include <stddef.h>

#include <yajl/yajl_tree.h>

#define AM_SCHEMA_MAX_DEPTH 128
#define AM_SCHEMA_MAX_STEPS 1000000

/* PCRE2 limits of one pattern match */
#define AM_SCHEMA_MATCH_LIMIT 100000
#define AM_SCHEMA_DEPTH_LIMIT 1000
#define AM_SCHEMA_HEAP_LIMIT_KB 1024

/* the start of a compile error that names a feature this code lacks */
#define AM_SCHEMA_UNSUPPORTED "unsupported: "

typedef struct am_schema_s am_schema_t;

/*
 * Compiles schema (an object or a boolean). The compiled schema points
 * into the tree: keep the tree unchanged until am_schema_free, which does
 * not free it. Returns NULL with the reason in err when the schema is not
 * a valid draft 2020-12 schema, or uses something unsupported (see above),
 * or on allocation failure.
 */
am_schema_t *am_schema_compile(yajl_val schema, char *err, size_t errlen);

/*
 * Validates instance: 1 when valid, 0 when not, -1 when a limit ended the
 * evaluation first (treat it as not valid). For 0 and -1, ptr gets the
 * JSON pointer of the instance location (the empty string for the whole
 * instance) and keyword the schema keyword that failed ("limit" when a
 * limit was hit, "false" for a false schema at the top); both are
 * NUL-terminated and cut to their sizes. Uses no global state: any number
 * of threads may validate against one compiled schema at once.
 */
int am_schema_validate(const am_schema_t *s, yajl_val instance, char *ptr,
    size_t ptrlen, char *keyword, size_t kwlen);

void am_schema_free(am_schema_t *s);

#endif
