/* firmfleetd.c: the controller daemon. Owns one data directory:
 *   controller.db   SQLite store (WAL), schema migrated on start
 *   images/         content-addressed image store
 *   curve.pub/.key  the controller's CURVE keypair, created on first start
 *   admin.sock      the CLI's endpoint (ipc, mode 0600 through the umask)
 * One thread, one zmq_poll loop: ZAP handler, agent ROUTER, admin REP, and
 * the rollout engine's tick about once a second (ctl_rollout.h). Vendor
 * profiles are loaded from --profiles DIR before the sockets open.
 * SIGINT/SIGTERM end the loop; every commit is already durable by then.
 *
 * --metrics ADDR:PORT adds a /metrics responder (ctl_metrics.h) to the same
 * loop. --user NAME: once every socket is bound and the data directory is
 * open, the directory tree is handed to NAME and the process becomes NAME
 * (privdrop.h); without it a controller started as root warns and stays root.
 *
 * --trust-key FILE.pub (repeatable): operator public keys (lib/sign.h) that
 * agents are told to require on every image; the set is mirrored into the
 * store (store_trusted_keys_set), and SiteConfig carries it. The controller
 * only distributes public keys: it never holds a signing key, so it cannot
 * sign an image itself. Without any, images are not checked (a warning).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "ctl.h"
#include "ctl_admin.h"
#include "ctl_link.h"
#include "ctl_metrics.h"
#include "ctl_rollout.h"
#include "hash.h"
#include "log.h"
#include "privdrop.h"
#include "sign.h"
#include "store_link.h"
#include "util.h"
#include "zmqx.h"

#define DEFAULT_PROFILES "/usr/share/firmfleet/profiles"
#define ROLLOUT_TICK_MS 1000
#define EVENT_RETENTION_DEFAULT_S (90LL * 86400)
#define EVENT_RETENTION_MAX_S (3650LL * 86400)
#define EVENT_PRUNE_MS 60000
#define EVENT_PRUNE_MAX 10000

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: firmfleetd [-d DATADIR] [--listen ENDPOINT] [--public-endpoint ENDPOINT]\n"
            "                  [--admin ENDPOINT] [--heartbeat-ms N] [--profiles DIR]\n"
            "                  [--log-level LEVEL] [--metrics ADDR:PORT] [--user NAME]\n"
            "                  [--trust-key FILE.pub]... [--event-retention DURATION]\n"
            "                  [--version] [--help]\n"
            "  -d, --data-dir DIR      data directory (default /var/lib/firmfleet)\n"
            "  -l, --listen EP         where agents connect (default tcp://*:7600)\n"
            "  -p, --public-endpoint EP  endpoint written into agent credentials\n"
            "                          (default: the listen endpoint, * replaced by the host name)\n"
            "  -a, --admin EP          CLI endpoint (default ipc://DATADIR/admin.sock, mode\n"
            "                          0600); tcp://ADDR:PORT is CURVE only, for the keys\n"
            "                          in DATADIR/admin_keys\n"
            "      --heartbeat-ms N    heartbeat interval, 500..60000 (default 5000)\n"
            "      --profiles DIR      vendor profiles loaded at start (default $FF_PROFILES,\n"
            "                          else " DEFAULT_PROFILES ")\n"
            "      --log-level L       debug, info, warn, error (default info)\n"
            "      --metrics ADDR:PORT serve Prometheus metrics at http://ADDR:PORT/metrics\n"
            "      --user NAME         after binding, hand DATADIR to NAME and run as NAME\n"
            "      --trust-key FILE    operator public key (firmfleet key generate) agents\n"
            "                          require on every image (repeatable)\n"
            "      --event-retention D delete events older than D (90d, 12h, 30m, 45s;\n"
            "                          0 keeps them all; default 90d)\n");
}

static int s_bind_sockets(struct ctl *ctl)
{
    ctl->zap = zmq_socket(ctl->zctx, ZMQ_REP);
    if (ctl->zap == NULL || zmq_bind(ctl->zap, "inproc://zeromq.zap.01") < 0) {
        log_error("ctl.zap_bind", "error=\"%s\"", zmq_strerror(errno));
        return -1;
    }
    ctl->router = zmq_socket(ctl->zctx, ZMQ_ROUTER);
    /* receive side: about two agent windows per peer, so a flood of
     * resent events waits in the agent's socket, not in our memory
     * (tests/bench/fleet.sh: 5.7 GiB with 100,000) */
    int one = 1, hwm = 100000, rcvhwm = 5000;
    if (ctl->router == NULL || zmqx_apply_limits(ctl->router, ctl->heartbeat_ms) < 0 ||
        zmq_setsockopt(ctl->router, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
        zmq_setsockopt(ctl->router, ZMQ_CURVE_SECRETKEY, ctl->sec, 40) < 0 ||
        zmq_setsockopt(ctl->router, ZMQ_ZAP_DOMAIN, "firmfleet", 9) < 0 ||
        zmq_setsockopt(ctl->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) < 0 ||
        zmq_setsockopt(ctl->router, ZMQ_SNDHWM, &hwm, sizeof hwm) < 0 ||
        zmq_setsockopt(ctl->router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) < 0) {
        log_error("ctl.router_setup", "error=\"%s\"", zmq_strerror(errno));
        return -1;
    }
    if (zmq_bind(ctl->router, ctl->listen) < 0) {
        log_error("ctl.listen", "endpoint=%s error=\"%s\"", ctl->listen, zmq_strerror(errno));
        return -1;
    }
    /* The admin endpoint: ipc (a socket file of mode 0600: the file system
     * decides who may speak) or tcp, then always a CURVE server whose ZAP
     * admits only the operator keys in DATADIR/admin_keys. Plain tcp is
     * never offered: the CURVE option is set before the bind. */
    int ipc = strncmp(ctl->admin_endpoint, "ipc://", 6) == 0;
    ctl->admin_curve = strncmp(ctl->admin_endpoint, "tcp://", 6) == 0;
    if (!ipc && !ctl->admin_curve) {
        log_error("ctl.admin_bind", "endpoint=%s reason=\"ipc:// or tcp:// expected\"",
                  ctl->admin_endpoint);
        return -1;
    }
    ctl->admin = zmq_socket(ctl->zctx, ZMQ_REP);
    if (ctl->admin == NULL || zmqx_apply_limits(ctl->admin, 0) < 0 ||
        zmq_setsockopt(ctl->admin, ZMQ_ZAP_DOMAIN, "admin", 5) < 0 ||
        (ctl->admin_curve && (zmq_setsockopt(ctl->admin, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
                              zmq_setsockopt(ctl->admin, ZMQ_CURVE_SECRETKEY, ctl->sec, 40) < 0))) {
        log_error("ctl.admin_setup", "error=\"%s\"", zmq_strerror(errno));
        return -1;
    }
    if (ipc)
        unlink(ctl->admin_endpoint + 6); /* a stale socket from a killed run */
    if (zmq_bind(ctl->admin, ctl->admin_endpoint) < 0) {
        log_error("ctl.admin_bind", "endpoint=%s error=\"%s\"", ctl->admin_endpoint,
                  zmq_strerror(errno));
        return -1;
    }
    if (ipc && chmod(ctl->admin_endpoint + 6, 0600) < 0) {
        log_error("ctl.admin_bind", "endpoint=%s error=\"chmod 0600: %s\"", ctl->admin_endpoint,
                  strerror(errno));
        return -1;
    }
    if (ctl->admin_curve) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/admin_keys", ctl->datadir);
        if (access(path, R_OK) < 0)
            log_warn("ctl.admin_keys",
                     "path=%s reason=\"no admin keys: every CLI is refused at the handshake "
                     "(firmfleet key generate --curve)\"",
                     path);
        log_info("ctl.admin_curve", "endpoint=%s keys=%s server_key=%s", ctl->admin_endpoint, path,
                 ctl->pub);
    }
    return 0;
}

