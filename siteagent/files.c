/* files.c: the file resolver TFTP and HTTP share (see files.h for the lookup
 * order and the invariants).
 *
 * Containment: every root lookup goes through openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS) relative to a directory fd opened once, so the
 * kernel, not string checks, keeps a name (or a symlink inside the root)
 * from leaving the root; files_clean refuses `..` beforehand anyway so the
 * refusal can be logged as what it is. Case-insensitive lookup walks the
 * directories component by component under the same rule.
 * Cost: a template or image lookup is a linear scan of the site
 * configuration (tens of entries); a root lookup is one openat2.
 */
#define _GNU_SOURCE
#include "files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "imgcache.h"
#include "log.h"
#include "provision.h"
#include "services.h"
#include "util.h"

struct files {
    struct agent *a;
    int root_fd;
    int nocase;
    uint64_t upload_max;
    char root[PATH_MAX - 64];
};

/* One pass of files_clean; a pass can leave what the next pass changes
 * ("a /." gives "a ", whose trailing blank the next pass drops). */
static int s_clean_once(char *name)
{
    size_t len = strlen(name);
    while (len > 0 && strchr(" \r\n/\\", name[len - 1]) != NULL)
        name[--len] = '\0';
    /* the leading separators are dropped below: they do not count */
    if (len == 0 || len - strspn(name, "/\\") > FILES_NAME_MAX)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return -EINVAL;
        if (c == '\\')
            name[i] = '/';
    }
    /* rebuild component by component: drop empty and "." components */
    char out[FILES_NAME_MAX + 1];
    size_t o = 0;
    char *save = NULL;
    for (char *part = strtok_r(name, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0)
            return -EINVAL;
        size_t pl = strlen(part);
        if (o + (o > 0) + pl > FILES_NAME_MAX)
            return -EINVAL;
        if (o > 0)
            out[o++] = '/';
        memcpy(out + o, part, pl);
        o += pl;
    }
    if (o == 0)
        return -EINVAL;
    out[o] = '\0';
    memcpy(name, out, o + 1);
    return 0;
}

int files_clean(char *name)
{
    /* to a fixed point, so that cleaning a cleaned name changes nothing
     * (fuzz_path); every pass that changes the name shortens it */
    char before[FILES_NAME_MAX + 1];
    for (int pass = 0; pass <= FILES_NAME_MAX; pass++) {
        size_t n = strlen(name);
        if (pass > 0)
            memcpy(before, name, n + 1);
        int rc = s_clean_once(name);
        if (rc < 0)
            return rc;
        if (pass > 0 && strcmp(before, name) == 0)
            return 0;
    }
    return -EINVAL;
}

static int s_openat2(int dirfd, const char *path, int flags)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd < 0)
        return errno == EXDEV || errno == ELOOP ? -EACCES : -errno;
    return (int)fd;
}

/* Finds `name` under dirfd with every component matched case-insensitively.
 * Writes the real relative path into real. 0, -ENOENT or -errno. */
