/* privdrop.c: the privilege drop (see privdrop.h). */
#define _GNU_SOURCE /* getresuid, getresgid */
#include "privdrop.h"

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

int privdrop_lookup(const char *name, struct privdrop_user *out, char *err, size_t n)
{
    memset(out, 0, sizeof *out);
    if (name == NULL || *name == '\0' || strlen(name) >= sizeof out->name) {
        snprintf(err, n, "--user: a user name of 1..%zu characters", sizeof out->name - 1);
        return -EINVAL;
    }
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (pw == NULL) {
        snprintf(err, n, "--user: no such user '%s'", name);
        return -ENOENT;
    }
    if (pw->pw_uid == 0) {
        snprintf(err, n, "--user: '%s' is uid 0; name an unprivileged user", name);
        return -EINVAL;
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    out->uid = pw->pw_uid;
    out->gid = pw->pw_gid;
    return 0;
}

int privdrop_check_dir(const char *dir, const struct privdrop_user *u, char *err, size_t n)
{
    struct stat st;
    if (stat(dir, &st) < 0) { /* a symlinked data directory: its target counts */
        if (errno == ENOENT)
            return 0;
        int e = errno;
        snprintf(err, n, "%s: %s", dir, strerror(e));
        return -e;
    }
    if (st.st_uid != 0 && st.st_uid != u->uid) {
        snprintf(err, n,
                 "%s is owned by uid %u, neither root nor %s (uid %u): refusing to take it over",
                 dir, (unsigned)st.st_uid, u->name, (unsigned)u->uid);
        return -EPERM;
    }
    return 0;
}

/* nftw has no user argument: the one walk in progress (the loop thread,
 * before any other thread of ours looks at the tree) */
static const struct privdrop_user *s_walk_user;
static int s_walk_errno;
static char s_walk_path[256];

static int s_chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)flag;
    (void)ftw;
    if (st->st_uid == s_walk_user->uid && st->st_gid == s_walk_user->gid)
        return 0;
    if (lchown(path, s_walk_user->uid, s_walk_user->gid) < 0) {
        s_walk_errno = errno;
        snprintf(s_walk_path, sizeof s_walk_path, "%s", path);
        return 1;
    }
    return 0;
}

int privdrop_chown_tree(const char *dir, const struct privdrop_user *u, char *err, size_t n)
{
    /* the top may be a symlink (FTW_PHYS would stop at it); below it, links
     * are never followed */
    char top[PATH_MAX];
    if (realpath(dir, top) == NULL) {
        int e = errno;
        snprintf(err, n, "%s: %s", dir, strerror(e));
        return -e;
    }
    s_walk_user = u;
    s_walk_errno = 0;
    s_walk_path[0] = '\0';
    int rc = nftw(top, s_chown_one, 16, FTW_PHYS | FTW_MOUNT);
    if (rc != 0) {
        int e = s_walk_errno ? s_walk_errno : errno ? errno : EIO;
        snprintf(err, n, "chown %s to %s: %s", s_walk_path[0] ? s_walk_path : dir, u->name,
                 strerror(e));
        return -e;
    }
    return 0;
}

int privdrop_apply(const struct privdrop_user *u, char *err, size_t n)
{
    if (initgroups(u->name, u->gid) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0) {
        int e = errno;
        snprintf(err, n, "becoming %s (uid %u gid %u): %s", u->name, (unsigned)u->uid,
                 (unsigned)u->gid, strerror(e));
        return -e;
    }
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != u->uid ||
        eu != u->uid || su != u->uid || rg != u->gid || eg != u->gid || sg != u->gid) {
        snprintf(err, n, "after the drop to %s the ids are not all %u/%u", u->name,
                 (unsigned)u->uid, (unsigned)u->gid);
        return -EPERM;
    }
    if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0) {
        snprintf(err, n, "after the drop to %s, root could be regained", u->name);
        return -EPERM;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        int e = errno;
        snprintf(err, n, "PR_SET_NO_NEW_PRIVS: %s", strerror(e));
        return -e;
    }
    return 0;
}
