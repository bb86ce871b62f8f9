/* log.h: logfmt lines on stderr (journald keeps them), one line per event.
 *
 * Usage: log_info("agent.online", "site=%s agent=%lld", site, id);
 * The first argument is the event name (msg=), the rest is a printf-style
 * list of key=value pairs written verbatim; quote values that may hold spaces
 * with log_quote(). Thread-compatible (one process, one loop).
 */
#ifndef FF_LOG_H
#define FF_LOG_H

#include <stddef.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_set_level(enum log_level level);
void log_set_component(const char *name);
enum log_level log_get_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int log_parse_level(const char *s);

void log_emit(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes s into out (size n) as a logfmt value: bare when safe, else quoted with
 * \" and \\ escaped and control bytes as \xNN. Always NUL-terminates; truncates. */
const char *log_quote(const char *s, char *out, size_t n);

/* Finds key=value in a logfmt line (as log_quote writes values) and writes the
 * unquoted, unescaped value into out (size n, NUL-terminated, truncated).
 * Returns the value's length, or -1 when the key is absent or malformed. */
int log_field(const char *line, const char *key, char *out, size_t n);

#define log_debug(ev, ...) \
  do { if (log_get_level() <= LOG_LEVEL_DEBUG) log_emit(LOG_LEVEL_DEBUG, ev, __VA_ARGS__); } while (0)
#define log_info(ev, ...) log_emit(LOG_LEVEL_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_emit(LOG_LEVEL_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_emit(LOG_LEVEL_ERROR, ev, __VA_ARGS__)

#endif
