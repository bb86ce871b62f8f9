/* test_dhcp_pkt.c: DHCP message parsing and building (siteagent/dhcp_pkt):
 * header fields, options with PAD/END, lengths checked against the bytes
 * received (short, truncated, overlong, a length byte past the end), option
 * overload into file/sname, RFC 3396 concatenation, option 53/52 checks, the
 * size a client accepts; replies: copied fields, size limit and reserve,
 * long options split, padding; quoting, IP/UDP checksums; every prefix of a
 * valid message and random bytes parse without reading out of bounds (the
 * ASan build proves the last part). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dhcp_pkt.h"

static struct dhcp_msg s_m;

/* A client message under construction. */
struct pkt {
    uint8_t b[DHCP_PKT_MAX + 16];
    size_t len;
};

static void s_begin(struct pkt *p, uint8_t type)
{
    memset(p, 0, sizeof *p);
    p->b[0] = 1; /* BOOTREQUEST */
    p->b[1] = 1;
    p->b[2] = 6;
    p->b[4] = 0xde, p->b[5] = 0xad, p->b[6] = 0xbe, p->b[7] = 0xef;
    p->b[10] = 0x80; /* broadcast flag */
    uint8_t mac[6] = {0x00, 0x04, 0xf2, 0x11, 0x22, 0x33};
    memcpy(p->b + 28, mac, 6);
    p->b[236] = 99, p->b[237] = 130, p->b[238] = 83, p->b[239] = 99;
    p->len = DHCP_FIXED_LEN;
    if (type) {
        p->b[p->len++] = DHO_MSG_TYPE;
        p->b[p->len++] = 1;
        p->b[p->len++] = type;
    }
}

static void s_opt(struct pkt *p, uint8_t code, const void *v, uint8_t len)
{
    p->b[p->len++] = code;
    p->b[p->len++] = len;
    memcpy(p->b + p->len, v, len);
    p->len += len;
}

static void s_end(struct pkt *p)
{
    p->b[p->len++] = DHO_END;
}

static void test_parse_discover(void **state)
{
    (void)state;
    struct pkt p;
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_VENDOR_CLASS, "Cisco Systems, Inc. IP Phone CP-7940G\0", 38);
    uint8_t prl[] = {1, 3, 6, 66, 150};
    s_opt(&p, DHO_PARAM_REQ, prl, sizeof prl);
    p.b[p.len++] = DHO_PAD;
    uint8_t ms[2] = {0x05, 0xdc};
    s_opt(&p, DHO_MAX_SIZE, ms, 2);
    s_end(&p);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    assert_int_equal(s_m.op, 1);
    assert_int_equal(s_m.type, DHCPDISCOVER);
    assert_int_equal(s_m.flags, 0x8000);
    assert_int_equal(s_m.hlen, 6);
    assert_memory_equal(s_m.chaddr, "\x00\x04\xf2\x11\x22\x33", 6);
    struct dhcp_opt v = dhcp_get(&s_m, DHO_VENDOR_CLASS);
    assert_non_null(v.p);
    assert_int_equal(v.len, 38);
    assert_int_equal(v.p[37], 0);
    assert_null(dhcp_get(&s_m, DHO_USER_CLASS).p);
    assert_true(dhcp_requested(&s_m, 150));
    assert_false(dhcp_requested(&s_m, 67));
    assert_int_equal(dhcp_max_size(&s_m), 1500);
    uint32_t ip;
    assert_int_equal(dhcp_get_ip(&s_m, DHO_REQUESTED_IP, &ip), 0);
}

