/* window.c: maintenance windows and calendars (see window.h).
 *
 * A parsed window is one array of clauses in the order written: DAYS rules
 * (weekday bitmask, start and end minute of the local day), hours lists
 * (24-bit mask plus the order written, for window_hours_list) and blackout
 * ranges (local civil dates as days since 1970-01-01). Next to it, a mark
 * per minute of the day where some clause may change its answer (midnight,
 * every start and end, every hour when there is an hours list): between two
 * marks of the same local day and with no UTC offset change in between,
 * window_allows cannot change, which is what lets the scanner of
 * window_next_open and window_open_left step from mark to mark (a handful
 * of steps a day) instead of minute by minute (576000 steps for 400 days).
 * A UTC offset change (DST) between two marks is found by bisection to the
 * minute, and the scan resumes from the first minute of the new offset.
 *
 * Invariants: the spec is never modified and never copied (the parser works
 * on pointer+length slices); error messages quote operator text through
 * s_show, so they stay one printable line. Everything that needs local time
 * runs inside s_in_zone, the only place that touches TZ: it sets TZ once,
 * runs the whole computation and restores TZ exactly as it found it
 * (including unset). Not thread-safe for that reason (window.h).
 */
#include "window.h"
#include "util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SHOW_MAX 48
#define DAY_MIN 1440
#define ZONEINFO "/usr/share/zoneinfo/"
#define TZ_NAME_MAX 128
#define NEXT_OPEN_SPAN ((int64_t)400 * 86400)
#define OPEN_LEFT_SPAN ((int64_t)8 * 86400)

enum ckind { C_DAYS, C_HOURS, C_BLACKOUT };

struct clause {
    enum ckind kind;
    uint8_t days;      /* C_DAYS: bit n = tm_wday n (0 Sunday) */
    uint16_t start;    /* C_DAYS: minute of the day, 0..1439 */
    uint16_t end;      /* C_DAYS: 1..1440; end < start crosses midnight */
    uint32_t hours;    /* C_HOURS: bit h = hour h allowed */
    uint8_t order[24]; /* C_HOURS: the hours as written, duplicates dropped */
    uint8_t norder;
    int32_t from, to; /* C_BLACKOUT: days since the epoch, from <= to */
};

struct window {
    int allow_clauses;     /* DAYS and hours clauses; 0 = any time */
    uint8_t mark[DAY_MIN]; /* 1 where an answer may change (see top) */
    size_t n;
    struct clause c[];
};

/* A local time as the evaluation needs it. */
struct lt {
    int wday; /* 0 Sunday */
    int min;  /* minute of the local day */
    int sec;
    int32_t day; /* local date, days since the epoch */
    long gmtoff;
};

static const char *const s_wdays[7][2] = {
    {"sun", "sunday"},   {"mon", "monday"}, {"tue", "tuesday"},  {"wed", "wednesday"},
    {"thu", "thursday"}, {"fri", "friday"}, {"sat", "saturday"},
};

static const char *s_show(const char *s, size_t n, char out[SHOW_MAX + 4])
{
    return util_show(s, n, SHOW_MAX, out);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil); exact for any int year the parser or localtime gives. */
static int64_t s_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int s_mdays(int y, int m)
{
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : md[m - 1];
}

/* ---- parsing ------------------------------------------------------------ */

/* One clause being parsed: its text and where the reason goes. */
struct pctx {
    const char *s; /* clause text, trimmed */
    size_t n;
    int no; /* 1-based */
    char *err;
    size_t errlen;
};

