/*
 * The release of the module, the worker, the sandbox and the CLI, written
 * here only: `--version`, the module's start-up line, `make install` and
 * `make deb` all read it (debian/changelog must name the same release; the
 * Makefile refuses to build packages otherwise).
 */

#ifndef AM_VERSION_H
#define AM_VERSION_H

#define AM_VERSION "0.1.0"

#endif
