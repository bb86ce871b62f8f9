/* test_profile.c: vendor profiles (lib/profile): every shipped profile in
 * profiles/ parses, and each family answers realistic evidence as the agent
 * will ask it (stage, version, model, which file, its exact bytes in upgrade
 * and hold mode); template rules (lone '{', innovaphone's #m kept, URL
 * encoding); the tar header check on built headers and on a Cisco .bin; a
 * battery of bad profiles, each refused with its reason on one line.
 * Runs from the repository root (tests/run.sh cds there).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"
#include "util.h"

/* ---- helpers ---- */

static profile_t *s_load(const char *path)
{
    char *text = NULL, err[512] = "";
    size_t len = 0;
    int rc = util_read_file(path, PROFILE_JSON_MAX + 1, &text, &len);
    if (rc != 0)
        fail_msg("%s: cannot read (%d); tests must run from the repository root", path, rc);
    profile_t *p = NULL;
    rc = profile_parse(text, len, &p, err, sizeof err);
    free(text);
    if (rc != 0)
        fail_msg("%s refused: %s", path, err);
    return p;
}

static profile_t *s_parse(const char *json)
{
    char err[512] = "";
    profile_t *p = NULL;
    if (profile_parse(json, strlen(json), &p, err, sizeof err) != 0)
        fail_msg("profile refused: %s\n%s", err, json);
    return p;
}

/* A DHCP packet as the agent's classifier sees it. */
struct fakepkt {
    const uint8_t *opt60;
    size_t opt60_len;
    uint32_t enterprise; /* 0: none */
    const uint8_t *mac;
};

/* The classifier's rule semantics over a fake packet (dhcpopt.h). */
static int s_match(void *arg, const struct dhcpopt_rule *r)
{
    const struct fakepkt *k = arg;
    const uint8_t *v = k->opt60;
    size_t n = k->opt60_len;
    switch (r->kind) {
    case DHCPOPT_RULE_MAC_OUI: return k->mac && memcmp(k->mac, r->value, 3) == 0;
    case DHCPOPT_RULE_ENTERPRISE: return k->enterprise == r->enterprise;
    case DHCPOPT_RULE_USER_CLASS: return 0;
    default: break;
    }
    if (v == NULL)
        return 0;
    if (r->ignore_trailing_nul && n > 0 && v[n - 1] == 0)
        n--;
    switch (r->kind) {
    case DHCPOPT_RULE_VENDOR_EXACT: return n == r->len && memcmp(v, r->value, n) == 0;
    case DHCPOPT_RULE_VENDOR_PREFIX: return n >= r->len && memcmp(v, r->value, r->len) == 0;
    case DHCPOPT_RULE_VENDOR_SUFFIX:
        return n >= r->len && memcmp(v + n - r->len, r->value, r->len) == 0;
    case DHCPOPT_RULE_VENDOR_SUBSTRING:
        for (size_t i = 0; i + r->len <= n; i++)
            if (memcmp(v + i, r->value, r->len) == 0)
                return 1;
        return 0;
    default: return 0;
    }
}

static struct profile_evidence s_dhcp(struct fakepkt *k)
{
    struct profile_evidence e = {0};
    e.mac = k->mac;
    e.vendor = k->opt60;
    e.vendor_len = k->opt60_len;
    e.dhcp_rule = s_match;
    e.dhcp_arg = k;
    return e;
}

static struct profile_evidence s_file(const char *name, const uint8_t *mac)
{
    struct profile_evidence e = {0};
    e.mac = mac;
    e.file = name;
    return e;
}

static struct profile_evidence s_ua(const char *ua)
{
    struct profile_evidence e = {0};
    e.user_agent = ua;
    return e;
}

/* Renders f and returns a NUL-terminated copy (caller frees), failing the
 * test on any error. */
static char *s_render(const struct profile_file *f, const struct profile_vars *v)
{
    uint8_t *out = NULL;
    size_t len = 0;
    assert_non_null(f);
    int rc = profile_render(f, v, &out, &len);
    if (rc != 0)
        fail_msg("render: %d", rc);
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, out, len);
    s[len] = '\0';
    assert_int_equal(strlen(s), len);
    free(out);
    return s;
}

static void s_has(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("'%s' not in:\n%s", needle, hay);
}

static const uint8_t MAC1[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0xaa};

static struct profile_vars s_vars(int upgrade)
{
    struct profile_vars v = {0};
    v.mac = MAC1;
    v.ip = "198.18.0.50";
    v.model = "";
    v.serial = "";
    v.site = "berlin";
    v.server_ip = "198.18.0.1";
    v.http_port = 8080;
    v.upgrade = upgrade;
    v.version = "";
    v.firmware = "";
    v.stage = "";
    v.serial_config = "";
    v.serial_firmware = "";
    v.serial_boot = "";
    v.window_hours = "";
    v.grace_min = 6;
    return v;
}

/* ---- shipped profiles ---- */

static void test_shipped_parse(void **state)
{
    (void)state;
    static const char *const want[] = {"cisco-79xx", "cisco-aironet", "digium",
                                       "innovaphone", "polycom",      "yealink"};
    int seen[6] = {0}, n = 0;
    DIR *d = opendir("profiles");
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "profiles/%s", de->d_name);
        profile_t *p = s_load(path);
        n++;
        /* the file name is the profile name: `profile add` keeps them apart */
        if (strncmp(de->d_name, profile_name(p), l - 5) != 0 || strlen(profile_name(p)) != l - 5)
            fail_msg("%s holds profile '%s'", path, profile_name(p));
        assert_true(profile_description(p)[0] != '\0');
        for (int i = 0; i < 6; i++)
            if (strcmp(profile_name(p), want[i]) == 0)
                seen[i] = 1;
        profile_free(p);
    }
    closedir(d);
    for (int i = 0; i < 6; i++)
        if (!seen[i])
            fail_msg("profiles/%s.json missing", want[i]);
    assert_true(n >= 6);
}

