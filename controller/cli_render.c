/* cli_render.c: human and JSON output of admin results (see cli_render.h).
 *
 * Tables: one column spec per field, cells formatted into heap strings,
 * widths computed over the header and all cells, columns separated by two
 * spaces, the last column unpadded. Cell text is made printable (control
 * bytes become '?') so data from agents cannot drive the terminal.
 */
#include "cli_render.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum fmt {
    F_STR,
    F_INT,
    F_TIME,
    F_BOOL,
    F_LIST,
    F_SIZE,
    F_ONLINE,
    F_COUNT,
    F_SPECS,
    F_SCOPE,
    F_WHEN,  /* cli_fmt_when */
    F_YESNO, /* boolean, or a number (non-zero: yes) */
    F_WAVES, /* a wave spec string, or an array of wave sizes */
};

struct col {
    const char *header;
    const char *key;
    enum fmt fmt;
};

int cli_render_json(FILE *f, const json_t *doc)
{
    if (json_dumpf(doc, f, JSON_INDENT(2) | JSON_ENCODE_ANY) < 0)
        return -EIO;
    fputc('\n', f);
    return ferror(f) ? -EIO : 0;
}

void cli_fmt_time(const json_t *ms, char *out, size_t n)
{
    if (!json_is_integer(ms) || json_integer_value(ms) <= 0) {
        snprintf(out, n, "-");
        return;
    }
    time_t t = (time_t)(json_integer_value(ms) / 1000);
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL || strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, n, "-");
}

void cli_fmt_size(long long bytes, char *out, size_t n)
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(out, n, "%lld B", bytes);
        return;
    }
    double v = (double)bytes;
    int u = -1;
    while (v >= 1024.0 && u < 3) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, n, "%.1f %s", v, units[u]);
}

static const char *s_or(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

/* Printable copy of s (control bytes -> '?'), malloc'd. */
static char *s_clean(const char *s)
{
    char *d = strdup(s ? s : "");
    if (d == NULL)
        return NULL;
    for (unsigned char *p = (unsigned char *)d; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    return d;
}

/* Formats one field of obj into a malloc'd string. */
static char *s_cell(const json_t *obj, const struct col *c)
{
    const json_t *v = json_object_get(obj, c->key);
    char buf[128];
    switch (c->fmt) {
    case F_STR:
        if (json_is_string(v))
            return s_clean(json_string_value(v)[0] ? json_string_value(v) : "-");
        break;
    case F_INT:
        if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            return strdup(buf);
        }
        break;
    case F_TIME:
        cli_fmt_time(v, buf, sizeof buf);
        return strdup(buf);
    case F_BOOL:
        if (json_is_boolean(v))
            return strdup(json_is_true(v) ? "yes" : "no");
        break;
    case F_ONLINE:
        if (json_is_true(json_object_get(obj, "revoked")))
            return strdup("revoked");
        if (json_is_boolean(v))
            return strdup(json_is_true(v) ? "online" : "offline");
        break;
    case F_SIZE:
        if (json_is_integer(v)) {
            cli_fmt_size((long long)json_integer_value(v), buf, sizeof buf);
            return strdup(buf);
        }
        break;
    case F_COUNT:
        if (json_is_array(v)) {
            snprintf(buf, sizeof buf, "%zu", json_array_size(v));
            return strdup(buf);
        }
        break;
    case F_SCOPE:
        /* a site name, or null for the global scope */
        if (json_is_null(v))
            return strdup("(global)");
        if (json_is_string(v))
            return s_clean(json_string_value(v));
        break;
    case F_WHEN:
        cli_fmt_when(v, buf, sizeof buf);
        return strdup(buf);
    case F_YESNO:
        if (json_is_boolean(v))
            return strdup(json_is_true(v) ? "yes" : "no");
        if (json_is_integer(v))
            return strdup(json_integer_value(v) ? "yes" : "no");
        break;
    case F_WAVES:
        if (json_is_string(v))
            return s_clean(json_string_value(v)[0] ? json_string_value(v) : "-");
        if (json_is_array(v) && json_array_size(v) > 0) {
            size_t i, o = 0;
            const json_t *item;
            buf[0] = '\0';
            json_array_foreach(v, i, item)
            {
                char one[32];
                if (json_is_integer(item))
                    snprintf(one, sizeof one, "%lld", (long long)json_integer_value(item));
                else
                    snprintf(one, sizeof one, "%.30s", s_or(json_string_value(item), "?"));
                int w = snprintf(buf + o, sizeof buf - o, "%s%s", i ? "," : "", one);
                if (w < 0 || (size_t)w >= sizeof buf - o)
                    break;
                o += (size_t)w;
            }
            return s_clean(buf);
        }
        break;
    case F_SPECS:
    case F_LIST:
        if (json_is_array(v) && json_array_size(v) > 0) {
            /* F_LIST: strings joined by ","; F_SPECS: the "spec" of each
             * object joined by ", " */
            const char *sep = c->fmt == F_SPECS ? ", " : ",";
            size_t len = 1, i;
            const json_t *item;
            json_array_foreach(v, i, item)
            {
                const json_t *t = c->fmt == F_SPECS ? json_object_get(item, "spec") : item;
                len += strlen(s_or(json_string_value(t), "")) + strlen(sep);
            }
            char *s = malloc(len);
            if (s == NULL)
                return NULL;
            s[0] = '\0';
            json_array_foreach(v, i, item)
            {
                const json_t *t = c->fmt == F_SPECS ? json_object_get(item, "spec") : item;
                if (i)
                    strcat(s, sep);
                strcat(s, s_or(json_string_value(t), ""));
            }
            char *clean = s_clean(s);
            free(s);
            return clean;
        }
        break;
    }
    return strdup("-");
}

/* One cell: padded to width and two spaces, or the last one and a newline. */
static void s_pad(FILE *f, const char *s, size_t width, int last)
{
    if (last)
        fprintf(f, "%s\n", s);
    else
        fprintf(f, "%-*s  ", (int)width, s);
}

static void s_table(FILE *f, const json_t *arr, const struct col *cols, size_t ncols)
{
    size_t nrows = json_is_array(arr) ? json_array_size(arr) : 0;
    char **cells = calloc((nrows + 1) * ncols, sizeof *cells);
    size_t *w = calloc(ncols, sizeof *w);
    if (cells == NULL || w == NULL) {
        free(cells);
        free(w);
        fprintf(f, "(out of memory)\n");
        return;
    }
    for (size_t c = 0; c < ncols; c++)
        w[c] = strlen(cols[c].header);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            char *s = s_cell(json_array_get(arr, r), &cols[c]);
            cells[r * ncols + c] = s;
            if (s && strlen(s) > w[c])
                w[c] = strlen(s);
        }
    for (size_t c = 0; c < ncols; c++)
        s_pad(f, cols[c].header, w[c], c + 1 == ncols);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            const char *s = cells[r * ncols + c] ? cells[r * ncols + c] : "?";
            s_pad(f, s, w[c], c + 1 == ncols);
        }
    for (size_t i = 0; i < (nrows + 1) * ncols; i++)
        free(cells[i]);
    free(cells);
    free(w);
}

