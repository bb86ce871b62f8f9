/* uplink.h: the agent's link to the controller: a CURVE DEALER on the loop
 * (through zuv) with a socket monitor, Hello/Welcome, the windowed resend of
 * the journal outbox, acks both ways, heartbeats, and revocation.
 *
 * Invariants: only committed outbox rows are sent (never before their
 * commit), each as the body it was journaled as (DeviceEvent, BackupUpload);
 * at most UPLINK_WINDOW unacked rows are in flight; a journaled
 * controller message is applied only as last_applied+1, in the same
 * transaction that records it, and acked only after that commit.
 */
#ifndef FF_UPLINK_H
#define FF_UPLINK_H

#include "agent.h"
#include "wire.h"

#define UPLINK_WINDOW 2000    /* unacked envelopes in flight */
/* Payload bytes sent since the last ack progress, past which the pump waits
 * for the next ack: a burst of backups (up to 2 MiB each) must not queue
 * gigabytes in the socket. Approximate on purpose (an ack resets it while
 * rows may still be in flight, so at most twice this is queued); counting
 * bytes per unacked row exactly would need a ring of sizes. */
#define UPLINK_WINDOW_BYTES (16u << 20)
#define UPLINK_RESEND_MS 3000 /* rewind when acks stall this long ... */
#define UPLINK_RESEND_MAX_MS 60000 /* ... doubling per stall without progress, up to this:
                                      a controller busy with a thousand agents must not
                                      be answered with whole windows sent again */
#define UPLINK_RETRY_MS 30000 /* after Refused / an auth failure */
#define UPLINK_HELLO_RETRY_MS 5000

/* Creates the link and starts connecting. 0 or <0 (logged). */
int uplink_new(struct agent *a, uplink_t **out);
/* Closes sockets and handles (freed from their close callbacks). Nulls *up_p. */
void uplink_destroy(uplink_t **up_p);

/* After each loop turn's commit: sends newly committed outbox rows and a
 * pending ack. */
void uplink_after_commit(uplink_t *up);

/* Sends an unjournaled (seq 0) envelope now; its ack field is filled in.
 * 0, -EAGAIN (pipe full), -ENOTCONN (not online) or another -errno. */
int uplink_send(uplink_t *up, wire_env_t *env);

/* 1 when a Welcome was received on the current connection. */
int uplink_online(const uplink_t *up);

#endif
