/* util.c: see util.h. Everything here is pure or touches only the file named. */
#define _GNU_SOURCE
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int util_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int util_mac_parse(const char *s, uint8_t out[6])
{
    char digits[13];
    size_t nd = 0;
    size_t len = strlen(s);
    if (len != 12 && len != 14 && len != 17)
        return -EINVAL;
    /* separators must be consistent with one of the accepted layouts */
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (util_hexval((unsigned char)c) >= 0) {
            if (nd >= 12)
                return -EINVAL;
            digits[nd++] = c;
            continue;
        }
        if (len == 17 && (i % 3) == 2 && (c == ':' || c == '-') && c == s[2])
            continue;
        if (len == 14 && (i == 4 || i == 9) && c == '.')
            continue;
        return -EINVAL;
    }
    if (nd != 12)
        return -EINVAL;
    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t)(util_hexval((unsigned char)digits[2 * i]) << 4 |
                           util_hexval((unsigned char)digits[2 * i + 1]));
    return 0;
}

void util_mac_format(const uint8_t mac[6], char out[18])
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
             mac[5]);
}

int util_mac_canon(const char *s, char out[18])
{
    uint8_t mac[6];
    int rc = util_mac_parse(s, mac);
    if (rc < 0)
        return rc;
    util_mac_format(mac, out);
    return 0;
}

uint64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t util_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int util_parse_size(const char *s, uint64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024ull;
    else if (*end == 'M' || *end == 'm')
        mul = 1024ull * 1024;
    else if (*end == 'G' || *end == 'g')
        mul = 1024ull * 1024 * 1024;
    else if (*end != '\0')
        return -EINVAL;
    if (mul != 1 && end[1] != '\0' && !(end[1] == 'i' && end[2] == 'B' && end[3] == '\0') &&
        !(end[1] == 'B' && end[2] == '\0'))
        return -EINVAL;
    if (v > UINT64_MAX / mul)
        return -ERANGE;
    *out = v * mul;
    return 0;
}

int util_parse_duration(const char *s, int64_t min_secs, int64_t max_secs, int64_t *secs)
{
    int64_t total = 0;
    const char *p = s;
    if (p == NULL || *p == '\0')
        return -EINVAL;
    for (int parts = 0; *p != '\0'; parts++) {
        if (parts >= 4 || *p < '0' || *p > '9')
            return -EINVAL;
        int64_t v = 0;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p++ - '0');
            if (v > max_secs)
                return -EINVAL;
        }
        int64_t unit;
        switch (*p) {
        case '\0':
            unit = parts == 0 ? 1 : -1; /* "90" is seconds, "1h30" is not */
            break;
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -EINVAL;
        }
        if (unit < 0)
            return -EINVAL;
        if (*p != '\0')
            p++;
        total += v * unit;
        if (total > max_secs)
            return -EINVAL;
    }
    if (total < min_secs)
        return -EINVAL;
    *secs = total;
    return 0;
}

int util_mkdir_p(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int util_fsync_dir_of(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    char *slash = strrchr(buf, '/');
    if (slash == NULL)
        snprintf(buf, sizeof buf, ".");
    else if (slash == buf)
        buf[1] = '\0';
    else
        *slash = '\0';
    int fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int util_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            close(fd);
            unlink(tmp);
            return e;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
        int e = -errno;
        close(fd);
        unlink(tmp);
        return e;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    return util_fsync_dir_of(path);
}

int util_read_file(const char *path, size_t max, char **out, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return -EFBIG;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    if (len_out)
        *len_out = got;
    return 0;
}

void util_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void util_hex(const uint8_t *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int util_unhex(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = util_hexval((unsigned char)s[2 * i]),
            lo = util_hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

const char *util_show(const char *s, size_t n, size_t max, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n && s[i]; i++) {
        if (o == max) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char ch = (unsigned char)s[i];
        out[o++] = (ch >= 0x20 && ch < 0x7f && ch != '"') ? (char)ch : '?';
    }
    out[o] = '\0';
    return out;
}
