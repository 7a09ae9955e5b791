/*
 * libFuzzer target for the name rules (src/am_name.c), preload's python
 * module names included: the validators must agree with the rules of
 * docs/data-model.md and README written out again here, and never read
 * past len (ASan sees the input's exact size).
 */

#include <stdint.h>
#include <string.h>

#include "am_name.h"

#include "fuzz.h"


static int
am_fuzz_name_char(uint8_t c, int dot)
{
    return memchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789_-",
               c, 64)
               != NULL
           || (dot && c == '.');
}


/* the preload rule: identifiers joined by single dots, none "__main__" */
static int
am_fuzz_python_module(const uint8_t *data, size_t size)
{
    size_t i, start;

    if (size == 0 || size > 128) {
        return 0;
    }

    start = 0;

    for (i = 0; i <= size; i++) {
        if (i < size && data[i] != '.') {
            if (!am_fuzz_name_char(data[i], 0) || data[i] == '-'
                || (i == start && data[i] >= '0' && data[i] <= '9')) {
                return 0;
            }
            continue;
        }

        if (i == start
            || (i - start == 8 && memcmp(data + start, "__main__", 8) == 0)) {
            return 0;
        }

        start = i + 1;
    }

    return 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *) data;
    size_t      i;
    int         project, automation;

    project = size >= 1 && size <= 64;
    automation = size >= 1 && size <= 128 && data[0] != '.';

    for (i = 0; i < size; i++) {
        if (!am_fuzz_name_char(data[i], 0)) {
            project = 0;
        }

        if (!am_fuzz_name_char(data[i], 1)) {
            automation = 0;
        }

        if (i > 0 && data[i] == '.' && data[i - 1] == '.') {
            automation = 0;
        }
    }

    if (am_project_name_valid(s, size) != project) {
        am_fuzz_fail("project name rule disagrees");
    }

    if (am_automation_name_valid(s, size) != automation) {
        am_fuzz_fail("automation name rule disagrees");
    }

    if (am_python_module_valid(s, size) != am_fuzz_python_module(data, size)) {
        am_fuzz_fail("python module name rule disagrees");
    }

    return 0;
}
