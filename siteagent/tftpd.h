/* tftpd.h: the site agent's TFTP server: read-only RFC 1350 with the option
 * extensions (RFC 2347 OACK, 2348 blksize, 2349 timeout/tsize, 7440
 * windowsize), started by tftpd_start() (services.h) for each
 * `--tftp ADDR[:PORT]`. Every name goes through files_clean() and
 * files_open() (files.h): the same lookup, the same root, the same refusals
 * as HTTP.
 *
 * What it reports (agent_emit_event, so the controller sees it):
 *   tftp.start     file= size= client= mode= blksize= windowsize= origin=
 *   tftp.progress  file= pct=25|50|75 bytes= client=   (files over 1 MiB,
 *                  transfers that have run for a second)
 *   tftp.done      file= bytes= ms= client=
 *   tftp.failed    file= reason= bytes= client=
 * with the device's MAC when a service knows it (agent_mac_for_ip). Refused
 * and missing names are logged (tftp.missing, tftp.refused at warn) but are
 * not device events: phones probe for files that do not exist on purpose.
 *
 * The constants below are the policy; the why is next to each.
 */
#ifndef FF_TFTPD_H
#define FF_TFTPD_H

/* First retransmission after 1 s (the client's `timeout` option replaces
 * it), doubled on each retry up to 8 s, at most 5 retries: a transfer nobody
 * answers is given up after about half a minute, the Cisco ROMMON pattern
 * (1, 2, 4, 8 s) is matched, and a phone busy writing flash is waited for. */
#define TFTPD_RTO_MS 1000
#define TFTPD_RTO_MAX_MS 8000
#define TFTPD_RETRIES 5

/* RFC 7440 windows are clamped to 64 blocks and to 1 MiB of data: beyond
 * that a single loss costs more than the window gains, and the per-transfer
 * buffer (which must hold a whole window for retransmission) stays small. */
#define TFTPD_WINDOW_MAX 64
#define TFTPD_WINDOW_BYTES (1u << 20)

/* Bytes read (or netascii-encoded) ahead per transfer, or the window if it
 * is larger, where a file is not sent from its mapping (netascii, a file
 * mmap refused): 8 KiB saves most preads in lock-step, and a hundred
 * transfers' buffers still fit in L2 (see the top of tftpd.c). */
#define TFTPD_READAHEAD (8u << 10)

/* A file sent from its mapping counts in RSS as far as it was sent; of a
 * file larger than this, the mapped pages are dropped (kept in page cache)
 * each time this much has been sent from it, so RSS stays bounded by about
 * this per file being served, whatever the image size. */
#define TFTPD_MAP_RESIDENT_MAX (8u << 20)

/* Transfers at once, in total and per client address (each holds a socket
 * and a buffer); beyond them a request gets "server busy" and the device
 * retries. The total is further bounded by the open-file limit. */
#define TFTPD_MAX_XFERS 2048
#define TFTPD_MAX_PER_CLIENT 256

/* tftp.progress is reported for files over this size, at most every 25 %,
 * once the transfer has been running for TFTPD_PROGRESS_AFTER_MS. */
#define TFTPD_PROGRESS_MIN (1u << 20)
#define TFTPD_PROGRESS_AFTER_MS 1000

/* Error replies to malformed packets and to strangers (unknown transfer ID)
 * are rate-limited so the agent cannot be used as a reflector: 200 per
 * second, bursts of 400. Log lines about malformed requests: 20 per second. */
#define TFTPD_ERR_RATE 200
#define TFTPD_LOG_RATE 20
/* tftp.missing and tftp.refused lines (operators read them: a floor of
 * phones probing for CTL/ITL files after a power cut must all show), per
 * second, bursts twice that; beyond it tftp.log_suppressed says how many. */
#define TFTPD_NAME_LOG_RATE 200

#include <stdint.h>

#include "agent.h"

/* Counters of the running TFTP service (tftpd_get_stats). */
struct tftpd_stats {
    uint64_t started; /* transfers begun (tftp.start) */
    uint64_t done;    /* sent whole (tftp.done) */
    uint64_t failed;  /* given up (tftp.failed) */
    uint64_t bytes;   /* acknowledged by clients, done and failed transfers */
    uint64_t active;  /* transfers in progress now */
};
/* 0, or -ENOENT when TFTP is not running. Loop thread only. */
int tftpd_get_stats(struct agent *a, struct tftpd_stats *out);

#endif
