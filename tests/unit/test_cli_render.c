/* test_cli_render.c: what the CLI shows for rollouts and profiles, from
 * canned controller documents: the progress bar (cli_bar) as a pure
 * function, the human `rollout status`, the plain watch line and the watch
 * frame (width, height, no escape bytes from data), the --devices file
 * reader (cli_devices_parse), and signed and unsigned profiles in profile
 * list, show (its note) and add.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_cmd.h"
#include "cli_render.h"
#include "cli_watch.h"

/* 2026-11-21T10:00:00Z in ms */
#define T0 1795255200000LL

static const char *s_status_doc =
    "{\"rollout\":{\"id\":3,\"name\":\"r1\",\"state\":\"running\",\"reason\":\"\","
    "\"firmware\":\"cisco/8.12.0\",\"version\":\"8.12.0\",\"profile\":\"cisco-79xx\","
    "\"waves\":\"5,10%,100%\",\"max_failures\":2,\"site_concurrency\":10,"
    "\"window\":\"daily 22:00-05:00\",\"current_wave\":2,\"total\":20,"
    "\"created_at\":1795255200000,\"started_at\":1795255260000,\"finished_at\":null},"
    "\"counts\":{\"pending\":9,\"assigned\":1,\"waiting_window\":0,\"offered\":0,"
    "\"downloading\":2,\"installed\":0,\"verifying\":1,\"succeeded\":5,\"failed\":1,"
    "\"skipped\":1,\"cancelled\":0},"
    "\"waves\":[{\"wave\":1,\"size\":5,\"state\":\"done\",\"counts\":{\"succeeded\":4,"
    "\"failed\":1}},"
    "{\"wave\":2,\"size\":5,\"state\":\"active\",\"counts\":{\"succeeded\":1,\"skipped\":1,"
    "\"downloading\":2,\"verifying\":1}},"
    "{\"wave\":3,\"size\":10,\"state\":\"waiting\",\"counts\":{\"pending\":9,\"assigned\":1}}],"
    "\"sites\":[{\"site\":\"berlin\",\"total\":12,\"staged\":true,\"counts\":{\"succeeded\":5,"
    "\"failed\":1,\"downloading\":2,\"pending\":4}},"
    "{\"site\":\"paris\",\"total\":8,\"staged\":false,\"counts\":{\"skipped\":1,"
    "\"verifying\":1,\"pending\":5,\"assigned\":1}}],"
    "\"failures\":[{\"mac\":\"00:04:f2:00:00:07\",\"site\":\"berlin\","
    "\"reason\":\"version 8.5.2 after reboot\",\"at\":1795255320000}]}";

static json_t *s_load(const char *text)
{
    json_error_t e;
    json_t *d = json_loads(text, 0, &e);
    if (d == NULL)
        fail_msg("bad canned JSON: %s at %d", e.text, e.position);
    return d;
}

/* What a renderer (cli_render_human or cli_render_note) printed, malloc'd
 * ("" for nothing). */
static char *s_capture(void (*fn)(FILE *, const char *, const char *, const json_t *),
                       const char *noun, const char *verb, const json_t *doc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(f, noun, verb, doc);
    fclose(f);
    return buf;
}

static char *s_render(const char *noun, const char *verb, const json_t *doc)
{
    return s_capture(cli_render_human, noun, verb, doc);
}

/* Checks that the renderer printed exactly want. */
static void s_expect(void (*fn)(FILE *, const char *, const char *, const json_t *),
                     const char *noun, const char *verb, const json_t *doc, const char *want)
{
    char *out = s_capture(fn, noun, verb, doc);
    assert_string_equal(out, want);
    free(out);
}

static void s_tally(struct cli_tally *t, long long total, long long done, long long failed,
                    long long active)
{
    memset(t, 0, sizeof *t);
    t->total = total;
    t->done = done;
    t->failed = failed;
    t->active = active;
}

