/* test_dhcpopt.c: the DHCP option encoder, the match rule parser, IPv4/CIDR
 * text and the packed lists (lib/dhcpopt): exact bytes for every type and
 * every default, the @server fills, every refusal with its reason, and
 * round trips through pack/unpack including truncated input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dhcpopt.h"

/* Parses spec and expects code, fill and the value bytes (hex). */
static void s_opt(const char *spec, unsigned code, int fill, const char *hex)
{
    struct dhcpopt o;
    char err[256] = "", got[2 * DHCPOPT_VALUE_MAX + 1] = "";
    if (dhcpopt_parse(spec, &o, err, sizeof err) != 0)
        fail_msg("'%s' refused: %s", spec, err);
    for (size_t i = 0; i < o.len; i++)
        snprintf(got + 2 * i, 3, "%02x", o.value[i]);
    if (o.code != code || o.fill != fill || strcmp(got, hex) != 0)
        fail_msg("'%s': code %u fill %u value %s; expected %u %d %s", spec, o.code, o.fill, got,
                 code, fill, hex);
}

/* Expects a refusal whose message contains want, on one line. */
static void s_bad(const char *spec, const char *want)
{
    struct dhcpopt o;
    char err[256] = "";
    assert_int_equal(dhcpopt_parse(spec, &o, err, sizeof err), -EINVAL);
    if (strstr(err, want) == NULL)
        fail_msg("'%s': message '%s' lacks '%s'", spec, err, want);
    assert_null(strchr(err, '\n'));
}

static void test_types(void **state)
{
    (void)state;
    s_opt("66=text:tftp.example", 66, 0, "746674702e6578616d706c65");
    s_opt("150=ip:198.18.0.1,198.18.0.2", 150, 0, "c6120001c6120002");
    s_opt("43=hex:f1:04:c0:a8:00:01", 43, 0, "f104c0a80001");
    s_opt("43=hex:F104C0A80001", 43, 0, "f104c0a80001");
    s_opt("200=u8:255", 200, 0, "ff");
    s_opt("200=u16:258", 200, 0, "0102");
    s_opt("200=u32:4294967295", 200, 0, "ffffffff");
    s_opt("200=bool:true", 200, 0, "01");
    s_opt("200=bool:off", 200, 0, "00");
    s_opt("200=hex:", 200, 0, "");
    s_opt("43=sub:1=text:abc;2=ip:198.18.0.1;3=hex:0a0b", 43, 0,
          "0103616263"
          "0204c6120001"
          "03020a0b");
    s_opt("125=sub:enterprise=3561;1=text:ab;2=u8:7", 125, 0,
          "00000de9"
          "07"
          "01026162"
          "020107");
    s_opt("125=sub:enterprise=1;1=u8:1;enterprise=2;1=u8:2", 125, 0,
          "00000001"
          "03"
          "010101"
          "00000002"
          "03"
          "010102");
    /* text is taken as written, backslashes included (WDS boot files) */
    s_opt("67=boot\\x86\\wdsnbp.com", 67, 0, "626f6f745c7838365c7764736e62702e636f6d");
}

static void test_defaults(void **state)
{
    (void)state;
    s_opt("1=255.255.255.0", 1, 0, "ffffff00");
    s_opt("3=198.18.0.1", 3, 0, "c6120001");
    s_opt("6=198.18.0.2,198.18.0.3", 6, 0, "c6120002c6120003");
    s_opt("15=example.com", 15, 0, "6578616d706c652e636f6d");
    s_opt("42=198.18.0.9", 42, 0, "c6120009");
    s_opt("43=0a0b", 43, 0, "0a0b");
    s_opt("51=86400", 51, 0, "00015180");
    s_opt("58=43200", 58, 0, "0000a8c0");
    s_opt("59=75600", 59, 0, "00012750");
    s_opt("66=http://prov.example/", 66, 0, "687474703a2f2f70726f762e6578616d706c652f");
    s_opt("67=SEP.cnf", 67, 0, "5345502e636e66");
    s_opt("150=198.18.0.1", 150, 0, "c6120001");
    s_opt("160=https://p/x", 160, 0, "68747470733a2f2f702f78");
    s_opt("242=HTTPSRVR=198.18.0.1", 242, 0, "48545450535256523d3139382e31382e302e31");
    /* an explicit type wins over the default */
    s_opt("66=ip:198.18.0.1", 66, 0, "c6120001");
    s_opt("43=sub:241=ip:198.18.0.5", 43, 0, "f104c6120005");
}

