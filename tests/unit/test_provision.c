/* test_provision.c: rollouts at the agent, on a real agent (journal, loop)
 * with no controller: the window in the site's zone (time moved with the
 * clock offset, never by sleeping), boot grace, the factory-fresh
 * exemption, serials and version skips, per-site concurrency, the whole
 * path offered -> downloading -> installed -> verifying -> succeeded|failed,
 * the verify timeout, cancel and re-sent assignments, a bad profile and a
 * bad window, the SIP NOTIFY with its device.restart event, NOTIFYs
 * deferred while the sender's table is full (more devices than
 * SIPN_MAX_PENDING, a real UDP phone on 127.0.0.1), and the state
 * surviving a restart of the agent. Every transition's event is counted:
 * once per transition, never per packet or per tick. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "agent.h"
#include "dhcp_class.h"
#include "journal.h"
#include "log.h"
#include "provision.h"
#include "sipnotify.h"
#include "util.h"
#include "window.h"

#define TZ "Europe/Berlin"
#define WINDOW "daily 02:00-04:00"

static const char *s_profile_json =
    "{\"name\": \"testphone\", \"priority\": 10,"
    " \"recognise\": [\"vendor-prefix:TestPhone\"],"
    " \"version\": [{\"from\": \"vendor\", \"regex\": \"^TestPhone/([0-9.]+)\"}],"
    " \"model\": [{\"from\": \"vendor\", \"regex\": \"model=([A-Z0-9]+)\"}],"
    " \"stages\": [{\"name\": \"app\", \"when\": [\"vendor-prefix:TestPhone/\"]}],"
    " \"dhcp_options\": [\"66=@server\"],"
    " \"final_image\": \"fw-*.bin\","
    " \"files\": ["
    "   {\"name\": \"cfg{mac}.xml\", \"body\": \"v={{version}} at {{server_ip}}\\n\"},"
    "   {\"name\": \"fw.bin\", \"when\": \"upgrade\", \"image\": \"fw-*.bin\"}],"
    " \"restart\": {\"event\": \"check-sync;reboot=true\"}}";

struct fx {
    char dir[64];
    char sdir[96];
    struct agent_cred cred;
    struct agent *a;
    uint64_t gen;
    int64_t in_window; /* clock offsets */
    int64_t out_window;
};

static const uint8_t M1[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t M2[6] = {0x02, 0, 0, 0, 0, 0x02};

static int s_agent(struct fx *f)
{
    struct agent_opts opts = {.state_dir = f->sdir};
    return agent_new(&opts, &f->cred, &f->a);
}

static int s_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/agt-test-prov.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->sdir, sizeof f->sdir, "%s/state", f->dir);
    log_set_level(getenv("FF_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
    char spub[41], ssec[41];
    if (zmq_curve_keypair(spub, ssec) < 0 ||
        zmq_curve_keypair(f->cred.public_key, f->cred.secret_key) < 0)
        return -1;
    snprintf(f->cred.agent, sizeof f->cred.agent, "berlin-1");
    snprintf(f->cred.site, sizeof f->cred.site, "berlin");
    snprintf(f->cred.endpoint, sizeof f->cred.endpoint, "tcp://127.0.0.1:9"); /* nobody */
    memcpy(f->cred.server_key, spub, 41);
    if (s_agent(f) < 0)
        return -1;
    /* offsets that put the decision clock 10 minutes into tonight's window,
     * and 3 hours later (closed) */
    window_t *w = NULL;
    char err[128];
    if (window_parse(WINDOW, &w, err, sizeof err) < 0)
        return -1;
    /* the start of the next window: when the test runs inside one, the
     * next after it closes (offsets count from a known opening) */
    time_t now = time(NULL), from = now;
    for (int i = 0; i < 48 * 60 && window_allows(w, from, TZ) == 1; i++)
        from += 60;
    time_t open = window_next_open(w, from, TZ);
    window_free(w);
    if (open == (time_t)-1)
        return -1;
    f->in_window = (int64_t)(open - now) + 600;
    f->out_window = f->in_window + 3 * 3600;
    f->a->clock_offset_s = f->out_window;
    *state = f;
    return 0;
}

static int s_count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(int *)arg)++;
    return 0;
}
static void s_walk(uv_handle_t *h, void *arg)
{
    s_count_handle(h, arg);
}

static int s_stop_agent(struct fx *f)
{
    agent_stop(f->a, 0);
    int rc = agent_run(f->a);
    int open = 0;
    uv_walk(&f->a->loop, s_walk, &open);
    agent_destroy(&f->a);
    return rc == 0 && open == 0 ? 0 : -1;
}

static int s_teardown(void **state)
{
    struct fx *f = *state;
    int rc = s_stop_agent(f);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int sys = system(cmd);
    free(f);
    return rc == 0 && sys == 0 ? 0 : -1;
}

/* ---- configuration and assignments ---- */

struct devspec {
    const uint8_t *mac;
    const char *version; /* DeviceRef.version */
    const char *serial_fw;
    const char *ip;
};