static void test_bar(void **state)
{
    (void)state;
    struct cli_tally t;
    char bar[128];
    s_tally(&t, 10, 5, 1, 2);
    assert_int_equal(cli_bar(&t, 22, bar, sizeof bar), 0);
    assert_string_equal(bar, "[##########xx>>>>----]");
    s_tally(&t, 10, 10, 0, 0);
    assert_int_equal(cli_bar(&t, 12, bar, sizeof bar), 0);
    assert_string_equal(bar, "[##########]");
    s_tally(&t, 0, 0, 0, 0);
    assert_int_equal(cli_bar(&t, 8, bar, sizeof bar), 0);
    assert_string_equal(bar, "[------]");
    /* one failure among 1000 still shows */
    s_tally(&t, 1000, 500, 1, 0);
    assert_int_equal(cli_bar(&t, 12, bar, sizeof bar), 0);
    assert_string_equal(bar, "[####x-----]");
    /* one in progress next to everything else done */
    s_tally(&t, 100, 99, 0, 1);
    assert_int_equal(cli_bar(&t, 12, bar, sizeof bar), 0);
    assert_string_equal(bar, "[#########>]");
    /* counts above the total: full, never longer */
    s_tally(&t, 4, 9, 3, 0);
    assert_int_equal(cli_bar(&t, 10, bar, sizeof bar), 0);
    assert_int_equal(strlen(bar), 10);
    assert_string_equal(bar, "[#######x]");
    /* every width is exact */
    s_tally(&t, 7, 2, 1, 3);
    for (int w = 3; w < 100; w++) {
        assert_int_equal(cli_bar(&t, w, bar, sizeof bar), 0);
        assert_int_equal(strlen(bar), (size_t)w);
    }
    assert_int_equal(cli_bar(&t, 2, bar, sizeof bar), -EINVAL);
    assert_string_equal(bar, "");
    assert_int_equal(cli_bar(&t, 10, bar, 10), -EINVAL);
}

static void test_tally(void **state)
{
    (void)state;
    json_t *doc = s_load(s_status_doc);
    struct cli_tally t;
    cli_tally(json_object_get(doc, "counts"), NULL, &t);
    assert_int_equal(t.total, 20);
    assert_int_equal(t.done, 6);
    assert_int_equal(t.failed, 1);
    assert_int_equal(t.active, 3);
    assert_int_equal(t.waiting, 10);
    json_t *ten = json_integer(50);
    cli_tally(json_object_get(doc, "counts"), ten, &t);
    assert_int_equal(t.total, 50);
    json_decref(ten);
    cli_tally(NULL, NULL, &t);
    assert_int_equal(t.total, 0);
    json_decref(doc);
}

static const char *s_status_human =
    "rollout:            r1\n"
    "state:              running\n"
    "reason:             -\n"
    "firmware:           cisco/8.12.0\n"
    "profile:            cisco-79xx\n"
    "waves:              5,10%,100%\n"
    "current wave:       2 of 3\n"
    "max failures:       2\n"
    "site concurrency:   10\n"
    "window:             daily 22:00-05:00\n"
    "created:            2026-11-21 10:00:00\n"
    "started:            2026-11-21 10:01:00\n"
    "finished:           -\n"
    "\n"
    "pending 9  assigned 1  waiting_window 0  offered 0  downloading 2  installed 0  "
    "verifying 1  succeeded 5  failed 1  skipped 1  cancelled 0  (20 devices)\n"
    "\n"
    "WAVE  STATE    DONE  FAILED  IN PROGRESS  WAITING\n"
    "1     done     4/5   1       0            0\n"
    "2     active   2/5   0       3            0\n"
    "3     waiting  0/10  0       0            10\n"
    "\n"
    "SITE    DONE  FAILED  IN PROGRESS  STAGED\n"
    "berlin  5/12  1       2            yes\n"
    "paris   1/8   0       1            no\n"
    "\n"
    "failures: 1\n"
    "MAC                SITE    AT                   REASON\n"
    "00:04:f2:00:00:07  berlin  2026-11-21 10:02:00  version 8.5.2 after reboot\n";

static void test_status_human(void **state)
{
    (void)state;
    json_t *doc = s_load(s_status_doc);
    s_expect(cli_render_human, "rollout", "status", doc, s_status_human);
    /* --devices adds the device table */
    json_object_set_new(doc, "devices",
                        s_load("[{\"mac\":\"00:04:f2:00:00:01\",\"site\":\"berlin\",\"model\":"
                               "\"CP-7940G\",\"wave\":1,\"state\":\"succeeded\",\"reason\":\"\","
                               "\"updated_at\":1795255300000}]"));
    char *out = s_render("rollout", "status", doc);
    assert_non_null(strstr(out, "\nMAC                SITE    MODEL     WAVE  STATE      UPDATED"
                                "              REASON\n00:04:f2:00:00:01  berlin  CP-7940G  1"
                                "     succeeded  2026-11-21 10:01:40  -\n"));
    free(out);
    /* a halted rollout shows its reason; missing parts print as "-" */
    json_decref(doc);
    doc = s_load("{\"rollout\":{\"name\":\"r2\",\"state\":\"halted\",\"reason\":\"2 failures\"}}");
    out = s_render("rollout", "status", doc);
    assert_non_null(strstr(out, "state:              halted\nreason:             2 failures\n"));
    assert_non_null(strstr(out, "(0 devices)\n"));
    assert_non_null(strstr(out, "failures: 0\n"));
    free(out);
    json_decref(doc);
}

