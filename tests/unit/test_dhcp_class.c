/* test_dhcp_class.c: classification by MatchRule (siteagent/dhcp_class):
 * every match kind; option 60 with and without its trailing NUL, with
 * ignore_trailing_nul on and off; byte-exact values ending in NUL; option 77
 * raw and as RFC 3004 instances (and a malformed instance list); OUI;
 * RFC 3925 enterprise numbers in 124/125 (also truncated), Polycom's binary
 * option 60 and text that only looks like it; classes tried by priority with
 * ties in configuration order, first match wins, rule-less classes never
 * match, lookup by name; facts taken from a parsed message. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "dhcp_class.h"

#define K(x) FIRMFLEET__MATCH_RULE__KIND__##x

static Firmfleet__MatchRule s_rule(int kind, const void *v, size_t n, int ignore_nul)
{
    Firmfleet__MatchRule r = FIRMFLEET__MATCH_RULE__INIT;
    r.kind = (Firmfleet__MatchRule__Kind)kind;
    r.value.data = (uint8_t *)(uintptr_t)v;
    r.value.len = n;
    r.ignore_trailing_nul = ignore_nul;
    return r;
}

static struct dhcp_facts s_vendor(const void *v, size_t n)
{
    struct dhcp_facts f;
    memset(&f, 0, sizeof f);
    f.vendor.p = v;
    f.vendor.len = (uint16_t)n;
    return f;
}

#define STR(s) s, sizeof(s) - 1

static void test_vendor_exact_and_nul(void **state)
{
    (void)state;
    struct dhcp_facts with_nul = s_vendor(STR("Cisco Systems, Inc. IP Phone CP-7940G\0"));
    struct dhcp_facts without = s_vendor(STR("Cisco Systems, Inc. IP Phone CP-7940G"));
    Firmfleet__MatchRule ign =
        s_rule(K(VENDOR_EXACT), STR("Cisco Systems, Inc. IP Phone CP-7940G"), 1);
    Firmfleet__MatchRule raw =
        s_rule(K(VENDOR_EXACT), STR("Cisco Systems, Inc. IP Phone CP-7940G"), 0);
    Firmfleet__MatchRule exact_nul =
        s_rule(K(VENDOR_EXACT), STR("Cisco Systems, Inc. IP Phone CP-7940G\0"), 0);
    assert_true(dhcp_rule_match(&ign, &with_nul));
    assert_true(dhcp_rule_match(&ign, &without));
    assert_false(dhcp_rule_match(&raw, &with_nul));
    assert_true(dhcp_rule_match(&raw, &without));
    assert_true(dhcp_rule_match(&exact_nul, &with_nul));
    assert_false(dhcp_rule_match(&exact_nul, &without));
    /* only one trailing NUL is forgiven */
    struct dhcp_facts two = s_vendor(STR("Cisco Systems, Inc. IP Phone CP-7940G\0\0"));
    assert_false(dhcp_rule_match(&ign, &two));
    /* the old image's model-less string is not the new one */
    struct dhcp_facts old = s_vendor(STR("Cisco Systems, Inc. IP Phone\0"));
    assert_false(dhcp_rule_match(&ign, &old));
    /* absent option 60 matches no vendor rule, not even an empty one */
    struct dhcp_facts none;
    memset(&none, 0, sizeof none);
    Firmfleet__MatchRule empty = s_rule(K(VENDOR_PREFIX), "", 0, 1);
    assert_false(dhcp_rule_match(&empty, &none));
    assert_true(dhcp_rule_match(&empty, &old));
    Firmfleet__MatchRule empty_exact = s_rule(K(VENDOR_EXACT), "", 0, 1);
    struct dhcp_facts just_nul = s_vendor("\0", 1);
    assert_true(dhcp_rule_match(&empty_exact, &just_nul));
    assert_false(dhcp_rule_match(&empty_exact, &old));
}

