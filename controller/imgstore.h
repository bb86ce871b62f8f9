/* imgstore.h: the controller's content-addressed image store.
 *
 * Layout under dir: blobs/<first two hex>/<sha256 hex> (read-only, 0644) and
 * upload/<token>.part for uploads in progress. A blob only appears under
 * blobs/ after its bytes hashed to its name (fsync, rename, fsync dir), so a
 * name is always a promise about the content. Uploads live in memory and in
 * upload/; an upload idle for more than an hour is dropped.
 */
#ifndef FF_IMGSTORE_H
#define FF_IMGSTORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct imgstore imgstore_t;

int imgstore_open(const char *dir, imgstore_t **out);
void imgstore_destroy(imgstore_t **img_p);

/* Starts an upload of `size` bytes. *token receives its handle. 0 or -errno. */
int imgstore_upload_begin(imgstore_t *img, uint64_t size, uint64_t *token);
/* Appends data at offset; offset must equal the bytes received so far.
 * -ENOENT unknown token, -EINVAL wrong offset, -EFBIG past size. */
int imgstore_upload_write(imgstore_t *img, uint64_t token, uint64_t offset, const void *data,
                          size_t len);
/* Finishes an upload: all bytes present, hash, move into blobs/. Writes the
 * hex digest (65 bytes) and size. When expect_hex is not NULL the digest must
 * match it (-EBADMSG otherwise, upload dropped). 0 or -errno. */
int imgstore_upload_commit(imgstore_t *img, uint64_t token, const char *expect_hex,
                           char sha_hex[65], uint64_t *size);
void imgstore_upload_abort(imgstore_t *img, uint64_t token);

/* 1 when the blob exists (size in *size), 0 when not. */
int imgstore_has(imgstore_t *img, const char *sha_hex, uint64_t *size);
/* Reads up to len bytes of blob sha (32 bytes) at offset. *got may be short
 * at the end. 0, -ENOENT, or -errno. Keeps a small cache of open files. */
int imgstore_read(imgstore_t *img, const uint8_t sha[32], uint64_t offset, void *buf, size_t len,
                  size_t *got, uint64_t *total);
/* Path of a blob (for tests and the CLI's show). */
int imgstore_path(imgstore_t *img, const char *sha_hex, char *out, size_t n);

#endif
