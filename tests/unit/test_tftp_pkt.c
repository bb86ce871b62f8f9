/* test_tftp_pkt.c: TFTP request and option parsing (every length against the
 * bytes received: missing NULs, overlong names, junk after the last NUL,
 * truncation at every byte), option negotiation and clamping, OACK/ERROR
 * building, the window's 16-bit ACK arithmetic across rollover, and the
 * netascii encoder cut at every output size. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tftp_pkt.h"

/* Builds a request from (string) pieces, each followed by its NUL; returns
 * its length. A piece NULL ends the list. */
static size_t s_req(uint8_t *buf, uint16_t op, ...)
{
    va_list ap;
    buf[0] = (uint8_t)(op >> 8);
    buf[1] = (uint8_t)op;
    size_t n = 2;
    va_start(ap, op);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL) {
        size_t l = strlen(s);
        memcpy(buf + n, s, l + 1);
        n += l + 1;
    }
    va_end(ap);
    return n;
}

static void test_plain_rrq(void **state)
{
    (void)state;
    uint8_t b[600];
    struct tftp_req rq;
    const char *why;
    size_t n = s_req(b, TFTP_RRQ, "OS79XX.TXT", "octet", NULL);
    assert_int_equal(tftp_opcode(b, n), TFTP_RRQ);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), 0);
    assert_int_equal(rq.op, TFTP_RRQ);
    assert_int_equal(rq.name_len, 10);
    assert_string_equal(rq.name, "OS79XX.TXT");
    assert_int_equal(rq.mode, TFTP_MODE_OCTET);
    assert_int_equal(rq.opts, 0);
    assert_int_equal(rq.n_ignored, 0);

    n = s_req(b, TFTP_RRQ, "a", "NetASCII", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), 0);
    assert_int_equal(rq.mode, TFTP_MODE_NETASCII);
    n = s_req(b, TFTP_RRQ, "a", "OCTET", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), 0);
    assert_int_equal(rq.mode, TFTP_MODE_OCTET);
    n = s_req(b, TFTP_WRQ, "up.cfg", "octet", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), 0);
    assert_int_equal(rq.op, TFTP_WRQ);

    /* trailing space and CR are kept here: cleaning is files_clean's job */
    n = s_req(b, TFTP_RRQ, "SIPDefault.cnf \r", "octet", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), 0);
    assert_int_equal(rq.name_len, 16);
}

static void test_bad_requests(void **state)
{
    (void)state;
    uint8_t b[2048] = {0};
    struct tftp_req rq;
    const char *why = NULL;
    assert_int_equal(tftp_parse_request(b, 0, &rq, &why), -EINVAL);
    assert_non_null(why);
    assert_int_equal(tftp_parse_request(b, 1, &rq, &why), -EINVAL);
    assert_int_equal(tftp_opcode(b, 1), 0);

    size_t n = s_req(b, TFTP_DATA, "a", "octet", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -EINVAL);
    n = s_req(b, 0, "a", "octet", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -EINVAL);
    n = s_req(b, 0x0101, "a", "octet", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -EINVAL);

    /* empty name */
    n = s_req(b, TFTP_RRQ, "", "octet", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -EINVAL);
    assert_string_equal(why, "empty file name");
    /* no NUL after the name */
    b[0] = 0, b[1] = 1;
    memcpy(b + 2, "abc", 3);
    assert_int_equal(tftp_parse_request(b, 5, &rq, &why), -EINVAL);
    assert_string_equal(why, "file name not terminated");
    /* no NUL after the mode */
    n = s_req(b, TFTP_RRQ, "abc", "octet", NULL);
    assert_int_equal(tftp_parse_request(b, n - 1, &rq, &why), -EINVAL);
    assert_string_equal(why, "mode not terminated");
    /* no mode at all */
    n = s_req(b, TFTP_RRQ, "abc", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -EINVAL);
    /* modes */
    n = s_req(b, TFTP_RRQ, "abc", "mail", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -EPROTONOSUPPORT);
    n = s_req(b, TFTP_RRQ, "abc", "octets", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -EPROTONOSUPPORT);
    n = s_req(b, TFTP_RRQ, "abc", "", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -EPROTONOSUPPORT);
    n = s_req(b, TFTP_RRQ, "abc", "octe", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -EPROTONOSUPPORT);
    /* a NUL inside the name: the rest is read as the mode and refused */
    n = s_req(b, TFTP_RRQ, "ok.txt", "../../etc/passwd", "octet", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -EPROTONOSUPPORT);
    /* junk after the last NUL */
    n = s_req(b, TFTP_RRQ, "abc", "octet", NULL);
    memcpy(b + n, "xyz", 3);
    assert_int_equal(tftp_parse_request(b, n + 3, &rq, &why), -EINVAL);
    assert_string_equal(why, "junk after the last NUL");
    /* an option value without its NUL */
    n = s_req(b, TFTP_RRQ, "abc", "octet", "blksize", NULL);
    memcpy(b + n, "1468", 4);
    assert_int_equal(tftp_parse_request(b, n + 4, &rq, &why), -EINVAL);
    /* zero padding is fine, junk after padding is not */
    n = s_req(b, TFTP_RRQ, "abc", "octet", NULL);
    memset(b + n, 0, 20);
    assert_int_equal(tftp_parse_request(b, n + 20, &rq, &why), 0);
    b[n + 10] = 'x';
    assert_int_equal(tftp_parse_request(b, n + 20, &rq, &why), -EINVAL);

    /* names: TFTP_NAME_MAX fits, one more does not */
    char name[TFTP_NAME_MAX + 2];
    memset(name, 'a', sizeof name);
    name[TFTP_NAME_MAX] = '\0';
    n = s_req(b, TFTP_RRQ, name, "octet", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), 0);
    assert_int_equal(rq.name_len, TFTP_NAME_MAX);
    name[TFTP_NAME_MAX] = 'a';
    name[TFTP_NAME_MAX + 1] = '\0';
    n = s_req(b, TFTP_RRQ, name, "octet", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, &why), -ENAMETOOLONG);
    /* an oversized datagram is refused before it is read */
    memset(b, 0, sizeof b);
    b[1] = 1;
    b[2] = 'a';
    memcpy(b + 4, "octet", 6);
    assert_int_equal(tftp_parse_request(b, TFTP_REQ_MAX + 1, &rq, &why), -EINVAL);
    assert_int_equal(tftp_parse_request(b, TFTP_REQ_MAX, &rq, &why), 0);
}

