/* cli_cmd.h: runs one parsed firmfleet command: local checks first (files
 * exist and are readable, the credential file may be written), then the
 * admin requests, then the output. Everything the operator must see on
 * failure is one line, returned in err.
 */
#ifndef FF_CLI_CMD_H
#define FF_CLI_CMD_H

#include <stddef.h>

#include "cli_args.h"

/* The admin endpoint for these arguments: -A, else -d DIR
 * (ipc://DIR/admin.sock), else $FIRMFLEET_ADMIN, else the default.
 * Writes into out (n bytes); 0 or -ENAMETOOLONG. */
int cli_endpoint(const struct cli_args *a, char *out, size_t n);

/* Runs a->cmd. Returns the exit status: 0, 1 with a one-line message in
 * err, or (rollout watch, event list --follow) 130/143 when SIGINT/SIGTERM
 * ended it, err empty. Output goes to stdout; upload progress to stderr when it is a
 * terminal. */
int cli_run(const struct cli_args *a, char *err, size_t errlen);

/* The MACs of a --devices file (text, len bytes, from path, which is only
 * used in messages): one per line, or the first column of a CSV (fields
 * separated by ',', ';', tab or space, optionally in double quotes);
 * blank lines and '#' comments are skipped, as is a first line whose first
 * field is "mac". On success *macs is the canonical MACs joined by ','
 * in file order (malloc'd, caller frees) and *count their number. Errors
 * (-EINVAL, one line in err, naming "path:line"): a field that is not a
 * MAC, a MAC given twice, no MAC at all; -ENOMEM. Pure. */
int cli_devices_parse(const char *path, const char *text, size_t len, char **macs, size_t *count,
                      char *err, size_t errlen);

#define CLI_PROFILE_MAX (256u << 10) /* bytes of one profile file */

#endif
