/* httpd.c: the site agent's HTTP/1.1 server for device provisioning: GET and
 * HEAD of configurations and images through the file resolver (files.h),
 * one byte range, keep-alive and pipelining, PUT of device backups into the
 * per-device upload area. Parsing and every string rule live in http_req.c.
 *
 * Design, for speed on one loop thread:
 *   - connections are raw non-blocking sockets, not uv_tcp_t: libuv streams
 *     cannot sendfile(2), always read until EAGAIN into buffers they ask
 *     for, and libuv allows no second watcher on a socket a stream owns. So
 *     the listeners are our own sockets on uv_poll_t too (a uv_tcp_t
 *     listener can only accept into a uv_tcp_t; taking the fd back out
 *     costs a dup and a close per connection), and memory bodies go out
 *     with the head in one sendmsg rather than uv_write;
 *   - they sit in an edge-triggered epoll set of our own (EPOLLIN|EPOLLOUT|
 *     EPOLLET, registered once), and that epoll fd is the one thing the
 *     libuv loop watches (one uv_poll_t). Rejected: one uv_poll_t per
 *     connection. libuv polls level-triggered, so a response that blocks
 *     must switch the mask to writable and back, and each switch is two
 *     epoll_ctl calls inside libuv (measured: ~4 per 4 MiB response, when
 *     nginx, edge-triggered, makes none);
 *   - a keep-alive request then costs: read, files_open (openat2 + fstat),
 *     one sendmsg (head and a memory body together, or the head with
 *     MSG_MORE), sendfile for a file body, close; epoll_wait is shared by
 *     every connection that became ready in the same turn;
 *   - "drained" is remembered (rd_ready, wr_ready) the way edge-triggered
 *     epoll needs: a read shorter than the buffer means nothing is left,
 *     EAGAIN on a write waits for the next EPOLLOUT edge;
 *   - one struct conn per connection with its input buffer and response head
 *     inline; conns are recycled through a free list, so the hot path does
 *     not allocate (files.c allocates for rendered templates);
 *   - a connection sends at most HTTPD_WRITE_BUDGET and reads at most
 *     HTTPD_READ_BURST buffers per turn; the rest waits on the ready list,
 *     which a uv_idle_t drains next turn, so one big image, fast uploader or
 *     pipeliner cannot starve the others;
 *   - timeouts are deadlines in the conn checked by one 1 s sweep timer:
 *     O(connections) per second; a uv_timer per conn would cost a heap
 *     update per request.
 *
 * Invariants: a conn is in exactly one of the states below; while a
 * response is being written its input is not read (pipelined requests wait
 * in the buffer or in the kernel); a closed conn's fd is closed at once
 * (leaving the epoll set) but its struct is only recycled by s_reap() at the
 * end of the callback that closed it, because an epoll batch may still name
 * it; a request that ends (answered, failed or cut off) releases its file
 * and upload in s_request_end, exactly once; libuv handles (listeners, the
 * epoll watcher, the idle and sweep handles) are freed in close callbacks
 * and the struct httpd with the last of them.
 */
#define _GNU_SOURCE
#include "httpd.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "hash.h"
#include "http_req.h"
#include "log.h"
#include "provision.h"
#include "services.h"
#include "util.h"

#define HTTPD_IN_BUF 16384
#define HTTPD_WRITE_BUDGET (8u << 20) /* bytes sent per connection per loop turn */
#define HTTPD_READ_BURST 64           /* reads (of HTTPD_IN_BUF) per connection per turn */
#define HTTPD_ACCEPT_BATCH 64
#define HTTPD_FREE_KEEP 64
#define HTTPD_LINGER_BYTES (1u << 20)
#define HTTPD_STATS_EVERY_MS 60000
#define HTTPD_ALLOW "GET, HEAD, PUT"
#define HTTPD_UPLOAD_NAME_MAX 200
#define HTTPD_STALE_TMP_S 600
#define HTTPD_EVENT_SLOTS 256
#define HTTPD_EPOLL_BATCH 128

enum cstate {
    C_READ,   /* reading a request head or an upload body */
    C_WRITE,  /* sending a response (or a 100 Continue) */
    C_LINGER, /* response sent, write side shut: draining input until EOF */
    C_CLOSED, /* fd closed; the struct waits for s_reap */
};

struct upload {
    int fd;
    uint64_t size, allowed;
    int existed;
    hash_ctx_t *hash;
    uint8_t mac[6];
    char name[HTTPD_UPLOAD_NAME_MAX + 1];
    char tmp[PATH_MAX];
    char path[PATH_MAX];
};

/* The last http.get event of one (device or peer, path, status): repeats of
 * it within HTTPD_EVENT_WINDOW_MS are counted, not journaled. */
struct ev_slot {
    uint64_t key;
    uint64_t until;
    uint32_t repeats;
};

struct httpd;

#define HTTPD_UA_MAX 255 /* User-Agent bytes given to the profiles */

struct conn {
    struct conn *prev, *next;   /* live list; `next` links the dead and free lists */
    struct conn *rprev, *rnext; /* ready list (more to do next turn) */
    int in_ready;
    struct httpd *h;
    int fd;
    enum cstate state;
    int rd_ready; /* the socket may hold unread bytes */
    int wr_ready; /* the socket may take more bytes */
    int rdhup;    /* the peer's FIN (or an error) was seen: reads never block again */
    int linger;   /* when closing after the response, drain input first */
    uint64_t id;
    uint64_t deadline; /* uv_now() ms */
    uint32_t peer_be;  /* IPv4 peer (network order), 0 for IPv6 */
    uint32_t local_be; /* our IPv4 address on this connection, 0 unknown ({{server_ip}}) */
    char peer[INET6_ADDRSTRLEN];
    size_t in_off, in_len;
    uint64_t lingered;
    /* the current request */
    int in_req; /* a request has begun and has not ended */
    int method;
    int status; /* decided response status, 0 none yet */
    int close_after;
    int interim; /* the output is "100 Continue": back to the body after it */
    int held;    /* a PUT's answer waits for the commit of its backup (s_after_commit) */
    uint64_t t0;
    uint64_t body_len; /* planned body bytes */
    uint64_t sent_body;
    int has_mac;
    uint8_t mac[6];
    char name[FILES_NAME_MAX + 1];
    struct files_src src;
    int has_src;
    uint64_t body_pos, body_end;
    struct upload *up;
    /* output */
    size_t head_len, head_off;
    char head[HTTP_HEAD_MAX + 128];
    struct http_req req;
    char in[HTTPD_IN_BUF];
};

struct listener {
    struct httpd *h;
    uv_poll_t poll;
    int fd;
    int active;
    char addr[64];
};