static void test_server_fill(void **state)
{
    (void)state;
    s_opt("150=@server", 150, DHCPOPT_FILL_SERVER_IP, "");
    s_opt("66=@server", 66, DHCPOPT_FILL_SERVER_IP_TEXT, "");
    s_opt("200=ip:@server", 200, DHCPOPT_FILL_SERVER_IP, "");
    s_opt("200=text:@server", 200, DHCPOPT_FILL_SERVER_IP_TEXT, "");
    s_opt("66=text:@server/x", 66, 0, "407365727665722f78"); /* only the whole value */
    s_bad("200=u32:@server", "@server is only for ip and text");
    s_bad("43=@server", "@server is only for ip and text");
    s_bad("43=sub:1=ip:@server", "@server is only allowed as a whole");
    s_bad("1=@server", "makes no sense");
}

static void test_refusals(void **state)
{
    (void)state;
    s_bad("", "invalid option ''");
    s_bad("66", "CODE=VALUE");
    s_bad("x=1", "code 'x' is not a number from 1 to 254");
    s_bad("-1=1", "is not a number");
    s_bad("066=x", "is not a number"); /* no leading zeros */
    s_bad("256=hex:00", "is not a number from 1 to 254");
    s_bad("0=hex:00", "option 0 is padding");
    s_bad("255=hex:00", "option 255 marks the end");
    s_bad("53=u8:1", "option 53 (message type) is set by the DHCP server");
    s_bad("54=198.18.0.1", "option 54 (server identifier)");
    s_bad("55=hex:01", "option 55");
    s_bad("61=hex:01", "option 61");
    s_bad("82=hex:01", "option 82");
    s_bad("52=u8:1", "option 52");
    s_bad("200=abc", "option 200 needs a TYPE");
    s_bad("200=zz:abc", "option 200 needs a TYPE");
    s_bad("66=", "option 66: empty value");
    s_bad("66=text:", "empty value");
    s_bad("43=", "empty value");
    s_bad("150=198.18.0", "'198.18.0' is not an IPv4 address");
    s_bad("150=198.18.0.256", "is not an IPv4 address");
    s_bad("150=198.18.0.01", "is not an IPv4 address");
    s_bad("150=198.18.0.1,", "'' is not an IPv4 address");
    s_bad("150=198.18.0.1, 198.18.0.2", "' 198.18.0.2' is not an IPv4 address");
    s_bad("43=hex:0a0", "is not hex byte pairs");
    s_bad("43=hex:0a::0b", "is not hex byte pairs");
    s_bad("43=hex:0a:", "ends with ':'");
    s_bad("43=hex:zz", "is not hex byte pairs");
    s_bad("200=u8:256", "is not a decimal number from 0 to 255");
    s_bad("200=u16:65536", "from 0 to 65535");
    s_bad("200=u32:4294967296", "from 0 to 4294967295");
    s_bad("200=u32:-1", "is not a decimal number");
    s_bad("200=bool:maybe", "is not a boolean");
    s_bad("51=u16:5", "option 51: must be exactly 4 bytes");
    s_bad("1=255.255.255.0,255.0.0.0", "option 1: must be exactly 4 bytes");
    s_bad("66=text:caf\xc3\xa9", "printable");
    s_bad("66=tab\there", "printable");
    s_bad("200=sub:1=u8:1", "sub: is for options 43 and 125");
    s_bad("43=sub:", "empty sub-option list");
    s_bad("43=sub:1=abc", "sub-option 1 needs a TYPE");
    s_bad("43=sub:1=sub:2=u8:1", "needs a TYPE");
    s_bad("43=sub:1=u8:1;", "is not CODE=TYPE:VALUE");
    s_bad("43=sub:0=u8:1", "sub-option code '0'");
    s_bad("43=sub:1=u8:1;1=u8:2", "sub-option 1 given twice");
    s_bad("43=sub:enterprise=5;1=u8:1", "enterprise= is only for option 125");
    s_bad("125=sub:1=u8:1", "must follow enterprise=N");
    s_bad("125=sub:enterprise=x;1=u8:1", "enterprise 'x' is not a number");
    s_bad("125=hex:0102", "needs enterprise=N");
}

