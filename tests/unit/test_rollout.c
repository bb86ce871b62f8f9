/* test_rollout.c: the rollout engine (ctl_rollout) and its store
 * (store_rollout) on a real SQLite store and image store in a temporary
 * directory, with no agent link (ctl.link NULL: journaled messages stay in
 * the outbox, where the tests read them). Time is a fake clock passed as
 * now_ms. Covers the pure parsers (waves, max-failures, durations, times,
 * timeouts), wave planning, selector resolution, refusals that change
 * nothing, assignment journaling and skipped(serial), event -> state mapping
 * with stale and terminal events ignored, state timeouts, failure
 * thresholds and the halt reason, wave promotion to done, abort, the status
 * document's keys, SiteConfig pre-fetch and profiles, and drift.
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
#include <zmq.h>

#include "ctl.h"
#include "ctl_rollout.h"
#include "hash.h"
#include "log.h"
#include "store_inv.h"
#include "store_link.h"
#include "store_rollout.h"
#include "util.h"
#include "wire.h"

#define T0 1800000000000ULL /* the fake clock's start (2027-01-15) */

static const char s_profile_json[] =
    "{\"name\": \"cisco-79xx\", \"description\": \"Cisco 79xx\", \"priority\": 50,"
    " \"recognise\": [\"vendor-prefix:Cisco Systems, Inc. IP Phone\"],"
    " \"final_image\": \"*.loads\"}";
static const char s_tar_profile_json[] =
    "{\"name\": \"aironet\", \"recognise\": [\"vendor-prefix:Cisco AP\"],"
    " \"final_image\": \"*.tar\", \"image_check\": \"tar\"}";

struct fx {
    struct ctl ctl;
    char dir[64];
    char err[512];
    int64_t berlin, paris;
};

/* Stores bytes in the image store and returns their hex digest in sha. */
static void s_blob(struct fx *fx, const void *data, size_t len, char sha[65])
{
    uint64_t token = 0, size = 0;
    assert_int_equal(imgstore_upload_begin(fx->ctl.img, len, &token), 0);
    assert_int_equal(imgstore_upload_write(fx->ctl.img, token, 0, data, len), 0);
    assert_int_equal(imgstore_upload_commit(fx->ctl.img, token, NULL, sha, &size), 0);
}

static void s_firmware(struct fx *fx, const char *vendor, const char *version, const char *file,
                       const void *data, size_t len)
{
    char sha[65];
    s_blob(fx, data, len, sha);
    const char *models[] = {"CP-7940G", "CP-7960G", "AIR-AP1142N"};
    struct store_fw_file f = {.name = file, .sha256 = sha, .has_size = 1, .size = len};
    struct store_fw_in fw = {.vendor = vendor,
                             .version = version,
                             .models = models,
                             .n_models = 3,
                             .files = &f,
                             .n_files = 1};
    assert_int_equal(store_firmware_add(fx->ctl.st, "t", &fw, NULL, NULL, fx->err, sizeof fx->err),
                     0);
}

static void s_device(struct fx *fx, const char *mac, const char *site, const char *model,
                     const char *tags)
{
    struct store_device_in d = {.mac = mac, .site = site, .model = model, .tags = tags};
    if (store_device_add(fx->ctl.st, "t", &d, NULL, fx->err, sizeof fx->err) != 0)
        fail_msg("device add %s: %s", mac, fx->err);
}

static void s_agent(struct fx *fx, const char *name, const char *site)
{
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_int_equal(
        store_agent_enroll(fx->ctl.st, "t", name, site, pub, NULL, fx->err, sizeof fx->err), 0);
}