struct httpd {
    struct agent *a;
    struct listener lis[SVC_MAX_LISTEN];
    size_t n_lis;
    uv_timer_t sweep;
    int sweep_open;
    int epfd;     /* the connections' edge-triggered epoll set */
    uv_poll_t ep; /* the loop's watch on epfd */
    int ep_open;
    uv_idle_t idle; /* runs while the ready list is not empty */
    int idle_open;
    struct conn *conns; /* live (not closed) connections */
    struct conn *ready, *ready_tail;
    struct conn *dead; /* closed in this callback; recycled by s_reap */
    struct conn *free; /* recycled, not initialised */
    size_t n_conns, n_free, max_conns;
    size_t n_handles; /* uv handles not yet closed (listeners, ep, idle, timer) */
    uint64_t next_id;
    int accept_paused;
    int stopping;
    time_t date_sec;
    char date[40];
    uint64_t *inventory; /* sorted MACs (48-bit values) of the site's devices */
    size_t n_inventory;
    uint64_t stats_logged_ms;
    uint64_t stats_logged_requests;
    size_t n_held; /* conns with `held` set */
    struct httpd_stats st;
    struct ev_slot evs[HTTPD_EVENT_SLOTS];
};

static void s_conn_run(struct conn *c);
static void s_conn_close(struct conn *c);
static void s_maybe_free(struct httpd *h);
static void s_reap(struct httpd *h);

/* ---- small helpers ---- */

static uint64_t s_now(const struct httpd *h)
{
    return uv_now(&h->a->loop);
}

static const char *s_date(struct httpd *h)
{
    time_t t = time(NULL);
    if (t != h->date_sec) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(h->date, sizeof h->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        h->date_sec = t;
    }
    return h->date;
}

static uint64_t s_mac_key(const uint8_t m[6])
{
    uint64_t v = 0;
    for (int i = 0; i < 6; i++)
        v = v << 8 | m[i];
    return v;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Is mac one of the site configuration's devices? O(log n). */
static int s_in_inventory(const struct httpd *h, const uint8_t mac[6])
{
    uint64_t k = s_mac_key(mac);
    return h->n_inventory > 0 &&
           bsearch(&k, h->inventory, h->n_inventory, sizeof k, s_cmp_u64) != NULL;
}

/* Records the request's name for logs and events (cut to fit). */
static void s_set_name(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    if (n >= sizeof c->name)
        n = sizeof c->name - 1;
    memcpy(c->name, s, n);
    c->name[n] = '\0';
}

static void s_on_idle(uv_idle_t *i);

/* c has more to do but used its share of this turn: it continues next
 * turn from the idle handle. */
static void s_ready_add(struct conn *c)
{
    struct httpd *h = c->h;
    if (c->in_ready)
        return;
    c->in_ready = 1;
    c->rnext = NULL;
    c->rprev = h->ready_tail;
    if (h->ready_tail)
        h->ready_tail->rnext = c;
    else
        h->ready = c;
    h->ready_tail = c;
    if (h->idle_open && !uv_is_active((uv_handle_t *)&h->idle))
        uv_idle_start(&h->idle, s_on_idle);
}

static void s_ready_del(struct conn *c)
{
    struct httpd *h = c->h;
    if (!c->in_ready)
        return;
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else
        h->ready = c->rnext;
    if (c->rnext)
        c->rnext->rprev = c->rprev;
    else
        h->ready_tail = c->rprev;
    c->rprev = c->rnext = NULL;
    c->in_ready = 0;
}

/* ---- responses ---- */

/* Prepares a response head (and, for errors, a short text body in the same
 * buffer) and switches to C_WRITE. */
static void s_respond(struct conn *c, struct http_resp *rs, const char *text_body)
{
    struct httpd *h = c->h;
    if (!c->in_req) { /* answered before a request began (garbage, 503) */
        c->in_req = 1;
        c->t0 = s_now(h);
    }
    rs->date = s_date(h);
    rs->keep_alive = !c->close_after;
    rs->http10 = c->req.http_minor == 0;
    size_t tl = text_body && c->method != HTTP_HEAD ? strlen(text_body) : 0;
    size_t n = http_resp_head(c->head, sizeof c->head - tl, rs);
    if (n == 0) { /* cannot happen with our fixed strings; never send a cut head */
        c->close_after = 1;
        n = (size_t)snprintf(c->head, sizeof c->head,
                             "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n");
        tl = 0;
        rs->status = 500;
    }
    memcpy(c->head + n, text_body ? text_body : "", tl);
    c->head_len = n + tl;
    c->head_off = 0;
    c->status = rs->status;
    c->state = C_WRITE;
    c->deadline = s_now(h) + HTTPD_IO_TIMEOUT_MS;
}

/* An error answer with a short text body. force_close: the connection ends
 * after it (and drains what the client still sends, so the answer is read
 * before the close, not lost to a reset). */
static void s_error(struct conn *c, int status, int force_close)
{
    char body[64];
    snprintf(body, sizeof body, "%d %s\n", status, http_reason(status));
    if (force_close || !c->req.keep_alive || c->h->stopping) {
        c->close_after = 1;
        c->linger = 1;
    }
    struct http_resp rs = {
        .status = status,
        .ctype = "text/plain",
        .length = strlen(body),
        .allow = status == 405 ? HTTPD_ALLOW : NULL,
    };
    s_respond(c, &rs, body);
}

/* ---- device identification ---- */

/* The asking device's MAC: from the file name, then the whole path, then the
 * User-Agent, then whoever holds the client address (DHCP leases). */
static int s_find_device(struct conn *c, const char *path, uint8_t mac[6])
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (http_find_mac(base, strlen(base), mac) || http_find_mac(path, strlen(path), mac) ||
        http_find_mac(c->req.ua, c->req.ua_len, mac))
        return 1;
    return c->peer_be != 0 && agent_mac_for_ip(c->h->a, c->peer_be, mac) == 1;
}

/* The request target as a cleaned name for files.h. 0, or the status to
 * answer. */
static int s_target_name(struct conn *c, char *out, size_t n)
{
    int rc = http_path_decode(c->req.url, c->req.url_len, out, n);
    if (rc == -ENAMETOOLONG)
        return 414;
    if (rc < 0)
        return 400;
    if (strcmp(out, "/") == 0)
        return 404; /* no index */
    if (files_clean(out) < 0)
        return 400; /* `..`, control bytes, too long */
    return 0;
}

/* ---- GET and HEAD ---- */