/* Every ```json example of profiles/README.md is a profile that loads. */
static void test_readme_examples(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(util_read_file("profiles/README.md", 1 << 20, &text, &len), 0);
    int n = 0;
    for (char *at = strstr(text, "```json\n"); at; at = strstr(at, "```json\n")) {
        at += 8;
        char *end = strstr(at, "```");
        assert_non_null(end);
        char err[512] = "";
        profile_t *p = NULL;
        if (profile_parse(at, (size_t)(end - at), &p, err, sizeof err) != 0)
            fail_msg("README example %d refused: %s", n + 1, err);
        profile_free(p);
        n++;
        at = end + 3;
    }
    free(text);
    assert_true(n >= 2);
}

static const char *const CISCO_IMAGES[] = {"P003-08-12-00.bin", "P003-08-12-00.sbn",
                                           "P0S3-08-12-00.loads", "P0S3-08-12-00.sb2"};

static void test_cisco_79xx(void **state)
{
    (void)state;
    profile_t *p = s_load("profiles/cisco-79xx.json");
    char out[PROFILE_VERSION_MAX + 1];
    uint8_t got[6];
    const uint8_t old[] = "Cisco Systems, Inc. IP Phone"; /* sizeof includes the NUL sent */
    const uint8_t loader[] = "Cisco Systems, Inc. IP Phone CP-7940G";
    int s_old = profile_stage_index(p, "old-image"), s_app = profile_stage_index(p, "app"),
        s_sip = profile_stage_index(p, "sip");
    assert_true(s_old >= 0 && s_app >= 0 && s_sip >= 0);

    /* old image: option 60 with its NUL, no model */
    struct fakepkt k = {old, sizeof old, 0, MAC1};
    struct profile_evidence e = s_dhcp(&k);
    assert_int_equal(profile_recognises(p, &e), 1);
    assert_int_equal(profile_stage(p, &e), s_old);
    assert_int_equal(profile_version(p, &e, "", out, sizeof out), 1);
    assert_string_equal(out, "old-image");
    assert_int_equal(profile_model(p, &e, out, sizeof out), 0);
    assert_string_equal(out, "");
    k.opt60_len = sizeof old - 1; /* without the NUL: the same */
    assert_int_equal(profile_stage(p, &e), s_old);

    /* the loader: model in option 60, no version */
    struct fakepkt kl = {loader, sizeof loader, 0, MAC1};
    e = s_dhcp(&kl);
    assert_int_equal(profile_recognises(p, &e), 1);
    assert_int_equal(profile_stage(p, &e), s_app);
    assert_int_equal(profile_model(p, &e, out, sizeof out), 1);
    assert_string_equal(out, "7940");
    assert_int_equal(profile_version(p, &e, "P0S3-08-12-00", out, sizeof out), 0);

    /* another vendor is not recognised */
    const uint8_t other[] = "Cisco Systems, Inc. IP Phone CP-7941G";
    struct fakepkt ko = {other, sizeof other, 0, MAC1};
    e = s_dhcp(&ko);
    assert_int_equal(profile_recognises(p, &e), 0);
    assert_int_equal(profile_stage(p, &e), -1);

    struct profile_vars v = s_vars(1);
    v.images = CISCO_IMAGES;
    v.n_images = 4;
    v.version = "P0S3-08-12-00";
    v.firmware = "cisco/P0S3-08-12-00";
    v.model = "7940";

    /* OS79XX.TXT: old image only, upgrade only, exactly the loader name */
    const struct profile_file *f = profile_file_find(p, "OS79XX.TXT", MAC1, s_old, 1, got);
    assert_non_null(f);
    assert_int_equal(profile_file_when(f), PROFILE_WHEN_UPGRADE);
    assert_int_equal(profile_file_served(f, 1), 1);
    assert_int_equal(profile_file_served(f, 0), 0);
    char *s = s_render(f, &v);
    assert_string_equal(s, "P003-08-12-00");
    free(s);
    struct profile_vars hold = v;
    hold.upgrade = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(profile_render(f, &hold, &buf, &len), -ENOENT);
    assert_null(buf);
    assert_null(profile_file_find(p, "OS79XX.TXT", MAC1, s_app, 1, got));
    assert_null(profile_file_find(p, "OS79XX.TXT", MAC1, -1, 1, got));
    assert_non_null(profile_file_find(p, "os79xx.txt", MAC1, s_old, 1, got));
    assert_null(profile_file_find(p, "os79xx.txt", MAC1, s_old, 0, got));

    /* XMLDefault.cnf.xml: never to the loader/app or SIP stage */
    assert_null(profile_file_find(p, "XMLDefault.cnf.xml", MAC1, s_app, 1, got));
    assert_null(profile_file_find(p, "XMLDefault.cnf.xml", MAC1, s_sip, 1, got));
    assert_null(profile_file_find(p, "XMLDefault.cnf.xml", MAC1, -1, 1, got));
    f = profile_file_find(p, "XMLDefault.cnf.xml", MAC1, s_old, 1, got);
    assert_non_null(f);
    assert_int_equal(profile_file_when(f), PROFILE_WHEN_UPGRADE);
    s = s_render(f, &v);
    s_has(s, "<loadInformation8 model=\"IP Phone 7940\">P003-08-12-00</loadInformation8>");
    s_has(s, "<loadInformation7 model=\"IP Phone 7960\">P003-08-12-00</loadInformation7>");
    free(s);

    /* SEP<MAC>.cnf.xml: the SIP load, for the device it names, not to old images */
    f = profile_file_find(p, "SEP0011223344AA.cnf.xml", MAC1, s_app, 1, got);
    assert_non_null(f);
    assert_memory_equal(got, MAC1, 6);
    s = s_render(f, &v);
    s_has(s, "<loadInformation model=\"IP Phone 7940\">P0S3-08-12-00</loadInformation>");
    free(s);
    assert_null(profile_file_find(p, "SEP0011223344AB.cnf.xml", MAC1, s_app, 1, got));
    assert_null(profile_file_find(p, "SEP0011223344AA.cnf.xml", MAC1, s_old, 1, got));
    memset(got, 0xee, 6);
    assert_non_null(profile_file_find(p, "SEP0011223344AA.cnf.xml", NULL, s_sip, 1, got));
    assert_memory_equal(got, MAC1, 6);

    /* SIPDefault.cnf: target while upgrading, the running load on hold */
    f = profile_file_find(p, "SIPDefault.cnf", MAC1, s_sip, 1, got);
    assert_non_null(f);
    assert_int_equal(profile_file_when(f), PROFILE_WHEN_ALWAYS);
    s = s_render(f, &v);
    assert_string_equal(s, "image_version: P0S3-08-12-00\n");
    free(s);
    hold.version = "P0S3-08-11-00";
    s = s_render(f, &hold);
    assert_string_equal(s, "image_version: P0S3-08-11-00\n");
    free(s);

    /* SIP<MAC>.cnf: the device runs SIP; version = what it installed */
    e = s_file("SIP0011223344AA.cnf", MAC1);
    assert_int_equal(profile_recognises(p, &e), 1);
    assert_int_equal(profile_stage(p, &e), s_sip);
    assert_int_equal(profile_version(p, &e, "P0S3-08-12-00", out, sizeof out), 1);
    assert_string_equal(out, "P0S3-08-12-00");
    assert_int_equal(profile_version(p, &e, "", out, sizeof out), 0);
    f = profile_file_find(p, "SIP0011223344AA.cnf", MAC1, s_sip, 0, got);
    assert_non_null(f);
    s = s_render(f, &hold);
    s_has(s, "line1_name: 0011223344AA\n");
    s_has(s, "sync: 1\n");
    free(s);

    /* the SIP load's .sb2 is the final image; the .loads is not */
    assert_int_equal(profile_glob(profile_final_image(p), "P0S3-08-12-00.sb2"), 1);
    assert_int_equal(profile_glob(profile_final_image(p), "P0S3-08-12-00.loads"), 0);
    assert_int_equal(profile_glob(profile_final_image(p), "P003-08-12-00.sbn"), 0);
    assert_string_equal(profile_image_check(p), "none");
    assert_non_null(profile_restart(p));
    assert_string_equal(profile_restart(p)->event, "check-sync");
    assert_string_equal(profile_restart(p)->content_type, "");

    const struct dhcpopt *o[8];
    size_t no = profile_dhcp_options(p, s_old, o, 8);
    assert_int_equal(no, 2);
    assert_int_equal(o[0]->code, 150);
    assert_int_equal(o[0]->fill, DHCPOPT_FILL_SERVER_IP);
    profile_free(p);
}