static void test_vendor_prefix_substring_suffix(void **state)
{
    (void)state;
    struct dhcp_facts dig = s_vendor(STR("digium_D40_1_0_5_46476"));
    struct dhcp_facts c41 = s_vendor(STR("Cisco Systems, Inc. IP Phone CP-7941G\0"));
    struct dhcp_facts mpp = s_vendor(STR("CP-7841-3PCC\0"));
    Firmfleet__MatchRule pre = s_rule(K(VENDOR_PREFIX), STR("digium_D40"), 1);
    Firmfleet__MatchRule pre_long = s_rule(K(VENDOR_PREFIX), STR("digium_D40_1_0_5_46476_x"), 1);
    Firmfleet__MatchRule sub = s_rule(K(VENDOR_SUBSTRING), STR("IP Phone"), 1);
    Firmfleet__MatchRule sub_no = s_rule(K(VENDOR_SUBSTRING), STR("Wireless"), 1);
    Firmfleet__MatchRule suf = s_rule(K(VENDOR_SUFFIX), STR("CP-7941G"), 1);
    Firmfleet__MatchRule suf_nul = s_rule(K(VENDOR_SUFFIX), STR("CP-7941G\0"), 0);
    Firmfleet__MatchRule suf_raw = s_rule(K(VENDOR_SUFFIX), STR("CP-7941G"), 0);
    Firmfleet__MatchRule suf_mpp = s_rule(K(VENDOR_SUFFIX), STR("-3PCC"), 1);
    assert_true(dhcp_rule_match(&pre, &dig));
    assert_false(dhcp_rule_match(&pre, &c41));
    assert_false(dhcp_rule_match(&pre_long, &dig));
    assert_true(dhcp_rule_match(&sub, &c41));
    assert_false(dhcp_rule_match(&sub_no, &c41));
    assert_true(dhcp_rule_match(&suf, &c41));
    assert_true(dhcp_rule_match(&suf_nul, &c41));
    assert_false(dhcp_rule_match(&suf_raw, &c41)); /* the NUL is the last byte */
    assert_true(dhcp_rule_match(&suf_mpp, &mpp));
    /* substring at the very end, and a value longer than the option */
    Firmfleet__MatchRule sub_end = s_rule(K(VENDOR_SUBSTRING), STR("46476"), 1);
    assert_true(dhcp_rule_match(&sub_end, &dig));
    struct dhcp_facts tiny = s_vendor(STR("ab"));
    assert_false(dhcp_rule_match(&sub_end, &tiny));
    assert_false(dhcp_rule_match(&suf, &tiny));
    /* a NUL in the middle is just a byte */
    struct dhcp_facts mid = s_vendor(STR("ab\0cd"));
    Firmfleet__MatchRule sub_mid = s_rule(K(VENDOR_SUBSTRING), STR("b\0c"), 1);
    assert_true(dhcp_rule_match(&sub_mid, &mid));
}

static void test_user_class(void **state)
{
    (void)state;
    struct dhcp_facts f;
    memset(&f, 0, sizeof f);
    Firmfleet__MatchRule r = s_rule(K(USER_CLASS), STR("prov"), 1);
    assert_false(dhcp_rule_match(&r, &f)); /* absent */
    f.user.p = (const uint8_t *)"prov";
    f.user.len = 4;
    assert_true(dhcp_rule_match(&r, &f)); /* raw string */
    f.user.p = (const uint8_t *)"prov\0";
    f.user.len = 5;
    assert_true(dhcp_rule_match(&r, &f));
    Firmfleet__MatchRule exact = s_rule(K(USER_CLASS), STR("prov"), 0);
    assert_false(dhcp_rule_match(&exact, &f));
    /* RFC 3004: two instances, the second matches */
    f.user.p = (const uint8_t *)"\003abc\004prov";
    f.user.len = 9;
    assert_true(dhcp_rule_match(&r, &f));
    /* lengths that do not add up: raw comparison only */
    f.user.p = (const uint8_t *)"\003abc\011prov";
    f.user.len = 9;
    assert_false(dhcp_rule_match(&r, &f));
    f.user.p = (const uint8_t *)"\000prov";
    f.user.len = 5;
    assert_false(dhcp_rule_match(&r, &f));
    /* a raw value whose first byte looks like a length */
    f.user.p = (const uint8_t *)"\004prov";
    f.user.len = 5;
    Firmfleet__MatchRule whole = s_rule(K(USER_CLASS), STR("\004prov"), 0);
    assert_true(dhcp_rule_match(&whole, &f));
    assert_true(dhcp_rule_match(&r, &f));
}

static void test_oui(void **state)
{
    (void)state;
    static const uint8_t mac[6] = {0x00, 0x04, 0xf2, 0xaa, 0xbb, 0xcc};
    struct dhcp_facts f;
    memset(&f, 0, sizeof f);
    f.mac = mac;
    Firmfleet__MatchRule poly = s_rule(K(MAC_OUI), "\x00\x04\xf2", 3, 0);
    Firmfleet__MatchRule yea = s_rule(K(MAC_OUI), "\x00\x15\x65", 3, 0);
    Firmfleet__MatchRule bad = s_rule(K(MAC_OUI), "\x00\x04", 2, 0);
    assert_true(dhcp_rule_match(&poly, &f));
    assert_false(dhcp_rule_match(&yea, &f));
    assert_false(dhcp_rule_match(&bad, &f));
    f.mac = NULL; /* not Ethernet */
    assert_false(dhcp_rule_match(&poly, &f));
}

