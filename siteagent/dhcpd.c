/* dhcpd.c: the site agent's DHCP server (RFC 2131/2132) on the agent's loop.
 *
 * One UDP socket per --dhcp interface (bound to the device, port
 * --dhcp-port, SO_BROADCAST, IP_PKTINFO), watched by a uv_poll_t; no thread
 * or process per client. A wakeup drains the socket with recvmmsg (up to
 * DHCPD_TURN_BUDGET datagrams per interface and loop turn) and handles each
 * datagram to completion: parse (dhcp_pkt), classify (dhcp_class), look up
 * and change the in-memory lease table (dhcp_lease: O(1) by MAC and by IP,
 * loaded from the journal at start, never a SELECT per packet), write the
 * lease row into the loop turn's journal transaction (agent_tx, db/lease),
 * build the reply into a preallocated queue slot.
 *
 * Invariants:
 *   - an ACK leaves only after the transaction holding its lease committed:
 *     replies wait in the queue until after_commit, which sends the whole
 *     turn's replies with sendmmsg (one fsync per turn for many leases);
 *     when the commit failed, the ACKs are dropped (the clients retry) and
 *     the table is reloaded from the journal;
 *   - an address is never bound to two clients (dhcp_lease keeps one record
 *     per IP and one record per MAC; dhcp_lease rows are keyed by IP);
 *   - no allocation per packet: the message view, receive buffers and reply
 *     slots are allocated at start, the lease table is sized when the
 *     configuration arrives;
 *   - bad input costs one datagram: it is counted, logged at debug, dropped.
 *
 * Reply path (RFC 2131 4.1): giaddr set -> the relay, port --dhcp-port;
 * a NAK otherwise -> broadcast; ciaddr set -> unicast to ciaddr; B flag ->
 * broadcast; else unicast to chaddr/yiaddr, which the kernel cannot route
 * (no ARP entry for an address the client does not have yet). That last
 * case goes out through an AF_PACKET/SOCK_DGRAM socket with our own IP and
 * UDP headers (Kea's way). Rejected: dnsmasq's SIOCSARP + sendto, which
 * costs an extra ioctl per reply, needs CAP_NET_ADMIN, and fills the
 * neighbour table (gc_thresh3 = 1024 by default) under a burst of thousands
 * of new clients, at which point the kernel refuses new entries. The packet
 * socket is opened with protocol 0, so it never receives anything.
 */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dhcp_class.h"
#include "dhcp_lease.h"
#include "dhcp_pkt.h"
#include "dhcpd.h"
#include "lease.h"
#include "log.h"
#include "provision.h"
#include "services.h"
#include "util.h"

#define DHCPD_BATCH 64       /* datagrams per recvmmsg / sendmmsg */
#define DHCPD_TURN_BUDGET 64 /* datagrams per interface per loop turn */
#define DHCPD_REPLY_MAX 1500 /* a reply datagram, IP and UDP headers included */
#define DHCPD_RCVBUF (4 << 20)
#define DHCPD_DEFAULT_LEASE 86400u
#define DHCPD_OFFER_HOLD_S 30
#define DHCPD_DECLINE_HOLD_S 600
#define DHCPD_CACHE_DIV 4 /* a lease written less than lease/4 ago is re-sent, not rewritten */
#define DHCPD_TIMER_MS 5000
#define DHCPD_SEEN_MAX 65536  /* MACs remembered as discovered */
#define DHCPD_SILENT_MAX 4096 /* MACs logged once for "no subnet" */
#define DHCPD_MAX_DNS 8
#define DHCPD_INFINITE 0xffffffffu

struct dhcpd;

struct diface {
    struct dhcpd *d;
    char name[IF_NAMESIZE];
    int ifindex;
    int fd;  /* UDP */
    int pfd; /* AF_PACKET for unicast to clients without an address; -1: broadcast instead */
    uint32_t addr_be, mask_be;
    unsigned mtu;
    int no_addr_logged;
    uv_poll_t poll;
};

struct dsubnet {
    const Firmfleet__DhcpSubnet *src;
    uint32_t net, mask, bcast; /* host order */
    int pool;                  /* lease table pool, -1: reservations only */
    uint32_t router_be;
    uint32_t dns_be[DHCPD_MAX_DNS];
    size_t n_dns;
    uint32_t lease_s;
    uint32_t *relays_be;
    size_t n_relays;
};

#define DHCPD_PROFILE_OPTS 64

struct ddev {
    uint8_t mac[6];
    uint32_t ip;                       /* reservation, host order, 0 = none */
    const Firmfleet__DeviceClass *cls; /* pinned class, or NULL */
};

struct dcfg {
    struct dsubnet *sn;
    size_t n_sn;
    struct dhcp_classes classes;
    struct ddev *devs;
    size_t n_devs;
    struct dhcp_map dev_by_mac; /* MAC -> devs index */
    struct dhcp_map res_by_ip;  /* reserved IP -> devs index */
};

struct dreply {
    uint8_t iface;
    uint8_t raw; /* through the packet socket to dst_mac */
    uint8_t dst_mac[6];
    uint32_t src_be, dst_be;
    uint16_t dport;
    uint16_t len; /* DHCP bytes at buf + 28 */
    uint8_t buf[DHCPD_REPLY_MAX];
};

struct dqueue {
    struct dreply *v;
    size_t n, cap;
};

struct dhcpd {
    struct agent *a;
    struct diface ifs[SVC_MAX_LISTEN];
    size_t n_ifs;
    uint16_t port;
    struct dcfg cfg;
    dhcp_ltab_t *lt;
    lease_db_t *ldb;
    struct dhcp_map seen;
    struct dhcp_map silent;
    int seen_full_logged, silent_full_logged;
    int64_t exhausted_at; /* last pool_exhausted line, s */
    uint64_t exhausted_n; /* DISCOVERs unanswered since */
    uv_timer_t timer;
    int open_handles;
    int stopping;
    int64_t now; /* s since the epoch, per receive batch */
    uint64_t now_ms;
    struct dqueue immed; /* OFFER, NAK, INFORM's ACK: sent after each receive batch */
    struct dqueue acks;  /* lease ACKs: sent after this turn's commit */
    struct {
        uint64_t rx, bad, ignored, offers, acks, naks, dropped, sent;
        uint64_t rx_type[DHCPINFORM + 1]; /* valid requests by message type */
    } st;
    /* receive batch */
    struct mmsghdr rmsg[DHCPD_BATCH];
    struct iovec riov[DHCPD_BATCH];
    struct sockaddr_in rfrom[DHCPD_BATCH];
    uint8_t rctl[DHCPD_BATCH][CMSG_SPACE(sizeof(struct in_pktinfo))];
    uint8_t rbuf[DHCPD_BATCH][DHCP_PKT_MAX];
    /* send batch */
    struct mmsghdr smsg[DHCPD_BATCH];
    struct iovec siov[DHCPD_BATCH];
    union {
        struct sockaddr_in in;
        struct sockaddr_ll ll;
    } sto[DHCPD_BATCH];
    uint8_t sctl[DHCPD_BATCH][CMSG_SPACE(sizeof(struct in_pktinfo))];
    struct dhcp_msg msg; /* the datagram being handled */
};

/* What one request is about, for the handlers. */
struct dctx {
    struct dhcpd *d;
    struct diface *ifc;
    const struct dhcp_msg *m;
    const uint8_t *mac;
    char macs[18];
    uint32_t sid_be; /* our address as the client sees it: the server identifier */
    const struct dsubnet *sn;
    const struct ddev *dev;
    const Firmfleet__DeviceClass *cls;
    struct dhcp_facts facts;
    /* the device's vendor profile options (provision.c), pointers valid for this packet */
    const struct dhcpopt *popt[DHCPD_PROFILE_OPTS];
    size_t n_popt;
};

/* ---- configuration ---- */

static int s_ip(const char *s, uint32_t *host)
{
    struct in_addr a;
    if (s == NULL || inet_pton(AF_INET, s, &a) != 1)
        return -EINVAL;
    *host = ntohl(a.s_addr);
    return 0;
}

static int s_cidr(const char *s, uint32_t *net, uint32_t *mask)
{
    char buf[32];
    const char *slash = s ? strchr(s, '/') : NULL;
    if (slash == NULL || (size_t)(slash - s) >= sizeof buf)
        return -EINVAL;
    memcpy(buf, s, (size_t)(slash - s));
    buf[slash - s] = '\0';
    int64_t prefix;
    if (s_ip(buf, net) < 0 || util_parse_i64(slash + 1, 1, 32, &prefix) < 0)
        return -EINVAL;
    *mask = prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
    *net &= *mask;
    return 0;
}

static void s_cfg_free(struct dcfg *c)
{
    for (size_t i = 0; i < c->n_sn; i++)
        free(c->sn[i].relays_be);
    free(c->sn);
    free(c->devs);
    dhcp_classes_free(&c->classes);
    dhcp_map_free(&c->dev_by_mac);
    dhcp_map_free(&c->res_by_ip);
    memset(c, 0, sizeof *c);
}

