/* store_rollout.h: what the rollout engine (controller/ctl_rollout.c) and the
 * profile verbs need from the controller store: vendor profiles, rollouts,
 * the per-device state of each rollout, the events the controller writes
 * about its own steps, and the status documents the CLI renders.
 *
 * Conventions are those of store_inv.h: 0 or a negative errno-style code, a
 * one-line message in err where the function takes one, jansson documents the
 * caller owns. Functions without err run inside a transaction the caller
 * opened (store_rollout_tx_begin, or the link's per-turn one) and leave the
 * rollback to it. Times are ms since the epoch; the engine passes its own
 * `now_ms` everywhere so that tests can drive a fake clock.
 *
 * Device states of a rollout, in the order they are reached:
 *   pending assigned waiting_window offered downloading installed verifying,
 * then one of the terminal states succeeded failed skipped cancelled.
 * Rollout states: created scheduled running paused halted (unfinished),
 * aborted done (finished). An unfinished rollout keeps its firmware in the
 * SiteConfig images of every site it targets (pre-fetch).
 */
#ifndef FF_STORE_ROLLOUT_H
#define FF_STORE_ROLLOUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define STORE_RDEV_N 11
enum store_rdev_state {
    STORE_RDEV_PENDING,
    STORE_RDEV_ASSIGNED,
    STORE_RDEV_WAITING_WINDOW,
    STORE_RDEV_OFFERED,
    STORE_RDEV_DOWNLOADING,
    STORE_RDEV_INSTALLED,
    STORE_RDEV_VERIFYING,
    STORE_RDEV_SUCCEEDED,
    STORE_RDEV_FAILED,
    STORE_RDEV_SKIPPED,
    STORE_RDEV_CANCELLED,
};
/* Name of state i ("pending" ...), NULL out of range. */
const char *store_rdev_name(int i);
/* Index of a state name, -1 when unknown. */
int store_rdev_index(const char *name);
/* 1 for succeeded, failed, skipped, cancelled. */
int store_rdev_terminal(int i);

/* ---- transactions that compose: BEGIN IMMEDIATE, or a savepoint when one
 * is open already. end commits (rc == 0) or rolls back; returns rc or -EIO. */
int store_rollout_tx_begin(store_t *st, int *savepoint);
int store_rollout_tx_end(store_t *st, int savepoint, int rc);

/* ---- profiles ---- */
struct store_profile_in {
    const char *name, *description, *json, *source; /* source: builtin | operator */
    int priority;
    int replace; /* operator: an existing profile (of any source) is replaced */
};
/* Adds or replaces a profile (checked by the caller with profile_parse).
 * builtin: upserts, but never over an operator's profile of that name
 * (*changed 0 then); operator: -EEXIST without replace. Bumps every site's
 * generation when the stored text changed (*changed 1) and appends the site
 * ids to site_ids (may be NULL). user NULL: no audit row (start-up load). */
int store_profile_put(store_t *st, const char *user, const struct store_profile_in *p, int *changed,
                      json_t *site_ids, char *err, size_t errlen);
/* {"profiles":[{name, description, source, priority, signed}]} ordered by
 * priority, name; a signed profile also has signer (public key, 64 hex) and
 * key_id (its first 16 hex digits). */
int store_profile_list(store_t *st, json_t **out, char *err, size_t errlen);
/* {name, description, source, priority, added_at, json, signed} (+ signer,
 * key_id when signed, as in the list). */
int store_profile_show(store_t *st, const char *name, json_t **out, char *err, size_t errlen);
/* Removes it unless an unfinished rollout uses it or a device is pinned to
 * it (-EBUSY); bumps every site. */
int store_profile_remove(store_t *st, const char *user, const char *name, json_t *site_ids,
                         char *err, size_t errlen);
/* The JSON text of a profile (malloc'd, caller frees): 0, -ENOENT. */
int store_profile_json(store_t *st, const char *name, char **out);
/* Names of the profiles whose name equals vendor or starts with "vendor-"
 * (json array, caller owns). */
