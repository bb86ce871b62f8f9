/* cli_render.c: human and JSON output of admin results (see cli_render.h).
 *
 * Tables: one column spec per field, cells formatted into heap strings,
 * widths computed over the header and all cells, columns separated by two
 * spaces, the last column unpadded. Cell text is made printable (control
 * bytes become '?') so data from agents cannot drive the terminal.
 */
#include "cli_render.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum fmt { F_STR, F_INT, F_TIME, F_BOOL, F_LIST, F_SIZE, F_ONLINE, F_COUNT, F_SPECS, F_SCOPE };

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

void cli_render_human(FILE *f, const char *noun, const char *verb, const json_t *doc)
{
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (strcmp(noun, "site") == 0) {
        if (strcmp(verb, "list") == 0)
            s_table(f, doc, c_site_list, N(c_site_list));
        else if (strcmp(verb, "add") == 0)
            fprintf(f, "added site %s (%s)\n", name ? name : "?",
                    s_or(json_string_value(json_object_get(doc, "tz")), "?"));
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
    } else if (strcmp(noun, "subnet") == 0 || strcmp(noun, "class") == 0 ||
               strcmp(noun, "template") == 0) {
        s_render_services(f, noun, verb, doc);
    } else {
        cli_render_json(f, doc);
    }
}
