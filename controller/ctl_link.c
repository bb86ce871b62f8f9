/* ctl_link.c: the controller's side of the agent link.
 *
 * Invariants:
 *   - who an agent is comes from the ZAP User-Id of its connection (the agent
 *     id in decimal), set only for enrolled, unrevoked CURVE keys;
 *   - an agent event is applied only when its seq is exactly last+1, inside
 *     the loop turn's transaction (an EventBatch is applied event by event
 *     under the same rule; the Welcome tells agents batches are taken);
 *     acks (Envelope.ack) leave only after that transaction committed, so
 *     an acked event is on disk; the agent's last_in_seq is written once per
 *     turn, just before that commit (s_flush);
 *   - outbox rows (controller->agent, journaled) are sent in seq order after
 *     the agent's Hello and resent from the last ack when acks stall;
 *   - image chunks are sent only as credited by the agent's ImageRequest;
 *   - a BackupUpload takes its seq like an event: the backup, its
 *     backup.stored (or backup.rejected) event, which records the seq, and
 *     last_in_seq commit together, so it is stored exactly once.
 *
 * Peers are kept in an array indexed by agent id (ids are dense rowids): O(1)
 * lookup per message; a hash would be needed only for sparse ids.
 */
#include "ctl_link.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl_admin.h"
#include "ctl_rollout.h"
#include "hash.h"
#include "log.h"
#include "store_backup.h"
#include "store_inv.h"
#include "store_link.h"
#include "util.h"
#include "wire.h"
#include "zmqx.h"

/* One turn reads up to this many messages (or for TURN_MAX_MS), then
 * commits once and acks each agent it heard from once. The ROUTER reads its
 * peers round robin, so with 1,000 agents a turn of 5,000 held about 5
 * events per agent: an ack, an UPDATE of last_in_seq and a TCP send per 5
 * events. 20,000 make that one per 20 (tests/bench/fleet.sh: CPU per event
 * 0.024 -> 0.020 ms); the time bound keeps ZAP and the CLI answered. */
#define MAX_MSGS_PER_TURN 20000
#define TURN_MAX_MS 250
#define OUTBOX_BATCH 500
#define OUTBOX_RESEND_MS 5000
#define MAX_CREDITS 64
#define IMG_SLOTS 4

struct img_send {
    int active;
    uint8_t sha[32];
    uint64_t offset;
    uint32_t left;
};

struct peer {
    int64_t id;
    int64_t site_id;
    char name[64];
    uint8_t rid[256];
    size_t rid_len;
    uint64_t last_in;      /* committed */
    uint64_t pending_in;   /* accepted in the open transaction */
    uint64_t last_seen;    /* mono ms */
    uint64_t db_seen;      /* mono ms of the last last_seen_ms write */
    uint64_t bytes_sent;
    uint64_t peer_acked;   /* outbox */
    uint64_t out_sent;     /* highest outbox seq sent on this connection */
    uint64_t out_progress; /* mono ms of the last ack progress */
    uint64_t refused_at;
    int hello;
    int revoked;
    int touched;
    int want_welcome;
    int ack_moved; /* the outbox ack advanced this turn: push what follows */
    struct img_send img[IMG_SLOTS];
    /* the connection (routing id) whose enrollment Hello was accepted
     * (s_enroll_gate): its further messages need no look-up */
    uint8_t enroll_rid[8];
    size_t enroll_rid_len;
};

struct ctl_link {
    struct ctl *ctl;
    struct peer **peers;
    size_t n_peers;
    int in_tx;
    int failed; /* something in the open transaction must not commit */
    struct peer **touched;
    size_t n_touched, cap_touched;
    uint8_t *chunk;
    struct ctl_link_frames frames;
};

int ctl_link_new(struct ctl *ctl, ctl_link_t **out)
{
    ctl_link_t *link = calloc(1, sizeof *link);
    if (link == NULL)
        return -ENOMEM;
    link->ctl = ctl;
    if (store_link_tune(ctl->st) < 0)
        log_warn("link.store_tune", "reason=\"cache and checkpoint left at SQLite's defaults\"");
    link->chunk = malloc(WIRE_CHUNK);
    if (link->chunk == NULL) {
        free(link);
        return -ENOMEM;
    }
    *out = link;
    return 0;
}

void ctl_link_destroy(ctl_link_t **link_p)
{
    if (link_p == NULL || *link_p == NULL)
        return;
    ctl_link_t *link = *link_p;
    for (size_t i = 0; i < link->n_peers; i++)
        free(link->peers[i]);
    free(link->peers);
    free(link->touched);
    free(link->chunk);
    free(link);
    *link_p = NULL;
}

/* Returns the peer for agent id, loading it from the store on first sight.
 * NULL when unknown or on error. */