int store_profile_for_vendor(store_t *st, const char *vendor, json_t **out);

/* ---- firmware facts the engine needs ---- */
struct store_fw_ref {
    int64_t id;
    char vendor[80], version[80], ref[160]; /* ref = vendor/version */
};
/* By VENDOR/VERSION or decimal id: 0, -ENOENT (message in err). */
int store_rollout_firmware(store_t *st, const char *ref, struct store_fw_ref *out, char *err,
                           size_t errlen);
/* Files of firmware id as a json array of {name, sha256, size}. */
int store_rollout_fw_files(store_t *st, int64_t fw_id, json_t **out);

/* ---- rollouts ---- */
struct store_rollout {
    int64_t id, firmware_id;
    char name[64], firmware[160], version[80], profile[64];
    char waves[256], max_failures[32], window[512], state[16], reason[256];
    char timeouts[512]; /* {"STATE": seconds, ...} */
    int64_t site_concurrency, boot_grace_s, stage_fresh, spread_s, verify_s;
    int64_t start_at;                                                   /* 0 = none */
    int64_t current_wave, n_waves, created_at, started_at, finished_at; /* 0 = not yet */
};
/* By name or decimal id: 0, -ENOENT ("unknown rollout 'X'"). */
int store_rollout_get(store_t *st, const char *name_or_id, struct store_rollout *out, char *err,
                      size_t errlen);
/* By id only (events name rollouts by id): 1 found, 0 not, <0. */
int store_rollout_by_id(store_t *st, int64_t id, struct store_rollout *out);
/* Ids of rollouts the engine works on (scheduled, running, paused, halted),
 * at most max; count or <0. */
int store_rollout_active(store_t *st, int64_t *ids, int max);
/* 1 when a rollout of that name exists, 0 not, <0. */
int store_rollout_name_taken(store_t *st, const char *name);

/* A device a selector matches. busy: the name of another unfinished rollout
 * in which the device is not yet terminal ("" when none). */
struct store_rollout_target {
    int64_t device_id, site_id;
    char mac[18], site[64], model[72], busy[64];
};
/* Devices matching selector (JSON {"sites":[],"models":[],"tags":[],
 * "devices":[]}; an empty or missing list does not filter) whose model
 * firmware fw_id lists, ordered by site name, mac. rollout_id > 0: the
 * selector is that rollout's, and only devices added to the inventory since
 * its watermark (device ids are never reused: devices are not deleted) and
 * not in it yet come out, so the engine's per-tick check is a range scan.
 * *out is malloc'd (caller frees), *n its length. */
int store_rollout_select(store_t *st, const char *selector, int64_t fw_id, int64_t rollout_id,
                         struct store_rollout_target **out, size_t *n);

struct store_rollout_in {
    const char *name, *profile, *selector, *waves, *max_failures, *window, *timeouts;
    int64_t firmware_id, site_concurrency, boot_grace_s, stage_fresh, spread_s, verify_s;
    int64_t start_at, n_waves;
};
/* Inserts a rollout (state created) with its devices (t[i] in wave[i]) in
 * one transaction with its audit row and rollout.state event; bumps the
 * generation of every targeted site (pre-fetch) into site_ids. -EEXIST for a
 * taken name. */
int store_rollout_insert(store_t *st, const char *user, const struct store_rollout_in *in,
                         const struct store_rollout_target *t, const int64_t *wave, size_t n,
                         uint64_t now_ms, int64_t *id_out, json_t *site_ids, char *err,
                         size_t errlen);
/* Sets state and reason; started_at (first time running/scheduled) and
 * finished_at (aborted, done) follow. */
int store_rollout_set_state(store_t *st, int64_t id, const char *state, const char *reason,
                            uint64_t now_ms);
int store_rollout_set_wave(store_t *st, int64_t id, int64_t wave);
/* Moves the rollout's watermark to the newest device id. */
int store_rollout_watermark(store_t *st, int64_t id);
/* Bumps the generation of every site the rollout targets, ids into site_ids. */
int store_rollout_bump_sites(store_t *st, int64_t id, json_t *site_ids);

