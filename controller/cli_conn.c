/* cli_conn.c: see cli_conn.h.
 *
 * Invariants: the REQ socket has ZMQ_LINGER 0 and the shared size limits;
 * after a timeout the socket is unusable (REQ state machine), so the
 * connection is marked broken and every later call fails fast. A tcp
 * endpoint is only ever spoken to over CURVE (cli_conn_open refuses it
 * without keys); a refused handshake is read from the socket monitor and
 * reported at once.
 */
#include "cli_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "wire.h"
#include "zmqx.h"

struct cli_conn {
    void *zctx;
    void *sock;
    void *mon; /* PAIR on the socket's monitor (tcp + CURVE only), or NULL */
    int timeout_ms;
    int broken;
    volatile sig_atomic_t *intr; /* see cli_conn_set_interrupt */
    char endpoint[512];
};

int cli_conn_broken(const cli_conn_t *c)
{
    return c->broken;
}

void cli_conn_set_interrupt(cli_conn_t *c, volatile sig_atomic_t *flag)
{
    c->intr = flag;
}

const char *cli_conn_endpoint(const cli_conn_t *c)
{
    return c->endpoint;
}

/* For ipc://PATH: is anything accepting connections there? */
static int s_probe_ipc(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int cli_conn_open(const char *endpoint, int timeout_ms, cli_conn_t **out, char *err, size_t errlen)
{
    return cli_conn_open_curve(endpoint, timeout_ms, NULL, out, err, errlen);
}

int cli_conn_open_curve(const char *endpoint, int timeout_ms, const struct cli_curve *curve,
                        cli_conn_t **out, char *err, size_t errlen)
{
    *out = NULL;
    cli_conn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint) >= (int)sizeof c->endpoint) {
        snprintf(err, errlen, "admin endpoint too long");
        free(c);
        return -ENAMETOOLONG;
    }
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : CLI_DEFAULT_TIMEOUT_MS;
    if (strncmp(endpoint, "tcp://", 6) == 0 && curve == NULL) {
        snprintf(err, errlen,
                 "a tcp:// admin endpoint needs --key FILE and --server-key KEY "
                 "(or $FIRMFLEET_KEY and $FIRMFLEET_SERVER_KEY)");
        free(c);
        return -EINVAL;
    }
    if (strncmp(endpoint, "ipc://", 6) == 0) {
        int rc = s_probe_ipc(endpoint + 6);
        if (rc < 0) {
            snprintf(err, errlen, "controller not reachable at %s (%s)", c->endpoint,
                     strerror(-rc));
            free(c);
            return rc;
        }
    }
    c->zctx = zmq_ctx_new();
    c->sock = c->zctx ? zmq_socket(c->zctx, ZMQ_REQ) : NULL;
    if (c->sock == NULL || zmqx_apply_limits(c->sock, 0) < 0 ||
        zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &c->timeout_ms, sizeof c->timeout_ms) < 0 ||
        zmq_setsockopt(c->sock, ZMQ_CONNECT_TIMEOUT, &c->timeout_ms, sizeof c->timeout_ms) < 0) {
        snprintf(err, errlen, "cannot create socket: %s", zmq_strerror(errno));
        cli_conn_destroy(&c);
        return -EIO;
    }
    if (curve != NULL) {
        char ep[64];
        snprintf(ep, sizeof ep, "inproc://cli-monitor-%p", (void *)c);
        if (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, curve->server_key, 41) < 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, curve->public_key, 41) < 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, curve->secret_key, 41) < 0 ||
            zmq_socket_monitor(c->sock, ep,
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) < 0 ||
            (c->mon = zmq_socket(c->zctx, ZMQ_PAIR)) == NULL || zmq_connect(c->mon, ep) < 0) {
            snprintf(err, errlen, "cannot set up CURVE: %s", zmq_strerror(errno));
            cli_conn_destroy(&c);
            return -EIO;
        }
        int zero = 0;
        zmq_setsockopt(c->mon, ZMQ_LINGER, &zero, sizeof zero);
    }
    if (zmq_connect(c->sock, endpoint) < 0) {
        snprintf(err, errlen, "invalid admin endpoint '%s': %s", c->endpoint, zmq_strerror(errno));
        cli_conn_destroy(&c);
        return -EINVAL;
    }
    *out = c;
    return 0;
}

