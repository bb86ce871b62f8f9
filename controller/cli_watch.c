/* cli_watch.c: `firmfleet rollout watch` (see cli_watch.h).
 *
 * Invariants: the frame and the plain line are built by pure functions from
 * the status document alone (unit-tested); every byte taken from the
 * document is made printable before it reaches the terminal, so the
 * controller's data cannot drive it; escape sequences are written only when
 * stdout is a terminal; the cursor is hidden only between the first frame
 * and the return of cli_watch_run, which shows it again on every path.
 *
 * The redraw moves the cursor up over the previous frame and rewrites it
 * line by line (each cleared to its end), then clears below: no full-screen
 * clear, so the operator's scrollback stays. Lines are cut to the width and
 * the frame to the height so that nothing wraps or scrolls, which is what
 * keeps "up N lines" right. Polls are paced from the start of each one.
 */
#define _GNU_SOURCE
#include "cli_watch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli_render.h"
#include "util.h"

/* Set by the signal handlers; the only state shared with them. */
static volatile sig_atomic_t s_stop;

volatile sig_atomic_t *cli_watch_stop_flag(void)
{
    return &s_stop;
}

static void s_on_signal(int sig)
{
    s_stop = sig;
}

int cli_watch_end(const json_t *status)
{
    const char *st =
        json_string_value(json_object_get(json_object_get(status, "rollout"), "state"));
    if (st == NULL)
        return 0;
    if (strcmp(st, "done") == 0)
        return 1;
    if (strcmp(st, "halted") == 0 || strcmp(st, "aborted") == 0)
        return -1;
    return 0;
}

/* Printable copy of s into out (n > 0): bytes outside printable ASCII
 * become '?', '"' becomes '\'', and with word set spaces become '_'. */
static const char *s_word(const char *s, char *out, size_t n, int word)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : "-"); *p && o + 1 < n; p++) {
        unsigned char c = *p;
        if (c < 0x20 || c >= 0x7f)
            c = '?';
        else if (word && c == ' ')
            c = '_';
        else if (c == '"')
            c = '\'';
        out[o++] = (char)c;
    }
    out[o] = '\0';
    if (o == 0 && n > 1)
        snprintf(out, n, "-");
    return out;
}

static const char *s_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* "2/3" or "-/3" */
static void s_wave_pos(const json_t *status, char *out, size_t n)
{
    const json_t *cw = json_object_get(json_object_get(status, "rollout"), "current_wave");
    size_t nw = json_array_size(json_object_get(status, "waves"));
    if (json_is_integer(cw) && json_integer_value(cw) > 0)
        snprintf(out, n, "%lld/%zu", (long long)json_integer_value(cw), nw);
    else
        snprintf(out, n, "-/%zu", nw);
}

void cli_watch_line(const json_t *status, time_t now, char *out, size_t n)
{
    const json_t *ro = json_object_get(status, "rollout");
    char when[32], name[80], state[40], wave[48], reason[200];
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL || strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(when, sizeof when, "-");
    struct cli_tally t;
    cli_tally(json_object_get(status, "counts"), json_object_get(ro, "total"), &t);
    s_wave_pos(status, wave, sizeof wave);
    int w = snprintf(out, n,
                     "%s %s %s wave %s succeeded %lld/%lld failed %lld in_progress %lld "
                     "waiting %lld",
                     when, s_word(s_str(ro, "name"), name, sizeof name, 1),
                     s_word(s_str(ro, "state"), state, sizeof state, 1), wave, t.done, t.total,
                     t.failed, t.active, t.waiting);
    const char *r = s_str(ro, "reason");
    if (r && *r && w >= 0 && (size_t)w < n)
        snprintf(out + w, n - (size_t)w, " reason \"%s\"", s_word(r, reason, sizeof reason, 0));
}

/* ---- the frame ---- */

struct frame {
    char *buf;
    size_t len, cap;
    int lines, cols;
    int oom;
};

