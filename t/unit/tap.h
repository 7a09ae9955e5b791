/*
 * The TAP output of the C unit tests: "ok N - name" per check, the plan
 * at the end, and a non-zero exit status when a check failed.
 */

#ifndef AM_TEST_TAP_H
#define AM_TEST_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int am_test_n;
static int am_test_failed;


static void __attribute__((format(printf, 2, 3)))
am_test_ok(int cond, const char *fmt, ...)
{
    va_list ap;

    am_test_n++;

    if (!cond) {
        am_test_failed++;
    }

    printf("%sok %d - ", cond ? "" : "not ", am_test_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}


/* Stops the whole test: something it needs could not be set up. */
static void __attribute__((noreturn)) am_test_bail(const char *what)
{
    printf("Bail out! %s\n", what);
    exit(1);
}


/* Prints the plan; the exit status of the test. */
static int
am_test_done(void)
{
    printf("1..%d\n", am_test_n);

    if (am_test_failed) {
        printf("# failed %d of %d\n", am_test_failed, am_test_n);
        return 1;
    }

    return 0;
}

#endif