static void s_default_public(struct ctl *ctl)
{
    const char *star = strstr(ctl->listen, "://*:");
    const char *any = strstr(ctl->listen, "://0.0.0.0:");
    if (star == NULL && any == NULL) {
        snprintf(ctl->public_endpoint, sizeof ctl->public_endpoint, "%s", ctl->listen);
        return;
    }
    char host[128] = "localhost";
    gethostname(host, sizeof host - 1);
    const char *port = strrchr(ctl->listen, ':');
    snprintf(ctl->public_endpoint, sizeof ctl->public_endpoint, "tcp://%s%s", host, port);
}

/* Event retention: every EVENT_PRUNE_MS (a quarter of the retention when
 * that is shorter), one delete of at most EVENT_PRUNE_MAX of the oldest
 * rows that are due, and the next one at once while a full batch came back,
 * so a backlog (a first start with years of events) drains in bounded steps
 * between I/O instead of one long transaction. Returns ms until the next. */
static uint64_t s_prune_events(struct ctl *ctl)
{
    uint64_t every = (uint64_t)ctl->event_retention_s * 1000 / 4;
    if (every > EVENT_PRUNE_MS)
        every = EVENT_PRUNE_MS;
    if (every < 250)
        every = 250;
    uint64_t now = util_now_ms(), keep = (uint64_t)ctl->event_retention_s * 1000;
    if (now <= keep)
        return every;
    int n = store_event_prune(ctl->st, now - keep, EVENT_PRUNE_MAX);
    if (n < 0) {
        log_error("ctl.events_prune_failed", "error=%d", n);
        return every;
    }
    if (n > 0)
        log_info("ctl.events_pruned", "rows=%d retention_s=%lld", n,
                 (long long)ctl->event_retention_s);
    return n == EVENT_PRUNE_MAX ? 0 : every;
}

