/* cli_csv.c: device import CSV -> JSON rows (see cli_csv.h).
 *
 * The text is fed to libcsv one physical line at a time so that each record
 * can be given the line it starts on; a record's fields are collected in a
 * small per-parse struct (no globals). The first error stops the parse.
 */
#include "cli_csv.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dhcpopt.h"
#include "util.h"

enum { COL_MAC, COL_SITE, COL_MODEL, COL_SERIAL, COL_TAGS, COL_IP, COL_CLASS, N_COLS };
static const char *const s_col_names[N_COLS] = {"mac",  "site", "model", "serial",
                                                "tags", "ip",   "class"};

#define MAX_FIELDS 16
#define MAX_FIELD 1024

struct parse {
    int line;     /* physical line being fed */
    int rec_line; /* line the current record started on */
    int nfields;  /* fields in the current record */
    char *fields[MAX_FIELDS];
    int have_header;
    int ncols;              /* header width */
    int col_of[MAX_FIELDS]; /* header position -> COL_* */
    json_t *rows;
    int failed;
    char *err;
    size_t errlen;
};

static void s_fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_fail(struct parse *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
}

static void s_clear(struct parse *p)
{
    for (int i = 0; i < p->nfields && i < MAX_FIELDS; i++) {
        free(p->fields[i]);
        p->fields[i] = NULL;
    }
    p->nfields = 0;
}

static const char *s_show(const char *s, char out[68])
{
    size_t o = 0;
    for (const unsigned char *q = (const unsigned char *)s; *q && o < 64; q++)
        out[o++] = (*q >= 0x20 && *q < 0x7f) ? (char)*q : '?';
    out[o] = '\0';
    return out;
}

static void s_on_field(void *data, size_t len, void *arg)
{
    struct parse *p = arg;
    if (p->failed)
        return;
    if (p->nfields == 0)
        p->rec_line = p->line;
    if (p->nfields >= MAX_FIELDS) {
        s_fail(p, "line %d: too many fields", p->rec_line);
        return;
    }
    if (len > MAX_FIELD) {
        s_fail(p, "line %d: field %d too long", p->rec_line, p->nfields + 1);
        return;
    }
    if (memchr(data ? data : "", '\0', len) != NULL) {
        s_fail(p, "line %d: NUL byte in field %d", p->rec_line, p->nfields + 1);
        return;
    }
    char *f = malloc(len + 1);
    if (f == NULL) {
        s_fail(p, "out of memory");
        return;
    }
    if (len)
        memcpy(f, data, len);
    f[len] = '\0';
    p->fields[p->nfields++] = f;
}

static void s_header(struct parse *p)
{
    char q[68];
    int seen[N_COLS] = {0};
    p->ncols = p->nfields;
    for (int i = 0; i < p->nfields; i++) {
        int col = -1;
        for (int k = 0; k < N_COLS; k++)
            if (strcasecmp(p->fields[i], s_col_names[k]) == 0)
                col = k;
        if (col < 0) {
            s_fail(p,
                   "line %d: unknown column '%s' (expected mac, site, model, serial, tags, ip, "
                   "class)",
                   p->rec_line, s_show(p->fields[i], q));
            return;
        }
        if (seen[col]++) {
            s_fail(p, "line %d: column %s given twice", p->rec_line, s_col_names[col]);
            return;
        }
        p->col_of[i] = col;
    }
    if (!seen[COL_MAC] || !seen[COL_SITE]) {
        s_fail(p, "line %d: the header must name at least the columns mac and site", p->rec_line);
        return;
    }
    p->have_header = 1;
}

static void s_row(struct parse *p)
{
    char q[68];
    if (p->nfields != p->ncols) {
        s_fail(p, "line %d: expected %d fields, got %d", p->rec_line, p->ncols, p->nfields);
        return;
    }
    json_t *row = json_object();
    if (row == NULL || json_array_append_new(p->rows, row) < 0 ||
        json_object_set_new(row, "line", json_integer(p->rec_line)) < 0) {
        s_fail(p, "out of memory");
        return;
    }
    for (int i = 0; i < p->nfields; i++) {
        int col = p->col_of[i];
        if (col == COL_MAC) {
            uint8_t mac[6];
            if (util_mac_parse(p->fields[i], mac) < 0) {
                s_fail(p, "line %d: invalid MAC address '%s'", p->rec_line,
                       s_show(p->fields[i], q));
                return;
            }
        }
        uint32_t ip;
        if (col == COL_IP && p->fields[i][0] != '\0' && dhcpopt_ip_parse(p->fields[i], &ip) < 0) {
            s_fail(p, "line %d: invalid IP address '%s'", p->rec_line, s_show(p->fields[i], q));
            return;
        }
        json_t *v = json_string(p->fields[i]);
        if (v == NULL) {
            s_fail(p, "line %d: field %d is not valid UTF-8", p->rec_line, i + 1);
            return;
        }
        if (json_object_set_new(row, s_col_names[col], v) < 0) {
            s_fail(p, "out of memory");
            return;
        }
    }
}

static void s_on_record(int c, void *arg)
{
    (void)c;
    struct parse *p = arg;
    if (!p->failed && p->nfields > 0) {
        if (!p->have_header)
            s_header(p);
        else
            s_row(p);
    }
    s_clear(p);
}

int cli_csv_parse(const char *text, size_t len, json_t **rows, char *err, size_t errlen)
{
    *rows = NULL;
    struct parse p;
    memset(&p, 0, sizeof p);
    p.err = err;
    p.errlen = errlen;
    p.rows = json_array();
    struct csv_parser cp;
    if (p.rows == NULL || csv_init(&cp, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        json_decref(p.rows);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    size_t off = 0;
    /* skip a UTF-8 byte order mark */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        off = 3;
    while (off < len && !p.failed) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (text + off)) + 1 : len - off;
        p.line++;
        if (csv_parse(&cp, text + off, n, s_on_field, s_on_record, &p) != n)
            s_fail(&p, "line %d: %s", p.line, csv_strerror(csv_error(&cp)));
        off += n;
    }
    if (!p.failed && csv_fini(&cp, s_on_field, s_on_record, &p) != 0)
        s_fail(&p, "line %d: %s", p.line, csv_strerror(csv_error(&cp)));
    csv_free(&cp);
    s_clear(&p);
    if (!p.failed && !p.have_header)
        s_fail(&p, "empty file (a header line such as mac,site,model,serial,tags is required)");
    if (!p.failed && json_array_size(p.rows) == 0)
        s_fail(&p, "no devices in file");
    if (p.failed) {
        json_decref(p.rows);
        return strcmp(err, "out of memory") == 0 ? -ENOMEM : -EINVAL;
    }
    *rows = p.rows;
    return 0;
}
