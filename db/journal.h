/* journal.h: the site agent's local SQLite journal (STATEDIR/journal.db).
 *
 * It holds what must survive kill -9 at any instant:
 *   - the outbox: agent->controller messages (a packed DeviceEvent or
 *     BackupUpload, with the Envelope body field number saying which), numbered by
 *     a per-agent seq that is contiguous from 1 and never reused, even after
 *     acked rows are deleted (the last seq lives in meta);
 *   - sequence state: last seq journaled, highest seq the controller acked,
 *     last controller seq applied (contiguous);
 *   - counters (synthetic events), the latest SiteConfig and its generation;
 *   - assignments (mac -> packed Assignment, upsert is a no-op when equal);
 *   - the image cache index (state, verified prefix, bytes received);
 *   - the DHCP server's leases and discovered MACs (tables written by
 *     db/lease.c through journal_db()).
 *
 * Group commit: the agent opens one transaction per loop turn with
 * journal_begin() (idempotent), writes through the calls below, and
 * journal_commit()s once before the loop blocks. Writes outside a transaction
 * are API misuse (assert). The journal keeps two views of the sequence state:
 * the working one (including this turn's uncommitted writes) and the committed
 * one; only committed rows and values may leave the process.
 *
 * Single-threaded; one journal_t per agent process.
 */
#ifndef FF_JOURNAL_H
#define FF_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct journal journal_t;

enum journal_img_state { JOURNAL_IMG_PARTIAL = 0, JOURNAL_IMG_CACHED, JOURNAL_IMG_CORRUPT };

struct journal_image {
    char sha_hex[65]; /* lowercase hex of the SHA-256, the key */
    uint64_t size;    /* expected size in bytes (0 = not yet known) */
    char name[256];   /* file name from the catalog, for logs */
    enum journal_img_state state;
    uint64_t verified_offset; /* prefix of the partial known to be on disk */
    uint64_t bytes_received;  /* bytes received for it, across restarts */
};

/* Opens (creating, migrating) the journal at path. 0 or a negative code
 * (logged). */
int journal_open(const char *path, journal_t **out);
/* Rolls back an open transaction, finalizes, closes. Nulls *j_p; idempotent. */
void journal_close(journal_t **j_p);

/* The migrations journal_open() applies, for tests that build old schemas. */
const char *const *journal_migrations(int *n_out);

/* Transactions. begin is a no-op inside one; commit is a no-op outside one.
 * A failed commit rolls back and reloads the working state from disk. */
int journal_begin(journal_t *j);
int journal_commit(journal_t *j);
void journal_rollback(journal_t *j);
int journal_in_tx(const journal_t *j);

/* The journal's SQLite handle, for the other db/ modules that keep their
 * tables in the journal (db/lease.c) and write them inside its per-turn
 * transaction. Borrowed: valid until journal_close(); statements prepared on
 * it must be finalized before that. */
struct sqlite3;
struct sqlite3 *journal_db(journal_t *j);

/* Which Envelope body an outbox row holds: the body's field number in
 * proto/firmfleet.proto (Envelope.event, Envelope.backup). */
#define JOURNAL_BODY_EVENT 16
#define JOURNAL_BODY_BACKUP 19

/* Outbox. Appends payload (copied) as seq = last_seq + 1, returned in *seq_out.
 * body: JOURNAL_BODY_*; journal_append_event is body JOURNAL_BODY_EVENT.
 * 0, -EMSGSIZE or <0. */
int journal_append(journal_t *j, int body, const uint8_t *payload, size_t len, uint64_t now_ms,
                   uint64_t *seq_out);
int journal_append_event(journal_t *j, const uint8_t *payload, size_t len, uint64_t now_ms,
                         uint64_t *seq_out);
/* The controller has committed everything <= upto: deletes those rows and
 * raises acked. upto <= acked is a no-op; upto > last_seq is -ERANGE. */
int journal_ack(journal_t *j, uint64_t upto);
/* The controller already holds seqs up to base > last_seq (our state was lost):
 * renumbers unacked rows to follow base and sets acked = base. 0 or <0. */
int journal_rebase(journal_t *j, uint64_t base);
/* Calls fn for each outbox row with from <= seq <= upto in order, at most max
 * rows; fn returns non-zero to stop. payload is valid during the call only.
 * Returns the number of rows fn was called for, or <0. */
