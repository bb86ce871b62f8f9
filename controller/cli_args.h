/* cli_args.h: argument parsing for the firmfleet CLI. Pure: no I/O except the
 * usage text printers, no globals besides the constant command table.
 *
 * Grammar:
 *   firmfleet [GLOBAL...] NOUN VERB [ARG...] [OPTION...]
 * GLOBAL options may appear anywhere (before the noun or among the command's
 * options): -d DIR / --data-dir DIR, -A EP / --admin EP, --json,
 * --user NAME, --timeout SECONDS, --key FILE, --server-key KEY, -h / --help. Command options are only
 * accepted after NOUN VERB and must be in that command's table. Values are
 * given as `--opt value` or `--opt=value`; a following word that starts with
 * "--" is not taken as a value (write `--opt=--x` for that). `--` ends
 * option parsing. A flag given a value, an unknown option, a missing value,
 * a repeated option (unless its table entry says CLI_VALUES), a missing
 * required option or a wrong argument count is a usage error with a one-line
 * message. Repeated values are kept in command-line order.
 *
 * argv strings are borrowed: a parsed cli_args points into argv.
 */
#ifndef FF_CLI_ARGS_H
#define FF_CLI_ARGS_H

#include <stddef.h>
#include <stdio.h>

#define CLI_MAX_OPTS 80 /* command options per command line, repeats included */

enum { CLI_FLAG = 0, CLI_VALUE = 1, CLI_VALUES = 2 };

struct cli_opt {
    const char *name;    /* without the leading "--" */
    int takes_value;     /* CLI_FLAG, CLI_VALUE (--name VALUE) or CLI_VALUES
                          * (--name VALUE, may be given again) */
    int required;        /* must be given */
    const char *metavar; /* for usage text */
    const char *help;
};

struct cli_cmd {
    const char *noun, *verb;
    const char *args_usage;     /* e.g. "NAME" */
    int min_args, max_args;     /* max_args -1: unlimited */
    const struct cli_opt *opts; /* terminated by {NULL} */
    const char *help;
};

struct cli_args {
    const char *datadir, *endpoint, *user, *timeout;
    const char *key, *server_key; /* --key FILE, --server-key KEY|FILE (tcp admin) */
    int json;
    int help;                /* help asked for: print usage(noun) and exit 0 */
    const char *noun, *verb; /* as typed; noun may be set while cmd is NULL (help) */
    const struct cli_cmd *cmd;
    const char **args; /* positional arguments after NOUN VERB (malloc'd array) */
    int nargs;
    struct {
        const char *name, *value; /* value "1" for flags */
    } opts[CLI_MAX_OPTS];
    int nopts;
};

enum { CLI_RUN = 0, CLI_HELP = 1 };

/* Parses argv. Returns CLI_RUN (a->cmd set), CLI_HELP (a->noun may name the
 * noun whose usage is wanted), or -EINVAL with a one-line message in err
 * (exit status 2) or -ENOMEM. Call cli_args_free afterwards in every case. */
int cli_args_parse(int argc, char *const argv[], struct cli_args *a, char *err, size_t errlen);
void cli_args_free(struct cli_args *a);

/* Value of a command option (the first, for a repeated one), or NULL when
 * not given. */
const char *cli_args_opt(const struct cli_args *a, const char *name);

/* The command table entry, or NULL. */
const struct cli_cmd *cli_cmd_find(const char *noun, const char *verb);
/* 1 when noun has at least one verb. */
int cli_noun_known(const char *noun);

/* Usage text: global (noun NULL or unknown) or for one noun. */
void cli_usage(FILE *f, const char *noun);

#endif
