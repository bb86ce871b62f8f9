/* test_sign.c: image signatures (lib/sign.h): sign/verify round trip, every
 * bound field (sha256, size, name) changes the outcome, trust-set verdicts
 * and their reasons, key file parsing (comments, blanks, damage), and that a
 * secret key file whose public half does not match its seed is refused;
 * profile signatures over the JSON text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sign.h"
#include "util.h"

static uint8_t s_sha[32];

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 32; i++)
        s_sha[i] = (uint8_t)(i * 7 + 1);
    return sign_init();
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t pk[SIGN_PK_LEN], sk[SIGN_SK_LEN], pk2[SIGN_PK_LEN], sig[SIGN_SIG_LEN];
    assert_int_equal(sign_keypair(pk, sk), 0);
    sign_sk_to_pk(sk, pk2);
    assert_memory_equal(pk, pk2, SIGN_PK_LEN);
    assert_int_equal(sign_image(sk, s_sha, 1234, "P0S3-08-12-00.loads", sig), 0);
    assert_int_equal(sign_image_verify(pk, sig, s_sha, 1234, "P0S3-08-12-00.loads"), 0);
    /* each bound field matters */
    uint8_t other[32];
    memcpy(other, s_sha, 32);
    other[31] ^= 1;
    assert_int_equal(sign_image_verify(pk, sig, other, 1234, "P0S3-08-12-00.loads"), -EBADMSG);
    assert_int_equal(sign_image_verify(pk, sig, s_sha, 1235, "P0S3-08-12-00.loads"), -EBADMSG);
    assert_int_equal(sign_image_verify(pk, sig, s_sha, 1234, "P0S3-08-12-00.loadS"), -EBADMSG);
    assert_int_equal(sign_image_verify(pk, sig, s_sha, 1234, "P0S3-08-12-00.loads "), -EBADMSG);
    uint8_t bad[SIGN_SIG_LEN];
    memcpy(bad, sig, sizeof bad);
    bad[5] ^= 0x40;
    assert_int_equal(sign_image_verify(pk, bad, s_sha, 1234, "P0S3-08-12-00.loads"), -EBADMSG);
    /* another key does not verify it */
    uint8_t pkb[SIGN_PK_LEN], skb[SIGN_SK_LEN];
    assert_int_equal(sign_keypair(pkb, skb), 0);
    assert_int_equal(sign_image_verify(pkb, sig, s_sha, 1234, "P0S3-08-12-00.loads"), -EBADMSG);
    /* an empty name is allowed, a too long one is not */
    assert_int_equal(sign_image(sk, s_sha, 0, "", sig), 0);
    assert_int_equal(sign_image_verify(pk, sig, s_sha, 0, ""), 0);
    char longname[SIGN_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(sign_image(sk, s_sha, 0, longname, sig), -EINVAL);
    sign_wipe(sk, sizeof sk);
    sign_wipe(skb, sizeof skb);
}