/* Fills one subnet from its configuration; 0 or -EINVAL with why. */
static int s_subnet(const Firmfleet__DhcpSubnet *s, struct dsubnet *o, struct dhcp_range *pool,
                    int *has_pool, const char **why)
{
    uint32_t lo, hi, ip;
    memset(o, 0, sizeof *o);
    o->src = s;
    o->pool = -1;
    *has_pool = 0;
    if (s_cidr(s->cidr, &o->net, &o->mask) < 0) {
        *why = "cidr";
        return -EINVAL;
    }
    o->bcast = o->net | ~o->mask;
    int have_start = s->pool_start && s->pool_start[0], have_end = s->pool_end && s->pool_end[0];
    if (have_start || have_end) {
        if (s_ip(s->pool_start, &lo) < 0 || s_ip(s->pool_end, &hi) < 0 || lo > hi ||
            (lo & o->mask) != o->net || (hi & o->mask) != o->net) {
            *why = "pool";
            return -EINVAL;
        }
        pool->start = lo;
        pool->end = hi;
        *has_pool = 1;
    }
    if (s->router && s->router[0]) {
        if (s_ip(s->router, &ip) < 0) {
            *why = "router";
            return -EINVAL;
        }
        o->router_be = htonl(ip);
    }
    for (size_t i = 0; i < s->n_dns && o->n_dns < DHCPD_MAX_DNS; i++) {
        if (s_ip(s->dns[i], &ip) < 0) {
            *why = "dns";
            return -EINVAL;
        }
        o->dns_be[o->n_dns++] = htonl(ip);
    }
    o->lease_s = s->lease_seconds ? s->lease_seconds : DHCPD_DEFAULT_LEASE;
    if (s->n_relays > 0) {
        o->relays_be = calloc(s->n_relays, sizeof *o->relays_be);
        if (o->relays_be == NULL) {
            *why = "memory";
            return -ENOMEM;
        }
        for (size_t i = 0; i < s->n_relays; i++) {
            if (s_ip(s->relays[i], &ip) < 0) {
                free(o->relays_be);
                o->relays_be = NULL;
                *why = "relay";
                return -EINVAL;
            }
            o->relays_be[o->n_relays++] = htonl(ip);
        }
    }
    return 0;
}

/* Builds the runtime configuration from sc (borrowed: pointers into it stay
 * valid until the next on_config) and gives the lease table its pools. */
static int s_cfg_build(struct dhcpd *d, const Firmfleet__SiteConfig *sc, struct dcfg *c)
{
    memset(c, 0, sizeof *c);
    char q[300];
    size_t nsub = sc->n_subnets;
    struct dhcp_range *ranges = calloc(nsub ? nsub : 1, sizeof *ranges);
    c->sn = calloc(nsub ? nsub : 1, sizeof *c->sn);
    c->devs = calloc(sc->n_devices ? sc->n_devices : 1, sizeof *c->devs);
    int rc = -ENOMEM;
    if (ranges == NULL || c->sn == NULL || c->devs == NULL ||
        dhcp_classes_init(&c->classes, sc->classes, sc->n_classes) < 0 ||
        dhcp_map_init(&c->dev_by_mac, (uint32_t)sc->n_devices) < 0 ||
        dhcp_map_init(&c->res_by_ip, (uint32_t)sc->n_devices) < 0)
        goto out;
    size_t nr = 0;
    for (size_t i = 0; i < nsub; i++) {
        const char *why = "";
        struct dhcp_range r;
        int has_pool;
        struct dsubnet *o = &c->sn[c->n_sn];
        if (sc->subnets[i] == NULL || s_subnet(sc->subnets[i], o, &r, &has_pool, &why) < 0) {
            log_warn("dhcp.subnet_invalid", "cidr=%s field=%s",
                     log_quote(sc->subnets[i] && sc->subnets[i]->cidr ? sc->subnets[i]->cidr : "",
                               q, sizeof q),
                     why);
            continue;
        }
        int overlap = 0;
        for (size_t k = 0; k < nr && has_pool; k++)
            overlap |= r.start <= ranges[k].end && ranges[k].start <= r.end;
        if (overlap) {
            log_warn("dhcp.subnet_invalid", "cidr=%s field=pool reason=\"overlaps another pool\"",
                     log_quote(o->src->cidr, q, sizeof q));
            free(o->relays_be);
            continue;
        }
        if (has_pool) {
            o->pool = (int)nr;
            ranges[nr++] = r;
        }
        c->n_sn++;
    }
    uint32_t n_res = 0;
    for (size_t i = 0; i < sc->n_devices; i++) {
        const Firmfleet__DeviceRef *ref = sc->devices[i];
        struct ddev *dv = &c->devs[c->n_devs];
        if (ref == NULL || ref->mac == NULL || util_mac_parse(ref->mac, dv->mac) < 0)
            continue;
        uint64_t key = dhcp_mac_key(dv->mac);
        uint32_t idx;
        if (dhcp_map_get(&c->dev_by_mac, key, &idx))
            continue; /* a MAC listed twice: the first wins */
        dv->ip = 0;
        dv->cls = NULL;
        if (ref->ip && ref->ip[0]) {
            uint32_t ip;
            if (s_ip(ref->ip, &ip) < 0 || ip == 0) {
                log_warn("dhcp.reservation_invalid", "mac=%s ip=%s", ref->mac,
                         log_quote(ref->ip, q, sizeof q));
            } else if (dhcp_map_get(&c->res_by_ip, ip, &idx)) {
                log_warn("dhcp.reservation_duplicate", "mac=%s ip=%s", ref->mac, ref->ip);
            } else {
                dv->ip = ip;
                dhcp_map_put(&c->res_by_ip, ip, (uint32_t)c->n_devs);
                n_res++;
            }
        }
        if (ref->class_ && ref->class_[0]) {
            dv->cls = dhcp_class_by_name(&c->classes, ref->class_);
            if (dv->cls == NULL)
                log_warn("dhcp.class_unknown", "mac=%s class=%s", ref->mac,
                         log_quote(ref->class_, q, sizeof q));
        }
        dhcp_map_put(&c->dev_by_mac, key, (uint32_t)c->n_devs);
        c->n_devs++;
    }
    rc = dhcp_ltab_set_pools(d->lt, ranges, nr, n_res + 16);
    if (rc < 0)
        log_error("dhcp.pools", "error=\"%s\"",
                  rc == -E2BIG ? "more addresses than the lease table holds" : strerror(-rc));
out:
    free(ranges);
    if (rc < 0)
        s_cfg_free(c);
    return rc;
}

static void s_on_config(void *self, const Firmfleet__SiteConfig *sc)
{
    struct dhcpd *d = self;
    /* the old configuration's strings are gone already (agent.c frees it
     * first): drop everything that points into it before anything else */
    s_cfg_free(&d->cfg);
    struct dcfg c;
    if (s_cfg_build(d, sc, &c) < 0) {
        dhcp_ltab_set_pools(d->lt, NULL, 0, 0);
        log_error("dhcp.config", "reason=\"not applied; serving nothing\"");
        return;
    }
    d->cfg = c;
    log_info("dhcp.config", "generation=%llu subnets=%zu classes=%zu devices=%zu leases=%u",
             (unsigned long long)sc->generation, c.n_sn, c.classes.n, c.n_devs,
             dhcp_ltab_count(d->lt));
}

/* ---- lease storage ---- */

static void s_row(const struct dhcp_lease *l, const uint8_t mac[6], int state,
                  const Firmfleet__DeviceClass *cls, struct lease_row *r)
{
    memset(r, 0, sizeof *r);
    r->ip = l->ip;
    memcpy(r->mac, mac, 6);
    r->state = state;
    r->expires = l->expires;
    r->granted = l->granted;
    if (cls && cls->name)
        snprintf(r->cls, sizeof r->cls, "%s", cls->name);
}

struct load_ctx {
    struct dhcpd *d;
    int64_t now;
    uint32_t n, stale[256];
    size_t n_stale;
};

static int s_load_row(void *arg, const struct lease_row *r)
{
    struct load_ctx *lc = arg;
    dhcp_ltab_t *t = lc->d->lt;
    struct dhcp_lease *l = dhcp_ltab_load(t, r->ip);
    if (l == NULL) {
        log_error("dhcp.leases_full", "max=%u reason=\"rows left unread\"", DHCP_LTAB_MAX);
        return 1;
    }
    lc->n++;
    l->stored = 1;
    l->granted = r->granted;
    l->evented = r->granted;
    if (r->state == LEASE_DECLINED) {
        dhcp_ltab_set_state(t, l, DL_DECLINED, r->expires);
        return 0;
    }
    struct dhcp_lease *other = dhcp_ltab_by_mac(t, r->mac);
    if (other != NULL && other->granted >= r->granted) {
        /* an older row of a MAC that moved: not a binding any more */
        if (lc->n_stale < sizeof lc->stale / sizeof lc->stale[0])
            lc->stale[lc->n_stale++] = r->ip;
        return 0;
    }
    if (other != NULL && lc->n_stale < sizeof lc->stale / sizeof lc->stale[0])
        lc->stale[lc->n_stale++] = other->ip;
    dhcp_ltab_set_mac(t, l, r->mac);
    int st = r->state == LEASE_RELEASED ? DL_RELEASED
             : r->expires > lc->now     ? DL_BOUND
                                        : DL_EXPIRED;
    dhcp_ltab_set_state(t, l, st, r->expires);
    return 0;
}