/* "key: value" lines, labels aligned. */
static void s_block(FILE *f, const json_t *obj, const struct col *cols, size_t ncols)
{
    size_t w = 0;
    for (size_t c = 0; c < ncols; c++)
        if (strlen(cols[c].header) > w)
            w = strlen(cols[c].header);
    for (size_t c = 0; c < ncols; c++) {
        char *s = s_cell(obj, &cols[c]);
        fprintf(f, "%-*s  %s\n", (int)w + 1, cols[c].header, s ? s : "?");
        free(s);
    }
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct col c_site_list[] = {
    {"NAME", "name", F_STR},
    {"TZ", "tz", F_STR},
    {"DEVICES", "devices", F_INT},
    {"AGENTS", "agents", F_INT},
    {"DESCRIPTION", "description", F_STR},
};
static const struct col c_site_show[] = {
    {"name:", "name", F_STR},
    {"tz:", "tz", F_STR},
    {"description:", "description", F_STR},
    {"devices:", "devices", F_INT},
    {"agents:", "agents", F_INT},
    {"created:", "created_ms", F_TIME},
    {"generation:", "generation", F_INT},
};
static const struct col c_agent_list[] = {
    {"NAME", "name", F_STR},       {"SITE", "site", F_STR},
    {"STATE", "online", F_ONLINE}, {"LAST SEEN", "last_seen_ms", F_TIME},
    {"VERSION", "version", F_STR}, {"IMAGE BYTES SENT", "image_bytes_sent", F_INT},
};
static const struct col c_agent_show[] = {
    {"name:", "name", F_STR},
    {"site:", "site", F_STR},
    {"state:", "online", F_ONLINE},
    {"last seen:", "last_seen_ms", F_TIME},
    {"version:", "version", F_STR},
    {"image bytes sent:", "image_bytes_sent", F_INT},
    {"created:", "created_ms", F_TIME},
    {"revoked:", "revoked_ms", F_TIME},
    {"enrollment:", "enrollment", F_STR},
    {"enrollment expires:", "enroll_expires_ms", F_TIME},
    {"enrollment used:", "enroll_used_ms", F_TIME},
    {"public key:", "public_key", F_STR},
    {"cached images:", "cached", F_COUNT},
};
static const struct col c_device_list[] = {
    {"MAC", "mac", F_STR},
    {"SITE", "site", F_STR},
    {"MODEL", "model", F_STR},
    {"SERIAL", "serial", F_STR},
    {"VERSION", "current_version", F_STR},
    {"IP", "ip", F_STR},
    {"CLASS", "class", F_STR},
    {"TAGS", "tags", F_LIST},
};
static const struct col c_device_show[] = {
    {"mac:", "mac", F_STR},
    {"site:", "site", F_STR},
    {"model:", "model", F_STR},
    {"serial:", "serial", F_STR},
    {"tags:", "tags", F_LIST},
    {"ip:", "ip", F_STR},
    {"class:", "class", F_STR},
    {"vendor class:", "vendor_class", F_STR},
    {"version:", "current_version", F_STR},
    {"origin:", "origin", F_STR},
    {"created:", "created_ms", F_TIME},
    {"last seen:", "last_seen_ms", F_TIME},
};
static const struct col c_fw_list[] = {
    {"VENDOR", "vendor", F_STR},    {"VERSION", "version", F_STR},
    {"MODELS", "models", F_LIST},   {"FILES", "file_count", F_INT},
    {"SIZE", "total_size", F_SIZE}, {"DESCRIPTION", "description", F_STR},
};
static const struct col c_fw_show[] = {
    {"vendor:", "vendor", F_STR},    {"version:", "version", F_STR},
    {"models:", "models", F_LIST},   {"description:", "description", F_STR},
    {"size:", "total_size", F_SIZE}, {"created:", "created_ms", F_TIME},
};
static const struct col c_fw_files[] = {
    {"FILE", "name", F_STR},
    {"SIZE", "size", F_INT},
    {"SHA256", "sha256", F_STR},
};
static const struct col c_event_list[] = {
    {"ID", "id", F_INT},     {"TIME", "time_ms", F_TIME}, {"AGENT", "agent", F_STR},
    {"KIND", "kind", F_STR}, {"MAC", "mac", F_STR},       {"DETAIL", "detail", F_STR},
};
static const struct col c_backup_list[] = {
    {"ID", "id", F_INT},           {"RECEIVED", "received_ms", F_TIME},
    {"SITE", "site", F_STR},       {"MAC", "mac", F_STR},
    {"NAME", "name", F_STR},       {"SIZE", "size", F_SIZE},
    {"UPLOADS", "uploads", F_INT}, {"SHA256", "sha256", F_STR},
};
static const struct col c_audit_list[] = {
    {"ID", "id", F_INT},         {"TIME", "time_ms", F_TIME},     {"USER", "user", F_STR},
    {"ACTION", "action", F_STR}, {"DETAIL", "detail", F_STR},
};
static const struct col c_backup_show[] = {
    {"id:", "id", F_INT},
    {"mac:", "mac", F_STR},
    {"name:", "name", F_STR},
    {"site:", "site", F_STR},
    {"agent:", "agent", F_STR},
    {"size:", "size", F_INT},
    {"sha256:", "sha256", F_STR},
    {"uploaded:", "time_ms", F_TIME},
    {"received:", "received_ms", F_TIME},
    {"last upload:", "last_ms", F_TIME},
    {"uploads:", "uploads", F_INT},
    {"versions kept:", "versions", F_INT},
};

static const struct col c_subnet_list[] = {
    {"SITE", "site", F_STR},
    {"CIDR", "cidr", F_STR},
    {"POOL START", "pool_start", F_STR},
    {"POOL END", "pool_end", F_STR},
    {"ROUTER", "router", F_STR},
    {"DNS", "dns", F_LIST},
    {"LEASE", "lease_seconds", F_INT},
    {"RELAYS", "relays", F_LIST},
    {"OPTIONS", "options", F_SPECS},
};
static const struct col c_class_list[] = {
    {"NAME", "name", F_STR},           {"SITE", "site", F_SCOPE},   {"PRIORITY", "priority", F_INT},
    {"TFTP ROOT", "tftp_root", F_STR}, {"MATCH", "rules", F_SPECS}, {"OPTIONS", "options", F_SPECS},
};
static const struct col c_class_show[] = {
    {"name:", "name", F_STR},           {"site:", "site", F_SCOPE},
    {"priority:", "priority", F_INT},   {"tftp root:", "tftp_root", F_STR},
    {"created:", "created_ms", F_TIME},
};
static const struct col c_template_list[] = {
    {"NAME", "name", F_STR},
    {"SITE", "site", F_SCOPE},
    {"SIZE", "size", F_INT},
    {"CREATED", "created_ms", F_TIME},
};

/* "global" or "at site S" of a class or template document. */
static const char *s_scope_of(const json_t *doc, char *out, size_t n)
{
    const char *site = json_string_value(json_object_get(doc, "site"));
    if (site == NULL)
        snprintf(out, n, "global");
    else
        snprintf(out, n, "at site %s", site);
    return out;
}

/* "  spec" lines of an array of {spec} objects under a heading. */
static void s_spec_lines(FILE *f, const char *heading, const json_t *arr)
{
    size_t i;
    const json_t *item;
    fprintf(f, "%s\n", heading);
    if (json_array_size(arr) == 0)
        fprintf(f, "  -\n");
    json_array_foreach(arr, i, item)
    {
        char *s = s_clean(s_or(json_string_value(json_object_get(item, "spec")), "?"));
        fprintf(f, "  %s\n", s ? s : "?");
        free(s);
    }
}

static void s_render_services(FILE *f, const char *noun, const char *verb, const json_t *doc)
{
    char scope[160];
    char *name = s_clean(s_or(json_string_value(json_object_get(doc, "name")), "?"));
    if (strcmp(noun, "subnet") == 0) {
        char *cidr = s_clean(s_or(json_string_value(json_object_get(doc, "cidr")), "?"));
        char *site = s_clean(s_or(json_string_value(json_object_get(doc, "site")), "?"));
        if (strcmp(verb, "list") == 0)
            s_table(f, doc, c_subnet_list, N(c_subnet_list));
        else if (strcmp(verb, "add") == 0)
            fprintf(f, "added subnet %s at site %s\n", cidr ? cidr : "?", site ? site : "?");
        else
            fprintf(f, "removed subnet %s from site %s\n", cidr ? cidr : "?", site ? site : "?");
        free(cidr);
        free(site);
    } else if (strcmp(noun, "class") == 0) {
        if (strcmp(verb, "list") == 0) {
            s_table(f, doc, c_class_list, N(c_class_list));
        } else if (strcmp(verb, "show") == 0) {
            s_block(f, doc, c_class_show, N(c_class_show));
            s_spec_lines(f, "match:", json_object_get(doc, "rules"));
            s_spec_lines(f, "options:", json_object_get(doc, "options"));
        } else {
            fprintf(f, "%s class %s (%s)\n", strcmp(verb, "add") == 0 ? "added" : "removed",
                    name ? name : "?", s_scope_of(doc, scope, sizeof scope));
        }
    } else if (strcmp(noun, "template") == 0) {
        if (strcmp(verb, "list") == 0)
            s_table(f, doc, c_template_list, N(c_template_list));
        else if (strcmp(verb, "add") == 0)
            fprintf(f, "added template %s (%s, %lld bytes)\n", name ? name : "?",
                    s_scope_of(doc, scope, sizeof scope),
                    (long long)json_integer_value(json_object_get(doc, "size")));
        else
            fprintf(f, "removed template %s (%s)\n", name ? name : "?",
                    s_scope_of(doc, scope, sizeof scope));
    }
    free(name);
}

/* ---- rollouts and profiles ---- */

static const char *const s_states[] = {
    "pending",   "assigned",  "waiting_window", "offered", "downloading", "installed",
    "verifying", "succeeded", "failed",         "skipped", "cancelled",   NULL,
};

const char *const *cli_rollout_states(void)
{
    return s_states;
}

static long long s_count(const json_t *counts, const char *key)
{
    const json_t *v = json_object_get(counts, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (long long)json_integer_value(v) : 0;
}

void cli_tally(const json_t *counts, const json_t *total, struct cli_tally *t)
{
    memset(t, 0, sizeof *t);
    long long sum = 0;
    for (int i = 0; s_states[i]; i++)
        sum += s_count(counts, s_states[i]);
    t->done = s_count(counts, "succeeded") + s_count(counts, "skipped");
    t->failed = s_count(counts, "failed");
    t->active = s_count(counts, "offered") + s_count(counts, "downloading") +
                s_count(counts, "installed") + s_count(counts, "verifying");
    t->waiting = s_count(counts, "pending") + s_count(counts, "assigned") +
                 s_count(counts, "waiting_window");
    t->total = json_is_integer(total) && json_integer_value(total) > 0
                   ? (long long)json_integer_value(total)
                   : sum;
}

int cli_bar(const struct cli_tally *t, int width, char *out, size_t n)
{
    if (n > 0)
        out[0] = '\0';
    if (width < 3 || n <= (size_t)width)
        return -EINVAL;
    int inner = width - 2;
    long long seg[3] = {t->done, t->failed, t->active};
    int cells[4] = {0, 0, 0, 0}; /* done, failed, active, rest */
    long long total = t->total, cum = 0;
    int used = 0;
    for (int i = 0; i < 3; i++) {
        long long s = seg[i] > 0 ? seg[i] : 0;
        cum += s;
        if (total > 0 && cum > total)
            cum = total; /* counts above the total: the bar is just full */
        int upto = total > 0 ? (int)(cum * inner / total) : 0;
        cells[i] = upto - used;
        used = upto;
    }
    cells[3] = inner - used;
    /* a failure or a device in progress must be visible */
    for (int i = 1; i < 3; i++) {
        if (seg[i] <= 0 || cells[i] > 0)
            continue;
        int big = -1;
        for (int j = 0; j < 4; j++)
            if (j != i && cells[j] > 1 && (big < 0 || cells[j] > cells[big]))
                big = j;
        if (big >= 0) {
            cells[big]--;
            cells[i]++;
        }
    }
    static const char glyph[4] = {'#', 'x', '>', '-'};
    size_t o = 0;
    out[o++] = '[';
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < cells[i]; k++)
            out[o++] = glyph[i];
    out[o++] = ']';
    out[o] = '\0';
    return 0;
}

void cli_fmt_when(const json_t *v, char *out, size_t n)
{
    if (json_is_string(v) && json_string_value(v)[0]) {
        char *c = s_clean(json_string_value(v));
        snprintf(out, n, "%s", c ? c : "?");
        free(c);
        return;
    }
    if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < 100000000000LL) {
        json_t *ms = json_integer(json_integer_value(v) * 1000);
        cli_fmt_time(ms, out, n);
        json_decref(ms);
        return;
    }
    cli_fmt_time(v, out, n);
}

