/* hash.c: see hash.h. */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <unistd.h>

struct hash_ctx {
    crypto_hash_sha256_state st;
};

int hash_init(void) { return sodium_init() < 0 ? -1 : 0; }

hash_ctx_t *hash_new(void)
{
    hash_ctx_t *h = malloc(sizeof *h);
    if (h)
        crypto_hash_sha256_init(&h->st);
    return h;
}

void hash_update(hash_ctx_t *h, const void *data, size_t len)
{
    crypto_hash_sha256_update(&h->st, data, len);
}

void hash_final(hash_ctx_t *h, uint8_t out[HASH_LEN])
{
    crypto_hash_sha256_final(&h->st, out);
    crypto_hash_sha256_init(&h->st);
}

void hash_destroy(hash_ctx_t **h_p)
{
    if (h_p && *h_p) {
        free(*h_p);
        *h_p = NULL;
    }
}

int hash_file(const char *path, uint64_t len, uint8_t out[HASH_LEN], uint64_t *hashed)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    enum { BUF = 1 << 20 };
    unsigned char *buf = malloc(BUF);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    uint64_t done = 0;
    int rc = 0;
    while (done < len) {
        size_t want = len - done < BUF ? (size_t)(len - done) : BUF;
        ssize_t r = read(fd, buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        crypto_hash_sha256_update(&st, buf, (size_t)r);
        done += (uint64_t)r;
    }
    free(buf);
    close(fd);
    if (rc == 0)
        crypto_hash_sha256_final(&st, out);
    if (hashed)
        *hashed = done;
    return rc;
}