static void s_get(struct conn *c)
{
    struct httpd *h = c->h;
    c->close_after = !c->req.keep_alive || h->stopping;
    char path[HTTP_URL_MAX + 1];
    int st = s_target_name(c, path, sizeof path);
    if (st != 0) {
        s_set_name(c, c->req.url);
        s_error(c, st, 0);
        return;
    }
    s_set_name(c, path);
    c->has_mac = s_find_device(c, path, c->mac);
    if (c->has_mac) {
        /* the request is evidence for the device's profile (stage, version) */
        char ua[HTTPD_UA_MAX + 1];
        size_t ul = c->req.ua_len < HTTPD_UA_MAX ? c->req.ua_len : HTTPD_UA_MAX;
        if (ul > 0)
            memcpy(ua, c->req.ua, ul);
        ua[ul] = '\0';
        struct profile_evidence e = {.mac = c->mac, .file = path, .user_agent = ul ? ua : NULL};
        prov_observe(h->a, &e, 0, c->peer_be);
    }
    struct files_req frq = {.name = path,
                            .client_ip_be = c->peer_be,
                            .local_ip_be = c->local_be,
                            .mac = c->has_mac ? c->mac : NULL};
    int rc = files_open_req(h->a, &frq, &c->src);
    if (rc < 0) {
        st = rc == -ENOENT || rc == -ENOTDIR || rc == -EISDIR ? 404
             : rc == -EACCES                                  ? 403
             : rc == -EINVAL || rc == -ENAMETOOLONG           ? 400
             : rc == -ENOSYS                                  ? 503
                                                              : 500;
        if (st >= 500)
            log_warn("http.open_failed", "peer=%s error=\"%s\"", c->peer, strerror(-rc));
        s_error(c, st, 0);
        return;
    }
    c->has_src = 1;
    uint64_t size = c->src.size, first = 0, last = size ? size - 1 : 0;
    struct http_resp rs = {.status = 200, .ctype = http_content_type(path), .accept_ranges = 1};
    if (c->method == HTTP_GET && c->req.range_len > 0 && !c->req.if_range && !c->req.range_long) {
        switch (http_range_parse(c->req.range, c->req.range_len, size, &first, &last)) {
        case HTTP_RANGE_ONE:
            rs.status = 206;
            break;
        case HTTP_RANGE_UNSAT:
            files_src_close(&c->src);
            c->has_src = 0;
            rs.status = 416;
            rs.total = size;
            rs.length = 0;
            rs.ctype = NULL;
            s_respond(c, &rs, NULL);
            return;
        case HTTP_RANGE_NONE:
            first = 0;
            last = size ? size - 1 : 0;
            break;
        }
    }
    uint64_t len = size ? last - first + 1 : 0;
    rs.length = len;
    rs.first = first;
    rs.last = last;
    rs.total = size;
    c->body_len = len;
    if (c->method == HTTP_HEAD || len == 0) {
        files_src_close(&c->src);
        c->has_src = 0;
        c->body_pos = c->body_end = 0;
    } else {
        c->body_pos = first;
        c->body_end = first + len;
    }
    s_respond(c, &rs, NULL);
}

/* ---- PUT ---- */

/* Bytes in the device's upload area other than `name` and temporaries.
 * Temporaries older than HTTPD_STALE_TMP_S are left by a crash (a live
 * upload makes progress every HTTPD_IO_TIMEOUT_MS) and are removed here. */
static uint64_t s_area_used(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    uint64_t used = 0;
    struct dirent *de;
    struct stat st;
    time_t now = time(NULL);
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, name) == 0 || strcmp(de->d_name, ".") == 0 ||
            strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (de->d_name[0] != '.') {
            used += (uint64_t)st.st_size;
            continue;
        }
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".tmp") == 0 &&
            now - st.st_mtime > HTTPD_STALE_TMP_S)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
    return used;
}

static int s_put_body(void *arg, const char *p, size_t n)
{
    struct conn *c = arg;
    struct upload *up = c->up;
    if (up == NULL || up->size + n > up->allowed) {
        c->req.status = 413;
        return 1;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(up->fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            log_warn("http.upload_write", "peer=%s path=%s error=\"%s\"", c->peer, up->tmp,
                     strerror(w < 0 ? errno : EIO));
            c->req.status = w < 0 && (errno == ENOSPC || errno == EDQUOT) ? 413 : 500;
            return 1;
        }
        off += (size_t)w;
    }
    hash_update(up->hash, p, n);
    up->size += n;
    return 0;
}

static void s_upload_free(struct conn *c)
{
    struct upload *up = c->up;
    if (up == NULL)
        return;
    if (up->fd >= 0) {
        close(up->fd);
        unlink(up->tmp);
    }
    hash_destroy(&up->hash);
    free(up);
    c->up = NULL;
    http_req_set_body(&c->req, NULL, NULL);
}

/* The head of a PUT is in: decide whether to take the body. The stored name
 * is the last path component (/upload/<name>, Polycom's /<mac>-phone.cfg,
 * innovaphone's /<dir>/<mac>-<name>); the device is named by the path, the
 * User-Agent or its address, else 403. */
