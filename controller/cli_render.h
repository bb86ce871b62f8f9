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

/* Formats ms since the epoch as local "YYYY-MM-DD HH:MM:SS" ("-" for 0/null). */
void cli_fmt_time(const json_t *ms, char *out, size_t n);
/* Formats a byte count as "1.5 MiB" (exact below 1 KiB). */
void cli_fmt_size(long long bytes, char *out, size_t n);

#endif
