/* test_ctl_admin.c: the controller's admin handlers (ctl_admin) over a real
 * inproc REQ/REP pair, a real store and a real image store, with the agent
 * link replaced by recording stubs. Checks that bad frames and bad requests
 * get error responses (never a crash), that requests queued by several
 * clients are all answered in one call, the enrollment credential format,
 * uploads, that profile list and show tell signed profiles from unsigned
 * ones, and that the link hears about site changes and revocations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "ctl_admin.h"
#include "ctl_link.h"
#include "hash.h"
#include "log.h"
#include "sign.h"
#include "store_inv.h"
#include "util.h"
#include "wire.h"

/* ---- link stubs (the real ctl_link.o is not linked: these satisfy ctl_admin) ---- */

static int64_t s_changed[32];
static size_t s_n_changed;
static int64_t s_revoked = -1;

int ctl_link_agent_online(ctl_link_t *link, int64_t agent_id)
{
    (void)link;
    return agent_id == 1;
}

uint64_t ctl_link_agent_bytes_sent(ctl_link_t *link, int64_t agent_id)
{
    (void)link;
    return (uint64_t)agent_id * 1000u;
}

void ctl_link_revoke(ctl_link_t *link, int64_t agent_id)
{
    (void)link;
    s_revoked = agent_id;
}

void ctl_link_site_changed(ctl_link_t *link, int64_t site_id)
{
    (void)link;
    if (s_n_changed < 32)
        s_changed[s_n_changed++] = site_id;
}

/* device assign is covered end to end by tests/system/t_assign.sh; these
 * only satisfy the linker. */
int ctl_link_enqueue(ctl_link_t *link, int64_t agent_id, const Firmfleet__Envelope *env)
{
    (void)link;
    (void)agent_id;
    (void)env;
    return 0;
}

void ctl_link_flush_outbox(ctl_link_t *link, int64_t agent_id)
{
    (void)link;
    (void)agent_id;
}

/* ---- fixture ---- */

struct fx {
    struct ctl ctl;
    void *req;
    char dir[64];
};

static int s_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/ff-test-admin.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    char path[256];
    snprintf(path, sizeof path, "%s/controller.db", fx->dir);
    assert_int_equal(store_open(path, &fx->ctl.st), 0);
    snprintf(path, sizeof path, "%s/images", fx->dir);
    assert_int_equal(imgstore_open(path, &fx->ctl.img), 0);
    fx->ctl.link = (ctl_link_t *)fx; /* any non-NULL: the stubs ignore it */
    snprintf(fx->ctl.public_endpoint, sizeof fx->ctl.public_endpoint, "tcp://ctl.example:7600");
    assert_int_equal(zmq_curve_keypair(fx->ctl.pub, fx->ctl.sec), 0);
    fx->ctl.zctx = zmq_ctx_new();
    fx->ctl.admin = zmq_socket(fx->ctl.zctx, ZMQ_REP);
    assert_int_equal(zmq_bind(fx->ctl.admin, "inproc://admin"), 0);
    fx->req = zmq_socket(fx->ctl.zctx, ZMQ_REQ);
    assert_int_equal(zmq_connect(fx->req, "inproc://admin"), 0);
    int zero = 0;
    zmq_setsockopt(fx->req, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(fx->ctl.admin, ZMQ_LINGER, &zero, sizeof zero);
    s_n_changed = 0;
    s_revoked = -1;
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    struct fx *fx = *state;
    zmq_close(fx->req);
    zmq_close(fx->ctl.admin);
    zmq_ctx_term(fx->ctl.zctx);
    imgstore_destroy(&fx->ctl.img);
    store_destroy(&fx->ctl.st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* Lets the controller answer, then reads the response on sock. */
static Firmfleet__AdminResponse *s_answer(struct fx *fx, void *sock)
{
    zmq_pollitem_t in = {fx->ctl.admin, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&in, 1, 2000), 1);
    ctl_admin_on_request(&fx->ctl);
    zmq_pollitem_t out = {sock, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&out, 1, 2000), 1);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, sock, 0) >= 0);
    Firmfleet__AdminResponse *r = wire_admin_resp_unpack(zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
    assert_non_null(r);
    return r;
}

