/* agent_main.c: firmfleet-agent, the site agent: options, credential, and
 * the loop (everything else is in libagent.a).
 *
 * Exit status: 0 after SIGINT/SIGTERM, 1 on a runtime failure (state
 * directory, journal, sockets), 2 on bad usage or a bad credential file.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "util.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: firmfleet-agent -c CREDFILE -s STATEDIR [--image-rate RATE]\n"
               "                       [--synth-events N [--synth-rate R]]\n"
               "                       [--log-level debug|info|warn|error]\n"
               "                       [--version] [--help]\n"
               "  -c, --cred FILE        credential written by `firmfleet agent enroll`\n"
               "  -s, --state DIR        state directory (journal.db, cache/)\n"
               "  --image-rate RATE      image pull limit in bytes/s (K, M, G suffixes; 0 = "
               "unlimited)\n"
               "  --synth-events N       journal N synthetic events in total (load generator)\n"
               "  --synth-rate R         make at most R synthetic events per second (0 = no "
               "limit)\n"
               "  --log-level LEVEL      debug, info (default), warn, error\n");
}

int main(int argc, char **argv)
{
    enum { OPT_RATE = 256, OPT_SYNTH, OPT_SYNTH_RATE, OPT_LEVEL, OPT_VERSION };
    static const struct option opts[] = {
        {"cred", required_argument, NULL, 'c'},
        {"state", required_argument, NULL, 's'},
        {"image-rate", required_argument, NULL, OPT_RATE},
        {"synth-events", required_argument, NULL, OPT_SYNTH},
        {"synth-rate", required_argument, NULL, OPT_SYNTH_RATE},
        {"log-level", required_argument, NULL, OPT_LEVEL},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    log_set_component("agent");
    const char *cred_path = NULL;
    struct agent_opts ao = {0};
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
    struct agent_cred cred;
    char err[256];
    if (agent_cred_load(cred_path, &cred, err, sizeof err) < 0) {
        fprintf(stderr, "firmfleet-agent: %s: %s\n", cred_path, err);
        return 2;
    }
    struct agent *a = NULL;
    int rc = agent_new(&ao, &cred, &a);
    memset(&cred, 0, sizeof cred);
    if (rc < 0) {
        fprintf(stderr, "firmfleet-agent: cannot start: %s\n", strerror(-rc > 0 ? -rc : EIO));
        return 1;
    }
    int status = agent_run(a);
    agent_destroy(&a);
    return status;
}