static int s_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/ctl-rollout.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    char path[256];
    snprintf(path, sizeof path, "%s/controller.db", fx->dir);
    assert_int_equal(store_open(path, &fx->ctl.st), 0);
    snprintf(path, sizeof path, "%s/images", fx->dir);
    assert_int_equal(imgstore_open(path, &fx->ctl.img), 0);
    store_t *st = fx->ctl.st;
    assert_int_equal(store_site_add(st, "t", "berlin", "Europe/Berlin", NULL, &fx->berlin, fx->err,
                                    sizeof fx->err),
                     0);
    assert_int_equal(
        store_site_add(st, "t", "paris", "Europe/Paris", NULL, &fx->paris, fx->err, sizeof fx->err),
        0);
    s_agent(fx, "berlin", "berlin");
    s_device(fx, "00:04:f2:00:00:01", "berlin", "CP-7940G", "floor1");
    s_device(fx, "00:04:f2:00:00:02", "berlin", "CP-7940G", "floor1,lab");
    s_device(fx, "00:04:f2:00:00:03", "berlin", "CP-7960G", "floor2");
    s_device(fx, "00:04:f2:00:00:04", "berlin", "CP-7940G", "");
    s_device(fx, "00:04:f2:00:00:05", "paris", "CP-7940G", "floor1");
    s_device(fx, "00:04:f2:00:00:06", "paris", "CP-7960G", "");
    s_device(fx, "00:04:f2:00:00:07", "berlin", "Polycom-VVX", "floor1"); /* not in firmware */
    s_firmware(fx, "cisco", "8.12.0", "P0S3-08-12-00.loads", "image bytes", 11);
    struct rollout_notes notes = {0};
    char name[64];
    assert_int_equal(rollout_profile_add(&fx->ctl, "t", s_profile_json, strlen(s_profile_json), 0,
                                         name, &notes, fx->err, sizeof fx->err),
                     0);
    assert_string_equal(name, "cisco-79xx");
    rollout_notes_free(&notes);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    struct fx *fx = *state;
    imgstore_destroy(&fx->ctl.img);
    store_destroy(&fx->ctl.st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* ---- helpers over the store ---- */

static int s_create(struct fx *fx, const struct rollout_create_in *in)
{
    struct rollout_notes notes = {0};
    fx->err[0] = '\0';
    int rc = rollout_create(&fx->ctl, "tester", in, T0, &notes, fx->err, sizeof fx->err);
    rollout_notes_free(&notes);
    return rc;
}

static void s_verb(struct fx *fx,
                   int (*fn)(struct ctl *, const char *, const char *, uint64_t,
                             struct rollout_notes *, char *, size_t),
                   const char *name, uint64_t now)
{
    struct rollout_notes notes = {0};
    if (fn(&fx->ctl, "tester", name, now, &notes, fx->err, sizeof fx->err) != 0)
        fail_msg("verb on %s: %s", name, fx->err);
    rollout_notes_free(&notes);
}

/* The status with devices; every call also proves that the document
 * without devices (grouped queries) says the same apart from the list. */
static json_t *s_status(struct fx *fx, const char *name)
{
    json_t *doc = NULL, *brief = NULL;
    if (store_rollout_status(fx->ctl.st, name, 1, &doc, fx->err, sizeof fx->err) != 0)
        fail_msg("status: %s", fx->err);
    if (store_rollout_status(fx->ctl.st, name, 0, &brief, fx->err, sizeof fx->err) != 0)
        fail_msg("status without devices: %s", fx->err);
    assert_null(json_object_get(brief, "devices"));
    json_t *copy = json_deep_copy(doc);
    assert_non_null(copy);
    assert_int_equal(json_object_del(copy, "devices"), 0);
    if (!json_equal(copy, brief)) {
        char *a = json_dumps(copy, JSON_SORT_KEYS), *b = json_dumps(brief, JSON_SORT_KEYS);
        fail_msg("status with devices:\n%s\nwithout:\n%s", a, b);
    }
    json_decref(copy);
    json_decref(brief);
    return doc;
}

/* State of device mac in rollout name. */
static const char *s_dev_state(struct fx *fx, const char *name, const char *mac, char out[32])
{
    json_t *doc = s_status(fx, name);
    size_t i;
    json_t *d;
    out[0] = '\0';
    json_array_foreach(json_object_get(doc, "devices"), i, d)
    {
        if (strcmp(json_string_value(json_object_get(d, "mac")), mac) == 0)
            snprintf(out, 32, "%s", json_string_value(json_object_get(d, "state")));
    }
    json_decref(doc);
    return out;
}

static const char *s_rollout_state(struct fx *fx, const char *name, char out[300])
{
    struct store_rollout r;
    assert_int_equal(store_rollout_get(fx->ctl.st, name, &r, fx->err, sizeof fx->err), 0);
    snprintf(out, 300, "%s|%s", r.state, r.reason);
    return out;
}

/* An agent event as the link would pass it on, inside a transaction. */
static void s_event(struct fx *fx, int64_t site, const char *kind, const char *mac,
                    const char *detail, uint64_t now)
{
    Firmfleet__DeviceEvent ev = FIRMFLEET__DEVICE_EVENT__INIT;
    ev.kind = (char *)(uintptr_t)kind;
    ev.mac = (char *)(uintptr_t)mac;
    ev.detail = (char *)(uintptr_t)detail;
    ev.time_ms = now;
    assert_int_equal(store_begin(fx->ctl.st), 0);
    rollout_on_event(&fx->ctl, site, &ev, now);
    assert_int_equal(store_commit(fx->ctl.st), 0);
}

struct outbox_seen {
    int assignments, cancels;
    Firmfleet__Assignment last;
    char mac[18], version[64], window[128], profile[64];
    uint64_t rollout_id;
};

static void s_outbox_row(void *arg, uint64_t seq, const uint8_t *payload, size_t len)
{
    struct outbox_seen *o = arg;
    (void)seq;
    wire_env_t *env = wire_unpack(payload, len);
    assert_non_null(env);
    if (env->body_case == FIRMFLEET__ENVELOPE__BODY_ASSIGNMENT) {
        o->assignments++;
        snprintf(o->mac, sizeof o->mac, "%s", env->assignment->mac);
        snprintf(o->version, sizeof o->version, "%s", env->assignment->version);
        snprintf(o->window, sizeof o->window, "%s", env->assignment->window);
        snprintf(o->profile, sizeof o->profile, "%s", env->assignment->profile);
        o->rollout_id = env->assignment->rollout_id;
        assert_non_null(env->assignment->target);
        assert_string_equal(env->assignment->target->firmware, "8.12.0");
    } else if (env->body_case == FIRMFLEET__ENVELOPE__BODY_CANCEL) {
        o->cancels++;
    }
    wire_free(env);
}

static struct outbox_seen s_outbox(struct fx *fx)
{
    struct outbox_seen o;
    memset(&o, 0, sizeof o);
    assert_true(store_outbox_each(fx->ctl.st, 1, 0, 10000, s_outbox_row, &o) >= 0);
    return o;
}

static int s_count_events(struct fx *fx, const char *kind, const char *needle)
{
    json_t *ev = NULL;
    struct store_event_filter f = {.kind = kind};
    assert_int_equal(store_event_list(fx->ctl.st, &f, &ev, fx->err, sizeof fx->err), 0);
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        if (needle == NULL || strstr(json_string_value(json_object_get(e, "detail")), needle))
            n++;
    }
    json_decref(ev);
    return n;
}

/* ---- pure parsers ---- */

static void test_waves_grammar(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(rollout_waves_check("100%", err, sizeof err), 1);
    assert_int_equal(rollout_waves_check("canary,1,10%,50%,100%", err, sizeof err), 5);
    assert_int_equal(rollout_waves_check(" 5 , 100% ", err, sizeof err), 2);
    assert_int_equal(rollout_waves_check("10%,5", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "after a percentage"));
    assert_int_equal(rollout_waves_check("0", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "0 is not a wave size"));
    assert_int_equal(rollout_waves_check("5", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "100%"));
    assert_int_equal(rollout_waves_check("50%,10%,100%", err, sizeof err), -EINVAL);
    assert_int_equal(rollout_waves_check("101%", err, sizeof err), -EINVAL);
    assert_int_equal(rollout_waves_check("", err, sizeof err), -EINVAL);
    assert_int_equal(rollout_waves_check("1,,100%", err, sizeof err), -EINVAL);
    assert_int_equal(rollout_waves_check("x", err, sizeof err), -EINVAL);
    assert_null(strchr(err, '\n'));
}

static void test_max_failures_and_durations(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(rollout_max_failures_check("0", err, sizeof err), 0);
    assert_int_equal(rollout_max_failures_check("10%", err, sizeof err), 0);
    assert_int_equal(rollout_max_failures_check("-1", err, sizeof err), -EINVAL);
    assert_int_equal(rollout_max_failures_check("101%", err, sizeof err), -EINVAL);
    assert_int_equal(rollout_max_failures_check("x", err, sizeof err), -EINVAL);
    assert_int_equal(rollout_max_failures("2", 100), 2);
    assert_int_equal(rollout_max_failures("10%", 25), 2); /* floor */
    assert_int_equal(rollout_max_failures("10%", 9), 0);
    int64_t s;
    assert_int_equal(rollout_duration_parse("90s", &s), 0);
    assert_int_equal(s, 90);
    assert_int_equal(rollout_duration_parse("6m", &s), 0);
    assert_int_equal(s, 360);
    assert_int_equal(rollout_duration_parse("1h30m", &s), 0);
    assert_int_equal(s, 5400);
    assert_int_equal(rollout_duration_parse("2d", &s), 0);
    assert_int_equal(s, 172800);
    assert_int_equal(rollout_duration_parse("45", &s), 0);
    assert_int_equal(s, 45);
    assert_int_equal(rollout_duration_parse("1h30", &s), -EINVAL);
    assert_int_equal(rollout_duration_parse("5x", &s), -EINVAL);
    assert_int_equal(rollout_duration_parse("", &s), -EINVAL);
    assert_int_equal(rollout_duration_parse("500d", &s), -EINVAL);
    char buf[32];
    rollout_duration_format(5400, buf, sizeof buf);
    assert_string_equal(buf, "1h30m");
    rollout_duration_format(3600, buf, sizeof buf);
    assert_string_equal(buf, "1h");
    rollout_duration_format(0, buf, sizeof buf);
    assert_string_equal(buf, "0s");
    int64_t ms;
    assert_int_equal(rollout_time_parse("2027-01-15T08:00:00Z", &ms), 0);
    assert_int_equal(ms, 1800000000000LL);
    assert_int_equal(rollout_time_parse("2027-01-15 08:00Z", &ms), 0);
    assert_int_equal(ms, 1800000000000LL);
    assert_int_equal(rollout_time_parse("2027-02-31T08:00Z", &ms), -EINVAL);
    assert_int_equal(rollout_time_parse("tomorrow", &ms), -EINVAL);
    assert_int_equal(rollout_time_parse("2027-01-15T08:00Zx", &ms), -EINVAL);
    char json[512];
    assert_int_equal(
        rollout_timeouts_build("assigned=2h,verifying=10m", json, sizeof json, err, sizeof err), 0);
    assert_int_equal(rollout_timeout_s(json, STORE_RDEV_ASSIGNED), 7200);
    assert_int_equal(rollout_timeout_s(json, STORE_RDEV_VERIFYING), 600);
    assert_int_equal(rollout_timeout_s(json, STORE_RDEV_OFFERED), 4 * 3600);
    assert_int_equal(rollout_timeout_s(json, STORE_RDEV_WAITING_WINDOW), 30 * 86400);
    assert_int_equal(rollout_timeout_s(json, STORE_RDEV_PENDING), -1);
    assert_int_equal(rollout_timeouts_build("pending=1h", json, sizeof json, err, sizeof err),
                     -EINVAL);
    assert_int_equal(rollout_timeouts_build("assigned", json, sizeof json, err, sizeof err),
                     -EINVAL);
    assert_int_equal(rollout_timeouts_build("assigned=soon", json, sizeof json, err, sizeof err),
                     -EINVAL);
}

