/* imgcache.c: see imgcache.h.
 *
 * Pull pipeline: requests cover [last_req_start, req_end); `expected` is the
 * next byte to write. A new request (credits = max_credits, from req_end) is
 * sent when nothing is outstanding, or when at least half of the single
 * outstanding request has arrived: so at most two requests are in flight and
 * the pipe never drains while the controller has credit. Chunks are accepted
 * only at `expected` (anything else is dropped); if nothing arrives for
 * IMGCACHE_STALL_MS the pipeline restarts from `expected`.
 *
 * --image-rate: a token bucket in bytes whose depth is one request; a request
 * is sent only when its bytes are covered, otherwise a timer waits for the
 * tokens. Slow rates also shrink the request so the link is not bursty.
 *
 * Resume after restart re-hashes the verified prefix in 8 MiB steps from a
 * uv_idle_t so the loop keeps serving while a large partial is re-read.
 *
 * Signatures (lib/sign.h): with trusted keys (the agent's own --trust-key,
 * else SiteConfig.trusted_keys) an image whose ImageRef carries no valid
 * signature by one of them is not pulled, and is checked again after the
 * SHA-256 and before the rename into cache/, so nothing unsigned is ever
 * cached. Serving (imgcache_open) checks the ImageRef it serves by again
 * (one Ed25519 verify, tens of microseconds) and that the file is still the
 * one whose SHA-256 this process verified: each verified file is remembered
 * by (dev, inode, size, mtime, ctime). Any write, truncation, replacement by
 * rename, or utimes() on it changes ctime, which userland cannot set back,
 * so a mismatch means re-hash; a wrong hash means tampered: the file is
 * removed, reported (image.refused reason=tampered) and pulled again. After
 * a start nothing is remembered, so the first serve of each image re-hashes
 * it (once, on the loop). Not covered: bytes changed while a transfer that
 * already passed the check is reading the file, and raw writes to the block
 * device underneath the file system.
 */
#include "imgcache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "sign.h"
#include "uplink.h"
#include "util.h"
#include "wire.h"

#define IMGCACHE_TICK_MS 1000
#define REHASH_STEP (8u << 20)
#define REHASH_BUF (1u << 20)

struct want {
    uint8_t sha[HASH_LEN];
    char hex[HASH_HEX_LEN + 1];
    uint64_t size;
    char name[256];
    uint64_t retry_at_ms; /* monotonic; 0 = now */
    int corrupt_count;
    uint8_t sig[SIGN_SIG_LEN];
    size_t sig_len; /* 0 = unsigned; other than SIGN_SIG_LEN = malformed */
    uint8_t signer[SIGN_PK_LEN];
    size_t signer_len;
    int trust; /* 0 unchecked, 1 acceptable, -1 refused (reported) */
    int full_reported; /* cache.full said for this image (until it fits) */
};