void cli_conn_destroy(cli_conn_t **c_p)
{
    if (c_p == NULL || *c_p == NULL)
        return;
    cli_conn_t *c = *c_p;
    if (c->mon) {
        zmq_socket_monitor(c->sock, NULL, 0);
        zmq_close(c->mon);
    }
    if (c->sock)
        zmq_close(c->sock);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    free(c);
    *c_p = NULL;
}

int cli_conn_call(cli_conn_t *c, const Firmfleet__AdminRequest *req, json_t **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (c->broken) {
        snprintf(err, errlen, "controller not reachable at %s", c->endpoint);
        return -EIO;
    }
    int rc = wire_send_admin_req(c->sock, req);
    if (rc == -EMSGSIZE) {
        snprintf(err, errlen, "request too large (limit %u bytes)", WIRE_MAX_MSG);
        return rc;
    }
    if (rc < 0) {
        c->broken = 1;
        snprintf(err, errlen, "controller not reachable at %s", c->endpoint);
        return rc;
    }
    zmq_pollitem_t it[2] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
    int n;
    do {
        n = zmq_poll(it, c->mon ? 2 : 1, c->timeout_ms);
        if (n < 0 && errno == EINTR && c->intr && *c->intr) {
            c->broken = 1;
            snprintf(err, errlen, "interrupted");
            return -EINTR;
        }
    } while (n < 0 && errno == EINTR);
    if (n > 0 && c->mon && (it[1].revents & ZMQ_POLLIN) && !(it[0].revents & ZMQ_POLLIN)) {
        /* the handshake failed: say why instead of waiting for the timeout */
        uint16_t event = 0;
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, c->mon, ZMQ_DONTWAIT) >= 0 && zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), 2);
        zmq_msg_close(&ev);
        c->broken = 1;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            snprintf(err, errlen,
                     "the controller at %s refused this key at the handshake (not in its "
                     "admin_keys)",
                     c->endpoint);
        else
            snprintf(err, errlen,
                     "CURVE handshake with %s failed (wrong --server-key, or not a firmfleet "
                     "admin endpoint)",
                     c->endpoint);
        return -EACCES;
    }
    if (n <= 0) {
        c->broken = 1;
        snprintf(err, errlen, "controller not reachable at %s (no answer in %d s)", c->endpoint,
                 (c->timeout_ms + 999) / 1000);
        return -ETIMEDOUT;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        c->broken = 1;
        snprintf(err, errlen, "controller not reachable at %s (%s)", c->endpoint, zmq_strerror(e));
        return -EIO;
    }
    Firmfleet__AdminResponse *resp = wire_admin_resp_unpack(zmq_msg_data(&msg), zmq_msg_size(&msg));
    int more = zmq_msg_more(&msg);
    zmq_msg_close(&msg);
    if (resp == NULL || more) {
        if (resp)
            firmfleet__admin_response__free_unpacked(resp, NULL);
        c->broken = 1;
        snprintf(err, errlen, "malformed response from the controller at %s", c->endpoint);
        return -EPROTO;
    }
    if (resp->status != 0) {
        rc = resp->status < 0 ? resp->status : -EIO;
        /* keep the controller's message on one line */
        snprintf(err, errlen, "%s", resp->error && *resp->error ? resp->error : "request failed");
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        firmfleet__admin_response__free_unpacked(resp, NULL);
        return rc;
    }
    json_error_t jerr;
    const char *text = resp->json && *resp->json ? resp->json : "{}";
    *out = json_loads(text, JSON_DECODE_ANY, &jerr);
    /* the document may hold a secret key: wipe our copy */
    if (resp->json)
        explicit_bzero(resp->json, strlen(resp->json));
    firmfleet__admin_response__free_unpacked(resp, NULL);
    if (*out == NULL) {
        snprintf(err, errlen, "malformed JSON from the controller: %s", jerr.text);
        return -EPROTO;
    }
    return 0;
}