/* One request: noun verb, args (NULL-terminated), opts "k=v" (NULL-term.). */
static Firmfleet__AdminResponse *s_call(struct fx *fx, const char *noun, const char *verb,
                                        const char *const *args, const char *const *opts,
                                        const void *blob, size_t blob_len)
{
    Firmfleet__AdminRequest req = FIRMFLEET__ADMIN_REQUEST__INIT;
    char *argv[8];
    Firmfleet__KV kv[8], *kvp[8];
    char keys[8][32];
    req.noun = (char *)(uintptr_t)noun;
    req.verb = (char *)(uintptr_t)verb;
    req.user = (char *)"tester";
    for (size_t i = 0; args && args[i]; i++)
        argv[req.n_args++] = (char *)(uintptr_t)args[i];
    req.args = argv;
    for (size_t i = 0; opts && opts[i]; i++) {
        const char *eq = strchr(opts[i], '=');
        firmfleet__kv__init(&kv[i]);
        snprintf(keys[i], sizeof keys[i], "%.*s", (int)(eq - opts[i]), opts[i]);
        kv[i].key = keys[i];
        kv[i].value = (char *)(uintptr_t)(eq + 1);
        kvp[i] = &kv[i];
        req.n_opts++;
    }
    req.opts = kvp;
    req.blob.data = (uint8_t *)(uintptr_t)blob;
    req.blob.len = blob_len;
    assert_int_equal(wire_send_admin_req(fx->req, &req), 0);
    return s_answer(fx, fx->req);
}

#define A(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Expects success; returns the parsed document (caller decrefs). */
static json_t *s_ok(Firmfleet__AdminResponse *r)
{
    if (r->status != 0)
        fail_msg("status %d: %s", r->status, r->error);
    json_t *doc = json_loads(r->json, JSON_DECODE_ANY, NULL);
    assert_non_null(doc);
    firmfleet__admin_response__free_unpacked(r, NULL);
    return doc;
}

static void s_err(Firmfleet__AdminResponse *r, int status, const char *want)
{
    assert_int_equal(r->status, status);
    if (strstr(r->error, want) == NULL)
        fail_msg("error '%s' lacks '%s'", r->error, want);
    assert_null(strchr(r->error, '\n'));
    assert_string_equal(r->json, "");
    firmfleet__admin_response__free_unpacked(r, NULL);
}

static void s_site(struct fx *fx)
{
    json_decref(s_ok(s_call(fx, "site", "add", A("berlin"), A("tz=Europe/Berlin"), NULL, 0)));
}

/* ---- tests ---- */

static void test_bad_frames(void **state)
{
    struct fx *fx = *state;
    /* not protobuf */
    assert_int_equal(zmq_send(fx->req, "\xff\xff\xff\xff", 4, 0), 4);
    s_err(s_answer(fx, fx->req), -EINVAL, "malformed request");
    /* two frames */
    assert_int_equal(zmq_send(fx->req, "", 0, ZMQ_SNDMORE), 0);
    assert_int_equal(zmq_send(fx->req, "x", 1, 0), 1);
    s_err(s_answer(fx, fx->req), -EINVAL, "more than one frame");
    /* empty frame parses as an empty request: unknown command */
    assert_int_equal(zmq_send(fx->req, "", 0, 0), 0);
    s_err(s_answer(fx, fx->req), -EINVAL, "unknown command");
    /* and the socket still works */
    json_t *l = s_ok(s_call(fx, "site", "list", NULL, NULL, NULL, 0));
    assert_true(json_is_array(l));
    json_decref(l);
}

static void test_bad_requests(void **state)
{
    struct fx *fx = *state;
    s_err(s_call(fx, "frobnicate", "list", NULL, NULL, NULL, 0), -EINVAL,
          "unknown command 'frobnicate'");
    s_err(s_call(fx, "site", "explode", NULL, NULL, NULL, 0), -EINVAL,
          "unknown verb 'explode' for site");
    s_err(s_call(fx, "site", "list", NULL, A("bogus=1"), NULL, 0), -EINVAL,
          "unknown option --bogus");
    s_err(s_call(fx, "site", "add", A("x"), A("tz=UTC", "tz=UTC"), NULL, 0), -EINVAL,
          "given twice");
    s_err(s_call(fx, "site", "add", NULL, A("tz=UTC"), NULL, 0), -EINVAL, "expected 1 argument");
    s_err(s_call(fx, "site", "add", A("x"), NULL, NULL, 0), -EINVAL, "--tz is required");
    s_err(s_call(fx, "device", "import", NULL, NULL, "not json", 8), -EINVAL, "JSON array");
    s_err(s_call(fx, "device", "import", NULL, NULL, "[1]", 3), -EINVAL, "not an object");
    s_err(s_call(fx, "device", "import", NULL, NULL, "[{\"mac\":5}]", 11), -EINVAL,
          "mac must be a string");
    s_err(s_call(fx, "event", "list", NULL, A("limit=-1"), NULL, 0), -EINVAL,
          "--limit must be a non-negative integer");
    s_err(s_call(fx, "firmware", "upload-chunk", NULL, A("token=99", "offset=0"), "x", 1), -ENOENT,
          "unknown upload token");
    s_err(s_call(fx, "firmware", "add", A("cisco"), A("models=A"), NULL, 0), -EINVAL,
          "VENDOR/VERSION");
    s_err(s_call(fx, "firmware", "add", A("cisco/1"), A("models=A"), "{}", 2), -EINVAL,
          "\"files\"");
    assert_int_equal(s_n_changed, 0);
}

