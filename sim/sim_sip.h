/* sim_sip.h: the SIP side of a simulated device, a pure function: read a
 * request that came to the device's SIP port and write the response a phone
 * gives (200 OK to NOTIFY and OPTIONS, with Via, From, To, Call-ID and CSeq
 * copied, a To tag added when there is none). The caller owns the socket.
 *
 * Invariants: the request is read only within its n bytes (it need not be
 * NUL-terminated); a request without the headers a response needs gets no
 * response (returns 0), never a guess.
 */
#ifndef FF_SIM_SIP_H
#define FF_SIM_SIP_H

#include <stddef.h>

struct sim_sip_req {
    int is_notify;   /* NOTIFY (else OPTIONS or other) */
    char event[128]; /* the Event header of a NOTIFY, e.g. "check-sync;reboot=true" */
};

/* Writes the response into out. Returns its length, 0 when there is nothing
 * to answer (a response, garbage, missing headers, out too small). */
size_t sim_sip_answer(const char *req, size_t n, const char *tag, char *out, size_t cap,
                      struct sim_sip_req *info);

#endif
