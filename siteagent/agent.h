/* agent.h: the site agent's context (one struct agent per firmfleet-agent
 * process) and what its modules share: the loop, the journal with its
 * per-turn transaction, event emission, the credential.
 *
 * Invariants: one uv_loop_t, one thread. Every journal write of a loop turn
 * goes into one transaction (agent_tx opens it lazily) that is committed by a
 * uv_prepare_t before the loop blocks; only then may anything it wrote leave
 * the process (uplink_after_commit). Modules reach each other only through
 * their headers; a module pointer in struct agent is NULL once destroyed.
 */
#ifndef FF_AGENT_H
#define FF_AGENT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "firmfleet.pb-c.h"
#include "journal.h"
#include "sign.h"
#include "util.h"

#define AGENT_VERSION FF_VERSION
#define AGENT_NAME_MAX 63
#define AGENT_ENDPOINT_MAX 255

typedef struct uplink uplink_t;
typedef struct imgcache imgcache_t;
struct files;
struct prov;

/* A site service (DHCP, TFTP, HTTP, the file resolver) as the agent core sees
 * it. Every callback runs on the loop thread; any may be NULL. */
struct agent_service {
    const char *name;
    void *self;
    /* The site configuration: at registration (the stored one, if any) and on
     * every change. sc is borrowed for the call. */
    void (*on_config)(void *self, const Firmfleet__SiteConfig *sc);
    /* This turn's journal transaction committed: what waited for durability
     * (a DHCP ACK after its lease) may leave now. */
    void (*after_commit)(void *self);
    /* 1 and mac filled when the service knows which device holds ip
     * (network byte order); 0 otherwise. */
    int (*mac_for_ip)(void *self, uint32_t ip_be, uint8_t mac[6]);
    /* The reverse: 1 and *ip_be filled (network order) when the service
     * knows the address the device at mac holds (a bound lease); 0 otherwise. */
    int (*ip_for_mac)(void *self, const uint8_t mac[6], uint32_t *ip_be);
    /* Begin an orderly close: uv_close every handle, free in the callbacks. */
    void (*stop)(void *self);
};
#define AGENT_MAX_SERVICES 8
#define AGENT_COMMIT_PACE_MS 20

/* What `firmfleet agent enroll` writes (JSON, mode 0600). */
struct agent_cred {
    char agent[AGENT_NAME_MAX + 1];
    char site[AGENT_NAME_MAX + 1];
    char endpoint[AGENT_ENDPOINT_MAX + 1];
    char server_key[41]; /* Z85 */
    char public_key[41];
    char secret_key[41];
    /* "enrollment": true: a single-use key, admitted until expires_ms (wall
     * clock). The agent then makes its own key pair (STATEDIR/agent.key,
     * mode 0600), registers the public half and never uses this key again.
     * Without it (older credentials) the key is the agent's own. */
    int enrollment;
    int64_t expires_ms;
};

struct agent_opts {
    const char *state_dir;
    uint64_t image_rate;   /* bytes per second, 0 = unlimited */
    uint64_t synth_events; /* --synth-events N, 0 = none */
    uint64_t synth_rate;   /* --synth-rate R events per second, 0 = as fast as possible */
    int64_t clock_offset_s; /* --clock-offset: added to the wall clock for rollout decisions */
    uint16_t sip_port;      /* --sip-port: the devices' SIP port for NOTIFY (0 = 5060) */
    /* --trust-key: pinned image signing keys (lib/sign.h) */
    uint8_t trust_keys[SIGN_MAX_KEYS][SIGN_PK_LEN];
    size_t n_trust_keys;
};

struct agent {
    uv_loop_t loop;
    void *zctx;
    journal_t *jr;
    uplink_t *up;
    imgcache_t *img;
    struct agent_cred cred;
    char state_dir[PATH_MAX - 512];
    uint64_t image_rate;
    uint64_t synth_target;
    uint64_t synth_rate;
    double synth_tokens; /* paced mode: events allowed but not yet made */
    uint64_t synth_last_ms;
    uv_signal_t sig_int;
    uv_signal_t sig_term;
    uv_prepare_t turn;      /* group commit, once per loop turn */
    uv_idle_t synth;        /* synthetic events, ~200 per turn */
    uv_timer_t synth_timer; /* the same, paced by --synth-rate */
    int synth_active;
    int synth_done_logged;
    int commit_failures; /* consecutive; fatal after a few */
    int turn_commit_failed; /* this turn's commit failed: what it held is not durable */
    int tx_urgent;           /* the open transaction holds more than reported events */
    uint64_t last_commit_ms; /* monotonic */
    uv_timer_t commit_timer; /* wakes the loop for a paced commit */
    int lock_fd;
    struct agent_service svc[AGENT_MAX_SERVICES];
    size_t n_svc;
    Firmfleet__SiteConfig *config; /* the current site configuration, or NULL */
    struct files *files;           /* the file resolver (files.c) when TFTP or HTTP is on */
    struct prov *prov;             /* rollouts at the agent (provision.c) */
    int64_t clock_offset_s;        /* see agent_opts */
    uint16_t sip_port;
    unsigned http_port;            /* the first --http port, 0 = no HTTP ({{http_port}}) */
    /* Pinned image signing keys (--trust-key). When any, they alone are
     * trusted and SiteConfig.trusted_keys is ignored (imgcache.h). */
    uint8_t trust_keys[SIGN_MAX_KEYS][SIGN_PK_LEN];
    size_t n_trust_keys;
    int stopping;
    int exit_code;
    /* The agent's own CURVE key (enrollment credentials only): key_state 0
     * in use (cred holds it) or none needed; 1 registering (cred holds the
     * enrollment key, own_pub goes in Hello); 2 trying the own key before
     * the controller confirmed it (a registration whose Welcome was lost). */
    int key_state;
    char own_pub[41], own_sec[41];
};