static void test_trust(void **state)
{
    (void)state;
    uint8_t keys[2][SIGN_PK_LEN], sk[2][SIGN_SK_LEN], sig[SIGN_SIG_LEN];
    uint8_t opk[SIGN_PK_LEN], osk[SIGN_SK_LEN], osig[SIGN_SIG_LEN];
    assert_int_equal(sign_keypair(keys[0], sk[0]), 0);
    assert_int_equal(sign_keypair(keys[1], sk[1]), 0);
    assert_int_equal(sign_keypair(opk, osk), 0);
    assert_int_equal(sign_image(sk[1], s_sha, 10, "a.bin", sig), 0);
    assert_int_equal(sign_image(osk, s_sha, 10, "a.bin", osig), 0);
    const uint8_t(*k)[SIGN_PK_LEN] = (const uint8_t(*)[SIGN_PK_LEN])keys;
    const char *why = NULL;
    /* signed by the second trusted key, signer named or not */
    assert_int_equal(sign_trust_verify(k, 2, keys[1], 32, sig, 64, s_sha, 10, "a.bin", &why), 0);
    assert_string_equal(why, "ok");
    assert_int_equal(sign_trust_verify(k, 2, NULL, 0, sig, 64, s_sha, 10, "a.bin", &why), 0);
    /* unsigned */
    assert_int_equal(sign_trust_verify(k, 2, NULL, 0, NULL, 0, s_sha, 10, "a.bin", &why), -EPERM);
    assert_string_equal(why, "unsigned");
    /* malformed lengths */
    assert_int_equal(sign_trust_verify(k, 2, NULL, 0, sig, 63, s_sha, 10, "a.bin", &why), -EPERM);
    assert_string_equal(why, "malformed");
    assert_int_equal(sign_trust_verify(k, 2, keys[1], 31, sig, 64, s_sha, 10, "a.bin", &why),
                     -EPERM);
    assert_string_equal(why, "malformed");
    /* a key outside the set, named */
    assert_int_equal(sign_trust_verify(k, 2, opk, 32, osig, 64, s_sha, 10, "a.bin", &why), -EPERM);
    assert_string_equal(why, "untrusted_key");
    /* ... or not named */
    assert_int_equal(sign_trust_verify(k, 2, NULL, 0, osig, 64, s_sha, 10, "a.bin", &why), -EPERM);
    assert_string_equal(why, "bad_signature");
    /* a trusted signer named, but the signature is another key's */
    assert_int_equal(sign_trust_verify(k, 2, keys[0], 32, sig, 64, s_sha, 10, "a.bin", &why),
                     -EPERM);
    assert_string_equal(why, "bad_signature");
    /* renamed: the same bytes under another name are refused */
    assert_int_equal(sign_trust_verify(k, 2, keys[1], 32, sig, 64, s_sha, 10, "b.bin", &why),
                     -EPERM);
    assert_string_equal(why, "bad_signature");
    /* an empty set verifies nothing */
    assert_int_equal(sign_trust_verify(k, 0, keys[1], 32, sig, 64, s_sha, 10, "a.bin", &why),
                     -EPERM);
    assert_string_equal(why, "untrusted_key");
}

/* Profiles: the JSON text byte for byte; an image signature is no profile
 * signature (domain separation) and the reasons match the images'. */
static void test_profile(void **state)
{
    (void)state;
    uint8_t pk[SIGN_PK_LEN], sk[SIGN_SK_LEN], sig[SIGN_SIG_LEN];
    uint8_t keys[2][SIGN_PK_LEN], skb[SIGN_SK_LEN];
    assert_int_equal(sign_keypair(pk, sk), 0);
    assert_int_equal(sign_keypair(keys[1], skb), 0);
    memcpy(keys[0], pk, SIGN_PK_LEN);
    static const char json[] = "{\"name\": \"yealink\", \"recognise\": [\"prefix:yealink\"]}";
    size_t n = strlen(json);
    const char *why = NULL;
    assert_int_equal(sign_profile(sk, json, n, sig), 0);
    assert_int_equal(sign_trust_verify_profile((const uint8_t(*)[SIGN_PK_LEN])keys, 2, pk,
                                               SIGN_PK_LEN, sig, SIGN_SIG_LEN, json, n, &why),
                     0);
    assert_string_equal(why, "ok");
    /* one byte more or changed: bad_signature */
    char t[sizeof json + 1];
    memcpy(t, json, sizeof json);
    t[10] = 'Y';
    assert_int_equal(sign_trust_verify_profile((const uint8_t(*)[SIGN_PK_LEN])keys, 2, pk,
                                               SIGN_PK_LEN, sig, SIGN_SIG_LEN, t, n, &why),
                     -EPERM);
    assert_string_equal(why, "bad_signature");
    memcpy(t, json, sizeof json);
    strcat(t, " ");
    assert_int_equal(sign_trust_verify_profile((const uint8_t(*)[SIGN_PK_LEN])keys, 2, pk,
                                               SIGN_PK_LEN, sig, SIGN_SIG_LEN, t, n + 1, &why),
                     -EPERM);
    /* unsigned, untrusted signer, malformed */
    assert_int_equal(sign_trust_verify_profile((const uint8_t(*)[SIGN_PK_LEN])keys, 2, NULL, 0,
                                               NULL, 0, json, n, &why),
                     -EPERM);
    assert_string_equal(why, "unsigned");
    assert_int_equal(sign_trust_verify_profile((const uint8_t(*)[SIGN_PK_LEN])keys + 1, 1, pk,
                                               SIGN_PK_LEN, sig, SIGN_SIG_LEN, json, n, &why),
                     -EPERM);
    assert_string_equal(why, "untrusted_key");
    assert_int_equal(sign_trust_verify_profile((const uint8_t(*)[SIGN_PK_LEN])keys, 2, pk,
                                               SIGN_PK_LEN, sig, 10, json, n, &why),
                     -EPERM);
    assert_string_equal(why, "malformed");
    /* an image signature over the same bytes' hash is not a profile one */
    uint8_t isig[SIGN_SIG_LEN];
    assert_int_equal(sign_image(sk, s_sha, n, "", isig), 0);
    assert_int_equal(sign_trust_verify_profile((const uint8_t(*)[SIGN_PK_LEN])keys, 2, pk,
                                               SIGN_PK_LEN, isig, SIGN_SIG_LEN, json, n, &why),
                     -EPERM);
    sign_wipe(sk, sizeof sk);
    sign_wipe(skb, sizeof skb);
}

