/* store_inv.c: inventory queries on the controller store (see store_inv.h).
 *
 * Invariants:
 *   - every write: validate everything that needs no database, then one
 *     transaction (or savepoint) holding the checks that do, the change, the
 *     site generation bumps it implies and its audit row; any error rolls all
 *     of it back, so a failed command leaves the database byte-for-byte as it
 *     was (audit included);
 *   - text that reaches an error message is sanitised (printable ASCII, cut
 *     at 64 bytes) so the message stays one line whatever the input was;
 *   - text from the database goes into JSON through s_jstr, which never
 *     fails on invalid UTF-8 (event details come from agents);
 *   - every list and show builds its objects from one column table per row
 *     type (s_row), so a key reads its column the same way everywhere.
 * Statements are prepared per call: inventory commands are operator-paced.
 */
#include "store_inv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dhcpopt.h"
#include "log.h"
#include "store_int.h"
#include "util.h"
#include "window.h"
#include "zmqx.h"

#define SHOW_MAX 64

/* ---- small helpers ---- */

/* A printable, bounded rendering of untrusted text for messages. */
static const char *s_show(const char *s, char out[SHOW_MAX + 4])
{
    size_t o = 0;
    if (s == NULL)
        s = "";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (o == SHOW_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        out[o++] = (*p >= 0x20 && *p < 0x7f) ? (char)*p : '?';
    }
    out[o] = '\0';
    return out;
}

static int s_dberr(store_t *st, char *err, size_t errlen)
{
    char q[256];
    util_errf(err, errlen, "database error: %s", s_show(sqlite3_errmsg(st->db), q));
    return -EIO;
}

static int s_empty(const char *s)
{
    return s == NULL || *s == '\0';
}

/* Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF) with
 * no C0 control characters or DEL. */
static int s_utf8_clean(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            p++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= n)
            return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* JSON string from database text; invalid UTF-8 becomes '?' bytes. */
static json_t *s_jstr(const unsigned char *s)
{
    const char *t = s ? (const char *)s : "";
    json_t *j = json_string(t);
    if (j != NULL)
        return j;
    size_t n = strlen(t);
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        copy[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    copy[n] = '\0';
    j = json_string(copy);
    free(copy);
    return j;
}

/* Sets obj[key] = val; 0 or -ENOMEM (val NULL or insertion failed). */
static int s_set(json_t *obj, const char *key, json_t *val)
{
    if (val == NULL)
        return -ENOMEM;
    return json_object_set_new(obj, key, val) == 0 ? 0 : -ENOMEM;
}

/* Splits a sep-separated list into a JSON array of strings (empty items dropped). */
static json_t *s_split_list(const unsigned char *text, char sep)
{
    json_t *arr = json_array();
    const char *s = text ? (const char *)text : "";
    while (arr != NULL && *s) {
        const char *end = strchr(s, sep);
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (n > 0) {
            json_t *item = json_stringn(s, n);
            if (item == NULL || json_array_append_new(arr, item) < 0) {
                json_decref(arr);
                return NULL;
            }
        }
        s += n;
        if (*s == sep)
            s++;
    }
    return arr;
}

static int s_is_decimal(const char *s)
{
    if (s_empty(s) || strlen(s) > 18)
        return 0;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

/* Transactions: BEGIN IMMEDIATE when none is open, else a savepoint. */
static int s_tx_begin(store_t *st, int *savepoint, char *err, size_t errlen)
{
    *savepoint = !sqlite3_get_autocommit(st->db);
    int rc = *savepoint ? sql_exec(st->db, "SAVEPOINT store_inv") : sql_begin(st->db);
    return rc < 0 ? s_dberr(st, err, errlen) : 0;
}

static int s_tx_end(store_t *st, int savepoint, int rc, char *err, size_t errlen)
{
    if (rc == 0) {
        int c = savepoint ? sql_exec(st->db, "RELEASE store_inv") : sql_commit(st->db);
        if (c == 0)
            return 0;
        rc = s_dberr(st, err, errlen);
    }
    if (savepoint) {
        sql_exec(st->db, "ROLLBACK TO store_inv");
        sql_exec(st->db, "RELEASE store_inv");
    } else {
        sql_rollback(st->db);
    }
    return rc;
}

static int s_step_done(store_t *st, sqlite3_stmt *q, char *err, size_t errlen)
{
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT) {
        char m[256];
        util_errf(err, errlen, "conflict: %s", s_show(sqlite3_errmsg(st->db), m));
        return -EEXIST;
    }
    return s_dberr(st, err, errlen);
}

/* Steps q (bound; finalized here) for the integer in column 0 of its first
 * row, into *out when not NULL: 0, -ENOENT when there is no row (err
 * untouched: the caller says what is missing) or -EIO. */
static int s_step_int(store_t *st, sqlite3_stmt *q, int64_t *out, char *err, size_t errlen)
{
    int step = sqlite3_step(q), rc = 0;
    if (step == SQLITE_ROW) {
        if (out)
            *out = sqlite3_column_int64(q, 0);
    } else {
        rc = step == SQLITE_DONE ? -ENOENT : s_dberr(st, err, errlen);
    }
    sqlite3_finalize(q);
    return rc;
}

static void s_bind_text(sqlite3_stmt *q, int i, const char *s)
{
    sqlite3_bind_text(q, i, s ? s : "", -1, SQLITE_TRANSIENT);
}

static void s_bind_opt_text(sqlite3_stmt *q, int i, const char *s)
{
    if (s_empty(s))
        sqlite3_bind_null(q, i);
    else
        sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT);
}

static const char *s_user(const char *user)
{
    return s_empty(user) ? "unknown" : user;
}

/* Writes that hand back the sites they touch: a fresh array for the site
 * ids and the transaction, both or neither (on error *ids is NULL). */
static int s_tx_begin_ids(store_t *st, int *savepoint, json_t **ids, char *err, size_t errlen)
{
    *ids = json_array();
    if (*ids == NULL) {
        util_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = s_tx_begin(st, savepoint, err, errlen);
    if (rc < 0) {
        json_decref(*ids);
        *ids = NULL;
    }
    return rc;
}

/* Ends the transaction of s_tx_begin_ids: on commit *site_ids (may be
 * NULL) gets ids. The caller's reference to ids is dropped either way. */
static int s_tx_end_ids(store_t *st, int savepoint, int rc, json_t *ids, json_t **site_ids,
                        char *err, size_t errlen)
{
    rc = s_tx_end(st, savepoint, rc, err, errlen);
    if (rc == 0 && site_ids)
        *site_ids = json_incref(ids);
    json_decref(ids);
    return rc;
}

/* Appends id to the array ids unless it is there already: 1 appended, 0
 * there already, -ENOMEM. O(n) per id; a site count per write is small. */
static int s_ids_add(json_t *ids, int64_t id)
{
    size_t n = json_array_size(ids);
    for (size_t k = 0; k < n; k++)
        if (json_integer_value(json_array_get(ids, k)) == id)
            return 0;
    return json_array_append_new(ids, json_integer(id)) < 0 ? -ENOMEM : 1;
}

/* Runs q (bound; finalized here) and adds the integer in column 0 of each
 * row to ids (s_ids_add). */
static int s_collect_ids(store_t *st, sqlite3_stmt *q, json_t *ids, char *err, size_t errlen)
{
    int rc = 0, step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW)
        if (s_ids_add(ids, sqlite3_column_int64(q, 0)) < 0) {
            util_errf(err, errlen, "out of memory");
            rc = -ENOMEM;
            break;
        }
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_dberr(st, err, errlen);
    sqlite3_finalize(q);
    return rc;
}

/* ---- rows as JSON ----
 * Every list and show turns a result row into an object through a table
 * per row type: each key, in the order the object shows them, with the
 * column it comes from and how that column becomes JSON. The table sits
 * next to the SELECT whose columns it numbers. Rejected: one hand-written
 * s_set chain per row type, where each new column meant choosing the NULL
 * rule again by hand. */

enum col_kind {
    COL_INT,       /* integer; NULL reads as 0 */
    COL_INT_NULL,  /* integer, or null */
    COL_TEXT,      /* string through s_jstr; NULL reads as "" */
    COL_TEXT_NULL, /* string, or null (the global scope of a class or template) */
    COL_IS_SET,    /* true when the column is not NULL */
    COL_COMMAS,    /* comma list as an array of strings (s_split_list) */
    COL_WORDS,     /* space list as an array of strings */
    COL_OPTIONS,   /* packed DHCP options; their specs are in the next column */
    COL_RULES,     /* packed match rules; their specs are in the next column */
    COL_HEX,       /* a blob as lowercase hex */
    COL_ENROLL,    /* enrollment state: expiry here, time of use in the next column */
};

struct col {
    const char *key;
    enum col_kind kind;
    int col;
};

struct row_type {
    const struct col *cols;
    size_t n;
    /* NULL, or adds the keys whose presence depends on values (after the
     * table's); 0 or -ENOMEM */
    int (*more)(sqlite3_stmt *q, json_t *o);
};

#define N_COLS(c) (sizeof(c) / sizeof((c)[0]))

static json_t *s_packed_json(sqlite3_stmt *q, int col, int rules);

/* The agent's enrollment credential: pending (not yet used), used, expired
 * (never used, too late now) or long-term (enrolled before single-use
 * credentials: the credential's key is the agent's key). */
static const char *s_enroll_state(sqlite3_stmt *q, int expires_col)
{
    int has_exp = sqlite3_column_type(q, expires_col) != SQLITE_NULL;
    int used = sqlite3_column_type(q, expires_col + 1) != SQLITE_NULL;
    return used                                                             ? "used"
           : !has_exp                                                       ? "long-term"
           : (uint64_t)sqlite3_column_int64(q, expires_col) < util_now_ms() ? "expired"
                                                                            : "pending";
}

static json_t *s_hex_json(sqlite3_stmt *q, int col)
{
    const uint8_t *blob = sqlite3_column_blob(q, col);
    size_t n = (size_t)sqlite3_column_bytes(q, col);
    char *hex = malloc(2 * n + 1);
    if (hex == NULL)
        return NULL;
    util_hex(blob ? blob : (const uint8_t *)"", n, hex);
    json_t *j = json_stringn_nocheck(hex, 2 * n);
    free(hex);
    return j;
}

/* Column c->col of q's current row as c->kind says; NULL on ENOMEM. */
static json_t *s_col_json(sqlite3_stmt *q, const struct col *c)
{
    int i = c->col;
    switch (c->kind) {
    case COL_INT:
        return json_integer(sqlite3_column_int64(q, i));
    case COL_INT_NULL:
        if (sqlite3_column_type(q, i) == SQLITE_NULL)
            return json_null();
        return json_integer(sqlite3_column_int64(q, i));
    case COL_TEXT:
        return s_jstr(sqlite3_column_text(q, i));
    case COL_TEXT_NULL:
        if (sqlite3_column_type(q, i) == SQLITE_NULL)
            return json_null();
        return s_jstr(sqlite3_column_text(q, i));
    case COL_IS_SET:
        return json_boolean(sqlite3_column_type(q, i) != SQLITE_NULL);
    case COL_COMMAS:
        return s_split_list(sqlite3_column_text(q, i), ',');
    case COL_WORDS:
        return s_split_list(sqlite3_column_text(q, i), ' ');
    case COL_OPTIONS:
        return s_packed_json(q, i, 0);
    case COL_RULES:
        return s_packed_json(q, i, 1);
    case COL_HEX:
        return s_hex_json(q, i);
    case COL_ENROLL:
        return json_string(s_enroll_state(q, i));
    }
    return NULL;
}

/* A new object from q's current row as t says; NULL on ENOMEM. */
static json_t *s_row(sqlite3_stmt *q, const struct row_type *t)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < t->n; i++)
        if (s_set(o, t->cols[i].key, s_col_json(q, &t->cols[i])) < 0) {
            json_decref(o);
            o = NULL;
        }
    if (o != NULL && t->more != NULL && t->more(q, o) < 0) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* Runs q (bound; finalized here) and collects its rows as objects of type
 * t into a new array *out. 0, -ENOMEM or -EIO, with the message. */
static int s_collect(store_t *st, sqlite3_stmt *q, const struct row_type *t, json_t **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    json_t *arr = json_array();
    int step = SQLITE_ROW, rc = arr ? 0 : -ENOMEM;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *o = s_row(q, t);
        if (o == NULL || json_array_append_new(arr, o) < 0)
            rc = -ENOMEM;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_dberr(st, err, errlen);
    else if (rc == -ENOMEM)
        util_errf(err, errlen, "out of memory");
    sqlite3_finalize(q);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

/* s_collect for a query of one row: *out gets the first row, or -ENOENT
 * with err untouched when there is none (the caller says what is missing). */
static int s_collect_one(store_t *st, sqlite3_stmt *q, const struct row_type *t, json_t **out,
                         char *err, size_t errlen)
{
    json_t *arr = NULL;
    *out = NULL;
    int rc = s_collect(st, q, t, &arr, err, errlen);
    if (rc < 0)
        return rc;
    if (json_array_size(arr) == 0)
        rc = -ENOENT;
    else
        *out = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return rc;
}

/* ---- validators ---- */

int store_check_name(const char *what, const char *s, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    size_t n = s ? strlen(s) : 0;
    int ok = n >= 1 && n <= 63 && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'));
    for (size_t i = 1; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    }
    if (!ok) {
        util_errf(err, errlen,
                  "invalid %s name '%s' (1-63 characters: a-z 0-9 . _ -, starting with a letter or "
                  "digit)",
                  what, s_show(s, q));
        return -EINVAL;
    }
    return 0;
}

int store_check_tz(const char *tz, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    size_t n = tz ? strlen(tz) : 0;
    int ok = n >= 1 && n <= 128 && tz[0] != '/' && tz[n - 1] != '/' && strstr(tz, "..") == NULL &&
             strstr(tz, "//") == NULL;
    for (size_t i = 0; ok && i < n; i++) {
        char c = tz[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '+' || c == '-' || c == '/' || c == '.';
    }
    /* no "." component either ("./UTC"), and no hidden files */
    for (const char *p = tz; ok && p && *p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
        ok = *p != '.';
    if (ok) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", STORE_ZONEINFO, tz);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        struct stat sb;
        char magic[4] = {0};
        ok = fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && read(fd, magic, 4) == 4 &&
             memcmp(magic, "TZif", 4) == 0;
        if (fd >= 0)
            close(fd);
    }
    if (!ok) {
        util_errf(err, errlen, "invalid time zone '%s' (an IANA zone such as Europe/Berlin)",
                  s_show(tz, q));
        return -EINVAL;
    }
    return 0;
}

int store_check_model(const char *s, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    size_t n = s ? strlen(s) : 0;
    int ok = n >= 1 && n <= 64 && s[0] != ' ' && s[n - 1] != ' ';
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] >= 0x20 && s[i] < 0x7f && s[i] != ',';
    if (!ok) {
        util_errf(err, errlen, "invalid model '%s' (1-64 printable characters, no comma)",
                  s_show(s, q));
        return -EINVAL;
    }
    return 0;
}

int store_check_serial(const char *s, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    size_t n = s ? strlen(s) : 0;
    int ok = n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] > 0x20 && s[i] < 0x7f && s[i] != ',';
    if (!ok) {
        util_errf(err, errlen,
                  "invalid serial '%s' (up to 64 printable characters, no comma or space)",
                  s_show(s, q));
        return -EINVAL;
    }
    return 0;
}