static void s_line(struct frame *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_line(struct frame *f, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    size_t keep = strlen(tmp);
    size_t maxw = f->cols > 1 ? (size_t)f->cols - 1 : 1;
    if (keep > maxw)
        keep = maxw;
    if (f->len + keep + 2 > f->cap) {
        size_t cap = (f->cap ? f->cap * 2 : 1024) + keep + 2;
        char *nb = realloc(f->buf, cap);
        if (nb == NULL) {
            f->oom = 1;
            return;
        }
        f->buf = nb;
        f->cap = cap;
    }
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)tmp[i];
        f->buf[f->len++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    f->buf[f->len++] = '\n';
    f->buf[f->len] = '\0';
    f->lines++;
}

struct row {
    char label[80];
    char suffix[96];
    struct cli_tally t;
};

/* Rows for the waves or the sites of a status document; *nrows set. */
static struct row *s_rows(const json_t *arr, int waves, size_t *nrows)
{
    size_t n = json_array_size(arr), i;
    const json_t *it;
    struct row *rows = calloc(n ? n : 1, sizeof *rows);
    *nrows = 0;
    if (rows == NULL)
        return NULL;
    json_array_foreach(arr, i, it)
    {
        struct row *r = &rows[i];
        char word[64];
        if (waves) {
            const json_t *wn = json_object_get(it, "wave");
            snprintf(r->label, sizeof r->label, "wave %lld",
                     json_is_integer(wn) ? (long long)json_integer_value(wn) : (long long)i + 1);
            cli_tally(json_object_get(it, "counts"), json_object_get(it, "size"), &r->t);
        } else {
            snprintf(r->label, sizeof r->label, "site %s",
                     s_word(s_str(it, "site"), word, sizeof word, 1));
            cli_tally(json_object_get(it, "counts"), json_object_get(it, "total"), &r->t);
        }
        int w = snprintf(r->suffix, sizeof r->suffix, "%lld/%lld  failed %lld", r->t.done,
                         r->t.total, r->t.failed);
        const char *st = waves ? s_str(it, "state") : NULL;
        if (st && w > 0 && (size_t)w < sizeof r->suffix)
            snprintf(r->suffix + w, sizeof r->suffix - (size_t)w, "  %s",
                     s_word(st, word, sizeof word, 1));
        if (!waves && w > 0 && (size_t)w < sizeof r->suffix) {
            const json_t *sg = json_object_get(it, "staged");
            if (json_is_true(sg) || (json_is_integer(sg) && json_integer_value(sg)))
                snprintf(r->suffix + w, sizeof r->suffix - (size_t)w, "  staged");
        }
    }
    *nrows = n;
    return rows;
}

/* Bars of one section, aligned on lw/sw; at most room lines. */
static void s_bars(struct frame *f, const struct row *rows, size_t n, int lw, int sw, int room,
                   const char *what)
{
    int barw = f->cols - 1 - lw - 2 - 2 - sw;
    if (barw < 12)
        barw = 12;
    char bar[512];
    if (barw > (int)sizeof bar - 1)
        barw = (int)sizeof bar - 1;
    size_t show = n;
    if ((int)n > room)
        show = room > 1 ? (size_t)room - 1 : 0;
    for (size_t i = 0; i < show; i++) {
        cli_bar(&rows[i].t, barw, bar, sizeof bar);
        s_line(f, "%-*s  %s  %s", lw, rows[i].label, bar, rows[i].suffix);
    }
    if (show < n && room > 0)
        s_line(f, "... %zu more %s", n - show, what);
}

char *cli_watch_frame(const json_t *status, const char *name, int cols, int max_lines,
                      const char *note)
{
    struct frame f = {NULL, 0, 0, 0, cols < 2 ? 2 : cols, 0};
    if (max_lines < 3)
        max_lines = 3;
    const json_t *ro = json_object_get(status, "rollout");
    char w1[80], w2[40], w3[100], w4[100], wave[48];
    int budget = max_lines - (note ? 1 : 0);
    if (ro == NULL) {
        s_line(&f, "rollout %s", s_word(name, w1, sizeof w1, 1));
        budget--;
    } else {
        const char *ws = s_str(ro, "waves");
        s_wave_pos(status, wave, sizeof wave);
        s_line(&f, "rollout %s  %s  %s  waves %s  wave %s",
               s_word(s_str(ro, "name"), w1, sizeof w1, 1),
               s_word(s_str(ro, "state"), w2, sizeof w2, 1),
               s_word(s_str(ro, "firmware"), w3, sizeof w3, 1),
               s_word(ws ? ws : "-", w4, sizeof w4, 1), wave);
        budget--;
        const char *reason = s_str(ro, "reason");
        if (reason && *reason && budget > 0) {
            char rb[400];
            s_line(&f, "reason: %s", s_word(reason, rb, sizeof rb, 0));
            budget--;
        }
        struct cli_tally t;
        cli_tally(json_object_get(status, "counts"), json_object_get(ro, "total"), &t);
        if (budget > 0) {
            s_line(&f, "succeeded %lld/%lld  failed %lld  in progress %lld  waiting %lld", t.done,
                   t.total, t.failed, t.active, t.waiting);
            budget--;
        }
        size_t nw = 0, ns = 0;
        struct row *wr = s_rows(json_object_get(status, "waves"), 1, &nw);
        struct row *sr = s_rows(json_object_get(status, "sites"), 0, &ns);
        int lw = 0, sw = 0;
        for (size_t i = 0; wr && i < nw; i++) {
            lw = (int)strlen(wr[i].label) > lw ? (int)strlen(wr[i].label) : lw;
            sw = (int)strlen(wr[i].suffix) > sw ? (int)strlen(wr[i].suffix) : sw;
        }
        for (size_t i = 0; sr && i < ns; i++) {
            lw = (int)strlen(sr[i].label) > lw ? (int)strlen(sr[i].label) : lw;
            sw = (int)strlen(sr[i].suffix) > sw ? (int)strlen(sr[i].suffix) : sw;
        }
        /* waves first; when there are sites, keep a blank line and one line
         * for them (a bar, or "... N more sites") */
        int keep = ns > 0 ? 2 : 0;
        if (wr && nw > 0 && budget - keep > 1) {
            s_line(&f, "%s", "");
            budget--;
            int before = f.lines;
            s_bars(&f, wr, nw, lw, sw, budget - keep, "waves");
            budget -= f.lines - before;
        }
        if (sr && ns > 0 && budget > 1) {
            s_line(&f, "%s", "");
            budget--;
            int before = f.lines;
            s_bars(&f, sr, ns, lw, sw, budget, "sites");
            budget -= f.lines - before;
        }
        free(wr);
        free(sr);
    }
    if (note)
        s_line(&f, "%s", note);
    if (f.oom || f.buf == NULL) {
        free(f.buf);
        return NULL;
    }
    return f.buf;
}

/* ---- the loop ---- */

struct screen {
    int tty;
    int lines; /* of the frame on screen */
};

static void s_term_size(int *cols, int *rows)
{
    struct winsize ws;
    *cols = 80;
    *rows = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
        if (ws.ws_col > 0)
            *cols = ws.ws_col;
        if (ws.ws_row > 0)
            *rows = ws.ws_row;
    }
}

