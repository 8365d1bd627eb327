/* config: see config.h.  Read once at start-up; nothing here is hot. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int config_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	unsigned shift = 0;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	default: return -EINVAL;
	}
	if (*end && end[1] != '\0' && !(toupper((unsigned char)end[1]) == 'B' && end[2] == '\0') &&
	    !(toupper((unsigned char)end[1]) == 'I' && toupper((unsigned char)end[2]) == 'B' && end[3] == '\0'))
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* Strings config_set allocated, so that a value set twice (file, then command
 * line) frees the first.  Settings are few: a small table is enough. */
static char *owned[128];

static void config_owned_add(char *s)
{
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		if (!owned[i]) {
			owned[i] = s;
			return;
		}
	}
}

static bool config_owned_take(const char *s)
{
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		if (owned[i] == s) {
			owned[i] = NULL;
			return true;
		}
	}
	return false;
}

static const struct config_opt *find_opt(const struct config_opt *opts, const char *key)
{
	for (; opts->key; opts++)
		if (strcmp(opts->key, key) == 0)
			return opts;
	return NULL;
}

int config_set(const struct config_opt *opts, const char *key, const char *value)
{
	const struct config_opt *o = find_opt(opts, key);
	if (!o)
		return -ENOENT;
	uint64_t v;
	char *end;
	switch (o->type) {
	case CONFIG_STR: {
		char *dup = strdup(value);
		if (!dup)
			return -ENOMEM;
		char **slot = o->ptr;
		/* Defaults are static strings: free only a value set here before. */
		if (*slot && config_owned_take(*slot))
			free(*slot);
		*slot = dup;
		config_owned_add(dup);
		return 0;
	}
	case CONFIG_U32:
	case CONFIG_U64:
		errno = 0;
		if (!isdigit((unsigned char)*value))
			return -EINVAL;
		v = strtoull(value, &end, 0);
		if (errno || *end)
			return -EINVAL;
		if (o->type == CONFIG_U32) {
			if (v > UINT32_MAX)
				return -EINVAL;
			*(uint32_t *)o->ptr = (uint32_t)v;
		} else {
			*(uint64_t *)o->ptr = v;
		}
		return 0;
	case CONFIG_SIZE:
		if (config_parse_size(value, &v) < 0)
			return -EINVAL;
		*(uint64_t *)o->ptr = v;
		return 0;
	case CONFIG_BOOL:
		if (!strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes") ||
		    !strcasecmp(value, "on"))
			*(bool *)o->ptr = true;
		else if (!strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no") ||
			 !strcasecmp(value, "off"))
			*(bool *)o->ptr = false;
		else
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int config_load_file(const struct config_opt *opts, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	char line[4096];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line too long", path, lineno);
			rc = -EINVAL;
			break;
		}
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		char *key = trim(s), *value = trim(eq + 1);
		int r = config_set(opts, key, value);
		if (r == -ENOENT) {
			snprintf(err, errlen, "%s:%d: unknown setting '%s'", path, lineno, key);
			rc = r;
			break;
		}
		if (r < 0) {
			snprintf(err, errlen, "%s:%d: bad value '%s' for '%s'", path, lineno, value, key);
			rc = r;
			break;
		}
	}
	fclose(f);
	return rc;
}

int config_parse_args(const struct config_opt *opts, int argc, char **argv, int *first_arg,
		      bool *help, char *err, size_t errlen)
{
	*help = false;
	/* The config file goes first so that the command line overrides it. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0 || argv[i][0] != '-')
			break;
		const char *file = NULL;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			file = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			file = argv[i] + 9;
		if (file) {
			int r = config_load_file(opts, file, err, errlen);
			if (r < 0)
				return r;
		}
	}
	int i;
	for (i = 1; i < argc; i++) {
		char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-')
			break;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			*help = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, errlen, "unknown option '%s'", a);
			return -EINVAL;
		}
		char key[128];
		const char *value = NULL;
		const char *eq = strchr(a + 2, '=');
		size_t klen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
		if (klen >= sizeof(key)) {
			snprintf(err, errlen, "unknown option '%s'", a);
			return -EINVAL;
		}
		memcpy(key, a + 2, klen);
		key[klen] = '\0';
		for (char *k = key; *k; k++)
			if (*k == '-')
				*k = '_';
		if (strcmp(key, "config") == 0) {
			if (!eq)
				i++;
			continue;
		}
		const struct config_opt *o = find_opt(opts, key);
		if (!o) {
			snprintf(err, errlen, "unknown option '--%s'", a + 2);
			return -EINVAL;
		}
		if (eq)
			value = eq + 1;
		else if (o->type == CONFIG_BOOL)
			value = "true";
		else if (i + 1 < argc)
			value = argv[++i];
		else {
			snprintf(err, errlen, "option '--%s' needs a value", key);
			return -EINVAL;
		}
		if (config_set(opts, key, value) < 0) {
			snprintf(err, errlen, "bad value '%s' for option '--%s'", value, key);
			return -EINVAL;
		}
	}
	*first_arg = i;
	return 0;
}

void config_print_help(const struct config_opt *opts, const char *usage)
{
	printf("%s\n\nOptions (also 'key = value' lines in the file given by --config FILE):\n", usage);
	for (; opts->key; opts++) {
		char def[64] = "";
		switch (opts->type) {
		case CONFIG_STR:
			if (*(char **)opts->ptr)
				snprintf(def, sizeof(def), " (default %s)", *(char **)opts->ptr);
			break;
		case CONFIG_U32: snprintf(def, sizeof(def), " (default %u)", *(uint32_t *)opts->ptr); break;
		case CONFIG_U64:
		case CONFIG_SIZE:
			snprintf(def, sizeof(def), " (default %" PRIu64 ")", *(uint64_t *)opts->ptr);
			break;
		case CONFIG_BOOL: snprintf(def, sizeof(def), " (default %s)", *(bool *)opts->ptr ? "on" : "off"); break;
		}
		char flag[64];
		snprintf(flag, sizeof(flag), "--%s", opts->key);
		for (char *k = flag + 2; *k; k++)
			if (*k == '_')
				*k = '-';
		printf("  %-24s %s%s\n", flag, opts->help, def);
	}
	printf("  %-24s %s\n  %-24s %s\n", "--config FILE", "read settings from FILE first", "--help",
	       "show this help");
}