static void test_parse_short_and_bad(void **state)
{
    (void)state;
    struct pkt p;
    s_begin(&p, 0);
    /* the fixed part and cookie alone: a valid, option-less (BOOTP) message */
    assert_int_equal(dhcp_parse(p.b, DHCP_FIXED_LEN, &s_m), 0);
    assert_int_equal(s_m.type, 0);
    for (size_t n = 0; n < DHCP_FIXED_LEN; n++)
        assert_int_equal(dhcp_parse(p.b, n, &s_m), -EBADMSG);
    assert_int_equal(dhcp_parse(NULL, 0, &s_m), -EBADMSG);
    p.b[239] = 0; /* cookie */
    assert_int_equal(dhcp_parse(p.b, DHCP_FIXED_LEN, &s_m), -EBADMSG);
    s_begin(&p, DHCPDISCOVER);
    p.b[2] = 17; /* hlen */
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), -EBADMSG);
    s_begin(&p, DHCPDISCOVER);
    assert_int_equal(dhcp_parse(p.b, DHCP_PKT_MAX + 1, &s_m), -EMSGSIZE);
}

static void test_parse_option_lengths(void **state)
{
    (void)state;
    struct pkt p;
    /* a value running past the end of the datagram */
    s_begin(&p, DHCPDISCOVER);
    p.b[p.len++] = DHO_VENDOR_CLASS;
    p.b[p.len++] = 10;
    memcpy(p.b + p.len, "abc", 3);
    p.len += 3;
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), -EBADMSG);
    /* exactly to the end, no END option: tolerated */
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_VENDOR_CLASS, "abc", 3);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    assert_int_equal(dhcp_get(&s_m, DHO_VENDOR_CLASS).len, 3);
    /* a code byte with no length byte after it */
    s_begin(&p, DHCPDISCOVER);
    p.b[p.len++] = DHO_VENDOR_CLASS;
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), -EBADMSG);
    /* zero-length option: present, empty */
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_USER_CLASS, "", 0);
    s_end(&p);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    assert_non_null(dhcp_get(&s_m, DHO_USER_CLASS).p);
    assert_int_equal(dhcp_get(&s_m, DHO_USER_CLASS).len, 0);
    /* option 53 must be one byte */
    s_begin(&p, 0);
    s_opt(&p, DHO_MSG_TYPE, "\x01\x01", 2);
    s_end(&p);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), -EBADMSG);
    /* garbage after END is not parsed */
    s_begin(&p, DHCPREQUEST);
    s_end(&p);
    p.b[p.len++] = 60;
    p.b[p.len++] = 200;
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    assert_null(dhcp_get(&s_m, DHO_VENDOR_CLASS).p);
    /* option 57 malformed or too small: 576 */
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_MAX_SIZE, "\x01\x00", 2);
    s_end(&p);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    assert_int_equal(dhcp_max_size(&s_m), 576);
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_MAX_SIZE, "\x05\xdc\x00", 3);
    s_end(&p);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    assert_int_equal(dhcp_max_size(&s_m), 576);
    /* a 4-byte-address option with 3 bytes is not an address */
    s_begin(&p, DHCPREQUEST);
    s_opt(&p, DHO_REQUESTED_IP, "\xc6\x12\x01", 3);
    s_end(&p);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    uint32_t ip;
    assert_int_equal(dhcp_get_ip(&s_m, DHO_REQUESTED_IP, &ip), 0);
}

static void test_parse_overload(void **state)
{
    (void)state;
    struct pkt p;
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_OVERLOAD, "\x03", 1);
    s_end(&p);
    /* file (108..235): vendor class; sname (44..107): user class */
    uint8_t *file = p.b + 108, *sname = p.b + 44;
    file[0] = DHO_VENDOR_CLASS, file[1] = 4;
    memcpy(file + 2, "snom", 4);
    file[6] = DHO_OVERLOAD, file[7] = 1, file[8] = 1; /* ignored here */
    file[9] = DHO_END;
    sname[0] = DHO_USER_CLASS, sname[1] = 3;
    memcpy(sname + 2, "abc", 3);
    sname[5] = DHO_END;
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    assert_int_equal(s_m.overload, 3);
    assert_memory_equal(dhcp_get(&s_m, DHO_VENDOR_CLASS).p, "snom", 4);
    assert_memory_equal(dhcp_get(&s_m, DHO_USER_CLASS).p, "abc", 3);
    /* an option in file running past its 128 bytes */
    file[0] = DHO_VENDOR_CLASS, file[1] = 200;
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), -EBADMSG);
    /* the last byte of sname as an option code without a length */
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_OVERLOAD, "\x02", 1);
    s_end(&p);
    memset(p.b + 44, DHO_PAD, 63);
    p.b[107] = DHO_VENDOR_CLASS;
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), -EBADMSG);
    /* overload values outside 1..3, or longer than one byte */
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_OVERLOAD, "\x04", 1);
    s_end(&p);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), -EBADMSG);
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_OVERLOAD, "\x01\x01", 2);
    s_end(&p);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), -EBADMSG);
    /* file without overload is not read as options */
    s_begin(&p, DHCPDISCOVER);
    s_end(&p);
    p.b[108] = DHO_VENDOR_CLASS, p.b[109] = 250;
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    assert_null(dhcp_get(&s_m, DHO_VENDOR_CLASS).p);
}