static void s_put_begin(struct conn *c)
{
    struct httpd *h = c->h;
    char path[HTTP_URL_MAX + 1];
    int st = s_target_name(c, path, sizeof path);
    s_set_name(c, st ? c->req.url : path);
    if (st != 0) {
        s_error(c, st, 1);
        return;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (base[0] == '.' || strlen(base) > HTTPD_UPLOAD_NAME_MAX) {
        s_error(c, 400, 1);
        return;
    }
    c->has_mac = s_find_device(c, path, c->mac);
    if (!c->has_mac) {
        log_info("http.upload_refused", "peer=%s path=%s reason=\"unknown device\"", c->peer,
                 c->name);
        s_error(c, 403, 1);
        return;
    }
    char dir[PATH_MAX];
    uint64_t cap = 0;
    int rc = files_upload_dir(h->a, c->mac, dir, sizeof dir, &cap);
    if (rc < 0) {
        log_warn("http.upload_dir", "peer=%s error=\"%s\"", c->peer, strerror(-rc));
        s_error(c, rc == -ENOSYS ? 503 : 500, 1);
        return;
    }
    uint64_t used = s_area_used(dir, base);
    uint64_t allowed = cap > used ? cap - used : 0;
    if (c->req.content_length != UINT64_MAX && c->req.content_length > allowed) {
        log_info("http.upload_refused", "peer=%s path=%s size=%llu allowed=%llu", c->peer, c->name,
                 (unsigned long long)c->req.content_length, (unsigned long long)allowed);
        s_error(c, 413, 1);
        return;
    }
    struct upload *up = calloc(1, sizeof *up);
    if (up == NULL || (up->hash = hash_new()) == NULL) {
        free(up);
        s_error(c, 500, 1);
        return;
    }
    up->fd = -1;
    up->allowed = allowed;
    memcpy(up->mac, c->mac, 6);
    memcpy(up->name, base, strlen(base) + 1); /* length checked above */
    int n1 = snprintf(up->path, sizeof up->path, "%s/%s", dir, base);
    int n2 =
        snprintf(up->tmp, sizeof up->tmp, "%s/.%s.%llu.tmp", dir, base, (unsigned long long)c->id);
    struct stat sb;
    up->existed = stat(up->path, &sb) == 0;
    if (n1 >= (int)sizeof up->path || n2 >= (int)sizeof up->tmp ||
        (up->fd = open(up->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640)) < 0) {
        log_warn("http.upload_open", "peer=%s path=%s error=\"%s\"", c->peer, up->tmp,
                 strerror(errno));
        hash_destroy(&up->hash);
        free(up);
        s_error(c, 500, 1);
        return;
    }
    c->up = up;
    http_req_set_body(&c->req, s_put_body, c);
    c->deadline = s_now(h) + HTTPD_IO_TIMEOUT_MS;
    if (c->req.expect_continue && c->req.has_body && c->req.http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        memcpy(c->head, cont, sizeof cont - 1);
        c->head_len = sizeof cont - 1;
        c->head_off = 0;
        c->interim = 1;
        c->state = C_WRITE;
    }
}

/* Journals the stored upload (up->path, up->size bytes, SHA-256 sum) as a
 * BackupUpload for the controller, in this turn's transaction: read back from
 * the file just written (the page cache; a body is not kept in memory while
 * it streams in). 0, -EMSGSIZE (larger than a backup may be) or <0. */
static int s_put_journal(struct conn *c, const char *macs, const uint8_t sum[HASH_LEN])
{
    struct upload *up = c->up;
    if (up->size > AGENT_BACKUP_MAX)
        return -EMSGSIZE;
    int fd = open(up->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    uint8_t *buf = malloc(up->size ? up->size : 1);
    size_t got = 0;
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0 && got < up->size) {
        ssize_t r = read(fd, buf + got, up->size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = r < 0 ? -errno : -EIO; /* shorter than written: replaced meanwhile */
        else
            got += (size_t)r;
    }
    close(fd);
    if (rc == 0)
        rc = agent_emit_backup(c->h->a, macs, up->name, buf, got, sum);
    free(buf);
    return rc;
}

static void s_put_finish(struct conn *c)
{
    struct httpd *h = c->h;
    struct upload *up = c->up;
    if (up == NULL) { /* cannot happen: s_put_begin answered already */
        s_error(c, 500, 1);
        return;
    }
    int rc = fsync(up->fd) < 0 ? -errno : 0;
    if (close(up->fd) < 0 && rc == 0)
        rc = -errno;
    up->fd = -1;
    if (rc == 0 && rename(up->tmp, up->path) < 0)
        rc = -errno;
    if (rc == 0)
        rc = util_fsync_dir_of(up->path);
    if (rc < 0) {
        unlink(up->tmp);
        log_warn("http.upload_store", "peer=%s path=%s error=\"%s\"", c->peer, up->path,
                 strerror(-rc));
        s_error(c, 500, 1);
        return;
    }
    uint8_t sum[HASH_LEN];
    char hex[HASH_HEX_LEN + 1], macs[18], q[300], detail[512];
    hash_final(up->hash, sum);
    util_hex(sum, HASH_LEN, hex);
    util_mac_format(up->mac, macs);
    snprintf(detail, sizeof detail, "name=%s size=%llu sha256=%s", log_quote(up->name, q, sizeof q),
             (unsigned long long)up->size, hex);
    rc = s_put_journal(c, macs, sum);
    if (rc == -EMSGSIZE) {
        /* kept here, but too big for one frame to the controller */
        log_warn("http.backup_too_large", "peer=%s mac=%s %s max=%u", c->peer, macs, detail,
                 AGENT_BACKUP_MAX);
        agent_emit_event(h->a, "backup.too_large", macs, detail);
    } else if (rc < 0) {
        /* not journaled: the device is told to try again */
        log_warn("http.backup_journal", "peer=%s mac=%s error=\"%s\"", c->peer, macs,
                 strerror(-rc));
        s_error(c, 500, 1);
        return;
    }
    if (agent_emit_event(h->a, "http.upload", macs, detail) == 0)
        h->st.events++;
    h->st.uploads++;
    h->st.upload_bytes += up->size;
    log_info("http.upload", "peer=%s mac=%s %s", c->peer, macs, detail);
    c->close_after = !c->req.keep_alive || h->stopping;
    struct http_resp rs = {.status = up->existed ? 204 : 201,
                           .length = up->existed ? UINT64_MAX : 0};
    s_respond(c, &rs, NULL);
    if (rc == 0) {
        /* "stored" only once the backup is durable: the answer leaves after
         * this turn's commit (agent_emit_backup asked for it this turn) */
        c->held = 1;
        h->n_held++;
    }
}

/* After each turn's commit: held PUT answers go out, or, when the commit
 * failed (the backup is not journaled), the connection is cut so the device
 * tries again. O(connections), only in turns after a PUT. */
static void s_after_commit(void *self)
{
    struct httpd *h = self;
    if (h->n_held == 0)
        return;
    int failed = agent_commit_failed(h->a);
    for (struct conn *c = h->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (!c->held)
            continue;
        c->held = 0;
        if (failed) {
            log_warn("http.backup_not_committed", "peer=%s path=%s", c->peer, c->name);
            s_conn_close(c);
        } else {
            s_conn_run(c);
        }
    }
    h->n_held = 0;
    s_reap(h);
}

/* ---- request dispatch ---- */

static void s_on_head(struct conn *c)
{
    c->method = c->req.method;
    switch (c->method) {
    case HTTP_GET:
    case HTTP_HEAD:
        if (c->req.has_body)
            s_error(c, 400, 1); /* a request body only for PUT */
        /* else: the request ends with the next byte fed; answered then */
        break;
    case HTTP_PUT:
        s_put_begin(c);
        break;
    default:
        s_error(c, 405, c->req.has_body);
        break;
    }
}

static void s_on_request(struct conn *c)
{
    if (c->method == HTTP_PUT)
        s_put_finish(c);
    else
        s_get(c);
}

/* Should this request's http.get event be journaled? Not when the same
 * client fetched the same name with the same outcome within the window (a
 * phone stuck in a fetch loop, wrk): the first one goes out, repeats are
 * counted and the next event that goes out says how many there were.
 * *repeats: that count. A direct-mapped table: a collision only costs an
 * extra event. */
static int s_event_due(struct httpd *h, const struct conn *c, int aborted, uint32_t *repeats)
{
    uint64_t k = 1469598103934665603ull; /* FNV-1a */
    const uint8_t *who = c->has_mac ? c->mac : (const uint8_t *)c->peer;
    size_t wl = c->has_mac ? 6 : strlen(c->peer);
    for (size_t i = 0; i < wl; i++)
        k = (k ^ who[i]) * 1099511628211ull;
    for (const char *p = c->name; *p; p++)
        k = (k ^ (uint8_t)*p) * 1099511628211ull;
    k = (k ^ (uint64_t)c->status) * 1099511628211ull;
    k = (k ^ (uint64_t)aborted) * 1099511628211ull;
    struct ev_slot *e = &h->evs[k % HTTPD_EVENT_SLOTS];
    uint64_t now = s_now(h);
    if (e->key == k && now < e->until) {
        e->repeats++;
        h->st.events_suppressed++;
        return 0;
    }
    *repeats = e->key == k ? e->repeats : 0;
    e->key = k;
    e->until = now + HTTPD_EVENT_WINDOW_MS;
    e->repeats = 0;
    return 1;
}

/* The current request is over: answered, failed or cut off (aborted).
 * Counts it, emits its event when it deserves one, releases its file and
 * upload, readies the conn for the next request. */
static void s_request_end(struct conn *c, int aborted)
{
    struct httpd *h = c->h;
    int big = c->method == HTTP_GET && c->body_len > HTTPD_EVENT_BYTES;
    int known = c->has_mac && s_in_inventory(h, c->mac);
    uint32_t repeats = 0;
    int event = c->status != 0 && c->method != HTTP_PUT && (big || known) &&
                s_event_due(h, c, aborted, &repeats);
    if (c->status != 0) {
        h->st.requests++;
        int cls = c->status / 100;
        h->st.status[cls >= 2 && cls <= 5 ? cls : 1]++;
    }
    if (c->status != 0 && (event || log_get_level() <= LOG_LEVEL_DEBUG)) {
        uint64_t ms = s_now(h) - c->t0;
        char q[300], macs[18] = "";
        if (c->has_mac)
            util_mac_format(c->mac, macs);
        log_quote(c->name, q, sizeof q);
        log_debug("http.request", "peer=%s method=%s path=%s status=%d bytes=%llu ms=%llu mac=%s%s",
                  c->peer, http_method_str((enum http_method)c->method), q, c->status,
                  (unsigned long long)c->sent_body, (unsigned long long)ms, macs,
                  aborted ? " aborted=1" : "");
        if (event) {
            char detail[512], rep[32] = "";
            if (repeats > 0)
                snprintf(rep, sizeof rep, " repeats=%u", repeats);
            snprintf(detail, sizeof detail, "path=%s status=%d bytes=%llu ms=%llu%s%s", q,
                     c->status, (unsigned long long)c->sent_body, (unsigned long long)ms,
                     aborted ? " aborted=1" : "", rep);
            if (agent_emit_event(h->a, "http.get", macs, detail) == 0)
                h->st.events++;
        }
    }
    if (c->has_mac && !aborted && c->method == HTTP_GET && c->status == 200 &&
        c->sent_body == c->body_len)
        prov_transfer_done(h->a, c->mac, c->name, c->sent_body);
    if (c->has_src) {
        files_src_close(&c->src);
        c->has_src = 0;
    }
    s_upload_free(c);
    c->req.started = 0;
    c->in_req = 0;
    c->status = 0;
    c->method = 0;
    c->has_mac = 0;
    c->body_len = c->sent_body = 0;
    c->body_pos = c->body_end = 0;
    c->name[0] = '\0';
}

/* ---- output ---- */

/* Sends what is pending. 0 all sent, -EAGAIN the socket is full (wait for
 * EPOLLOUT), -EINPROGRESS this turn's budget is used (continue next turn),
 * other <0: the connection is dead. */
static int s_flush(struct conn *c)
{
    struct httpd *h = c->h;
    uint64_t budget = HTTPD_WRITE_BUDGET;
    for (;;) {
        ssize_t n;
        if (c->head_off < c->head_len) {
            struct iovec iov[2];
            struct msghdr mh;
            memset(&mh, 0, sizeof mh);
            iov[0].iov_base = c->head + c->head_off;
            iov[0].iov_len = c->head_len - c->head_off;
            mh.msg_iov = iov;
            mh.msg_iovlen = 1;
            int flags = MSG_NOSIGNAL;
            if (c->body_pos < c->body_end) {
                if (c->src.fd >= 0) {
                    flags |= MSG_MORE; /* sendfile follows at once */
                } else {
                    uint64_t bl = c->body_end - c->body_pos;
                    iov[1].iov_base = c->src.data + c->body_pos;
                    iov[1].iov_len = bl > budget ? budget : bl;
                    mh.msg_iovlen = 2;
                }
            }
            n = sendmsg(c->fd, &mh, flags);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    c->wr_ready = 0;
                    return -EAGAIN;
                }
                return -errno;
            }
            size_t hl = c->head_len - c->head_off;
            if ((size_t)n <= hl) {
                c->head_off += (size_t)n;
            } else {
                c->head_off = c->head_len;
                c->body_pos += (uint64_t)n - hl;
                c->sent_body += (uint64_t)n - hl;
                budget -= (uint64_t)n - hl;
            }
        } else {
            if (c->body_pos >= c->body_end)
                return 0;
            if (budget == 0)
                return -EINPROGRESS;
            uint64_t want = c->body_end - c->body_pos;
            if (want > budget)
                want = budget;
            if (c->src.fd >= 0) {
                off_t off = (off_t)c->body_pos;
                n = sendfile(c->fd, c->src.fd, &off, (size_t)want);
            } else {
                n = send(c->fd, c->src.data + c->body_pos, (size_t)want, MSG_NOSIGNAL);
            }
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    c->wr_ready = 0;
                    return -EAGAIN;
                }
                return -errno;
            }
            if (n == 0)
                return -EIO; /* the file shrank under us: the length is a lie now */
            c->body_pos += (uint64_t)n;
            c->sent_body += (uint64_t)n;
            budget -= (uint64_t)n;
        }
        h->st.bytes_out += (uint64_t)n;
        c->deadline = s_now(h) + HTTPD_IO_TIMEOUT_MS;
    }
}