static void test_lists_and_writes(void **state)
{
    (void)state;
    json_t *doc =
        s_load("{\"rollouts\":[{\"id\":1,\"name\":\"r1\",\"state\":\"running\","
               "\"reason\":\"\",\"firmware\":\"cisco/8.12.0\",\"profile\":\"cisco-79xx\","
               "\"total\":20,\"succeeded\":5,\"failed\":1,\"created_at\":1795255200000}]}");
    s_expect(cli_render_human, "rollout", "list", doc,
             "ID  NAME  STATE    FIRMWARE      PROFILE     DONE  FAILED  CREATED"
             "              REASON\n"
             "1   r1    running  cisco/8.12.0  cisco-79xx  5/20  1       "
             "2026-11-21 10:00:00  -\n");
    json_decref(doc);
    /* signed or not: a column each for the fact and the key's id */
    doc = s_load(
        "{\"profiles\":[{\"name\":\"cisco-79xx\",\"description\":\"Cisco 7940\","
        "\"source\":\"builtin\",\"priority\":100,\"signed\":false},"
        "{\"name\":\"yealink\",\"description\":\"Yealink T4x\",\"source\":\"operator\","
        "\"priority\":100,\"signed\":true,\"key_id\":\"0123456789abcdef\","
        "\"signer\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}]}");
    s_expect(cli_render_human, "profile", "list", doc,
             "NAME        PRIORITY  SOURCE    SIGNED  KEY               DESCRIPTION\n"
             "cisco-79xx  100       builtin   no      -                 Cisco 7940\n"
             "yealink     100       operator  yes     0123456789abcdef  Yealink T4x\n");
    json_decref(doc);
    /* show: the text alone (it is piped into files and jq); signed or not
     * is the note beside it */
    doc = s_load("{\"name\":\"p\",\"json\":\"{\\n  \\\"name\\\": \\\"p\\\"\\n}\","
                 "\"signed\":false}");
    s_expect(cli_render_human, "profile", "show", doc, "{\n  \"name\": \"p\"\n}\n");
    s_expect(cli_render_note, "profile", "show", doc, "profile p: unsigned\n");
    json_decref(doc);
    doc = s_load("{\"name\":\"p\",\"json\":\"{\\n  \\\"name\\\": \\\"p\\\"\\n}\","
                 "\"signed\":true,\"key_id\":\"0123456789abcdef\"}");
    s_expect(cli_render_human, "profile", "show", doc, "{\n  \"name\": \"p\"\n}\n");
    s_expect(cli_render_note, "profile", "show", doc,
             "profile p: signed by key 0123456789abcdef\n");
    s_expect(cli_render_human, "profile", "add", doc,
             "added profile p (signed by key 0123456789abcdef)\n");
    s_expect(cli_render_note, "profile", "list", doc, ""); /* only show has a note */
    json_decref(doc);
    /* a controller from before signed profiles: no note, no claim */
    doc = s_load("{\"name\":\"p\",\"json\":\"{}\"}");
    s_expect(cli_render_note, "profile", "show", doc, "");
    s_expect(cli_render_human, "profile", "add", doc, "added profile p\n");
    json_decref(doc);
    doc = s_load("{\"name\":\"r1\",\"state\":\"paused\"}");
    s_expect(cli_render_human, "rollout", "pause", doc, "paused rollout r1 (now paused)\n");
    json_decref(doc);
    doc = s_load("{\"rollout\":{\"name\":\"r1\",\"state\":\"created\",\"total\":20}}");
    s_expect(cli_render_human, "rollout", "create", doc,
             "created rollout r1 for 20 devices (start it with 'firmfleet "
             "rollout start r1')\n");
    json_decref(doc);
    doc = s_load("{\"rollout\":{\"name\":\"r1\",\"state\":\"running\"},\"counts\":{}}");
    s_expect(cli_render_human, "rollout", "start", doc, "started rollout r1 (now running)\n");
    json_decref(doc);
    doc = s_load("{\"name\":\"berlin\",\"window\":\"\"}");
    s_expect(cli_render_human, "site", "set", doc, "updated site berlin (window any time)\n");
    json_decref(doc);
}

