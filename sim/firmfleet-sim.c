/* firmfleet-sim.c: a device simulator shipped with firmfleet. Plays N IP
 * phones of given families at one site on the real wire (DHCP, TFTP, HTTP,
 * SIP NOTIFY), against a site agent, to show what a rollout does at scale.
 * This file parses the command line and prints the outcome; the site itself
 * is sim_fleet.c.
 *
 * Exit status: 0 every device ended where expected (injected failures are
 * expected to fail and are reported on their own), 1 some did not (or the
 * run could not start), 2 a usage error (one line on stderr).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_family.h"
#include "sim_fleet.h"
#include "util.h"

static void s_usage(FILE *o)
{
    fprintf(
        o,
        "usage: firmfleet-sim --iface IF --devices FAMILY:COUNT [--devices ...] [options]\n"
        "  --iface IF                 the interface the devices share (required)\n"
        "  --devices FAMILY:COUNT     COUNT devices of FAMILY (cisco-79xx, polycom, yealink,\n"
        "                             digium); repeatable; --family FAMILY[:COUNT] is the same\n"
        "  --server IP                the agent (default: what DHCP names)\n"
        "  --http-port N              the agent's HTTP port (default 80)\n"
        "  --tftp-port N              the agent's TFTP port (default 69)\n"
        "  --sip-port N               the devices' SIP port for NOTIFY (default 5060)\n"
        "  --mac-prefix XX[:XX...]    1-5 leading MAC bytes (default 02:5f:00)\n"
        "  --model FAMILY=MODEL       the model the family's devices claim\n"
        "  --start-version FAMILY=V   the version they run at power-on\n"
        "  --expect-version FAMILY=V  where they should end (default: the start version)\n"
        "  --poll DURATION            a held device polls again after this (default 5s)\n"
        "  --reboot-time DURATION     pause after an image before booting it (default 2s)\n"
        "  --ramp DURATION            spread the power-on over this (default 1s)\n"
        "  --blksize N                TFTP blksize asked for (default 1468; 512: no option)\n"
        "  --timeout SECONDS          the run ends by itself after this (default 300)\n"
        "  --seed N                   seeds xids, jitter and which devices get injected failures\n"
        "  --fail-never-return P      P%% of each family never come back after the image\n"
        "  --fail-old-version P       P%% come back on the old version\n"
        "  --fail-abort P             P%% abort their first image download midway\n"
        "  --fail-malformed P         P%% also send malformed DHCP and TFTP packets\n"
        "  --list                     print the devices (mac,family,model,version,injected), exit\n"
        "  --json                     the summary as JSON\n"
        "  --quiet                    no progress, summary only\n"
        "  -v, --verbose              one line per device event on stderr\n"
        "Exit: 0 every device ended where expected, 1 not, 2 usage error.\n");
}

/* A usage error: one line on stderr, exit status 2. */
static int s_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int s_bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "firmfleet-sim: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

/* "5s", "500ms", "2m", "3" (seconds) into ms. 0 or -EINVAL. */
static int s_duration(const char *s, unsigned *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -EINVAL;
    double mul = 1000;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else
        return -EINVAL;
    double r = v * mul;
    if (r > 86400000.0)
        return -ERANGE;
    *ms = (unsigned)r;
    return 0;
}

/* The name of the long option whose value is val, for messages. */
static const char *s_optname(const struct option *opts, int val)
{
    for (; opts->name; opts++)
        if (opts->val == val)
            return opts->name;
    return "?";
}

