/* fuzz_envelope.c: libFuzzer target for the protobuf-c code generated from
 * proto/firmfleet.proto, on the two messages that arrive from outside the
 * controller: Envelope (agent link, after CURVE) and AdminRequest (admin
 * socket). Arbitrary bytes are unpacked under the same WIRE_MAX_MSG bound as
 * wire_unpack; what unpacks is packed again (size as announced), and that
 * packing must unpack and pack to the very same bytes (the second round is
 * canonical). The first input byte chooses the message, so each seed
 * corpus file is one selector byte followed by a packed message.
 *
 * Known quirk of protobuf-c (1.4.1): a tag for field number 0 is refused
 * only when it is written in one byte, so an overlong tag (0x82 0x00) is
 * kept as an unknown field numbered 0, packed back as 0x02, and that
 * packing does not unpack. firmfleet never re-packs a received message, so
 * it is harmless here; the round trip is skipped for such messages
 * (tests/fuzz/crashes/fuzz_envelope/protobuf-c-field0-overlong-tag).
 *
 * Build and run: `make fuzz` (clang), or replayed over tests/fuzz/corpus/
 * by `make test` (tests/fuzz/replay_main.c).
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "firmfleet.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* WIRE_MAX_MSG, without pulling wire.h's ZeroMQ into the fuzzer build */
#define ENV_FUZZ_MAX (4u << 20)

/* 1 when m or a message inside it kept an unknown field numbered 0. */
static int s_env_has_field0(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return 1;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
            ProtobufCMessage *const *v =
                *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (s_env_has_field0(v[k]))
                    return 1;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
            continue;
        const ProtobufCMessage *sub =
            *(const ProtobufCMessage *const *)(const void *)(base + f->offset);
        if (sub != NULL && s_env_has_field0(sub))
            return 1;
    }
    return 0;
}

static void s_env_roundtrip(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size, data);
    if (m == NULL)
        return;
    assert(protobuf_c_message_check(m));
    if (s_env_has_field0(m)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return;
    }
    size_t n1 = protobuf_c_message_get_packed_size(m);
    uint8_t *b1 = malloc(n1 ? n1 : 1);
    assert(b1 != NULL);
    assert(protobuf_c_message_pack(m, b1) == n1);
    protobuf_c_message_free_unpacked(m, NULL);

    ProtobufCMessage *m2 = protobuf_c_message_unpack(d, NULL, n1, b1);
    assert(m2 != NULL);
    size_t n2 = protobuf_c_message_get_packed_size(m2);
    uint8_t *b2 = malloc(n2 ? n2 : 1);
    assert(b2 != NULL);
    assert(protobuf_c_message_pack(m2, b2) == n2);
    ProtobufCMessage *m3 = protobuf_c_message_unpack(d, NULL, n2, b2);
    assert(m3 != NULL);
    size_t n3 = protobuf_c_message_get_packed_size(m3);
    uint8_t *b3 = malloc(n3 ? n3 : 1);
    assert(b3 != NULL);
    assert(protobuf_c_message_pack(m3, b3) == n3);
    assert(n3 == n2 && memcmp(b2, b3, n2) == 0);
    protobuf_c_message_free_unpacked(m3, NULL);
    protobuf_c_message_free_unpacked(m2, NULL);
    free(b3);
    free(b2);
    free(b1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > ENV_FUZZ_MAX)
        return 0;
    const uint8_t *msg = data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        Firmfleet__AdminRequest *r = firmfleet__admin_request__unpack(NULL, n, msg);
        if (r != NULL)
            firmfleet__admin_request__free_unpacked(r, NULL);
        s_env_roundtrip(&firmfleet__admin_request__descriptor, msg, n);
    } else {
        Firmfleet__Envelope *e = firmfleet__envelope__unpack(NULL, n, msg);
        if (e != NULL) {
            assert(e->body_case == FIRMFLEET__ENVELOPE__BODY__NOT_SET ||
                   protobuf_c_message_descriptor_get_field(&firmfleet__envelope__descriptor,
                                                           (unsigned)e->body_case) != NULL);
            firmfleet__envelope__free_unpacked(e, NULL);
        }
        s_env_roundtrip(&firmfleet__envelope__descriptor, msg, n);
    }
    return 0;
}