static struct peer *s_peer(ctl_link_t *link, int64_t id)
{
    if (id <= 0 || id > (1 << 24))
        return NULL;
    if ((size_t)id >= link->n_peers) {
        size_t n = link->n_peers ? link->n_peers : 64;
        while (n <= (size_t)id)
            n *= 2;
        struct peer **grown = realloc(link->peers, n * sizeof *grown);
        if (grown == NULL)
            return NULL;
        memset(grown + link->n_peers, 0, (n - link->n_peers) * sizeof *grown);
        link->peers = grown;
        link->n_peers = n;
    }
    if (link->peers[id] != NULL)
        return link->peers[id];
    struct store_agent_link a;
    if (store_agent_link_get(link->ctl->st, id, &a) != 1)
        return NULL;
    struct peer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->id = id;
    p->site_id = a.site_id;
    snprintf(p->name, sizeof p->name, "%s", a.name);
    p->last_in = p->pending_in = a.last_in_seq;
    p->peer_acked = p->out_sent = a.peer_acked_seq;
    p->revoked = a.revoked;
    link->peers[id] = p;
    return p;
}

static void s_touch(ctl_link_t *link, struct peer *p)
{
    if (p->touched)
        return;
    if (link->n_touched == link->cap_touched) {
        size_t n = link->cap_touched ? link->cap_touched * 2 : 64;
        struct peer **grown = realloc(link->touched, n * sizeof *grown);
        if (grown == NULL)
            return; /* the ack will go with the next message */
        link->touched = grown;
        link->cap_touched = n;
    }
    p->touched = 1;
    link->touched[link->n_touched++] = p;
}

static int s_tx(ctl_link_t *link)
{
    if (link->in_tx)
        return 0;
    if (store_begin(link->ctl->st) < 0)
        return -EIO;
    link->in_tx = 1;
    return 0;
}

static int s_send(ctl_link_t *link, struct peer *p, wire_env_t *env)
{
    if (p->rid_len == 0)
        return -ENOTCONN;
    env->ack = p->last_in;
    int rc = wire_send(link->ctl->router, p->rid, p->rid_len, env, ZMQ_DONTWAIT);
    if (rc < 0 && rc != -EAGAIN)
        log_debug("link.send_failed", "agent=%s body=%s error=%d", p->name, wire_body_name(env),
                  rc);
    return rc;
}

static void s_send_refused(ctl_link_t *link, struct peer *p, const char *reason)
{
    uint64_t now = util_mono_ms();
    if (p->refused_at && now - p->refused_at < 10000)
        return;
    p->refused_at = now;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    Firmfleet__Refused r = FIRMFLEET__REFUSED__INIT;
    char why[128];
    snprintf(why, sizeof why, "%s", reason);
    r.reason = why;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_REFUSED;
    env.refused = &r;
    s_send(link, p, &env);
}

static void s_send_site_config(ctl_link_t *link, struct peer *p)
{
    Firmfleet__SiteConfig *sc = NULL;
    if (store_site_config(link->ctl->st, p->site_id, &sc) < 0) {
        log_error("link.site_config_failed", "agent=%s", p->name);
        return;
    }
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_SITE_CONFIG;
    env.site_config = sc;
    if (s_send(link, p, &env) == 0)
        log_info("link.site_config", "agent=%s site=%s images=%zu devices=%zu", p->name, sc->site,
                 sc->n_images, sc->n_devices);
    store_site_config_free(sc);
}

struct outbox_ctx {
    ctl_link_t *link;
    struct peer *p;
    int stop;
};

static void s_outbox_row(void *arg, uint64_t seq, const uint8_t *payload, size_t len)
{
    struct outbox_ctx *o = arg;
    if (o->stop)
        return;
    wire_env_t *env = wire_unpack(payload, len);
    if (env == NULL) {
        log_error("link.outbox_corrupt", "agent=%s seq=%" PRIu64, o->p->name, seq);
        o->stop = 1;
        return;
    }
    env->seq = seq;
    if (s_send(o->link, o->p, env) == 0)
        o->p->out_sent = seq;
    else
        o->stop = 1;
    wire_free(env);
}

static void s_push_outbox(ctl_link_t *link, struct peer *p)
{
    if (!p->hello || p->revoked)
        return;
    /* nothing in flight: the stall clock of the resend starts now, not at
     * the last ack, which may be minutes old (then ctl_link_tick resent a
     * rollout's whole batch at once: 84,000 duplicates of 100,000) */
    if (p->out_sent <= p->peer_acked)
        p->out_progress = util_mono_ms();
    struct outbox_ctx o = {link, p, 0};
    store_outbox_each(link->ctl->st, p->id, p->out_sent, OUTBOX_BATCH, s_outbox_row, &o);
}

int ctl_link_enqueue(ctl_link_t *link, int64_t agent_id, const wire_env_t *env)
{
    size_t len = 0;
    uint8_t *buf = wire_pack(env, &len);
    if (buf == NULL)
        return -ENOMEM;
    uint64_t seq = 0;
    int rc = store_outbox_append(link->ctl->st, agent_id, buf, len, &seq);
    free(buf);
    return rc;
}