static void test_wave_planning(void **state)
{
    (void)state;
    char err[256];
    /* 3 sites x devices ordered by (site, mac); models A/B */
    struct store_rollout_target t[10];
    memset(t, 0, sizeof t);
    const struct {
        int64_t site;
        const char *model;
    } def[10] = {{1, "A"}, {1, "A"}, {1, "B"}, {1, "A"}, {2, "A"},
                 {2, "A"}, {2, "B"}, {3, "B"}, {3, "B"}, {3, "B"}};
    for (int i = 0; i < 10; i++) {
        t[i].site_id = def[i].site;
        snprintf(t[i].model, sizeof t[i].model, "%s", def[i].model);
        snprintf(t[i].mac, sizeof t[i].mac, "00:00:00:00:00:0%c", (char)('0' + i));
    }
    int64_t w[10], nw = 0;
    /* canary: first of each (site, model): indices 0, 2, 4, 6, 7 */
    assert_int_equal(rollout_plan("canary,50%,100%", t, 10, w, &nw, err, sizeof err), 0);
    assert_int_equal(nw, 3);
    int64_t want1[10] = {1, 3, 1, 3, 1, 3, 1, 1, 3, 3};
    /* 50% of 10 = 5 cumulative: the canary wave already holds 5, wave 2 empty */
    for (int i = 0; i < 10; i++)
        assert_int_equal(w[i], want1[i]);
    /* counts are sizes, percentages cumulative */
    assert_int_equal(rollout_plan("1,2,50%,100%", t, 10, w, &nw, err, sizeof err), 0);
    int64_t want2[10] = {1, 2, 2, 3, 3, 4, 4, 4, 4, 4};
    for (int i = 0; i < 10; i++)
        assert_int_equal(w[i], want2[i]);
    /* percentages round up: 10% of 10 = 1, 25% -> 3 */
    assert_int_equal(rollout_plan("10%,25%,100%", t, 10, w, &nw, err, sizeof err), 0);
    int64_t want3[10] = {1, 2, 2, 3, 3, 3, 3, 3, 3, 3};
    for (int i = 0; i < 10; i++)
        assert_int_equal(w[i], want3[i]);
    /* more canaries than devices: everything in wave 1 */
    assert_int_equal(rollout_plan("20,100%", t, 10, w, &nw, err, sizeof err), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(w[i], 1);
    assert_int_equal(rollout_plan("10%,5", t, 10, w, &nw, err, sizeof err), -EINVAL);
}

/* ---- create: selector, refusals ---- */

static void test_create_selector_and_refusals(void **state)
{
    struct fx *fx = *state;
    char audit_before[64];
    json_t *a = NULL;
    assert_int_equal(store_audit_list(fx->ctl.st, 0, &a, fx->err, sizeof fx->err), 0);
    snprintf(audit_before, sizeof audit_before, "%zu", json_array_size(a));
    json_decref(a);

    struct rollout_create_in in = {
        .name = "r1", .firmware = "cisco/8.12.0", .profile = "cisco-79xx"};
    /* no filter */
    assert_int_equal(s_create(fx, &in), -EINVAL);
    assert_non_null(strstr(fx->err, "at least one of"));
    in.sites = "berlin,nowhere";
    assert_int_equal(s_create(fx, &in), -ENOENT);
    assert_non_null(strstr(fx->err, "unknown site 'nowhere'"));
    in.sites = "berlin";
    in.firmware = "cisco/9.9";
    assert_int_equal(s_create(fx, &in), -ENOENT);
    assert_non_null(strstr(fx->err, "unknown firmware"));
    in.firmware = "cisco/8.12.0";
    in.profile = "nope";
    assert_int_equal(s_create(fx, &in), -ENOENT);
    assert_non_null(strstr(fx->err, "unknown profile"));
    in.profile = "cisco-79xx";
    in.window = "Mon-Fri 25:00-26:00";
    assert_int_equal(s_create(fx, &in), -EINVAL);
    assert_non_null(strstr(fx->err, "invalid window"));
    in.window = NULL;
    in.waves = "10%,5";
    assert_int_equal(s_create(fx, &in), -EINVAL);
    in.waves = "0";
    assert_int_equal(s_create(fx, &in), -EINVAL);
    in.waves = NULL;
    in.models = "CP-9999";
    assert_int_equal(s_create(fx, &in), -ENOENT);
    assert_non_null(strstr(fx->err, "no device matches"));
    in.models = NULL;
    in.devices = "00:04:f2:00:00:99";
    assert_int_equal(s_create(fx, &in), -ENOENT);
    assert_non_null(strstr(fx->err, "unknown device"));
    in.devices = NULL;
    in.start_at = "whenever";
    assert_int_equal(s_create(fx, &in), -EINVAL);
    in.start_at = NULL;
    in.name = "Bad Name";
    assert_int_equal(s_create(fx, &in), -EINVAL);
    in.name = "r1";
    /* nothing changed by any refusal */
    json_t *l = NULL;
    assert_int_equal(store_rollout_list(fx->ctl.st, &l, fx->err, sizeof fx->err), 0);
    assert_int_equal(json_array_size(json_object_get(l, "rollouts")), 0);
    json_decref(l);
    assert_int_equal(store_audit_list(fx->ctl.st, 0, &a, fx->err, sizeof fx->err), 0);
    char after[64];
    snprintf(after, sizeof after, "%zu", json_array_size(a));
    json_decref(a);
    assert_string_equal(audit_before, after);

    /* sites AND tags: berlin devices tagged floor1 with a listed model:
     * :01, :02 (the polycom :07 is not in the firmware) */
    in.tags = "floor1";
    assert_int_equal(s_create(fx, &in), 0);
    json_t *doc = s_status(fx, "r1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "rollout"), "total")),
                     2);
    json_t *devs = json_object_get(doc, "devices");
    assert_string_equal(json_string_value(json_object_get(json_array_get(devs, 0), "mac")),
                        "00:04:f2:00:00:01");
    assert_string_equal(json_string_value(json_object_get(json_array_get(devs, 1), "mac")),
                        "00:04:f2:00:00:02");
    json_decref(doc);
    /* duplicate name */
    assert_int_equal(s_create(fx, &in), -EEXIST);
    assert_non_null(strstr(fx->err, "already exists"));
    /* the same devices in another unfinished rollout */
    in.name = "r2";
    assert_int_equal(s_create(fx, &in), -EBUSY);
    assert_non_null(strstr(fx->err, "already in unfinished rollout r1"));
    /* models + devices list, across sites, ordered by site, mac */
    in.tags = NULL;
    in.sites = NULL;
    in.models = "CP-7960G";
    in.devices = "00-04-F2-00-00-06\n00:04:f2:00:00:03,00:04:f2:00:00:04";
    assert_int_equal(s_create(fx, &in), 0);
    doc = s_status(fx, "r2");
    devs = json_object_get(doc, "devices");
    assert_int_equal(json_array_size(devs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(devs, 0), "site")),
                        "berlin");
    assert_string_equal(json_string_value(json_object_get(json_array_get(devs, 1), "mac")),
                        "00:04:f2:00:00:06");
    json_decref(doc);
    /* profile by vendor: exactly one "cisco-*" profile */
    in.name = "r3";
    in.profile = NULL;
    in.models = NULL;
    in.devices = "00:04:f2:00:00:04";
    assert_int_equal(s_create(fx, &in), 0);
    doc = s_status(fx, "r3");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "rollout"), "profile")),
        "cisco-79xx");
    json_decref(doc);
}