int journal_iter_from(journal_t *j, uint64_t from, uint64_t upto, int max,
                      int (*fn)(void *arg, uint64_t seq, const uint8_t *payload, size_t len),
                      void *arg);

/* The same, with each row's body (JOURNAL_BODY_*). */
int journal_iter_rows(journal_t *j, uint64_t from, uint64_t upto, int max,
                      int (*fn)(void *arg, uint64_t seq, int body, const uint8_t *payload,
                                size_t len),
                      void *arg);

uint64_t journal_last_seq(const journal_t *j);          /* working */
uint64_t journal_committed_seq(const journal_t *j);     /* durable */
uint64_t journal_acked(const journal_t *j);             /* working */
uint64_t journal_last_applied(const journal_t *j);      /* working */
uint64_t journal_committed_applied(const journal_t *j); /* durable */
/* Records that controller seq `seq` has been applied (in the same transaction
 * as its effect). 0 or <0. */
int journal_set_last_applied(journal_t *j, uint64_t seq);

/* Named counters in meta (e.g. "synth_count"); absent reads as 0. */
int journal_counter_get(journal_t *j, const char *key, uint64_t *out);
int journal_counter_set(journal_t *j, const char *key, uint64_t value);

/* Latest SiteConfig (packed) and its generation. get: 1 found (*blob is
 * malloc'd, caller frees), 0 none, <0 error. */
int journal_config_get(journal_t *j, uint64_t *generation, uint8_t **blob, size_t *len);
int journal_config_put(journal_t *j, uint64_t generation, const uint8_t *blob, size_t len);

/* Assignments. put: 1 stored (new or changed), 0 identical (no-op), <0 error.
 * get: 1 found (*blob malloc'd, caller frees), 0 not. delete: 1 deleted, 0
 * none (rollout_id 0 matches any). */
int journal_assignment_put(journal_t *j, const char *mac, uint64_t rollout_id, const uint8_t *blob,
                           size_t len);
int journal_assignment_get(journal_t *j, const char *mac, uint8_t **blob, size_t *len);
int journal_assignment_delete(journal_t *j, const char *mac, uint64_t rollout_id);
int journal_assignment_count(journal_t *j);
/* fn per stored assignment in MAC order (blob valid during the call only;
 * non-zero stops). Returns the number visited or <0. */
int journal_assignment_each(journal_t *j,
                            int (*fn)(void *arg, const char *mac, const uint8_t *blob, size_t len),
                            void *arg);

/* Provisioning state of one device (siteagent/provision.c). Times are ms
 * since the epoch on the agent's decision clock (wall clock + --clock-offset). */
struct journal_device {
    char mac[18];         /* aa:bb:cc:dd:ee:ff, the key */
    char profile[64];     /* profile that owns it, "" none */
    char stage[64];       /* "" unknown */
    char version[128];    /* running version as last observed, "" unknown */
    char model[64];
    char installed[256];  /* stem of the final image last fetched whole */
    int64_t boot_at;      /* last DHCP DISCOVER / INIT-REBOOT */
    uint64_t rollout_id;  /* rollout the upgrade state belongs to, 0 none */
    char state[16];       /* "" or waiting|offered|downloading|installed|verifying|... */
    char reason[128];
    int64_t state_at;     /* when state was entered */
    char done_firmware[256]; /* Serials.firmware of the last upgrade that succeeded here */
    int64_t updated;
};
/* Upsert by mac / delete / fn per row in MAC order (non-zero stops; returns
 * the number visited or <0). */
int journal_device_put(journal_t *j, const struct journal_device *d);
int journal_device_delete(journal_t *j, const char *mac);
int journal_device_each(journal_t *j, int (*fn)(void *arg, const struct journal_device *d),
                        void *arg);

/* Image index. get: 1 found, 0 not, <0 error. each: fn per row (non-zero
 * stops), returns the number visited or <0. */
int journal_image_get(journal_t *j, const char *sha_hex, struct journal_image *out);
int journal_image_put(journal_t *j, const struct journal_image *img);
int journal_image_delete(journal_t *j, const char *sha_hex);
int journal_image_each(journal_t *j, int (*fn)(void *arg, const struct journal_image *img),
                       void *arg);

#endif
