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

static int s_read_key(const char *path, char out[41])
{
    char *buf = NULL;
    size_t len = 0;
    int rc = util_read_file(path, 256, &buf, &len);
    if (rc < 0)
        return rc;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    rc = zmqx_key_check(buf);
    if (rc == 0)
        memcpy(out, buf, 41);
    free(buf);
    return rc;
}

int zmqx_keypair_load_or_create(const char *dir, const char *name, char pub[41], char sec[41])
{
    char ppath[PATH_MAX], spath[PATH_MAX];
    if (snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name) >= (int)sizeof ppath ||
        snprintf(spath, sizeof spath, "%s/%s.key", dir, name) >= (int)sizeof spath)
        return -ENAMETOOLONG;
    int rp = s_read_key(ppath, pub), rs = s_read_key(spath, sec);
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