static void test_enterprise(void **state)
{
    (void)state;
    Firmfleet__MatchRule r = s_rule(K(ENTERPRISE), "", 0, 0);
    r.enterprise = 13885;
    Firmfleet__MatchRule model = s_rule(K(ENTERPRISE), STR("SoundPointIP-SPIP_601"), 0);
    model.enterprise = 13885;
    /* Polycom option 60: 00 00 36 3d, length, sub-options */
    static const uint8_t poly60[] = {0x00, 0x00, 0x36, 0x3d, 0x18, 0x01, 0x07, 'P', 'o', 'l',
                                     'y',  'c',  'o',  'm',  0x02, 0x15, 'S',  'o', 'u', 'n',
                                     'd',  'P',  'o',  'i',  'n',  't',  'I',  'P', '-'};
    struct dhcp_facts f = s_vendor(poly60, sizeof poly60);
    assert_true(dhcp_rule_match(&r, &f));
    assert_false(dhcp_rule_match(&model, &f)); /* the model text is cut short */
    Firmfleet__MatchRule part = s_rule(K(ENTERPRISE), STR("SoundPoint"), 0);
    part.enterprise = 13885;
    assert_true(dhcp_rule_match(&part, &f));
    r.enterprise = 9;
    assert_false(dhcp_rule_match(&r, &f));
    r.enterprise = 13885;
    /* the length byte claims more than there is: the enterprise still
     * matches, a value is searched only in what is there */
    static const uint8_t poly_bad[] = {0x00, 0x00, 0x36, 0x3d, 0x40, 0x01, 0x02, 'x', 'y'};
    struct dhcp_facts fb = s_vendor(poly_bad, sizeof poly_bad);
    assert_true(dhcp_rule_match(&r, &fb));
    Firmfleet__MatchRule xyz = s_rule(K(ENTERPRISE), STR("xyz"), 0);
    xyz.enterprise = 13885;
    assert_false(dhcp_rule_match(&xyz, &fb));
    /* ... and a shorter length byte bounds the search */
    static const uint8_t poly_short[] = {0x00, 0x00, 0x36, 0x3d, 0x02, 'x', 'y', 'z'};
    struct dhcp_facts fs = s_vendor(poly_short, sizeof poly_short);
    assert_true(dhcp_rule_match(&r, &fs));
    assert_false(dhcp_rule_match(&xyz, &fs));
    /* four bytes only */
    struct dhcp_facts f4 = s_vendor(poly60, 4);
    assert_false(dhcp_rule_match(&r, &f4));
    /* text is never read as an enterprise number */
    struct dhcp_facts txt = s_vendor(STR("Cisco AP c1240"));
    r.enterprise = 0x43697363; /* "Cisc" */
    assert_false(dhcp_rule_match(&r, &txt));
    r.enterprise = 13885;
    /* option 124: two entries, the second is ours */
    static const uint8_t vivc[] = {0x00, 0x00, 0x00, 0x09, 0x02, 'a', 'b', 0x00,
                                   0x00, 0x36, 0x3d, 0x03, 'x',  'y', 'z'};
    struct dhcp_facts f124;
    memset(&f124, 0, sizeof f124);
    f124.vivc.p = vivc;
    f124.vivc.len = sizeof vivc;
    assert_true(dhcp_rule_match(&r, &f124));
    Firmfleet__MatchRule xy = s_rule(K(ENTERPRISE), STR("yz"), 0);
    xy.enterprise = 13885;
    assert_true(dhcp_rule_match(&xy, &f124));
    xy.enterprise = 9;
    assert_false(dhcp_rule_match(&xy, &f124)); /* "yz" is not in enterprise 9's data */
    /* truncated: the second entry's data runs past the option */
    f124.vivc.len = sizeof vivc - 1;
    assert_false(dhcp_rule_match(&r, &f124));
    /* option 125 */
    struct dhcp_facts f125;
    memset(&f125, 0, sizeof f125);
    f125.vivso.p = vivc + 7;
    f125.vivso.len = 8;
    assert_true(dhcp_rule_match(&r, &f125));
    f125.vivso.len = 4;
    assert_false(dhcp_rule_match(&r, &f125));
}

