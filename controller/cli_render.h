/* cli_render.h: how the CLI prints results: the JSON document itself
 * (--json, indented, arrays for lists), or aligned human tables and
 * "key: value" blocks. Rendering never fails on unexpected documents: a
 * missing field prints as "-".
 */
#ifndef FF_CLI_RENDER_H
#define FF_CLI_RENDER_H

#include <jansson.h>
#include <stdio.h>

/* Prints doc as indented JSON and a newline. 0 or -EIO. */
int cli_render_json(FILE *f, const json_t *doc);

/* Human output of the result of NOUN VERB (see cli_render.c for the tables). */
void cli_render_human(FILE *f, const char *noun, const char *verb, const json_t *doc);

/* The line that goes beside the human output of NOUN VERB (the CLI writes
 * it to stderr), or nothing. profile show prints the profile's text alone,
 * so that it can be piped; whether that text is signed, and by which key,
 * is said here: "profile NAME: signed by key ID" or "profile NAME: unsigned". */
void cli_render_note(FILE *f, const char *noun, const char *verb, const json_t *doc);

/* One event (an element of event list) as one line for event list --follow:
 * id, time, agent, kind, mac, detail, two spaces apart (fields are cleaned
 * of control characters, so an event is always exactly one line). */
void cli_render_event_line(FILE *f, const json_t *ev);

/* How a rollout's devices stand, from a "counts" object of rollout status
 * (keys pending .. cancelled; missing keys count 0). total: the given
 * integer when it is positive, else the sum of the counts. */
struct cli_tally {
    long long total;
    long long done; /* succeeded + skipped (already at the version) */
    long long failed;
    long long active;  /* offered + downloading + installed + verifying */
    long long waiting; /* pending + assigned + waiting_window */
};
void cli_tally(const json_t *counts, const json_t *total, struct cli_tally *t);

/* The progress bar of t, exactly width bytes: "[", width-2 cells, "]";
 * cells '#' done, 'x' failed, '>' in progress, '-' the rest, in that order,
 * proportional to total (a non-zero failed or in-progress count gets at
 * least one cell when there is room). Writes into out (n > width).
 * 0, or -EINVAL when width < 3 or n <= width (out then holds ""). Pure. */
int cli_bar(const struct cli_tally *t, int width, char *out, size_t n);

/* The device states of a rollout in order, NULL-terminated. */
const char *const *cli_rollout_states(void);

/* A time field as local "YYYY-MM-DD HH:MM:SS": integers are ms since the
 * epoch (seconds when below 10^11), strings are shown as they are; "-" for
 * 0, null or missing. */
void cli_fmt_when(const json_t *v, char *out, size_t n);

/* Formats ms since the epoch as local "YYYY-MM-DD HH:MM:SS" ("-" for 0/null). */
void cli_fmt_time(const json_t *ms, char *out, size_t n);
/* Formats a byte count as "1.5 MiB" (exact below 1 KiB). */
void cli_fmt_size(long long bytes, char *out, size_t n);

#endif