/* The response (or 100 Continue) has left. */
static void s_response_sent(struct conn *c)
{
    struct httpd *h = c->h;
    c->head_len = c->head_off = 0;
    if (c->interim) {
        c->interim = 0;
        c->state = C_READ;
        return;
    }
    s_request_end(c, 0);
    if (c->close_after) {
        if (!c->linger) {
            s_conn_close(c);
            return;
        }
        shutdown(c->fd, SHUT_WR);
        c->state = C_LINGER;
        c->lingered = 0;
        c->deadline = s_now(h) + HTTPD_LINGER_MS;
        return;
    }
    c->state = C_READ;
    c->deadline = s_now(h) + HTTPD_KEEPALIVE_MS;
}

/* ---- the connection state machine ---- */

static void s_conn_run(struct conn *c)
{
    struct httpd *h = c->h;
    int reads = 0;
    for (;;) {
        switch (c->state) {
        case C_CLOSED:
            return;
        case C_WRITE: {
            if (!c->wr_ready || c->held)
                return; /* the next EPOLLOUT edge (or the commit) brings us back */
            int rc = s_flush(c);
            if (rc == -EAGAIN)
                return;
            if (rc == -EINPROGRESS) {
                s_ready_add(c);
                return;
            }
            if (rc < 0) {
                log_debug("http.send_failed", "peer=%s error=\"%s\"", c->peer, strerror(-rc));
                s_conn_close(c);
                return;
            }
            s_response_sent(c);
            continue;
        }
        case C_LINGER: {
            if (!c->rd_ready)
                return;
            char sink[4096];
            ssize_t n = read(c->fd, sink, sizeof sink);
            if (n > 0) {
                c->lingered += (uint64_t)n;
                if (c->lingered <= HTTPD_LINGER_BYTES)
                    continue;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                c->rd_ready = 0;
                return;
            }
            s_conn_close(c); /* EOF, error, or the client will not stop */
            return;
        }
        case C_READ:
            break;
        }
        /* C_READ: parse what is buffered, else read */
        if (c->in_off < c->in_len) {
            size_t used = 0;
            enum http_req_event ev =
                http_req_feed(&c->req, c->in + c->in_off, c->in_len - c->in_off, &used);
            c->in_off += used;
            if (c->req.started && !c->in_req) { /* a new request: its head has 10 s */
                c->in_req = 1;
                c->close_after = c->linger = 0;
                c->t0 = s_now(h);
                c->deadline = c->t0 + HTTPD_HEADER_TIMEOUT_MS;
            }
            switch (ev) {
            case HTTP_REQ_MORE:
                break;
            case HTTP_REQ_HEADERS:
                c->deadline = s_now(h) + HTTPD_IO_TIMEOUT_MS;
                s_on_head(c);
                continue;
            case HTTP_REQ_DONE:
                s_on_request(c);
                continue;
            case HTTP_REQ_ERROR:
                if (c->method == 0)
                    c->method = c->req.method;
                if (c->name[0] == '\0')
                    s_set_name(c, c->req.url);
                s_error(c, c->req.status ? c->req.status : 400, 1);
                continue;
            }
            if (c->in_off < c->in_len)
                continue;
        }
        c->in_off = c->in_len = 0;
        if (!c->rd_ready)
            return; /* the next EPOLLIN edge brings us back */
        if (++reads > HTTPD_READ_BURST) {
            s_ready_add(c); /* a fast uploader or a pipeliner: others first */
            return;
        }
        ssize_t n = read(c->fd, c->in, sizeof c->in);
        if (n > 0) {
            c->in_len = (size_t)n;
            if ((size_t)n < sizeof c->in && !c->rdhup)
                c->rd_ready = 0; /* drained: the next EPOLLIN edge says when there is more */
            if (c->up != NULL)
                c->deadline = s_now(h) + HTTPD_IO_TIMEOUT_MS;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->rd_ready = 0;
            return;
        }
        /* EOF or error: nobody is left to answer */
        s_conn_close(c);
        return;
    }
}