static const struct col c_profile_list[] = {
    {"NAME", "name", F_STR},     {"PRIORITY", "priority", F_INT},
    {"SOURCE", "source", F_STR}, {"SIGNED", "signed", F_BOOL},
    {"KEY", "key_id", F_STR},    {"DESCRIPTION", "description", F_STR},
};
static const struct col c_rollout_list[] = {
    {"ID", "id", F_INT},           {"NAME", "name", F_STR},
    {"STATE", "state", F_STR},     {"FIRMWARE", "firmware", F_STR},
    {"PROFILE", "profile", F_STR}, {"DONE", "done", F_STR},
    {"FAILED", "failed", F_INT},   {"CREATED", "created_at", F_WHEN},
    {"REASON", "reason", F_STR},
};
static const struct col c_rollout_head[] = {
    {"rollout:", "name", F_STR},
    {"state:", "state", F_STR},
    {"reason:", "reason", F_STR},
    {"firmware:", "firmware", F_STR},
    {"profile:", "profile", F_STR},
    {"waves:", "waves", F_WAVES},
    {"current wave:", "current", F_STR},
    {"max failures:", "max_failures", F_STR},
    {"site concurrency:", "site_concurrency", F_STR},
    {"window:", "window", F_STR},
    {"created:", "created_at", F_WHEN},
    {"started:", "started_at", F_WHEN},
    {"finished:", "finished_at", F_WHEN},
};
static const struct col c_rollout_waves[] = {
    {"WAVE", "wave", F_INT},     {"STATE", "state", F_STR},        {"DONE", "done", F_STR},
    {"FAILED", "failed", F_INT}, {"IN PROGRESS", "active", F_INT}, {"WAITING", "waiting", F_INT},
};
static const struct col c_rollout_sites[] = {
    {"SITE", "site", F_STR},          {"DONE", "done", F_STR},       {"FAILED", "failed", F_INT},
    {"IN PROGRESS", "active", F_INT}, {"STAGED", "staged", F_YESNO},
};
static const struct col c_rollout_failures[] = {
    {"MAC", "mac", F_STR},
    {"SITE", "site", F_STR},
    {"AT", "at", F_WHEN},
    {"REASON", "reason", F_STR},
};
static const struct col c_rollout_devices[] = {
    {"MAC", "mac", F_STR},       {"SITE", "site", F_STR},   {"MODEL", "model", F_STR},
    {"WAVE", "wave", F_INT},     {"STATE", "state", F_STR}, {"UPDATED", "updated_at", F_WHEN},
    {"REASON", "reason", F_STR},
};

