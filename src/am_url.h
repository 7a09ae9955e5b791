/*
 * Which webhook URLs are taken at intake: http or https, a non-empty rest,
 * no white space or control characters, at most AM_URL_MAX bytes. Where a
 * URL may lead (private and loopback addresses) is the worker's decision at
 * connect time, on the resolved address (src/worker/webhook.c).
 */

#ifndef AM_URL_H
#define AM_URL_H

#include <stddef.h>

#define AM_URL_MAX 2048

#define AM_URL_RULE "must be an http:// or https:// URL"

/* 1 when the len bytes of s are a webhook URL as above */
int am_url_valid(const char *s, size_t len);

#endif