/* Recycles the conns closed during this callback (see the invariants). */
static void s_reap(struct httpd *h)
{
    while (h->dead) {
        struct conn *c = h->dead;
        h->dead = c->next;
        if (!h->stopping && h->n_free < HTTPD_FREE_KEEP) {
            c->next = h->free;
            h->free = c;
            h->n_free++;
        } else {
            free(c);
        }
    }
}

/* Some connections became ready: one batch of edges, each conn run once. */
static void s_on_epoll(uv_poll_t *p, int status, int events)
{
    struct httpd *h = p->data;
    (void)events;
    if (status < 0 || h->stopping)
        return;
    struct epoll_event evs[HTTPD_EPOLL_BATCH];
    int n = epoll_wait(h->epfd, evs, HTTPD_EPOLL_BATCH, 0);
    for (int i = 0; i < n; i++) {
        struct conn *c = evs[i].data.ptr;
        if (c->state == C_CLOSED)
            continue;
        uint32_t e = evs[i].events;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            c->rd_ready = 1;
        if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            c->rdhup = 1; /* that edge is not coming again: keep reading to the EOF */
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            c->wr_ready = 1;
        if (!c->in_ready) /* else it runs from the ready list */
            s_conn_run(c);
    }
    s_reap(h);
}

/* Connections that used their share last turn get another. */
static void s_on_idle(uv_idle_t *i)
{
    struct httpd *h = i->data;
    struct conn *c = h->ready, *last = h->ready_tail;
    while (c != NULL) {
        struct conn *next = c->rnext;
        int end = c == last; /* conns re-added now wait for the next turn */
        s_ready_del(c);
        s_conn_run(c);
        if (end)
            break;
        c = next;
    }
    if (h->ready == NULL)
        uv_idle_stop(&h->idle);
    s_reap(h);
}

/* ---- connections ---- */

static void s_accept_resume(struct httpd *h);

static void s_conn_close(struct conn *c)
{
    struct httpd *h = c->h;
    if (c->state == C_CLOSED)
        return;
    if (c->in_req || c->status != 0 || c->has_src || c->up != NULL)
        s_request_end(c, 1);
    s_ready_del(c);
    if (c->held) {
        c->held = 0;
        h->n_held--;
    }
    c->state = C_CLOSED;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = h->dead;
    h->dead = c;
    h->n_conns--;
    if (h->accept_paused)
        s_accept_resume(h);
}