/* Reads and validates a credential file. On error returns -EINVAL (or
 * -errno) and writes one line (no newline) into err. Warns (log) when the file
 * is readable by group or others. */
int agent_cred_load(const char *path, struct agent_cred *out, char *err, size_t errlen);

/* 1 when state_dir holds the agent's own registered key (STATEDIR/agent.key
 * marked registered), else 0. */
int agent_key_registered(const char *state_dir);
/* The public key to register in Hello (key_state 1), else NULL. */
const char *agent_key_to_register(const struct agent *a);
/* A Welcome arrived: the key in use is confirmed. 1 when that was the
 * enrollment key and the uplink must reconnect with the agent's own key
 * (now in cred), else 0. */
int agent_key_welcome(struct agent *a);
/* The handshake was refused (ZAP): while the registration is unconfirmed,
 * alternate between the enrollment key and the own key. */
void agent_key_refused(struct agent *a);

/* Creates the state directory layout, takes its lock, opens the journal,
 * starts the uplink. 0 or a negative code (logged); *out is NULL then. */
int agent_new(const struct agent_opts *opts, const struct agent_cred *cred, struct agent **out);
/* Runs the loop until SIGINT/SIGTERM (or a fatal error) and every handle is
 * closed. Returns the process exit status. */
int agent_run(struct agent *a);
/* Frees what agent_run left (after it returned). Nulls *a_p; idempotent. */
void agent_destroy(struct agent **a_p);
/* Begins an orderly stop: checkpoints, commits, closes every handle. */
void agent_stop(struct agent *a, int exit_code);

/* The journal with this turn's transaction open, or NULL (logged) when a
 * transaction cannot be started; the caller then skips its write. What is
 * written through it is committed at the end of this loop turn (a DHCP ACK,
 * an ack to the controller wait for that). */
journal_t *agent_tx(struct agent *a);

/* The same transaction for a write that may wait for the paced commit
 * (AGENT_COMMIT_PACE_MS) like an event: one whose loss in a crash costs a
 * resend, never a fact. The uplink records the controller's acks through it:
 * an ack lost with the process makes the agent resend events the controller
 * already holds, which it drops by seq, and its Welcome carries the true
 * position anyway. NULL as agent_tx. */
journal_t *agent_tx_paced(struct agent *a);

/* For after_commit callbacks: 0 when this turn's transaction committed (or
 * there was none), 1 when the commit failed and was rolled back, so nothing
 * written in this turn may be announced (a DHCP ACK must not leave). */
int agent_commit_failed(const struct agent *a);

/* Journals a DeviceEvent (time now) in the open transaction; it is sent
 * after the commit. A turn that wrote nothing but events may leave its
 * commit to a later turn, at most AGENT_COMMIT_PACE_MS after the previous
 * commit (group commit across turns: a busy TFTP/HTTP site reports every
 * transfer without an fdatasync per loop turn). kind: short name, mac: "" or aa:bb:.., detail: logfmt.
 * 0 or <0. */
int agent_emit_event(struct agent *a, const char *kind, const char *mac, const char *detail);

/* Journals a BackupUpload (a device's configuration backup: mac
 * aa:bb:cc:dd:ee:ff, the stored name, the bytes and their SHA-256, time now)
 * in this turn's transaction, which is then committed at the end of the turn
 * (urgent, unlike events); it is sent after the commit and resent until the
 * controller acks it, like an event. data is copied. 0, -EMSGSIZE (more than
 * AGENT_BACKUP_MAX bytes: it would not fit one wire frame) or <0. */
#define AGENT_BACKUP_MAX (2u << 20) /* = STORE_BACKUP_MAX (db/store_backup.h) */
int agent_emit_backup(struct agent *a, const char *mac, const char *name, const uint8_t *data,
                      size_t len, const uint8_t sha256[32]);

/* Registers a service; calls its on_config at once when a configuration is
 * known. 0 or -ENOSPC. */
int agent_add_service(struct agent *a, const struct agent_service *svc);
/* Asks each service in turn; 1 when one knows the MAC for ip (network order). */
int agent_mac_for_ip(struct agent *a, uint32_t ip_be, uint8_t mac[6]);
/* Asks each service in turn; 1 when one knows the address (network order)
 * the device at mac holds. */
int agent_ip_for_mac(struct agent *a, const uint8_t mac[6], uint32_t *ip_be);
/* The current site configuration (borrowed; valid until the next change), or NULL. */
const Firmfleet__SiteConfig *agent_config(const struct agent *a);

/* Called by the uplink. */
void agent_on_online(struct agent *a);
/* 1 while synthetic events are still being generated. */
int agent_generating(const struct agent *a);
/* A SiteConfig arrived (seq 0, whole state): validates, stores it when its
 * generation is newer, and hands its images to the cache. */
void agent_on_site_config(struct agent *a, const Firmfleet__SiteConfig *sc);
/* Journaled controller bodies. 0 applied (or a deliberate no-op), -EINVAL the
 * message is invalid (skipped, never retried), other <0: a local failure
 * (not applied; the controller will resend). */
int agent_apply_assignment(struct agent *a, const Firmfleet__Assignment *as);
int agent_apply_cancel(struct agent *a, const Firmfleet__Cancel *c);

/* Validates a SiteConfig received from the network; 0 or -EINVAL with a
 * reason in why. */
int agent_site_config_check(const Firmfleet__SiteConfig *sc, char *why, size_t n);

#endif
