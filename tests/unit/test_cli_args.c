/* test_cli_args.c: the CLI's argument parser (cli_args) and endpoint choice
 * (cli_endpoint): every command in the table parses, global options work
 * anywhere, and each kind of mistake is a one-line usage error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "cli_cmd.h"

#define ARGV(...) ((char *const[]){"firmfleet", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((const char *[]){"firmfleet", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(a, err, ...)                                                                         \
    cli_args_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (a), (err), sizeof(err))

/* Parses and expects a usage error whose message contains `want`. */
#define EXPECT_USAGE(want, ...)                                                                    \
    do {                                                                                           \
        struct cli_args a_;                                                                        \
        char e_[512];                                                                              \
        assert_int_equal(PARSE(&a_, e_, __VA_ARGS__), -EINVAL);                                    \
        if (strstr(e_, (want)) == NULL)                                                            \
            fail_msg("message '%s' lacks '%s'", e_, (want));                                       \
        assert_null(strchr(e_, '\n'));                                                             \
        cli_args_free(&a_);                                                                        \
    } while (0)

static void test_site_add(void **state)
{
    (void)state;
    struct cli_args a;
    char err[512];
    assert_int_equal(PARSE(&a, err, "site", "add", "berlin", "--tz", "Europe/Berlin",
                           "--description", "HQ branch"),
                     CLI_RUN);
    assert_non_null(a.cmd);
    assert_string_equal(a.cmd->noun, "site");
    assert_string_equal(a.cmd->verb, "add");
    assert_int_equal(a.nargs, 1);
    assert_string_equal(a.args[0], "berlin");
    assert_int_equal(a.nopts, 2);
    assert_string_equal(cli_args_opt(&a, "tz"), "Europe/Berlin");
    assert_string_equal(cli_args_opt(&a, "description"), "HQ branch");
    assert_null(cli_args_opt(&a, "name"));
    assert_int_equal(a.json, 0);
    cli_args_free(&a);
}

static void test_json_anywhere(void **state)
{
    (void)state;
    struct cli_args a;
    char err[512];
    assert_int_equal(PARSE(&a, err, "--json", "site", "list"), CLI_RUN);
    assert_int_equal(a.json, 1);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "site", "--json", "list"), CLI_RUN);
    assert_int_equal(a.json, 1);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "site", "show", "berlin", "--json"), CLI_RUN);
    assert_int_equal(a.json, 1);
    assert_string_equal(a.args[0], "berlin");
    cli_args_free(&a);
    assert_int_equal(
        PARSE(&a, err, "device", "add", "--json", "aa:bb:cc:dd:ee:ff", "--site", "berlin"),
        CLI_RUN);
    assert_int_equal(a.json, 1);
    assert_string_equal(a.args[0], "aa:bb:cc:dd:ee:ff");
    assert_string_equal(cli_args_opt(&a, "site"), "berlin");
    cli_args_free(&a);
}

static void test_globals(void **state)
{
    (void)state;
    struct cli_args a;
    char err[512];
    assert_int_equal(
        PARSE(&a, err, "-d", "/tmp/x", "--user", "alice", "site", "list", "--timeout", "5"),
        CLI_RUN);
    assert_string_equal(a.datadir, "/tmp/x");
    assert_string_equal(a.user, "alice");
    assert_string_equal(a.timeout, "5");
    assert_null(a.endpoint);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "-d/tmp/y", "site", "list"), CLI_RUN);
    assert_string_equal(a.datadir, "/tmp/y");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "site", "list", "-A", "tcp://127.0.0.1:7601"), CLI_RUN);
    assert_string_equal(a.endpoint, "tcp://127.0.0.1:7601");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "--admin=ipc:///tmp/a.sock", "site", "list"), CLI_RUN);
    assert_string_equal(a.endpoint, "ipc:///tmp/a.sock");
    cli_args_free(&a);
    EXPECT_USAGE("not both", "-d", "/tmp", "-A", "ipc:///x", "site", "list");
    EXPECT_USAGE("given twice", "-d", "/tmp", "-d", "/x", "site", "list");
    EXPECT_USAGE("needs a value", "site", "list", "-d");
    EXPECT_USAGE("needs a non-empty value", "--user=", "site", "list");
}