/* A copy of each row of arr with the tally of its "counts" added as
 * done ("D/T"), failed, active, waiting; totkey names the row's total. */
static json_t *s_with_tally(const json_t *arr, const char *totkey)
{
    json_t *out = json_array();
    size_t i;
    const json_t *row;
    json_array_foreach(arr, i, row)
    {
        struct cli_tally t;
        char done[64];
        json_t *r = json_is_object(row) ? json_copy((json_t *)(uintptr_t)row) : json_object();
        cli_tally(json_object_get(row, "counts"), json_object_get(row, totkey), &t);
        snprintf(done, sizeof done, "%lld/%lld", t.done, t.total);
        if (r == NULL || out == NULL)
            break;
        json_object_set_new(r, "done", json_string(done));
        json_object_set_new(r, "failed", json_integer(t.failed));
        json_object_set_new(r, "active", json_integer(t.active));
        json_object_set_new(r, "waiting", json_integer(t.waiting));
        json_array_append_new(out, r);
    }
    return out;
}

/* "pending 0  assigned 2  ...  (20 devices)" */
static void s_counts_line(FILE *f, const json_t *counts, const json_t *total)
{
    struct cli_tally t;
    cli_tally(counts, total, &t);
    for (int i = 0; s_states[i]; i++)
        fprintf(f, "%s%s %lld", i ? "  " : "", s_states[i], s_count(counts, s_states[i]));
    fprintf(f, "  (%lld device%s)\n", t.total, t.total == 1 ? "" : "s");
}

