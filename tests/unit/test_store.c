/* test_store.c: the controller store's inventory layer (store_inv) on a real
 * SQLite file in a temporary directory: schema creation and idempotent
 * migration on reopen, site/agent/device/firmware CRUD, event filters, and
 * above all that every rejected write leaves the database exactly as it was
 * (compared through a snapshot of every listing plus the audit log).
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
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_inv.h"
#include "store_link.h"

#define SHA_A "aa805c71e3b342ea41be535ce1363e3cba2dd3a81d278982cd843fe2df8b3673"
#define SHA_B "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
#define SHA_C "0000000000000000000000000000000000000000000000000000000000000000"

struct fx {
    char dir[64];
    char path[128];
    store_t *st;
    char err[512];
};

static int s_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/ff-test-store.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/controller.db", fx->dir);
    assert_int_equal(store_open(fx->path, &fx->st), 0);
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

/* Everything a command could change, as one string (caller frees). */
static char *s_snapshot(struct fx *fx)
{
    json_t *all = json_object(), *v = NULL;
    assert_int_equal(store_site_list(fx->st, &v, fx->err, sizeof fx->err), 0);
    json_object_set_new(all, "sites", v);
    assert_int_equal(store_agent_list(fx->st, &v, fx->err, sizeof fx->err), 0);
    json_object_set_new(all, "agents", v);
    struct store_device_filter every = {0};
    assert_int_equal(store_device_list(fx->st, &every, &v, fx->err, sizeof fx->err), 0);
    json_object_set_new(all, "devices", v);
    assert_int_equal(store_firmware_list(fx->st, &v, fx->err, sizeof fx->err), 0);
    json_object_set_new(all, "firmware", v);
    assert_int_equal(store_audit_list(fx->st, 0, &v, fx->err, sizeof fx->err), 0);
    json_object_set_new(all, "audit", v);
    uint64_t size = 0;
    json_object_set_new(all, "blob_c",
                        json_integer(store_blob_get(fx->st, SHA_C, &size, fx->err, 512)));
    char *s = json_dumps(all, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(all);
    assert_non_null(s);
    return s;
}

static size_t s_count(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_decref(arr);
    return n;
}

static size_t s_audit_rows(struct fx *fx)
{
    json_t *a = NULL;
    assert_int_equal(store_audit_list(fx->st, 0, &a, fx->err, sizeof fx->err), 0);
    return s_count(a);
}

static void s_add_berlin(struct fx *fx)
{
    assert_int_equal(store_site_add(fx->st, "alice", "berlin", "Europe/Berlin", "HQ", NULL, fx->err,
                                    sizeof fx->err),
                     0);
}

/* ---- opening ---- */

static void test_open_and_reopen(void **state)
{
    struct fx *fx = *state;
    int v = store_schema_version(fx->st);
    assert_true(v >= 1);
    s_add_berlin(fx);
    store_destroy(&fx->st);
    assert_null(fx->st);
    store_destroy(&fx->st); /* idempotent */
    assert_int_equal(store_open(fx->path, &fx->st), 0);
    assert_int_equal(store_schema_version(fx->st), v);
    json_t *sites = NULL;
    assert_int_equal(store_site_list(fx->st, &sites, fx->err, sizeof fx->err), 0);
    assert_int_equal(json_array_size(sites), 1);
    json_decref(sites);
}

/* ---- sites ---- */

static void test_site_crud(void **state)
{
    struct fx *fx = *state;
    int64_t id = 0;
    assert_int_equal(store_site_add(fx->st, "alice", "berlin", "Europe/Berlin", "HQ branch", &id,
                                    fx->err, sizeof fx->err),
                     0);
    assert_true(id > 0);
    assert_int_equal(
        store_site_add(fx->st, NULL, "paris-2", "UTC", NULL, NULL, fx->err, sizeof fx->err), 0);
    json_t *s = NULL;
    assert_int_equal(store_site_show(fx->st, "berlin", &s, fx->err, sizeof fx->err), 0);
    assert_string_equal(json_string_value(json_object_get(s, "tz")), "Europe/Berlin");
    assert_string_equal(json_string_value(json_object_get(s, "description")), "HQ branch");
    assert_int_equal(json_integer_value(json_object_get(s, "devices")), 0);
    assert_int_equal(json_integer_value(json_object_get(s, "agents")), 0);
    json_decref(s);
    json_t *list = NULL;
    assert_int_equal(store_site_list(fx->st, &list, fx->err, sizeof fx->err), 0);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")),
                        "berlin");
    json_decref(list);
    assert_int_equal(store_site_show(fx->st, "nowhere", &s, fx->err, sizeof fx->err), -ENOENT);
    assert_null(s);
    assert_string_equal(fx->err, "unknown site 'nowhere'");
    /* audit rows: one per add, with the user */
    json_t *audit = NULL;
    assert_int_equal(store_audit_list(fx->st, 0, &audit, fx->err, sizeof fx->err), 0);
    assert_int_equal(json_array_size(audit), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 0), "user")),
                        "alice");
    assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 1), "user")),
                        "unknown");
    assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 0), "action")),
                        "site.add");
    json_decref(audit);
}

