/* provision.h: the agent's side of rollouts. It keeps, per device, what the
 * site's vendor profiles (SiteConfig.profiles, lib/profile.h) make of what
 * the device sends (profile, stage, running version, model) and where the
 * device's upgrade stands, and it enforces the rollout rules itself, with or
 * without the controller: the window in the site's time zone (with the
 * MAC-seeded spread), boot grace, the factory-fresh exemption, serials,
 * per-site concurrency, and success observed rather than assumed.
 *
 * Upgrade states (per device, for the rollout of its Assignment):
 *   "" (none) -> waiting <-> offered -> downloading -> installed -> verifying
 *   -> succeeded | failed;  skipped from none/waiting/offered.
 * Each transition is journaled (journal_device_put) together with its
 * upgrade.* event in the loop turn's transaction: reported once, never per
 * packet. Times come from the decision clock, wall clock + --clock-offset.
 *
 * "May upgrade now" (s_blocker in provision.c): holds an Assignment, not in a
 * terminal state, serials differ, and
 *   - window: the window allows now and now - spread (site tz), unless the
 *     rollout stages factory-fresh devices and this one is fresh (DeviceRef
 *     has no version and empty serials): those are upgraded window or not;
 *   - grace: now - boot_at >= boot_grace_s (same fresh exemption);
 *   - concurrency: fewer than site_concurrency other devices of the rollout
 *     in offered..verifying at this agent (0 = no cap).
 * Verification: after installed, the device's next DISCOVER (or REQUEST
 * without ciaddr) is its reboot (verifying); the next version it shows must
 * equal Assignment.version (or, when the controller sent none, the stem of
 * the final image it installed) for succeeded, any other is failed; none
 * within verify_s is failed too.
 * Once offered, the device is served its target files (and the profile's
 * "upgrade" files) until the rollout ends for it; a window that closes
 * before the first download sends it back to waiting, one that closes
 * during the download does not cut the device off half-way.
 *
 * DHCP options: the profile's options (stage over profile) apply only to a
 * device a profile recognises; the site's class options still win for every
 * code they set, then the profile's, then the subnet's (operators' explicit
 * configuration beats a family's defaults).
 *
 * Everything here runs on the loop thread.
 */
#ifndef FF_PROVISION_H
#define FF_PROVISION_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "dhcpopt.h"
#include "files.h"
#include "profile.h"

#define PROV_MAX_DEVICES 65536
#define PROV_TICK_MS 1000

typedef struct prov prov_t;

/* Loads the journaled device states and assignments, starts the 1 s timer
 * and the SIP NOTIFY sender, registers as a service (config, stop). Sets
 * a->prov. 0 or <0 (logged). */
int prov_start(struct agent *a);

/* The decision clock: wall clock + --clock-offset, ms since the epoch. */
int64_t prov_now_ms(const struct agent *a);

/* An Assignment was stored (new or changed; as borrowed) or a Cancel
 * removed one (rollout_id 0 = any). Called from agent.c inside the turn's
 * transaction. */
void prov_on_assignment(struct agent *a, const char *mac, const Firmfleet__Assignment *as);
void prov_on_cancel(struct agent *a, const char *mac, uint64_t rollout_id);

/* A device was seen: a DHCP packet (boot = DISCOVER or a REQUEST without
 * ciaddr, i.e. it (re)started), a TFTP or HTTP request (file, user_agent).
 * e->mac is required. ip_be: the device's address if known (0 = not). */
void prov_observe(struct agent *a, const struct profile_evidence *e, int boot, uint32_t ip_be);

/* The profile's DHCP options for the device in its current stage (pointers
 * valid until the next configuration change); 0 when no profile owns it. */
size_t prov_dhcp_options(struct agent *a, const uint8_t mac[6], const struct dhcpopt **out,
                         size_t max);

/* One file request (name cleaned). */
struct prov_fctx {
    const char *name;
    const uint8_t *mac;    /* the device, or NULL: found from the name or client_ip */
    uint32_t client_ip_be; /* network order, 0 unknown */
    uint32_t local_ip_be;  /* the address the request arrived on ({{server_ip}}) */
    int nocase;
};
/* Answers a request from the device's profile or its Assignment's files:
 * 1 with *out filled (served), 0 not one of ours (the caller goes on with
 * its own lookup), -ENOENT refused (a target file or a `when: upgrade` file
 * while the device may not upgrade, a `when: hold` file while it may),
 * other <0 errors. Serving a target file moves offered -> downloading. */
int prov_file_open(struct agent *a, const struct prov_fctx *fc, struct files_src *out);

/* A transfer of `name` (the requested name) ended with the whole file
 * sent (bytes). A target file matching the profile's final_image moves the
 * device to installed. */
void prov_transfer_done(struct agent *a, const uint8_t mac[6], const char *name, uint64_t bytes);

/* For tests and logs: the device's journaled record. 1 found, 0 not. */
int prov_device_get(struct agent *a, const uint8_t mac[6], struct journal_device *out);
/* Runs the 1 s evaluation now (tests). */
void prov_tick(struct agent *a);
/* SIP NOTIFYs sent so far (tests). */
uint64_t prov_restarts_sent(const struct agent *a);
/* Offers whose NOTIFY had to wait for a free slot (SIPN_MAX_PENDING in
 * flight); each is sent on a later tick (tests). */
uint64_t prov_restarts_deferred(const struct agent *a);

/* For /metrics (walks every device: O(devices), at scrape time only).
 * Upgrade states are 0..PROV_STATES-1; prov_state_name(i) is "none" for 0,
 * then waiting, offered, ... skipped, NULL past the end. counts[i] gets the
 * devices in state i (n entries are zeroed first); returns the number of
 * devices the agent knows. */
#define PROV_STATES 9
const char *prov_state_name(int i);
size_t prov_state_counts(const struct agent *a, uint64_t *counts, size_t n);
/* The SIP NOTIFY sender's counters; -ENOENT (zeroed) when it is not running. */
struct sipn_stats;
int prov_sip_stats(const struct agent *a, struct sipn_stats *out);

#endif
