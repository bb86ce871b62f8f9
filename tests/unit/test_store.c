/* test_store.c: the controller store's inventory layer (store_inv) on a real
 * SQLite file in a temporary directory: schema creation and idempotent
 * migration on reopen, site/agent/device/firmware CRUD, event filters, and
 * above all that every rejected write leaves the database exactly as it was
 * (compared through a snapshot of every listing plus the audit log). Site
 * services (subnets, classes, templates, reservations) are checked down to
 * the SiteConfig an agent would get and the generation bumps they cause.
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

#include "firmfleet.pb-c.h"
#include "log.h"
#include "sql.h"
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
    assert_int_equal(store_subnet_list(fx->st, NULL, &v, fx->err, sizeof fx->err), 0);
    json_object_set_new(all, "subnets", v);
    assert_int_equal(store_class_list(fx->st, NULL, &v, fx->err, sizeof fx->err), 0);
    json_object_set_new(all, "classes", v);
    assert_int_equal(store_template_list(fx->st, NULL, &v, fx->err, sizeof fx->err), 0);
    json_object_set_new(all, "templates", v);
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

/* ---- enrollment ---- */

/* A single-use key: admitted while pending, dead once the agent registered
 * its own key, refused once expired; a client with no key of its own keeps
 * the enrollment key; refusals are audited at most once a minute. */
static void test_enrollment(void **state)
{
    struct fx *fx = *state;
    s_add_berlin(fx);
    const char *ek = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    const char *own = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    const char *ek2 = "0123456789abcdefghijABCDEFGHIJ.-:+=^!/*?";
    const char *ek3 = "abcdefghij0123456789ABCDEFGHIJ.-:+=^!/*?";
    int64_t id = 0, id2 = 0, id3 = 0;
    struct store_zap_info zi;
    assert_int_equal(
        store_agent_enroll_until(fx->st, "u", "b1", "berlin", ek, 10000, &id, fx->err, 512), 0);
    assert_int_equal(store_agent_zap(fx->st, ek, 5000, &zi), STORE_ZAP_ENROLL);
    assert_int_equal(zi.id, id);
    assert_int_equal(store_agent_zap(fx->st, ek, 10001, &zi), STORE_ZAP_EXPIRED);
    assert_int_equal(store_agent_zap(fx->st, own, 5000, &zi), STORE_ZAP_UNKNOWN);
    json_t *a = NULL;
    assert_int_equal(store_agent_show(fx->st, "b1", &a, fx->err, 512), 0);
    assert_string_equal(json_string_value(json_object_get(a, "enrollment")), "expired");
    assert_int_equal(json_integer_value(json_object_get(a, "enroll_expires_ms")), 10000);
    json_decref(a);
    /* registration: the own key is in, the enrollment key is dead */
    assert_int_equal(store_agent_register(fx->st, id, ek, ek, 6000, fx->err, 512), -EINVAL);
    assert_int_equal(store_agent_register(fx->st, id, ek, own, 6000, fx->err, 512), 0);
    assert_int_equal(store_agent_zap(fx->st, own, 7000, &zi), STORE_ZAP_OK);
    assert_int_equal(store_agent_zap(fx->st, ek, 7000, &zi), STORE_ZAP_USED);
    assert_int_equal(zi.used_ms, 6000);
    assert_int_equal(store_agent_key_is(fx->st, id, own), 1);
    assert_int_equal(store_agent_key_is(fx->st, id, ek), 0);
    /* a second registration with the same enrollment key fails */
    assert_int_equal(store_agent_register(fx->st, id, ek, ek2, 6500, fx->err, 512), -EALREADY);
    assert_string_equal(fx->err, "enrollment credential already used");
    assert_int_equal(store_agent_show(fx->st, "b1", &a, fx->err, 512), 0);
    assert_string_equal(json_string_value(json_object_get(a, "enrollment")), "used");
    assert_string_equal(json_string_value(json_object_get(a, "public_key")), own);
    assert_int_equal(json_integer_value(json_object_get(a, "enroll_used_ms")), 6000);
    json_decref(a);
    /* refusals are audited once a minute per agent */
    size_t rows = s_audit_rows(fx);
    assert_int_equal(store_agent_enroll_refused(fx->st, id, 100000, "reuse"), 1);
    assert_int_equal(store_agent_enroll_refused(fx->st, id, 130000, "reuse"), 0);
    assert_int_equal(store_agent_enroll_refused(fx->st, id, 160000, "reuse"), 1);
    assert_int_equal(s_audit_rows(fx), rows + 2);
    /* an older client keeps its enrollment key */
    assert_int_equal(
        store_agent_enroll_until(fx->st, "u", "b2", "berlin", ek2, 10000, &id2, fx->err, 512), 0);
    assert_int_equal(store_agent_register(fx->st, id2, ek2, NULL, 6000, fx->err, 512), 0);
    assert_int_equal(store_agent_zap(fx->st, ek2, 20000, &zi), STORE_ZAP_OK);
    assert_int_equal(store_agent_key_is(fx->st, id2, ek2), 1);
    /* a long-term key (no expiry) is not an enrollment key */
    assert_int_equal(store_agent_enroll(fx->st, "u", "b3", "berlin", ek3, &id3, fx->err, 512), 0);
    assert_int_equal(store_agent_zap(fx->st, ek3, 99999999, &zi), STORE_ZAP_OK);
    assert_int_equal(store_agent_register(fx->st, id3, ek3, ek2, 6000, fx->err, 512), -EALREADY);
    assert_int_equal(store_agent_show(fx->st, "b3", &a, fx->err, 512), 0);
    assert_string_equal(json_string_value(json_object_get(a, "enrollment")), "long-term");
    json_decref(a);
    /* a key another agent holds cannot be registered */
    const char *ek4 = "ABCDEFGHIJabcdefghij0123456789.-:+=^!/*?";
    int64_t id4 = 0;
    assert_int_equal(
        store_agent_enroll_until(fx->st, "u", "b4", "berlin", ek4, 10000, &id4, fx->err, 512), 0);
    assert_int_equal(store_agent_register(fx->st, id4, ek4, own, 6000, fx->err, 512), -EEXIST);
    assert_int_equal(store_agent_zap(fx->st, ek4, 7000, &zi), STORE_ZAP_ENROLL);
    /* revoked: refused whichever key */
    assert_int_equal(store_agent_revoke(fx->st, "u", "b1", NULL, fx->err, 512), 0);
    assert_int_equal(store_agent_zap(fx->st, own, 7000, &zi), STORE_ZAP_REVOKED);
    assert_int_equal(store_agent_zap(fx->st, ek, 7000, &zi), STORE_ZAP_REVOKED);
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

/* Retention: the oldest rows go in bounded batches, the agent's position
 * (what dedupe uses) stays. */
static void test_event_prune(void **state)
{
    struct fx *fx = *state;
    s_add_berlin(fx);
    int64_t a1 = 0;
    assert_int_equal(store_agent_enroll(fx->st, "u", "berlin", "berlin",
                                        "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", &a1, fx->err,
                                        512),
                     0);
    for (uint64_t seq = 1; seq <= 5; seq++) /* received_ms 2001 .. 2005 */
        s_event(fx, a1, seq, "tftp.done", "00:00:00:00:00:01");
    struct store_event_filter f = {0};
    json_t *ev = NULL;
    /* nothing received before 2001 */
    assert_int_equal(store_event_prune(fx->st, 2001, 10), 0);
    /* before 2003: seq 1 and 2 */
    assert_int_equal(store_event_prune(fx->st, 2003, 10), 2);
    assert_int_equal(store_event_prune(fx->st, 2003, 10), 0);
    assert_int_equal(store_event_list(fx->st, &f, &ev, fx->err, 512), 0);
    assert_int_equal(json_array_size(ev), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 0), "seq")), 3);
    json_decref(ev);
    /* all due, at most 2 per call */
    assert_int_equal(store_event_prune(fx->st, 9999, 2), 2);
    assert_int_equal(store_event_prune(fx->st, 9999, 2), 1);
    assert_int_equal(store_event_prune(fx->st, 9999, 2), 0);
    assert_int_equal(store_event_list(fx->st, &f, &ev, fx->err, 512), 0);
    assert_int_equal(json_array_size(ev), 0);
    json_decref(ev);
    /* the agent's position is untouched: a resend of seq 5 stays a duplicate */
    struct store_agent_link l;
    assert_int_equal(store_agent_link_get(fx->st, a1, &l), 1);
    assert_true(l.last_in_seq == 5);
    /* and new events go on from there */
    s_event(fx, a1, 6, "tftp.done", "00:00:00:00:00:01");
    assert_int_equal(store_event_list(fx->st, &f, &ev, fx->err, 512), 0);
    assert_int_equal(json_array_size(ev), 1);
    json_decref(ev);
}

