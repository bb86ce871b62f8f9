/* agent_main.c: firmfleet-agent, the site agent: options, credential, and
 * the loop (everything else is in libagent.a).
 *
 * --metrics ADDR:PORT serves /metrics (metrics_http.h). --user NAME: once
 * every service socket is bound (DHCP's port and packet socket, TFTP, HTTP,
 * metrics) and the state directory is open, the state directory tree is
 * handed to NAME and the process becomes NAME (privdrop.h); nothing opened
 * later needs privileges (TFTP transfers and SIP NOTIFY use ephemeral ports).
 * Started as root without --user, it warns and stays root.
 *
 * Exit status: 0 after SIGINT/SIGTERM, 1 on a runtime failure (state
 * directory, journal, sockets), 2 on bad usage or a bad credential file.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "services.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "privdrop.h"
#include "sign.h"
#include "util.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: firmfleet-agent -c CREDFILE -s STATEDIR [--image-rate RATE]\n"
               "                       [--clock-offset SECONDS] [--sip-port PORT]\n"
               "                       [--synth-events N [--synth-rate R]]\n"
               "                       [--log-level debug|info|warn|error]\n"
               "                       [--metrics ADDR:PORT] [--user NAME]\n"
               "                       [--trust-key FILE.pub]...\n"
               "                       [--version] [--help]\n"
               "  -c, --cred FILE        credential written by `firmfleet agent enroll`\n"
               "  -s, --state DIR        state directory (journal.db, cache/)\n"
               "  --image-rate RATE      image pull limit in bytes/s (K, M, G suffixes; 0 = "
               "unlimited)\n"
               "  --synth-events N       journal N synthetic events in total (load generator)\n"
               "  --synth-rate R         make at most R synthetic events per second (0 = no "
               "limit)\n"
               "  --log-level LEVEL      debug, info (default), warn, error\n"
               "  --dhcp IFACE           serve DHCP on IFACE (repeatable)\n"
               "  --dhcp-port PORT       DHCP server port (default 67; clients at PORT+1)\n"
               "  --tftp ADDR[:PORT]     serve TFTP on ADDR (default port 69; repeatable)\n"
               "  --http ADDR:PORT       serve HTTP on ADDR:PORT (repeatable)\n"
               "  --files-root DIR       files served by TFTP and HTTP (default STATEDIR/files)\n"
               "  --files-nocase         match file names case-insensitively\n"
               "  --upload-max SIZE      HTTP PUT area per device (default 1M)\n"
               "  --clock-offset SECONDS add this (signed) to the wall clock for rollout windows\n"
               "                         and boot grace (default 0)\n"
               "  --sip-port PORT        the devices' SIP port for NOTIFY (default 5060)\n"
               "  --metrics ADDR:PORT    serve Prometheus metrics at http://ADDR:PORT/metrics\n"
               "  --user NAME            after binding, hand STATEDIR to NAME and run as NAME\n"
               "  --trust-key FILE.pub   serve only images signed by this key (repeatable);\n"
               "                         pins the keys: the controller's are then ignored\n");
}

int main(int argc, char **argv)
{
    enum {
        OPT_RATE = 256,
        OPT_SYNTH,
        OPT_SYNTH_RATE,
        OPT_LEVEL,
        OPT_VERSION,
        OPT_DHCP,
        OPT_DHCP_PORT,
        OPT_TFTP,
        OPT_HTTP,
        OPT_FILES_ROOT,
        OPT_NOCASE,
        OPT_UPLOAD_MAX,
        OPT_CLOCK_OFFSET,
        OPT_SIP_PORT,
        OPT_METRICS,
        OPT_USER,
        OPT_TRUST_KEY,
    };
    static const struct option opts[] = {
        {"cred", required_argument, NULL, 'c'},
        {"state", required_argument, NULL, 's'},
        {"image-rate", required_argument, NULL, OPT_RATE},
        {"synth-events", required_argument, NULL, OPT_SYNTH},
        {"synth-rate", required_argument, NULL, OPT_SYNTH_RATE},
        {"log-level", required_argument, NULL, OPT_LEVEL},
        {"dhcp", required_argument, NULL, OPT_DHCP},
        {"dhcp-port", required_argument, NULL, OPT_DHCP_PORT},
        {"tftp", required_argument, NULL, OPT_TFTP},
        {"http", required_argument, NULL, OPT_HTTP},
        {"files-root", required_argument, NULL, OPT_FILES_ROOT},
        {"files-nocase", no_argument, NULL, OPT_NOCASE},
        {"upload-max", required_argument, NULL, OPT_UPLOAD_MAX},
        {"clock-offset", required_argument, NULL, OPT_CLOCK_OFFSET},
        {"sip-port", required_argument, NULL, OPT_SIP_PORT},
        {"metrics", required_argument, NULL, OPT_METRICS},
        {"user", required_argument, NULL, OPT_USER},
        {"trust-key", required_argument, NULL, OPT_TRUST_KEY},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    log_set_component("agent");
    const char *cred_path = NULL, *metrics_addr = NULL, *user = NULL;
    struct agent_opts ao = {0};
    struct svc_opts so = {.dhcp_port = 67, .upload_max = 1u << 20};
    int c, level;
    int64_t n;
    while ((c = getopt_long(argc, argv, "c:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cred_path = optarg;
            break;
        case 's':
            ao.state_dir = optarg;
            break;
        case OPT_RATE:
            if (util_parse_size(optarg, &ao.image_rate) < 0) {
                fprintf(stderr, "firmfleet-agent: --image-rate: not a size: %s\n", optarg);
                return 2;
            }
            break;
        case OPT_SYNTH:
            if (util_parse_i64(optarg, 0, 1000000000, &n) < 0) {
                fprintf(stderr, "firmfleet-agent: --synth-events: not a number in 0..1e9: %s\n",
                        optarg);
                return 2;
            }
            ao.synth_events = (uint64_t)n;
            break;
        case OPT_SYNTH_RATE:
            if (util_parse_i64(optarg, 0, 10000000, &n) < 0) {
                fprintf(stderr, "firmfleet-agent: --synth-rate: not a number in 0..1e7: %s\n",
                        optarg);
                return 2;
            }
            ao.synth_rate = (uint64_t)n;
            break;
        case OPT_LEVEL:
            if ((level = log_parse_level(optarg)) < 0) {
                fprintf(stderr, "firmfleet-agent: --log-level: one of debug, info, warn, error\n");
                return 2;
            }
            log_set_level((enum log_level)level);
            break;
        case OPT_DHCP:
        case OPT_TFTP:
        case OPT_HTTP: {
            const char **list = c == OPT_DHCP ? so.dhcp_ifaces
                                : c == OPT_TFTP ? so.tftp_listen
                                                : so.http_listen;
            size_t *cnt = c == OPT_DHCP ? &so.n_dhcp : c == OPT_TFTP ? &so.n_tftp : &so.n_http;
            const char *what = c == OPT_DHCP ? "dhcp" : c == OPT_TFTP ? "tftp" : "http";
            if (*cnt >= SVC_MAX_LISTEN || optarg[0] == '\0') {
                fprintf(stderr, "firmfleet-agent: --%s: at most %d, each non-empty\n", what,
                        SVC_MAX_LISTEN);
                return 2;
            }
            list[(*cnt)++] = optarg;
            break;
        }
        case OPT_DHCP_PORT:
            if (util_parse_i64(optarg, 1, 65534, &n) < 0) {
                fprintf(stderr, "firmfleet-agent: --dhcp-port: a port in 1..65534: %s\n", optarg);
                return 2;
            }
            so.dhcp_port = (uint16_t)n;
            break;
        case OPT_FILES_ROOT:
            so.files_root = optarg;
            break;
        case OPT_NOCASE:
            so.nocase = 1;
            break;
        case OPT_UPLOAD_MAX:
            if (util_parse_size(optarg, &so.upload_max) < 0) {
                fprintf(stderr, "firmfleet-agent: --upload-max: not a size: %s\n", optarg);
                return 2;
            }
            break;
        case OPT_CLOCK_OFFSET:
            /* ten years either way: enough for any test, far from overflow */
            if (util_parse_i64(optarg, -315360000, 315360000, &n) < 0) {
                fprintf(stderr,
                        "firmfleet-agent: --clock-offset: seconds in -315360000..315360000: %s\n",
                        optarg);
                return 2;
            }
            ao.clock_offset_s = n;
            break;
        case OPT_SIP_PORT:
            if (util_parse_i64(optarg, 1, 65535, &n) < 0) {
                fprintf(stderr, "firmfleet-agent: --sip-port: a port in 1..65535: %s\n", optarg);
                return 2;
            }
            ao.sip_port = (uint16_t)n;
            break;
        case OPT_METRICS: {
            struct sockaddr_storage sa;
            socklen_t salen;
            if (metrics_parse_listen(optarg, &sa, &salen) < 0) {
                fprintf(stderr, "firmfleet-agent: --metrics: ADDR:PORT expected: %s\n", optarg);
                return 2;
            }
            metrics_addr = optarg;
            break;
        }
        case OPT_TRUST_KEY: {
            if (ao.n_trust_keys >= SIGN_MAX_KEYS) {
                fprintf(stderr, "firmfleet-agent: at most %d --trust-key\n", SIGN_MAX_KEYS);
                return 2;
            }
            int kr = sign_read_pub(optarg, ao.trust_keys[ao.n_trust_keys]);
            if (kr < 0) {
                fprintf(stderr, "firmfleet-agent: --trust-key %s: %s\n", optarg,
                        kr == -EINVAL ? "not a public key (64 hex digits)" : strerror(-kr));
                return 2;
            }
            ao.n_trust_keys++;
            break;
        }
        case OPT_USER:
            user = optarg;
            break;
        case OPT_VERSION:
            printf("firmfleet-agent %s\n", AGENT_VERSION);
            return 0;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || cred_path == NULL || ao.state_dir == NULL) {
        s_usage(stderr);
        return 2;
    }
    struct privdrop_user pu;
    char perr[512];
    if (user && privdrop_lookup(user, &pu, perr, sizeof perr) < 0) {
        fprintf(stderr, "firmfleet-agent: %s\n", perr);
        return 2;
    }
    if (user && privdrop_check_dir(ao.state_dir, &pu, perr, sizeof perr) < 0) {
        fprintf(stderr, "firmfleet-agent: %s\n", perr);
        return 1;
    }
    if (user == NULL && geteuid() == 0)
        log_warn("agent.root",
                 "reason=\"running as root; --user NAME drops privileges after start\"");
    struct agent_cred cred;
    char err[256];
    if (agent_cred_load(cred_path, &cred, err, sizeof err) < 0) {
        fprintf(stderr, "firmfleet-agent: %s: %s\n", cred_path, err);
        return 2;
    }
    char keypath[PATH_MAX];
    snprintf(keypath, sizeof keypath, "%s/agent.key", ao.state_dir);
    if (cred.enrollment && (uint64_t)cred.expires_ms < util_now_ms() && access(keypath, F_OK) < 0) {
        /* never used, too late now: the controller would refuse it */
        time_t t = (time_t)(cred.expires_ms / 1000);
        struct tm tm;
        char when[64] = "?";
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        log_error("agent.enroll_expired", "cred=%s expired=%s", cred_path, when);
        fprintf(stderr,
                "firmfleet-agent: %s: the enrollment credential expired at %s without being "
                "used; enroll the agent again (firmfleet agent enroll --force)\n",
                cred_path, when);
        memset(&cred, 0, sizeof cred);
        return 2;
    }
    struct agent *a = NULL;
    int rc = agent_new(&ao, &cred, &a);
    memset(&cred, 0, sizeof cred);
    if (rc < 0) {
        fprintf(stderr, "firmfleet-agent: cannot start: %s\n", strerror(-rc > 0 ? -rc : EIO));
        return 1;
    }
    if (so.n_tftp > 0 || so.n_http > 0)
        rc = files_start(a, &so);
    if (rc == 0 && so.n_dhcp > 0)
        rc = dhcpd_start(a, &so);
    if (rc == 0 && so.n_tftp > 0)
        rc = tftpd_start(a, &so);
    if (rc == 0 && so.n_http > 0)
        rc = httpd_start(a, &so);
    if (rc == 0 && metrics_addr)
        rc = mhttp_start(a, metrics_addr);
    if (rc == 0 && user) {
        /* every socket that needs root is bound, the state directory open */
        if ((rc = privdrop_chown_tree(a->state_dir, &pu, perr, sizeof perr)) < 0) {
            log_error("agent.user", "user=%s reason=\"%s\"", user, perr);
        } else if (privdrop_apply(&pu, perr, sizeof perr) < 0) {
            log_error("agent.user", "user=%s reason=\"%s\"", user, perr);
            fprintf(stderr, "firmfleet-agent: --user %s: %s\n", user, perr);
            _exit(1); /* possibly half-dropped: no orderly stop as whoever we are now */
        } else {
            log_info("agent.user", "user=%s uid=%u gid=%u", user, (unsigned)pu.uid,
                     (unsigned)pu.gid);
        }
    }
    if (rc < 0) {
        fprintf(stderr, "firmfleet-agent: a service could not start: %s (see the log)\n",
                strerror(-rc));
        agent_stop(a, 1);
        agent_run(a);
        agent_destroy(&a);
        return 1;
    }
    int status = agent_run(a);
    agent_destroy(&a);
    return status;
}
