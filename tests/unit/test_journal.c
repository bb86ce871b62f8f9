/* test_journal.c: the agent journal: append/ack/iterate, seq contiguity and
 * unacked rows across close/reopen, rollback, assignment upsert idempotence,
 * config and image rows, migration of an older schema on reopen, refusal of a
 * newer one. Each test works in its own temporary directory. */
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

#include "journal.h"
#include "log.h"
#include "sql.h"
#include "tfix.h"

static int s_setup(void **state)
{
    return tfix_dir_setup(state, "journal", "journal.db");
}

static void s_append_n(journal_t *j, int n, uint64_t *first, uint64_t *last)
{
    assert_int_equal(journal_begin(j), 0);
    for (int i = 0; i < n; i++) {
        char p[32];
        int len = snprintf(p, sizeof p, "event-%d", i);
        uint64_t seq = 0;
        assert_int_equal(journal_append_event(j, (const uint8_t *)p, (size_t)len, 1000, &seq), 0);
        if (i == 0 && first)
            *first = seq;
        if (last)
            *last = seq;
    }
    assert_int_equal(journal_commit(j), 0);
}

struct collect {
    uint64_t seqs[64];
    int n;
    int stop_after;
};

static int s_collect(void *arg, uint64_t seq, const uint8_t *payload, size_t len)
{
    struct collect *c = arg;
    assert_non_null(payload);
    assert_true(len > 0);
    c->seqs[c->n++] = seq;
    return c->stop_after && c->n >= c->stop_after;
}

static void test_append_ack_iter(void **state)
{
    struct tfix_dir *f = *state;
    journal_t *j = NULL;
    assert_int_equal(journal_open(f->path, &j), 0);
    assert_int_equal(journal_last_seq(j), 0);
    uint64_t first = 0, last = 0;
    s_append_n(j, 10, &first, &last);
    assert_int_equal(first, 1);
    assert_int_equal(last, 10);
    assert_int_equal(journal_committed_seq(j), 10);

    struct collect c = {.n = 0};
    assert_int_equal(journal_iter_from(j, 4, 10, 100, s_collect, &c), 7);
    assert_int_equal(c.seqs[0], 4);
    assert_int_equal(c.seqs[6], 10);
    struct collect c2 = {.n = 0};
    assert_int_equal(journal_iter_from(j, 1, 10, 3, s_collect, &c2), 3); /* max */
    struct collect c3 = {.n = 0, .stop_after = 2};
    assert_int_equal(journal_iter_from(j, 1, 10, 100, s_collect, &c3), 2); /* fn stops */

    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_ack(j, 6), 0);
    assert_int_equal(journal_ack(j, 3), 0);        /* behind: no-op */
    assert_int_equal(journal_ack(j, 11), -ERANGE); /* beyond what exists */
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_acked(j), 6);
    struct collect c4 = {.n = 0};
    assert_int_equal(journal_iter_from(j, 1, 10, 100, s_collect, &c4), 4);
    assert_int_equal(c4.seqs[0], 7);

    /* ack everything: the outbox is empty, yet seq keeps counting */
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_ack(j, 10), 0);
    assert_int_equal(journal_commit(j), 0);
    s_append_n(j, 1, &first, NULL);
    assert_int_equal(first, 11);
    journal_close(&j);
    assert_null(j);
    journal_close(&j); /* idempotent */
}

static void test_reopen_contiguous(void **state)
{
    struct tfix_dir *f = *state;
    journal_t *j = NULL;
    assert_int_equal(journal_open(f->path, &j), 0);
    s_append_n(j, 20, NULL, NULL);
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_ack(j, 20), 0);
    assert_int_equal(journal_set_last_applied(j, 7), 0);
    assert_int_equal(journal_commit(j), 0);
    s_append_n(j, 5, NULL, NULL); /* 21..25 unacked */
    /* an uncommitted append must vanish with the process */
    assert_int_equal(journal_begin(j), 0);
    uint64_t seq = 0;
    assert_int_equal(journal_append_event(j, (const uint8_t *)"x", 1, 1, &seq), 0);
    assert_int_equal(seq, 26);
    assert_int_equal(journal_last_seq(j), 26);
    assert_int_equal(journal_committed_seq(j), 25);
    journal_close(&j);

    assert_int_equal(journal_open(f->path, &j), 0);
    assert_int_equal(journal_last_seq(j), 25);
    assert_int_equal(journal_acked(j), 20);
    assert_int_equal(journal_last_applied(j), 7);
    struct collect c = {.n = 0};
    assert_int_equal(
        journal_iter_from(j, journal_acked(j) + 1, journal_last_seq(j), 100, s_collect, &c), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(c.seqs[i], 21 + (uint64_t)i);
    uint64_t first = 0;
    s_append_n(j, 1, &first, NULL);
    assert_int_equal(first, 26); /* contiguous, never reused */
    journal_close(&j);
}

