/* test_backup.c: the controller's backup store (db/store_backup.c) on a real
 * SQLite file: a put is listed and read back byte-exact; an identical upload
 * adds no version (uploads and last_ms move); A, B, A keeps three versions on
 * two blobs; past STORE_BACKUP_KEEP versions the oldest go, and with them
 * blobs nothing names any more; every rejected input and a rolled-back
 * transaction leave the tables exactly as they were; list filters. And the
 * agent side of the outbox: a backup row keeps its body across a reopen, and
 * rows journaled before the outbox had a body (schema 4) read as events.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "journal.h"
#include "sql.h"
#include "store.h"
#include "store_backup.h"
#include "store_inv.h"
#include "util.h"

#define MAC_A "00:90:33:aa:bb:cc"
#define MAC_B "00:04:f2:aa:bb:01"

struct fx {
    char dir[64];
    char path[128];
    store_t *st;
    int64_t site, agent;
    char err[512];
};

static int s_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    assert_int_equal(hash_init(), 0);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/ff-test-backup.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/controller.db", fx->dir);
    assert_int_equal(store_open(fx->path, &fx->st), 0);
    assert_int_equal(store_site_add(fx->st, "u", "lab", "UTC", NULL, &fx->site, fx->err, 512), 0);
    assert_int_equal(store_site_add(fx->st, "u", "other", "UTC", NULL, NULL, fx->err, 512), 0);
    assert_int_equal(store_agent_enroll(fx->st, "u", "lab", "lab",
                                        "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", &fx->agent,
                                        fx->err, 512),
                     0);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    struct fx *fx = *state;
    store_destroy(&fx->st);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void s_sha(const void *data, size_t len, char hex[65])
{
    uint8_t sum[HASH_LEN];
    hash_ctx_t *h = hash_new();
    assert_non_null(h);
    hash_update(h, data, len);
    hash_final(h, sum);
    hash_destroy(&h);
    util_hex(sum, HASH_LEN, hex);
}

/* Puts text as (mac, name) in its own transaction; the put's rc. */
static int s_put(struct fx *fx, const char *mac, const char *name, const char *text,
                 struct store_backup_out *out)
{
    char hex[65];
    s_sha(text, strlen(text), hex);
    struct store_backup_in in = {fx->agent,    fx->site, mac,  name, (const uint8_t *)text,
                                 strlen(text), hex,      1000, 2000};
    assert_int_equal(store_begin(fx->st), 0);
    int rc = store_backup_put(fx->st, &in, out);
    assert_int_equal(store_commit(fx->st), 0);
    return rc;
}