static int s_num(const char *s, int64_t min, int64_t max, unsigned *out)
{
    int64_t v;
    if (util_parse_i64(s, min, max, &v) < 0)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* The group of a family, made on first mention (defaults from the family). */
static struct sim_group *s_group(struct sim_config *c, const struct sim_family *fam)
{
    for (unsigned g = 0; g < c->n_groups; g++)
        if (c->groups[g].fam == fam)
            return &c->groups[g];
    struct sim_group *gr = &c->groups[c->n_groups++];
    memset(gr, 0, sizeof *gr);
    gr->fam = fam;
    snprintf(gr->model, sizeof gr->model, "%s", fam->model);
    snprintf(gr->start, sizeof gr->start, "%s", fam->start_version);
    return gr;
}

/* FAMILY=VALUE for the per-family options; VALUE printable, no spaces. */
struct famval {
    const struct sim_family *fam;
    int which; /* 'm' model, 's' start, 'e' expect */
    char val[SIM_VERSION_MAX];
};

static int s_famval(const char *opt, const char *arg, int which, struct famval *fv)
{
    const char *eq = strchr(arg, '=');
    char fam[32];
    if (eq == NULL || (size_t)(eq - arg) >= sizeof fam)
        return s_bad("%s: FAMILY=VALUE expected: %s", opt, arg);
    memcpy(fam, arg, (size_t)(eq - arg));
    fam[eq - arg] = '\0';
    fv->fam = sim_family_find(fam);
    if (fv->fam == NULL)
        return s_bad("%s: unknown family (cisco-79xx, polycom, yealink, digium): %s", opt, fam);
    size_t l = strlen(eq + 1);
    size_t cap = which == 'm' ? SIM_MODEL_MAX : SIM_VERSION_MAX;
    if (l == 0 || l >= cap)
        return s_bad("%s: empty or too long value: %s", opt, arg);
    for (const char *p = eq + 1; *p; p++)
        if (*p <= ' ' || *p > '~')
            return s_bad("%s: printable characters without spaces only: %s", opt, arg);
    fv->which = which;
    snprintf(fv->val, sizeof fv->val, "%s", eq + 1);
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        O_IFACE = 256,
        O_SERVER,
        O_HTTP_PORT,
        O_TFTP_PORT,
        O_SIP_PORT,
        O_DEVICES,
        O_FAMILY,
        O_MAC_PREFIX,
        O_MODEL,
        O_START,
        O_EXPECT,
        O_POLL,
        O_REBOOT,
        O_RAMP,
        O_BLKSIZE,
        O_TIMEOUT,
        O_SEED,
        O_F_NEVER,
        O_F_OLD,
        O_F_ABORT,
        O_F_MAL,
        O_LIST,
        O_JSON,
        O_QUIET,
        O_VERBOSE,
        O_HELP
    };
    static const struct option longopts[] = {
        {"iface", required_argument, NULL, O_IFACE},
        {"server", required_argument, NULL, O_SERVER},
        {"http-port", required_argument, NULL, O_HTTP_PORT},
        {"tftp-port", required_argument, NULL, O_TFTP_PORT},
        {"sip-port", required_argument, NULL, O_SIP_PORT},
        {"devices", required_argument, NULL, O_DEVICES},
        {"family", required_argument, NULL, O_FAMILY},
        {"mac-prefix", required_argument, NULL, O_MAC_PREFIX},
        {"model", required_argument, NULL, O_MODEL},
        {"start-version", required_argument, NULL, O_START},
        {"expect-version", required_argument, NULL, O_EXPECT},
        {"poll", required_argument, NULL, O_POLL},
        {"reboot-time", required_argument, NULL, O_REBOOT},
        {"ramp", required_argument, NULL, O_RAMP},
        {"blksize", required_argument, NULL, O_BLKSIZE},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"seed", required_argument, NULL, O_SEED},
        {"fail-never-return", required_argument, NULL, O_F_NEVER},
        {"fail-old-version", required_argument, NULL, O_F_OLD},
        {"fail-abort", required_argument, NULL, O_F_ABORT},
        {"fail-malformed", required_argument, NULL, O_F_MAL},
        {"list", no_argument, NULL, O_LIST},
        {"json", no_argument, NULL, O_JSON},
        {"quiet", no_argument, NULL, O_QUIET},
        {"verbose", no_argument, NULL, O_VERBOSE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct sim_config c = {
        .http_port = 80,
        .tftp_port = 69,
        .sip_port = 5060,
        .mac_prefix = {0x02, 0x5f, 0x00},
        .prefix_len = 3,
        .seed = 1,
        .poll_ms = 5000,
        .reboot_ms = 2000,
        .ramp_ms = 1000,
        .blksize = 1468,
        .timeout_s = 300,
    };
    /* per-family values apply after every --devices is seen, whatever the order */
    struct famval fvs[64];
    unsigned n_fv = 0;
    int list = 0, json = 0, quiet = 0, opt, rc;
    unsigned u;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
        switch (opt) {
        case O_IFACE:
            if (optarg[0] == '\0' || strlen(optarg) >= 16 /* IFNAMSIZ */)
                return s_bad("--iface: not an interface name: %s", optarg);
            c.iface = optarg;
            break;
        case O_SERVER: {
            struct in_addr a;
            if (inet_pton(AF_INET, optarg, &a) != 1)
                return s_bad("--server: an IPv4 address: %s", optarg);
            c.server_be = a.s_addr;
            break;
        }
        case O_HTTP_PORT:
        case O_TFTP_PORT:
        case O_SIP_PORT:
            if (s_num(optarg, 1, 65535, &u) < 0)
                return s_bad("--%s: a port in 1..65535: %s", s_optname(longopts, opt), optarg);
            *(opt == O_HTTP_PORT   ? &c.http_port
              : opt == O_TFTP_PORT ? &c.tftp_port
                                   : &c.sip_port) = (uint16_t)u;
            break;
        case O_DEVICES:
        case O_FAMILY: {
            char fam[32];
            const char *colon = strchr(optarg, ':');
            size_t fl = colon ? (size_t)(colon - optarg) : strlen(optarg);
            u = 1;
            if (fl >= sizeof fam || (colon == NULL && opt == O_DEVICES))
                return s_bad("--devices: FAMILY:COUNT expected: %s", optarg);
            memcpy(fam, optarg, fl);
            fam[fl] = '\0';
            const struct sim_family *f = sim_family_find(fam);
            if (f == NULL)
                return s_bad("--devices: unknown family (cisco-79xx, polycom, yealink, digium): %s",
                             fam);
            if (colon && s_num(colon + 1, 1, 100000, &u) < 0)
                return s_bad("--devices: a count in 1..100000: %s", optarg);
            struct sim_group *g = s_group(&c, f);
            if (g->count + u > 100000)
                return s_bad("--devices: more than 100000 devices of %s", fam);
            g->count += u;
            break;
        }
        case O_MAC_PREFIX: {
            uint8_t b[6];
            unsigned n = 0;
            const char *p = optarg;
            while (*p && n < 6) {
                int hi = util_hexval(p[0]), lo = hi < 0 ? -1 : util_hexval(p[1]);
                if (hi < 0 || lo < 0)
                    break;
                b[n++] = (uint8_t)(hi << 4 | lo);
                p += 2;
                if (*p == ':' || *p == '-')
                    p++;
                else
                    break;
            }
            if (*p != '\0' || n < 1 || n > 5 || p[-1] == ':' || p[-1] == '-')
                return s_bad("--mac-prefix: 1 to 5 hex bytes like 02:5f:00: %s", optarg);
            if (b[0] & 1)
                return s_bad("--mac-prefix: a multicast prefix (first byte odd): %s", optarg);
            memcpy(c.mac_prefix, b, n);
            c.prefix_len = n;
            break;
        }
        case O_MODEL:
        case O_START:
        case O_EXPECT:
            if (n_fv == sizeof fvs / sizeof fvs[0])
                return s_bad("--%s: too many per-family values", s_optname(longopts, opt));
            rc = s_famval(opt == O_MODEL   ? "--model"
                          : opt == O_START ? "--start-version"
                                           : "--expect-version",
                          optarg,
                          opt == O_MODEL   ? 'm'
                          : opt == O_START ? 's'
                                           : 'e',
                          &fvs[n_fv]);
            if (rc)
                return rc;
            n_fv++;
            break;
        case O_POLL:
        case O_REBOOT:
        case O_RAMP: {
            const char *name = opt == O_POLL     ? "--poll"
                               : opt == O_REBOOT ? "--reboot-time"
                                                 : "--ramp";
            if (s_duration(optarg, &u) < 0 || (opt == O_POLL && u < 100))
                return s_bad("%s: a duration like 5s, 500ms or 2m (poll at least 100ms): %s", name,
                             optarg);
            *(opt == O_POLL ? &c.poll_ms : opt == O_REBOOT ? &c.reboot_ms : &c.ramp_ms) = u;
            break;
        }
        case O_BLKSIZE:
            if (s_num(optarg, 8, 65464, &c.blksize) < 0)
                return s_bad("--blksize: 8..65464: %s", optarg);
            break;
        case O_TIMEOUT:
            if (s_num(optarg, 1, 86400, &c.timeout_s) < 0)
                return s_bad("--timeout: seconds in 1..86400: %s", optarg);
            break;
        case O_SEED: {
            int64_t v;
            if (util_parse_i64(optarg, 0, INT64_MAX, &v) < 0)
                return s_bad("--seed: a non-negative integer: %s", optarg);
            c.seed = (uint64_t)v;
            break;
        }
        case O_F_NEVER:
        case O_F_OLD:
        case O_F_ABORT:
        case O_F_MAL:
            if (s_num(optarg, 0, 100, &u) < 0)
                return s_bad("--%s: a percentage in 0..100: %s", s_optname(longopts, opt), optarg);
            *(opt == O_F_NEVER   ? &c.fail_never_return
              : opt == O_F_OLD   ? &c.fail_old_version
              : opt == O_F_ABORT ? &c.fail_abort
                                 : &c.fail_malformed) = u;
            break;
        case O_LIST:
            list = 1;
            break;
        case O_JSON:
            json = 1;
            break;
        case O_QUIET:
            quiet = 1;
            break;
        case O_VERBOSE:
        case 'v':
            c.verbose = 1;
            break;
        case 'h':
        case O_HELP:
            s_usage(stdout);
            return 0;
        default:
            for (const struct option *o = longopts; o->name; o++)
                if (optopt == o->val && o->has_arg)
                    return s_bad("--%s needs a value", o->name);
            if (optopt > 0 && optopt < 256)
                return s_bad("unknown option -%c", optopt);
            return s_bad("unknown option: %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return s_bad("unexpected argument: %s", argv[optind]);
    if (c.n_groups == 0)
        return s_bad("no devices: give --devices FAMILY:COUNT");
    for (unsigned i = 0; i < n_fv; i++) {
        struct sim_group *g = NULL;
        for (unsigned k = 0; k < c.n_groups; k++)
            if (c.groups[k].fam == fvs[i].fam)
                g = &c.groups[k];
        if (g == NULL)
            return s_bad("a per-family option names %s, which has no --devices", fvs[i].fam->name);
        char *dst = fvs[i].which == 'm' ? g->model : fvs[i].which == 's' ? g->start : g->expect;
        snprintf(dst, fvs[i].which == 'm' ? SIM_MODEL_MAX : SIM_VERSION_MAX, "%s", fvs[i].val);
    }
    for (unsigned k = 0; k < c.n_groups; k++)
        if (c.groups[k].expect[0] == '\0')
            memcpy(c.groups[k].expect, c.groups[k].start, sizeof c.groups[k].expect);
    if (!list && c.iface == NULL)
        return s_bad("--iface is required");
    c.progress = !quiet && isatty(STDERR_FILENO);

    char err[256] = "";
    sim_fleet_t *f = NULL;
    rc = sim_fleet_new(&c, &f, err, sizeof err);
    if (rc < 0)
        return s_bad("%s", err);
    if (list) {
        sim_fleet_list(f, stdout);
        sim_fleet_destroy(&f);
        return 0;
    }
    rc = sim_fleet_run(f, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "firmfleet-sim: %s\n", err);
        sim_fleet_destroy(&f);
        return 1;
    }
    sim_fleet_summary(f, stdout, json);
    sim_fleet_destroy(&f);
    return rc == 0 ? 0 : 1;
}