void ctl_link_flush_outbox(ctl_link_t *link, int64_t agent_id)
{
    struct peer *p = s_peer(link, agent_id);
    if (p)
        s_push_outbox(link, p);
}

static void s_on_hello(ctl_link_t *link, struct peer *p, const Firmfleet__Hello *h)
{
    char *list = calloc(h->n_cached ? h->n_cached : 1, 65);
    if (list == NULL)
        return;
    for (size_t i = 0; i < h->n_cached; i++) {
        if (h->cached[i].len != 32)
            continue;
        if (list[0])
            strcat(list, " ");
        util_hex(h->cached[i].data, 32, list + strlen(list));
    }
    char vq[96];
    log_quote(h->version ? h->version : "", vq, sizeof vq);
    if (s_tx(link) == 0)
        store_agent_hello(link->ctl->st, p->id, util_now_ms(), h->version ? h->version : "", list);
    free(list);
    if (h->site && p->hello == 0) {
        struct store_agent_link a;
        if (store_agent_link_get(link->ctl->st, p->id, &a) == 1 && strcmp(a.site, h->site) != 0)
            log_warn("link.site_mismatch", "agent=%s says=%s enrolled=%s", p->name, h->site,
                     a.site);
    }
    p->hello = 1;
    p->want_welcome = 1;
    p->db_seen = util_mono_ms();
    /* the agent has applied up to last_applied: resend what follows */
    if (h->last_applied < p->out_sent)
        p->out_sent = h->last_applied > p->peer_acked ? h->last_applied : p->peer_acked;
    p->out_progress = util_mono_ms();
    log_info("link.hello", "agent=%s version=%s cached=%zu last_sent=%" PRIu64
             " last_received=%" PRIu64, p->name, vq, h->n_cached, h->last_sent, p->last_in);
}

/* A device the agent saw on the wire: into the inventory when new
 * (discovery), last_seen and vendor class refreshed when known. */
static void s_device_seen(ctl_link_t *link, struct peer *p, const Firmfleet__DeviceEvent *ev)
{
    char mac[18], raw[256], vc[1024];
    if (ev->mac == NULL || util_mac_canon(ev->mac, mac) < 0)
        return;
    int n = log_field(ev->detail, "vendor_class", raw, sizeof raw);
    size_t o = 0;
    for (int i = 0; i < n && o + 5 < sizeof vc; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c < 0x20 || c >= 0x7f || c == '\\')
            o += (size_t)snprintf(vc + o, sizeof vc - o, "\\x%02x", c);
        else
            vc[o++] = (char)c;
    }
    vc[o] = '\0';
    int rc = store_device_seen(link->ctl->st, p->site_id, mac, vc, util_now_ms());
    if (rc == 1) {
        char q[1100];
        log_info("link.device_discovered", "agent=%s mac=%s vendor_class=%s", p->name, mac,
                 log_quote(vc, q, sizeof q));
    }
}

static void s_on_event(ctl_link_t *link, struct peer *p, uint64_t seq,
                       const Firmfleet__DeviceEvent *ev)
{
    if (seq == 0 || seq <= p->pending_in)
        return; /* duplicate: already applied, the ack covers it */
    if (seq != p->pending_in + 1) {
        log_debug("link.event_gap", "agent=%s seq=%" PRIu64 " expected=%" PRIu64, p->name, seq,
                  p->pending_in + 1);
        return; /* gap: the agent rewinds when acks stall */
    }
    if (s_tx(link) < 0)
        return;
    /* a touched peer's last_in_seq is written once, by s_flush before the
     * commit; an untouched one (no memory for the list) writes it here */
    uint64_t now = util_now_ms();
    if ((p->touched ? store_event_insert(link->ctl->st, p->id, seq, now, ev)
                    : store_event_append(link->ctl->st, p->id, seq, now, ev)) < 0) {
        log_error("link.event_store_failed", "agent=%s seq=%" PRIu64, p->name, seq);
        return;
    }
    p->pending_in = seq;
    if (ev->kind && ev->detail &&
        (strcmp(ev->kind, "device.discovered") == 0 || strcmp(ev->kind, "dhcp.lease") == 0))
        s_device_seen(link, p, ev);
    if (ev->kind && strcmp(ev->kind, "image.cached") == 0 && ev->detail) {
        const char *s = strstr(ev->detail, "sha256=");
        if (s && strlen(s + 7) >= 64) {
            char hex[65];
            memcpy(hex, s + 7, 64);
            hex[64] = '\0';
            store_agent_add_cached(link->ctl->st, p->id, hex);
        }
    }
    /* rollout progress, device versions and drift, in this same transaction */
    rollout_on_event(link->ctl, p->site_id, ev, util_now_ms());
}