static void s_draw(struct screen *sc, const json_t *doc, const char *name, const char *note)
{
    int cols, rows;
    s_term_size(&cols, &rows);
    char *fr = cli_watch_frame(doc, name, cols, rows - 1, note);
    if (fr == NULL)
        return;
    if (sc->lines > 0)
        printf("\r\033[%dA", sc->lines);
    int n = 0;
    for (char *p = fr, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        fwrite(p, 1, (size_t)(nl - p), stdout);
        fputs("\033[K\n", stdout);
        n++;
    }
    fputs("\033[J", stdout);
    fflush(stdout);
    sc->lines = n;
    free(fr);
}

static void s_sleep_until(uint64_t deadline)
{
    while (!s_stop) {
        uint64_t now = util_mono_ms();
        if (now >= deadline)
            return;
        uint64_t left = deadline - now;
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
        nanosleep(&ts, NULL); /* a signal cuts it short */
    }
}

/* Shows one fetched document in the mode of the watch. *prev (malloc'd or
 * NULL) is what was last printed, the plain line without its time or the
 * JSON text, so that an unchanged rollout prints nothing new. */
static void s_show(const struct cli_watch_cfg *cfg, struct screen *sc, const json_t *doc,
                   char **prev)
{
    if (sc->tty) {
        s_draw(sc, doc, cfg->name, NULL);
        return;
    }
    char line[1024];
    char *text = NULL;
    const char *key, *out;
    if (cfg->json) {
        text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        if (text == NULL)
            return;
        key = out = text;
    } else {
        cli_watch_line(doc, time(NULL), line, sizeof line);
        out = line;
        key = strchr(line, ' ') ? strchr(line, ' ') + 1 : line;
    }
    if (*prev == NULL || strcmp(key, *prev) != 0) {
        printf("%s\n", out);
        fflush(stdout);
        free(*prev);
        *prev = strdup(key);
    }
    free(text);
}

