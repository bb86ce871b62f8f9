/* sim_netif.c: interface addresses over rtnetlink (see sim_netif.h).
 * RTM_NEWADDR/RTM_DELADDR with NLM_F_ACK; the answer is read at once (the
 * kernel answers within the sendmsg for route sockets, so the loop is held
 * for microseconds, not for a round trip to anyone). Shelling out to ip(8)
 * per lease was the other option: a fork per device, and errors as text. */
#include "sim_netif.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct added {
    uint32_t addr_be;
    unsigned prefix;
};

struct sim_netif {
    int fd;
    int ifindex;
    uint32_t seq;
    size_t n, cap;
    struct added *a;
};

static int s_req(struct sim_netif *n, int type, int flags, uint32_t addr_be, unsigned prefix)
{
    struct {
        struct nlmsghdr nh;
        struct ifaddrmsg ifa;
        char attrs[64];
    } req;
    memset(&req, 0, sizeof req);
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
    req.nh.nlmsg_type = (uint16_t)type;
    req.nh.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
    req.nh.nlmsg_seq = ++n->seq;
    req.ifa.ifa_family = AF_INET;
    req.ifa.ifa_prefixlen = (uint8_t)prefix;
    req.ifa.ifa_scope = RT_SCOPE_UNIVERSE;
    req.ifa.ifa_index = (unsigned)n->ifindex;
    int kinds[2] = {IFA_LOCAL, IFA_ADDRESS};
    for (int i = 0; i < 2; i++) {
        struct rtattr *rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
        rta->rta_type = (unsigned short)kinds[i];
        rta->rta_len = RTA_LENGTH(4);
        memcpy(RTA_DATA(rta), &addr_be, 4);
        req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
    }
    if (send(n->fd, &req, req.nh.nlmsg_len, 0) < 0)
        return -errno;
    char buf[1024];
    for (int tries = 0; tries < 8; tries++) {
        ssize_t r = recv(n->fd, buf, sizeof buf, 0);
        if (r < 0)
            return errno == EINTR ? -EINTR : -errno;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)r);
             h = NLMSG_NEXT(h, r)) {
            if (h->nlmsg_seq != n->seq || h->nlmsg_type != NLMSG_ERROR)
                continue;
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
                return -EPROTO;
            const struct nlmsgerr *e = NLMSG_DATA(h);
            return e->error;
        }
    }
    return -EPROTO;
}

int sim_netif_new(const char *ifname, sim_netif_t **out)
{
    unsigned idx = if_nametoindex(ifname);
    if (idx == 0)
        return -ENODEV;
    struct sim_netif *n = calloc(1, sizeof *n);
    if (n == NULL)
        return -ENOMEM;
    n->ifindex = (int)idx;
    n->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (n->fd < 0) {
        int e = -errno;
        free(n);
        return e;
    }
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (bind(n->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = -errno;
        close(n->fd);
        free(n);
        return e;
    }
    *out = n;
    return 0;
}

int sim_netif_add(sim_netif_t *n, uint32_t addr_be, unsigned prefix)
{
    if (prefix < 1 || prefix > 32)
        return -EINVAL;
    for (size_t i = 0; i < n->n; i++)
        if (n->a[i].addr_be == addr_be)
            return 0;
    int rc = s_req(n, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, addr_be, prefix);
    if (rc == -EEXIST)
        return 0; /* not ours: left alone at exit */
    if (rc < 0)
        return rc;
    if (n->n == n->cap) {
        size_t c = n->cap ? n->cap * 2 : 64;
        struct added *a = realloc(n->a, c * sizeof *a);
        if (a == NULL) {
            s_req(n, RTM_DELADDR, 0, addr_be, prefix);
            return -ENOMEM;
        }
        n->a = a, n->cap = c;
    }
    n->a[n->n++] = (struct added){addr_be, prefix};
    return 0;
}

int sim_netif_index(const sim_netif_t *n)
{
    return n->ifindex;
}

void sim_netif_destroy(sim_netif_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    struct sim_netif *n = *self_p;
    *self_p = NULL;
    while (n->n > 0) {
        n->n--;
        s_req(n, RTM_DELADDR, 0, n->a[n->n].addr_be, n->a[n->n].prefix);
    }
    free(n->a);
    close(n->fd);
    free(n);
}