static int s_load_seen(void *arg, const uint8_t mac[6])
{
    struct dhcpd *d = arg;
    return dhcp_map_put(&d->seen, dhcp_mac_key(mac), 1) < 0;
}

/* (Re)builds the lease table from the journal. 0 or <0 (logged). */
static int s_load(struct dhcpd *d)
{
    dhcp_ltab_destroy(&d->lt);
    int rc = dhcp_ltab_new(&d->lt);
    if (rc < 0)
        return rc;
    struct load_ctx lc = {.d = d, .now = (int64_t)(util_now_ms() / 1000)};
    rc = lease_db_each(d->ldb, s_load_row, &lc);
    if (rc < 0)
        return rc;
    if (lc.n_stale > 0) {
        journal_t *j = agent_tx(d->a);
        for (size_t i = 0; j != NULL && i < lc.n_stale; i++) {
            struct dhcp_lease *l = dhcp_ltab_by_ip(d->lt, lc.stale[i]);
            if (l != NULL && !l->has_mac && l->state != DL_DECLINED) {
                lease_db_delete(d->ldb, l->ip);
                l->stored = 0;
            }
        }
    }
    dhcp_map_clear(&d->seen);
    if (lease_db_seen_each(d->ldb, s_load_seen, d) < 0)
        return -EIO;
    const Firmfleet__SiteConfig *sc = agent_config(d->a);
    if (sc != NULL) {
        s_cfg_free(&d->cfg);
        if (s_cfg_build(d, sc, &d->cfg) < 0)
            dhcp_ltab_set_pools(d->lt, NULL, 0, 0);
    }
    log_info("dhcp.leases_loaded", "rows=%u stale=%zu seen=%u", lc.n, lc.n_stale, d->seen.n);
    return 0;
}

/* l gets mac; the record that held it before loses its stored row. */
static void s_take(struct dctx *c, struct dhcp_lease *l)
{
    struct dhcp_lease *prev = dhcp_ltab_set_mac(c->d->lt, l, c->mac);
    if (prev == NULL)
        return;
    if (prev->stored && prev->state != DL_DECLINED && agent_tx(c->d->a) != NULL &&
        lease_db_delete(c->d->ldb, prev->ip) == 0)
        prev->stored = 0;
    if (prev->state != DL_DECLINED)
        dhcp_ltab_set_state(c->d->lt, prev, DL_FREE, c->d->now);
}

/* ---- policy helpers ---- */

static int s_same_mac(const struct dhcp_lease *l, const uint8_t *mac)
{
    return l->has_mac && memcmp(l->mac, mac, 6) == 0;
}

static int s_in_subnet(const struct dsubnet *sn, uint32_t ip)
{
    return (ip & sn->mask) == sn->net;
}

/* The address reserved for this client in the chosen subnet, or 0. */
static uint32_t s_reserved(const struct dctx *c)
{
    return c->dev && c->dev->ip && s_in_subnet(c->sn, c->dev->ip) ? c->dev->ip : 0;
}

static int s_reserved_for_other(const struct dctx *c, uint32_t ip)
{
    uint32_t idx;
    if (!dhcp_map_get(&c->d->cfg.res_by_ip, ip, &idx))
        return 0;
    return memcmp(c->d->cfg.devs[idx].mac, c->mac, 6) != 0;
}

/* Addresses the pool never hands out: reservations, our own address, the
 * router, the network and broadcast addresses. */
static int s_excl(void *arg, uint32_t ip)
{
    const struct dctx *c = arg;
    uint32_t idx;
    if (dhcp_map_get(&c->d->cfg.res_by_ip, ip, &idx))
        return 1;
    if (ip == ntohl(c->sid_be) || ip == ntohl(c->ifc->addr_be) || ip == ntohl(c->sn->router_be))
        return 1;
    return ip == c->sn->net || ip == c->sn->bcast;
}

/* 1 when the reserved address can be the client's now. */
static int s_res_available(const struct dctx *c, uint32_t res)
{
    const struct dhcp_lease *r = dhcp_ltab_by_ip(c->d->lt, res);
    return r == NULL || s_same_mac(r, c->mac) || dhcp_ltab_usable(r, c->d->now);
}

/* 1 when this client may keep l (its own record) in the chosen subnet. */
static int s_fits(const struct dctx *c, const struct dhcp_lease *l)
{
    if (l->state == DL_DECLINED || !s_in_subnet(c->sn, l->ip) || s_reserved_for_other(c, l->ip))
        return 0;
    uint32_t res = s_reserved(c);
    if (res != 0 && l->ip != res && s_res_available(c, res))
        return 0; /* its reservation is free: move it there */
    if (l->ip == res)
        return 1;
    return c->sn->pool >= 0 && l->pool == c->sn->pool;
}

/* A record for a free address ip in the pool (no client's affinity). */
static struct dhcp_lease *s_free_at(struct dctx *c, uint32_t ip)
{
    if (c->sn->pool < 0 || dhcp_ltab_pool_of(c->d->lt, ip) != c->sn->pool || s_excl(c, ip))
        return NULL;
    struct dhcp_lease *l = dhcp_ltab_by_ip(c->d->lt, ip);
    if (l == NULL)
        l = dhcp_ltab_add(c->d->lt, ip);
    if (l == NULL || !dhcp_ltab_usable(l, c->d->now) || (l->has_mac && !s_same_mac(l, c->mac)))
        return NULL;
    return l;
}

/* What to offer: the reservation, the client's previous address, the one it
 * asks for (option 50), a new one from the pool; NULL when none. */
static struct dhcp_lease *s_pick(struct dctx *c)
{
    struct dhcpd *d = c->d;
    uint32_t res = s_reserved(c);
    char ips[16];
    if (res != 0) {
        if (s_res_available(c, res)) {
            struct dhcp_lease *r = dhcp_ltab_add(d->lt, res);
            if (r != NULL && r->state != DL_DECLINED)
                return r;
        }
        log_warn("dhcp.reservation_busy", "mac=%s ip=%s", c->macs, dhcp_ip_str(htonl(res), ips));
    }
    struct dhcp_lease *l = dhcp_ltab_by_mac(d->lt, c->mac);
    if (l != NULL && s_fits(c, l))
        return l;
    uint32_t want_be;
    if (dhcp_get_ip(c->m, DHO_REQUESTED_IP, &want_be) && (l = s_free_at(c, ntohl(want_be))))
        return l;
    return dhcp_ltab_alloc(d->lt, c->sn->pool, d->now, s_excl, c);
}

/* ---- options and replies ---- */

static int s_protected(unsigned code)
{
    switch (code) {
    case DHO_PAD:
    case DHO_REQUESTED_IP:
    case DHO_LEASE_TIME:
    case DHO_OVERLOAD:
    case DHO_MSG_TYPE:
    case DHO_SERVER_ID:
    case DHO_PARAM_REQ:
    case DHO_MAX_SIZE:
    case DHO_T1:
    case DHO_T2:
    case DHO_CLIENT_ID:
    case DHO_RELAY_INFO:
    case DHO_END:
        return 1;
    default:
        return code > 254;
    }
}

static const struct dhcpopt *s_pfind(const struct dctx *c, unsigned code)
{
    for (size_t i = 0; i < c->n_popt; i++)
        if (c->popt[i]->code == code)
            return c->popt[i];
    return NULL;
}

static const Firmfleet__DhcpOption *s_find(Firmfleet__DhcpOption *const *v, size_t n, unsigned code)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != NULL && v[i]->code == code)
            return v[i];
    return NULL;
}