static void test_polycom(void **state)
{
    (void)state;
    profile_t *p = s_load("profiles/polycom.json");
    char out[PROFILE_VERSION_MAX + 1];
    uint8_t got[6];
    /* binary option 60: enterprise 13885 then sub-options */
    static const uint8_t opt60[] = {0x00, 0x00, 0x36, 0x3d, 0x12, 0x01, 0x07, 'P', 'o', 'l', 'y',
                                    'c',  'o',  'm',  0x02, 0x07, 'V',  'V',  'X', '-', '4', '0', '0', 0xff};
    const uint8_t mac[6] = {0x00, 0x04, 0xf2, 0xaa, 0xbb, 0xcc};
    struct fakepkt k = {opt60, sizeof opt60, 13885, mac};
    struct profile_evidence e = s_dhcp(&k);
    assert_int_equal(profile_recognises(p, &e), 1);
    k.enterprise = 0;
    assert_int_equal(profile_recognises(p, &e), 1); /* the OUI */
    k.mac = MAC1;
    assert_int_equal(profile_recognises(p, &e), 0);

    e = s_ua("FileTransport PolycomVVX-VVX_400-UA/4.1.4.0296");
    assert_int_equal(profile_recognises(p, &e), 1);
    assert_int_equal(profile_version(p, &e, "", out, sizeof out), 1);
    assert_string_equal(out, "4.1.4.0296");
    assert_int_equal(profile_model(p, &e, out, sizeof out), 1);
    assert_string_equal(out, "VVX_400");
    e = s_ua("FileTransport PolycomSoundPointIP-SPIP_650-UA/3.2.3.1734");
    assert_int_equal(profile_version(p, &e, "", out, sizeof out), 1);
    assert_string_equal(out, "3.2.3.1734");
    /* a short buffer cuts, never overflows */
    char tiny[4];
    assert_int_equal(profile_version(p, &e, "", tiny, sizeof tiny), 1);
    assert_string_equal(tiny, "3.2");

    static const char *const images[] = {"sip.ver", "3111-46135-002.sip.ld"};
    struct profile_vars v = s_vars(1);
    v.mac = mac;
    v.images = images;
    v.n_images = 2;
    const struct profile_file *f = profile_file_find(p, "000000000000.cfg", NULL, -1, 1, got);
    assert_non_null(f);
    assert_memory_equal(got, "\0\0\0\0\0\0", 6);
    assert_ptr_equal(profile_file_find(p, "000000000000.cfg", mac, -1, 1, got), f);
    char *s = s_render(f, &v);
    s_has(s, "APP_FILE_PATH=\"3111-46135-002.sip.ld\"");
    s_has(s, "CONFIG_FILES=\"[PHONE_MAC_ADDRESS]-firmfleet.cfg\"");
    free(s);
    struct profile_vars hold = v;
    hold.upgrade = 0;
    s = s_render(f, &hold);
    s_has(s, "APP_FILE_PATH=\"\"");
    free(s);

    f = profile_file_find(p, "0004f2aabbcc.cfg", NULL, -1, 0, got);
    assert_non_null(f);
    assert_memory_equal(got, mac, 6);
    s = s_render(f, &v);
    s_has(s, "CONFIG_FILES=\"0004f2aabbcc-firmfleet.cfg\"");
    s_has(s, "APP_FILE_PATH=\"3111-46135-002.sip.ld\"");
    free(s);
    assert_null(profile_file_find(p, "0004F2AABBCC.cfg", NULL, -1, 0, got));
    assert_non_null(profile_file_find(p, "0004F2AABBCC.cfg", NULL, -1, 1, got));
    f = profile_file_find(p, "0004f2aabbcc-firmfleet.cfg", mac, -1, 0, got);
    assert_non_null(f);
    s = s_render(f, &hold);
    s_has(s, "checkSync.alwaysReboot=\"1\"");
    free(s);
    assert_int_equal(profile_glob(profile_final_image(p), "3111-46135-002.sip.ld"), 1);
    assert_string_equal(profile_restart(p)->event, "check-sync");
    profile_free(p);
}

