/* ctl_link.h: the controller's side of the agent link: the ZAP handler, the
 * ROUTER protocol (Hello/Welcome, heartbeats, journaled events in, outbox out,
 * acks), image serving under credits, and which agents are online.
 *
 * An agent is identified by the User-Id the ZAP handler gave its connection
 * (the agent id as decimal), never by anything the agent says about itself.
 */
#ifndef FF_CTL_LINK_H
#define FF_CTL_LINK_H

#include <stdint.h>

#include "ctl.h"
#include "firmfleet.pb-c.h"

int ctl_link_new(struct ctl *ctl, ctl_link_t **out);
void ctl_link_destroy(ctl_link_t **link_p);

/* Handle everything readable on ctl->zap / ctl->router (non-blocking). */
void ctl_link_on_zap(ctl_link_t *link);
void ctl_link_on_router(ctl_link_t *link);
/* Timers: resend unacked outbox, expire offline agents. Returns ms until the
 * next call is wanted. */
int ctl_link_tick(ctl_link_t *link);

/* For the admin handlers. */
/* 1 online (a message within 3 heartbeats), 0 not. */
int ctl_link_agent_online(ctl_link_t *link, int64_t agent_id);
/* Image bytes served to this agent since the controller started. */
uint64_t ctl_link_agent_bytes_sent(ctl_link_t *link, int64_t agent_id);
/* Event frames received from agents since start, by body: single
 * DeviceEvents and EventBatches (with the events those carried); for the
 * metrics, and to see the agents' batching on the wire. */
struct ctl_link_frames {
    uint64_t single, batches, batched_events;
};
void ctl_link_frames(const ctl_link_t *link, struct ctl_link_frames *out);
/* Drops the agent's live connection state and tells it it is refused. */
void ctl_link_revoke(ctl_link_t *link, int64_t agent_id);
/* The site's configuration changed (devices, firmware): re-send SiteConfig to
 * its online agents. */
void ctl_link_site_changed(ctl_link_t *link, int64_t site_id);

/* Journals env for the agent in its outbox (inside the caller's transaction);
 * it is sent by ctl_link_flush_outbox after the commit and resent until acked. */
int ctl_link_enqueue(ctl_link_t *link, int64_t agent_id, const Firmfleet__Envelope *env);
void ctl_link_flush_outbox(ctl_link_t *link, int64_t agent_id);

#endif