static void s_tar_header(uint8_t h[512], const char *name)
{
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    memcpy(h + 124, "00000000000", 12);
    memcpy(h + 136, "00000000000", 12);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

static void test_tar_check(void **state)
{
    struct fx *fx = *state;
    struct rollout_notes notes = {0};
    char name[64];
    assert_int_equal(rollout_profile_add(&fx->ctl, "t", s_tar_profile_json,
                                         strlen(s_tar_profile_json), 0, name, &notes, fx->err,
                                         sizeof fx->err),
                     0);
    rollout_notes_free(&notes);
    s_device(fx, "00:04:f2:00:01:01", "berlin", "AIR-AP1142N", "");
    uint8_t junk[1024];
    memset(junk, 'x', sizeof junk);
    s_firmware(fx, "ap", "1.0", "c1140-k9w7-tar.124.tar", junk, sizeof junk);
    struct rollout_create_in in = {
        .name = "ap1", .firmware = "ap/1.0", .profile = "aironet", .models = "AIR-AP1142N"};
    assert_int_equal(s_create(fx, &in), -EINVAL);
    assert_non_null(strstr(fx->err, "not a valid tar archive"));
    assert_null(strchr(fx->err, '\n'));
    /* a file set without any *.tar */
    s_firmware(fx, "ap", "1.1", "image.bin", junk, sizeof junk);
    in.firmware = "ap/1.1";
    assert_int_equal(s_create(fx, &in), -EINVAL);
    assert_non_null(strstr(fx->err, "no file matching"));
    /* a real tar header passes */
    uint8_t tar[1024];
    memset(tar, 0, sizeof tar);
    s_tar_header(tar, "c1140-k9w7-mx.124/");
    s_firmware(fx, "ap", "1.2", "c1140-k9w7-tar.124.tar", tar, sizeof tar);
    in.firmware = "ap/1.2";
    if (s_create(fx, &in) != 0)
        fail_msg("tar create: %s", fx->err);
}

/* ---- the engine ---- */

static void test_assign_events_and_done(void **state)
{
    struct fx *fx = *state;
    char st[32], rs[300];
    /* :04 already runs the target: skipped(serial) */
    struct store_device_set_in set = {.serial_firmware = "8.12.0"};
    assert_int_equal(
        store_device_set(fx->ctl.st, "t", "00:04:f2:00:00:04", &set, NULL, fx->err, sizeof fx->err),
        0);
    assert_int_equal(store_site_set_window(fx->ctl.st, "t", "berlin", "Mon-Fri 22:00-05:00", NULL,
                                           fx->err, sizeof fx->err),
                     0);
    struct rollout_create_in in = {.name = "b",
                                   .firmware = "cisco/8.12.0",
                                   .profile = "cisco-79xx",
                                   .sites = "berlin",
                                   .waves = "1,100%",
                                   .window = "daily 01:00-02:00"};
    assert_int_equal(s_create(fx, &in), 0);
    /* not started: the tick does nothing, but the images are pre-fetched */
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 1000), 0);
    assert_int_equal(s_outbox(fx).assignments, 0);
    Firmfleet__SiteConfig *sc = NULL;
    assert_int_equal(store_site_config(fx->ctl.st, fx->paris, &sc), 0);
    size_t paris_images = sc->n_images;
    assert_int_equal(sc->n_profiles, 1);
    assert_string_equal(sc->profiles[0]->name, "cisco-79xx");
    store_site_config_free(sc);
    assert_int_equal(store_site_config(fx->ctl.st, fx->berlin, &sc), 0);
    assert_int_equal(sc->n_images, 1);
    int found = 0;
    for (size_t i = 0; i < sc->n_devices; i++)
        if (strcmp(sc->devices[i]->mac, "00:04:f2:00:00:04") == 0) {
            assert_string_equal(sc->devices[i]->serials->firmware, "8.12.0");
            found = 1;
        }
    assert_true(found);
    store_site_config_free(sc);
    (void)paris_images;

    s_verb(fx, rollout_start, "b", T0 + 2000);
    assert_string_equal(s_rollout_state(fx, "b", rs), "running|");
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 3000), 0);
    /* wave 1 = one device: :01 (berlin, first mac); window: the site's */
    struct outbox_seen o = s_outbox(fx);
    assert_int_equal(o.assignments, 1);
    assert_string_equal(o.mac, "00:04:f2:00:00:01");
    assert_string_equal(o.version, "8.12.0");
    assert_string_equal(o.profile, "cisco-79xx");
    assert_string_equal(o.window, "Mon-Fri 22:00-05:00");
    assert_string_equal(s_dev_state(fx, "b", "00:04:f2:00:00:01", st), "assigned");
    assert_string_equal(s_dev_state(fx, "b", "00:04:f2:00:00:02", st), "pending");
    /* a second tick does not re-send */
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 4000), 0);
    assert_int_equal(s_outbox(fx).assignments, 1);

    /* events move it; stale ones are ignored */
    s_event(fx, fx->berlin, "assignment.applied", "00:04:f2:00:00:01", "rollout=1", T0 + 5000);
    assert_string_equal(s_dev_state(fx, "b", "00:04:f2:00:00:01", st), "waiting_window");
    s_event(fx, fx->berlin, "upgrade.offered", "00:04:f2:00:00:01", "rollout=1 restart=sent",
            T0 + 6000);
    s_event(fx, fx->berlin, "assignment.applied", "00:04:f2:00:00:01", "rollout=1", T0 + 6500);
    assert_string_equal(s_dev_state(fx, "b", "00:04:f2:00:00:01", st), "offered");
    /* versions seen while a rollout upgrades the device are no drift */
    s_event(fx, fx->berlin, "device.version", "00:04:f2:00:00:01", "version=old-image", T0 + 6600);
    s_event(fx, fx->berlin, "device.version", "00:04:f2:00:00:01", "version=P003-08-12-00",
            T0 + 6700);
    assert_int_equal(s_count_events(fx, "device.drift", NULL), 0);
    s_event(fx, fx->berlin, "upgrade.downloading", "00:04:f2:00:00:01",
            "rollout=1 file=P0S3-08-12-00.loads", T0 + 7000);
    assert_string_equal(s_dev_state(fx, "b", "00:04:f2:00:00:01", st), "downloading");
    s_event(fx, fx->berlin, "upgrade.installed", "00:04:f2:00:00:01", "rollout=1", T0 + 8000);
    s_event(fx, fx->berlin, "upgrade.verifying", "00:04:f2:00:00:01", "rollout=1", T0 + 9000);
    assert_string_equal(s_dev_state(fx, "b", "00:04:f2:00:00:01", st), "verifying");
    /* unknown rollout, wrong device, no rollout= : ignored */
    s_event(fx, fx->berlin, "upgrade.failed", "00:04:f2:00:00:01", "rollout=99 reason=x",
            T0 + 9100);
    s_event(fx, fx->berlin, "upgrade.failed", "00:04:f2:00:00:01", "reason=x", T0 + 9200);
    s_event(fx, fx->berlin, "upgrade.failed", "00:04:f2:00:00:02", "rollout=1 reason=x",
            T0 + 9300); /* still pending: not ours yet */
    assert_string_equal(s_dev_state(fx, "b", "00:04:f2:00:00:02", st), "pending");
    s_event(fx, fx->berlin, "upgrade.succeeded", "00:04:f2:00:00:01", "rollout=1 version=8.12.0",
            T0 + 10000);
    assert_string_equal(s_dev_state(fx, "b", "00:04:f2:00:00:01", st), "succeeded");
    /* terminal: a late failure does not move it */
    s_event(fx, fx->berlin, "upgrade.failed", "00:04:f2:00:00:01", "rollout=1 reason=late",
            T0 + 10500);
    assert_string_equal(s_dev_state(fx, "b", "00:04:f2:00:00:01", st), "succeeded");
    json_t *dev = NULL;
    assert_int_equal(
        store_device_show(fx->ctl.st, "00:04:f2:00:00:01", &dev, fx->err, sizeof fx->err), 0);
    assert_string_equal(json_string_value(json_object_get(dev, "version")), "8.12.0");
    assert_string_equal(json_string_value(json_object_get(dev, "serial_firmware")), "8.12.0");
    json_decref(dev);

    /* wave 2 follows: :02 and :03 assigned, :04 skipped(serial) */
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 11000), 0);
    assert_int_equal(s_outbox(fx).assignments, 3);
    assert_string_equal(s_dev_state(fx, "b", "00:04:f2:00:00:04", st), "skipped");
    assert_true(s_count_events(fx, "rollout.wave", "wave=2") == 1);
    assert_true(s_count_events(fx, "rollout.device", "state=skipped reason=serial") == 1);
    s_event(fx, fx->berlin, "upgrade.skipped", "00:04:f2:00:00:02", "rollout=1 reason=serial",
            T0 + 12000);
    s_event(fx, fx->berlin, "upgrade.succeeded", "00:04:f2:00:00:03", "rollout=1 version=8.12.0",
            T0 + 12000);
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 13000), 0);
    assert_string_equal(s_rollout_state(fx, "b", rs), "done|2 succeeded, 2 skipped, 0 failed");
    assert_true(s_count_events(fx, "rollout.state", "state=done") == 1);

    /* the status document carries every key the CLI reads */
    json_t *doc = s_status(fx, "b");
    const char *rkeys[] = {
        "id",      "name",       "state",        "reason",           "firmware", "version",
        "profile", "waves",      "max_failures", "site_concurrency", "window",   "current_wave",
        "total",   "created_at", "started_at",   "finished_at"};
    json_t *r = json_object_get(doc, "rollout");
    for (size_t i = 0; i < sizeof rkeys / sizeof rkeys[0]; i++)
        if (json_object_get(r, rkeys[i]) == NULL)
            fail_msg("rollout.%s missing", rkeys[i]);
    assert_string_equal(json_string_value(json_object_get(r, "waves")), "1,100%");
    assert_string_equal(json_string_value(json_object_get(r, "max_failures")), "1");
    assert_string_equal(json_string_value(json_object_get(r, "window")), "daily 01:00-02:00");
    const char *states[] = {"pending",     "assigned",  "waiting_window", "offered",
                            "downloading", "installed", "verifying",      "succeeded",
                            "failed",      "skipped",   "cancelled"};
    json_t *counts = json_object_get(doc, "counts");
    for (size_t i = 0; i < 11; i++)
        if (!json_is_integer(json_object_get(counts, states[i])))
            fail_msg("counts.%s missing", states[i]);
    assert_int_equal(json_integer_value(json_object_get(counts, "succeeded")), 2);
    json_t *waves = json_object_get(doc, "waves");
    assert_int_equal(json_array_size(waves), 2);
    json_t *w1 = json_array_get(waves, 0);
    assert_int_equal(json_integer_value(json_object_get(w1, "size")), 1);
    assert_string_equal(json_string_value(json_object_get(w1, "state")), "done");
    assert_non_null(json_object_get(w1, "counts"));
    json_t *site = json_array_get(json_object_get(doc, "sites"), 0);
    assert_string_equal(json_string_value(json_object_get(site, "site")), "berlin");
    assert_true(json_is_boolean(json_object_get(site, "staged")));
    assert_false(json_is_true(json_object_get(site, "staged"))); /* the agent cached nothing */
    assert_non_null(json_object_get(site, "counts"));
    assert_true(json_is_array(json_object_get(doc, "failures")));
    json_t *d0 = json_array_get(json_object_get(doc, "devices"), 0);
    const char *dkeys[] = {"mac", "site", "model", "wave", "state", "reason", "updated_at"};
    for (size_t i = 0; i < 7; i++)
        if (json_object_get(d0, dkeys[i]) == NULL)
            fail_msg("devices[0].%s missing", dkeys[i]);
    json_decref(doc);

    /* drift: a version the controller did not put there */
    s_event(fx, fx->berlin, "device.version", "00:04:f2:00:00:01", "version=8.11.0 stage=sip",
            T0 + 14000);
    assert_int_equal(s_count_events(fx, "device.drift", "seen=8.11.0 expected=8.12.0"), 1);
    /* the version the rollout put on :03 is no drift */
    s_event(fx, fx->berlin, "device.version", "00:04:f2:00:00:03", "version=8.12.0", T0 + 14000);
    assert_int_equal(s_count_events(fx, "device.drift", NULL), 1);
    /* once finished, the pre-fetched images are released from paris? paris
     * was never targeted; berlin keeps the image (its models need it) */
}