static void test_drains_all_waiting(void **state)
{
    struct fx *fx = *state;
    void *more[3];
    Firmfleet__AdminRequest req = FIRMFLEET__ADMIN_REQUEST__INIT;
    req.noun = (char *)"site";
    req.verb = (char *)"list";
    for (int i = 0; i < 3; i++) {
        more[i] = zmq_socket(fx->ctl.zctx, ZMQ_REQ);
        assert_int_equal(zmq_connect(more[i], "inproc://admin"), 0);
        assert_int_equal(wire_send_admin_req(more[i], &req), 0);
    }
    zmq_pollitem_t in = {fx->ctl.admin, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&in, 1, 2000), 1);
    ctl_admin_on_request(&fx->ctl); /* one call answers all three */
    for (int i = 0; i < 3; i++) {
        zmq_pollitem_t out = {more[i], 0, ZMQ_POLLIN, 0};
        assert_int_equal(zmq_poll(&out, 1, 1000), 1);
        char buf[256];
        assert_true(zmq_recv(more[i], buf, sizeof buf, 0) >= 0);
        zmq_close(more[i]);
    }
}

static void test_enroll_credential(void **state)
{
    struct fx *fx = *state;
    s_site(fx);
    s_err(s_call(fx, "agent", "enroll", NULL, A("site=paris"), NULL, 0), -ENOENT,
          "unknown site 'paris'");
    json_t *cred = s_ok(s_call(fx, "agent", "enroll", NULL, A("site=berlin"), NULL, 0));
    assert_int_equal(json_object_size(cred), 9); /* with enrollment, expires_ms */
    assert_int_equal(json_integer_value(json_object_get(cred, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(cred, "agent")), "berlin");
    assert_string_equal(json_string_value(json_object_get(cred, "site")), "berlin");
    assert_string_equal(json_string_value(json_object_get(cred, "endpoint")),
                        "tcp://ctl.example:7600");
    assert_string_equal(json_string_value(json_object_get(cred, "server_public_key")), fx->ctl.pub);
    const char *pub = json_string_value(json_object_get(cred, "public_key"));
    const char *sec = json_string_value(json_object_get(cred, "secret_key"));
    char derived[41];
    assert_int_equal(zmq_curve_public(derived, sec), 0);
    assert_string_equal(derived, pub);
    /* the store holds the public key only */
    json_t *a = s_ok(s_call(fx, "agent", "show", A("berlin"), NULL, NULL, 0));
    assert_string_equal(json_string_value(json_object_get(a, "public_key")), pub);
    assert_null(json_object_get(a, "secret_key"));
    assert_true(json_is_true(json_object_get(a, "online"))); /* stub: id 1 online */
    assert_int_equal(json_integer_value(json_object_get(a, "image_bytes_sent")), 1000);
    json_decref(a);
    json_decref(cred);
    /* a named second agent; duplicate names refused */
    json_decref(
        s_ok(s_call(fx, "agent", "enroll", NULL, A("site=berlin", "name=berlin-2"), NULL, 0)));
    s_err(s_call(fx, "agent", "enroll", NULL, A("site=berlin", "name=berlin-2"), NULL, 0), -EEXIST,
          "agent berlin-2 already exists");
    json_t *l = s_ok(s_call(fx, "agent", "list", NULL, NULL, NULL, 0));
    assert_int_equal(json_array_size(l), 2);
    assert_true(json_is_false(json_object_get(json_array_get(l, 1), "online")));
    json_decref(l);
    /* revoke tells the link */
    json_t *r = s_ok(s_call(fx, "agent", "revoke", A("berlin-2"), NULL, NULL, 0));
    assert_int_equal(s_revoked, json_integer_value(json_object_get(r, "id")));
    assert_true(json_is_true(json_object_get(r, "revoked")));
    json_decref(r);
    s_revoked = -1;
    s_err(s_call(fx, "agent", "revoke", A("berlin-2"), NULL, NULL, 0), -EALREADY,
          "already revoked");
    assert_int_equal(s_revoked, -1);
}

static void test_devices_notify_sites(void **state)
{
    struct fx *fx = *state;
    s_site(fx);
    json_t *d = s_ok(s_call(fx, "device", "add", A("00-11-22-33-44-55"),
                            A("site=berlin", "model=CP-7961G", "tags=a,b"), NULL, 0));
    assert_string_equal(json_string_value(json_object_get(d, "mac")), "00:11:22:33:44:55");
    json_decref(d);
    assert_int_equal(s_n_changed, 1);
    assert_int_equal(s_changed[0], 1);
    s_err(s_call(fx, "device", "add", A("00:11:22:33:44:55"), A("site=berlin"), NULL, 0), -EEXIST,
          "device 00:11:22:33:44:55 already exists (site berlin)");
    assert_int_equal(s_n_changed, 1);
    const char *rows = "[{\"line\":2,\"mac\":\"00:11:22:33:44:66\",\"site\":\"berlin\"},"
                       "{\"line\":3,\"mac\":\"00:11:22:33:44:77\",\"site\":\"rome\"}]";
    s_err(s_call(fx, "device", "import", NULL, NULL, rows, strlen(rows)), -ENOENT,
          "line 3: unknown site 'rome'");
    assert_int_equal(s_n_changed, 1);
    const char *good = "[{\"line\":2,\"mac\":\"00:11:22:33:44:66\",\"site\":\"berlin\"},"
                       "{\"line\":3,\"mac\":\"00:11:22:33:44:77\",\"site\":\"berlin\","
                       "\"model\":\"X\",\"serial\":\"S1\",\"tags\":\"t\"}]";
    json_t *imp = s_ok(s_call(fx, "device", "import", NULL, NULL, good, strlen(good)));
    assert_int_equal(json_integer_value(json_object_get(imp, "imported")), 2);
    json_decref(imp);
    assert_int_equal(s_n_changed, 2);
    json_t *l = s_ok(s_call(fx, "device", "list", NULL, A("model=X"), NULL, 0));
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
}

/* Site services through the admin API: repeated --match/--option reach the
 * store in order, other options may not repeat, and the link hears about
 * every site a change reaches (a global class: all of them). */
static void test_site_services(void **state)
{
    struct fx *fx = *state;
    s_site(fx);
    json_decref(s_ok(s_call(fx, "site", "add", A("paris"), A("tz=Europe/Paris"), NULL, 0)));
    s_n_changed = 0;
    json_t *c = s_ok(s_call(fx, "class", "add", A("cisco"),
                            A("match=vendor-prefix:Cisco", "option=150=@server",
                              "match=oui:00:04:f2", "option=67=SEP.cnf", "tftp-root=cisco"),
                            NULL, 0));
    assert_int_equal(json_array_size(json_object_get(c, "rules")), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(c, "rules"), 1), "spec")),
        "oui:00:04:f2");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(c, "options"), 1), "spec")),
                        "67=SEP.cnf");
    json_decref(c);
    assert_int_equal(s_n_changed, 2); /* global: berlin and paris */
    s_err(s_call(fx, "class", "add", A("x"), A("match=vendor:a", "priority=1", "priority=2"), NULL,
                 0),
          -EINVAL, "class add: option --priority given twice");
    s_err(s_call(fx, "class", "add", A("x"), A("option=66=a"), NULL, 0), -EINVAL,
          "at least one --match");
    s_err(s_call(fx, "subnet", "list", NULL, A("site=berlin", "site=paris"), NULL, 0), -EINVAL,
          "option --site given twice");
    s_err(s_call(fx, "subnet", "add", A("berlin", "198.18.0.0/24"), A("option=66=a"), NULL, 0),
          -EINVAL, "--pool is required");
    s_err(s_call(fx, "subnet", "add", A("berlin"), A("pool=198.18.0.10-198.18.0.20"), NULL, 0),
          -EINVAL, "expected 2 arguments");
    assert_int_equal(s_n_changed, 2);
    json_t *sn =
        s_ok(s_call(fx, "subnet", "add", A("berlin", "198.18.0.0/24"),
                    A("pool=198.18.0.10-198.18.0.20", "option=66=a", "option=67=b"), NULL, 0));
    assert_int_equal(json_array_size(json_object_get(sn, "options")), 2);
    json_decref(sn);
    assert_int_equal(s_n_changed, 3);
    assert_int_equal(s_changed[2], 1);
    json_t *t = s_ok(s_call(fx, "template", "add", A("SEP{mac}.cnf"), A("site=paris"), "a\0b", 3));
    assert_int_equal(json_integer_value(json_object_get(t, "size")), 3);
    assert_null(json_object_get(t, "body_hex"));
    json_decref(t);
    assert_int_equal(s_n_changed, 4);
    assert_int_equal(s_changed[3], 2);
    t = s_ok(s_call(fx, "template", "show", A("SEP{mac}.cnf"), A("site=paris"), NULL, 0));
    assert_string_equal(json_string_value(json_object_get(t, "body_hex")), "610062");
    json_decref(t);
    s_err(s_call(fx, "template", "show", A("SEP{mac}.cnf"), NULL, NULL, 0), -ENOENT,
          "unknown template 'SEP{mac}.cnf' (global)");
    json_t *d = s_ok(s_call(fx, "device", "add", A("00:04:f2:00:00:01"),
                            A("site=berlin", "ip=198.18.0.5", "class=cisco"), NULL, 0));
    assert_string_equal(json_string_value(json_object_get(d, "ip")), "198.18.0.5");
    json_decref(d);
    const char *rows = "[{\"line\":2,\"mac\":\"00:04:f2:00:00:02\",\"site\":\"berlin\","
                       "\"ip\":\"198.18.0.5\"}]";
    s_err(s_call(fx, "device", "import", NULL, NULL, rows, strlen(rows)), -EEXIST,
          "line 2: ip 198.18.0.5 is already reserved");
    const char *badrow = "[{\"mac\":\"00:04:f2:00:00:02\",\"site\":\"berlin\",\"class\":7}]";
    s_err(s_call(fx, "device", "import", NULL, NULL, badrow, strlen(badrow)), -EINVAL,
          "class must be a string");
    s_err(s_call(fx, "class", "remove", A("cisco"), A("site=paris"), NULL, 0), -ENOENT,
          "unknown class 'cisco' (at site paris)");
    s_err(s_call(fx, "class", "remove", A("cisco"), NULL, NULL, 0), -EBUSY,
          "class cisco is pinned by device 00:04:f2:00:00:01 (site berlin)");
}