/* A u32 option (51, 58, 59) the class or the subnet sets, else dflt. */
static uint32_t s_u32_override(const struct dctx *c, unsigned code, uint32_t dflt)
{
    const Firmfleet__DhcpOption *o = NULL;
    if (c->cls)
        o = s_find(c->cls->options, c->cls->n_options, code);
    if (o == NULL)
        o = s_find(c->sn->src->options, c->sn->src->n_options, code);
    if (o == NULL || o->fill != FIRMFLEET__DHCP_OPTION__FILL__RAW || o->value.len != 4)
        return dflt;
    const uint8_t *p = o->value.data;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t s_lease_s(const struct dctx *c)
{
    uint32_t v = s_u32_override(c, DHO_LEASE_TIME, c->sn->lease_s);
    return v ? v : DHCPD_DEFAULT_LEASE;
}

struct optset {
    uint8_t done[32];
    int filled; /* an option carried our own address */
    int dropped;
};

/* Adds the value of option `code` (class over the device's profile over
 * subnet over the built-ins), if any and not added yet. */
static void s_add_code(const struct dctx *c, struct dhcp_out *o, struct optset *os, unsigned code)
{
    if (code == 0 || code > 254 || (os->done[code >> 3] & (1u << (code & 7))) || s_protected(code))
        return;
    const Firmfleet__DhcpOption *opt = NULL;
    if (c->cls)
        opt = s_find(c->cls->options, c->cls->n_options, code);
    const void *val = NULL;
    size_t len = 0;
    char text[16];
    uint32_t mask_be = htonl(c->sn->mask);
    /* the device's profile fills what its class leaves open */
    const struct dhcpopt *po = opt == NULL ? s_pfind(c, code) : NULL;
    if (po == NULL && opt == NULL)
        opt = s_find(c->sn->src->options, c->sn->src->n_options, code);
    if (po != NULL) {
        switch (po->fill) {
        case DHCPOPT_FILL_SERVER_IP:
            val = &c->sid_be;
            len = 4;
            os->filled = 1;
            break;
        case DHCPOPT_FILL_SERVER_IP_TEXT:
            val = dhcp_ip_str(c->sid_be, text);
            len = strlen(text);
            os->filled = 1;
            break;
        default:
            val = po->value;
            len = po->len;
            break;
        }
    } else if (opt != NULL) {
        switch (opt->fill) {
        case FIRMFLEET__DHCP_OPTION__FILL__SERVER_IP:
            val = &c->sid_be;
            len = 4;
            os->filled = 1;
            break;
        case FIRMFLEET__DHCP_OPTION__FILL__SERVER_IP_TEXT:
            val = dhcp_ip_str(c->sid_be, text);
            len = strlen(text);
            os->filled = 1;
            break;
        default:
            val = opt->value.data;
            len = opt->value.len;
            if (len > 0 && val == NULL)
                return;
            break;
        }
    } else if (code == DHO_SUBNET_MASK) {
        val = &mask_be;
        len = 4;
    } else if (code == DHO_ROUTER && c->sn->router_be) {
        val = &c->sn->router_be;
        len = 4;
    } else if (code == DHO_DNS && c->sn->n_dns) {
        val = c->sn->dns_be;
        len = 4 * c->sn->n_dns;
    } else {
        return;
    }
    os->done[code >> 3] |= (uint8_t)(1u << (code & 7));
    if (dhcp_out_opt(o, (uint8_t)code, val, len) < 0)
        os->dropped++;
}

/* Every option the client gets besides the protocol ones: those it asked
 * for first, in its order (so what it values most fits in a small reply),
 * then the rest, asked for or not (phones often do not ask for 66/150). */
static void s_add_config_options(const struct dctx *c, struct dhcp_out *o, struct optset *os)
{
    struct dhcp_opt prl = dhcp_get(c->m, DHO_PARAM_REQ);
    for (size_t i = 0; prl.p && i < prl.len; i++)
        s_add_code(c, o, os, prl.p[i]);
    static const unsigned builtin[] = {DHO_SUBNET_MASK, DHO_ROUTER, DHO_DNS};
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        s_add_code(c, o, os, builtin[i]);
    if (c->cls)
        for (size_t i = 0; i < c->cls->n_options; i++)
            if (c->cls->options[i])
                s_add_code(c, o, os, c->cls->options[i]->code);
    for (size_t i = 0; i < c->n_popt; i++)
        s_add_code(c, o, os, c->popt[i]->code);
    for (size_t i = 0; i < c->sn->src->n_options; i++)
        if (c->sn->src->options[i])
            s_add_code(c, o, os, c->sn->src->options[i]->code);
}

static struct dreply *s_slot(struct dhcpd *d, struct dqueue *q)
{
    if (q->n >= q->cap) {
        d->st.dropped++;
        return NULL;
    }
    return &q->v[q->n];
}

/* Builds a reply of `type` into the next queue slot and queues it.
 * yiaddr/lease_s: for OFFER and ACK (not INFORM). */
static void s_reply(struct dctx *c, uint8_t type, uint32_t yiaddr_host, uint32_t lease_s)
{
    struct dhcpd *d = c->d;
    const struct dhcp_msg *m = c->m;
    int inform = type == DHCPACK && m->type == DHCPINFORM;
    /* only an ACK for a lease waits for the commit */
    struct dqueue *q = type == DHCPACK && !inform ? &d->acks : &d->immed;
    struct dreply *r = s_slot(d, q);
    if (r == NULL)
        return;
    size_t limit = dhcp_max_size(m);
    if (limit > c->ifc->mtu)
        limit = c->ifc->mtu;
    limit -= DHCP_UDP_IP_HDR;
    struct dhcp_out o;
    dhcp_out_init(&o, r->buf + DHCP_UDP_IP_HDR, sizeof r->buf - DHCP_UDP_IP_HDR, limit, m);
    struct dhcp_opt o82 = dhcp_get(m, DHO_RELAY_INFO);
    o.reserve = o82.p ? dhcp_opt_space(o82.len) : 0;
    if ((type == DHCPOFFER || type == DHCPACK) && !inform)
        dhcp_out_set_yiaddr(&o, htonl(yiaddr_host));
    if (type == DHCPACK && m->ciaddr)
        dhcp_out_set_ciaddr(&o, m->ciaddr);
    if (type == DHCPNAK && m->giaddr)
        dhcp_out_set_flags(&o, m->flags | DHCP_FLAG_BROADCAST);
    dhcp_out_opt_u8(&o, DHO_MSG_TYPE, type);
    dhcp_out_opt(&o, DHO_SERVER_ID, &c->sid_be, 4);
    struct optset os;
    memset(&os, 0, sizeof os);
    if (type != DHCPNAK) {
        if (!inform) {
            uint32_t t1 = lease_s == DHCPD_INFINITE ? DHCPD_INFINITE : lease_s / 2;
            uint32_t t2 =
                lease_s == DHCPD_INFINITE ? DHCPD_INFINITE : (uint32_t)((uint64_t)lease_s * 7 / 8);
            dhcp_out_opt_u32(&o, DHO_LEASE_TIME, lease_s);
            dhcp_out_opt_u32(&o, DHO_T1, s_u32_override(c, DHO_T1, t1));
            dhcp_out_opt_u32(&o, DHO_T2, s_u32_override(c, DHO_T2, t2));
        }
        s_add_config_options(c, &o, &os);
        struct dhcp_opt cid = dhcp_get(m, DHO_CLIENT_ID);
        if (cid.p != NULL) /* RFC 6842; after what the device needs, if room is short */
            dhcp_out_opt(&o, DHO_CLIENT_ID, cid.p, cid.len);
        if (os.filled)
            dhcp_out_set_siaddr(&o, c->sid_be);
    } else {
        static const char msg[] = "address not available";
        dhcp_out_opt(&o, DHO_MESSAGE, msg, sizeof msg - 1);
    }
    if (o82.p != NULL) {
        o.reserve = 0;
        dhcp_out_opt(&o, DHO_RELAY_INFO, o82.p, o82.len); /* echoed unchanged */
    }
    if (os.dropped)
        log_debug("dhcp.options_dropped", "mac=%s n=%d limit=%zu", c->macs, os.dropped, limit);
    r->len = (uint16_t)dhcp_out_finish(&o);
    r->iface = (uint8_t)(c->ifc - d->ifs);
    r->src_be = c->sid_be;
    r->raw = 0;
    /* RFC 2131 4.1 */
    if (m->giaddr) {
        r->dst_be = m->giaddr;
        r->dport = d->port;
    } else if (type == DHCPNAK) {
        r->dst_be = htonl(INADDR_BROADCAST);
        r->dport = (uint16_t)(d->port + 1);
    } else if (m->ciaddr) {
        r->dst_be = m->ciaddr;
        r->dport = (uint16_t)(d->port + 1);
    } else if ((m->flags & DHCP_FLAG_BROADCAST) || c->ifc->pfd < 0 || yiaddr_host == 0 || inform) {
        r->dst_be = htonl(INADDR_BROADCAST);
        r->dport = (uint16_t)(d->port + 1);
    } else {
        r->raw = 1;
        r->dst_be = htonl(yiaddr_host);
        r->dport = (uint16_t)(d->port + 1);
        memcpy(r->dst_mac, c->mac, 6);
    }
    q->n++;
    if (type == DHCPOFFER)
        d->st.offers++;
    else if (type == DHCPACK)
        d->st.acks++;
    else
        d->st.naks++;
}

/* ---- events ---- */

static const char *s_vendor_q(const struct dctx *c, char *out, size_t n)
{
    if (c->facts.vendor.p == NULL)
        return "\"\"";
    return dhcp_quote(c->facts.vendor.p, c->facts.vendor.len, out, n);
}

static const char *s_class_name(const struct dctx *c)
{
    return c->cls && c->cls->name ? c->cls->name : "";
}

/* device.discovered, once per MAC not in SiteConfig.devices (remembered in
 * the journal so a restart does not repeat it). */
static void s_discovered(struct dctx *c, uint32_t ip_host)
{
    struct dhcpd *d = c->d;
    uint64_t key = dhcp_mac_key(c->mac);
    uint32_t v;
    if (c->dev != NULL || dhcp_map_get(&d->seen, key, &v))
        return;
    if (d->seen.n >= DHCPD_SEEN_MAX) {
        if (!d->seen_full_logged)
            log_warn("dhcp.discovery_full", "max=%d reason=\"not reporting more MACs\"",
                     DHCPD_SEEN_MAX);
        d->seen_full_logged = 1;
        return;
    }
    if (agent_tx(d->a) == NULL || lease_db_seen_put(d->ldb, c->mac, d->now_ms) < 0)
        return;
    dhcp_map_put(&d->seen, key, 1);
    char vc[600], ips[16], detail[800];
    snprintf(detail, sizeof detail, "vendor_class=%s ip=%s", s_vendor_q(c, vc, sizeof vc),
             dhcp_ip_str(htonl(ip_host), ips));
    agent_emit_event(d->a, "device.discovered", c->macs, detail);
    log_info("dhcp.discovered", "mac=%s %s", c->macs, detail);
}

/* ---- message handlers ---- */

static void s_discover(struct dctx *c)
{
    struct dhcpd *d = c->d;
    struct dhcp_lease *l = s_pick(c);
    if (l == NULL) {
        /* at most one line per second: a flood must not become a log flood */
        d->exhausted_n++;
        if (d->now != d->exhausted_at) {
            log_warn("dhcp.pool_exhausted", "mac=%s subnet=%s unanswered=%llu", c->macs,
                     c->sn->src->cidr, (unsigned long long)d->exhausted_n);
            d->exhausted_at = d->now;
            d->exhausted_n = 0;
        }
        return;
    }
    if (!(s_same_mac(l, c->mac) && l->state == DL_BOUND && l->expires > d->now)) {
        s_take(c, l);
        dhcp_ltab_set_state(d->lt, l, DL_OFFERED, d->now + DHCPD_OFFER_HOLD_S);
    }
    s_discovered(c, l->ip);
    s_reply(c, DHCPOFFER, l->ip, s_lease_s(c));
}

/* The client's record for ip when it may be ACKed, else NULL. allow_free:
 * an unbound pool address may be taken (the client chose us, or is renewing
 * an address nobody else holds). */
static struct dhcp_lease *s_grantable(struct dctx *c, uint32_t ip, int allow_free)
{
    struct dhcp_lease *l = dhcp_ltab_by_mac(c->d->lt, c->mac);
    if (l != NULL && l->ip == ip)
        return s_fits(c, l) ? l : NULL;
    uint32_t res = s_reserved(c);
    if (res != 0) {
        if (ip != res || !s_res_available(c, res))
            return NULL;
        l = dhcp_ltab_add(c->d->lt, res);
        return l && l->state != DL_DECLINED ? l : NULL;
    }
    return allow_free ? s_free_at(c, ip) : NULL;
}

static void s_ack(struct dctx *c, struct dhcp_lease *l)
{
    struct dhcpd *d = c->d;
    uint32_t lease_s = s_lease_s(c);
    int64_t now = d->now;
    int renew = s_same_mac(l, c->mac) && l->state == DL_BOUND && l->expires > now;
    uint32_t granted_s = lease_s;
    if (renew && l->stored && lease_s != DHCPD_INFINITE &&
        now - l->granted < (int64_t)(lease_s / DHCPD_CACHE_DIV) && l->expires - now > 0) {
        /* written moments ago (a reboot loop, a retransmission): hand out
         * what is stored rather than write again */
        granted_s = (uint32_t)(l->expires - now);
    } else {
        if (agent_tx(d->a) == NULL)
            return;
        s_take(c, l);
        int64_t exp = lease_s == DHCPD_INFINITE ? INT64_MAX / 2 : now + lease_s;
        int64_t old_exp = l->expires, old_granted = l->granted;
        l->expires = exp;
        l->granted = now;
        struct lease_row row;
        s_row(l, c->mac, LEASE_BOUND, c->cls, &row);
        if (lease_db_put(d->ldb, &row, d->now_ms) < 0) {
            l->expires = old_exp;
            l->granted = old_granted;
            return; /* no ACK without the lease on disk; the client retries */
        }
        l->stored = 1;
        dhcp_ltab_set_state(d->lt, l, DL_BOUND, exp);
    }
    char ips[16];
    dhcp_ip_str(htonl(l->ip), ips);
    if (!renew || now - l->evented >= (int64_t)(lease_s / 2)) {
        char vc[600], detail[800], cq[160];
        snprintf(detail, sizeof detail, "ip=%s class=%s vendor_class=%s renew=%d", ips,
                 log_quote(s_class_name(c), cq, sizeof cq), s_vendor_q(c, vc, sizeof vc), renew);
        agent_emit_event(d->a, "dhcp.lease", c->macs, detail);
        l->evented = now;
    }
    if (!renew) {
        char cq[160];
        log_info("dhcp.ack", "mac=%s ip=%s class=%s lease=%u iface=%s", c->macs, ips,
                 log_quote(s_class_name(c), cq, sizeof cq), granted_s, c->ifc->name);
    } else {
        log_debug("dhcp.renew", "mac=%s ip=%s lease=%u", c->macs, ips, granted_s);
    }
    s_discovered(c, l->ip);
    s_reply(c, DHCPACK, l->ip, granted_s);
}

static void s_nak(struct dctx *c, uint32_t ip_be, const char *why)
{
    char ips[16];
    log_info("dhcp.nak", "mac=%s ip=%s reason=%s", c->macs, dhcp_ip_str(ip_be, ips), why);
    s_reply(c, DHCPNAK, 0, 0);
}

static void s_request(struct dctx *c)
{
    struct dhcpd *d = c->d;
    const struct dhcp_msg *m = c->m;
    uint32_t sid_be, req_be = 0;
    int has_sid = dhcp_get_ip(m, DHO_SERVER_ID, &sid_be);
    int has_req = dhcp_get_ip(m, DHO_REQUESTED_IP, &req_be);
    if (has_sid) {
        /* SELECTING */
        struct dhcp_lease *l = dhcp_ltab_by_mac(d->lt, c->mac);
        if (sid_be != c->sid_be) {
            /* it chose another server: our offer is free again */
            if (l != NULL && l->state == DL_OFFERED)
                dhcp_ltab_set_state(d->lt, l, DL_EXPIRED, d->now);
            return;
        }
        uint32_t ip_be = has_req ? req_be : m->ciaddr;
        struct dhcp_lease *g = ip_be ? s_grantable(c, ntohl(ip_be), 1) : NULL;
        if (g == NULL)
            s_nak(c, ip_be, "not_offered");
        else
            s_ack(c, g);
        return;
    }
    if (has_req && m->ciaddr == 0) {
        /* INIT-REBOOT */
        uint32_t ip = ntohl(req_be);
        if (!s_in_subnet(c->sn, ip)) {
            s_nak(c, req_be, "wrong_network");
            return;
        }
        struct dhcp_lease *mine = dhcp_ltab_by_mac(d->lt, c->mac);
        struct dhcp_lease *g = s_grantable(c, ip, 0);
        if (g != NULL)
            s_ack(c, g);
        else if (mine != NULL || s_reserved(c) != 0)
            s_nak(c, req_be, "not_yours");
        else
            log_debug("dhcp.init_reboot_unknown", "mac=%s", c->macs); /* RFC: stay silent */
        return;
    }
    if (m->ciaddr != 0) {
        /* RENEWING (unicast) or REBINDING (broadcast) */
        uint32_t ip = ntohl(m->ciaddr);
        if (!s_in_subnet(c->sn, ip)) {
            s_nak(c, m->ciaddr, "wrong_network");
            return;
        }
        struct dhcp_lease *g = s_grantable(c, ip, 1);
        if (g != NULL)
            s_ack(c, g);
        else
            s_nak(c, m->ciaddr, "not_yours");
        return;
    }
    d->st.ignored++;
}

static void s_decline(struct dctx *c)
{
    struct dhcpd *d = c->d;
    uint32_t sid_be, req_be;
    if (dhcp_get_ip(c->m, DHO_SERVER_ID, &sid_be) && sid_be != c->sid_be)
        return;
    if (!dhcp_get_ip(c->m, DHO_REQUESTED_IP, &req_be))
        return;
    struct dhcp_lease *l = dhcp_ltab_by_mac(d->lt, c->mac);
    if (l == NULL || l->ip != ntohl(req_be) || agent_tx(d->a) == NULL)
        return;
    l->expires = d->now + DHCPD_DECLINE_HOLD_S;
    l->granted = d->now;
    struct lease_row row;
    s_row(l, c->mac, LEASE_DECLINED, c->cls, &row);
    if (lease_db_put(d->ldb, &row, d->now_ms) < 0)
        return;
    l->stored = 1;
    dhcp_ltab_clear_mac(d->lt, l);
    dhcp_ltab_set_state(d->lt, l, DL_DECLINED, d->now + DHCPD_DECLINE_HOLD_S);
    char ips[16], detail[64];
    snprintf(detail, sizeof detail, "ip=%s hold=%d", dhcp_ip_str(req_be, ips),
             DHCPD_DECLINE_HOLD_S);
    agent_emit_event(d->a, "dhcp.decline", c->macs, detail);
    log_warn("dhcp.decline", "mac=%s %s", c->macs, detail);
}

static void s_release(struct dctx *c)
{
    struct dhcpd *d = c->d;
    uint32_t sid_be;
    if (dhcp_get_ip(c->m, DHO_SERVER_ID, &sid_be) && sid_be != c->sid_be)
        return;
    struct dhcp_lease *l = dhcp_ltab_by_mac(d->lt, c->mac);
    if (l == NULL || l->ip != ntohl(c->m->ciaddr) || l->state != DL_BOUND || agent_tx(d->a) == NULL)
        return;
    int64_t old = l->expires;
    l->expires = d->now;
    struct lease_row row;
    s_row(l, c->mac, LEASE_RELEASED, c->cls, &row);
    if (lease_db_put(d->ldb, &row, d->now_ms) < 0) {
        l->expires = old;
        return;
    }
    dhcp_ltab_set_state(d->lt, l, DL_RELEASED, d->now); /* keeps the MAC: affinity */
    char ips[16], detail[32];
    snprintf(detail, sizeof detail, "ip=%s", dhcp_ip_str(c->m->ciaddr, ips));
    agent_emit_event(d->a, "dhcp.release", c->macs, detail);
    log_info("dhcp.release", "mac=%s %s", c->macs, detail);
}

static void s_inform(struct dctx *c)
{
    s_discovered(c, ntohl(c->m->ciaddr));
    s_reply(c, DHCPACK, 0, 0);
}

/* ---- receive ---- */

static void s_flush(struct dhcpd *d, struct dqueue *q);

/* RFC 2131 4.3.1: giaddr, else the receiving interface. A datagram sent to
 * our own address with ciaddr set (RENEWING, RELEASE, INFORM) may come from
 * a relayed network without passing the relay: its subnet is ciaddr's. A
 * broadcast with ciaddr (REBINDING) is judged by the interface, so that a
 * client that moved networks gets its NAK. */
static const struct dsubnet *s_subnet_for(const struct dhcpd *d, uint32_t giaddr_be,
                                          uint32_t local_be, uint32_t ciaddr_be, int unicast)
{
    const struct dcfg *cf = &d->cfg;
    if (giaddr_be == 0 && ciaddr_be != 0 && unicast) {
        for (size_t i = 0; i < cf->n_sn; i++)
            if (s_in_subnet(&cf->sn[i], ntohl(ciaddr_be)))
                return &cf->sn[i];
    }
    if (giaddr_be != 0) {
        for (size_t i = 0; i < cf->n_sn; i++)
            for (size_t k = 0; k < cf->sn[i].n_relays; k++)
                if (cf->sn[i].relays_be[k] == giaddr_be)
                    return &cf->sn[i];
        for (size_t i = 0; i < cf->n_sn; i++)
            if (s_in_subnet(&cf->sn[i], ntohl(giaddr_be)))
                return &cf->sn[i];
        return NULL;
    }
    for (size_t i = 0; i < cf->n_sn; i++)
        if (cf->sn[i].n_relays == 0 && s_in_subnet(&cf->sn[i], ntohl(local_be)))
            return &cf->sn[i];
    return NULL;
}

static void s_no_subnet(struct dctx *c)
{
    struct dhcpd *d = c->d;
    uint64_t key = dhcp_mac_key(c->mac);
    uint32_t v;
    if (dhcp_map_get(&d->silent, key, &v))
        return;
    if (dhcp_map_put(&d->silent, key, 1) < 0) {
        if (!d->silent_full_logged)
            log_warn("dhcp.no_subnet",
                     "reason=\"many clients without a subnet; not logging more\"");
        d->silent_full_logged = 1;
        return;
    }
    char g[16];
    log_warn("dhcp.no_subnet", "mac=%s iface=%s giaddr=%s reason=\"no subnet configured; silent\"",
             c->macs, c->ifc->name, dhcp_ip_str(c->m->giaddr, g));
}

/* profile_evidence.dhcp_rule: a profile's rule, judged as the classifier
 * judges a class rule. */
static int s_profile_rule(void *arg, const struct dhcpopt_rule *r)
{
    const struct dhcp_facts *f = arg;
    uint8_t v[DHCPOPT_VALUE_MAX];
    size_t n = r->len; /* uint8_t: at most DHCPOPT_VALUE_MAX */
    memcpy(v, r->value, n);
    Firmfleet__MatchRule mr = FIRMFLEET__MATCH_RULE__INIT;
    mr.kind = (Firmfleet__MatchRule__Kind)r->kind;
    mr.value.data = v;
    mr.value.len = n;
    mr.ignore_trailing_nul = r->ignore_trailing_nul != 0;
    mr.enterprise = r->enterprise;
    return dhcp_rule_match(&mr, f);
}

/* Tells provisioning what the device sent (a DISCOVER or a REQUEST without
 * ciaddr is a (re)boot) and takes its profile's options for the reply. */
static void s_provision(struct dctx *c)
{
    const struct dhcp_msg *m = c->m;
    struct profile_evidence e = {
        .mac = c->mac,
        .vendor = c->facts.vendor.p,
        .vendor_len = c->facts.vendor.p ? c->facts.vendor.len : 0,
        .dhcp_rule = s_profile_rule,
        .dhcp_arg = &c->facts,
    };
    int boot = m->type == DHCPDISCOVER || (m->type == DHCPREQUEST && m->ciaddr == 0);
    prov_observe(c->d->a, &e, boot, m->ciaddr);
    c->n_popt = prov_dhcp_options(c->d->a, c->mac, c->popt, DHCPD_PROFILE_OPTS);
}

static void s_handle(struct dhcpd *d, struct diface *ifc, const uint8_t *buf, size_t len,
                     const struct in_pktinfo *pi)
{
    struct dhcp_msg *m = &d->msg;
    d->st.rx++;
    int rc = dhcp_parse(buf, len, m);
    if (rc < 0) {
        d->st.bad++;
        log_debug("dhcp.bad_packet", "iface=%s len=%zu error=%d", ifc->name, len, rc);
        return;
    }
    if (m->op != DHCP_BOOTREQUEST || m->type < DHCPDISCOVER || m->type > DHCPINFORM ||
        m->htype != 1 || m->hlen != 6) {
        d->st.ignored++;
        return;
    }
    /* No Ethernet interface has an all-zero, broadcast or multicast address:
     * such a chaddr is a forgery that would take pool addresses and fill the
     * inventory. RFC 1542 4.1.1: more than 16 relay hops is a loop or a
     * forgery too. */
    static const uint8_t zero[6];
    if ((m->chaddr[0] & 0x01) != 0 || memcmp(m->chaddr, zero, 6) == 0 || m->hops > 16) {
        d->st.ignored++;
        log_debug("dhcp.ignored", "iface=%s reason=\"%s\"", ifc->name,
                  m->hops > 16 ? "more than 16 relay hops" : "not a unicast hardware address");
        return;
    }
    d->st.rx_type[m->type]++;
    struct dctx c;
    memset(&c, 0, sizeof c);
    c.d = d;
    c.ifc = ifc;
    c.m = m;
    c.mac = m->chaddr;
    util_mac_format(c.mac, c.macs);
    /* server identifier: the address the datagram was sent to, unless that
     * was a broadcast; then the interface's address */
    uint32_t dst = pi ? pi->ipi_addr.s_addr : 0;
    uint32_t bcast_be = ifc->addr_be | ~ifc->mask_be;
    int unicast = dst != 0 && dst != htonl(INADDR_BROADCAST) && dst != bcast_be &&
                  pi->ipi_spec_dst.s_addr != 0;
    c.sid_be = unicast ? pi->ipi_spec_dst.s_addr : ifc->addr_be;
    if (c.sid_be == 0) {
        if (!ifc->no_addr_logged)
            log_warn("dhcp.no_address", "iface=%s reason=\"interface has no IPv4 address\"",
                     ifc->name);
        ifc->no_addr_logged = 1;
        return;
    }
    c.sn = s_subnet_for(d, m->giaddr, c.sid_be, m->ciaddr, unicast);
    if (c.sn == NULL) {
        s_no_subnet(&c);
        return;
    }
    uint32_t idx;
    if (dhcp_map_get(&d->cfg.dev_by_mac, dhcp_mac_key(c.mac), &idx))
        c.dev = &d->cfg.devs[idx];
    dhcp_facts_from(m, &c.facts);
    c.cls = c.dev && c.dev->cls ? c.dev->cls : dhcp_classify(&d->cfg.classes, &c.facts);
    if (m->type == DHCPDISCOVER || m->type == DHCPREQUEST || m->type == DHCPINFORM)
        s_provision(&c);
    switch (m->type) {
    case DHCPDISCOVER:
        s_discover(&c);
        break;
    case DHCPREQUEST:
        s_request(&c);
        break;
    case DHCPDECLINE:
        s_decline(&c);
        break;
    case DHCPRELEASE:
        s_release(&c);
        break;
    case DHCPINFORM:
        s_inform(&c);
        break;
    default:
        d->st.ignored++;
        break;
    }
}

static void s_on_readable(uv_poll_t *h, int status, int events)
{
    struct diface *ifc = h->data;
    struct dhcpd *d = ifc->d;
    (void)events;
    if (status < 0 || d->stopping)
        return;
    int budget = DHCPD_TURN_BUDGET;
    /* each datagram makes at most one reply: read no more than fits */
    while (budget > 0 && d->acks.n < d->acks.cap) {
        size_t room = d->acks.cap - d->acks.n;
        unsigned want = (unsigned)(room < DHCPD_BATCH ? room : DHCPD_BATCH);
        if ((int)want > budget)
            want = (unsigned)budget;
        for (unsigned i = 0; i < want; i++) {
            struct msghdr *mh = &d->rmsg[i].msg_hdr;
            d->riov[i].iov_base = d->rbuf[i];
            d->riov[i].iov_len = sizeof d->rbuf[i];
            mh->msg_name = &d->rfrom[i];
            mh->msg_namelen = sizeof d->rfrom[i];
            mh->msg_iov = &d->riov[i];
            mh->msg_iovlen = 1;
            mh->msg_control = d->rctl[i];
            mh->msg_controllen = sizeof d->rctl[i];
            mh->msg_flags = 0;
        }
        int n = recvmmsg(ifc->fd, d->rmsg, want, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("dhcp.recv", "iface=%s error=\"%s\"", ifc->name, strerror(errno));
            break;
        }
        d->now_ms = util_now_ms();
        d->now = (int64_t)(d->now_ms / 1000);
        for (int i = 0; i < n; i++) {
            struct msghdr *mh = &d->rmsg[i].msg_hdr;
            if (mh->msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
                d->st.rx++;
                d->st.bad++;
                continue;
            }
            const struct in_pktinfo *pi = NULL;
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm))
                if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO)
                    pi = (const struct in_pktinfo *)(void *)CMSG_DATA(cm);
            s_handle(d, ifc, d->rbuf[i], d->rmsg[i].msg_len, pi);
        }
        /* what needs no commit leaves at once: offers do not wait for an fsync */
        s_flush(d, &d->immed);
        budget -= n;
        if ((unsigned)n < want)
            break; /* drained */
    }
}

