/* test_privdrop.c: lib/privdrop: user lookup (unknown, empty, uid 0
 * refused), the directory check (missing is fine, root's or the user's is
 * fine, a third user's is refused with the reason), the tree chown (through
 * a symlinked top, not through symlinks below it), and the drop itself in a
 * child process (ids in all slots, root not regainable, no_new_privs). The
 * parts that need root are skipped when the test does not run as root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "privdrop.h"

static char s_dir[64];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/met-privdrop.XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int s_nobody(struct privdrop_user *u)
{
    char err[256];
    return privdrop_lookup("nobody", u, err, sizeof err);
}

static void test_lookup(void **state)
{
    (void)state;
    struct privdrop_user u;
    char err[256] = "";
    assert_int_equal(privdrop_lookup("no-such-user-ff", &u, err, sizeof err), -ENOENT);
    assert_string_equal(err, "--user: no such user 'no-such-user-ff'");
    assert_int_equal(privdrop_lookup("", &u, err, sizeof err), -EINVAL);
    assert_int_equal(privdrop_lookup("root", &u, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "uid 0"));
    if (s_nobody(&u) == 0) {
        assert_string_equal(u.name, "nobody");
        assert_true(u.uid != 0);
    }
}

static void test_check_and_chown(void **state)
{
    (void)state;
    struct privdrop_user u;
    if (geteuid() != 0 || s_nobody(&u) < 0)
        skip();
    char err[512] = "", p[PATH_MAX], q[PATH_MAX];
    snprintf(p, sizeof p, "%s/missing", s_dir);
    assert_int_equal(privdrop_check_dir(p, &u, err, sizeof err), 0);
    assert_int_equal(privdrop_check_dir(s_dir, &u, err, sizeof err), 0); /* root's */
    /* a tree: data/sub/file, data/link -> outside file (must not be followed) */
    snprintf(p, sizeof p, "%s/data", s_dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/data/sub", s_dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/data/sub/file", s_dir);
    int fd = open(p, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(q, sizeof q, "%s/outside", s_dir);
    fd = open(q, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(p, sizeof p, "%s/data/link", s_dir);
    assert_int_equal(symlink(q, p), 0);
    snprintf(p, sizeof p, "%s/top", s_dir); /* the data dir reached through a symlink */
    snprintf(q, sizeof q, "%s/data", s_dir);
    assert_int_equal(symlink(q, p), 0);
    assert_int_equal(privdrop_chown_tree(p, &u, err, sizeof err), 0);
    struct stat st;
    snprintf(p, sizeof p, "%s/data/sub/file", s_dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_uid, u.uid);
    assert_int_equal(st.st_gid, u.gid);
    snprintf(p, sizeof p, "%s/data", s_dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_uid, u.uid);
    snprintf(p, sizeof p, "%s/outside", s_dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_uid, 0); /* not through the link */
    /* the user's own directory passes; a third user's is refused */
    snprintf(p, sizeof p, "%s/data", s_dir);
    assert_int_equal(privdrop_check_dir(p, &u, err, sizeof err), 0);
    struct privdrop_user other = u;
    other.uid = u.uid + 1;
    snprintf(other.name, sizeof other.name, "someone");
    assert_int_equal(privdrop_check_dir(p, &other, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "neither root nor someone"));
}

static void test_apply_in_child(void **state)
{
    (void)state;
    struct privdrop_user u;
    if (geteuid() != 0 || s_nobody(&u) < 0)
        skip();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[256];
        if (privdrop_apply(&u, err, sizeof err) < 0)
            _exit(10);
        if (getuid() != u.uid || geteuid() != u.uid || getgid() != u.gid)
            _exit(11);
        if (setuid(0) == 0 || seteuid(0) == 0)
            _exit(12);
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
            _exit(13);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test_setup_teardown(test_check_and_chown, s_setup, s_teardown),
        cmocka_unit_test(test_apply_in_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