static void s_rollout_status(FILE *f, const json_t *doc)
{
    const json_t *ro = json_object_get(doc, "rollout");
    json_t *head = json_is_object(ro) ? json_copy((json_t *)(uintptr_t)ro) : json_object();
    if (head == NULL) {
        fprintf(f, "(out of memory)\n");
        return;
    }
    /* "2 of 3", and numbers shown as text so that "2" and "10%" both print */
    char buf[64];
    size_t nwaves = json_array_size(json_object_get(doc, "waves"));
    const json_t *cw = json_object_get(ro, "current_wave");
    if (json_is_integer(cw) && json_integer_value(cw) > 0) {
        snprintf(buf, sizeof buf, "%lld of %zu", (long long)json_integer_value(cw), nwaves);
        json_object_set_new(head, "current", json_string(buf));
    }
    static const char *const numeric[] = {"max_failures", "site_concurrency"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(ro, numeric[i]);
        if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            json_object_set_new(head, numeric[i], json_string(buf));
        }
    }
    const json_t *sc = json_object_get(ro, "site_concurrency");
    if (json_is_integer(sc) && json_integer_value(sc) == 0)
        json_object_set_new(head, "site_concurrency", json_string("no cap"));
    if (json_is_string(json_object_get(ro, "window")) &&
        json_string_value(json_object_get(ro, "window"))[0] == '\0')
        json_object_set_new(head, "window", json_string("any time"));
    s_block(f, head, c_rollout_head, N(c_rollout_head));
    json_decref(head);
    fputc('\n', f);
    s_counts_line(f, json_object_get(doc, "counts"), json_object_get(ro, "total"));
    json_t *waves = s_with_tally(json_object_get(doc, "waves"), "size");
    json_t *sites = s_with_tally(json_object_get(doc, "sites"), "total");
    if (json_array_size(waves) > 0) {
        fputc('\n', f);
        s_table(f, waves, c_rollout_waves, N(c_rollout_waves));
    }
    if (json_array_size(sites) > 0) {
        fputc('\n', f);
        s_table(f, sites, c_rollout_sites, N(c_rollout_sites));
    }
    json_decref(waves);
    json_decref(sites);
    const json_t *fails = json_object_get(doc, "failures");
    fprintf(f, "\nfailures: %zu\n", json_array_size(fails));
    if (json_array_size(fails) > 0)
        s_table(f, fails, c_rollout_failures, N(c_rollout_failures));
    const json_t *devs = json_object_get(doc, "devices");
    if (json_is_array(devs)) {
        fputc('\n', f);
        s_table(f, devs, c_rollout_devices, N(c_rollout_devices));
    }
}