/* An EventBatch: its events numbered seq, seq+1, ..., each applied as a
 * single DeviceEvent would be. Duplicates at its head are skipped (a resend
 * that overlaps what was applied), a gap drops it whole (the agent rewinds),
 * and an event that could not be stored ends it: the rest would be a gap. */
static void s_on_batch(ctl_link_t *link, struct peer *p, uint64_t seq,
                       const Firmfleet__EventBatch *b)
{
    size_t first = 0;
    int rc = wire_batch_first(seq, b->n_events, p->pending_in, &first);
    if (rc == -EINVAL) {
        log_warn("link.bad_batch", "agent=%s seq=%" PRIu64 " events=%zu max=%d", p->name, seq,
                 b->n_events, WIRE_BATCH_MAX);
        return;
    }
    if (rc == -ERANGE) {
        log_debug("link.event_gap", "agent=%s seq=%" PRIu64 " events=%zu expected=%" PRIu64,
                  p->name, seq, b->n_events, p->pending_in + 1);
        return;
    }
    for (size_t i = first; rc == 1 && i < b->n_events; i++) {
        s_on_event(link, p, seq + i, b->events[i]);
        if (p->pending_in != seq + i)
            break; /* not stored (logged): the agent resends from here */
    }
}

/* 1 when a journaled message with this seq is the next one to apply (and a
 * transaction is open for it); 0 for a duplicate, a gap or no transaction. */
static int s_next_seq(ctl_link_t *link, struct peer *p, uint64_t seq, const char *what)
{
    if (seq == 0 || seq <= p->pending_in)
        return 0; /* duplicate: already applied, the ack covers it */
    if (seq != p->pending_in + 1) {
        log_debug("link.gap", "agent=%s body=%s seq=%" PRIu64 " expected=%" PRIu64, p->name, what,
                  seq, p->pending_in + 1);
        return 0; /* gap: the agent rewinds when acks stall */
    }
    return s_tx(link) == 0;
}

/* A device's configuration backup: checked, stored (deduped, old versions
 * pruned) and recorded as a backup.stored event under its seq, all in this
 * turn's transaction. One that fails the checks is recorded as
 * backup.rejected under its seq (it would fail again if resent). */
static void s_on_backup(ctl_link_t *link, struct peer *p, uint64_t seq,
                        const Firmfleet__BackupUpload *bu)
{
    if (!s_next_seq(link, p, seq, "backup"))
        return;
    char mac[18] = "", hex[HASH_HEX_LEN + 1] = "", q[300], detail[512];
    const char *why = NULL;
    uint8_t sum[HASH_LEN];
    if (bu->mac == NULL || util_mac_canon(bu->mac, mac) < 0)
        why = "bad mac";
    else if (!store_backup_name_ok(bu->name))
        why = "bad name";
    else if (bu->data.len > STORE_BACKUP_MAX)
        why = "too large";
    if (why == NULL) {
        hash_ctx_t *h = hash_new();
        if (h == NULL)
            return; /* not applied: resent */
        hash_update(h, bu->data.data, bu->data.len);
        hash_final(h, sum);
        hash_destroy(&h);
        util_hex(sum, HASH_LEN, hex);
        if (bu->sha256.len != 0 &&
            (bu->sha256.len != HASH_LEN || memcmp(bu->sha256.data, sum, HASH_LEN) != 0))
            why = "sha256 mismatch";
    }
    uint64_t now = util_now_ms();
    Firmfleet__DeviceEvent ev = FIRMFLEET__DEVICE_EVENT__INIT;
    ev.time_ms = bu->time_ms ? bu->time_ms : now;
    ev.mac = mac;
    ev.detail = detail;
    log_quote(bu->name ? bu->name : "", q, sizeof q);
    struct store_backup_out res = {0};
    if (why == NULL) {
        struct store_backup_in in = {
            .agent_id = p->id,
            .site_id = p->site_id,
            .mac = mac,
            .name = bu->name,
            .data = bu->data.data,
            .len = bu->data.len,
            .sha256 = hex,
            .time_ms = ev.time_ms,
            .now_ms = now,
        };
        int rc = store_backup_put(link->ctl->st, &in, &res);
        if (rc == -EINVAL) {
            why = "invalid";
        } else if (rc < 0) {
            log_error("link.backup_store_failed", "agent=%s seq=%" PRIu64, p->name, seq);
            return; /* the turn's commit still happens; this seq is not in it */
        }
    }
    if (why == NULL) {
        ev.kind = (char *)"backup.stored";
        snprintf(detail, sizeof detail, "id=%lld name=%s size=%zu sha256=%s unchanged=%d",
                 (long long)res.id, q, bu->data.len, hex, res.unchanged);
    } else {
        ev.kind = (char *)"backup.rejected";
        snprintf(detail, sizeof detail, "name=%s size=%zu reason=\"%s\"", q, bu->data.len, why);
    }
    if (store_event_append(link->ctl->st, p->id, seq, now, &ev) < 0) {
        /* the backup row is in the open transaction without its seq: undo
         * the whole turn rather than commit it (the agent resends) */
        log_error("link.event_store_failed", "agent=%s seq=%" PRIu64, p->name, seq);
        link->failed = 1;
        return;
    }
    p->pending_in = seq;
    if (why)
        log_warn("link.backup_rejected", "agent=%s mac=%s %s", p->name, mac, detail);
    else
        log_info("link.backup", "agent=%s mac=%s %s pruned=%d", p->name, mac, detail, res.pruned);
}

