/* store_inv.h: inventory queries on the controller store: sites, agents,
 * devices, firmware (and the blobs it references), the event log (read only;
 * events are written by store_link) and the audit log.
 *
 * Conventions shared by every function here:
 *   - return 0 on success or a negative errno-style code: -EINVAL (bad input),
 *     -ENOENT (a named thing does not exist), -EEXIST (duplicate), -EALREADY
 *     (revoking a revoked agent), -EBUSY (removing something a device still
 *     uses), -EFBIG (a template or a site's templates too large), -EIO
 *     (database), -ENOMEM;
 *   - on error, a one-line human message (no trailing newline) is written to
 *     err (size errlen); it is meant for the operator's terminal as-is;
 *   - results are jansson documents the caller owns (json_decref);
 *   - every write validates all of its input first, then runs in ONE
 *     transaction together with its audit row: on any error nothing changes.
 *     Writes open their own transaction (BEGIN IMMEDIATE), or a SAVEPOINT when
 *     the caller already has one open, so they compose with the link's group
 *     commit;
 *   - `user` (who is acting, for the audit row) may be NULL or "" ("unknown").
 *
 * Validation rules (the CLI documents them in firmfleet(1)):
 *   site / agent names  [a-z0-9][a-z0-9._-]{0,62}
 *   tz                  a file under /usr/share/zoneinfo that starts "TZif",
 *                       named by a relative path of [A-Za-z0-9_+-] components
 *   MAC                 anything util_mac_parse accepts, stored canonical
 *   model               1..64 printable ASCII characters, no ',', no leading or
 *                       trailing space
 *   serial              0..64 printable ASCII characters, no ','
 *   tags                comma list of [A-Za-z0-9._-]{1,63}, at most 255 bytes
 *                       in all; stored comma-joined, duplicates dropped, order kept
 *   vendor, version     [A-Za-z0-9][A-Za-z0-9._+-]{0,63}
 *   firmware file name  [A-Za-z0-9_][A-Za-z0-9._+-]{0,127} (no '/', no "..")
 *   description         0..1024 bytes of UTF-8 without control characters
 *   class name          as site names
 *   reservation (ip)    a dotted-quad IPv4 address; see "site services"
 */
#ifndef FF_STORE_INV_H
#define FF_STORE_INV_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define STORE_ZONEINFO "/usr/share/zoneinfo"
#define STORE_IMPORT_MAX 100000 /* devices per import */

/* ---- validators (pure; 0 or -EINVAL with a message in err) ---- */
int store_check_name(const char *what, const char *s, char *err, size_t errlen);
int store_check_tz(const char *tz, char *err, size_t errlen);
int store_check_model(const char *s, char *err, size_t errlen);
int store_check_serial(const char *s, char *err, size_t errlen);
/* Checks a comma list of tags and writes the normalised list into out. */
int store_check_tags(const char *s, char *out, size_t outlen, char *err, size_t errlen);
int store_check_fw_part(const char *what, const char *s, char *err, size_t errlen);
int store_check_file_name(const char *s, char *err, size_t errlen);
int store_check_text(const char *what, const char *s, size_t max, char *err, size_t errlen);
int store_check_sha256(const char *s, char *err, size_t errlen);
/* Exactly len lowercase hex digits; what names it in the message. */
int store_check_hex(const char *what, const char *s, size_t len, char *err, size_t errlen);

/* ---- sites ---- */
/* Adds a site. description may be NULL. *id_out (may be NULL) gets its id. */
int store_site_add(store_t *st, const char *user, const char *name, const char *tz,
                   const char *description, int64_t *id_out, char *err, size_t errlen);
/* Array of site objects {id, name, tz, description, created_ms, generation,
 * devices, agents, window} ordered by name; `agents` counts unrevoked agents. */
int store_site_list(store_t *st, json_t **out, char *err, size_t errlen);
/* One site object (as in the list); -ENOENT when unknown. */
int store_site_show(store_t *st, const char *name, json_t **out, char *err, size_t errlen);
/* Site id by name: 0 found, -ENOENT, -EIO. */
int store_site_id(store_t *st, const char *name, int64_t *id_out, char *err, size_t errlen);

/* ---- agents ---- */
/* Enrolls agent `name` at `site` with its Z85 public key. */
int store_agent_enroll(store_t *st, const char *user, const char *name, const char *site,
                       const char *pubkey, int64_t *id_out, char *err, size_t errlen);