static struct conn *s_conn_new(struct httpd *h, int fd, const struct sockaddr_storage *ss)
{
    struct conn *c = h->free;
    if (c != NULL) {
        h->free = c->next;
        h->n_free--;
    } else if ((c = malloc(sizeof *c)) == NULL) {
        return NULL;
    }
    memset(c, 0, offsetof(struct conn, req));
    http_req_init(&c->req);
    c->h = h;
    c->fd = fd;
    c->src.fd = -1;
    c->id = ++h->next_id;
    c->wr_ready = 1;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        c->peer_be = sin->sin_addr.s_addr;
        inet_ntop(AF_INET, &sin->sin_addr, c->peer, sizeof c->peer);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            memcpy(&c->peer_be, s6->sin6_addr.s6_addr + 12, 4);
        inet_ntop(AF_INET6, &s6->sin6_addr, c->peer, sizeof c->peer);
    } else {
        snprintf(c->peer, sizeof c->peer, "?");
    }
    struct sockaddr_storage me;
    socklen_t ml = sizeof me;
    if (getsockname(fd, (struct sockaddr *)&me, &ml) == 0) {
        if (me.ss_family == AF_INET)
            c->local_be = ((const struct sockaddr_in *)&me)->sin_addr.s_addr;
        else if (me.ss_family == AF_INET6 &&
                 IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)&me)->sin6_addr))
            memcpy(&c->local_be, ((const struct sockaddr_in6 *)&me)->sin6_addr.s6_addr + 12, 4);
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        log_warn("http.epoll_add", "peer=%s error=\"%s\"", c->peer, strerror(errno));
        c->next = h->free;
        h->free = c;
        h->n_free++;
        return NULL;
    }
    c->state = C_READ;
    c->deadline = s_now(h) + HTTPD_HEADER_TIMEOUT_MS;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    h->st.conns++;
    return c;
}

/* ---- listening ---- */

static void s_accept_pause(struct httpd *h)
{
    for (size_t i = 0; i < h->n_lis; i++)
        if (h->lis[i].active)
            uv_poll_stop(&h->lis[i].poll);
    h->accept_paused = 1;
}

static void s_on_accept(uv_poll_t *p, int status, int events);

static void s_accept_resume(struct httpd *h)
{
    if (h->stopping)
        return;
    h->accept_paused = 0;
    for (size_t i = 0; i < h->n_lis; i++)
        if (h->lis[i].active)
            uv_poll_start(&h->lis[i].poll, UV_READABLE, s_on_accept);
}

static void s_accept_batch(struct listener *l)
{
    struct httpd *h = l->h;
    for (int i = 0; i < HTTPD_ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: stop accepting until a connection closes
                 * (or the next sweep), instead of spinning on a ready listener */
                log_warn("http.accept_paused", "listen=%s error=\"%s\" conns=%zu", l->addr,
                         strerror(errno), h->n_conns);
                s_accept_pause(h);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log_warn("http.accept_failed", "listen=%s error=\"%s\"", l->addr, strerror(errno));
            }
            return;
        }
        if (h->n_conns >= h->max_conns + HTTPD_OVERFLOW_CONNS) {
            h->st.rejected++;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = s_conn_new(h, fd, &ss);
        if (c == NULL) {
            close(fd);
            continue;
        }
        if (h->n_conns > h->max_conns) {
            h->st.rejected++;
            c->in_req = 1;
            c->t0 = s_now(h);
            s_set_name(c, "-");
            log_debug("http.full", "peer=%s conns=%zu max=%zu", c->peer, h->n_conns, h->max_conns);
            s_error(c, 503, 1);
            s_conn_run(c);
        }
    }
}

static void s_on_accept(uv_poll_t *p, int status, int events)
{
    struct listener *l = p->data;
    (void)events;
    if (status < 0 || l->h->stopping)
        return;
    s_accept_batch(l);
    s_reap(l->h);
}

/* ADDR:PORT, [V6ADDR]:PORT. 0 or -EINVAL. */
static int s_parse_listen(const char *s, struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return -EINVAL;
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host)
        return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    int64_t port;
    if (util_parse_i64(colon + 1, 1, 65535, &port) < 0)
        return -EINVAL;
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0 ? 0 : -EINVAL;
    }
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : -EINVAL;
}

static void s_on_listener_closed(uv_handle_t *hd)
{
    struct listener *l = hd->data;
    struct httpd *h = l->h;
    close(l->fd);
    l->fd = -1;
    h->n_handles--;
    s_maybe_free(h);
}

static int s_listen(struct httpd *h, const char *spec)
{
    struct sockaddr_storage ss;
    struct listener *l = &h->lis[h->n_lis];
    snprintf(l->addr, sizeof l->addr, "%s", spec);
    l->h = h;
    l->fd = -1;
    if (s_parse_listen(spec, &ss) < 0) {
        log_error("http.listen", "addr=%s error=\"not ADDR:PORT or [V6ADDR]:PORT\"", spec);
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, rc = 0;
    if (fd < 0)
        rc = -errno;
    else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
             (ss.ss_family == AF_INET6 &&
              setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
             bind(fd, (struct sockaddr *)&ss,
                  ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in)) < 0 ||
             listen(fd, 511) < 0)
        rc = -errno;
    if (rc == 0 && (rc = uv_poll_init_socket(&h->a->loop, &l->poll, fd)) == 0) {
        l->poll.data = l;
        l->fd = fd;
        l->active = 1;
        h->n_lis++;
        if (h->a->http_port == 0)
            h->a->http_port = ntohs(ss.ss_family == AF_INET6
                                        ? ((const struct sockaddr_in6 *)&ss)->sin6_port
                                        : ((const struct sockaddr_in *)&ss)->sin_port);
        h->n_handles++;
        rc = uv_poll_start(&l->poll, UV_READABLE, s_on_accept);
    }
    if (rc < 0) {
        if (fd >= 0 && !l->active)
            close(fd);
        log_error("http.listen", "addr=%s error=\"%s\"", spec, strerror(-rc));
    }
    return rc;
}

/* ---- the service ---- */

static void s_log_stats(struct httpd *h, const char *ev)
{
    const struct httpd_stats *s = &h->st;
    log_info(ev,
             "conns=%llu open=%zu rejected=%llu timeouts=%llu requests=%llu s2xx=%llu "
             "s4xx=%llu s5xx=%llu bytes_out=%llu uploads=%llu events=%llu "
             "events_suppressed=%llu",
             (unsigned long long)s->conns, h->n_conns, (unsigned long long)s->rejected,
             (unsigned long long)s->timeouts, (unsigned long long)s->requests,
             (unsigned long long)s->status[2], (unsigned long long)s->status[4],
             (unsigned long long)s->status[5], (unsigned long long)s->bytes_out,
             (unsigned long long)s->uploads, (unsigned long long)s->events,
             (unsigned long long)s->events_suppressed);
}