static void test_site_bad_input_changes_nothing(void **state)
{
    struct fx *fx = *state;
    s_add_berlin(fx);
    char *before = s_snapshot(fx);
    static const char *bad_names[] = {
        "",        "Berlin",
        "-x",      ".x",
        "a b",     "a/b",
        "ber;lin", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        assert_int_equal(
            store_site_add(fx->st, "u", bad_names[i], "UTC", NULL, NULL, fx->err, sizeof fx->err),
            -EINVAL);
        assert_non_null(strstr(fx->err, "invalid site name"));
    }
    static const char *bad_tz[] = {"",
                                   "Europe/Nowhere",
                                   "../../etc/passwd",
                                   "/usr/share/zoneinfo/UTC",
                                   "Europe/../UTC",
                                   "Europe//Berlin",
                                   "./UTC",
                                   "zone.tab",
                                   "Europe",
                                   "UTC\n",
                                   "Europe/Berlin/"};
    for (size_t i = 0; i < sizeof bad_tz / sizeof bad_tz[0]; i++) {
        assert_int_equal(
            store_site_add(fx->st, "u", "paris", bad_tz[i], NULL, NULL, fx->err, sizeof fx->err),
            -EINVAL);
        assert_non_null(strstr(fx->err, "invalid time zone"));
        assert_null(strchr(fx->err, '\n'));
    }
    assert_int_equal(
        store_site_add(fx->st, "u", "berlin", "UTC", NULL, NULL, fx->err, sizeof fx->err), -EEXIST);
    assert_string_equal(fx->err, "site berlin already exists");
    assert_int_equal(
        store_site_add(fx->st, "u", "paris", "UTC", "bad\ttext", NULL, fx->err, sizeof fx->err),
        -EINVAL);
    assert_int_equal(
        store_site_add(fx->st, "u", "paris", "UTC", "\xff\xfe", NULL, fx->err, sizeof fx->err),
        -EINVAL);
    char *after = s_snapshot(fx);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* good unusual zones */
    assert_int_equal(store_check_tz("America/Argentina/Buenos_Aires", fx->err, sizeof fx->err), 0);
    assert_int_equal(store_check_tz("Etc/GMT+5", fx->err, sizeof fx->err), 0);
}

/* ---- devices ---- */

