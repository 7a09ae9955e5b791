/*
 * automations-sandbox: the first program of every run. It applies the
 * run's limits, drops privileges and executes the runtime (see
 * src/worker/sandbox.c). A binary of its own, linked with libc alone, so
 * that starting it costs a fraction of re-executing the whole worker.
 */

#include <stdio.h>
#include <string.h>

#include "am_version.h"
#include "worker/run.h"

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        puts("automations-sandbox " AM_VERSION);
        return 0;
    }

    if (am_sandbox_main(argc, argv) == 0) {
        fprintf(stderr, "usage: automations-sandbox --sandbox [LIMITS] -- "
                        "COMMAND [ARG]...\n"
                        "(started by automations-worker, not by hand)\n");
    }

    return 2;
}