/* A cache file whose SHA-256 this process verified, as it was then. */
struct verified {
    uint8_t sha[HASH_LEN];
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct pull {
    uint8_t sha[HASH_LEN];
    char hex[HASH_HEX_LEN + 1];
    char name[256];
    char path[PATH_MAX];
    int fd;
    hash_ctx_t *h;
    uint64_t total;    /* 0 until known */
    uint64_t expected; /* next byte to write; all before it is written and hashed */
    uint64_t req_end;  /* end of the requested range */
    uint64_t last_req_start;
    uint64_t last_req_len;
    uint64_t last_rx_ms;     /* last chunk (or request) time, monotonic */
    uint64_t verified;       /* as recorded in the journal */
    uint64_t bytes_received; /* across restarts */
    uint64_t since_sync;
    int rehashing;
    uint64_t rehash_pos;
    uint8_t *rehash_buf;
};

struct imgcache {
    struct agent *a;
    char cache_dir[PATH_MAX - 256];
    char partial_dir[PATH_MAX - 256];
    struct want *wanted;
    size_t n_wanted;
    uint8_t (*cached)[HASH_LEN];
    size_t n_cached;
    size_t cap_cached;
    struct pull *cur;
    uv_timer_t tick;
    uv_timer_t rate_timer;
    uv_idle_t work;
    int open_handles;
    uint64_t rate; /* bytes per second, 0 = unlimited */
    double tokens;
    uint64_t tokens_ms;
    uint64_t bucket;
    uint32_t max_credits;
    struct verified *verified;
    size_t n_verified, cap_verified;
    uint8_t (*reported)[HASH_LEN]; /* refused at serve time and reported, this run */
    size_t n_reported, cap_reported;
    int signing; /* -1 not yet logged, else the number of trusted keys last logged */
    uint8_t keys_seen[SIGN_MAX_KEYS][SIGN_PK_LEN]; /* the trusted keys at the last set_wanted */
    size_t n_keys_seen;
};

static void s_next(imgcache_t *c);
static void s_request_more(imgcache_t *c);

/* ---- small helpers ---- */

static void s_cache_path(const imgcache_t *c, const char *hex, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", c->cache_dir, hex);
}

static int s_is_cached(const imgcache_t *c, const uint8_t sha[HASH_LEN])
{
    for (size_t i = 0; i < c->n_cached; i++)
        if (memcmp(c->cached[i], sha, HASH_LEN) == 0)
            return 1;
    return 0;
}

static int s_add_cached(imgcache_t *c, const uint8_t sha[HASH_LEN])
{
    if (s_is_cached(c, sha))
        return 0;
    if (c->n_cached == c->cap_cached) {
        size_t cap = c->cap_cached ? c->cap_cached * 2 : 16;
        void *n = realloc(c->cached, cap * sizeof *c->cached);
        if (n == NULL)
            return -ENOMEM;
        c->cached = n;
        c->cap_cached = cap;
    }
    memcpy(c->cached[c->n_cached++], sha, HASH_LEN);
    return 0;
}

static struct want *s_find_want(imgcache_t *c, const uint8_t sha[HASH_LEN])
{
    for (size_t i = 0; i < c->n_wanted; i++)
        if (memcmp(c->wanted[i].sha, sha, HASH_LEN) == 0)
            return &c->wanted[i];
    return NULL;
}

/* The trusted keys: the agent's pinned ones, else the controller's. */
static size_t s_keys(const imgcache_t *c, uint8_t out[SIGN_MAX_KEYS][SIGN_PK_LEN], int *pinned)
{
    const struct agent *a = c->a;
    *pinned = a->n_trust_keys > 0;
    if (*pinned) {
        memcpy(out, a->trust_keys, a->n_trust_keys * SIGN_PK_LEN);
        return a->n_trust_keys;
    }
    const Firmfleet__SiteConfig *sc = agent_config(a);
    size_t n = 0;
    for (size_t i = 0; sc && i < sc->n_trusted_keys && n < SIGN_MAX_KEYS; i++)
        if (sc->trusted_keys[i].len == SIGN_PK_LEN)
            memcpy(out[n++], sc->trusted_keys[i].data, SIGN_PK_LEN);
    return n;
}

/* 0 when an image (sha, size, name, signature, signer) may be cached and
 * served: no trusted key (signing off), or a valid signature by one. Else
 * -EPERM with the reason. */
static int s_trust_check(const imgcache_t *c, const uint8_t sha[HASH_LEN], uint64_t size,
                         const char *name, const uint8_t *sig, size_t sig_len,
                         const uint8_t *signer, size_t signer_len, const char **reason)
{
    uint8_t keys[SIGN_MAX_KEYS][SIGN_PK_LEN];
    int pinned;
    size_t n = s_keys(c, keys, &pinned);
    *reason = "signing_off";
    if (n == 0)
        return 0;
    return sign_trust_verify((const uint8_t(*)[SIGN_PK_LEN])keys, n, signer, signer_len, sig,
                             sig_len, sha, size, name ? name : "", reason);
}

static int s_want_trusted(const imgcache_t *c, const struct want *w, const char **reason)
{
    return s_trust_check(c, w->sha, w->size, w->name, w->sig, w->sig_len, w->signer, w->signer_len,
                         reason);
}

static void s_emit(imgcache_t *c, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs and reports a refused image. */
static void s_refused(imgcache_t *c, const char *hex, const char *name, const char *reason,
                      const uint8_t *signer, size_t signer_len)
{
    char q[300], id[SIGN_ID_HEX + 1] = "none";
    if (signer_len == SIGN_PK_LEN)
        sign_key_id(signer, id);
    log_quote(name ? name : "", q, sizeof q);
    log_warn("image.refused", "sha256=%s name=%s reason=%s signer=%s", hex, q, reason, id);
    s_emit(c, "image.refused", "sha256=%s name=%s reason=%s signer=%s", hex, q, reason, id);
}

static struct verified *s_find_verified(imgcache_t *c, const uint8_t sha[HASH_LEN])
{
    for (size_t i = 0; i < c->n_verified; i++)
        if (memcmp(c->verified[i].sha, sha, HASH_LEN) == 0)
            return &c->verified[i];
    return NULL;
}

/* Remembers what the file at fd looks like now, its SHA-256 just checked. */
static void s_mark_verified(imgcache_t *c, const uint8_t sha[HASH_LEN], int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return;
    struct verified *v = s_find_verified(c, sha);
    if (v == NULL) {
        if (c->n_verified == c->cap_verified) {
            size_t cap = c->cap_verified ? c->cap_verified * 2 : 16;
            void *nv = realloc(c->verified, cap * sizeof *c->verified);
            if (nv == NULL)
                return;
            c->verified = nv;
            c->cap_verified = cap;
        }
        v = &c->verified[c->n_verified++];
        memcpy(v->sha, sha, HASH_LEN);
    }
    v->dev = st.st_dev;
    v->ino = st.st_ino;
    v->size = st.st_size;
    v->mtime = st.st_mtim;
    v->ctime = st.st_ctim;
}

static void s_forget_verified(imgcache_t *c, const uint8_t sha[HASH_LEN])
{
    struct verified *v = s_find_verified(c, sha);
    if (v != NULL)
        *v = c->verified[--c->n_verified];
}

static int s_online(const imgcache_t *c)
{
    return uplink_online(c->a->up);
}

static int s_write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static void s_journal_row(imgcache_t *c, const struct pull *p, enum journal_img_state state,
                          uint64_t verified)
{
    journal_t *j = agent_tx(c->a);
    if (j == NULL)
        return;
    struct journal_image row;
    memset(&row, 0, sizeof row);
    memcpy(row.sha_hex, p->hex, sizeof row.sha_hex);
    snprintf(row.name, sizeof row.name, "%s", p->name);
    row.size = p->total;
    row.state = state;
    row.verified_offset = verified;
    row.bytes_received = p->bytes_received;
    journal_image_put(j, &row);
}

/* Makes the written prefix durable and records it. */
static void s_checkpoint(imgcache_t *c)
{
    struct pull *p = c->cur;
    if (p == NULL || p->fd < 0 || p->rehashing)
        return;
    if (fdatasync(p->fd) < 0) {
        log_error("image.sync_failed", "sha256=%s error=\"%s\"", p->hex, strerror(errno));
        return;
    }
    p->verified = p->expected;
    p->since_sync = 0;
    s_journal_row(c, p, JOURNAL_IMG_PARTIAL, p->verified);
}

static void s_pull_free(imgcache_t *c, int checkpoint)
{
    struct pull *p = c->cur;
    if (p == NULL)
        return;
    if (checkpoint && p->expected > p->verified)
        s_checkpoint(c);
    c->cur = NULL;
    if (p->fd >= 0)
        close(p->fd);
    hash_destroy(&p->h);
    free(p->rehash_buf);
    free(p);
    uv_idle_stop(&c->work);
    uv_timer_stop(&c->rate_timer);
}

static void s_retry_later(imgcache_t *c, const uint8_t sha[HASH_LEN], uint64_t ms)
{
    struct want *w = s_find_want(c, sha);
    if (w != NULL)
        w->retry_at_ms = util_mono_ms() + ms;
}

/* ---- finishing ---- */

static void s_emit(imgcache_t *c, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_emit(imgcache_t *c, const char *kind, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (agent_emit_event(c->a, kind, "", detail) < 0)
        log_error("event.lost", "kind=%s", kind);
}

static void s_mark_cached(imgcache_t *c, const struct pull *p, const char *how)
{
    s_journal_row(c, p, JOURNAL_IMG_CACHED, p->total);
    s_add_cached(c, p->sha);
    s_emit(c, "image.cached", "sha256=%s size=%" PRIu64 " bytes_received=%" PRIu64, p->hex,
           p->total, p->bytes_received);
    char q[300];
    log_info("image.cached", "sha256=%s name=%s size=%" PRIu64 " bytes_received=%" PRIu64 " how=%s",
             p->hex, log_quote(p->name, q, sizeof q), p->total, p->bytes_received, how);
    struct want *w = s_find_want(c, p->sha);
    if (w != NULL)
        w->corrupt_count = 0;
}

static void s_finish(imgcache_t *c)
{
    struct pull *p = c->cur;
    uint8_t digest[HASH_LEN];
    hash_final(p->h, digest);
    if (fsync(p->fd) < 0 || fchmod(p->fd, 0644) < 0) {
        log_error("image.sync_failed", "sha256=%s error=\"%s\"", p->hex, strerror(errno));
        s_retry_later(c, p->sha, IMGCACHE_UNAVAILABLE_MS);
        s_pull_free(c, 0);
        return;
    }
    if (memcmp(digest, p->sha, HASH_LEN) != 0) {
        char got[HASH_HEX_LEN + 1];
        util_hex(digest, HASH_LEN, got);
        log_warn("image.corrupt", "sha256=%s got=%s size=%" PRIu64, p->hex, got, p->total);
        s_emit(c, "image.corrupt", "sha256=%s got=%s size=%" PRIu64 " bytes_received=%" PRIu64,
               p->hex, got, p->total, p->bytes_received);
        unlink(p->path);
        s_journal_row(c, p, JOURNAL_IMG_CORRUPT, 0);
        struct want *w = s_find_want(c, p->sha);
        if (w != NULL) {
            /* start over at once; if it keeps happening, slow down */
            uint64_t back = (uint64_t)w->corrupt_count * 5000;
            w->corrupt_count++;
            w->retry_at_ms = util_mono_ms() + (back > 300000 ? 300000 : back);
        }
        s_pull_free(c, 0);
        s_next(c);
        return;
    }
    /* the bytes are the ones named; now whether they may be cached at all */
    struct want *tw = s_find_want(c, p->sha);
    const char *why;
    int trusted = tw ? s_trust_check(c, p->sha, p->total, tw->name, tw->sig, tw->sig_len,
                                     tw->signer, tw->signer_len, &why)
                     : s_trust_check(c, p->sha, p->total, p->name, NULL, 0, NULL, 0, &why);
    if (trusted < 0) {
        if (tw == NULL || tw->trust != -1)
            s_refused(c, p->hex, p->name, why, tw ? tw->signer : NULL, tw ? tw->signer_len : 0);
        if (tw != NULL)
            tw->trust = -1;
        unlink(p->path);
        journal_t *j = agent_tx(c->a);
        if (j != NULL)
            journal_image_delete(j, p->hex);
        s_pull_free(c, 0);
        s_next(c);
        return;
    }
    char final[PATH_MAX];
    s_cache_path(c, p->hex, final, sizeof final);
    if (rename(p->path, final) < 0 || util_fsync_dir_of(final) < 0) {
        log_error("image.rename_failed", "sha256=%s error=\"%s\"", p->hex, strerror(errno));
        s_retry_later(c, p->sha, IMGCACHE_UNAVAILABLE_MS);
        s_pull_free(c, 0);
        return;
    }
    /* after the rename, which changes the file's ctime on most file systems */
    s_mark_verified(c, p->sha, p->fd);
    close(p->fd);
    p->fd = -1;
    s_mark_cached(c, p, "pulled");
    s_pull_free(c, 0);
    s_next(c);
}

/* A complete blob already in cache/ that the journal does not list (crash
 * between the rename and the commit, or put there by hand): adopt it if it
 * hashes right, else remove it. Returns 1 adopted. */
static int s_adopt(imgcache_t *c, const struct want *w)
{
    char path[PATH_MAX];
    s_cache_path(c, w->hex, path, sizeof path);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    uint8_t digest[HASH_LEN];
    uint64_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat before;
    if (fd < 0 || fstat(fd, &before) < 0 || hash_file(path, UINT64_MAX, digest, &n) < 0 ||
        memcmp(digest, w->sha, HASH_LEN) != 0) {
        log_warn("image.cache_mismatch", "sha256=%s reason=\"removed\"", w->hex);
        if (fd >= 0)
            close(fd);
        unlink(path);
        return 0;
    }
    s_mark_verified(c, w->sha, fd);
    struct verified *v = s_find_verified(c, w->sha);
    if (v != NULL && (v->ino != before.st_ino || v->size != (off_t)n))
        s_forget_verified(c, w->sha); /* changed while hashing: hash again when served */
    close(fd);
    struct pull p;
    memset(&p, 0, sizeof p);
    memcpy(p.sha, w->sha, HASH_LEN);
    memcpy(p.hex, w->hex, sizeof p.hex);
    memcpy(p.name, w->name, sizeof p.name);
    p.total = n;
    struct journal_image row;
    if (journal_image_get(c->a->jr, w->hex, &row) == 1)
        p.bytes_received = row.bytes_received;
    s_mark_cached(c, &p, "adopted");
    return 1;
}

/* ---- pulling ---- */

static void s_on_rate_timer(uv_timer_t *t)
{
    s_request_more(t->data);
}

static int s_take_tokens(imgcache_t *c, uint64_t bytes)
{
    if (c->rate == 0)
        return 1;
    uint64_t now = util_mono_ms();
    c->tokens += (double)(now - c->tokens_ms) * (double)c->rate / 1000.0;
    if (c->tokens > (double)c->bucket)
        c->tokens = (double)c->bucket;
    c->tokens_ms = now;
    if (c->tokens >= (double)bytes) {
        c->tokens -= (double)bytes;
        return 1;
    }
    uint64_t wait = (uint64_t)(((double)bytes - c->tokens) * 1000.0 / (double)c->rate) + 1;
    if (!uv_is_active((uv_handle_t *)&c->rate_timer))
        uv_timer_start(&c->rate_timer, s_on_rate_timer, wait, 0);
    return 0;
}

static int s_send_request(imgcache_t *c, struct pull *p, uint64_t offset, uint32_t credits)
{
    Firmfleet__ImageRequest rq = FIRMFLEET__IMAGE_REQUEST__INIT;
    rq.sha256.data = p->sha;
    rq.sha256.len = HASH_LEN;
    rq.offset = offset;
    rq.credits = credits;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_IMAGE_REQUEST;
    env.image_request = &rq;
    int rc = uplink_send(c->a->up, &env);
    if (rc < 0)
        log_debug("image.request_failed", "sha256=%s offset=%" PRIu64 " error=%d", p->hex, offset,
                  rc);
    else
        log_debug("image.request", "sha256=%s offset=%" PRIu64 " credits=%u", p->hex, offset,
                  credits);
    return rc;
}

static void s_request_more(imgcache_t *c)
{
    struct pull *p = c->cur;
    if (p == NULL || p->rehashing || !s_online(c))
        return;
    for (int i = 0; i < 2; i++) {
        if (p->total != 0 && p->req_end >= p->total)
            return;
        if (p->req_end > p->expected) {
            if (p->expected < p->last_req_start)
                return; /* two outstanding */
            if (p->expected - p->last_req_start < (p->last_req_len + 1) / 2)
                return; /* the one outstanding is not half in yet */
        }
        uint64_t left = p->total ? p->total - p->req_end : UINT64_MAX;
        uint64_t chunks = p->total ? (left + WIRE_CHUNK - 1) / WIRE_CHUNK : c->max_credits;
        uint32_t credits = chunks < c->max_credits ? (uint32_t)chunks : c->max_credits;
        uint64_t bytes = (uint64_t)credits * WIRE_CHUNK;
        if (bytes > left)
            bytes = left;
        if (!s_take_tokens(c, bytes))
            return;
        if (s_send_request(c, p, p->req_end, credits) < 0) {
            if (c->rate)
                c->tokens += (double)bytes; /* retried from the tick */
            return;
        }
        p->last_req_start = p->req_end;
        p->last_req_len = bytes;
        p->req_end += bytes;
        p->last_rx_ms = util_mono_ms();
    }
}

static void s_restart_pipeline(struct pull *p)
{
    p->req_end = p->expected;
    p->last_req_start = p->expected;
    p->last_req_len = 0;
}

static void s_rehash_failed(imgcache_t *c, const char *why)
{
    struct pull *p = c->cur;
    log_warn("image.resume_failed", "sha256=%s reason=%s offset=0", p->hex, why);
    hash_destroy(&p->h);
    p->h = hash_new();
    if (p->h == NULL || ftruncate(p->fd, 0) < 0) {
        s_retry_later(c, p->sha, IMGCACHE_UNAVAILABLE_MS);
        s_pull_free(c, 0);
        return;
    }
    p->verified = p->expected = 0;
    p->rehashing = 0;
    s_restart_pipeline(p);
    s_journal_row(c, p, JOURNAL_IMG_PARTIAL, 0);
}

static void s_on_work(uv_idle_t *h)
{
    imgcache_t *c = h->data;
    struct pull *p = c->cur;
    if (p == NULL || !p->rehashing) {
        uv_idle_stop(h);
        return;
    }
    uint64_t step_end = p->rehash_pos + REHASH_STEP;
    while (p->rehash_pos < p->verified && p->rehash_pos < step_end) {
        uint64_t want = p->verified - p->rehash_pos;
        if (want > REHASH_BUF)
            want = REHASH_BUF;
        ssize_t r = pread(p->fd, p->rehash_buf, (size_t)want, (off_t)p->rehash_pos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            uv_idle_stop(h);
            s_rehash_failed(c, r < 0 ? "read_error" : "short_file");
            s_request_more(c);
            return;
        }
        hash_update(p->h, p->rehash_buf, (size_t)r);
        p->rehash_pos += (uint64_t)r;
    }
    if (p->rehash_pos < p->verified)
        return; /* next turn */
    uv_idle_stop(h);
    p->rehashing = 0;
    free(p->rehash_buf);
    p->rehash_buf = NULL;
    log_debug("image.rehashed", "sha256=%s offset=%" PRIu64, p->hex, p->verified);
    s_request_more(c);
}

static int s_pull_start(imgcache_t *c, const struct want *w)
{
    struct journal_image row;
    int have = journal_image_get(c->a->jr, w->hex, &row);
    if (have < 0)
        return have;
    struct pull *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p->sha, w->sha, HASH_LEN);
    memcpy(p->hex, w->hex, sizeof p->hex);
    memcpy(p->name, w->name, sizeof p->name);
    p->total = w->size;
    if (have == 1) {
        p->bytes_received = row.bytes_received;
        if (row.state == JOURNAL_IMG_PARTIAL && (row.size == w->size || row.size == 0))
            p->verified = row.verified_offset;
    }
    snprintf(p->path, sizeof p->path, "%s/%s.part", c->partial_dir, w->hex);
    p->fd = open(p->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    p->h = hash_new();
    struct stat st;
    if (p->fd < 0 || p->h == NULL || fstat(p->fd, &st) < 0) {
        log_error("image.open_failed", "path=%s error=\"%s\"", p->path, strerror(errno));
        if (p->fd >= 0)
            close(p->fd);
        hash_destroy(&p->h);
        free(p);
        return -EIO;
    }
    if ((uint64_t)st.st_size < p->verified || (p->total && p->verified > p->total)) {
        log_warn("image.partial_short", "sha256=%s recorded=%" PRIu64 " on_disk=%lld", p->hex,
                 p->verified, (long long)st.st_size);
        p->verified = 0;
    }
    if (ftruncate(p->fd, (off_t)p->verified) < 0) {
        log_error("image.truncate_failed", "path=%s error=\"%s\"", p->path, strerror(errno));
        close(p->fd);
        hash_destroy(&p->h);
        free(p);
        return -EIO;
    }
    p->expected = p->verified;
    s_restart_pipeline(p);
    p->last_rx_ms = util_mono_ms();
    c->cur = p;
    s_journal_row(c, p, JOURNAL_IMG_PARTIAL, p->verified);
    char q[300];
    log_info("image.pull", "sha256=%s name=%s size=%" PRIu64 " offset=%" PRIu64 " mode=%s", p->hex,
             log_quote(p->name, q, sizeof q), p->total, p->verified,
             p->verified ? "resume" : "start");
    if (p->verified > 0) {
        p->rehash_buf = malloc(REHASH_BUF);
        if (p->rehash_buf == NULL) {
            s_rehash_failed(c, "no_memory");
        } else {
            p->rehashing = 1;
            uv_idle_start(&c->work, s_on_work);
            return 0;
        }
    }
    s_request_more(c);
    return 0;
}

/* Room for an image on the state directory's file system: what it still
 * needs (total minus what a partial already holds) plus a reserve for the
 * journal (IMGCACHE_RESERVE or 5% of the file system, the larger), so that
 * a big image can never fill the disk the leases are written to. 1 room,
 * 0 not (free and need filled), -errno when statvfs fails (then: try). */
#define IMGCACHE_RESERVE (8u << 20)
static int s_room(imgcache_t *c, const struct want *w, uint64_t *free_b, uint64_t *need)
{
    struct statvfs sv;
    if (statvfs(c->partial_dir, &sv) < 0)
        return -errno;
    uint64_t fr = (uint64_t)sv.f_frsize ? (uint64_t)sv.f_frsize : (uint64_t)sv.f_bsize;
    uint64_t avail = (uint64_t)sv.f_bavail * fr, total = (uint64_t)sv.f_blocks * fr;
    uint64_t reserve = total / 20 > IMGCACHE_RESERVE ? total / 20 : IMGCACHE_RESERVE;
    uint64_t have = 0;
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.part", c->partial_dir, w->hex);
    if (stat(path, &st) == 0 && st.st_size > 0)
        have = (uint64_t)st.st_size;
    *free_b = avail;
    *need = (w->size > have ? w->size - have : 0) + reserve;
    return avail >= *need;
}

static void s_next(imgcache_t *c)
{
    if (c->cur != NULL || !s_online(c))
        return;
    uint64_t now = util_mono_ms();
    for (size_t i = 0; i < c->n_wanted && c->cur == NULL; i++) {
        struct want *w = &c->wanted[i];
        if (s_is_cached(c, w->sha) || now < w->retry_at_ms || w->trust < 0)
            continue;
        if (w->trust == 0) {
            const char *why;
            if (s_want_trusted(c, w, &why) < 0) {
                s_refused(c, w->hex, w->name, why, w->signer, w->signer_len);
                w->trust = -1; /* until the configuration (or its keys) changes */
                continue;
            }
            w->trust = 1;
        }
        if (s_adopt(c, w))
            continue;
        uint64_t free_b = 0, need = 0;
        if (s_room(c, w, &free_b, &need) == 0) {
            /* leave the disk to the journal: devices that need no new
             * image go on being served; try again in a while */
            if (!w->full_reported) {
                char q[300];
                log_error("cache.full",
                          "sha256=%s name=%s need=%" PRIu64 " free=%" PRIu64
                          " reason=\"not enough space for the image and the journal's reserve\"",
                          w->hex, log_quote(w->name, q, sizeof q), need, free_b);
                s_emit(c, "cache.full", "sha256=%s need=%" PRIu64 " free=%" PRIu64, w->hex, need,
                       free_b);
                w->full_reported = 1;
            }
            w->retry_at_ms = now + IMGCACHE_UNAVAILABLE_MS;
            continue;
        }
        w->full_reported = 0;
        if (s_pull_start(c, w) < 0)
            w->retry_at_ms = now + IMGCACHE_UNAVAILABLE_MS;
    }
}

/* ---- chunks ---- */

void imgcache_on_chunk(imgcache_t *c, const Firmfleet__ImageChunk *ch)
{
    struct pull *p = c->cur;
    char q[300];
    if (ch->sha256.len != HASH_LEN || ch->sha256.data == NULL) {
        log_warn("image.bad_chunk", "reason=sha256_length len=%zu", ch->sha256.len);
        return;
    }
    if (p == NULL || memcmp(ch->sha256.data, p->sha, HASH_LEN) != 0) {
        log_debug("image.stale_chunk", "offset=%" PRIu64, ch->offset);
        return;
    }
    if (ch->error != NULL && ch->error[0] != '\0') {
        log_warn("image.unavailable", "sha256=%s error=%s retry_ms=%d", p->hex,
                 log_quote(ch->error, q, sizeof q), IMGCACHE_UNAVAILABLE_MS);
        s_emit(c, "image.unavailable", "sha256=%s error=%s", p->hex, q);
        s_retry_later(c, p->sha, IMGCACHE_UNAVAILABLE_MS);
        s_pull_free(c, 1);
        s_next(c);
        return;
    }
    if (p->rehashing) {
        log_debug("image.stale_chunk", "offset=%" PRIu64 " reason=rehashing", ch->offset);
        return;
    }
    if (ch->data.len > WIRE_CHUNK || (ch->data.len > 0 && ch->data.data == NULL) ||
        ch->total == 0 || ch->total > IMGCACHE_MAX_IMAGE || ch->offset >= ch->total ||
        ch->data.len > ch->total - ch->offset || ch->data.len == 0) {
        log_warn("image.bad_chunk", "sha256=%s offset=%" PRIu64 " len=%zu total=%" PRIu64, p->hex,
                 ch->offset, ch->data.len, ch->total);
        return;
    }
    if (p->total == 0) {
        p->total = ch->total; /* the catalog did not say; the first chunk does */
    } else if (ch->total != p->total) {
        log_warn("image.size_mismatch", "sha256=%s expected=%" PRIu64 " got=%" PRIu64, p->hex,
                 p->total, ch->total);
        s_emit(c, "image.unavailable",
               "sha256=%s error=size_mismatch expected=%" PRIu64 " got=%" PRIu64, p->hex, p->total,
               ch->total);
        s_retry_later(c, p->sha, IMGCACHE_UNAVAILABLE_MS);
        s_pull_free(c, 1);
        s_next(c);
        return;
    }
    if (ch->offset != p->expected) {
        log_debug("image.out_of_order", "sha256=%s offset=%" PRIu64 " expected=%" PRIu64, p->hex,
                  ch->offset, p->expected);
        return;
    }
    int rc = s_write_all(p->fd, ch->data.data, ch->data.len, ch->offset);
    if (rc < 0) {
        log_error("image.write_failed", "sha256=%s offset=%" PRIu64 " error=\"%s\"", p->hex,
                  ch->offset, strerror(-rc));
        s_retry_later(c, p->sha, IMGCACHE_UNAVAILABLE_MS);
        s_pull_free(c, 1);
        return;
    }
    hash_update(p->h, ch->data.data, ch->data.len);
    p->expected += ch->data.len;
    p->bytes_received += ch->data.len;
    p->since_sync += ch->data.len;
    p->last_rx_ms = util_mono_ms();
    if (p->expected == p->total) {
        s_finish(c);
        return;
    }
    if (p->since_sync >= IMGCACHE_SYNC_BYTES)
        s_checkpoint(c);
    else /* count what arrived even if a crash loses it: it crossed the link */
        s_journal_row(c, p, JOURNAL_IMG_PARTIAL, p->verified);
    s_request_more(c);
}

/* ---- timers, link state ---- */

static void s_on_tick(uv_timer_t *t)
{
    imgcache_t *c = t->data;
    struct pull *p = c->cur;
    if (p == NULL) {
        s_next(c);
        return;
    }
    if (p->rehashing || !s_online(c) || uv_is_active((uv_handle_t *)&c->rate_timer))
        return;
    if (p->req_end > p->expected && util_mono_ms() - p->last_rx_ms >= IMGCACHE_STALL_MS) {
        log_info("image.stall", "sha256=%s offset=%" PRIu64 " reason=\"nothing for 5 s\"", p->hex,
                 p->expected);
        s_restart_pipeline(p);
    }
    s_request_more(c); /* also retries a request that could not be sent */
}

void imgcache_on_online(imgcache_t *c)
{
    if (c->cur != NULL)
        s_restart_pipeline(c->cur);
    s_next(c);
    s_request_more(c);
}

void imgcache_on_offline(imgcache_t *c)
{
    if (c->cur != NULL)
        s_restart_pipeline(c->cur); /* what was in flight died with the connection */
}

/* Says once, and on every change, whether images are checked and by what. */
static void s_log_signing(imgcache_t *c)
{
    uint8_t keys[SIGN_MAX_KEYS][SIGN_PK_LEN];
    int pinned;
    size_t n = s_keys(c, keys, &pinned);
    if (c->signing == (int)n)
        return;
    c->signing = (int)n;
    if (n == 0) {
        log_warn("image.signing_off",
                 "reason=\"no trusted key (--trust-key, or from the controller): image "
                 "signatures are not checked\"");
        return;
    }
    char ids[SIGN_MAX_KEYS * (SIGN_ID_HEX + 1) + 1] = "";
    for (size_t i = 0; i < n; i++) {
        char id[SIGN_ID_HEX + 1];
        sign_key_id(keys[i], id);
        strcat(ids, i ? "," : "");
        strcat(ids, id);
    }
    log_info("image.signing_on", "keys=%s source=%s", ids, pinned ? "pinned" : "controller");
}

void imgcache_set_wanted(imgcache_t *c, const Firmfleet__SiteConfig *sc)
{
    struct want *nw = calloc(sc->n_images ? sc->n_images : 1, sizeof *nw);
    if (nw == NULL) {
        log_error("image.no_memory", "images=%zu", sc->n_images);
        return;
    }
    size_t n = 0;
    uint8_t keys[SIGN_MAX_KEYS][SIGN_PK_LEN];
    int pinned;
    size_t nk = s_keys(c, keys, &pinned);
    int same_keys = nk == c->n_keys_seen && memcmp(keys, c->keys_seen, nk * SIGN_PK_LEN) == 0;
    memcpy(c->keys_seen, keys, nk * SIGN_PK_LEN);
    c->n_keys_seen = nk;
    for (size_t i = 0; i < sc->n_images; i++) {
        const Firmfleet__ImageRef *r = sc->images[i];
        if (r == NULL || r->sha256.len != HASH_LEN)
            continue; /* agent_site_config_check refuses these; belt and braces */
        int dup = 0;
        for (size_t k = 0; k < n; k++)
            dup |= memcmp(nw[k].sha, r->sha256.data, HASH_LEN) == 0;
        if (dup)
            continue;
        struct want *w = &nw[n++];
        memcpy(w->sha, r->sha256.data, HASH_LEN);
        util_hex(w->sha, HASH_LEN, w->hex);
        w->size = r->size;
        snprintf(w->name, sizeof w->name, "%s", r->name ? r->name : "");
        w->sig_len = r->signature.len;
        if (r->signature.len == SIGN_SIG_LEN)
            memcpy(w->sig, r->signature.data, SIGN_SIG_LEN);
        w->signer_len = r->signer.len;
        if (r->signer.len == SIGN_PK_LEN)
            memcpy(w->signer, r->signer.data, SIGN_PK_LEN);
        const struct want *old = s_find_want(c, w->sha);
        if (old != NULL) {
            w->retry_at_ms = old->retry_at_ms;
            w->corrupt_count = old->corrupt_count;
            /* the same claims under the same keys: the verdict stands (and a
             * refusal is not reported again on every configuration change) */
            if (same_keys && old->size == w->size && strcmp(old->name, w->name) == 0 &&
                old->sig_len == w->sig_len && memcmp(old->sig, w->sig, sizeof w->sig) == 0 &&
                old->signer_len == w->signer_len &&
                memcmp(old->signer, w->signer, sizeof w->signer) == 0)
                w->trust = old->trust;
        }
    }
    free(c->wanted);
    c->wanted = nw;
    c->n_wanted = n;
    s_log_signing(c);
    if (c->cur != NULL) {
        const struct want *w = s_find_want(c, c->cur->sha);
        if (w == NULL || (w->size != 0 && c->cur->total != w->size)) {
            log_info("image.pull_dropped", "sha256=%s reason=\"no longer wanted\"", c->cur->hex);
            s_pull_free(c, 1);
        }
    }
    s_next(c);
}

int imgcache_cached_list(imgcache_t *c, ProtobufCBinaryData **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (c->n_cached == 0)
        return 0;
    ProtobufCBinaryData *v = calloc(c->n_cached, sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < c->n_cached; i++) {
        v[i].len = HASH_LEN;
        v[i].data = c->cached[i];
    }
    *out = v;
    *n = c->n_cached;
    return 0;
}

/* ---- lifetime ---- */

struct load_ctx {
    imgcache_t *c;
    char (*drop)[HASH_HEX_LEN + 1];
    size_t n_drop;
    size_t cap_drop;
};

static int s_load_row(void *arg, const struct journal_image *img)
{
    struct load_ctx *lc = arg;
    if (img->state != JOURNAL_IMG_CACHED)
        return 0;
    char path[PATH_MAX];
    uint8_t sha[HASH_LEN];
    struct stat st;
    s_cache_path(lc->c, img->sha_hex, path, sizeof path);
    if (util_unhex(img->sha_hex, sha, HASH_LEN) == 0 && stat(path, &st) == 0 &&
        S_ISREG(st.st_mode) && (img->size == 0 || (uint64_t)st.st_size == img->size)) {
        s_add_cached(lc->c, sha);
        return 0;
    }
    /* listed but gone or wrong: forget it (it will be pulled again) */
    if (lc->n_drop == lc->cap_drop) {
        size_t cap = lc->cap_drop ? lc->cap_drop * 2 : 8;
        void *nd = realloc(lc->drop, cap * sizeof *lc->drop);
        if (nd == NULL)
            return 0;
        lc->drop = nd;
        lc->cap_drop = cap;
    }
    memcpy(lc->drop[lc->n_drop++], img->sha_hex, HASH_HEX_LEN + 1);
    return 0;
}

static void s_on_close(uv_handle_t *h)
{
    imgcache_t *c = h->data;
    if (--c->open_handles == 0) {
        free(c->wanted);
        free(c->verified);
        free(c->reported);
        free(c->cached);
        free(c);
    }
}

int imgcache_new(struct agent *a, uint64_t rate, imgcache_t **out)
{
    *out = NULL;
    if (hash_init() < 0)
        return -EIO;
    imgcache_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->a = a;
    snprintf(c->cache_dir, sizeof c->cache_dir, "%s/cache", a->state_dir);
    snprintf(c->partial_dir, sizeof c->partial_dir, "%s/cache/partial", a->state_dir);
    int rc = util_mkdir_p(c->partial_dir, 0755);
    if (rc < 0) {
        log_error("image.cache_dir", "path=%s error=\"%s\"", c->partial_dir, strerror(-rc));
        free(c);
        return rc;
    }
    c->rate = rate;
    c->signing = -1;
    c->max_credits = WIRE_CREDITS;
    if (rate > 0) {
        /* about four requests per second at the configured rate */
        uint64_t k = rate / (4ull * WIRE_CHUNK);
        c->max_credits = k < 1 ? 1 : k > WIRE_CREDITS ? WIRE_CREDITS : (uint32_t)k;
    }
    c->bucket = (uint64_t)c->max_credits * WIRE_CHUNK;
    c->tokens = (double)c->bucket;
    c->tokens_ms = util_mono_ms();

    struct load_ctx lc = {c, NULL, 0, 0};
    rc = journal_image_each(a->jr, s_load_row, &lc);
    if (rc >= 0 && lc.n_drop > 0) {
        journal_t *j = agent_tx(a);
        for (size_t i = 0; j != NULL && i < lc.n_drop; i++) {
            log_warn("image.cache_missing", "sha256=%s reason=\"listed but not on disk\"",
                     lc.drop[i]);
            journal_image_delete(j, lc.drop[i]);
        }
    }
    free(lc.drop);
    if (rc < 0) {
        free(c->cached);
        free(c);
        return rc;
    }
    uv_timer_init(&a->loop, &c->tick);
    uv_timer_init(&a->loop, &c->rate_timer);
    uv_idle_init(&a->loop, &c->work);
    c->tick.data = c->rate_timer.data = c->work.data = c;
    c->open_handles = 3;
    uv_timer_start(&c->tick, s_on_tick, IMGCACHE_TICK_MS, IMGCACHE_TICK_MS);
    log_info("image.cache", "path=%s cached=%zu rate=%" PRIu64 " credits=%u", c->cache_dir,
             c->n_cached, rate, c->max_credits);
    s_log_signing(c);
    *out = c;
    return 0;
}

void imgcache_destroy(imgcache_t **c_p)
{
    if (c_p == NULL || *c_p == NULL)
        return;
    imgcache_t *c = *c_p;
    *c_p = NULL;
    s_pull_free(c, 1);
    uv_close((uv_handle_t *)&c->tick, s_on_close);
    uv_close((uv_handle_t *)&c->rate_timer, s_on_close);
    uv_close((uv_handle_t *)&c->work, s_on_close);
}

/* ---- serving ---- */

static int s_reported(imgcache_t *c, const uint8_t sha[HASH_LEN])
{
    for (size_t i = 0; i < c->n_reported; i++)
        if (memcmp(c->reported[i], sha, HASH_LEN) == 0)
            return 1;
    if (c->n_reported == c->cap_reported) {
        if (c->cap_reported >= IMGCACHE_MAX_IMAGES)
            return 1; /* enough said */
        size_t cap = c->cap_reported ? c->cap_reported * 2 : 8;
        void *nr = realloc(c->reported, cap * sizeof *c->reported);
        if (nr == NULL)
            return 1;
        c->reported = nr;
        c->cap_reported = cap;
    }
    memcpy(c->reported[c->n_reported++], sha, HASH_LEN);
    return 0;
}

/* Hashes the open file whole; 0 when it is sha, else -EBADMSG (or -errno). */
static int s_rehash_fd(int fd, const uint8_t sha[HASH_LEN])
{
    hash_ctx_t *h = hash_new();
    uint8_t *buf = malloc(REHASH_BUF);
    int rc = h && buf ? 0 : -ENOMEM;
    for (off_t off = 0; rc == 0;) {
        ssize_t r = pread(fd, buf, REHASH_BUF, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = -errno;
        if (r <= 0)
            break;
        hash_update(h, buf, (size_t)r);
        off += r;
    }
    uint8_t digest[HASH_LEN];
    if (rc == 0) {
        hash_final(h, digest);
        rc = memcmp(digest, sha, HASH_LEN) == 0 ? 0 : -EBADMSG;
    }
    hash_destroy(&h);
    free(buf);
    return rc;
}

/* A tampered cache file: gone from disk, the index and the journal; the
 * tick pulls it again if the site still wants it. */
static void s_drop_tampered(imgcache_t *c, const uint8_t sha[HASH_LEN], const char *hex)
{
    char path[PATH_MAX];
    s_cache_path(c, hex, path, sizeof path);
    unlink(path);
    s_forget_verified(c, sha);
    for (size_t i = 0; i < c->n_cached; i++)
        if (memcmp(c->cached[i], sha, HASH_LEN) == 0) {
            memmove(c->cached[i], c->cached[c->n_cached - 1], HASH_LEN);
            c->n_cached--;
            break;
        }
    journal_t *j = agent_tx(c->a);
    if (j != NULL)
        journal_image_delete(j, hex);
    struct want *w = s_find_want(c, sha);
    if (w != NULL)
        w->retry_at_ms = 0;
}

int imgcache_open(struct agent *a, const Firmfleet__ImageRef *r, int *fd_out)
{
    *fd_out = -1;
    if (r == NULL || r->sha256.len != HASH_LEN || r->sha256.data == NULL)
        return -ENOENT;
    imgcache_t *c = a->img;
    char hex[HASH_HEX_LEN + 1], path[PATH_MAX];
    util_hex(r->sha256.data, HASH_LEN, hex);
    snprintf(path, sizeof path, "%s/cache/%s", a->state_dir, hex);
    if (c == NULL) { /* no cache (stopping, or a unit test): only unsigned use */
        if (a->n_trust_keys > 0)
            return -EPERM;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return errno == ENOENT ? -ENOENT : -errno;
        *fd_out = fd;
        return 0;
    }
    uint8_t keys[SIGN_MAX_KEYS][SIGN_PK_LEN];
    int pinned;
    int signing = s_keys(c, keys, &pinned) > 0;
    const char *why;
    if (s_trust_check(c, r->sha256.data, r->size, r->name, r->signature.data, r->signature.len,
                      r->signer.data, r->signer.len, &why) < 0) {
        char q[300];
        if (!s_reported(c, r->sha256.data))
            s_refused(c, hex, r->name, why, r->signer.data, r->signer.len);
        else
            log_info("image.refused", "sha256=%s name=%s reason=%s", hex,
                     log_quote(r->name ? r->name : "", q, sizeof q), why);
        return -EPERM;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EACCES;
    }
    if (signing) {
        const struct verified *v = s_find_verified(c, r->sha256.data);
        int same = v != NULL && v->dev == st.st_dev && v->ino == st.st_ino &&
                   v->size == st.st_size && v->mtime.tv_sec == st.st_mtim.tv_sec &&
                   v->mtime.tv_nsec == st.st_mtim.tv_nsec && v->ctime.tv_sec == st.st_ctim.tv_sec &&
                   v->ctime.tv_nsec == st.st_ctim.tv_nsec;
        int bad = r->size != 0 && (uint64_t)st.st_size != r->size;
        if (!same && !bad) {
            int hr = s_rehash_fd(fd, r->sha256.data);
            if (hr == 0)
                s_mark_verified(c, r->sha256.data, fd);
            else if (hr == -EBADMSG)
                bad = 1;
            else {
                close(fd);
                return hr;
            }
            log_info("image.rehashed", "sha256=%s ok=%d reason=%s", hex, !bad,
                     v ? "changed_on_disk" : "first_serve");
        }
        if (bad) {
            close(fd);
            char q[300];
            log_quote(r->name ? r->name : "", q, sizeof q);
            log_warn("image.refused", "sha256=%s name=%s reason=tampered", hex, q);
            s_emit(c, "image.refused", "sha256=%s name=%s reason=tampered", hex, q);
            s_drop_tampered(c, r->sha256.data, hex);
            return -EBADMSG;
        }
    }
    *fd_out = fd;
    return 0;
}