static void s_render_rollout(FILE *f, const char *verb, const json_t *doc)
{
    /* a write answers with the rollout's status document, or a small one */
    const json_t *ro = json_object_get(doc, "rollout");
    const json_t *top = json_is_object(ro) && strcmp(verb, "status") != 0 ? ro : doc;
    char *name = s_clean(s_or(json_string_value(json_object_get(top, "name")), "?"));
    if (strcmp(verb, "list") == 0) {
        json_t *rows = json_array();
        size_t i;
        const json_t *row;
        json_array_foreach(json_object_get(doc, "rollouts"), i, row)
        {
            char done[64];
            const json_t *s = json_object_get(row, "succeeded"), *t = json_object_get(row, "total");
            if (json_is_integer(s) && json_is_integer(t))
                snprintf(done, sizeof done, "%lld/%lld", (long long)json_integer_value(s),
                         (long long)json_integer_value(t));
            else
                snprintf(done, sizeof done, "-");
            json_t *r = json_is_object(row) ? json_copy((json_t *)(uintptr_t)row) : NULL;
            if (r == NULL)
                continue;
            json_object_set_new(r, "done", json_string(done));
            json_array_append_new(rows, r);
        }
        s_table(f, rows, c_rollout_list, N(c_rollout_list));
        json_decref(rows);
    } else if (strcmp(verb, "status") == 0) {
        s_rollout_status(f, doc);
    } else if (strcmp(verb, "create") == 0) {
        const json_t *total = json_object_get(top, "total");
        fprintf(f, "created rollout %s", name ? name : "?");
        if (json_is_integer(total))
            fprintf(f, " for %lld device%s", (long long)json_integer_value(total),
                    json_integer_value(total) == 1 ? "" : "s");
        fprintf(f, " (start it with 'firmfleet rollout start %s')\n", name ? name : "?");
    } else {
        static const char *const done[][2] = {
            {"start", "started"}, {"pause", "paused"}, {"resume", "resumed"}, {"abort", "aborted"}};
        const char *what = verb;
        for (size_t i = 0; i < N(done); i++)
            if (strcmp(verb, done[i][0]) == 0)
                what = done[i][1];
        char *state = s_clean(json_string_value(json_object_get(top, "state")));
        fprintf(f, "%s rollout %s", what, name ? name : "?");
        if (state && state[0])
            fprintf(f, " (now %s)", state);
        fputc('\n', f);
        free(state);
    }
    free(name);
}

