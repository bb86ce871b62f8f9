/* store_backup.h: device configuration backups at the controller: what the
 * agents' HTTP servers received by PUT (BackupUpload), kept per (device MAC,
 * name) as the last STORE_BACKUP_KEEP distinct versions.
 *
 * Invariants: store_backup_put runs inside the caller's transaction (the
 * link's per-turn one, with the agent seq it arrived with), so a backup is
 * stored exactly once or not at all; content is held once per SHA-256
 * (backup_blob) however many rows name it, and a blob no row names is
 * deleted with the last row that named it; an upload identical to the newest
 * version of its (mac, name) adds no version (its last_ms and uploads move).
 */
#ifndef FF_STORE_BACKUP_H
#define FF_STORE_BACKUP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define STORE_BACKUP_KEEP 20        /* versions kept per (mac, name) */
#define STORE_BACKUP_MAX (2u << 20) /* bytes of one backup (= AGENT_BACKUP_MAX) */
#define STORE_BACKUP_NAME_MAX 200   /* bytes of a name (the agent's limit) */

struct store_backup_in {
    int64_t agent_id;    /* > 0 */
    int64_t site_id;     /* > 0 */
    const char *mac;     /* canonical aa:bb:cc:dd:ee:ff */
    const char *name;    /* checked with store_backup_name_ok */
    const uint8_t *data; /* len bytes, borrowed */
    size_t len;
    const char *sha256; /* 64 lowercase hex of data (the caller checked it) */
    uint64_t time_ms;   /* agent clock of the upload */
    uint64_t now_ms;    /* controller clock */
};

struct store_backup_out {
    int64_t id;    /* the row that now holds this content as the newest version */
    int unchanged; /* 1: identical to the newest version, no version added */
    int pruned;    /* versions deleted past STORE_BACKUP_KEEP */
};

/* 1 when name may be stored: 1..STORE_BACKUP_NAME_MAX bytes of printable
 * ASCII without '/', '\\', '"' and not starting with '.'. Pure. */
int store_backup_name_ok(const char *name);

/* Stores one backup (see the invariants). Must run inside a transaction;
 * all or nothing within it (a savepoint). 0 or -EINVAL (bad input) / -EIO. */
int store_backup_put(store_t *st, const struct store_backup_in *in, struct store_backup_out *out);

/* Array of backup objects {id, mac, site, agent, name, sha256, size,
 * time_ms, received_ms, last_ms, uploads}, newest first. mac, site: NULL or
 * "" = any (an unknown site is -ENOENT, a malformed MAC -EINVAL); limit 0 =
 * all. */
int store_backup_list(store_t *st, const char *mac, const char *site, int64_t limit, json_t **out,
                      char *err, size_t errlen);

/* One backup object as in the list, plus "versions" (how many of its (mac,
 * name) are kept). with_data: the bytes too, into *data (malloc'd, caller
 * frees; may be NULL otherwise) and *len. -ENOENT when there is no such id. */
int store_backup_get(store_t *st, int64_t id, json_t **meta, uint8_t **data, size_t *len, char *err,
                     size_t errlen);

#endif