static void test_parse_concatenation(void **state)
{
    (void)state;
    struct pkt p;
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_VENDOR_CLASS, "Cisco ", 6);
    s_opt(&p, DHO_USER_CLASS, "u1", 2);
    s_opt(&p, DHO_VENDOR_CLASS, "Systems", 7);
    s_opt(&p, DHO_USER_CLASS, "u2", 2);
    s_opt(&p, DHO_VENDOR_CLASS, ", Inc.", 6);
    s_end(&p);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    struct dhcp_opt v = dhcp_get(&s_m, DHO_VENDOR_CLASS);
    assert_int_equal(v.len, 19);
    assert_memory_equal(v.p, "Cisco Systems, Inc.", 19);
    struct dhcp_opt u = dhcp_get(&s_m, DHO_USER_CLASS);
    assert_int_equal(u.len, 4);
    assert_memory_equal(u.p, "u1u2", 4);
    /* across fields: options, then file */
    s_begin(&p, DHCPDISCOVER);
    s_opt(&p, DHO_OVERLOAD, "\x01", 1);
    s_opt(&p, DHO_VENDOR_CLASS, "AB", 2);
    s_end(&p);
    p.b[108] = DHO_VENDOR_CLASS, p.b[109] = 2, p.b[110] = 'C', p.b[111] = 'D';
    p.b[112] = DHO_END;
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    v = dhcp_get(&s_m, DHO_VENDOR_CLASS);
    assert_int_equal(v.len, 4);
    assert_memory_equal(v.p, "ABCD", 4);
    /* the largest message, all of it one option split into 255-byte parts */
    s_begin(&p, DHCPDISCOVER);
    uint8_t big[255];
    memset(big, 'x', sizeof big);
    while (p.len + 257 <= DHCP_PKT_MAX)
        s_opt(&p, DHO_VENDOR_OPTS, big, 255);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    assert_int_equal(dhcp_get(&s_m, DHO_VENDOR_OPTS).len, 255 * ((DHCP_PKT_MAX - 243) / 257));
}

