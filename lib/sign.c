/* sign.c: see sign.h.
 *
 * Invariants: secret keys live only in caller buffers and in the transient
 * read buffer of sign_read_secret, which is wiped before it is freed; the
 * signed message is built in a stack buffer of fixed size (the name is
 * bounded by SIGN_NAME_MAX), so nothing here allocates while signing.
 */
#include "sign.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SIGN_DOMAIN "firmfleet-image-v1"
#define SIGN_MSG_MAX (sizeof SIGN_DOMAIN + 32 + 8 + SIGN_NAME_MAX)

int sign_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void sign_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        sodium_memzero(p, n);
}

int sign_keypair(uint8_t pk[SIGN_PK_LEN], uint8_t sk[SIGN_SK_LEN])
{
    return crypto_sign_keypair(pk, sk) == 0 ? 0 : -EIO;
}

void sign_sk_to_pk(const uint8_t sk[SIGN_SK_LEN], uint8_t pk[SIGN_PK_LEN])
{
    crypto_sign_ed25519_sk_to_pk(pk, sk);
}

/* The message for one image; its length, or 0 when name is too long. */
static size_t s_msg(const uint8_t sha[32], uint64_t size, const char *name,
                    uint8_t out[SIGN_MSG_MAX])
{
    size_t nl = name ? strlen(name) : 0;
    if (nl > SIGN_NAME_MAX)
        return 0;
    size_t o = 0;
    memcpy(out, SIGN_DOMAIN, sizeof SIGN_DOMAIN); /* with its NUL */
    o += sizeof SIGN_DOMAIN;
    memcpy(out + o, sha, 32);
    o += 32;
    for (int i = 7; i >= 0; i--)
        out[o++] = (uint8_t)(size >> (8 * i));
    if (nl)
        memcpy(out + o, name, nl);
    return o + nl;
}

int sign_image(const uint8_t sk[SIGN_SK_LEN], const uint8_t sha[32], uint64_t size,
               const char *name, uint8_t sig[SIGN_SIG_LEN])
{
    uint8_t m[SIGN_MSG_MAX];
    size_t n = s_msg(sha, size, name, m);
    if (n == 0)
        return -EINVAL;
    return crypto_sign_detached(sig, NULL, m, n, sk) == 0 ? 0 : -EINVAL;
}

int sign_image_verify(const uint8_t pk[SIGN_PK_LEN], const uint8_t sig[SIGN_SIG_LEN],
                      const uint8_t sha[32], uint64_t size, const char *name)
{
    uint8_t m[SIGN_MSG_MAX];
    size_t n = s_msg(sha, size, name, m);
    if (n == 0)
        return -EBADMSG;
    return crypto_sign_verify_detached(sig, m, n, pk) == 0 ? 0 : -EBADMSG;
}

#define SIGN_PROFILE_DOMAIN "firmfleet-profile-v1"
#define SIGN_PROFILE_MSG (sizeof SIGN_PROFILE_DOMAIN + 32 + 8)

static void s_profile_msg(const char *json, size_t len, uint8_t out[SIGN_PROFILE_MSG])
{
    size_t o = sizeof SIGN_PROFILE_DOMAIN;
    memcpy(out, SIGN_PROFILE_DOMAIN, o); /* with its NUL */
    crypto_hash_sha256(out + o, (const unsigned char *)json, len);
    o += 32;
    for (int i = 7; i >= 0; i--)
        out[o++] = (uint8_t)((uint64_t)len >> (8 * i));
}

int sign_profile(const uint8_t sk[SIGN_SK_LEN], const char *json, size_t len,
                 uint8_t sig[SIGN_SIG_LEN])
{
    uint8_t m[SIGN_PROFILE_MSG];
    s_profile_msg(json, len, m);
    return crypto_sign_detached(sig, NULL, m, sizeof m, sk) == 0 ? 0 : -EINVAL;
}

/* One checker for images (json NULL) and profiles. */
static int s_trust(const uint8_t (*keys)[SIGN_PK_LEN], size_t n, const uint8_t *signer,
                   size_t signer_len, const uint8_t *sig, size_t sig_len, const uint8_t sha[32],
                   uint64_t size, const char *name, const char *json, size_t len,
                   const char **reason);

int sign_trust_verify_profile(const uint8_t (*keys)[SIGN_PK_LEN], size_t n, const uint8_t *signer,
                              size_t signer_len, const uint8_t *sig, size_t sig_len,
                              const char *json, size_t len, const char **reason)
{
    return s_trust(keys, n, signer, signer_len, sig, sig_len, NULL, 0, NULL, json ? json : "", len,
                   reason);
}