static double s_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* m may be NULL (no --metrics): then nothing is timed or polled for it. */
static void s_run(struct ctl *ctl, ctl_metrics_t *m)
{
    zmq_pollitem_t items[3 + CTL_METRICS_POLLITEMS] = {
        {ctl->zap, 0, ZMQ_POLLIN, 0},
        {ctl->router, 0, ZMQ_POLLIN, 0},
        {ctl->admin, 0, ZMQ_POLLIN, 0},
    };
    int wait_ms = 0;
    uint64_t next_tick = 0, next_prune = 0;
    while (!s_stop) {
        int n_m = m ? ctl_metrics_poll_items(m, items + 3) : 0;
        if (m)
            wait_ms = ctl_metrics_wait_ms(m, wait_ms);
        int rc = zmq_poll(items, 3 + n_m, wait_ms);
        if (rc < 0 && errno != EINTR) {
            log_error("ctl.poll", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
        double t0;
        if (rc > 0) {
            if (items[0].revents & ZMQ_POLLIN) {
                t0 = s_secs();
                ctl_link_on_zap(ctl->link);
                ctl_metrics_observe(m, CTL_MH_ZAP, s_secs() - t0);
            }
            if (items[1].revents & ZMQ_POLLIN) {
                t0 = s_secs();
                ctl_link_on_router(ctl->link);
                ctl_metrics_observe(m, CTL_MH_ROUTER, s_secs() - t0);
            }
            if (items[2].revents & ZMQ_POLLIN) {
                t0 = s_secs();
                ctl_admin_on_request(ctl);
                ctl_metrics_observe(m, CTL_MH_ADMIN, s_secs() - t0);
                ctl_metrics_admin_request(m);
            }
        }
        if (m) /* also when nothing was readable: deadlines */
            ctl_metrics_on_poll(m, items + 3, rc > 0 ? n_m : 0);
        wait_ms = ctl_link_tick(ctl->link);
        /* the rollout engine: about once a second, its own transaction */
        uint64_t now = util_mono_ms();
        if (now >= next_tick) {
            t0 = s_secs();
            int more = rollout_tick(ctl, util_now_ms());
            ctl_metrics_observe(m, CTL_MH_ROLLOUT, s_secs() - t0);
            /* a wave larger than one bounded turn: go on after serving I/O */
            next_tick = now + (more > 0 ? 0 : ROLLOUT_TICK_MS);
        }
        if ((uint64_t)wait_ms > next_tick - now)
            wait_ms = (int)(next_tick - now);
        if (ctl->event_retention_s > 0) {
            if (now >= next_prune)
                next_prune = now + s_prune_events(ctl);
            if ((uint64_t)wait_ms > next_prune - now)
                wait_ms = (int)(next_prune - now);
        }
    }
}

/* Reads the --trust-key files and makes them the store's trusted set. 0 or
 * -1 (logged). */
static int s_trust_keys(store_t *st, const char *const *paths, int n)
{
    char hex[SIGN_MAX_KEYS][SIGN_PK_HEX + 1];
    const char *v[SIGN_MAX_KEYS];
    for (int i = 0; i < n; i++) {
        uint8_t pk[SIGN_PK_LEN];
        int rc = sign_read_pub(paths[i], pk);
        if (rc < 0) {
            log_error("ctl.trust_key", "path=%s error=\"%s\"", paths[i],
                      rc == -EINVAL ? "not a public key (64 hex digits)" : strerror(-rc));
            return -1;
        }
        util_hex(pk, SIGN_PK_LEN, hex[i]);
        v[i] = hex[i];
        char id[SIGN_ID_HEX + 1];
        sign_key_id(pk, id);
        log_info("ctl.trust_key", "key=%s path=%s", id, paths[i]);
    }
    int changed = 0;
    int rc = store_trusted_keys_set(st, v, (size_t)n, &changed);
    if (rc < 0) {
        log_error("ctl.trust_key", "error=\"cannot store the trusted keys: %s\"", strerror(-rc));
        return -1;
    }
    if (changed)
        log_info("ctl.trust_keys_changed", "keys=%d reason=\"every site gets a new configuration\"",
                 n);
    if (n == 0)
        log_warn("ctl.unsigned_images",
                 "reason=\"no --trust-key: agents do not check image signatures unless they "
                 "pin keys themselves\"");
    return 0;
}

int main(int argc, char **argv)
{
    static struct ctl ctl;
    const char *datadir = "/var/lib/firmfleet";
    const char *listen = "tcp://*:7600", *public_ep = NULL, *admin = NULL, *profiles = NULL;
    const char *metrics_addr = NULL, *user = NULL;
    const char *trust[SIGN_MAX_KEYS];
    int n_trust = 0;
    int64_t hb = ZMQX_HEARTBEAT_MS;
    int64_t retention = EVENT_RETENTION_DEFAULT_S;
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"public-endpoint", required_argument, NULL, 'p'},
        {"admin", required_argument, NULL, 'a'},
        {"heartbeat-ms", required_argument, NULL, 'H'},
        {"log-level", required_argument, NULL, 'L'},
        {"profiles", required_argument, NULL, 'P'},
        {"metrics", required_argument, NULL, 'M'},
        {"user", required_argument, NULL, 'U'},
        {"trust-key", required_argument, NULL, 'T'},
        {"event-retention", required_argument, NULL, 'R'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    log_set_component("firmfleetd");
    while ((c = getopt_long(argc, argv, "d:l:p:a:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': datadir = optarg; break;
        case 'l': listen = optarg; break;
        case 'p': public_ep = optarg; break;
        case 'a': admin = optarg; break;
        case 'P': profiles = optarg; break;
        case 'M': metrics_addr = optarg; break;
        case 'U': user = optarg; break;
        case 'T':
            if (n_trust >= SIGN_MAX_KEYS) {
                fprintf(stderr, "firmfleetd: at most %d --trust-key\n", SIGN_MAX_KEYS);
                return 2;
            }
            trust[n_trust++] = optarg;
            break;
        case 'R':
            if (strcmp(optarg, "0") == 0) {
                retention = 0;
            } else if (util_parse_duration(optarg, 1, EVENT_RETENTION_MAX_S, &retention) < 0) {
                fprintf(stderr,
                        "firmfleetd: --event-retention must be 0 or a duration from 1s to 3650d "
                        "(e.g. 90d, 12h, 1h30m), got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'H':
            if (util_parse_i64(optarg, 500, 60000, &hb) < 0) {
                fprintf(stderr, "firmfleetd: --heartbeat-ms must be 500..60000\n");
                return 2;
            }
            break;
        case 'L': {
            int lv = log_parse_level(optarg);
            if (lv < 0) {
                fprintf(stderr, "firmfleetd: unknown log level '%s'\n", optarg);
                return 2;
            }
            log_set_level((enum log_level)lv);
            break;
        }
        case 'V': printf("firmfleetd %s\n", FF_VERSION); return 0;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "firmfleetd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (strlen(datadir) >= sizeof ctl.datadir || strlen(listen) >= sizeof ctl.listen ||
        (public_ep && strlen(public_ep) >= sizeof ctl.public_endpoint) ||
        (admin && strlen(admin) >= sizeof ctl.admin_endpoint)) {
        fprintf(stderr, "firmfleetd: an argument is too long\n");
        return 2;
    }
    struct sockaddr_storage msa;
    socklen_t msalen;
    if (metrics_addr && metrics_parse_listen(metrics_addr, &msa, &msalen) < 0) {
        fprintf(stderr, "firmfleetd: --metrics: ADDR:PORT expected, e.g. 127.0.0.1:9460\n");
        return 2;
    }
    struct privdrop_user pu;
    char perr[512];
    if (user && privdrop_lookup(user, &pu, perr, sizeof perr) < 0) {
        fprintf(stderr, "firmfleetd: %s\n", perr);
        return 2;
    }
    if (user && privdrop_check_dir(datadir, &pu, perr, sizeof perr) < 0) {
        log_error("ctl.user", "user=%s reason=\"%s\"", user, perr);
        return 1;
    }
    if (user == NULL && geteuid() == 0)
        log_warn("ctl.root",
                 "reason=\"running as root; --user NAME drops privileges after start\"");
    umask(077);
    snprintf(ctl.datadir, sizeof ctl.datadir, "%s", datadir);
    snprintf(ctl.listen, sizeof ctl.listen, "%s", listen);
    ctl.heartbeat_ms = (int)hb;
    ctl.event_retention_s = retention;
    if (public_ep)
        snprintf(ctl.public_endpoint, sizeof ctl.public_endpoint, "%s", public_ep);
    else
        s_default_public(&ctl);
    if (admin)
        snprintf(ctl.admin_endpoint, sizeof ctl.admin_endpoint, "%s", admin);
    else
        snprintf(ctl.admin_endpoint, sizeof ctl.admin_endpoint, "ipc://%s/admin.sock", datadir);

    if (hash_init() < 0 || !zmq_has("curve")) {
        log_error("ctl.init", "reason=\"libsodium or CURVE support missing\"");
        return 1;
    }
    int rc = util_mkdir_p(datadir, 0700);
    if (rc < 0) {
        log_error("ctl.datadir", "path=%s error=\"%s\"", datadir, strerror(-rc));
        return 1;
    }
    /* DATADIR holds the CURVE secret key, the store and the admin socket:
     * anyone who may write there may replace them */
    struct stat dsb;
    memset(&dsb, 0, sizeof dsb);
    if (stat(datadir, &dsb) < 0 || !S_ISDIR(dsb.st_mode) || (dsb.st_mode & 022) != 0) {
        log_error("ctl.datadir",
                  "path=%s mode=%04o reason=\"not a directory, or writable by group or "
                  "others (chmod 0700 it)\"",
                  datadir, (unsigned)(dsb.st_mode & 07777));
        return 1;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/controller.db", datadir);
    if (store_open(path, &ctl.st) < 0)
        return 1;
    if (s_trust_keys(ctl.st, trust, n_trust) < 0)
        return 1;
    /* vendor profiles: a given directory must exist; the default may not */
    int profiles_given = profiles != NULL;
    if (profiles == NULL) {
        const char *env = getenv("FF_PROFILES");
        profiles_given = env != NULL && *env != '\0';
        profiles = profiles_given ? env : DEFAULT_PROFILES;
    }
    if (rollout_profiles_load(ctl.st, profiles, profiles_given) < 0) {
        log_error("ctl.profiles_dir", "dir=%s reason=\"cannot read the profiles directory\"",
                  profiles);
        return 1;
    }
    snprintf(path, sizeof path, "%s/images", datadir);
    if ((rc = imgstore_open(path, &ctl.img)) < 0) {
        log_error("ctl.images", "path=%s error=\"%s\"", path, strerror(-rc));
        return 1;
    }
    if ((rc = zmqx_keypair_load_or_create(datadir, "curve", ctl.pub, ctl.sec)) < 0) {
        log_error("ctl.keypair", "dir=%s error=\"%s\"", datadir, strerror(-rc));
        return 1;
    }
    ctl.zctx = zmq_ctx_new();
    if (ctl.zctx == NULL || ctl_link_new(&ctl, &ctl.link) < 0 || s_bind_sockets(&ctl) < 0)
        return 1;
    ctl_metrics_t *metrics = NULL;
    if (metrics_addr && ctl_metrics_new(&ctl, metrics_addr, &metrics) < 0)
        return 1;
    if (user) {
        /* everything that needs root is bound and open: hand over the tree */
        if (privdrop_chown_tree(datadir, &pu, perr, sizeof perr) < 0 ||
            privdrop_apply(&pu, perr, sizeof perr) < 0) {
            log_error("ctl.user", "user=%s reason=\"%s\"", user, perr);
            return 1;
        }
        log_info("ctl.user", "user=%s uid=%u gid=%u", user, (unsigned)pu.uid, (unsigned)pu.gid);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    log_info("ctl.start", "version=%s datadir=%s listen=%s public=%s admin=%s key=%s",
             FF_VERSION, datadir, ctl.listen, ctl.public_endpoint, ctl.admin_endpoint, ctl.pub);
    s_run(&ctl, metrics);
    log_info("ctl.stop", "datadir=%s", datadir);

    ctl_metrics_destroy(&metrics);
    zmq_close(ctl.router);
    zmq_close(ctl.admin);
    zmq_close(ctl.zap);
    zmq_ctx_term(ctl.zctx);
    ctl_link_destroy(&ctl.link);
    imgstore_destroy(&ctl.img);
    store_destroy(&ctl.st);
    return 0;
}