static void test_rollback(void **state)
{
    struct tfix_dir *f = *state;
    journal_t *j = NULL;
    assert_int_equal(journal_open(f->path, &j), 0);
    s_append_n(j, 3, NULL, NULL);
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_begin(j), 0); /* idempotent */
    assert_int_equal(journal_in_tx(j), 1);
    assert_int_equal(journal_append_event(j, (const uint8_t *)"y", 1, 1, NULL), 0);
    assert_int_equal(journal_ack(j, 2), 0);
    assert_int_equal(journal_set_last_applied(j, 9), 0);
    journal_rollback(j);
    assert_int_equal(journal_in_tx(j), 0);
    assert_int_equal(journal_last_seq(j), 3);
    assert_int_equal(journal_acked(j), 0);
    assert_int_equal(journal_last_applied(j), 0);
    assert_int_equal(journal_commit(j), 0); /* outside a transaction: no-op */
    journal_close(&j);
}

static void test_rebase(void **state)
{
    struct tfix_dir *f = *state;
    journal_t *j = NULL;
    assert_int_equal(journal_open(f->path, &j), 0);
    s_append_n(j, 5, NULL, NULL);
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_ack(j, 2), 0);
    assert_int_equal(journal_rebase(j, 4), -EINVAL); /* not beyond last_seq */
    assert_int_equal(journal_rebase(j, 100), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_acked(j), 100);
    assert_int_equal(journal_last_seq(j), 103);
    struct collect c = {.n = 0};
    assert_int_equal(journal_iter_from(j, 101, 103, 100, s_collect, &c), 3);
    assert_int_equal(c.seqs[0], 101);
    assert_int_equal(c.seqs[2], 103);
    journal_close(&j);
}

static void test_assignment_idempotent(void **state)
{
    struct tfix_dir *f = *state;
    journal_t *j = NULL;
    assert_int_equal(journal_open(f->path, &j), 0);
    const uint8_t a1[] = {1, 2, 3}, a2[] = {1, 2, 4};
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_assignment_put(j, "00:04:f2:aa:bb:01", 5, a1, sizeof a1), 1);
    assert_int_equal(journal_assignment_put(j, "00:04:f2:aa:bb:01", 5, a1, sizeof a1), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_assignment_put(j, "00:04:f2:aa:bb:01", 5, a1, sizeof a1), 0);
    assert_int_equal(journal_assignment_put(j, "00:04:f2:aa:bb:01", 6, a2, sizeof a2), 1);
    assert_int_equal(journal_assignment_put(j, "00:04:f2:aa:bb:02", 6, a2, sizeof a2), 1);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_assignment_count(j), 2);
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(journal_assignment_get(j, "00:04:f2:aa:bb:01", &blob, &len), 1);
    assert_int_equal(len, sizeof a2);
    assert_memory_equal(blob, a2, len);
    free(blob);
    assert_int_equal(journal_assignment_get(j, "00:04:f2:aa:bb:09", &blob, &len), 0);
    assert_null(blob);
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_assignment_delete(j, "00:04:f2:aa:bb:01", 5), 0); /* other rollout */
    assert_int_equal(journal_assignment_delete(j, "00:04:f2:aa:bb:01", 6), 1);
    assert_int_equal(journal_assignment_delete(j, "00:04:f2:aa:bb:02", 0), 1); /* any */
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_assignment_count(j), 0);
    journal_close(&j);
}

static int s_count_images(void *arg, const struct journal_image *img)
{
    (void)img;
    (*(int *)arg)++;
    return 0;
}