static void test_watch_line(void **state)
{
    (void)state;
    json_t *doc = s_load(s_status_doc);
    char line[512];
    cli_watch_line(doc, (time_t)(T0 / 1000) + 1, line, sizeof line);
    assert_string_equal(line, "2026-11-21T10:00:01Z r1 running wave 2/3 succeeded 6/20 failed 1 "
                              "in_progress 3 waiting 10");
    json_t *ro = json_object_get(doc, "rollout");
    json_object_set_new(ro, "state", json_string("halted"));
    json_object_set_new(ro, "reason", json_string("2 \"failures\"\x1b[2J"));
    cli_watch_line(doc, (time_t)(T0 / 1000), line, sizeof line);
    assert_string_equal(line, "2026-11-21T10:00:00Z r1 halted wave 2/3 succeeded 6/20 failed 1 "
                              "in_progress 3 waiting 10 reason \"2 'failures'?[2J\"");
    assert_int_equal(cli_watch_end(doc), -1);
    json_object_set_new(ro, "state", json_string("done"));
    assert_int_equal(cli_watch_end(doc), 1);
    json_object_set_new(ro, "state", json_string("running"));
    assert_int_equal(cli_watch_end(doc), 0);
    assert_int_equal(cli_watch_end(NULL), 0);
    json_decref(doc);
}

static int s_has_ctl(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\n') || *p >= 0x7f)
            return 1;
    return 0;
}

static void test_watch_frame(void **state)
{
    (void)state;
    json_t *doc = s_load(s_status_doc);
    char *fr = cli_watch_frame(doc, "r1", 72, 40, NULL);
    assert_non_null(fr);
    assert_string_equal(fr,
                        "rollout r1  running  cisco/8.12.0  waves 5,10%,100%  wave 2/3\n"
                        "succeeded 6/20  failed 1  in progress 3  waiting 10\n"
                        "\n"
                        "wave 1       [########################xxxxxxx]  4/5  failed 1  done\n"
                        "wave 2       [############>>>>>>>>>>>>>>>>>>>]  2/5  failed 0  active\n"
                        "wave 3       [-------------------------------]  0/10  failed 0  waiting\n"
                        "\n"
                        "site berlin  [############xxx>>>>>-----------]  5/12  failed 1  staged\n"
                        "site paris   [###>>>>------------------------]  1/8  failed 0\n");
    free(fr);
    /* every line fits the width; the height is kept; the note comes last */
    for (int cols = 2; cols < 200; cols += 7) {
        fr = cli_watch_frame(doc, "r1", cols, 6, "controller unreachable, retrying");
        assert_non_null(fr);
        int lines = 0;
        for (char *p = fr, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
            assert_true(nl - p <= cols - 1);
            lines++;
        }
        assert_true(lines <= 6);
        if (cols >= 16)
            assert_non_null(strstr(fr, "controller unre"));
        free(fr);
    }
    /* a short terminal still shows that there are sites */
    for (int h = 5; h < 12; h++) {
        fr = cli_watch_frame(doc, "r1", 80, h, NULL);
        int n = 0;
        for (char *p = fr; *p; p++)
            n += *p == '\n';
        assert_true(n <= h);
        if (strstr(fr, "site berlin") == NULL && strstr(fr, "more sites") == NULL)
            fail_msg("height %d: no sites in\n%s", h, fr);
        free(fr);
    }
    /* many sites: the ones that do not fit are counted */
    json_t *sites = json_array();
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof name, "site%02d", i);
        json_array_append_new(sites, json_pack("{s:s, s:i, s:{s:i}}", "site", name, "total", 2,
                                               "counts", "pending", 2));
    }
    json_object_set_new(doc, "sites", sites);
    fr = cli_watch_frame(doc, "r1", 100, 20, NULL);
    assert_non_null(strstr(fr, "more sites\n"));
    int lines = 0;
    for (char *p = fr; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 20);
    free(fr);
    /* data cannot drive the terminal */
    json_object_set_new(json_object_get(doc, "rollout"), "name", json_string("x\x1b]0;pwn\x07y"));
    json_object_set_new(json_object_get(doc, "rollout"), "reason", json_string("a\nb\x1b[2J"));
    fr = cli_watch_frame(doc, "r1", 100, 40, NULL);
    assert_false(s_has_ctl(fr));
    assert_non_null(strstr(fr, "reason: a?b?[2J\n"));
    free(fr);
    /* no document yet (controller unreachable from the start) */
    fr = cli_watch_frame(NULL, "r9", 80, 24, "controller unreachable, retrying");
    assert_string_equal(fr, "rollout r9\ncontroller unreachable, retrying\n");
    free(fr);
    json_decref(doc);
}

