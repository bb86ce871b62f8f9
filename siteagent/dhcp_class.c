/* dhcp_class.c: classification of DHCP clients by MatchRule; see dhcp_class.h.
 *
 * Cost per client: for each class in order, each rule, one memcmp-sized
 * comparison (SUBSTRING is a naive search: option 60 is at most 255 bytes,
 * so O(255 * |value|) in the worst case; not worth a two-way search).
 */
#include "dhcp_class.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define POLYCOM_MIN_LEN 5 /* enterprise (4) + length (1) */

void dhcp_facts_from(const struct dhcp_msg *m, struct dhcp_facts *f)
{
    f->mac = (m->htype == 1 && m->hlen == 6) ? m->chaddr : NULL;
    f->vendor = dhcp_get(m, DHO_VENDOR_CLASS);
    f->user = dhcp_get(m, DHO_USER_CLASS);
    f->vivc = dhcp_get(m, DHO_VIVC);
    f->vivso = dhcp_get(m, DHO_VIVSO);
}

/* memmem without the GNU extension. */
static int s_contains(const uint8_t *h, size_t hn, const uint8_t *n, size_t nn)
{
    if (nn == 0)
        return 1;
    if (nn > hn)
        return 0;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nn) == 0)
            return 1;
    return 0;
}

static int s_cmp(int kind, const uint8_t *s, size_t n, const uint8_t *v, size_t vn)
{
    switch (kind) {
    case FIRMFLEET__MATCH_RULE__KIND__VENDOR_EXACT:
    case FIRMFLEET__MATCH_RULE__KIND__USER_CLASS:
        return n == vn && (vn == 0 || memcmp(s, v, vn) == 0);
    case FIRMFLEET__MATCH_RULE__KIND__VENDOR_PREFIX:
        return n >= vn && (vn == 0 || memcmp(s, v, vn) == 0);
    case FIRMFLEET__MATCH_RULE__KIND__VENDOR_SUFFIX:
        return n >= vn && (vn == 0 || memcmp(s + n - vn, v, vn) == 0);
    case FIRMFLEET__MATCH_RULE__KIND__VENDOR_SUBSTRING:
        return s_contains(s, n, v, vn);
    default:
        return 0;
    }
}

/* A text value with, when asked, one trailing NUL dropped. */
static size_t s_len(const struct dhcp_opt *o, int ignore_nul)
{
    size_t n = o->len;
    if (ignore_nul && n > 0 && o->p[n - 1] == '\0')
        n--;
    return n;
}

static int s_user_class(const Firmfleet__MatchRule *r, const struct dhcp_opt *o)
{
    const uint8_t *v = r->value.data;
    size_t vn = r->value.len;
    if (s_cmp(FIRMFLEET__MATCH_RULE__KIND__USER_CLASS, o->p, s_len(o, r->ignore_trailing_nul), v,
              vn))
        return 1;
    /* RFC 3004: len, data, len, data ...; only when the lengths add up */
    size_t i = 0;
    while (i < o->len) {
        size_t l = o->p[i];
        if (l == 0 || l > o->len - i - 1)
            return 0;
        i += 1 + l;
    }
    for (i = 0; i < o->len; i += 1 + (size_t)o->p[i]) {
        struct dhcp_opt inst = {o->p + i + 1, o->p[i]};
        if (s_cmp(FIRMFLEET__MATCH_RULE__KIND__USER_CLASS, inst.p,
                  s_len(&inst, r->ignore_trailing_nul), v, vn))
            return 1;
    }
    return 0;
}

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 3925 124/125: enterprise(4) data-len(1) data ... */
static int s_vi(const struct dhcp_opt *o, uint32_t ent, const uint8_t *v, size_t vn)
{
    size_t i = 0;
    while (o->p != NULL && o->len - i >= 5) {
        uint32_t e = s_be32(o->p + i);
        size_t dl = o->p[i + 4];
        if (dl > o->len - i - 5)
            return 0; /* malformed from here on */
        if (e == ent && s_contains(o->p + i + 5, dl, v, vn))
            return 1;
        i += 5 + dl;
    }
    return 0;
}