static void test_length_limits(void **state)
{
    (void)state;
    char spec[DHCPOPT_SPEC_MAX + 16];
    /* 255 bytes of text: fine; 256: refused */
    snprintf(spec, sizeof spec, "66=");
    memset(spec + 3, 'a', 255);
    spec[3 + 255] = '\0';
    struct dhcpopt o;
    char err[256];
    assert_int_equal(dhcpopt_parse(spec, &o, err, sizeof err), 0);
    assert_int_equal(o.len, 255);
    spec[3 + 255] = 'a';
    spec[3 + 256] = '\0';
    s_bad(spec, "option 66: value longer than 255 bytes");
    /* 63 addresses fit (252 bytes), 64 do not */
    size_t off = (size_t)snprintf(spec, sizeof spec, "6=");
    for (int i = 0; i < 64; i++)
        off += (size_t)snprintf(spec + off, sizeof spec - off, "%s10.0.0.%d", i ? "," : "", i);
    s_bad(spec, "value longer than 255 bytes");
    /* a sub-option list that overflows */
    off = (size_t)snprintf(spec, sizeof spec, "43=sub:");
    for (int i = 1; i <= 40; i++)
        off += (size_t)snprintf(spec + off, sizeof spec - off, "%s%d=text:abcdefgh",
                                i > 1 ? ";" : "", i);
    s_bad(spec, "option 43");
    /* specs past DHCPOPT_SPEC_MAX are refused before parsing */
    memset(spec, '1', sizeof spec - 1);
    spec[sizeof spec - 1] = '\0';
    s_bad(spec, "invalid option");
}

/* Parses a rule and expects kind, flags and value (hex). */
static void s_rule(const char *spec, int kind, int ignore_nul, uint32_t ent, const char *hex)
{
    struct dhcpopt_rule r;
    char err[256] = "", got[2 * DHCPOPT_VALUE_MAX + 1] = "";
    if (dhcpopt_rule_parse(spec, &r, err, sizeof err) != 0)
        fail_msg("'%s' refused: %s", spec, err);
    for (size_t i = 0; i < r.len; i++)
        snprintf(got + 2 * i, 3, "%02x", r.value[i]);
    if (r.kind != kind || r.ignore_trailing_nul != ignore_nul || r.enterprise != ent ||
        strcmp(got, hex) != 0)
        fail_msg("'%s': kind %u nul %u ent %u value %s", spec, r.kind, r.ignore_trailing_nul,
                 r.enterprise, got);
}

static void s_rule_bad(const char *spec, const char *want)
{
    struct dhcpopt_rule r;
    char err[256] = "";
    assert_int_equal(dhcpopt_rule_parse(spec, &r, err, sizeof err), -EINVAL);
    if (strstr(err, want) == NULL)
        fail_msg("'%s': message '%s' lacks '%s'", spec, err, want);
    assert_null(strchr(err, '\n'));
}