static void test_devices_file(void **state)
{
    (void)state;
    char *macs = NULL, err[256];
    size_t n = 0;
    const char *good = "# canary phones\n"
                       "00:04:F2:00:00:01\n"
                       "\n"
                       "  00-04-f2-00-00-02   # lobby\r\n"
                       "0004.f200.0003\n"
                       "0004f2000004";
    assert_int_equal(cli_devices_parse("d.txt", good, strlen(good), &macs, &n, err, sizeof err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(macs, "00:04:f2:00:00:01,00:04:f2:00:00:02,00:04:f2:00:00:03,"
                              "00:04:f2:00:00:04");
    free(macs);
    const char *csv = "mac,site,model\n"
                      "00:04:f2:00:00:09,berlin,CP-7940G\n"
                      "\"00:04:f2:00:00:0a\",paris,CP-7940G\n";
    assert_int_equal(cli_devices_parse("d.csv", csv, strlen(csv), &macs, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(macs, "00:04:f2:00:00:09,00:04:f2:00:00:0a");
    free(macs);
    const char *bad = "00:04:f2:00:00:01\n# x\n\n00:04:f2:00:00\n00:04:f2:00:00:02\n";
    assert_int_equal(cli_devices_parse("d.txt", bad, strlen(bad), &macs, &n, err, sizeof err),
                     -EINVAL);
    assert_null(macs);
    assert_string_equal(err, "d.txt:4: '00:04:f2:00:00' is not a MAC address");
    const char *hdr2 = "00:04:f2:00:00:01\nmac\n";
    assert_int_equal(cli_devices_parse("d.txt", hdr2, strlen(hdr2), &macs, &n, err, sizeof err),
                     -EINVAL);
    assert_string_equal(err, "d.txt:2: 'mac' is not a MAC address");
    const char *dup = "00:04:f2:00:00:01\n00:04:f2:00:00:02\n0004f2000002\n00-04-f2-00-00-01\n";
    assert_int_equal(cli_devices_parse("d.txt", dup, strlen(dup), &macs, &n, err, sizeof err),
                     -EINVAL);
    assert_string_equal(err, "d.txt:3: MAC listed twice (first on line 2)");
    const char *none = "# nothing\n\n   \n";
    assert_int_equal(cli_devices_parse("e.txt", none, strlen(none), &macs, &n, err, sizeof err),
                     -EINVAL);
    assert_string_equal(err, "e.txt: no MAC addresses in the file");
    const char *ctl = "00:04:f2:00:00:01\n\x1b[2Jzz\n";
    assert_int_equal(cli_devices_parse("c.txt", ctl, strlen(ctl), &macs, &n, err, sizeof err),
                     -EINVAL);
    assert_string_equal(err, "c.txt:2: '?[2Jzz' is not a MAC address");
    /* many lines */
    size_t many = 5000, o = 0;
    char *big = malloc(many * 18 + 1);
    for (size_t i = 0; i < many; i++)
        o += (size_t)sprintf(big + o, "02:00:00:00:%02zx:%02zx\n", i / 256, i % 256);
    assert_int_equal(cli_devices_parse("b.txt", big, o, &macs, &n, err, sizeof err), 0);
    assert_int_equal(n, many);
    assert_int_equal(strlen(macs), many * 18 - 1);
    free(macs);
    free(big);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bar),          cmocka_unit_test(test_tally),
        cmocka_unit_test(test_status_human), cmocka_unit_test(test_lists_and_writes),
        cmocka_unit_test(test_watch_line),   cmocka_unit_test(test_watch_frame),
        cmocka_unit_test(test_devices_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
