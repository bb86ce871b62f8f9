/* test_util.c: MAC parsing, number, size and duration parsing, hex, atomic
 * writes, key lines and key files (zmqx). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"
#include "util.h"
#include "zmqx.h"

static void test_mac_forms(void **state)
{
    (void)state;
    char out[18];
    const char *good[] = {"00:04:F2:aa:bb:01", "00-04-f2-AA-BB-01", "0004.f2aa.bb01",
                          "0004f2aabb01"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(util_mac_canon(good[i], out), 0);
        assert_string_equal(out, "00:04:f2:aa:bb:01");
    }
    const char *bad[] = {"",
                         "00:04:f2:aa:bb",
                         "00:04:f2:aa:bb:0g",
                         "00:04-f2:aa:bb:01",
                         "00:04:f2:aa:bb:01:02",
                         "0004f2aabb0",
                         "0004.f2aa.bb01.",
                         "00:04:f2:aa:bb:1 ",
                         "zz:zz:zz:zz:zz:zz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(util_mac_canon(bad[i], out), -EINVAL);
}

static void test_numbers(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(util_parse_i64("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(util_parse_i64("101", 0, 100, &v), -ERANGE);
    assert_int_equal(util_parse_i64("4x", 0, 100, &v), -EINVAL);
    assert_int_equal(util_parse_i64("", 0, 100, &v), -EINVAL);
    assert_int_equal(util_parse_i64(" 4", 0, 100, &v), -EINVAL);
    assert_int_equal(util_parse_i64("99999999999999999999", 0, INT64_MAX, &v), -ERANGE);
    uint64_t s;
    assert_int_equal(util_parse_size("40M", &s), 0);
    assert_true(s == 40ull << 20);
    assert_int_equal(util_parse_size("2GiB", &s), 0);
    assert_true(s == 2ull << 30);
    assert_int_equal(util_parse_size("512", &s), 0);
    assert_true(s == 512);
    assert_int_equal(util_parse_size("5X", &s), -EINVAL);
    assert_int_equal(util_parse_size("-5", &s), -EINVAL);
    assert_int_equal(util_parse_size("99999999999999999999G", &s), -ERANGE);
}

static void test_duration(void **state)
{
    (void)state;
    int64_t d = -1;
    const int64_t year = 365LL * 86400;
    assert_int_equal(util_parse_duration("90", 1, year, &d), 0);
    assert_true(d == 90);
    assert_int_equal(util_parse_duration("90d", 1, year, &d), 0);
    assert_true(d == 90 * 86400);
    assert_int_equal(util_parse_duration("1h30m", 1, year, &d), 0);
    assert_true(d == 5400);
    assert_int_equal(util_parse_duration("1d2h3m4s", 1, year, &d), 0);
    assert_true(d == 86400 + 7200 + 180 + 4);
    assert_int_equal(util_parse_duration("365d", 1, year, &d), 0);
    assert_true(d == year);
    d = 7;
    /* refused, and *secs untouched */
    const char *bad[] = {"",
                         "0",
                         "0s",
                         "366d",
                         "1h30",
                         "1x",
                         "h",
                         "-5",
                         "1d1d1d1d1d",
                         "5 m",
                         "99999999999999999999",
                         "1h-5m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(util_parse_duration(bad[i], 1, year, &d), -EINVAL);
    assert_int_equal(util_parse_duration(NULL, 1, year, &d), -EINVAL);
    assert_true(d == 7);
    assert_int_equal(util_parse_duration("61", 1, 60, &d), -EINVAL);
    assert_int_equal(util_parse_duration("1m1s", 1, 60, &d), -EINVAL);
    /* a zero minimum takes "0" and "0s" */
    assert_int_equal(util_parse_duration("0", 0, 60, &d), 0);
    assert_true(d == 0);
    assert_int_equal(util_parse_duration("0s", 0, 60, &d), 0);
    assert_true(d == 0);
}

static void test_hex(void **state)
{
    (void)state;
    uint8_t in[4] = {0x00, 0xab, 0x10, 0xff}, back[4];
    char hex[9];
    util_hex(in, 4, hex);
    assert_string_equal(hex, "00ab10ff");
    assert_int_equal(util_unhex(hex, back, 4), 0);
    assert_memory_equal(in, back, 4);
    assert_int_equal(util_unhex("00ab10f", back, 4), -EINVAL);
    assert_int_equal(util_unhex("00ab10fg", back, 4), -EINVAL);
}

