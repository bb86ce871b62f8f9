/* sim_dhcp.h: DHCP client packets of the simulated devices, pure functions
 * with no sockets: DISCOVER and REQUEST with a family's exact option 60
 * bytes, parsing of OFFER/ACK/NAK, and malformed packets for failure
 * injection. An independent implementation on purpose: the simulator checks
 * the agent's DHCP server, so it must not share its parser's mistakes.
 *
 * Invariants: every length in a reply is checked against the bytes received
 * before it is read; a reply that fails any check is rejected whole.
 */
#ifndef FF_SIM_DHCP_H
#define FF_SIM_DHCP_H

#include <stddef.h>
#include <stdint.h>

#define SIM_DHCP_DISCOVER 1
#define SIM_DHCP_OFFER 2
#define SIM_DHCP_REQUEST 3
#define SIM_DHCP_ACK 5
#define SIM_DHCP_NAK 6
#define SIM_DHCP_MAX 1500 /* what we send and accept */

struct sim_dhcp_req {
    uint8_t type; /* SIM_DHCP_DISCOVER or SIM_DHCP_REQUEST */
    uint32_t xid;
    uint16_t secs;
    uint8_t mac[6];
    const uint8_t *vendor; /* option 60 bytes, exactly as sent; may hold NULs */
    size_t vendor_len;     /* 0: no option 60 */
    uint32_t requested_be; /* option 50, 0: none */
    uint32_t server_id_be; /* option 54, 0: none */
};

/* Builds a BOOTREQUEST with the broadcast flag set (replies come to
 * 255.255.255.255, so one socket hears every device). Returns its length
 * (>= 300, the BOOTP minimum), or 0 when it does not fit in cap. */
size_t sim_dhcp_build(const struct sim_dhcp_req *rq, uint8_t *buf, size_t cap);

struct sim_dhcp_reply {
    uint8_t type; /* option 53 */
    uint32_t xid;
    uint8_t chaddr[6];
    uint32_t yiaddr_be, siaddr_be;
    uint32_t server_id_be; /* option 54, 0 if absent */
    uint32_t mask_be;      /* option 1, 0 if absent */
    uint32_t tftp150_be;   /* first address of option 150, 0 if absent */
    uint32_t lease_s;      /* option 51, 0 if absent */
    char opt66[256];       /* option 66 as text, "" if absent */
};

/* Parses a BOOTREPLY. 0, or -EPROTO (not a reply, short, bad magic, an
 * option running past the end, no message type). */
int sim_dhcp_parse(const uint8_t *p, size_t n, struct sim_dhcp_reply *r);

/* Writes malformed request number `kind` (any value; taken modulo the
 * number of kinds) for mac/xid into buf. Returns its length (0 for the empty
 * datagram is never returned: at least 1 byte). cap must be >= SIM_DHCP_MAX. */
size_t sim_dhcp_garbage(uint8_t *buf, size_t cap, unsigned kind, const uint8_t mac[6],
                        uint32_t xid);

#endif