/* ---- site services ---- */

static int64_t s_gen(struct fx *fx, const char *site)
{
    json_t *s = NULL;
    assert_int_equal(store_site_show(fx->st, site, &s, fx->err, sizeof fx->err), 0);
    int64_t g = json_integer_value(json_object_get(s, "generation"));
    json_decref(s);
    return g;
}

/* The site ids in a json array as "1,2" (and frees it). */
static const char *s_ids(json_t *ids, char *buf, size_t n)
{
    size_t o = 0, i;
    json_t *v;
    buf[0] = '\0';
    json_array_foreach(ids, i, v) o +=
        (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)json_integer_value(v));
    json_decref(ids);
    return buf;
}

#define A(...) ((const char *const[]){__VA_ARGS__})

/* Expects rc and a one-line message containing want. */
#define EXPECT_ERR(rc_expected, want, call)                                                        \
    do {                                                                                           \
        fx->err[0] = '\0';                                                                         \
        int rc_ = (call);                                                                          \
        if (rc_ != (rc_expected) || strstr(fx->err, (want)) == NULL)                               \
            fail_msg("line %d: rc %d '%s', expected %d '%s'", __LINE__, rc_, fx->err,              \
                     (rc_expected), (want));                                                       \
        assert_null(strchr(fx->err, '\n'));                                                        \
    } while (0)

static void s_two_sites(struct fx *fx)
{
    s_add_berlin(fx);
    assert_int_equal(store_site_add(fx->st, "alice", "paris", "Europe/Paris", NULL, NULL, fx->err,
                                    sizeof fx->err),
                     0);
}

static int s_subnet(struct fx *fx, const char *site, const char *cidr, const char *pool,
                    const char *router, const char *relays)
{
    struct store_subnet_in in = {
        .site = site, .cidr = cidr, .pool = pool, .router = router, .relays = relays};
    return store_subnet_add(fx->st, "bob", &in, NULL, fx->err, sizeof fx->err);
}

