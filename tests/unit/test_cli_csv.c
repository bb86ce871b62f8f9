/* test_cli_csv.c: the device import CSV reader (cli_csv): header handling,
 * column order, quoting, line numbers in rows and in errors, and rejection
 * of malformed files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "cli_csv.h"

static json_t *s_ok(const char *text)
{
    json_t *rows = NULL;
    char err[256] = "";
    int rc = cli_csv_parse(text, strlen(text), &rows, err, sizeof err);
    if (rc != 0)
        fail_msg("parse failed: %s", err);
    return rows;
}

static void s_bad(const char *text, const char *want)
{
    json_t *rows = NULL;
    char err[256] = "";
    assert_int_equal(cli_csv_parse(text, strlen(text), &rows, err, sizeof err), -EINVAL);
    assert_null(rows);
    if (strstr(err, want) == NULL)
        fail_msg("message '%s' lacks '%s'", err, want);
    assert_null(strchr(err, '\n'));
}

static const char *s_field(json_t *rows, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(rows, i), key));
}

static void test_basic(void **state)
{
    (void)state;
    json_t *rows = s_ok("mac,site,model,serial,tags\n"
                        "00:11:22:33:44:55,berlin,CP-7961G,FCH1,\"a,b\"\n"
                        "\n"
                        "00-11-22-33-44-66,paris,,,\r\n");
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(s_field(rows, 0, "mac"), "00:11:22:33:44:55");
    assert_string_equal(s_field(rows, 0, "tags"), "a,b");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "line")), 2);
    assert_string_equal(s_field(rows, 1, "site"), "paris");
    assert_string_equal(s_field(rows, 1, "model"), "");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 1), "line")), 4);
    json_decref(rows);
}

static void test_column_order_and_case(void **state)
{
    (void)state;
    json_t *rows = s_ok("\xef\xbb\xbfSite, MAC\nberlin, 0011.2233.4455\nparis,001122334466");
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(s_field(rows, 0, "mac"), "0011.2233.4455");
    assert_string_equal(s_field(rows, 0, "site"), "berlin");
    assert_null(s_field(rows, 0, "model"));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 1), "line")), 3);
    json_decref(rows);
}

static void test_quoted_newline_keeps_line_numbers(void **state)
{
    (void)state;
    json_t *rows = s_ok("mac,site,serial\n"
                        "00:11:22:33:44:55,berlin,\"two\nlines\"\n"
                        "00:11:22:33:44:66,berlin,x\n");
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(s_field(rows, 0, "serial"), "two\nlines");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 1), "line")), 4);
    json_decref(rows);
}

static void test_ip_and_class(void **state)
{
    (void)state;
    json_t *rows = s_ok("mac,site,ip,class\n"
                        "00:11:22:33:44:55,berlin,198.18.0.5,cisco\n"
                        "00:11:22:33:44:66,berlin,,\n");
    assert_string_equal(s_field(rows, 0, "ip"), "198.18.0.5");
    assert_string_equal(s_field(rows, 0, "class"), "cisco");
    assert_string_equal(s_field(rows, 1, "ip"), "");
    json_decref(rows);
    s_bad("mac,site,ip\n00:11:22:33:44:55,berlin,198.18.0\n",
          "line 2: invalid IP address '198.18.0'");
    s_bad("mac,site,ip,IP\n", "line 1: column ip given twice");
}

static void test_errors(void **state)
{
    (void)state;
    s_bad("", "empty file");
    s_bad("\n\n", "empty file");
    s_bad("mac,site\n", "no devices");
    s_bad("mac,model\n00:11:22:33:44:55,x\n", "at least the columns mac and site");
    s_bad("mac,site,color\n", "line 1: unknown column 'color'");
    s_bad("mac,site,mac\n", "line 1: column mac given twice");
    s_bad("mac,site\n00:11:22:33:44:55,berlin\n00:11:22:33:44,berlin\n",
          "line 3: invalid MAC address '00:11:22:33:44'");
    s_bad("mac,site\n00:11:22:33:44:55,berlin,extra\n", "line 2: expected 2 fields, got 3");
    s_bad("mac,site\n00:11:22:33:44:55\n", "line 2: expected 2 fields, got 1");
    s_bad("mac,site\n00:11:22:33:44:55,\"berlin\n", "line 2:");
    s_bad("mac,site\n00:11:22:33:44:55,ber\"lin\n", "line 2:");
    s_bad("mac,site\n# a comment,berlin\n", "line 2: invalid MAC address");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_column_order_and_case),
        cmocka_unit_test(test_quoted_newline_keeps_line_numbers),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_ip_and_class),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
