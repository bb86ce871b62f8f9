/* cli_cmd.c: the firmfleet commands (see cli_cmd.h).
 *
 * Invariants:
 *   - nothing is sent to the controller before every local precondition of
 *     the command holds (files readable and regular, credential path
 *     writable and free unless --force), so a local mistake never leaves a
 *     half-done change behind;
 *   - a firmware file is opened once: it is hashed and uploaded from the same
 *     descriptor, and the controller checks the upload against that hash;
 *   - the agent's secret key is written only to the credential file (mode
 *     0600, via a temporary file and link/rename) and never printed; our
 *     copies are wiped;
 *   - options the controller does not know (--out, --force, --from) stay here;
 *   - a template body is read whole (at most 1 MiB) before anything is sent;
 *   - backup get writes a backup's bytes only after checking them against
 *     the SHA-256 the controller stored with them;
 *   - a profile file is read whole (at most 256 KiB) and must be JSON, and a
 *     rollout's --devices file must hold only well-formed MACs, before
 *     anything is sent; the MACs go as the "devices" option, comma-joined;
 *   - an image signing key (key generate) is made and used here only: NAME.key
 *     is written mode 0600 and never sent; firmware add --sign-key reads it
 *     before anything is sent, signs each file's SHA-256, size and name
 *     (lib/sign.h) from the same hash that is uploaded, sends signatures and
 *     the public key, and wipes the secret key; profile add --sign-key signs
 *     the very bytes it sends the same way;
 *   - an operator CURVE key (key generate --curve) is made here; --key is
 *     read, and only used, for a tcp:// admin endpoint, which is never
 *     spoken to without CURVE (cli_conn.h);
 *   - agent enroll --ttl is checked here (1 s to 365 days) and sent in
 *     seconds.
 */
#define _GNU_SOURCE
#include "cli_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "cli_conn.h"
#include "cli_csv.h"
#include "cli_render.h"
#include "cli_watch.h"
#include "hash.h"
#include "sign.h"
#include "store_inv.h"
#include "util.h"
#include "wire.h"
#include "zmqx.h"

#define MAX_FILES 256

struct run {
    const struct cli_args *a;
    cli_conn_t *conn;
    char endpoint[PATH_MAX + 16];
    char user[128];
    int timeout_ms;
    char *err;
    size_t errlen;
    struct cli_curve curve; /* --key, --server-key: a tcp admin endpoint */
    int has_curve;
};

/* A request under construction; strings are borrowed. */
struct reqb {
    Firmfleet__AdminRequest req;
    char *args[MAX_FILES + 2];
    Firmfleet__KV kv[CLI_MAX_OPTS + 4];
    Firmfleet__KV *kvp[CLI_MAX_OPTS + 4];
};

static int s_fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fail(struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return 1;
}

/* protobuf-c declares message strings `char *` but packing only reads them. */
static char *s_unconst(const char *s)
{
    return (char *)(uintptr_t)s;
}

static void s_req_init(struct reqb *b, struct run *r, const char *noun, const char *verb)
{
    memset(b, 0, sizeof *b);
    firmfleet__admin_request__init(&b->req);
    b->req.noun = s_unconst(noun);
    b->req.verb = s_unconst(verb);
    b->req.user = r->user;
    b->req.args = b->args;
    b->req.opts = b->kvp;
}

static void s_req_arg(struct reqb *b, const char *s)
{
    if (b->req.n_args < sizeof b->args / sizeof b->args[0])
        b->args[b->req.n_args++] = s_unconst(s);
}

static void s_req_opt(struct reqb *b, const char *key, const char *value)
{
    size_t i = b->req.n_opts;
    if (value == NULL || i >= sizeof b->kv / sizeof b->kv[0])
        return;
    firmfleet__kv__init(&b->kv[i]);
    b->kv[i].key = s_unconst(key);
    b->kv[i].value = s_unconst(value);
    b->kvp[i] = &b->kv[i];
    b->req.n_opts++;
}

static int s_connect(struct run *r)
{
    if (r->conn)
        return 0;
    return cli_conn_open_curve(r->endpoint, r->timeout_ms, r->has_curve ? &r->curve : NULL,
                               &r->conn, r->err, r->errlen) < 0
               ? 1
               : 0;
}

/* One round trip; 0 with *out, or 1 with r->err. */
static int s_call(struct run *r, struct reqb *b, json_t **out)
{
    if (s_connect(r) != 0)
        return 1;
    return cli_conn_call(r->conn, &b->req, out, r->err, r->errlen) < 0 ? 1 : 0;
}

static int s_output(struct run *r, json_t *doc)
{
    if (r->a->json)
        cli_render_json(stdout, doc);
    else
        cli_render_human(stdout, r->a->cmd->noun, r->a->cmd->verb, doc);
    if (fflush(stdout) != 0 || ferror(stdout))
        return s_fail(r, "cannot write output: %s", strerror(errno));
    /* beside the output, not in it: profile show's text stays pipeable */
    if (!r->a->json)
        cli_render_note(stderr, r->a->cmd->noun, r->a->cmd->verb, doc);
    return 0;
}

/* For the human message of a write whose answer does not name what was
 * written (rollout start, profile remove, device set, ...): the argument. */
static void s_name_default(const struct cli_args *a, json_t *doc)
{
    const char *key = strcmp(a->cmd->noun, "device") == 0 ? "mac" : "name";
    if (a->nargs < 1 || !json_is_object(doc) || json_object_get(doc, key) != NULL)
        return;
    if (strcmp(a->cmd->verb, "list") == 0 || strcmp(a->cmd->verb, "show") == 0 ||
        strcmp(a->cmd->verb, "status") == 0)
        return;
    json_object_set_new(doc, key, json_string(a->args[0]));
}

/* Commands that map one-to-one onto an admin request. */
/* Sends b and prints the answer (JSON or the human table). 0 or 1. */
static int s_call_print(struct run *r, struct reqb *b)
{
    json_t *doc = NULL;
    int rc = s_call(r, b, &doc);
    if (rc == 0)
        rc = s_output(r, doc);
    json_decref(doc);
    return rc;
}

/* Sends b with data (malloc'd, freed here) as its blob and prints the
 * answer: the common end of the commands that upload one document. */
static int s_call_blob(struct run *r, struct reqb *b, char *data, size_t len)
{
    b->req.blob.data = (uint8_t *)data;
    b->req.blob.len = len;
    int rc = s_call_print(r, b);
    free(data);
    return rc;
}

/* Reads the local file at path whole (at most max bytes), before anything
 * is sent. 0 with *text (malloc'd, NUL-terminated, the caller's), or 1 with
 * r->err: not a regular file, too_large (a format, with its arguments, as
 * each command words its limit), or the system's reason. */
static int s_read_input(struct run *r, const char *path, size_t max, char **text, size_t *len,
                        const char *too_large, ...) __attribute__((format(printf, 6, 7)));
static int s_read_input(struct run *r, const char *path, size_t max, char **text, size_t *len,
                        const char *too_large, ...)
{
    int rc = util_read_file(path, max, text, len);
    if (rc == -EINVAL)
        return s_fail(r, "%s: not a regular file", path);
    if (rc == -EFBIG) {
        va_list ap;
        va_start(ap, too_large);
        vsnprintf(r->err, r->errlen, too_large, ap);
        va_end(ap);
        return 1;
    }
    if (rc < 0)
        return s_fail(r, "%s: %s", path, strerror(-rc));
    return 0;
}

