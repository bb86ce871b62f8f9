/* profile.h: vendor profiles, the data that tells firmfleet how one device
 * family behaves (format: profiles/README.md). The controller parses every
 * profile it loads (the profiles directory, `firmfleet profile add`) and
 * refuses a bad one with the reason; it sends the JSON text to the agents in
 * SiteConfig.profiles, where the agent parses it again and asks it, for each
 * thing a device sends (a DHCP packet, a TFTP or HTTP request):
 *   - does this family recognise the device?      profile_recognises
 *   - which stage is it in, which version runs?   profile_stage, profile_version
 *   - which DHCP options does it get?             profile_dhcp_options
 *   - is this requested name one of the family's files, and what are its
 *     bytes for this device, now?                 profile_file_find, profile_render
 * Pure: no I/O, no clock, no globals; allocation only in profile_parse and
 * profile_render. Regular expressions are POSIX ERE (regcomp), compiled once
 * at parse time.
 */
#ifndef FF_PROFILE_H
#define FF_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "dhcpopt.h"

#define PROFILE_NAME_MAX 63
#define PROFILE_JSON_MAX (256 * 1024)
#define PROFILE_VERSION_MAX 127

typedef struct profile profile_t;
struct profile_file;

/* Parses and checks one profile (JSON text, at most PROFILE_JSON_MAX bytes).
 * 0 with *out set, or -EINVAL with a one-line reason in err naming the field
 * ("files[2].body: unknown variable {{verison}}"). */
int profile_parse(const char *json, size_t len, profile_t **out, char *err, size_t errlen);
void profile_free(profile_t *p);

const char *profile_name(const profile_t *p);
const char *profile_description(const profile_t *p);
/* Lower is tried first when several profiles could recognise a device. */
int profile_priority(const profile_t *p);
/* Glob (fnmatch) naming the target file whose whole download counts as
 * "installed" ("*" when the profile does not say). */
const char *profile_final_image(const profile_t *p);
/* "tar" when the family's final image must be a valid tar archive, else "none". */
const char *profile_image_check(const profile_t *p);

/* How to make a device fetch now: SIP NOTIFY with this Event header (e.g.
 * "check-sync;reboot=true"), optional Content-Type and body. NULL when the
 * family has no remote restart. */
struct profile_restart {
    const char *event;
    const char *content_type; /* "" = none */
    const char *body;         /* "" = none */
};
const struct profile_restart *profile_restart(const profile_t *p);

/* What one observation of a device carried. Absent parts are NULL. */
struct profile_evidence {
    const uint8_t *mac;           /* 6 bytes, or NULL */
    const uint8_t *vendor;        /* DHCP option 60 as sent (may end in NUL, may be binary) */
    size_t vendor_len;
    /* Matches a DHCP rule (vendor*, user-class, oui, enterprise; the
     * dhcpopt_rule kinds) against the packet, as the agent's DHCP classifier
     * does: 1 match, 0 not. NULL when the observation is not a DHCP packet
     * (then only oui rules can match, against mac). */
    int (*dhcp_rule)(void *arg, const struct dhcpopt_rule *r);
    void *dhcp_arg;
    const char *user_agent;       /* HTTP User-Agent */
    const char *file;             /* the (cleaned) name a device asked for over TFTP/HTTP */
};

/* 1 when one of the profile's "recognise" rules matches e, else 0. */
int profile_recognises(const profile_t *p, const struct profile_evidence *e);

/* The index of the first stage with a "when" rule matching e, or -1 when no
 * stage rule matches (the device keeps the stage it had). */
int profile_stage(const profile_t *p, const struct profile_evidence *e);
/* Name of stage i, or NULL when out of range. */
const char *profile_stage_name(const profile_t *p, int i);
/* Index of the stage called name, or -1. */
int profile_stage_index(const profile_t *p, const char *name);

/* The running version e shows: the first "version" extractor that applies.
 * installed: the stem (name without its last extension) of the final image
 * this device last fetched whole, "" when none (for {{installed}}).
 * 1 with out filled, 0 when e shows no version (out = ""). An extractor whose
 * value comes out empty does not apply. */