static void test_timeouts_halt_and_abort(void **state)
{
    struct fx *fx = *state;
    char st[32], rs[300];
    struct rollout_create_in in = {.name = "h",
                                   .firmware = "cisco/8.12.0",
                                   .profile = "cisco-79xx",
                                   .models = "CP-7940G",
                                   .max_failures = "1",
                                   .timeouts = "assigned=10m"};
    /* berlin :01 :02 :04, paris :05 (no agent there) */
    assert_int_equal(s_create(fx, &in), 0);
    s_verb(fx, rollout_start, "h", T0);
    assert_int_equal(rollout_tick(&fx->ctl, T0), 0);
    assert_int_equal(s_outbox(fx).assignments, 3);
    json_t *doc = s_status(fx, "h");
    json_t *devs = json_object_get(doc, "devices");
    json_t *p = json_array_get(devs, 3);
    assert_string_equal(json_string_value(json_object_get(p, "mac")), "00:04:f2:00:00:05");
    assert_string_equal(json_string_value(json_object_get(p, "state")), "pending");
    assert_string_equal(json_string_value(json_object_get(p, "reason")), "no agent");
    json_decref(doc);
    /* one device fails, within max 1 */
    s_event(fx, fx->berlin, "upgrade.failed", "00:04:f2:00:00:01", "rollout=1 reason=\"bad image\"",
            T0 + 1000);
    assert_string_equal(s_dev_state(fx, "h", "00:04:f2:00:00:01", st), "failed");
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 2000), 0);
    assert_string_equal(s_rollout_state(fx, "h", rs), "running|");
    /* :02 advances to waiting_window (30 days); :04 stays assigned and
     * times out after 10 minutes: failed, Cancel sent, 2 > 1 -> halted */
    s_event(fx, fx->berlin, "upgrade.waiting", "00:04:f2:00:00:02", "rollout=1 reason=window",
            T0 + 3000);
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 9 * 60000), 0);
    assert_string_equal(s_dev_state(fx, "h", "00:04:f2:00:00:04", st), "assigned");
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 10 * 60000 + 1), 0);
    assert_string_equal(s_dev_state(fx, "h", "00:04:f2:00:00:04", st), "failed");
    doc = s_status(fx, "h");
    json_t *f = json_object_get(doc, "failures");
    assert_int_equal(json_array_size(f), 2);
    int saw_timeout = 0;
    size_t i;
    json_t *x;
    json_array_foreach(f, i, x)
    {
        saw_timeout |= strcmp(json_string_value(json_object_get(x, "reason")),
                              "timeout in assigned after 10m") == 0;
    }
    assert_true(saw_timeout);
    json_decref(doc);
    assert_int_equal(s_outbox(fx).cancels, 1);
    assert_string_equal(s_rollout_state(fx, "h", rs), "halted|halted: 2 failures > max 1 (wave 1)");
    /* halted: an agent appears at paris, still no assignment */
    s_agent(fx, "paris", "paris");
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 11 * 60000), 0);
    assert_string_equal(s_dev_state(fx, "h", "00:04:f2:00:00:05", st), "pending");
    /* in flight devices are still followed while halted */
    s_event(fx, fx->berlin, "upgrade.offered", "00:04:f2:00:00:02", "rollout=1", T0 + 11 * 60000);
    assert_string_equal(s_dev_state(fx, "h", "00:04:f2:00:00:02", st), "offered");
    /* start/resume refused with the reason; abort cancels the rest */
    struct rollout_notes notes = {0};
    assert_int_equal(rollout_resume(&fx->ctl, "t", "h", T0, &notes, fx->err, sizeof fx->err),
                     -EINVAL);
    assert_non_null(strstr(fx->err, "is halted"));
    s_verb(fx, rollout_abort, "h", T0 + 12 * 60000);
    assert_string_equal(s_dev_state(fx, "h", "00:04:f2:00:00:02", st), "cancelled");
    assert_string_equal(s_dev_state(fx, "h", "00:04:f2:00:00:05", st), "cancelled");
    assert_string_equal(s_dev_state(fx, "h", "00:04:f2:00:00:01", st), "failed");
    assert_int_equal(s_outbox(fx).cancels, 2); /* :02 was in flight; :05 never assigned */
    assert_int_equal(strncmp(s_rollout_state(fx, "h", rs), "aborted|aborted by tester", 25), 0);
    assert_int_equal(rollout_abort(&fx->ctl, "t", "h", T0, &notes, fx->err, sizeof fx->err),
                     -EALREADY);
    rollout_notes_free(&notes);
    /* the devices are free for a new rollout */
    in.name = "h2";
    assert_int_equal(s_create(fx, &in), 0);
}

