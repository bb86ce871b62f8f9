/* sim_sip.c: a phone's answer to NOTIFY/OPTIONS (see sim_sip.h). Header
 * names are matched without case, compact forms included (v, f, t, i, o). */
#include "sim_sip.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The value of header name (or its compact form c) in req[0..n), copied
 * into out; the first one when several. 1 found, 0 not. */
static int s_hdr(const char *req, size_t n, const char *name, char c, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = req, *end = req + n;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        const char *le = e ? e : end;
        size_t ll = (size_t)(le - p);
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            return 0; /* end of headers */
        const char *v = NULL;
        if (ll > nl && strncasecmp(p, name, nl) == 0 && (p[nl] == ':' || p[nl] == ' '))
            v = p + nl;
        else if (c && ll > 1 && (p[0] == c || p[0] == (c ^ 0x20)) && (p[1] == ':' || p[1] == ' '))
            v = p + 1;
        if (v) {
            while (v < p + ll && (*v == ' ' || *v == '\t'))
                v++;
            if (v < p + ll && *v == ':') {
                v++;
                while (v < p + ll && (*v == ' ' || *v == '\t'))
                    v++;
                size_t vl = (size_t)(p + ll - v);
                if (vl >= cap)
                    return 0;
                memcpy(out, v, vl);
                out[vl] = '\0';
                return 1;
            }
        }
        p = e ? e + 1 : end;
    }
    return 0;
}

size_t sim_sip_answer(const char *req, size_t n, const char *tag, char *out, size_t cap,
                      struct sim_sip_req *info)
{
    memset(info, 0, sizeof *info);
    const char *sp = memchr(req, ' ', n < 16 ? n : 16);
    if (sp == NULL || memchr(req, '\n', n) == NULL || (n >= 4 && memcmp(req, "SIP/", 4) == 0))
        return 0;
    size_t ml = (size_t)(sp - req);
    info->is_notify = ml == 6 && memcmp(req, "NOTIFY", 6) == 0;
    int is_options = ml == 7 && memcmp(req, "OPTIONS", 7) == 0;
    if (!info->is_notify && !is_options)
        return 0;
    char via[512], from[512], to[512], callid[256], cseq[128];
    if (!s_hdr(req, n, "Via", 'v', via, sizeof via) ||
        !s_hdr(req, n, "From", 'f', from, sizeof from) ||
        !s_hdr(req, n, "To", 't', to, sizeof to) ||
        !s_hdr(req, n, "Call-ID", 'i', callid, sizeof callid) ||
        !s_hdr(req, n, "CSeq", 0, cseq, sizeof cseq))
        return 0;
    if (info->is_notify)
        s_hdr(req, n, "Event", 'o', info->event, sizeof info->event);
    int r =
        snprintf(out, cap,
                 "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s%s%s\r\nCall-ID: %s\r\n"
                 "CSeq: %s\r\nUser-Agent: firmfleet-sim\r\nContent-Length: 0\r\n\r\n",
                 via, from, to, strstr(to, ";tag=") ? "" : ";tag=", strstr(to, ";tag=") ? "" : tag,
                 callid, cseq);
    return r < 0 || (size_t)r >= cap ? 0 : (size_t)r;
}