static void test_device_crud(void **state)
{
    struct fx *fx = *state;
    s_add_berlin(fx);
    struct store_device_in d = {.mac = "00-11-22-AA-BB-CC",
                                .site = "berlin",
                                .model = "CP-7961G",
                                .serial = "FCH123",
                                .tags = "lobby,floor1,lobby"};
    int64_t site_id = 0;
    assert_int_equal(store_device_add(fx->st, "bob", &d, &site_id, fx->err, sizeof fx->err), 0);
    assert_true(site_id > 0);
    json_t *dev = NULL;
    assert_int_equal(store_device_show(fx->st, "0011.22aa.bbcc", &dev, fx->err, sizeof fx->err), 0);
    assert_string_equal(json_string_value(json_object_get(dev, "mac")), "00:11:22:aa:bb:cc");
    assert_string_equal(json_string_value(json_object_get(dev, "site")), "berlin");
    assert_string_equal(json_string_value(json_object_get(dev, "origin")), "operator");
    json_t *tags = json_object_get(dev, "tags");
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(json_string_value(json_array_get(tags, 1)), "floor1");
    json_decref(dev);

    /* the site's generation moved and its count shows the device */
    json_t *s = NULL;
    assert_int_equal(store_site_show(fx->st, "berlin", &s, fx->err, sizeof fx->err), 0);
    assert_int_equal(json_integer_value(json_object_get(s, "devices")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "generation")), 2);
    json_decref(s);

    struct store_device_in d2 = {.mac = "001122334455", .site = "berlin", .model = "SPA504G"};
    assert_int_equal(store_device_add(fx->st, "bob", &d2, NULL, fx->err, sizeof fx->err), 0);
    json_t *list = NULL;
    struct store_device_filter by_site = {.site = "berlin"}, by_model = {.model = "SPA504G"},
                               no_site = {.site = "nowhere"};
    assert_int_equal(store_device_list(fx->st, &by_site, &list, fx->err, sizeof fx->err), 0);
    assert_int_equal(s_count(list), 2);
    assert_int_equal(store_device_list(fx->st, &by_model, &list, fx->err, sizeof fx->err), 0);
    assert_int_equal(s_count(list), 1);
    assert_int_equal(store_device_list(fx->st, &no_site, &list, fx->err, sizeof fx->err), -ENOENT);
    /* paging: one at a time, in (site, mac) order */
    struct store_device_filter page = {.limit = 1};
    assert_int_equal(store_device_list(fx->st, &page, &list, fx->err, sizeof fx->err), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "mac")),
                        "00:11:22:33:44:55");
    json_decref(list);
    page.after_site = "berlin";
    page.after_mac = "00:11:22:33:44:55";
    assert_int_equal(store_device_list(fx->st, &page, &list, fx->err, sizeof fx->err), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "mac")),
                        "00:11:22:aa:bb:cc");
    json_decref(list);
    page.after_mac = "00:11:22:aa:bb:cc";
    assert_int_equal(store_device_list(fx->st, &page, &list, fx->err, sizeof fx->err), 0);
    assert_int_equal(s_count(list), 0);
    page.after_mac = NULL;
    assert_int_equal(store_device_list(fx->st, &page, &list, fx->err, sizeof fx->err), -EINVAL);
    assert_int_equal(store_device_show(fx->st, "00:00:00:00:00:01", &dev, fx->err, 512), -ENOENT);
    assert_int_equal(store_device_show(fx->st, "garbage", &dev, fx->err, 512), -EINVAL);
}

static void test_device_bad_input_changes_nothing(void **state)
{
    struct fx *fx = *state;
    s_add_berlin(fx);
    struct store_device_in d = {.mac = "aa:bb:cc:dd:ee:ff", .site = "berlin"};
    assert_int_equal(store_device_add(fx->st, "bob", &d, NULL, fx->err, sizeof fx->err), 0);
    char *before = s_snapshot(fx);
    size_t audit = s_audit_rows(fx);

    /* duplicate, whatever the spelling */
    struct store_device_in dup = {.mac = "AABB.CCDD.EEFF", .site = "berlin"};
    assert_int_equal(store_device_add(fx->st, "bob", &dup, NULL, fx->err, sizeof fx->err), -EEXIST);
    assert_string_equal(fx->err, "device aa:bb:cc:dd:ee:ff already exists (site berlin)");

    static const char *bad_macs[] = {"",
                                     "aa:bb:cc:dd:ee",
                                     "aa:bb:cc:dd:ee:ff:00",
                                     "gg:bb:cc:dd:ee:ff",
                                     "aa-bb:cc:dd:ee:ff",
                                     "aabb.ccdd.eef",
                                     "aa:bb:cc:dd:ee:f\n",
                                     "aabbccddeeff0"};
    for (size_t i = 0; i < sizeof bad_macs / sizeof bad_macs[0]; i++) {
        struct store_device_in b = {.mac = bad_macs[i], .site = "berlin"};
        assert_int_equal(store_device_add(fx->st, "bob", &b, NULL, fx->err, sizeof fx->err),
                         -EINVAL);
        assert_null(strchr(fx->err, '\n'));
    }
    struct store_device_in nosite = {.mac = "00:00:00:00:00:01", .site = "paris"};
    assert_int_equal(store_device_add(fx->st, "bob", &nosite, NULL, fx->err, sizeof fx->err),
                     -ENOENT);
    assert_string_equal(fx->err, "unknown site 'paris'");
    struct store_device_in badtag = {.mac = "00:00:00:00:00:01", .site = "berlin", .tags = "a,,b"};
    assert_int_equal(store_device_add(fx->st, "bob", &badtag, NULL, fx->err, sizeof fx->err),
                     -EINVAL);
    struct store_device_in badmodel = {
        .mac = "00:00:00:00:00:01", .site = "berlin", .model = "a,b"};
    assert_int_equal(store_device_add(fx->st, "bob", &badmodel, NULL, fx->err, sizeof fx->err),
                     -EINVAL);
    struct store_device_in badserial = {
        .mac = "00:00:00:00:00:01", .site = "berlin", .serial = "x y"};
    assert_int_equal(store_device_add(fx->st, "bob", &badserial, NULL, fx->err, sizeof fx->err),
                     -EINVAL);
    char *after = s_snapshot(fx);
    assert_string_equal(before, after);
    assert_int_equal(s_audit_rows(fx), audit);
    free(before);
    free(after);
}