/* The same with a single-use enrollment key: until expires_ms (wall clock,
 * ms; 0 = a long-term key, as store_agent_enroll) ZAP admits pubkey once,
 * for the agent to register its own key (store_agent_register). */
int store_agent_enroll_until(store_t *st, const char *user, const char *name, const char *site,
                             const char *pubkey, uint64_t expires_ms, int64_t *id_out, char *err,
                             size_t errlen);

/* What ZAP makes of a CURVE key (store_agent_zap). */
enum {
    STORE_ZAP_UNKNOWN = 0, /* no agent has it */
    STORE_ZAP_OK,          /* an agent's registered (or long-term) key */
    STORE_ZAP_REVOKED,     /* the agent is revoked */
    STORE_ZAP_ENROLL,      /* an enrollment key, unused and not expired */
    STORE_ZAP_EXPIRED,     /* an enrollment key never used before it expired */
    STORE_ZAP_USED,        /* an enrollment key already used: dead */
};
struct store_zap_info {
    int64_t id;
    char name[64];
    int64_t expires_ms; /* enrollment key: expiry */
    int64_t used_ms;    /* enrollment key: when it was used */
};
/* Looks z85 up as an agent key or a used enrollment key. Returns one of
 * STORE_ZAP_* (out filled unless UNKNOWN) or <0 on a database error. */
int store_agent_zap(store_t *st, const char *z85, uint64_t now_ms, struct store_zap_info *out);
/* Records (audit log, user "zap") a refused enrollment key of agent id,
 * at most once a minute per agent. 1 audited, 0 rate-limited, <0 error. */
int store_agent_enroll_refused(store_t *st, int64_t id, uint64_t now_ms, const char *detail);
/* First use of agent id's enrollment key enroll_key: new_key becomes its
 * key, enroll_key is dead from now on. new_key NULL (a client that sends no
 * key of its own) keeps enroll_key as the long-term key. -EALREADY with
 * "enrollment credential already used" when it was used (or the agent is
 * revoked) meanwhile; -EEXIST when new_key belongs to another agent. */
int store_agent_register(store_t *st, int64_t id, const char *enroll_key, const char *new_key,
                         uint64_t now_ms, char *err, size_t errlen);
/* 1 when z85 is agent id's registered key (enrollment done, not revoked),
 * 0 when not, <0 error. */
int store_agent_key_is(store_t *st, int64_t id, const char *z85);

/* Stores the operator's signature over profile name's JSON (hex, "" for
 * none) and, when it changed, gives every site a new configuration and
 * audits it (*changed = 1). */
int store_profile_set_signature(store_t *st, const char *user, const char *name,
                                const char *sig_hex, const char *signer_hex, int *changed,
                                char *err, size_t errlen);

/* Array of agent objects {id, name, site, created_ms, revoked, revoked_ms
 * (null), last_seen_ms (null), version} ordered by name. The admin layer adds
 * `online` and `image_bytes_sent`. */
int store_agent_list(store_t *st, json_t **out, char *err, size_t errlen);
/* One agent object (as in the list, plus public_key, enrollment (pending,
 * used, expired, long-term), enroll_expires_ms, enroll_used_ms, and cached: the sha256
 * of every image the agent last reported in its cache) by name or decimal id. */
int store_agent_show(store_t *st, const char *name_or_id, json_t **out, char *err, size_t errlen);
/* Looks an agent up by name or decimal id: 0 (id in *id_out), -ENOENT. */
int store_agent_lookup(store_t *st, const char *name_or_id, int64_t *id_out, char *err,
                       size_t errlen);
/* Sets revoked_ms. Revoking an agent that is already revoked is an error
 * (-EALREADY) and changes nothing, so the first revocation time is kept and
 * the audit log records only real changes. */
int store_agent_revoke(store_t *st, const char *user, const char *name_or_id, int64_t *id_out,
                       char *err, size_t errlen);

