/* ctl_rollout.h: the rollout engine and what the admin verbs call.
 *
 * A rollout puts one firmware on the devices a selector matches, wave by
 * wave. The controller tells each device's site agent(s) what the device
 * should end at (an Assignment, journaled in the outbox); the agents enforce
 * windows and serials and report upgrade.* events, which move each device
 * through
 *   pending -> assigned -> waiting_window -> offered -> downloading ->
 *   installed -> verifying -> succeeded | failed | skipped | cancelled.
 * The engine runs on the controller's one thread: rollout_tick from the poll
 * loop (about once a second, its own transaction), rollout_on_event from the
 * agent link inside the link's per-turn transaction. All state is in the
 * store, so a restarted controller continues where it stopped. Every step
 * the controller takes itself is also written as an event (rollout.state,
 * rollout.wave, rollout.device, device.drift).
 *
 * Everything that depends on time takes now_ms (wall clock, ms) from the
 * caller: tests drive a fake clock.
 */
#ifndef FF_CTL_ROLLOUT_H
#define FF_CTL_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

#include "ctl.h"
#include "firmfleet.pb-c.h"
#include "store_rollout.h"

#define ROLLOUT_WAVES_MAX 32
#define ROLLOUT_DEFAULT_WAVES "100%"
#define ROLLOUT_DEFAULT_MAX_FAILURES "1"
#define ROLLOUT_DEFAULT_VERIFY_S 1800

/* ---- pure helpers (no store, no clock) ---- */

/* Checks a waves spec: a comma list; leading items may be counts (N >= 1
 * devices in that wave) or "canary" (one device per (site, model)); then
 * percentages, cumulative of the total, strictly increasing; the last item
 * must be 100%. Returns the number of waves, or -EINVAL with the reason. */
int rollout_waves_check(const char *spec, char *err, size_t errlen);
/* Puts each of the n targets (ordered by site name, mac) in a wave (1-based)
 * following spec; *n_waves gets the number of waves. 0 or -EINVAL/-ENOMEM. */
int rollout_plan(const char *spec, const struct store_rollout_target *t, size_t n, int64_t *wave,
                 int64_t *n_waves, char *err, size_t errlen);
/* "N" (0..1000000) or "N%" (0..100): 0 or -EINVAL with the reason. */
int rollout_max_failures_check(const char *spec, char *err, size_t errlen);
/* The number of failures tolerated for a rollout of total devices: N, or
 * floor(N% of total). */
int64_t rollout_max_failures(const char *spec, int64_t total);
/* "90s", "6m", "1h30m", "2d", or plain seconds; at most 400 days. */
int rollout_duration_parse(const char *s, int64_t *secs);
/* Formats seconds as the parser reads them ("1h30m", "45s"). */
void rollout_duration_format(int64_t secs, char *out, size_t n);
/* "YYYY-MM-DDTHH:MM[:SS]" (controller's local time) or the same ending in
 * "Z" (UTC); a space may replace the T. 0 and *ms, or -EINVAL. */
int rollout_time_parse(const char *s, int64_t *ms);
/* Builds the per-state timeouts document ({"assigned":3600,...}) from the
 * defaults and a "STATE=DURATION,..." override list (NULL or "" = none).
 * 0 or -EINVAL with the reason. */
int rollout_timeouts_build(const char *spec, char *json, size_t n, char *err, size_t errlen);
/* Timeout in seconds of device state `state` under timeouts (a document
 * from rollout_timeouts_build); -1 when the state has none. */
int64_t rollout_timeout_s(const char *timeouts, int state);

/* ---- what to tell the link after a commit ---- */
struct rollout_notes {
    int64_t *agents; /* outboxes to flush */
    size_t n_agents, cap_agents;
    int64_t *sites; /* sites whose SiteConfig changed */
    size_t n_sites, cap_sites;
};
/* Flushes outboxes and re-sends SiteConfigs through ctl->link (when there is
 * one), then frees the lists. Call only after the commit. */
void rollout_notes_flush(struct ctl *ctl, struct rollout_notes *n);
void rollout_notes_free(struct rollout_notes *n);

/* ---- admin verbs (each one transaction with its audit row; on error
 * nothing changes and err holds one line) ---- */
struct rollout_create_in {
    const char *name, *firmware, *profile;
    const char *sites, *models, *tags, *devices; /* selector; NULL = no filter */
    const char *waves, *max_failures, *site_concurrency, *window, *start_at;
    const char *boot_grace, *spread, *verify_timeout, *timeouts;
    int stage_fresh;
};
int rollout_create(struct ctl *ctl, const char *user, const struct rollout_create_in *in,
                   uint64_t now_ms, struct rollout_notes *notes, char *err, size_t errlen);
int rollout_start(struct ctl *ctl, const char *user, const char *name, uint64_t now_ms,
                  struct rollout_notes *notes, char *err, size_t errlen);
int rollout_pause(struct ctl *ctl, const char *user, const char *name, uint64_t now_ms,
                  struct rollout_notes *notes, char *err, size_t errlen);
int rollout_resume(struct ctl *ctl, const char *user, const char *name, uint64_t now_ms,
                   struct rollout_notes *notes, char *err, size_t errlen);
int rollout_abort(struct ctl *ctl, const char *user, const char *name, uint64_t now_ms,
                  struct rollout_notes *notes, char *err, size_t errlen);

/* ---- the engine ---- */
/* One pass over every scheduled/running/paused/halted rollout in its own
 * transaction: starts scheduled ones, expires state timeouts, appends new
 * matching devices, halts, assigns, promotes waves, finishes. Then tells the
 * link. Assigns at most a bounded batch per rollout and turn. 1 when a
 * rollout has more to assign now (tick again after serving I/O), 0 when
 * not, <0 (rolled back, logged; the next tick retries). */
int rollout_tick(struct ctl *ctl, uint64_t now_ms);
/* An agent event (already stored) from an agent of site_id: moves the
 * rollout device it names, records device versions and drift. Runs inside
 * the caller's transaction; ignores what does not apply. */
void rollout_on_event(struct ctl *ctl, int64_t site_id, const Firmfleet__DeviceEvent *ev,
                      uint64_t now_ms);

/* ---- profiles ---- */
/* Checks a profile's JSON text with profile_parse and stores it as an
 * operator profile (replace: over an existing one). *name_out (64 bytes)
 * gets its name. Every site's generation is bumped (notes). */
int rollout_profile_add(struct ctl *ctl, const char *user, const char *json, size_t len,
                        int replace, char name_out[64], struct rollout_notes *notes, char *err,
                        size_t errlen);
/* Loads every *.json of dir as a builtin profile. A file that does not
 * parse is logged with the reason and skipped. must_exist: a missing dir is
 * an error (-ENOENT), else it is fine. Returns the number loaded or <0. */
int rollout_profiles_load(store_t *st, const char *dir, int must_exist);

#endif
