/* log.c: logfmt logging to stderr. One fprintf per line so lines from one
 * process never interleave; the timestamp is UTC with milliseconds. */
#include "log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level s_level = LOG_LEVEL_INFO;
static const char *s_component = "firmfleet";

void log_set_level(enum log_level level) { s_level = level; }
enum log_level log_get_level(void) { return s_level; }
void log_set_component(const char *name) { s_component = name; }

int log_parse_level(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

const char *log_quote(const char *s, char *out, size_t n)
{
    size_t o = 0;
    int bare = s[0] != '\0';
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p >= 0x7f)
            bare = 0;
    if (n == 0)
        return out;
    if (bare) {
        snprintf(out, n, "%s", s);
        return out;
    }
    if (o + 1 < n)
        out[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < n; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    if (o + 1 < n)
        out[o++] = '"';
    out[o] = '\0';
    return out;
}

void log_emit(enum log_level level, const char *event, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < s_level)
        return;
    char body[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "ts=%s.%03ldZ level=%s app=%s msg=%s%s%s\n", when, ts.tv_nsec / 1000000,
            names[level], s_component, event, body[0] ? " " : "", body);
}

int log_field(const char *line, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    if (n == 0 || kl == 0)
        return -1;
    const char *p = line;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *eq = p;
        while (*eq && *eq != '=' && *eq != ' ')
            eq++;
        int match = *eq == '=' && (size_t)(eq - p) == kl && memcmp(p, key, kl) == 0;
        const char *v = *eq == '=' ? eq + 1 : eq;
        size_t o = 0;
        if (*v == '"') {
            for (v++; *v && *v != '"'; v++) {
                int c = (unsigned char)*v;
                if (c == '\\' && (v[1] == '"' || v[1] == '\\')) {
                    c = (unsigned char)*++v;
                } else if (c == '\\' && v[1] == 'x' && isxdigit((unsigned char)v[2]) &&
                           isxdigit((unsigned char)v[3])) {
                    char hex[3] = {v[2], v[3], 0};
                    c = (int)strtol(hex, NULL, 16);
                    v += 3;
                }
                if (match && o + 1 < n)
                    out[o++] = (char)c;
            }
            if (*v != '"')
                return -1; /* unterminated quote */
            v++;
        } else {
            for (; *v && *v != ' '; v++)
                if (match && o + 1 < n)
                    out[o++] = *v;
        }
        if (match) {
            out[o] = '\0';
            return (int)o;
        }
        p = v;
    }
    return -1;
}
