/* window.h: maintenance windows and calendars, evaluated in a site's local
 * time. Used by the controller to check what an operator writes (rollout
 * create --window, site/class calendars) and by the agent to decide, with or
 * without its uplink, whether a device may be upgraded now.
 *
 * Spec: clauses separated by ';' (spaces around them ignored); empty = any time.
 *   DAYS HH:MM-HH:MM   weekdays Mon..Sun as a range (Mon-Fri, Fri-Mon wraps) or
 *                      a comma list (Sat,Sun), or "daily"; the time range may
 *                      cross midnight (22:00-05:00: the part after midnight
 *                      belongs to the day the window started); 24:00 allowed
 *                      as an end; start == end is refused.
 *   hours H,H,...      allowed local hours 0..23 (innovaphone /allow), any day
 *   !YYYY-MM-DD        a blackout date (local), or !YYYY-MM-DD..YYYY-MM-DD
 * A time is allowed when at least one DAYS/hours clause allows it (or there
 * are none) and no blackout date covers it. Local time comes from the IANA
 * zone name (tz "" = UTC); across DST changes a wall-clock range means wall
 * clock: 22:00-05:00 on the night clocks go back is one hour longer.
 *
 * The time-zone lookup sets TZ and calls tzset(), restoring TZ after: call
 * only from one thread (both daemons are single-threaded).
 */
#ifndef FF_WINDOW_H
#define FF_WINDOW_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define WINDOW_SPEC_MAX 512

typedef struct window window_t;

/* Parses spec. 0 with *out set (free with window_free), or -EINVAL with a
 * one-line reason naming the bad clause in err. */
int window_parse(const char *spec, window_t **out, char *err, size_t errlen);
void window_free(window_t *w);

/* 1 when `now` is inside the window in zone tz, 0 when not, -EINVAL for an
 * unknown zone. A NULL window allows any time. */
int window_allows(const window_t *w, time_t now, const char *tz);

/* The first time >= now (to the minute) at which the window allows, or
 * (time_t)-1 when it never does within 400 days. */
time_t window_next_open(const window_t *w, time_t now, const char *tz);

/* How many seconds the currently open stretch has left from now (0 when
 * closed now); at most 8 days. */
int64_t window_open_left(const window_t *w, time_t now, const char *tz);

/* The allowed hours as innovaphone's "/allow" list ("22,23,0,1"), covering
 * any hour any clause allows on some day; "" when every hour is allowed.
 * Writes at most n bytes (NUL-terminated). */
void window_hours_list(const window_t *w, char *out, size_t n);

/* A deterministic offset in [0, spread_s) from a MAC (6 bytes), so that the
 * devices of a site do not all start at the same minute. 0 when spread_s = 0. */
uint32_t window_spread(const uint8_t mac[6], uint32_t spread_s);

/* 1 when tz names a zone this machine knows (zoneinfo file exists) or is "". */
int window_tz_valid(const char *tz);

#endif