static void s_on_sweep(uv_timer_t *t)
{
    struct httpd *h = t->data;
    uint64_t now = s_now(h);
    for (struct conn *c = h->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (now >= c->deadline) {
            h->st.timeouts++;
            log_debug("http.timeout", "peer=%s state=%d in_request=%d", c->peer, (int)c->state,
                      c->in_req);
            s_conn_close(c);
        }
    }
    s_reap(h);
    if (h->accept_paused)
        s_accept_resume(h);
    if (now - h->stats_logged_ms >= HTTPD_STATS_EVERY_MS) {
        if (h->st.requests != h->stats_logged_requests)
            s_log_stats(h, "http.stats");
        h->stats_logged_ms = now;
        h->stats_logged_requests = h->st.requests;
    }
}

static void s_on_config(void *self, const Firmfleet__SiteConfig *sc)
{
    struct httpd *h = self;
    uint64_t *inv = NULL;
    size_t n = 0;
    if (sc != NULL && sc->n_devices > 0 && (inv = malloc(sc->n_devices * sizeof *inv)) != NULL) {
        for (size_t i = 0; i < sc->n_devices; i++) {
            uint8_t m[6];
            if (sc->devices[i]->mac && util_mac_parse(sc->devices[i]->mac, m) == 0)
                inv[n++] = s_mac_key(m);
        }
        qsort(inv, n, sizeof *inv, s_cmp_u64);
    }
    free(h->inventory);
    h->inventory = inv;
    h->n_inventory = n;
}

static void s_maybe_free(struct httpd *h)
{
    if (!h->stopping || h->n_handles > 0)
        return;
    while (h->free) {
        struct conn *c = h->free;
        h->free = c->next;
        free(c);
    }
    free(h->inventory);
    free(h);
}

/* The close callback of the sweep timer and the idle handle. */
static void s_on_handle_closed(uv_handle_t *hd)
{
    struct httpd *h = hd->data;
    h->n_handles--;
    s_maybe_free(h);
}

static void s_on_ep_closed(uv_handle_t *hd)
{
    struct httpd *h = hd->data;
    close(h->epfd);
    h->epfd = -1;
    h->n_handles--;
    s_maybe_free(h);
}

/* Closes the handles httpd_start made (listeners go in s_stop). */
static void s_close_core(struct httpd *h)
{
    if (h->sweep_open) {
        h->sweep_open = 0;
        uv_close((uv_handle_t *)&h->sweep, s_on_handle_closed);
    }
    if (h->idle_open) {
        h->idle_open = 0;
        uv_close((uv_handle_t *)&h->idle, s_on_handle_closed);
    }
    if (h->ep_open) {
        h->ep_open = 0;
        uv_close((uv_handle_t *)&h->ep, s_on_ep_closed);
    } else if (h->epfd >= 0) {
        close(h->epfd);
        h->epfd = -1;
    }
}

static void s_stop(void *self)
{
    struct httpd *h = self;
    if (h->stopping)
        return;
    h->stopping = 1;
    for (size_t i = 0; i < h->n_lis; i++)
        if (h->lis[i].active) {
            h->lis[i].active = 0;
            uv_close((uv_handle_t *)&h->lis[i].poll, s_on_listener_closed);
        }
    while (h->conns)
        s_conn_close(h->conns); /* transfers in flight are cut off */
    s_reap(h);
    s_close_core(h);
    s_log_stats(h, "http.stop");
    /* the last close callback frees h (s_maybe_free) */
}

int httpd_get_stats(struct agent *a, struct httpd_stats *out)
{
    for (size_t i = 0; i < a->n_svc; i++)
        if (a->svc[i].stop == s_stop) {
            *out = ((struct httpd *)a->svc[i].self)->st;
            return 0;
        }
    return -ENOENT;
}

static size_t s_max_conns(void)
{
    struct rlimit rl;
    uint64_t soft = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        soft = rl.rlim_cur == RLIM_INFINITY ? (uint64_t)HTTPD_CONN_CAP * 4 + 128 : rl.rlim_cur;
    /* each connection may hold a socket and a file; leave room for the
     * journal, ZeroMQ, DHCP and TFTP (TFTP transfers hold files too) */
    uint64_t m = soft > 128 ? (soft - 128) / 4 : 0;
    if (m < 8)
        m = 8;
    if (m > HTTPD_CONN_CAP)
        m = HTTPD_CONN_CAP;
    return (size_t)m;
}

int httpd_start(struct agent *a, const struct svc_opts *o)
{
    if (o->n_http == 0)
        return 0;
    if (hash_init() < 0) {
        log_error("http.start", "error=\"libsodium init failed\"");
        return -EIO;
    }
    struct httpd *h = calloc(1, sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    h->a = a;
    h->max_conns = s_max_conns();
    h->stats_logged_ms = uv_now(&a->loop);
    uv_timer_init(&a->loop, &h->sweep);
    h->sweep.data = h;
    h->sweep_open = 1;
    h->n_handles = 1;
    uv_idle_init(&a->loop, &h->idle);
    h->idle.data = h;
    h->idle_open = 1;
    h->n_handles++;
    int rc = 0;
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (h->epfd < 0)
        rc = -errno;
    else if ((rc = uv_poll_init(&a->loop, &h->ep, h->epfd)) == 0) {
        h->ep.data = h;
        h->ep_open = 1;
        h->n_handles++;
    }
    struct agent_service svc = {.name = "http",
                                .self = h,
                                .on_config = s_on_config,
                                .after_commit = s_after_commit,
                                .stop = s_stop};
    if (rc == 0)
        rc = agent_add_service(a, &svc);
    if (rc < 0) {
        /* not registered: close what we made; h goes in the last callback */
        log_error("http.start", "error=\"%s\"", strerror(-rc));
        h->stopping = 1;
        s_close_core(h);
        return rc;
    }
    /* from here on, a failure is cleaned up by agent_stop -> s_stop */
    uv_timer_start(&h->sweep, s_on_sweep, 1000, 1000);
    uv_poll_start(&h->ep, UV_READABLE, s_on_epoll);
    char list[SVC_MAX_LISTEN * 64] = "";
    size_t used = 0;
    for (size_t i = 0; i < o->n_http; i++) {
        if ((rc = s_listen(h, o->http_listen[i])) < 0)
            return rc;
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? "," : "",
                                 h->lis[h->n_lis - 1].addr);
        if (used >= sizeof list)
            used = sizeof list - 1;
    }
    log_info("http.start", "listen=%s max_conns=%zu header_timeout_ms=%d keepalive_ms=%d", list,
             h->max_conns, HTTPD_HEADER_TIMEOUT_MS, HTTPD_KEEPALIVE_MS);
    return 0;
}
