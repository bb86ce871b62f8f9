/* profile.c: vendor profiles (lib/profile.h, format profiles/README.md).
 *
 * profile_parse turns the JSON text into a profile_t that holds everything
 * pre-digested: rules split into DHCP rules (struct dhcpopt_rule, matched by
 * the caller's classifier) and ERE rules (compiled once), templates cut into
 * segments (literal text or one variable), file names with {mac} split into
 * prefix and suffix. Everything after parsing is read-only, so one profile_t
 * may be evaluated from several threads at once (regexec on a compiled
 * regex_t does not modify it).
 *
 * Invariants of a parsed profile: every template variable is known, every
 * regex compiled, every file has exactly one of name/name_regex and one of
 * body/image, every file stage names an existing stage, at most
 * PROFILE_MAX_ITEMS stages, files, rules, extractors and options per list.
 * Strict on input: an unknown key, a wrong type or a limit exceeded refuses
 * the whole profile with one line naming the field ("files[2].body: ...").
 */
#include "profile.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define PROFILE_MAX_ITEMS 64
#define PROFILE_STR_MAX 255      /* names, globs, rules, stage names */
#define PROFILE_RE_MAX 1024      /* one ERE */
#define PROFILE_BODY_MAX (64 * 1024)
#define EVIDENCE_TEXT_MAX 1024   /* option 60 as text; longer is cut */

/* ---- templates ---- */

enum tvar {
    T_LIT = 0,
    T_MAC,
    T_MAC_UP,
    T_MAC_DASH,
    T_IP,
    T_MODEL,
    T_SERIAL,
    T_SITE,
    T_SERVER_IP,
    T_HTTP_PORT,
    T_HTTP_BASE,
    T_STAGE,
    T_VERSION,
    T_FIRMWARE,
    T_IMAGE,
    T_IMAGE_STEM,
    T_IMAGE_URL,
    T_SER_CONFIG,
    T_SER_FIRMWARE,
    T_SER_BOOT,
    T_WINDOW_HOURS,
    T_GRACE_MIN,
    /* EXTRACT values only */
    T_CAPTURE,
    T_INSTALLED,
};

static const struct {
    const char *name;
    enum tvar var;
    int glob; /* takes ":GLOB" */
} s_vars[] = {
    {"mac", T_MAC, 0},
    {"MAC", T_MAC_UP, 0},
    {"mac_dash", T_MAC_DASH, 0},
    {"ip", T_IP, 0},
    {"model", T_MODEL, 0},
    {"serial", T_SERIAL, 0},
    {"site", T_SITE, 0},
    {"server_ip", T_SERVER_IP, 0},
    {"http_port", T_HTTP_PORT, 0},
    {"http_base", T_HTTP_BASE, 0},
    {"stage", T_STAGE, 0},
    {"version", T_VERSION, 0},
    {"firmware", T_FIRMWARE, 0},
    {"image", T_IMAGE, 1},
    {"image_stem", T_IMAGE_STEM, 1},
    {"image_url", T_IMAGE_URL, 1},
    {"serial_config", T_SER_CONFIG, 0},
    {"serial_firmware", T_SER_FIRMWARE, 0},
    {"serial_boot", T_SER_BOOT, 0},
    {"window_hours", T_WINDOW_HOURS, 0},
    {"grace_min", T_GRACE_MIN, 0},
};

/* One piece of a template: literal text, or a variable whose argument (the
 * GLOB of image*, the capture number) is text[off, off+len). */
struct seg {
    uint8_t var; /* enum tvar */
    uint8_t capture;
    uint32_t off, len;
};

struct tpl {
    char *text; /* the template as written, NUL-terminated */
    size_t len;
    struct seg *segs;
    size_t nsegs;
};

/* ---- rules, extractors, stages, files ---- */

enum rkind { R_DHCP = 0, R_VENDOR_REGEX, R_USER_AGENT, R_FILE };

struct rule {
    int kind; /* enum rkind */
    struct dhcpopt_rule dr;
    regex_t re;
    int has_re;
};

struct extract {
    int from; /* R_VENDOR_REGEX (vendor), R_USER_AGENT, R_FILE */
    regex_t re;
    int has_re;
    struct tpl value; /* text NULL: no "value", the result is group 1 / the match */
};

struct stage {
    char *name;
    struct rule *when;
    size_t nwhen;
    struct dhcpopt *opts;
    size_t nopts;
};

struct profile_file {
    char *name;             /* NULL when name_regex */
    size_t mac_at;          /* byte offset of {mac}/{MAC} in name; SIZE_MAX none */
    int mac_upper;
    char *prefix, *suffix;  /* name around {mac} (name itself when none) */
    regex_t re, re_icase;   /* name_regex */
    int has_re;
    uint64_t stages;        /* bit i: stage i; 0 = any */
    enum profile_when when;
    struct tpl body, hold_body; /* text NULL when absent */
    char *image;
    char *content_type;
};

struct profile {
    char *name;
    char *description;
    int priority;
    struct rule *recognise;
    size_t nrecognise;
    struct extract *model, *version;
    size_t nmodel, nversion;
    struct stage *stages;
    size_t nstages;
    struct dhcpopt *opts;
    size_t nopts;
    char *final_image;
    char *image_check;
    struct profile_file *files;
    size_t nfiles;
    int has_restart;
    struct profile_restart restart;
    char *restart_event, *restart_ct, *restart_body;
};

/* ---- small helpers ---- */