static void test_rules(void **state)
{
    (void)state;
    /* without a trailing NUL the device's one NUL is ignored; with it, exact */
    s_rule("vendor:Cisco Systems, Inc. IP Phone", DHCPOPT_RULE_VENDOR_EXACT, 1, 0,
           "436973636f2053797374656d732c20496e632e2049502050686f6e65");
    s_rule("vendor:Cisco Systems, Inc. IP Phone\\0", DHCPOPT_RULE_VENDOR_EXACT, 0, 0,
           "436973636f2053797374656d732c20496e632e2049502050686f6e6500");
    s_rule("vendor-prefix:digium_D40", DHCPOPT_RULE_VENDOR_PREFIX, 1, 0, "64696769756d5f443430");
    s_rule("vendor-substring:CP-79", DHCPOPT_RULE_VENDOR_SUBSTRING, 1, 0, "43502d3739");
    s_rule("vendor-suffix:CP-7941G\\x00", DHCPOPT_RULE_VENDOR_SUFFIX, 0, 0,
           "43502d3739343147"
           "00");
    s_rule("vendor:a\\\\b\\x7e", DHCPOPT_RULE_VENDOR_EXACT, 1, 0, "615c627e");
    s_rule("vendor:a\\0b", DHCPOPT_RULE_VENDOR_EXACT, 1, 0, "610062"); /* NUL inside only */
    s_rule("user-class:iPXE", DHCPOPT_RULE_USER_CLASS, 0, 0, "69505845");
    s_rule("oui:00:04:f2", DHCPOPT_RULE_MAC_OUI, 0, 0, "0004f2");
    s_rule("oui:00-04-F2", DHCPOPT_RULE_MAC_OUI, 0, 0, "0004f2");
    s_rule("oui:0004f2", DHCPOPT_RULE_MAC_OUI, 0, 0, "0004f2");
    s_rule("enterprise:13885", DHCPOPT_RULE_ENTERPRISE, 0, 13885, "");
    s_rule("enterprise:4294967295", DHCPOPT_RULE_ENTERPRISE, 0, 4294967295u, "");
    /* a colon inside the value is part of it */
    s_rule("vendor:a:b", DHCPOPT_RULE_VENDOR_EXACT, 1, 0, "613a62");
    assert_string_equal(dhcpopt_rule_kind_name(DHCPOPT_RULE_VENDOR_SUFFIX), "vendor-suffix");
    assert_string_equal(dhcpopt_rule_kind_name(99), "?");
    assert_string_equal(dhcpopt_fill_name(DHCPOPT_FILL_SERVER_IP_TEXT), "server-ip-text");

    s_rule_bad("", "invalid match rule ''");
    s_rule_bad("vendor", "invalid match rule");
    s_rule_bad("Vendor:x", "KIND one of vendor");
    s_rule_bad("model:x", "invalid match rule 'model:x'");
    s_rule_bad("vendor:", "empty value");
    s_rule_bad("user-class:", "empty value");
    s_rule_bad("vendor:a\\q", "bad escape");
    s_rule_bad("vendor:a\\", "bad escape");
    s_rule_bad("vendor:a\\x4", "bad escape");
    s_rule_bad("vendor:a\\xzz", "bad escape");
    s_rule_bad("vendor:caf\xc3\xa9", "printable ASCII");
    s_rule_bad("oui:00:04", "not three hex bytes");
    s_rule_bad("oui:00:04:f2:11", "not three hex bytes");
    s_rule_bad("oui:00:04-f2", "not three hex bytes");
    s_rule_bad("oui:zz:04:f2", "not three hex bytes");
    s_rule_bad("enterprise:0", "not an enterprise number");
    s_rule_bad("enterprise:4294967296", "not an enterprise number");
    s_rule_bad("enterprise:abc", "not an enterprise number");
    /* 255 bytes after unescaping fit, 256 do not */
    char spec[1100];
    size_t off = (size_t)snprintf(spec, sizeof spec, "vendor:");
    for (int i = 0; i < 255; i++)
        off += (size_t)snprintf(spec + off, sizeof spec - off, "\\x41");
    char want[2 * 255 + 1];
    for (int i = 0; i < 255; i++)
        memcpy(want + 2 * i, "41", 2);
    want[2 * 255] = '\0';
    s_rule(spec, DHCPOPT_RULE_VENDOR_EXACT, 1, 0, want);
    snprintf(spec + off, sizeof spec - off, "A");
    s_rule_bad(spec, "longer than 255 bytes");
}

