/*
 * How far a run says it is: the line "FRACTION MESSAGE" that it writes to
 * the file .progress of its folder (python: progress(fraction, message);
 * sh: echo "0.5 halfway" > .progress). The worker reads it while the run
 * goes on and records the last one in the execution.
 */

#ifndef AM_PROGRESS_H
#define AM_PROGRESS_H

#include <stddef.h>
#include <sys/types.h>

#define AM_PROGRESS_FILE ".progress"
#define AM_PROGRESS_MESSAGE_MAX 200

typedef struct {
    char fraction[16]; /* normalized: "%g" of a number from 0 to 1 */
    char message[AM_PROGRESS_MESSAGE_MAX + 1];
} am_progress_t;

/*
 * Reads the progress file of the run folder dir, as the run's process pid
 * sees it (its own mount namespace when confined). The run owns the folder
 * and may have made anything: only a regular file with one link is read,
 * at most 512 bytes, without following symbolic links or blocking. Returns 1
 * with p filled when it holds a fraction from 0 to 1 (the message keeps
 * printable ASCII, other bytes become '?'); 0 otherwise.
 */
int am_progress_read(pid_t pid, const char *dir, am_progress_t *p);

#endif