static void s_errf(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "path: reason" with every control character of the result turned into
 * '?' so the message stays one line whatever the profile holds. */
static void s_errf(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err == NULL || errlen == 0)
        return;
    if (path && *path)
        snprintf(err, errlen, "%s: %s", path, msg);
    else
        snprintf(err, errlen, "%s", msg);
    for (char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

/* A printable excerpt of s for messages (at most 60 bytes, "..." after). */
static const char *s_show(const char *s, char buf[72])
{
    return util_show(s, strlen(s), 60, buf);
}

static int s_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

static char *s_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Growable output buffer for rendering. */
struct obuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void s_put(struct obuf *b, const char *s, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void s_puts(struct obuf *b, const char *s)
{
    if (s)
        s_put(b, s, strlen(s));
}

/* Bounded output for the version/model extractors (no allocation). */
struct sbuf {
    char *p;
    size_t n, len;
};

static void s_sput(struct sbuf *b, const char *s, size_t n)
{
    if (b->n == 0)
        return;
    size_t room = b->n - 1 - b->len;
    if (n > room)
        n = room;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* ---- JSON access with paths ---- */

struct pctx {
    char *err;
    size_t errlen;
};

static const char *s_jtype(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Refuses keys of obj not in allowed (NULL-terminated). */
static int s_keys(struct pctx *c, const char *path, json_t *obj, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok) {
            char q[72];
            s_errf(c->err, c->errlen, path, "unknown key \"%s\"", s_show(k, q));
            return -EINVAL;
        }
        (void)v;
    }
    return 0;
}

/* Member key of obj: its path (path.key) into p, the value into *j. 1
 * present and of type, 0 absent and optional, -EINVAL (reason in c->err)
 * absent and required, or of another type (what is "a string", "an array"). */
static int s_member(struct pctx *c, const char *path, json_t *obj, const char *key, int required,
                    json_type type, const char *what, char p[160], json_t **j)
{
    snprintf(p, 160, "%s%s%s", path, *path ? "." : "", key);
    *j = json_object_get(obj, key);
    if (*j == NULL) {
        if (!required)
            return 0;
        s_errf(c->err, c->errlen, p, "required");
        return -EINVAL;
    }
    if (json_typeof(*j) != type) {
        s_errf(c->err, c->errlen, p, "must be %s, not %s", what, s_jtype(*j));
        return -EINVAL;
    }
    return 1;
}

/* Optional string member: 0 with *out (NULL when absent), or -EINVAL. The
 * string must be non-empty, at most max bytes, printable when printable. */
static int s_str(struct pctx *c, const char *path, json_t *obj, const char *key, size_t max,
                 int printable, int required, const char **out)
{
    char p[160];
    json_t *j;
    *out = NULL;
    int rc = s_member(c, path, obj, key, required, JSON_STRING, "a string", p, &j);
    if (rc <= 0)
        return rc;
    size_t n = json_string_length(j);
    const char *s = json_string_value(j);
    if (n > max) {
        s_errf(c->err, c->errlen, p, "longer than %zu bytes", max);
        return -EINVAL;
    }
    if (strlen(s) != n) {
        s_errf(c->err, c->errlen, p, "holds a NUL character");
        return -EINVAL;
    }
    if (printable && !s_printable(s, n)) {
        s_errf(c->err, c->errlen, p, "must be printable ASCII on one line");
        return -EINVAL;
    }
    *out = s;
    return 0;
}

/* Optional array member: 0 with *out (NULL when absent), or -EINVAL. */
static int s_arr(struct pctx *c, const char *path, json_t *obj, const char *key, int required,
                 json_t **out)
{
    char p[160];
    json_t *j;
    *out = NULL;
    int rc = s_member(c, path, obj, key, required, JSON_ARRAY, "an array", p, &j);
    if (rc <= 0)
        return rc;
    if (json_array_size(j) > PROFILE_MAX_ITEMS) {
        s_errf(c->err, c->errlen, p, "more than %d entries", PROFILE_MAX_ITEMS);
        return -EINVAL;
    }
    if (required && json_array_size(j) == 0) {
        s_errf(c->err, c->errlen, p, "must not be empty");
        return -EINVAL;
    }
    *out = j;
    return 0;
}

/* ---- parsing pieces ---- */

/* glibc's regcomp copies a repeated piece once per repetition ('+' once,
 * {n,m} up to m times), so stacked quantifiers ("a+++...") and nested
 * repetitions ("((a{60})+){60}") make its memory grow geometrically: one
 * hostile profile would exhaust the controller and every agent. Estimates
 * the expanded size (pieces times their repetitions, through the groups)
 * and refuses a pattern beyond PROFILE_RE_COST, a stacked quantifier, a
 * bound above PROFILE_RE_DUP_MAX, or groups nested deeper than
 * PROFILE_RE_DEPTH, before regcomp sees it. NULL ok, else the reason. */
#define PROFILE_RE_DUP_MAX 64
#define PROFILE_RE_DEPTH 16
#define PROFILE_RE_COST 20000
static const char *s_re_shape(const char *src)
{
    unsigned long cost[PROFILE_RE_DEPTH + 1] = {0};
    unsigned long piece = 0; /* the cost of the piece a quantifier would repeat */
    int depth = 0, prev_quant = 0;
    for (const char *p = src; *p; p++) {
        int quant = 0;
        unsigned long mult = 1;
        switch (*p) {
        case '\\':
            if (p[1] != '\0')
                p++;
            piece = 1;
            break;
        case '[': {
            const char *q = p + 1;
            if (*q == '^')
                q++;
            if (*q == ']')
                q++;
            while (*q && *q != ']') {
                if (*q == '[' && (q[1] == ':' || q[1] == '=' || q[1] == '.')) {
                    const char *e = strchr(q + 2, ']');
                    if (e == NULL)
                        return NULL; /* malformed: regcomp says why */
                    q = e;
                }
                q++;
            }
            if (*q == '\0')
                return NULL;
            p = q;
            piece = 1;
            break;
        }
        case '(':
            if (depth == PROFILE_RE_DEPTH)
                return "groups nested too deep";
            cost[++depth] = 0;
            piece = 0;
            break;
        case ')':
            if (depth == 0)
                return NULL;
            piece = cost[depth--] + 1;
            break;
        case '*':
        case '?':
            quant = 1;
            break;
        case '+':
            quant = 1;
            mult = 2;
            break;
        case '{': {
            char *end;
            unsigned long lo = strtoul(p + 1, &end, 10), hi = lo;
            if (end == p + 1)
                return NULL;
            if (*end == ',')
                hi = end[1] == '}' ? lo + 1 : strtoul(end + 1, &end, 10);
            if (lo > PROFILE_RE_DUP_MAX || hi > PROFILE_RE_DUP_MAX)
                return "a repetition count above 64";
            const char *close = strchr(p, '}');
            if (close == NULL)
                return NULL;
            p = close;
            quant = 1;
            mult = (hi > lo ? hi : lo) + 1;
            break;
        }
        default:
            piece = 1;
            break;
        }
        if (quant) {
            if (prev_quant)
                return "a quantifier right after another";
            /* the piece was counted once already; add its copies */
            cost[depth] += piece * (mult - 1);
            piece *= mult;
        } else if (*p != '(') {
            cost[depth] += piece; /* an atom, or a whole group into its parent */
        }
        if (cost[depth] > PROFILE_RE_COST || piece > PROFILE_RE_COST)
            return "it would expand too far (nested repetitions)";
        prev_quant = quant;
    }
    return NULL;
}

static int s_regcomp(struct pctx *c, const char *path, regex_t *re, const char *src, int flags)
{
    if (*src == '\0') {
        s_errf(c->err, c->errlen, path, "empty regex");
        return -EINVAL;
    }
    if (strlen(src) > PROFILE_RE_MAX) {
        s_errf(c->err, c->errlen, path, "regex longer than %d bytes", PROFILE_RE_MAX);
        return -EINVAL;
    }
    const char *shape = s_re_shape(src);
    if (shape != NULL) {
        char q[72];
        s_errf(c->err, c->errlen, path, "regex \"%s\" refused: %s", s_show(src, q), shape);
        return -EINVAL;
    }
    int rc = regcomp(re, src, REG_EXTENDED | flags);
    if (rc != 0) {
        char why[128], q[72];
        regerror(rc, re, why, sizeof why);
        s_errf(c->err, c->errlen, path, "bad regex \"%s\": %s", s_show(src, q), why);
        return -EINVAL;
    }
    return 0;
}

static int s_tpl_add(struct tpl *t, enum tvar var, size_t off, size_t len, unsigned capture)
{
    if (var == T_LIT && len == 0)
        return 0;
    if (var == T_LIT && t->nsegs > 0 && t->segs[t->nsegs - 1].var == T_LIT &&
        t->segs[t->nsegs - 1].off + t->segs[t->nsegs - 1].len == off) {
        t->segs[t->nsegs - 1].len += (uint32_t)len;
        return 0;
    }
    struct seg *ns = realloc(t->segs, (t->nsegs + 1) * sizeof *ns);
    if (ns == NULL)
        return -ENOMEM;
    t->segs = ns;
    ns[t->nsegs++] = (struct seg){(uint8_t)var, (uint8_t)capture, (uint32_t)off, (uint32_t)len};
    return 0;
}

static void s_tpl_free(struct tpl *t)
{
    free(t->text);
    free(t->segs);
    memset(t, 0, sizeof *t);
}

/* Cuts a file template into segments. "{{" opens a variable that ends at the
 * next "}}"; anything else (a lone '{', innovaphone's #m) is literal. */
static int s_tpl_parse(struct pctx *c, const char *path, const char *src, struct tpl *t)
{
    memset(t, 0, sizeof *t);
    t->len = strlen(src);
    t->text = s_strdup(src);
    if (t->text == NULL)
        goto oom;
    size_t i = 0, lit = 0;
    while (i < t->len) {
        if (!(t->text[i] == '{' && t->text[i + 1] == '{')) {
            i++;
            continue;
        }
        const char *end = strstr(t->text + i + 2, "}}");
        if (end == NULL) {
            s_errf(c->err, c->errlen, path, "unterminated {{ at byte %zu", i);
            goto bad;
        }
        if (s_tpl_add(t, T_LIT, lit, i - lit, 0) < 0)
            goto oom;
        size_t vo = i + 2, vn = (size_t)(end - (t->text + vo));
        const char *v = t->text + vo;
        const char *colon = memchr(v, ':', vn);
        size_t kn = colon ? (size_t)(colon - v) : vn;
        int found = -1;
        for (size_t k = 0; k < sizeof s_vars / sizeof s_vars[0]; k++)
            if (strlen(s_vars[k].name) == kn && memcmp(s_vars[k].name, v, kn) == 0)
                found = (int)k;
        if (found < 0 || (colon != NULL) != (s_vars[found].glob != 0)) {
            char name[72];
            size_t m = vn > 60 ? 60 : vn;
            memcpy(name, v, m);
            name[m] = '\0';
            if (found >= 0 && s_vars[found].glob)
                s_errf(c->err, c->errlen, path, "{{%s}} needs a glob: {{%s:GLOB}}", name, name);
            else
                s_errf(c->err, c->errlen, path, "unknown variable {{%s}}", name);
            goto bad;
        }
        size_t ao = colon ? (size_t)(colon + 1 - t->text) : vo, an = colon ? vo + vn - ao : 0;
        if (colon && an == 0) {
            s_errf(c->err, c->errlen, path, "{{%.*s:}} has an empty glob", (int)kn, v);
            goto bad;
        }
        if (s_tpl_add(t, s_vars[found].var, ao, an, 0) < 0)
            goto oom;
        i = vo + vn + 2;
        lit = i;
    }
    if (s_tpl_add(t, T_LIT, lit, t->len - lit, 0) < 0)
        goto oom;
    return 0;
oom:
    s_errf(c->err, c->errlen, path, "out of memory");
    s_tpl_free(t);
    return -ENOMEM;
bad:
    s_tpl_free(t);
    return -EINVAL;
}

/* An EXTRACT value: \1..\9 (at most the regex's groups), \\ for a
 * backslash, {{installed}}; any other {{...}} is refused. */
static int s_value_parse(struct pctx *c, const char *path, const char *src, size_t ngroups,
                         struct tpl *t)
{
    memset(t, 0, sizeof *t);
    t->len = strlen(src);
    t->text = s_strdup(src);
    if (t->text == NULL)
        goto oom;
    size_t i = 0, lit = 0;
    while (i < t->len) {
        char ch = t->text[i];
        if (ch == '\\' && t->text[i + 1] >= '1' && t->text[i + 1] <= '9') {
            unsigned g = (unsigned)(t->text[i + 1] - '0');
            if (g > ngroups) {
                s_errf(c->err, c->errlen, path, "\\%u but the regex has %zu group%s", g, ngroups,
                       ngroups == 1 ? "" : "s");
                goto bad;
            }
            if (s_tpl_add(t, T_LIT, lit, i - lit, 0) < 0 || s_tpl_add(t, T_CAPTURE, i, 2, g) < 0)
                goto oom;
            i += 2;
            lit = i;
        } else if (ch == '\\' && t->text[i + 1] == '\\') {
            if (s_tpl_add(t, T_LIT, lit, i + 1 - lit, 0) < 0)
                goto oom;
            i += 2;
            lit = i;
        } else if (ch == '{' && t->text[i + 1] == '{') {
            const char *end = strstr(t->text + i + 2, "}}");
            if (end == NULL) {
                s_errf(c->err, c->errlen, path, "unterminated {{ at byte %zu", i);
                goto bad;
            }
            size_t vn = (size_t)(end - (t->text + i + 2));
            if (vn != strlen("installed") || memcmp(t->text + i + 2, "installed", vn) != 0) {
                s_errf(c->err, c->errlen, path,
                       "unknown variable {{%.*s}} (a value knows only {{installed}} and \\1..\\9)",
                       (int)(vn > 60 ? 60 : vn), t->text + i + 2);
                goto bad;
            }
            if (s_tpl_add(t, T_LIT, lit, i - lit, 0) < 0 || s_tpl_add(t, T_INSTALLED, i, 0, 0) < 0)
                goto oom;
            i += 2 + vn + 2;
            lit = i;
        } else {
            i++;
        }
    }
    if (s_tpl_add(t, T_LIT, lit, t->len - lit, 0) < 0)
        goto oom;
    return 0;
oom:
    s_errf(c->err, c->errlen, path, "out of memory");
    s_tpl_free(t);
    return -ENOMEM;
bad:
    s_tpl_free(t);
    return -EINVAL;
}

static const struct {
    const char *name;
    int kind;
} s_rkinds[] = {
    {"vendor-regex", R_VENDOR_REGEX},
    {"user-agent", R_USER_AGENT},
    {"file", R_FILE},
    {"vendor", R_DHCP},
    {"vendor-prefix", R_DHCP},
    {"vendor-substring", R_DHCP},
    {"vendor-suffix", R_DHCP},
    {"user-class", R_DHCP},
    {"oui", R_DHCP},
    {"enterprise", R_DHCP},
};

static int s_rule_parse(struct pctx *c, const char *path, json_t *j, struct rule *r)
{
    memset(r, 0, sizeof *r);
    if (!json_is_string(j)) {
        s_errf(c->err, c->errlen, path, "must be a string KIND:VALUE, not %s", s_jtype(j));
        return -EINVAL;
    }
    const char *s = json_string_value(j);
    char q[72];
    if (strlen(s) != json_string_length(j) || strlen(s) > PROFILE_RE_MAX + 20) {
        s_errf(c->err, c->errlen, path, "rule too long or holds a NUL");
        return -EINVAL;
    }
    const char *colon = strchr(s, ':');
    if (colon == NULL) {
        s_errf(c->err, c->errlen, path, "\"%s\" is not KIND:VALUE", s_show(s, q));
        return -EINVAL;
    }
    size_t kn = (size_t)(colon - s);
    int kind = -1;
    for (size_t i = 0; i < sizeof s_rkinds / sizeof s_rkinds[0]; i++)
        if (strlen(s_rkinds[i].name) == kn && memcmp(s_rkinds[i].name, s, kn) == 0)
            kind = s_rkinds[i].kind;
    if (kind < 0) {
        s_errf(c->err, c->errlen, path,
               "unknown rule kind \"%.*s\" (vendor, vendor-prefix, vendor-substring, "
               "vendor-suffix, vendor-regex, user-class, oui, enterprise, user-agent, file)",
               (int)(kn > 40 ? 40 : kn), s);
        return -EINVAL;
    }
    r->kind = kind;
    if (kind == R_DHCP) {
        char why[256];
        if (dhcpopt_rule_parse(s, &r->dr, why, sizeof why) < 0) {
            s_errf(c->err, c->errlen, path, "%s", why);
            return -EINVAL;
        }
        return 0;
    }
    if (!s_printable(colon + 1, strlen(colon + 1))) {
        s_errf(c->err, c->errlen, path, "regex must be printable ASCII");
        return -EINVAL;
    }
    if (s_regcomp(c, path, &r->re, colon + 1, 0) < 0)
        return -EINVAL;
    r->has_re = 1;
    return 0;
}

static void s_rules_free(struct rule *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].has_re)
            regfree(&r[i].re);
    free(r);
}

static int s_rules_parse(struct pctx *c, const char *path, json_t *arr, struct rule **out,
                         size_t *nout)
{
    size_t n = json_array_size(arr);
    *out = NULL;
    *nout = 0;
    if (n == 0)
        return 0;
    struct rule *r = calloc(n, sizeof *r);
    if (r == NULL) {
        s_errf(c->err, c->errlen, path, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        int rc = s_rule_parse(c, p, json_array_get(arr, i), &r[i]);
        if (rc < 0) {
            s_rules_free(r, i);
            return rc;
        }
    }
    *out = r;
    *nout = n;
    return 0;
}

static void s_extracts_free(struct extract *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (x[i].has_re)
            regfree(&x[i].re);
        s_tpl_free(&x[i].value);
    }
    free(x);
}

static int s_extracts_parse(struct pctx *c, const char *key, json_t *arr, struct extract **out,
                            size_t *nout)
{
    static const char *const keys[] = {"from", "regex", "value", NULL};
    size_t n = json_array_size(arr);
    *out = NULL;
    *nout = 0;
    if (n == 0)
        return 0;
    struct extract *x = calloc(n, sizeof *x);
    if (x == NULL) {
        s_errf(c->err, c->errlen, key, "out of memory");
        return -ENOMEM;
    }
    size_t i;
    int rc = -EINVAL;
    for (i = 0; i < n; i++) {
        char p[160], pf[176];
        snprintf(p, sizeof p, "%s[%zu]", key, i);
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) {
            s_errf(c->err, c->errlen, p, "must be an object {\"from\", \"regex\", \"value\"}, not %s",
                   s_jtype(o));
            goto fail;
        }
        const char *from, *re, *value;
        if (s_keys(c, p, o, keys) < 0 || s_str(c, p, o, "from", 32, 1, 1, &from) < 0 ||
            s_str(c, p, o, "regex", PROFILE_RE_MAX, 1, 1, &re) < 0 ||
            s_str(c, p, o, "value", PROFILE_STR_MAX, 1, 0, &value) < 0)
            goto fail;
        if (strcmp(from, "vendor") == 0)
            x[i].from = R_VENDOR_REGEX;
        else if (strcmp(from, "user-agent") == 0)
            x[i].from = R_USER_AGENT;
        else if (strcmp(from, "file") == 0)
            x[i].from = R_FILE;
        else {
            char q[72];
            snprintf(pf, sizeof pf, "%s.from", p);
            s_errf(c->err, c->errlen, pf, "\"%s\" is not vendor, user-agent or file",
                   s_show(from, q));
            goto fail;
        }
        snprintf(pf, sizeof pf, "%s.regex", p);
        if (s_regcomp(c, pf, &x[i].re, re, 0) < 0)
            goto fail;
        x[i].has_re = 1;
        if (value) {
            snprintf(pf, sizeof pf, "%s.value", p);
            rc = s_value_parse(c, pf, value, x[i].re.re_nsub, &x[i].value);
            if (rc < 0)
                goto fail;
            rc = -EINVAL;
        }
    }
    *out = x;
    *nout = n;
    return 0;
fail:
    s_extracts_free(x, i + 1 <= n ? i + 1 : n);
    return rc;
}