static int s_fail(const struct pctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fail(const struct pctx *p, const char *fmt, ...)
{
    char why[160], q[SHOW_MAX + 4];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    util_errf(p->err, p->errlen, "clause %d \"%s\": %s", p->no, s_show(p->s, p->n, q), why);
    return -EINVAL;
}

static int s_is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Length of the run of characters at s (at most n) that `keep` accepts. */
static size_t s_span(const char *s, size_t n, int (*keep)(int))
{
    size_t i = 0;
    while (i < n && keep((unsigned char)s[i]))
        i++;
    return i;
}

static int s_weekday(const char *s, size_t n)
{
    for (int d = 0; d < 7; d++)
        for (int f = 0; f < 2; f++)
            if (strlen(s_wdays[d][f]) == n && strncasecmp(s, s_wdays[d][f], n) == 0)
                return d;
    return -1;
}

/* DAYS: "daily", or items separated by ',' each DAY or DAY-DAY (wrapping). */
static int s_parse_days(const struct pctx *p, const char *s, size_t n, uint8_t *days)
{
    char q[SHOW_MAX + 4];
    if (n == 5 && strncasecmp(s, "daily", 5) == 0) {
        *days = 0x7f;
        return 0;
    }
    *days = 0;
    size_t i = 0;
    for (;;) {
        int d[2] = {-1, -1};
        for (int k = 0; k < 2; k++) {
            size_t l = s_span(s + i, n - i, isalpha);
            if (l == 0)
                return s_fail(p, "expected a weekday at \"%s\"", s_show(s + i, n - i, q));
            d[k] = s_weekday(s + i, l);
            if (d[k] < 0)
                return s_fail(p, "unknown weekday \"%s\"", s_show(s + i, l, q));
            i += l;
            if (k == 0 && (i == n || s[i] != '-')) {
                d[1] = d[0];
                break;
            }
            if (k == 0)
                i++; /* '-' */
        }
        for (int w = d[0];; w = (w + 1) % 7) {
            *days |= (uint8_t)(1u << w);
            if (w == d[1])
                break;
        }
        if (i == n)
            return 0;
        if (s[i] != ',')
            return s_fail(p, "unexpected \"%s\" in the days", s_show(s + i, n - i, q));
        i++;
    }
}

/* Digits at s[*i..n): their value (capped) and how many, 0 when none. */
static size_t s_digits(const char *s, size_t n, size_t *i, long *v)
{
    size_t l = s_span(s + *i, n - *i, isdigit);
    *v = 0;
    for (size_t k = 0; k < l; k++)
        *v = *v > 100000 ? *v : *v * 10 + (s[*i + k] - '0');
    *i += l;
    return l;
}

/* H:MM or HH:MM at s[*i]; end allows 24:00. Minute of the day in *m. */
static int s_parse_hhmm(const struct pctx *p, const char *s, size_t n, size_t *i, int end, int *m)
{
    char q[SHOW_MAX + 4];
    size_t at = *i;
    long h, mm;
    size_t hl = s_digits(s, n, i, &h);
    if (hl == 0 || hl > 2 || *i == n || s[*i] != ':')
        return s_fail(p, "expected HH:MM at \"%s\"", s_show(s + at, n - at, q));
    (*i)++;
    size_t ml = s_digits(s, n, i, &mm);
    if (ml != 2)
        return s_fail(p, "expected HH:MM at \"%s\"", s_show(s + at, n - at, q));
    if (mm > 59)
        return s_fail(p, "minute \"%s\" outside 0..59", s_show(s + *i - 2, 2, q));
    if (end && h == 24 && mm == 0) {
        *m = DAY_MIN;
        return 0;
    }
    if (h > 23)
        return s_fail(p, "hour \"%s\" outside 0..23", s_show(s + at, hl, q));
    *m = (int)(h * 60 + mm);
    return 0;
}

static int s_parse_rule(const struct pctx *p, struct clause *c)
{
    char q[SHOW_MAX + 4];
    const char *s = p->s;
    size_t n = p->n, dn = 0;
    while (dn < n && !s_is_space(s[dn]))
        dn++;
    c->kind = C_DAYS;
    int rc = s_parse_days(p, s, dn, &c->days);
    if (rc != 0)
        return rc;
    size_t i = dn;
    while (i < n && s_is_space(s[i]))
        i++;
    if (i == n)
        return s_fail(p, "expected HH:MM-HH:MM after \"%s\"", s_show(s, dn, q));
    int a, b;
    size_t t0 = i;
    if ((rc = s_parse_hhmm(p, s, n, &i, 0, &a)) != 0)
        return rc;
    if (i == n || s[i] != '-')
        return s_fail(p, "expected '-' and an end time after \"%s\"", s_show(s + t0, i - t0, q));
    i++;
    if ((rc = s_parse_hhmm(p, s, n, &i, 1, &b)) != 0)
        return rc;
    while (i < n && s_is_space(s[i]))
        i++;
    if (i != n)
        return s_fail(p, "trailing junk \"%s\"", s_show(s + i, n - i, q));
    if (a == b)
        return s_fail(p, "start equals end");
    c->start = (uint16_t)a;
    c->end = (uint16_t)b;
    return 0;
}

static int s_parse_hours(const struct pctx *p, struct clause *c)
{
    char q[SHOW_MAX + 4];
    const char *s = p->s;
    size_t n = p->n, i = 5;
    c->kind = C_HOURS;
    while (i < n && s_is_space(s[i]))
        i++;
    if (i == n)
        return s_fail(p, "expected hours 0..23 after \"hours\"");
    for (;;) {
        size_t at = i;
        long h;
        size_t l = s_digits(s, n, &i, &h);
        if (l == 0)
            return s_fail(p, "expected an hour at \"%s\"", s_show(s + at, n - at, q));
        if (l > 2 || h > 23)
            return s_fail(p, "hour \"%s\" outside 0..23", s_show(s + at, l, q));
        if (!(c->hours & (1u << h))) {
            c->hours |= 1u << h;
            c->order[c->norder++] = (uint8_t)h;
        }
        while (i < n && s_is_space(s[i]))
            i++;
        if (i == n)
            return 0;
        if (s[i] != ',')
            return s_fail(p, "trailing junk \"%s\"", s_show(s + i, n - i, q));
        i++;
        while (i < n && s_is_space(s[i]))
            i++;
    }
}

/* YYYY-MM-DD at s[*i]: days since the epoch. */
static int s_parse_date(const struct pctx *p, const char *s, size_t n, size_t *i, int32_t *day)
{
    char q[SHOW_MAX + 4];
    size_t at = *i;
    long y, m, d;
    int ok = s_digits(s, n, i, &y) == 4 && *i < n && s[(*i)++] == '-' &&
             s_digits(s, n, i, &m) == 2 && *i < n && s[(*i)++] == '-' && s_digits(s, n, i, &d) == 2;
    size_t shown = 10 < n - at ? 10 : n - at;
    if (!ok)
        return s_fail(p, "expected a date YYYY-MM-DD at \"%s\"", s_show(s + at, n - at, q));
    if (m < 1 || m > 12 || d < 1 || d > s_mdays((int)y, (int)m))
        return s_fail(p, "bad date \"%s\"", s_show(s + at, shown, q));
    *day = (int32_t)s_days_from_civil(y, (int)m, (int)d);
    return 0;
}

static int s_parse_blackout(const struct pctx *p, struct clause *c)
{
    char q[SHOW_MAX + 4];
    const char *s = p->s;
    size_t n = p->n, i = 1;
    c->kind = C_BLACKOUT;
    int rc = s_parse_date(p, s, n, &i, &c->from);
    if (rc != 0)
        return rc;
    c->to = c->from;
    if (i + 1 < n && s[i] == '.' && s[i + 1] == '.') {
        i += 2;
        if ((rc = s_parse_date(p, s, n, &i, &c->to)) != 0)
            return rc;
        if (c->to < c->from)
            return s_fail(p, "blackout range ends before it starts");
    }
    if (i != n)
        return s_fail(p, "trailing junk \"%s\"", s_show(s + i, n - i, q));
    return 0;
}

static int s_parse_clause(const struct pctx *p, struct clause *c)
{
    memset(c, 0, sizeof *c);
    if (p->n == 0)
        return s_fail(p, "empty clause");
    if (p->s[0] == '!')
        return s_parse_blackout(p, c);
    if (p->n >= 5 && strncasecmp(p->s, "hours", 5) == 0 && (p->n == 5 || s_is_space(p->s[5])))
        return s_parse_hours(p, c);
    return s_parse_rule(p, c);
}

static void s_mark(window_t *w)
{
    w->mark[0] = 1;
    for (size_t k = 0; k < w->n; k++) {
        const struct clause *c = &w->c[k];
        if (c->kind == C_DAYS) {
            w->mark[c->start] = 1;
            w->mark[c->end % DAY_MIN] = 1;
        } else if (c->kind == C_HOURS) {
            for (int h = 0; h < 24; h++)
                w->mark[h * 60] = 1;
        }
    }
}

int window_parse(const char *spec, window_t **out, char *err, size_t errlen)
{
    assert(spec != NULL && out != NULL);
    *out = NULL;
    size_t len = strnlen(spec, WINDOW_SPEC_MAX + 1);
    if (len > WINDOW_SPEC_MAX) {
        util_errf(err, errlen, "spec longer than %d characters", WINDOW_SPEC_MAX);
        return -EINVAL;
    }
    size_t lead = 0;
    while (lead < len && s_is_space(spec[lead]))
        lead++;
    size_t nc = 0;
    if (lead < len) {
        nc = 1;
        for (size_t i = 0; i < len; i++)
            nc += spec[i] == ';';
    }
    window_t *w = calloc(1, sizeof *w + nc * sizeof w->c[0]);
    if (w == NULL) {
        util_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    const char *s = spec;
    for (size_t k = 0; k < nc; k++) {
        const char *e = memchr(s, ';', (size_t)(spec + len - s));
        if (e == NULL)
            e = spec + len;
        const char *a = s, *b = e;
        while (a < b && s_is_space(*a))
            a++;
        while (b > a && s_is_space(b[-1]))
            b--;
        struct pctx p = {
            .s = a, .n = (size_t)(b - a), .no = (int)k + 1, .err = err, .errlen = errlen};
        int rc = s_parse_clause(&p, &w->c[k]);
        if (rc != 0) {
            free(w);
            return rc;
        }
        w->allow_clauses += w->c[k].kind != C_BLACKOUT;
        s = e + 1;
    }
    w->n = nc;
    s_mark(w);
    *out = w;
    return 0;
}

void window_free(window_t *w)
{
    free(w);
}

/* ---- evaluation --------------------------------------------------------- */

static int s_allows_lt(const window_t *w, const struct lt *t)
{
    int yday = (t->wday + 6) % 7, allowed = w->allow_clauses == 0;
    for (size_t k = 0; k < w->n; k++) {
        const struct clause *c = &w->c[k];
        switch (c->kind) {
        case C_BLACKOUT:
            if (t->day >= c->from && t->day <= c->to)
                return 0;
            break;
        case C_HOURS:
            if (c->hours & (1u << (t->min / 60)))
                allowed = 1;
            break;
        case C_DAYS:
            if (c->end > c->start) {
                if ((c->days & (1u << t->wday)) && t->min >= c->start && t->min < c->end)
                    allowed = 1;
            } else {
                /* crosses midnight: the part after it belongs to the day before */
                if ((c->days & (1u << t->wday)) && t->min >= c->start)
                    allowed = 1;
                if ((c->days & (1u << yday)) && t->min < c->end)
                    allowed = 1;
            }
            break;
        }
    }
    return allowed;
}

/* Local time of t in the zone s_in_zone set. 0, or -EOVERFLOW when t is
 * beyond what localtime can represent. */
static int s_local(time_t t, struct lt *out)
{
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL)
        return -EOVERFLOW;
    out->wday = tm.tm_wday;
    out->min = tm.tm_hour * 60 + tm.tm_min;
    out->sec = tm.tm_sec > 59 ? 59 : tm.tm_sec;
    int64_t d = s_days_from_civil((int64_t)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    out->day = d > INT32_MAX ? INT32_MAX : d < INT32_MIN ? INT32_MIN : (int32_t)d;
    out->gmtoff = tm.tm_gmtoff;
    return 0;
}

/* now + span, or the largest time_t when that does not fit. */
static time_t s_add(time_t now, int64_t span)
{
    int64_t max = sizeof(time_t) >= 8 ? INT64_MAX : INT32_MAX;
    return (int64_t)now > max - span ? (time_t)max : (time_t)((int64_t)now + span);
}

/* The first instant t in [now, limit] at which s_allows_lt == want: now
 * itself, or the start of a local minute. -1 when there is none (or local
 * time fails). Runs inside s_in_zone. Steps from mark to mark (see top);
 * each step moves at least one minute, so at most (limit-now)/60 steps,
 * in practice a few per day. */
static time_t s_scan(const window_t *w, time_t now, int want, time_t limit)
{
    struct lt l, n;
    if (s_local(now, &l) != 0)
        return (time_t)-1;
    if (s_allows_lt(w, &l) == want)
        return now;
    time_t t = now - l.sec;
    while (t < limit) {
        int m = l.min + 1;
        while (m < DAY_MIN && !w->mark[m])
            m++;
        int64_t delta = m - l.min; /* minutes, >= 1 */
        time_t next = s_add(t, delta * 60);
        if (next <= t || s_local(next, &n) != 0)
            return (time_t)-1;
        if (n.gmtoff != l.gmtoff) {
            /* the offset changed in (t, next]: resume at its first minute */
            int64_t lo = 0, hi = delta;
            while (hi - lo > 1) {
                int64_t mid = lo + (hi - lo) / 2;
                struct lt x;
                if (s_local((time_t)(t + mid * 60), &x) != 0)
                    return (time_t)-1;
                if (x.gmtoff == l.gmtoff)
                    lo = mid;
                else
                    hi = mid;
            }
            next = (time_t)(t + hi * 60);
            if (s_local(next, &n) != 0)
                return (time_t)-1;
        }
        t = next;
        l = n;
        if (t > limit)
            break;
        if (s_allows_lt(w, &l) == want)
            return t;
    }
    return (time_t)-1;
}

struct job {
    const window_t *w;
    time_t now;
    int want;
    time_t limit;
    time_t found;
    int allowed; /* s_job_allows */
};

static void s_job_scan(struct job *j)
{
    j->found = s_scan(j->w, j->now, j->want, j->limit);
}

static void s_job_allows(struct job *j)
{
    struct lt l;
    j->allowed = s_local(j->now, &l) == 0 && s_allows_lt(j->w, &l);
}

/* Runs fn(job) with local time in zone tz (IANA name, "" = UTC), then puts
 * TZ back as it was (or unset) and calls tzset() again. The only place in
 * the file that touches TZ. 0, -EINVAL for a zone window_tz_valid refuses,
 * -ENOMEM. */
static int s_in_zone(const char *tz, void (*fn)(struct job *), struct job *job)
{
    if (!window_tz_valid(tz))
        return -EINVAL;
    char want[TZ_NAME_MAX + 2];
    snprintf(want, sizeof want, "%s%s", tz[0] ? ":" : "", tz[0] ? tz : "UTC0");
    const char *old = getenv("TZ");
    char *saved = NULL;
    if (old != NULL && (saved = strdup(old)) == NULL)
        return -ENOMEM;
    if (setenv("TZ", want, 1) != 0) {
        free(saved);
        return -ENOMEM;
    }
    tzset();
    fn(job);
    if (saved != NULL)
        setenv("TZ", saved, 1); /* the value fitted before, so it fits again */
    else
        unsetenv("TZ");
    tzset();
    free(saved);
    return 0;
}

int window_allows(const window_t *w, time_t now, const char *tz)
{
    if (w == NULL)
        return 1;
    struct job j = {.w = w, .now = now};
    int rc = s_in_zone(tz, s_job_allows, &j);
    if (rc != 0)
        return rc;
    return j.allowed;
}

time_t window_next_open(const window_t *w, time_t now, const char *tz)
{
    if (w == NULL)
        return now;
    struct job j = {.w = w, .now = now, .want = 1, .limit = s_add(now, NEXT_OPEN_SPAN)};
    if (s_in_zone(tz, s_job_scan, &j) != 0)
        return (time_t)-1;
    return j.found;
}

int64_t window_open_left(const window_t *w, time_t now, const char *tz)
{
    if (w == NULL)
        return OPEN_LEFT_SPAN;
    struct job j = {.w = w, .now = now, .want = 0, .limit = s_add(now, OPEN_LEFT_SPAN)};
    if (s_in_zone(tz, s_job_scan, &j) != 0)
        return 0;
    if (j.found == now)
        return 0; /* closed now */
    if (j.found == (time_t)-1)
        return OPEN_LEFT_SPAN;
    int64_t left = (int64_t)j.found - (int64_t)now;
    return left > OPEN_LEFT_SPAN ? OPEN_LEFT_SPAN : left;
}

/* ---- the rest ------------------------------------------------------------ */

static void s_add_hour(uint8_t *list, int *n, uint32_t *seen, int h)
{
    if (!(*seen & (1u << h))) {
        *seen |= 1u << h;
        list[(*n)++] = (uint8_t)h;
    }
}

void window_hours_list(const window_t *w, char *out, size_t n)
{
    if (n == 0)
        return;
    out[0] = '\0';
    if (w == NULL || w->allow_clauses == 0)
        return;
    uint8_t list[24];
    int cnt = 0;
    uint32_t seen = 0;
    for (size_t k = 0; k < w->n; k++) {
        const struct clause *c = &w->c[k];
        if (c->kind == C_HOURS) {
            for (int i = 0; i < c->norder; i++)
                s_add_hour(list, &cnt, &seen, c->order[i]);
        } else if (c->kind == C_DAYS) {
            int first = c->start / 60;
            int last = (c->end + DAY_MIN - 1) / 60 % 24; /* hour holding the last minute */
            for (int h = first;; h = (h + 1) % 24) {
                s_add_hour(list, &cnt, &seen, h);
                if (h == last)
                    break;
            }
        }
    }
    if (cnt == 24)
        return;
    size_t o = 0;
    for (int i = 0; i < cnt; i++) {
        char num[4];
        int l = snprintf(num, sizeof num, "%s%d", i ? "," : "", list[i]);
        if (o + (size_t)l >= n)
            break; /* never a cut number */
        memcpy(out + o, num, (size_t)l + 1);
        o += (size_t)l;
    }
}

uint32_t window_spread(const uint8_t mac[6], uint32_t spread_s)
{
    if (spread_s == 0)
        return 0;
    /* FNV-1a, 64 bits: the devices of a site share the OUI and differ in the
     * last bytes, and the 64-bit variant spreads those well enough mod any
     * spread an operator picks */
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 6; i++) {
        h ^= mac[i];
        h *= 0x100000001b3ull;
    }
    return (uint32_t)(h % spread_s);
}

static int s_tz_char(int c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '+' || c == '.';
}

int window_tz_valid(const char *tz)
{
    if (tz == NULL)
        return 0;
    if (tz[0] == '\0')
        return 1;
    size_t n = strnlen(tz, TZ_NAME_MAX + 1);
    if (n > TZ_NAME_MAX)
        return 0;
    /* components of [A-Za-z0-9_+-.], none empty, none "." or ".." */
    for (size_t i = 0; i < n;) {
        size_t l = s_span(tz + i, n - i, s_tz_char);
        if (l == 0 || (l == 1 && tz[i] == '.') || (l == 2 && tz[i] == '.' && tz[i + 1] == '.'))
            return 0;
        i += l;
        if (i == n)
            break;
        if (tz[i] != '/' || i + 1 == n)
            return 0;
        i++;
    }
    char path[sizeof ZONEINFO + TZ_NAME_MAX];
    snprintf(path, sizeof path, "%s%s", ZONEINFO, tz);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
