/* test_imgstore.c: uploads land under their SHA-256 only when complete and
 * matching; reads are bounded; bad offsets and tokens are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "imgstore.h"
#include "util.h"

static char s_dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/ff-img-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    return hash_init();
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_upload_and_read(void **state)
{
    (void)state;
    imgstore_t *img = NULL;
    assert_int_equal(imgstore_open(s_dir, &img), 0);
    size_t n = 700000;
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    uint64_t tok = 0;
    assert_int_equal(imgstore_upload_begin(img, n, &tok), 0);
    assert_int_equal(imgstore_upload_write(img, tok, 1, data, 10), -EINVAL); /* wrong offset */
    assert_int_equal(imgstore_upload_write(img, tok + 1, 0, data, 10), -ENOENT);
    assert_int_equal(imgstore_upload_write(img, tok, 0, data, 300000), 0);
    assert_int_equal(imgstore_upload_write(img, tok, 300000, data + 300000, n - 300000), 0);
    assert_int_equal(imgstore_upload_write(img, tok, n, data, 1), -EFBIG);
    char hex[65];
    uint64_t size = 0;
    assert_int_equal(imgstore_upload_commit(img, tok, NULL, hex, &size), 0);
    assert_int_equal(size, n);
    uint8_t sha[32];
    hash_ctx_t *h = hash_new();
    hash_update(h, data, n);
    hash_final(h, sha);
    hash_destroy(&h);
    char want[65];
    util_hex(sha, 32, want);
    assert_string_equal(hex, want);
    assert_int_equal(imgstore_has(img, hex, &size), 1);
    uint8_t buf[4096];
    size_t got = 0;
    uint64_t total = 0;
    assert_int_equal(imgstore_read(img, sha, n - 100, buf, sizeof buf, &got, &total), 0);
    assert_int_equal(got, 100);
    assert_int_equal(total, n);
    assert_memory_equal(buf, data + n - 100, 100);
    assert_int_equal(imgstore_read(img, sha, n + 5, buf, sizeof buf, &got, &total), 0);
    assert_int_equal(got, 0);
    uint8_t other[32] = {1};
    assert_int_equal(imgstore_read(img, other, 0, buf, sizeof buf, &got, &total), -ENOENT);
    free(data);
    imgstore_destroy(&img);
    assert_null(img);
    imgstore_destroy(&img); /* idempotent */
}

static void test_mismatch_and_short(void **state)
{
    (void)state;
    imgstore_t *img = NULL;
    assert_int_equal(imgstore_open(s_dir, &img), 0);
    uint64_t tok = 0;
    char hex[65];
    uint64_t size;
    assert_int_equal(imgstore_upload_begin(img, 10, &tok), 0);
    assert_int_equal(imgstore_upload_write(img, tok, 0, "0123456789", 10), 0);
    assert_int_equal(imgstore_upload_commit(img, tok, "00", hex, &size), -EBADMSG);
    assert_int_equal(imgstore_upload_begin(img, 10, &tok), 0);
    assert_int_equal(imgstore_upload_write(img, tok, 0, "01234", 5), 0);
    assert_int_equal(imgstore_upload_commit(img, tok, NULL, hex, &size), -EPIPE);
    assert_int_equal(imgstore_upload_commit(img, tok, NULL, hex, &size), -ENOENT);
    assert_int_equal(imgstore_has(img, "../../etc/passwd", NULL), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls %s/upload)\"", s_dir);
    assert_int_equal(system(cmd), 0); /* nothing left behind */
    imgstore_destroy(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_and_read),
        cmocka_unit_test(test_mismatch_and_short),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