/* The cleaned key id of a signed profile document ("?" when it names none),
 * malloc'd; NULL when it is not signed. */
static char *s_profile_key(const json_t *doc)
{
    if (!json_is_true(json_object_get(doc, "signed")))
        return NULL;
    return s_clean(s_or(json_string_value(json_object_get(doc, "key_id")), "?"));
}

static void s_render_profile(FILE *f, const char *verb, const json_t *doc)
{
    char *name = s_clean(s_or(json_string_value(json_object_get(doc, "name")), "?"));
    if (strcmp(verb, "list") == 0) {
        s_table(f, json_object_get(doc, "profiles"), c_profile_list, N(c_profile_list));
    } else if (strcmp(verb, "show") == 0) {
        /* the profile as it was written: not cleaned, it is the operator's */
        const char *text = json_string_value(json_object_get(doc, "json"));
        if (text) {
            size_t len = strlen(text);
            fputs(text, f);
            if (len == 0 || text[len - 1] != '\n')
                fputc('\n', f);
        } else {
            cli_render_json(f, doc);
        }
    } else if (strcmp(verb, "add") == 0) {
        char *id = s_profile_key(doc);
        fprintf(f, "%s profile %s%s%s%s\n",
                json_is_true(json_object_get(doc, "replaced")) ? "replaced" : "added",
                name ? name : "?", id ? " (signed by key " : "", id ? id : "", id ? ")" : "");
        free(id);
    } else {
        fprintf(f, "removed profile %s\n", name ? name : "?");
    }
    free(name);
}

/* site set: "updated site NAME (window SPEC)" */
static void s_set_site(FILE *f, const json_t *doc)
{
    char *name = s_clean(s_or(json_string_value(json_object_get(doc, "name")), "?"));
    const json_t *w = json_object_get(doc, "window");
    char *win = json_is_string(w) ? s_clean(json_string_value(w)) : NULL;
    fprintf(f, "updated site %s", name ? name : "?");
    if (win)
        fprintf(f, " (window %s)", win[0] ? win : "any time");
    fputc('\n', f);
    free(name);
    free(win);
}