static void test_subnets(void **state)
{
    struct fx *fx = *state;
    char buf[64];
    s_two_sites(fx);
    int64_t g = s_gen(fx, "berlin"), gp = s_gen(fx, "paris");
    struct store_subnet_in in = {
        .site = "berlin",
        .cidr = "198.18.0.0/24",
        .pool = "198.18.0.100-198.18.0.199",
        .router = "198.18.0.1",
        .dns = "198.18.0.2,198.18.0.3",
        .lease = "3600",
        .relays = "198.18.0.254",
        .options = A("66=@server", "43=sub:1=text:abc"),
        .n_options = 2,
    };
    json_t *ids = NULL;
    assert_int_equal(store_subnet_add(fx->st, "bob", &in, &ids, fx->err, sizeof fx->err), 0);
    assert_string_equal(s_ids(ids, buf, sizeof buf), "1");
    assert_int_equal(s_gen(fx, "berlin"), g + 1);
    assert_int_equal(s_gen(fx, "paris"), gp);
    json_t *sn = NULL;
    assert_int_equal(store_subnet_show(fx->st, "berlin", "198.18.0.0/24", &sn, fx->err, 512), 0);
    assert_string_equal(json_string_value(json_object_get(sn, "pool_end")), "198.18.0.199");
    assert_int_equal(json_integer_value(json_object_get(sn, "lease_seconds")), 3600);
    assert_int_equal(json_array_size(json_object_get(sn, "dns")), 2);
    json_t *o1 = json_array_get(json_object_get(sn, "options"), 1);
    assert_string_equal(json_string_value(json_object_get(o1, "spec")), "43=sub:1=text:abc");
    assert_string_equal(json_string_value(json_object_get(o1, "value")), "0103616263");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(sn, "options"), 0), "fill")),
                        "server-ip-text");
    json_decref(sn);
    /* defaults, and a second subnet of the site */
    assert_int_equal(s_subnet(fx, "berlin", "10.0.0.0/8", "10.1.0.0-10.1.255.255", NULL, NULL), 0);
    assert_int_equal(
        s_subnet(fx, "paris", "198.18.0.0/24", "198.18.0.10-198.18.0.20", NULL, "198.18.0.254"),
        0); /* other sites may reuse ranges and relays */
    json_t *l = NULL;
    assert_int_equal(store_subnet_list(fx->st, "berlin", &l, fx->err, 512), 0);
    assert_int_equal(json_array_size(l), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "cidr")),
                        "10.0.0.0/8");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(l, 0), "lease_seconds")),
                     86400);
    json_decref(l);
    assert_int_equal(store_subnet_list(fx->st, NULL, &l, fx->err, 512), 0);
    assert_int_equal(s_count(l), 3);
    assert_int_equal(store_subnet_list(fx->st, "rome", &l, fx->err, 512), -ENOENT);

    char *before = s_snapshot(fx);
    g = s_gen(fx, "berlin");
    EXPECT_ERR(-ENOENT, "unknown site 'rome'",
               s_subnet(fx, "rome", "198.19.0.0/24", "198.19.0.10-198.19.0.20", NULL, NULL));
    EXPECT_ERR(-EINVAL, "the network is 198.19.0.0/24",
               s_subnet(fx, "berlin", "198.19.0.7/24", "198.19.0.10-198.19.0.20", NULL, NULL));
    EXPECT_ERR(-EINVAL, "invalid CIDR",
               s_subnet(fx, "berlin", "198.19.0.0/31", "198.19.0.0-198.19.0.1", NULL, NULL));
    EXPECT_ERR(-EINVAL, "invalid CIDR", s_subnet(fx, "berlin", NULL, "x", NULL, NULL));
    EXPECT_ERR(-EINVAL, "invalid pool", s_subnet(fx, "berlin", "198.19.0.0/24", NULL, NULL, NULL));
    EXPECT_ERR(-EINVAL, "pool start 198.19.1.10 is not a host address of 198.19.0.0/24",
               s_subnet(fx, "berlin", "198.19.0.0/24", "198.19.1.10-198.19.0.20", NULL, NULL));
    EXPECT_ERR(-EINVAL, "pool end 198.19.0.255 is not a host address",
               s_subnet(fx, "berlin", "198.19.0.0/24", "198.19.0.10-198.19.0.255", NULL, NULL));
    EXPECT_ERR(-EINVAL, "is after pool end",
               s_subnet(fx, "berlin", "198.19.0.0/24", "198.19.0.20-198.19.0.10", NULL, NULL));
    EXPECT_ERR(
        -EINVAL, "router 198.19.0.15 is inside the pool",
        s_subnet(fx, "berlin", "198.19.0.0/24", "198.19.0.10-198.19.0.20", "198.19.0.15", NULL));
    EXPECT_ERR(
        -EINVAL, "router 198.19.0.0 is not a host address",
        s_subnet(fx, "berlin", "198.19.0.0/24", "198.19.0.10-198.19.0.20", "198.19.0.0", NULL));
    EXPECT_ERR(-EEXIST, "subnet 198.18.0.0/24 already exists at site berlin",
               s_subnet(fx, "berlin", "198.18.0.0/24", "198.18.0.10-198.18.0.20", NULL, NULL));
    EXPECT_ERR(-EEXIST, "subnet 198.18.0.0/23 overlaps subnet 198.18.0.0/24",
               s_subnet(fx, "berlin", "198.18.0.0/23", "198.18.1.10-198.18.1.20", NULL, NULL));
    EXPECT_ERR(-EEXIST, "overlaps subnet 10.0.0.0/8",
               s_subnet(fx, "berlin", "10.200.0.0/16", "10.200.0.10-10.200.0.20", NULL, NULL));
    EXPECT_ERR(-EEXIST, "relay 198.18.0.254 already selects subnet 198.18.0.0/24",
               s_subnet(fx, "berlin", "198.19.0.0/24", "198.19.0.10-198.19.0.20", NULL,
                        "198.19.0.1,198.18.0.254"));
    EXPECT_ERR(-EINVAL, "invalid relay",
               s_subnet(fx, "berlin", "198.19.0.0/24", "198.19.0.10-198.19.0.20", NULL, "x,"));
    struct store_subnet_in b = {
        .site = "berlin", .cidr = "198.19.0.0/24", .pool = "198.19.0.10-198.19.0.20"};
    b.lease = "59";
    EXPECT_ERR(-EINVAL, "invalid lease '59'",
               store_subnet_add(fx->st, "bob", &b, NULL, fx->err, 512));
    b.lease = "4294967296";
    EXPECT_ERR(-EINVAL, "invalid lease", store_subnet_add(fx->st, "bob", &b, NULL, fx->err, 512));
    b.lease = NULL;
    b.dns = "1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9";
    EXPECT_ERR(-EINVAL, "too many dns addresses",
               store_subnet_add(fx->st, "bob", &b, NULL, fx->err, 512));
    b.dns = NULL;
    static const char *const forbidden[] = {"1=255.255.255.0", "3=198.19.0.1", "6=198.19.0.1",
                                            "51=3600"};
    static const char *const why[] = {"option 1 (subnet mask) comes from the subnet's CIDR",
                                      "option 3 (router) is the subnet's router",
                                      "option 6 (DNS servers) is the subnet's dns",
                                      "option 51 (lease time) is the subnet's lease"};
    for (size_t i = 0; i < 4; i++) {
        b.options = &forbidden[i];
        b.n_options = 1;
        EXPECT_ERR(-EINVAL, why[i], store_subnet_add(fx->st, "bob", &b, NULL, fx->err, 512));
    }
    b.options = A("66=a", "66=b");
    b.n_options = 2;
    EXPECT_ERR(-EINVAL, "option 66 given twice",
               store_subnet_add(fx->st, "bob", &b, NULL, fx->err, 512));
    b.options = A("53=u8:1");
    b.n_options = 1;
    EXPECT_ERR(-EINVAL, "option 53", store_subnet_add(fx->st, "bob", &b, NULL, fx->err, 512));
    static const char *const many[33] = {
        "66=a",     "67=b",     "200=u8:1", "201=u8:1", "202=u8:1", "203=u8:1", "204=u8:1",
        "205=u8:1", "206=u8:1", "207=u8:1", "208=u8:1", "209=u8:1", "210=u8:1", "211=u8:1",
        "212=u8:1", "213=u8:1", "214=u8:1", "215=u8:1", "216=u8:1", "217=u8:1", "218=u8:1",
        "219=u8:1", "220=u8:1", "221=u8:1", "222=u8:1", "223=u8:1", "224=u8:1", "225=u8:1",
        "226=u8:1", "227=u8:1", "228=u8:1", "229=u8:1", "230=u8:1"};
    b.options = many;
    b.n_options = 33;
    EXPECT_ERR(-EINVAL, "too many options",
               store_subnet_add(fx->st, "bob", &b, NULL, fx->err, 512));
    b.n_options = 32;
    char *mid = s_snapshot(fx);
    assert_string_equal(before, mid);
    free(mid);
    assert_int_equal(store_subnet_add(fx->st, "bob", &b, NULL, fx->err, 512), 0);

    /* removal: refused while it holds a reservation */
    struct store_device_in d = {.mac = "00:04:f2:00:00:01", .site = "berlin", .ip = "198.19.0.50"};
    assert_int_equal(store_device_add(fx->st, "bob", &d, NULL, fx->err, 512), 0);
    free(before);
    before = s_snapshot(fx);
    json_t *old = NULL;
    EXPECT_ERR(
        -EBUSY, "holds the reservation 198.19.0.50 of device 00:04:f2:00:00:01",
        store_subnet_remove(fx->st, "bob", "berlin", "198.19.0.0/24", &old, &ids, fx->err, 512));
    EXPECT_ERR(
        -ENOENT, "unknown subnet 198.20.0.0/24 at site berlin",
        store_subnet_remove(fx->st, "bob", "berlin", "198.20.0.0/24", &old, &ids, fx->err, 512));
    EXPECT_ERR(
        -EINVAL, "host bits",
        store_subnet_remove(fx->st, "bob", "berlin", "198.18.0.1/24", &old, &ids, fx->err, 512));
    char *after = s_snapshot(fx);
    assert_string_equal(before, after);
    free(after);
    free(before);
    g = s_gen(fx, "berlin");
    assert_int_equal(
        store_subnet_remove(fx->st, "bob", "berlin", "198.18.0.0/24", &old, &ids, fx->err, 512), 0);
    assert_string_equal(json_string_value(json_object_get(old, "router")), "198.18.0.1");
    json_decref(old);
    assert_string_equal(s_ids(ids, buf, sizeof buf), "1");
    assert_int_equal(s_gen(fx, "berlin"), g + 1);
}