static void test_value_forms(void **state)
{
    (void)state;
    struct cli_args a;
    char err[512];
    assert_int_equal(PARSE(&a, err, "site", "add", "x", "--tz=UTC", "--description=a=b"), CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "tz"), "UTC");
    assert_string_equal(cli_args_opt(&a, "description"), "a=b");
    cli_args_free(&a);
    /* a value may start with a single dash; one starting with -- needs = */
    assert_int_equal(PARSE(&a, err, "site", "add", "x", "--tz", "UTC", "--description", "-x"),
                     CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "description"), "-x");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "site", "add", "x", "--tz", "UTC", "--description=--x"),
                     CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "description"), "--x");
    cli_args_free(&a);
    /* -- ends options */
    assert_int_equal(PARSE(&a, err, "site", "show", "--", "--weird"), CLI_RUN);
    assert_string_equal(a.args[0], "--weird");
    cli_args_free(&a);
    /* flags */
    assert_int_equal(PARSE(&a, err, "agent", "enroll", "--site", "b", "--out", "f", "--force"),
                     CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "force"), "1");
    assert_null(cli_args_opt(&a, "name"));
    cli_args_free(&a);
}

static void test_usage_errors(void **state)
{
    (void)state;
    EXPECT_USAGE("missing command", "--json");
    EXPECT_USAGE("unknown command 'frobnicate'", "frobnicate", "list");
    EXPECT_USAGE("unknown verb 'explode' for site", "site", "explode");
    EXPECT_USAGE("site: missing verb (add, list, show, set)", "site");
    EXPECT_USAGE("unknown option --bogus for 'site list'", "site", "list", "--bogus");
    EXPECT_USAGE("unknown option --model for 'site add'", "site", "add", "x", "--tz", "UTC",
                 "--model", "y");
    EXPECT_USAGE("unknown option -x", "-x", "site", "list");
    EXPECT_USAGE("unknown option -x", "site", "list", "-x");
    EXPECT_USAGE("option --tz needs a value", "site", "add", "x", "--tz");
    EXPECT_USAGE("option --tz needs a value", "site", "add", "x", "--tz", "--json");
    EXPECT_USAGE("option --force takes no value", "agent", "enroll", "--site", "b", "--out", "f",
                 "--force=yes");
    EXPECT_USAGE("option --json takes no value", "--json=1", "site", "list");
    EXPECT_USAGE("option --tz given twice", "site", "add", "x", "--tz", "UTC", "--tz", "UTC");
    EXPECT_USAGE("missing required option --tz", "site", "add", "x");
    EXPECT_USAGE("missing required option --out", "agent", "enroll", "--site", "b");
    EXPECT_USAGE("missing argument", "site", "add", "--tz", "UTC");
    EXPECT_USAGE("unexpected argument 'extra'", "site", "list", "extra");
    EXPECT_USAGE("unexpected argument 'y'", "device", "show", "x", "y");
    EXPECT_USAGE("missing argument", "firmware", "add", "cisco/1", "--models", "a");
    EXPECT_USAGE("must follow the command", "site", "--tz", "UTC", "add", "x");
    EXPECT_USAGE("unknown option --", "site", "list", "--=x");
    /* long garbage is cut and made printable */
    EXPECT_USAGE("unknown command 'a?b'", "a\nb", "list");
}

static void test_help(void **state)
{
    (void)state;
    struct cli_args a;
    char err[512];
    assert_int_equal(PARSE(&a, err, "help"), CLI_HELP);
    assert_null(a.noun);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "help", "device"), CLI_HELP);
    assert_string_equal(a.noun, "device");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "device", "--help"), CLI_HELP);
    assert_string_equal(a.noun, "device");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "-h"), CLI_HELP);
    cli_args_free(&a);
    /* help wins over missing required options */
    assert_int_equal(PARSE(&a, err, "site", "add", "--help"), CLI_HELP);
    cli_args_free(&a);
    EXPECT_USAGE("unknown command 'nope'", "help", "nope");
    EXPECT_USAGE("unknown command 'nope'", "nope", "--help");
}

