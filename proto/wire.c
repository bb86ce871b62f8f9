/* wire.c: see wire.h. */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void s_free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static int s_send_buf(void *sock, uint8_t *buf, size_t len, int flags)
{
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, buf, len, s_free_buf, NULL) < 0) {
        free(buf);
        return -errno;
    }
    if (zmq_msg_send(&msg, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        return -e;
    }
    return 0;
}

uint8_t *wire_pack(const wire_env_t *env, size_t *len_out)
{
    size_t len = firmfleet__envelope__get_packed_size(env);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return NULL;
    firmfleet__envelope__pack(env, buf);
    *len_out = len;
    return buf;
}

int wire_send(void *sock, const void *rid, size_t rid_len, const wire_env_t *env, int flags)
{
    size_t len = 0;
    uint8_t *buf = wire_pack(env, &len);
    if (buf == NULL)
        return -ENOMEM;
    if (len > WIRE_MAX_MSG) {
        free(buf);
        return -EMSGSIZE;
    }
    if (rid != NULL) {
        if (zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | flags) < 0) {
            int e = errno;
            free(buf);
            return -e;
        }
    }
    return s_send_buf(sock, buf, len, flags);
}

/* ---- a look at the bytes before protobuf-c allocates ---- */

static int s_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned sh = 0; sh < 64 && *p < end; sh += 7) {
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

/* Steps over one field's value of wire type wt. 0, or -1 malformed. */
static int s_skip(const uint8_t **p, const uint8_t *end, unsigned wt, const uint8_t **val,
                  size_t *vlen)
{
    uint64_t v;
    size_t n;
    switch (wt) {
    case 0:
        return s_varint(p, end, &v);
    case 1:
        n = 8;
        break;
    case 5:
        n = 4;
        break;
    case 2:
        if (s_varint(p, end, &v) < 0 || v > (uint64_t)(end - *p))
            return -1;
        n = (size_t)v;
        break;
    default:
        return -1;
    }
    if (n > (size_t)(end - *p))
        return -1;
    *val = *p;
    *vlen = n;
    *p += n;
    return 0;
}

/* How many entries of field `inner` the length-delimited top-level field
 * `outer` holds, over all its occurrences (protobuf merges them). A frame
 * that does not walk counts 0: protobuf-c refuses it anyway. */
static size_t s_count(const uint8_t *d, size_t len, unsigned outer, unsigned inner)
{
    const uint8_t *p = d, *end = d + len;
    size_t count = 0;
    while (p < end) {
        uint64_t key;
        const uint8_t *val = NULL;
        size_t vlen = 0;
        if (s_varint(&p, end, &key) < 0 || s_skip(&p, end, (unsigned)(key & 7), &val, &vlen) < 0)
            return 0;
        if ((key >> 3) != outer || (key & 7) != 2)
            continue;
        const uint8_t *q = val, *qe = val + vlen;
        while (q < qe) {
            uint64_t k2;
            const uint8_t *v2;
            size_t l2;
            if (s_varint(&q, qe, &k2) < 0 || s_skip(&q, qe, (unsigned)(k2 & 7), &v2, &l2) < 0)
                return 0;
            count += (k2 >> 3) == inner;
        }
    }
    return count;
}

wire_env_t *wire_unpack(const void *data, size_t len)
{
    if (len > WIRE_MAX_MSG)
        return NULL;
    /* an EventBatch of millions of empty events would be millions of
     * allocations before the batch bound refuses it: count first */
    if (s_count(data, len, FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH, 1) > WIRE_BATCH_MAX)
        return NULL;
    wire_env_t *env = firmfleet__envelope__unpack(NULL, len, data);
    if (env == NULL)
        return NULL;
    if (env->body_case == FIRMFLEET__ENVELOPE__BODY__NOT_SET) {
        firmfleet__envelope__free_unpacked(env, NULL);
        return NULL;
    }
    return env;
}

void wire_free(wire_env_t *env)
{
    if (env)
        firmfleet__envelope__free_unpacked(env, NULL);
}

int wire_batch_first(uint64_t seq, size_t n, uint64_t last, size_t *first)
{
    *first = 0;
    if (seq == 0 || n == 0 || n > WIRE_BATCH_MAX || seq > UINT64_MAX - (n - 1))
        return -EINVAL;
    uint64_t end = seq + (n - 1); /* the batch's last seq */
    if (end <= last)
        return 0;
    if (seq > last + 1) /* last < end: no wrap */
        return -ERANGE;
    *first = (size_t)(last + 1 - seq);
    return 1;
}

const char *wire_body_name(const wire_env_t *env)
{
    switch (env->body_case) {
    case FIRMFLEET__ENVELOPE__BODY_HELLO: return "hello";
    case FIRMFLEET__ENVELOPE__BODY_WELCOME: return "welcome";
    case FIRMFLEET__ENVELOPE__BODY_HEARTBEAT: return "heartbeat";
    case FIRMFLEET__ENVELOPE__BODY_SITE_CONFIG: return "site_config";
    case FIRMFLEET__ENVELOPE__BODY_ASSIGNMENT: return "assignment";
    case FIRMFLEET__ENVELOPE__BODY_CANCEL: return "cancel";
    case FIRMFLEET__ENVELOPE__BODY_EVENT: return "event";
    case FIRMFLEET__ENVELOPE__BODY_IMAGE_REQUEST: return "image_request";
    case FIRMFLEET__ENVELOPE__BODY_IMAGE_CHUNK: return "image_chunk";
    case FIRMFLEET__ENVELOPE__BODY_BACKUP: return "backup";
    case FIRMFLEET__ENVELOPE__BODY_REFUSED: return "refused";
    case FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH: return "event_batch";
    default: return "unknown";
    }
}

Firmfleet__AdminRequest *wire_admin_req_unpack(const void *data, size_t len)
{
    if (len > WIRE_MAX_MSG)
        return NULL;
    return firmfleet__admin_request__unpack(NULL, len, data);
}

Firmfleet__AdminResponse *wire_admin_resp_unpack(const void *data, size_t len)
{
    if (len > WIRE_MAX_MSG)
        return NULL;
    return firmfleet__admin_response__unpack(NULL, len, data);
}

int wire_send_admin_req(void *sock, const Firmfleet__AdminRequest *req)
{
    size_t len = firmfleet__admin_request__get_packed_size(req);
    if (len > WIRE_MAX_MSG)
        return -EMSGSIZE;
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return -ENOMEM;
    firmfleet__admin_request__pack(req, buf);
    return s_send_buf(sock, buf, len, 0);
}

int wire_send_admin_resp(void *sock, const Firmfleet__AdminResponse *resp)
{
    size_t len = firmfleet__admin_response__get_packed_size(resp);
    if (len > WIRE_MAX_MSG)
        return -EMSGSIZE;
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return -ENOMEM;
    firmfleet__admin_response__pack(resp, buf);
    return s_send_buf(sock, buf, len, 0);
}