int sign_trust_verify(const uint8_t (*keys)[SIGN_PK_LEN], size_t n, const uint8_t *signer,
                      size_t signer_len, const uint8_t *sig, size_t sig_len, const uint8_t sha[32],
                      uint64_t size, const char *name, const char **reason)
{
    return s_trust(keys, n, signer, signer_len, sig, sig_len, sha, size, name, NULL, 0, reason);
}

static int s_trust(const uint8_t (*keys)[SIGN_PK_LEN], size_t n, const uint8_t *signer,
                   size_t signer_len, const uint8_t *sig, size_t sig_len, const uint8_t sha[32],
                   uint64_t size, const char *name, const char *json, size_t len,
                   const char **reason)
{
    uint8_t pm[SIGN_PROFILE_MSG];
    if (json != NULL)
        s_profile_msg(json, len, pm);
    const char *why = "bad_signature";
    if (sig == NULL || sig_len == 0) {
        why = "unsigned";
    } else if (sig_len != SIGN_SIG_LEN || (signer_len != 0 && signer_len != SIGN_PK_LEN) ||
               (signer_len != 0 && signer == NULL)) {
        why = "malformed";
    } else {
        int known = signer_len == 0;
        for (size_t i = 0; i < n; i++) {
            if (signer_len != 0 && sodium_memcmp(keys[i], signer, SIGN_PK_LEN) != 0)
                continue;
            known = 1;
            if (json != NULL ? crypto_sign_verify_detached(sig, pm, sizeof pm, keys[i]) == 0
                             : sign_image_verify(keys[i], sig, sha, size, name) == 0) {
                if (reason)
                    *reason = "ok";
                return 0;
            }
        }
        if (!known)
            why = "untrusted_key";
    }
    if (reason)
        *reason = why;
    return -EPERM;
}

/* The first non-comment line of text, trimmed: [*b, *e). 0 or -EINVAL. */
static int s_line(const char *text, size_t len, const char **b, const char **e)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *s = p;
        while (s < le && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        const char *t = le;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
            t--;
        if (t > s && *s != '#') {
            *b = s;
            *e = t;
            return 0;
        }
        p = nl ? nl + 1 : end;
    }
    return -EINVAL;
}

static int s_parse_hex(const char *text, size_t len, uint8_t *out, size_t n)
{
    const char *b, *e;
    if (s_line(text, len, &b, &e) < 0 || (size_t)(e - b) != 2 * n)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = util_hexval((unsigned char)b[2 * i]),
            lo = util_hexval((unsigned char)b[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int sign_parse_pub(const char *text, size_t len, uint8_t pk[SIGN_PK_LEN])
{
    return s_parse_hex(text, len, pk, SIGN_PK_LEN);
}

int sign_parse_secret(const char *text, size_t len, uint8_t sk[SIGN_SK_LEN])
{
    int rc = s_parse_hex(text, len, sk, SIGN_SK_LEN);
    if (rc < 0)
        return rc;
    /* the stored public half must be the seed's: a damaged file is refused */
    uint8_t pk[SIGN_PK_LEN], seedpk[SIGN_PK_LEN], tmp[SIGN_SK_LEN];
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    crypto_sign_seed_keypair(seedpk, tmp, sk);
    sodium_memzero(tmp, sizeof tmp);
    if (sodium_memcmp(pk, seedpk, SIGN_PK_LEN) != 0) {
        sodium_memzero(sk, SIGN_SK_LEN);
        return -EINVAL;
    }
    return 0;
}

int sign_read_pub(const char *path, uint8_t pk[SIGN_PK_LEN])
{
    char *text = NULL;
    size_t len = 0;
    int rc = util_read_file(path, 4096, &text, &len);
    if (rc < 0)
        return rc;
    rc = sign_parse_pub(text, len, pk);
    free(text);
    return rc;
}

int sign_read_secret(const char *path, uint8_t sk[SIGN_SK_LEN])
{
    char *text = NULL;
    size_t len = 0;
    int rc = util_read_file(path, 4096, &text, &len);
    if (rc < 0)
        return rc;
    rc = sign_parse_secret(text, len, sk);
    sodium_memzero(text, len);
    free(text);
    return rc;
}

void sign_key_id(const uint8_t pk[SIGN_PK_LEN], char out[SIGN_ID_HEX + 1])
{
    util_hex(pk, SIGN_ID_HEX / 2, out);
    out[SIGN_ID_HEX] = '\0';
}