static void test_every_command(void **state)
{
    (void)state;
    struct cli_args a;
    char err[512];
    assert_int_equal(
        PARSE(&a, err, "agent", "enroll", "--site", "b", "--name", "b1", "--out", "/tmp/c"),
        CLI_RUN);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "agent", "list"), CLI_RUN);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "agent", "revoke", "b1"), CLI_RUN);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "device", "import", "d.csv"), CLI_RUN);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "device", "list", "--site", "b", "--model", "m"), CLI_RUN);
    assert_int_equal(a.nopts, 2);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "firmware", "add", "cisco/9.4", "--models", "A,B", "f1", "n=f2",
                           "--description", "d", "f3"),
                     CLI_RUN);
    assert_int_equal(a.nargs, 4);
    assert_string_equal(a.args[2], "n=f2");
    assert_string_equal(a.args[3], "f3");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "firmware", "show", "cisco/9.4"), CLI_RUN);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "event", "list", "--agent", "a", "--site", "s", "--kind", "k",
                           "--mac", "m", "--limit", "0", "--since", "7"),
                     CLI_RUN);
    assert_int_equal(a.nopts, 6);
    assert_string_equal(cli_args_opt(&a, "since"), "7");
    cli_args_free(&a);
    static const char *const services[][2] = {
        {"subnet", "add"},    {"subnet", "list"},   {"subnet", "remove"},   {"class", "add"},
        {"class", "list"},    {"class", "show"},    {"class", "remove"},    {"template", "add"},
        {"template", "list"}, {"template", "show"}, {"template", "remove"},
    };
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
        assert_non_null(cli_cmd_find(services[i][0], services[i][1]));
    assert_int_equal(PARSE(&a, err, "device", "add", "00:04:f2:00:00:01", "--site", "b", "--ip",
                           "198.18.0.5", "--class", "cisco"),
                     CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "ip"), "198.18.0.5");
    assert_string_equal(cli_args_opt(&a, "class"), "cisco");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "template", "add", "SEP{mac}.cnf.xml", "--from", "f", "--site",
                           "b", "--replace"),
                     CLI_RUN);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "subnet", "remove", "b", "10.0.0.0/8"), CLI_RUN);
    cli_args_free(&a);
    assert_non_null(cli_cmd_find("site", "add"));
    assert_null(cli_cmd_find("site", "remove"));
    assert_null(cli_cmd_find(NULL, "add"));
    assert_true(cli_noun_known("event"));
    assert_true(cli_noun_known("rollout"));
    assert_true(cli_noun_known("profile"));
    assert_false(cli_noun_known("rollercoaster"));
}

/* --match and --option may be repeated (kept in order); nothing else may. */
static void test_repeated_options(void **state)
{
    (void)state;
    struct cli_args a;
    char err[512];
    assert_int_equal(PARSE(&a, err, "class", "add", "cisco", "--match", "vendor:a", "--option",
                           "66=x", "--match=oui:00:04:f2", "--priority", "5", "--option", "67=y",
                           "--match", "enterprise:9"),
                     CLI_RUN);
    assert_int_equal(a.nopts, 6);
    assert_string_equal(cli_args_opt(&a, "match"), "vendor:a"); /* the first */
    const char *matches[3];
    int n = 0;
    for (int i = 0; i < a.nopts; i++)
        if (strcmp(a.opts[i].name, "match") == 0)
            matches[n++] = a.opts[i].value;
    assert_int_equal(n, 3);
    assert_string_equal(matches[1], "oui:00:04:f2");
    assert_string_equal(matches[2], "enterprise:9");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "subnet", "add", "berlin", "198.18.0.0/24", "--pool",
                           "198.18.0.10-198.18.0.20", "--option", "66=a", "--option", "67=b"),
                     CLI_RUN);
    assert_int_equal(a.nargs, 2);
    assert_int_equal(a.nopts, 3);
    cli_args_free(&a);
    EXPECT_USAGE("option --priority given twice", "class", "add", "c", "--match", "vendor:a",
                 "--priority", "1", "--priority", "2");
    EXPECT_USAGE("option --pool given twice", "subnet", "add", "b", "10.0.0.0/8", "--pool", "x",
                 "--pool", "y");
    EXPECT_USAGE("missing required option --match", "class", "add", "c", "--option", "66=x");
    EXPECT_USAGE("missing required option --pool", "subnet", "add", "b", "10.0.0.0/8");
    EXPECT_USAGE("missing required option --from", "template", "add", "x.cfg");
    EXPECT_USAGE("option --match needs a value", "class", "add", "c", "--match");
    EXPECT_USAGE("unknown option --match for 'subnet add'", "subnet", "add", "b", "10.0.0.0/8",
                 "--pool", "x", "--match", "vendor:a");
    /* many repeats fit */
    char *argv[2 + 2 + 2 * 70 + 1];
    int argc = 0;
    argv[argc++] = (char *)"firmfleet";
    argv[argc++] = (char *)"class";
    argv[argc++] = (char *)"add";
    argv[argc++] = (char *)"c";
    for (int i = 0; i < 70; i++) {
        argv[argc++] = (char *)"--match";
        argv[argc++] = (char *)"vendor:x";
    }
    argv[argc] = NULL;
    assert_int_equal(cli_args_parse(argc, argv, &a, err, sizeof err), CLI_RUN);
    assert_int_equal(a.nopts, 70);
    cli_args_free(&a);
}

