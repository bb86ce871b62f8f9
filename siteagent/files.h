/* files.h: the one place that turns a name a device asks for (over TFTP or
 * HTTP) into bytes. Lookup order:
 *   0. provisioning (provision.h): the device's vendor profile files and its
 *      Assignment's target files, which may also refuse a name outright
 *      (a target file outside the device's upgrade: -ENOENT);
 *   1. a virtual file: a FileTemplate of the site configuration whose name
 *      matches ({mac}/{MAC} expanded for the asking device), rendered in
 *      memory with that device's variables;
 *   2. an image from the agent's cache, by the name the site configuration
 *      gives it (ImageRef.name);
 *   3. a regular file under the files root: first in the device class's
 *      tftp_root subdirectory, then in the root itself.
 * Invariants: a name is cleaned (files_clean) before any lookup; nothing is
 * ever opened outside the root: `..` components, absolute paths and
 * symlinks that leave the root are refused (openat2 RESOLVE_BENEATH), and
 * only regular files are served.
 */
#ifndef FF_FILES_H
#define FF_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

#define FILES_NAME_MAX 255

typedef struct files files_t;

/* An opened file: either an fd (read with pread; caller closes through
 * files_src_close) or a memory buffer (caller frees through files_src_close). */
struct files_src {
    int fd;                /* >= 0 when the bytes are in a file */
    uint8_t *data;         /* else the bytes are here */
    uint64_t size;
    const char *origin;    /* "template", "image" or "root", for logs */
};

/* Cleans a requested name in place, the way operators' devices need it:
 * trailing spaces, CR, LF and NUL are dropped (Cisco's CSCdv19260), `\` becomes
 * `/`, leading `/` and `./` are dropped, repeated `/` folded. Refuses (-EINVAL)
 * an empty name, one longer than FILES_NAME_MAX, control bytes, and any `..`
 * component. */
int files_clean(char *name);

/* Opens `name` (already cleaned) for the device at client_ip (network byte
 * order; used to find its MAC through agent_mac_for_ip) or with mac given
 * (NULL: unknown). 0 with *out filled, -ENOENT not found, -EACCES refused
 * (outside the root, not a regular file), -EINVAL bad name, other -errno. */
int files_open(struct agent *a, const char *name, uint32_t client_ip_be, const uint8_t *mac,
               struct files_src *out);
/* The same with everything a request tells: local_ip_be is the address the
 * request arrived on (network order, 0 unknown: {{server_ip}} renders ""). */
struct files_req {
    const char *name;
    uint32_t client_ip_be;
    uint32_t local_ip_be;
    const uint8_t *mac;
};
int files_open_req(struct agent *a, const struct files_req *rq, struct files_src *out);
void files_src_close(struct files_src *src);

/* The per-device upload directory (STATEDIR/uploads/<12 hex>) and its size cap,
 * for HTTP PUT. 0 or -errno (creates the directory). */
int files_upload_dir(struct agent *a, const uint8_t mac[6], char *out, size_t n,
                     uint64_t *cap);

#endif