/* ---- devices ---- */
struct store_device_in {
    const char *mac;        /* required, any form util_mac_parse accepts */
    const char *site;       /* required, must exist */
    const char *model;      /* NULL or "" = unknown */
    const char *serial;     /* NULL or "" */
    const char *tags;       /* NULL or "" or a comma list */
    const char *ip;         /* NULL or "": no DHCP reservation */
    const char *class_name; /* NULL or "": classify by what it sends; else a
                             * class that exists (global or at the site) */
    /* What the controller knows the device runs and holds (rollouts): */
    const char *version;         /* NULL or "": unknown; else as firmware versions */
    const char *serial_config;   /* NULL or "": unknown; else as serials */
    const char *serial_firmware;
    const char *serial_boot;
    const char *profile;         /* NULL or "": recognise by what it sends; else loaded */
    int line;               /* import: line number for messages (0 = none) */
};

/* Adds one device (origin "operator"); *site_id_out (may be NULL) gets the
 * id of its site. Duplicate MAC: -EEXIST, "device MAC already exists (site S)". */
int store_device_add(store_t *st, const char *user, const struct store_device_in *d,
                     int64_t *site_id_out, char *err, size_t errlen);
/* Adds n devices (origin "import") all-or-nothing in one transaction. Any bad
 * row (malformed, unknown site, duplicate in the database or within the rows)
 * fails the whole import with "line N: reason" (N = row.line). n == 0 is
 * -EINVAL. The ids of the sites touched are appended to *site_ids (a json
 * array of integers the caller owns; may be NULL). */
int store_device_import(store_t *st, const char *user, const struct store_device_in *rows, size_t n,
                        json_t **site_ids, char *err, size_t errlen);
struct store_device_filter {
    const char *site;       /* site name, NULL = any (an unknown site is -ENOENT) */
    const char *model;      /* exact model, NULL = any */
    const char *after_site; /* paging cursor: only devices after (site, mac) */
    const char *after_mac;  /* in list order; both or neither */
    int64_t limit;          /* 0 = all */
};

/* Array of device objects {id, mac, site, model, serial, tags[], vendor_class,
 * current_version, origin, created_ms, last_seen_ms, ip, class, version (=
 * current_version: the running version), serial_config, serial_firmware,
 * serial_boot, profile} ordered by site, mac. */
int store_device_list(store_t *st, const struct store_device_filter *f, json_t **out, char *err,
                      size_t errlen);
int store_device_show(store_t *st, const char *mac, json_t **out, char *err, size_t errlen);

/* What `device set` changes; NULL = keep, "" = clear. */
struct store_device_set_in {
    const char *version, *serial_config, *serial_firmware, *serial_boot, *profile;
};
/* Sets the running version, serial markers and pinned profile (which must be
 * loaded) of device mac and bumps its site's generation (*site_id_out). */
int store_device_set(store_t *st, const char *user, const char *mac,
                     const struct store_device_set_in *in, int64_t *site_id_out, char *err,
                     size_t errlen);

/* ---- calendars ----
 * A window (lib/window.h spec, "" = any time) on a site or a class; an
 * assignment gets the narrowest that applies: the window of the device's
 * pinned class, else its site's, else the rollout's. */
/* 0 when spec is "" or NULL or parses with window_parse; -EINVAL with the
 * reason otherwise. */
int store_check_window(const char *spec, char *err, size_t errlen);
/* Sets site name's window and bumps its generation. */
int store_site_set_window(store_t *st, const char *user, const char *name, const char *window,
                          int64_t *site_id_out, char *err, size_t errlen);

/* ---- blobs and firmware ---- */
/* Records that blob sha256 (hex) of size bytes is in the image store (no-op
 * when already recorded with that size; -EEXIST when recorded with another). */
int store_blob_register(store_t *st, const char *sha256, uint64_t size, char *err, size_t errlen);
/* 0 and *size when recorded, -ENOENT when not. */
int store_blob_get(store_t *st, const char *sha256, uint64_t *size, char *err, size_t errlen);

struct store_fw_file {
    const char *name;   /* file name within the firmware's set */
    const char *sha256; /* 64 lowercase hex */
    int has_size;       /* 1: register the blob with `size` in the same
                         * transaction; 0: the blob must be registered already */
    uint64_t size;
    const char *signature; /* 128 lowercase hex (Ed25519, lib/sign.h), NULL or "" = unsigned */
    const char *signer;    /* 64 lowercase hex public key, NULL or "" = not said */
};

struct store_fw_in {
    const char *vendor, *version, *description;
    const char *const *models;
    size_t n_models;
    const struct store_fw_file *files;
    size_t n_files;
};

