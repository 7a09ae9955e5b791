/*
 * libFuzzer target for the header rules (src/am_header.c) that guard what
 * a caller stores for webhooks and runs: the validators must agree with
 * RFC 9110 written out again here, and never read past len.
 */

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "am_header.h"

#include "fuzz.h"

static const char *const am_fuzz_reserved[] = {"host", "content-length",
    "content-type", "transfer-encoding", "connection", "expect", "webhook-id",
    "webhook-timestamp", "webhook-signature", NULL};


/* RFC 9110 5.6.2 tchar */
static int
am_fuzz_tchar(uint8_t c)
{
    return isalnum(c) && c < 0x80
               ? 1
               : c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char        *s = (const char *) data;
    const char *const *r;
    size_t             i;
    int                name, value, reserved;

    name = size >= 1 && size <= AM_HEADER_NAME_MAX;
    value = size <= AM_HEADER_VALUE_MAX;

    for (i = 0; i < size; i++) {
        if (!am_fuzz_tchar(data[i])) {
            name = 0;
        }

        /* field-value: VCHAR, obs-text, SP and HTAB */
        if ((data[i] < 0x20 && data[i] != '\t') || data[i] == 0x7f) {
            value = 0;
        }
    }

    reserved = 0;
    for (r = am_fuzz_reserved; *r != NULL && !reserved; r++) {
        if (strlen(*r) == size) {
            reserved = 1;
            for (i = 0; i < size; i++) {
                if (tolower(data[i]) != (*r)[i] || data[i] >= 0x80) {
                    reserved = 0;
                    break;
                }
            }
        }
    }

    if (am_header_name_valid(s, size) != name) {
        am_fuzz_fail("header name rule disagrees with RFC 9110");
    }

    if (am_header_value_valid(s, size) != value) {
        am_fuzz_fail("header value rule disagrees with RFC 9110");
    }

    if (am_header_reserved(s, size) != reserved) {
        am_fuzz_fail("reserved header list disagrees");
    }

    if (reserved && !name) {
        am_fuzz_fail("a reserved name that is not a valid name");
    }

    return 0;
}
