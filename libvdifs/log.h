/*
 * log: leveled logging for the daemons and tools.  One line per event:
 *   2026-11-21T17:10:00.123Z vdifs-mds[1234] WARN: ds 3 missed heartbeats
 * Lines go to stderr or to a file set with log_open(); writes of one line are
 * atomic with respect to other threads (one fprintf under stdio's lock).
 */
#ifndef VDIFS_LOG_H
#define VDIFS_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Sets the program name shown on every line and the threshold. */
void log_init(const char *prog, enum log_level level);
/* Parses "error|warn|info|debug"; -EINVAL otherwise. */
int log_level_parse(const char *s, enum log_level *out);
/* Appends to path instead of stderr; returns 0 or -errno. */
int log_open(const char *path);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
