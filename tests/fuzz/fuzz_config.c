/* fuzz_config.c: libFuzzer target for the files an operator hands the
 * daemons: the agent's credential (JSON written by `firmfleet agent enroll`,
 * agent_cred_load) and the signing key files (`firmfleet key generate`,
 * sign_parse_pub / sign_parse_secret). The first input byte chooses the
 * parser, the rest is the file. Checked on every file that is accepted:
 *   - credential: every string field NUL-terminated within its buffer, the
 *     three CURVE keys exactly 40 Z85 characters, an enrollment credential
 *     has a positive expiry, and loading the same bytes again gives the same
 *     result (no hidden state);
 *   - admin_keys: a key is found only when the file lists it, and the name
 *     given back is a NUL-terminated string within its buffer;
 *   - keys: parsing is deterministic (same bytes, same key).
 * A refused file must come with an error text.
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
#include <sys/mman.h>
#include <unistd.h>

#include "agent.h"
#include "ctl.h"
#include "ctl_admin.h"
#include "log.h"
#include "sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_str(const char *s, size_t cap)
{
    assert(memchr(s, '\0', cap) != NULL);
}

static void s_cred(const uint8_t *data, size_t size)
{
    /* the parser reads a path: give it the bytes as an anonymous file */
    int fd = memfd_create("fuzz-cred", MFD_CLOEXEC);
    if (fd < 0)
        return;
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct agent_cred c, again;
    char err[256] = "", err2[256] = "";
    int rc = agent_cred_load(path, &c, err, sizeof err);
    if (rc == 0) {
        s_check_str(c.agent, sizeof c.agent);
        s_check_str(c.site, sizeof c.site);
        s_check_str(c.endpoint, sizeof c.endpoint);
        assert(strlen(c.server_key) == 40 && strlen(c.public_key) == 40 &&
               strlen(c.secret_key) == 40);
        assert(!c.enrollment || c.expires_ms > 0);
        assert(agent_cred_load(path, &again, err2, sizeof err2) == 0);
        assert(memcmp(&c, &again, sizeof c) == 0);
    } else {
        assert(err[0] != '\0');
    }
    close(fd);
}

static char s_dir[64];

static void s_cleanup(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/admin_keys", s_dir);
    unlink(path);
    rmdir(s_dir);
}

/* admin_keys in a private directory (removed at exit): looked up with a key
 * it may list (the first 40 bytes of the file) and one it cannot (not Z85). */
static void s_admin_keys(const uint8_t *data, size_t size)
{
    static struct ctl ctl;
    if (s_dir[0] == '\0') {
        snprintf(s_dir, sizeof s_dir, "/tmp/fuzz-admin-keys.XXXXXX");
        if (mkdtemp(s_dir) == NULL) {
            s_dir[0] = '\0';
            return;
        }
        snprintf(ctl.datadir, sizeof ctl.datadir, "%s", s_dir);
        atexit(s_cleanup);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/admin_keys", s_dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    size_t w = fwrite(data, 1, size, f);
    if (fclose(f) != 0 || w != size)
        return;
    char key[41] = "";
    if (size >= 40) {
        memcpy(key, data, 40);
        key[40] = '\0';
    }
    char name[64];
    memset(name, 'x', sizeof name);
    if (ctl_admin_key_lookup(&ctl, key, name, sizeof name) == 1) {
        assert(memchr(name, '\0', sizeof name) != NULL);
        assert(memmem(data, size, key, 40) != NULL); /* only a key the file holds */
    }
    assert(ctl_admin_key_lookup(&ctl, "not a key", name, sizeof name) != 1);
}

static void s_keys(int secret, const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    if (secret) {
        uint8_t a[SIGN_SK_LEN], b[SIGN_SK_LEN];
        if (sign_parse_secret(text, size, a) == 0) {
            assert(sign_parse_secret(text, size, b) == 0);
            assert(memcmp(a, b, sizeof a) == 0);
        }
    } else {
        uint8_t a[SIGN_PK_LEN], b[SIGN_PK_LEN];
        if (sign_parse_pub(text, size, a) == 0) {
            assert(sign_parse_pub(text, size, b) == 0);
            assert(memcmp(a, b, sizeof a) == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        log_set_level(LOG_LEVEL_ERROR); /* refusals are expected */
        init = 1;
    }
    if (size < 1 || size > 65536)
        return 0;
    switch (data[0] % 4) {
    case 0:
        s_cred(data + 1, size - 1);
        break;
    case 1:
        s_keys(0, data + 1, size - 1);
        break;
    case 2:
        s_keys(1, data + 1, size - 1);
        break;
    default:
        s_admin_keys(data + 1, size - 1);
        break;
    }
    return 0;
}