static void test_digium(void **state)
{
    (void)state;
    profile_t *p = s_load("profiles/digium.json");
    char out[PROFILE_VERSION_MAX + 1];
    uint8_t got[6];
    const uint8_t opt60[] = "digium_D40_1_4_0_0_57389";
    struct fakepkt k = {opt60, sizeof opt60 - 1, 0, MAC1};
    struct profile_evidence e = s_dhcp(&k);
    assert_int_equal(profile_recognises(p, &e), 1);
    assert_int_equal(profile_model(p, &e, out, sizeof out), 1);
    assert_string_equal(out, "D40");
    assert_int_equal(profile_version(p, &e, "", out, sizeof out), 1);
    assert_string_equal(out, "1_4_0_0_57389");
    k.opt60_len = sizeof opt60; /* with a NUL: the same version */
    assert_int_equal(profile_version(p, &e, "", out, sizeof out), 1);
    assert_string_equal(out, "1_4_0_0_57389");

    static const char *const images[] = {"1_4_1_0_60000_D40_firmware.eff",
                                         "1_4_1_0_60000_D70_firmware.eff"};
    struct profile_vars v = s_vars(1);
    v.images = images;
    v.n_images = 2;
    v.model = "D70";
    v.version = "1_4_1_0_60000";
    const struct profile_file *f = profile_file_find(p, "0011223344aa.cfg", MAC1, -1, 1, got);
    assert_non_null(f);
    char *s = s_render(f, &v);
    s_has(s, "<firmwares>\n    <firmware model=\"D70\" version=\"1_4_1_0_60000\" "
             "url=\"http://198.18.0.1:8080/1_4_1_0_60000_D70_firmware.eff\"/>\n  </firmwares>");
    free(s);
    v.upgrade = 0;
    s = s_render(f, &v);
    assert_null(strstr(s, "<firmware"));
    free(s);
    assert_string_equal(profile_restart(p)->event, "check-sync");
    profile_free(p);
}

static void test_yealink(void **state)
{
    (void)state;
    profile_t *p = s_load("profiles/yealink.json");
    char out[PROFILE_VERSION_MAX + 1];
    uint8_t got[6];
    const uint8_t mac[6] = {0x00, 0x15, 0x65, 0x4a, 0xa9, 0x37};
    struct profile_evidence e = s_ua("Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37");
    assert_int_equal(profile_recognises(p, &e), 1);
    assert_int_equal(profile_version(p, &e, "", out, sizeof out), 1);
    assert_string_equal(out, "28.72.0.1");
    assert_int_equal(profile_model(p, &e, out, sizeof out), 1);
    assert_string_equal(out, "SIP-T46G");
    /* no DHCP callback: only OUI rules, against the MAC */
    struct profile_evidence eo = {0};
    eo.mac = mac;
    assert_int_equal(profile_recognises(p, &eo), 1);
    eo.mac = MAC1;
    assert_int_equal(profile_recognises(p, &eo), 0);

    const struct profile_file *f = profile_file_find(p, "y000000000028.cfg", mac, -1, 0, got);
    assert_non_null(f);
    assert_non_null(profile_file_find(p, "Y000000000028.CFG", mac, -1, 1, got));
    assert_null(profile_file_find(p, "y00000000028.cfg", mac, -1, 1, got));
    assert_null(profile_file_find(p, "y000000000028.cfg.bak", mac, -1, 1, got));
    static const char *const images[] = {"T46-28.83.0.50.rom"};
    struct profile_vars v = s_vars(1);
    v.mac = mac;
    v.images = images;
    v.n_images = 1;
    char *s = s_render(f, &v);
    s_has(s, "firmware.url = http://198.18.0.1:8080/T46-28.83.0.50.rom\n");
    assert_int_equal(strncmp(s, "#!version:1.0.0.1\n", 18), 0);
    free(s);
    v.upgrade = 0;
    s = s_render(f, &v);
    assert_null(strstr(s, "firmware.url"));
    free(s);
    f = profile_file_find(p, "0015654aa937.cfg", mac, -1, 0, got);
    assert_non_null(f);
    assert_ptr_not_equal(f, profile_file_find(p, "y000000000028.cfg", mac, -1, 0, got));
    assert_string_equal(profile_restart(p)->event, "check-sync;reboot=true");
    profile_free(p);
}