static void test_device_import_all_or_nothing(void **state)
{
    struct fx *fx = *state;
    s_add_berlin(fx);
    assert_int_equal(
        store_site_add(fx->st, "u", "paris", "Europe/Paris", NULL, NULL, fx->err, sizeof fx->err),
        0);
    struct store_device_in existing = {.mac = "00:00:00:00:00:99", .site = "paris"};
    assert_int_equal(store_device_add(fx->st, "u", &existing, NULL, fx->err, sizeof fx->err), 0);
    char *before = s_snapshot(fx);

    struct store_device_in rows[4] = {
        {.mac = "00:00:00:00:00:01", .site = "berlin", .model = "A", .line = 2},
        {.mac = "00:00:00:00:00:02", .site = "paris", .model = "B", .line = 3},
        {.mac = "00:00:00:00:00:03", .site = "berlin", .line = 5},
        {.mac = "00:00:00:00:00:04", .site = "berlin", .line = 6},
    };
    /* a bad MAC on line 5 */
    rows[2].mac = "00:00:00:00:00";
    assert_int_equal(store_device_import(fx->st, "u", rows, 4, NULL, fx->err, sizeof fx->err),
                     -EINVAL);
    assert_string_equal(fx->err, "line 5: invalid MAC address '00:00:00:00:00'");
    rows[2].mac = "00:00:00:00:00:03";
    /* an unknown site on line 6 (checked inside the transaction, after
     * three rows were already inserted) */
    rows[3].site = "rome";
    assert_int_equal(store_device_import(fx->st, "u", rows, 4, NULL, fx->err, sizeof fx->err),
                     -ENOENT);
    assert_string_equal(fx->err, "line 6: unknown site 'rome'");
    rows[3].site = "berlin";
    /* a MAC already in the database */
    rows[3].mac = "00-00-00-00-00-99";
    assert_int_equal(store_device_import(fx->st, "u", rows, 4, NULL, fx->err, sizeof fx->err),
                     -EEXIST);
    assert_string_equal(fx->err, "line 6: device 00:00:00:00:00:99 already exists (site paris)");
    /* a MAC twice within the rows */
    rows[3].mac = "0000.0000.0002";
    assert_int_equal(store_device_import(fx->st, "u", rows, 4, NULL, fx->err, sizeof fx->err),
                     -EEXIST);
    assert_string_equal(fx->err, "line 6: device 00:00:00:00:00:02 appears twice (also line 3)");
    assert_int_equal(store_device_import(fx->st, "u", rows, 0, NULL, fx->err, sizeof fx->err),
                     -EINVAL);
    char *after = s_snapshot(fx);
    assert_string_equal(before, after);
    free(after);
    free(before);

    /* the good import */
    rows[3].mac = "00:00:00:00:00:04";
    json_t *ids = NULL;
    assert_int_equal(store_device_import(fx->st, "u", rows, 4, &ids, fx->err, sizeof fx->err), 0);
    assert_int_equal(json_array_size(ids), 2);
    json_decref(ids);
    json_t *list = NULL;
    struct store_device_filter all = {0};
    assert_int_equal(store_device_list(fx->st, &all, &list, fx->err, sizeof fx->err), 0);
    assert_int_equal(json_array_size(list), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "origin")),
                        "import");
    json_decref(list);
}

