/* store_link.h: what the agent link needs from the controller store: agent
 * lookup by key (ZAP), per-agent sequence state, event ingest (deduplicated
 * on (agent, seq)), the controller->agent outbox, and the site configuration.
 *
 * Writes are meant to run inside one transaction per loop turn (group commit,
 * store_begin/store_commit from store.h): acks leave only after the commit.
 */
#ifndef FF_STORE_LINK_H
#define FF_STORE_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "firmfleet.pb-c.h"
#include "store.h"

struct store_agent_link {
    int64_t id;
    int64_t site_id;
    int revoked;
    uint64_t last_in_seq;     /* highest agent seq committed, contiguous */
    uint64_t last_out_seq;    /* highest outbox seq written */
    uint64_t peer_acked_seq;  /* highest outbox seq the agent acked */
    char name[64];
    char site[64];
};

/* ZAP: finds an agent by its Z85 public key. 1 found (fills out), 0 not, <0 error. */
int store_agent_by_pubkey(store_t *st, const char *z85, struct store_agent_link *out);
/* 1 found, 0 not, <0 error. */
int store_agent_link_get(store_t *st, int64_t id, struct store_agent_link *out);

/* Records a Hello: last_seen, version. */
int store_agent_hello(store_t *st, int64_t id, uint64_t now_ms, const char *version,
                      const char *cached_hex_list);
int store_agent_seen(store_t *st, int64_t id, uint64_t now_ms);
/* Adds one sha256 hex to the agent's cached list (no duplicates). */
int store_agent_add_cached(store_t *st, int64_t id, const char *sha_hex);

/* Inserts event (agent, seq) and sets the agent's last_in_seq = seq. The
 * caller guarantees seq == last_in_seq + 1. 0 or <0. */
int store_event_append(store_t *st, int64_t agent_id, uint64_t seq, uint64_t now_ms,
                       const Firmfleet__DeviceEvent *ev);
/* store_event_append in two halves, for a caller that applies many events
 * of one agent in one transaction: the row alone, and the agent's
 * last_in_seq, which the caller must write (for the highest seq inserted)
 * in that same transaction, before it commits. 0 or <0. */
int store_event_insert(store_t *st, int64_t agent_id, uint64_t seq, uint64_t now_ms,
                       const Firmfleet__DeviceEvent *ev);
int store_agent_in_seq(store_t *st, int64_t agent_id, uint64_t seq);

/* Retention: deletes, of the max oldest event rows (by id, which grows with
 * arrival), those received before before_ms. Dedupe does not need them: it
 * goes by each agent's last_in_seq. One statement: its own transaction, or
 * part of the caller's. The number deleted (0: nothing that old is left at
 * the head) or <0. */
int store_event_prune(store_t *st, uint64_t before_ms, int max);

/* A device seen on the wire at a site: inserted with origin 'discovered' when
 * the inventory does not know its MAC; its vendor class and last_seen are
 * refreshed either way. vendor_class is printable (escaped by the caller).
 * 1 inserted, 0 updated, <0 error. */
int store_device_seen(store_t *st, int64_t site_id, const char *mac, const char *vendor_class,
                      uint64_t now_ms);

/* Builds the Assignment that puts device `mac` (canonical) on firmware
 * `fw` (VENDOR/VERSION or numeric id): its file set with sizes and hashes.
 * The firmware must list the device's model. Fills the device's site id.
 * 0, or -ENOENT / -EINVAL with a one-line reason in err. Free with
 * store_assignment_free. */
int store_assignment_build(store_t *st, const char *mac, const char *fw,
                           Firmfleet__Assignment **out, int64_t *site_id, char *err,
                           size_t errlen);
/* store_assignment_build in two halves, for many devices on one firmware
 * (the rollout engine: the firmware half once per rollout per turn, the
 * device half per device; the same rules and error texts).
 * store_assignment_firmware: *out holds firmware and files, mac NULL; *fw_id
 * the firmware's id. 0, -ENOENT (unknown firmware, reason in err) or <0.
 * Free with store_assignment_free. */
int store_assignment_firmware(store_t *st, const char *fw, Firmfleet__Assignment **out,
                              int64_t *fw_id, char *err, size_t errlen);
/* store_assignment_device: checks that firmware fw_id (named fw_name in
 * err) lists device mac's model; fills its site id and its maintenance
 * window as store_rollout_device_window does ("" none). 0, -ENOENT (unknown
 * device) or -EINVAL (model not listed) with the reason in err, or -EIO. */
int store_assignment_device(store_t *st, const char *mac, int64_t fw_id, const char *fw_name,
                            int64_t *site_id, char *window, size_t wn, char *err, size_t errlen);
void store_assignment_free(Firmfleet__Assignment *as);
/* Ids of a site's unrevoked agents (at most max). Count or <0. */
int store_site_agents(store_t *st, int64_t site_id, int64_t *ids, int max);

/* Outbox: journals a packed Envelope body for an agent, assigning the next
 * seq (returned in *seq). */
int store_outbox_append(store_t *st, int64_t agent_id, const uint8_t *payload, size_t len,
                        uint64_t *seq);
/* Deletes outbox rows <= upto and records peer_acked_seq. */
int store_outbox_ack(store_t *st, int64_t agent_id, uint64_t upto);

/* The controller's store under agent traffic: a page cache of
 * STORE_LINK_CACHE_KIB (SQLite's default is 2 MiB, so every insert into the
 * (agent_id, seq) index of a few million events read a page back through
 * pread) and a WAL checkpointed every STORE_LINK_WAL_PAGES pages instead of
 * 1,000 (a turn of thousands of events touches pages all over that index,
 * so the default could checkpoint at nearly every commit). Not durability:
 * synchronous=FULL still syncs the WAL at each commit. 0 or -EIO. */
#define STORE_LINK_CACHE_KIB_S "65536"
#define STORE_LINK_WAL_PAGES_S "8192"
int store_link_tune(store_t *st);
/* Calls fn for each outbox row with seq > after, in order, at most max rows.
 * Returns the number visited or <0. */
int store_outbox_each(store_t *st, int64_t agent_id, uint64_t after, int max,
                      void (*fn)(void *arg, uint64_t seq, const uint8_t *payload, size_t len),
                      void *arg);

/* Builds the SiteConfig of a site: name, tz, devices (with the version,
 * serials and pinned profile the controller knows), every vendor profile,
 * the trusted signing keys, image signatures as stored,
 * and the images the site needs: files of firmware whose models match its
 * devices, and of every unfinished rollout targeting one of its devices
 * (pre-fetch). The caller frees with store_site_config_free. 0 or <0. */
int store_site_config(store_t *st, int64_t site_id, Firmfleet__SiteConfig **out);
/* Makes the trusted-key set (lib/sign.h public keys as 64 lowercase hex, as
 * given to firmfleetd --trust-key) exactly hex[0..n); when that changes it,
 * bumps every site's generation so agents take the new SiteConfig, and sets
 * *changed. Own transaction (not inside another). 0, -EINVAL or -EIO. */
int store_trusted_keys_set(store_t *st, const char *const *hex, size_t n, int *changed);
void store_site_config_free(Firmfleet__SiteConfig *sc);

#endif