/* rollouts, profiles, device set, site set, class add --window */
static void test_rollout_commands(void **state)
{
    (void)state;
    struct cli_args a;
    char err[512];
    assert_int_equal(PARSE(&a, err, "rollout", "create", "r1", "--firmware", "cisco/8.12.0",
                           "--profile", "cisco-79xx", "--sites", "berlin,paris", "--models",
                           "CP-7940G", "--tags", "lobby", "--devices", "d.txt", "--waves",
                           "5,10%,100%", "--max-failures", "2", "--site-concurrency", "4",
                           "--window", "daily 22:00-05:00", "--start-at", "2026-11-22T22:00",
                           "--boot-grace", "10m", "--stage-fresh", "--spread", "30m",
                           "--verify-timeout", "15m", "--timeouts", "downloading=1h,offered=2h"),
                     CLI_RUN);
    assert_string_equal(a.cmd->noun, "rollout");
    assert_string_equal(a.cmd->verb, "create");
    assert_string_equal(a.args[0], "r1");
    assert_int_equal(a.nopts, 16);
    assert_string_equal(cli_args_opt(&a, "max-failures"), "2");
    assert_string_equal(cli_args_opt(&a, "site-concurrency"), "4");
    assert_string_equal(cli_args_opt(&a, "stage-fresh"), "1");
    assert_string_equal(cli_args_opt(&a, "window"), "daily 22:00-05:00");
    assert_string_equal(cli_args_opt(&a, "timeouts"), "downloading=1h,offered=2h");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "rollout", "create", "r2", "--firmware=cisco/8.12.0",
                           "--profile=p", "--max-failures=10%"),
                     CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "max-failures"), "10%");
    cli_args_free(&a);
    static char verbs[][8] = {"start", "pause", "resume", "abort", "status", "watch"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        char *argv[] = {(char *)"firmfleet", (char *)"rollout", verbs[i], (char *)"r1", NULL};
        assert_int_equal(cli_args_parse(4, argv, &a, err, sizeof err), CLI_RUN);
        cli_args_free(&a);
    }
    assert_int_equal(PARSE(&a, err, "rollout", "list", "--json"), CLI_RUN);
    assert_int_equal(a.json, 1);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "rollout", "status", "r1", "--devices"), CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "devices"), "1");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "rollout", "watch", "r1", "--interval", "0.5", "--once"),
                     CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "interval"), "0.5");
    assert_string_equal(cli_args_opt(&a, "once"), "1");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "profile", "add", "p.json", "--replace"), CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "replace"), "1");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "profile", "list"), CLI_RUN);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "profile", "show", "cisco-79xx", "--json"), CLI_RUN);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "profile", "remove", "cisco-79xx"), CLI_RUN);
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "device", "set", "00:04:f2:00:00:01", "--version", "8.12.0",
                           "--serial-config", "c1", "--serial-firmware", "f1", "--serial-boot",
                           "b1", "--profile", "cisco-79xx"),
                     CLI_RUN);
    assert_int_equal(a.nopts, 5);
    assert_string_equal(cli_args_opt(&a, "serial-boot"), "b1");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "device", "set", "00:04:f2:00:00:01", "--profile="), CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "profile"), "");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "site", "set", "berlin", "--window", "Mon-Fri 22:00-05:00"),
                     CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "window"), "Mon-Fri 22:00-05:00");
    cli_args_free(&a);
    assert_int_equal(
        PARSE(&a, err, "class", "add", "c", "--match", "vendor:x", "--window", "hours 22,23,0"),
        CLI_RUN);
    assert_string_equal(cli_args_opt(&a, "window"), "hours 22,23,0");
    cli_args_free(&a);

    EXPECT_USAGE("missing required option --firmware", "rollout", "create", "r1", "--profile", "p");
    EXPECT_USAGE("missing required option --profile", "rollout", "create", "r1", "--firmware",
                 "cisco/1");
    EXPECT_USAGE("rollout create: missing argument", "rollout", "create", "--firmware", "v/1",
                 "--profile", "p");
    EXPECT_USAGE("option --waves given twice", "rollout", "create", "r1", "--firmware", "v/1",
                 "--profile", "p", "--waves", "5", "--waves", "10");
    EXPECT_USAGE("option --stage-fresh takes no value", "rollout", "create", "r1", "--firmware",
                 "v/1", "--profile", "p", "--stage-fresh=yes");
    EXPECT_USAGE("option --devices needs a value", "rollout", "create", "r1", "--firmware", "v/1",
                 "--profile", "p", "--devices");
    EXPECT_USAGE("unknown option --interval for 'rollout status'", "rollout", "status", "r1",
                 "--interval", "1");
    EXPECT_USAGE("unknown option --devices for 'rollout watch'", "rollout", "watch", "r1",
                 "--devices");
    EXPECT_USAGE("rollout watch: missing argument", "rollout", "watch");
    EXPECT_USAGE("unexpected argument 'r2'", "rollout", "start", "r1", "r2");
    EXPECT_USAGE("unknown verb 'launch' for rollout (create, start, pause, resume, abort, list, "
                 "status, watch)",
                 "rollout", "launch", "r1");
    EXPECT_USAGE("missing required option --window", "site", "set", "berlin");
    EXPECT_USAGE("unknown option --tz for 'site set'", "site", "set", "berlin", "--window", "",
                 "--tz", "UTC");
    EXPECT_USAGE("unknown option --site for 'device set'", "device", "set", "00:04:f2:00:00:01",
                 "--site", "b");
    EXPECT_USAGE("profile add: missing argument", "profile", "add", "--replace");
    EXPECT_USAGE("unexpected argument 'b.json'", "profile", "add", "a.json", "b.json");
    EXPECT_USAGE("option --window given twice", "class", "add", "c", "--match", "vendor:x",
                 "--window", "daily 0:00-1:00", "--window", "daily 2:00-3:00");
}