int store_check_tags(const char *s, char *out, size_t outlen, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    size_t o = 0;
    if (outlen == 0)
        return -EINVAL;
    out[0] = '\0';
    if (s_empty(s))
        return 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        int ok = n >= 1 && n <= 63;
        for (size_t i = 0; ok && i < n; i++) {
            char c = p[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        }
        if (!ok) {
            util_errf(err, errlen,
                      "invalid tags '%s' (comma list of 1-63 characters each: A-Z a-z 0-9 . _ -)",
                      s_show(s, q));
            return -EINVAL;
        }
        /* drop duplicates: look for ",tag," in ",out," */
        int dup = 0;
        for (const char *t = out; *t && !dup;) {
            const char *tc = strchr(t, ',');
            size_t tn = tc ? (size_t)(tc - t) : strlen(t);
            dup = tn == n && memcmp(t, p, n) == 0;
            t += tn + (tc ? 1 : 0);
        }
        if (!dup) {
            if (o + n + 2 > outlen) {
                util_errf(err, errlen, "too many tags");
                return -EINVAL;
            }
            if (o > 0)
                out[o++] = ',';
            memcpy(out + o, p, n);
            o += n;
            out[o] = '\0';
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

int store_check_fw_part(const char *what, const char *s, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    size_t n = s ? strlen(s) : 0;
    int ok = n >= 1 && n <= 64 &&
             ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
              (s[0] >= '0' && s[0] <= '9'));
    for (size_t i = 1; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '+' || c == '-';
    }
    if (!ok) {
        util_errf(err, errlen, "invalid %s '%s' (1-64 characters: A-Z a-z 0-9 . _ + -)", what,
                  s_show(s, q));
        return -EINVAL;
    }
    return 0;
}

int store_check_file_name(const char *s, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    size_t n = s ? strlen(s) : 0;
    int ok = n >= 1 && n <= 128 && s[0] != '.' && s[0] != '-' && s[0] != '+';
    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '+' || c == '-';
    }
    if (!ok) {
        util_errf(err, errlen,
                  "invalid file name '%s' (1-128 characters: A-Z a-z 0-9 . _ + -, not starting "
                  "with . + -)",
                  s_show(s, q));
        return -EINVAL;
    }
    return 0;
}

int store_check_text(const char *what, const char *s, size_t max, char *err, size_t errlen)
{
    size_t n = s ? strlen(s) : 0;
    if (n > max) {
        util_errf(err, errlen, "%s too long (at most %zu bytes)", what, max);
        return -EINVAL;
    }
    if (n > 0 && !s_utf8_clean(s, n)) {
        util_errf(err, errlen, "%s must be UTF-8 text without control characters", what);
        return -EINVAL;
    }
    return 0;
}

int store_check_hex(const char *what, const char *s, size_t len, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    int ok = s != NULL && strlen(s) == len;
    for (size_t i = 0; ok && i < len; i++)
        ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
    if (!ok) {
        util_errf(err, errlen, "invalid %s '%s' (%zu lowercase hex digits)", what, s_show(s, q),
                  len);
        return -EINVAL;
    }
    return 0;
}

int store_check_sha256(const char *s, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    int ok = s != NULL && strlen(s) == 64;
    for (size_t i = 0; ok && i < 64; i++)
        ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
    if (!ok) {
        util_errf(err, errlen, "invalid sha256 '%s' (64 lowercase hex digits)", s_show(s, q));
        return -EINVAL;
    }
    return 0;
}

/* ---- audit ---- */

int store_audit(store_t *st, const char *user, const char *action, const char *detail)
{
    sqlite3_stmt *q = sql_prepare(
        st->db, "INSERT INTO audit(time_ms, user, action, detail) VALUES (?1, ?2, ?3, ?4)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, (int64_t)util_now_ms());
    s_bind_text(q, 2, s_user(user));
    s_bind_text(q, 3, action);
    s_bind_text(q, 4, detail);
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(q);
    return rc;
}

int store_audit_list(store_t *st, int64_t limit, json_t **out, char *err, size_t errlen)
{
    return store_audit_find(st, NULL, NULL, limit, out, err, errlen);
}

static const struct col s_audit_cols[] = {
    {"id", COL_INT, 0},      {"time_ms", COL_INT, 1}, {"user", COL_TEXT, 2},
    {"action", COL_TEXT, 3}, {"detail", COL_TEXT, 4},
};
static const struct row_type s_audit_row = {s_audit_cols, N_COLS(s_audit_cols), NULL};

int store_audit_find(store_t *st, const char *user, const char *action, int64_t limit, json_t **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    /* the action prefix: an exact match or the prefix followed by '.' */
    sqlite3_stmt *q = sql_prepare(
        st->db, "SELECT id, time_ms, user, action, detail FROM"
                " (SELECT * FROM audit WHERE (?2 IS NULL OR user = ?2)"
                "  AND (?3 IS NULL OR action = ?3 OR substr(action, 1, length(?3) + 1) = ?3 || '.')"
                "  ORDER BY id DESC LIMIT ?1) ORDER BY id");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, limit > 0 ? limit : -1);
    if (user != NULL)
        sqlite3_bind_text(q, 2, user, -1, SQLITE_TRANSIENT);
    if (action != NULL)
        sqlite3_bind_text(q, 3, action, -1, SQLITE_TRANSIENT);
    return s_collect(st, q, &s_audit_row, out, err, errlen);
}

/* ---- sites ---- */

int store_site_id(store_t *st, const char *name, int64_t *id_out, char *err, size_t errlen)
{
    char q1[SHOW_MAX + 4];
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT id FROM site WHERE name = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, name);
    int rc = s_step_int(st, q, id_out, err, errlen);
    if (rc == -ENOENT)
        util_errf(err, errlen, "unknown site '%s'", s_show(name, q1));
    return rc;
}