/* Option 60 in Polycom's binary form: enterprise (4 bytes, high byte 0, so
 * never text), a length byte, then sub-options. The length byte only bounds
 * the search for value: a device that counts it differently still matches
 * by its enterprise number. */
static int s_binary60(const struct dhcp_opt *o, uint32_t ent, const uint8_t *v, size_t vn)
{
    if (o->p == NULL || o->len < POLYCOM_MIN_LEN || o->p[0] != 0 || s_be32(o->p) != ent)
        return 0;
    size_t dl = o->p[4];
    if (dl > (size_t)o->len - POLYCOM_MIN_LEN)
        dl = (size_t)o->len - POLYCOM_MIN_LEN;
    return s_contains(o->p + POLYCOM_MIN_LEN, dl, v, vn);
}

int dhcp_rule_match(const Firmfleet__MatchRule *r, const struct dhcp_facts *f)
{
    if (r == NULL || (r->value.len > 0 && r->value.data == NULL))
        return 0;
    const uint8_t *v = r->value.data;
    size_t vn = r->value.len;
    switch (r->kind) {
    case FIRMFLEET__MATCH_RULE__KIND__VENDOR_EXACT:
    case FIRMFLEET__MATCH_RULE__KIND__VENDOR_PREFIX:
    case FIRMFLEET__MATCH_RULE__KIND__VENDOR_SUBSTRING:
    case FIRMFLEET__MATCH_RULE__KIND__VENDOR_SUFFIX:
        if (f->vendor.p == NULL)
            return 0;
        return s_cmp(r->kind, f->vendor.p, s_len(&f->vendor, r->ignore_trailing_nul), v, vn);
    case FIRMFLEET__MATCH_RULE__KIND__USER_CLASS:
        return f->user.p != NULL && s_user_class(r, &f->user);
    case FIRMFLEET__MATCH_RULE__KIND__MAC_OUI:
        return f->mac != NULL && vn == 3 && memcmp(f->mac, v, 3) == 0;
    case FIRMFLEET__MATCH_RULE__KIND__ENTERPRISE:
        return s_vi(&f->vivc, r->enterprise, v, vn) || s_vi(&f->vivso, r->enterprise, v, vn) ||
               s_binary60(&f->vendor, r->enterprise, v, vn);
    default:
        return 0;
    }
}

static int s_class_match(const Firmfleet__DeviceClass *c, const struct dhcp_facts *f)
{
    for (size_t i = 0; i < c->n_rules; i++)
        if (dhcp_rule_match(c->rules[i], f))
            return 1;
    return 0;
}

int dhcp_classes_init(struct dhcp_classes *c, Firmfleet__DeviceClass *const *classes, size_t n)
{
    c->v = NULL;
    c->n = 0;
    if (n == 0)
        return 0;
    c->v = calloc(n, sizeof *c->v);
    if (c->v == NULL)
        return -ENOMEM;
    /* insertion sort: stable, and n is small (tens) */
    for (size_t i = 0; i < n; i++) {
        if (classes[i] == NULL)
            continue;
        size_t j = c->n;
        while (j > 0 && c->v[j - 1]->priority > classes[i]->priority) {
            c->v[j] = c->v[j - 1];
            j--;
        }
        c->v[j] = classes[i];
        c->n++;
    }
    return 0;
}

void dhcp_classes_free(struct dhcp_classes *c)
{
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

const Firmfleet__DeviceClass *dhcp_classify(const struct dhcp_classes *c,
                                            const struct dhcp_facts *f)
{
    for (size_t i = 0; i < c->n; i++)
        if (s_class_match(c->v[i], f))
            return c->v[i];
    return NULL;
}

const Firmfleet__DeviceClass *dhcp_class_by_name(const struct dhcp_classes *c, const char *name)
{
    if (name == NULL || name[0] == '\0')
        return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i]->name != NULL && strcmp(c->v[i]->name, name) == 0)
            return c->v[i];
    return NULL;
}
