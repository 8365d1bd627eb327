/*
 * fuzz_util: what the libFuzzer targets in tests/fuzz share: a failed
 * property check that aborts (so libFuzzer keeps the input as a crash), and
 * the daemons' log sent to /dev/null (error paths log a line per input;
 * VDIFS_FUZZ_LOG=1 keeps it on stderr to see why an input was refused).
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include "log.h"

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                                \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "fuzz check failed: %s: ", #cond);   \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			abort();                                             \
		}                                                            \
	} while (0)

static inline void fuzz_quiet_log(const char *prog)
{
	log_init(prog, LOG_ERROR);
	if (!getenv("VDIFS_FUZZ_LOG") && log_open("/dev/null") < 0)
		abort();
}

#endif