static void s_config(struct fx *f, const struct devspec *ds, size_t n, int bad_profile)
{
    Firmfleet__SiteConfig sc = FIRMFLEET__SITE_CONFIG__INIT;
    sc.site = "berlin";
    sc.tz = TZ;
    sc.generation = ++f->gen;
    /* sized by n: the deferral test configures more devices than the
     * NOTIFY table holds (the agent keeps a packed copy of the whole) */
    Firmfleet__DeviceRef *refs = calloc(n ? n : 1, sizeof *refs),
                         **rp = calloc(n ? n : 1, sizeof *rp);
    Firmfleet__Serials *ser = calloc(n ? n : 1, sizeof *ser);
    char(*macs)[18] = calloc(n ? n : 1, sizeof *macs);
    assert_true(refs && rp && ser && macs);
    for (size_t i = 0; i < n; i++) {
        firmfleet__device_ref__init(&refs[i]);
        firmfleet__serials__init(&ser[i]);
        util_mac_format(ds[i].mac, macs[i]);
        refs[i].mac = macs[i];
        refs[i].version = (char *)(uintptr_t)(ds[i].version ? ds[i].version : "");
        refs[i].ip = (char *)(uintptr_t)(ds[i].ip ? ds[i].ip : "");
        ser[i].firmware = (char *)(uintptr_t)(ds[i].serial_fw ? ds[i].serial_fw : "");
        refs[i].serials = &ser[i];
        rp[i] = &refs[i];
    }
    sc.devices = rp;
    sc.n_devices = n;
    Firmfleet__Profile pr[2], *pp[2];
    firmfleet__profile__init(&pr[0]);
    firmfleet__profile__init(&pr[1]);
    pr[0].name = "broken";
    pr[0].json = "{\"name\": \"broken\", \"recognise\": [\"nonsense:1\"], \"typo\": 1}";
    pr[1].name = "testphone";
    pr[1].json = (char *)(uintptr_t)s_profile_json;
    pp[0] = &pr[0];
    pp[1] = &pr[1];
    sc.profiles = bad_profile ? pp : pp + 1;
    sc.n_profiles = bad_profile ? 2 : 1;
    agent_on_site_config(f->a, &sc);
    free(refs);
    free(rp);
    free(ser);
    free(macs);
    assert_non_null(agent_config(f->a));
    assert_int_equal(agent_config(f->a)->generation, f->gen);
}

/* n generated devices at address ip, on version 1.0, MACs 02:00:00:5f:HH:LL
 * (apart from M1..M4); macs and ds are the caller's, n entries each. */
static void s_devices(size_t n, const char *ip, uint8_t (*macs)[6], struct devspec *ds)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t m[6] = {0x02, 0, 0, 0x5f, (uint8_t)(i >> 8), (uint8_t)i};
        memcpy(macs[i], m, 6);
        ds[i] = (struct devspec){macs[i], "1.0", "", ip};
    }
}

struct asgspec {
    uint64_t rollout;
    const char *window;
    uint32_t grace, concurrency, verify, spread;
    int fresh;
    int no_version; /* Assignment.version "" */
};

static uint8_t s_sha[32];

static int s_assign(struct fx *f, const uint8_t mac[6], const struct asgspec *sp)
{
    char macs[18];
    util_mac_format(mac, macs);
    Firmfleet__Assignment as = FIRMFLEET__ASSIGNMENT__INIT;
    Firmfleet__ImageRef img = FIRMFLEET__IMAGE_REF__INIT, *ip = &img;
    Firmfleet__Serials target = FIRMFLEET__SERIALS__INIT;
    memset(s_sha, 0x11, sizeof s_sha);
    img.sha256.data = s_sha;
    img.sha256.len = 32;
    img.size = 10;
    img.name = "fw-2.0.bin";
    target.firmware = "fw-2.0";
    as.mac = macs;
    as.firmware = "test/2.0";
    as.files = &ip;
    as.n_files = 1;
    as.rollout_id = sp->rollout;
    as.version = sp->no_version ? "" : "2.0";
    as.profile = "testphone";
    as.window = (char *)(uintptr_t)(sp->window ? sp->window : WINDOW);
    as.boot_grace_s = sp->grace;
    as.stage_fresh = sp->fresh != 0;
    as.site_concurrency = sp->concurrency;
    as.target = &target;
    as.spread_s = sp->spread;
    as.verify_s = sp->verify;
    return agent_apply_assignment(f->a, &as);
}

/* ---- observations ---- */

static int s_rule(void *arg, const struct dhcpopt_rule *r)
{
    const struct dhcp_facts *fa = arg;
    uint8_t v[DHCPOPT_VALUE_MAX];
    memcpy(v, r->value, r->len);
    Firmfleet__MatchRule mr = FIRMFLEET__MATCH_RULE__INIT;
    mr.kind = (Firmfleet__MatchRule__Kind)r->kind;
    mr.value.data = v;
    mr.value.len = r->len;
    mr.ignore_trailing_nul = r->ignore_trailing_nul != 0;
    mr.enterprise = r->enterprise;
    return dhcp_rule_match(&mr, fa);
}

