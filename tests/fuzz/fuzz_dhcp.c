/* fuzz_dhcp.c: libFuzzer target for what the DHCP server does with a
 * datagram before any state changes: dhcp_parse, the accessors, the facts
 * and every kind of MatchRule over them, and a reply built from the request
 * (option 82 echoed, a long option split) that must parse again with the
 * echoed bytes intact. Asserts the contracts of dhcp_pkt.h along the way.
 *
 * Build and run (not part of `make`; the generated protobuf header comes
 * from a normal build):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isiteagent -Ilib -Ibuild/gen \
 *     tests/fuzz/fuzz_dhcp.c siteagent/dhcp_pkt.c siteagent/dhcp_class.c \
 *     build/gen/firmfleet.pb-c.c -lprotobuf-c -o /tmp/fuzz_dhcp
 *   /tmp/fuzz_dhcp -max_total_time=60
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dhcp_class.h"
#include "dhcp_pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dhcp_msg s_m, s_r;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dhcp_parse(data, size, &s_m) != 0)
        return 0;
    assert(s_m.hlen <= 16);
    for (int code = 0; code < 256; code++) {
        struct dhcp_opt o = dhcp_get(&s_m, (uint8_t)code);
        if (o.p != NULL && o.len > 0) {
            /* every value lies inside the datagram or the concatenation buffer */
            int in_raw = o.p >= data && o.p + o.len <= data + size;
            int in_cat = o.p >= s_m.cat && o.p + o.len <= s_m.cat + s_m.cat_len;
            assert(in_raw || in_cat);
        }
    }
    assert(dhcp_max_size(&s_m) >= DHCP_MIN_MAX_SIZE);
    (void)dhcp_requested(&s_m, 66);

    struct dhcp_facts f;
    dhcp_facts_from(&s_m, &f);
    static const uint8_t v[] = {'C', 'i', 's', 'c', 'o', 0};
    for (int kind = 0; kind <= 7; kind++) {
        for (int nul = 0; nul < 2; nul++) {
            Firmfleet__MatchRule r = FIRMFLEET__MATCH_RULE__INIT;
            r.kind = (Firmfleet__MatchRule__Kind)kind;
            r.value.data = (uint8_t *)(uintptr_t)v;
            r.value.len = kind == FIRMFLEET__MATCH_RULE__KIND__MAC_OUI ? 3 : sizeof v - (size_t)nul;
            r.ignore_trailing_nul = nul;
            r.enterprise = 13885;
            (void)dhcp_rule_match(&r, &f);
            r.value.len = 0;
            (void)dhcp_rule_match(&r, &f);
        }
    }

    uint8_t buf[1500];
    struct dhcp_out o;
    dhcp_out_init(&o, buf, sizeof buf, dhcp_max_size(&s_m) - DHCP_UDP_IP_HDR, &s_m);
    struct dhcp_opt o82 = dhcp_get(&s_m, DHO_RELAY_INFO);
    o.reserve = o82.p ? dhcp_opt_space(o82.len) : 0;
    dhcp_out_opt_u8(&o, DHO_MSG_TYPE, DHCPOFFER);
    struct dhcp_opt vc = dhcp_get(&s_m, DHO_VENDOR_CLASS);
    if (vc.p)
        (void)dhcp_out_opt(&o, DHO_VENDOR_OPTS, vc.p, vc.len);
    size_t before = o.len;
    o.reserve = 0;
    int echoed = o82.p ? dhcp_out_opt(&o, DHO_RELAY_INFO, o82.p, o82.len) == 0 : 0;
    assert(o.len <= o.limit);
    size_t n = dhcp_out_finish(&o);
    assert(n <= sizeof buf && n >= DHCP_MIN_LEN);
    (void)before;
    int rc = dhcp_parse(buf, n, &s_r);
    assert(rc == 0 || n > DHCP_PKT_MAX);
    if (rc == 0 && echoed) {
        struct dhcp_opt e = dhcp_get(&s_r, DHO_RELAY_INFO);
        assert(e.p && e.len == o82.len && memcmp(e.p, o82.p, o82.len) == 0);
    }
    char q[64];
    if (vc.p)
        (void)dhcp_quote(vc.p, vc.len, q, sizeof q);
    return 0;
}