/* 0 when vendor/version is free, -EEXIST when taken, -EIO. */
int store_firmware_free(store_t *st, const char *vendor, const char *version, char *err,
                        size_t errlen);
/* Adds a firmware with its models and files (and blobs with has_size), bumps
 * the generation of every site with a device of one of its models, and
 * writes those site ids into *site_ids (json array, caller owns; may be
 * NULL). Needs >= 1 model and >= 1 file, unique names. */
int store_firmware_add(store_t *st, const char *user, const struct store_fw_in *fw, int64_t *id_out,
                       json_t **site_ids, char *err, size_t errlen);
/* Array of {id, vendor, version, description, created_ms, models[],
 * file_count, total_size} ordered by vendor, version. */
int store_firmware_list(store_t *st, json_t **out, char *err, size_t errlen);
/* {id, vendor, version, description, created_ms, models[], files[{name,
 * sha256, size, and signer (public key hex) when signed}], total_size} by
 * "vendor/version" or decimal id. */
int store_firmware_show(store_t *st, const char *ref, json_t **out, char *err, size_t errlen);

/* ---- site services ----
 * What a site's agents serve: DHCP subnets (per site), device classes and
 * file templates (global, or per site; a site's own replaces the global one
 * of the same name), and device reservations (device ip/class, above).
 *
 * Every write bumps the generation of each site whose SiteConfig it changes
 * (a global class or template: every site) in its own transaction, and
 * hands those site ids to *site_ids (a json array of integers the caller
 * owns; may be NULL) so the link can be told after the commit. `site` NULL
 * or "" means the global scope where one exists.
 *
 * Validation rules (firmfleet(1) documents them):
 *   CIDR          a.b.c.d/P, P 8..30, no host bits set
 *   pool          START-END inside the CIDR, START <= END, without the
 *                 network and broadcast addresses
 *   router        inside the CIDR, not its network or broadcast address, not
 *                 in the pool
 *   dns, relays   comma lists of 1..8 IPv4 addresses
 *   lease         60..4294967295 seconds (default 86400)
 *   subnets       at most 256 per site, none overlapping, and a relay
 *                 address selects one subnet of the site only
 *   options       0..32 option specs (dhcpopt.h), each code at most once; a
 *                 subnet's may not set 1, 3, 6 or 51 (its CIDR, router, dns
 *                 and lease do)
 *   priority      0..1000000, lower first (default 100)
 *   match rules   1..32 rules (dhcpopt.h)
 *   tftp root     "" or a relative path of [A-Za-z0-9._+-] components, no
 *                 "." or ".." component, at most 200 characters
 *   template name 1..255 printable ASCII characters, no '\', no leading '/',
 *                 no empty, "." or ".." component, no leading or trailing
 *                 space; '{' and '}' only in {mac} and {MAC}
 *   template body at most STORE_TEMPLATE_MAX bytes; the templates one site
 *                 gets at most STORE_TEMPLATES_SITE_MAX bytes in all (the
 *                 SiteConfig must fit one frame)
 *   reservation   inside one of the site's subnets when it has any (not that
 *                 subnet's network, broadcast or router address), and not
 *                 reserved for another device of the site
 * Removing a subnet that holds a reservation, or the class a device is
 * pinned to (when nothing of that name would remain for its site), is
 * refused.
 */
#define STORE_TEMPLATE_MAX (1u << 20)
#define STORE_TEMPLATES_SITE_MAX (2u << 20)
#define STORE_LIST_MAX 32 /* options per subnet or class, rules per class */

int store_check_template_name(const char *s, char *err, size_t errlen);

struct store_subnet_in {
    const char *site, *cidr;
    const char *pool;   /* "START-END" */
    const char *router; /* NULL or "" = none */
    const char *dns;    /* NULL or "" = none, else a comma list */
    const char *lease;  /* NULL = 86400, else decimal seconds */
    const char *relays; /* NULL or "" = the agent's own link */
    const char *const *options;
    size_t n_options;
};

int store_subnet_add(store_t *st, const char *user, const struct store_subnet_in *s,
                     json_t **site_ids, char *err, size_t errlen);
