/* scdump.c: prints a packed SiteConfig as JSON, for the system tests.
 *   scdump FILE    FILE holds one packed SiteConfig (e.g. the `config` row of
 *                  an agent's journal.db meta table, written out by sqlite3)
 * Bytes (option values, rule values, template bodies, image hashes) are
 * printed as lowercase hex; enums by their protobuf names. Exits 0 when the
 * file parsed, 1 otherwise.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "firmfleet.pb-c.h"
#include "util.h"
#include "wire.h"

static json_t *s_hex(ProtobufCBinaryData b)
{
    char *h = malloc(2 * b.len + 1);
    if (h == NULL)
        return NULL;
    util_hex(b.data ? b.data : (const uint8_t *)"", b.len, h);
    json_t *j = json_string(h);
    free(h);
    return j;
}

static json_t *s_strings(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *s_options(Firmfleet__DhcpOption **o, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        const ProtobufCEnumValue *fill = protobuf_c_enum_descriptor_get_value(
            &firmfleet__dhcp_option__fill__descriptor, (int)o[i]->fill);
        json_array_append_new(a, json_pack("{s:i, s:o, s:s}", "code", (int)o[i]->code, "value",
                                           s_hex(o[i]->value), "fill", fill ? fill->name : "?"));
    }
    return a;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: scdump FILE\n");
        return 1;
    }
    char *buf = NULL;
    size_t len = 0;
    if (util_read_file(argv[1], WIRE_MAX_MSG, &buf, &len) < 0) {
        fprintf(stderr, "scdump: cannot read %s\n", argv[1]);
        return 1;
    }
    Firmfleet__SiteConfig *sc = firmfleet__site_config__unpack(NULL, len, (uint8_t *)buf);
    free(buf);
    if (sc == NULL) {
        fprintf(stderr, "scdump: not a SiteConfig\n");
        return 1;
    }
    json_t *doc = json_pack("{s:s, s:s, s:I}", "site", sc->site, "tz", sc->tz, "generation",
                            (json_int_t)sc->generation);
    json_t *images = json_array(), *devices = json_array(), *subnets = json_array(),
           *classes = json_array(), *files = json_array();
    for (size_t i = 0; i < sc->n_images; i++)
        json_array_append_new(
            images, json_pack("{s:o, s:I, s:s}", "sha256", s_hex(sc->images[i]->sha256), "size",
                              (json_int_t)sc->images[i]->size, "name", sc->images[i]->name));
    for (size_t i = 0; i < sc->n_devices; i++) {
        const Firmfleet__DeviceRef *d = sc->devices[i];
        json_array_append_new(devices, json_pack("{s:s, s:s, s:s, s:s, s:s}", "mac", d->mac,
                                                 "model", d->model, "serial", d->serial, "ip",
                                                 d->ip, "class", d->class_));
    }
    for (size_t i = 0; i < sc->n_subnets; i++) {
        const Firmfleet__DhcpSubnet *n = sc->subnets[i];
        json_array_append_new(subnets,
                              json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:o, s:o}", "cidr", n->cidr,
                                        "pool_start", n->pool_start, "pool_end", n->pool_end,
                                        "router", n->router, "dns", s_strings(n->dns, n->n_dns),
                                        "lease_seconds", (json_int_t)n->lease_seconds, "relays",
                                        s_strings(n->relays, n->n_relays), "options",
                                        s_options(n->options, n->n_options)));
    }
    for (size_t i = 0; i < sc->n_classes; i++) {
        const Firmfleet__DeviceClass *c = sc->classes[i];
        json_t *rules = json_array();
        for (size_t k = 0; k < c->n_rules; k++) {
            const Firmfleet__MatchRule *r = c->rules[k];
            const ProtobufCEnumValue *kind = protobuf_c_enum_descriptor_get_value(
                &firmfleet__match_rule__kind__descriptor, (int)r->kind);
            json_array_append_new(rules,
                                  json_pack("{s:s, s:o, s:b, s:I}", "kind", kind ? kind->name : "?",
                                            "value", s_hex(r->value), "ignore_trailing_nul",
                                            (int)r->ignore_trailing_nul, "enterprise",
                                            (json_int_t)r->enterprise));
        }
        json_array_append_new(classes, json_pack("{s:s, s:i, s:o, s:o, s:s}", "name", c->name,
                                                 "priority", (int)c->priority, "rules", rules,
                                                 "options", s_options(c->options, c->n_options),
                                                 "tftp_root", c->tftp_root));
    }
    for (size_t i = 0; i < sc->n_files; i++)
        json_array_append_new(files, json_pack("{s:s, s:o}", "name", sc->files[i]->name, "body",
                                               s_hex(sc->files[i]->body)));
    json_object_set_new(doc, "images", images);
    json_object_set_new(doc, "devices", devices);
    json_object_set_new(doc, "subnets", subnets);
    json_object_set_new(doc, "classes", classes);
    json_object_set_new(doc, "files", files);
    json_dumpf(doc, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(doc);
    firmfleet__site_config__free_unpacked(sc, NULL);
    return 0;
}