static int s_class(struct fx *fx, const char *name, const char *site, const char *priority,
                   const char *rule, const char *option, int replace, json_t **ids)
{
    const char *rules[1] = {rule}, *opts[1] = {option};
    struct store_class_in in = {.name = name,
                                .site = site,
                                .priority = priority,
                                .rules = rules,
                                .n_rules = rule ? 1 : 0,
                                .options = opts,
                                .n_options = option ? 1 : 0,
                                .replace = replace};
    return store_class_add(fx->st, "bob", &in, ids, fx->err, sizeof fx->err);
}

static void test_classes(void **state)
{
    struct fx *fx = *state;
    char buf[64];
    s_two_sites(fx);
    int64_t g = s_gen(fx, "berlin"), gp = s_gen(fx, "paris");
    json_t *ids = NULL;
    /* a global class bumps every site */
    assert_int_equal(
        s_class(fx, "cisco", NULL, NULL, "vendor-prefix:Cisco", "150=@server", 0, &ids), 0);
    assert_string_equal(s_ids(ids, buf, sizeof buf), "1,2");
    assert_int_equal(s_gen(fx, "berlin"), g + 1);
    assert_int_equal(s_gen(fx, "paris"), gp + 1);
    assert_int_equal(s_class(fx, "poly", NULL, "5", "enterprise:13885", NULL, 0, NULL), 0);
    /* a site class bumps that site only, and replaces the global one there */
    assert_int_equal(s_class(fx, "cisco", "berlin", "1", "vendor:Cisco Systems, Inc. IP Phone\\0",
                             NULL, 0, &ids),
                     0);
    assert_string_equal(s_ids(ids, buf, sizeof buf), "1");
    assert_int_equal(s_gen(fx, "paris"), gp + 2);
    const struct store_class_in multi = {
        .name = "multi",
        .site = "",
        .rules = A("oui:00:04:f2", "user-class:iPXE", "vendor-suffix:CP-7941G\\x00"),
        .n_rules = 3,
        .options = A("66=tftp.example", "67=SEP.cnf"),
        .n_options = 2,
        .tftp_root = "cisco/79xx",
    };
    assert_int_equal(store_class_add(fx->st, "bob", &multi, NULL, fx->err, 512), 0);

    json_t *l = NULL;
    assert_int_equal(store_class_list(fx->st, "berlin", &l, fx->err, 512), 0);
    assert_int_equal(json_array_size(l), 3); /* cisco (berlin), poly, multi */
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "name")), "cisco");
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "site")), "berlin");
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 1), "name")), "poly");
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 2), "name")), "multi");
    json_decref(l);
    assert_int_equal(store_class_list(fx->st, "paris", &l, fx->err, 512), 0);
    assert_true(json_is_null(json_object_get(json_array_get(l, 0), "site")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "name")), "poly");
    json_decref(l);
    assert_int_equal(store_class_list(fx->st, NULL, &l, fx->err, 512), 0);
    assert_int_equal(s_count(l), 4);

    json_t *c = NULL;
    assert_int_equal(store_class_show(fx->st, "multi", NULL, &c, fx->err, 512), 0);
    json_t *rules = json_object_get(c, "rules");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rules, 1), "kind")),
                        "user-class");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rules, 2), "value")),
                        "43502d373934314700");
    assert_true(json_is_false(json_object_get(json_array_get(rules, 2), "ignore_trailing_nul")));
    assert_string_equal(json_string_value(json_object_get(c, "tftp_root")), "cisco/79xx");
    json_decref(c);
    assert_int_equal(store_class_show(fx->st, "cisco", "berlin", &c, fx->err, 512), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "priority")), 1);
    json_decref(c);
    assert_int_equal(store_class_show(fx->st, "cisco", "paris", &c, fx->err, 512), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "priority")), 100);
    json_decref(c);

    char *before = s_snapshot(fx);
    EXPECT_ERR(-EEXIST, "class cisco already exists (global)",
               s_class(fx, "cisco", NULL, NULL, "vendor:x", NULL, 0, NULL));
    EXPECT_ERR(-EEXIST, "class cisco already exists (at site berlin)",
               s_class(fx, "cisco", "berlin", NULL, "vendor:x", NULL, 0, NULL));
    EXPECT_ERR(-EINVAL, "invalid class name",
               s_class(fx, "Cisco", NULL, NULL, "vendor:x", NULL, 0, NULL));
    EXPECT_ERR(-EINVAL, "1 to 32 match rules", s_class(fx, "x", NULL, NULL, NULL, NULL, 0, NULL));
    EXPECT_ERR(-EINVAL, "invalid match rule", s_class(fx, "x", NULL, NULL, "mac:x", NULL, 0, NULL));
    EXPECT_ERR(-EINVAL, "invalid priority",
               s_class(fx, "x", NULL, "-1", "vendor:x", NULL, 0, NULL));
    EXPECT_ERR(-EINVAL, "invalid priority",
               s_class(fx, "x", NULL, "1000001", "vendor:x", NULL, 0, NULL));
    EXPECT_ERR(-EINVAL, "option 54",
               s_class(fx, "x", NULL, NULL, "vendor:x", "54=1.2.3.4", 0, NULL));
    EXPECT_ERR(-ENOENT, "unknown site 'rome'",
               s_class(fx, "x", "rome", NULL, "vendor:x", NULL, 0, NULL));
    static const char *const bad_roots[] = {"/abs", "../x", "a/../b", "a//b",
                                            "a/",   "./a",  "a b",    "a\\b"};
    for (size_t i = 0; i < sizeof bad_roots / sizeof bad_roots[0]; i++) {
        struct store_class_in r = {
            .name = "x", .rules = A("vendor:x"), .n_rules = 1, .tftp_root = bad_roots[i]};
        EXPECT_ERR(-EINVAL, "invalid TFTP root",
                   store_class_add(fx->st, "bob", &r, NULL, fx->err, 512));
    }
    EXPECT_ERR(-ENOENT, "unknown class 'nope' (global)",
               store_class_show(fx->st, "nope", NULL, &c, fx->err, 512));
    EXPECT_ERR(-ENOENT, "unknown class 'poly' (at site berlin)",
               store_class_remove(fx->st, "bob", "poly", "berlin", NULL, NULL, fx->err, 512));
    char *after = s_snapshot(fx);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* replace keeps one class of that name in that scope */
    assert_int_equal(s_class(fx, "poly", NULL, "7", "enterprise:13885", NULL, 1, NULL), 0);
    assert_int_equal(store_class_show(fx->st, "poly", NULL, &c, fx->err, 512), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "priority")), 7);
    json_decref(c);
    assert_int_equal(store_class_list(fx->st, NULL, &l, fx->err, 512), 0);
    assert_int_equal(s_count(l), 4);

    /* pinned devices: a class stays while a device's site would lose it */
    struct store_device_in d = {.mac = "00:04:f2:00:00:01", .site = "paris", .class_name = "cisco"};
    assert_int_equal(store_device_add(fx->st, "bob", &d, NULL, fx->err, 512), 0);
    struct store_device_in e = {
        .mac = "00:04:f2:00:00:02", .site = "berlin", .class_name = "cisco"};
    assert_int_equal(store_device_add(fx->st, "bob", &e, NULL, fx->err, 512), 0);
    EXPECT_ERR(-EBUSY, "class cisco is pinned by device 00:04:f2:00:00:01 (site paris)",
               store_class_remove(fx->st, "bob", "cisco", NULL, NULL, NULL, fx->err, 512));
    /* berlin's own may go: its device falls back to the global one */
    g = s_gen(fx, "berlin");
    gp = s_gen(fx, "paris");
    json_t *old = NULL;
    assert_int_equal(store_class_remove(fx->st, "bob", "cisco", "berlin", &old, &ids, fx->err, 512),
                     0);
    assert_string_equal(json_string_value(json_object_get(old, "site")), "berlin");
    json_decref(old);
    assert_string_equal(s_ids(ids, buf, sizeof buf), "1");
    assert_int_equal(s_gen(fx, "berlin"), g + 1);
    assert_int_equal(s_gen(fx, "paris"), gp);
    assert_int_equal(store_class_remove(fx->st, "bob", "multi", NULL, NULL, &ids, fx->err, 512), 0);
    assert_string_equal(s_ids(ids, buf, sizeof buf), "1,2");
}