/* Array of {id, site, cidr, pool_start, pool_end, router, dns[],
 * lease_seconds, relays[], options[{spec, code, fill, value}], created_ms}
 * (value: hex of the encoded bytes) ordered by site, network; site NULL =
 * every site. */
int store_subnet_list(store_t *st, const char *site, json_t **out, char *err, size_t errlen);
/* One subnet of site by CIDR. */
int store_subnet_show(store_t *st, const char *site, const char *cidr, json_t **out, char *err,
                      size_t errlen);
/* Removes it; *out (may be NULL) gets the subnet as it was. */
int store_subnet_remove(store_t *st, const char *user, const char *site, const char *cidr,
                        json_t **out, json_t **site_ids, char *err, size_t errlen);

struct store_class_in {
    const char *name;
    const char *site;     /* NULL or "" = global */
    const char *priority; /* NULL = 100, else decimal */
    const char *const *rules;
    size_t n_rules;
    const char *const *options;
    size_t n_options;
    const char *tftp_root; /* NULL or "" = the agent's files root */
    const char *window;    /* NULL or "" = none (see calendars) */
    int replace;           /* 1: a class of that name in that scope is replaced */
};

int store_class_add(store_t *st, const char *user, const struct store_class_in *c,
                    json_t **site_ids, char *err, size_t errlen);
/* site NULL: every class (global first, then per site) by name. site S: the
 * classes S's agents get (S's own and the global ones S does not replace),
 * in the order they are tried (priority, then name). Objects {id, name, site
 * (null = global), priority, tftp_root, rules[{spec, kind, value,
 * ignore_trailing_nul, enterprise}], options[{spec, code, fill, value}],
 * created_ms}. */
int store_class_list(store_t *st, const char *site, json_t **out, char *err, size_t errlen);
/* Class `name` of the global scope (site NULL), or the one site S gets
 * (its own, else the global one). */
int store_class_show(store_t *st, const char *name, const char *site, json_t **out, char *err,
                     size_t errlen);
/* Removes the class of exactly that scope; *out (may be NULL) gets it. */
int store_class_remove(store_t *st, const char *user, const char *name, const char *site,
                       json_t **out, json_t **site_ids, char *err, size_t errlen);

/* Adds (or with replace, replaces) template `name` in scope site. */
int store_template_add(store_t *st, const char *user, const char *name, const char *site,
                       const void *body, size_t len, int replace, json_t **site_ids, char *err,
                       size_t errlen);
/* Like store_class_list, ordered by name: {id, name, site, size, created_ms}. */
int store_template_list(store_t *st, const char *site, json_t **out, char *err, size_t errlen);
/* Like store_class_show, plus body_hex (the body as hex). */
int store_template_show(store_t *st, const char *name, const char *site, json_t **out, char *err,
                        size_t errlen);
int store_template_remove(store_t *st, const char *user, const char *name, const char *site,
                          json_t **out, json_t **site_ids, char *err, size_t errlen);

/* ---- events (read only) ---- */
struct store_event_filter {
    const char *agent; /* agent name, NULL = any */
    const char *site;  /* site name */
    const char *kind;  /* exact kind */
    const char *mac;   /* any MAC form; canonicalised */
    int64_t limit;     /* 0 = all */
    int has_since;     /* 0: the newest `limit` events; 1: see since */
    int64_t since;     /* only events with id > since, oldest first */
};

/* Array of {id, agent, site, seq, time_ms, received_ms, kind, mac, detail}
 * ordered by id: without since, the newest `limit` events (all with limit
 * 0); with since, the first `limit` events after it (paging, following). */
int store_event_list(store_t *st, const struct store_event_filter *f, json_t **out, char *err,
                     size_t errlen);

/* ---- audit ---- */
/* Inserts one audit row; call it inside the transaction of the write it
 * records. 0 or -EIO. */
int store_audit(store_t *st, const char *user, const char *action, const char *detail);
/* The newest `limit` audit rows (0 = all) {id, time_ms, user, action, detail},
 * ordered by id. */
int store_audit_list(store_t *st, int64_t limit, json_t **out, char *err, size_t errlen);
/* The same, only rows by `user` (exact; NULL any) whose action starts with
 * `action` (NULL any; "rollout" matches rollout.create, rollout.start, ...). */
int store_audit_find(store_t *st, const char *user, const char *action, int64_t limit,
                     json_t **out, char *err, size_t errlen);

#endif