/* Every prefix of a valid request with options either parses (when it ends
 * on a pair boundary) or is refused; none reads past its length (ASan). */
static void test_truncation(void **state)
{
    (void)state;
    uint8_t full[256];
    size_t n = s_req(full, TFTP_RRQ, "c1240-k9w7-tar.default", "octet", "tsize", "0", "blksize",
                     "1468", "windowsize", "16", NULL);
    for (size_t cut = 0; cut <= n; cut++) {
        uint8_t *b = malloc(cut ? cut : 1); /* exact size: ASan catches an overread */
        memcpy(b, full, cut);
        struct tftp_req rq;
        int rc = tftp_parse_request(b, cut, &rq, NULL);
        if (cut == n) {
            assert_int_equal(rc, 0);
            assert_int_equal(rq.opts, TFTP_OPT_TSIZE | TFTP_OPT_BLKSIZE | TFTP_OPT_WINDOWSIZE);
        }
        if (rc == 0)
            assert_true(rq.name_len == 22);
        free(b);
    }
}

static void test_options(void **state)
{
    (void)state;
    uint8_t b[800];
    struct tftp_req rq;
    size_t n = s_req(b, TFTP_RRQ, "f", "octet", "BLKSIZE", "1468", "TSize", "0", "timeout", "5",
                     "WindowSize", "16", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    assert_int_equal(rq.opts,
                     TFTP_OPT_BLKSIZE | TFTP_OPT_TSIZE | TFTP_OPT_TIMEOUT | TFTP_OPT_WINDOWSIZE);
    assert_int_equal(rq.blksize, 1468);
    assert_int_equal(rq.timeout, 5);
    assert_int_equal(rq.windowsize, 16);
    assert_true(rq.tsize == 0);
    assert_int_equal(rq.n_ignored, 0);

    /* Grandstream's private options and unknown ones are ignored */
    n = s_req(b, TFTP_RRQ, "cfg000b82123456.xml", "octet", "grandstream_MODEL", "GXP2130",
              "grandstream_ID", "abc", "blksize", "512", "multicast", "", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    assert_int_equal(rq.opts, TFTP_OPT_BLKSIZE);
    assert_int_equal(rq.n_ignored, 3);

    /* ranges */
    struct {
        const char *name, *val;
        unsigned bit;
        uint32_t want;
    } cases[] = {
        {"blksize", "8", TFTP_OPT_BLKSIZE, 8},
        {"blksize", "7", 0, 0},
        {"blksize", "0", 0, 0},
        {"blksize", "65464", TFTP_OPT_BLKSIZE, 65464},
        {"blksize", "65465", TFTP_OPT_BLKSIZE, 65464},
        {"blksize", "99999999999999999999", TFTP_OPT_BLKSIZE, 65464},
        {"blksize", "999999999999999999999", 0, 0}, /* 21 digits: not a number */
        {"blksize", "-1", 0, 0},
        {"blksize", "+512", 0, 0},
        {"blksize", " 512", 0, 0},
        {"blksize", "512 ", 0, 0},
        {"blksize", "0x200", 0, 0},
        {"blksize", "", 0, 0},
        {"timeout", "1", TFTP_OPT_TIMEOUT, 1},
        {"timeout", "255", TFTP_OPT_TIMEOUT, 255},
        {"timeout", "0", 0, 0},
        {"timeout", "256", 0, 0},
        {"windowsize", "1", TFTP_OPT_WINDOWSIZE, 1},
        {"windowsize", "65535", TFTP_OPT_WINDOWSIZE, 65535},
        {"windowsize", "65536", 0, 0},
        {"windowsize", "0", 0, 0},
        {"tsize", "0", TFTP_OPT_TSIZE, 0},
        {"tsize", "x", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = s_req(b, TFTP_RRQ, "f", "octet", cases[i].name, cases[i].val, NULL);
        assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
        assert_int_equal(rq.opts, cases[i].bit);
        assert_int_equal(rq.n_ignored, cases[i].bit ? 0 : 1);
        if (cases[i].bit == TFTP_OPT_BLKSIZE)
            assert_int_equal(rq.blksize, cases[i].want);
        if (cases[i].bit == TFTP_OPT_TIMEOUT)
            assert_int_equal(rq.timeout, cases[i].want);
        if (cases[i].bit == TFTP_OPT_WINDOWSIZE)
            assert_int_equal(rq.windowsize, cases[i].want);
    }

    /* the first of a repeated option wins */
    n = s_req(b, TFTP_RRQ, "f", "octet", "blksize", "1024", "blksize", "8", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    assert_int_equal(rq.blksize, 1024);
    assert_int_equal(rq.n_ignored, 1);
    /* a name without a value at the very end is dropped */
    n = s_req(b, TFTP_RRQ, "f", "octet", "tsize", "0", "blksize", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    assert_int_equal(rq.opts, TFTP_OPT_TSIZE);
    assert_int_equal(rq.n_ignored, 1);
    /* option names are exact words: a prefix or an extension is unknown */
    n = s_req(b, TFTP_RRQ, "f", "octet", "blksiz", "512", "blksize2", "512", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    assert_int_equal(rq.opts, 0);
    /* at most TFTP_OPTS_MAX pairs are looked at */
    uint8_t big[TFTP_REQ_MAX];
    size_t m = s_req(big, TFTP_RRQ, "f", "octet", NULL);
    for (int i = 0; i < TFTP_OPTS_MAX; i++) {
        memcpy(big + m,
               "x\0"
               "1\0",
               4);
        m += 4;
    }
    memcpy(big + m,
           "blksize\0"
           "1024\0",
           13);
    m += 13;
    assert_int_equal(tftp_parse_request(big, m, &rq, NULL), 0);
    assert_int_equal(rq.opts, 0);
    assert_int_equal(rq.n_ignored, TFTP_OPTS_MAX + 1);
}

static void test_negotiate(void **state)
{
    (void)state;
    uint8_t b[512], o[128];
    struct tftp_req rq;
    struct tftp_params p;
    struct tftp_limits lim = {.blksize_max = 1468, .window_max = 64, .window_bytes = 1 << 20};

    /* nothing asked: no OACK, defaults */
    size_t n = s_req(b, TFTP_RRQ, "f", "octet", "grandstream_ID", "x", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    tftp_negotiate(&rq, &lim, 1000, &p);
    assert_int_equal(p.oack, 0);
    assert_int_equal(p.blksize, 512);
    assert_int_equal(p.windowsize, 1);
    assert_int_equal(tftp_build_oack(&p, o, sizeof o), 0);

    /* blksize clamped to the MTU, tsize answered, timeout echoed, window clamped */
    n = s_req(b, TFTP_RRQ, "f", "octet", "blksize", "65464", "tsize", "0", "timeout", "3",
              "windowsize", "1000", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    tftp_negotiate(&rq, &lim, 41943040, &p);
    assert_int_equal(p.blksize, 1468);
    assert_int_equal(p.windowsize, 64);
    assert_int_equal(p.timeout, 3);
    assert_true(p.tsize == 41943040);
    size_t ol = tftp_build_oack(&p, o, sizeof o);
    static const char want[] = "\0\6blksize\0"
                               "1468\0tsize\0"
                               "41943040\0timeout\0"
                               "3\0"
                               "windowsize\0"
                               "64";
    assert_int_equal(ol, sizeof want);
    assert_memory_equal(o, want, sizeof want);
    assert_int_equal(tftp_build_oack(&p, o, 20), 0); /* too small: nothing */

    /* a smaller blksize is kept; the window is bounded by window_bytes too */
    struct tftp_limits big = {.blksize_max = 65464, .window_max = 64, .window_bytes = 1 << 20};
    n = s_req(b, TFTP_RRQ, "f", "octet", "blksize", "65464", "windowsize", "64", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    tftp_negotiate(&rq, &big, 1, &p);
    assert_int_equal(p.blksize, 65464);
    assert_int_equal(p.windowsize, 16); /* 1 MiB / 65464 */
    n = s_req(b, TFTP_RRQ, "f", "octet", "blksize", "1024", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    tftp_negotiate(&rq, &big, 1, &p);
    assert_int_equal(p.blksize, 1024);
    assert_int_equal(p.oack, TFTP_OPT_BLKSIZE);

    /* netascii: no tsize, the other options stay */
    n = s_req(b, TFTP_RRQ, "f", "netascii", "tsize", "0", "blksize", "1024", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    tftp_negotiate(&rq, &lim, 10, &p);
    assert_int_equal(p.oack, TFTP_OPT_BLKSIZE);
    n = s_req(b, TFTP_RRQ, "f", "netascii", "tsize", "0", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    tftp_negotiate(&rq, &lim, 10, &p);
    assert_int_equal(p.oack, 0);

    /* nonsense limits fall back to something safe */
    struct tftp_limits bad = {.blksize_max = 0, .window_max = 0, .window_bytes = 0};
    n = s_req(b, TFTP_RRQ, "f", "octet", "blksize", "9000", "windowsize", "8", NULL);
    assert_int_equal(tftp_parse_request(b, n, &rq, NULL), 0);
    tftp_negotiate(&rq, &bad, 1, &p);
    assert_int_equal(p.blksize, 512);
    assert_int_equal(p.windowsize, 1);
}

static void test_build_and_small_packets(void **state)
{
    (void)state;
    uint8_t b[600];
    size_t n = tftp_build_error(TFTP_ENOTFOUND, "file not found", b, sizeof b);
    assert_int_equal(n, 4 + 14 + 1);
    assert_memory_equal(b, "\0\5\0\1file not found\0", n);
    n = tftp_build_error(TFTP_EACCESS, "read-only server", b, 10);
    assert_int_equal(n, 10);
    assert_memory_equal(b, "\0\5\0\2read-\0", 10);
    assert_int_equal(tftp_build_error(0, "x", b, 4), 0);
    n = tftp_build_error(TFTP_EBADID, NULL, b, sizeof b);
    assert_int_equal(n, 5);

    uint8_t h[4];
    tftp_data_header(h, 0xfffe);
    assert_memory_equal(h, "\0\3\xff\xfe", 4);

    uint16_t blk;
    assert_int_equal(tftp_parse_ack((const uint8_t *)"\0\4\1\2", 4, &blk), 0);
    assert_int_equal(blk, 0x102);
    assert_int_equal(tftp_parse_ack((const uint8_t *)"\0\4\1\2\0\0", 6, &blk), 0);
    assert_int_equal(tftp_parse_ack((const uint8_t *)"\0\4\1", 3, &blk), -EINVAL);
    assert_int_equal(tftp_parse_ack((const uint8_t *)"\0\3\1\2", 4, &blk), -EINVAL);

    uint16_t code;
    char msg[8];
    assert_int_equal(
        tftp_parse_error((const uint8_t *)"\0\5\0\10bad\tx\0", 10, &code, msg, sizeof msg), 0);
    assert_int_equal(code, 8);
    assert_string_equal(msg, "bad?x");
    /* no NUL, long message: truncated, terminated */
    assert_int_equal(
        tftp_parse_error((const uint8_t *)"\0\5\0\1abcdefghijkl", 16, &code, msg, sizeof msg), 0);
    assert_string_equal(msg, "abcdefg");
    assert_int_equal(tftp_parse_error((const uint8_t *)"\0\5\0", 3, &code, msg, sizeof msg),
                     -EINVAL);
    assert_int_equal(tftp_parse_error((const uint8_t *)"\0\5\0\0", 4, &code, msg, sizeof msg), 0);
    assert_string_equal(msg, "");
}

static void test_ack_window(void **state)
{
    (void)state;
    /* lock-step: window of one, block 1 sent */
    assert_true(tftp_ack_block(1, 2, 1) == 1);
    assert_true(tftp_ack_block(1, 2, 0) == 0); /* the ack before: a duplicate */
    assert_true(tftp_ack_block(1, 2, 2) == 0); /* not sent yet */
    assert_true(tftp_ack_block(1, 1, 1) == 0); /* nothing sent */
    /* a window of 16 from block 33: acks 33..48 are in it */
    assert_true(tftp_ack_block(33, 49, 48) == 48);
    assert_true(tftp_ack_block(33, 49, 40) == 40);
    assert_true(tftp_ack_block(33, 49, 33) == 33);
    assert_true(tftp_ack_block(33, 49, 32) == 0);
    assert_true(tftp_ack_block(33, 49, 49) == 0);
    assert_true(tftp_ack_block(33, 49, 7) == 0);
    /* across the rollover: absolute 65530..65545 are wire 65530..65535, 0..9 */
    assert_true(tftp_ack_block(65530, 65546, 9) == 65545);
    assert_true(tftp_ack_block(65530, 65546, 0) == 65536);
    assert_true(tftp_ack_block(65530, 65546, 65535) == 65535);
    assert_true(tftp_ack_block(65530, 65546, 65529) == 0);
    assert_true(tftp_ack_block(65530, 65546, 10) == 0);
    /* 65535 acknowledged, block 65536 (wire 0) sent */
    assert_true(tftp_ack_block(65536, 65537, 0) == 65536);
    assert_true(tftp_ack_block(65536, 65537, 65535) == 0);
    /* a second rollover, far in a big file */
    assert_true(tftp_ack_block(131072, 131073, 0) == 131072);
    assert_true(tftp_ack_block(131071, 131073, 0) == 131072);
    assert_true(tftp_ack_block(131071, 131073, 65535) == 131071);
    /* misuse never acknowledges */
    assert_true(tftp_ack_block(0, 5, 1) == 0);
    assert_true(tftp_ack_block(5, 4, 5) == 0);
    assert_true(tftp_ack_block(1, 40000, 3) == 0);
}

static void s_decode(const uint8_t *in, size_t n, uint8_t *out, size_t *on)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') {
            out[o++] = '\n';
            i++;
        } else if (in[i] == '\r' && i + 1 < n && in[i + 1] == 0) {
            out[o++] = '\r';
            i++;
        } else {
            out[o++] = in[i];
        }
    }
    *on = o;
}

static void test_netascii(void **state)
{
    (void)state;
    const uint8_t src[] = "line one\nline two\r\nbare cr\rend\n\n\r\r";
    size_t sl = sizeof src - 1;
    static const uint8_t want[] = "line one\r\nline two\r\0\r\nbare cr\r\0end\r\n\r\n\r\0\r\0";
    size_t wl = sizeof want - 1;
    uint8_t out[128];
    int pend = -1;
    size_t used;
    size_t n = tftp_netascii_encode(&pend, src, sl, &used, out, sizeof out);
    assert_int_equal(n, wl);
    assert_int_equal(used, sl);
    assert_int_equal(pend, -1);
    assert_memory_equal(out, want, wl);

    /* any output size (block sizes, buffer ends) gives the same stream */
    for (size_t cap = 1; cap <= 9; cap++) {
        uint8_t got[128];
        size_t gl = 0, at = 0;
        pend = -1;
        for (int guard = 0; guard < 1000 && (at < sl || pend >= 0); guard++) {
            gl += tftp_netascii_encode(&pend, src + at, sl - at, &used, got + gl, cap);
            at += used;
        }
        assert_int_equal(gl, wl);
        assert_memory_equal(got, want, wl);
        uint8_t back[128];
        size_t bl;
        s_decode(got, gl, back, &bl);
        assert_int_equal(bl, sl);
        assert_memory_equal(back, src, sl);
    }
    /* zero room: nothing consumed, nothing lost */
    pend = '\n';
    assert_int_equal(tftp_netascii_encode(&pend, src, sl, &used, out, 0), 0);
    assert_int_equal(used, 0);
    assert_int_equal(pend, '\n');
    /* flush only */
    assert_int_equal(tftp_netascii_encode(&pend, NULL, 0, &used, out, 4), 1);
    assert_int_equal(out[0], '\n');
    assert_int_equal(pend, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_rrq),  cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_truncation), cmocka_unit_test(test_options),
        cmocka_unit_test(test_negotiate),  cmocka_unit_test(test_build_and_small_packets),
        cmocka_unit_test(test_ack_window), cmocka_unit_test(test_netascii),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