static void s_on_image_request(struct peer *p, const Firmfleet__ImageRequest *r)
{
    if (r->sha256.len != 32 || r->credits == 0) {
        log_warn("link.bad_image_request", "agent=%s", p->name);
        return;
    }
    uint32_t credits = r->credits > MAX_CREDITS ? MAX_CREDITS : r->credits;
    struct img_send *slot = NULL;
    for (int i = 0; i < IMG_SLOTS; i++)
        if (!p->img[i].active) {
            slot = &p->img[i];
            break;
        }
    if (slot == NULL) {
        /* more requests outstanding than the protocol allows: drop the oldest */
        slot = &p->img[0];
        memmove(&p->img[0], &p->img[1], (IMG_SLOTS - 1) * sizeof p->img[0]);
        slot = &p->img[IMG_SLOTS - 1];
    }
    slot->active = 1;
    memcpy(slot->sha, r->sha256.data, 32);
    slot->offset = r->offset;
    slot->left = credits;
}

/* Sends credited chunks until done or the pipe is full. 1 when work remains. */
static int s_pump_images(ctl_link_t *link, struct peer *p)
{
    int more = 0;
    for (int i = 0; i < IMG_SLOTS; i++) {
        struct img_send *s = &p->img[i];
        while (s->active && s->left > 0) {
            size_t got = 0;
            uint64_t total = 0;
            int rc = imgstore_read(link->ctl->img, s->sha, s->offset, link->chunk, WIRE_CHUNK,
                                   &got, &total);
            wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
            Firmfleet__ImageChunk c = FIRMFLEET__IMAGE_CHUNK__INIT;
            env.body_case = FIRMFLEET__ENVELOPE__BODY_IMAGE_CHUNK;
            env.image_chunk = &c;
            c.sha256.data = s->sha;
            c.sha256.len = 32;
            c.offset = s->offset;
            if (rc < 0) {
                c.error = rc == -ENOENT ? "image not in the controller's store" : "read error";
            } else {
                c.data.data = link->chunk;
                c.data.len = got;
                c.total = total;
            }
            int src = s_send(link, p, &env);
            if (src == -EAGAIN) {
                more = 1;
                break;
            }
            if (src == 0)
                p->bytes_sent += got;
            if (src < 0 || rc < 0 || got == 0 || s->offset + got >= total) {
                s->active = 0;
                break;
            }
            s->offset += got;
            if (--s->left == 0)
                s->active = 0;
        }
    }
    return more;
}

static void s_flush(ctl_link_t *link)
{
    int ok = 1;
    if (link->in_tx) {
        link->in_tx = 0;
        /* each agent's last_in_seq once per turn, not once per event, and
         * in the transaction of the events it covers */
        for (size_t i = 0; i < link->n_touched && !link->failed; i++) {
            struct peer *p = link->touched[i];
            if (p->pending_in > p->last_in &&
                store_agent_in_seq(link->ctl->st, p->id, p->pending_in) < 0) {
                log_error("link.event_store_failed", "agent=%s seq=%" PRIu64, p->name,
                          p->pending_in);
                link->failed = 1;
            }
        }
        if (link->failed) {
            store_rollback(link->ctl->st);
            ok = 0;
        } else if (store_commit(link->ctl->st) < 0) {
            store_rollback(link->ctl->st);
            ok = 0;
        }
    }
    for (size_t i = 0; i < link->n_touched; i++) {
        struct peer *p = link->touched[i];
        p->touched = 0;
        if (ok)
            p->last_in = p->pending_in;
        else
            p->pending_in = p->last_in; /* nothing new is on disk: the agent resends */
        wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
        if (p->want_welcome) {
            p->want_welcome = 0;
            Firmfleet__Welcome w = FIRMFLEET__WELCOME__INIT;
            w.last_received = p->last_in;
            w.heartbeat_ms = (uint64_t)link->ctl->heartbeat_ms;
            w.event_batches = 1; /* s_on_batch */
            env.body_case = FIRMFLEET__ENVELOPE__BODY_WELCOME;
            env.welcome = &w;
            s_send(link, p, &env);
            s_send_site_config(link, p);
            s_push_outbox(link, p);
            p->ack_moved = 0;
        } else {
            Firmfleet__Heartbeat hb = FIRMFLEET__HEARTBEAT__INIT;
            hb.now_ms = util_now_ms();
            env.body_case = FIRMFLEET__ENVELOPE__BODY_HEARTBEAT;
            env.heartbeat = &hb;
            s_send(link, p, &env);
        }
        if (p->ack_moved) {
            /* a push sends at most OUTBOX_BATCH rows: the rest (an agent
             * with 1,000 devices in one rollout) follows its acks */
            p->ack_moved = 0;
            s_push_outbox(link, p);
        }
        s_pump_images(link, p);
    }
    link->n_touched = 0;
    link->failed = 0;
}