static void test_percent_threshold_pause_schedule(void **state)
{
    struct fx *fx = *state;
    char rs[300], st[32];
    s_agent(fx, "paris", "paris");
    struct rollout_create_in in = {.name = "p",
                                   .firmware = "cisco/8.12.0",
                                   .profile = "cisco-79xx",
                                   .sites = "berlin,paris",
                                   .max_failures = "20%",
                                   .start_at = "2027-01-15T09:00:00Z"};
    assert_int_equal(s_create(fx, &in), 0); /* 6 devices: max floor(20% of 6) = 1 */
    /* start-at in the future: scheduled until then */
    uint64_t start = 1800003600000ULL; /* 2027-01-15T09:00:00Z */
    s_verb(fx, rollout_start, "p", start - 60000);
    assert_string_equal(s_rollout_state(fx, "p", rs), "scheduled|");
    assert_int_equal(rollout_tick(&fx->ctl, start - 1000), 0);
    assert_int_equal(s_outbox(fx).assignments, 0);
    s_verb(fx, rollout_pause, "p", start - 500);
    assert_int_equal(strncmp(s_rollout_state(fx, "p", rs), "paused|", 7), 0);
    assert_int_equal(rollout_tick(&fx->ctl, start + 1000), 0);
    assert_int_equal(s_outbox(fx).assignments, 0);
    s_verb(fx, rollout_resume, "p", start + 2000);
    assert_string_equal(s_rollout_state(fx, "p", rs), "running|");
    assert_int_equal(rollout_tick(&fx->ctl, start + 3000), 0);
    assert_int_equal(s_outbox(fx).assignments, 4); /* berlin's 4; paris' go to agent 2 */
    s_event(fx, fx->berlin, "upgrade.failed", "00:04:f2:00:00:01", "rollout=1 reason=a",
            start + 4000);
    assert_int_equal(rollout_tick(&fx->ctl, start + 5000), 0);
    assert_string_equal(s_rollout_state(fx, "p", rs), "running|");
    s_event(fx, fx->berlin, "upgrade.failed", "00:04:f2:00:00:02", "rollout=1 reason=b",
            start + 6000);
    assert_int_equal(rollout_tick(&fx->ctl, start + 7000), 0);
    assert_string_equal(s_rollout_state(fx, "p", rs), "halted|halted: 2 failures > max 1 (wave 1)");
    /* a device added at a targeted site is appended to the last wave only
     * while running: halted takes none */
    s_device(fx, "00:04:f2:00:00:08", "paris", "CP-7940G", "");
    assert_int_equal(rollout_tick(&fx->ctl, start + 8000), 0);
    assert_string_equal(s_dev_state(fx, "p", "00:04:f2:00:00:08", st), "");
}

