/* test_files.c: the file resolver: name cleaning, containment under the
 * root (symlinks out, directories, `..`), template rendering per device,
 * images by name, case-insensitive lookup. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "files.h"
#include "services.h"

static char s_dir[64];
static struct agent *s_a;

static void s_write(const char *rel, const char *body)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", s_dir, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/ff-files-XXXXXX");
    if (mkdtemp(s_dir) == NULL)
        return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/root/sub", s_dir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s %s/cache && echo secret > %s/outside && ln -s ../outside %s/root/link"
             " && ln -s sub/in.txt %s/root/inlink",
             p, s_dir, s_dir, s_dir, s_dir);
    if (system(cmd) != 0)
        return -1;
    s_write("root/OS79XX.TXT", "P003-08-12-00");
    s_write("root/sub/in.txt", "inside");
    s_a = calloc(1, sizeof *s_a);
    snprintf(s_a->state_dir, sizeof s_a->state_dir, "%s", s_dir);
    snprintf(p, sizeof p, "%s/root", s_dir);
    struct svc_opts o = {.files_root = p, .nocase = 1, .upload_max = 4096};
    return files_start(s_a, &o);
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < s_a->n_svc; i++)
        if (s_a->svc[i].stop)
            s_a->svc[i].stop(s_a->svc[i].self);
    if (s_a->config)
        firmfleet__site_config__free_unpacked(s_a->config, NULL);
    free(s_a);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void s_clean_ok(const char *in, const char *want)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s", in);
    assert_int_equal(files_clean(buf), 0);
    assert_string_equal(buf, want);
}

static void s_clean_bad(const char *in)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s", in);
    assert_int_equal(files_clean(buf), -EINVAL);
}

static void test_clean(void **state)
{
    (void)state;
    s_clean_ok("OS79XX.TXT ", "OS79XX.TXT");
    s_clean_ok("OS79XX.TXT\r\n", "OS79XX.TXT");
    s_clean_ok("OS79XX.TXT \r ", "OS79XX.TXT");
    s_clean_ok("/tftpboot//sub\\file.bin", "tftpboot/sub/file.bin");
    s_clean_ok("./a/./b", "a/b");
    s_clean_ok("...", "...");
    s_clean_ok("a..b", "a..b");
    s_clean_bad("");
    s_clean_bad("   ");
    s_clean_bad("/");
    s_clean_bad("../etc/passwd");
    s_clean_bad("..\\..\\etc\\passwd");
    s_clean_bad("foo/../../x");
    s_clean_bad("a/..");
    s_clean_bad("a\tb");
    s_clean_bad("a\x7f");
    char longname[400];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    s_clean_bad(longname);
}

static int s_open(const char *name, const uint8_t *mac, struct files_src *src)
{
    return files_open(s_a, name, 0, mac, src);
}

static void test_root_containment(void **state)
{
    (void)state;
    struct files_src src;
    assert_int_equal(s_open("OS79XX.TXT", NULL, &src), 0);
    assert_true(src.fd >= 0);
    assert_int_equal(src.size, 13);
    assert_string_equal(src.origin, "root");
    files_src_close(&src);
    assert_int_equal(s_open("os79xx.txt", NULL, &src), 0); /* nocase */
    files_src_close(&src);
    assert_int_equal(s_open("SUB/IN.TXT", NULL, &src), 0);
    files_src_close(&src);
    assert_int_equal(s_open("inlink", NULL, &src), 0); /* a symlink that stays inside */
    files_src_close(&src);
    assert_int_equal(s_open("link", NULL, &src), -EACCES); /* a symlink out */
    assert_int_equal(s_open("sub", NULL, &src), -EACCES);  /* a directory */
    assert_int_equal(s_open("missing", NULL, &src), -ENOENT);
    assert_int_equal(s_open("/etc/passwd", NULL, &src), -EINVAL);
    assert_int_equal(s_open("../outside", NULL, &src), -EACCES);
}

