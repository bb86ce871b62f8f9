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
 *     fails on invalid UTF-8 (event details come from agents).
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

#include "log.h"
#include "store_int.h"
#include "util.h"
#include "zmqx.h"

#define SHOW_MAX 64

/* ---- small helpers ---- */

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

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
    s_err(err, errlen, "database error: %s", s_show(sqlite3_errmsg(st->db), q));
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

static json_t *s_jint_or_null(sqlite3_stmt *q, int col)
{
    if (sqlite3_column_type(q, col) == SQLITE_NULL)
        return json_null();
    return json_integer(sqlite3_column_int64(q, col));
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
        s_err(err, errlen, "conflict: %s", s_show(sqlite3_errmsg(st->db), m));
        return -EEXIST;
    }
    return s_dberr(st, err, errlen);
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
        s_err(err, errlen,
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
        s_err(err, errlen, "invalid time zone '%s' (an IANA zone such as Europe/Berlin)",
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
        s_err(err, errlen, "invalid model '%s' (1-64 printable characters, no comma)",
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
        s_err(err, errlen, "invalid serial '%s' (up to 64 printable characters, no comma or space)",
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
            s_err(err, errlen,
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
                s_err(err, errlen, "too many tags");
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
        s_err(err, errlen, "invalid %s '%s' (1-64 characters: A-Z a-z 0-9 . _ + -)", what,
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
        s_err(err, errlen,
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
        s_err(err, errlen, "%s too long (at most %zu bytes)", what, max);
        return -EINVAL;
    }
    if (n > 0 && !s_utf8_clean(s, n)) {
        s_err(err, errlen, "%s must be UTF-8 text without control characters", what);
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
        s_err(err, errlen, "invalid sha256 '%s' (64 lowercase hex digits)", s_show(s, q));
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
    *out = NULL;
    sqlite3_stmt *q =
        sql_prepare(st->db, "SELECT id, time_ms, user, action, detail FROM"
                            " (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) ORDER BY id");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, limit > 0 ? limit : -1);
    json_t *arr = json_array();
    int rc = arr ? 0 : -ENOMEM, step;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(arr, o) < 0) {
            rc = -ENOMEM;
            break;
        }
        if (s_set(o, "id", json_integer(sqlite3_column_int64(q, 0))) ||
            s_set(o, "time_ms", json_integer(sqlite3_column_int64(q, 1))) ||
            s_set(o, "user", s_jstr(sqlite3_column_text(q, 2))) ||
            s_set(o, "action", s_jstr(sqlite3_column_text(q, 3))) ||
            s_set(o, "detail", s_jstr(sqlite3_column_text(q, 4))))
            rc = -ENOMEM;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_dberr(st, err, errlen);
    sqlite3_finalize(q);
    if (rc < 0) {
        if (rc == -ENOMEM)
            s_err(err, errlen, "out of memory");
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

/* ---- sites ---- */

int store_site_id(store_t *st, const char *name, int64_t *id_out, char *err, size_t errlen)
{
    char q1[SHOW_MAX + 4];
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT id FROM site WHERE name = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, name);
    int step = sqlite3_step(q), rc;
    if (step == SQLITE_ROW) {
        if (id_out)
            *id_out = sqlite3_column_int64(q, 0);
        rc = 0;
    } else if (step == SQLITE_DONE) {
        s_err(err, errlen, "unknown site '%s'", s_show(name, q1));
        rc = -ENOENT;
    } else {
        rc = s_dberr(st, err, errlen);
    }
    sqlite3_finalize(q);
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
        s_err(err, errlen, "site %s already exists", name);
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
    " (SELECT count(*) FROM agent a WHERE a.site_id = s.id AND a.revoked_ms IS NULL)"              \
    " FROM site s "

static json_t *s_site_row(sqlite3_stmt *q)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (s_set(o, "id", json_integer(sqlite3_column_int64(q, 0))) ||
        s_set(o, "name", s_jstr(sqlite3_column_text(q, 1))) ||
        s_set(o, "tz", s_jstr(sqlite3_column_text(q, 2))) ||
        s_set(o, "description", s_jstr(sqlite3_column_text(q, 3))) ||
        s_set(o, "created_ms", json_integer(sqlite3_column_int64(q, 4))) ||
        s_set(o, "generation", json_integer(sqlite3_column_int64(q, 5))) ||
        s_set(o, "devices", json_integer(sqlite3_column_int64(q, 6))) ||
        s_set(o, "agents", json_integer(sqlite3_column_int64(q, 7)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Runs q (already bound) and collects rows through fn into an array. */
static int s_collect(store_t *st, sqlite3_stmt *q, json_t *(*fn)(sqlite3_stmt *), json_t **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    json_t *arr = json_array();
    int step = SQLITE_ROW, rc = arr ? 0 : -ENOMEM;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *o = fn(q);
        if (o == NULL || json_array_append_new(arr, o) < 0)
            rc = -ENOMEM;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_dberr(st, err, errlen);
    else if (rc == -ENOMEM)
        s_err(err, errlen, "out of memory");
    sqlite3_finalize(q);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

/* Takes the one element of a collected array, or -ENOENT with msg. */
static int s_one(json_t *arr, json_t **out)
{
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return -ENOENT;
    }
    *out = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return 0;
}

int store_site_list(store_t *st, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sqlite3_stmt *q = sql_prepare(st->db, SITE_SELECT "ORDER BY s.name");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    return s_collect(st, q, s_site_row, out, err, errlen);
}

int store_site_show(store_t *st, const char *name, json_t **out, char *err, size_t errlen)
{
    char qs[SHOW_MAX + 4];
    *out = NULL;
    sqlite3_stmt *q = sql_prepare(st->db, SITE_SELECT "WHERE s.name = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, name);
    json_t *arr = NULL;
    int rc = s_collect(st, q, s_site_row, &arr, err, errlen);
    if (rc < 0)
        return rc;
    rc = s_one(arr, out);
    if (rc == -ENOENT)
        s_err(err, errlen, "unknown site '%s'", s_show(name, qs));
    return rc;
}

/* ---- agents ---- */

#define AGENT_SELECT                                                                               \
    "SELECT a.id, a.name, s.name, a.created_ms, a.revoked_ms, a.last_seen_ms, a.version,"          \
    " a.pubkey, a.cached FROM agent a JOIN site s ON s.id = a.site_id "

static json_t *s_agent_row_common(sqlite3_stmt *q, int with_key)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (s_set(o, "id", json_integer(sqlite3_column_int64(q, 0))) ||
        s_set(o, "name", s_jstr(sqlite3_column_text(q, 1))) ||
        s_set(o, "site", s_jstr(sqlite3_column_text(q, 2))) ||
        s_set(o, "created_ms", json_integer(sqlite3_column_int64(q, 3))) ||
        s_set(o, "revoked", json_boolean(sqlite3_column_type(q, 4) != SQLITE_NULL)) ||
        s_set(o, "revoked_ms", s_jint_or_null(q, 4)) ||
        s_set(o, "last_seen_ms", s_jint_or_null(q, 5)) ||
        s_set(o, "version", s_jstr(sqlite3_column_text(q, 6))) ||
        (with_key && s_set(o, "public_key", s_jstr(sqlite3_column_text(q, 7)))) ||
        (with_key && s_set(o, "cached", s_split_list(sqlite3_column_text(q, 8), ' ')))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *s_agent_row(sqlite3_stmt *q)
{
    return s_agent_row_common(q, 0);
}
static json_t *s_agent_row_key(sqlite3_stmt *q)
{
    return s_agent_row_common(q, 1);
}

int store_agent_enroll(store_t *st, const char *user, const char *name, const char *site,
                       const char *pubkey, int64_t *id_out, char *err, size_t errlen)
{
    int rc;
    if ((rc = store_check_name("agent", name, err, errlen)) < 0 ||
        (rc = store_check_name("site", site, err, errlen)) < 0)
        return rc;
    if (zmqx_key_check(pubkey) < 0) {
        s_err(err, errlen, "invalid public key");
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
            s_err(err, errlen, "agent %s already exists", name);
            rc = -EEXIST;
        } else if (step != SQLITE_DONE) {
            rc = s_dberr(st, err, errlen);
        }
    }
    if (rc == 0) {
        sqlite3_stmt *q = sql_prepare(
            st->db, "INSERT INTO agent(name, site_id, pubkey, created_ms) VALUES (?1, ?2, ?3, ?4)");
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            s_bind_text(q, 1, name);
            sqlite3_bind_int64(q, 2, site_id);
            s_bind_text(q, 3, pubkey);
            sqlite3_bind_int64(q, 4, (int64_t)util_now_ms());
            rc = s_step_done(st, q, err, errlen);
            sqlite3_finalize(q);
            id = sqlite3_last_insert_rowid(st->db);
        }
    }
    if (rc == 0) {
        char detail[256];
        snprintf(detail, sizeof detail, "agent=%s site=%s public_key=%s", name, site, pubkey);
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
    return s_collect(st, q, s_agent_row, out, err, errlen);
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
    json_t *arr = NULL;
    int rc = s_collect(st, q, s_agent_row_key, &arr, err, errlen);
    if (rc < 0)
        return rc;
    rc = s_one(arr, out);
    if (rc == -ENOENT)
        s_err(err, errlen, "unknown agent '%s'", s_show(name_or_id, qs));
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
    int step = sqlite3_step(q), rc;
    if (step == SQLITE_ROW) {
        if (id_out)
            *id_out = sqlite3_column_int64(q, 0);
        rc = 0;
    } else if (step == SQLITE_DONE) {
        s_err(err, errlen, "unknown agent '%s'", s_show(name_or_id, qs));
        rc = -ENOENT;
    } else {
        rc = s_dberr(st, err, errlen);
    }
    sqlite3_finalize(q);
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
            s_err(err, errlen, "agent %s is already revoked",
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

/* ---- devices ---- */

struct dev_ok {
    char mac[18];
    char tags[256];
    int line;
    size_t index;
};

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
               store_check_tags(d->tags, ok->tags, sizeof ok->tags, msg, sizeof msg) < 0) {
        rc = -EINVAL;
    }
    if (rc < 0)
        s_err(err, errlen, "%s%s", pre, msg);
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
                            " created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
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
            s_err(err, errlen, "%sunknown site '%s'", pre, s_show(d->site, qs));
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
            s_err(err, errlen, "%sdevice %s already exists (site %s)", pre, oks[i].mac,
                  s_show((const char *)sqlite3_column_text(qdup, 0), qs));
            rc = -EEXIST;
            break;
        } else if (step != SQLITE_DONE) {
            rc = s_dberr(st, err, errlen);
            break;
        }
        sqlite3_reset(qins);
        s_bind_text(qins, 1, oks[i].mac);
        sqlite3_bind_int64(qins, 2, site_id);
        s_bind_text(qins, 3, d->model);
        s_bind_text(qins, 4, d->serial);
        s_bind_text(qins, 5, oks[i].tags);
        s_bind_text(qins, 6, origin);
        sqlite3_bind_int64(qins, 7, now);
        if ((rc = s_step_done(st, qins, err, errlen)) < 0)
            break;
        /* remember the site once */
        size_t k, ns = json_array_size(site_ids);
        for (k = 0; k < ns; k++)
            if (json_integer_value(json_array_get(site_ids, k)) == site_id)
                break;
        if (k == ns) {
            if (json_array_append_new(site_ids, json_integer(site_id)) < 0) {
                s_err(err, errlen, "out of memory");
                rc = -ENOMEM;
                break;
            }
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
    json_t *ids = json_array();
    if (ids == NULL) {
        s_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int sp;
    if ((rc = s_tx_begin(st, &sp, err, errlen)) < 0) {
        json_decref(ids);
        return rc;
    }
    rc = s_device_insert(st, &row, &ok, 1, "operator", ids, err, errlen);
    if (rc == 0) {
        char detail[1024], qm[160], qs[160];
        snprintf(detail, sizeof detail, "mac=%s site=%s model=%s serial=%s tags=%s", ok.mac,
                 row.site, log_quote(row.model ? row.model : "", qm, sizeof qm),
                 log_quote(row.serial ? row.serial : "", qs, sizeof qs), ok.tags);
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
        s_err(err, errlen, "no devices to import");
        return -EINVAL;
    }
    if (n > STORE_IMPORT_MAX) {
        s_err(err, errlen, "too many devices in one import (at most %d)", STORE_IMPORT_MAX);
        return -EINVAL;
    }
    struct dev_ok *oks = calloc(n, sizeof *oks);
    struct dev_ok *sorted = calloc(n, sizeof *sorted);
    json_t *ids = json_array();
    int rc = 0;
    if (oks == NULL || sorted == NULL || ids == NULL) {
        s_err(err, errlen, "out of memory");
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
            s_err(err, errlen, "%sdevice %s appears twice (also line %d)",
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
    " d.origin, d.created_ms, d.last_seen_ms FROM device d JOIN site s ON s.id = d.site_id "

static json_t *s_device_row(sqlite3_stmt *q)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (s_set(o, "id", json_integer(sqlite3_column_int64(q, 0))) ||
        s_set(o, "mac", s_jstr(sqlite3_column_text(q, 1))) ||
        s_set(o, "site", s_jstr(sqlite3_column_text(q, 2))) ||
        s_set(o, "model", s_jstr(sqlite3_column_text(q, 3))) ||
        s_set(o, "serial", s_jstr(sqlite3_column_text(q, 4))) ||
        s_set(o, "tags", s_split_list(sqlite3_column_text(q, 5), ',')) ||
        s_set(o, "vendor_class", s_jstr(sqlite3_column_text(q, 6))) ||
        s_set(o, "current_version", s_jstr(sqlite3_column_text(q, 7))) ||
        s_set(o, "origin", s_jstr(sqlite3_column_text(q, 8))) ||
        s_set(o, "created_ms", json_integer(sqlite3_column_int64(q, 9))) ||
        s_set(o, "last_seen_ms", s_jint_or_null(q, 10))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int store_device_list(store_t *st, const struct store_device_filter *f, json_t **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    if (f->limit < 0 || s_empty(f->after_site) != s_empty(f->after_mac)) {
        s_err(err, errlen, "invalid paging arguments");
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
    return s_collect(st, q, s_device_row, out, err, errlen);
}

int store_device_show(store_t *st, const char *mac, json_t **out, char *err, size_t errlen)
{
    char canon[18], qs[SHOW_MAX + 4];
    *out = NULL;
    if (s_empty(mac) || util_mac_canon(mac, canon) < 0) {
        s_err(err, errlen, "invalid MAC address '%s'", s_show(mac, qs));
        return -EINVAL;
    }
    sqlite3_stmt *q = sql_prepare(st->db, DEVICE_SELECT "WHERE d.mac = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, canon);
    json_t *arr = NULL;
    int rc = s_collect(st, q, s_device_row, &arr, err, errlen);
    if (rc < 0)
        return rc;
    rc = s_one(arr, out);
    if (rc == -ENOENT)
        s_err(err, errlen, "unknown device %s", canon);
    return rc;
}

/* ---- blobs ---- */

int store_blob_get(store_t *st, const char *sha256, uint64_t *size, char *err, size_t errlen)
{
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT size FROM blob WHERE sha256 = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    s_bind_text(q, 1, sha256);
    int step = sqlite3_step(q), rc;
    if (step == SQLITE_ROW) {
        if (size)
            *size = (uint64_t)sqlite3_column_int64(q, 0);
        rc = 0;
    } else if (step == SQLITE_DONE) {
        s_err(err, errlen, "blob %s is not in the image store", sha256);
        rc = -ENOENT;
    } else {
        rc = s_dberr(st, err, errlen);
    }
    sqlite3_finalize(q);
    return rc;
}

/* Inside a transaction: inserts the blob or checks its recorded size. */
static int s_blob_put(store_t *st, const char *sha256, uint64_t size, char *err, size_t errlen)
{
    uint64_t have = 0;
    int rc = store_blob_get(st, sha256, &have, err, errlen);
    if (rc == 0) {
        if (have != size) {
            s_err(err, errlen, "blob %s is recorded with size %llu, not %llu", sha256,
                  (unsigned long long)have, (unsigned long long)size);
            return -EEXIST;
        }
        return 0;
    }
    if (rc != -ENOENT)
        return rc;
    if (size > INT64_MAX) {
        s_err(err, errlen, "blob too large");
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
        s_err(err, errlen, "firmware %s/%s already exists", s_show(vendor, q1),
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
        s_err(err, errlen, "firmware needs 1-256 models");
        return -EINVAL;
    }
    if (fw->n_files == 0 || fw->n_files > 256) {
        s_err(err, errlen, "firmware needs 1-256 files");
        return -EINVAL;
    }
    for (size_t i = 0; i < fw->n_models; i++) {
        if ((rc = store_check_model(fw->models[i], err, errlen)) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(fw->models[i], fw->models[j]) == 0) {
                s_err(err, errlen, "model %s given twice", fw->models[i]);
                return -EINVAL;
            }
    }
    for (size_t i = 0; i < fw->n_files; i++) {
        const struct store_fw_file *f = &fw->files[i];
        if ((rc = store_check_file_name(f->name, err, errlen)) < 0 ||
            (rc = store_check_sha256(f->sha256, err, errlen)) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->name, fw->files[j].name) == 0) {
                s_err(err, errlen, "file name %s given twice", f->name);
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
    json_t *ids = json_array();
    if (ids == NULL) {
        s_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int sp;
    if ((rc = s_tx_begin(st, &sp, err, errlen)) < 0) {
        json_decref(ids);
        return rc;
    }
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
            st->db, "INSERT INTO firmware_file(firmware_id, name, sha256) VALUES (?1, ?2, ?3)");
        if (q == NULL)
            rc = s_dberr(st, err, errlen);
        for (size_t i = 0; rc == 0 && i < fw->n_files; i++) {
            sqlite3_reset(q);
            sqlite3_bind_int64(q, 1, id);
            s_bind_text(q, 2, fw->files[i].name);
            s_bind_text(q, 3, fw->files[i].sha256);
            rc = s_step_done(st, q, err, errlen);
        }
        sqlite3_finalize(q);
    }
    if (rc == 0) {
        /* sites that now need these images */
        sqlite3_stmt *q = sql_prepare(
            st->db, "SELECT DISTINCT d.site_id FROM device d JOIN firmware_model m"
                    " ON m.model = d.model WHERE m.firmware_id = ?1 ORDER BY d.site_id");
        int step = SQLITE_DONE;
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(q, 1, id);
            while ((step = sqlite3_step(q)) == SQLITE_ROW)
                if (json_array_append_new(ids, json_integer(sqlite3_column_int64(q, 0))) < 0) {
                    s_err(err, errlen, "out of memory");
                    rc = -ENOMEM;
                    break;
                }
            if (rc == 0 && step != SQLITE_DONE)
                rc = s_dberr(st, err, errlen);
            sqlite3_finalize(q);
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
    rc = s_tx_end(st, sp, rc, err, errlen);
    if (rc == 0) {
        if (id_out)
            *id_out = id;
        if (site_ids)
            *site_ids = json_incref(ids);
    }
    json_decref(ids);
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

static json_t *s_fw_row(sqlite3_stmt *q)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (s_set(o, "id", json_integer(sqlite3_column_int64(q, 0))) ||
        s_set(o, "vendor", s_jstr(sqlite3_column_text(q, 1))) ||
        s_set(o, "version", s_jstr(sqlite3_column_text(q, 2))) ||
        s_set(o, "description", s_jstr(sqlite3_column_text(q, 3))) ||
        s_set(o, "created_ms", json_integer(sqlite3_column_int64(q, 4))) ||
        s_set(o, "file_count", json_integer(sqlite3_column_int64(q, 5))) ||
        s_set(o, "total_size", json_integer(sqlite3_column_int64(q, 6)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

#define FW_SELECT                                                                                  \
    "SELECT f.id, f.vendor, f.version, f.description, f.created_ms,"                               \
    " (SELECT count(*) FROM firmware_file x WHERE x.firmware_id = f.id),"                          \
    " (SELECT coalesce(sum(b.size), 0) FROM firmware_file x JOIN blob b ON b.sha256 = x.sha256"    \
    "  WHERE x.firmware_id = f.id) FROM firmware f "

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
            s_err(err, errlen, "out of memory");
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
    int rc = s_collect(st, q, s_fw_row, &arr, err, errlen);
    if (rc == 0)
        rc = s_fw_add_models(st, arr, err, errlen);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

static json_t *s_fw_file_row(sqlite3_stmt *q)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (s_set(o, "name", s_jstr(sqlite3_column_text(q, 0))) ||
        s_set(o, "sha256", s_jstr(sqlite3_column_text(q, 1))) ||
        s_set(o, "size", json_integer(sqlite3_column_int64(q, 2)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

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
        s_err(err, errlen, "invalid firmware '%s' (VENDOR/VERSION or a numeric id)",
              s_show(ref, qs));
        return -EINVAL;
    }
    json_t *arr = NULL, *fw = NULL;
    int rc = s_collect(st, q, s_fw_row, &arr, err, errlen);
    if (rc < 0)
        return rc;
    if (s_one(arr, &fw) < 0) {
        s_err(err, errlen, "unknown firmware '%s'", s_show(ref, qs));
        return -ENOENT;
    }
    arr = json_array();
    if (arr == NULL || json_array_append(arr, fw) < 0) {
        s_err(err, errlen, "out of memory");
        rc = -ENOMEM;
    } else {
        rc = s_fw_add_models(st, arr, err, errlen);
    }
    json_decref(arr);
    if (rc == 0) {
        q = sql_prepare(st->db, "SELECT x.name, x.sha256, b.size FROM firmware_file x"
                                " JOIN blob b ON b.sha256 = x.sha256"
                                " WHERE x.firmware_id = ?1 ORDER BY x.name");
        json_t *files = NULL;
        if (q == NULL) {
            rc = s_dberr(st, err, errlen);
        } else {
            sqlite3_bind_int64(q, 1, json_integer_value(json_object_get(fw, "id")));
            rc = s_collect(st, q, s_fw_file_row, &files, err, errlen);
        }
        if (rc == 0)
            rc = s_set(fw, "files", files);
        if (rc == -ENOMEM)
            s_err(err, errlen, "out of memory");
    }
    if (rc < 0) {
        json_decref(fw);
        return rc;
    }
    *out = fw;
    return 0;
}

/* ---- events ---- */

static json_t *s_event_row(sqlite3_stmt *q)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (s_set(o, "id", json_integer(sqlite3_column_int64(q, 0))) ||
        s_set(o, "agent", s_jstr(sqlite3_column_text(q, 1))) ||
        s_set(o, "site", s_jstr(sqlite3_column_text(q, 2))) ||
        s_set(o, "seq", json_integer(sqlite3_column_int64(q, 3))) ||
        s_set(o, "time_ms", json_integer(sqlite3_column_int64(q, 4))) ||
        s_set(o, "received_ms", json_integer(sqlite3_column_int64(q, 5))) ||
        s_set(o, "kind", s_jstr(sqlite3_column_text(q, 6))) ||
        s_set(o, "mac", s_jstr(sqlite3_column_text(q, 7))) ||
        s_set(o, "detail", s_jstr(sqlite3_column_text(q, 8)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int store_event_list(store_t *st, const struct store_event_filter *f, json_t **out, char *err,
                     size_t errlen)
{
    char canon[18] = "", qs[SHOW_MAX + 4];
    int rc;
    *out = NULL;
    if (f->limit < 0 || (f->has_since && f->since < 0)) {
        s_err(err, errlen, "limit and since must not be negative");
        return -EINVAL;
    }
    if (!s_empty(f->mac) && util_mac_canon(f->mac, canon) < 0) {
        s_err(err, errlen, "invalid MAC address '%s'", s_show(f->mac, qs));
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
            s_err(err, errlen, "unknown agent '%s'", s_show(f->agent, qs));
            return -ENOENT;
        }
        if (step != SQLITE_ROW)
            return s_dberr(st, err, errlen);
    }
    /* newest N when not paging: walk backwards, then reverse */
    int newest = !f->has_since && f->limit > 0;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT e.id, a.name, s.name, e.seq, e.time_ms, e.received_ms, e.kind, e.mac,"
             " e.detail FROM event e JOIN agent a ON a.id = e.agent_id"
             " JOIN site s ON s.id = a.site_id"
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
    rc = s_collect(st, q, s_event_row, &arr, err, errlen);
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
            s_err(err, errlen, "out of memory");
            return -ENOMEM;
        }
        arr = rev;
    }
    *out = arr;
    return 0;
}