/* ---- send ---- */

static void s_send_batch(struct dhcpd *d, struct diface *ifc, int raw, struct dreply **v, size_t n);

/* Sends every reply in q, grouped per interface and socket kind, with
 * sendmmsg; empties q. */
static void s_flush(struct dhcpd *d, struct dqueue *q)
{
    struct dreply *batch[DHCPD_BATCH];
    if (q->n == 0)
        return;
    for (size_t i = 0; i < d->n_ifs; i++) {
        for (int raw = 0; raw < 2; raw++) {
            size_t n = 0;
            for (size_t k = 0; k < q->n; k++) {
                struct dreply *r = &q->v[k];
                if (r->iface != i || r->raw != raw)
                    continue;
                batch[n++] = r;
                if (n == DHCPD_BATCH) {
                    s_send_batch(d, &d->ifs[i], raw, batch, n);
                    n = 0;
                }
            }
            if (n > 0)
                s_send_batch(d, &d->ifs[i], raw, batch, n);
        }
    }
    q->n = 0;
}

/* Sends queue entries [from, to) of interface i and kind raw. */
static void s_send_batch(struct dhcpd *d, struct diface *ifc, int raw, struct dreply **v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct dreply *r = v[k];
        struct msghdr *mh = &d->smsg[k].msg_hdr;
        memset(mh, 0, sizeof *mh);
        if (raw) {
            dhcp_ip_udp_header(r->buf, r->src_be, r->dst_be, d->port, r->dport, r->len);
            d->siov[k].iov_base = r->buf;
            d->siov[k].iov_len = (size_t)r->len + DHCP_UDP_IP_HDR;
            struct sockaddr_ll *ll = &d->sto[k].ll;
            memset(ll, 0, sizeof *ll);
            ll->sll_family = AF_PACKET;
            ll->sll_protocol = htons(ETH_P_IP);
            ll->sll_ifindex = ifc->ifindex;
            ll->sll_halen = 6;
            memcpy(ll->sll_addr, r->dst_mac, 6);
            mh->msg_name = ll;
            mh->msg_namelen = sizeof *ll;
        } else {
            d->siov[k].iov_base = r->buf + DHCP_UDP_IP_HDR;
            d->siov[k].iov_len = r->len;
            struct sockaddr_in *in = &d->sto[k].in;
            memset(in, 0, sizeof *in);
            in->sin_family = AF_INET;
            in->sin_port = htons(r->dport);
            in->sin_addr.s_addr = r->dst_be;
            mh->msg_name = in;
            mh->msg_namelen = sizeof *in;
            /* the source address: the server identifier we gave */
            mh->msg_control = d->sctl[k];
            mh->msg_controllen = sizeof d->sctl[k];
            memset(d->sctl[k], 0, sizeof d->sctl[k]);
            struct cmsghdr *cm = CMSG_FIRSTHDR(mh);
            cm->cmsg_level = IPPROTO_IP;
            cm->cmsg_type = IP_PKTINFO;
            cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
            struct in_pktinfo pi;
            memset(&pi, 0, sizeof pi);
            pi.ipi_spec_dst.s_addr = r->src_be;
            memcpy(CMSG_DATA(cm), &pi, sizeof pi);
        }
        mh->msg_iov = &d->siov[k];
        mh->msg_iovlen = 1;
    }
    size_t done = 0;
    int fd = raw ? ifc->pfd : ifc->fd;
    while (done < n) {
        int s = sendmmsg(fd, d->smsg + done, (unsigned)(n - done), MSG_DONTWAIT);
        if (s < 0) {
            if (errno == EINTR)
                continue;
            /* full socket buffer, unreachable relay: the clients retransmit */
            log_debug("dhcp.send", "iface=%s raw=%d error=\"%s\" dropped=%zu", ifc->name, raw,
                      strerror(errno), n - done);
            d->st.dropped += n - done;
            if (errno != EAGAIN && errno != EWOULDBLOCK && n - done > 1) {
                done++; /* skip the one that failed, try the rest */
                continue;
            }
            break;
        }
        done += (size_t)s;
        d->st.sent += (size_t)s;
    }
}