/* A count from the database file itself (a second, read-only connection). */
static int s_count(struct fx *fx, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static json_t *s_list(struct fx *fx, const char *mac, const char *site, int64_t limit)
{
    json_t *arr = NULL;
    assert_int_equal(store_backup_list(fx->st, mac, site, limit, &arr, fx->err, 512), 0);
    return arr;
}

static void test_schema(void **state)
{
    struct fx *fx = *state;
    int v = store_schema_version(fx->st);
    assert_true(v >= 5); /* the backup tables came with migration 4 (version 5) */
    store_destroy(&fx->st);
    assert_int_equal(store_open(fx->path, &fx->st), 0); /* reopen: no migration again */
    assert_int_equal(store_schema_version(fx->st), v);
}

static void test_put_get(void **state)
{
    struct fx *fx = *state;
    struct store_backup_out out;
    const char *text = "config line 1\nline 2\n";
    assert_int_equal(s_put(fx, MAC_A, "00-90-33-aa-bb-cc-config.txt", text, &out), 0);
    assert_true(out.id > 0);
    assert_int_equal(out.unchanged, 0);
    assert_int_equal(out.pruned, 0);
    json_t *meta = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(store_backup_get(fx->st, out.id, &meta, &data, &len, fx->err, 512), 0);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(data, text, len);
    char hex[65];
    s_sha(text, strlen(text), hex);
    assert_string_equal(json_string_value(json_object_get(meta, "sha256")), hex);
    assert_string_equal(json_string_value(json_object_get(meta, "mac")), MAC_A);
    assert_string_equal(json_string_value(json_object_get(meta, "site")), "lab");
    assert_string_equal(json_string_value(json_object_get(meta, "agent")), "lab");
    assert_int_equal(json_integer_value(json_object_get(meta, "size")), strlen(text));
    assert_int_equal(json_integer_value(json_object_get(meta, "versions")), 1);
    assert_int_equal(json_integer_value(json_object_get(meta, "uploads")), 1);
    assert_int_equal(json_integer_value(json_object_get(meta, "time_ms")), 1000);
    assert_int_equal(json_integer_value(json_object_get(meta, "received_ms")), 2000);
    json_decref(meta);
    free(data);
    /* show without the bytes */
    assert_int_equal(store_backup_get(fx->st, out.id, &meta, NULL, NULL, fx->err, 512), 0);
    json_decref(meta);
    assert_int_equal(store_backup_get(fx->st, out.id + 100, &meta, NULL, NULL, fx->err, 512),
                     -ENOENT);
    assert_null(meta);
    /* an empty backup is a backup */
    assert_int_equal(s_put(fx, MAC_A, "empty.cfg", "", &out), 0);
    assert_int_equal(store_backup_get(fx->st, out.id, &meta, &data, &len, fx->err, 512), 0);
    assert_int_equal(len, 0);
    json_decref(meta);
    free(data);
}

static void test_dedupe(void **state)
{
    struct fx *fx = *state;
    struct store_backup_out a1, a2, b, a3;
    assert_int_equal(s_put(fx, MAC_A, "c.txt", "A", &a1), 0);
    assert_int_equal(s_put(fx, MAC_A, "c.txt", "A", &a2), 0);
    assert_int_equal(a2.unchanged, 1);
    assert_int_equal(a2.id, a1.id);
    json_t *meta = NULL;
    assert_int_equal(store_backup_get(fx->st, a1.id, &meta, NULL, NULL, fx->err, 512), 0);
    assert_int_equal(json_integer_value(json_object_get(meta, "uploads")), 2);
    json_decref(meta);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM backup"), 1);
    /* A, B, A: three versions, two blobs */
    assert_int_equal(s_put(fx, MAC_A, "c.txt", "B", &b), 0);
    assert_int_equal(b.unchanged, 0);
    assert_int_equal(s_put(fx, MAC_A, "c.txt", "A", &a3), 0);
    assert_int_equal(a3.unchanged, 0);
    assert_true(a3.id > b.id && b.id > a1.id);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM backup"), 3);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM backup_blob"), 2);
    /* the same content under another device or name is another version, one blob */
    assert_int_equal(s_put(fx, MAC_B, "c.txt", "A", &a2), 0);
    assert_int_equal(a2.unchanged, 0);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM backup_blob"), 2);
    json_t *arr = s_list(fx, NULL, NULL, 0);
    assert_int_equal(json_array_size(arr), 4);
    /* newest first */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "id")), a2.id);
    json_decref(arr);
}

