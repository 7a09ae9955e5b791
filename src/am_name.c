#include <string.h>

#include "am_name.h"

static int
am_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int
am_project_name_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > AM_PROJECT_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!am_name_char((unsigned char) s[i])) {
            return 0;
        }
    }

    return 1;
}

int
am_automation_name_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > AM_AUTOMATION_NAME_MAX || s[0] == '.') {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (i + 1 < len && s[i + 1] == '.') {
                return 0;
            }
            continue;
        }

        if (!am_name_char((unsigned char) s[i])) {
            return 0;
        }
    }

    return 1;
}

int
am_prefix_valid(const char *s, size_t len)
{
    size_t i;

    if (len > AM_PREFIX_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f
            || s[i] == '{' || s[i] == '}') {
            return 0;
        }
    }

    return 1;
}

int
am_python_module_valid(const char *s, size_t len)
{
    size_t i, start;

    if (len == 0 || len > AM_PYTHON_MODULE_MAX) {
        return 0;
    }

    start = 0;

    for (i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (i == start
                || (i - start == sizeof("__main__") - 1
                    && memcmp(s + start, "__main__", i - start) == 0)) {
                return 0;
            }
            start = i + 1;
            continue;
        }

        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
                || s[i] == '_' || (i > start && s[i] >= '0' && s[i] <= '9'))) {
            return 0;
        }
    }

    return 1;
}