void cli_render_human(FILE *f, const char *noun, const char *verb, const json_t *doc)
{
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (strcmp(noun, "site") == 0) {
        if (strcmp(verb, "list") == 0)
            s_table(f, doc, c_site_list, N(c_site_list));
        else if (strcmp(verb, "add") == 0)
            fprintf(f, "added site %s (%s)\n", name ? name : "?",
                    s_or(json_string_value(json_object_get(doc, "tz")), "?"));
        else if (strcmp(verb, "set") == 0)
            s_set_site(f, doc);
        else
            s_block(f, doc, c_site_show, N(c_site_show));
    } else if (strcmp(noun, "agent") == 0) {
        if (strcmp(verb, "list") == 0)
            s_table(f, doc, c_agent_list, N(c_agent_list));
        else if (strcmp(verb, "revoke") == 0)
            fprintf(f, "revoked agent %s\n", name ? name : "?");
        else
            s_block(f, doc, c_agent_show, N(c_agent_show));
    } else if (strcmp(noun, "device") == 0) {
        if (strcmp(verb, "list") == 0) {
            s_table(f, doc, c_device_list, N(c_device_list));
        } else if (strcmp(verb, "add") == 0) {
            fprintf(f, "added device %s at site %s\n",
                    s_or(json_string_value(json_object_get(doc, "mac")), "?"),
                    s_or(json_string_value(json_object_get(doc, "site")), "?"));
        } else if (strcmp(verb, "assign") == 0) {
            long long n = (long long)json_integer_value(json_object_get(doc, "assigned"));
            long long k = (long long)json_integer_value(json_object_get(doc, "agents"));
            fprintf(f, "assigned %s to %lld device%s through %lld agent%s\n",
                    s_or(json_string_value(json_object_get(doc, "firmware")), "?"), n,
                    n == 1 ? "" : "s", k, k == 1 ? "" : "s");
        } else if (strcmp(verb, "set") == 0) {
            fprintf(f, "updated device %s\n",
                    s_or(json_string_value(json_object_get(doc, "mac")), "?"));
        } else if (strcmp(verb, "import") == 0) {
            long long n = (long long)json_integer_value(json_object_get(doc, "imported"));
            long long s = (long long)json_integer_value(json_object_get(doc, "sites"));
            fprintf(f, "imported %lld device%s at %lld site%s\n", n, n == 1 ? "" : "s", s,
                    s == 1 ? "" : "s");
        } else {
            s_block(f, doc, c_device_show, N(c_device_show));
        }
    } else if (strcmp(noun, "firmware") == 0) {
        if (strcmp(verb, "list") == 0) {
            s_table(f, doc, c_fw_list, N(c_fw_list));
        } else {
            s_block(f, doc, c_fw_show, N(c_fw_show));
            fputc('\n', f);
            s_table(f, json_object_get(doc, "files"), c_fw_files, N(c_fw_files));
        }
    } else if (strcmp(noun, "event") == 0) {
        s_table(f, doc, c_event_list, N(c_event_list));
    } else if (strcmp(noun, "audit") == 0) {
        s_table(f, doc, c_audit_list, N(c_audit_list));
    } else if (strcmp(noun, "backup") == 0) {
        if (strcmp(verb, "list") == 0)
            s_table(f, doc, c_backup_list, N(c_backup_list));
        else
            s_block(f, doc, c_backup_show, N(c_backup_show));
    } else if (strcmp(noun, "rollout") == 0) {
        s_render_rollout(f, verb, doc);
    } else if (strcmp(noun, "profile") == 0) {
        s_render_profile(f, verb, doc);
    } else if (strcmp(noun, "subnet") == 0 || strcmp(noun, "class") == 0 ||
               strcmp(noun, "template") == 0) {
        s_render_services(f, noun, verb, doc);
    } else {
        cli_render_json(f, doc);
    }
}

void cli_render_note(FILE *f, const char *noun, const char *verb, const json_t *doc)
{
    if (strcmp(noun, "profile") != 0 || strcmp(verb, "show") != 0 ||
        !json_is_boolean(json_object_get(doc, "signed")))
        return; /* a controller from before signed profiles says nothing */
    char *name = s_clean(s_or(json_string_value(json_object_get(doc, "name")), "?"));
    char *id = s_profile_key(doc);
    fprintf(f, "profile %s: %s%s\n", name ? name : "?", id ? "signed by key " : "unsigned",
            id ? id : "");
    free(id);
    free(name);
}

void cli_render_event_line(FILE *f, const json_t *ev)
{
    static const struct col cols[] = {
        {"", "id", F_INT},   {"", "time_ms", F_TIME}, {"", "agent", F_STR},
        {"", "kind", F_STR}, {"", "mac", F_STR},      {"", "detail", F_STR},
    };
    for (size_t i = 0; i < N(cols); i++) {
        char *cell = s_cell(ev, &cols[i]);
        fprintf(f, "%s%s", i ? "  " : "", cell ? cell : "-");
        free(cell);
    }
    fputc('\n', f);
}