static void test_prune(void **state)
{
    struct fx *fx = *state;
    struct store_backup_out out, first;
    char text[32];
    assert_int_equal(s_put(fx, MAC_A, "p.cfg", "v0", &first), 0);
    assert_int_equal(s_put(fx, MAC_B, "p.cfg", "v0", &out), 0); /* shares v0's blob */
    int pruned = 0;
    for (int i = 1; i < STORE_BACKUP_KEEP + 5; i++) {
        snprintf(text, sizeof text, "v%d", i);
        assert_int_equal(s_put(fx, MAC_A, "p.cfg", text, &out), 0);
        pruned += out.pruned;
    }
    assert_int_equal(pruned, 5);
    json_t *arr = s_list(fx, MAC_A, NULL, 0);
    assert_int_equal(json_array_size(arr), STORE_BACKUP_KEEP);
    json_decref(arr);
    json_t *meta = NULL;
    assert_int_equal(store_backup_get(fx->st, first.id, &meta, NULL, NULL, fx->err, 512), -ENOENT);
    /* v1..v4 blobs went with their rows; v0 stays (MAC_B names it) */
    assert_int_equal(s_count(fx, "SELECT count(*) FROM backup_blob"), STORE_BACKUP_KEEP + 1);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM backup_blob b WHERE NOT EXISTS"
                                 " (SELECT 1 FROM backup WHERE sha256 = b.sha256)"),
                     0);
}

static void test_rejected(void **state)
{
    struct fx *fx = *state;
    struct store_backup_out out;
    assert_int_equal(s_put(fx, MAC_A, "keep.cfg", "x", &out), 0);
    int rows = s_count(fx, "SELECT count(*) FROM backup");
    int blobs = s_count(fx, "SELECT count(*) FROM backup_blob");
    assert_int_equal(s_put(fx, "00:90:33:AA:BB:CC", "a.cfg", "x", &out), -EINVAL); /* not canon */
    assert_int_equal(s_put(fx, "nope", "a.cfg", "x", &out), -EINVAL);
    assert_int_equal(s_put(fx, MAC_A, "", "x", &out), -EINVAL);
    assert_int_equal(s_put(fx, MAC_A, ".hidden", "x", &out), -EINVAL);
    assert_int_equal(s_put(fx, MAC_A, "a/b", "x", &out), -EINVAL);
    assert_int_equal(out.id, 0);
    char hex[65];
    s_sha("x", 1, hex);
    hex[0] = 'G'; /* not lowercase hex */
    struct store_backup_in in = {fx->agent, fx->site, MAC_A, "a.cfg", (const uint8_t *)"x",
                                 1,         hex,      1,     2};
    assert_int_equal(store_begin(fx->st), 0);
    assert_int_equal(store_backup_put(fx->st, &in, &out), -EINVAL);
    s_sha("x", 1, hex);
    in.len = STORE_BACKUP_MAX + 1;
    assert_int_equal(store_backup_put(fx->st, &in, &out), -EINVAL);
    in.len = 1;
    in.site_id = 0;
    assert_int_equal(store_backup_put(fx->st, &in, &out), -EINVAL);
    /* a put in a transaction that is rolled back leaves nothing */
    in.site_id = fx->site;
    assert_int_equal(store_backup_put(fx->st, &in, &out), 0);
    assert_int_equal(store_rollback(fx->st), 0);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM backup"), rows);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM backup_blob"), blobs);
}

static void test_list_filters(void **state)
{
    struct fx *fx = *state;
    struct store_backup_out out;
    assert_int_equal(s_put(fx, MAC_A, "a.cfg", "1", &out), 0);
    assert_int_equal(s_put(fx, MAC_A, "b.cfg", "2", &out), 0);
    assert_int_equal(s_put(fx, MAC_B, "a.cfg", "3", &out), 0);
    json_t *arr = s_list(fx, "00-90-33-AA-BB-CC", NULL, 0); /* any spelling of the MAC */
    assert_int_equal(json_array_size(arr), 2);
    json_decref(arr);
    arr = s_list(fx, NULL, "lab", 0);
    assert_int_equal(json_array_size(arr), 3);
    json_decref(arr);
    arr = s_list(fx, NULL, "other", 0);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    arr = s_list(fx, "", "", 2);
    assert_int_equal(json_array_size(arr), 2);
    json_decref(arr);
    assert_int_equal(store_backup_list(fx->st, NULL, "nosuch", 0, &arr, fx->err, 512), -ENOENT);
    assert_null(arr);
    assert_int_equal(store_backup_list(fx->st, "zz", NULL, 0, &arr, fx->err, 512), -EINVAL);
    assert_int_equal(store_backup_list(fx->st, NULL, NULL, -1, &arr, fx->err, 512), -EINVAL);
}