static void test_build_reply(void **state)
{
    (void)state;
    struct pkt p;
    s_begin(&p, DHCPREQUEST);
    uint32_t gi = htonl(0xc6120201);
    memcpy(p.b + 24, &gi, 4);
    s_opt(&p, DHO_RELAY_INFO, "\001\003eth", 5);
    s_end(&p);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    static struct dhcp_msg req;
    req = s_m;
    uint8_t buf[1500];
    struct dhcp_out o;
    dhcp_out_init(&o, buf, sizeof buf, 548, &req);
    dhcp_out_set_yiaddr(&o, htonl(0xc6120264));
    dhcp_out_set_siaddr(&o, htonl(0xc6120201));
    assert_int_equal(dhcp_out_opt_u8(&o, DHO_MSG_TYPE, DHCPACK), 0);
    assert_int_equal(dhcp_out_opt_u32(&o, DHO_LEASE_TIME, 3600), 0);
    assert_int_equal(dhcp_out_opt(&o, DHO_PAD, "", 0), -EINVAL);
    assert_int_equal(dhcp_out_opt(&o, DHO_END, "", 0), -EINVAL);
    /* a 300-byte value goes out as two instances and fits the limit only
     * when 548 allows; here it does not (240 + 9 + 304 + 1 > 548) */
    uint8_t big[300];
    memset(big, 'v', sizeof big);
    size_t before = o.len;
    assert_int_equal(dhcp_out_opt(&o, DHO_VENDOR_OPTS, big, sizeof big), -EMSGSIZE);
    assert_int_equal(o.len, before);
    uint8_t filler[100];
    memset(filler, 'h', sizeof filler);
    assert_int_equal(dhcp_out_opt(&o, DHO_HOSTNAME, filler, sizeof filler), 0);
    /* with the reserve kept for option 82 */
    struct dhcp_opt o82 = dhcp_get(&req, DHO_RELAY_INFO);
    o.reserve = dhcp_opt_space(o82.len);
    size_t room = o.limit - o.len - o.reserve - 1;
    assert_int_equal(dhcp_out_opt(&o, DHO_BOOTFILE, big, room - 1), -EMSGSIZE);
    assert_int_equal(dhcp_out_opt(&o, DHO_BOOTFILE, big, room - 2), 0);
    o.reserve = 0;
    assert_int_equal(dhcp_out_opt(&o, DHO_RELAY_INFO, o82.p, o82.len), 0);
    size_t n = dhcp_out_finish(&o);
    assert_int_equal(n, 548);
    assert_int_equal(dhcp_parse(buf, n, &s_m), 0);
    assert_int_equal(s_m.op, DHCP_BOOTREPLY);
    assert_int_equal(s_m.type, DHCPACK);
    assert_memory_equal(&s_m.xid, "\xde\xad\xbe\xef", 4);
    assert_int_equal(s_m.giaddr, gi);
    assert_int_equal(s_m.yiaddr, htonl(0xc6120264));
    assert_int_equal(s_m.flags, 0x8000);
    assert_memory_equal(s_m.chaddr, req.chaddr, 16);
    assert_int_equal(dhcp_get(&s_m, DHO_RELAY_INFO).len, 5);
    assert_memory_equal(dhcp_get(&s_m, DHO_RELAY_INFO).p, "\001\003eth", 5);
    assert_int_equal(dhcp_get(&s_m, DHO_BOOTFILE).len, room - 2);

    /* a long option split and joined again; a short reply is padded */
    dhcp_out_init(&o, buf, sizeof buf, 1500, &req);
    assert_int_equal(dhcp_opt_space(300), 304);
    assert_int_equal(dhcp_opt_space(0), 2);
    assert_int_equal(dhcp_opt_space(255), 257);
    assert_int_equal(dhcp_out_opt(&o, DHO_VENDOR_OPTS, big, sizeof big), 0);
    n = dhcp_out_finish(&o);
    assert_int_equal(dhcp_parse(buf, n, &s_m), 0);
    assert_int_equal(dhcp_get(&s_m, DHO_VENDOR_OPTS).len, 300);
    dhcp_out_init(&o, buf, sizeof buf, 1500, &req);
    assert_int_equal(dhcp_out_finish(&o), DHCP_MIN_LEN);
}

static void test_quote_and_ip(void **state)
{
    (void)state;
    char out[64];
    assert_string_equal(dhcp_quote((const uint8_t *)"CP-7940G\0", 9, out, sizeof out),
                        "\"CP-7940G\\x00\"");
    assert_string_equal(dhcp_quote((const uint8_t *)"a\"b\\c", 5, out, sizeof out),
                        "\"a\\\"b\\\\c\"");
    assert_string_equal(dhcp_quote((const uint8_t *)"\x00\x00\x36\x3d", 4, out, sizeof out),
                        "\"\\x00\\x006=\"");
    assert_string_equal(dhcp_quote((const uint8_t *)"", 0, out, sizeof out), "\"\"");
    /* truncation keeps the closing quote and never splits an escape */
    char small[8];
    assert_string_equal(dhcp_quote((const uint8_t *)"\x01\x02\x03", 3, small, sizeof small),
                        "\"\\x01\"");
    char ips[16];
    assert_string_equal(dhcp_ip_str(htonl(0xc6120102), ips), "198.18.1.2");
}