/* ---- firmware ---- */

static void test_firmware(void **state)
{
    struct fx *fx = *state;
    s_add_berlin(fx);
    struct store_device_in d = {.mac = "00:00:00:00:00:01", .site = "berlin", .model = "CP-7961G"};
    assert_int_equal(store_device_add(fx->st, "u", &d, NULL, fx->err, sizeof fx->err), 0);
    assert_int_equal(store_blob_register(fx->st, SHA_B, 6, fx->err, sizeof fx->err), 0);
    assert_int_equal(store_blob_register(fx->st, SHA_B, 6, fx->err, sizeof fx->err), 0);
    assert_int_equal(store_blob_register(fx->st, SHA_B, 7, fx->err, sizeof fx->err), -EEXIST);
    assert_int_equal(store_blob_register(fx->st, "AB", 7, fx->err, sizeof fx->err), -EINVAL);
    char *before = s_snapshot(fx);

    const char *models[] = {"CP-7961G", "CP-7941G"};
    struct store_fw_file files[] = {
        {.name = "big.bin", .sha256 = SHA_A, .has_size = 1, .size = 3000000},
        {.name = "cfg.txt", .sha256 = SHA_B},
        {.name = "missing.bin", .sha256 = SHA_C},
    };
    struct store_fw_in fw = {.vendor = "cisco",
                             .version = "9.4.2",
                             .description = "SCCP",
                             .models = models,
                             .n_models = 2,
                             .files = files,
                             .n_files = 3};
    /* SHA_C is not registered: nothing at all may change, not even blob A */
    assert_int_equal(store_firmware_add(fx->st, "u", &fw, NULL, NULL, fx->err, sizeof fx->err),
                     -ENOENT);
    assert_non_null(strstr(fx->err, "is not in the image store"));
    /* bad names */
    fw.n_files = 2;
    fw.vendor = "cis co";
    assert_int_equal(store_firmware_add(fx->st, "u", &fw, NULL, NULL, fx->err, sizeof fx->err),
                     -EINVAL);
    fw.vendor = "cisco";
    files[1].name = "../etc";
    assert_int_equal(store_firmware_add(fx->st, "u", &fw, NULL, NULL, fx->err, sizeof fx->err),
                     -EINVAL);
    files[1].name = "big.bin";
    assert_int_equal(store_firmware_add(fx->st, "u", &fw, NULL, NULL, fx->err, sizeof fx->err),
                     -EINVAL);
    files[1].name = "cfg.txt";
    fw.n_models = 0;
    assert_int_equal(store_firmware_add(fx->st, "u", &fw, NULL, NULL, fx->err, sizeof fx->err),
                     -EINVAL);
    fw.n_models = 2;
    char *after = s_snapshot(fx);
    assert_string_equal(before, after);
    free(after);

    int64_t id = 0;
    json_t *ids = NULL;
    assert_int_equal(store_firmware_add(fx->st, "u", &fw, &id, &ids, fx->err, sizeof fx->err), 0);
    assert_true(id > 0);
    assert_int_equal(json_array_size(ids), 1); /* berlin has a CP-7961G */
    json_decref(ids);
    assert_int_equal(store_firmware_add(fx->st, "u", &fw, NULL, NULL, fx->err, sizeof fx->err),
                     -EEXIST);
    assert_string_equal(fx->err, "firmware cisco/9.4.2 already exists");
    assert_int_equal(store_firmware_free(fx->st, "cisco", "9.4.2", fx->err, 512), -EEXIST);
    assert_int_equal(store_firmware_free(fx->st, "cisco", "9.4.3", fx->err, 512), 0);

    json_t *show = NULL;
    assert_int_equal(store_firmware_show(fx->st, "cisco/9.4.2", &show, fx->err, 512), 0);
    assert_int_equal(json_integer_value(json_object_get(show, "total_size")), 3000006);
    json_t *fl = json_object_get(show, "files");
    assert_int_equal(json_array_size(fl), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(fl, 0), "name")),
                        "big.bin");
    assert_string_equal(json_string_value(json_object_get(json_array_get(fl, 0), "sha256")), SHA_A);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(fl, 1), "size")), 6);
    assert_int_equal(json_array_size(json_object_get(show, "models")), 2);
    json_decref(show);
    char idref[32];
    snprintf(idref, sizeof idref, "%lld", (long long)id);
    assert_int_equal(store_firmware_show(fx->st, idref, &show, fx->err, 512), 0);
    json_decref(show);
    assert_int_equal(store_firmware_show(fx->st, "cisco/1.0", &show, fx->err, 512), -ENOENT);
    assert_int_equal(store_firmware_show(fx->st, "cisco", &show, fx->err, 512), -EINVAL);
    json_t *list = NULL;
    assert_int_equal(store_firmware_list(fx->st, &list, fx->err, 512), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "file_count")), 2);
    json_decref(list);
    free(before);
}

