/*
 * The webhook URL rule of src/am_url.h, shared by the module (intake) and
 * the fuzz target that checks it.
 */

#include <string.h>

#include "am_url.h"


int
am_url_valid(const char *s, size_t len)
{
    size_t scheme, i;

    if (len > AM_URL_MAX) {
        return 0;
    }

    if (len >= 7 && memcmp(s, "http://", 7) == 0) {
        scheme = 7;

    } else if (len >= 8 && memcmp(s, "https://", 8) == 0) {
        scheme = 8;

    } else {
        return 0;
    }

    if (len == scheme) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] <= 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}
