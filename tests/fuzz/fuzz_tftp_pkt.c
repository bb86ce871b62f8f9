/* fuzz_tftp_pkt.c: libFuzzer target for everything the TFTP server does with
 * a datagram before it opens a file: the request parser with its options,
 * negotiation against fuzzer-chosen limits and the OACK built from it, the
 * ACK and ERROR parsers, the 16-bit window arithmetic, and the netascii
 * encoder cut at a fuzzer-chosen size (decoding it must give the input
 * back). Asserts the contracts of tftp_pkt.h along the way.
 *
 * Build and run (not part of `make`):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isiteagent \
 *     tests/fuzz/fuzz_tftp_pkt.c siteagent/tftp_pkt.c -o /tmp/fuzz_tftp_pkt
 *   /tmp/fuzz_tftp_pkt -max_total_time=60
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tftp_pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_request(const uint8_t *data, size_t size)
{
    struct tftp_req rq;
    const char *why = NULL;
    int rc = tftp_parse_request(data, size, &rq, &why);
    if (rc != 0) {
        assert(rc == -EINVAL || rc == -ENAMETOOLONG || rc == -EPROTONOSUPPORT);
        assert(why != NULL);
        return;
    }
    assert(rq.op == TFTP_RRQ || rq.op == TFTP_WRQ);
    assert((const uint8_t *)rq.name >= data + 2);
    assert((const uint8_t *)rq.name + rq.name_len < data + size);
    assert(rq.name_len >= 1 && rq.name_len <= TFTP_NAME_MAX);
    assert(rq.name[rq.name_len] == '\0' && strlen(rq.name) == rq.name_len);
    assert(rq.mode == TFTP_MODE_OCTET || rq.mode == TFTP_MODE_NETASCII);
    if (rq.opts & TFTP_OPT_BLKSIZE)
        assert(rq.blksize >= TFTP_BLKSIZE_MIN && rq.blksize <= TFTP_BLKSIZE_MAX);
    if (rq.opts & TFTP_OPT_TIMEOUT)
        assert(rq.timeout >= TFTP_TIMEOUT_MIN && rq.timeout <= TFTP_TIMEOUT_MAX);
    if (rq.opts & TFTP_OPT_WINDOWSIZE)
        assert(rq.windowsize >= 1 && rq.windowsize <= TFTP_WINDOW_WIRE_MAX);

    /* limits taken from the tail of the input, so they vary too */
    uint32_t b = size >= 4 ? (uint32_t)(data[size - 1] | data[size - 2] << 8) : 1468;
    struct tftp_limits lim = {
        .blksize_max = b, .window_max = size >= 3 ? data[size - 3] : 64, .window_bytes = 1u << 20};
    struct tftp_params p;
    tftp_negotiate(&rq, &lim, (uint64_t)size * 1000003u, &p);
    assert(p.blksize >= TFTP_BLKSIZE_MIN && p.blksize <= TFTP_BLKSIZE_MAX);
    assert(p.windowsize >= 1);
    assert(p.windowsize == 1 || (uint64_t)p.windowsize * p.blksize <= lim.window_bytes);
    assert((p.oack & ~rq.opts) == 0);
    if (rq.mode == TFTP_MODE_NETASCII)
        assert(!(p.oack & TFTP_OPT_TSIZE));
    uint8_t oack[96];
    size_t n = tftp_build_oack(&p, oack, sizeof oack);
    assert(p.oack == 0 ? n == 0 : (n > 2 && n <= sizeof oack && oack[n - 1] == 0));
}

static void s_netascii(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    size_t cap = 1 + data[0] % 17;
    uint8_t *wire = malloc(2 * size + 2), *back = malloc(size + 1);
    size_t wl = 0, at = 0, used;
    int pend = -1;
    while (at < size || pend >= 0) {
        size_t room = cap < 2 * size + 2 - wl ? cap : 2 * size + 2 - wl;
        size_t w = tftp_netascii_encode(&pend, data + at, size - at, &used, wire + wl, room);
        assert(w > 0 || room == 0);
        assert(w <= room && used <= size - at);
        wl += w;
        at += used;
    }
    size_t bl = 0;
    for (size_t i = 0; i < wl; i++) {
        if (wire[i] == '\r') {
            assert(i + 1 < wl && (wire[i + 1] == '\n' || wire[i + 1] == 0));
            back[bl++] = wire[i + 1] == '\n' ? '\n' : '\r';
            i++;
        } else {
            assert(wire[i] != '\n');
            back[bl++] = wire[i];
        }
    }
    assert(bl == size && memcmp(back, data, size) == 0);
    free(wire);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_request(data, size);

    uint16_t blk, code;
    char msg[64];
    if (tftp_parse_ack(data, size, &blk) == 0)
        assert(size >= 4);
    if (tftp_parse_error(data, size, &code, msg, sizeof msg) == 0)
        assert(strlen(msg) < sizeof msg);

    if (size >= 12) {
        uint64_t base = 1 + ((uint64_t)data[0] << 16 | (uint64_t)data[1] << 8 | data[2]);
        uint64_t next = base + data[3] % 65;
        uint16_t ack = (uint16_t)(data[4] << 8 | data[5]);
        uint64_t a = tftp_ack_block(base, next, ack);
        assert(a == 0 || (a >= base && a < next && (uint16_t)a == ack));
        if (next > base && (uint16_t)(next - 1) == ack)
            assert(a == next - 1);
    }
    s_netascii(data, size);
    return 0;
}