static void test_append_new_devices(void **state)
{
    struct fx *fx = *state;
    char st[32];
    struct rollout_create_in in = {.name = "a",
                                   .firmware = "cisco/8.12.0",
                                   .profile = "cisco-79xx",
                                   .sites = "berlin",
                                   .waves = "1,100%"};
    assert_int_equal(s_create(fx, &in), 0);
    s_verb(fx, rollout_start, "a", T0);
    assert_int_equal(rollout_tick(&fx->ctl, T0), 0);
    s_device(fx, "00:04:f2:00:00:09", "berlin", "CP-7960G", "");
    s_device(fx, "00:04:f2:00:00:0a", "paris", "CP-7960G", ""); /* not a targeted site */
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 1000), 0);
    assert_string_equal(s_dev_state(fx, "a", "00:04:f2:00:00:09", st), "pending");
    assert_string_equal(s_dev_state(fx, "a", "00:04:f2:00:00:0a", st), "");
    json_t *doc = s_status(fx, "a");
    json_t *devs = json_object_get(doc, "devices");
    json_t *last = json_array_get(devs, json_array_size(devs) - 1);
    assert_string_equal(json_string_value(json_object_get(last, "mac")), "00:04:f2:00:00:09");
    assert_int_equal(json_integer_value(json_object_get(last, "wave")), 2);
    json_decref(doc);
    assert_int_equal(s_count_events(fx, "rollout.device", "reason=added"), 1);
}

static void test_profiles(void **state)
{
    struct fx *fx = *state;
    struct rollout_notes notes = {0};
    char name[64];
    /* refused with profile_parse's reason, nothing stored */
    const char bad[] = "{\"name\": \"x\", \"recognise\": [], \"bogus\": 1}";
    assert_int_equal(rollout_profile_add(&fx->ctl, "t", bad, strlen(bad), 0, name, &notes, fx->err,
                                         sizeof fx->err),
                     -EINVAL);
    assert_non_null(strstr(fx->err, "profile refused"));
    /* duplicate without replace */
    assert_int_equal(rollout_profile_add(&fx->ctl, "t", s_profile_json, strlen(s_profile_json), 0,
                                         name, &notes, fx->err, sizeof fx->err),
                     -EEXIST);
    assert_non_null(strstr(fx->err, "--replace"));
    assert_int_equal(rollout_profile_add(&fx->ctl, "t", s_profile_json, strlen(s_profile_json), 1,
                                         name, &notes, fx->err, sizeof fx->err),
                     0);
    json_t *l = NULL;
    assert_int_equal(store_profile_list(fx->ctl.st, &l, fx->err, sizeof fx->err), 0);
    json_t *p0 = json_array_get(json_object_get(l, "profiles"), 0);
    assert_string_equal(json_string_value(json_object_get(p0, "name")), "cisco-79xx");
    assert_string_equal(json_string_value(json_object_get(p0, "description")), "Cisco 79xx");
    assert_string_equal(json_string_value(json_object_get(p0, "source")), "operator");
    assert_int_equal(json_integer_value(json_object_get(p0, "priority")), 50);
    json_decref(l);
    /* in use by an unfinished rollout: refused */
    struct rollout_create_in in = {
        .name = "u", .firmware = "cisco/8.12.0", .profile = "cisco-79xx", .sites = "paris"};
    assert_int_equal(s_create(fx, &in), 0);
    json_t *ids = json_array();
    assert_int_equal(
        store_profile_remove(fx->ctl.st, "t", "cisco-79xx", ids, fx->err, sizeof fx->err), -EBUSY);
    assert_non_null(strstr(fx->err, "rollout u"));
    s_verb(fx, rollout_abort, "u", T0);
    assert_int_equal(
        store_profile_remove(fx->ctl.st, "t", "cisco-79xx", ids, fx->err, sizeof fx->err), 0);
    assert_int_equal(json_array_size(ids), 2); /* every site bumped */
    json_decref(ids);
    assert_int_equal(
        store_profile_remove(fx->ctl.st, "t", "cisco-79xx", NULL, fx->err, sizeof fx->err),
        -ENOENT);
    /* the profiles directory: bad files skipped, the rest loaded as builtin */
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/profiles", fx->dir);
    assert_int_equal(util_mkdir_p(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/good.json", dir);
    assert_int_equal(
        util_write_file_atomic(path, s_tar_profile_json, strlen(s_tar_profile_json), 0600), 0);
    snprintf(path, sizeof path, "%s/bad.json", dir);
    assert_int_equal(util_write_file_atomic(path, bad, strlen(bad), 0600), 0);
    snprintf(path, sizeof path, "%s/ignored.txt", dir);
    assert_int_equal(util_write_file_atomic(path, "x", 1, 0600), 0);
    assert_int_equal(rollout_profiles_load(fx->ctl.st, dir, 1), 1);
    json_t *p = NULL;
    assert_int_equal(store_profile_show(fx->ctl.st, "aironet", &p, fx->err, sizeof fx->err), 0);
    assert_string_equal(json_string_value(json_object_get(p, "source")), "builtin");
    assert_string_equal(json_string_value(json_object_get(p, "json")), s_tar_profile_json);
    json_decref(p);
    /* a builtin needs --replace too */
    assert_int_equal(rollout_profile_add(&fx->ctl, "t", s_tar_profile_json,
                                         strlen(s_tar_profile_json), 0, name, &notes, fx->err,
                                         sizeof fx->err),
                     -EEXIST);
    rollout_notes_free(&notes);
    snprintf(path, sizeof path, "%s/missing", fx->dir);
    assert_true(rollout_profiles_load(fx->ctl.st, path, 1) < 0);
    assert_int_equal(rollout_profiles_load(fx->ctl.st, path, 0), 0);
}

static void test_class_window_wins(void **state)
{
    struct fx *fx = *state;
    const char *rules[] = {"vendor-prefix:Cisco"};
    struct store_class_in c = {
        .name = "phones", .rules = rules, .n_rules = 1, .window = "Sat,Sun 00:00-06:00"};
    assert_int_equal(store_class_add(fx->ctl.st, "t", &c, NULL, fx->err, sizeof fx->err), 0);
    c.name = "badwin";
    c.window = "someday";
    assert_int_equal(store_class_add(fx->ctl.st, "t", &c, NULL, fx->err, sizeof fx->err), -EINVAL);
    assert_non_null(strstr(fx->err, "invalid window"));
    assert_int_equal(
        store_site_set_window(fx->ctl.st, "t", "berlin", "nonsense", NULL, fx->err, sizeof fx->err),
        -EINVAL);
    struct store_device_in d = {
        .mac = "00:04:f2:00:02:01", .site = "berlin", .model = "CP-7940G", .class_name = "phones"};
    assert_int_equal(store_device_add(fx->ctl.st, "t", &d, NULL, fx->err, sizeof fx->err), 0);
    struct rollout_create_in in = {.name = "c",
                                   .firmware = "cisco/8.12.0",
                                   .profile = "cisco-79xx",
                                   .devices = "00:04:f2:00:02:01",
                                   .window = "daily 01:00-02:00"};
    assert_int_equal(s_create(fx, &in), 0);
    s_verb(fx, rollout_start, "c", T0);
    assert_int_equal(rollout_tick(&fx->ctl, T0), 0);
    struct outbox_seen o = s_outbox(fx);
    assert_int_equal(o.assignments, 1);
    assert_string_equal(o.window, "Sat,Sun 00:00-06:00");
    assert_int_equal(o.rollout_id, 1);
    /* device set: unknown profile refused, changes nothing */
    struct store_device_set_in set = {.profile = "nope", .version = "1.0"};
    assert_int_equal(
        store_device_set(fx->ctl.st, "t", "00:04:f2:00:02:01", &set, NULL, fx->err, sizeof fx->err),
        -ENOENT);
    json_t *dev = NULL;
    assert_int_equal(
        store_device_show(fx->ctl.st, "00:04:f2:00:02:01", &dev, fx->err, sizeof fx->err), 0);
    assert_string_equal(json_string_value(json_object_get(dev, "version")), "");
    json_decref(dev);
}

/* A device whose site has no agent waits (pending, "no agent") and is
 * assigned once an agent is enrolled there. */
static void test_waits_for_agent(void **state)
{
    struct fx *fx = *state;
    char st[32];
    struct rollout_create_in in = {
        .name = "w", .firmware = "cisco/8.12.0", .profile = "cisco-79xx", .sites = "paris"};
    assert_int_equal(s_create(fx, &in), 0);
    s_verb(fx, rollout_start, "w", T0);
    assert_int_equal(rollout_tick(&fx->ctl, T0), 0);
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 1000), 0);
    assert_string_equal(s_dev_state(fx, "w", "00:04:f2:00:00:05", st), "pending");
    assert_int_equal(s_count_events(fx, "rollout.device", NULL), 0);
    s_agent(fx, "paris", "paris");
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 2000), 0);
    assert_string_equal(s_dev_state(fx, "w", "00:04:f2:00:00:05", st), "assigned");
    assert_string_equal(s_dev_state(fx, "w", "00:04:f2:00:00:06", st), "assigned");
}

