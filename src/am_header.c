#include <strings.h>
#include <string.h>

#include "am_header.h"

const char *const am_header_reserved_names[] = {"Host", "Content-Length",
    "Content-Type", "Transfer-Encoding", "Connection", "Expect", "webhook-id",
    "webhook-timestamp", "webhook-signature", NULL};

int
am_header_name_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > AM_HEADER_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
                || (s[i] >= '0' && s[i] <= '9')
                || (s[i] != '\0' && strchr("!#$%&'*+-.^_`|~", s[i]) != NULL))) {
            return 0;
        }
    }

    return 1;
}

int
am_header_value_valid(const char *s, size_t len)
{
    size_t i;

    if (len > AM_HEADER_VALUE_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (((unsigned char) s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}

int
am_header_reserved(const char *s, size_t len)
{
    const char *const *r;

    for (r = am_header_reserved_names; *r; r++) {
        if (strlen(*r) == len && strncasecmp(s, *r, len) == 0) {
            return 1;
        }
    }

    return 0;
}