static int64_t s_user_id(zmq_msg_t *msg)
{
    const char *uid = zmq_msg_gets(msg, "User-Id");
    int64_t id = 0;
    if (uid == NULL || util_parse_i64(uid, 1, INT64_MAX, &id) < 0)
        return 0;
    return id;
}

/* A connection admitted with an enrollment key (ZAP property X-Enroll: that
 * key) may only register the agent's own key: its Hello carries it
 * (Hello.public_key; none from an older client keeps the enrollment key as
 * the long-term key). Anything else on it counts only once the agent is
 * registered with that very key (the older client). 0 go on, -1 drop. */
static int s_enroll_gate(ctl_link_t *link, struct peer *p, zmq_msg_t *body, const wire_env_t *env)
{
    const char *ek = zmq_msg_gets(body, "X-Enroll");
    if (ek == NULL)
        return 0;
    if (env->body_case != FIRMFLEET__ENVELOPE__BODY_HELLO) {
        if (p->enroll_rid_len != 0 && p->enroll_rid_len == p->rid_len &&
            memcmp(p->enroll_rid, p->rid, p->rid_len) == 0)
            return 0;
        return store_agent_key_is(link->ctl->st, p->id, ek) == 1 ? 0 : -1;
    }
    const char *nk = env->hello->public_key;
    if (nk != NULL && *nk == '\0')
        nk = NULL;
    if (nk == NULL && store_agent_key_is(link->ctl->st, p->id, ek) == 1)
        goto admitted; /* the older client's Hello again */
    char err[160];
    int rc = store_agent_register(link->ctl->st, p->id, ek, nk, util_now_ms(), err, sizeof err);
    if (rc < 0) {
        char q[200], detail[320];
        log_warn("link.enroll_refused", "agent=%s reason=%s key=%s", p->name,
                 log_quote(err, q, sizeof q), ek);
        snprintf(detail, sizeof detail, "agent=%s reason=\"%s\" key=%s", p->name, err, ek);
        store_agent_enroll_refused(link->ctl->st, p->id, util_now_ms(), detail);
        p->refused_at = 0;
        s_send_refused(link, p, err);
        return -1;
    }
    log_info("link.enrolled", "agent=%s enrollment_key=%s public_key=%s", p->name, ek,
             nk ? nk : ek);
admitted:
    p->enroll_rid_len = 0;
    if (p->rid_len <= sizeof p->enroll_rid) {
        memcpy(p->enroll_rid, p->rid, p->rid_len);
        p->enroll_rid_len = p->rid_len;
    }
    return 0;
}

void ctl_link_on_router(ctl_link_t *link)
{
    uint64_t start = util_mono_ms();
    for (int n = 0; n < MAX_MSGS_PER_TURN; n++) {
        if ((n & 255) == 255 && util_mono_ms() - start >= TURN_MAX_MS)
            break;
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, link->ctl->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            break;
        }
        if (!zmq_msg_more(&rid)) {
            zmq_msg_close(&rid);
            continue;
        }
        zmq_msg_init(&body);
        zmq_msg_recv(&body, link->ctl->router, 0);
        while (zmq_msg_more(&body)) { /* one body frame per message; drop extras */
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            zmq_msg_recv(&extra, link->ctl->router, 0);
            int more = zmq_msg_more(&extra);
            zmq_msg_close(&extra);
            if (!more)
                break;
        }
        int64_t id = s_user_id(&body);
        struct peer *p = s_peer(link, id);
        if (p == NULL) {
            log_warn("link.unknown_peer", "user_id=%" PRId64, id);
            goto next;
        }
        if (zmq_msg_size(&rid) <= sizeof p->rid) {
            memcpy(p->rid, zmq_msg_data(&rid), zmq_msg_size(&rid));
            p->rid_len = zmq_msg_size(&rid);
        }
        if (p->revoked) {
            s_send_refused(link, p, "agent key revoked");
            goto next;
        }
        wire_env_t *env = wire_unpack(zmq_msg_data(&body), zmq_msg_size(&body));
        if (env == NULL) {
            log_warn("link.bad_frame", "agent=%s bytes=%zu", p->name, zmq_msg_size(&body));
            goto next;
        }
        uint64_t now = util_mono_ms();
        p->last_seen = now;
        if (env->ack > p->peer_acked && env->ack <= p->out_sent + OUTBOX_BATCH * 4) {
            if (s_tx(link) == 0 && store_outbox_ack(link->ctl->st, p->id, env->ack) == 0) {
                p->peer_acked = env->ack;
                p->out_progress = now;
                p->ack_moved = 1;
                if (p->out_sent < p->peer_acked)
                    p->out_sent = p->peer_acked;
            }
        }
        if (s_enroll_gate(link, p, &body, env) < 0) {
            wire_free(env);
            goto next;
        }
        switch (env->body_case) {
        case FIRMFLEET__ENVELOPE__BODY_HELLO:
            s_on_hello(link, p, env->hello);
            s_touch(link, p);
            break;
        case FIRMFLEET__ENVELOPE__BODY_HEARTBEAT:
            if (now - p->db_seen > 10000 && s_tx(link) == 0) {
                store_agent_seen(link->ctl->st, p->id, util_now_ms());
                p->db_seen = now;
            }
            s_touch(link, p);
            break;
        case FIRMFLEET__ENVELOPE__BODY_EVENT:
            s_touch(link, p); /* first: s_on_event relies on it (last_in_seq) */
            link->frames.single++;
            s_on_event(link, p, env->seq, env->event);
            break;
        case FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH:
            s_touch(link, p); /* first, as for a single event */
            link->frames.batches++;
            link->frames.batched_events += env->event_batch->n_events;
            s_on_batch(link, p, env->seq, env->event_batch);
            break;
        case FIRMFLEET__ENVELOPE__BODY_BACKUP:
            s_on_backup(link, p, env->seq, env->backup);
            s_touch(link, p);
            break;
        case FIRMFLEET__ENVELOPE__BODY_IMAGE_REQUEST:
            s_on_image_request(p, env->image_request);
            s_touch(link, p);
            break;
        default:
            log_warn("link.unexpected", "agent=%s body=%s", p->name, wire_body_name(env));
            break;
        }
        wire_free(env);
    next:
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
    s_flush(link);
}

