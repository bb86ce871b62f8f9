/* firmfleet.c: the operator CLI's main. Parses the arguments (cli_args),
 * runs the command (cli_cmd) and maps the outcome to the exit status:
 * 0 success, 1 the command failed, 2 usage error, 130 (143) a rollout
 * watch ended by SIGINT (SIGTERM). Every failure prints exactly one line on
 * stderr: "firmfleet: <message>"; an interrupted watch prints nothing.
 * `firmfleet --version` alone prints the release (after a noun, --version is
 * the command's option: device add --version).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_watch.h"
#include "util.h"

int main(int argc, char **argv)
{
    struct cli_args a;
    char err[1024] = "";
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("firmfleet %s\n", FF_VERSION);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    int rc = cli_args_parse(argc, argv, &a, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "firmfleet: %s\n", err);
        cli_args_free(&a);
        return 2;
    }
    if (rc == CLI_HELP) {
        cli_usage(stdout, a.noun);
        cli_args_free(&a);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    rc = cli_run(&a, err, sizeof err);
    cli_args_free(&a);
    if (rc == CLI_EXIT_SIGINT || rc == CLI_EXIT_SIGTERM)
        return rc;
    if (rc != 0) {
        fprintf(stderr, "firmfleet: %s\n", err[0] ? err : "failed");
        return 1;
    }
    return 0;
}