static void test_classes_priority(void **state)
{
    (void)state;
    Firmfleet__MatchRule cisco = s_rule(K(VENDOR_SUBSTRING), STR("Cisco"), 1);
    Firmfleet__MatchRule c7940 =
        s_rule(K(VENDOR_EXACT), STR("Cisco Systems, Inc. IP Phone CP-7940G"), 1);
    Firmfleet__MatchRule old = s_rule(K(VENDOR_EXACT), STR("Cisco Systems, Inc. IP Phone\0"), 0);
    Firmfleet__MatchRule *r_generic[] = {&cisco};
    Firmfleet__MatchRule *r_new[] = {&old, &c7940};
    Firmfleet__DeviceClass generic = FIRMFLEET__DEVICE_CLASS__INIT;
    Firmfleet__DeviceClass specific = FIRMFLEET__DEVICE_CLASS__INIT;
    Firmfleet__DeviceClass norules = FIRMFLEET__DEVICE_CLASS__INIT;
    Firmfleet__DeviceClass tie = FIRMFLEET__DEVICE_CLASS__INIT;
    generic.name = "cisco";
    generic.priority = 100;
    generic.rules = r_generic;
    generic.n_rules = 1;
    specific.name = "c79xx";
    specific.priority = 10;
    specific.rules = r_new;
    specific.n_rules = 2;
    norules.name = "pinned-only";
    norules.priority = -5;
    tie.name = "cisco-too";
    tie.priority = 100;
    tie.rules = r_generic;
    tie.n_rules = 1;
    Firmfleet__DeviceClass *list[] = {&generic, &tie, &specific, &norules};
    struct dhcp_classes cs;
    assert_int_equal(dhcp_classes_init(&cs, list, 4), 0);
    assert_int_equal(cs.n, 4);
    assert_string_equal(cs.v[0]->name, "pinned-only");
    assert_string_equal(cs.v[1]->name, "c79xx");
    assert_string_equal(cs.v[2]->name, "cisco"); /* ties keep configuration order */
    assert_string_equal(cs.v[3]->name, "cisco-too");
    struct dhcp_facts f = s_vendor(STR("Cisco Systems, Inc. IP Phone CP-7940G\0"));
    assert_ptr_equal(dhcp_classify(&cs, &f), &specific);
    f = s_vendor(STR("Cisco Systems, Inc. IP Phone\0"));
    assert_ptr_equal(dhcp_classify(&cs, &f), &specific); /* second rule of the class */
    f = s_vendor(STR("Cisco AP c1240"));
    assert_ptr_equal(dhcp_classify(&cs, &f), &generic);
    f = s_vendor(STR("snom320"));
    assert_null(dhcp_classify(&cs, &f));
    assert_ptr_equal(dhcp_class_by_name(&cs, "pinned-only"), &norules);
    assert_null(dhcp_class_by_name(&cs, "nope"));
    assert_null(dhcp_class_by_name(&cs, ""));
    dhcp_classes_free(&cs);
    assert_int_equal(dhcp_classes_init(&cs, NULL, 0), 0);
    assert_null(dhcp_classify(&cs, &f));
    dhcp_classes_free(&cs);
}

static void test_facts_from_message(void **state)
{
    (void)state;
    static uint8_t b[400];
    static struct dhcp_msg m;
    memset(b, 0, sizeof b);
    b[0] = 1, b[1] = 1, b[2] = 6;
    memcpy(b + 28, "\x00\x04\xf2\x01\x02\x03", 6);
    memcpy(b + 236, "\x63\x82\x53\x63", 4);
    size_t n = 240;
    b[n++] = 53, b[n++] = 1, b[n++] = 1;
    b[n++] = 60, b[n++] = 4, memcpy(b + n, "snom", 4), n += 4;
    b[n++] = 77, b[n++] = 2, b[n++] = 'u', b[n++] = 'c';
    b[n++] = 255;
    assert_int_equal(dhcp_parse(b, n, &m), 0);
    struct dhcp_facts f;
    dhcp_facts_from(&m, &f);
    assert_non_null(f.mac);
    assert_memory_equal(f.mac, "\x00\x04\xf2", 3);
    assert_int_equal(f.vendor.len, 4);
    assert_int_equal(f.user.len, 2);
    assert_null(f.vivc.p);
    assert_null(f.vivso.p);
    b[1] = 6; /* token ring: no MAC rules */
    assert_int_equal(dhcp_parse(b, n, &m), 0);
    dhcp_facts_from(&m, &f);
    assert_null(f.mac);
    /* a rule with a NULL value pointer but a length is malformed: no match */
    Firmfleet__MatchRule bad = s_rule(K(VENDOR_PREFIX), NULL, 3, 0);
    assert_false(dhcp_rule_match(&bad, &f));
    assert_false(dhcp_rule_match(NULL, &f));
    Firmfleet__MatchRule unknown = s_rule(42, STR("snom"), 0);
    assert_false(dhcp_rule_match(&unknown, &f));
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vendor_exact_and_nul),
        cmocka_unit_test(test_vendor_prefix_substring_suffix),
        cmocka_unit_test(test_user_class),
        cmocka_unit_test(test_oui),
        cmocka_unit_test(test_enterprise),
        cmocka_unit_test(test_classes_priority),
        cmocka_unit_test(test_facts_from_message),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