static void s_after_commit(void *self)
{
    struct dhcpd *d = self;
    int failed = agent_commit_failed(d->a);
    if (!failed && d->acks.n == 0 && d->immed.n == 0)
        return;
    if (failed) {
        log_error("dhcp.commit_failed", "acks=%zu reason=\"ACKs dropped; table reloaded\"",
                  d->acks.n);
        d->st.dropped += d->acks.n;
        d->acks.n = 0;
        if (s_load(d) < 0)
            log_error("dhcp.reload_failed", "reason=\"see above\"");
    }
    s_flush(d, &d->immed);
    s_flush(d, &d->acks);
}

/* ---- interfaces ---- */

static void s_iface_addr(struct diface *ifc)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifc->name);
    uint32_t addr = 0, mask = 0;
    if (ioctl(ifc->fd, SIOCGIFADDR, &ifr) == 0)
        addr = ((struct sockaddr_in *)(void *)&ifr.ifr_addr)->sin_addr.s_addr;
    if (ioctl(ifc->fd, SIOCGIFNETMASK, &ifr) == 0)
        mask = ((struct sockaddr_in *)(void *)&ifr.ifr_netmask)->sin_addr.s_addr;
    if (addr != ifc->addr_be) {
        char a[16];
        log_info("dhcp.iface_address", "iface=%s address=%s", ifc->name, dhcp_ip_str(addr, a));
        ifc->no_addr_logged = 0;
    }
    ifc->addr_be = addr;
    ifc->mask_be = mask;
}

