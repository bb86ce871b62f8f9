/* dhcp_class.h: which DeviceClass of the site configuration a DHCP client
 * belongs to, from what it sends: option 60 (vendor class), option 77 (user
 * class), the MAC's OUI, and RFC 3925 enterprise numbers (options 124/125,
 * or option 60 in Polycom's binary form). Pure: no I/O, no clock; the only
 * allocation is the sorted index made when a configuration arrives.
 *
 * Semantics (firmfleet.proto MatchRule):
 *   VENDOR_EXACT/PREFIX/SUBSTRING/SUFFIX compare option 60 byte for byte;
 *     with ignore_trailing_nul one trailing NUL of option 60 is dropped
 *     first, so "Cisco ... CP-7940G" matches a phone sending "...CP-7940G\0".
 *     An absent option 60 matches nothing; an empty value matches any
 *     present option 60 for PREFIX/SUBSTRING/SUFFIX.
 *   USER_CLASS equals the whole option 77, or one RFC 3004 instance of it
 *     (the option is read as instances only when their lengths add up
 *     exactly); ignore_trailing_nul applies as for option 60.
 *   MAC_OUI: value is 3 bytes, compared with the first 3 of an Ethernet chaddr.
 *   ENTERPRISE: `enterprise` appears as an enterprise number in option 124 or
 *     125, or option 60 is binary and begins with it (Polycom: 00 00 36 3d,
 *     a length byte, sub-options; the first byte 0 tells it from text). A
 *     non-empty value must also occur inside that enterprise's data (e.g. a
 *     model name).
 * A class matches when any of its rules does; classes are tried in ascending
 * priority (ties: configuration order); the first match wins.
 */
#ifndef FF_DHCP_CLASS_H
#define FF_DHCP_CLASS_H

#include <stddef.h>
#include <stdint.h>

#include "dhcp_pkt.h"
#include "firmfleet.pb-c.h"

/* What a client said about itself; each option p == NULL when absent. */
struct dhcp_facts {
    const uint8_t *mac;     /* 6 bytes, NULL when chaddr is not Ethernet */
    struct dhcp_opt vendor; /* 60 */
    struct dhcp_opt user;   /* 77 */
    struct dhcp_opt vivc;   /* 124 */
    struct dhcp_opt vivso;  /* 125 */
};

/* Fills f from a parsed message (pointers borrowed from m). */
void dhcp_facts_from(const struct dhcp_msg *m, struct dhcp_facts *f);

/* 1 when rule r matches f, else 0 (a malformed rule matches nothing). */
int dhcp_rule_match(const Firmfleet__MatchRule *r, const struct dhcp_facts *f);

/* The classes of one configuration in the order they are tried. Borrows the
 * DeviceClass pointers: valid while that configuration is. */
struct dhcp_classes {
    const Firmfleet__DeviceClass **v;
    size_t n;
};

/* Builds the sorted index. 0 or -ENOMEM (c is empty then). */
int dhcp_classes_init(struct dhcp_classes *c, Firmfleet__DeviceClass *const *classes, size_t n);
void dhcp_classes_free(struct dhcp_classes *c);
/* The first class whose rules match f, or NULL. */
const Firmfleet__DeviceClass *dhcp_classify(const struct dhcp_classes *c,
                                            const struct dhcp_facts *f);
/* The class called name, or NULL (for DeviceRef.class pins). */
const Firmfleet__DeviceClass *dhcp_class_by_name(const struct dhcp_classes *c, const char *name);

#endif
