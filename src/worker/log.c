/*
 * The worker's log, on stderr: one record a line, written with one
 * write(2) so that the lines of processes sharing stderr never mix.
 *
 *   text  "<time> worker <name>: <message>", for people and journald
 *   json  one object a line with the same keys every time: time, level,
 *         worker, event, execution_id, project, automation, status, ms
 *         (null when they do not apply) and message, for log shippers
 *
 * Records below --log-level are dropped.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker/worker.h"

#define AM_LOG_RECORD_MAX 2048

const char *am_log_name = "-";

static am_log_level_t am_log_level = AM_LOG_INFO;
static int            am_log_json;

static const char *am_log_levels[] = {"error", "warn", "info", "debug"};

int
am_log_set_format(const char *format)
{
    if (strcmp(format, "text") == 0 || strcmp(format, "json") == 0) {
        am_log_json = (format[0] == 'j');
        return 0;
    }

    return -1;
}

int
am_log_set_level(const char *level)
{
    size_t i;

    for (i = 0; i < sizeof(am_log_levels) / sizeof(am_log_levels[0]); i++) {
        if (strcmp(level, am_log_levels[i]) == 0) {
            am_log_level = (am_log_level_t) i;
            return 0;
        }
    }

    return -1;
}

/* Appends s as a JSON string, or null; returns the new end. */
static size_t
am_log_jstr(char *buf, size_t n, size_t size, const char *s)
{
    const char *hex = "0123456789abcdef";
    unsigned    c;

    if (s == NULL) {
        return n + (size_t) snprintf(buf + n, size - n, "null");
    }

    if (n < size) {
        buf[n++] = '"';
    }

    for (; *s && n + 7 < size; s++) {
        c = (unsigned char) *s;

        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char) c;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(buf + n, "\\u00", 4);
            buf[n + 4] = hex[c >> 4];
            buf[n + 5] = hex[c & 15];
            n += 6;
        } else {
            buf[n++] = (char) c;
        }
    }

    if (n < size) {
        buf[n++] = '"';
    }

    return n;
}

static void
am_log_write(
    am_log_level_t level, const am_log_fields_t *f, const char *fmt, va_list ap)
{
    char      record[AM_LOG_RECORD_MAX], msg[1024], now_s[32], ms[32];
    char     *p;
    size_t    n, size;
    struct tm tm;
    time_t    now;

    static const am_log_fields_t none = {.ms = -1};

    if (level > am_log_level) {
        return;
    }

    if (f == NULL) {
        f = &none;
    }

    vsnprintf(msg, sizeof(msg), fmt, ap);

    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(now_s, sizeof(now_s), "%Y-%m-%dT%H:%M:%SZ", &tm);

    /* one byte kept for the newline */
    size = sizeof(record) - 1;

    if (!am_log_json) {
        /* messages quote runs' errors, which may span lines */
        for (p = msg; *p; p++) {
            if ((unsigned char) *p < 0x20 || *p == 0x7f) {
                *p = ' ';
            }
        }

        n = (size_t) snprintf(
            record, size, "%s worker %s: %s", now_s, am_log_name, msg);

    } else {
        n = (size_t) snprintf(record, size,
            "{\"time\":\"%s\",\"level\":\"%s\","
            "\"worker\":",
            now_s, am_log_levels[level]);
        n = am_log_jstr(record, n, size, am_log_name);
        n += (size_t) snprintf(record + n, size - n, ",\"event\":");
        n = am_log_jstr(record, n, size, f->event ? f->event : "message");
        n += (size_t) snprintf(record + n, size - n, ",\"execution_id\":");
        n = am_log_jstr(record, n, size, f->execution_id);
        n += (size_t) snprintf(record + n, size - n, ",\"project\":");
        n = am_log_jstr(record, n, size, f->project);
        n += (size_t) snprintf(record + n, size - n, ",\"automation\":");
        n = am_log_jstr(record, n, size, f->automation);
        n += (size_t) snprintf(record + n, size - n, ",\"status\":");
        n = am_log_jstr(record, n, size, f->status);

        if (f->ms >= 0) {
            snprintf(ms, sizeof(ms), "%ld", f->ms);
        } else {
            strcpy(ms, "null");
        }

        n += (size_t) snprintf(
            record + n, size - n, ",\"ms\":%s,\"message\":", ms);
        n = am_log_jstr(record, n, size - 1, msg);

        if (n < size) {
            record[n++] = '}';
        }
    }

    if (n > size) {
        n = size;
    }

    record[n++] = '\n';

    if (write(STDERR_FILENO, record, n) < 0) {
        return;
    }
}

void
am_log(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    am_log_write(AM_LOG_INFO, NULL, fmt, ap);
    va_end(ap);
}

void
am_log_at(am_log_level_t level, const am_log_fields_t *f, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    am_log_write(level, f, fmt, ap);
    va_end(ap);
}