/* ZAP (RFC 27): version, request id, domain, address, identity, mechanism,
 * credentials. Reply: version, request id, status, text, user id, metadata. */
void ctl_link_on_zap(ctl_link_t *link)
{
    for (int n = 0; n < 1000; n++) {
        char frames[7][64];
        size_t lens[7] = {0};
        int nf = 0, more = 1;
        uint8_t key[32];
        size_t keylen = 0;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, link->ctl->zap, nf == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(&m);
                if (nf == 0)
                    return;
                break;
            }
            more = zmq_msg_more(&m);
            size_t sz = zmq_msg_size(&m);
            if (nf < 6) {
                lens[nf] = sz < sizeof frames[0] - 1 ? sz : sizeof frames[0] - 1;
                memcpy(frames[nf], zmq_msg_data(&m), lens[nf]);
                frames[nf][lens[nf]] = '\0';
            } else if (nf == 6 && sz == 32) {
                memcpy(key, zmq_msg_data(&m), 32);
                keylen = 32;
            }
            nf++;
            zmq_msg_close(&m);
        }
        const char *status = "400", *text = "not admitted";
        char user[80] = "";
        char z85[41] = "";
        uint8_t meta[64];
        size_t metalen = 0;
        if (nf >= 6 && strcmp(frames[2], "admin") == 0 && strcmp(frames[5], "NULL") == 0 &&
            !link->ctl->admin_curve) {
            /* the CLI's endpoint (ipc): guarded by the socket file's mode */
            status = "200";
            text = "OK";
            snprintf(user, sizeof user, "admin");
        } else if (nf >= 6 && strcmp(frames[2], "admin") == 0 && strcmp(frames[5], "CURVE") == 0 &&
                   keylen == 32) {
            /* the CLI over tcp: only keys listed in DATADIR/admin_keys */
            zmq_z85_encode(z85, key, 32);
            char name[64];
            int rc = ctl_admin_key_lookup(link->ctl, z85, name, sizeof name);
            if (rc == 1) {
                status = "200";
                text = "OK";
                snprintf(user, sizeof user, "%s", name);
            } else {
                text = rc == 0 ? "operator key not in admin_keys" : "admin_keys unreadable";
            }
            char q[100];
            log_info("zap.admin", "address=%s status=%s reason=\"%s\" key=%s user=%s",
                     nf >= 4 ? frames[3] : "?", status, text, z85, log_quote(user, q, sizeof q));
        } else if (nf >= 6 && strcmp(frames[2], "firmfleet") == 0 &&
                   strcmp(frames[5], "CURVE") == 0 && keylen == 32) {
            zmq_z85_encode(z85, key, 32);
            struct store_zap_info zi;
            uint64_t now = util_now_ms();
            int rc = store_agent_zap(link->ctl->st, z85, now, &zi);
            if (rc == STORE_ZAP_OK || rc == STORE_ZAP_ENROLL) {
                status = "200";
                text = rc == STORE_ZAP_OK ? "OK" : "OK (enrollment)";
                snprintf(user, sizeof user, "%" PRId64, zi.id);
            }
            if (rc == STORE_ZAP_ENROLL) {
                /* ZMTP metadata: name length, name, 4-byte value length, value */
                static const char pn[] = "X-Enroll";
                meta[0] = (uint8_t)(sizeof pn - 1);
                memcpy(meta + 1, pn, sizeof pn - 1);
                size_t o = 1 + sizeof pn - 1;
                meta[o++] = 0, meta[o++] = 0, meta[o++] = 0, meta[o++] = 40;
                memcpy(meta + o, z85, 40);
                metalen = o + 40;
            } else if (rc == STORE_ZAP_OK) {
                /* admitted: status and text are set */
            } else if (rc == STORE_ZAP_REVOKED) {
                text = "agent key revoked";
            } else if (rc == STORE_ZAP_EXPIRED || rc == STORE_ZAP_USED) {
                char detail[320], q[100];
                text = rc == STORE_ZAP_EXPIRED ? "enrollment credential expired"
                                               : "enrollment credential already used";
                log_warn(rc == STORE_ZAP_EXPIRED ? "zap.enroll_expired" : "zap.enroll_reused",
                         "agent=%s address=%s expired_ms=%" PRId64 " used_ms=%" PRId64 " key=%s",
                         log_quote(zi.name, q, sizeof q), nf >= 4 ? frames[3] : "?", zi.expires_ms,
                         zi.used_ms, z85);
                snprintf(detail, sizeof detail, "agent=%s address=%s reason=\"%s\" key=%s", zi.name,
                         nf >= 4 ? frames[3] : "?", text, z85);
                store_agent_enroll_refused(link->ctl->st, zi.id, now, detail);
            } else if (rc < 0) {
                status = "300";
                text = "store error";
            } else {
                text = "unknown agent key";
            }
        } else {
            text = "CURVE required";
        }
        if (!(nf >= 3 && strcmp(frames[2], "admin") == 0))
            log_info("zap", "address=%s mechanism=%s status=%s reason=\"%s\" key=%s",
                 nf >= 4 ? frames[3] : "?", nf >= 6 ? frames[5] : "?", status, text,
                 z85[0] ? z85 : "-");
        zmq_send(link->ctl->zap, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(link->ctl->zap, frames[1], nf >= 2 ? lens[1] : 0, ZMQ_SNDMORE);
        zmq_send(link->ctl->zap, status, 3, ZMQ_SNDMORE);
        zmq_send(link->ctl->zap, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(link->ctl->zap, user, strlen(user), ZMQ_SNDMORE);
        zmq_send(link->ctl->zap, meta, metalen, 0);
    }
}