static int s_opts_parse(struct pctx *c, const char *path, json_t *arr, struct dhcpopt **out,
                        size_t *nout)
{
    size_t n = json_array_size(arr);
    *out = NULL;
    *nout = 0;
    if (n == 0)
        return 0;
    struct dhcpopt *o = calloc(n, sizeof *o);
    if (o == NULL) {
        s_errf(c->err, c->errlen, path, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        char p[160], why[256];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        json_t *j = json_array_get(arr, i);
        if (!json_is_string(j)) {
            s_errf(c->err, c->errlen, p, "must be an option spec string, not %s", s_jtype(j));
            free(o);
            return -EINVAL;
        }
        if (dhcpopt_parse(json_string_value(j), &o[i], why, sizeof why) < 0) {
            s_errf(c->err, c->errlen, p, "%s", why);
            free(o);
            return -EINVAL;
        }
        for (size_t k = 0; k < i; k++)
            if (o[k].code == o[i].code) {
                s_errf(c->err, c->errlen, p, "option %u given twice", o[i].code);
                free(o);
                return -EINVAL;
            }
    }
    *out = o;
    *nout = n;
    return 0;
}

static int s_stages_parse(struct pctx *c, json_t *arr, profile_t *p)
{
    static const char *const keys[] = {"name", "when", "dhcp_options", NULL};
    size_t n = json_array_size(arr);
    if (n == 0)
        return 0;
    p->stages = calloc(n, sizeof *p->stages);
    if (p->stages == NULL) {
        s_errf(c->err, c->errlen, "stages", "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        char path[64], pp[96];
        snprintf(path, sizeof path, "stages[%zu]", i);
        struct stage *s = &p->stages[i];
        json_t *o = json_array_get(arr, i), *when, *opts;
        const char *name;
        if (!json_is_object(o)) {
            s_errf(c->err, c->errlen, path, "must be an object, not %s", s_jtype(o));
            return -EINVAL;
        }
        if (s_keys(c, path, o, keys) < 0 ||
            s_str(c, path, o, "name", PROFILE_STR_MAX, 1, 1, &name) < 0)
            return -EINVAL;
        snprintf(pp, sizeof pp, "%s.name", path);
        if (*name == '\0') {
            s_errf(c->err, c->errlen, pp, "empty");
            return -EINVAL;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(p->stages[k].name, name) == 0) {
                char q[72];
                s_errf(c->err, c->errlen, pp, "stage \"%s\" defined twice", s_show(name, q));
                return -EINVAL;
            }
        s->name = s_strdup(name);
        p->nstages = i + 1;
        if (s->name == NULL) {
            s_errf(c->err, c->errlen, pp, "out of memory");
            return -ENOMEM;
        }
        int rc;
        if (s_arr(c, path, o, "when", 1, &when) < 0 || s_arr(c, path, o, "dhcp_options", 0, &opts) < 0)
            return -EINVAL;
        snprintf(pp, sizeof pp, "%s.when", path);
        if ((rc = s_rules_parse(c, pp, when, &s->when, &s->nwhen)) < 0)
            return rc;
        snprintf(pp, sizeof pp, "%s.dhcp_options", path);
        if (opts && (rc = s_opts_parse(c, pp, opts, &s->opts, &s->nopts)) < 0)
            return rc;
    }
    return 0;
}

/* A FILE name: printable, at most one {mac}/{MAC}, no other '{...}'. */
static int s_fname_parse(struct pctx *c, const char *path, const char *name, struct profile_file *f)
{
    char q[72];
    f->mac_at = SIZE_MAX;
    if (*name == '\0') {
        s_errf(c->err, c->errlen, path, "empty");
        return -EINVAL;
    }
    for (const char *s = name; (s = strchr(s, '{')) != NULL; s++) {
        int lo = strncmp(s, "{mac}", 5) == 0, up = strncmp(s, "{MAC}", 5) == 0;
        if (!lo && !up) {
            s_errf(c->err, c->errlen, path, "\"%s\": only {mac} or {MAC} may stand in a name",
                   s_show(name, q));
            return -EINVAL;
        }
        if (f->mac_at != SIZE_MAX) {
            s_errf(c->err, c->errlen, path, "\"%s\": at most one {mac}/{MAC}", s_show(name, q));
            return -EINVAL;
        }
        f->mac_at = (size_t)(s - name);
        f->mac_upper = up;
    }
    if (strchr(name, '}') && f->mac_at == SIZE_MAX) {
        s_errf(c->err, c->errlen, path, "\"%s\": stray '}'", s_show(name, q));
        return -EINVAL;
    }
    f->name = s_strdup(name);
    if (f->mac_at == SIZE_MAX) {
        f->prefix = s_strdup(name);
        f->suffix = s_strdup("");
    } else {
        f->prefix = malloc(f->mac_at + 1);
        if (f->prefix) {
            memcpy(f->prefix, name, f->mac_at);
            f->prefix[f->mac_at] = '\0';
        }
        f->suffix = s_strdup(name + f->mac_at + 5);
    }
    if (f->name == NULL || f->prefix == NULL || f->suffix == NULL) {
        s_errf(c->err, c->errlen, path, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static void s_file_free(struct profile_file *f)
{
    free(f->name);
    free(f->prefix);
    free(f->suffix);
    if (f->has_re) {
        regfree(&f->re);
        regfree(&f->re_icase);
    }
    s_tpl_free(&f->body);
    s_tpl_free(&f->hold_body);
    free(f->image);
    free(f->content_type);
}

static int s_files_parse(struct pctx *c, json_t *arr, profile_t *p)
{
    static const char *const keys[] = {"name",      "name_regex", "stages",
                                       "when",      "body",       "hold_body",
                                       "image",     "content_type", NULL};
    size_t n = json_array_size(arr);
    if (n == 0)
        return 0;
    p->files = calloc(n, sizeof *p->files);
    if (p->files == NULL) {
        s_errf(c->err, c->errlen, "files", "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        char path[64], pp[96];
        snprintf(path, sizeof path, "files[%zu]", i);
        struct profile_file *f = &p->files[i];
        p->nfiles = i + 1;
        f->mac_at = SIZE_MAX;
        json_t *o = json_array_get(arr, i), *stages;
        const char *name, *nre, *when, *body, *hold, *image, *ct;
        int rc;
        if (!json_is_object(o)) {
            s_errf(c->err, c->errlen, path, "must be an object, not %s", s_jtype(o));
            return -EINVAL;
        }
        if (s_keys(c, path, o, keys) < 0 ||
            s_str(c, path, o, "name", PROFILE_STR_MAX, 1, 0, &name) < 0 ||
            s_str(c, path, o, "name_regex", PROFILE_STR_MAX, 1, 0, &nre) < 0 ||
            s_str(c, path, o, "when", 16, 1, 0, &when) < 0 ||
            s_str(c, path, o, "body", PROFILE_BODY_MAX, 0, 0, &body) < 0 ||
            s_str(c, path, o, "hold_body", PROFILE_BODY_MAX, 0, 0, &hold) < 0 ||
            s_str(c, path, o, "image", PROFILE_STR_MAX, 1, 0, &image) < 0 ||
            s_str(c, path, o, "content_type", 127, 1, 0, &ct) < 0 ||
            s_arr(c, path, o, "stages", 0, &stages) < 0)
            return -EINVAL;
        if ((name == NULL) == (nre == NULL)) {
            s_errf(c->err, c->errlen, path, "needs exactly one of \"name\" and \"name_regex\"");
            return -EINVAL;
        }
        if ((body == NULL) == (image == NULL)) {
            s_errf(c->err, c->errlen, path, "needs exactly one of \"body\" and \"image\"");
            return -EINVAL;
        }
        if (name) {
            snprintf(pp, sizeof pp, "%s.name", path);
            if ((rc = s_fname_parse(c, pp, name, f)) < 0)
                return rc;
        } else {
            snprintf(pp, sizeof pp, "%s.name_regex", path);
            if (s_regcomp(c, pp, &f->re, nre, 0) < 0)
                return -EINVAL;
            if (s_regcomp(c, pp, &f->re_icase, nre, REG_ICASE) < 0) {
                regfree(&f->re);
                return -EINVAL;
            }
            f->has_re = 1;
        }
        f->when = PROFILE_WHEN_ALWAYS;
        if (when) {
            snprintf(pp, sizeof pp, "%s.when", path);
            if (strcmp(when, "always") == 0)
                f->when = PROFILE_WHEN_ALWAYS;
            else if (strcmp(when, "upgrade") == 0)
                f->when = PROFILE_WHEN_UPGRADE;
            else if (strcmp(when, "hold") == 0)
                f->when = PROFILE_WHEN_HOLD;
            else {
                s_errf(c->err, c->errlen, pp, "\"%s\" is not always, upgrade or hold", when);
                return -EINVAL;
            }
        }
        if (hold && f->when != PROFILE_WHEN_ALWAYS) {
            s_errf(c->err, c->errlen, path, "hold_body is only for \"when\": \"always\"");
            return -EINVAL;
        }
        if (hold && image) {
            s_errf(c->err, c->errlen, path, "hold_body goes with body, not image");
            return -EINVAL;
        }
        if (image && f->when == PROFILE_WHEN_HOLD) {
            s_errf(c->err, c->errlen, path, "an image is only served while upgrading, not on hold");
            return -EINVAL;
        }
        for (size_t k = 0; stages && k < json_array_size(stages); k++) {
            json_t *sj = json_array_get(stages, k);
            snprintf(pp, sizeof pp, "%s.stages[%zu]", path, k);
            if (!json_is_string(sj)) {
                s_errf(c->err, c->errlen, pp, "must be a stage name, not %s", s_jtype(sj));
                return -EINVAL;
            }
            int si = profile_stage_index(p, json_string_value(sj));
            if (si < 0) {
                char q[72];
                s_errf(c->err, c->errlen, pp, "unknown stage \"%s\"",
                       s_show(json_string_value(sj), q));
                return -EINVAL;
            }
            f->stages |= UINT64_C(1) << si;
        }
        if (body) {
            snprintf(pp, sizeof pp, "%s.body", path);
            if ((rc = s_tpl_parse(c, pp, body, &f->body)) < 0)
                return rc;
        }
        if (hold) {
            snprintf(pp, sizeof pp, "%s.hold_body", path);
            if ((rc = s_tpl_parse(c, pp, hold, &f->hold_body)) < 0)
                return rc;
        }
        if (image) {
            if (*image == '\0') {
                snprintf(pp, sizeof pp, "%s.image", path);
                s_errf(c->err, c->errlen, pp, "empty glob");
                return -EINVAL;
            }
            if ((f->image = s_strdup(image)) == NULL)
                goto oom;
        }
        if ((f->content_type = s_strdup(ct ? ct : "")) == NULL)
            goto oom;
    }
    return 0;
oom:
    s_errf(c->err, c->errlen, "files", "out of memory");
    return -ENOMEM;
}

static int s_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PROFILE_NAME_MAX)
        return 0;
    if (!(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '.' ||
              s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static int s_restart_parse(struct pctx *c, json_t *o, profile_t *p)
{
    static const char *const keys[] = {"event", "content_type", "body", NULL};
    const char *ev, *ct, *body;
    if (!json_is_object(o)) {
        s_errf(c->err, c->errlen, "restart", "must be an object, not %s", s_jtype(o));
        return -EINVAL;
    }
    if (s_keys(c, "restart", o, keys) < 0 ||
        s_str(c, "restart", o, "event", PROFILE_STR_MAX, 1, 1, &ev) < 0 ||
        s_str(c, "restart", o, "content_type", 127, 1, 0, &ct) < 0 ||
        s_str(c, "restart", o, "body", PROFILE_BODY_MAX, 0, 0, &body) < 0)
        return -EINVAL;
    if (*ev == '\0') {
        s_errf(c->err, c->errlen, "restart.event", "empty");
        return -EINVAL;
    }
    p->restart_event = s_strdup(ev);
    p->restart_ct = s_strdup(ct ? ct : "");
    p->restart_body = s_strdup(body ? body : "");
    if (!p->restart_event || !p->restart_ct || !p->restart_body) {
        s_errf(c->err, c->errlen, "restart", "out of memory");
        return -ENOMEM;
    }
    p->restart.event = p->restart_event;
    p->restart.content_type = p->restart_ct;
    p->restart.body = p->restart_body;
    p->has_restart = 1;
    return 0;
}

static int s_parse_root(struct pctx *c, json_t *root, profile_t *p)
{
    static const char *const keys[] = {"name",         "description", "priority",    "recognise",
                                       "model",        "version",     "stages",      "dhcp_options",
                                       "final_image",  "image_check", "files",       "restart",
                                       NULL};
    const char *name, *desc, *fin, *chk;
    json_t *rec, *model, *version, *stages, *opts, *files, *j;
    int rc;
    if (!json_is_object(root)) {
        s_errf(c->err, c->errlen, "", "a profile must be a JSON object, not %s", s_jtype(root));
        return -EINVAL;
    }
    if (s_keys(c, "", root, keys) < 0 ||
        s_str(c, "", root, "name", PROFILE_NAME_MAX + 1, 0, 1, &name) < 0 ||
        s_str(c, "", root, "description", PROFILE_STR_MAX, 1, 0, &desc) < 0 ||
        s_str(c, "", root, "final_image", PROFILE_STR_MAX, 1, 0, &fin) < 0 ||
        s_str(c, "", root, "image_check", 16, 1, 0, &chk) < 0 ||
        s_arr(c, "", root, "recognise", 1, &rec) < 0 ||
        s_arr(c, "", root, "model", 0, &model) < 0 ||
        s_arr(c, "", root, "version", 0, &version) < 0 ||
        s_arr(c, "", root, "stages", 0, &stages) < 0 ||
        s_arr(c, "", root, "dhcp_options", 0, &opts) < 0 ||
        s_arr(c, "", root, "files", 0, &files) < 0)
        return -EINVAL;
    if (!s_name_ok(name)) {
        char q[72];
        s_errf(c->err, c->errlen, "name",
               "\"%s\" must be 1..63 of a-z 0-9 . _ - starting with a letter or digit",
               s_show(name, q));
        return -EINVAL;
    }
    p->priority = 100;
    if ((j = json_object_get(root, "priority")) != NULL) {
        if (!json_is_integer(j) || json_integer_value(j) < -1000000 ||
            json_integer_value(j) > 1000000) {
            s_errf(c->err, c->errlen, "priority", "must be an integer from -1000000 to 1000000");
            return -EINVAL;
        }
        p->priority = (int)json_integer_value(j);
    }
    if (fin && *fin == '\0') {
        s_errf(c->err, c->errlen, "final_image", "empty glob");
        return -EINVAL;
    }
    if (chk && strcmp(chk, "tar") != 0 && strcmp(chk, "none") != 0) {
        s_errf(c->err, c->errlen, "image_check", "\"%s\" is not tar or none", chk);
        return -EINVAL;
    }
    p->name = s_strdup(name);
    p->description = s_strdup(desc ? desc : "");
    p->final_image = s_strdup(fin ? fin : "*");
    p->image_check = s_strdup(chk ? chk : "none");
    if (!p->name || !p->description || !p->final_image || !p->image_check) {
        s_errf(c->err, c->errlen, "", "out of memory");
        return -ENOMEM;
    }
    if ((rc = s_rules_parse(c, "recognise", rec, &p->recognise, &p->nrecognise)) < 0)
        return rc;
    if (model && (rc = s_extracts_parse(c, "model", model, &p->model, &p->nmodel)) < 0)
        return rc;
    if (version && (rc = s_extracts_parse(c, "version", version, &p->version, &p->nversion)) < 0)
        return rc;
    if (opts && (rc = s_opts_parse(c, "dhcp_options", opts, &p->opts, &p->nopts)) < 0)
        return rc;
    if (stages && (rc = s_stages_parse(c, stages, p)) < 0)
        return rc;
    if (files && (rc = s_files_parse(c, files, p)) < 0)
        return rc;
    if ((j = json_object_get(root, "restart")) != NULL && (rc = s_restart_parse(c, j, p)) < 0)
        return rc;
    return 0;
}

int profile_parse(const char *json, size_t len, profile_t **out, char *err, size_t errlen)
{
    struct pctx c = {err, errlen};
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (len > PROFILE_JSON_MAX) {
        s_errf(err, errlen, "", "profile larger than %d bytes", PROFILE_JSON_MAX);
        return -EINVAL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        s_errf(err, errlen, "", "not valid JSON: line %d column %d: %s", jerr.line, jerr.column,
               jerr.text);
        return -EINVAL;
    }
    profile_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        json_decref(root);
        s_errf(err, errlen, "", "out of memory");
        return -ENOMEM;
    }
    int rc = s_parse_root(&c, root, p);
    json_decref(root);
    if (rc < 0) {
        profile_free(p);
        return rc == -ENOMEM ? -ENOMEM : -EINVAL;
    }
    *out = p;
    return 0;
}

void profile_free(profile_t *p)
{
    if (p == NULL)
        return;
    free(p->name);
    free(p->description);
    s_rules_free(p->recognise, p->nrecognise);
    s_extracts_free(p->model, p->nmodel);
    s_extracts_free(p->version, p->nversion);
    for (size_t i = 0; i < p->nstages; i++) {
        free(p->stages[i].name);
        s_rules_free(p->stages[i].when, p->stages[i].nwhen);
        free(p->stages[i].opts);
    }
    free(p->stages);
    free(p->opts);
    free(p->final_image);
    free(p->image_check);
    for (size_t i = 0; i < p->nfiles; i++)
        s_file_free(&p->files[i]);
    free(p->files);
    free(p->restart_event);
    free(p->restart_ct);
    free(p->restart_body);
    free(p);
}

const char *profile_name(const profile_t *p)
{
    return p->name;
}

const char *profile_description(const profile_t *p)
{
    return p->description;
}

int profile_priority(const profile_t *p)
{
    return p->priority;
}

const char *profile_final_image(const profile_t *p)
{
    return p->final_image;
}

const char *profile_image_check(const profile_t *p)
{
    return p->image_check;
}

const struct profile_restart *profile_restart(const profile_t *p)
{
    return p->has_restart ? &p->restart : NULL;
}

/* ---- evaluation ---- */

/* Option 60 as text for vendor-regex and vendor extractors: one trailing NUL
 * dropped, any other byte outside printable ASCII read as '.'. buf holds
 * EVIDENCE_TEXT_MAX + 1 bytes; a longer option is cut (option 60 is at most
 * 255 bytes unless a client splits it, RFC 3396). NULL when absent. */
static const char *s_vendor_text(const struct profile_evidence *e, char *buf)
{
    if (e->vendor == NULL)
        return NULL;
    size_t n = e->vendor_len;
    if (n > 0 && e->vendor[n - 1] == 0)
        n--;
    if (n > EVIDENCE_TEXT_MAX)
        n = EVIDENCE_TEXT_MAX;
    for (size_t i = 0; i < n; i++)
        buf[i] = e->vendor[i] >= 0x20 && e->vendor[i] < 0x7f ? (char)e->vendor[i] : '.';
    buf[n] = '\0';
    return buf;
}

static const char *s_source(int from, const struct profile_evidence *e, char *vbuf)
{
    switch (from) {
    case R_VENDOR_REGEX: return s_vendor_text(e, vbuf);
    case R_USER_AGENT: return e->user_agent;
    case R_FILE: return e->file;
    default: return NULL;
    }
}

static int s_rule_match(const struct rule *r, const struct profile_evidence *e, char *vbuf)
{
    if (r->kind == R_DHCP) {
        if (e->dhcp_rule)
            return e->dhcp_rule(e->dhcp_arg, &r->dr) == 1;
        return r->dr.kind == DHCPOPT_RULE_MAC_OUI && e->mac != NULL &&
               memcmp(e->mac, r->dr.value, 3) == 0;
    }
    const char *s = s_source(r->kind, e, vbuf);
    return s != NULL && regexec(&r->re, s, 0, NULL, 0) == 0;
}

int profile_recognises(const profile_t *p, const struct profile_evidence *e)
{
    char vbuf[EVIDENCE_TEXT_MAX + 1];
    for (size_t i = 0; i < p->nrecognise; i++)
        if (s_rule_match(&p->recognise[i], e, vbuf))
            return 1;
    return 0;
}

int profile_stage(const profile_t *p, const struct profile_evidence *e)
{
    char vbuf[EVIDENCE_TEXT_MAX + 1];
    for (size_t i = 0; i < p->nstages; i++)
        for (size_t k = 0; k < p->stages[i].nwhen; k++)
            if (s_rule_match(&p->stages[i].when[k], e, vbuf))
                return (int)i;
    return -1;
}

const char *profile_stage_name(const profile_t *p, int i)
{
    return i >= 0 && (size_t)i < p->nstages ? p->stages[i].name : NULL;
}

int profile_stage_index(const profile_t *p, const char *name)
{
    for (size_t i = 0; name && i < p->nstages; i++)
        if (strcmp(p->stages[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int s_extract(const struct extract *x, size_t nx, const struct profile_evidence *e,
                     const char *installed, char *out, size_t n)
{
    char vbuf[EVIDENCE_TEXT_MAX + 1];
    if (n == 0)
        return 0;
    out[0] = '\0';
    for (size_t i = 0; i < nx; i++) {
        const char *s = s_source(x[i].from, e, vbuf);
        regmatch_t m[10];
        if (s == NULL || regexec(&x[i].re, s, 10, m, 0) != 0)
            continue;
        struct sbuf b = {out, n, 0};
        out[0] = '\0';
        if (x[i].value.text == NULL) {
            int g = x[i].re.re_nsub >= 1 ? 1 : 0;
            if (m[g].rm_so >= 0)
                s_sput(&b, s + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
        } else {
            for (size_t k = 0; k < x[i].value.nsegs; k++) {
                const struct seg *sg = &x[i].value.segs[k];
                if (sg->var == T_LIT)
                    s_sput(&b, x[i].value.text + sg->off, sg->len);
                else if (sg->var == T_INSTALLED && installed)
                    s_sput(&b, installed, strlen(installed));
                else if (sg->var == T_CAPTURE && m[sg->capture].rm_so >= 0)
                    s_sput(&b, s + m[sg->capture].rm_so,
                           (size_t)(m[sg->capture].rm_eo - m[sg->capture].rm_so));
            }
        }
        if (b.len > 0)
            return 1;
    }
    out[0] = '\0';
    return 0;
}

int profile_version(const profile_t *p, const struct profile_evidence *e, const char *installed,
                    char *out, size_t n)
{
    return s_extract(p->version, p->nversion, e, installed, out, n);
}

int profile_model(const profile_t *p, const struct profile_evidence *e, char *out, size_t n)
{
    return s_extract(p->model, p->nmodel, e, NULL, out, n);
}

size_t profile_dhcp_options(const profile_t *p, int stage, const struct dhcpopt **out, size_t max)
{
    size_t k = 0;
    const struct stage *s = stage >= 0 && (size_t)stage < p->nstages ? &p->stages[stage] : NULL;
    for (size_t i = 0; s && i < s->nopts && k < max; i++)
        out[k++] = &s->opts[i];
    for (size_t i = 0; i < p->nopts && k < max; i++) {
        int dup = 0;
        for (size_t j = 0; s && j < s->nopts && !dup; j++)
            dup = s->opts[j].code == p->opts[i].code;
        if (!dup)
            out[k++] = &p->opts[i];
    }
    return k;
}

/* Compares n bytes of a and b, ignoring case when nocase. */
static int s_eqn(const char *a, const char *b, size_t n, int nocase)
{
    return nocase ? strncasecmp(a, b, n) == 0 : strncmp(a, b, n) == 0;
}

static int s_name_match(const struct profile_file *f, const char *name, const uint8_t *mac,
                        int nocase, uint8_t got[6])
{
    if (f->has_re) {
        if (regexec(nocase ? &f->re_icase : &f->re, name, 0, NULL, 0) != 0)
            return 0;
        if (mac)
            memcpy(got, mac, 6);
        else
            memset(got, 0, 6);
        return 1;
    }
    if (f->mac_at == SIZE_MAX) {
        if (!(nocase ? strcasecmp(name, f->name) == 0 : strcmp(name, f->name) == 0))
            return 0;
        if (mac)
            memcpy(got, mac, 6);
        else
            memset(got, 0, 6);
        return 1;
    }
    size_t n = strlen(name), pn = strlen(f->prefix), sn = strlen(f->suffix);
    if (n != pn + 12 + sn || !s_eqn(name, f->prefix, pn, nocase) ||
        !s_eqn(name + pn + 12, f->suffix, sn, nocase))
        return 0;
    uint8_t m[6];
    for (size_t i = 0; i < 12; i++) {
        int ch = (unsigned char)name[pn + i], v = util_hexval(ch);
        if (v < 0)
            return 0;
        if (!nocase && isalpha(ch) && (f->mac_upper ? islower(ch) : isupper(ch)))
            return 0;
        if (i % 2 == 0)
            m[i / 2] = (uint8_t)(v << 4);
        else
            m[i / 2] |= (uint8_t)v;
    }
    if (mac && memcmp(mac, m, 6) != 0)
        return 0;
    memcpy(got, m, 6);
    return 1;
}

const struct profile_file *profile_file_find(const profile_t *p, const char *name,
                                             const uint8_t *mac, int stage, int nocase,
                                             uint8_t got[6])
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < p->nfiles; i++) {
        const struct profile_file *f = &p->files[i];
        if (f->stages != 0 &&
            (stage < 0 || (size_t)stage >= p->nstages || !(f->stages & (UINT64_C(1) << stage))))
            continue;
        if (s_name_match(f, name, mac, nocase, got))
            return f;
    }
    return NULL;
}

enum profile_when profile_file_when(const struct profile_file *f)
{
    return f->when;
}

const char *profile_file_image(const struct profile_file *f)
{
    return f->image;
}

const char *profile_file_content_type(const struct profile_file *f)
{
    return f->content_type;
}

int profile_file_served(const struct profile_file *f, int upgrade)
{
    if (f->image)
        return upgrade != 0 && f->when != PROFILE_WHEN_HOLD;
    if (f->when == PROFILE_WHEN_UPGRADE)
        return upgrade != 0;
    if (f->when == PROFILE_WHEN_HOLD)
        return upgrade == 0;
    return 1;
}

int profile_glob(const char *glob, const char *name)
{
    return glob && name && fnmatch(glob, name, 0) == 0;
}

/* The first of v's images matching glob (with {model} replaced by the
 * device's model), exact case first, then ignoring case; NULL none. Images
 * are only looked at while upgrading. */
static const char *s_image(const struct profile_vars *v, const char *glob, size_t glen)
{
    char g[PROFILE_STR_MAX * 2 + 1];
    size_t k = 0;
    if (!v->upgrade || v->images == NULL)
        return NULL;
    for (size_t i = 0; i < glen && k < sizeof g - 1;) {
        if (glen - i >= 7 && memcmp(glob + i, "{model}", 7) == 0) {
            const char *m = v->model ? v->model : "";
            for (; *m && k < sizeof g - 1; m++) {
                /* the model is data: its glob characters match themselves */
                if (strchr("*?[]\\", *m) && k < sizeof g - 2)
                    g[k++] = '\\';
                g[k++] = *m;
            }
            i += 7;
        } else {
            g[k++] = glob[i++];
        }
    }
    g[k] = '\0';
    for (size_t i = 0; i < v->n_images; i++)
        if (v->images[i] && fnmatch(g, v->images[i], 0) == 0)
            return v->images[i];
    /* FNM_CASEFOLD is a GNU extension: fold both sides by hand */
    char name[512];
    for (k = 0; g[k]; k++)
        g[k] = (char)tolower((unsigned char)g[k]);
    for (size_t i = 0; i < v->n_images; i++) {
        size_t n = v->images[i] ? strlen(v->images[i]) : sizeof name;
        if (n >= sizeof name)
            continue;
        for (size_t j = 0; j <= n; j++)
            name[j] = (char)tolower((unsigned char)v->images[i][j]);
        if (fnmatch(g, name, 0) == 0)
            return v->images[i];
    }
    return NULL;
}

static void s_http_base(struct obuf *b, const struct profile_vars *v)
{
    char port[16];
    if (v->http_port == 0 || v->server_ip == NULL || *v->server_ip == '\0')
        return;
    snprintf(port, sizeof port, ":%u", v->http_port);
    s_puts(b, "http://");
    s_puts(b, v->server_ip);
    s_puts(b, port);
}

static void s_mac(struct obuf *b, const uint8_t *mac, const char *fmt, const char *sep)
{
    char t[4];
    for (int i = 0; mac && i < 6; i++) {
        if (i > 0)
            s_puts(b, sep);
        snprintf(t, sizeof t, fmt, mac[i]);
        s_puts(b, t);
    }
}

int profile_render(const struct profile_file *f, const struct profile_vars *v, uint8_t **out,
                   size_t *len)
{
    *out = NULL;
    *len = 0;
    if (f->image || !profile_file_served(f, v->upgrade))
        return -ENOENT;
    const struct tpl *t = !v->upgrade && f->hold_body.text ? &f->hold_body : &f->body;
    struct obuf b = {NULL, 0, 0, 0};
    char num[24];
    for (size_t i = 0; i < t->nsegs; i++) {
        const struct seg *s = &t->segs[i];
        const char *img;
        switch ((enum tvar)s->var) {
        case T_LIT: s_put(&b, t->text + s->off, s->len); break;
        case T_MAC: s_mac(&b, v->mac, "%02x", ""); break;
        case T_MAC_UP: s_mac(&b, v->mac, "%02X", ""); break;
        case T_MAC_DASH: s_mac(&b, v->mac, "%02x", "-"); break;
        case T_IP: s_puts(&b, v->ip); break;
        case T_MODEL: s_puts(&b, v->model); break;
        case T_SERIAL: s_puts(&b, v->serial); break;
        case T_SITE: s_puts(&b, v->site); break;
        case T_SERVER_IP: s_puts(&b, v->server_ip); break;
        case T_HTTP_PORT:
            if (v->http_port) {
                snprintf(num, sizeof num, "%u", v->http_port);
                s_puts(&b, num);
            }
            break;
        case T_HTTP_BASE: s_http_base(&b, v); break;
        case T_STAGE: s_puts(&b, v->stage); break;
        case T_VERSION: s_puts(&b, v->version); break;
        case T_FIRMWARE: s_puts(&b, v->firmware); break;
        case T_IMAGE:
            s_puts(&b, s_image(v, t->text + s->off, s->len));
            break;
        case T_IMAGE_STEM:
            if ((img = s_image(v, t->text + s->off, s->len)) != NULL) {
                const char *dot = strrchr(img, '.');
                s_put(&b, img, dot && dot != img ? (size_t)(dot - img) : strlen(img));
            }
            break;
        case T_IMAGE_URL:
            if ((img = s_image(v, t->text + s->off, s->len)) != NULL) {
                s_http_base(&b, v);
                s_puts(&b, "/");
                /* file names are data: percent-encode what is not unreserved */
                for (const char *c = img; *c; c++) {
                    if (isalnum((unsigned char)*c) || strchr("-._~", *c)) {
                        s_put(&b, c, 1);
                    } else {
                        snprintf(num, sizeof num, "%%%02X", (unsigned char)*c);
                        s_puts(&b, num);
                    }
                }
            }
            break;
        case T_SER_CONFIG: s_puts(&b, v->serial_config); break;
        case T_SER_FIRMWARE: s_puts(&b, v->serial_firmware); break;
        case T_SER_BOOT: s_puts(&b, v->serial_boot); break;
        case T_WINDOW_HOURS:
            if (v->window_hours && *v->window_hours)
                s_puts(&b, v->window_hours);
            else
                s_puts(&b, "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23");
            break;
        case T_GRACE_MIN:
            snprintf(num, sizeof num, "%u", v->grace_min);
            s_puts(&b, num);
            break;
        case T_CAPTURE:
        case T_INSTALLED: break;
        }
    }
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    if (b.p == NULL) { /* an empty rendering is still a buffer the caller frees */
        b.p = malloc(1);
        if (b.p == NULL)
            return -ENOMEM;
        b.p[0] = '\0';
    }
    *out = (uint8_t *)b.p;
    *len = b.len;
    return 0;
}

/* ---- tar ---- */

static int s_octal(const uint8_t *f, size_t n, unsigned long *out)
{
    size_t i = 0;
    unsigned long v = 0;
    while (i < n && f[i] == ' ')
        i++;
    size_t start = i;
    while (i < n && f[i] >= '0' && f[i] <= '7') {
        v = v * 8 + (unsigned long)(f[i] - '0');
        i++;
    }
    if (i == start)
        return -EINVAL;
    while (i < n && (f[i] == ' ' || f[i] == '\0'))
        i++;
    if (i != n)
        return -EINVAL;
    *out = v;
    return 0;
}

int profile_tar_check(const uint8_t *head, size_t len, char *err, size_t errlen)
{
    if (head == NULL || len < 512) {
        util_errf(err, errlen, "not a tar archive: %zu bytes, shorter than one 512-byte header",
                  head ? len : 0);
        return -EINVAL;
    }
    int zero = 1;
    for (size_t i = 0; i < 512 && zero; i++)
        zero = head[i] == 0;
    if (zero) {
        util_errf(err, errlen, "not a tar archive: the first header is all zeros (empty archive)");
        return -EINVAL;
    }
    int posix = memcmp(head + 257, "ustar\0", 6) == 0 && memcmp(head + 263, "00", 2) == 0;
    int gnu = memcmp(head + 257, "ustar  \0", 8) == 0;
    if (!posix && !gnu) {
        util_errf(err, errlen, "not a tar archive: no ustar magic at offset 257");
        return -EINVAL;
    }
    unsigned long want;
    if (s_octal(head + 148, 8, &want) < 0) {
        util_errf(err, errlen, "not a tar archive: header checksum field is not octal");
        return -EINVAL;
    }
    /* POSIX sums unsigned bytes; some old tars summed signed ones, and
     * GNU tar accepts both, so do we. */
    unsigned long usum = 0;
    long ssum = 0;
    for (size_t i = 0; i < 512; i++) {
        uint8_t ch = i >= 148 && i < 156 ? ' ' : head[i];
        usum += ch;
        ssum += (signed char)ch;
    }
    if (want != usum && (long)want != ssum) {
        util_errf(err, errlen,
                  "not a tar archive: header checksum %lo does not match the computed %lo", want,
                  usum);
        return -EINVAL;
    }
    return 0;
}