/* ---- agents ---- */

static void test_agents(void **state)
{
    struct fx *fx = *state;
    s_add_berlin(fx);
    const char *key1 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    const char *key2 = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    char *before = s_snapshot(fx);
    assert_int_equal(store_agent_enroll(fx->st, "u", "berlin-1", "paris", key1, NULL, fx->err, 512),
                     -ENOENT);
    assert_int_equal(store_agent_enroll(fx->st, "u", "Bad", "berlin", key1, NULL, fx->err, 512),
                     -EINVAL);
    assert_int_equal(store_agent_enroll(fx->st, "u", "b1", "berlin", "short", NULL, fx->err, 512),
                     -EINVAL);
    char *after = s_snapshot(fx);
    assert_string_equal(before, after);
    free(before);
    free(after);

    int64_t id = 0, id2 = 0;
    assert_int_equal(store_agent_enroll(fx->st, "u", "berlin", "berlin", key1, &id, fx->err, 512),
                     0);
    assert_int_equal(store_agent_enroll(fx->st, "u", "berlin", "berlin", key2, NULL, fx->err, 512),
                     -EEXIST);
    assert_int_equal(store_agent_enroll(fx->st, "u", "b2", "berlin", key1, NULL, fx->err, 512),
                     -EEXIST); /* same key */
    assert_int_equal(store_agent_lookup(fx->st, "berlin", &id2, fx->err, 512), 0);
    assert_int_equal(id, id2);
    char idref[32];
    snprintf(idref, sizeof idref, "%lld", (long long)id);
    assert_int_equal(store_agent_lookup(fx->st, idref, &id2, fx->err, 512), 0);
    assert_int_equal(id, id2);
    assert_int_equal(store_agent_lookup(fx->st, "nobody", &id2, fx->err, 512), -ENOENT);

    /* the link finds it by key */
    struct store_agent_link al;
    assert_int_equal(store_agent_by_pubkey(fx->st, key1, &al), 1);
    assert_int_equal(al.revoked, 0);

    json_t *a = NULL;
    assert_int_equal(store_agent_show(fx->st, "berlin", &a, fx->err, 512), 0);
    assert_string_equal(json_string_value(json_object_get(a, "public_key")), key1);
    assert_true(json_is_false(json_object_get(a, "revoked")));
    assert_true(json_is_null(json_object_get(a, "last_seen_ms")));
    assert_int_equal(json_array_size(json_object_get(a, "cached")), 0);
    json_decref(a);
    /* what the link records shows up */
    assert_int_equal(store_agent_hello(fx->st, id, 5000, "0.1.0", SHA_A " " SHA_B), 0);
    assert_int_equal(store_agent_show(fx->st, "berlin", &a, fx->err, 512), 0);
    assert_int_equal(json_integer_value(json_object_get(a, "last_seen_ms")), 5000);
    assert_string_equal(json_string_value(json_object_get(a, "version")), "0.1.0");
    assert_int_equal(json_array_size(json_object_get(a, "cached")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(a, "cached"), 1)), SHA_B);
    json_decref(a);
    json_t *s = NULL;
    assert_int_equal(store_site_show(fx->st, "berlin", &s, fx->err, 512), 0);
    assert_int_equal(json_integer_value(json_object_get(s, "agents")), 1);
    json_decref(s);

    assert_int_equal(store_agent_revoke(fx->st, "u", "berlin", &id2, fx->err, 512), 0);
    assert_int_equal(id, id2);
    assert_int_equal(store_agent_by_pubkey(fx->st, key1, &al), 1);
    assert_int_equal(al.revoked, 1);
    size_t audit = s_audit_rows(fx);
    assert_int_equal(store_agent_revoke(fx->st, "u", "berlin", NULL, fx->err, 512), -EALREADY);
    assert_string_equal(fx->err, "agent berlin is already revoked");
    assert_int_equal(s_audit_rows(fx), audit);
    assert_int_equal(store_agent_revoke(fx->st, "u", "nobody", NULL, fx->err, 512), -ENOENT);
    json_t *list = NULL;
    assert_int_equal(store_agent_list(fx->st, &list, fx->err, 512), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_true(json_is_true(json_object_get(json_array_get(list, 0), "revoked")));
    assert_null(json_object_get(json_array_get(list, 0), "public_key"));
    json_decref(list);
}