static void test_name_ok(void **state)
{
    (void)state;
    assert_true(store_backup_name_ok("00-90-33-aa-bb-cc-config.txt"));
    assert_true(store_backup_name_ok("0004f2aabb01-phone.cfg"));
    assert_false(store_backup_name_ok(NULL));
    assert_false(store_backup_name_ok(""));
    assert_false(store_backup_name_ok(".x"));
    assert_false(store_backup_name_ok("a b"));
    assert_false(store_backup_name_ok("a\\b"));
    assert_false(store_backup_name_ok("a\"b"));
    assert_false(store_backup_name_ok("a\x7f"));
    char longname[STORE_BACKUP_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(store_backup_name_ok(longname));
    longname[STORE_BACKUP_NAME_MAX] = '\0';
    assert_true(store_backup_name_ok(longname));
}

struct rows {
    int n;
    uint64_t seq[8];
    int body[8];
    size_t len[8];
};

static int s_row_cb(void *arg, uint64_t seq, int body, const uint8_t *payload, size_t len)
{
    struct rows *r = arg;
    (void)payload;
    r->seq[r->n] = seq;
    r->body[r->n] = body;
    r->len[r->n] = len;
    return ++r->n >= 8;
}

static void test_journal_bodies(void **state)
{
    (void)state;
    char dir[64], path[128];
    snprintf(dir, sizeof dir, "/tmp/ff-test-backup-j.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/journal.db", dir);
    int n = 0;
    const char *const *migs = journal_migrations(&n);
    assert_true(n >= 5);
    /* an agent from before backups: schema 4 with an event queued */
    sqlite3 *db = NULL;
    assert_int_equal(sql_open(path, migs, 4, &db), 0);
    assert_int_equal(sql_exec(db, "INSERT INTO outbox(seq, payload, created_ms) VALUES"
                                  " (1, x'0801', 1);"
                                  "INSERT INTO meta(key, value) VALUES ('last_seq', 1);"),
                     0);
    sql_close(&db);
    journal_t *j = NULL;
    assert_int_equal(journal_open(path, &j), 0);
    uint8_t big[3000];
    memset(big, 0x5a, sizeof big);
    uint64_t seq = 0;
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_append(j, JOURNAL_BODY_BACKUP, big, sizeof big, 5, &seq), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(journal_append_event(j, (const uint8_t *)"\x08\x02", 2, 6, &seq), 0);
    assert_int_equal(journal_commit(j), 0);
    journal_close(&j);
    assert_int_equal(journal_open(path, &j), 0);
    struct rows r = {0};
    assert_int_equal(journal_iter_rows(j, 1, 10, 10, s_row_cb, &r), 3);
    assert_int_equal(r.seq[0], 1);
    assert_int_equal(r.body[0], JOURNAL_BODY_EVENT);
    assert_int_equal(r.seq[1], 2);
    assert_int_equal(r.body[1], JOURNAL_BODY_BACKUP);
    assert_int_equal(r.len[1], sizeof big);
    assert_int_equal(r.body[2], JOURNAL_BODY_EVENT);
    /* acked rows are gone whatever their body */
    assert_int_equal(journal_begin(j), 0);
    assert_int_equal(journal_ack(j, 2), 0);
    assert_int_equal(journal_commit(j), 0);
    struct rows r2 = {0};
    assert_int_equal(journal_iter_rows(j, 1, 10, 10, s_row_cb, &r2), 1);
    assert_int_equal(r2.seq[0], 3);
    journal_close(&j);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_put_get, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dedupe, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_prune, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rejected, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_list_filters, s_setup, s_teardown),
        cmocka_unit_test(test_name_ok),
        cmocka_unit_test(test_journal_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
