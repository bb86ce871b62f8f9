/* sim_family.h: what each simulated device family sends and how it reads
 * what it is served, as pure functions: option 60 bytes per stage, the HTTP
 * User-Agent, file names, and small extractors for the config formats the
 * families use (XML attributes and text, `key: value` / `key = value`
 * lines). The fetch sequences themselves are in sim_fleet.c.
 *
 * The byte forms follow profiles/README.md and
 * /work/shared/reference/devices-and-protocols.md: Cisco 79xx old image
 * `Cisco Systems, Inc. IP Phone` + NUL, loader/app `... CP-7940G` + NUL;
 * Polycom the binary enterprise 13885 form; Digium `digium_<model>_<ver>`;
 * Yealink the plain `yealink`.
 */
#ifndef FF_SIM_FAMILY_H
#define FF_SIM_FAMILY_H

#include <stddef.h>
#include <stdint.h>

enum sim_fam { SIM_CISCO, SIM_POLYCOM, SIM_YEALINK, SIM_DIGIUM, SIM_FAM_N };

struct sim_family {
    enum sim_fam id;
    const char *name;          /* as the profiles name it: cisco-79xx, polycom, ... */
    int http;                  /* fetches over HTTP (else TFTP) */
    const char *model;         /* default model */
    const char *start_version; /* default running version */
};

/* The family called name, or NULL. */
const struct sim_family *sim_family_find(const char *name);
const struct sim_family *sim_family_get(enum sim_fam id);

/* Option 60 as the device sends it. For Cisco, `version` "old-image" is the
 * pre-loader image (no model); anything else is the loader or an
 * application. Returns the length written (<= cap), 0 if it does not fit. */
size_t sim_family_vendor(enum sim_fam id, const char *model, const char *version, uint8_t *out,
                         size_t cap);
/* The User-Agent of an HTTP family ("" for TFTP families). mac is 6 bytes. */
void sim_family_user_agent(enum sim_fam id, const char *model, const char *version,
                           const uint8_t mac[6], char *out, size_t cap);

/* Extractors over a NUL-terminated body. Each returns 1 and writes the value
 * (truncated to cap - 1) when found, 0 when not. */
/* attr of the first <elem ...> tag that has it */
int sim_cfg_attr(const char *body, const char *elem, const char *attr, char *out, size_t cap);
/* the text inside the first <elem ...>text</elem> */
int sim_cfg_text(const char *body, const char *elem, char *out, size_t cap);
/* the value of a line `key SEP value` (spaces around SEP allowed; a value
 * ends at CR, LF, or for sep ':' at " ;" (a Cisco comment)) */
int sim_cfg_kv(const char *body, const char *key, char sep, char *out, size_t cap);

/* A version inside a file name: the first run of digits with at least two
 * more `.`- or `_`-separated digit groups (T46-28.83.0.50.rom -> 28.83.0.50). */
int sim_version_in_name(const char *name, char *out, size_t cap);

/* Copies the last path segment of a name or URL path. */
void sim_basename(const char *path, char *out, size_t cap);

#endif
