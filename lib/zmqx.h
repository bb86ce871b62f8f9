/* zmqx.h: ZeroMQ socket policy shared by every firmfleet socket (message size
 * bound, heartbeats, handshake limit, linger) and CURVE key files.
 *
 * Key files hold one Z85 key (40 characters) and a newline; secret key files
 * are mode 0600.
 */
#ifndef FF_ZMQX_H
#define FF_ZMQX_H

#define ZMQX_KEY_LEN 40     /* Z85 text of a 32-byte key */
#define ZMQX_HEARTBEAT_MS 5000

/* Sets ZMQ_MAXMSGSIZE (WIRE_MAX_MSG), heartbeats (interval hb_ms, timeout and
 * TTL 3x), handshake interval (10 s), linger 0. 0 or -errno. */
int zmqx_apply_limits(void *sock, int hb_ms);

/* Loads the keypair from dir/{name}.pub and dir/{name}.key, or creates and
 * writes it when both are absent. pub/sec receive Z85 text (41 bytes).
 * 0 or -errno. */
int zmqx_keypair_load_or_create(const char *dir, const char *name, char pub[41], char sec[41]);

/* Checks s is a 40-character Z85 key; 0 or -EINVAL. */
int zmqx_key_check(const char *s);

/* A key at the start of line (leading blanks skipped): 40 Z85 characters
 * followed by the end of the line or a blank, as in key files and in
 * admin_keys lines "KEY NAME" (a longer word, such as a 128-digit signing
 * key, is no key). 0 with key filled and *rest (may be NULL) after it, or
 * -EINVAL. */
int zmqx_key_line(const char *line, char key[41], const char **rest);

/* The key on the first line of path that is neither blank nor a comment
 * (#), read as zmqx_key_line reads it; the file's bytes are wiped before
 * they are freed (it may be a secret key). 0, -EINVAL or -errno. */
int zmqx_read_key_file(const char *path, char out[41]);

#endif
