/* sign.h: operator signatures on firmware images and vendor profiles (Ed25519 through libsodium's
 * crypto_sign_detached / crypto_sign_verify_detached).
 *
 * What is signed, per file: "firmfleet-image-v1" NUL || sha256 (32 bytes) ||
 * size (8 bytes, big-endian) || name (the file's name in its firmware, no
 * terminator; it is last, so its length is implied). Binding the name keeps
 * a controller from serving a signed image under another file name (a boot
 * loader as the application load); binding the size is belt and braces.
 *
 * Key files are text: NAME.pub holds the 32-byte public key as 64 hex digits,
 * NAME.key the 64-byte secret key (seed || public key) as 128 hex digits;
 * each is one line, and lines starting with '#' are comments. A key's id is
 * the first 16 hex digits of its public key (for logs and messages only:
 * verification always uses the whole key).
 */
#ifndef FF_SIGN_H
#define FF_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define SIGN_PK_LEN 32
#define SIGN_SK_LEN 64
#define SIGN_SIG_LEN 64
#define SIGN_PK_HEX (2 * SIGN_PK_LEN)
#define SIGN_SK_HEX (2 * SIGN_SK_LEN)
#define SIGN_SIG_HEX (2 * SIGN_SIG_LEN)
#define SIGN_ID_HEX 16
#define SIGN_NAME_MAX 255
#define SIGN_MAX_KEYS 16 /* trusted keys per controller or agent */

/* Call once per process (idempotent). 0 or -1. */
int sign_init(void);

/* A fresh key pair. 0 or -EIO. */
int sign_keypair(uint8_t pk[SIGN_PK_LEN], uint8_t sk[SIGN_SK_LEN]);

/* Signs one image. name: at most SIGN_NAME_MAX bytes. 0 or -EINVAL. */
int sign_image(const uint8_t sk[SIGN_SK_LEN], const uint8_t sha[32], uint64_t size,
               const char *name, uint8_t sig[SIGN_SIG_LEN]);
/* 0 when sig is pk's signature over the image, else -EBADMSG. */
int sign_image_verify(const uint8_t pk[SIGN_PK_LEN], const uint8_t sig[SIGN_SIG_LEN],
                      const uint8_t sha[32], uint64_t size, const char *name);

/* Profiles (vendor profile JSON, `profile add --sign-key`): what is signed
 * is "firmfleet-profile-v1" NUL || sha256 of the JSON text (32 bytes) ||
 * its length (8 bytes, big-endian): the text byte for byte, as added. A
 * profile signature never verifies as an image signature nor the reverse
 * (the domain strings differ). */
int sign_profile(const uint8_t sk[SIGN_SK_LEN], const char *json, size_t len,
                 uint8_t sig[SIGN_SIG_LEN]);
/* Like sign_trust_verify, for a profile's JSON text. */
int sign_trust_verify_profile(const uint8_t (*keys)[SIGN_PK_LEN], size_t n, const uint8_t *signer,
                              size_t signer_len, const uint8_t *sig, size_t sig_len,
                              const char *json, size_t len, const char **reason);

/* The public half of a secret key. */
void sign_sk_to_pk(const uint8_t sk[SIGN_SK_LEN], uint8_t pk[SIGN_PK_LEN]);

/* Verifies an image against a set of trusted keys. signer (may be empty)
 * names the key that signed: when given, only that key is tried. Returns 0,
 * or -EPERM with *reason one of "unsigned" (no signature), "malformed"
 * (wrong lengths), "untrusted_key" (signer is not in the set), or
 * "bad_signature" (no trusted key verifies it). keys: n entries. */
int sign_trust_verify(const uint8_t (*keys)[SIGN_PK_LEN], size_t n, const uint8_t *signer,
                      size_t signer_len, const uint8_t *sig, size_t sig_len, const uint8_t sha[32],
                      uint64_t size, const char *name, const char **reason);

/* Key file text -> key: the first non-comment line must be exactly the hex
 * digits (surrounding blanks and the newline aside). 0 or -EINVAL. */
int sign_parse_pub(const char *text, size_t len, uint8_t pk[SIGN_PK_LEN]);
int sign_parse_secret(const char *text, size_t len, uint8_t sk[SIGN_SK_LEN]);
/* Reads a key file (at most 4 KiB). 0, -EINVAL (not a key) or -errno. The
 * secret-key reader wipes its buffer. */
int sign_read_pub(const char *path, uint8_t pk[SIGN_PK_LEN]);
int sign_read_secret(const char *path, uint8_t sk[SIGN_SK_LEN]);

/* Key id: the first SIGN_ID_HEX hex digits of pk, NUL-terminated. */
void sign_key_id(const uint8_t pk[SIGN_PK_LEN], char out[SIGN_ID_HEX + 1]);

/* Wipes n bytes (not optimised away). */
void sign_wipe(void *p, size_t n);

#endif