static int s_simple(struct run *r)
{
    const struct cli_args *a = r->a;
    struct reqb b;
    s_req_init(&b, r, a->cmd->noun, a->cmd->verb);
    for (int i = 0; i < a->nargs; i++)
        s_req_arg(&b, a->args[i]);
    for (int i = 0; i < a->nopts; i++)
        s_req_opt(&b, a->opts[i].name, a->opts[i].value);
    json_t *doc = NULL;
    int rc = s_call(r, &b, &doc);
    if (rc == 0 && !a->json)
        s_name_default(a, doc);
    if (rc == 0)
        rc = s_output(r, doc);
    json_decref(doc);
    return rc;
}

/* ---- paged lists ---- */

#define CLI_PAGE 2000

/* Appends the elements of page to all; 0 or 1 (out of memory). */
static int s_extend(struct run *r, json_t *all, json_t *page)
{
    if (!json_is_array(page))
        return s_fail(r, "malformed response from the controller");
    if (json_array_extend(all, page) < 0)
        return s_fail(r, "out of memory");
    return 0;
}

/* device list, fetched CLI_PAGE devices at a time so that any inventory
 * fits the admin channel's frame limit. */
static int s_device_list(struct run *r)
{
    const struct cli_args *a = r->a;
    json_t *all = json_array();
    char cursor[128] = "", limit[16];
    snprintf(limit, sizeof limit, "%d", CLI_PAGE);
    int rc = all ? 0 : s_fail(r, "out of memory");
    while (rc == 0) {
        struct reqb b;
        json_t *page = NULL;
        s_req_init(&b, r, "device", "list");
        s_req_opt(&b, "site", cli_args_opt(a, "site"));
        s_req_opt(&b, "model", cli_args_opt(a, "model"));
        s_req_opt(&b, "limit", limit);
        if (cursor[0])
            s_req_opt(&b, "after", cursor);
        rc = s_call(r, &b, &page);
        if (rc == 0)
            rc = s_extend(r, all, page);
        size_t n = json_array_size(page);
        json_t *last = n ? json_array_get(page, n - 1) : NULL;
        if (rc == 0 && n == CLI_PAGE && last)
            snprintf(cursor, sizeof cursor, "%s/%s",
                     json_string_value(json_object_get(last, "site"))
                         ? json_string_value(json_object_get(last, "site"))
                         : "",
                     json_string_value(json_object_get(last, "mac"))
                         ? json_string_value(json_object_get(last, "mac"))
                         : "");
        json_decref(page);
        if (rc != 0 || n < CLI_PAGE)
            break;
    }
    if (rc == 0)
        rc = s_output(r, all);
    json_decref(all);
    return rc;
}

static int s_event_follow(struct run *r);

/* The filters event list and its --follow pass on as they are. */
static void s_req_event_filters(struct reqb *b, const struct cli_args *a)
{
    s_req_opt(b, "agent", cli_args_opt(a, "agent"));
    s_req_opt(b, "site", cli_args_opt(a, "site"));
    s_req_opt(b, "kind", cli_args_opt(a, "kind"));
    s_req_opt(b, "mac", cli_args_opt(a, "mac"));
}

/* event list: the newest N in one request, or (--since, or --limit 0)
 * oldest first, a page at a time; with --follow, s_event_follow. */
static int s_event_list(struct run *r)
{
    const struct cli_args *a = r->a;
    if (cli_args_opt(a, "follow") != NULL)
        return s_event_follow(r);
    int64_t limit = 100, since = 0;
    const char *v;
    if ((v = cli_args_opt(a, "limit")) != NULL && util_parse_i64(v, 0, INT64_MAX, &limit) < 0)
        return s_fail(r, "--limit must be a non-negative integer");
    int has_since = (v = cli_args_opt(a, "since")) != NULL;
    if (has_since && util_parse_i64(v, 0, INT64_MAX, &since) < 0)
        return s_fail(r, "--since must be a non-negative integer");
    if (cli_args_opt(a, "count") != NULL)
        return s_fail(r, "--count needs --follow");
    int paged = has_since || limit == 0;
    json_t *all = json_array();
    int rc = all ? 0 : s_fail(r, "out of memory");
    int64_t left = limit;
    while (rc == 0) {
        int64_t want = !paged ? limit : (left == 0 || left > CLI_PAGE) ? CLI_PAGE : left;
        char nlimit[32], nsince[32];
        snprintf(nlimit, sizeof nlimit, "%lld", (long long)want);
        snprintf(nsince, sizeof nsince, "%lld", (long long)since);
        struct reqb b;
        json_t *page = NULL;
        s_req_init(&b, r, "event", "list");
        s_req_event_filters(&b, a);
        s_req_opt(&b, "limit", nlimit);
        if (paged)
            s_req_opt(&b, "since", nsince);
        rc = s_call(r, &b, &page);
        if (rc == 0)
            rc = s_extend(r, all, page);
        int64_t n = (int64_t)json_array_size(page);
        if (n > 0)
            since = json_integer_value(json_object_get(json_array_get(page, (size_t)n - 1), "id"));
        json_decref(page);
        if (rc != 0 || !paged || n < want)
            break;
        if (limit > 0 && (left -= n) <= 0)
            break;
    }
    if (rc == 0)
        rc = s_output(r, all);
    json_decref(all);
    return rc;
}

/* ---- event list --follow ---- */

#define FOLLOW_POLL_MS 500

static volatile sig_atomic_t s_follow_stop;

static void s_follow_signal(int sig)
{
    s_follow_stop = sig;
}

