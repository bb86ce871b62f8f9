/* test_metrics.c: lib/metrics: the exposition text byte for byte (HELP and
 * TYPE lines, labels, escaping of label values and HELP text, integer and
 * float values, NaN/Inf, u64 past 2^53), histograms (cumulative buckets,
 * +Inf, sum, count), bad names failing and the error being sticky, growth
 * past the first 4 KiB, process_* families; the responder's request check
 * (complete/incomplete heads, 404, 405, 400, 431, HEAD, query strings), the
 * response head, and ADDR:PORT parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static void test_family_and_samples(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    assert_non_null(m);
    assert_int_equal(metrics_family(m, "firmfleet_x_total", METRICS_COUNTER, "Things.\nMore \\ x"),
                     0);
    struct metrics_label l[] = {{"kind", "a\"b\\c\nd"}, {"site", "lab"}};
    assert_int_equal(metrics_sample_u64(m, "firmfleet_x_total", l, 2, 18446744073709551615ull), 0);
    assert_int_equal(metrics_sample(m, "firmfleet_x_total", NULL, 0, 3), 0);
    assert_int_equal(metrics_gauge(m, "firmfleet_g", "A gauge.", 0.25), 0);
    metrics_family(m, "firmfleet_f", METRICS_GAUGE, "Specials.");
    metrics_sample(m, "firmfleet_f", NULL, 0, NAN);
    metrics_sample(m, "firmfleet_f", NULL, 0, INFINITY);
    metrics_sample(m, "firmfleet_f", NULL, 0, -INFINITY);
    metrics_sample(m, "firmfleet_f", NULL, 0, -7);
    metrics_sample(m, "firmfleet_f", NULL, 0, 1e300);
    size_t len = 0;
    const char *t = metrics_text(m, &len);
    assert_non_null(t);
    assert_string_equal(t, "# HELP firmfleet_x_total Things.\\nMore \\\\ x\n"
                           "# TYPE firmfleet_x_total counter\n"
                           "firmfleet_x_total{kind=\"a\\\"b\\\\c\\nd\",site=\"lab\"} "
                           "18446744073709551615\n"
                           "firmfleet_x_total 3\n"
                           "# HELP firmfleet_g A gauge.\n"
                           "# TYPE firmfleet_g gauge\n"
                           "firmfleet_g 0.25\n"
                           "# HELP firmfleet_f Specials.\n"
                           "# TYPE firmfleet_f gauge\n"
                           "firmfleet_f NaN\n"
                           "firmfleet_f +Inf\n"
                           "firmfleet_f -Inf\n"
                           "firmfleet_f -7\n"
                           "firmfleet_f 1.0000000000000001e+300\n");
    assert_int_equal(len, strlen(t));
    metrics_destroy(&m);
    assert_null(m);
    metrics_destroy(&m); /* idempotent */
}

static void test_bad_names_are_sticky(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "9lives", "with space", "dash-ed", "uni\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        metrics_t *m = metrics_new();
        assert_int_equal(metrics_family(m, bad[i], METRICS_GAUGE, "x"), -EINVAL);
        assert_null(metrics_text(m, NULL));
        /* later good calls do nothing */
        assert_int_equal(metrics_gauge(m, "ok_name", "x", 1), -EINVAL);
        assert_null(metrics_text(m, NULL));
        metrics_destroy(&m);
    }
    metrics_t *m = metrics_new();
    struct metrics_label l = {"le:x", "1"}; /* no colon in label names */
    assert_int_equal(metrics_sample(m, "a:b_c", &l, 1, 1), -EINVAL);
    metrics_destroy(&m);
    m = metrics_new();
    struct metrics_label nv = {"a", NULL};
    assert_int_equal(metrics_sample(m, "a", &nv, 1, 1), -EINVAL);
    metrics_destroy(&m);
    m = metrics_new();
    assert_int_equal(metrics_family(m, "ns:name_total", METRICS_COUNTER, "colons are fine"), 0);
    metrics_destroy(&m);
}

static void test_growth(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_family(m, "firmfleet_many", METRICS_GAUGE, "Many.");
    char v[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(v, sizeof v, "%d", i);
        struct metrics_label l = {"i", v};
        assert_int_equal(metrics_sample(m, "firmfleet_many", &l, 1, i), 0);
    }
    size_t len;
    const char *t = metrics_text(m, &len);
    assert_non_null(t);
    assert_true(len > 100000);
    assert_non_null(strstr(t, "firmfleet_many{i=\"4999\"} 4999\n"));
    assert_int_equal(t[len - 1], '\n');
    metrics_destroy(&m);
}

static void test_histogram(void **state)
{
    (void)state;
    struct metrics_hist h;
    static const double b[] = {0.001, 0.01, 0.1};
    metrics_hist_init(&h, b, 3);
    metrics_hist_observe(&h, 0.0005);
    metrics_hist_observe(&h, 0.001); /* le is inclusive */
    metrics_hist_observe(&h, 0.05);
    metrics_hist_observe(&h, 2);
    metrics_t *m = metrics_new();
    metrics_family(m, "firmfleet_d_seconds", METRICS_HISTOGRAM, "D.");
    struct metrics_label l = {"handler", "admin"};
    assert_int_equal(metrics_hist_write(m, "firmfleet_d_seconds", &l, 1, &h), 0);
    const char *t = metrics_text(m, NULL);
    assert_string_equal(
        t, "# HELP firmfleet_d_seconds D.\n"
           "# TYPE firmfleet_d_seconds histogram\n"
           "firmfleet_d_seconds_bucket{handler=\"admin\",le=\"0.001\"} 2\n"
           "firmfleet_d_seconds_bucket{handler=\"admin\",le=\"0.01\"} 2\n"
           "firmfleet_d_seconds_bucket{handler=\"admin\",le=\"0.10000000000000001\"} 3\n"
           "firmfleet_d_seconds_bucket{handler=\"admin\",le=\"+Inf\"} 4\n"
           "firmfleet_d_seconds_sum{handler=\"admin\"} 2.0514999999999999\n"
           "firmfleet_d_seconds_count{handler=\"admin\"} 4\n");
    metrics_destroy(&m);
}