static int s_nocase(int dirfd, const char *name, char *real, size_t n)
{
    char work[PATH_MAX];
    if (strlen(name) >= sizeof work)
        return -ENAMETOOLONG;
    memcpy(work, name, strlen(name) + 1);
    size_t o = 0;
    real[0] = '\0';
    char *save = NULL;
    for (char *part = strtok_r(work, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        int d = s_openat2(dirfd, o ? real : ".", O_RDONLY | O_DIRECTORY);
        if (d < 0)
            return d;
        DIR *dir = fdopendir(d);
        if (dir == NULL) {
            close(d);
            return -errno;
        }
        const char *found = NULL;
        struct dirent *de;
        while ((de = readdir(dir)) != NULL)
            if (strcasecmp(de->d_name, part) == 0) {
                found = de->d_name;
                break;
            }
        int rc = 0;
        if (found == NULL)
            rc = -ENOENT;
        else if (o + strlen(found) + 2 > n)
            rc = -ENAMETOOLONG;
        else
            o += (size_t)snprintf(real + o, n - o, "%s%s", o ? "/" : "", found);
        closedir(dir);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const Firmfleet__DeviceRef *s_device(const Firmfleet__SiteConfig *sc, const uint8_t mac[6])
{
    if (sc == NULL || mac == NULL)
        return NULL;
    char m[18];
    util_mac_format(mac, m);
    for (size_t i = 0; i < sc->n_devices; i++)
        if (sc->devices[i]->mac && strcasecmp(sc->devices[i]->mac, m) == 0)
            return sc->devices[i];
    return NULL;
}

/* Does `name` match template pattern `pat` ({mac} or {MAC} stands for 12 hex
 * digits, at most one)? With mac known the digits must be that MAC; with
 * mac unknown they are taken from the name into got. 1 match, 0 not. */
static int s_name_match(const char *pat, const char *name, int nocase, const uint8_t *mac,
                        uint8_t got[6])
{
    const char *tok = strstr(pat, "{mac}");
    if (tok == NULL)
        tok = strstr(pat, "{MAC}");
    if (tok == NULL)
        return nocase ? strcasecmp(pat, name) == 0 : strcmp(pat, name) == 0;
    size_t pre = (size_t)(tok - pat), post = strlen(tok + 5), nl = strlen(name);
    if (nl != pre + 12 + post)
        return 0;
    int (*cmp)(const char *, const char *, size_t) = nocase ? strncasecmp : strncmp;
    if (cmp(pat, name, pre) != 0 || cmp(tok + 5, name + pre + 12, post) != 0)
        return 0;
    char hex[13];
    memcpy(hex, name + pre, 12);
    hex[12] = '\0';
    uint8_t m[6];
    if (util_mac_parse(hex, m) < 0)
        return 0;
    if (mac != NULL && memcmp(mac, m, 6) != 0)
        return 0;
    memcpy(got, m, 6);
    return 1;
}

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static int s_put(struct buf *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

/* Renders a template body for one device: {{mac}} {{MAC}} {{ip}} {{model}}
 * {{serial}} {{site}}; anything else in braces is kept as written. */
static int s_render(const ProtobufCBinaryData *body, const uint8_t mac[6],
                    const Firmfleet__DeviceRef *dev, const char *site, uint32_t ip_be,
                    struct buf *out)
{
    char maclo[13] = "", macup[13] = "", ip[16] = "";
    if (mac) {
        util_hex(mac, 6, maclo);
        for (int i = 0; i < 12; i++)
            macup[i] = (char)toupper((unsigned char)maclo[i]);
        macup[12] = '\0';
    }
    if (dev && dev->ip && dev->ip[0])
        snprintf(ip, sizeof ip, "%s", dev->ip);
    else if (ip_be) {
        const uint8_t *b = (const uint8_t *)&ip_be;
        snprintf(ip, sizeof ip, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    }
    struct {
        const char *key, *val;
    } vars[] = {
        {"{{mac}}", maclo},
        {"{{MAC}}", macup},
        {"{{ip}}", ip},
        {"{{model}}", dev && dev->model ? dev->model : ""},
        {"{{serial}}", dev && dev->serial ? dev->serial : ""},
        {"{{site}}", site ? site : ""},
    };
    /* one allocation in the common case: the body plus room for the values */
    size_t want = body->len + 256;
    if (out->cap < want) {
        uint8_t *np = realloc(out->p, want);
        if (np == NULL)
            return -ENOMEM;
        out->p = np;
        out->cap = want;
    }
    if (body->len == 0)
        return 0; /* an empty template (its data may be NULL: no pointer arithmetic) */
    const uint8_t *p = body->data, *end = body->data + body->len;
    while (p < end) {
        const uint8_t *brace = memchr(p, '{', (size_t)(end - p));
        if (brace == NULL) {
            if (s_put(out, p, (size_t)(end - p)) < 0)
                return -ENOMEM;
            break;
        }
        if (s_put(out, p, (size_t)(brace - p)) < 0)
            return -ENOMEM;
        size_t left = (size_t)(end - brace), i = 0;
        if (left < 2 || brace[1] != '{')
            i = sizeof vars / sizeof vars[0]; /* a lone brace: not a variable */
        for (; i < sizeof vars / sizeof vars[0]; i++) {
            size_t kl = strlen(vars[i].key);
            if (left >= kl && memcmp(brace, vars[i].key, kl) == 0) {
                if (s_put(out, vars[i].val, strlen(vars[i].val)) < 0)
                    return -ENOMEM;
                p = brace + kl;
                break;
            }
        }
        if (i == sizeof vars / sizeof vars[0]) {
            if (s_put(out, brace, 1) < 0)
                return -ENOMEM;
            p = brace + 1;
        }
    }
    return 0;
}

static int s_from_fd(int fd, const char *origin, struct files_src *out)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -EACCES;
    }
    out->fd = fd;
    out->data = NULL;
    out->size = (uint64_t)st.st_size;
    out->origin = origin;
    return 0;
}

int files_open(struct agent *a, const char *name, uint32_t client_ip_be, const uint8_t *mac,
               struct files_src *out)
{
    struct files_req rq = {.name = name, .client_ip_be = client_ip_be, .mac = mac};
    return files_open_req(a, &rq, out);
}

int files_open_req(struct agent *a, const struct files_req *rq, struct files_src *out)
{
    const char *name = rq->name;
    uint32_t client_ip_be = rq->client_ip_be;
    const uint8_t *mac = rq->mac;
    memset(out, 0, sizeof *out);
    out->fd = -1;
    struct files *f = a->files;
    if (f == NULL)
        return -ENOSYS;
    if (name == NULL || name[0] == '\0' || name[0] == '/' || strlen(name) > FILES_NAME_MAX)
        return -EINVAL;
    const Firmfleet__SiteConfig *sc = agent_config(a);
    uint8_t known[6];
    if (mac == NULL && client_ip_be != 0 && agent_mac_for_ip(a, client_ip_be, known) == 1)
        mac = known;

    /* 0. the device's profile and its Assignment */
    struct prov_fctx fc = {.name = name,
                           .mac = mac,
                           .client_ip_be = client_ip_be,
                           .local_ip_be = rq->local_ip_be,
                           .nocase = f->nocase};
    int prc = prov_file_open(a, &fc, out);
    if (prc == 1)
        return 0;
    if (prc < 0) {
        memset(out, 0, sizeof *out);
        out->fd = -1;
        return prc;
    }

    /* 1. virtual files rendered per device */
    for (size_t i = 0; sc && i < sc->n_files; i++) {
        const Firmfleet__FileTemplate *t = sc->files[i];
        uint8_t got[6];
        if (t->name == NULL || !s_name_match(t->name, name, f->nocase, mac, got))
            continue;
        const uint8_t *who = strstr(t->name, "{mac}") || strstr(t->name, "{MAC}") ? got : mac;
        struct buf b = {0};
        if (s_render(&t->body, who, s_device(sc, who), sc->site, client_ip_be, &b) < 0) {
            free(b.p);
            return -ENOMEM;
        }
        out->data = b.p ? b.p : malloc(1);
        if (out->data == NULL)
            return -ENOMEM;
        out->size = b.len;
        out->origin = "template";
        return 0;
    }
    /* 2. images from the cache, by the name the site configuration gives them */
    for (size_t i = 0; sc && i < sc->n_images; i++) {
        const Firmfleet__ImageRef *r = sc->images[i];
        if (r->name == NULL || r->sha256.len != 32 ||
            (f->nocase ? strcasecmp(r->name, name) : strcmp(r->name, name)) != 0)
            continue;
        /* signature and on-disk checks when signing is on (imgcache.h) */
        int fd = -1, irc = imgcache_open(a, r, &fd);
        if (irc == 0)
            return s_from_fd(fd, "image", out);
        if (irc == -EPERM || irc == -EBADMSG)
            return -EACCES; /* refused: never a same-named root file instead */
        /* not in the cache yet: fall through to the root */
    }
    /* 3. the root: the pinned class's directory first, then the root */
    const Firmfleet__DeviceRef *dev = s_device(sc, mac);
    char path[PATH_MAX];
    for (int pass = 0; pass < 2; pass++) {
        const char *sub = NULL;
        if (pass == 0) {
            for (size_t i = 0; dev && dev->class_ && dev->class_[0] && i < sc->n_classes; i++)
                if (sc->classes[i]->name && strcmp(sc->classes[i]->name, dev->class_) == 0 &&
                    sc->classes[i]->tftp_root && sc->classes[i]->tftp_root[0])
                    sub = sc->classes[i]->tftp_root;
            if (sub == NULL)
                continue;
            snprintf(path, sizeof path, "%s/%s", sub, name);
        } else {
            snprintf(path, sizeof path, "%s", name);
        }
        int fd = s_openat2(f->root_fd, path, O_RDONLY | O_NONBLOCK);
        if (fd == -ENOENT && f->nocase) {
            char real[PATH_MAX];
            if (s_nocase(f->root_fd, path, real, sizeof real) == 0)
                fd = s_openat2(f->root_fd, real, O_RDONLY | O_NONBLOCK);
        }
        if (fd >= 0)
            return s_from_fd(fd, "root", out);
        if (fd != -ENOENT && fd != -ENOTDIR)
            return fd;
    }
    return -ENOENT;
}

void files_src_close(struct files_src *src)
{
    if (src == NULL)
        return;
    if (src->fd >= 0)
        close(src->fd);
    free(src->data);
    src->fd = -1;
    src->data = NULL;
}

int files_upload_dir(struct agent *a, const uint8_t mac[6], char *out, size_t n, uint64_t *cap)
{
    struct files *f = a->files;
    if (f == NULL)
        return -ENOSYS;
    char hex[13];
    util_hex(mac, 6, hex);
    if (snprintf(out, n, "%s/uploads/%s", a->state_dir, hex) >= (int)n)
        return -ENAMETOOLONG;
    *cap = f->upload_max;
    return util_mkdir_p(out, 0750);
}

static void s_stop(void *self)
{
    struct files *f = self;
    if (f->a->files == f)
        f->a->files = NULL;
    if (f->root_fd >= 0)
        close(f->root_fd);
    free(f);
}

int files_start(struct agent *a, const struct svc_opts *o)
{
    if (a->files != NULL)
        return 0;
    struct files *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    f->a = a;
    f->nocase = o->nocase;
    f->upload_max = o->upload_max;
    if (o->files_root)
        snprintf(f->root, sizeof f->root, "%s", o->files_root);
    else
        snprintf(f->root, sizeof f->root, "%s/files", a->state_dir);
    int rc = util_mkdir_p(f->root, 0755);
    f->root_fd = rc < 0 ? -1 : open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->root_fd < 0) {
        rc = rc < 0 ? rc : -errno;
        log_error("files.root", "path=%s error=\"%s\"", f->root, strerror(-rc));
        free(f);
        return rc;
    }
    struct agent_service svc = {.name = "files", .self = f, .stop = s_stop};
    if ((rc = agent_add_service(a, &svc)) < 0) {
        close(f->root_fd);
        free(f);
        return rc;
    }
    a->files = f;
    log_info("files.start", "root=%s nocase=%d upload_max=%llu", f->root, f->nocase,
             (unsigned long long)f->upload_max);
    return 0;
}