int store_site_add(store_t *st, const char *user, const char *name, const char *tz,
                   const char *description, int64_t *id_out, char *err, size_t errlen)
{
    int rc;
    if ((rc = store_check_name("site", name, err, errlen)) < 0 ||
        (rc = store_check_tz(tz, err, errlen)) < 0 ||
        (rc = store_check_text("description", description, 1024, err, errlen)) < 0)
        return rc;
    int sp;
    if ((rc = s_tx_begin(st, &sp, err, errlen)) < 0)
        return rc;
    rc = store_site_id(st, name, NULL, err, errlen);
    if (rc == 0) {
        util_errf(err, errlen, "site %s already exists", name);
        rc = -EEXIST;
    } else if (rc == -ENOENT) {
        rc = 0;
    }
    int64_t id = 0;
    if (rc == 0) {
        sqlite3_stmt *q = sql_prepare(
            st->db, "INSERT INTO site(name, tz, description, created_ms) VALUES (?1, ?2, ?3, ?4)");
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            s_bind_text(q, 1, name);
            s_bind_text(q, 2, tz);
            s_bind_text(q, 3, description);
            sqlite3_bind_int64(q, 4, (int64_t)util_now_ms());
            rc = s_step_done(st, q, err, errlen);
            sqlite3_finalize(q);
            id = sqlite3_last_insert_rowid(st->db);
        }
    }
    if (rc == 0) {
        char detail[512], qt[160], qd[256];
        snprintf(detail, sizeof detail, "site=%s tz=%s description=%s", name,
                 log_quote(tz, qt, sizeof qt),
                 log_quote(description ? description : "", qd, sizeof qd));
        if (store_audit(st, user, "site.add", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    rc = s_tx_end(st, sp, rc, err, errlen);
    if (rc == 0 && id_out)
        *id_out = id;
    return rc;
}

#define SITE_SELECT                                                                                \
    "SELECT s.id, s.name, s.tz, s.description, s.created_ms, s.generation,"                        \
    " (SELECT count(*) FROM device d WHERE d.site_id = s.id),"                                     \
    " (SELECT count(*) FROM agent a WHERE a.site_id = s.id AND a.revoked_ms IS NULL), s.window"    \
    " FROM site s "

static const struct col s_site_cols[] = {
    {"id", COL_INT, 0},           {"name", COL_TEXT, 1},      {"tz", COL_TEXT, 2},
    {"description", COL_TEXT, 3}, {"created_ms", COL_INT, 4}, {"generation", COL_INT, 5},
    {"devices", COL_INT, 6},      {"agents", COL_INT, 7},     {"window", COL_TEXT, 8},
};
static const struct row_type s_site_row = {s_site_cols, N_COLS(s_site_cols), NULL};

int store_site_list(store_t *st, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sqlite3_stmt *q = sql_prepare(st->db, SITE_SELECT "ORDER BY s.name");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    return s_collect(st, q, &s_site_row, out, err, errlen);
}

int store_site_show(store_t *st, const char *name, json_t **out, char *err, size_t errlen)
{
    char qs[SHOW_MAX + 4];
    *out = NULL;
    sqlite3_stmt *q = sql_prepare(st->db, SITE_SELECT "WHERE s.name = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, name);
    int rc = s_collect_one(st, q, &s_site_row, out, err, errlen);
    if (rc == -ENOENT)
        util_errf(err, errlen, "unknown site '%s'", s_show(name, qs));
    return rc;
}

/* ---- agents ---- */

#define AGENT_SELECT                                                                               \
    "SELECT a.id, a.name, s.name, a.created_ms, a.revoked_ms, a.last_seen_ms, a.version,"          \
    " a.pubkey, a.cached, a.enroll_expires_ms, a.enroll_used_ms"                                   \
    " FROM agent a JOIN site s ON s.id = a.site_id "

/* The list shows the first 8 keys, a show all of them. */
static const struct col s_agent_cols[] = {
    {"id", COL_INT, 0},
    {"name", COL_TEXT, 1},
    {"site", COL_TEXT, 2},
    {"created_ms", COL_INT, 3},
    {"revoked", COL_IS_SET, 4},
    {"revoked_ms", COL_INT_NULL, 4},
    {"last_seen_ms", COL_INT_NULL, 5},
    {"version", COL_TEXT, 6},
    {"public_key", COL_TEXT, 7},
    {"cached", COL_WORDS, 8},
    {"enrollment", COL_ENROLL, 9},
    {"enroll_expires_ms", COL_INT_NULL, 9},
    {"enroll_used_ms", COL_INT_NULL, 10},
};
static const struct row_type s_agent_row = {s_agent_cols, 8, NULL};
static const struct row_type s_agent_row_key = {s_agent_cols, N_COLS(s_agent_cols), NULL};

int store_agent_enroll(store_t *st, const char *user, const char *name, const char *site,
                       const char *pubkey, int64_t *id_out, char *err, size_t errlen)
{
    return store_agent_enroll_until(st, user, name, site, pubkey, 0, id_out, err, errlen);
}

int store_agent_enroll_until(store_t *st, const char *user, const char *name, const char *site,
                             const char *pubkey, uint64_t expires_ms, int64_t *id_out, char *err,
                             size_t errlen)
{
    int rc;
    if ((rc = store_check_name("agent", name, err, errlen)) < 0 ||
        (rc = store_check_name("site", site, err, errlen)) < 0)
        return rc;
    if (zmqx_key_check(pubkey) < 0) {
        util_errf(err, errlen, "invalid public key");
        return -EINVAL;
    }
    int sp;
    if ((rc = s_tx_begin(st, &sp, err, errlen)) < 0)
        return rc;
    int64_t site_id = 0, id = 0;
    rc = store_site_id(st, site, &site_id, err, errlen);
    if (rc == 0) {
        sqlite3_stmt *q = sql_prepare(st->db, "SELECT 1 FROM agent WHERE name = ?1");
        int step = SQLITE_ERROR;
        if (q != NULL) {
            s_bind_text(q, 1, name);
            step = sqlite3_step(q);
            sqlite3_finalize(q);
        }
        if (step == SQLITE_ROW) {
            util_errf(err, errlen, "agent %s already exists", name);
            rc = -EEXIST;
        } else if (step != SQLITE_DONE) {
            rc = s_dberr(st, err, errlen);
        }
    }
    if (rc == 0) {
        sqlite3_stmt *q = sql_prepare(
            st->db, "INSERT INTO agent(name, site_id, pubkey, created_ms, enroll_expires_ms)"
                    " VALUES (?1, ?2, ?3, ?4, ?5)");
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            s_bind_text(q, 1, name);
            sqlite3_bind_int64(q, 2, site_id);
            s_bind_text(q, 3, pubkey);
            sqlite3_bind_int64(q, 4, (int64_t)util_now_ms());
            if (expires_ms)
                sqlite3_bind_int64(q, 5, (int64_t)expires_ms);
            else
                sqlite3_bind_null(q, 5);
            rc = s_step_done(st, q, err, errlen);
            sqlite3_finalize(q);
            id = sqlite3_last_insert_rowid(st->db);
        }
    }
    if (rc == 0) {
        char detail[256];
        snprintf(detail, sizeof detail, "agent=%s site=%s public_key=%s expires_ms=%llu", name,
                 site, pubkey, (unsigned long long)expires_ms);
        if (store_audit(st, user, "agent.enroll", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    rc = s_tx_end(st, sp, rc, err, errlen);
    if (rc == 0 && id_out)
        *id_out = id;
    return rc;
}

int store_agent_list(store_t *st, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sqlite3_stmt *q = sql_prepare(st->db, AGENT_SELECT "ORDER BY a.name");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    return s_collect(st, q, &s_agent_row, out, err, errlen);
}

/* Binds ?1 = name, ?2 = id (or NULL when the text is not a decimal). */
static void s_bind_name_or_id(sqlite3_stmt *q, const char *name_or_id)
{
    s_bind_text(q, 1, name_or_id);
    if (s_is_decimal(name_or_id))
        sqlite3_bind_int64(q, 2, strtoll(name_or_id, NULL, 10));
    else
        sqlite3_bind_null(q, 2);
}

#define AGENT_BY_NAME_OR_ID "WHERE a.name = ?1 OR a.id = ?2 ORDER BY a.name = ?1 DESC LIMIT 1"

int store_agent_show(store_t *st, const char *name_or_id, json_t **out, char *err, size_t errlen)
{
    char qs[SHOW_MAX + 4];
    *out = NULL;
    sqlite3_stmt *q = sql_prepare(st->db, AGENT_SELECT AGENT_BY_NAME_OR_ID);
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_name_or_id(q, name_or_id);
    int rc = s_collect_one(st, q, &s_agent_row_key, out, err, errlen);
    if (rc == -ENOENT)
        util_errf(err, errlen, "unknown agent '%s'", s_show(name_or_id, qs));
    return rc;
}

int store_agent_lookup(store_t *st, const char *name_or_id, int64_t *id_out, char *err,
                       size_t errlen)
{
    char qs[SHOW_MAX + 4];
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT a.id FROM agent a " AGENT_BY_NAME_OR_ID);
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_name_or_id(q, name_or_id);
    int rc = s_step_int(st, q, id_out, err, errlen);
    if (rc == -ENOENT)
        util_errf(err, errlen, "unknown agent '%s'", s_show(name_or_id, qs));
    return rc;
}

int store_agent_revoke(store_t *st, const char *user, const char *name_or_id, int64_t *id_out,
                       char *err, size_t errlen)
{
    int sp, rc;
    if ((rc = s_tx_begin(st, &sp, err, errlen)) < 0)
        return rc;
    json_t *a = NULL;
    rc = store_agent_show(st, name_or_id, &a, err, errlen);
    int64_t id = 0;
    if (rc == 0) {
        id = json_integer_value(json_object_get(a, "id"));
        if (json_is_true(json_object_get(a, "revoked"))) {
            util_errf(err, errlen, "agent %s is already revoked",
                      json_string_value(json_object_get(a, "name")));
            rc = -EALREADY;
        }
    }
    if (rc == 0) {
        sqlite3_stmt *q = sql_prepare(st->db, "UPDATE agent SET revoked_ms = ?2 WHERE id = ?1");
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(q, 1, id);
            sqlite3_bind_int64(q, 2, (int64_t)util_now_ms());
            rc = s_step_done(st, q, err, errlen);
            sqlite3_finalize(q);
        }
    }
    if (rc == 0) {
        char detail[256];
        snprintf(detail, sizeof detail, "agent=%s site=%s",
                 json_string_value(json_object_get(a, "name")),
                 json_string_value(json_object_get(a, "site")));
        if (store_audit(st, user, "agent.revoke", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    json_decref(a);
    rc = s_tx_end(st, sp, rc, err, errlen);
    if (rc == 0 && id_out)
        *id_out = id;
    return rc;
}

/* ---- enrollment: ZAP and registration ---- */

int store_agent_zap(store_t *st, const char *z85, uint64_t now_ms, struct store_zap_info *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *q =
        sql_cached(st->cache, "SELECT id, name, revoked_ms, enroll_expires_ms, enroll_used_ms,"
                              " pubkey = ?1 FROM agent WHERE pubkey = ?1"
                              " UNION ALL SELECT id, name, revoked_ms, enroll_expires_ms,"
                              " enroll_used_ms, 0 FROM agent WHERE enroll_key = ?1 LIMIT 1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, z85, -1, SQLITE_STATIC);
    int step = sqlite3_step(q), rc = STORE_ZAP_UNKNOWN;
    if (step == SQLITE_ROW) {
        out->id = sqlite3_column_int64(q, 0);
        snprintf(out->name, sizeof out->name, "%s",
                 sqlite3_column_text(q, 1) ? (const char *)sqlite3_column_text(q, 1) : "");
        out->expires_ms = sqlite3_column_int64(q, 3);
        out->used_ms = sqlite3_column_int64(q, 4);
        int pending =
            sqlite3_column_type(q, 3) != SQLITE_NULL && sqlite3_column_type(q, 4) == SQLITE_NULL;
        if (sqlite3_column_type(q, 2) != SQLITE_NULL)
            rc = STORE_ZAP_REVOKED;
        else if (!sqlite3_column_int(q, 5))
            rc = STORE_ZAP_USED;
        else if (pending)
            rc = (uint64_t)out->expires_ms < now_ms ? STORE_ZAP_EXPIRED : STORE_ZAP_ENROLL;
        else
            rc = STORE_ZAP_OK;
    } else if (step != SQLITE_DONE) {
        rc = -EIO;
    }
    sql_release(st->cache, q);
    return rc;
}

int store_agent_enroll_refused(store_t *st, int64_t id, uint64_t now_ms, const char *detail)
{
    sqlite3_stmt *q = sql_prepare(st->db, "UPDATE agent SET enroll_refused_ms = ?2 WHERE id = ?1"
                                          " AND (enroll_refused_ms IS NULL OR"
                                          " enroll_refused_ms <= ?2 - 60000)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, (int64_t)now_ms);
    int step = sqlite3_step(q);
    sqlite3_finalize(q);
    if (step != SQLITE_DONE)
        return -EIO;
    if (sqlite3_changes(st->db) == 0)
        return 0;
    return store_audit(st, "zap", "agent.enroll_refused", detail) < 0 ? -EIO : 1;
}

int store_agent_register(store_t *st, int64_t id, const char *enroll_key, const char *new_key,
                         uint64_t now_ms, char *err, size_t errlen)
{
    if (zmqx_key_check(enroll_key) < 0 || (new_key != NULL && zmqx_key_check(new_key) < 0)) {
        util_errf(err, errlen, "invalid public key");
        return -EINVAL;
    }
    if (new_key != NULL && strcmp(new_key, enroll_key) == 0) {
        util_errf(err, errlen, "the agent's key must not be its enrollment key");
        return -EINVAL;
    }
    int sp, rc;
    if ((rc = s_tx_begin(st, &sp, err, errlen)) < 0)
        return rc;
    sqlite3_stmt *q = sql_prepare(
        st->db, "UPDATE agent SET pubkey = coalesce(?3, pubkey), enroll_key = ?2,"
                " enroll_used_ms = ?4 WHERE id = ?1 AND pubkey = ?2 AND enroll_used_ms IS NULL"
                " AND enroll_expires_ms IS NOT NULL AND revoked_ms IS NULL");
    if (q == NULL) {
        rc = s_dberr(st, err, errlen);
    } else {
        sqlite3_bind_int64(q, 1, id);
        s_bind_text(q, 2, enroll_key);
        if (new_key)
            s_bind_text(q, 3, new_key);
        else
            sqlite3_bind_null(q, 3);
        sqlite3_bind_int64(q, 4, (int64_t)now_ms);
        int step = sqlite3_step(q);
        sqlite3_finalize(q);
        if (step == SQLITE_CONSTRAINT) {
            util_errf(err, errlen, "that key is already enrolled");
            rc = -EEXIST;
        } else if (step != SQLITE_DONE) {
            rc = s_dberr(st, err, errlen);
        } else if (sqlite3_changes(st->db) != 1) {
            util_errf(err, errlen, "enrollment credential already used");
            rc = -EALREADY;
        }
    }
    if (rc == 0) {
        char detail[256];
        snprintf(detail, sizeof detail, "agent_id=%lld enrollment_key=%s public_key=%s%s",
                 (long long)id, enroll_key, new_key ? new_key : enroll_key,
                 new_key ? "" : " (legacy client: the enrollment key is kept)");
        if (store_audit(st, "zap", "agent.register", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    return s_tx_end(st, sp, rc, err, errlen);
}

int store_agent_key_is(store_t *st, int64_t id, const char *z85)
{
    sqlite3_stmt *q =
        sql_cached(st->cache, "SELECT 1 FROM agent WHERE id = ?1 AND pubkey = ?2"
                              " AND revoked_ms IS NULL AND enroll_used_ms IS NOT NULL");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, z85, -1, SQLITE_STATIC);
    int step = sqlite3_step(q);
    sql_release(st->cache, q);
    return step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -EIO;
}

/* ---- profile signatures ---- */

int store_profile_set_signature(store_t *st, const char *user, const char *name,
                                const char *sig_hex, const char *signer_hex, int *changed,
                                char *err, size_t errlen)
{
    *changed = 0;
    if ((sig_hex[0] != '\0' && strlen(sig_hex) != 128) ||
        (signer_hex[0] != '\0' && strlen(signer_hex) != 64)) {
        util_errf(err, errlen, "malformed profile signature");
        return -EINVAL;
    }
    int sp, rc;
    if ((rc = s_tx_begin(st, &sp, err, errlen)) < 0)
        return rc;
    sqlite3_stmt *q = sql_prepare(st->db, "UPDATE profiles SET signature = ?2, signer = ?3"
                                          " WHERE name = ?1 AND (signature <> ?2 OR signer <> ?3)");
    if (q == NULL) {
        rc = s_dberr(st, err, errlen);
    } else {
        s_bind_text(q, 1, name);
        s_bind_text(q, 2, sig_hex);
        s_bind_text(q, 3, signer_hex);
        rc = s_step_done(st, q, err, errlen);
        sqlite3_finalize(q);
    }
    if (rc == 0 && sqlite3_changes(st->db) == 1) {
        *changed = 1;
        /* every site carries every profile: each gets a new configuration */
        if (sql_exec(st->db, "UPDATE site SET generation = generation + 1") < 0)
            rc = s_dberr(st, err, errlen);
        char detail[256];
        snprintf(detail, sizeof detail, "profile=%s signer=%.16s", name,
                 signer_hex[0] ? signer_hex : "(unsigned)");
        if (rc == 0 && store_audit(st, user, "profile.sign", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    return s_tx_end(st, sp, rc, err, errlen);
}

/* ---- devices ---- */

struct dev_ok {
    char mac[18];
    char tags[256];
    uint32_t ip; /* when d->ip is set */
    int line;
    size_t index;
};

static int s_reservation_check(store_t *st, int64_t site_id, const char *site, const char *ip_text,
                               uint32_t ip, const char *pre, char *err, size_t errlen);
static int s_class_known(store_t *st, int64_t site_id, const char *name, char *err, size_t errlen);

/* 0 when profile `name` is loaded, -ENOENT with a message when not. */
static int s_profile_known(store_t *st, const char *name, char *err, size_t errlen)
{
    char q1[SHOW_MAX + 4];
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT 1 FROM profiles WHERE name = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, name);
    int step = sqlite3_step(q);
    sqlite3_finalize(q);
    if (step == SQLITE_ROW)
        return 0;
    if (step != SQLITE_DONE)
        return s_dberr(st, err, errlen);
    util_errf(err, errlen, "unknown profile '%s'", s_show(name, q1));
    return -ENOENT;
}

/* Prefix for row messages: "line N: " on import, "" otherwise. */
static const char *s_line_prefix(int line, char buf[32])
{
    if (line > 0)
        snprintf(buf, 32, "line %d: ", line);
    else
        buf[0] = '\0';
    return buf;
}

/* Validates one device row without the database. */
static int s_device_check(const struct store_device_in *d, struct dev_ok *ok, char *err,
                          size_t errlen)
{
    char pre[32], msg[256], q[SHOW_MAX + 4];
    int rc = 0;
    s_line_prefix(d->line, pre);
    ok->line = d->line;
    if (s_empty(d->mac)) {
        snprintf(msg, sizeof msg, "missing MAC address");
        rc = -EINVAL;
    } else if (util_mac_canon(d->mac, ok->mac) < 0) {
        snprintf(msg, sizeof msg, "invalid MAC address '%s'", s_show(d->mac, q));
        rc = -EINVAL;
    } else if (s_empty(d->site)) {
        snprintf(msg, sizeof msg, "missing site");
        rc = -EINVAL;
    } else if (store_check_name("site", d->site, msg, sizeof msg) < 0 ||
               (!s_empty(d->model) && store_check_model(d->model, msg, sizeof msg) < 0) ||
               store_check_serial(d->serial, msg, sizeof msg) < 0 ||
               store_check_tags(d->tags, ok->tags, sizeof ok->tags, msg, sizeof msg) < 0 ||
               (!s_empty(d->class_name) &&
                store_check_name("class", d->class_name, msg, sizeof msg) < 0) ||
               (!s_empty(d->version) &&
                store_check_fw_part("version", d->version, msg, sizeof msg) < 0) ||
               store_check_serial(d->serial_config, msg, sizeof msg) < 0 ||
               store_check_serial(d->serial_firmware, msg, sizeof msg) < 0 ||
               store_check_serial(d->serial_boot, msg, sizeof msg) < 0 ||
               (!s_empty(d->profile) &&
                store_check_name("profile", d->profile, msg, sizeof msg) < 0)) {
        rc = -EINVAL;
    } else if (!s_empty(d->ip) && dhcpopt_ip_parse(d->ip, &ok->ip) < 0) {
        snprintf(msg, sizeof msg, "invalid IP address '%s' (a.b.c.d)", s_show(d->ip, q));
        rc = -EINVAL;
    }
    if (rc < 0)
        util_errf(err, errlen, "%s%s", pre, msg);
    return rc;
}

/* Inserts checked rows inside the caller's transaction. */
static int s_device_insert(store_t *st, const struct store_device_in *rows,
                           const struct dev_ok *oks, size_t n, const char *origin, json_t *site_ids,
                           char *err, size_t errlen)
{
    char pre[32], qs[SHOW_MAX + 4];
    sqlite3_stmt *qsite = sql_prepare(st->db, "SELECT id FROM site WHERE name = ?1");
    sqlite3_stmt *qdup = sql_prepare(
        st->db, "SELECT s.name FROM device d JOIN site s ON s.id = d.site_id WHERE d.mac = ?1");
    sqlite3_stmt *qins =
        sql_prepare(st->db, "INSERT INTO device(mac, site_id, model, serial, tags, origin,"
                            " created_ms, ip, class, current_version, serial_config,"
                            " serial_firmware, serial_boot, profile) VALUES (?1, ?2, ?3, ?4, ?5,"
                            " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    sqlite3_stmt *qgen =
        sql_prepare(st->db, "UPDATE site SET generation = generation + 1 WHERE id = ?1");
    int rc = 0;
    if (qsite == NULL || qdup == NULL || qins == NULL || qgen == NULL)
        rc = s_dberr(st, err, errlen);
    int64_t now = (int64_t)util_now_ms();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct store_device_in *d = &rows[i];
        s_line_prefix(d->line, pre);
        sqlite3_reset(qsite);
        s_bind_text(qsite, 1, d->site);
        int step = sqlite3_step(qsite);
        if (step == SQLITE_DONE) {
            util_errf(err, errlen, "%sunknown site '%s'", pre, s_show(d->site, qs));
            rc = -ENOENT;
            break;
        } else if (step != SQLITE_ROW) {
            rc = s_dberr(st, err, errlen);
            break;
        }
        int64_t site_id = sqlite3_column_int64(qsite, 0);
        sqlite3_reset(qdup);
        s_bind_text(qdup, 1, oks[i].mac);
        step = sqlite3_step(qdup);
        if (step == SQLITE_ROW) {
            util_errf(err, errlen, "%sdevice %s already exists (site %s)", pre, oks[i].mac,
                      s_show((const char *)sqlite3_column_text(qdup, 0), qs));
            rc = -EEXIST;
            break;
        } else if (step != SQLITE_DONE) {
            rc = s_dberr(st, err, errlen);
            break;
        }
        if (!s_empty(d->class_name)) {
            char msg[256];
            rc = s_class_known(st, site_id, d->class_name, msg, sizeof msg);
            if (rc < 0) {
                util_errf(err, errlen, "%s%s", pre, msg);
                break;
            }
        }
        if (!s_empty(d->ip) && (rc = s_reservation_check(st, site_id, d->site, d->ip, oks[i].ip,
                                                         pre, err, errlen)) < 0)
            break;
        if (!s_empty(d->profile)) {
            char msg[256];
            rc = s_profile_known(st, d->profile, msg, sizeof msg);
            if (rc < 0) {
                util_errf(err, errlen, "%s%s", pre, msg);
                break;
            }
        }
        sqlite3_reset(qins);
        s_bind_text(qins, 1, oks[i].mac);
        sqlite3_bind_int64(qins, 2, site_id);
        s_bind_text(qins, 3, d->model);
        s_bind_text(qins, 4, d->serial);
        s_bind_text(qins, 5, oks[i].tags);
        s_bind_text(qins, 6, origin);
        sqlite3_bind_int64(qins, 7, now);
        s_bind_text(qins, 8, d->ip);
        s_bind_text(qins, 9, d->class_name);
        s_bind_text(qins, 10, d->version);
        s_bind_text(qins, 11, d->serial_config);
        s_bind_text(qins, 12, d->serial_firmware);
        s_bind_text(qins, 13, d->serial_boot);
        s_bind_text(qins, 14, d->profile);
        if ((rc = s_step_done(st, qins, err, errlen)) < 0)
            break;
        /* remember the site once */
        int added = s_ids_add(site_ids, site_id);
        if (added < 0) {
            util_errf(err, errlen, "out of memory");
            rc = -ENOMEM;
            break;
        }
        if (added) {
            sqlite3_reset(qgen);
            sqlite3_bind_int64(qgen, 1, site_id);
            rc = s_step_done(st, qgen, err, errlen);
        }
    }
    sqlite3_finalize(qsite);
    sqlite3_finalize(qdup);
    sqlite3_finalize(qins);
    sqlite3_finalize(qgen);
    return rc;
}

int store_device_add(store_t *st, const char *user, const struct store_device_in *d,
                     int64_t *site_id_out, char *err, size_t errlen)
{
    struct dev_ok ok;
    struct store_device_in row = *d;
    row.line = 0;
    int rc = s_device_check(&row, &ok, err, errlen);
    if (rc < 0)
        return rc;
    json_t *ids;
    int sp;
    if ((rc = s_tx_begin_ids(st, &sp, &ids, err, errlen)) < 0)
        return rc;
    rc = s_device_insert(st, &row, &ok, 1, "operator", ids, err, errlen);
    if (rc == 0) {
        char detail[1024], qm[160], qs[160];
        snprintf(detail, sizeof detail, "mac=%s site=%s model=%s serial=%s tags=%s ip=%s class=%s",
                 ok.mac, row.site, log_quote(row.model ? row.model : "", qm, sizeof qm),
                 log_quote(row.serial ? row.serial : "", qs, sizeof qs), ok.tags,
                 row.ip ? row.ip : "", row.class_name ? row.class_name : "");
        if (store_audit(st, user, "device.add", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    rc = s_tx_end(st, sp, rc, err, errlen);
    if (rc == 0 && site_id_out)
        *site_id_out = json_integer_value(json_array_get(ids, 0));
    json_decref(ids);
    return rc;
}

static int s_cmp_dev(const void *a, const void *b)
{
    const struct dev_ok *x = a, *y = b;
    int c = strcmp(x->mac, y->mac);
    if (c != 0)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

int store_device_import(store_t *st, const char *user, const struct store_device_in *rows, size_t n,
                        json_t **site_ids, char *err, size_t errlen)
{
    if (site_ids)
        *site_ids = NULL;
    if (n == 0) {
        util_errf(err, errlen, "no devices to import");
        return -EINVAL;
    }
    if (n > STORE_IMPORT_MAX) {
        util_errf(err, errlen, "too many devices in one import (at most %d)", STORE_IMPORT_MAX);
        return -EINVAL;
    }
    struct dev_ok *oks = calloc(n, sizeof *oks);
    struct dev_ok *sorted = calloc(n, sizeof *sorted);
    json_t *ids = json_array();
    int rc = 0;
    if (oks == NULL || sorted == NULL || ids == NULL) {
        util_errf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = s_device_check(&rows[i], &oks[i], err, errlen);
        oks[i].index = i;
    }
    if (rc == 0) {
        /* duplicates within the rows: report the earliest second occurrence */
        memcpy(sorted, oks, n * sizeof *oks);
        qsort(sorted, n, sizeof *sorted, s_cmp_dev);
        const struct dev_ok *first = NULL, *second = NULL;
        for (size_t i = 1; i < n; i++) {
            if (strcmp(sorted[i].mac, sorted[i - 1].mac) != 0)
                continue;
            if (second == NULL || sorted[i].index < second->index) {
                second = &sorted[i];
                /* the first occurrence of this MAC precedes it in sorted order */
                size_t j = i - 1;
                while (j > 0 && strcmp(sorted[j - 1].mac, sorted[i].mac) == 0)
                    j--;
                first = &sorted[j];
            }
        }
        if (second != NULL) {
            char pre[32];
            util_errf(err, errlen, "%sdevice %s appears twice (also line %d)",
                      s_line_prefix(second->line, pre), second->mac, first->line);
            rc = -EEXIST;
        }
    }
    int sp = 0, in_tx = 0;
    if (rc == 0 && (rc = s_tx_begin(st, &sp, err, errlen)) == 0)
        in_tx = 1;
    if (rc == 0)
        rc = s_device_insert(st, rows, oks, n, "import", ids, err, errlen);
    if (rc == 0) {
        char detail[128];
        snprintf(detail, sizeof detail, "count=%zu sites=%zu", n, json_array_size(ids));
        if (store_audit(st, user, "device.import", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    if (in_tx)
        rc = s_tx_end(st, sp, rc, err, errlen);
    free(oks);
    free(sorted);
    if (rc == 0 && site_ids)
        *site_ids = json_incref(ids);
    json_decref(ids);
    return rc;
}

#define DEVICE_SELECT                                                                              \
    "SELECT d.id, d.mac, s.name, d.model, d.serial, d.tags, d.vendor_class, d.current_version,"    \
    " d.origin, d.created_ms, d.last_seen_ms, d.ip, d.class, d.serial_config,"                     \
    " d.serial_firmware, d.serial_boot, d.profile"                                                 \
    " FROM device d JOIN site s ON s.id = d.site_id "

/* "version" repeats current_version under the name rollouts use. */
static const struct col s_device_cols[] = {
    {"id", COL_INT, 0},
    {"mac", COL_TEXT, 1},
    {"site", COL_TEXT, 2},
    {"model", COL_TEXT, 3},
    {"serial", COL_TEXT, 4},
    {"tags", COL_COMMAS, 5},
    {"vendor_class", COL_TEXT, 6},
    {"current_version", COL_TEXT, 7},
    {"origin", COL_TEXT, 8},
    {"created_ms", COL_INT, 9},
    {"last_seen_ms", COL_INT_NULL, 10},
    {"ip", COL_TEXT, 11},
    {"class", COL_TEXT, 12},
    {"version", COL_TEXT, 7},
    {"serial_config", COL_TEXT, 13},
    {"serial_firmware", COL_TEXT, 14},
    {"serial_boot", COL_TEXT, 15},
    {"profile", COL_TEXT, 16},
};
static const struct row_type s_device_row = {s_device_cols, N_COLS(s_device_cols), NULL};

int store_device_list(store_t *st, const struct store_device_filter *f, json_t **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    if (f->limit < 0 || s_empty(f->after_site) != s_empty(f->after_mac)) {
        util_errf(err, errlen, "invalid paging arguments");
        return -EINVAL;
    }
    if (!s_empty(f->site)) {
        int rc = store_site_id(st, f->site, NULL, err, errlen);
        if (rc < 0)
            return rc;
    }
    sqlite3_stmt *q =
        sql_prepare(st->db, DEVICE_SELECT "WHERE (?1 IS NULL OR s.name = ?1)"
                                          " AND (?2 IS NULL OR d.model = ?2)"
                                          " AND (?3 IS NULL OR (s.name, d.mac) > (?3, ?4))"
                                          " ORDER BY s.name, d.mac LIMIT ?5");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_opt_text(q, 1, f->site);
    s_bind_opt_text(q, 2, f->model);
    s_bind_opt_text(q, 3, f->after_site);
    s_bind_opt_text(q, 4, f->after_mac);
    sqlite3_bind_int64(q, 5, f->limit > 0 ? f->limit : -1);
    return s_collect(st, q, &s_device_row, out, err, errlen);
}

int store_device_show(store_t *st, const char *mac, json_t **out, char *err, size_t errlen)
{
    char canon[18], qs[SHOW_MAX + 4];
    *out = NULL;
    if (s_empty(mac) || util_mac_canon(mac, canon) < 0) {
        util_errf(err, errlen, "invalid MAC address '%s'", s_show(mac, qs));
        return -EINVAL;
    }
    sqlite3_stmt *q = sql_prepare(st->db, DEVICE_SELECT "WHERE d.mac = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, canon);
    int rc = s_collect_one(st, q, &s_device_row, out, err, errlen);
    if (rc == -ENOENT)
        util_errf(err, errlen, "unknown device %s", canon);
    return rc;
}

/* ---- blobs ---- */

int store_blob_get(store_t *st, const char *sha256, uint64_t *size, char *err, size_t errlen)
{
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT size FROM blob WHERE sha256 = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, sha256);
    int64_t have = 0;
    int rc = s_step_int(st, q, &have, err, errlen);
    if (rc == 0 && size)
        *size = (uint64_t)have;
    else if (rc == -ENOENT)
        util_errf(err, errlen, "blob %s is not in the image store", sha256);
    return rc;
}

/* Inside a transaction: inserts the blob or checks its recorded size. */
static int s_blob_put(store_t *st, const char *sha256, uint64_t size, char *err, size_t errlen)
{
    uint64_t have = 0;
    int rc = store_blob_get(st, sha256, &have, err, errlen);
    if (rc == 0) {
        if (have != size) {
            util_errf(err, errlen, "blob %s is recorded with size %llu, not %llu", sha256,
                      (unsigned long long)have, (unsigned long long)size);
            return -EEXIST;
        }
        return 0;
    }
    if (rc != -ENOENT)
        return rc;
    if (size > INT64_MAX) {
        util_errf(err, errlen, "blob too large");
        return -EINVAL;
    }
    sqlite3_stmt *q =
        sql_prepare(st->db, "INSERT INTO blob(sha256, size, created_ms) VALUES (?1, ?2, ?3)");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, sha256);
    sqlite3_bind_int64(q, 2, (int64_t)size);
    sqlite3_bind_int64(q, 3, (int64_t)util_now_ms());
    rc = s_step_done(st, q, err, errlen);
    sqlite3_finalize(q);
    return rc;
}

int store_blob_register(store_t *st, const char *sha256, uint64_t size, char *err, size_t errlen)
{
    int rc = store_check_sha256(sha256, err, errlen);
    if (rc < 0)
        return rc;
    int sp;
    if ((rc = s_tx_begin(st, &sp, err, errlen)) < 0)
        return rc;
    rc = s_blob_put(st, sha256, size, err, errlen);
    return s_tx_end(st, sp, rc, err, errlen);
}

/* ---- firmware ---- */

int store_firmware_free(store_t *st, const char *vendor, const char *version, char *err,
                        size_t errlen)
{
    sqlite3_stmt *q =
        sql_prepare(st->db, "SELECT id FROM firmware WHERE vendor = ?1 AND version = ?2");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, vendor);
    s_bind_text(q, 2, version);
    int step = sqlite3_step(q), rc;
    char q1[SHOW_MAX + 4], q2[SHOW_MAX + 4];
    if (step == SQLITE_ROW) {
        util_errf(err, errlen, "firmware %s/%s already exists", s_show(vendor, q1),
                  s_show(version, q2));
        rc = -EEXIST;
    } else if (step == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = s_dberr(st, err, errlen);
    }
    sqlite3_finalize(q);
    return rc;
}

static int s_fw_validate(const struct store_fw_in *fw, char *err, size_t errlen)
{
    int rc;
    if ((rc = store_check_fw_part("vendor", fw->vendor, err, errlen)) < 0 ||
        (rc = store_check_fw_part("version", fw->version, err, errlen)) < 0 ||
        (rc = store_check_text("description", fw->description, 1024, err, errlen)) < 0)
        return rc;
    if (fw->n_models == 0 || fw->n_models > 256) {
        util_errf(err, errlen, "firmware needs 1-256 models");
        return -EINVAL;
    }
    if (fw->n_files == 0 || fw->n_files > 256) {
        util_errf(err, errlen, "firmware needs 1-256 files");
        return -EINVAL;
    }
    for (size_t i = 0; i < fw->n_models; i++) {
        if ((rc = store_check_model(fw->models[i], err, errlen)) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(fw->models[i], fw->models[j]) == 0) {
                util_errf(err, errlen, "model %s given twice", fw->models[i]);
                return -EINVAL;
            }
    }
    for (size_t i = 0; i < fw->n_files; i++) {
        const struct store_fw_file *f = &fw->files[i];
        if ((rc = store_check_file_name(f->name, err, errlen)) < 0 ||
            (rc = store_check_sha256(f->sha256, err, errlen)) < 0)
            return rc;
        if (f->signature && f->signature[0] &&
            (rc = store_check_hex("signature", f->signature, 128, err, errlen)) < 0)
            return rc;
        if (f->signer && f->signer[0] &&
            (rc = store_check_hex("signer", f->signer, 64, err, errlen)) < 0)
            return rc;
        if (f->signer && f->signer[0] && !(f->signature && f->signature[0])) {
            util_errf(err, errlen, "file %s names a signer but carries no signature", f->name);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->name, fw->files[j].name) == 0) {
                util_errf(err, errlen, "file name %s given twice", f->name);
                return -EINVAL;
            }
    }
    return 0;
}

int store_firmware_add(store_t *st, const char *user, const struct store_fw_in *fw, int64_t *id_out,
                       json_t **site_ids, char *err, size_t errlen)
{
    if (site_ids)
        *site_ids = NULL;
    int rc = s_fw_validate(fw, err, errlen);
    if (rc < 0)
        return rc;
    json_t *ids;
    int sp;
    if ((rc = s_tx_begin_ids(st, &sp, &ids, err, errlen)) < 0)
        return rc;
    rc = store_firmware_free(st, fw->vendor, fw->version, err, errlen);
    for (size_t i = 0; rc == 0 && i < fw->n_files; i++) {
        const struct store_fw_file *f = &fw->files[i];
        if (f->has_size)
            rc = s_blob_put(st, f->sha256, f->size, err, errlen);
        else
            rc = store_blob_get(st, f->sha256, NULL, err, errlen);
    }
    int64_t id = 0;
    if (rc == 0) {
        sqlite3_stmt *q = sql_prepare(st->db, "INSERT INTO firmware(vendor, version, description,"
                                              " created_ms) VALUES (?1, ?2, ?3, ?4)");
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            s_bind_text(q, 1, fw->vendor);
            s_bind_text(q, 2, fw->version);
            s_bind_text(q, 3, fw->description);
            sqlite3_bind_int64(q, 4, (int64_t)util_now_ms());
            rc = s_step_done(st, q, err, errlen);
            sqlite3_finalize(q);
            id = sqlite3_last_insert_rowid(st->db);
        }
    }
    if (rc == 0) {
        sqlite3_stmt *q =
            sql_prepare(st->db, "INSERT INTO firmware_model(firmware_id, model) VALUES (?1, ?2)");
        if (q == NULL)
            rc = s_dberr(st, err, errlen);
        for (size_t i = 0; rc == 0 && i < fw->n_models; i++) {
            sqlite3_reset(q);
            sqlite3_bind_int64(q, 1, id);
            s_bind_text(q, 2, fw->models[i]);
            rc = s_step_done(st, q, err, errlen);
        }
        sqlite3_finalize(q);
    }
    if (rc == 0) {
        sqlite3_stmt *q = sql_prepare(
            st->db, "INSERT INTO firmware_file(firmware_id, name, sha256, signature, signer)"
                    " VALUES (?1, ?2, ?3, ?4, ?5)");
        if (q == NULL)
            rc = s_dberr(st, err, errlen);
        for (size_t i = 0; rc == 0 && i < fw->n_files; i++) {
            sqlite3_reset(q);
            sqlite3_bind_int64(q, 1, id);
            s_bind_text(q, 2, fw->files[i].name);
            s_bind_text(q, 3, fw->files[i].sha256);
            s_bind_text(q, 4, fw->files[i].signature ? fw->files[i].signature : "");
            s_bind_text(q, 5, fw->files[i].signer ? fw->files[i].signer : "");
            rc = s_step_done(st, q, err, errlen);
        }
        sqlite3_finalize(q);
    }
    if (rc == 0) {
        /* sites that now need these images */
        sqlite3_stmt *q = sql_prepare(
            st->db, "SELECT DISTINCT d.site_id FROM device d JOIN firmware_model m"
                    " ON m.model = d.model WHERE m.firmware_id = ?1 ORDER BY d.site_id");
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(q, 1, id);
            rc = s_collect_ids(st, q, ids, err, errlen);
        }
        q = rc == 0 ? sql_prepare(st->db,
                                  "UPDATE site SET generation = generation + 1 WHERE id IN"
                                  " (SELECT DISTINCT d.site_id FROM device d JOIN firmware_model m"
                                  " ON m.model = d.model WHERE m.firmware_id = ?1)")
                    : NULL;
        if (rc == 0 && q == NULL)
            rc = s_dberr(st, err, errlen);
        if (rc == 0) {
            sqlite3_bind_int64(q, 1, id);
            rc = s_step_done(st, q, err, errlen);
        }
        sqlite3_finalize(q);
    }
    if (rc == 0) {
        char models[512] = "", qm[600], qd[300], detail[1600];
        size_t mo = 0;
        for (size_t i = 0; i < fw->n_models && mo < sizeof models; i++)
            mo += (size_t)snprintf(models + mo, sizeof models - mo, "%s%s", i ? "," : "",
                                   fw->models[i]);
        snprintf(detail, sizeof detail, "firmware=%s/%s files=%zu models=%s description=%s",
                 fw->vendor, fw->version, fw->n_files, log_quote(models, qm, sizeof qm),
                 log_quote(fw->description ? fw->description : "", qd, sizeof qd));
        if (store_audit(st, user, "firmware.add", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    rc = s_tx_end_ids(st, sp, rc, ids, site_ids, err, errlen);
    if (rc == 0 && id_out)
        *id_out = id;
    return rc;
}

/* Models of a firmware as a JSON array. */
static json_t *s_fw_models(store_t *st, int64_t id)
{
    sqlite3_stmt *q = sql_prepare(
        st->db, "SELECT model FROM firmware_model WHERE firmware_id = ?1 ORDER BY model");
    if (q == NULL)
        return NULL;
    sqlite3_bind_int64(q, 1, id);
    json_t *arr = json_array();
    int step = SQLITE_DONE;
    while (arr && (step = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *m = s_jstr(sqlite3_column_text(q, 0));
        if (m == NULL || json_array_append_new(arr, m) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    sqlite3_finalize(q);
    if (arr && step != SQLITE_DONE) {
        json_decref(arr);
        arr = NULL;
    }
    return arr;
}

#define FW_SELECT                                                                                  \
    "SELECT f.id, f.vendor, f.version, f.description, f.created_ms,"                               \
    " (SELECT count(*) FROM firmware_file x WHERE x.firmware_id = f.id),"                          \
    " (SELECT coalesce(sum(b.size), 0) FROM firmware_file x JOIN blob b ON b.sha256 = x.sha256"    \
    "  WHERE x.firmware_id = f.id) FROM firmware f "

static const struct col s_fw_cols[] = {
    {"id", COL_INT, 0},           {"vendor", COL_TEXT, 1},    {"version", COL_TEXT, 2},
    {"description", COL_TEXT, 3}, {"created_ms", COL_INT, 4}, {"file_count", COL_INT, 5},
    {"total_size", COL_INT, 6},
};
static const struct row_type s_fw_row = {s_fw_cols, N_COLS(s_fw_cols), NULL};

/* Adds "models" to each firmware object of arr. */
static int s_fw_add_models(store_t *st, json_t *arr, char *err, size_t errlen)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        json_t *m = s_fw_models(st, json_integer_value(json_object_get(o, "id")));
        if (m == NULL)
            return s_dberr(st, err, errlen);
        if (s_set(o, "models", m) < 0) {
            util_errf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    return 0;
}

int store_firmware_list(store_t *st, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sqlite3_stmt *q = sql_prepare(st->db, FW_SELECT "ORDER BY f.vendor, f.version");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    json_t *arr = NULL;
    int rc = s_collect(st, q, &s_fw_row, &arr, err, errlen);
    if (rc == 0)
        rc = s_fw_add_models(st, arr, err, errlen);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

/* "signed" and "signer" (columns 3 and 4) only when signed: what unsigned
 * firmware shows is as before. */
static int s_fw_file_signed(sqlite3_stmt *q, json_t *o)
{
    const unsigned char *sig = sqlite3_column_text(q, 3), *who = sqlite3_column_text(q, 4);
    if (sig && sig[0] &&
        (s_set(o, "signed", json_true()) || (who && who[0] && s_set(o, "signer", s_jstr(who)))))
        return -ENOMEM;
    return 0;
}

static const struct col s_fw_file_cols[] = {
    {"name", COL_TEXT, 0},
    {"sha256", COL_TEXT, 1},
    {"size", COL_INT, 2},
};
static const struct row_type s_fw_file_row = {s_fw_file_cols, N_COLS(s_fw_file_cols),
                                              s_fw_file_signed};

int store_firmware_show(store_t *st, const char *ref, json_t **out, char *err, size_t errlen)
{
    char qs[SHOW_MAX + 4];
    *out = NULL;
    const char *slash = ref ? strchr(ref, '/') : NULL;
    sqlite3_stmt *q;
    if (slash != NULL) {
        q = sql_prepare(st->db, FW_SELECT "WHERE f.vendor = ?1 AND f.version = ?2");
        if (q == NULL)
            return s_dberr(st, err, errlen);
        sqlite3_bind_text(q, 1, ref, (int)(slash - ref), SQLITE_TRANSIENT);
        s_bind_text(q, 2, slash + 1);
    } else if (s_is_decimal(ref)) {
        q = sql_prepare(st->db, FW_SELECT "WHERE f.id = ?1");
        if (q == NULL)
            return s_dberr(st, err, errlen);
        sqlite3_bind_int64(q, 1, strtoll(ref, NULL, 10));
    } else {
        util_errf(err, errlen, "invalid firmware '%s' (VENDOR/VERSION or a numeric id)",
                  s_show(ref, qs));
        return -EINVAL;
    }
    json_t *arr = NULL, *fw = NULL;
    int rc = s_collect_one(st, q, &s_fw_row, &fw, err, errlen);
    if (rc == -ENOENT)
        util_errf(err, errlen, "unknown firmware '%s'", s_show(ref, qs));
    if (rc < 0)
        return rc;
    arr = json_array();
    if (arr == NULL || json_array_append(arr, fw) < 0) {
        util_errf(err, errlen, "out of memory");
        rc = -ENOMEM;
    } else {
        rc = s_fw_add_models(st, arr, err, errlen);
    }
    json_decref(arr);
    if (rc == 0) {
        q = sql_prepare(st->db, "SELECT x.name, x.sha256, b.size, x.signature, x.signer"
                                " FROM firmware_file x"
                                " JOIN blob b ON b.sha256 = x.sha256"
                                " WHERE x.firmware_id = ?1 ORDER BY x.name");
        json_t *files = NULL;
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(q, 1, json_integer_value(json_object_get(fw, "id")));
            rc = s_collect(st, q, &s_fw_file_row, &files, err, errlen);
        }
        if (rc == 0)
            rc = s_set(fw, "files", files);
        if (rc == -ENOMEM)
            util_errf(err, errlen, "out of memory");
    }
    if (rc < 0) {
        json_decref(fw);
        return rc;
    }
    *out = fw;
    return 0;
}

/* ---- events ---- */

static const struct col s_event_cols[] = {
    {"id", COL_INT, 0},    {"agent", COL_TEXT, 1},  {"site", COL_TEXT, 2},
    {"seq", COL_INT, 3},   {"time_ms", COL_INT, 4}, {"received_ms", COL_INT, 5},
    {"kind", COL_TEXT, 6}, {"mac", COL_TEXT, 7},    {"detail", COL_TEXT, 8},
};
static const struct row_type s_event_row = {s_event_cols, N_COLS(s_event_cols), NULL};

int store_event_list(store_t *st, const struct store_event_filter *f, json_t **out, char *err,
                     size_t errlen)
{
    char canon[18] = "", qs[SHOW_MAX + 4];
    int rc;
    *out = NULL;
    if (f->limit < 0 || (f->has_since && f->since < 0)) {
        util_errf(err, errlen, "limit and since must not be negative");
        return -EINVAL;
    }
    if (!s_empty(f->mac) && util_mac_canon(f->mac, canon) < 0) {
        util_errf(err, errlen, "invalid MAC address '%s'", s_show(f->mac, qs));
        return -EINVAL;
    }
    if (!s_empty(f->site) && (rc = store_site_id(st, f->site, NULL, err, errlen)) < 0)
        return rc;
    if (!s_empty(f->agent)) {
        sqlite3_stmt *q = sql_prepare(st->db, "SELECT 1 FROM agent WHERE name = ?1");
        if (q == NULL)
            return s_dberr(st, err, errlen);
        s_bind_text(q, 1, f->agent);
        int step = sqlite3_step(q);
        sqlite3_finalize(q);
        if (step == SQLITE_DONE) {
            util_errf(err, errlen, "unknown agent '%s'", s_show(f->agent, qs));
            return -ENOENT;
        }
        if (step != SQLITE_ROW)
            return s_dberr(st, err, errlen);
    }
    /* newest N when not paging: walk backwards, then reverse */
    int newest = !f->has_since && f->limit > 0;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT e.id, coalesce(a.name, 'firmfleetd'), s.name, e.seq, e.time_ms,"
             " e.received_ms, e.kind, e.mac, e.detail FROM event e"
             " LEFT JOIN agent a ON a.id = e.agent_id"
             " LEFT JOIN site s ON s.id = coalesce(a.site_id, e.site_id)"
             " WHERE (?1 IS NULL OR a.name = ?1) AND (?2 IS NULL OR s.name = ?2)"
             " AND (?3 IS NULL OR e.kind = ?3) AND (?4 IS NULL OR e.mac = ?4) AND e.id > ?5"
             " ORDER BY e.id %s LIMIT ?6",
             newest ? "DESC" : "ASC");
    sqlite3_stmt *q = sql_prepare(st->db, sql);
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_opt_text(q, 1, f->agent);
    s_bind_opt_text(q, 2, f->site);
    s_bind_opt_text(q, 3, f->kind);
    s_bind_opt_text(q, 4, canon);
    sqlite3_bind_int64(q, 5, f->has_since ? f->since : -1);
    sqlite3_bind_int64(q, 6, f->limit > 0 ? f->limit : -1);
    json_t *arr = NULL;
    rc = s_collect(st, q, &s_event_row, &arr, err, errlen);
    if (rc < 0)
        return rc;
    if (newest) {
        json_t *rev = json_array();
        for (size_t i = json_array_size(arr); rev && i > 0; i--)
            if (json_array_append(rev, json_array_get(arr, i - 1)) < 0) {
                json_decref(rev);
                rev = NULL;
            }
        json_decref(arr);
        if (rev == NULL) {
            util_errf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        arr = rev;
    }
    *out = arr;
    return 0;
}

/* ---- site services ---- */

#define SUBNETS_PER_SITE 256
#define SCOPE_ITEMS_MAX 1024 /* classes, templates per scope */
#define IP_LIST_MAX 8
#define PRIORITY_MAX 1000000
#define PRIORITY_DEFAULT 100
#define LEASE_DEFAULT 86400
#define LEASE_MIN 60
#define TFTP_ROOT_MAX 200

/* "global" or "at site S", for messages. */
static const char *s_scope_text(const char *site, char out[96])
{
    char q[SHOW_MAX + 4];
    if (s_empty(site))
        snprintf(out, 96, "global");
    else
        snprintf(out, 96, "at site %s", s_show(site, q));
    return out;
}

/* The scope a site argument names: 0 (global) for NULL or "", else the
 * site's id. 0, -EINVAL (bad name), -ENOENT (unknown), -EIO. */
static int s_scope(store_t *st, const char *site, int64_t *site_id, char *err, size_t errlen)
{
    *site_id = 0;
    if (s_empty(site))
        return 0;
    int rc = store_check_name("site", site, err, errlen);
    return rc < 0 ? rc : store_site_id(st, site, site_id, err, errlen);
}

/* Bumps the generation of site_id (0: every site) and appends the ids of
 * the sites bumped to ids (no duplicates). Inside the caller's transaction. */
static int s_bump(store_t *st, int64_t site_id, json_t *ids, char *err, size_t errlen)
{
    sqlite3_stmt *q = sql_prepare(st->db, "UPDATE site SET generation = generation + 1"
                                          " WHERE ?1 = 0 OR id = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, site_id);
    int rc = s_step_done(st, q, err, errlen);
    sqlite3_finalize(q);
    if (rc < 0 || ids == NULL)
        return rc;
    q = sql_prepare(st->db, "SELECT id FROM site WHERE ?1 = 0 OR id = ?1 ORDER BY id");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, site_id);
    return s_collect_ids(st, q, ids, err, errlen);
}

/* Option specs and match rules, encoded and as written. */
struct packed {
    uint8_t *blob;
    size_t len;
    char *specs; /* one per line */
};

static void s_packed_free(struct packed *p)
{
    free(p->blob);
    free(p->specs);
    memset(p, 0, sizeof *p);
}

static int s_packed_alloc(const char *const *specs, size_t n, struct packed *p, char *err,
                          size_t errlen)
{
    size_t text = 1;
    for (size_t i = 0; i < n; i++)
        text += (specs[i] ? strnlen(specs[i], DHCPOPT_SPEC_MAX + 1) : 0) + 1;
    p->blob = malloc(n * DHCPOPT_PACKED_MAX + 1);
    p->specs = malloc(text);
    p->len = 0;
    if (p->blob == NULL || p->specs == NULL) {
        s_packed_free(p);
        util_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    p->specs[0] = '\0';
    return 0;
}

static void s_packed_spec(struct packed *p, const char *spec, size_t i)
{
    size_t o = strlen(p->specs);
    /* checked printable and at most DHCPOPT_SPEC_MAX long by the parser */
    sprintf(p->specs + o, "%s%s", i ? "\n" : "", spec);
}

/* Parses option specs into p. subnet: refuse the codes a subnet sets from
 * its own fields. */
static int s_pack_options(const char *const *specs, size_t n, int subnet, struct packed *p,
                          char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (n > STORE_LIST_MAX) {
        util_errf(err, errlen, "too many options (at most %d)", STORE_LIST_MAX);
        return -EINVAL;
    }
    int rc = s_packed_alloc(specs, n, p, err, errlen);
    uint8_t seen[256] = {0};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct dhcpopt o;
        if ((rc = dhcpopt_parse(specs[i], &o, err, errlen)) < 0)
            break;
        const char *why = !subnet        ? NULL
                          : o.code == 1  ? "(subnet mask) comes from the subnet's CIDR"
                          : o.code == 3  ? "(router) is the subnet's router (--router)"
                          : o.code == 6  ? "(DNS servers) is the subnet's dns (--dns)"
                          : o.code == 51 ? "(lease time) is the subnet's lease (--lease)"
                                         : NULL;
        if (why != NULL) {
            util_errf(err, errlen, "option %u %s", o.code, why);
            rc = -EINVAL;
        } else if (seen[o.code]++) {
            util_errf(err, errlen, "option %u given twice", o.code);
            rc = -EINVAL;
        } else {
            p->len += dhcpopt_pack(&o, p->blob + p->len);
            s_packed_spec(p, specs[i], i);
        }
    }
    if (rc < 0)
        s_packed_free(p);
    return rc;
}

static int s_pack_rules(const char *const *specs, size_t n, struct packed *p, char *err,
                        size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (n == 0 || n > STORE_LIST_MAX) {
        util_errf(err, errlen, "a class needs 1 to %d match rules", STORE_LIST_MAX);
        return -EINVAL;
    }
    int rc = s_packed_alloc(specs, n, p, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct dhcpopt_rule r;
        if ((rc = dhcpopt_rule_parse(specs[i], &r, err, errlen)) < 0)
            break;
        p->len += dhcpopt_rule_pack(&r, p->blob + p->len);
        s_packed_spec(p, specs[i], i);
    }
    if (rc < 0)
        s_packed_free(p);
    return rc;
}

/* The next line of a spec list (advances *sp), as a JSON string. */
static json_t *s_next_spec(const char **sp)
{
    const char *s = *sp, *nl = strchr(s, '\n');
    size_t n = nl ? (size_t)(nl - s) : strlen(s);
    *sp = nl ? nl + 1 : s + n;
    return json_stringn(s, n);
}

/* The packed list in column col and the specs it was written as in col + 1:
 * options [{spec, code, fill, value}] or, with rules, match rules [{spec,
 * kind, value, ignore_trailing_nul, enterprise}] (value: hex). NULL on
 * ENOMEM; a malformed blob ends the list early. */
static json_t *s_packed_json(sqlite3_stmt *q, int col, int rules)
{
    const uint8_t *blob = sqlite3_column_blob(q, col);
    size_t len = (size_t)sqlite3_column_bytes(q, col), off = 0;
    const char *sp = (const char *)sqlite3_column_text(q, col + 1);
    if (sp == NULL)
        sp = "";
    json_t *arr = json_array();
    struct dhcpopt o;
    struct dhcpopt_rule r;
    char hex[2 * DHCPOPT_VALUE_MAX + 1];
    while (arr != NULL && blob != NULL &&
           (rules ? dhcpopt_rule_unpack(blob, len, &off, &r)
                  : dhcpopt_unpack(blob, len, &off, &o)) == 1) {
        json_t *e = json_object();
        if (rules)
            util_hex(r.value, r.len, hex);
        else
            util_hex(o.value, o.len, hex);
        int bad =
            e == NULL || json_array_append_new(arr, e) < 0 || s_set(e, "spec", s_next_spec(&sp));
        if (!bad && rules)
            bad = s_set(e, "kind", json_string(dhcpopt_rule_kind_name(r.kind))) ||
                  s_set(e, "value", json_string(hex)) ||
                  s_set(e, "ignore_trailing_nul", json_boolean(r.ignore_trailing_nul)) ||
                  s_set(e, "enterprise", json_integer(r.enterprise));
        else if (!bad)
            bad = s_set(e, "code", json_integer(o.code)) ||
                  s_set(e, "fill", json_string(dhcpopt_fill_name(o.fill))) ||
                  s_set(e, "value", json_string(hex));
        if (bad) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* Checks a comma list of 1..IP_LIST_MAX addresses (NULL or "" is fine). */
static int s_check_ip_list(const char *what, const char *s, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4], one[32];
    if (s_empty(s))
        return 0;
    size_t count = 0;
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        uint32_t ip;
        snprintf(one, sizeof one, "%.*s", (int)(n < sizeof one - 1 ? n : sizeof one - 1), p);
        if (n >= sizeof one || dhcpopt_ip_parse(one, &ip) < 0) {
            util_errf(err, errlen, "invalid %s '%s' (a comma list of IPv4 addresses)", what,
                      s_show(s, q));
            return -EINVAL;
        }
        if (++count > IP_LIST_MAX) {
            util_errf(err, errlen, "too many %s addresses (at most %d)", what, IP_LIST_MAX);
            return -EINVAL;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

/* 1 when the comma lists a and b share an address. */
static int s_lists_meet(const char *a, const char *b, char common[32])
{
    for (const char *p = a; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        for (const char *r = b; r && *r;) {
            const char *c2 = strchr(r, ',');
            size_t m = c2 ? (size_t)(c2 - r) : strlen(r);
            if (n == m && memcmp(p, r, n) == 0 && n < 32) {
                memcpy(common, p, n);
                common[n] = '\0';
                return 1;
            }
            r = c2 ? c2 + 1 : r + m;
        }
        p = comma ? comma + 1 : p + n;
    }
    return 0;
}

/* 1 when every '/'-separated component of s is non-empty and not "." or
 * ".." (so no leading or trailing '/', no "//"). */
static int s_components_ok(const char *s)
{
    for (const char *p = s;;) {
        const char *slash = strchr(p, '/');
        size_t k = slash ? (size_t)(slash - p) : strlen(p);
        if (k == 0 || (k == 1 && p[0] == '.') || (k == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (slash == NULL)
            return 1;
        p = slash + 1;
    }
}

static int s_check_tftp_root(const char *s, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    size_t n = s ? strlen(s) : 0;
    int ok = n <= TFTP_ROOT_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '+' || c == '-' || c == '/';
    }
    ok = ok && (n == 0 || s_components_ok(s));
    if (!ok) {
        util_errf(err, errlen,
                  "invalid TFTP root '%s' (a relative path of A-Z a-z 0-9 . _ + - components, no . "
                  "or .., at most %d characters)",
                  s_show(s, q), TFTP_ROOT_MAX);
        return -EINVAL;
    }
    return 0;
}

int store_check_template_name(const char *s, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    size_t n = s ? strlen(s) : 0;
    int ok = n >= 1 && n <= 255 && s[0] != '/' && s[0] != ' ' && s[n - 1] != ' ';
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        ok = c >= 0x20 && c < 0x7f && c != '\\';
        if (ok && c == '{') {
            ok = strncmp(s + i, "{mac}", 5) == 0 || strncmp(s + i, "{MAC}", 5) == 0;
            i += 4; /* past the placeholder's '}' */
        } else if (c == '}') {
            ok = 0;
        }
    }
    ok = ok && s_components_ok(s);
    if (!ok) {
        util_errf(err, errlen,
                  "invalid template name '%s' (1-255 printable characters, no \\, no leading /, no "
                  "empty, . or .. component; {mac} and {MAC} are the only placeholders)",
                  s_show(s, q));
        return -EINVAL;
    }
    return 0;
}

/* ---- subnets ---- */

#define SUBNET_SELECT                                                                              \
    "SELECT n.id, s.name, n.cidr, n.pool_start, n.pool_end, n.router, n.dns, n.lease_seconds,"     \
    " n.relays, n.options, n.option_specs, n.created_ms FROM subnet n"                             \
    " JOIN site s ON s.id = n.site_id "

static const struct col s_subnet_cols[] = {
    {"id", COL_INT, 0},          {"site", COL_TEXT, 1},         {"cidr", COL_TEXT, 2},
    {"pool_start", COL_TEXT, 3}, {"pool_end", COL_TEXT, 4},     {"router", COL_TEXT, 5},
    {"dns", COL_COMMAS, 6},      {"lease_seconds", COL_INT, 7}, {"relays", COL_COMMAS, 8},
    {"options", COL_OPTIONS, 9}, {"created_ms", COL_INT, 11},
};
static const struct row_type s_subnet_row = {s_subnet_cols, N_COLS(s_subnet_cols), NULL};

/* Parses a CIDR argument into its canonical text, with the messages. */
static int s_cidr(const char *s, uint32_t *net, int *prefix, char canon[24], char *err,
                  size_t errlen)
{
    char q[SHOW_MAX + 4], ip[16];
    int rc = dhcpopt_cidr_parse(s, 8, net, prefix);
    if (rc == -EDOM) {
        dhcpopt_ip_format(*net, ip);
        util_errf(err, errlen, "CIDR '%s' has host bits set (the network is %s/%d)", s_show(s, q),
                  ip, *prefix);
        return -EINVAL;
    }
    if (rc < 0) {
        util_errf(err, errlen, "invalid CIDR '%s' (a.b.c.d/P with P from 8 to 30)", s_show(s, q));
        return -EINVAL;
    }
    dhcpopt_ip_format(*net, ip);
    snprintf(canon, 24, "%s/%d", ip, *prefix);
    return 0;
}

static uint32_t s_bcast(uint32_t net, int prefix)
{
    return net | (prefix == 0 ? 0xffffffffu : (0xffffffffu >> prefix));
}

/* An address argument strictly inside net/prefix (not network or broadcast). */
static int s_host_in(const char *what, const char *s, uint32_t net, int prefix, const char *cidr,
                     uint32_t *out, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    if (dhcpopt_ip_parse(s, out) < 0) {
        util_errf(err, errlen, "invalid %s '%s' (an IPv4 address)", what, s_show(s, q));
        return -EINVAL;
    }
    if (*out <= net || *out >= s_bcast(net, prefix)) {
        util_errf(err, errlen, "%s %s is not a host address of %s", what, s, cidr);
        return -EINVAL;
    }
    return 0;
}

int store_subnet_add(store_t *st, const char *user, const struct store_subnet_in *s,
                     json_t **site_ids, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4], cidr[24], first[32], last[32];
    uint32_t net, start, end, router = 0;
    int prefix, rc;
    int64_t lease = LEASE_DEFAULT;
    if (site_ids)
        *site_ids = NULL;
    if ((rc = store_check_name("site", s->site, err, errlen)) < 0 ||
        (rc = s_cidr(s->cidr, &net, &prefix, cidr, err, errlen)) < 0)
        return rc;
    const char *dash = s->pool ? strchr(s->pool, '-') : NULL;
    if (dash == NULL || (size_t)(dash - s->pool) >= sizeof first ||
        strlen(dash + 1) >= sizeof last) {
        util_errf(err, errlen, "invalid pool '%s' (START-END, two IPv4 addresses)",
                  s_show(s->pool, q));
        return -EINVAL;
    }
    snprintf(first, sizeof first, "%.*s", (int)(dash - s->pool), s->pool);
    snprintf(last, sizeof last, "%s", dash + 1);
    if ((rc = s_host_in("pool start", first, net, prefix, cidr, &start, err, errlen)) < 0 ||
        (rc = s_host_in("pool end", last, net, prefix, cidr, &end, err, errlen)) < 0)
        return rc;
    if (start > end) {
        util_errf(err, errlen, "pool start %s is after pool end %s", first, last);
        return -EINVAL;
    }
    if (!s_empty(s->router)) {
        if ((rc = s_host_in("router", s->router, net, prefix, cidr, &router, err, errlen)) < 0)
            return rc;
        if (router >= start && router <= end) {
            util_errf(err, errlen, "router %s is inside the pool %s", s->router, s->pool);
            return -EINVAL;
        }
    }
    if ((rc = s_check_ip_list("dns", s->dns, err, errlen)) < 0 ||
        (rc = s_check_ip_list("relay", s->relays, err, errlen)) < 0)
        return rc;
    if (s->lease != NULL && util_parse_i64(s->lease, LEASE_MIN, 4294967295LL, &lease) < 0) {
        util_errf(err, errlen, "invalid lease '%s' (%d to 4294967295 seconds)", s_show(s->lease, q),
                  LEASE_MIN);
        return -EINVAL;
    }
    struct packed opts;
    if ((rc = s_pack_options(s->options, s->n_options, 1, &opts, err, errlen)) < 0)
        return rc;
    json_t *ids;
    int sp;
    if ((rc = s_tx_begin_ids(st, &sp, &ids, err, errlen)) < 0) {
        s_packed_free(&opts);
        return rc;
    }
    int64_t site_id = 0;
    rc = store_site_id(st, s->site, &site_id, err, errlen);
    /* the site's other subnets: count, overlap, relays */
    sqlite3_stmt *qx = rc == 0 ? sql_prepare(st->db, "SELECT cidr, net, prefix, relays FROM subnet"
                                                     " WHERE site_id = ?1 ORDER BY net")
                               : NULL;
    if (rc == 0 && qx == NULL)
        rc = s_dberr(st, err, errlen);
    if (rc == 0) {
        sqlite3_bind_int64(qx, 1, site_id);
        int step, count = 0;
        while (rc == 0 && (step = sqlite3_step(qx)) == SQLITE_ROW) {
            const char *ocidr = (const char *)sqlite3_column_text(qx, 0);
            uint32_t onet = (uint32_t)sqlite3_column_int64(qx, 1);
            int oprefix = sqlite3_column_int(qx, 2);
            char common[32];
            if (++count >= SUBNETS_PER_SITE) {
                util_errf(err, errlen, "site %s has %d subnets already (the most there can be)",
                          s->site, SUBNETS_PER_SITE);
                rc = -EINVAL;
            } else if (strcmp(ocidr, cidr) == 0) {
                util_errf(err, errlen, "subnet %s already exists at site %s", cidr, s->site);
                rc = -EEXIST;
            } else if (net <= s_bcast(onet, oprefix) && onet <= s_bcast(net, prefix)) {
                util_errf(err, errlen, "subnet %s overlaps subnet %s of site %s", cidr,
                          s_show(ocidr, q), s->site);
                rc = -EEXIST;
            } else if (!s_empty(s->relays) &&
                       s_lists_meet(s->relays, (const char *)sqlite3_column_text(qx, 3), common)) {
                util_errf(err, errlen, "relay %s already selects subnet %s of site %s", common,
                          s_show(ocidr, q), s->site);
                rc = -EEXIST;
            }
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = s_dberr(st, err, errlen);
    }
    sqlite3_finalize(qx);
    if (rc == 0) {
        sqlite3_stmt *qi = sql_prepare(
            st->db, "INSERT INTO subnet(site_id, cidr, net, prefix, pool_start, pool_end, router,"
                    " dns, lease_seconds, relays, options, option_specs, created_ms)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
        if (qi == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(qi, 1, site_id);
            s_bind_text(qi, 2, cidr);
            sqlite3_bind_int64(qi, 3, net);
            sqlite3_bind_int(qi, 4, prefix);
            s_bind_text(qi, 5, first);
            s_bind_text(qi, 6, last);
            s_bind_text(qi, 7, s->router);
            s_bind_text(qi, 8, s->dns);
            sqlite3_bind_int64(qi, 9, lease);
            s_bind_text(qi, 10, s->relays);
            sqlite3_bind_blob(qi, 11, opts.blob, (int)opts.len, SQLITE_STATIC);
            s_bind_text(qi, 12, opts.specs);
            sqlite3_bind_int64(qi, 13, (int64_t)util_now_ms());
            rc = s_step_done(st, qi, err, errlen);
            sqlite3_finalize(qi);
        }
    }
    if (rc == 0)
        rc = s_bump(st, site_id, ids, err, errlen);
    if (rc == 0) {
        char detail[512];
        snprintf(detail, sizeof detail,
                 "site=%s cidr=%s pool=%s-%s router=%s dns=%s lease=%lld relays=%s options=%zu",
                 s->site, cidr, first, last, s->router ? s->router : "", s->dns ? s->dns : "",
                 (long long)lease, s->relays ? s->relays : "", s->n_options);
        if (store_audit(st, user, "subnet.add", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    s_packed_free(&opts);
    return s_tx_end_ids(st, sp, rc, ids, site_ids, err, errlen);
}

int store_subnet_list(store_t *st, const char *site, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    int64_t site_id = 0;
    int rc = s_scope(st, site, &site_id, err, errlen);
    if (rc < 0)
        return rc;
    sqlite3_stmt *q =
        sql_prepare(st->db, SUBNET_SELECT "WHERE ?1 = 0 OR n.site_id = ?1 ORDER BY s.name, n.net");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, site_id);
    return s_collect(st, q, &s_subnet_row, out, err, errlen);
}

int store_subnet_show(store_t *st, const char *site, const char *cidr, json_t **out, char *err,
                      size_t errlen)
{
    char canon[24];
    uint32_t net;
    int prefix;
    int64_t site_id;
    *out = NULL;
    int rc;
    if ((rc = store_check_name("site", site, err, errlen)) < 0 ||
        (rc = s_cidr(cidr, &net, &prefix, canon, err, errlen)) < 0 ||
        (rc = store_site_id(st, site, &site_id, err, errlen)) < 0)
        return rc;
    sqlite3_stmt *q = sql_prepare(st->db, SUBNET_SELECT "WHERE n.site_id = ?1 AND n.cidr = ?2");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, site_id);
    s_bind_text(q, 2, canon);
    rc = s_collect_one(st, q, &s_subnet_row, out, err, errlen);
    if (rc == -ENOENT)
        util_errf(err, errlen, "unknown subnet %s at site %s", canon, site);
    return rc;
}

int store_subnet_remove(store_t *st, const char *user, const char *site, const char *cidr,
                        json_t **out, json_t **site_ids, char *err, size_t errlen)
{
    char canon[24], q1[SHOW_MAX + 4];
    uint32_t net;
    int prefix, sp, rc;
    if (out)
        *out = NULL;
    if (site_ids)
        *site_ids = NULL;
    if ((rc = store_check_name("site", site, err, errlen)) < 0 ||
        (rc = s_cidr(cidr, &net, &prefix, canon, err, errlen)) < 0)
        return rc;
    json_t *ids, *old = NULL;
    if ((rc = s_tx_begin_ids(st, &sp, &ids, err, errlen)) < 0)
        return rc;
    int64_t site_id = 0;
    rc = store_subnet_show(st, site, canon, &old, err, errlen);
    if (rc == 0)
        rc = store_site_id(st, site, &site_id, err, errlen);
    if (rc == 0) {
        /* a reservation inside it would be left without a subnet */
        sqlite3_stmt *q =
            sql_prepare(st->db, "SELECT mac, ip FROM device WHERE site_id = ?1 AND ip <> ''"
                                " ORDER BY mac");
        int step = SQLITE_DONE;
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(q, 1, site_id);
            while ((step = sqlite3_step(q)) == SQLITE_ROW) {
                uint32_t ip;
                if (dhcpopt_ip_parse((const char *)sqlite3_column_text(q, 1), &ip) == 0 &&
                    ip >= net && ip <= s_bcast(net, prefix)) {
                    util_errf(err, errlen, "subnet %s holds the reservation %s of device %s", canon,
                              s_show((const char *)sqlite3_column_text(q, 1), q1),
                              (const char *)sqlite3_column_text(q, 0));
                    rc = -EBUSY;
                    break;
                }
            }
            if (rc == 0 && step != SQLITE_DONE)
                rc = s_dberr(st, err, errlen);
            sqlite3_finalize(q);
        }
    }
    if (rc == 0) {
        sqlite3_stmt *q =
            sql_prepare(st->db, "DELETE FROM subnet WHERE site_id = ?1 AND cidr = ?2");
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(q, 1, site_id);
            s_bind_text(q, 2, canon);
            rc = s_step_done(st, q, err, errlen);
            sqlite3_finalize(q);
        }
    }
    if (rc == 0)
        rc = s_bump(st, site_id, ids, err, errlen);
    if (rc == 0) {
        char detail[256];
        snprintf(detail, sizeof detail, "site=%s cidr=%s", site, canon);
        if (store_audit(st, user, "subnet.remove", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    rc = s_tx_end_ids(st, sp, rc, ids, site_ids, err, errlen);
    if (rc == 0 && out)
        *out = json_incref(old);
    json_decref(old);
    return rc;
}

/* ---- reservations (device ip and class), inside the device insert ---- */

static int s_class_known(store_t *st, int64_t site_id, const char *name, char *err, size_t errlen)
{
    char q1[SHOW_MAX + 4];
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT 1 FROM device_class WHERE name = ?1"
                                          " AND (site_id IS NULL OR site_id = ?2)");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, name);
    sqlite3_bind_int64(q, 2, site_id);
    int step = sqlite3_step(q), rc = 0;
    sqlite3_finalize(q);
    if (step == SQLITE_DONE) {
        util_errf(err, errlen, "unknown class '%s' (neither global nor at the device's site)",
                  s_show(name, q1));
        rc = -ENOENT;
    } else if (step != SQLITE_ROW) {
        rc = s_dberr(st, err, errlen);
    }
    return rc;
}

static int s_reservation_check(store_t *st, int64_t site_id, const char *site, const char *ip_text,
                               uint32_t ip, const char *pre, char *err, size_t errlen)
{
    char q1[SHOW_MAX + 4];
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT cidr, net, prefix, router FROM subnet"
                                          " WHERE site_id = ?1 ORDER BY net");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, site_id);
    int step, n = 0, rc = 0, inside = 0;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        uint32_t net = (uint32_t)sqlite3_column_int64(q, 1);
        int prefix = sqlite3_column_int(q, 2);
        const char *cidr = (const char *)sqlite3_column_text(q, 0);
        const char *router = (const char *)sqlite3_column_text(q, 3);
        n++;
        if (ip < net || ip > s_bcast(net, prefix))
            continue;
        inside = 1;
        if (ip == net || ip == s_bcast(net, prefix)) {
            util_errf(err, errlen, "%sip %s is the %s address of subnet %s", pre, ip_text,
                      ip == net ? "network" : "broadcast", s_show(cidr, q1));
            rc = -EINVAL;
        } else if (router != NULL && strcmp(router, ip_text) == 0) {
            util_errf(err, errlen, "%sip %s is the router of subnet %s", pre, ip_text,
                      s_show(cidr, q1));
            rc = -EINVAL;
        }
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_dberr(st, err, errlen);
    sqlite3_finalize(q);
    if (rc == 0 && n > 0 && !inside) {
        util_errf(err, errlen, "%sip %s is not inside any subnet of site %s", pre, ip_text,
                  s_show(site, q1));
        rc = -EINVAL;
    }
    if (rc < 0)
        return rc;
    q = sql_prepare(st->db, "SELECT mac FROM device WHERE site_id = ?1 AND ip = ?2");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, site_id);
    s_bind_text(q, 2, ip_text);
    step = sqlite3_step(q);
    if (step == SQLITE_ROW) {
        util_errf(err, errlen, "%sip %s is already reserved for device %s", pre, ip_text,
                  s_show((const char *)sqlite3_column_text(q, 0), q1));
        rc = -EEXIST;
    } else if (step != SQLITE_DONE) {
        rc = s_dberr(st, err, errlen);
    }
    sqlite3_finalize(q);
    return rc;
}

/* ---- classes and templates: named items, global or per site ---- */

/* The id of item `name` in table (a constant) of exactly scope site_id (0 =
 * global): 0 found, -ENOENT, -EIO. */
static int s_scoped_id(store_t *st, const char *table, const char *name, int64_t site_id,
                       int64_t *id, char *err, size_t errlen)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE name = ?1 AND coalesce(site_id, 0) = ?2",
             table);
    sqlite3_stmt *q = sql_prepare(st->db, sql);
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, name);
    sqlite3_bind_int64(q, 2, site_id);
    return s_step_int(st, q, id, err, errlen);
}

/* Refuses a new item when the scope holds SCOPE_ITEMS_MAX already. */
static int s_scope_room(store_t *st, const char *table, int64_t site_id, const char *what,
                        char *err, size_t errlen)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE coalesce(site_id, 0) = ?1", table);
    sqlite3_stmt *q = sql_prepare(st->db, sql);
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, site_id);
    int rc = sqlite3_step(q) == SQLITE_ROW ? 0 : s_dberr(st, err, errlen);
    if (rc == 0 && sqlite3_column_int64(q, 0) >= SCOPE_ITEMS_MAX) {
        util_errf(err, errlen, "too many %s in one scope (at most %d)", what, SCOPE_ITEMS_MAX);
        rc = -EINVAL;
    }
    sqlite3_finalize(q);
    return rc;
}

static int s_delete_id(store_t *st, const char *table, int64_t id, char *err, size_t errlen)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id = ?1", table);
    sqlite3_stmt *q = sql_prepare(st->db, sql);
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, id);
    int rc = s_step_done(st, q, err, errlen);
    sqlite3_finalize(q);
    return rc;
}

/* Before item `name` (a noun: "class"; plural for the limit's message) goes
 * into table in the scope site names: *site_id gets the scope and *old the
 * id of the item it replaces (0: none). An item of that name in that scope
 * is deleted when replace, else -EEXIST; a new one must fit
 * SCOPE_ITEMS_MAX. Inside the caller's transaction. */
static int s_scoped_claim(store_t *st, const char *table, const char *noun, const char *plural,
                          const char *name, const char *site, int replace, int64_t *site_id,
                          int64_t *old, char *err, size_t errlen)
{
    char scope[96];
    *old = 0;
    int rc = s_scope(st, site, site_id, err, errlen);
    if (rc < 0)
        return rc;
    rc = s_scoped_id(st, table, name, *site_id, old, err, errlen);
    if (rc == 0 && !replace) {
        util_errf(err, errlen, "%s %s already exists (%s)", noun, name, s_scope_text(site, scope));
        return -EEXIST;
    }
    if (rc == 0)
        return s_delete_id(st, table, *old, err, errlen);
    if (rc == -ENOENT) {
        *old = 0;
        return s_scope_room(st, table, *site_id, plural, err, errlen);
    }
    return rc;
}

/* The one row of select_sql (which takes ?1 = id) as an object of type t. */
static int s_by_id(store_t *st, const char *select_sql, const struct row_type *t, int64_t id,
                   json_t **out, char *err, size_t errlen)
{
    sqlite3_stmt *q = sql_prepare(st->db, select_sql);
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, id);
    int rc = s_collect_one(st, q, t, out, err, errlen);
    if (rc == -ENOENT) {
        util_errf(err, errlen, "vanished while reading");
        rc = -EIO;
    }
    return rc;
}

/* ---- classes ---- */

#define CLASS_SELECT                                                                               \
    "SELECT c.id, c.name, s.name, c.priority, c.tftp_root, c.rules, c.rule_specs, c.options,"      \
    " c.option_specs, c.created_ms, c.window FROM device_class c"                                  \
    " LEFT JOIN site s ON s.id = c.site_id "

/* What site ?1 gets: its own, and the global ones it does not replace. */
#define CLASS_EFFECTIVE                                                                            \
    "WHERE c.site_id = ?1 OR (c.site_id IS NULL AND NOT EXISTS (SELECT 1 FROM device_class o"      \
    " WHERE o.site_id = ?1 AND o.name = c.name)) "

static const struct col s_class_cols[] = {
    {"id", COL_INT, 0},          {"name", COL_TEXT, 1},      {"site", COL_TEXT_NULL, 2},
    {"priority", COL_INT, 3},    {"tftp_root", COL_TEXT, 4}, {"rules", COL_RULES, 5},
    {"options", COL_OPTIONS, 7}, {"created_ms", COL_INT, 9}, {"window", COL_TEXT, 10},
};
static const struct row_type s_class_row = {s_class_cols, N_COLS(s_class_cols), NULL};

int store_class_add(store_t *st, const char *user, const struct store_class_in *c,
                    json_t **site_ids, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    int64_t priority = PRIORITY_DEFAULT;
    int rc;
    if (site_ids)
        *site_ids = NULL;
    if ((rc = store_check_name("class", c->name, err, errlen)) < 0 ||
        (!s_empty(c->site) && (rc = store_check_name("site", c->site, err, errlen)) < 0) ||
        (rc = s_check_tftp_root(c->tftp_root, err, errlen)) < 0 ||
        (rc = store_check_window(c->window, err, errlen)) < 0)
        return rc;
    if (c->priority != NULL && util_parse_i64(c->priority, 0, PRIORITY_MAX, &priority) < 0) {
        util_errf(err, errlen, "invalid priority '%s' (0 to %d, lower is tried first)",
                  s_show(c->priority, q), PRIORITY_MAX);
        return -EINVAL;
    }
    struct packed rules, opts;
    if ((rc = s_pack_rules(c->rules, c->n_rules, &rules, err, errlen)) < 0)
        return rc;
    if ((rc = s_pack_options(c->options, c->n_options, 0, &opts, err, errlen)) < 0) {
        s_packed_free(&rules);
        return rc;
    }
    json_t *ids;
    int sp;
    if ((rc = s_tx_begin_ids(st, &sp, &ids, err, errlen)) < 0) {
        s_packed_free(&rules);
        s_packed_free(&opts);
        return rc;
    }
    int64_t site_id = 0, old = 0;
    rc = s_scoped_claim(st, "device_class", "class", "classes", c->name, c->site, c->replace,
                        &site_id, &old, err, errlen);
    if (rc == 0) {
        sqlite3_stmt *qi = sql_prepare(
            st->db, "INSERT INTO device_class(site_id, name, priority, tftp_root, rules,"
                    " rule_specs, options, option_specs, created_ms, window)"
                    " VALUES (nullif(?1, 0), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
        if (qi == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(qi, 1, site_id); /* 0, the global scope, is stored as NULL */
            s_bind_text(qi, 2, c->name);
            sqlite3_bind_int64(qi, 3, priority);
            s_bind_text(qi, 4, c->tftp_root);
            sqlite3_bind_blob(qi, 5, rules.blob, (int)rules.len, SQLITE_STATIC);
            s_bind_text(qi, 6, rules.specs);
            sqlite3_bind_blob(qi, 7, opts.blob, (int)opts.len, SQLITE_STATIC);
            s_bind_text(qi, 8, opts.specs);
            sqlite3_bind_int64(qi, 9, (int64_t)util_now_ms());
            s_bind_text(qi, 10, c->window);
            rc = s_step_done(st, qi, err, errlen);
            sqlite3_finalize(qi);
        }
    }
    if (rc == 0)
        rc = s_bump(st, site_id, ids, err, errlen);
    if (rc == 0) {
        char detail[1024], qt[256], qw[WINDOW_SPEC_MAX + 8];
        snprintf(detail, sizeof detail,
                 "class=%s site=%s priority=%lld rules=%zu options=%zu tftp_root=%s window=%s",
                 c->name, s_empty(c->site) ? "" : c->site, (long long)priority, c->n_rules,
                 c->n_options, log_quote(c->tftp_root ? c->tftp_root : "", qt, sizeof qt),
                 log_quote(c->window ? c->window : "", qw, sizeof qw));
        if (store_audit(st, user, old ? "class.replace" : "class.add", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    s_packed_free(&rules);
    s_packed_free(&opts);
    return s_tx_end_ids(st, sp, rc, ids, site_ids, err, errlen);
}

/* The classes or templates the site `site` gets through sql_site (?1 = its
 * id), or with site NULL or "" every one through sql_all. */
static int s_scoped_list(store_t *st, const char *site, const char *sql_site, const char *sql_all,
                         const struct row_type *t, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    int64_t site_id = 0;
    int rc = s_scope(st, site, &site_id, err, errlen);
    if (rc < 0)
        return rc;
    sqlite3_stmt *q = sql_prepare(st->db, site_id ? sql_site : sql_all);
    if (q == NULL)
        return s_dberr(st, err, errlen);
    if (site_id)
        sqlite3_bind_int64(q, 1, site_id);
    return s_collect(st, q, t, out, err, errlen);
}

int store_class_list(store_t *st, const char *site, json_t **out, char *err, size_t errlen)
{
    return s_scoped_list(st, site, CLASS_SELECT CLASS_EFFECTIVE "ORDER BY c.priority, c.name",
                         CLASS_SELECT "ORDER BY c.site_id IS NOT NULL, s.name, c.name",
                         &s_class_row, out, err, errlen);
}

/* The item `name` site_id gets (its own first, then the global one). */
static int s_scoped_show(store_t *st, const char *select_sql, const struct row_type *t,
                         const char *what, const char *name, const char *site, json_t **out,
                         char *err, size_t errlen)
{
    char q1[SHOW_MAX + 4], scope[96], sql[1024];
    int64_t site_id = 0;
    *out = NULL;
    int rc = s_scope(st, site, &site_id, err, errlen);
    if (rc < 0)
        return rc;
    snprintf(sql, sizeof sql,
             "%sWHERE %c.name = ?1 AND (%c.site_id IS NULL OR %c.site_id = ?2)"
             " ORDER BY %c.site_id IS NULL LIMIT 1",
             select_sql, what[0], what[0], what[0], what[0]);
    sqlite3_stmt *q = sql_prepare(st->db, sql);
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, name);
    sqlite3_bind_int64(q, 2, site_id);
    rc = s_collect_one(st, q, t, out, err, errlen);
    if (rc == -ENOENT)
        util_errf(err, errlen, "unknown %s '%s' (%s)", what, s_show(name, q1),
                  s_scope_text(site, scope));
    return rc;
}

int store_class_show(store_t *st, const char *name, const char *site, json_t **out, char *err,
                     size_t errlen)
{
    return s_scoped_show(st, CLASS_SELECT, &s_class_row, "class", name, site, out, err, errlen);
}

/* What differs between removing a class and removing a template. */
struct scoped_kind {
    const char *noun;      /* "class", "template": errors and the audit action */
    const char *table;     /* its table */
    const char *select_id; /* SELECT ... WHERE <alias>.id = ?1 */
    const struct row_type *row;
    int (*check_name)(const char *name, char *err, size_t errlen);
    /* refuses the removal (err set, <0) when something still needs the row */
    int (*guard)(store_t *st, const char *name, int64_t site_id, int64_t id, char *err,
                 size_t errlen);
};

/* Removes the row `name` in scope `site` (NULL/empty: global) in one
 * transaction with the generation bumps and the audit row; returns the
 * removed row in *out and the affected site ids in *site_ids. */
static int s_scoped_remove(store_t *st, const struct scoped_kind *k, const char *user,
                           const char *name, const char *site, json_t **out, json_t **site_ids,
                           char *err, size_t errlen)
{
    char q1[SHOW_MAX + 4], scope[96];
    int sp, rc;
    if (out)
        *out = NULL;
    if (site_ids)
        *site_ids = NULL;
    if ((rc = k->check_name(name, err, errlen)) < 0)
        return rc;
    json_t *ids, *old = NULL;
    if ((rc = s_tx_begin_ids(st, &sp, &ids, err, errlen)) < 0)
        return rc;
    int64_t site_id = 0, id = 0;
    rc = s_scope(st, site, &site_id, err, errlen);
    if (rc == 0) {
        rc = s_scoped_id(st, k->table, name, site_id, &id, err, errlen);
        if (rc == -ENOENT)
            util_errf(err, errlen, "unknown %s '%s' (%s)", k->noun, s_show(name, q1),
                      s_scope_text(site, scope));
    }
    if (rc == 0)
        rc = s_by_id(st, k->select_id, k->row, id, &old, err, errlen);
    if (rc == 0 && k->guard)
        rc = k->guard(st, name, site_id, id, err, errlen);
    if (rc == 0)
        rc = s_delete_id(st, k->table, id, err, errlen);
    if (rc == 0)
        rc = s_bump(st, site_id, ids, err, errlen);
    if (rc == 0) {
        char detail[512], qn[300], action[32];
        snprintf(detail, sizeof detail, "%s=%s site=%s", k->noun, log_quote(name, qn, sizeof qn),
                 s_empty(site) ? "" : site);
        snprintf(action, sizeof action, "%s.remove", k->noun);
        if (store_audit(st, user, action, detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    rc = s_tx_end_ids(st, sp, rc, ids, site_ids, err, errlen);
    if (rc == 0 && out)
        *out = json_incref(old);
    json_decref(old);
    return rc;
}

/* A device pinned to the class whose site would find no class of that name
 * once it is gone. */
static int s_class_pinned(store_t *st, const char *name, int64_t site_id, int64_t id, char *err,
                          size_t errlen)
{
    char q1[SHOW_MAX + 4], q2[SHOW_MAX + 4];
    sqlite3_stmt *q =
        sql_prepare(st->db, "SELECT d.mac, s.name FROM device d JOIN site s ON s.id = d.site_id"
                            " WHERE d.class = ?1 AND (?2 = 0 OR d.site_id = ?2)"
                            " AND NOT EXISTS (SELECT 1 FROM device_class c WHERE c.name = ?1"
                            " AND c.id <> ?3 AND (c.site_id IS NULL OR c.site_id = d.site_id))"
                            " ORDER BY s.name, d.mac LIMIT 1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, name);
    sqlite3_bind_int64(q, 2, site_id);
    sqlite3_bind_int64(q, 3, id);
    int rc = 0, step = sqlite3_step(q);
    if (step == SQLITE_ROW) {
        util_errf(err, errlen, "class %s is pinned by device %s (site %s)", name,
                  s_show((const char *)sqlite3_column_text(q, 0), q1),
                  s_show((const char *)sqlite3_column_text(q, 1), q2));
        rc = -EBUSY;
    } else if (step != SQLITE_DONE) {
        rc = s_dberr(st, err, errlen);
    }
    sqlite3_finalize(q);
    return rc;
}

static int s_check_class_name(const char *name, char *err, size_t errlen)
{
    return store_check_name("class", name, err, errlen);
}

int store_class_remove(store_t *st, const char *user, const char *name, const char *site,
                       json_t **out, json_t **site_ids, char *err, size_t errlen)
{
    static const struct scoped_kind k = {
        "class",      "device_class",     CLASS_SELECT "WHERE c.id = ?1",
        &s_class_row, s_check_class_name, s_class_pinned};
    return s_scoped_remove(st, &k, user, name, site, out, site_ids, err, errlen);
}

/* ---- templates ---- */

#define TEMPLATE_SELECT                                                                            \
    "SELECT t.id, t.name, s.name, length(t.body), t.created_ms FROM file_template t"               \
    " LEFT JOIN site s ON s.id = t.site_id "
#define TEMPLATE_SELECT_BODY                                                                       \
    "SELECT t.id, t.name, s.name, length(t.body), t.created_ms, t.body FROM file_template t"       \
    " LEFT JOIN site s ON s.id = t.site_id "
/* What site ?1 gets: its own, and the global ones it does not replace. */
#define TEMPLATE_EFFECTIVE                                                                         \
    "WHERE t.site_id = ?1 OR (t.site_id IS NULL AND NOT EXISTS (SELECT 1 FROM file_template o"     \
    " WHERE o.site_id = ?1 AND o.name = t.name)) "

/* TEMPLATE_SELECT reads the first 5 columns, TEMPLATE_SELECT_BODY all 6. */
static const struct col s_template_cols[] = {
    {"id", COL_INT, 0},   {"name", COL_TEXT, 1},      {"site", COL_TEXT_NULL, 2},
    {"size", COL_INT, 3}, {"created_ms", COL_INT, 4}, {"body_hex", COL_HEX, 5},
};
static const struct row_type s_template_row = {s_template_cols, 5, NULL};
static const struct row_type s_template_body_row = {s_template_cols, N_COLS(s_template_cols), NULL};

/* After a template change in scope site_id: every site it reaches still
 * gets at most STORE_TEMPLATES_SITE_MAX bytes of templates. */
static int s_template_totals(store_t *st, int64_t site_id, char *err, size_t errlen)
{
    char q1[SHOW_MAX + 4];
    sqlite3_stmt *q = sql_prepare(
        st->db,
        "SELECT name, total FROM (SELECT s.name AS name, (SELECT coalesce(sum(length(t.body)), 0)"
        " FROM file_template t WHERE t.site_id = s.id OR (t.site_id IS NULL AND NOT EXISTS"
        " (SELECT 1 FROM file_template o WHERE o.site_id = s.id AND o.name = t.name))) AS total"
        " FROM site s WHERE ?1 = 0 OR s.id = ?1"
        " UNION ALL SELECT NULL, (SELECT coalesce(sum(length(body)), 0) FROM file_template"
        " WHERE site_id IS NULL)) WHERE total > ?2 LIMIT 1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, site_id);
    sqlite3_bind_int64(q, 2, STORE_TEMPLATES_SITE_MAX);
    int step = sqlite3_step(q), rc = 0;
    if (step == SQLITE_ROW) {
        if (sqlite3_column_type(q, 0) == SQLITE_NULL)
            util_errf(err, errlen, "the global templates would total %lld bytes (at most %u)",
                      (long long)sqlite3_column_int64(q, 1), STORE_TEMPLATES_SITE_MAX);
        else
            util_errf(err, errlen, "the templates of site %s would total %lld bytes (at most %u)",
                      s_show((const char *)sqlite3_column_text(q, 0), q1),
                      (long long)sqlite3_column_int64(q, 1), STORE_TEMPLATES_SITE_MAX);
        rc = -EFBIG;
    } else if (step != SQLITE_DONE) {
        rc = s_dberr(st, err, errlen);
    }
    sqlite3_finalize(q);
    return rc;
}

int store_template_add(store_t *st, const char *user, const char *name, const char *site,
                       const void *body, size_t len, int replace, json_t **site_ids, char *err,
                       size_t errlen)
{
    int rc;
    if (site_ids)
        *site_ids = NULL;
    if ((rc = store_check_template_name(name, err, errlen)) < 0 ||
        (!s_empty(site) && (rc = store_check_name("site", site, err, errlen)) < 0))
        return rc;
    if (len > STORE_TEMPLATE_MAX) {
        util_errf(err, errlen, "template body too large (%zu bytes, at most %u)", len,
                  STORE_TEMPLATE_MAX);
        return -EFBIG;
    }
    json_t *ids;
    int sp;
    if ((rc = s_tx_begin_ids(st, &sp, &ids, err, errlen)) < 0)
        return rc;
    int64_t site_id = 0, old = 0;
    rc = s_scoped_claim(st, "file_template", "template", "templates", name, site, replace, &site_id,
                        &old, err, errlen);
    if (rc == 0) {
        sqlite3_stmt *qi = sql_prepare(st->db, "INSERT INTO file_template(site_id, name, body,"
                                               " created_ms) VALUES (nullif(?1, 0), ?2, ?3, ?4)");
        if (qi == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(qi, 1, site_id); /* 0, the global scope, is stored as NULL */
            s_bind_text(qi, 2, name);
            sqlite3_bind_blob(qi, 3, len ? body : "", (int)len, SQLITE_STATIC);
            sqlite3_bind_int64(qi, 4, (int64_t)util_now_ms());
            rc = s_step_done(st, qi, err, errlen);
            sqlite3_finalize(qi);
        }
    }
    if (rc == 0)
        rc = s_template_totals(st, site_id, err, errlen);
    if (rc == 0)
        rc = s_bump(st, site_id, ids, err, errlen);
    if (rc == 0) {
        char detail[512], qn[300];
        snprintf(detail, sizeof detail, "template=%s site=%s size=%zu",
                 log_quote(name, qn, sizeof qn), s_empty(site) ? "" : site, len);
        if (store_audit(st, user, old ? "template.replace" : "template.add", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    return s_tx_end_ids(st, sp, rc, ids, site_ids, err, errlen);
}

int store_template_list(store_t *st, const char *site, json_t **out, char *err, size_t errlen)
{
    return s_scoped_list(st, site, TEMPLATE_SELECT TEMPLATE_EFFECTIVE "ORDER BY t.name",
                         TEMPLATE_SELECT "ORDER BY t.site_id IS NOT NULL, s.name, t.name",
                         &s_template_row, out, err, errlen);
}

int store_template_show(store_t *st, const char *name, const char *site, json_t **out, char *err,
                        size_t errlen)
{
    return s_scoped_show(st, TEMPLATE_SELECT_BODY, &s_template_body_row, "template", name, site,
                         out, err, errlen);
}

int store_template_remove(store_t *st, const char *user, const char *name, const char *site,
                          json_t **out, json_t **site_ids, char *err, size_t errlen)
{
    static const struct scoped_kind k = {
        "template",      "file_template",           TEMPLATE_SELECT "WHERE t.id = ?1",
        &s_template_row, store_check_template_name, NULL};
    return s_scoped_remove(st, &k, user, name, site, out, site_ids, err, errlen);
}

/* ---- rollout-related device and calendar fields ---- */

int store_check_window(const char *spec, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4], why[256];
    if (s_empty(spec))
        return 0;
    if (strlen(spec) >= WINDOW_SPEC_MAX) {
        util_errf(err, errlen, "window too long (at most %d bytes)", WINDOW_SPEC_MAX - 1);
        return -EINVAL;
    }
    window_t *w = NULL;
    why[0] = '\0';
    if (window_parse(spec, &w, why, sizeof why) < 0) {
        util_errf(err, errlen, "invalid window '%s': %s", s_show(spec, q), why);
        return -EINVAL;
    }
    window_free(w);
    return 0;
}

int store_site_set_window(store_t *st, const char *user, const char *name, const char *window,
                          int64_t *site_id_out, char *err, size_t errlen)
{
    int rc;
    if ((rc = store_check_name("site", name, err, errlen)) < 0 ||
        (rc = store_check_window(window, err, errlen)) < 0)
        return rc;
    int sp;
    if ((rc = s_tx_begin(st, &sp, err, errlen)) < 0)
        return rc;
    int64_t id = 0;
    rc = store_site_id(st, name, &id, err, errlen);
    if (rc == 0) {
        sqlite3_stmt *q = sql_prepare(
            st->db, "UPDATE site SET window = ?2, generation = generation + 1 WHERE id = ?1");
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(q, 1, id);
            s_bind_text(q, 2, window);
            rc = s_step_done(st, q, err, errlen);
            sqlite3_finalize(q);
        }
    }
    if (rc == 0) {
        char detail[WINDOW_SPEC_MAX + 128], qw[WINDOW_SPEC_MAX + 8];
        snprintf(detail, sizeof detail, "site=%s window=%s", name,
                 log_quote(window ? window : "", qw, sizeof qw));
        if (store_audit(st, user, "site.set", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    rc = s_tx_end(st, sp, rc, err, errlen);
    if (rc == 0 && site_id_out)
        *site_id_out = id;
    return rc;
}

int store_device_set(store_t *st, const char *user, const char *mac,
                     const struct store_device_set_in *in, int64_t *site_id_out, char *err,
                     size_t errlen)
{
    char canon[18], qs[SHOW_MAX + 4];
    int rc = 0;
    if (s_empty(mac) || util_mac_canon(mac, canon) < 0) {
        util_errf(err, errlen, "invalid MAC address '%s'", s_show(mac, qs));
        return -EINVAL;
    }
    if (in->version == NULL && in->serial_config == NULL && in->serial_firmware == NULL &&
        in->serial_boot == NULL && in->profile == NULL) {
        util_errf(err, errlen, "device set: nothing to set");
        return -EINVAL;
    }
    if ((!s_empty(in->version) &&
         (rc = store_check_fw_part("version", in->version, err, errlen)) < 0) ||
        (rc = store_check_serial(in->serial_config, err, errlen)) < 0 ||
        (rc = store_check_serial(in->serial_firmware, err, errlen)) < 0 ||
        (rc = store_check_serial(in->serial_boot, err, errlen)) < 0 ||
        (!s_empty(in->profile) && (rc = store_check_name("profile", in->profile, err, errlen)) < 0))
        return rc;
    int sp;
    if ((rc = s_tx_begin(st, &sp, err, errlen)) < 0)
        return rc;
    int64_t site_id = 0;
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT site_id FROM device WHERE mac = ?1");
    if (q == NULL) {
        rc = s_dberr(st, err, errlen);
    } else {
        s_bind_text(q, 1, canon);
        rc = s_step_int(st, q, &site_id, err, errlen);
        if (rc == -ENOENT)
            util_errf(err, errlen, "unknown device %s", canon);
    }
    if (rc == 0 && !s_empty(in->profile))
        rc = s_profile_known(st, in->profile, err, errlen);
    if (rc == 0) {
        /* NULL binds keep the column as it is */
        q = sql_prepare(st->db, "UPDATE device SET current_version = coalesce(?2, current_version),"
                                " serial_config = coalesce(?3, serial_config),"
                                " serial_firmware = coalesce(?4, serial_firmware),"
                                " serial_boot = coalesce(?5, serial_boot),"
                                " profile = coalesce(?6, profile) WHERE mac = ?1");
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            const char *v[5] = {in->version, in->serial_config, in->serial_firmware,
                                in->serial_boot, in->profile};
            s_bind_text(q, 1, canon);
            for (int i = 0; i < 5; i++)
                if (v[i])
                    sqlite3_bind_text(q, i + 2, v[i], -1, SQLITE_TRANSIENT);
            rc = s_step_done(st, q, err, errlen);
            sqlite3_finalize(q);
        }
    }
    if (rc == 0) {
        q = sql_prepare(st->db, "UPDATE site SET generation = generation + 1 WHERE id = ?1");
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(q, 1, site_id);
            rc = s_step_done(st, q, err, errlen);
            sqlite3_finalize(q);
        }
    }
    if (rc == 0) {
        char detail[512], q1[96], q2[96], q3[96], q4[96], q5[96];
        snprintf(detail, sizeof detail,
                 "mac=%s version=%s serial_config=%s serial_firmware=%s serial_boot=%s profile=%s",
                 canon, log_quote(in->version ? in->version : "-", q1, sizeof q1),
                 log_quote(in->serial_config ? in->serial_config : "-", q2, sizeof q2),
                 log_quote(in->serial_firmware ? in->serial_firmware : "-", q3, sizeof q3),
                 log_quote(in->serial_boot ? in->serial_boot : "-", q4, sizeof q4),
                 log_quote(in->profile ? in->profile : "-", q5, sizeof q5));
        if (store_audit(st, user, "device.set", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    rc = s_tx_end(st, sp, rc, err, errlen);
    if (rc == 0 && site_id_out)
        *site_id_out = site_id;
    return rc;
}