/* Crash safety: everything is in the store, so a controller that stops
 * anywhere between ticks (here: the store closed and reopened) continues
 * where it was, without re-sending what it journaled. */
static void test_restart_continues(void **state)
{
    struct fx *fx = *state;
    char st[32], rs[300];
    struct rollout_create_in in = {.name = "k",
                                   .firmware = "cisco/8.12.0",
                                   .profile = "cisco-79xx",
                                   .sites = "berlin",
                                   .waves = "1,100%"};
    assert_int_equal(s_create(fx, &in), 0);
    s_verb(fx, rollout_start, "k", T0);
    assert_int_equal(rollout_tick(&fx->ctl, T0), 0);
    assert_int_equal(s_outbox(fx).assignments, 1);
    char path[256];
    snprintf(path, sizeof path, "%s/controller.db", fx->dir);
    store_destroy(&fx->ctl.st);
    assert_int_equal(store_open(path, &fx->ctl.st), 0);
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 1000), 0);
    assert_int_equal(s_outbox(fx).assignments, 1); /* nothing re-sent */
    s_event(fx, fx->berlin, "upgrade.succeeded", "00:04:f2:00:00:01", "rollout=1", T0 + 2000);
    store_destroy(&fx->ctl.st);
    assert_int_equal(store_open(path, &fx->ctl.st), 0);
    assert_int_equal(rollout_tick(&fx->ctl, T0 + 3000), 0);
    assert_string_equal(s_dev_state(fx, "k", "00:04:f2:00:00:02", st), "assigned");
    assert_string_equal(s_rollout_state(fx, "k", rs), "running|");
    assert_int_equal(s_outbox(fx).assignments, 4);
}

/* The engine's two halves give what store_assignment_build gives: the
 * same files, site, errors and texts. */
static void test_assignment_halves(void **state)
{
    struct fx *fx = *state;
    store_t *st = fx->ctl.st;
    char e1[256], e2[256], win[64];
    int64_t fw_id = 0, site = 0, site2 = 0;
    Firmfleet__Assignment *fw = NULL, *whole = NULL;
    assert_int_equal(store_assignment_firmware(st, "cisco/9.9.9", &fw, &fw_id, e1, sizeof e1),
                     -ENOENT);
    assert_null(fw);
    assert_int_equal(store_assignment_build(st, "00:04:f2:00:00:01", "cisco/9.9.9", &whole, &site,
                                            e2, sizeof e2),
                     -ENOENT);
    assert_string_equal(e1, e2);
    assert_int_equal(store_assignment_firmware(st, "cisco/8.12.0", &fw, &fw_id, e1, sizeof e1), 0);
    assert_int_equal(store_assignment_build(st, "00:04:f2:00:00:01", "cisco/8.12.0", &whole, &site,
                                            e2, sizeof e2),
                     0);
    assert_string_equal(fw->firmware, whole->firmware);
    assert_int_equal(fw->n_files, whole->n_files);
    assert_int_equal(fw->n_files, 1);
    assert_string_equal(fw->files[0]->name, whole->files[0]->name);
    assert_int_equal(fw->files[0]->size, whole->files[0]->size);
    assert_memory_equal(fw->files[0]->sha256.data, whole->files[0]->sha256.data, 32);
    store_assignment_free(whole);
    assert_int_equal(store_assignment_device(st, "00:04:f2:00:00:01", fw_id, fw->firmware, &site2,
                                             win, sizeof win, e1, sizeof e1),
                     0);
    assert_int_equal(site2, site);
    assert_int_equal(site2, fx->berlin);
    assert_string_equal(win, "");
    const char *bad[] = {"00:04:f2:00:00:07", "00:04:f2:00:0f:ff"}; /* model; unknown */
    for (size_t i = 0; i < 2; i++) {
        int rc = store_assignment_build(st, bad[i], "cisco/8.12.0", &whole, &site, e2, sizeof e2);
        assert_int_equal(rc, i == 0 ? -EINVAL : -ENOENT);
        assert_int_equal(store_assignment_device(st, bad[i], fw_id, fw->firmware, &site2, win,
                                                 sizeof win, e1, sizeof e1),
                         rc);
        assert_string_equal(e1, e2);
    }
    store_assignment_free(fw);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    hash_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waves_grammar),
        cmocka_unit_test(test_max_failures_and_durations),
        cmocka_unit_test(test_wave_planning),
        cmocka_unit_test_setup_teardown(test_create_selector_and_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tar_check, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_assign_events_and_done, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timeouts_halt_and_abort, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_percent_threshold_pause_schedule, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_append_new_devices, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_profiles, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_class_window_wins, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restart_continues, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_waits_for_agent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_assignment_halves, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
