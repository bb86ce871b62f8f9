/* zmqx.c: see zmqx.h. */
#include "zmqx.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "util.h"
#include "wire.h"

int zmqx_apply_limits(void *sock, int hb_ms)
{
    int64_t maxmsg = WIRE_MAX_MSG + 4096;
    int zero = 0, hs = 10000, hb_ttl = hb_ms * 3, hb_to = hb_ms * 3;
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) < 0 ||
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(sock, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs) < 0)
        return -errno;
    if (hb_ms > 0 && (zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &hb_ms, sizeof hb_ms) < 0 ||
                      zmq_setsockopt(sock, ZMQ_HEARTBEAT_TTL, &hb_ttl, sizeof hb_ttl) < 0 ||
                      zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_to, sizeof hb_to) < 0))
        return -errno;
    return 0;
}

int zmqx_key_check(const char *s)
{
    static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              ".-:+=^!/*?&<>()[]{}@%$#";
    if (s == NULL || strlen(s) != ZMQX_KEY_LEN)
        return -EINVAL;
    for (const char *p = s; *p; p++)
        if (strchr(z85, *p) == NULL)
            return -EINVAL;
    uint8_t bin[32];
    if (zmq_z85_decode(bin, s) == NULL)
        return -EINVAL;
    return 0;
}

int zmqx_key_line(const char *line, char key[41], const char **rest)
{
    while (*line == ' ' || *line == '\t')
        line++;
    if (strnlen(line, ZMQX_KEY_LEN) < ZMQX_KEY_LEN || strchr(" \t\r", line[ZMQX_KEY_LEN]) == NULL)
        return -EINVAL; /* strchr finds the NUL too: the end of the line */
    memcpy(key, line, ZMQX_KEY_LEN);
    key[ZMQX_KEY_LEN] = '\0';
    if (zmqx_key_check(key) < 0)
        return -EINVAL;
    if (rest)
        *rest = line + ZMQX_KEY_LEN;
    return 0;
}

int zmqx_read_key_file(const char *path, char out[41])
{
    char *text = NULL;
    size_t len = 0;
    int rc = util_read_file(path, 4096, &text, &len);
    if (rc < 0)
        return rc;
    rc = -EINVAL;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line += strspn(line, " \t");
        if (*line == '#' || *line == '\0' || *line == '\r')
            continue;
        rc = zmqx_key_line(line, out, NULL);
        break;
    }
    explicit_bzero(text, len);
    free(text);
    return rc;
}

int zmqx_keypair_load_or_create(const char *dir, const char *name, char pub[41], char sec[41])
{
    char ppath[PATH_MAX], spath[PATH_MAX];
    if (snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name) >= (int)sizeof ppath ||
        snprintf(spath, sizeof spath, "%s/%s.key", dir, name) >= (int)sizeof spath)
        return -ENAMETOOLONG;
    int rp = zmqx_read_key_file(ppath, pub), rs = zmqx_read_key_file(spath, sec);
    if (rp == 0 && rs == 0)
        return 0;
    if (rp != -ENOENT || rs != -ENOENT)
        return rp < 0 ? rp : rs; /* one present and one not, or garbage: refuse */
    if (zmq_curve_keypair(pub, sec) < 0)
        return -errno;
    char line[42];
    snprintf(line, sizeof line, "%s\n", sec);
    int rc = util_write_file_atomic(spath, line, 41, 0600);
    if (rc == 0) {
        snprintf(line, sizeof line, "%s\n", pub);
        rc = util_write_file_atomic(ppath, line, 41, 0644);
    }
    return rc;
}
