/* imgcache.h: the agent's content-addressed image cache and the pull of
 * missing images from the controller.
 *
 * Layout: STATEDIR/cache/<sha256 hex> finished blobs (0644, verified),
 * STATEDIR/cache/partial/<hex>.part transfers in progress.
 * Invariants: a file appears under cache/ only by rename after its size and
 * SHA-256 were verified and it was fsync'd; the journal's verified_offset of a
 * partial never exceeds what was fdatasync'd to it, so a restart truncates to
 * it, re-hashes that prefix and resumes. One image is pulled at a time, with at
 * most two ImageRequests outstanding. With trusted signing keys, an image is
 * neither pulled nor cached nor served without a valid operator signature
 * (lib/sign.h), and a cache file changed on disk is not served.
 */
#ifndef FF_IMGCACHE_H
#define FF_IMGCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

#define IMGCACHE_SYNC_BYTES (8u << 20)   /* fdatasync + journal checkpoint */
#define IMGCACHE_STALL_MS 5000           /* re-request when nothing arrives */
#define IMGCACHE_UNAVAILABLE_MS 60000    /* retry an image the controller lacks */
#define IMGCACHE_MAX_IMAGE (64ull << 30) /* larger totals are refused */
#define IMGCACHE_MAX_IMAGES 4096         /* per SiteConfig */

/* Creates cache/ and cache/partial/ under a->state_dir and loads the index
 * from the journal. 0 or <0 (logged). */
int imgcache_new(struct agent *a, uint64_t rate, imgcache_t **out);
/* Checkpoints a transfer in progress into the current transaction, closes
 * handles (freed from close callbacks). Nulls *c_p. */
void imgcache_destroy(imgcache_t **c_p);

/* The images the site needs (from a validated SiteConfig). */
void imgcache_set_wanted(imgcache_t *c, const Firmfleet__SiteConfig *sc);
/* One ImageChunk from the controller (validated here). */
void imgcache_on_chunk(imgcache_t *c, const Firmfleet__ImageChunk *ch);
void imgcache_on_online(imgcache_t *c);
void imgcache_on_offline(imgcache_t *c);

/* SHA-256s of the cached images for Hello: *out is a malloc'd array (caller
 * frees the array only) whose entries point into the cache and stay valid
 * until the next call into the cache. 0 or -ENOMEM. */
int imgcache_cached_list(imgcache_t *c, ProtobufCBinaryData **out, size_t *n);

/* Opens the cached image r names, for serving (TFTP, HTTP, rollouts). With
 * trusted keys (signing on) r must carry a valid signature by one of them
 * over its sha256, size and name, and the file must still be what this
 * process verified (else it is re-hashed; see imgcache.c). Returns 0 with
 * *fd_out (caller closes), -ENOENT not cached, -EPERM refused (unsigned or
 * badly signed; reported once per image as image.refused), -EBADMSG the
 * file was tampered with (removed, reported, pulled again), or -errno.
 * Runs on the loop. */
int imgcache_open(struct agent *a, const Firmfleet__ImageRef *r, int *fd_out);

#endif