int cli_watch_run(const struct cli_watch_cfg *cfg, cli_watch_fetch_fn fetch, void *ctx, char *err,
                  size_t errlen)
{
    const char *term = getenv("TERM");
    struct screen sc = {0, 0};
    sc.tty = !cfg->json && isatty(STDOUT_FILENO) && !(term && strcmp(term, "dumb") == 0);
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a signal ends the wait in progress */
    s_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (sc.tty) {
        fputs("\033[?25l", stdout);
        fflush(stdout);
    }
    json_t *last = NULL;
    char *prev = NULL;
    int rc = -1, outage = 0;
    while (rc < 0 && !s_stop) {
        uint64_t t0 = util_mono_ms();
        json_t *doc = NULL;
        char ferr[512] = "";
        int fr = fetch(ctx, &doc, ferr, sizeof ferr);
        if (s_stop) {
            json_decref(doc);
            break;
        }
        if (fr == CLI_FETCH_REFUSED) {
            util_errf(err, errlen, "%s", ferr);
            rc = 1;
            break;
        }
        if (fr == CLI_FETCH_UNREACHABLE) {
            if (cfg->once) {
                util_errf(err, errlen, "%s", ferr);
                rc = 1;
                break;
            }
            if (sc.tty)
                s_draw(&sc, last, cfg->name, "controller unreachable, retrying");
            else if (!outage)
                fprintf(stderr, "firmfleet: controller unreachable, retrying (%s)\n", ferr);
            outage = 1;
        } else {
            outage = 0;
            json_decref(last);
            last = doc;
            s_show(cfg, &sc, last, &prev);
            int end = cli_watch_end(last);
            if (end != 0) {
                const json_t *ro = json_object_get(last, "rollout");
                const char *reason = s_str(ro, "reason");
                char w1[80], w2[40], rb[400];
                if (end > 0)
                    rc = 0;
                else if (reason && *reason)
                    rc = 1, util_errf(err, errlen, "rollout %s %s: %s",
                                      s_word(s_str(ro, "name"), w1, sizeof w1, 1),
                                      s_word(s_str(ro, "state"), w2, sizeof w2, 1),
                                      s_word(reason, rb, sizeof rb, 0));
                else
                    rc = 1, util_errf(err, errlen, "rollout %s %s",
                                      s_word(s_str(ro, "name"), w1, sizeof w1, 1),
                                      s_word(s_str(ro, "state"), w2, sizeof w2, 1));
                break;
            }
            if (cfg->once) {
                rc = 0;
                break;
            }
        }
        s_sleep_until(t0 + (uint64_t)cfg->interval_ms);
    }
    if (rc < 0)
        rc = s_stop == SIGTERM ? CLI_EXIT_SIGTERM : CLI_EXIT_SIGINT;
    if (sc.tty)
        fputs("\033[?25h", stdout);
    fflush(stdout);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    json_decref(last);
    free(prev);
    return rc;
}