static void s_hex_of(const char *data, size_t len, char hex[65])
{
    uint8_t sha[32];
    hash_ctx_t *h = hash_new();
    hash_update(h, data, len);
    hash_final(h, sha);
    hash_destroy(&h);
    util_hex(sha, 32, hex);
}

static uint64_t s_begin(struct fx *fx, size_t size)
{
    char opt[64];
    snprintf(opt, sizeof opt, "size=%zu", size);
    json_t *t = s_ok(s_call(fx, "firmware", "upload-begin", NULL, A(opt), NULL, 0));
    uint64_t token = (uint64_t)json_integer_value(json_object_get(t, "token"));
    json_decref(t);
    assert_true(token > 0);
    return token;
}

static void test_firmware_upload_and_add(void **state)
{
    struct fx *fx = *state;
    s_site(fx);
    json_decref(s_ok(s_call(fx, "device", "add", A("00:11:22:33:44:55"),
                            A("site=berlin", "model=CP-7961G"), NULL, 0)));
    s_n_changed = 0;
    const char *img = "firmware image bytes";
    size_t len = strlen(img);
    char hex[65], topt[64], body[512];
    s_hex_of(img, len, hex);

    /* out of sequence and past the end */
    uint64_t t1 = s_begin(fx, len);
    snprintf(topt, sizeof topt, "token=%llu", (unsigned long long)t1);
    s_err(s_call(fx, "firmware", "upload-chunk", NULL, A(topt, "offset=5"), img, 5), -EINVAL,
          "out of sequence");
    json_decref(s_ok(s_call(fx, "firmware", "upload-chunk", NULL, A(topt, "offset=0"), img, 8)));
    s_err(s_call(fx, "firmware", "upload-chunk", NULL, A(topt, "offset=8"), img, len), -EFBIG,
          "past its declared size");
    json_t *rcv =
        s_ok(s_call(fx, "firmware", "upload-chunk", NULL, A(topt, "offset=8"), img + 8, len - 8));
    assert_int_equal(json_integer_value(json_object_get(rcv, "received")), (json_int_t)len);
    json_decref(rcv);

    /* a wrong hash: refused, nothing registered, upload dropped */
    snprintf(body, sizeof body,
             "{\"files\":[{\"name\":\"a.bin\",\"sha256\":\"%064d\",\"token\":%llu}]}", 0,
             (unsigned long long)t1);
    s_err(s_call(fx, "firmware", "add", A("cisco/9.4"), A("models=CP-7961G"), body, strlen(body)),
          -EBADMSG, "does not match its sha256");
    s_err(s_call(fx, "firmware", "show", A("cisco/9.4"), NULL, NULL, 0), -ENOENT,
          "unknown firmware");
    assert_int_equal(s_n_changed, 0);

    /* the real thing */
    uint64_t t2 = s_begin(fx, len);
    snprintf(topt, sizeof topt, "token=%llu", (unsigned long long)t2);
    json_decref(s_ok(s_call(fx, "firmware", "upload-chunk", NULL, A(topt, "offset=0"), img, len)));
    snprintf(body, sizeof body,
             "{\"files\":[{\"name\":\"a.bin\",\"sha256\":\"%s\",\"token\":%llu}]}", hex,
             (unsigned long long)t2);
    json_t *fw =
        s_ok(s_call(fx, "firmware", "add", A("cisco/9.4"),
                    A("models=CP-7961G,CP-7941G", "description=SCCP"), body, strlen(body)));
    json_t *f0 = json_array_get(json_object_get(fw, "files"), 0);
    assert_string_equal(json_string_value(json_object_get(f0, "sha256")), hex);
    assert_int_equal(json_integer_value(json_object_get(f0, "size")), (json_int_t)len);
    json_decref(fw);
    assert_int_equal(s_n_changed, 1); /* berlin has a CP-7961G */
    uint64_t have = 0;
    assert_int_equal(imgstore_has(fx->ctl.img, hex, &have), 1);
    assert_int_equal(have, len);

    /* a second firmware reusing the blob by hash only; a missing blob fails */
    snprintf(body, sizeof body, "{\"files\":[{\"name\":\"b.bin\",\"sha256\":\"%s\"}]}", hex);
    json_decref(s_ok(
        s_call(fx, "firmware", "add", A("cisco/9.5"), A("models=SPA504G"), body, strlen(body))));
    assert_int_equal(s_n_changed, 1); /* no SPA504G anywhere */
    snprintf(body, sizeof body, "{\"files\":[{\"name\":\"c.bin\",\"sha256\":\"%064d\"}]}", 1);
    s_err(s_call(fx, "firmware", "add", A("cisco/9.6"), A("models=SPA504G"), body, strlen(body)),
          -ENOENT, "not in the image store");
    /* a duplicate is refused before uploads are consumed */
    uint64_t t3 = s_begin(fx, len);
    snprintf(body, sizeof body,
             "{\"files\":[{\"name\":\"a.bin\",\"sha256\":\"%s\",\"token\":%llu}]}", hex,
             (unsigned long long)t3);
    s_err(s_call(fx, "firmware", "add", A("cisco/9.4"), A("models=X"), body, strlen(body)), -EEXIST,
          "firmware cisco/9.4 already exists");
    snprintf(topt, sizeof topt, "token=%llu", (unsigned long long)t3);
    s_err(s_call(fx, "firmware", "upload-chunk", NULL, A(topt, "offset=0"), img, len), -ENOENT,
          "unknown upload token"); /* aborted by the failed add */
    json_t *l = s_ok(s_call(fx, "firmware", "list", NULL, NULL, NULL, 0));
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);
}

