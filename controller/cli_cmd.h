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

/* Runs a->cmd. Returns 0, or 1 with a one-line message in err. Output goes
 * to stdout; upload progress to stderr when it is a terminal. */
int cli_run(const struct cli_args *a, char *err, size_t errlen);

#endif