static void test_ip_and_cidr(void **state)
{
    (void)state;
    uint32_t ip, net;
    int prefix;
    char buf[16];
    assert_int_equal(dhcpopt_ip_parse("198.18.0.1", &ip), 0);
    assert_int_equal(ip, 0xc6120001u);
    dhcpopt_ip_format(ip, buf);
    assert_string_equal(buf, "198.18.0.1");
    assert_int_equal(dhcpopt_ip_parse("0.0.0.0", &ip), 0);
    assert_int_equal(dhcpopt_ip_parse("255.255.255.255", &ip), 0);
    assert_int_equal(ip, 0xffffffffu);
    const char *bad[] = {"",         "1.2.3",  "1.2.3.4.5", "1.2.3.256", "01.2.3.4",   "1.2.3.4 ",
                         " 1.2.3.4", "1..3.4", "a.b.c.d",   "1.2.3.-4",  "1.2.3.4/24", NULL};
    for (int i = 0; bad[i]; i++)
        if (dhcpopt_ip_parse(bad[i], &ip) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);
    assert_int_equal(dhcpopt_ip_parse(NULL, &ip), -EINVAL);

    assert_int_equal(dhcpopt_cidr_parse("198.18.0.0/24", 8, &net, &prefix), 0);
    assert_int_equal(net, 0xc6120000u);
    assert_int_equal(prefix, 24);
    assert_int_equal(dhcpopt_cidr_parse("10.0.0.0/8", 8, &net, &prefix), 0);
    assert_int_equal(dhcpopt_cidr_parse("198.18.0.4/30", 8, &net, &prefix), 0);
    assert_int_equal(dhcpopt_cidr_parse("198.18.0.5/24", 8, &net, &prefix), -EDOM);
    assert_int_equal(net, 0xc6120000u);
    const char *badc[] = {"198.18.0.0",    "198.18.0.0/", "198.18.0.0/31",
                          "198.18.0.0/32", "10.0.0.0/7",  "198.18.0.0/024",
                          "198.18.0.0/2a", "/24",         NULL};
    for (int i = 0; badc[i]; i++)
        if (dhcpopt_cidr_parse(badc[i], 8, &net, &prefix) != -EINVAL)
            fail_msg("'%s' accepted", badc[i]);
}

static void test_pack_roundtrip(void **state)
{
    (void)state;
    const char *specs[] = {"66=@server", "150=198.18.0.1,198.18.0.2", "43=sub:1=text:x",
                           "200=hex:"};
    uint8_t buf[4 * DHCPOPT_PACKED_MAX];
    size_t len = 0;
    struct dhcpopt in[4], out;
    char err[256];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(dhcpopt_parse(specs[i], &in[i], err, sizeof err), 0);
        len += dhcpopt_pack(&in[i], buf + len);
    }
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(dhcpopt_unpack(buf, len, &off, &out), 1);
        assert_int_equal(out.code, in[i].code);
        assert_int_equal(out.fill, in[i].fill);
        assert_int_equal(out.len, in[i].len);
        assert_memory_equal(out.value, in[i].value, out.len);
    }
    assert_int_equal(dhcpopt_unpack(buf, len, &off, &out), 0);
    /* every truncation is refused, never read past the end */
    for (size_t cut = 1; cut < len; cut++) {
        size_t o = 0;
        int rc;
        while ((rc = dhcpopt_unpack(buf, cut, &o, &out)) == 1)
            ;
        assert_true(rc == 0 || rc == -EINVAL);
        assert_true(o <= cut);
    }
    uint8_t badfill[] = {66, 7, 0};
    off = 0;
    assert_int_equal(dhcpopt_unpack(badfill, sizeof badfill, &off, &out), -EINVAL);

    struct dhcpopt_rule r[3], ro;
    const char *rules[] = {"vendor:abc\\0", "enterprise:13885", "oui:00:04:f2"};
    len = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dhcpopt_rule_parse(rules[i], &r[i], err, sizeof err), 0);
        len += dhcpopt_rule_pack(&r[i], buf + len);
    }
    off = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dhcpopt_rule_unpack(buf, len, &off, &ro), 1);
        assert_int_equal(ro.kind, r[i].kind);
        assert_int_equal(ro.ignore_trailing_nul, r[i].ignore_trailing_nul);
        assert_int_equal(ro.enterprise, r[i].enterprise);
        assert_int_equal(ro.len, r[i].len);
        assert_memory_equal(ro.value, r[i].value, ro.len);
    }
    assert_int_equal(dhcpopt_rule_unpack(buf, len, &off, &ro), 0);
    for (size_t cut = 1; cut < len; cut++) {
        size_t o = 0;
        int rc;
        while ((rc = dhcpopt_rule_unpack(buf, cut, &o, &ro)) == 1)
            ;
        assert_true(rc == 0 || rc == -EINVAL);
        assert_true(o <= cut);
    }
    uint8_t badkind[] = {9, 0, 0, 0, 0, 0, 0};
    off = 0;
    assert_int_equal(dhcpopt_rule_unpack(badkind, sizeof badkind, &off, &ro), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),         cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_server_fill),   cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_length_limits), cmocka_unit_test(test_rules),
        cmocka_unit_test(test_ip_and_cidr),   cmocka_unit_test(test_pack_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
