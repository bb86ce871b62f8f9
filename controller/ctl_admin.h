/* ctl_admin.h: the controller's admin API, served on ctl->admin (ZMQ_REP) to
 * the firmfleet CLI. One AdminRequest frame in, one AdminResponse frame out:
 * status 0 with a JSON document, or a negative errno-style status with a
 * one-line error. A request that does not parse, names an unknown noun/verb
 * or carries an option the verb does not take gets an error response; it
 * never ends the daemon.
 *
 * Contract (noun verb  positional args  --options; blob):
 *   site add NAME  --tz ZONE [--description TEXT]                -> site
 *   site list                                                    -> [site]
 *   site show NAME                                               -> site
 *   agent enroll  --site SITE [--name NAME]                      -> credential
 *   agent list                                                   -> [agent]
 *   agent show NAME|ID                                           -> agent
 *   agent revoke NAME|ID                                         -> agent
 *   device add MAC  --site SITE [--model M] [--serial S] [--tags a,b]
 *                  [--ip IP] [--class NAME]                      -> device
 *   device import; blob = JSON [{"line":N,"mac":..,"site":..,"model":..,
 *                  "serial":..,"tags":..,"ip":..,"class":..}, ...]
 *                                                                -> {"imported":N}
 *   device list [--site S] [--model M] [--limit N] [--after SITE/MAC]
 *                  (ordered by site, mac; --after pages on)      -> [device]
 *   device show MAC                                              -> device
 *   device assign MAC... --firmware VENDOR/VERSION|ID  (journaled to the
 *                  site's agents)               -> {"assigned":N,"agents":M}
 *   firmware upload-begin  --size BYTES                          -> {"token":T}
 *   firmware upload-chunk  --token T --offset O; blob = bytes    -> {"received":N}
 *   firmware upload-abort  --token T                             -> {}
 *   firmware add VENDOR/VERSION --models M1,M2 [--description T];
 *                  blob = JSON {"files":[{"name":..,"sha256":..,"token":T}, ...]}
 *                  ("token" omitted: the blob must already be in the image
 *                  store)                                        -> firmware
 *   firmware list                                                -> [firmware]
 *   firmware show VENDOR/VERSION|ID                              -> firmware
 *   event list [--agent A] [--site S] [--kind K] [--mac M] [--limit N]
 *              [--since ID]                                      -> [event]
 *                  (without --since: the newest N, default 100, 0 = all;
 *                  with --since: the first N after event ID, oldest first)
 *   subnet add SITE CIDR  --pool START-END [--router IP] [--dns IP,..]
 *                  [--lease SECONDS] [--relay IP,..] [--option SPEC]... -> subnet
 *   subnet list [--site S]                                       -> [subnet]
 *   subnet remove SITE CIDR                                      -> subnet (as it was)
 *   class add NAME [--site S] [--priority N] --match RULE... [--option SPEC]...
 *                  [--tftp-root DIR] [--replace]                 -> class
 *   class list [--site S]  (with S: what S's agents get, in order) -> [class]
 *   class show NAME [--site S]                                   -> class
 *   class remove NAME [--site S]                                 -> class (as it was)
 *   template add NAME [--site S] [--replace]; blob = the body    -> template
 *   template list [--site S]                                     -> [template]
 *   template show NAME [--site S]                                -> template + body_hex
 *   template remove NAME [--site S]                              -> template (as it was)
 *                  (--option, --match may be repeated; no other option may)
 *   class add ... [--window SPEC]   (calendar of the class, lib/window.h)
 *   site set NAME --window SPEC  ("" clears)                     -> site
 *   device set MAC [--version V] [--serial-config X] [--serial-firmware X]
 *                  [--serial-boot X] [--profile P]  ("" clears)   -> device
 *   device import rows may also carry version, serial_config,
 *                  serial_firmware, serial_boot, profile
 *   profile add [--replace]; blob = the profile's JSON text       -> profile
 *   profile list           -> {"profiles":[{name,description,source,priority}]}
 *   profile show NAME      -> {name,description,source,priority,added_at,json}
 *   profile remove NAME    (refused while an unfinished rollout uses it or
 *                  a device is pinned to it)                     -> profile
 *   rollout create NAME --firmware VENDOR/VERSION [--profile P]
 *                  [--sites a,b] [--models m,n] [--tags t,u] [--devices MACS]
 *                  [--waves SPEC] [--max-failures N|N%] [--site-concurrency N]
 *                  [--window SPEC] [--start-at TIME] [--boot-grace DUR]
 *                  [--stage-fresh] [--spread DUR] [--verify-timeout DUR]
 *                  [--timeouts STATE=DUR,...]                    -> status
 *   rollout start|pause|resume|abort NAME                        -> status
 *   rollout list  -> {"rollouts":[{id,name,state,reason,firmware,profile,
 *                  total,succeeded,failed,created_at}]}
 *   rollout status NAME                                          -> status
 *     status = {"rollout":{id,name,state,reason,firmware,version,profile,
 *                waves,max_failures,site_concurrency,window,current_wave,
 *                total,created_at,started_at,finished_at,start_at,n_waves},
 *               "counts":{pending,...,cancelled},
 *               "waves":[{wave,size,state (done|active|waiting),counts}],
 *               "sites":[{site,total,staged,counts}],
 *               "failures":[{mac,site,reason,at}],
 *               "devices":[{mac,site,model,wave,state,reason,updated_at}]}
 *     times (*_at) are ms since the epoch; null when not yet.
 * Document shapes are those of store_inv.h; agents also carry `online` and
 * `image_bytes_sent`. The credential is exactly
 *   {"version":1,"agent":..,"site":..,"endpoint":..,"server_public_key":..,
 *    "public_key":..,"secret_key":..}
 * Every write is audited with AdminRequest.user ("unknown" when empty).
 */
#ifndef FF_CTL_ADMIN_H
#define FF_CTL_ADMIN_H

#include "ctl.h"

/* Serves every request that is waiting on ctl->admin, one at a time (REP is
 * strictly recv/send alternating), without blocking. Runs on the
 * controller's loop thread. */
void ctl_admin_on_request(struct ctl *ctl);

/* Enrollment credentials: admitted once, within this many seconds. */
#define CTL_ENROLL_TTL_S (24 * 3600)
#define CTL_ENROLL_TTL_MAX_S (365 * 24 * 3600)
#define CTL_ADMIN_KEYS_MAX (256u << 10)

/* The tcp admin endpoint's ZAP: is Z85 key z85 listed in DATADIR/admin_keys
 * (lines "KEY NAME", '#' comments; a file writable by group or others is
 * ignored)? 1 and name filled (the audit user), 0 not listed, <0 the file
 * is unreadable. Re-read at every handshake: a key added or removed counts
 * from the next connection. */
int ctl_admin_key_lookup(struct ctl *ctl, const char *z85, char *name, size_t n);

#endif