/* A DHCP packet from mac with option 60 = vendor. */
static void s_dhcp(struct fx *f, const uint8_t mac[6], const char *vendor, int boot)
{
    struct dhcp_facts fa;
    memset(&fa, 0, sizeof fa);
    fa.mac = mac;
    fa.vendor.p = (const uint8_t *)vendor;
    fa.vendor.len = (uint8_t)strlen(vendor);
    struct profile_evidence e = {
        .mac = mac,
        .vendor = (const uint8_t *)vendor,
        .vendor_len = strlen(vendor),
        .dhcp_rule = s_rule,
        .dhcp_arg = &fa,
    };
    prov_observe(f->a, &e, boot, 0);
}

static const char *s_state(struct fx *f, const uint8_t mac[6])
{
    static struct journal_device d;
    if (prov_device_get(f->a, mac, &d) != 1)
        return "(none)";
    return d.state;
}

/* Commits the turn like the loop does. */
static void s_turn(struct fx *f)
{
    uv_run(&f->a->loop, UV_RUN_NOWAIT);
}

/* ---- events ---- */

struct evq {
    const char *kind, *mac, *has;
    int n;
    char last[1024];
};

static int s_ev(void *arg, uint64_t seq, const uint8_t *payload, size_t len)
{
    (void)seq;
    struct evq *q = arg;
    Firmfleet__DeviceEvent *ev = firmfleet__device_event__unpack(NULL, len, payload);
    if (ev == NULL)
        return 0;
    if (strcmp(ev->kind, q->kind) == 0 && (q->mac == NULL || strcmp(ev->mac, q->mac) == 0) &&
        (q->has == NULL || strstr(ev->detail, q->has) != NULL)) {
        q->n++;
        snprintf(q->last, sizeof q->last, "%s", ev->detail);
    }
    firmfleet__device_event__free_unpacked(ev, NULL);
    return 0;
}

static int s_events(struct fx *f, const char *kind, const uint8_t *mac, const char *has, char *last,
                    size_t n)
{
    char macs[18];
    if (mac)
        util_mac_format(mac, macs);
    struct evq q = {.kind = kind, .mac = mac ? macs : NULL, .has = has};
    journal_iter_from(f->a->jr, 1, journal_last_seq(f->a->jr), 100000, s_ev, &q);
    if (last)
        snprintf(last, n, "%s", q.last);
    return q.n;
}

static void s_cache_image(struct fx *f)
{
    char hex[65], path[512];
    memset(s_sha, 0x11, sizeof s_sha);
    util_hex(s_sha, 32, hex);
    snprintf(path, sizeof path, "%s/cache", f->sdir);
    util_mkdir_p(path, 0750);
    snprintf(path, sizeof path, "%s/cache/%s", f->sdir, hex);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("0123456789", fp);
    fclose(fp);
}

static int s_fetch(struct fx *f, const uint8_t mac[6], const char *name, struct files_src *src)
{
    struct prov_fctx fc = {.name = name, .mac = mac, .local_ip_be = htonl(0xC6123C01)};
    memset(src, 0, sizeof *src);
    src->fd = -1;
    return prov_file_open(f->a, &fc, src);
}

/* ---- tests ---- */