static uint16_t s_csum(const uint8_t *p, size_t n, uint32_t sum)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)(p[n - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

static void test_ip_udp_header(void **state)
{
    (void)state;
    uint8_t b[28 + 301];
    for (size_t i = 0; i < 301; i++)
        b[28 + i] = (uint8_t)(i * 7);
    dhcp_ip_udp_header(b, htonl(0xc6120101), htonl(0xc6120164), 67, 68, 301);
    assert_int_equal(b[0], 0x45);
    assert_int_equal(b[2] << 8 | b[3], 329);
    assert_int_equal(s_csum(b, 20, 0), 0xffff); /* IP header sums to all ones */
    uint32_t pseudo = 0;
    pseudo += s_csum(b + 12, 8, 0);
    pseudo += 17 + 309;
    assert_int_equal(s_csum(b + 20, 309, pseudo), 0xffff);
    assert_int_equal(b[20] << 8 | b[21], 67);
    assert_int_equal(b[22] << 8 | b[23], 68);
}

static void test_prefixes_and_noise(void **state)
{
    (void)state;
    struct pkt p;
    s_begin(&p, DHCPREQUEST);
    s_opt(&p, DHO_OVERLOAD, "\x03", 1);
    s_opt(&p, DHO_VENDOR_CLASS, "Cisco", 5);
    s_opt(&p, DHO_REQUESTED_IP, "\xc6\x12\x01\x64", 4);
    s_opt(&p, DHO_VENDOR_CLASS, "Phone", 5);
    s_end(&p);
    p.b[108] = DHO_VENDOR_CLASS, p.b[109] = 3, memcpy(p.b + 110, "xyz", 3);
    p.b[44] = DHO_HOSTNAME, p.b[45] = 2, memcpy(p.b + 46, "hh", 2);
    assert_int_equal(dhcp_parse(p.b, p.len, &s_m), 0);
    assert_int_equal(dhcp_get(&s_m, DHO_VENDOR_CLASS).len, 13);
    /* every prefix: a heap copy of exactly that many bytes, so ASan sees
     * any read past what was "received" */
    for (size_t n = 0; n <= p.len; n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, p.b, n);
        int rc = dhcp_parse(c, n, &s_m);
        assert_true(rc == 0 || rc == -EBADMSG);
        free(c);
    }
    /* random options after a valid header */
    srand(12345);
    for (int it = 0; it < 20000; it++) {
        size_t n = DHCP_FIXED_LEN + (size_t)(rand() % 600);
        uint8_t *c = malloc(n);
        memcpy(c, p.b, DHCP_FIXED_LEN);
        for (size_t i = DHCP_FIXED_LEN; i < n; i++)
            c[i] = (uint8_t)rand();
        if ((it & 1) && n >= DHCP_FIXED_LEN + 3) /* make overload likely */
            c[DHCP_FIXED_LEN] = DHO_OVERLOAD, c[DHCP_FIXED_LEN + 1] = 1,
            c[DHCP_FIXED_LEN + 2] = (uint8_t)(1 + rand() % 3);
        int rc = dhcp_parse(c, n, &s_m);
        assert_true(rc == 0 || rc == -EBADMSG);
        if (rc == 0) {
            for (int code = 0; code < 256; code++) {
                struct dhcp_opt o = dhcp_get(&s_m, (uint8_t)code);
                if (o.p != NULL && o.len > 0) {
                    volatile uint8_t last = o.p[o.len - 1];
                    (void)last;
                }
            }
        }
        free(c);
    }
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_discover),
        cmocka_unit_test(test_parse_short_and_bad),
        cmocka_unit_test(test_parse_option_lengths),
        cmocka_unit_test(test_parse_overload),
        cmocka_unit_test(test_parse_concatenation),
        cmocka_unit_test(test_build_reply),
        cmocka_unit_test(test_quote_and_ip),
        cmocka_unit_test(test_ip_udp_header),
        cmocka_unit_test(test_prefixes_and_noise),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