/* ---- events ---- */

static void s_event(struct fx *fx, int64_t agent, uint64_t seq, const char *kind, const char *mac)
{
    Firmfleet__DeviceEvent ev = FIRMFLEET__DEVICE_EVENT__INIT;
    ev.time_ms = 1000 + seq;
    ev.kind = (char *)(uintptr_t)kind;
    ev.mac = (char *)(uintptr_t)mac;
    ev.detail = (char *)"file=SIP.cnf bytes=12";
    assert_int_equal(store_event_append(fx->st, agent, seq, 2000 + seq, &ev), 0);
}

static void test_events(void **state)
{
    struct fx *fx = *state;
    s_add_berlin(fx);
    assert_int_equal(store_site_add(fx->st, "u", "paris", "Europe/Paris", NULL, NULL, fx->err, 512),
                     0);
    int64_t a1 = 0, a2 = 0;
    assert_int_equal(store_agent_enroll(fx->st, "u", "berlin", "berlin",
                                        "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", &a1, fx->err,
                                        512),
                     0);
    assert_int_equal(store_agent_enroll(fx->st, "u", "paris", "paris",
                                        "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", &a2, fx->err,
                                        512),
                     0);
    s_event(fx, a1, 1, "dhcp.lease", "00:00:00:00:00:01");
    s_event(fx, a1, 2, "tftp.done", "00:00:00:00:00:01");
    s_event(fx, a2, 1, "dhcp.lease", "00:00:00:00:00:02");
    s_event(fx, a1, 3, "dhcp.lease", "00:00:00:00:00:03");

    struct store_event_filter f = {0};
    json_t *ev = NULL;
    assert_int_equal(store_event_list(fx->st, &f, &ev, fx->err, 512), 0);
    assert_int_equal(json_array_size(ev), 4);
    json_t *e0 = json_array_get(ev, 0);
    assert_string_equal(json_string_value(json_object_get(e0, "agent")), "berlin");
    assert_string_equal(json_string_value(json_object_get(e0, "site")), "berlin");
    assert_int_equal(json_integer_value(json_object_get(e0, "seq")), 1);
    assert_int_equal(json_integer_value(json_object_get(e0, "time_ms")), 1001);
    assert_int_equal(json_integer_value(json_object_get(e0, "received_ms")), 2001);
    assert_string_equal(json_string_value(json_object_get(e0, "detail")), "file=SIP.cnf bytes=12");
    json_decref(ev);

    f.kind = "dhcp.lease";
    assert_int_equal(store_event_list(fx->st, &f, &ev, fx->err, 512), 0);
    assert_int_equal(s_count(ev), 3);
    f.site = "paris";
    assert_int_equal(store_event_list(fx->st, &f, &ev, fx->err, 512), 0);
    assert_int_equal(s_count(ev), 1);
    f.site = NULL;
    f.kind = NULL;
    f.agent = "berlin";
    f.mac = "000000000001";
    assert_int_equal(store_event_list(fx->st, &f, &ev, fx->err, 512), 0);
    assert_int_equal(s_count(ev), 2);
    f.agent = NULL;
    f.mac = NULL;
    /* newest two, oldest first */
    f.limit = 2;
    assert_int_equal(store_event_list(fx->st, &f, &ev, fx->err, 512), 0);
    assert_int_equal(json_array_size(ev), 2);
    int64_t id_a = json_integer_value(json_object_get(json_array_get(ev, 0), "id"));
    int64_t id_b = json_integer_value(json_object_get(json_array_get(ev, 1), "id"));
    assert_true(id_a < id_b);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 1), "mac")),
                        "00:00:00:00:00:03");
    json_decref(ev);
    /* paging after an id */
    f.limit = 1;
    f.has_since = 1;
    f.since = id_a - 2;
    assert_int_equal(store_event_list(fx->st, &f, &ev, fx->err, 512), 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 0), "id")), id_a - 1);
    json_decref(ev);
    /* since 0: from the start, oldest first */
    f.limit = 2;
    f.since = 0;
    assert_int_equal(store_event_list(fx->st, &f, &ev, fx->err, 512), 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 0), "seq")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 1), "seq")), 2);
    json_decref(ev);
    /* bad filters */
    struct store_event_filter bad = {.mac = "zz"};
    assert_int_equal(store_event_list(fx->st, &bad, &ev, fx->err, 512), -EINVAL);
    struct store_event_filter bad2 = {.agent = "nobody"};
    assert_int_equal(store_event_list(fx->st, &bad2, &ev, fx->err, 512), -ENOENT);
    struct store_event_filter bad3 = {.site = "rome"};
    assert_int_equal(store_event_list(fx->st, &bad3, &ev, fx->err, 512), -ENOENT);
    struct store_event_filter bad4 = {.limit = -1};
    assert_int_equal(store_event_list(fx->st, &bad4, &ev, fx->err, 512), -EINVAL);
}