static void test_endpoint(void **state)
{
    (void)state;
    struct cli_args a;
    char err[512], ep[256];
    unsetenv("FIRMFLEET_ADMIN");
    assert_int_equal(PARSE(&a, err, "site", "list"), CLI_RUN);
    assert_int_equal(cli_endpoint(&a, ep, sizeof ep), 0);
    assert_string_equal(ep, "ipc:///var/lib/firmfleet/admin.sock");
    setenv("FIRMFLEET_ADMIN", "tcp://127.0.0.1:9", 1);
    assert_int_equal(cli_endpoint(&a, ep, sizeof ep), 0);
    assert_string_equal(ep, "tcp://127.0.0.1:9");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "-d", "/srv/ff", "site", "list"), CLI_RUN);
    assert_int_equal(cli_endpoint(&a, ep, sizeof ep), 0);
    assert_string_equal(ep, "ipc:///srv/ff/admin.sock");
    cli_args_free(&a);
    assert_int_equal(PARSE(&a, err, "-A", "ipc:///x.sock", "site", "list"), CLI_RUN);
    assert_int_equal(cli_endpoint(&a, ep, sizeof ep), 0);
    assert_string_equal(ep, "ipc:///x.sock");
    assert_int_equal(cli_endpoint(&a, ep, 5), -ENAMETOOLONG);
    cli_args_free(&a);
    unsetenv("FIRMFLEET_ADMIN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_site_add),         cmocka_unit_test(test_json_anywhere),
        cmocka_unit_test(test_globals),          cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_usage_errors),     cmocka_unit_test(test_help),
        cmocka_unit_test(test_every_command),    cmocka_unit_test(test_endpoint),
        cmocka_unit_test(test_repeated_options), cmocka_unit_test(test_rollout_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
