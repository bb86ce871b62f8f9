/* fuzz_profile.c: libFuzzer target for vendor profiles (lib/profile.h).
 * Profiles come from operators (`firmfleet profile add`) and reach every
 * agent, which evaluates them against what devices send, so both the
 * parser and the evaluation of what parses are fuzzed: the input is the
 * JSON text; when it parses, every accessor, the stage, version and model
 * extraction over fixed evidence (a Cisco phone's option 60, a Yealink
 * User-Agent, requested file names), the DHCP options of each stage, and
 * the rendering of each file the fixed names find, in both modes.
 *
 * Build and run: `make fuzz` (clang), or replayed over tests/fuzz/corpus/
 * by `make test` (tests/fuzz/replay_main.c).
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int s_prof_rule(void *arg, const struct dhcpopt_rule *r)
{
    (void)arg;
    return r->kind % 2; /* some rules match, some do not */
}

static void s_prof_file(const profile_t *p, const char *name, const uint8_t *mac, int stage)
{
    uint8_t got[6];
    for (int nocase = 0; nocase < 2; nocase++) {
        const struct profile_file *f = profile_file_find(p, name, mac, stage, nocase, got);
        if (f == NULL)
            continue;
        (void)profile_file_when(f);
        (void)profile_file_image(f);
        assert(profile_file_content_type(f) != NULL);
        static const char *const images[] = {"P0S3-08-12-00.loads", "P0S3-08-12-00.sb2",
                                             "OS79XX.TXT", "firmware.tar"};
        for (int up = 0; up < 2; up++) {
            struct profile_vars v = {.mac = got,
                                     .ip = "198.18.1.10",
                                     .model = "CP-7960G",
                                     .serial = "FCH1234",
                                     .site = "berlin",
                                     .server_ip = "198.18.0.1",
                                     .http_port = 8080,
                                     .upgrade = up,
                                     .version = up ? "8.12.0" : "",
                                     .firmware = "cisco/8.12.0",
                                     .images = images,
                                     .n_images = up ? 4 : 0,
                                     .stage = "app",
                                     .serial_config = "3",
                                     .serial_firmware = "2",
                                     .serial_boot = "",
                                     .window_hours = "22,23,0,1",
                                     .grace_min = 10};
            uint8_t *out = NULL;
            size_t len = 0;
            if (profile_render(f, &v, &out, &len) == 0) {
                assert(out != NULL || len == 0);
                free(out);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > PROFILE_JSON_MAX + 1)
        return 0;
    char *json = malloc(size ? size : 1);
    if (json == NULL)
        return 0;
    memcpy(json, data, size);
    profile_t *p = NULL;
    char err[256];
    err[0] = '\0';
    int rc = profile_parse(json, size, &p, err, sizeof err);
    free(json); /* the profile must not keep pointers into the text */
    if (rc != 0) {
        assert(p == NULL);
        assert(err[0] != '\0' && strchr(err, '\n') == NULL);
        return 0;
    }
    assert(p != NULL);
    assert(profile_name(p) != NULL && strlen(profile_name(p)) <= PROFILE_NAME_MAX);
    (void)profile_description(p);
    (void)profile_priority(p);
    assert(profile_final_image(p) != NULL);
    assert(profile_image_check(p) != NULL);
    (void)profile_restart(p);

    static const uint8_t mac[6] = {0x00, 0x04, 0xf2, 0xaa, 0xbb, 0x01};
    static const uint8_t vendor[] = "Cisco Systems, Inc. IP Phone CP-7960G";
    static const char *const files[] = {"OS79XX.TXT",
                                        "SIPDefault.cnf",
                                        "SIP0004F2AABB01.cnf",
                                        "SEP0004F2AABB01.cnf.xml",
                                        "0004f2aabb01.cfg",
                                        "y000000000000.cfg",
                                        "c3560-k9w7-tar.default",
                                        "P0S3-08-12-00.loads"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct profile_evidence e = {.mac = mac,
                                     .vendor = vendor,
                                     .vendor_len = sizeof vendor, /* with its NUL */
                                     .dhcp_rule = i % 2 ? s_prof_rule : NULL,
                                     .user_agent = "Yealink SIP-T46S 66.86.0.15 00:15:65:aa:bb:cc",
                                     .file = files[i]};
        (void)profile_recognises(p, &e);
        int st = profile_stage(p, &e);
        if (st >= 0) {
            const char *sn = profile_stage_name(p, st);
            assert(sn != NULL && profile_stage_index(p, sn) == st);
        }
        char ver[PROFILE_VERSION_MAX + 1], model[64];
        if (profile_version(p, &e, i % 3 ? "P0S3-08-12-00" : "", ver, sizeof ver) == 0)
            assert(ver[0] == '\0');
        assert(strlen(ver) < sizeof ver);
        if (profile_model(p, &e, model, sizeof model) == 0)
            assert(model[0] == '\0');
        assert(strlen(model) < sizeof model);
        s_prof_file(p, files[i], i % 2 ? mac : NULL, st);
    }
    for (int st = -1; st < 4; st++) {
        const struct dhcpopt *opts[32];
        size_t n = profile_dhcp_options(p, st, opts, 32);
        assert(n <= 32);
        const struct dhcpopt *one[1];
        assert(profile_dhcp_options(p, st, one, 1) <= 1);
    }
    assert(profile_stage_name(p, -1) == NULL);
    assert(profile_stage_name(p, 1000) == NULL);
    profile_free(p);
    return 0;
}
