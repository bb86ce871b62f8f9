/* privdrop.h: `--user NAME` for firmfleetd and firmfleet-agent: bind what
 * needs root, open the data/state directory, then become NAME for good
 * (OpenBSD daemons' order: sockets first, then the drop).
 *
 * The drop is initgroups + setgid + setuid (real, effective and saved ids),
 * then a check that uid 0 cannot be regained, then PR_SET_NO_NEW_PRIVS. No
 * capability is kept: every privileged socket (DHCP port 67 and its packet
 * socket, TFTP 69, HTTP 80, the metrics port) is opened before the drop, and
 * what is opened later (TFTP transfer sockets, SIP NOTIFY) uses ephemeral
 * ports. glibc applies set*id to every thread (ZeroMQ's I/O threads,
 * libuv's pool).
 *
 * The directory the daemon owns must end up owned by NAME: before anything
 * is created, privdrop_check_dir refuses a directory that belongs to a third
 * user; after the daemon has created its files (as root), privdrop_chown_tree
 * hands the whole tree to NAME.
 */
#ifndef FF_PRIVDROP_H
#define FF_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

struct privdrop_user {
    char name[64];
    uid_t uid;
    gid_t gid;
};

/* Looks NAME up (getpwnam). 0, or -ENOENT / -EINVAL (uid 0 is refused: it
 * would drop nothing) with a one-line reason in err. */
int privdrop_lookup(const char *name, struct privdrop_user *out, char *err, size_t n);
/* 0 when dir does not exist yet, or is owned by root or by u; -EPERM (with
 * err) when it is owned by someone else; -errno when stat fails otherwise. */
int privdrop_check_dir(const char *dir, const struct privdrop_user *u, char *err, size_t n);
/* lchown of dir and everything under it (symlinks are not followed) to u.
 * 0 or -errno with err. */
int privdrop_chown_tree(const char *dir, const struct privdrop_user *u, char *err, size_t n);
/* Becomes u for good and sets no_new_privs. 0 or -errno with err; the caller
 * must exit on error (the process may be half-dropped). */
int privdrop_apply(const struct privdrop_user *u, char *err, size_t n);

#endif