int ctl_link_tick(ctl_link_t *link)
{
    int busy = 0;
    uint64_t now = util_mono_ms();
    for (size_t i = 0; i < link->n_peers; i++) {
        struct peer *p = link->peers[i];
        if (p == NULL || p->revoked || !p->hello)
            continue;
        if (s_pump_images(link, p))
            busy = 1;
        if (p->out_sent > p->peer_acked && now - p->out_progress > OUTBOX_RESEND_MS) {
            p->out_sent = p->peer_acked; /* acks stalled: resend from the last one */
            p->out_progress = now;
            s_push_outbox(link, p);
        }
    }
    return busy ? 5 : 1000;
}

int ctl_link_agent_online(ctl_link_t *link, int64_t agent_id)
{
    if (agent_id <= 0 || (size_t)agent_id >= link->n_peers || link->peers[agent_id] == NULL)
        return 0;
    struct peer *p = link->peers[agent_id];
    uint64_t limit = (uint64_t)link->ctl->heartbeat_ms * 3;
    return p->hello && !p->revoked && util_mono_ms() - p->last_seen <= limit;
}

uint64_t ctl_link_agent_bytes_sent(ctl_link_t *link, int64_t agent_id)
{
    if (agent_id <= 0 || (size_t)agent_id >= link->n_peers || link->peers[agent_id] == NULL)
        return 0;
    return link->peers[agent_id]->bytes_sent;
}

void ctl_link_frames(const ctl_link_t *link, struct ctl_link_frames *out)
{
    static const struct ctl_link_frames none;
    *out = link != NULL ? link->frames : none;
}

void ctl_link_revoke(ctl_link_t *link, int64_t agent_id)
{
    struct peer *p = s_peer(link, agent_id);
    if (p == NULL)
        return;
    p->revoked = 1;
    p->hello = 0;
    memset(p->img, 0, sizeof p->img);
    s_send_refused(link, p, "agent key revoked");
    log_info("link.revoked", "agent=%s", p->name);
}

void ctl_link_site_changed(ctl_link_t *link, int64_t site_id)
{
    for (size_t i = 0; i < link->n_peers; i++) {
        struct peer *p = link->peers[i];
        if (p && p->site_id == site_id && p->hello && !p->revoked)
            s_send_site_config(link, p);
    }
}
