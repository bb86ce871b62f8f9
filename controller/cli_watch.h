/* cli_watch.h: `firmfleet rollout watch NAME`: polls the rollout's status and
 * shows it until the rollout ends.
 *
 * On a terminal (stdout a TTY and TERM not "dumb") one frame is redrawn in
 * place: a header, a counts line and one progress bar per wave and per site
 * (cli_bar), every line cut to the terminal width (TIOCGWINSZ, else 80) and
 * the frame to its height, the cursor hidden while watching and shown again
 * on every way out. Anywhere else one plain line per change
 * (cli_watch_line), never an escape byte; with --json one compact status
 * document per change.
 *
 * Exit status: 0 when the rollout is done, 1 when it is halted or aborted
 * (the reason on stderr) or the controller refuses the request, 130 on
 * SIGINT (143 on SIGTERM). A controller that cannot be reached is shown as
 * "controller unreachable, retrying" and asked again every interval until
 * it answers or the operator interrupts; --once draws one frame and exits
 * (unreachable then is an error).
 */
#ifndef FF_CLI_WATCH_H
#define FF_CLI_WATCH_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <time.h>

#define CLI_EXIT_SIGINT 130
#define CLI_EXIT_SIGTERM 143

/* What a fetch did: the document, the controller said no (err), or the
 * controller could not be reached (err; try again later). */
enum { CLI_FETCH_OK = 0, CLI_FETCH_REFUSED = 1, CLI_FETCH_UNREACHABLE = 2 };

/* Fetches the rollout status document into *doc (caller owns). Returns a
 * CLI_FETCH_* value; when not OK, a one-line reason is in err. */
typedef int (*cli_watch_fetch_fn)(void *ctx, json_t **doc, char *err, size_t errlen);

struct cli_watch_cfg {
    const char *name; /* the rollout, for messages */
    int interval_ms;  /* between polls, > 0 */
    int once;
    int json;
};

/* Runs the watch loop on the calling thread; installs SIGINT/SIGTERM
 * handlers (no SA_RESTART) for its duration. Returns the exit status
 * (see above); for 1, a one-line message is in err. */
int cli_watch_run(const struct cli_watch_cfg *cfg, cli_watch_fetch_fn fetch, void *ctx, char *err,
                  size_t errlen);

/* The flag the signal handlers set (the signal number): a fetch may pass it
 * to cli_conn_set_interrupt so that a pending request gives up at once. */
volatile sig_atomic_t *cli_watch_stop_flag(void);

/* 1 when the status document's rollout state ends a watch successfully
 * (done), -1 when it ends it as a failure (halted, aborted), 0 otherwise. */
int cli_watch_end(const json_t *status);

/* The plain line for a status document at time now (UTC):
 * "2026-11-21T10:00:01Z r1 running wave 2/3 succeeded 5/20 failed 0
 *  in_progress 3 waiting 12 [reason "..."]". Printable ASCII only. Pure. */
void cli_watch_line(const json_t *status, time_t now, char *out, size_t n);

/* One terminal frame for a status document: lines separated by '\n', each
 * at most cols-1 bytes, at most max_lines lines (sites beyond that are
 * summarised as "... N more sites"); note (may be NULL) is added as the
 * last line. Returns a malloc'd string the caller frees, or NULL (out of
 * memory). status may be NULL (only the name and the note are shown). Pure. */
char *cli_watch_frame(const json_t *status, const char *name, int cols, int max_lines,
                      const char *note);

#endif
