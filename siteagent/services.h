/* services.h: the branch services a site agent runs next to its uplink, and
 * the options that turn them on. Each service lives in its own module
 * (dhcpd.c, tftpd.c, httpd.c, files.c), creates its handles on the agent's
 * loop, and registers itself with agent_add_service() so that it receives the
 * site configuration, the after-commit signal and the stop request.
 *
 * A service that cannot start (port taken, bad interface) makes the agent
 * exit with a clear error: a half-started branch box is worse than none.
 */
#ifndef FF_SERVICES_H
#define FF_SERVICES_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

#define SVC_MAX_LISTEN 8

struct svc_opts {
    const char *dhcp_ifaces[SVC_MAX_LISTEN]; /* --dhcp IFACE: serve DHCP on this interface */
    size_t n_dhcp;
    uint16_t dhcp_port;                      /* --dhcp-port (default 67; clients at +1) */
    const char *tftp_listen[SVC_MAX_LISTEN]; /* --tftp ADDR[:PORT] (default port 69) */
    size_t n_tftp;
    const char *http_listen[SVC_MAX_LISTEN]; /* --http ADDR:PORT */
    size_t n_http;
    const char *files_root;                  /* --files-root DIR (default STATEDIR/files) */
    int nocase;                              /* --files-nocase: case-insensitive names */
    uint64_t upload_max;                     /* --upload-max SIZE per device (default 1M) */
};

/* The file resolver TFTP and HTTP share (files.c). Started first whenever
 * TFTP or HTTP is on. */
int files_start(struct agent *a, const struct svc_opts *o);
/* DHCP (dhcpd.c), TFTP (tftpd.c), HTTP (httpd.c): 0, or <0 with the reason
 * logged. Called only when their options are given. */
int dhcpd_start(struct agent *a, const struct svc_opts *o);
int tftpd_start(struct agent *a, const struct svc_opts *o);
int httpd_start(struct agent *a, const struct svc_opts *o);

#endif