static void test_window_and_path(void **state)
{
    struct fx *f = *state;
    struct devspec ds[] = {{M1, "1.0", "fw-1.0", NULL}};
    s_config(f, ds, 1, 1); /* with a broken profile next to the good one */
    s_cache_image(f);
    s_dhcp(f, M1, "TestPhone/1.0 model=TP1", 1);
    struct journal_device d;
    assert_int_equal(prov_device_get(f->a, M1, &d), 1);
    assert_string_equal(d.profile, "testphone");
    assert_string_equal(d.stage, "app");
    assert_string_equal(d.version, "1.0");
    assert_string_equal(d.model, "TP1");
    assert_int_equal(
        s_events(f, "device.version", M1, "version=1.0 profile=testphone stage=app", NULL, 0), 1);
    /* the profile's DHCP options reach the device */
    const struct dhcpopt *opts[8];
    size_t no = prov_dhcp_options(f->a, M1, opts, 8);
    assert_int_equal(no, 1);
    assert_int_equal(opts[0]->code, 66);

    /* outside the window: waiting, once, however many ticks and packets */
    struct asgspec sp = {.rollout = 7};
    assert_int_equal(s_assign(f, M1, &sp), 0);
    for (int i = 0; i < 5; i++) {
        prov_tick(f->a);
        s_dhcp(f, M1, "TestPhone/1.0 model=TP1", 0);
    }
    s_turn(f);
    assert_string_equal(s_state(f, M1), "waiting");
    assert_int_equal(s_events(f, "upgrade.waiting", M1, "rollout=7 reason=window", NULL, 0), 1);
    /* the target is refused while the device may not upgrade, by any name */
    struct files_src src;
    assert_int_equal(s_fetch(f, M1, "fw.bin", &src), -ENOENT);
    assert_int_equal(s_fetch(f, M1, "fw-2.0.bin", &src), -ENOENT);
    /* a hold render shows the running version */
    assert_int_equal(s_fetch(f, M1, "cfg020000000001.xml", &src), 1);
    assert_int_equal(src.size, strlen("v=1.0 at 198.18.60.1\n"));
    assert_memory_equal(src.data, "v=1.0 at 198.18.60.1\n", src.size);
    files_src_close(&src);
    /* not our file: the caller goes on */
    assert_int_equal(s_fetch(f, M1, "other.txt", &src), 0);

    /* the window opens: offered (no address known: restart=none) */
    f->a->clock_offset_s = f->in_window;
    prov_tick(f->a);
    prov_tick(f->a);
    assert_string_equal(s_state(f, M1), "offered");
    assert_int_equal(s_events(f, "upgrade.offered", M1, "rollout=7 restart=none", NULL, 0), 1);
    assert_int_equal(s_fetch(f, M1, "cfg020000000001.xml", &src), 1);
    assert_memory_equal(src.data, "v=2.0 at 198.18.60.1\n", src.size);
    files_src_close(&src);

    /* fetching the image: downloading; whole: installed */
    assert_int_equal(s_fetch(f, M1, "fw.bin", &src), 1);
    assert_true(src.fd >= 0);
    assert_int_equal(src.size, 10);
    files_src_close(&src);
    assert_int_equal(s_fetch(f, M1, "fw.bin", &src), 1); /* again: no second event */
    files_src_close(&src);
    assert_string_equal(s_state(f, M1), "downloading");
    assert_int_equal(s_events(f, "upgrade.downloading", M1, "file=fw-2.0.bin", NULL, 0), 1);
    /* the window closing mid-download does not cut the device off */
    f->a->clock_offset_s = f->out_window;
    prov_tick(f->a);
    assert_string_equal(s_state(f, M1), "downloading");
    prov_transfer_done(f->a, M1, "fw.bin", 10);
    assert_string_equal(s_state(f, M1), "installed");
    assert_int_equal(s_events(f, "upgrade.installed", M1, "file=fw-2.0.bin bytes=10", NULL, 0), 1);
    assert_int_equal(prov_device_get(f->a, M1, &d), 1);
    assert_string_equal(d.installed, "fw-2.0");

    /* a renewal is no reboot; a DISCOVER is, and the version it shows decides */
    s_dhcp(f, M1, "TestPhone/1.0 model=TP1", 0);
    assert_string_equal(s_state(f, M1), "installed");
    s_dhcp(f, M1, "TestPhone/2.0 model=TP1", 1);
    assert_string_equal(s_state(f, M1), "succeeded");
    assert_int_equal(s_events(f, "upgrade.verifying", M1, "rollout=7", NULL, 0), 1);
    assert_int_equal(s_events(f, "upgrade.succeeded", M1, "rollout=7 version=2.0", NULL, 0), 1);
    assert_int_equal(s_events(f, "device.version", M1, "version=2.0", NULL, 0), 1);
    assert_int_equal(prov_device_get(f->a, M1, &d), 1);
    assert_string_equal(d.done_firmware, "fw-2.0");
    /* terminal: ticks and packets change nothing */
    f->a->clock_offset_s = f->in_window;
    prov_tick(f->a);
    s_dhcp(f, M1, "TestPhone/2.0 model=TP1", 1);
    assert_string_equal(s_state(f, M1), "succeeded");
    assert_int_equal(s_events(f, "upgrade.offered", M1, NULL, NULL, 0), 1);
    s_turn(f);

    /* survives a restart of the agent */
    assert_int_equal(s_stop_agent(f), 0);
    assert_int_equal(s_agent(f), 0);
    assert_int_equal(prov_device_get(f->a, M1, &d), 1);
    assert_string_equal(d.state, "succeeded");
    assert_string_equal(d.version, "2.0");
    assert_int_equal(d.rollout_id, 7);

    /* an identical Assignment is a no-op; a new rollout with the same target
     * is skipped by the agent's own record of what succeeded */
    assert_int_equal(s_assign(f, M1, &sp), 0);
    assert_int_equal(s_events(f, "assignment.applied", M1, NULL, NULL, 0), 1);
    sp.rollout = 8;
    assert_int_equal(s_assign(f, M1, &sp), 0);
    assert_string_equal(s_state(f, M1), "skipped");
    assert_int_equal(s_events(f, "upgrade.skipped", M1, "rollout=8 reason=serial", NULL, 0), 1);
    s_turn(f);
}

