/* test_lease.c: DHCP lease rows in the agent journal (db/lease): rows
 * written inside a transaction survive close/reopen, a rolled-back row does
 * not exist, one row per address (a second client's row replaces the
 * first), deletes, the discovered-MAC set is idempotent, a journal from
 * before migration 3 gains the tables on reopen. Each test works in its own
 * temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "lease.h"
#include "log.h"
#include "sql.h"
#include "tfix.h"

static int s_setup(void **state)
{
    return tfix_dir_setup(state, "lease", "journal.db");
}

struct rows {
    struct lease_row r[16];
    int n;
};

static int s_collect(void *arg, const struct lease_row *r)
{
    struct rows *c = arg;
    if (c->n < 16)
        c->r[c->n++] = *r;
    return 0;
}

static int s_count_mac(void *arg, const uint8_t mac[6])
{
    (void)mac;
    (*(int *)arg)++;
    return 0;
}

static struct lease_row s_mk(uint32_t ip, uint8_t last, int state, int64_t exp)
{
    struct lease_row r;
    memset(&r, 0, sizeof r);
    r.ip = ip;
    uint8_t mac[6] = {0x00, 0x04, 0xf2, 0, 0, last};
    memcpy(r.mac, mac, 6);
    r.state = state;
    r.expires = exp;
    r.granted = exp - 3600;
    snprintf(r.cls, sizeof r.cls, "polycom");
    return r;
}

static void test_put_reopen_replace(void **state)
{
    struct tfix_dir *f = *state;
    journal_t *j = NULL;
    lease_db_t *l = NULL;
    assert_int_equal(journal_open(f->path, &j), 0);
    assert_int_equal(lease_db_open(j, &l), 0);
    assert_int_equal(journal_begin(j), 0);
    struct lease_row a = s_mk(0xc6120164, 1, LEASE_BOUND, 5000);
    struct lease_row b = s_mk(0xc6120165, 2, LEASE_RELEASED, 6000);
    assert_int_equal(lease_db_put(l, &a, 1), 0);
    assert_int_equal(lease_db_put(l, &b, 1), 0);
    struct lease_row bad = a;
    bad.ip = 0;
    assert_int_equal(lease_db_put(l, &bad, 1), -EINVAL);
    bad = a;
    bad.state = 7;
    assert_int_equal(lease_db_put(l, &bad, 1), -EINVAL);
    assert_int_equal(journal_commit(j), 0);
    /* rolled back: not there */
    assert_int_equal(journal_begin(j), 0);
    struct lease_row c = s_mk(0xc6120166, 3, LEASE_BOUND, 7000);
    assert_int_equal(lease_db_put(l, &c, 1), 0);
    journal_rollback(j);
    lease_db_close(&l);
    assert_null(l);
    lease_db_close(&l);
    journal_close(&j);

    assert_int_equal(journal_open(f->path, &j), 0);
    assert_int_equal(lease_db_open(j, &l), 0);
    struct rows rows = {.n = 0};
    assert_int_equal(lease_db_each(l, s_collect, &rows), 2);
    assert_int_equal(rows.n, 2);
    assert_int_equal(rows.r[0].ip, 0xc6120164);
    assert_memory_equal(rows.r[0].mac, a.mac, 6);
    assert_int_equal(rows.r[0].state, LEASE_BOUND);
    assert_int_equal(rows.r[0].expires, 5000);
    assert_int_equal(rows.r[0].granted, 1400);
    assert_string_equal(rows.r[0].cls, "polycom");
    assert_int_equal(rows.r[1].state, LEASE_RELEASED);
    /* the same address for another client replaces the row: one per IP */
    assert_int_equal(journal_begin(j), 0);
    struct lease_row a2 = s_mk(0xc6120164, 9, LEASE_DECLINED, 8000);
    a2.cls[0] = '\0';
    assert_int_equal(lease_db_put(l, &a2, 2), 0);
    assert_int_equal(lease_db_delete(l, 0xc6120165), 0);
    assert_int_equal(lease_db_delete(l, 0x01020304), 0); /* absent is fine */
    assert_int_equal(journal_commit(j), 0);
    rows.n = 0;
    assert_int_equal(lease_db_each(l, s_collect, &rows), 1);
    assert_int_equal(rows.r[0].mac[5], 9);
    assert_int_equal(rows.r[0].state, LEASE_DECLINED);
    assert_string_equal(rows.r[0].cls, "");
    lease_db_close(&l);
    journal_close(&j);
}

static void test_seen_and_migration(void **state)
{
    struct tfix_dir *f = *state;
    /* a journal from a build that knew schema 2 only */
    int n = 0;
    const char *const *migs = journal_migrations(&n);
    assert_true(n >= 3);
    sqlite3 *db = NULL;
    assert_int_equal(sql_open(f->path, migs, 2, &db), 0);
    sql_close(&db);
    journal_t *j = NULL;
    lease_db_t *l = NULL;
    assert_int_equal(journal_open(f->path, &j), 0);
    assert_int_equal(lease_db_open(j, &l), 0);
    const uint8_t m1[6] = {2, 0, 0, 0, 0, 1}, m2[6] = {2, 0, 0, 0, 0, 2};
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(lease_db_seen_put(l, m1, 10), 0);
    assert_int_equal(lease_db_seen_put(l, m1, 11), 0); /* idempotent */
    assert_int_equal(lease_db_seen_put(l, m2, 12), 0);
    assert_int_equal(journal_commit(j), 0);
    int cnt = 0;
    assert_int_equal(lease_db_seen_each(l, s_count_mac, &cnt), 2);
    assert_int_equal(cnt, 2);
    /* the human-readable address column */
    assert_int_equal(journal_begin(j), 0);
    struct lease_row a = s_mk(0xc6120164, 1, LEASE_BOUND, 5000);
    assert_int_equal(lease_db_put(l, &a, 1), 0);
    assert_int_equal(journal_commit(j), 0);
    sqlite3_stmt *st = sql_prepare(journal_db(j), "SELECT addr, mac FROM dhcp_lease");
    assert_non_null(st);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "198.18.1.100");
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "00:04:f2:00:00:01");
    sqlite3_finalize(st);
    lease_db_close(&l);
    journal_close(&j);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_reopen_replace, s_setup, tfix_dir_teardown),
        cmocka_unit_test_setup_teardown(test_seen_and_migration, s_setup, tfix_dir_teardown),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