/* Profiles, device fields, calendars and rollouts through the admin API:
 * the document shapes the CLI reads, one-line refusals that change nothing,
 * and the link hearing about every site a change reaches. */
static void test_rollout_verbs(void **state)
{
    struct fx *fx = *state;
    s_site(fx);
    json_decref(s_ok(s_call(fx, "site", "add", A("paris"), A("tz=Europe/Paris"), NULL, 0)));
    json_decref(s_ok(s_call(fx, "device", "add", A("00:04:f2:00:00:01"),
                            A("site=berlin", "model=CP-7940G"), NULL, 0)));
    json_decref(s_ok(s_call(fx, "device", "add", A("00:04:f2:00:00:02"),
                            A("site=paris", "model=CP-7940G"), NULL, 0)));
    const char *prof = "{\"name\": \"cisco-79xx\", \"description\": \"Cisco phones\","
                       " \"recognise\": [\"vendor-prefix:Cisco\"]}";
    s_n_changed = 0;
    json_t *p = s_ok(s_call(fx, "profile", "add", NULL, NULL, prof, strlen(prof)));
    assert_string_equal(json_string_value(json_object_get(p, "name")), "cisco-79xx");
    assert_string_equal(json_string_value(json_object_get(p, "source")), "operator");
    json_decref(p);
    assert_int_equal(s_n_changed, 2); /* every site gets the profile */
    s_err(s_call(fx, "profile", "add", NULL, NULL, prof, strlen(prof)), -EEXIST, "--replace");
    json_decref(s_ok(s_call(fx, "profile", "add", NULL, A("replace=1"), prof, strlen(prof))));
    s_err(s_call(fx, "profile", "add", NULL, NULL, "{\"name\":\"x\"}", 12), -EINVAL,
          "profile refused");
    json_t *l = s_ok(s_call(fx, "profile", "list", NULL, NULL, NULL, 0));
    json_t *p0 = json_array_get(json_object_get(l, "profiles"), 0);
    assert_string_equal(json_string_value(json_object_get(p0, "description")), "Cisco phones");
    assert_true(json_is_integer(json_object_get(p0, "priority")));
    json_decref(l);
    p = s_ok(s_call(fx, "profile", "show", A("cisco-79xx"), NULL, NULL, 0));
    assert_string_equal(json_string_value(json_object_get(p, "json")), prof);
    json_decref(p);
    s_err(s_call(fx, "profile", "show", A("nope"), NULL, NULL, 0), -ENOENT, "unknown profile");

    /* device set, site set */
    json_t *d =
        s_ok(s_call(fx, "device", "set", A("00:04:f2:00:00:01"),
                    A("version=8.11.0", "serial-firmware=8.11.0", "profile=cisco-79xx"), NULL, 0));
    assert_string_equal(json_string_value(json_object_get(d, "version")), "8.11.0");
    assert_string_equal(json_string_value(json_object_get(d, "profile")), "cisco-79xx");
    json_decref(d);
    s_err(s_call(fx, "device", "set", A("00:04:f2:00:00:01"), A("profile=nope"), NULL, 0), -ENOENT,
          "unknown profile 'nope'");
    s_err(s_call(fx, "device", "set", A("00:04:f2:00:00:01"), NULL, NULL, 0), -EINVAL,
          "nothing to set");
    s_err(s_call(fx, "site", "set", A("berlin"), A("window=Mon-Fri 9:00"), NULL, 0), -EINVAL,
          "invalid window");
    json_t *site =
        s_ok(s_call(fx, "site", "set", A("berlin"), A("window=Sat,Sun 00:00-06:00"), NULL, 0));
    assert_string_equal(json_string_value(json_object_get(site, "window")), "Sat,Sun 00:00-06:00");
    json_decref(site);
    s_err(s_call(fx, "profile", "remove", A("cisco-79xx"), NULL, NULL, 0), -EBUSY,
          "pinned on device 00:04:f2:00:00:01");

    /* a firmware straight into the store (uploads are covered above) */
    const char *models[] = {"CP-7940G"};
    struct store_fw_file f = {
        .name = "P0S3.loads",
        .sha256 = "aa805c71e3b342ea41be535ce1363e3cba2dd3a81d278982cd843fe2df8b3673",
        .has_size = 1,
        .size = 10};
    struct store_fw_in fw = {.vendor = "cisco",
                             .version = "8.12.0",
                             .models = models,
                             .n_models = 1,
                             .files = &f,
                             .n_files = 1};
    char err[256];
    assert_int_equal(store_firmware_add(fx->ctl.st, "t", &fw, NULL, NULL, err, sizeof err), 0);

    s_err(s_call(fx, "rollout", "create", A("r1"),
                 A("firmware=cisco/8.12.0", "sites=berlin", "waves=10%,5"), NULL, 0),
          -EINVAL, "after a percentage");
    s_err(s_call(fx, "rollout", "create", A("r1"), A("sites=berlin"), NULL, 0), -EINVAL,
          "--firmware");
    s_err(
        s_call(fx, "rollout", "create", A("r1"), A("firmware=cisco/8.12.0", "sites=rome"), NULL, 0),
        -ENOENT, "unknown site 'rome'");
    s_err(s_call(fx, "rollout", "create", A("r1"),
                 A("firmware=cisco/8.12.0", "sites=berlin", "bogus=1"), NULL, 0),
          -EINVAL, "unknown option --bogus");
    l = s_ok(s_call(fx, "rollout", "list", NULL, NULL, NULL, 0));
    assert_int_equal(json_array_size(json_object_get(l, "rollouts")), 0);
    json_decref(l);
    s_n_changed = 0;
    json_t *st = s_ok(s_call(fx, "rollout", "create", A("r1"),
                             A("firmware=cisco/8.12.0", "sites=berlin,paris", "waves=canary,100%",
                               "max-failures=10%", "boot-grace=6m", "stage-fresh=1",
                               "timeouts=offered=8h", "window=daily 01:00-03:00"),
                             NULL, 0));
    json_t *r = json_object_get(st, "rollout");
    assert_string_equal(json_string_value(json_object_get(r, "state")), "created");
    assert_string_equal(json_string_value(json_object_get(r, "profile")), "cisco-79xx");
    assert_int_equal(json_integer_value(json_object_get(r, "total")), 2);
    assert_true(json_is_null(json_object_get(r, "started_at")));
    json_decref(st);
    assert_int_equal(s_n_changed, 2); /* both sites pre-fetch the image */
    l = s_ok(s_call(fx, "rollout", "list", NULL, NULL, NULL, 0));
    json_t *r0 = json_array_get(json_object_get(l, "rollouts"), 0);
    const char *keys[] = {"id",      "name",  "state",     "reason", "firmware",
                          "profile", "total", "succeeded", "failed", "created_at"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (json_object_get(r0, keys[i]) == NULL)
            fail_msg("rollouts[0].%s missing", keys[i]);
    json_decref(l);
    st = s_ok(s_call(fx, "rollout", "start", A("r1"), NULL, NULL, 0));
    assert_string_equal(json_string_value(json_object_get(json_object_get(st, "rollout"), "state")),
                        "running");
    json_decref(st);
    s_err(s_call(fx, "rollout", "start", A("r1"), NULL, NULL, 0), -EINVAL,
          "rollout r1 is running; start applies to a created rollout");
    json_decref(s_ok(s_call(fx, "rollout", "pause", A("r1"), NULL, NULL, 0)));
    json_decref(s_ok(s_call(fx, "rollout", "resume", A("r1"), NULL, NULL, 0)));
    st = s_ok(s_call(fx, "rollout", "abort", A("r1"), NULL, NULL, 0));
    assert_string_equal(json_string_value(json_object_get(json_object_get(st, "rollout"), "state")),
                        "aborted");
    json_decref(st);
    s_err(s_call(fx, "rollout", "status", A("nope"), NULL, NULL, 0), -ENOENT,
          "unknown rollout 'nope'");
    /* controller events are listed like agents' */
    json_t *ev = s_ok(s_call(fx, "event", "list", NULL, A("kind=rollout.state"), NULL, 0));
    assert_int_equal(json_array_size(ev), 5); /* created running paused running aborted */
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "agent")),
                        "firmfleetd");
    json_decref(ev);
}