/* 1 when a device of rollout_id in a wave <= max_wave (0: any) is in a
 * state that is not terminal, 0 when none, -EIO. O(log n) per state, where
 * store_rollout_counts reads every row: the engine asks this every turn. */
int store_rollout_in_flight(store_t *st, int64_t rollout_id, int64_t max_wave);

/* One device of a rollout, with what the inventory knows of it. */
struct store_rdev {
    int64_t device_id, site_id, wave, entered_at, updated_at;
    int state; /* enum store_rdev_state */
    char mac[18], model[72], reason[256], version[80], serial_firmware[80];
};
/* Which devices of a rollout store_rollout_devices returns. */
struct store_rdev_filter {
    int state;              /* -1: any */
    int64_t max_wave;       /* 0: any, else wave <= max_wave */
    int64_t entered_before; /* 0: any, else entered_at < entered_before (timeouts) */
    int assignable;         /* 1: leave out pending devices waiting for an agent
                             * (reason "no agent") whose site still has none */
    int64_t limit;          /* 0: all */
};
/* The rollout's devices that f selects, ordered by wave, site, mac; *out
 * malloc'd (caller frees). */
int store_rollout_devices(store_t *st, int64_t rollout_id, const struct store_rdev_filter *f,
                          struct store_rdev **out, size_t *n);
/* One device by MAC: 1 found, 0 not, <0. */
int store_rollout_device_get(store_t *st, int64_t rollout_id, const char *mac,
                             struct store_rdev *out);
/* Moves a device to state with reason; entered_at changes only when the
 * state does. */
int store_rollout_device_set(store_t *st, int64_t rollout_id, int64_t device_id, int state,
                             const char *reason, uint64_t now_ms);
int store_rollout_device_add(store_t *st, int64_t rollout_id, const struct store_rollout_target *t,
                             int64_t wave, uint64_t now_ms);
/* The number of the rollout's devices in state (an index range: cheap
 * when few are, unlike store_rollout_counts, which reads every row). */
int64_t store_rollout_count_state(store_t *st, int64_t rollout_id, int state);
/* counts[state] over the devices of waves <= max_wave (0: all). */
int store_rollout_counts(store_t *st, int64_t rollout_id, int64_t max_wave,
                         int64_t counts[STORE_RDEV_N]);
/* The calendar a device's assignment gets from the inventory: its pinned
 * class's window (the site's own class of that name, else the global one),
 * else its site's; "" when neither has one. */
int store_rollout_device_window(store_t *st, int64_t device_id, char *out, size_t n);

/* ---- events the controller writes (agent_id NULL, seq 0) ---- */
int store_ctl_event(store_t *st, int64_t site_id, const char *kind, const char *mac,
                    const char *detail, uint64_t now_ms);

/* ---- what devices run ---- */
/* The recorded running version of device mac: 1 found (version, site id),
 * 0 unknown device, <0. */
int store_device_version(store_t *st, const char *mac, char *version, size_t n, int64_t *site_id);
/* Records the running version; with_serial: serial_firmware too. No
 * generation bump: the agent reported it, so it knows. */
int store_device_version_set(store_t *st, const char *mac, const char *version, int with_serial);
/* 1 when a rollout explains version on device mac: one put it there (the
 * target is that version and the device got past pending), or one is
 * upgrading it now (a device in flight passes through loader versions);
 * else 0. */
int store_device_version_expected(store_t *st, const char *mac, const char *version);

/* ---- documents ---- */
/* {"rollouts":[{id, name, state, reason, firmware, profile, total,
 * succeeded, failed, created_at}]} ordered by id. */
int store_rollout_list(store_t *st, json_t **out, char *err, size_t errlen);
/* The status document (ctl_admin.h, `rollout status`). The per-device
 * list ("devices") only with with_devices: a rollout over 100,000 devices
 * must not need a 10 MB answer for its counts. */
int store_rollout_status(store_t *st, const char *name_or_id, int with_devices, json_t **out,
                         char *err, size_t errlen);

#endif
