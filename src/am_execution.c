#include <string.h>

#include "am_crypto.h"
#include "am_execution.h"

int
am_execution_id_new(char *id)
{
    memcpy(id, AM_EXECUTION_ID_PREFIX, AM_EXECUTION_ID_PREFIX_LEN);

    return am_random_hex(id + AM_EXECUTION_ID_PREFIX_LEN,
        (AM_EXECUTION_ID_LEN - AM_EXECUTION_ID_PREFIX_LEN) / 2);
}

int
am_execution_id_valid(const char *s, size_t len)
{
    size_t i;

    if (len != AM_EXECUTION_ID_LEN
        || memcmp(s, AM_EXECUTION_ID_PREFIX, AM_EXECUTION_ID_PREFIX_LEN) != 0) {
        return 0;
    }

    for (i = AM_EXECUTION_ID_PREFIX_LEN; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }

    return 1;
}

int
am_run_timeout_valid(long long ms)
{
    return ms >= AM_RUN_TIMEOUT_MIN_MS && ms <= AM_RUN_TIMEOUT_MAX_MS;
}