static void test_process(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    assert_int_equal(metrics_process(m), 0);
    const char *t = metrics_text(m, NULL);
    assert_non_null(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
    assert_non_null(strstr(t, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr(t, "\nprocess_open_fds "));
    assert_non_null(strstr(t, "\nprocess_start_time_seconds "));
    metrics_destroy(&m);
}

static int s_check(const char *req, int *head_only)
{
    return metrics_req_check(req, strlen(req), head_only);
}

static void test_req_check(void **state)
{
    (void)state;
    int h = -1;
    assert_int_equal(s_check("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &h), 200);
    assert_int_equal(h, 0);
    assert_int_equal(s_check("HEAD /metrics HTTP/1.0\r\n\r\n", &h), 200);
    assert_int_equal(h, 1);
    assert_int_equal(s_check("GET /metrics?name[]=x HTTP/1.1\n\n", &h), 200);
    assert_int_equal(s_check("GET /metrics HTTP/1.1\r\nHost: x\r\n", &h), 0); /* incomplete */
    assert_int_equal(s_check("GET /metric", &h), 0);
    assert_int_equal(s_check("", &h), 0);
    assert_int_equal(s_check("GET / HTTP/1.1\r\n\r\n", &h), 404);
    assert_int_equal(s_check("GET /metricsX HTTP/1.1\r\n\r\n", &h), 404);
    assert_int_equal(s_check("GET /metrics/ HTTP/1.1\r\n\r\n", &h), 404);
    assert_int_equal(s_check("POST /metrics HTTP/1.1\r\n\r\n", &h), 405);
    assert_int_equal(s_check("get /metrics HTTP/1.1\r\n\r\n", &h), 405);
    assert_int_equal(s_check("GET /metrics\r\n\r\n", &h), 400);
    assert_int_equal(s_check("GET /metrics HTTP/2.0\r\n\r\n", &h), 400);
    assert_int_equal(s_check("GET  HTTP/1.1\r\n\r\n", &h), 400);
    assert_int_equal(s_check("BLAH\x01\r\n\r\n", &h), 400);
    assert_int_equal(s_check("\r\n\r\n", &h), 400);
    char nul[] = "GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n";
    assert_int_equal(metrics_req_check(nul, sizeof nul - 1, &h), 400);
    /* a head that does not end within the limit */
    char *big = malloc(METRICS_REQ_MAX);
    memset(big, 'A', METRICS_REQ_MAX);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    assert_int_equal(metrics_req_check(big, METRICS_REQ_MAX - 1, &h), 0);
    assert_int_equal(metrics_req_check(big, METRICS_REQ_MAX, &h), 431);
    free(big);
}

static void test_resp_head(void **state)
{
    (void)state;
    char out[512];
    int n = metrics_resp_head(200, 1234, out, sizeof out);
    assert_true(n > 0);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\n"
                             "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                             "Content-Length: 1234\r\n"
                             "Connection: close\r\n\r\n");
    n = metrics_resp_head(405, 3, out, sizeof out);
    assert_non_null(strstr(out, "HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_non_null(strstr(out, "Allow: GET, HEAD\r\n"));
    assert_int_equal(metrics_resp_head(200, 1, out, 10), -ENOSPC);
    assert_string_equal(metrics_resp_body(404), "not found: try /metrics\n");
}

static void test_parse_listen(void **state)
{
    (void)state;
    struct sockaddr_storage sa;
    socklen_t len;
    assert_int_equal(metrics_parse_listen("127.0.0.1:9460", &sa, &len), 0);
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&sa;
    assert_int_equal(a4->sin_family, AF_INET);
    assert_int_equal(ntohs(a4->sin_port), 9460);
    assert_int_equal(ntohl(a4->sin_addr.s_addr), 0x7f000001);
    assert_int_equal(len, sizeof *a4);
    assert_int_equal(metrics_parse_listen("*:80", &sa, &len), 0);
    assert_int_equal(a4->sin_addr.s_addr, htonl(INADDR_ANY));
    assert_int_equal(metrics_parse_listen("[::1]:9460", &sa, &len), 0);
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&sa;
    assert_int_equal(a6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(a6->sin6_port), 9460);
    static const char *const bad[] = {"",
                                      "9460",
                                      "127.0.0.1",
                                      "127.0.0.1:",
                                      "127.0.0.1:0",
                                      "127.0.0.1:65536",
                                      "127.0.0.1:80x",
                                      "host:80",
                                      "[::1:80",
                                      "::1:80",
                                      "1.2.3.4.5:80",
                                      "127.0.0.1:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (metrics_parse_listen(bad[i], &sa, &len) != -EINVAL)
            fail_msg("accepted '%s'", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_and_samples),
        cmocka_unit_test(test_bad_names_are_sticky),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_process),
        cmocka_unit_test(test_req_check),
        cmocka_unit_test(test_resp_head),
        cmocka_unit_test(test_parse_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
