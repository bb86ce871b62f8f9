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
 *   - a template body is read whole (at most 1 MiB) before anything is sent.
 */
#define _GNU_SOURCE
#include "cli_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_conn.h"
#include "cli_csv.h"
#include "cli_render.h"
#include "hash.h"
#include "store_inv.h"
#include "util.h"
#include "wire.h"

#define MAX_FILES 256

struct run {
    const struct cli_args *a;
    cli_conn_t *conn;
    char endpoint[PATH_MAX + 16];
    char user[128];
    int timeout_ms;
    char *err;
    size_t errlen;
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
    return cli_conn_open(r->endpoint, r->timeout_ms, &r->conn, r->err, r->errlen) < 0 ? 1 : 0;
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
    return 0;
}

/* Commands that map one-to-one onto an admin request. */
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

/* event list: the newest N in one request, or (--since, or --limit 0)
 * oldest first, a page at a time. */
static int s_event_list(struct run *r)
{
    const struct cli_args *a = r->a;
    int64_t limit = 100, since = 0;
    const char *v;
    if ((v = cli_args_opt(a, "limit")) != NULL && util_parse_i64(v, 0, INT64_MAX, &limit) < 0)
        return s_fail(r, "--limit must be a non-negative integer");
    int has_since = (v = cli_args_opt(a, "since")) != NULL;
    if (has_since && util_parse_i64(v, 0, INT64_MAX, &since) < 0)
        return s_fail(r, "--since must be a non-negative integer");
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
        s_req_opt(&b, "agent", cli_args_opt(a, "agent"));
        s_req_opt(&b, "site", cli_args_opt(a, "site"));
        s_req_opt(&b, "kind", cli_args_opt(a, "kind"));
        s_req_opt(&b, "mac", cli_args_opt(a, "mac"));
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
    json_t *pub =
        json_pack("{s:O, s:O, s:O, s:O, s:O, s:s}", "agent", json_object_get(cred, "agent"), "site",
                  json_object_get(cred, "site"), "endpoint", json_object_get(cred, "endpoint"),
                  "server_public_key", json_object_get(cred, "server_public_key"), "public_key",
                  json_object_get(cred, "public_key"), "credential", out);
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
        printf("enrolled agent %s at site %s; credential written to %s\n", agent,
               json_string_value(json_object_get(cred, "site")), out);
        ret = fflush(stdout) != 0 ? s_fail(r, "cannot write output") : 0;
    }
    json_decref(pub);
    json_decref(cred);
    return ret;
}

/* ---- device import ---- */

static int s_device_import(struct run *r)
{
    const char *path = r->a->args[0];
    char *text = NULL;
    size_t len = 0;
    int rc = util_read_file(path, WIRE_MAX_MSG, &text, &len);
    if (rc == -EINVAL)
        return s_fail(r, "%s: not a regular file", path);
    if (rc == -EFBIG)
        return s_fail(r, "%s: too large for one import (limit %u bytes); split it", path,
                      WIRE_MAX_MSG);
    if (rc < 0)
        return s_fail(r, "%s: %s", path, strerror(-rc));
    json_t *rows = NULL;
    char msg[512];
    rc = cli_csv_parse(text, len, &rows, msg, sizeof msg);
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
        if (hr < 0)
            rc = s_fail(r, "%s: %s", f->path,
                        hr == -ESTALE ? "file shrank while reading" : strerror(-hr));
    }
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
    int rc = util_read_file(path, STORE_TEMPLATE_MAX, &body, &len);
    if (rc == -EINVAL)
        return s_fail(r, "%s: not a regular file", path);
    if (rc == -EFBIG)
        return s_fail(r, "%s: too large for a template (at most %u bytes)", path,
                      STORE_TEMPLATE_MAX);
    if (rc < 0)
        return s_fail(r, "%s: %s", path, strerror(-rc));
    struct reqb b;
    s_req_init(&b, r, "template", "add");
    s_req_arg(&b, name);
    s_req_opt(&b, "site", cli_args_opt(a, "site"));
    s_req_opt(&b, "replace", cli_args_opt(a, "replace"));
    b.req.blob.data = (uint8_t *)body;
    b.req.blob.len = len;
    json_t *doc = NULL;
    rc = s_call(r, &b, &doc);
    free(body);
    if (rc == 0)
        rc = s_output(r, doc);
    json_decref(doc);
    return rc;
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
    const char *noun = a->cmd->noun, *verb = a->cmd->verb;
    int rc;
    if (strcmp(noun, "agent") == 0 && strcmp(verb, "enroll") == 0)
        rc = s_agent_enroll(&r);
    else if (strcmp(noun, "device") == 0 && strcmp(verb, "import") == 0)
        rc = s_device_import(&r);
    else if (strcmp(noun, "firmware") == 0 && strcmp(verb, "add") == 0)
        rc = s_firmware_add(&r);
    else if (strcmp(noun, "device") == 0 && strcmp(verb, "list") == 0)
        rc = s_device_list(&r);
    else if (strcmp(noun, "event") == 0 && strcmp(verb, "list") == 0)
        rc = s_event_list(&r);
    else if (strcmp(noun, "template") == 0 && strcmp(verb, "add") == 0)
        rc = s_template_add(&r);
    else if (strcmp(noun, "template") == 0 && strcmp(verb, "show") == 0)
        rc = s_template_show(&r);
    else
        rc = s_simple(&r);
    cli_conn_destroy(&r.conn);
    return rc;
}
