/*
 * libFuzzer target for the webhook URL rule (src/am_url.c): the validator
 * must agree with the rule written out again here, and never read past len
 * (ASan sees the input's exact size).
 */

#include <stdint.h>
#include <string.h>

#include "am_url.h"

#include "fuzz.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t i, rest;
    int    valid;

    if (size >= 8 && memcmp(data, "https://", 8) == 0) {
        rest = size - 8;
    } else if (size >= 7 && memcmp(data, "http://", 7) == 0) {
        rest = size - 7;
    } else {
        rest = 0;
    }

    valid = rest > 0 && size <= AM_URL_MAX;

    for (i = 0; i < size; i++) {
        if (data[i] < 0x21 || data[i] == 0x7f) {
            valid = 0;
        }
    }

    if (am_url_valid((const char *) data, size) != valid) {
        am_fuzz_fail("URL rule disagrees");
    }

    return 0;
}
