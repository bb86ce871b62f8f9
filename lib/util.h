/* util.h: small helpers both daemons and the CLI share: MAC addresses, clocks,
 * range-checked numbers, files written atomically, directories. No globals. */
#ifndef FF_UTIL_H
#define FF_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The release, from the VERSION file through the Makefile. */
#ifndef FF_VERSION
#define FF_VERSION "0.0.0"
#endif

/* Parses a MAC in aa:bb:cc:dd:ee:ff, aa-bb-..., aabb.ccdd.eeff or aabbccddeeff
 * form (any case). Writes 6 bytes to out. Returns 0 or -EINVAL. */
int util_mac_parse(const char *s, uint8_t out[6]);
/* Formats 6 bytes as lowercase aa:bb:cc:dd:ee:ff into out (>= 18 bytes). */
void util_mac_format(const uint8_t mac[6], char out[18]);
/* Canonicalises a MAC string into out (>= 18 bytes). Returns 0 or -EINVAL. */
int util_mac_canon(const char *s, char out[18]);

uint64_t util_now_ms(void);  /* wall clock, ms since the epoch */
uint64_t util_mono_ms(void); /* monotonic clock, ms */

/* Parses a decimal integer in [min, max] (strtonum-like). Returns 0 or -EINVAL/-ERANGE. */
int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Parses a size with optional K, M, G suffix (powers of 1024). */
int util_parse_size(const char *s, uint64_t *out);
/* Parses a duration: "90s", "30m", "24h", "7d", up to four parts as in
 * "1h30m" (a unit after each but a lone number), or plain seconds; from
 * min_secs to max_secs. 0 (*secs set) or -EINVAL. */
int util_parse_duration(const char *s, int64_t min_secs, int64_t max_secs, int64_t *secs);

/* mkdir -p with mode; 0 or -errno. */
int util_mkdir_p(const char *path, unsigned mode);
/* Writes data to path via path.tmp + fsync + rename + fsync(dir). 0 or -errno. */
int util_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* Reads a whole file (at most max bytes) into a malloc'd NUL-terminated buffer
 * the caller frees. 0, -errno, or -EFBIG. */
int util_read_file(const char *path, size_t max, char **out, size_t *len_out);
/* fsync of the directory holding path (after a rename). 0 or -errno. */
int util_fsync_dir_of(const char *path);

/* printf into an error buffer (err may be NULL or errlen 0: nothing is
 * written). For the one-line errors that reach operators. */
void util_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Value of one hex digit (either case), or -1. */
int util_hexval(int c);
/* A printable excerpt of the first n bytes of s (stopping at a NUL) for an
 * error message: at most max bytes, "..." after when cut, and any byte
 * outside printable ASCII or a '"' shown as '?'. out holds max + 4 bytes.
 * Returns out. */
const char *util_show(const char *s, size_t n, size_t max, char *out);

/* Lowercase hex of n bytes into out (>= 2n+1). */
void util_hex(const uint8_t *in, size_t n, char *out);
/* Parses exactly 2n hex digits into n bytes. 0 or -EINVAL. */
int util_unhex(const char *s, uint8_t *out, size_t n);

#endif
