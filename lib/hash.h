/* hash.h: SHA-256 through libsodium (crypto_hash_sha256), streaming and whole-file. */
#ifndef FF_HASH_H
#define FF_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_LEN 32
#define HASH_HEX_LEN 64

typedef struct hash_ctx hash_ctx_t;

/* Call once per process before hashing (idempotent). 0 or -1. */
int hash_init(void);
hash_ctx_t *hash_new(void);
void hash_update(hash_ctx_t *h, const void *data, size_t len);
/* Writes the digest and resets h for reuse. */
void hash_final(hash_ctx_t *h, uint8_t out[HASH_LEN]);
void hash_destroy(hash_ctx_t **h_p);

/* SHA-256 of the first `len` bytes of a file (len = UINT64_MAX: all of it).
 * 0 or -errno; bytes hashed in *hashed if not NULL. */
int hash_file(const char *path, uint64_t len, uint8_t out[HASH_LEN], uint64_t *hashed);

#endif
