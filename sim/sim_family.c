/* sim_family.c: the families' wire forms and config extractors (see
 * sim_family.h). The extractors are deliberately forgiving, like the
 * devices: a config that does not say what they look for means "nothing to
 * do", never an error. */
#include "sim_family.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const struct sim_family s_fams[SIM_FAM_N] = {
    {SIM_CISCO, "cisco-79xx", 0, "CP-7940G", "old-image"},
    {SIM_POLYCOM, "polycom", 1, "VVX_400", "5.8.0.1000"},
    {SIM_YEALINK, "yealink", 1, "SIP-T46G", "28.72.0.1"},
    {SIM_DIGIUM, "digium", 1, "D40", "1_0_5_46476"},
};

const struct sim_family *sim_family_find(const char *name)
{
    for (int i = 0; i < SIM_FAM_N; i++)
        if (strcmp(s_fams[i].name, name) == 0)
            return &s_fams[i];
    return NULL;
}

const struct sim_family *sim_family_get(enum sim_fam id)
{
    return id < SIM_FAM_N ? &s_fams[id] : NULL;
}

static size_t s_put(uint8_t *out, size_t cap, size_t n, const void *p, size_t len)
{
    if (n == (size_t)-1 || len > cap || n > cap - len)
        return (size_t)-1;
    memcpy(out + n, p, len);
    return n + len;
}

/* Polycom sub-option: code, length, bytes */
static size_t s_sub(uint8_t *out, size_t cap, size_t n, uint8_t code, const char *s)
{
    size_t l = strlen(s);
    if (l > 255)
        return (size_t)-1;
    uint8_t h[2] = {code, (uint8_t)l};
    return s_put(out, cap, s_put(out, cap, n, h, 2), s, l);
}

size_t sim_family_vendor(enum sim_fam id, const char *model, const char *version, uint8_t *out,
                         size_t cap)
{
    char s[256];
    size_t n = 0;
    switch (id) {
    case SIM_CISCO:
        /* the NUL is part of the value these phones send */
        if (strcmp(version, "old-image") == 0)
            n = (size_t)snprintf(s, sizeof s, "Cisco Systems, Inc. IP Phone");
        else
            n = (size_t)snprintf(s, sizeof s, "Cisco Systems, Inc. IP Phone %s", model);
        if (n >= sizeof s - 1)
            return 0;
        n = s_put(out, cap, 0, s, n + 1);
        break;
    case SIM_POLYCOM: {
        /* enterprise 13885, total length, sub-options 1 company, 2 part,
         * 3 part number, 4 application version */
        static const uint8_t ent[4] = {0x00, 0x00, 0x36, 0x3d};
        char part[128], app[128];
        snprintf(part, sizeof part, "VVX-%s", model);
        snprintf(app, sizeof app, "SIP/%s", version);
        n = s_put(out, cap, 0, ent, 4);
        size_t lenpos = n;
        uint8_t zero = 0;
        n = s_put(out, cap, n, &zero, 1);
        n = s_sub(out, cap, n, 1, "Polycom");
        n = s_sub(out, cap, n, 2, part);
        n = s_sub(out, cap, n, 3, "3111-46157-001,1");
        n = s_sub(out, cap, n, 4, app);
        if (n == (size_t)-1 || n - lenpos - 1 > 255 || n > 255)
            return 0;
        out[lenpos] = (uint8_t)(n - lenpos - 1);
        break;
    }
    case SIM_YEALINK:
        n = s_put(out, cap, 0, "yealink", 7);
        break;
    case SIM_DIGIUM:
        n = (size_t)snprintf(s, sizeof s, "digium_%s_%s", model, version);
        if (n >= sizeof s)
            return 0;
        n = s_put(out, cap, 0, s, n);
        break;
    default:
        return 0;
    }
    return n == (size_t)-1 || n > 255 ? 0 : n;
}

void sim_family_user_agent(enum sim_fam id, const char *model, const char *version,
                           const uint8_t mac[6], char *out, size_t cap)
{
    switch (id) {
    case SIM_POLYCOM:
        snprintf(out, cap, "FileTransport PolycomVVX-%s-UA/%s", model, version);
        break;
    case SIM_YEALINK:
        snprintf(out, cap, "Yealink %s %s %02x:%02x:%02x:%02x:%02x:%02x", model, version, mac[0],
                 mac[1], mac[2], mac[3], mac[4], mac[5]);
        break;
    case SIM_DIGIUM:
        snprintf(out, cap, "Digium %s %s", model, version);
        break;
    default:
        if (cap)
            out[0] = '\0';
        break;
    }
}

static void s_copy(char *out, size_t cap, const char *p, size_t n)
{
    if (cap == 0)
        return;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* The next <elem followed by space, '>' or '/', or NULL. */
static const char *s_tag(const char *p, const char *elem)
{
    size_t el = strlen(elem);
    while ((p = strchr(p, '<')) != NULL) {
        p++;
        if (strncmp(p, elem, el) == 0 &&
            (isspace((unsigned char)p[el]) || p[el] == '>' || p[el] == '/'))
            return p + el;
    }
    return NULL;
}

int sim_cfg_attr(const char *body, const char *elem, const char *attr, char *out, size_t cap)
{
    size_t al = strlen(attr);
    const char *p = body;
    while ((p = s_tag(p, elem)) != NULL) {
        const char *end = strchr(p, '>');
        if (end == NULL)
            return 0;
        for (const char *q = p; q < end; q++) {
            if (isspace((unsigned char)q[0]) && strncmp(q + 1, attr, al) == 0 && q[1 + al] == '=' &&
                (q[2 + al] == '"' || q[2 + al] == '\'')) {
                const char *v = q + 3 + al, *ve = strchr(v, q[2 + al]);
                if (ve == NULL || ve > end)
                    return 0;
                s_copy(out, cap, v, (size_t)(ve - v));
                return 1;
            }
        }
        p = end;
    }
    return 0;
}

int sim_cfg_text(const char *body, const char *elem, char *out, size_t cap)
{
    const char *p = s_tag(body, elem);
    if (p == NULL || (p = strchr(p, '>')) == NULL || p[-1] == '/')
        return 0;
    p++;
    const char *e = strchr(p, '<');
    if (e == NULL)
        return 0;
    while (p < e && isspace((unsigned char)*p))
        p++;
    while (e > p && isspace((unsigned char)e[-1]))
        e--;
    s_copy(out, cap, p, (size_t)(e - p));
    return 1;
}

int sim_cfg_kv(const char *body, const char *key, char sep, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *line = body; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, key, kl) != 0)
            continue;
        p += kl;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != sep)
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != '\r' && *e != '\n' && !(sep == ':' && e[0] == ' ' && e[1] == ';'))
            e++;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        s_copy(out, cap, p, (size_t)(e - p));
        return 1;
    }
    return 0;
}

int sim_version_in_name(const char *name, char *out, size_t cap)
{
    for (const char *p = name; *p; p++) {
        if (!isdigit((unsigned char)*p) || (p > name && isdigit((unsigned char)p[-1])))
            continue;
        const char *q = p;
        int groups = 0;
        for (;;) {
            while (isdigit((unsigned char)*q))
                q++;
            groups++;
            if ((*q == '.' || *q == '_') && isdigit((unsigned char)q[1]))
                q++;
            else
                break;
        }
        if (groups >= 3) {
            s_copy(out, cap, p, (size_t)(q - p));
            return 1;
        }
    }
    return 0;
}

void sim_basename(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    s_copy(out, cap, b, strlen(b));
}