static void test_parse(void **state)
{
    (void)state;
    uint8_t pk[SIGN_PK_LEN], sk[SIGN_SK_LEN], got[SIGN_PK_LEN], gsk[SIGN_SK_LEN];
    assert_int_equal(sign_keypair(pk, sk), 0);
    char hex[SIGN_SK_HEX + 1], text[400];
    util_hex(pk, SIGN_PK_LEN, hex);
    snprintf(text, sizeof text, "# a comment\n\n  %s \r\n", hex);
    assert_int_equal(sign_parse_pub(text, strlen(text), got), 0);
    assert_memory_equal(pk, got, SIGN_PK_LEN);
    for (char *p = text; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(sign_parse_pub(text, strlen(text), got), 0); /* either case */
    assert_memory_equal(pk, got, SIGN_PK_LEN);
    assert_int_equal(sign_parse_pub(hex, 63, got), -EINVAL);
    assert_int_equal(sign_parse_pub("# only a comment\n", 17, got), -EINVAL);
    assert_int_equal(sign_parse_pub("", 0, got), -EINVAL);
    snprintf(text, sizeof text, "%.63sg\n", hex);
    assert_int_equal(sign_parse_pub(text, strlen(text), got), -EINVAL);
    /* a secret key is not a public key, nor the reverse */
    util_hex(sk, SIGN_SK_LEN, hex);
    assert_int_equal(sign_parse_pub(hex, strlen(hex), got), -EINVAL);
    assert_int_equal(sign_parse_secret(hex, strlen(hex), gsk), 0);
    assert_memory_equal(sk, gsk, SIGN_SK_LEN);
    /* damaged: the stored public half no longer matches the seed */
    hex[SIGN_SK_HEX - 1] = hex[SIGN_SK_HEX - 1] == '0' ? '1' : '0';
    assert_int_equal(sign_parse_secret(hex, strlen(hex), gsk), -EINVAL);
    char id[SIGN_ID_HEX + 1];
    sign_key_id(pk, id);
    assert_int_equal(strlen(id), SIGN_ID_HEX);
    util_hex(pk, SIGN_PK_LEN, hex);
    assert_memory_equal(id, hex, SIGN_ID_HEX);
    sign_wipe(sk, sizeof sk);
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/sign-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char kp[64], pp[64], hex[SIGN_SK_HEX + 2];
    snprintf(kp, sizeof kp, "%s/k.key", dir);
    snprintf(pp, sizeof pp, "%s/k.pub", dir);
    uint8_t pk[SIGN_PK_LEN], sk[SIGN_SK_LEN], rpk[SIGN_PK_LEN], rsk[SIGN_SK_LEN];
    assert_int_equal(sign_keypair(pk, sk), 0);
    util_hex(sk, SIGN_SK_LEN, hex);
    strcat(hex, "\n");
    assert_int_equal(util_write_file_atomic(kp, hex, strlen(hex), 0600), 0);
    util_hex(pk, SIGN_PK_LEN, hex);
    strcat(hex, "\n");
    assert_int_equal(util_write_file_atomic(pp, hex, strlen(hex), 0644), 0);
    assert_int_equal(sign_read_pub(pp, rpk), 0);
    assert_memory_equal(pk, rpk, SIGN_PK_LEN);
    assert_int_equal(sign_read_secret(kp, rsk), 0);
    assert_memory_equal(sk, rsk, SIGN_SK_LEN);
    assert_int_equal(sign_read_pub(kp, rpk), -EINVAL);
    assert_int_equal(sign_read_secret(pp, rsk), -EINVAL);
    char missing[80];
    snprintf(missing, sizeof missing, "%s/none.pub", dir);
    assert_int_equal(sign_read_pub(missing, rpk), -ENOENT);
    unlink(kp);
    unlink(pp);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_trust),
        cmocka_unit_test(test_profile),    cmocka_unit_test(test_parse),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