static void test_failed_and_timeout(void **state)
{
    struct fx *f = *state;
    struct devspec ds[] = {{M1, "1.0", "", NULL}, {M2, "1.0", "", NULL}};
    s_config(f, ds, 2, 0);
    s_cache_image(f);
    f->a->clock_offset_s = f->in_window;
    struct asgspec sp = {.rollout = 9, .verify = 60};
    s_dhcp(f, M1, "TestPhone/1.0 model=TP1", 1);
    s_dhcp(f, M2, "TestPhone/1.0 model=TP1", 1);
    assert_int_equal(s_assign(f, M1, &sp), 0);
    assert_int_equal(s_assign(f, M2, &sp), 0);
    assert_string_equal(s_state(f, M1), "offered");
    assert_string_equal(s_state(f, M2), "offered");
    struct files_src src;
    for (int i = 0; i < 2; i++) {
        const uint8_t *m = i ? M2 : M1;
        assert_int_equal(s_fetch(f, m, "fw-2.0.bin", &src), 1); /* by its own name */
        files_src_close(&src);
        prov_transfer_done(f->a, m, "fw-2.0.bin", 10);
        assert_string_equal(s_state(f, m), "installed");
    }
    /* M1 comes back on the old version */
    s_dhcp(f, M1, "TestPhone/1.0 model=TP1", 1);
    char last[1024];
    assert_string_equal(s_state(f, M1), "failed");
    assert_int_equal(s_events(f, "upgrade.failed", M1, NULL, last, sizeof last), 1);
    assert_non_null(strstr(last, "reason=\"came back on version 1.0\""));
    /* M2 never comes back */
    f->a->clock_offset_s += 61;
    prov_tick(f->a);
    prov_tick(f->a);
    assert_string_equal(s_state(f, M2), "failed");
    assert_int_equal(s_events(f, "upgrade.failed", M2, NULL, last, sizeof last), 1);
    assert_non_null(strstr(last, "reason=\"did not come back within 60s\""));
    s_turn(f);
}

static void test_skips_grace_fresh_concurrency(void **state)
{
    struct fx *f = *state;
    static const uint8_t M3[6] = {0x02, 0, 0, 0, 0, 0x03};
    static const uint8_t M4[6] = {0x02, 0, 0, 0, 0, 0x04};
    struct devspec ds[] = {
        {M1, "1.0", "fw-2.0", NULL}, /* serials already match */
        {M2, "1.0", "", NULL},       /* will show the target version */
        {M3, "", "", NULL},          /* factory-fresh */
        {M4, "1.0", "", NULL},
    };
    s_config(f, ds, 4, 0);
    f->a->clock_offset_s = f->out_window;
    struct asgspec sp = {.rollout = 11};
    assert_int_equal(s_assign(f, M1, &sp), 0);
    assert_string_equal(s_state(f, M1), "skipped");
    assert_int_equal(s_events(f, "upgrade.skipped", M1, "reason=serial", NULL, 0), 1);

    s_dhcp(f, M2, "TestPhone/2.0 model=TP1", 1);
    assert_int_equal(s_assign(f, M2, &sp), 0);
    assert_string_equal(s_state(f, M2), "skipped");
    assert_int_equal(s_events(f, "upgrade.skipped", M2, "reason=version version=2.0", NULL, 0), 1);

    /* fresh and staged: at once, window closed or not, grace or not */
    struct asgspec fresh = {.rollout = 12, .fresh = 1, .grace = 600};
    s_dhcp(f, M3, "TestPhone/1.0 model=TP1", 1);
    assert_int_equal(s_assign(f, M3, &fresh), 0);
    assert_string_equal(s_state(f, M3), "offered");

    /* grace: just booted, window open */
    f->a->clock_offset_s = f->in_window;
    struct asgspec gr = {.rollout = 13, .grace = 600};
    s_dhcp(f, M4, "TestPhone/1.0 model=TP1", 1);
    assert_int_equal(s_assign(f, M4, &gr), 0);
    prov_tick(f->a);
    assert_string_equal(s_state(f, M4), "waiting");
    assert_int_equal(s_events(f, "upgrade.waiting", M4, "reason=grace", NULL, 0), 1);
    f->a->clock_offset_s += 601;
    prov_tick(f->a);
    assert_string_equal(s_state(f, M4), "offered");
    s_turn(f);
}