/* The profile called `name` in a profile list document, or NULL. */
static json_t *s_profile_in(json_t *list, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(list, "profiles"), i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0)
            return o;
    }
    return NULL;
}

/* o shows a profile signed by the key id (NULL: unsigned, and then no key
 * fields at all). */
static void s_signed_as(const json_t *o, const char *id, const char *pkhex)
{
    assert_non_null(o);
    assert_true(json_is_boolean(json_object_get(o, "signed")));
    if (id == NULL) {
        assert_true(json_is_false(json_object_get(o, "signed")));
        assert_null(json_object_get(o, "key_id"));
        assert_null(json_object_get(o, "signer"));
        return;
    }
    assert_true(json_is_true(json_object_get(o, "signed")));
    assert_string_equal(json_string_value(json_object_get(o, "key_id")), id);
    assert_string_equal(json_string_value(json_object_get(o, "signer")), pkhex);
}

/* profile list and show tell a signed profile (migration 8's signature and
 * signer) from an unsigned one: signed, and the signer's key id and public
 * key for the signed one only; re-adding the text unsigned drops it. */
static void test_profile_signed(void **state)
{
    struct fx *fx = *state;
    const char *ps = "{\"name\": \"signed-p\", \"recognise\": [\"vendor-prefix:S\"]}";
    const char *pu = "{\"name\": \"unsigned-p\", \"recognise\": [\"vendor-prefix:U\"]}";
    uint8_t pk[SIGN_PK_LEN], sk[SIGN_SK_LEN], sig[SIGN_SIG_LEN];
    assert_int_equal(sign_init(), 0);
    assert_int_equal(sign_keypair(pk, sk), 0);
    assert_int_equal(sign_profile(sk, ps, strlen(ps), sig), 0);
    char sighex[SIGN_SIG_HEX + 1], pkhex[SIGN_PK_HEX + 1], id[SIGN_ID_HEX + 1];
    util_hex(sig, sizeof sig, sighex);
    util_hex(pk, sizeof pk, pkhex);
    sign_key_id(pk, id);
    char osig[16 + SIGN_SIG_HEX], osigner[16 + SIGN_PK_HEX];
    snprintf(osig, sizeof osig, "signature=%s", sighex);
    snprintf(osigner, sizeof osigner, "signer=%s", pkhex);

    json_t *p = s_ok(s_call(fx, "profile", "add", NULL, A(osig, osigner), ps, strlen(ps)));
    s_signed_as(p, id, pkhex);
    json_decref(p);
    p = s_ok(s_call(fx, "profile", "add", NULL, NULL, pu, strlen(pu)));
    s_signed_as(p, NULL, NULL);
    json_decref(p);

    json_t *l = s_ok(s_call(fx, "profile", "list", NULL, NULL, NULL, 0));
    s_signed_as(s_profile_in(l, "signed-p"), id, pkhex);
    s_signed_as(s_profile_in(l, "unsigned-p"), NULL, NULL);
    json_decref(l);
    p = s_ok(s_call(fx, "profile", "show", A("signed-p"), NULL, NULL, 0));
    s_signed_as(p, id, pkhex);
    assert_string_equal(json_string_value(json_object_get(p, "json")), ps);
    json_decref(p);
    p = s_ok(s_call(fx, "profile", "show", A("unsigned-p"), NULL, NULL, 0));
    s_signed_as(p, NULL, NULL);
    json_decref(p);

    /* the same text again, unsigned (--replace): no longer signed */
    json_decref(s_ok(s_call(fx, "profile", "add", NULL, A("replace=1"), ps, strlen(ps))));
    p = s_ok(s_call(fx, "profile", "show", A("signed-p"), NULL, NULL, 0));
    s_signed_as(p, NULL, NULL);
    json_decref(p);
    l = s_ok(s_call(fx, "profile", "list", NULL, NULL, NULL, 0));
    s_signed_as(s_profile_in(l, "signed-p"), NULL, NULL);
    json_decref(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_frames, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_drains_all_waiting, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_enroll_credential, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_devices_notify_sites, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_firmware_upload_and_add, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_site_services, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rollout_verbs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_profile_signed, s_setup, s_teardown),
    };
    log_set_level(LOG_LEVEL_ERROR);
    hash_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