/* Sleeps ms unless a signal comes first. */
static void s_follow_sleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (!s_follow_stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* event list --follow: polls `event list --since CURSOR` every
 * FOLLOW_POLL_MS and prints each new event once, in id order (one JSON
 * object per line with --json). Starts after the newest event that matches
 * the filters (or after --since ID). Ends on SIGINT/SIGTERM (130/143), after
 * --count N events (0), or after --timeout SECONDS (0); a controller that
 * goes away is retried, with one message on stderr. */
static int s_event_follow(struct run *r)
{
    const struct cli_args *a = r->a;
    int64_t count = 0, cursor = -1;
    const char *v;
    if ((v = cli_args_opt(a, "count")) != NULL && util_parse_i64(v, 1, INT64_MAX, &count) < 0)
        return s_fail(r, "--count must be a positive integer");
    if ((v = cli_args_opt(a, "since")) != NULL && util_parse_i64(v, 0, INT64_MAX, &cursor) < 0)
        return s_fail(r, "--since must be a non-negative integer");
    if (cli_args_opt(a, "limit") != NULL)
        return s_fail(r, "--limit cannot be used with --follow (see --count)");
    uint64_t deadline = a->timeout ? util_mono_ms() + (uint64_t)r->timeout_ms : 0;
    if (a->timeout == NULL || r->timeout_ms > 5000)
        r->timeout_ms = 5000; /* one poll; a hang must not stall the stream */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_follow_signal;
    sigemptyset(&sa.sa_mask);
    s_follow_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int64_t printed = 0;
    int rc = -1, outage = 0;
    while (rc < 0 && !s_follow_stop) {
        uint64_t t0 = util_mono_ms();
        if (deadline && t0 >= deadline) {
            rc = 0;
            break;
        }
        if (s_connect(r) != 0) {
            rc = 1;
            break;
        }
        cli_conn_set_interrupt(r->conn, &s_follow_stop);
        char nsince[32];
        snprintf(nsince, sizeof nsince, "%lld", (long long)(cursor < 0 ? 0 : cursor));
        struct reqb b;
        json_t *page = NULL;
        s_req_init(&b, r, "event", "list");
        s_req_event_filters(&b, a);
        /* first poll without a cursor: only the newest, to start after it */
        s_req_opt(&b, "limit", cursor < 0 ? "1" : "2000");
        if (cursor >= 0)
            s_req_opt(&b, "since", nsince);
        char cerr[512] = "";
        int crc = cli_conn_call(r->conn, &b.req, &page, cerr, sizeof cerr);
        if (s_follow_stop) {
            json_decref(page);
            break;
        }
        if (crc != 0) {
            if (!cli_conn_broken(r->conn)) { /* the controller said no: bad filter */
                s_fail(r, "%s", cerr);
                rc = 1;
                break;
            }
            if (!outage)
                fprintf(stderr, "firmfleet: controller unreachable, retrying (%s)\n", cerr);
            outage = 1;
            cli_conn_destroy(&r->conn);
        } else if (!json_is_array(page)) {
            json_decref(page);
            rc = s_fail(r, "malformed response from the controller");
            break;
        } else {
            outage = 0;
            size_t n = json_array_size(page);
            if (cursor < 0) {
                json_t *last = n ? json_array_get(page, n - 1) : NULL;
                cursor = last ? json_integer_value(json_object_get(last, "id")) : 0;
                n = 0;
            }
            for (size_t i = 0; i < n && rc < 0; i++) {
                json_t *ev = json_array_get(page, i);
                int64_t id = json_integer_value(json_object_get(ev, "id"));
                if (id <= cursor)
                    continue; /* never twice, whatever the controller sends */
                cursor = id;
                if (a->json) {
                    char *line = json_dumps(ev, JSON_COMPACT);
                    if (line)
                        printf("%s\n", line);
                    free(line);
                } else {
                    cli_render_event_line(stdout, ev);
                }
                if (count > 0 && ++printed >= count)
                    rc = 0;
            }
            json_decref(page);
            if (fflush(stdout) != 0 || ferror(stdout)) {
                rc = s_fail(r, "cannot write output: %s", strerror(errno));
                break;
            }
            if (rc < 0 && n >= 2000)
                continue; /* more waiting: no pause */
        }
        if (rc < 0) {
            uint64_t spent = util_mono_ms() - t0;
            int wait = spent >= FOLLOW_POLL_MS ? 0 : FOLLOW_POLL_MS - (int)spent;
            if (deadline && util_mono_ms() + (uint64_t)wait > deadline)
                wait = (int)(deadline > util_mono_ms() ? deadline - util_mono_ms() : 0);
            s_follow_sleep(wait);
        }
    }
    if (rc < 0)
        rc = s_follow_stop == SIGTERM ? CLI_EXIT_SIGTERM : CLI_EXIT_SIGINT;
    if (r->conn)
        cli_conn_set_interrupt(r->conn, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}

/* ---- backup get ---- */

/* The bytes of one backup, to stdout or --out FILE (mode 0600: device
 * configurations hold passwords), after checking them against the stored
 * SHA-256. */
static int s_backup_get(struct run *r)
{
    const struct cli_args *a = r->a;
    const char *out = cli_args_opt(a, "out");
    if (out && *out == '\0')
        return s_fail(r, "--out needs a file name");
    struct reqb b;
    s_req_init(&b, r, "backup", "get");
    s_req_arg(&b, a->args[0]);
    json_t *doc = NULL;
    if (s_call(r, &b, &doc) != 0)
        return 1;
    const char *b64 = json_string_value(json_object_get(doc, "data"));
    const char *want = json_string_value(json_object_get(doc, "sha256"));
    size_t cap = b64 ? strlen(b64) / 4 * 3 + 3 : 0, len = 0;
    uint8_t *data = b64 ? malloc(cap ? cap : 1) : NULL;
    int rc = 0;
    if (b64 == NULL || want == NULL) {
        rc = s_fail(r, "malformed response from the controller");
    } else if (data == NULL) {
        rc = s_fail(r, "out of memory");
    } else if (sodium_base642bin(data, cap, b64, strlen(b64), NULL, &len, NULL,
                                 sodium_base64_VARIANT_ORIGINAL) != 0) {
        rc = s_fail(r, "malformed backup data from the controller");
    } else {
        uint8_t sum[HASH_LEN];
        char hex[HASH_HEX_LEN + 1];
        hash_ctx_t *h = hash_new();
        if (h == NULL) {
            rc = s_fail(r, "out of memory");
        } else {
            hash_update(h, data, len);
            hash_final(h, sum);
            hash_destroy(&h);
            util_hex(sum, HASH_LEN, hex);
            if (strcmp(hex, want) != 0)
                rc = s_fail(r, "backup %s: content does not match its sha256", a->args[0]);
        }
    }
    if (rc == 0 && out) {
        int w = util_write_file_atomic(out, data, len, 0600);
        if (w < 0)
            rc = s_fail(r, "%s: %s", out, strerror(-w));
    } else if (rc == 0) {
        if ((len && fwrite(data, 1, len, stdout) != len) || fflush(stdout) != 0)
            rc = s_fail(r, "cannot write output: %s", strerror(errno));
    }
    free(data);
    json_decref(doc);
    return rc;
}

/* ---- agent enroll ---- */

/* Writes data to path with mode 0600: via a temporary file, then link()
 * (refuses an existing path) or, with force, rename(). 0 or -errno. */
static int s_write_private(const char *path, const char *data, size_t len, int force)
{
    if (force)
        return util_write_file_atomic(path, data, len, 0600);
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && link(tmp, path) < 0)
        rc = -errno;
    unlink(tmp);
    if (rc == 0)
        rc = util_fsync_dir_of(path);
    return rc;
}

static int s_agent_enroll(struct run *r)
{
    const struct cli_args *a = r->a;
    const char *out = cli_args_opt(a, "out");
    int force = cli_args_opt(a, "force") != NULL;
    struct stat sb;
    const char *ttl = cli_args_opt(a, "ttl");
    char ttls[24] = "";
    if (ttl != NULL) {
        int64_t secs = 0;
        if (util_parse_duration(ttl, 1, 365LL * 86400, &secs) < 0)
            return s_fail(r, "invalid --ttl '%s' (e.g. 90s, 30m, 24h, 7d; 1 second to 365 days)",
                          ttl);
        snprintf(ttls, sizeof ttls, "%lld", (long long)secs);
    }
    if (*out == '\0')
        return s_fail(r, "--out needs a file name");
    if (lstat(out, &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            return s_fail(r, "%s is a directory", out);
        if (!force)
            return s_fail(r, "%s already exists (use --force to overwrite)", out);
    } else if (errno != ENOENT) {
        return s_fail(r, "%s: %s", out, strerror(errno));
    }
    char dirbuf[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", out);
    const char *dir = dirname(dirbuf);
    if (access(dir, W_OK | X_OK) < 0)
        return s_fail(r, "cannot write %s: %s", out, strerror(errno));

    struct reqb b;
    s_req_init(&b, r, "agent", "enroll");
    s_req_opt(&b, "site", cli_args_opt(a, "site"));
    s_req_opt(&b, "name", cli_args_opt(a, "name"));
    if (ttls[0])
        s_req_opt(&b, "ttl", ttls);
    json_t *cred = NULL;
    if (s_call(r, &b, &cred) != 0)
        return 1;
    const char *agent = json_string_value(json_object_get(cred, "agent"));
    if (agent == NULL || !json_is_string(json_object_get(cred, "secret_key"))) {
        json_decref(cred);
        return s_fail(r, "malformed credential from the controller");
    }
    char *text = json_dumps(cred, JSON_INDENT(2));
    size_t tlen = text ? strlen(text) : 0;
    char *withnl = text ? malloc(tlen + 2) : NULL;
    int rc = -ENOMEM;
    if (withnl) {
        memcpy(withnl, text, tlen);
        memcpy(withnl + tlen, "\n", 2);
        rc = s_write_private(out, withnl, tlen + 1, force);
        explicit_bzero(withnl, tlen + 1);
        free(withnl);
    }
    if (text) {
        explicit_bzero(text, tlen);
        free(text);
    }
    /* the public part, for --json and for the message */
    json_t *pub = json_pack(
        "{s:O, s:O, s:O, s:O, s:O, s:s, s:O}", "agent", json_object_get(cred, "agent"), "site",
        json_object_get(cred, "site"), "endpoint", json_object_get(cred, "endpoint"),
        "server_public_key", json_object_get(cred, "server_public_key"), "public_key",
        json_object_get(cred, "public_key"), "credential", out, "expires_ms",
        json_object_get(cred, "expires_ms") ? json_object_get(cred, "expires_ms") : json_null());
    const char *sec = json_string_value(json_object_get(cred, "secret_key"));
    if (sec)
        explicit_bzero(s_unconst(sec), strlen(sec));
    int ret;
    if (rc < 0) {
        ret = s_fail(r,
                     "agent %s was enrolled but %s could not be written (%s); revoke it with "
                     "'firmfleet agent revoke %s'",
                     agent, out, strerror(-rc), agent);
    } else if (pub == NULL) {
        ret = s_fail(r, "out of memory");
    } else if (a->json) {
        ret = cli_render_json(stdout, pub) < 0 ? s_fail(r, "cannot write output") : 0;
    } else {
        time_t exp = (time_t)(json_integer_value(json_object_get(cred, "expires_ms")) / 1000);
        char when[64] = "?";
        struct tm tm;
        if (exp > 0 && localtime_r(&exp, &tm) != NULL)
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", &tm);
        printf("enrolled agent %s at site %s; credential written to %s (single use, until %s)\n",
               agent, json_string_value(json_object_get(cred, "site")), out, when);
        ret = fflush(stdout) != 0 ? s_fail(r, "cannot write output") : 0;
    }
    json_decref(pub);
    json_decref(cred);
    return ret;
}

/* ---- key generate ---- */

/* Writes a key pair's files: the secret text (mode 0600, wiped from memory
 * afterwards) and the public one (0644); when the public file fails the
 * secret one is removed again. 0, or 1 after s_fail. */
static int s_write_key_files(struct run *r, const char *kpath, char *ktext, size_t kcap, int kn,
                             const char *ppath, const char *ptext, int pn, int force)
{
    int rc = s_write_private(kpath, ktext, (size_t)kn, force);
    explicit_bzero(ktext, kcap);
    if (rc < 0)
        return s_fail(r, "%s: %s", kpath, strerror(-rc));
    rc = util_write_file_atomic(ppath, ptext, (size_t)pn, 0644);
    if (rc < 0) {
        unlink(kpath);
        return s_fail(r, "%s: %s", ppath, strerror(-rc));
    }
    return 0;
}

/* Prints doc as the --json output of key generate, and frees it; a doc that
 * could not be made (NULL) fails as output that could not be written. */
static int s_key_json(struct run *r, json_t *doc)
{
    int rc = doc && cli_render_json(stdout, doc) == 0 ? 0 : s_fail(r, "cannot write output");
    json_decref(doc);
    return rc;
}

/* key generate --out NAME: NAME.key (secret, 0600, refused if either file
 * exists unless --force) and NAME.pub. Nothing goes to the controller. */
static int s_key_generate_curve(struct run *r, const char *out, const char *kpath,
                                const char *ppath, int force);

static int s_key_generate(struct run *r)
{
    const struct cli_args *a = r->a;
    const char *out = cli_args_opt(a, "out");
    int force = cli_args_opt(a, "force") != NULL;
    int curve = cli_args_opt(a, "curve") != NULL;
    char kpath[PATH_MAX], ppath[PATH_MAX];
    if (*out == '\0')
        return s_fail(r, "--out needs a name");
    if (snprintf(kpath, sizeof kpath, "%s.key", out) >= (int)sizeof kpath ||
        snprintf(ppath, sizeof ppath, "%s.pub", out) >= (int)sizeof ppath)
        return s_fail(r, "--out: name too long");
    const char *both[2] = {kpath, ppath};
    for (int i = 0; i < 2; i++) {
        struct stat sb;
        if (lstat(both[i], &sb) == 0) {
            if (S_ISDIR(sb.st_mode))
                return s_fail(r, "%s is a directory", both[i]);
            if (!force)
                return s_fail(r, "%s already exists (use --force to overwrite)", both[i]);
        } else if (errno != ENOENT) {
            return s_fail(r, "%s: %s", both[i], strerror(errno));
        }
    }
    if (curve)
        return s_key_generate_curve(r, out, kpath, ppath, force);
    uint8_t pk[SIGN_PK_LEN], sk[SIGN_SK_LEN];
    if (sign_init() < 0 || sign_keypair(pk, sk) < 0)
        return s_fail(r, "cannot make a key pair");
    char id[SIGN_ID_HEX + 1], pkhex[SIGN_PK_HEX + 1];
    sign_key_id(pk, id);
    util_hex(pk, SIGN_PK_LEN, pkhex);
    char ktext[SIGN_SK_HEX + 160], ptext[SIGN_PK_HEX + 160];
    int kn =
        snprintf(ktext, sizeof ktext,
                 "# firmfleet image signing key %s (SECRET: keep it off the controller)\n", id);
    util_hex(sk, SIGN_SK_LEN, ktext + kn);
    kn += SIGN_SK_HEX;
    ktext[kn++] = '\n';
    sign_wipe(sk, sizeof sk);
    int pn =
        snprintf(ptext, sizeof ptext, "# firmfleet image signing public key %s\n%s\n", id, pkhex);
    int rc = s_write_key_files(r, kpath, ktext, sizeof ktext, kn, ppath, ptext, pn, force);
    if (rc != 0)
        return rc;
    if (a->json)
        return s_key_json(r, json_pack("{s:s, s:s, s:s, s:s}", "id", id, "public_key", pkhex, "key",
                                       kpath, "pub", ppath));
    printf("key %s: secret key %s (mode 0600, never leaves this machine), public key %s\n", id,
           kpath, ppath);
    return fflush(stdout) != 0 ? s_fail(r, "cannot write output") : 0;
}

/* key generate --curve --out NAME: the operator's CURVE key pair for a tcp
 * admin endpoint. NAME.key: the Z85 secret key (mode 0600, for --key);
 * NAME.pub: "PUBLIC-KEY NAME", the line to append to the controller's
 * DATADIR/admin_keys (NAME becomes the audit user). */
static int s_key_generate_curve(struct run *r, const char *out, const char *kpath,
                                const char *ppath, int force)
{
    char pub[41], sec[41], nb[PATH_MAX];
    snprintf(nb, sizeof nb, "%s", out);
    const char *name = basename(nb);
    for (const char *p = name; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
            return s_fail(r, "--out: the name '%s' is not usable as a user name", name);
    if (zmq_curve_keypair(pub, sec) < 0)
        return s_fail(r, "cannot make a CURVE key pair: %s", zmq_strerror(errno));
    char ktext[160], ptext[PATH_MAX + 64];
    int kn = snprintf(ktext, sizeof ktext,
                      "# firmfleet operator CURVE secret key %s (admin endpoint, --key)\n%s\n",
                      name, sec);
    int pn = snprintf(ptext, sizeof ptext, "%s %s\n", pub, name);
    explicit_bzero(sec, sizeof sec);
    int rc = s_write_key_files(r, kpath, ktext, sizeof ktext, kn, ppath, ptext, pn, force);
    if (rc != 0)
        return rc;
    if (r->a->json)
        return s_key_json(r, json_pack("{s:s, s:s, s:s, s:s}", "name", name, "public_key", pub,
                                       "key", kpath, "pub", ppath));
    printf("operator key %s: secret key %s (mode 0600, for --key), public key %s "
           "(append it to the controller's DATADIR/admin_keys)\n",
           name, kpath, ppath);
    return fflush(stdout) != 0 ? s_fail(r, "cannot write output") : 0;
}

/* --key / --server-key (or their environment variables): 0, or 1 with
 * r->err set. Nothing given: nothing to do. */
static int s_load_curve(struct run *r)
{
    const char *key = r->a->key ? r->a->key : getenv("FIRMFLEET_KEY");
    const char *srv = r->a->server_key ? r->a->server_key : getenv("FIRMFLEET_SERVER_KEY");
    if (key != NULL && *key == '\0')
        key = NULL;
    if (srv != NULL && *srv == '\0')
        srv = NULL;
    if (strncmp(r->endpoint, "tcp://", 6) != 0)
        return 0; /* ipc: the socket file's mode decides, no keys */
    if (key == NULL && srv == NULL)
        return 0; /* cli_conn refuses tcp without them */
    if (key == NULL)
        return s_fail(r, "--server-key needs --key FILE (firmfleet key generate --curve)");
    if (srv == NULL)
        return s_fail(r, "--key needs --server-key KEY (the controller's DATADIR/curve.pub)");
    int rc = zmqx_read_key_file(key, r->curve.secret_key);
    if (rc < 0)
        return s_fail(r, "--key %s: %s", key,
                      rc == -EINVAL ? "not a CURVE secret key (firmfleet key generate --curve)"
                                    : strerror(-rc));
    if (zmq_curve_public(r->curve.public_key, r->curve.secret_key) < 0)
        return s_fail(r, "--key %s: not a CURVE secret key", key);
    if (strlen(srv) == 40 && zmqx_key_check(srv) == 0) {
        memcpy(r->curve.server_key, srv, 41);
    } else if ((rc = zmqx_read_key_file(srv, r->curve.server_key)) < 0) {
        return s_fail(r, "--server-key %s: %s", srv,
                      rc == -EINVAL ? "neither a Z85 key nor a file holding one" : strerror(-rc));
    }
    r->has_curve = 1;
    return 0;
}

/* ---- device import ---- */

static int s_device_import(struct run *r)
{
    const char *path = r->a->args[0];
    char *text = NULL;
    size_t len = 0;
    if (s_read_input(r, path, WIRE_MAX_MSG, &text, &len,
                     "%s: too large for one import (limit %u bytes); split it", path,
                     WIRE_MAX_MSG) != 0)
        return 1;
    json_t *rows = NULL;
    char msg[512];
    int rc = cli_csv_parse(text, len, &rows, msg, sizeof msg);
    free(text);
    if (rc < 0)
        return s_fail(r, "%s: %s", path, msg);
    char *blob = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);
    if (blob == NULL)
        return s_fail(r, "out of memory");
    if (strlen(blob) > WIRE_MAX_MSG - 4096) {
        free(blob);
        return s_fail(r, "%s: too large for one import; split it", path);
    }
    struct reqb b;
    s_req_init(&b, r, "device", "import");
    b.req.blob.data = (uint8_t *)blob;
    b.req.blob.len = strlen(blob);
    json_t *doc = NULL;
    rc = s_call(r, &b, &doc);
    free(blob);
    if (rc != 0) {
        /* row errors name a line of this file */
        if (strncmp(r->err, "line ", 5) == 0) {
            snprintf(msg, sizeof msg, "%s", r->err);
            s_fail(r, "%s: %s", path, msg);
        }
        return 1;
    }
    rc = s_output(r, doc);
    json_decref(doc);
    return rc;
}

/* ---- firmware add ---- */

struct fw_file {
    const char *path;
    char name[256];
    int fd;
    uint64_t size;
    char sha[HASH_HEX_LEN + 1];
    char sig[SIGN_SIG_HEX + 1]; /* "" = unsigned */
    uint64_t token;
    int has_token;
};

static int s_hash_fd(int fd, uint64_t size, uint8_t *buf, size_t bufsz, char hex[65])
{
    hash_ctx_t *h = hash_new();
    if (h == NULL)
        return -ENOMEM;
    uint64_t off = 0;
    int rc = 0;
    while (off < size) {
        size_t want = size - off < bufsz ? (size_t)(size - off) : bufsz;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -ESTALE; /* shrank under us */
            break;
        }
        hash_update(h, buf, (size_t)n);
        off += (uint64_t)n;
    }
    uint8_t sha[HASH_LEN];
    hash_final(h, sha);
    hash_destroy(&h);
    if (rc == 0)
        util_hex(sha, HASH_LEN, hex);
    return rc;
}

static void s_progress(const char *name, uint64_t done, uint64_t total, int final)
{
    char a[32], b[32];
    cli_fmt_size((long long)done, a, sizeof a);
    cli_fmt_size((long long)total, b, sizeof b);
    unsigned pct = total ? (unsigned)(done * 100 / total) : 100;
    fprintf(stderr, "\ruploading %s %3u%% (%s of %s)\033[K%s", name, pct, a, b, final ? "\n" : "");
    fflush(stderr);
}

static int s_upload(struct run *r, struct fw_file *f, uint8_t *buf, int tty)
{
    char num[32], off[32];
    struct reqb b;
    json_t *doc = NULL;
    snprintf(num, sizeof num, "%llu", (unsigned long long)f->size);
    s_req_init(&b, r, "firmware", "upload-begin");
    s_req_opt(&b, "size", num);
    if (s_call(r, &b, &doc) != 0)
        return 1;
    json_t *tok = json_object_get(doc, "token");
    if (!json_is_integer(tok) || json_integer_value(tok) <= 0) {
        json_decref(doc);
        return s_fail(r, "malformed upload token from the controller");
    }
    f->token = (uint64_t)json_integer_value(tok);
    f->has_token = 1;
    json_decref(doc);
    snprintf(num, sizeof num, "%llu", (unsigned long long)f->token);
    uint64_t done = 0;
    while (done < f->size) {
        size_t want =
            f->size - done < WIRE_ADMIN_CHUNK ? (size_t)(f->size - done) : WIRE_ADMIN_CHUNK;
        ssize_t n = pread(f->fd, buf, want, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (tty)
                fputc('\n', stderr);
            return s_fail(r, "%s: %s", f->path,
                          n < 0 ? strerror(errno) : "file shrank while uploading");
        }
        snprintf(off, sizeof off, "%llu", (unsigned long long)done);
        s_req_init(&b, r, "firmware", "upload-chunk");
        s_req_opt(&b, "token", num);
        s_req_opt(&b, "offset", off);
        b.req.blob.data = buf;
        b.req.blob.len = (size_t)n;
        if (s_call(r, &b, &doc) != 0) {
            if (tty)
                fputc('\n', stderr);
            return 1;
        }
        json_decref(doc);
        done += (uint64_t)n;
        if (tty)
            s_progress(f->name, done, f->size, 0);
    }
    if (tty)
        s_progress(f->name, done, f->size, 1);
    return 0;
}

static int s_firmware_add(struct run *r)
{
    const struct cli_args *a = r->a;
    const char *ref = a->args[0];
    const char *slash = strchr(ref, '/');
    char vendor[80], version[80], msg[256];
    if (slash == NULL || (size_t)(slash - ref) >= sizeof vendor ||
        strlen(slash + 1) >= sizeof version)
        return s_fail(r, "firmware add: '%s' is not VENDOR/VERSION", ref);
    snprintf(vendor, sizeof vendor, "%.*s", (int)(slash - ref), ref);
    snprintf(version, sizeof version, "%s", slash + 1);
    if (store_check_fw_part("vendor", vendor, msg, sizeof msg) < 0 ||
        store_check_fw_part("version", version, msg, sizeof msg) < 0)
        return s_fail(r, "%s", msg);

    int nfiles = a->nargs - 1;
    if (nfiles > MAX_FILES)
        return s_fail(r, "too many files (at most %d)", MAX_FILES);
    struct fw_file *files = calloc((size_t)nfiles, sizeof *files);
    uint8_t *buf = malloc(WIRE_ADMIN_CHUNK);
    json_t *list = json_array();
    int rc = 0;
    if (files == NULL || buf == NULL || list == NULL)
        rc = s_fail(r, "out of memory");
    /* the signing key, read before the controller hears of anything */
    const char *keypath = cli_args_opt(a, "sign-key");
    uint8_t sk[SIGN_SK_LEN], pk[SIGN_PK_LEN];
    char signer[SIGN_PK_HEX + 1] = "";
    if (rc == 0 && keypath != NULL) {
        int kr = sign_read_secret(keypath, sk);
        if (kr < 0)
            rc = s_fail(r, "%s: %s", keypath,
                        kr == -EINVAL ? "not a signing key (firmfleet key generate writes one)"
                                      : strerror(-kr));
        else {
            sign_sk_to_pk(sk, pk);
            util_hex(pk, SIGN_PK_LEN, signer);
        }
    }
    for (int i = 0; i < nfiles && files; i++)
        files[i].fd = -1;
    /* every file checked and hashed before the controller hears of it */
    for (int i = 0; rc == 0 && i < nfiles; i++) {
        struct fw_file *f = &files[i];
        const char *arg = a->args[i + 1];
        const char *eq = strchr(arg, '=');
        if (eq != NULL && memchr(arg, '/', (size_t)(eq - arg)) == NULL && eq != arg) {
            snprintf(f->name, sizeof f->name, "%.*s", (int)(eq - arg), arg);
            f->path = eq + 1;
        } else {
            f->path = arg;
            const char *base = strrchr(arg, '/');
            snprintf(f->name, sizeof f->name, "%s", base ? base + 1 : arg);
        }
        struct stat sb;
        f->fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (f->fd < 0) {
            rc = s_fail(r, "%s: %s", f->path, strerror(errno));
            break;
        }
        if (fstat(f->fd, &sb) < 0) {
            rc = s_fail(r, "%s: %s", f->path, strerror(errno));
            break;
        }
        if (!S_ISREG(sb.st_mode)) {
            rc = s_fail(r, "%s: not a regular file", f->path);
            break;
        }
        f->size = (uint64_t)sb.st_size;
        if (store_check_file_name(f->name, msg, sizeof msg) < 0) {
            rc = s_fail(r, "%s: %s", f->path, msg);
            break;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(files[j].name, f->name) == 0) {
                rc = s_fail(r, "two files named %s (give one as NAME=PATH)", f->name);
                break;
            }
        if (rc != 0)
            break;
        int hr = s_hash_fd(f->fd, f->size, buf, WIRE_ADMIN_CHUNK, f->sha);
        if (hr < 0) {
            rc = s_fail(r, "%s: %s", f->path,
                        hr == -ESTALE ? "file shrank while reading" : strerror(-hr));
            break;
        }
        if (signer[0]) {
            uint8_t bin[HASH_LEN], sig[SIGN_SIG_LEN];
            if (util_unhex(f->sha, bin, HASH_LEN) < 0 ||
                sign_image(sk, bin, f->size, f->name, sig) < 0)
                rc = s_fail(r, "%s: cannot sign", f->path);
            else
                util_hex(sig, SIGN_SIG_LEN, f->sig);
        }
    }
    if (signer[0])
        sign_wipe(sk, sizeof sk);
    if (rc == 0) {
        /* a taken VENDOR/VERSION fails now rather than after the uploads */
        struct reqb b;
        json_t *have = NULL;
        s_req_init(&b, r, "firmware", "show");
        s_req_arg(&b, ref);
        int cr =
            s_connect(r) != 0 ? -EIO : cli_conn_call(r->conn, &b.req, &have, r->err, r->errlen);
        if (cr == 0)
            rc = s_fail(r, "firmware %s already exists", ref);
        else if (cr != -ENOENT)
            rc = 1;
        json_decref(have);
    }
    int tty = isatty(STDERR_FILENO);
    for (int i = 0; rc == 0 && i < nfiles; i++)
        rc = s_upload(r, &files[i], buf, tty);
    for (int i = 0; rc == 0 && i < nfiles; i++) {
        json_t *o = json_pack("{s:s, s:s, s:I}", "name", files[i].name, "sha256", files[i].sha,
                              "token", (json_int_t)files[i].token);
        if (o != NULL && files[i].sig[0] &&
            (json_object_set_new(o, "signature", json_string(files[i].sig)) < 0 ||
             json_object_set_new(o, "signer", json_string(signer)) < 0)) {
            json_decref(o);
            o = NULL;
        }
        if (o == NULL || json_array_append_new(list, o) < 0)
            rc = s_fail(r, "out of memory");
    }
    json_t *doc = NULL;
    if (rc == 0) {
        json_t *body = json_pack("{s:O}", "files", list);
        char *blob = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (blob == NULL) {
            rc = s_fail(r, "out of memory");
        } else {
            struct reqb b;
            s_req_init(&b, r, "firmware", "add");
            s_req_arg(&b, ref);
            s_req_opt(&b, "models", cli_args_opt(a, "models"));
            s_req_opt(&b, "description", cli_args_opt(a, "description"));
            b.req.blob.data = (uint8_t *)blob;
            b.req.blob.len = strlen(blob);
            rc = s_call(r, &b, &doc);
            free(blob);
            /* the controller consumed or dropped the uploads either way */
            for (int i = 0; i < nfiles; i++)
                files[i].has_token = 0;
        }
    }
    /* free uploads the controller still holds for us (best effort) */
    for (int i = 0; rc != 0 && files && i < nfiles; i++) {
        if (!files[i].has_token || r->conn == NULL)
            continue;
        char num[32], keep[512];
        snprintf(num, sizeof num, "%llu", (unsigned long long)files[i].token);
        snprintf(keep, sizeof keep, "%s", r->err);
        struct reqb b;
        json_t *ignored = NULL;
        s_req_init(&b, r, "firmware", "upload-abort");
        s_req_opt(&b, "token", num);
        s_call(r, &b, &ignored);
        json_decref(ignored);
        snprintf(r->err, r->errlen, "%s", keep);
    }
    if (rc == 0)
        rc = s_output(r, doc);
    json_decref(doc);
    for (int i = 0; files && i < nfiles; i++)
        if (files[i].fd >= 0)
            close(files[i].fd);
    free(files);
    free(buf);
    json_decref(list);
    return rc;
}

/* ---- templates ---- */

/* template add: the body comes from --from, read (and its name checked)
 * before the controller hears of it. */
static int s_template_add(struct run *r)
{
    const struct cli_args *a = r->a;
    const char *name = a->args[0], *path = cli_args_opt(a, "from");
    char msg[512];
    if (store_check_template_name(name, msg, sizeof msg) < 0)
        return s_fail(r, "%s", msg);
    char *body = NULL;
    size_t len = 0;
    if (s_read_input(r, path, STORE_TEMPLATE_MAX, &body, &len,
                     "%s: too large for a template (at most %u bytes)", path,
                     STORE_TEMPLATE_MAX) != 0)
        return 1;
    struct reqb b;
    s_req_init(&b, r, "template", "add");
    s_req_arg(&b, name);
    s_req_opt(&b, "site", cli_args_opt(a, "site"));
    s_req_opt(&b, "replace", cli_args_opt(a, "replace"));
    return s_call_blob(r, &b, body, len);
}

/* template show: the body as it is on stdout, or with --json the template
 * with its body as a string (when it is UTF-8) or as body_hex. */
static int s_template_show(struct run *r)
{
    const struct cli_args *a = r->a;
    struct reqb b;
    s_req_init(&b, r, "template", "show");
    s_req_arg(&b, a->args[0]);
    s_req_opt(&b, "site", cli_args_opt(a, "site"));
    json_t *doc = NULL;
    if (s_call(r, &b, &doc) != 0)
        return 1;
    const char *hex = json_string_value(json_object_get(doc, "body_hex"));
    size_t n = hex ? strlen(hex) / 2 : 0;
    uint8_t *body = malloc(n ? n : 1);
    int rc = 0;
    if (hex == NULL || strlen(hex) % 2 != 0)
        rc = s_fail(r, "malformed response from the controller");
    else if (body == NULL)
        rc = s_fail(r, "out of memory");
    else if (util_unhex(hex, body, n) < 0)
        rc = s_fail(r, "malformed response from the controller");
    if (rc == 0 && a->json) {
        json_t *text = json_stringn((const char *)body, n);
        if (text != NULL) {
            json_object_del(doc, "body_hex");
            json_object_set_new(doc, "body", text);
        }
        rc = cli_render_json(stdout, doc) < 0 ? s_fail(r, "cannot write output") : 0;
    } else if (rc == 0) {
        if ((n > 0 && fwrite(body, 1, n, stdout) != n) || fflush(stdout) != 0)
            rc = s_fail(r, "cannot write output: %s", strerror(errno));
    }
    free(body);
    json_decref(doc);
    return rc;
}

/* ---- rollouts and profiles ---- */

struct mac_at {
    char mac[18];
    size_t line;
};

static int s_mac_at_cmp(const void *x, const void *y)
{
    const struct mac_at *a = x, *b = y;
    int c = strcmp(a->mac, b->mac);
    return c ? c : (a->line < b->line ? -1 : a->line > b->line);
}

static int s_is_sep(char c)
{
    return c == ',' || c == ';' || c == '\t' || c == ' ';
}

int cli_devices_parse(const char *path, const char *text, size_t len, char **macs, size_t *count,
                      char *err, size_t errlen)
{
    *macs = NULL;
    *count = 0;
    size_t cap = 64, n = 0, lineno = 0;
    struct mac_at *all = malloc(cap * sizeof *all);
    if (all == NULL) {
        util_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = 0, seen_line = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        const char *ln = text + pos;
        const char *nl = memchr(ln, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - ln) : len - pos;
        pos += ll + (nl ? 1 : 0);
        lineno++;
        const char *hash = memchr(ln, '#', ll);
        if (hash)
            ll = (size_t)(hash - ln);
        while (ll > 0 && (ln[ll - 1] == '\r' || ln[ll - 1] == ' ' || ln[ll - 1] == '\t'))
            ll--;
        while (ll > 0 && (*ln == ' ' || *ln == '\t')) {
            ln++;
            ll--;
        }
        if (ll == 0)
            continue;
        size_t fl = 0;
        while (fl < ll && !s_is_sep(ln[fl]))
            fl++;
        char field[64];
        const char *fs = ln;
        if (fl >= 2 && fs[0] == '"' && fs[fl - 1] == '"') {
            fs++;
            fl -= 2;
        }
        snprintf(field, sizeof field, "%.*s", (int)(fl < 60 ? fl : 60), fs);
        int first = !seen_line;
        seen_line = 1;
        if (first && strcasecmp(field, "mac") == 0)
            continue; /* a CSV header */
        if (n == cap) {
            struct mac_at *na = realloc(all, 2 * cap * sizeof *all);
            if (na == NULL) {
                util_errf(err, errlen, "out of memory");
                rc = -ENOMEM;
                break;
            }
            all = na;
            cap *= 2;
        }
        if (fl > 60 || util_mac_canon(field, all[n].mac) < 0) {
            for (char *p = field; *p; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                    *p = '?';
            util_errf(err, errlen, "%s:%zu: '%s%s' is not a MAC address", path, lineno, field,
                      fl > 60 ? "..." : "");
            rc = -EINVAL;
            break;
        }
        all[n].line = lineno;
        n++;
    }
    if (rc == 0 && n == 0) {
        util_errf(err, errlen, "%s: no MAC addresses in the file", path);
        rc = -EINVAL;
    }
    char *joined = NULL;
    if (rc == 0) {
        joined = malloc(n * 18 + 1);
        if (joined == NULL) {
            util_errf(err, errlen, "out of memory");
            rc = -ENOMEM;
        } else {
            for (size_t i = 0; i < n; i++) {
                memcpy(joined + i * 18, all[i].mac, 17);
                joined[i * 18 + 17] = ',';
            }
            joined[n * 18 - 1] = '\0';
        }
    }
    if (rc == 0) {
        /* a MAC twice: report the duplicate that comes first in the file */
        qsort(all, n, sizeof *all, s_mac_at_cmp);
        size_t bad = 0, first = 0;
        for (size_t i = 1; i < n; i++)
            if (strcmp(all[i].mac, all[i - 1].mac) == 0 && (bad == 0 || all[i].line < bad)) {
                bad = all[i].line;
                size_t j = i;
                while (j > 0 && strcmp(all[j - 1].mac, all[i].mac) == 0)
                    j--;
                first = all[j].line;
            }
        if (bad) {
            util_errf(err, errlen, "%s:%zu: MAC listed twice (first on line %zu)", path, bad,
                      first);
            rc = -EINVAL;
        }
    }
    free(all);
    if (rc != 0) {
        free(joined);
        return rc;
    }
    *macs = joined;
    *count = n;
    return 0;
}

/* profile add: the file read whole (at most CLI_PROFILE_MAX) and checked to
 * be JSON before the controller hears of it; the controller checks the
 * rest. */
static int s_profile_add(struct run *r)
{
    const struct cli_args *a = r->a;
    const char *path = a->args[0];
    char *text = NULL;
    size_t len = 0;
    if (s_read_input(r, path, CLI_PROFILE_MAX, &text, &len,
                     "%s: too large for a profile (at most %u bytes)", path, CLI_PROFILE_MAX) != 0)
        return 1;
    json_error_t jerr;
    json_t *probe = json_loadb(text, len, 0, &jerr);
    if (probe == NULL) {
        free(text);
        return s_fail(r, "%s:%d: not JSON: %s", path, jerr.line, jerr.text);
    }
    json_decref(probe);
    /* signed here, over the very bytes sent (lib/sign.h): the key never
     * goes to the controller */
    char sighex[SIGN_SIG_HEX + 1] = "", signer[SIGN_PK_HEX + 1] = "";
    const char *keypath = cli_args_opt(a, "sign-key");
    if (keypath != NULL) {
        uint8_t sk[SIGN_SK_LEN], pk[SIGN_PK_LEN], sig[SIGN_SIG_LEN];
        int kr = sign_init() < 0 ? -EIO : sign_read_secret(keypath, sk);
        if (kr < 0) {
            free(text);
            return s_fail(r, "--sign-key %s: %s", keypath,
                          kr == -EINVAL ? "not a signing key (firmfleet key generate writes one)"
                                        : strerror(-kr));
        }
        sign_sk_to_pk(sk, pk);
        kr = sign_profile(sk, text, len, sig);
        sign_wipe(sk, sizeof sk);
        if (kr < 0) {
            free(text);
            return s_fail(r, "%s: cannot sign", path);
        }
        util_hex(sig, SIGN_SIG_LEN, sighex);
        util_hex(pk, SIGN_PK_LEN, signer);
    }
    struct reqb b;
    s_req_init(&b, r, "profile", "add");
    s_req_opt(&b, "replace", cli_args_opt(a, "replace"));
    if (sighex[0]) {
        s_req_opt(&b, "signature", sighex);
        s_req_opt(&b, "signer", signer);
    }
    return s_call_blob(r, &b, text, len);
}

/* rollout create: --devices FILE is read here and sent as the MACs
 * themselves; every other option goes as it is. */
static int s_rollout_create(struct run *r)
{
    const struct cli_args *a = r->a;
    const char *path = cli_args_opt(a, "devices");
    char *macs = NULL;
    if (path != NULL) {
        char *text = NULL;
        size_t len = 0, n = 0;
        if (s_read_input(r, path, WIRE_MAX_MSG, &text, &len, "%s: too large (limit %u bytes)", path,
                         WIRE_MAX_MSG) != 0)
            return 1;
        int rc = cli_devices_parse(path, text, len, &macs, &n, r->err, r->errlen);
        free(text);
        if (rc < 0)
            return 1;
        if (strlen(macs) > WIRE_MAX_MSG - 4096) {
            free(macs);
            return s_fail(r, "%s: too many devices for one rollout request", path);
        }
    }
    struct reqb b;
    s_req_init(&b, r, "rollout", "create");
    s_req_arg(&b, a->args[0]);
    for (int i = 0; i < a->nopts; i++)
        s_req_opt(&b, a->opts[i].name,
                  strcmp(a->opts[i].name, "devices") == 0 ? macs : a->opts[i].value);
    int rc = s_call_print(r, &b);
    free(macs);
    return rc;
}

/* rollout status: the per-device list is asked for (and shown) only with
 * --devices. */
static int s_rollout_status(struct run *r)
{
    struct reqb b;
    s_req_init(&b, r, "rollout", "status");
    s_req_arg(&b, r->a->args[0]);
    if (cli_args_opt(r->a, "devices") != NULL)
        s_req_opt(&b, "devices", "1");
    return s_call_print(r, &b);
}

/* rollout watch: one status request per poll; a connection that broke is
 * replaced by a new one at the next poll. */
static int s_watch_fetch(void *ctx, json_t **doc, char *err, size_t errlen)
{
    struct run *r = ctx;
    *doc = NULL;
    if (r->conn && cli_conn_broken(r->conn))
        cli_conn_destroy(&r->conn);
    if (r->conn == NULL) {
        int rc = cli_conn_open_curve(r->endpoint, r->timeout_ms, r->has_curve ? &r->curve : NULL,
                                     &r->conn, err, errlen);
        if (rc == -EINVAL || rc == -ENOMEM || rc == -ENAMETOOLONG)
            return CLI_FETCH_REFUSED;
        if (rc < 0)
            return CLI_FETCH_UNREACHABLE;
        cli_conn_set_interrupt(r->conn, cli_watch_stop_flag());
    }
    struct reqb b;
    s_req_init(&b, r, "rollout", "status");
    s_req_arg(&b, r->a->args[0]);
    int rc = cli_conn_call(r->conn, &b.req, doc, err, errlen);
    if (rc == 0 && !json_is_object(json_object_get(*doc, "rollout"))) {
        json_decref(*doc);
        *doc = NULL;
        util_errf(err, errlen, "malformed response from the controller");
        return CLI_FETCH_REFUSED;
    }
    if (rc == 0)
        return CLI_FETCH_OK;
    return cli_conn_broken(r->conn) ? CLI_FETCH_UNREACHABLE : CLI_FETCH_REFUSED;
}

/* SECONDS as a decimal with at most 3 fractional digits, 0.1 to 3600. */
static int s_parse_interval(const char *s, int *ms)
{
    int64_t whole = 0, frac = 0;
    const char *dot = strchr(s, '.');
    char ip[24];
    size_t il = dot ? (size_t)(dot - s) : strlen(s);
    if (il == 0 || il >= sizeof ip)
        return -EINVAL;
    memcpy(ip, s, il);
    ip[il] = '\0';
    if (util_parse_i64(ip, 0, 3600, &whole) < 0)
        return -EINVAL;
    if (dot) {
        size_t fl = strlen(dot + 1);
        if (fl == 0 || fl > 3 || strspn(dot + 1, "0123456789") != fl)
            return -EINVAL;
        frac = strtol(dot + 1, NULL, 10);
        for (size_t i = fl; i < 3; i++)
            frac *= 10;
    }
    int64_t v = whole * 1000 + frac;
    if (v < 100 || v > 3600 * 1000)
        return -EINVAL;
    *ms = (int)v;
    return 0;
}

static int s_rollout_watch(struct run *r)
{
    const struct cli_args *a = r->a;
    struct cli_watch_cfg cfg = {a->args[0], 1000, cli_args_opt(a, "once") != NULL, a->json};
    const char *iv = cli_args_opt(a, "interval");
    if (iv && s_parse_interval(iv, &cfg.interval_ms) < 0)
        return s_fail(r, "invalid --interval '%s' (0.1-3600 seconds)", iv);
    /* a poll that hangs must not freeze the screen for the default 30 s */
    if (a->timeout == NULL)
        r->timeout_ms = 5000;
    return cli_watch_run(&cfg, s_watch_fetch, r, r->err, r->errlen);
}

/* ---- entry ---- */

int cli_endpoint(const struct cli_args *a, char *out, size_t n)
{
    const char *env = getenv("FIRMFLEET_ADMIN");
    int w;
    if (a->endpoint)
        w = snprintf(out, n, "%s", a->endpoint);
    else if (a->datadir)
        w = snprintf(out, n, "ipc://%s/admin.sock", a->datadir);
    else if (env && *env)
        w = snprintf(out, n, "%s", env);
    else
        w = snprintf(out, n, "%s", CLI_DEFAULT_ENDPOINT);
    return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

static void s_user(const struct cli_args *a, char *out, size_t n)
{
    if (a->user) {
        snprintf(out, n, "%s", a->user);
        return;
    }
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name && *pw->pw_name)
        snprintf(out, n, "%s", pw->pw_name);
    else
        snprintf(out, n, "uid:%ld", (long)getuid());
}

typedef int (*cmd_fn)(struct run *r);

/* The commands that do more than pass their arguments on; every other one
 * is s_simple. */
static const struct {
    const char *noun, *verb;
    cmd_fn fn;
} s_commands[] = {
    {"agent", "enroll", s_agent_enroll},     {"device", "import", s_device_import},
    {"device", "list", s_device_list},       {"event", "list", s_event_list},
    {"firmware", "add", s_firmware_add},     {"key", "generate", s_key_generate},
    {"backup", "get", s_backup_get},         {"template", "add", s_template_add},
    {"template", "show", s_template_show},   {"profile", "add", s_profile_add},
    {"rollout", "create", s_rollout_create}, {"rollout", "status", s_rollout_status},
    {"rollout", "watch", s_rollout_watch},
};

static cmd_fn s_command(const char *noun, const char *verb)
{
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (strcmp(noun, s_commands[i].noun) == 0 && strcmp(verb, s_commands[i].verb) == 0)
            return s_commands[i].fn;
    return s_simple;
}

int cli_run(const struct cli_args *a, char *err, size_t errlen)
{
    struct run r;
    memset(&r, 0, sizeof r);
    r.a = a;
    r.err = err;
    r.errlen = errlen;
    r.timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
    if (a->timeout) {
        int64_t secs;
        if (util_parse_i64(a->timeout, 1, 86400, &secs) < 0)
            return s_fail(&r, "invalid --timeout '%s' (1-86400 seconds)", a->timeout);
        r.timeout_ms = (int)secs * 1000;
    }
    if (cli_endpoint(a, r.endpoint, sizeof r.endpoint) < 0)
        return s_fail(&r, "admin endpoint too long");
    s_user(a, r.user, sizeof r.user);
    if (hash_init() < 0)
        return s_fail(&r, "cannot initialise libsodium");
    if (s_load_curve(&r) != 0)
        return 1;
    int rc = s_command(a->cmd->noun, a->cmd->verb)(&r);
    cli_conn_destroy(&r.conn);
    return rc;
}
