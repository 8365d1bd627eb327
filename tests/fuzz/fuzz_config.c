/*
 * fuzz_config: feeds the input as a config file to config_load_file() (a
 * settings table with every option type, like the daemons'), then as
 * NUL-separated command-line words to config_parse_args(), and each line to
 * config_parse_size().  A "--config" word is dropped: the input must not
 * name files to read.  Strings set stay in the table across inputs (config.c
 * frees a value when it is replaced); nothing leaks.
 */
#include "config.h"
#include "fuzz_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ARGS_MAX 64

static char *s_listen, *s_data_dir;
static uint32_t u32_conns;
static uint64_t u64_chunks, size_payload;
static bool b_insecure;

static const struct config_opt opts[] = {
	{"listen", CONFIG_STR, &s_listen, "HOST:PORT"},
	{"data_dir", CONFIG_STR, &s_data_dir, "directory"},
	{"max_conns", CONFIG_U32, &u32_conns, "a u32"},
	{"chunks", CONFIG_U64, &u64_chunks, "a u64"},
	{"max_payload", CONFIG_SIZE, &size_payload, "a size"},
	{"insecure", CONFIG_BOOL, &b_insecure, "a bool"},
	{NULL, 0, NULL, NULL},
};

/* The file is a memfd reopened through /proc: nothing to clean up. */
static int file_fd = -1;
static char path[64];

static void fuzz_file(const uint8_t *data, size_t size)
{
	FUZZ_CHECK(ftruncate(file_fd, 0) == 0 && pwrite(file_fd, data, size, 0) == (ssize_t)size,
		   "memfd write: %s", strerror(errno));
	char err[256];
	err[0] = '\0';
	int rc = config_load_file(opts, path, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOENT, "rc %d", rc);
	FUZZ_CHECK(rc == 0 || err[0] != '\0', "rc %d without a message", rc);
}

static void fuzz_args(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	FUZZ_CHECK(copy, "out of memory");
	memcpy(copy, data, size);
	copy[size] = '\0';
	char *argv[FUZZ_ARGS_MAX + 2] = {"fuzz_config"};
	int argc = 1;
	for (char *w = copy; w <= copy + size && argc <= FUZZ_ARGS_MAX; w += strlen(w) + 1)
		if (strncmp(w, "--config", 8) != 0)
			argv[argc++] = w;
	argv[argc] = NULL;
	int first = -1;
	bool help;
	char err[256];
	if (config_parse_args(opts, argc, argv, &first, &help, err, sizeof(err)) == 0)
		FUZZ_CHECK(first >= 1 && first <= argc, "first_arg %d of %d", first, argc);
	free(copy);
}

static void fuzz_sizes(const uint8_t *data, size_t size)
{
	char line[128];
	size_t i = 0;
	while (i < size) {
		size_t n = 0;
		while (i < size && data[i] != '\n' && n < sizeof(line) - 1)
			line[n++] = (char)data[i++];
		line[n] = '\0';
		i++;
		uint64_t v;
		config_parse_size(line, &v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (file_fd < 0) {
		file_fd = memfd_create("fuzz_config", 0);
		FUZZ_CHECK(file_fd >= 0, "memfd_create: %s", strerror(errno));
		snprintf(path, sizeof(path), "/proc/self/fd/%d", file_fd);
	}
	fuzz_file(data, size);
	fuzz_args(data, size);
	fuzz_sizes(data, size);
	return 0;
}