static void test_templates(void **state)
{
    struct fx *fx = *state;
    char buf[64];
    s_two_sites(fx);
    int64_t g = s_gen(fx, "berlin"), gp = s_gen(fx, "paris");
    json_t *ids = NULL;
    assert_int_equal(store_template_add(fx->st, "bob", "SEP{mac}.cnf.xml", NULL, "global\0x", 8, 0,
                                        &ids, fx->err, 512),
                     0);
    assert_string_equal(s_ids(ids, buf, sizeof buf), "1,2");
    assert_int_equal(store_template_add(fx->st, "bob", "SEP{mac}.cnf.xml", "berlin", "mine", 4, 0,
                                        &ids, fx->err, 512),
                     0);
    assert_string_equal(s_ids(ids, buf, sizeof buf), "1");
    assert_int_equal(
        store_template_add(fx->st, "bob", "empty.cfg", NULL, NULL, 0, 0, NULL, fx->err, 512), 0);
    assert_int_equal(s_gen(fx, "berlin"), g + 3);
    assert_int_equal(s_gen(fx, "paris"), gp + 2);
    json_t *t = NULL;
    assert_int_equal(store_template_show(fx->st, "SEP{mac}.cnf.xml", NULL, &t, fx->err, 512), 0);
    assert_string_equal(json_string_value(json_object_get(t, "body_hex")), "676c6f62616c0078");
    assert_int_equal(json_integer_value(json_object_get(t, "size")), 8);
    json_decref(t);
    assert_int_equal(store_template_show(fx->st, "SEP{mac}.cnf.xml", "berlin", &t, fx->err, 512),
                     0);
    assert_string_equal(json_string_value(json_object_get(t, "body_hex")), "6d696e65");
    json_decref(t);
    assert_int_equal(store_template_show(fx->st, "empty.cfg", "paris", &t, fx->err, 512), 0);
    assert_string_equal(json_string_value(json_object_get(t, "body_hex")), "");
    json_decref(t);
    json_t *l = NULL;
    assert_int_equal(store_template_list(fx->st, "berlin", &l, fx->err, 512), 0);
    assert_int_equal(json_array_size(l), 2);
    assert_null(json_object_get(json_array_get(l, 0), "body_hex"));
    json_decref(l);
    assert_int_equal(store_template_list(fx->st, NULL, &l, fx->err, 512), 0);
    assert_int_equal(s_count(l), 3);

    char *before = s_snapshot(fx);
    static const char *const bad_names[] = {"",   "/x",   "../x",        "a/../b",  "a//b", "./a",
                                            "a/", "a\\b", " a",          "a ",      "{mac", "{Mac}",
                                            "x}", "a\tb", "caf\xc3\xa9", "{ip}.cfg"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        EXPECT_ERR(
            -EINVAL, "invalid template name",
            store_template_add(fx->st, "bob", bad_names[i], NULL, "x", 1, 0, NULL, fx->err, 512));
    char longname[300];
    memset(longname, 'a', 256);
    longname[256] = '\0';
    EXPECT_ERR(-EINVAL, "invalid template name",
               store_template_add(fx->st, "bob", longname, NULL, "x", 1, 0, NULL, fx->err, 512));
    longname[255] = '\0';
    assert_int_equal(store_check_template_name(longname, fx->err, 512), 0);
    assert_int_equal(store_check_template_name("a/{MAC}/b{mac}.cfg", fx->err, 512), 0);
    EXPECT_ERR(-EEXIST, "template empty.cfg already exists (global)",
               store_template_add(fx->st, "bob", "empty.cfg", NULL, "x", 1, 0, NULL, fx->err, 512));
    EXPECT_ERR(-ENOENT, "unknown site 'rome'",
               store_template_add(fx->st, "bob", "x.cfg", "rome", "x", 1, 0, NULL, fx->err, 512));
    uint8_t *big = calloc(1, STORE_TEMPLATE_MAX + 1);
    assert_non_null(big);
    EXPECT_ERR(-EFBIG, "template body too large",
               store_template_add(fx->st, "bob", "big", NULL, big, STORE_TEMPLATE_MAX + 1, 0, NULL,
                                  fx->err, 512));
    EXPECT_ERR(
        -ENOENT, "unknown template 'empty.cfg' (at site berlin)",
        store_template_remove(fx->st, "bob", "empty.cfg", "berlin", NULL, NULL, fx->err, 512));
    char *after = s_snapshot(fx);
    assert_string_equal(before, after);
    free(after);

    /* what one site gets stays under STORE_TEMPLATES_SITE_MAX */
    assert_int_equal(store_template_add(fx->st, "bob", "big1", NULL, big, STORE_TEMPLATE_MAX, 0,
                                        NULL, fx->err, 512),
                     0);
    size_t left = STORE_TEMPLATES_SITE_MAX - STORE_TEMPLATE_MAX - 4; /* berlin: "mine" */
    assert_int_equal(
        store_template_add(fx->st, "bob", "big2", "berlin", big, left, 0, NULL, fx->err, 512), 0);
    free(before);
    before = s_snapshot(fx);
    EXPECT_ERR(-EFBIG, "the templates of site berlin would total 2097153 bytes",
               store_template_add(fx->st, "bob", "one", NULL, "x", 1, 0, NULL, fx->err, 512));
    EXPECT_ERR(-EFBIG, "the templates of site berlin",
               store_template_add(fx->st, "bob", "SEP{mac}.cnf.xml", "berlin", "mine!", 5, 1, NULL,
                                  fx->err, 512));
    after = s_snapshot(fx);
    assert_string_equal(before, after);
    free(after);
    free(before);
    /* replace: same size is fine */
    assert_int_equal(store_template_add(fx->st, "bob", "SEP{mac}.cnf.xml", "berlin", "MINE", 4, 1,
                                        NULL, fx->err, 512),
                     0);
    assert_int_equal(store_template_show(fx->st, "SEP{mac}.cnf.xml", "berlin", &t, fx->err, 512),
                     0);
    assert_string_equal(json_string_value(json_object_get(t, "body_hex")), "4d494e45");
    json_decref(t);
    free(big);
    json_t *old = NULL;
    g = s_gen(fx, "berlin");
    assert_int_equal(store_template_remove(fx->st, "bob", "big1", NULL, &old, &ids, fx->err, 512),
                     0);
    assert_int_equal(json_integer_value(json_object_get(old, "size")), STORE_TEMPLATE_MAX);
    json_decref(old);
    assert_string_equal(s_ids(ids, buf, sizeof buf), "1,2");
    assert_int_equal(s_gen(fx, "berlin"), g + 1);
}

static void test_reservations(void **state)
{
    struct fx *fx = *state;
    s_two_sites(fx);
    assert_int_equal(
        s_subnet(fx, "berlin", "198.18.0.0/24", "198.18.0.100-198.18.0.199", "198.18.0.1", NULL),
        0);
    assert_int_equal(s_class(fx, "cisco", NULL, NULL, "oui:00:04:f2", NULL, 0, NULL), 0);
    assert_int_equal(s_class(fx, "local", "paris", NULL, "vendor:x", NULL, 0, NULL), 0);
    struct store_device_in d = {
        .mac = "00:04:f2:00:00:01", .site = "berlin", .ip = "198.18.0.50", .class_name = "cisco"};
    assert_int_equal(store_device_add(fx->st, "bob", &d, NULL, fx->err, 512), 0);
    json_t *dev = NULL;
    assert_int_equal(store_device_show(fx->st, d.mac, &dev, fx->err, 512), 0);
    assert_string_equal(json_string_value(json_object_get(dev, "ip")), "198.18.0.50");
    assert_string_equal(json_string_value(json_object_get(dev, "class")), "cisco");
    json_decref(dev);
    /* in the pool is fine; paris has no subnets, so any address goes */
    struct store_device_in in_pool = {
        .mac = "00:04:f2:00:00:02", .site = "berlin", .ip = "198.18.0.150"};
    assert_int_equal(store_device_add(fx->st, "bob", &in_pool, NULL, fx->err, 512), 0);
    struct store_device_in p = {
        .mac = "00:04:f2:00:00:03", .site = "paris", .ip = "203.0.113.9", .class_name = "local"};
    assert_int_equal(store_device_add(fx->st, "bob", &p, NULL, fx->err, 512), 0);
    /* the same address at another site is another reservation */
    struct store_device_in p2 = {.mac = "00:04:f2:00:00:04", .site = "paris", .ip = "198.18.0.50"};
    assert_int_equal(store_device_add(fx->st, "bob", &p2, NULL, fx->err, 512), 0);

    char *before = s_snapshot(fx);
    static const struct {
        const char *ip, *cls, *site, *want;
        int rc;
    } bad[] = {
        {"198.18.0.50", NULL, "berlin",
         "ip 198.18.0.50 is already reserved for device "
         "00:04:f2:00:00:01",
         -EEXIST},
        {"198.18.1.5", NULL, "berlin", "not inside any subnet of site berlin", -EINVAL},
        {"198.18.0.0", NULL, "berlin", "network address of subnet 198.18.0.0/24", -EINVAL},
        {"198.18.0.255", NULL, "berlin", "broadcast address", -EINVAL},
        {"198.18.0.1", NULL, "berlin", "ip 198.18.0.1 is the router of subnet", -EINVAL},
        {"198.18.0", NULL, "berlin", "invalid IP address '198.18.0'", -EINVAL},
        {"198.18.0.050", NULL, "berlin", "invalid IP address", -EINVAL},
        {NULL, "nope", "berlin", "unknown class 'nope'", -ENOENT},
        {NULL, "local", "berlin", "unknown class 'local'", -ENOENT},
        {NULL, "Bad", "berlin", "invalid class name", -EINVAL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct store_device_in b = {.mac = "00:04:f2:00:00:10",
                                    .site = bad[i].site,
                                    .ip = bad[i].ip,
                                    .class_name = bad[i].cls};
        EXPECT_ERR(bad[i].rc, bad[i].want, store_device_add(fx->st, "bob", &b, NULL, fx->err, 512));
    }
    /* an import reserving one address twice fails on the second row */
    struct store_device_in rows[] = {
        {.mac = "00:04:f2:00:00:20", .site = "berlin", .ip = "198.18.0.60", .line = 2},
        {.mac = "00:04:f2:00:00:21", .site = "berlin", .ip = "198.18.0.60", .line = 3},
    };
    EXPECT_ERR(-EEXIST, "line 3: ip 198.18.0.60 is already reserved for device 00:04:f2:00:00:20",
               store_device_import(fx->st, "bob", rows, 2, NULL, fx->err, 512));
    rows[1].ip = NULL;
    rows[1].class_name = "nope";
    EXPECT_ERR(-ENOENT, "line 3: unknown class 'nope'",
               store_device_import(fx->st, "bob", rows, 2, NULL, fx->err, 512));
    char *after = s_snapshot(fx);
    assert_string_equal(before, after);
    free(before);
    free(after);
    rows[1].class_name = "cisco";
    assert_int_equal(store_device_import(fx->st, "bob", rows, 2, NULL, fx->err, 512), 0);
}

/* The SiteConfig an agent gets: every part, in order, and the generation. */
static void test_site_config(void **state)
{
    struct fx *fx = *state;
    s_two_sites(fx);
    struct store_subnet_in sn = {.site = "berlin",
                                 .cidr = "198.18.0.0/24",
                                 .pool = "198.18.0.100-198.18.0.199",
                                 .router = "198.18.0.1",
                                 .dns = "198.18.0.2,198.18.0.3",
                                 .relays = "198.18.0.254",
                                 .options = A("150=@server", "43=hex:0a0b"),
                                 .n_options = 2};
    assert_int_equal(store_subnet_add(fx->st, "bob", &sn, NULL, fx->err, 512), 0);
    assert_int_equal(s_subnet(fx, "berlin", "10.0.0.0/8", "10.0.0.10-10.0.0.20", NULL, NULL), 0);
    assert_int_equal(s_class(fx, "zeta", NULL, "1", "oui:00:04:f2", "66=@server", 0, NULL), 0);
    assert_int_equal(s_class(fx, "alpha", NULL, "1", "enterprise:13885", NULL, 0, NULL), 0);
    assert_int_equal(s_class(fx, "cisco", NULL, "50", "vendor:global", NULL, 0, NULL), 0);
    assert_int_equal(
        s_class(fx, "cisco", "berlin", "0", "vendor:CP-7940G\\0", "67=SEP.cnf", 0, NULL), 0);
    assert_int_equal(s_class(fx, "other", "paris", "0", "vendor:x", NULL, 0, NULL), 0);
    assert_int_equal(
        store_template_add(fx->st, "bob", "b.cfg", NULL, "g", 1, 0, NULL, fx->err, 512), 0);
    assert_int_equal(
        store_template_add(fx->st, "bob", "b.cfg", "berlin", "s\0b", 3, 0, NULL, fx->err, 512), 0);
    assert_int_equal(
        store_template_add(fx->st, "bob", "a.cfg", NULL, "A", 1, 0, NULL, fx->err, 512), 0);
    struct store_device_in d = {.mac = "00:04:f2:00:00:01",
                                .site = "berlin",
                                .model = "CP-7940G",
                                .ip = "198.18.0.50",
                                .class_name = "cisco"};
    assert_int_equal(store_device_add(fx->st, "bob", &d, NULL, fx->err, 512), 0);
    struct store_device_in d2 = {.mac = "00:04:f2:00:00:02", .site = "berlin"};
    assert_int_equal(store_device_add(fx->st, "bob", &d2, NULL, fx->err, 512), 0);

    int64_t berlin = 0;
    assert_int_equal(store_site_id(fx->st, "berlin", &berlin, fx->err, 512), 0);
    Firmfleet__SiteConfig *sc = NULL;
    assert_int_equal(store_site_config(fx->st, berlin, &sc), 0);
    assert_int_equal(sc->generation, (uint64_t)s_gen(fx, "berlin"));
    assert_int_equal(sc->n_subnets, 2);
    assert_string_equal(sc->subnets[0]->cidr, "10.0.0.0/8");
    assert_int_equal(sc->subnets[0]->lease_seconds, 86400);
    Firmfleet__DhcpSubnet *s1 = sc->subnets[1];
    assert_string_equal(s1->pool_start, "198.18.0.100");
    assert_string_equal(s1->router, "198.18.0.1");
    assert_int_equal(s1->n_dns, 2);
    assert_string_equal(s1->dns[1], "198.18.0.3");
    assert_int_equal(s1->n_relays, 1);
    assert_int_equal(s1->n_options, 2);
    assert_int_equal(s1->options[0]->code, 150);
    assert_int_equal(s1->options[0]->fill, FIRMFLEET__DHCP_OPTION__FILL__SERVER_IP);
    assert_int_equal(s1->options[0]->value.len, 0);
    assert_int_equal(s1->options[1]->value.len, 2);
    assert_memory_equal(s1->options[1]->value.data, "\x0a\x0b", 2);
    /* classes: berlin's cisco replaces the global one; by priority, then name */
    assert_int_equal(sc->n_classes, 3);
    assert_string_equal(sc->classes[0]->name, "cisco");
    assert_int_equal(sc->classes[0]->priority, 0);
    assert_int_equal(sc->classes[0]->rules[0]->kind, FIRMFLEET__MATCH_RULE__KIND__VENDOR_EXACT);
    assert_int_equal(sc->classes[0]->rules[0]->value.len, 9);
    assert_memory_equal(sc->classes[0]->rules[0]->value.data, "CP-7940G\0", 9);
    assert_false(sc->classes[0]->rules[0]->ignore_trailing_nul);
    assert_int_equal(sc->classes[0]->n_options, 1);
    assert_string_equal(sc->classes[1]->name, "alpha");
    assert_int_equal(sc->classes[1]->rules[0]->enterprise, 13885);
    assert_string_equal(sc->classes[2]->name, "zeta");
    assert_int_equal(sc->classes[2]->rules[0]->kind, FIRMFLEET__MATCH_RULE__KIND__MAC_OUI);
    assert_memory_equal(sc->classes[2]->rules[0]->value.data, "\x00\x04\xf2", 3);
    assert_int_equal(sc->classes[2]->options[0]->fill,
                     FIRMFLEET__DHCP_OPTION__FILL__SERVER_IP_TEXT);
    /* files: berlin's b.cfg replaces the global one */
    assert_int_equal(sc->n_files, 2);
    assert_string_equal(sc->files[0]->name, "a.cfg");
    assert_string_equal(sc->files[1]->name, "b.cfg");
    assert_int_equal(sc->files[1]->body.len, 3);
    assert_memory_equal(sc->files[1]->body.data, "s\0b", 3);
    /* devices */
    assert_int_equal(sc->n_devices, 2);
    assert_string_equal(sc->devices[0]->ip, "198.18.0.50");
    assert_string_equal(sc->devices[0]->class_, "cisco");
    assert_string_equal(sc->devices[1]->ip, "");
    assert_string_equal(sc->devices[1]->class_, "");
    /* it packs and unpacks whole */
    size_t len = firmfleet__site_config__get_packed_size(sc);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    firmfleet__site_config__pack(sc, buf);
    Firmfleet__SiteConfig *back = firmfleet__site_config__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_int_equal(back->n_classes, 3);
    assert_int_equal(back->classes[0]->rules[0]->value.len, 9);
    firmfleet__site_config__free_unpacked(back, NULL);
    free(buf);
    uint64_t gen = sc->generation;
    store_site_config_free(sc);

    /* paris: globals plus its own; the same content gives the same generation */
    int64_t paris = 0;
    assert_int_equal(store_site_id(fx->st, "paris", &paris, fx->err, 512), 0);
    assert_int_equal(store_site_config(fx->st, paris, &sc), 0);
    assert_int_equal(sc->n_classes, 4);
    assert_string_equal(sc->classes[0]->name, "other");
    assert_string_equal(sc->classes[3]->name, "cisco");
    assert_int_equal(sc->classes[3]->priority, 50);
    assert_int_equal(sc->n_subnets, 0);
    assert_int_equal(sc->n_files, 2);
    assert_int_equal(sc->files[1]->body.len, 1);
    store_site_config_free(sc);
    assert_int_equal(store_site_config(fx->st, berlin, &sc), 0);
    assert_int_equal(sc->generation, gen);
    store_site_config_free(sc);
    assert_int_equal(store_site_config(fx->st, 999, &sc), -ENOENT);
    assert_null(sc);
    store_site_config_free(NULL);
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

/* Rollout-era device fields: device set and import carry the running
 * version, serial markers and pinned profile into the SiteConfig; bad
 * values change nothing; controller events (agent NULL) list as firmfleetd. */
static void test_device_rollout_fields(void **state)
{
    struct fx *fx = *state;
    store_t *st = fx->st;
    int64_t site = 0, gen0, gen1;
    assert_int_equal(store_site_add(st, "t", "berlin", "UTC", NULL, &site, fx->err, sizeof fx->err),
                     0);
    struct store_device_in d = {.mac = "00:04:f2:00:00:01", .site = "berlin", .model = "X"};
    assert_int_equal(store_device_add(st, "t", &d, NULL, fx->err, sizeof fx->err), 0);
    json_t *s = NULL;
    assert_int_equal(store_site_show(st, "berlin", &s, fx->err, sizeof fx->err), 0);
    gen0 = json_integer_value(json_object_get(s, "generation"));
    json_decref(s);
    struct store_device_set_in bad = {.serial_boot = "a,b"};
    assert_int_equal(
        store_device_set(st, "t", "00:04:f2:00:00:01", &bad, NULL, fx->err, sizeof fx->err),
        -EINVAL);
    struct store_device_set_in in = {
        .version = "8.11.0", .serial_config = "C1", .serial_firmware = "F1", .serial_boot = "B1"};
    assert_int_equal(
        store_device_set(st, "t", "00:04:f2:00:00:01", &in, NULL, fx->err, sizeof fx->err), 0);
    assert_int_equal(store_site_show(st, "berlin", &s, fx->err, sizeof fx->err), 0);
    gen1 = json_integer_value(json_object_get(s, "generation"));
    json_decref(s);
    assert_true(gen1 > gen0);
    const char *rows_bad_profile = "p";
    struct store_device_in rows[1] = {{.mac = "00:04:f2:00:00:02",
                                       .site = "berlin",
                                       .version = "1.0",
                                       .serial_firmware = "1.0",
                                       .profile = rows_bad_profile,
                                       .line = 2}};
    assert_int_equal(store_device_import(st, "t", rows, 1, NULL, fx->err, sizeof fx->err), -ENOENT);
    assert_non_null(strstr(fx->err, "line 2: unknown profile 'p'"));
    rows[0].profile = NULL;
    assert_int_equal(store_device_import(st, "t", rows, 1, NULL, fx->err, sizeof fx->err), 0);
    Firmfleet__SiteConfig *sc = NULL;
    assert_int_equal(store_site_config(st, site, &sc), 0);
    assert_int_equal(sc->n_devices, 2);
    assert_string_equal(sc->devices[0]->version, "8.11.0");
    assert_string_equal(sc->devices[0]->serials->config, "C1");
    assert_string_equal(sc->devices[0]->serials->firmware, "F1");
    assert_string_equal(sc->devices[0]->serials->boot, "B1");
    assert_string_equal(sc->devices[1]->version, "1.0");
    assert_string_equal(sc->devices[1]->serials->firmware, "1.0");
    assert_int_equal(sc->n_profiles, 0);
    store_site_config_free(sc);
}

/* ---- the statement cache (sql.h) ---- */

static void test_statement_cache(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sql_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);"), 0);
    sql_cache_t *c = NULL;
    assert_int_equal(sql_cache_new(db, &c), 0);
    static const char *const sel = "SELECT x FROM t WHERE x >= ?1 ORDER BY x";
    sqlite3_stmt *a = sql_cached(c, sel);
    assert_non_null(a);
    sqlite3_bind_int(a, 1, 1);
    assert_int_equal(sqlite3_step(a), SQLITE_ROW);
    /* nested use of the same text while a is out: a private statement */
    sqlite3_stmt *b = sql_cached(c, sel);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    sqlite3_bind_int(b, 1, 2);
    assert_int_equal(sqlite3_step(b), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(b, 0), 2);
    sql_release(c, b); /* finalized */
    assert_int_equal(sqlite3_column_int(a, 0), 1);
    sql_release(c, a);
    /* given back: the same statement again, reset and unbound (NULL >= ...) */
    sqlite3_stmt *again = sql_cached(c, sel);
    assert_ptr_equal(again, a);
    assert_int_equal(sqlite3_step(again), SQLITE_DONE);
    sql_release(c, again);
    sql_release(c, NULL);
    /* a reset statement holds no read transaction: a write goes through */
    assert_int_equal(sql_exec(db, "BEGIN IMMEDIATE; INSERT INTO t VALUES (3); COMMIT;"), 0);
    sql_cache_destroy(&c);
    assert_null(c);
    sql_cache_destroy(&c); /* idempotent */
    /* nothing left unfinalized: the connection closes */
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
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
        cmocka_unit_test_setup_teardown(test_enrollment, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_agents, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_events, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_event_prune, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_inside_caller_transaction, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subnets, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_classes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_templates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reservations, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_site_config, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_device_rollout_fields, s_setup, s_teardown),
        cmocka_unit_test(test_validators),
        cmocka_unit_test(test_statement_cache),
    };
    log_set_level(LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