/* ---- transactions ---- */

static void test_inside_caller_transaction(void **state)
{
    struct fx *fx = *state;
    /* inside an open transaction a write uses a savepoint: its own failure
     * rolls back only itself, and the caller's rollback undoes its success */
    assert_int_equal(store_begin(fx->st), 0);
    s_add_berlin(fx);
    assert_int_equal(store_site_add(fx->st, "u", "berlin", "UTC", NULL, NULL, fx->err, 512),
                     -EEXIST);
    json_t *s = NULL;
    assert_int_equal(store_site_show(fx->st, "berlin", &s, fx->err, 512), 0);
    json_decref(s);
    assert_int_equal(store_rollback(fx->st), 0);
    assert_int_equal(store_site_show(fx->st, "berlin", &s, fx->err, 512), -ENOENT);
    assert_int_equal(s_audit_rows(fx), 0);
}

static void test_validators(void **state)
{
    (void)state;
    char out[256], err[256];
    assert_int_equal(store_check_tags("a,b,a,c-d", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "a,b,c-d");
    assert_int_equal(store_check_tags("", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "");
    assert_int_equal(store_check_tags(",", out, sizeof out, err, sizeof err), -EINVAL);
    assert_int_equal(store_check_tags("a b", out, sizeof out, err, sizeof err), -EINVAL);
    assert_int_equal(store_check_file_name("SIP41.9-4-2SR3-1S.loads", err, sizeof err), 0);
    assert_int_equal(store_check_file_name(".hidden", err, sizeof err), -EINVAL);
    assert_int_equal(store_check_file_name("a/b", err, sizeof err), -EINVAL);
    assert_int_equal(store_check_fw_part("version", "9.4.2SR3", err, sizeof err), 0);
    assert_int_equal(store_check_fw_part("version", "9/4", err, sizeof err), -EINVAL);
    assert_int_equal(store_check_sha256(SHA_A, err, sizeof err), 0);
    assert_int_equal(
        store_check_sha256("AA805c71e3b342ea41be535ce1363e3cba2dd3a81d278982cd843fe2df8b3673", err,
                           sizeof err),
        -EINVAL);
    assert_int_equal(store_check_text("d", "Zürich – ok", 100, err, sizeof err), 0);
    assert_int_equal(store_check_text("d", "\xc0\xaf", 100, err, sizeof err), -EINVAL);
    assert_int_equal(store_check_text("d", "\xed\xa0\x80", 100, err, sizeof err), -EINVAL);
    assert_int_equal(store_check_model("CP-7961G", err, sizeof err), 0);
    assert_int_equal(store_check_model("Aironet 1142", err, sizeof err), 0);
    assert_int_equal(store_check_model(" x", err, sizeof err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_and_reopen, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_site_crud, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_site_bad_input_changes_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_device_crud, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_device_bad_input_changes_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_device_import_all_or_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_firmware, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_agents, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_events, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_inside_caller_transaction, s_setup, s_teardown),
        cmocka_unit_test(test_validators),
    };
    log_set_level(LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