int profile_version(const profile_t *p, const struct profile_evidence *e, const char *installed,
                    char *out, size_t n);
/* The model e shows ("model" extractors), same conventions. */
int profile_model(const profile_t *p, const struct profile_evidence *e, char *out, size_t n);

/* The DHCP options for a device in stage (-1: unknown): the stage's options,
 * then the profile's own, a code given by the stage overriding the same code
 * of the profile. Pointers into p; returns how many (at most max). */
size_t profile_dhcp_options(const profile_t *p, int stage, const struct dhcpopt **out, size_t max);

/* When a file is served (FILE.when in the format). */
enum profile_when {
    PROFILE_WHEN_ALWAYS = 0,  /* to any device of the family (hold_body outside upgrades) */
    PROFILE_WHEN_UPGRADE = 1, /* only while the device may be upgraded now */
    PROFILE_WHEN_HOLD = 2,    /* only while it may not */
};

/* The family's file that answers `name` for a device in `stage` (-1
 * unknown), or NULL. A name with {mac}/{MAC} matches 12 hex digits: they
 * must equal mac when mac is given; the MAC they spell is written to got
 * (always filled on a match: mac, or the one read from the name, or zeros
 * when the name holds none and mac is NULL). Files restricted to stages
 * match only a device known to be in one of them. nocase: compare names
 * without case. */
const struct profile_file *profile_file_find(const profile_t *p, const char *name,
                                             const uint8_t *mac, int stage, int nocase,
                                             uint8_t got[6]);
enum profile_when profile_file_when(const struct profile_file *f);
/* For a file that is the target image under another name (FILE.image): the
 * glob choosing it among the target's files; NULL for a rendered file. */
const char *profile_file_image(const struct profile_file *f);
/* Content-Type for HTTP ("" = let the server choose). */
const char *profile_file_content_type(const struct profile_file *f);
/* 1 when f is served to a device that may (upgrade 1) or may not (0) be
 * upgraded now: "upgrade" files and images only while upgrading, "hold"
 * files only while not, "always" files in both modes. The agent answers
 * "not found" when 0 (profile_render then returns -ENOENT as well). */
int profile_file_served(const struct profile_file *f, int upgrade);

/* What a rendered file may refer to (format: "Template variables"). */
struct profile_vars {
    const uint8_t *mac;      /* 6 bytes */
    const char *ip;          /* the device's address, "" unknown */
    const char *model, *serial, *site;
    const char *server_ip;   /* the agent's address as the device sees it */
    unsigned http_port;      /* the agent's HTTP port, 0 = none */
    int upgrade;             /* 1: the device may be upgraded now (body, target values);
                                0: hold (hold_body if any; current values) */
    const char *version;     /* upgrade: target version; hold: the running one ("" unknown) */
    const char *firmware;    /* target firmware "vendor/version", "" none */
    const char *const *images; /* names of the target firmware's files (upgrade only) */
    size_t n_images;
    const char *stage;       /* "" unknown */
    const char *serial_config, *serial_firmware, *serial_boot; /* target (upgrade) or current (hold) */
    const char *window_hours; /* window_hours_list of the assignment's window, "" any */
    unsigned grace_min;       /* boot grace in minutes */
};

/* Renders f for one device into a malloc'd buffer (*out, *len; free()).
 * A variable naming a target file that does not exist renders as "".
 * 0, -ENOMEM, or -ENOENT when f has no body for this mode (a "when:
 * always" file without hold_body renders body in both modes). */
int profile_render(const struct profile_file *f, const struct profile_vars *v, uint8_t **out,
                   size_t *len);

/* fnmatch(3) glob match of a target file name (no FNM_PATHNAME): 1 or 0. */
int profile_glob(const char *glob, const char *name);

/* Checks that the first bytes of an image (at least 512 given, or the
 * whole image when shorter) are a POSIX/ustar or GNU tar header with a valid
 * checksum. 0 ok, -EINVAL with the reason in err ("not a tar archive: no
 * ustar magic at offset 257"). */
int profile_tar_check(const uint8_t *head, size_t len, char *err, size_t errlen);

#endif