static void test_templates_and_images(void **state)
{
    (void)state;
    Firmfleet__SiteConfig sc = FIRMFLEET__SITE_CONFIG__INIT;
    Firmfleet__FileTemplate t1 = FIRMFLEET__FILE_TEMPLATE__INIT, t2 = FIRMFLEET__FILE_TEMPLATE__INIT;
    Firmfleet__FileTemplate *ts[2] = {&t1, &t2};
    t1.name = "SEP{MAC}.cnf.xml";
    const char *b1 = "<device>{{MAC}} {{model}} {{serial}} {{site}} {{unknown}}</device>";
    t1.body.data = (uint8_t *)(uintptr_t)b1;
    t1.body.len = strlen(b1);
    t2.name = "SIPDefault.cnf";
    t2.body.data = (uint8_t *)(uintptr_t) "image_version: P0S3-08-12-00";
    t2.body.len = 28;
    Firmfleet__DeviceRef d = FIRMFLEET__DEVICE_REF__INIT, *ds[1] = {&d};
    d.mac = "00:04:f2:aa:bb:01";
    d.model = "CP-7940G";
    d.serial = "FCH1";
    Firmfleet__ImageRef img = FIRMFLEET__IMAGE_REF__INIT, *imgs[1] = {&img};
    uint8_t sha[32] = {0xab};
    img.sha256.data = sha;
    img.sha256.len = 32;
    img.name = "P0S3-08-12-00.loads";
    sc.site = "berlin";
    sc.files = ts;
    sc.n_files = 2;
    sc.devices = ds;
    sc.n_devices = 1;
    sc.images = imgs;
    sc.n_images = 1;
    /* the agent keeps its own unpacked copy */
    size_t len = firmfleet__site_config__get_packed_size(&sc);
    uint8_t *buf = malloc(len);
    firmfleet__site_config__pack(&sc, buf);
    s_a->config = firmfleet__site_config__unpack(NULL, len, buf);
    free(buf);

    struct files_src src;
    assert_int_equal(s_open("SEP0004F2AABB01.cnf.xml", NULL, &src), 0);
    assert_string_equal(src.origin, "template");
    const char *want = "<device>0004F2AABB01 CP-7940G FCH1 berlin {{unknown}}</device>";
    assert_int_equal(src.size, strlen(want));
    assert_memory_equal(src.data, want, strlen(want));
    files_src_close(&src);
    uint8_t other[6] = {0, 4, 0xf2, 0, 0, 9};
    assert_int_equal(s_open("SEP0004F2AABB01.cnf.xml", other, &src), -ENOENT); /* not this device */
    assert_int_equal(s_open("SEPnothexnothex.cnf.xml", NULL, &src), -ENOENT);
    assert_int_equal(s_open("sipdefault.cnf", NULL, &src), 0); /* nocase */
    files_src_close(&src);
    /* an image not yet in the cache is not found; once cached it is */
    assert_int_equal(s_open("P0S3-08-12-00.loads", NULL, &src), -ENOENT);
    char hex[65], p[600];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", sha[i]);
    snprintf(p, sizeof p, "cache/%s", hex);
    s_write(p, "IMAGE");
    assert_int_equal(s_open("P0S3-08-12-00.loads", NULL, &src), 0);
    assert_string_equal(src.origin, "image");
    assert_int_equal(src.size, 5);
    files_src_close(&src);
}

static void test_upload_dir(void **state)
{
    (void)state;
    char dir[512];
    uint64_t cap = 0;
    uint8_t mac[6] = {0, 4, 0xf2, 0xaa, 0xbb, 1};
    assert_int_equal(files_upload_dir(s_a, mac, dir, sizeof dir, &cap), 0);
    assert_int_equal(cap, 4096);
    assert_non_null(strstr(dir, "/uploads/0004f2aabb01"));
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_root_containment),
        cmocka_unit_test(test_templates_and_images),
        cmocka_unit_test(test_upload_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