static void test_aironet(void **state)
{
    (void)state;
    profile_t *p = s_load("profiles/cisco-aironet.json");
    char out[PROFILE_VERSION_MAX + 1];
    uint8_t got[6];
    struct profile_evidence e = s_file("c1240-k9w7-tar.default", MAC1);
    assert_int_equal(profile_recognises(p, &e), 1);
    assert_int_equal(profile_stage(p, &e), profile_stage_index(p, "recovery"));
    assert_int_equal(profile_model(p, &e, out, sizeof out), 1);
    assert_string_equal(out, "c1240");
    const struct profile_file *f =
        profile_file_find(p, "c1240-k9w7-tar.default", MAC1, -1, 0, got);
    assert_non_null(f);
    assert_string_equal(profile_file_image(f), "*.tar");
    assert_int_equal(profile_file_when(f), PROFILE_WHEN_UPGRADE);
    assert_int_equal(profile_file_served(f, 1), 1);
    assert_int_equal(profile_file_served(f, 0), 0);
    struct profile_vars v = s_vars(1);
    uint8_t *buf = NULL;
    size_t len;
    assert_int_equal(profile_render(f, &v, &buf, &len), -ENOENT); /* served as an image */
    assert_int_equal(profile_glob(profile_file_image(f), "c1240-k9w7-tar.124-25d.JA1.tar"), 1);
    assert_string_equal(profile_image_check(p), "tar");
    assert_int_equal(profile_glob(profile_final_image(p), "c1240-k9w7-tar.124-25d.JA1.tar"), 1);

    const uint8_t opt60[] = "Cisco AP c1240";
    struct fakepkt k = {opt60, sizeof opt60 - 1, 0, MAC1};
    e = s_dhcp(&k);
    assert_int_equal(profile_recognises(p, &e), 1);
    assert_int_equal(profile_model(p, &e, out, sizeof out), 1);
    assert_string_equal(out, "c1240");
    const struct dhcpopt *o[4];
    assert_int_equal(profile_dhcp_options(p, -1, o, 4), 1);
    assert_int_equal(o[0]->code, 150);

    static const char *const images[] = {"c1240-k9w7-tar.124-25d.JA1.tar"};
    v.images = images;
    v.n_images = 1;
    f = profile_file_find(p, "network-confg", NULL, -1, 0, got);
    assert_non_null(f);
    char *s = s_render(f, &v);
    s_has(s, "archive download-sw /overwrite /reload tftp://198.18.0.1/"
             "c1240-k9w7-tar.124-25d.JA1.tar\"\n");
    free(s);
    v.upgrade = 0;
    s = s_render(f, &v);
    assert_null(strstr(s, "archive"));
    free(s);
    profile_free(p);
}

static void test_innovaphone(void **state)
{
    (void)state;
    profile_t *p = s_load("profiles/innovaphone.json");
    char out[PROFILE_VERSION_MAX + 1];
    uint8_t got[6];
    const uint8_t mac[6] = {0x00, 0x90, 0x33, 0x0a, 0x0b, 0x0c};
    struct fakepkt k = {NULL, 0, 0, mac};
    struct profile_evidence e = s_dhcp(&k);
    assert_int_equal(profile_recognises(p, &e), 1);
    e = s_file("update-ip222.htm", mac);
    assert_int_equal(profile_recognises(p, &e), 1);
    assert_int_equal(profile_model(p, &e, out, sizeof out), 1);
    assert_string_equal(out, "ip222");
    assert_int_equal(profile_version(p, &e, "13r2-138410", out, sizeof out), 1);
    assert_string_equal(out, "13r2-138410");

    const struct profile_file *f = profile_file_find(p, "update-ip222.htm", mac, -1, 0, got);
    assert_non_null(f);
    assert_int_equal(profile_file_when(f), PROFILE_WHEN_UPGRADE);
    static const char *const images[] = {"ip232.bin", "IP222.bin"};
    struct profile_vars v = s_vars(1);
    v.mac = mac;
    v.model = "ip222";
    v.images = images;
    v.n_images = 2;
    v.version = "13r2-138410";
    v.serial_config = "c7";
    v.serial_firmware = "f3";
    v.window_hours = "22,23,0,1";
    v.grace_min = 6;
    char *s = s_render(f, &v);
    s_has(s, "mod cmd UP1 times /allow 22,23,0,1 /initial 6\n");
    s_has(s, "mod cmd UP1 check ireset c7-f3\n");
    s_has(s, "mod cmd UP0 prot http://198.18.0.1:8080/IP222.bin ser 13r2-138410\n");
    s_has(s, "mod cmd UP0 scfg http://198.18.0.1:8080/backup/#m-#d.txt\n");
    s_has(s, "config write\nconfig activate\n");
    free(s);
    v.window_hours = ""; /* any hour */
    s = s_render(f, &v);
    s_has(s, "/allow 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23 /initial 6");
    free(s);
    v.upgrade = 0;
    uint8_t *buf = NULL;
    size_t len;
    assert_int_equal(profile_render(f, &v, &buf, &len), -ENOENT);
    assert_null(profile_restart(p));
    profile_free(p);
}

/* ---- engine details on small profiles ---- */

