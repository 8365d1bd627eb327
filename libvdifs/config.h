/*
 * config: settings from a "key = value" file, overridden by command-line
 * options of the form --key=value or --key value.
 *
 * A program declares its settings once in a table of struct config_opt; the
 * same table parses the file, parses the command line and prints --help.
 * Sizes accept K, M, G, T suffixes (powers of 1024).  Unknown keys and bad
 * values are errors that name the file, line and key.
 */
#ifndef VDIFS_CONFIG_H
#define VDIFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_type { CONFIG_STR, CONFIG_U32, CONFIG_U64, CONFIG_SIZE, CONFIG_BOOL };

struct config_opt {
	const char *key;
	enum config_type type;
	void *ptr;  /* char ** (strdup'ed), uint32_t *, uint64_t *, bool * */
	const char *help;
};

/* Sets one option from text.  0, or -EINVAL (bad value) / -ENOENT (no such key). */
int config_set(const struct config_opt *opts, const char *key, const char *value);
/* Reads a config file.  On error writes a message into err and returns -errno. */
int config_load_file(const struct config_opt *opts, const char *path, char *err, size_t errlen);
/*
 * Parses argv: "--config FILE" is loaded first, then every --key[=value]
 * overrides it; a bare --flag sets a bool.  Stops at the first non-option
 * and returns its index in *first_arg.  "--help" sets *help.  Returns 0 or
 * -errno with a message in err.
 */
int config_parse_args(const struct config_opt *opts, int argc, char **argv, int *first_arg,
		      bool *help, char *err, size_t errlen);
void config_print_help(const struct config_opt *opts, const char *usage);
/* Parses a size with an optional K/M/G/T suffix. */
int config_parse_size(const char *s, uint64_t *out);

#endif
