/* sim_http.c: the simulated devices' HTTP client (see sim_http.h).
 *
 * One struct per request: a TCP handle, an idle timer, the connect and write
 * requests and the parser. Both handles are closed when the request ends;
 * libuv calls the pending connect/write callbacks (UV_ECANCELED) before the
 * close callbacks, so the struct is freed in the last close callback and
 * nothing can reach it afterwards.
 */
#include "sim_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_REQ_MAX 2048
#define RBUF_SIZE 16384

struct sim_http {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t conn;
    uv_write_t wr;
    int open_handles;
    int finished;
    sim_xfer_data_fn data;
    sim_xfer_done_fn done;
    void *arg;
    unsigned timeout_ms;
    http_parser parser;
    http_parser_settings ps;
    int complete;
    struct sim_xfer_result res;
    size_t req_len;
    char req[HTTP_REQ_MAX];
    char rbuf[RBUF_SIZE];
};

static void s_on_close(uv_handle_t *h)
{
    struct sim_http *c = h->data;
    if (--c->open_handles == 0)
        free(c);
}

static void s_close(struct sim_http *c)
{
    c->finished = 1;
    uv_timer_stop(&c->timer);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, s_on_close);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, s_on_close);
}

static void s_finish(struct sim_http *c, int status, const char *detail)
{
    if (c->finished)
        return;
    c->res.status = status;
    c->res.detail = detail;
    c->finished = 1;
    struct sim_xfer_result r = c->res;
    c->done(c->arg, &r);
    s_close(c);
}

static void s_on_timeout(uv_timer_t *t)
{
    s_finish(t->data, -ETIMEDOUT, "idle timeout");
}

static void s_touch(struct sim_http *c)
{
    uv_timer_start(&c->timer, s_on_timeout, c->timeout_ms, 0);
}

/* http-parser has already taken this chunk off content_length when it
 * calls here, so bytes so far + what remains is the whole size. */
static int s_on_body(http_parser *p, const char *at, size_t n)
{
    struct sim_http *c = p->data;
    if (p->status_code != 200)
        return 0; /* an error page: not the file */
    c->res.bytes += n;
    uint64_t total = (p->flags & F_CONTENTLENGTH) ? c->res.bytes + p->content_length : 0;
    if (c->data(c->arg, (const uint8_t *)at, n, total) != 0) {
        s_finish(c, -ECANCELED, "aborted by the device");
        return -1;
    }
    return 0;
}

static int s_on_complete(http_parser *p)
{
    struct sim_http *c = p->data;
    c->complete = 1;
    unsigned st = p->status_code;
    c->res.code = (int)st;
    s_finish(c,
             st == 200   ? 0
             : st == 404 ? -ENOENT
             : st == 403 ? -EACCES
                         : -EPROTO,
             st == 200 ? NULL : "HTTP status");
    return -1; /* stop parsing: Connection: close, nothing else may follow */
}

static void s_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *buf)
{
    (void)sugg;
    struct sim_http *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void s_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct sim_http *c = s->data;
    if (c->finished || n == 0) /* 0 is EAGAIN; to http-parser a 0-length input means EOF */
        return;
    if (n == UV_EOF) {
        http_parser_execute(&c->parser, &c->ps, NULL, 0); /* EOF may complete a body */
        if (!c->finished)
            s_finish(c, -EPROTO, "connection closed before the response ended");
        return;
    }
    if (n < 0) {
        s_finish(c, (int)n, "read error");
        return;
    }
    s_touch(c);
    size_t used = http_parser_execute(&c->parser, &c->ps, buf->base, (size_t)n);
    if (c->finished)
        return;
    if (used != (size_t)n || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
        s_finish(c, -EPROTO, http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
}

static void s_on_write(uv_write_t *w, int status)
{
    struct sim_http *c = w->data;
    if (status < 0 && !c->finished)
        s_finish(c, status, "write error");
}

static void s_on_connect(uv_connect_t *r, int status)
{
    struct sim_http *c = r->data;
    if (c->finished)
        return;
    if (status < 0) {
        s_finish(c, status, "connect failed");
        return;
    }
    s_touch(c);
    uv_buf_t b = uv_buf_init(c->req, (unsigned)c->req_len);
    c->wr.data = c;
    int rc = uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, s_on_write);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->tcp, s_alloc, s_on_read);
    if (rc < 0)
        s_finish(c, rc, "write failed");
}

static int s_hdr_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

int sim_http_start(uv_loop_t *loop, const struct sim_http_opts *o, sim_xfer_data_fn data,
                   sim_xfer_done_fn done, void *arg, sim_http_t **out)
{
    if (o->path == NULL || o->path[0] != '/' || !s_hdr_ok(o->path) ||
        (o->user_agent && !s_hdr_ok(o->user_agent)) || data == NULL || done == NULL)
        return -EINVAL;
    struct sim_http *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &o->server_be, host, sizeof host);
    int n = snprintf(c->req, sizeof c->req,
                     "GET %s HTTP/1.1\r\nHost: %s:%u\r\n%s%s%sAccept: */*\r\n"
                     "Connection: close\r\n\r\n",
                     o->path, host, (unsigned)o->port, o->user_agent ? "User-Agent: " : "",
                     o->user_agent ? o->user_agent : "", o->user_agent ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof c->req) {
        free(c);
        return -ENAMETOOLONG;
    }
    c->req_len = (size_t)n;
    c->data = data, c->done = done, c->arg = arg;
    c->timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    http_parser_settings_init(&c->ps);
    c->ps.on_body = s_on_body;
    c->ps.on_message_complete = s_on_complete;

    int rc = uv_tcp_init(loop, &c->tcp);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->tcp.data = c;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = o->local_be};
    struct sockaddr_in to = {
        .sin_family = AF_INET, .sin_addr.s_addr = o->server_be, .sin_port = htons(o->port)};
    rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&me, 0);
    c->conn.data = c;
    if (rc == 0)
        rc = uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)&to, s_on_connect);
    if (rc < 0) {
        s_close(c);
        return rc;
    }
    s_touch(c);
    *out = c;
    return 0;
}

void sim_http_cancel(sim_http_t **hp)
{
    if (hp == NULL || *hp == NULL)
        return;
    struct sim_http *c = *hp;
    *hp = NULL;
    if (!c->finished)
        s_close(c);
}

int sim_http_parse_url(const char *url, uint32_t *addr_be, uint16_t *port, const char **path)
{
    if (strncmp(url, "http://", 7) != 0)
        return -EINVAL;
    const char *h = url + 7, *e = h;
    while (*e && *e != '/' && *e != ':')
        e++;
    char host[INET_ADDRSTRLEN];
    size_t hl = (size_t)(e - h);
    if (hl == 0 || hl >= sizeof host)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1)
        return -EINVAL;
    unsigned long p = 80;
    if (*e == ':') {
        char *pe;
        p = strtoul(e + 1, &pe, 10);
        if (pe == e + 1 || p == 0 || p > 65535 || (*pe != '/' && *pe != '\0'))
            return -EINVAL;
        e = pe;
    }
    *addr_be = a.s_addr;
    *port = (uint16_t)p;
    *path = *e ? e : "/";
    return 0;
}
