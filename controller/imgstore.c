/* imgstore.c: see imgstore.h. */
#define _GNU_SOURCE
#include "imgstore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "util.h"

#define MAX_UPLOADS 64
#define OPEN_CACHE 8
#define UPLOAD_IDLE_MS (3600u * 1000u)

struct upload {
    uint64_t token;
    uint64_t size;
    uint64_t received;
    uint64_t touched_ms;
    int fd;
    hash_ctx_t *hash;
};

struct open_blob {
    uint8_t sha[32];
    int fd;
    uint64_t size;
    uint64_t used;
};

struct imgstore {
    char dir[PATH_MAX - 128];
    uint64_t next_token;
    struct upload up[MAX_UPLOADS];
    struct open_blob open[OPEN_CACHE];
    uint64_t tick;
};

static void s_upload_free(imgstore_t *img, struct upload *u)
{
    char path[PATH_MAX];
    if (u->token == 0)
        return;
    if (u->fd >= 0)
        close(u->fd);
    snprintf(path, sizeof path, "%s/upload/%llu.part", img->dir, (unsigned long long)u->token);
    unlink(path);
    hash_destroy(&u->hash);
    memset(u, 0, sizeof *u);
    u->fd = -1;
}

int imgstore_open(const char *dir, imgstore_t **out)
{
    *out = NULL;
    imgstore_t *img = calloc(1, sizeof *img);
    if (img == NULL)
        return -ENOMEM;
    if (snprintf(img->dir, sizeof img->dir, "%s", dir) >= (int)sizeof img->dir) {
        free(img);
        return -ENAMETOOLONG;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/blobs", dir);
    int rc = util_mkdir_p(path, 0755);
    snprintf(path, sizeof path, "%s/upload", dir);
    if (rc == 0)
        rc = util_mkdir_p(path, 0700);
    if (rc < 0) {
        free(img);
        return rc;
    }
    for (int i = 0; i < MAX_UPLOADS; i++)
        img->up[i].fd = -1;
    for (int i = 0; i < OPEN_CACHE; i++)
        img->open[i].fd = -1;
    img->next_token = util_now_ms(); /* tokens differ across restarts */
    *out = img;
    return 0;
}

void imgstore_destroy(imgstore_t **img_p)
{
    if (img_p == NULL || *img_p == NULL)
        return;
    imgstore_t *img = *img_p;
    for (int i = 0; i < MAX_UPLOADS; i++)
        s_upload_free(img, &img->up[i]);
    for (int i = 0; i < OPEN_CACHE; i++)
        if (img->open[i].fd >= 0)
            close(img->open[i].fd);
    free(img);
    *img_p = NULL;
}

static struct upload *s_find(imgstore_t *img, uint64_t token)
{
    for (int i = 0; i < MAX_UPLOADS; i++)
        if (img->up[i].token == token && token != 0)
            return &img->up[i];
    return NULL;
}

int imgstore_upload_begin(imgstore_t *img, uint64_t size, uint64_t *token)
{
    uint64_t now = util_mono_ms();
    struct upload *u = NULL;
    for (int i = 0; i < MAX_UPLOADS; i++) {
        if (img->up[i].token != 0 && now - img->up[i].touched_ms > UPLOAD_IDLE_MS)
            s_upload_free(img, &img->up[i]);
        if (u == NULL && img->up[i].token == 0)
            u = &img->up[i];
    }
    if (u == NULL)
        return -EBUSY;
    u->token = ++img->next_token;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/upload/%llu.part", img->dir, (unsigned long long)u->token);
    u->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (u->fd < 0) {
        int e = -errno;
        u->token = 0;
        return e;
    }
    u->hash = hash_new();
    if (u->hash == NULL) {
        s_upload_free(img, u);
        return -ENOMEM;
    }
    u->size = size;
    u->received = 0;
    u->touched_ms = now;
    *token = u->token;
    return 0;
}

int imgstore_upload_write(imgstore_t *img, uint64_t token, uint64_t offset, const void *data,
                          size_t len)
{
    struct upload *u = s_find(img, token);
    if (u == NULL)
        return -ENOENT;
    if (offset != u->received)
        return -EINVAL;
    if (len > u->size - u->received)
        return -EFBIG;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(u->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        left -= (size_t)w;
    }
    hash_update(u->hash, data, len);
    u->received += len;
    u->touched_ms = util_mono_ms();
    return 0;
}

int imgstore_path(imgstore_t *img, const char *sha_hex, char *out, size_t n)
{
    if (strlen(sha_hex) != 64)
        return -EINVAL;
    if (snprintf(out, n, "%s/blobs/%.2s/%s", img->dir, sha_hex, sha_hex) >= (int)n)
        return -ENAMETOOLONG;
    return 0;
}

int imgstore_upload_commit(imgstore_t *img, uint64_t token, const char *expect_hex,
                           char sha_hex[65], uint64_t *size)
{
    struct upload *u = s_find(img, token);
    if (u == NULL)
        return -ENOENT;
    if (u->received != u->size) {
        s_upload_free(img, u);
        return -EPIPE;
    }
    uint8_t sha[32];
    hash_final(u->hash, sha);
    util_hex(sha, 32, sha_hex);
    if (expect_hex != NULL && strcmp(expect_hex, sha_hex) != 0) {
        s_upload_free(img, u);
        return -EBADMSG;
    }
    if (fsync(u->fd) < 0) {
        int e = -errno;
        s_upload_free(img, u);
        return e;
    }
    char from[PATH_MAX], to[PATH_MAX], dir[PATH_MAX];
    snprintf(from, sizeof from, "%s/upload/%llu.part", img->dir, (unsigned long long)u->token);
    snprintf(dir, sizeof dir, "%s/blobs/%.2s", img->dir, sha_hex);
    imgstore_path(img, sha_hex, to, sizeof to);
    int rc = util_mkdir_p(dir, 0755);
    if (rc == 0 && fchmod(u->fd, 0644) < 0)
        rc = -errno;
    if (rc == 0 && rename(from, to) < 0)
        rc = -errno;
    if (rc == 0)
        rc = util_fsync_dir_of(to);
    *size = u->size;
    s_upload_free(img, u);
    return rc;
}

void imgstore_upload_abort(imgstore_t *img, uint64_t token)
{
    struct upload *u = s_find(img, token);
    if (u)
        s_upload_free(img, u);
}

int imgstore_has(imgstore_t *img, const char *sha_hex, uint64_t *size)
{
    char path[PATH_MAX];
    if (imgstore_path(img, sha_hex, path, sizeof path) < 0)
        return 0;
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    if (size)
        *size = (uint64_t)st.st_size;
    return 1;
}

static struct open_blob *s_open_blob(imgstore_t *img, const uint8_t sha[32], int *err)
{
    struct open_blob *victim = &img->open[0];
    img->tick++;
    for (int i = 0; i < OPEN_CACHE; i++) {
        struct open_blob *b = &img->open[i];
        if (b->fd >= 0 && memcmp(b->sha, sha, 32) == 0) {
            b->used = img->tick;
            return b;
        }
        if (b->fd < 0 || b->used < victim->used)
            victim = b;
    }
    char hex[65], path[PATH_MAX];
    util_hex(sha, 32, hex);
    imgstore_path(img, hex, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        *err = -errno;
        close(fd);
        return NULL;
    }
    if (victim->fd >= 0)
        close(victim->fd);
    memcpy(victim->sha, sha, 32);
    victim->fd = fd;
    victim->size = (uint64_t)st.st_size;
    victim->used = img->tick;
    return victim;
}

int imgstore_read(imgstore_t *img, const uint8_t sha[32], uint64_t offset, void *buf, size_t len,
                  size_t *got, uint64_t *total)
{
    int err = 0;
    struct open_blob *b = s_open_blob(img, sha, &err);
    if (b == NULL)
        return err;
    *total = b->size;
    *got = 0;
    if (offset >= b->size)
        return 0;
    if (len > b->size - offset)
        len = (size_t)(b->size - offset);
    while (*got < len) {
        ssize_t r = pread(b->fd, (char *)buf + *got, len - *got, (off_t)(offset + *got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}