static void test_concurrency_cancel_restart(void **state)
{
    struct fx *f = *state;
    /* a UDP "phone" on loopback answering NOTIFY with 200 */
    int ph = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in pa = {.sin_family = AF_INET};
    pa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ph, (struct sockaddr *)&pa, sizeof pa), 0);
    socklen_t pl = sizeof pa;
    getsockname(ph, (struct sockaddr *)&pa, &pl);
    f->a->sip_port = ntohs(pa.sin_port);

    struct devspec ds[] = {{M1, "1.0", "", "127.0.0.1"}, {M2, "1.0", "", "127.0.0.1"}};
    s_config(f, ds, 2, 0);
    f->a->clock_offset_s = f->in_window;
    s_dhcp(f, M1, "TestPhone/1.0 model=TP1", 1);
    s_dhcp(f, M2, "TestPhone/1.0 model=TP1", 1);
    struct asgspec sp = {.rollout = 21, .concurrency = 1};
    assert_int_equal(s_assign(f, M1, &sp), 0);
    assert_int_equal(s_assign(f, M2, &sp), 0);
    for (int i = 0; i < 3; i++)
        prov_tick(f->a);
    assert_string_equal(s_state(f, M1), "offered");
    assert_string_equal(s_state(f, M2), "waiting");
    assert_int_equal(s_events(f, "upgrade.waiting", M2, "reason=concurrency", NULL, 0), 1);
    assert_int_equal(s_events(f, "upgrade.offered", M1, "restart=sent", NULL, 0), 1);
    assert_int_equal(prov_restarts_sent(f->a), 1);

    /* the phone answers; device.restart ok=1 follows */
    char buf[2048];
    ssize_t n = -1;
    for (int i = 0; i < 5000 && n <= 0; i++) { /* at most ~10 s: a loaded machine */
        uv_run(&f->a->loop, UV_RUN_NOWAIT);
        n = recvfrom(ph, buf, sizeof buf - 1, MSG_DONTWAIT, (struct sockaddr *)&pa, &pl);
        if (n <= 0)
            usleep(2000);
    }
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\r\nEvent: check-sync;reboot=true\r\n"));
    char resp[1024], via[256], cid[128], cseq[64];
    const char *v = strstr(buf, "Via: "), *c = strstr(buf, "Call-ID: "), *q = strstr(buf, "CSeq: ");
    snprintf(via, sizeof via, "%.*s", (int)(strstr(v, "\r\n") - v), v);
    snprintf(cid, sizeof cid, "%.*s", (int)(strstr(c, "\r\n") - c), c);
    snprintf(cseq, sizeof cseq, "%.*s", (int)(strstr(q, "\r\n") - q), q);
    int k = snprintf(resp, sizeof resp, "SIP/2.0 200 OK\r\n%s\r\n%s\r\n%s\r\n\r\n", via, cid, cseq);
    sendto(ph, resp, (size_t)k, 0, (struct sockaddr *)&pa, pl);
    for (int i = 0; i < 5000 && s_events(f, "device.restart", M1, NULL, NULL, 0) == 0; i++) {
        uv_run(&f->a->loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    assert_int_equal(s_events(f, "device.restart", M1, "ok=1 status=200 rollout=21", NULL, 0), 1);
    close(ph);

    /* cancel M1: its state clears, its slot frees, M2 goes */
    char macs[18];
    util_mac_format(M1, macs);
    Firmfleet__Cancel cn = FIRMFLEET__CANCEL__INIT;
    cn.mac = macs;
    cn.rollout_id = 21;
    assert_int_equal(agent_apply_cancel(f->a, &cn), 0);
    assert_string_equal(s_state(f, M1), "");
    struct files_src src;
    assert_int_equal(s_fetch(f, M1, "fw.bin", &src), -ENOENT);
    prov_tick(f->a);
    assert_string_equal(s_state(f, M2), "offered");

    /* a window the agent cannot read: the message is refused, nothing changes */
    struct asgspec bad = {.rollout = 22, .window = "someday 25:00-26:00"};
    assert_int_equal(s_assign(f, M2, &bad), -EINVAL);
    assert_string_equal(s_state(f, M2), "offered");
    s_turn(f);
}

/* An Assignment without a version: verified against the installed stem,
 * which a profile shows through {{installed}}. */
static void test_no_version(void **state)
{
    struct fx *f = *state;
    static const char *json =
        "{\"name\": \"stemphone\", \"recognise\": [\"vendor-prefix:StemPhone\"],"
        " \"version\": [{\"from\": \"vendor\", \"regex\": \"^StemPhone/old$\", \"value\": \"old\"},"
        "  {\"from\": \"file\", \"regex\": \"^boot\\\\.cfg$\", \"value\": \"{{installed}}\"}],"
        " \"final_image\": \"fw-*.bin\"}";
    Firmfleet__SiteConfig sc = FIRMFLEET__SITE_CONFIG__INIT;
    sc.site = "berlin";
    sc.tz = "";
    sc.generation = ++f->gen;
    Firmfleet__Profile pr = FIRMFLEET__PROFILE__INIT, *pp = &pr;
    pr.name = "stemphone";
    pr.json = (char *)(uintptr_t)json;
    sc.profiles = &pp;
    sc.n_profiles = 1;
    agent_on_site_config(f->a, &sc);
    s_cache_image(f);
    s_dhcp(f, M1, "StemPhone/old", 1);
    struct journal_device d;
    assert_int_equal(prov_device_get(f->a, M1, &d), 1);
    assert_string_equal(d.version, "old");
    struct asgspec sp = {.rollout = 41,
                         .window = "hours 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,"
                                   "16,17,18,19,20,21,22,23",
                         .no_version = 1};
    assert_int_equal(s_assign(f, M1, &sp), 0);
    assert_string_equal(s_state(f, M1), "offered");
    struct files_src src;
    assert_int_equal(s_fetch(f, M1, "fw-2.0.bin", &src), 1);
    files_src_close(&src);
    prov_transfer_done(f->a, M1, "fw-2.0.bin", 10);
    s_dhcp(f, M1, "StemPhone/new", 1); /* shows no version */
    assert_string_equal(s_state(f, M1), "verifying");
    struct profile_evidence e = {.mac = M1, .file = "boot.cfg"};
    prov_observe(f->a, &e, 0, 0);
    assert_string_equal(s_state(f, M1), "succeeded");
    assert_int_equal(s_events(f, "upgrade.succeeded", M1, "version=fw-2.0", NULL, 0), 1);
    s_turn(f);
}

static void test_spread_and_tz(void **state)
{
    struct fx *f = *state;
    struct devspec ds[] = {{M1, "1.0", "", NULL}};
    s_config(f, ds, 1, 0);
    /* 10 minutes into the window; a spread of 2 h starts this MAC only when
     * its offset is at most 10 minutes */
    f->a->clock_offset_s = f->in_window;
    struct asgspec sp = {.rollout = 31, .spread = 7200};
    assert_int_equal(s_assign(f, M1, &sp), 0);
    prov_tick(f->a);
    uint32_t off = window_spread(M1, 7200);
    assert_string_equal(s_state(f, M1), off <= 600 ? "offered" : "waiting");
    s_turn(f);
}

/* The phone side of one NOTIFY: answers buf with 200 (its Via, Call-ID and
 * CSeq echoed) and copies its Call-ID into cid. 0, or -1 when buf is not a
 * NOTIFY with those headers. */
static int s_sip_ok(int ph, const char *buf, const struct sockaddr_in *to, socklen_t tl, char *cid,
                    size_t n)
{
    const char *h[3] = {strstr(buf, "\r\nVia: "), strstr(buf, "\r\nCall-ID: "),
                        strstr(buf, "\r\nCSeq: ")};
    int len[3];
    if (strncmp(buf, "NOTIFY ", 7) != 0)
        return -1;
    for (int i = 0; i < 3; i++) {
        const char *e = h[i] ? strstr(h[i] + 2, "\r\n") : NULL;
        if (e == NULL)
            return -1;
        h[i] += 2;
        len[i] = (int)(e - h[i]);
    }
    char resp[1024];
    int k = snprintf(resp, sizeof resp, "SIP/2.0 200 OK\r\n%.*s\r\n%.*s\r\n%.*s\r\n\r\n", len[0],
                     h[0], len[1], h[1], len[2], h[2]);
    if (k < 0 || (size_t)k >= sizeof resp)
        return -1;
    sendto(ph, resp, (size_t)k, 0, (const struct sockaddr *)to, tl);
    snprintf(cid, n, "%.*s", len[1] - 9, h[1] + 9); /* after "Call-ID: " */
    return 0;
}

/* Per generated device (s_devices), from its events: device.restart ok=1
 * and upgrade.offered; every device.restart ok=0 of anyone. */
struct restarts {
    size_t n;
    int *ok, *offered;
    int failed;
};

static int s_ev_restarts(void *arg, uint64_t seq, const uint8_t *payload, size_t len)
{
    (void)seq;
    struct restarts *r = arg;
    Firmfleet__DeviceEvent *ev = firmfleet__device_event__unpack(NULL, len, payload);
    if (ev == NULL)
        return 0;
    uint8_t m[6];
    size_t i = SIZE_MAX;
    if (ev->mac && util_mac_parse(ev->mac, m) == 0 && m[0] == 0x02 && m[1] == 0 && m[2] == 0 &&
        m[3] == 0x5f)
        i = (size_t)m[4] << 8 | m[5];
    if (strcmp(ev->kind, "device.restart") == 0) {
        if (strncmp(ev->detail, "ok=1 status=200 ", 16) != 0)
            r->failed++;
        else if (i < r->n)
            r->ok[i]++;
    } else if (strcmp(ev->kind, "upgrade.offered") == 0 && i < r->n) {
        r->offered[i]++;
    }
    firmfleet__device_event__free_unpacked(ev, NULL);
    return 0;
}

/* More devices need their restart NOTIFY at once than the sender has slots
 * (SIPN_MAX_PENDING in flight): the overflow is deferred, neither failed nor
 * lost, and as the phone answers and slots free up, later ticks send every
 * deferred NOTIFY, each device's exactly once. */
static void test_restart_deferred(void **state)
{
    struct fx *f = *state;
    enum { N = SIPN_MAX_PENDING + 44 };
    int ph = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(ph >= 0);
    int rcvbuf = 1 << 20; /* a burst of N NOTIFYs; drops are retransmitted anyway */
    setsockopt(ph, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in pa = {.sin_family = AF_INET};
    pa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ph, (struct sockaddr *)&pa, sizeof pa), 0);
    socklen_t pl = sizeof pa;
    getsockname(ph, (struct sockaddr *)&pa, &pl);
    f->a->sip_port = ntohs(pa.sin_port);

    static uint8_t macs[N][6];
    static struct devspec ds[N];
    s_devices(N, "127.0.0.1", macs, ds);
    s_config(f, ds, N, 0);
    f->a->clock_offset_s = f->in_window;

    /* warnings go to a file until the phone is done: a deferred NOTIFY must
     * not be reported as failed (no assert may fire while stderr is there) */
    char logpath[128];
    snprintf(logpath, sizeof logpath, "%s/warn.log", f->dir);
    enum log_level level = log_get_level();
    if (level > LOG_LEVEL_WARN)
        log_set_level(LOG_LEVEL_WARN);
    fflush(stderr);
    int saved = dup(2), lf = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && lf >= 0);
    dup2(lf, 2);
    close(lf);

    /* every Assignment offers at once: SIPN_MAX_PENDING NOTIFYs leave, the
     * rest wait; ticks while nothing was answered send nothing more */
    struct asgspec sp = {.rollout = 51};
    int assign_bad = 0, not_offered = 0;
    for (size_t i = 0; i < N; i++)
        assign_bad += s_assign(f, macs[i], &sp) != 0;
    for (size_t i = 0; i < N; i++)
        not_offered += strcmp(s_state(f, macs[i]), "offered") != 0;
    uint64_t sent0 = prov_restarts_sent(f->a), deferred0 = prov_restarts_deferred(f->a);
    for (int i = 0; i < 3; i++)
        prov_tick(f->a);
    struct sipn_stats st0, st;
    prov_sip_stats(f->a, &st0);
    uint64_t sent1 = prov_restarts_sent(f->a), deferred1 = prov_restarts_deferred(f->a);

    /* the phone answers whatever arrives; the agent's loop runs, with a
     * tick every 10 turns, until every NOTIFY was answered (at most ~20 s:
     * a loaded machine), or until 5 ticks in a row found nothing in flight
     * (nothing more will be sent: the deferred ones were lost) */
    static char seen[N][96];
    size_t n_seen = 0;
    int junk = 0, idle = 0;
    memset(&st, 0, sizeof st);
    for (int i = 0; i < 10000 && st.ok < N && idle < 5; i++) {
        char buf[2048], cid[96];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n;
        while ((n = recvfrom(ph, buf, sizeof buf - 1, MSG_DONTWAIT, (struct sockaddr *)&from,
                             &fl)) > 0) {
            buf[n] = '\0';
            if (s_sip_ok(ph, buf, &from, fl, cid, sizeof cid) < 0) {
                junk++;
            } else {
                size_t k = 0;
                while (k < n_seen && strcmp(seen[k], cid) != 0)
                    k++;
                if (k == n_seen && n_seen < N)
                    snprintf(seen[n_seen++], sizeof seen[0], "%s", cid);
                else if (k == n_seen)
                    junk++; /* more transactions than devices */
            }
            fl = sizeof from;
        }
        uv_run(&f->a->loop, UV_RUN_NOWAIT);
        if (i % 10 == 0) {
            prov_tick(f->a);
            prov_sip_stats(f->a, &st);
            idle = st.ok + st.failed == st.sent ? idle + 1 : 0;
        }
        if (st.ok < N)
            usleep(2000);
    }
    /* settled: more ticks send nothing */
    for (int i = 0; i < 3; i++)
        prov_tick(f->a);
    uv_run(&f->a->loop, UV_RUN_NOWAIT);
    struct sipn_stats st2;
    prov_sip_stats(f->a, &st2);
    s_turn(f);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    log_set_level(level);
    close(ph);
    FILE *fp = fopen(logpath, "r");
    assert_non_null(fp);
    char line[1024];
    int failed_lines = 0;
    while (fgets(line, sizeof line, fp) != NULL)
        if (strstr(line, "restart_failed") != NULL || strstr(line, "level=error") != NULL) {
            if (failed_lines++ < 3)
                fputs(line, stdout);
        }
    fclose(fp);

    assert_int_equal(assign_bad, 0);
    assert_int_equal(not_offered, 0);
    assert_int_equal(sent0, SIPN_MAX_PENDING);
    assert_int_equal(deferred0, N - SIPN_MAX_PENDING);
    assert_int_equal(sent1, SIPN_MAX_PENDING);
    assert_int_equal(deferred1, N - SIPN_MAX_PENDING);
    assert_int_equal(st0.sent, SIPN_MAX_PENDING);
    assert_int_equal(failed_lines, 0);
    /* all answered, each device once: N transactions on the wire, one
     * successful device.restart per device, no failed one */
    assert_int_equal(st.ok, N);
    assert_int_equal(st.sent, N);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(st2.sent, N);
    assert_int_equal(junk, 0);
    assert_int_equal(n_seen, N);
    assert_int_equal(prov_restarts_sent(f->a), N);
    assert_int_equal(prov_restarts_deferred(f->a), N - SIPN_MAX_PENDING);
    static int ok[N], offered[N];
    memset(ok, 0, sizeof ok);
    memset(offered, 0, sizeof offered);
    struct restarts r = {.n = N, .ok = ok, .offered = offered};
    journal_iter_from(f->a->jr, 1, journal_last_seq(f->a->jr), 100000, s_ev_restarts, &r);
    assert_int_equal(r.failed, 0);
    for (size_t i = 0; i < N; i++) {
        if (ok[i] != 1 || offered[i] != 1)
            fail_msg("device %zu: %d successful restarts, %d offers (want 1 and 1)", i, ok[i],
                     offered[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_window_and_path, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failed_and_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_skips_grace_fresh_concurrency, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_concurrency_cancel_restart, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_spread_and_tz, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_no_version, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restart_deferred, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