static void s_setopt(int fd, int level, int name, int v)
{
    setsockopt(fd, level, name, &v, sizeof v);
}

/* Opens the sockets of one interface. 0 or <0 (logged). */
static int s_iface_open(struct dhcpd *d, struct diface *ifc, const char *name)
{
    ifc->d = d;
    ifc->fd = ifc->pfd = -1;
    if (strlen(name) >= sizeof ifc->name) {
        log_error("dhcp.iface", "iface=%s error=\"name too long\"", name);
        return -EINVAL;
    }
    snprintf(ifc->name, sizeof ifc->name, "%s", name);
    ifc->ifindex = (int)if_nametoindex(name);
    if (ifc->ifindex == 0) {
        log_error("dhcp.iface", "iface=%s error=\"%s\"", name, strerror(errno));
        return -ENODEV;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ifc->fd = fd;
    s_setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    s_setopt(fd, SOL_SOCKET, SO_BROADCAST, 1);
    s_setopt(fd, IPPROTO_IP, IP_PKTINFO, 1);
    int buf = DHCPD_RCVBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0)
        s_setopt(fd, SOL_SOCKET, SO_RCVBUF, buf);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) < 0)
        s_setopt(fd, SOL_SOCKET, SO_SNDBUF, buf);
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, (socklen_t)strlen(name)) < 0) {
        int e = errno;
        log_error("dhcp.iface", "iface=%s error=\"SO_BINDTODEVICE: %s\"", name, strerror(e));
        return -e;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(d->port);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        log_error("dhcp.bind", "iface=%s port=%u error=\"%s\"", name, d->port, strerror(e));
        return -e;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    ifc->mtu = 1500;
    if (ioctl(fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu >= DHCP_MIN_MAX_SIZE)
        ifc->mtu = (unsigned)ifr.ifr_mtu;
    if (ifc->mtu > DHCPD_REPLY_MAX)
        ifc->mtu = DHCPD_REPLY_MAX;
    int ether = ioctl(fd, SIOCGIFHWADDR, &ifr) == 0 && ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER;
    if (ether) {
        ifc->pfd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (ifc->pfd >= 0) {
            if (setsockopt(ifc->pfd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) < 0)
                s_setopt(ifc->pfd, SOL_SOCKET, SO_SNDBUF, buf);
        } else {
            log_warn("dhcp.packet_socket", "iface=%s error=\"%s\" reason=\"%s\"", name,
                     strerror(errno), "replies to clients without an address are broadcast");
        }
    }
    s_iface_addr(ifc);
    int rc = uv_poll_init(&d->a->loop, &ifc->poll, fd);
    if (rc < 0) {
        log_error("dhcp.iface", "iface=%s error=\"%s\"", name, uv_strerror(rc));
        return rc;
    }
    ifc->poll.data = ifc;
    d->open_handles++;
    uv_poll_start(&ifc->poll, UV_READABLE, s_on_readable);
    log_info("dhcp.listen", "iface=%s port=%u mtu=%u unicast=%s", name, d->port, ifc->mtu,
             ifc->pfd >= 0 ? "packet" : "broadcast");
    return 0;
}

/* ---- lifetime ---- */

static void s_free(struct dhcpd *d)
{
    for (size_t i = 0; i < d->n_ifs; i++) {
        if (d->ifs[i].fd >= 0)
            close(d->ifs[i].fd);
        if (d->ifs[i].pfd >= 0)
            close(d->ifs[i].pfd);
    }
    lease_db_close(&d->ldb);
    dhcp_ltab_destroy(&d->lt);
    s_cfg_free(&d->cfg);
    dhcp_map_free(&d->seen);
    dhcp_map_free(&d->silent);
    free(d->immed.v);
    free(d->acks.v);
    free(d);
}

static void s_on_closed(uv_handle_t *h)
{
    struct dhcpd *d = h->data;
    if (h->type == UV_POLL)
        d = ((struct diface *)h->data)->d;
    if (--d->open_handles == 0)
        s_free(d);
}

static void s_stop(void *self)
{
    struct dhcpd *d = self;
    if (d->stopping)
        return;
    d->stopping = 1;
    log_info("dhcp.stop",
             "rx=%llu bad=%llu ignored=%llu offers=%llu acks=%llu naks=%llu "
             "sent=%llu dropped=%llu",
             (unsigned long long)d->st.rx, (unsigned long long)d->st.bad,
             (unsigned long long)d->st.ignored, (unsigned long long)d->st.offers,
             (unsigned long long)d->st.acks, (unsigned long long)d->st.naks,
             (unsigned long long)d->st.sent, (unsigned long long)d->st.dropped);
    d->immed.n = d->acks.n = 0;
    /* statements are finalized now: the journal closes after the loop ends */
    lease_db_close(&d->ldb);
    for (size_t i = 0; i < d->n_ifs; i++)
        if (d->ifs[i].poll.data == &d->ifs[i]) /* initialized */
            uv_close((uv_handle_t *)&d->ifs[i].poll, s_on_closed);
    uv_close((uv_handle_t *)&d->timer, s_on_closed);
}

static void s_on_timer(uv_timer_t *t)
{
    struct dhcpd *d = t->data;
    for (size_t i = 0; i < d->n_ifs; i++)
        s_iface_addr(&d->ifs[i]);
    uint32_t n = dhcp_ltab_sweep(d->lt, (int64_t)(util_now_ms() / 1000));
    if (n)
        log_debug("dhcp.sweep", "freed=%u", n);
}

static int s_mac_for_ip(void *self, uint32_t ip_be, uint8_t mac[6])
{
    struct dhcpd *d = self;
    const struct dhcp_lease *l = d->lt ? dhcp_ltab_by_ip(d->lt, ntohl(ip_be)) : NULL;
    if (l == NULL || !l->has_mac || l->state == DL_DECLINED)
        return 0;
    memcpy(mac, l->mac, 6);
    return 1;
}

static int s_ip_for_mac(void *self, const uint8_t mac[6], uint32_t *ip_be)
{
    struct dhcpd *d = self;
    const struct dhcp_lease *l = d->lt ? dhcp_ltab_by_mac(d->lt, mac) : NULL;
    if (l == NULL || l->state != DL_BOUND || l->ip == 0)
        return 0;
    *ip_be = htonl(l->ip);
    return 1;
}

int dhcpd_start(struct agent *a, const struct svc_opts *o)
{
    struct dhcpd *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    d->a = a;
    d->port = o->dhcp_port;
    for (size_t i = 0; i < SVC_MAX_LISTEN; i++)
        d->ifs[i].fd = d->ifs[i].pfd = -1;
    d->acks.cap = (size_t)DHCPD_TURN_BUDGET * (o->n_dhcp ? o->n_dhcp : 1);
    d->acks.v = calloc(d->acks.cap, sizeof *d->acks.v);
    d->immed.cap = DHCPD_BATCH;
    d->immed.v = calloc(d->immed.cap, sizeof *d->immed.v);
    int rc = d->acks.v && d->immed.v ? 0 : -ENOMEM;
    if (rc == 0 && (dhcp_map_init(&d->seen, DHCPD_SEEN_MAX) < 0 ||
                    dhcp_map_init(&d->silent, DHCPD_SILENT_MAX) < 0))
        rc = -ENOMEM;
    if (rc == 0 && (rc = lease_db_open(a->jr, &d->ldb)) == 0)
        rc = s_load(d);
    if (rc < 0) {
        log_error("dhcp.start", "error=\"%s\"", strerror(-rc));
        s_free(d);
        return rc;
    }
    uv_timer_init(&a->loop, &d->timer);
    d->timer.data = d;
    d->open_handles = 1;
    uv_timer_start(&d->timer, s_on_timer, DHCPD_TIMER_MS, DHCPD_TIMER_MS);
    for (size_t i = 0; i < o->n_dhcp && rc == 0; i++) {
        rc = s_iface_open(d, &d->ifs[i], o->dhcp_ifaces[i]);
        d->n_ifs = i + 1;
    }
    struct agent_service svc = {
        .name = "dhcp",
        .self = d,
        .on_config = s_on_config,
        .after_commit = s_after_commit,
        .mac_for_ip = s_mac_for_ip,
        .ip_for_mac = s_ip_for_mac,
        .stop = s_stop,
    };
    if (rc == 0)
        rc = agent_add_service(a, &svc);
    if (rc < 0) {
        /* handles are open: close them the libuv way, free in the callbacks */
        s_stop(d);
        return rc;
    }
    return 0;
}

int dhcpd_get_stats(struct agent *a, struct dhcpd_stats *out)
{
    for (size_t i = 0; i < a->n_svc; i++)
        if (a->svc[i].stop == s_stop) {
            const struct dhcpd *d = a->svc[i].self;
            memset(out, 0, sizeof *out);
            out->rx = d->st.rx;
            out->bad = d->st.bad;
            out->ignored = d->st.ignored;
            out->discover = d->st.rx_type[DHCPDISCOVER];
            out->request = d->st.rx_type[DHCPREQUEST];
            out->decline = d->st.rx_type[DHCPDECLINE];
            out->release = d->st.rx_type[DHCPRELEASE];
            out->inform = d->st.rx_type[DHCPINFORM];
            out->offers = d->st.offers;
            out->acks = d->st.acks;
            out->naks = d->st.naks;
            out->sent = d->st.sent;
            out->dropped = d->st.dropped;
            return 0;
        }
    return -ENOENT;
}