static void test_templates(void **state)
{
    (void)state;
    profile_t *p = s_parse(
        "{\"name\":\"t\",\"recognise\":[\"file:^x$\"],"
        "\"files\":[{\"name\":\"a.txt\",\"body\":\"a { b #m #h }} {x} "
        "{{mac_dash}} {{MAC}} {{http_base}} {{http_port}} {{ip}} {{stage}} {{firmware}} "
        "[{{image:*.rom}}] [{{image_stem:*.rom}}] [{{image_url:*.rom}}] [{{image:*.none}}] "
        "{{serial}} {{serial_boot}} {{grace_min}}\"}]}");
    uint8_t got[6];
    const struct profile_file *f = profile_file_find(p, "a.txt", NULL, -1, 0, got);
    assert_non_null(f);
    assert_string_equal(profile_file_content_type(f), "");
    static const char *const images[] = {"my fw+1.rom"};
    struct profile_vars v = s_vars(1);
    v.images = images;
    v.n_images = 1;
    v.stage = "s1";
    v.firmware = "acme/1.0";
    v.serial = "SN1";
    v.serial_boot = "b2";
    char *s = s_render(f, &v);
    assert_string_equal(s, "a { b #m #h }} {x} 00-11-22-33-44-aa 0011223344AA "
                           "http://198.18.0.1:8080 8080 198.18.0.50 s1 acme/1.0 "
                           "[my fw+1.rom] [my fw+1] [http://198.18.0.1:8080/my%20fw%2B1.rom] [] "
                           "SN1 b2 6");
    free(s);
    /* images are for upgrades only; no HTTP port, no base */
    v.upgrade = 0;
    v.http_port = 0;
    s = s_render(f, &v);
    s_has(s, " [] [] [] [] ");
    free(s);
    profile_free(p);

    /* vendor-regex: one trailing NUL dropped, other bytes outside ASCII read as '.' */
    p = s_parse("{\"name\":\"v\",\"recognise\":[\"vendor-regex:^ab\\\\.cd$\"],"
                "\"version\":[{\"from\":\"vendor\",\"regex\":\"^(a)(b)..(d)\","
                "\"value\":\"\\\\3\\\\2\\\\1\\\\\\\\{{installed}}\"}]}");
    const uint8_t v1[] = {'a', 'b', 0x01, 'c', 'd', 0};
    struct profile_evidence e = {0};
    e.vendor = v1;
    e.vendor_len = sizeof v1;
    assert_int_equal(profile_recognises(p, &e), 1);
    char out[64];
    assert_int_equal(profile_version(p, &e, "I", out, sizeof out), 1);
    assert_string_equal(out, "dba\\I");
    const uint8_t v2[] = {'a', 'b', 'c', 'd', 0, 0}; /* "abcd." */
    e.vendor = v2;
    assert_int_equal(profile_recognises(p, &e), 0);
    e.vendor = NULL;
    assert_int_equal(profile_recognises(p, &e), 0);
    assert_int_equal(profile_version(p, &e, "I", out, sizeof out), 0);
    assert_string_equal(out, "");
    profile_free(p);

    /* stage options override the profile's of the same code, in order */
    p = s_parse("{\"name\":\"o\",\"recognise\":[\"oui:00:04:f2\"],"
                "\"dhcp_options\":[\"66=@server\",\"150=@server\"],"
                "\"stages\":[{\"name\":\"s\",\"when\":[\"file:^a$\"],"
                "\"dhcp_options\":[\"150=ip:198.18.0.9\"]}],\"priority\":-5}");
    const struct dhcpopt *o[4];
    assert_int_equal(profile_dhcp_options(p, 0, o, 4), 2);
    assert_int_equal(o[0]->code, 150);
    assert_int_equal(o[0]->fill, DHCPOPT_FILL_RAW);
    assert_int_equal(o[1]->code, 66);
    assert_int_equal(profile_dhcp_options(p, -1, o, 4), 2);
    assert_int_equal(o[0]->code, 66);
    assert_int_equal(o[1]->fill, DHCPOPT_FILL_SERVER_IP);
    assert_int_equal(profile_dhcp_options(p, 0, o, 1), 1);
    assert_int_equal(profile_priority(p), -5);
    assert_string_equal(profile_final_image(p), "*");
    assert_string_equal(profile_image_check(p), "none");
    assert_string_equal(profile_description(p), "");
    assert_null(profile_stage_name(p, 1));
    assert_string_equal(profile_stage_name(p, 0), "s");
    assert_int_equal(profile_stage_index(p, "nope"), -1);
    profile_free(p);

    /* when: hold files; an empty rendering is an empty buffer */
    p = s_parse("{\"name\":\"h\",\"recognise\":[\"file:^a$\"],"
                "\"files\":[{\"name\":\"h.txt\",\"when\":\"hold\",\"body\":\"\"}]}");
    f = profile_file_find(p, "h.txt", NULL, -1, 0, got);
    assert_non_null(f);
    v = s_vars(0);
    s = s_render(f, &v);
    assert_string_equal(s, "");
    free(s);
    v.upgrade = 1;
    uint8_t *buf = NULL;
    size_t len;
    assert_int_equal(profile_render(f, &v, &buf, &len), -ENOENT);
    profile_free(p);
}

/* ---- tar ---- */