/* Key files and admin_keys lines: one reader (zmqx_key_line). */
static void test_key_lines(void **state)
{
    (void)state;
    char pub[41], sec[41], key[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    char line[200];
    const char *rest = NULL;
    snprintf(line, sizeof line, "  %s alice", pub);
    assert_int_equal(zmqx_key_line(line, key, &rest), 0);
    assert_string_equal(key, pub);
    assert_string_equal(rest, " alice");
    snprintf(line, sizeof line, "%s\r", pub);
    assert_int_equal(zmqx_key_line(line, key, NULL), 0);
    snprintf(line, sizeof line, "%sX", pub); /* a longer word is no key */
    assert_int_equal(zmqx_key_line(line, key, NULL), -EINVAL);
    assert_int_equal(zmqx_key_line("0123456789abcdef0123456789abcdef0123456789abcdef", key, NULL),
                     -EINVAL);
    assert_int_equal(zmqx_key_line("short", key, NULL), -EINVAL);
    char dir[] = "/tmp/ff-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], text[300];
    snprintf(path, sizeof path, "%s/k", dir);
    /* comments and blank lines before it, a name after it */
    int n = snprintf(text, sizeof text, "# operator key\n\n  %s bob\n", sec);
    assert_int_equal(util_write_file_atomic(path, text, (size_t)n, 0600), 0);
    assert_int_equal(zmqx_read_key_file(path, key), 0);
    assert_string_equal(key, sec);
    /* the first key line decides: garbage there is refused */
    n = snprintf(text, sizeof text, "# c\nnot a key\n%s\n", sec);
    assert_int_equal(util_write_file_atomic(path, text, (size_t)n, 0600), 0);
    assert_int_equal(zmqx_read_key_file(path, key), -EINVAL);
    assert_int_equal(util_write_file_atomic(path, "# only a comment\n", 17, 0600), 0);
    assert_int_equal(zmqx_read_key_file(path, key), -EINVAL);
    unlink(path);
    assert_int_equal(zmqx_read_key_file(path, key), -ENOENT);
    rmdir(dir);
}

static void test_atomic_write(void **state)
{
    (void)state;
    char dir[] = "/tmp/ff-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/a/b/file", dir);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    assert_int_equal(util_mkdir_p(sub, 0700), 0);
    assert_int_equal(util_write_file_atomic(path, "hello", 5, 0600), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(util_read_file(path, 100, &buf, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(buf, "hello");
    free(buf);
    assert_int_equal(util_read_file(path, 4, &buf, &len), -EFBIG);
    assert_int_equal(util_read_file(sub, 100, &buf, &len), -EINVAL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_log_quote(void **state)
{
    (void)state;
    char out[64];
    assert_string_equal(log_quote("plain", out, sizeof out), "plain");
    assert_string_equal(log_quote("two words", out, sizeof out), "\"two words\"");
    assert_string_equal(log_quote("a\"b\n", out, sizeof out), "\"a\\\"b\\x0a\"");
    assert_string_equal(log_quote("", out, sizeof out), "\"\"");
    char tiny[6];
    log_quote("a long value with spaces", tiny, sizeof tiny);
    assert_true(strlen(tiny) < sizeof tiny);
}

static void test_log_field(void **state)
{
    (void)state;
    char out[64], q[64];
    const char *line = "ip=198.18.1.10 vendor_class=\"Cisco Systems, Inc. IP Phone\\x00\" n=5";
    assert_int_equal(log_field(line, "ip", out, sizeof out), 11);
    assert_string_equal(out, "198.18.1.10");
    assert_int_equal(log_field(line, "vendor_class", out, sizeof out), 29);
    assert_memory_equal(out, "Cisco Systems, Inc. IP Phone\0", 29);
    assert_int_equal(log_field(line, "n", out, sizeof out), 1);
    assert_int_equal(log_field(line, "missing", out, sizeof out), -1);
    assert_int_equal(log_field(line, "v", out, sizeof out), -1);
    assert_int_equal(log_field("a=\"open", "a", out, sizeof out), -1);
    /* what log_quote writes, log_field reads back */
    char line2[200];
    snprintf(line2, sizeof line2, "x=%s y=1", log_quote("say \"hi\"\\ now", q, sizeof q));
    assert_true(log_field(line2, "x", out, sizeof out) > 0);
    assert_string_equal(out, "say \"hi\"\\ now");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mac_forms),    cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_duration),     cmocka_unit_test(test_hex),
        cmocka_unit_test(test_atomic_write), cmocka_unit_test(test_key_lines),
        cmocka_unit_test(test_log_quote),    cmocka_unit_test(test_log_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
