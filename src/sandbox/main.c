/*
 * automations-sandbox: the first program of every run. It applies the
 * run's limits, drops privileges and executes the runtime (see
 * src/worker/sandbox.c). A binary of its own, linked with libc alone, so
 * that starting it costs a fraction of re-executing the whole worker.
 */

#include <stdio.h>

#include "worker/run.h"

int
main(int argc, char **argv)
{
    if (am_sandbox_main(argc, argv) == 0) {
        fprintf(stderr, "usage: automations-sandbox --sandbox [LIMITS] -- "
                        "COMMAND [ARG]...\n"
                        "(started by automations-worker, not by hand)\n");
    }

    return 2;
}