/* A ustar (posix) or GNU header for one regular file, checksum filled. */
static void s_tar_header(uint8_t h[512], int gnu)
{
    memset(h, 0, 512);
    strcpy((char *)h, "c1240-k9w7-mx.124-25d.JA1/info");
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    memcpy(h + 124, "00000001750", 12);
    memcpy(h + 136, "14712345670", 12);
    h[156] = '0';
    if (gnu)
        memcpy(h + 257, "ustar  \0", 8);
    else
        memcpy(h + 257, "ustar\0" "00", 8);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

static void test_tar_check(void **state)
{
    (void)state;
    uint8_t h[1024];
    char err[256] = "";
    s_tar_header(h, 0);
    memset(h + 512, 0, 512);
    if (profile_tar_check(h, sizeof h, err, sizeof err) != 0)
        fail_msg("posix header refused: %s", err);
    assert_int_equal(profile_tar_check(h, 512, err, sizeof err), 0);
    s_tar_header(h, 1);
    assert_int_equal(profile_tar_check(h, 512, err, sizeof err), 0);

    h[0] ^= 1; /* a damaged header */
    assert_int_equal(profile_tar_check(h, 512, err, sizeof err), -EINVAL);
    s_has(err, "checksum");

    /* a Cisco .bin where a .tar is expected */
    uint8_t bin[2048];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(i * 37 + 11);
    memcpy(bin, "\x7f" "ELF", 4);
    assert_int_equal(profile_tar_check(bin, sizeof bin, err, sizeof err), -EINVAL);
    s_has(err, "not a tar archive: no ustar magic at offset 257");
    assert_null(strchr(err, '\n'));

    assert_int_equal(profile_tar_check(h, 100, err, sizeof err), -EINVAL);
    s_has(err, "shorter than one 512-byte header");
    memset(h, 0, 512);
    assert_int_equal(profile_tar_check(h, 512, err, sizeof err), -EINVAL);
    s_has(err, "all zeros");
    s_tar_header(h, 0);
    memcpy(h + 148, "zzzzzz\0 ", 8);
    assert_int_equal(profile_tar_check(h, 512, err, sizeof err), -EINVAL);
    s_has(err, "not octal");
}

/* ---- refusals ---- */

#define HEAD "\"name\":\"x\",\"recognise\":[\"oui:00:04:f2\"]"

static void s_bad(const char *json, const char *want)
{
    char err[512] = "";
    profile_t *p = (profile_t *)1;
    int rc = profile_parse(json, strlen(json), &p, err, sizeof err);
    if (rc != -EINVAL)
        fail_msg("accepted (%d): %s", rc, json);
    assert_null(p);
    if (strstr(err, want) == NULL)
        fail_msg("message '%s' lacks '%s' for %s", err, want, json);
    assert_null(strchr(err, '\n'));
}

static void test_bad_profiles(void **state)
{
    (void)state;
    s_bad("{", "not valid JSON");
    s_bad("{" HEAD ",\"name\":\"y\"}", "not valid JSON"); /* duplicate key */
    s_bad("[]", "must be a JSON object");
    s_bad("{" HEAD ",\"foo\":1}", "unknown key \"foo\"");
    s_bad("{\"name\":\"x\"}", "recognise: required");
    s_bad("{\"name\":\"x\",\"recognise\":[]}", "recognise: must not be empty");
    s_bad("{\"name\":\"x\",\"recognise\":\"oui:00:04:f2\"}", "recognise: must be an array");
    s_bad("{\"recognise\":[\"oui:00:04:f2\"]}", "name: required");
    s_bad("{\"name\":\"Cisco\",\"recognise\":[\"oui:00:04:f2\"]}", "name: \"Cisco\" must be");
    s_bad("{\"name\":\"x\",\"recognise\":[\"vendr:abc\"]}",
          "recognise[0]: unknown rule kind \"vendr\"");
    s_bad("{\"name\":\"x\",\"recognise\":[\"oui:00:04:f2\", \"vendor\"]}",
          "recognise[1]: \"vendor\" is not KIND:VALUE");
    s_bad("{\"name\":\"x\",\"recognise\":[\"oui:00:04\"]}", "recognise[0]: match rule");
    s_bad("{\"name\":\"x\",\"recognise\":[\"user-agent:(\"]}", "recognise[0]: bad regex");
    /* shapes that make glibc's regcomp grow geometrically are refused first */
    s_bad("{\"name\":\"x\",\"recognise\":[\"user-agent:a++++++++++++++++++++++++++++++\"]}",
          "a quantifier right after another");
    s_bad("{\"name\":\"x\",\"recognise\":[\"user-agent:((a{60}b{60}){60}){60}\"]}",
          "it would expand too far");
    s_bad("{\"name\":\"x\",\"recognise\":[\"user-agent:((((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)\"]}",
          "it would expand too far");
    s_bad("{\"name\":\"x\",\"recognise\":[\"user-agent:a{65}\"]}", "a repetition count above 64");
    s_bad("{\"name\":\"x\",\"recognise\":[\"user-agent:((((((((((((((((((a))))))))))))))))))\"]}",
          "groups nested too deep");
    s_bad("{\"name\":\"x\",\"recognise\":[7]}", "recognise[0]: must be a string");
    s_bad("{" HEAD ",\"stages\":[{\"name\":\"a\",\"when\":[\"file:^a$\"]},"
          "{\"name\":\"b\",\"when\":[\"file:a[\"]}]}",
          "stages[1].when[0]: bad regex");
    s_bad("{" HEAD ",\"stages\":[{\"name\":\"a\",\"when\":[\"file:^a$\"]},"
          "{\"name\":\"a\",\"when\":[\"file:^b$\"]}]}",
          "stages[1].name: stage \"a\" defined twice");
    s_bad("{" HEAD ",\"stages\":[{\"name\":\"\",\"when\":[\"file:^a$\"]}]}", "stages[0].name: empty");
    s_bad("{" HEAD ",\"stages\":[{\"name\":\"a\"}]}", "stages[0].when: required");
    s_bad("{" HEAD ",\"stages\":[{\"name\":\"a\",\"when\":[\"file:^a$\"],\"opts\":[]}]}",
          "stages[0]: unknown key \"opts\"");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"body\":\"\"},{\"name\":\"b\",\"body\":\"\"},"
          "{\"name\":\"c\",\"body\":\"v={{verison}}\"}]}",
          "files[2].body: unknown variable {{verison}}");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"body\":\"x\",\"hold_body\":\"{{installed}}\"}]}",
          "files[0].hold_body: unknown variable {{installed}}");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"body\":\"{{mac\"}]}", "files[0].body: unterminated {{");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"body\":\"{{image}}\"}]}", "needs a glob");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"body\":\"{{image_url:}}\"}]}", "empty glob");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"body\":\"{{mac:x}}\"}]}",
          "unknown variable {{mac:x}}");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"name_regex\":\"a\",\"body\":\"\"}]}",
          "files[0]: needs exactly one of \"name\" and \"name_regex\"");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\"}]}", "files[0]: needs exactly one of \"body\" and \"image\"");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"body\":\"\",\"image\":\"*.tar\"}]}",
          "needs exactly one of \"body\" and \"image\"");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"when\":\"upgrade\",\"body\":\"\",\"hold_body\":\"\"}]}",
          "files[0]: hold_body is only for");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"when\":\"sometimes\",\"body\":\"\"}]}",
          "files[0].when: \"sometimes\" is not always, upgrade or hold");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"stages\":[\"old\"],\"body\":\"\"}]}",
          "files[0].stages[0]: unknown stage \"old\"");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"{mac}-{MAC}\",\"body\":\"\"}]}",
          "files[0].name: \"{mac}-{MAC}\": at most one");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"{Mac}.cfg\",\"body\":\"\"}]}",
          "only {mac} or {MAC}");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"\",\"body\":\"\"}]}", "files[0].name: empty");
    s_bad("{" HEAD ",\"files\":[{\"name_regex\":\"*a\",\"body\":\"\"}]}", "files[0].name_regex: bad regex");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"bdy\":\"\"}]}", "files[0]: unknown key \"bdy\"");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"body\":5}]}", "files[0].body: must be a string");
    s_bad("{" HEAD ",\"files\":[{\"name\":\"a\",\"when\":\"hold\",\"image\":\"*\"}]}",
          "only served while upgrading");
    s_bad("{" HEAD ",\"version\":[{\"from\":\"file\",\"regex\":\"^(a)$\",\"value\":\"\\\\2\"}]}",
          "version[0].value: \\2 but the regex has 1 group");
    s_bad("{" HEAD ",\"version\":[{\"from\":\"file\",\"regex\":\"^a$\",\"value\":\"{{version}}\"}]}",
          "version[0].value: unknown variable {{version}}");
    s_bad("{" HEAD ",\"model\":[{\"from\":\"body\",\"regex\":\"a\"}]}",
          "model[0].from: \"body\" is not vendor, user-agent or file");
    s_bad("{" HEAD ",\"model\":[{\"from\":\"file\",\"regexp\":\"a\"}]}",
          "model[0]: unknown key \"regexp\"");
    s_bad("{" HEAD ",\"model\":[{\"from\":\"file\"}]}", "model[0].regex: required");
    s_bad("{" HEAD ",\"model\":[{\"from\":\"file\",\"regex\":\"\"}]}", "model[0].regex: empty regex");
    s_bad("{" HEAD ",\"dhcp_options\":[\"300=@server\"]}", "dhcp_options[0]: ");
    s_bad("{" HEAD ",\"dhcp_options\":[\"66=@server\",\"66=text:x\"]}",
          "dhcp_options[1]: option 66 given twice");
    s_bad("{" HEAD ",\"image_check\":\"zip\"}", "image_check: \"zip\" is not tar or none");
    s_bad("{" HEAD ",\"final_image\":\"\"}", "final_image: empty glob");
    s_bad("{" HEAD ",\"priority\":\"high\"}", "priority: must be an integer");
    s_bad("{" HEAD ",\"description\":\"two\\nlines\"}", "description: must be printable ASCII");
    s_bad("{" HEAD ",\"restart\":{}}", "restart.event: required");
    s_bad("{" HEAD ",\"restart\":{\"event\":\"check-sync\",\"reboot\":true}}",
          "restart: unknown key \"reboot\"");
    s_bad("{" HEAD ",\"restart\":\"check-sync\"}", "restart: must be an object");

    /* limits */
    size_t cap = PROFILE_JSON_MAX + 4096;
    char *big = malloc(cap);
    assert_non_null(big);
    size_t n = (size_t)snprintf(big, cap, "{" HEAD ",\"files\":[");
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s{\"name\":\"f%d\",\"body\":\"\"}", i ? "," : "", i);
    snprintf(big + n, cap - n, "]}");
    s_bad(big, "files: more than 64 entries");
    n = (size_t)snprintf(big, cap, "{" HEAD ",\"files\":[{\"name\":\"a\",\"body\":\"");
    memset(big + n, 'x', 64 * 1024 + 1);
    n += 64 * 1024 + 1;
    snprintf(big + n, cap - n, "\"}]}");
    s_bad(big, "files[0].body: longer than 65536 bytes");
    n = (size_t)snprintf(big, cap, "{" HEAD ",\"files\":[{\"name\":\"");
    memset(big + n, 'x', 256);
    n += 256;
    snprintf(big + n, cap - n, "\",\"body\":\"\"}]}");
    s_bad(big, "files[0].name: longer than 255 bytes");
    memset(big, ' ', PROFILE_JSON_MAX + 1);
    memcpy(big, "{" HEAD "}", strlen("{" HEAD "}"));
    big[PROFILE_JSON_MAX + 1] = '\0';
    s_bad(big, "larger than");
    free(big);

    /* the largest accepted body still parses */
    big = malloc(70 * 1024);
    assert_non_null(big);
    n = (size_t)snprintf(big, 70 * 1024, "{" HEAD ",\"files\":[{\"name\":\"a\",\"body\":\"");
    memset(big + n, 'x', 64 * 1024);
    n += 64 * 1024;
    snprintf(big + n, 70 * 1024 - n, "\"}]}");
    profile_t *p = s_parse(big);
    profile_free(p);
    free(big);
    profile_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_parse), cmocka_unit_test(test_readme_examples),
        cmocka_unit_test(test_cisco_79xx),
        cmocka_unit_test(test_polycom),       cmocka_unit_test(test_digium),
        cmocka_unit_test(test_yealink),       cmocka_unit_test(test_aironet),
        cmocka_unit_test(test_innovaphone),   cmocka_unit_test(test_templates),
        cmocka_unit_test(test_tar_check),     cmocka_unit_test(test_bad_profiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
