/* fuzz_template.c: libFuzzer target for the site's per-device file
 * templates (`firmfleet template add`, rendered by the agent's resolver in
 * siteagent/files.c: SEP{MAC}.cnf.xml and the like, with {{mac}} {{MAC}}
 * {{ip}} {{model}} {{serial}} {{site}}). Input: the template's name
 * pattern, a NUL, then its body. The agent gets a site configuration with
 * that one template and one known device, and a device asks for the name
 * the pattern gives for its MAC. Checked:
 *   - a body without "{{" is served exactly as written;
 *   - whatever is served comes from the template, and is never longer than
 *     the body with every variable at its longest;
 *   - a name that is not the pattern's is not served from it.
 *
 * Build and run: `make fuzz` (clang), or replayed over tests/fuzz/corpus/
 * by `make test` (tests/fuzz/replay_main.c).
 */
#define _GNU_SOURCE
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "files.h"
#include "log.h"
#include "services.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct agent *s_a;
static char s_dir[64];

static void s_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        return;
}

static int s_init(void)
{
    if (s_a != NULL)
        return 0;
    log_set_level(LOG_LEVEL_ERROR);
    snprintf(s_dir, sizeof s_dir, "/tmp/fuzz-template.XXXXXX");
    if (mkdtemp(s_dir) == NULL)
        return -1;
    char root[128];
    snprintf(root, sizeof root, "%s/root", s_dir);
    if (mkdir(root, 0700) < 0)
        return -1;
    s_a = calloc(1, sizeof *s_a);
    if (s_a == NULL)
        return -1;
    snprintf(s_a->state_dir, sizeof s_a->state_dir, "%s", s_dir);
    struct svc_opts o = {.files_root = root, .nocase = 0, .upload_max = 4096};
    if (files_start(s_a, &o) < 0)
        return -1;
    atexit(s_cleanup);
    return 0;
}

/* The name the pattern gives for MAC 00:04:f2:aa:bb:01 ({MAC} or {mac}
 * replaced once, as the resolver matches them). 0, or -1 too long. */
static int s_name_for(const char *pat, char *out, size_t n)
{
    const char *tok = strstr(pat, "{MAC}"), *lo = strstr(pat, "{mac}");
    const char *hex = "0004F2AABB01";
    if (tok == NULL || (lo != NULL && lo < tok)) {
        tok = lo;
        hex = "0004f2aabb01";
    }
    int k = tok ? snprintf(out, n, "%.*s%s%s", (int)(tok - pat), pat, hex, tok + 5)
                : snprintf(out, n, "%s", pat);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536 || s_init() < 0)
        return 0;
    const uint8_t *nul = memchr(data, '\0', size);
    if (nul == NULL)
        return 0;
    char pat[300];
    size_t pl = (size_t)(nul - data);
    if (pl == 0 || pl >= sizeof pat)
        return 0;
    memcpy(pat, data, pl);
    pat[pl] = '\0';
    const uint8_t *body = nul + 1;
    size_t bl = size - pl - 1;

    Firmfleet__SiteConfig sc = FIRMFLEET__SITE_CONFIG__INIT;
    Firmfleet__FileTemplate t = FIRMFLEET__FILE_TEMPLATE__INIT, *ts[1] = {&t};
    t.name = pat;
    t.body.data = (uint8_t *)(uintptr_t)body;
    t.body.len = bl;
    Firmfleet__DeviceRef d = FIRMFLEET__DEVICE_REF__INIT, *ds[1] = {&d};
    d.mac = "00:04:f2:aa:bb:01";
    d.model = "CP-7940G";
    d.serial = "FCH1234ABCD";
    d.ip = "198.18.1.10";
    sc.site = "berlin";
    sc.files = ts;
    sc.n_files = 1;
    sc.devices = ds;
    sc.n_devices = 1;
    /* the agent keeps its own unpacked copy, as with a pushed config */
    size_t len = firmfleet__site_config__get_packed_size(&sc);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return 0;
    firmfleet__site_config__pack(&sc, buf);
    if (s_a->config)
        firmfleet__site_config__free_unpacked(s_a->config, NULL);
    s_a->config = firmfleet__site_config__unpack(NULL, len, buf);
    free(buf);
    if (s_a->config == NULL)
        return 0;

    char name[400];
    const uint8_t mac[6] = {0x00, 0x04, 0xf2, 0xaa, 0xbb, 0x01};
    if (s_name_for(pat, name, sizeof name) == 0 && files_clean(name) == 0) {
        struct files_src src;
        if (files_open(s_a, name, 0, mac, &src) == 0) {
            if (strcmp(src.origin, "template") == 0) {
                assert(src.fd < 0);
                /* six variables, none longer than 16 bytes here */
                assert(src.size <= bl + 16 * (bl / 5 + 1));
                if (memmem(body, bl, "{{", 2) == NULL) {
                    assert(src.size == bl);
                    assert(bl == 0 || memcmp(src.data, body, bl) == 0);
                }
            }
            files_src_close(&src);
        }
    }
    /* a name the pattern cannot give is never served from the template */
    struct files_src src;
    if (files_open(s_a, "fuzz-no-such-name.bin", 0, mac, &src) == 0) {
        assert(strcmp(src.origin, "template") != 0 || strcmp(pat, "fuzz-no-such-name.bin") == 0);
        files_src_close(&src);
    }
    firmfleet__site_config__free_unpacked(s_a->config, NULL);
    s_a->config = NULL;
    return 0;
}
