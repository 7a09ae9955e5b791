/*
 * What the fuzz targets share: the libFuzzer entry point they define, and
 * a failure that stops the process so that libFuzzer (or the replay
 * driver) keeps the input.
 */

#ifndef AM_FUZZ_H
#define AM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void __attribute__((noreturn, unused)) am_fuzz_fail(const char *what)
{
    fprintf(stderr, "invariant broken: %s\n", what);
    abort();
}

#endif