static void test_config_images_counters(void **state)
{
    struct tfix_dir *f = *state;
    journal_t *j = NULL;
    assert_int_equal(journal_open(f->path, &j), 0);
    uint64_t gen = 99;
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(journal_config_get(j, &gen, &blob, &len), 0);
    assert_int_equal(gen, 0);
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_config_put(j, 3, (const uint8_t *)"cfg", 3), 0);
    assert_int_equal(journal_counter_set(j, "synth_count", 400), 0);
    assert_int_equal(journal_counter_set(j, "last_seq", 1), -EINVAL); /* reserved */
    struct journal_image img;
    memset(&img, 0, sizeof img);
    memset(img.sha_hex, 'a', 64);
    snprintf(img.name, sizeof img.name, "SIP78xx.bin");
    img.size = 1000;
    img.state = JOURNAL_IMG_PARTIAL;
    img.verified_offset = 512;
    img.bytes_received = 700;
    assert_int_equal(journal_image_put(j, &img), 0);
    img.sha_hex[0] = 'b';
    img.state = JOURNAL_IMG_CACHED;
    assert_int_equal(journal_image_put(j, &img), 0);
    assert_int_equal(journal_commit(j), 0);
    journal_close(&j);

    assert_int_equal(journal_open(f->path, &j), 0);
    assert_int_equal(journal_config_get(j, &gen, &blob, &len), 1);
    assert_int_equal(gen, 3);
    assert_int_equal(len, 3);
    assert_memory_equal(blob, "cfg", 3);
    free(blob);
    uint64_t v = 0;
    assert_int_equal(journal_counter_get(j, "synth_count", &v), 0);
    assert_int_equal(v, 400);
    assert_int_equal(journal_counter_get(j, "absent", &v), 0);
    assert_int_equal(v, 0);
    struct journal_image got;
    char hex[65];
    memset(hex, 'a', 64);
    hex[64] = '\0';
    assert_int_equal(journal_image_get(j, hex, &got), 1);
    assert_int_equal(got.state, JOURNAL_IMG_PARTIAL);
    assert_int_equal(got.verified_offset, 512);
    assert_int_equal(got.bytes_received, 700);
    assert_string_equal(got.name, "SIP78xx.bin");
    int n = 0;
    assert_int_equal(journal_image_each(j, s_count_images, &n), 2);
    assert_int_equal(n, 2);
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_image_delete(j, hex), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_image_get(j, hex, &got), 0);
    journal_close(&j);
}

static void test_migration_on_reopen(void **state)
{
    struct tfix_dir *f = *state;
    int n = 0;
    const char *const *migs = journal_migrations(&n);
    assert_true(n >= 2);
    /* a journal written by a build that knew only schema 1, with data */
    sqlite3 *db = NULL;
    assert_int_equal(sql_open(f->path, migs, 1, &db), 0);
    assert_int_equal(sql_user_version(db), 1);
    assert_int_equal(sql_exec(db,
                              "INSERT INTO outbox(seq, payload, created_ms) VALUES (1, x'01', 1),"
                              " (2, x'02', 2);"
                              "INSERT INTO meta(key, value) VALUES ('last_seq', 2), ('acked', 1);"),
                     0);
    sql_close(&db);

    journal_t *j = NULL;
    assert_int_equal(journal_open(f->path, &j), 0);
    assert_int_equal(journal_last_seq(j), 2);
    assert_int_equal(journal_acked(j), 1);
    struct journal_image img;
    memset(&img, 0, sizeof img);
    memset(img.sha_hex, 'c', 64);
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_image_put(j, &img), 0); /* table from migration 2 */
    assert_int_equal(journal_commit(j), 0);
    journal_close(&j);

    assert_int_equal(sql_open(f->path, migs, n, &db), 0);
    assert_int_equal(sql_user_version(db), n);
    /* a journal from a newer program is refused, not damaged */
    assert_int_equal(sql_exec(db, "PRAGMA user_version=99;"), 0);
    sql_close(&db);
    assert_true(journal_open(f->path, &j) < 0);
    assert_null(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_ack_iter, s_setup, tfix_dir_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_contiguous, s_setup, tfix_dir_teardown),
        cmocka_unit_test_setup_teardown(test_rollback, s_setup, tfix_dir_teardown),
        cmocka_unit_test_setup_teardown(test_rebase, s_setup, tfix_dir_teardown),
        cmocka_unit_test_setup_teardown(test_assignment_idempotent, s_setup, tfix_dir_teardown),
        cmocka_unit_test_setup_teardown(test_config_images_counters, s_setup, tfix_dir_teardown),
        cmocka_unit_test_setup_teardown(test_migration_on_reopen, s_setup, tfix_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
