/* cli_args.c: the CLI's command table and argument parser (see cli_args.h).
 *
 * Invariants: the table below is the one description of every command the
 * CLI knows (usage text is generated from it); the parser never reads past
 * argv[argc-1] and never writes to argv; every error is one line.
 */
#include "cli_args.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* clang-format off */
static const struct cli_opt o_none[] = {{NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_site_add[] = {
    {"tz", 1, 1, "ZONE", "IANA time zone of the site, e.g. Europe/Berlin"},
    {"description", 1, 0, "TEXT", "free text"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_agent_enroll[] = {
    {"site", 1, 1, "SITE", "site the agent serves"},
    {"name", 1, 0, "NAME", "agent name (default: the site name)"},
    {"out", 1, 1, "FILE", "where to write the credential (mode 0600)"},
    {"force", 0, 0, NULL, "overwrite FILE if it exists"},
    {"ttl", 1, 0, "DUR", "the credential works once, within DUR (default 24h; e.g. 30m, 7d)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_device_add[] = {
    {"site", 1, 1, "SITE", "site the device is at"},
    {"model", 1, 0, "MODEL", "device model, e.g. CP-7961G"},
    {"serial", 1, 0, "SERIAL", "serial number"},
    {"tags", 1, 0, "A,B", "comma-separated tags"},
    {"ip", 1, 0, "IP", "DHCP reservation, inside one of the site's subnets"},
    {"class", 1, 0, "NAME", "pin the device to this class (global or the site's)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_device_list[] = {
    {"site", 1, 0, "SITE", "only this site"},
    {"model", 1, 0, "MODEL", "only this model"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_fw_add[] = {
    {"models", 1, 1, "M1,M2", "models this firmware is for"},
    {"description", 1, 0, "TEXT", "free text"},
    {"sign-key", 1, 0, "FILE.key", "sign each file here with this key (firmfleet key generate)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_key_generate[] = {
    {"out", 1, 1, "NAME", "write NAME.key (secret, mode 0600) and NAME.pub"},
    {"force", 0, 0, NULL, "overwrite NAME.key and NAME.pub if they exist"},
    {"curve", 0, 0, NULL, "a CURVE key pair for the tcp admin endpoint (Z85), not a signing key"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_subnet_add[] = {
    {"pool", 1, 1, "START-END", "addresses handed out dynamically, inside CIDR"},
    {"router", 1, 0, "IP", "default gateway (option 3), inside CIDR, not in the pool"},
    {"dns", 1, 0, "IP[,IP..]", "DNS servers (option 6)"},
    {"lease", 1, 0, "SECONDS", "lease time, 60 or more (default 86400)"},
    {"relay", 1, 0, "IP[,IP..]", "relay (giaddr) addresses that select this subnet"},
    {"option", 2, 0, "SPEC", "extra option CODE=[TYPE:]VALUE (repeatable)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_site_filter[] = {
    {"site", 1, 0, "SITE", "only this site"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_class_add[] = {
    {"site", 1, 0, "SITE", "the class is the site's own (default: global)"},
    {"priority", 1, 0, "N", "0-1000000, lower is tried first (default 100)"},
    {"match", 2, 1, "RULE", "KIND:VALUE a device is recognised by (repeatable)"},
    {"option", 2, 0, "SPEC", "DHCP option CODE=[TYPE:]VALUE it gets (repeatable)"},
    {"tftp-root", 1, 0, "DIR", "subdirectory of the agent's files root it is served from"},
    {"replace", 0, 0, NULL, "replace a class of that name in that scope"},
    {"window", 1, 0, "SPEC", "when its devices may be upgraded (see ROLLOUTS in the man page)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_class_list[] = {
    {"site", 1, 0, "SITE", "what this site gets, in the order classes are tried"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_scope[] = {
    {"site", 1, 0, "SITE", "the site's own (default: global)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_scope_show[] = {
    {"site", 1, 0, "SITE", "the one this site gets (its own, else the global one)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_template_add[] = {
    {"from", 1, 1, "FILE", "the template body (at most 1 MiB)"},
    {"site", 1, 0, "SITE", "the template is the site's own (default: global)"},
    {"replace", 0, 0, NULL, "replace a template of that name in that scope"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_template_list[] = {
    {"site", 1, 0, "SITE", "what this site gets"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_device_assign[] = {
    {"firmware", 1, 1, "VENDOR/VERSION", "the firmware (as in firmware list)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_site_set[] = {
    {"window", 1, 1, "SPEC", "maintenance window of the site (\"\" = any time)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_device_set[] = {
    {"version", 1, 0, "V", "firmware version the device runs"},
    {"serial-config", 1, 0, "X", "configuration serial the device holds"},
    {"serial-firmware", 1, 0, "X", "firmware serial the device holds"},
    {"serial-boot", 1, 0, "X", "boot loader serial the device holds"},
    {"profile", 1, 0, "P", "pin the device to this profile (\"\" = recognise it)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_profile_add[] = {
    {"replace", 0, 0, NULL, "replace a profile of that name"},
    {"sign-key", 1, 0, "FILE", "sign the profile here with this key (firmfleet key generate)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_rollout_create[] = {
    {"firmware", 1, 1, "VENDOR/VERSION", "the firmware devices end at"},
    {"profile", 1, 1, "P", "the vendor profile that serves them"},
    {"sites", 1, 0, "A,B", "only devices at these sites"},
    {"models", 1, 0, "M1,M2", "only these models"},
    {"tags", 1, 0, "T1,T2", "only devices with one of these tags"},
    {"devices", 1, 0, "FILE", "only the MACs in FILE (one per line, or CSV, MAC first)"},
    {"waves", 1, 0, "N,P%,...", "cumulative wave sizes: canary,10%,100% or 5,50%,100% (default 100%)"},
    {"max-failures", 1, 0, "N|N%", "halt the rollout after this many failures"},
    {"site-concurrency", 1, 0, "N", "devices of one site upgrading at once (0 = no cap)"},
    {"window", 1, 0, "SPEC", "when devices may be upgraded, in each site's time zone"},
    {"start-at", 1, 0, "TIME", "do not start before TIME"},
    {"boot-grace", 1, 0, "DUR", "after a device boots, wait this long before upgrading it"},
    {"stage-fresh", 0, 0, NULL, "upgrade factory-fresh devices at once, window or not"},
    {"spread", 1, 0, "DUR", "spread the starts of a site's devices over DUR"},
    {"verify-timeout", 1, 0, "DUR", "how long a device has to come back with the new version"},
    {"timeouts", 1, 0, "STATE=DUR,..", "how long a device may stay in a state"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_rollout_status[] = {
    {"devices", 0, 0, NULL, "add the table of every device"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_rollout_watch[] = {
    {"interval", 1, 0, "SECONDS", "poll every SECONDS, 0.1-3600 (default 1)"},
    {"once", 0, 0, NULL, "draw one frame and exit"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_event_list[] = {
    {"agent", 1, 0, "AGENT", "only events from this agent"},
    {"site", 1, 0, "SITE", "only events from this site"},
    {"kind", 1, 0, "KIND", "only this kind, e.g. dhcp.lease"},
    {"mac", 1, 0, "MAC", "only this device"},
    {"limit", 1, 0, "N", "at most N events, the newest (default 100, 0 = all)"},
    {"since", 1, 0, "ID", "only events after event ID (oldest first)"},
    {"follow", 0, 0, NULL, "print new events as they arrive, until interrupted"},
    {"count", 1, 0, "N", "with --follow: stop after N events"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_backup_list[] = {
    {"mac", 1, 0, "MAC", "only this device"},
    {"site", 1, 0, "SITE", "only devices at this site"},
    {"limit", 1, 0, "N", "at most N backups, the newest (default 0 = all)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_audit_list[] = {
    {"by", 1, 0, "NAME", "only what this operator did (the --user they acted as)"},
    {"action", 1, 0, "ACTION", "only this action or family, e.g. rollout or rollout.start"},
    {"limit", 1, 0, "N", "at most N records, the newest (default 100, 0 = all)"},
    {NULL, 0, 0, NULL, NULL}};
static const struct cli_opt o_backup_get[] = {
    {"out", 1, 0, "FILE", "write the bytes to FILE (mode 0600) instead of stdout"},
    {NULL, 0, 0, NULL, NULL}};

static const struct cli_cmd s_cmds[] = {
    {"site", "add", "NAME", 1, 1, o_site_add, "add a site"},
    {"site", "list", "", 0, 0, o_none, "list sites with device and agent counts"},
    {"site", "show", "NAME", 1, 1, o_none, "show one site"},
    {"site", "set", "NAME", 1, 1, o_site_set, "change a site's maintenance window"},
    {"agent", "enroll", "", 0, 0, o_agent_enroll, "enroll a site agent and write its credential"},
    {"agent", "list", "", 0, 0, o_none, "list agents, online state and image bytes sent"},
    {"agent", "show", "NAME", 1, 1, o_none, "show one agent"},
    {"agent", "revoke", "NAME", 1, 1, o_none, "revoke an agent's key (it is refused from now on)"},
    {"device", "add", "MAC", 1, 1, o_device_add, "add a device"},
    {"device", "import", "FILE.csv", 1, 1, o_none,
     "add devices from CSV (header mac,site[,model,serial,tags,ip,class]); all or nothing"},
    {"device", "list", "", 0, 0, o_device_list, "list devices"},
    {"device", "show", "MAC", 1, 1, o_none, "show one device"},
    {"device", "assign", "MAC...", 1, -1, o_device_assign,
     "set the firmware devices should end at (journaled to their site's agent)"},
    {"device", "set", "MAC", 1, 1, o_device_set,
     "record what a device runs and holds, or pin its profile"},
    {"firmware", "add", "VENDOR/VERSION [NAME=]FILE...", 2, -1, o_fw_add,
     "upload files and register them as one firmware"},
    {"firmware", "list", "", 0, 0, o_none, "list firmware"},
    {"key", "generate", "", 0, 0, o_key_generate,
     "make an image/profile signing key pair (or, --curve, an operator CURVE key pair) here"},
    {"firmware", "show", "VENDOR/VERSION", 1, 1, o_none, "show a firmware with its files"},
    {"event", "list", "", 0, 0, o_event_list, "list device events reported by agents"},
    {"backup", "list", "", 0, 0, o_backup_list,
     "list configuration backups devices uploaded (newest first)"},
    {"backup", "show", "ID", 1, 1, o_none, "show one backup's metadata"},
    {"backup", "get", "ID", 1, 1, o_backup_get, "print a backup's bytes exactly as uploaded"},
    {"audit", "list", "", 0, 0, o_audit_list,
     "list what operators did: who, what and when (oldest first)"},
    {"subnet", "add", "SITE CIDR", 2, 2, o_subnet_add, "add a DHCP subnet to a site"},
    {"subnet", "list", "", 0, 0, o_site_filter, "list DHCP subnets"},
    {"subnet", "remove", "SITE CIDR", 2, 2, o_none, "remove a DHCP subnet"},
    {"class", "add", "NAME", 1, 1, o_class_add,
     "add a device class: how devices are recognised and what they get"},
    {"class", "list", "", 0, 0, o_class_list, "list device classes"},
    {"class", "show", "NAME", 1, 1, o_scope_show, "show a device class"},
    {"class", "remove", "NAME", 1, 1, o_scope, "remove a device class"},
    {"template", "add", "NAME", 1, 1, o_template_add,
     "add a file template devices fetch by NAME ({mac}/{MAC} expand)"},
    {"template", "list", "", 0, 0, o_template_list, "list file templates"},
    {"template", "show", "NAME", 1, 1, o_scope_show, "print a template's body"},
    {"template", "remove", "NAME", 1, 1, o_scope, "remove a file template"},
    {"profile", "add", "FILE.json", 1, 1, o_profile_add,
     "add a vendor profile (at most 256 KiB of JSON; see profiles/README.md)"},
    {"profile", "list", "", 0, 0, o_none, "list vendor profiles"},
    {"profile", "show", "NAME", 1, 1, o_none, "print a profile's JSON"},
    {"profile", "remove", "NAME", 1, 1, o_none, "remove a vendor profile"},
    {"rollout", "create", "NAME", 1, 1, o_rollout_create,
     "create a rollout: which devices, which firmware, in which waves and when"},
    {"rollout", "start", "NAME", 1, 1, o_none, "start a created rollout"},
    {"rollout", "pause", "NAME", 1, 1, o_none, "pause: no device starts an upgrade until resumed"},
    {"rollout", "resume", "NAME", 1, 1, o_none, "resume a paused rollout"},
    {"rollout", "abort", "NAME", 1, 1, o_none, "abort: cancel every device not yet upgraded"},
    {"rollout", "list", "", 0, 0, o_none, "list rollouts"},
    {"rollout", "status", "NAME", 1, 1, o_rollout_status,
     "show a rollout: counts, waves, sites, failures"},
    {"rollout", "watch", "NAME", 1, 1, o_rollout_watch,
     "follow a rollout: progress bars on a terminal, one line per change otherwise"},
};
/* clang-format on */

#define N_CMDS (sizeof s_cmds / sizeof s_cmds[0])

const struct cli_cmd *cli_cmd_find(const char *noun, const char *verb)
{
    if (noun == NULL || verb == NULL)
        return NULL;
    for (size_t i = 0; i < N_CMDS; i++)
        if (strcmp(s_cmds[i].noun, noun) == 0 && strcmp(s_cmds[i].verb, verb) == 0)
            return &s_cmds[i];
    return NULL;
}

int cli_noun_known(const char *noun)
{
    for (size_t i = 0; noun && i < N_CMDS; i++)
        if (strcmp(s_cmds[i].noun, noun) == 0)
            return 1;
    return 0;
}

const char *cli_args_opt(const struct cli_args *a, const char *name)
{
    for (int i = 0; i < a->nopts; i++)
        if (strcmp(a->opts[i].name, name) == 0)
            return a->opts[i].value;
    return NULL;
}

void cli_args_free(struct cli_args *a)
{
    if (a == NULL)
        return;
    free(a->args);
    a->args = NULL;
    a->nargs = 0;
}

/* Verbs of a noun as "add, list, show". */
static void s_verbs(const char *noun, char *out, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_CMDS && o < n; i++)
        if (strcmp(s_cmds[i].noun, noun) == 0)
            o += (size_t)snprintf(out + o, n - o, "%s%s", o ? ", " : "", s_cmds[i].verb);
}

/* A printable, bounded copy of a user word for messages. */
static const char *s_show(const char *s, char out[68])
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o < 64; p++)
        out[o++] = (*p >= 0x20 && *p < 0x7f) ? (char)*p : '?';
    if (strlen(s) > 64) {
        out[o - 1] = '.';
        out[o - 2] = '.';
    }
    out[o] = '\0';
    return out;
}

enum { G_NONE, G_DATADIR, G_ENDPOINT, G_USER, G_TIMEOUT, G_JSON, G_HELP, G_KEY, G_SERVER_KEY };

/* Global option by its spelling (with dashes), or G_NONE. */
static int s_global(const char *name, int is_short)
{
    static const struct {
        const char *name;
        int shrt, id;
    } g[] = {
        {"d", 1, G_DATADIR},      {"data-dir", 0, G_DATADIR}, {"A", 1, G_ENDPOINT},
        {"admin", 0, G_ENDPOINT}, {"user", 0, G_USER},        {"timeout", 0, G_TIMEOUT},
        {"json", 0, G_JSON},      {"h", 1, G_HELP},           {"help", 0, G_HELP},
        {"key", 0, G_KEY},        {"server-key", 0, G_SERVER_KEY},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (g[i].shrt == is_short && strcmp(g[i].name, name) == 0)
            return g[i].id;
    return G_NONE;
}

static int s_set_global(struct cli_args *a, int id, const char *value, const char *spelled,
                        char *err, size_t errlen)
{
    const char **slot = NULL;
    switch (id) {
    case G_DATADIR:
        slot = &a->datadir;
        break;
    case G_ENDPOINT:
        slot = &a->endpoint;
        break;
    case G_USER:
        slot = &a->user;
        break;
    case G_TIMEOUT:
        slot = &a->timeout;
        break;
    case G_KEY:
        slot = &a->key;
        break;
    case G_SERVER_KEY:
        slot = &a->server_key;
        break;
    case G_JSON:
        a->json = 1;
        return 0;
    case G_HELP:
        a->help = 1;
        return 0;
    default:
        return -EINVAL;
    }
    if (*slot != NULL) {
        util_errf(err, errlen, "option %s given twice", spelled);
        return -EINVAL;
    }
    if (*value == '\0') {
        util_errf(err, errlen, "option %s needs a non-empty value", spelled);
        return -EINVAL;
    }
    *slot = value;
    return 0;
}

static int s_takes_value(int id)
{
    return id != G_JSON && id != G_HELP;
}

int cli_args_parse(int argc, char *const argv[], struct cli_args *a, char *err, size_t errlen)
{
    char q[68];
    memset(a, 0, sizeof *a);
    if (errlen > 0)
        err[0] = '\0';
    a->args = calloc((size_t)(argc > 0 ? argc : 1), sizeof *a->args);
    if (a->args == NULL) {
        util_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* pending: command options seen (validated once the command is known) */
    int words = 0, dashdash = 0;
    for (int i = 1; i < argc; i++) {
        const char *t = argv[i];
        int is_opt = !dashdash && t[0] == '-' && t[1] != '\0';
        if (is_opt && strcmp(t, "--") == 0) {
            dashdash = 1;
            continue;
        }
        if (!is_opt) {
            /* a word: noun, verb, then arguments */
            if (words == 0)
                a->noun = t;
            else if (words == 1)
                a->verb = t;
            else
                a->args[a->nargs++] = t;
            words++;
            continue;
        }
        /* an option: split --name=value */
        int is_short = t[1] != '-';
        char name[64];
        const char *inline_val = NULL;
        const char *body = is_short ? t + 1 : t + 2;
        if (is_short) {
            /* -d DIR, -dDIR, -A EP, -h */
            snprintf(name, sizeof name, "%c", body[0]);
            if (body[1] != '\0')
                inline_val = body + 1;
        } else {
            const char *eq = strchr(body, '=');
            size_t n = eq ? (size_t)(eq - body) : strlen(body);
            if (n >= sizeof name || n == 0) {
                util_errf(err, errlen, "unknown option %s", s_show(t, q));
                return -EINVAL;
            }
            memcpy(name, body, n);
            name[n] = '\0';
            if (eq)
                inline_val = eq + 1;
        }
        char spelled[72];
        snprintf(spelled, sizeof spelled, "%s%s", is_short ? "-" : "--", name);
        int g = s_global(name, is_short);
        int takes_value;
        const struct cli_opt *co = NULL;
        if (g != G_NONE) {
            takes_value = s_takes_value(g);
        } else {
            if (is_short) {
                util_errf(err, errlen, "unknown option %s", s_show(spelled, q));
                return -EINVAL;
            }
            const struct cli_cmd *cmd = cli_cmd_find(a->noun, a->verb);
            if (cmd == NULL) {
                if (a->verb != NULL || a->noun == NULL || !cli_noun_known(a->noun)) {
                    /* reported below as unknown command/verb, unless no
                     * command was given at all */
                    if (a->noun == NULL) {
                        util_errf(err, errlen, "unknown option %s", s_show(spelled, q));
                        return -EINVAL;
                    }
                    continue;
                }
                util_errf(err, errlen, "option %s must follow the command (%s VERB ... %s)",
                          s_show(spelled, q), a->noun, spelled);
                return -EINVAL;
            }
            for (const struct cli_opt *o = cmd->opts; o->name; o++)
                if (strcmp(o->name, name) == 0)
                    co = o;
            if (co == NULL) {
                util_errf(err, errlen, "unknown option %s for '%s %s'", s_show(spelled, q),
                          cmd->noun, cmd->verb);
                return -EINVAL;
            }
            takes_value = co->takes_value;
        }
        const char *value = "1";
        if (takes_value) {
            if (inline_val != NULL) {
                value = inline_val;
            } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                value = argv[++i];
            } else {
                util_errf(err, errlen, "option %s needs a value", s_show(spelled, q));
                return -EINVAL;
            }
        } else if (inline_val != NULL) {
            util_errf(err, errlen, "option %s takes no value", s_show(spelled, q));
            return -EINVAL;
        }
        if (g != G_NONE) {
            int rc = s_set_global(a, g, value, spelled, err, errlen);
            if (rc < 0)
                return rc;
            continue;
        }
        if (co->takes_value != CLI_VALUES && cli_args_opt(a, co->name) != NULL) {
            util_errf(err, errlen, "option %s given twice", spelled);
            return -EINVAL;
        }
        if (a->nopts >= CLI_MAX_OPTS) {
            util_errf(err, errlen, "too many options");
            return -EINVAL;
        }
        a->opts[a->nopts].name = co->name;
        a->opts[a->nopts].value = value;
        a->nopts++;
    }
    if (a->datadir && a->endpoint) {
        util_errf(err, errlen, "give either -d DIR or -A ENDPOINT, not both");
        return -EINVAL;
    }
    /* help forms: firmfleet help [NOUN], firmfleet [NOUN [VERB]] --help */
    if (a->noun && strcmp(a->noun, "help") == 0) {
        a->noun = a->verb;
        a->verb = NULL;
        if (a->noun && !cli_noun_known(a->noun)) {
            util_errf(err, errlen, "unknown command '%s' (try 'firmfleet help')",
                      s_show(a->noun, q));
            return -EINVAL;
        }
        return CLI_HELP;
    }
    if (a->help) {
        if (a->noun && !cli_noun_known(a->noun)) {
            util_errf(err, errlen, "unknown command '%s' (try 'firmfleet help')",
                      s_show(a->noun, q));
            return -EINVAL;
        }
        return CLI_HELP;
    }
    char verbs[128];
    if (a->noun == NULL) {
        util_errf(err, errlen, "missing command (try 'firmfleet help')");
        return -EINVAL;
    }
    if (!cli_noun_known(a->noun)) {
        util_errf(err, errlen, "unknown command '%s' (try 'firmfleet help')", s_show(a->noun, q));
        return -EINVAL;
    }
    s_verbs(a->noun, verbs, sizeof verbs);
    if (a->verb == NULL) {
        util_errf(err, errlen, "%s: missing verb (%s)", a->noun, verbs);
        return -EINVAL;
    }
    a->cmd = cli_cmd_find(a->noun, a->verb);
    if (a->cmd == NULL) {
        util_errf(err, errlen, "unknown verb '%s' for %s (%s)", s_show(a->verb, q), a->noun, verbs);
        return -EINVAL;
    }
    /* options given before the verb was known were skipped above: re-parse
     * is not needed because the loop only skips when cmd was unknown, which
     * is an error by now. */
    const struct cli_cmd *c = a->cmd;
    if (a->nargs < c->min_args) {
        const char *what = c->args_usage;
        util_errf(err, errlen, "%s %s: missing argument (usage: firmfleet %s %s %s)", c->noun,
                  c->verb, c->noun, c->verb, what);
        return -EINVAL;
    }
    if (c->max_args >= 0 && a->nargs > c->max_args) {
        util_errf(err, errlen, "%s %s: unexpected argument '%s'", c->noun, c->verb,
                  s_show(a->args[c->max_args], q));
        return -EINVAL;
    }
    for (const struct cli_opt *o = c->opts; o->name; o++)
        if (o->required && cli_args_opt(a, o->name) == NULL) {
            util_errf(err, errlen, "%s %s: missing required option --%s %s", c->noun, c->verb,
                      o->name, o->metavar ? o->metavar : "");
            return -EINVAL;
        }
    return CLI_RUN;
}

static void s_cmd_usage(FILE *f, const struct cli_cmd *c)
{
    fprintf(f, "  firmfleet %s %s", c->noun, c->verb);
    if (c->args_usage[0])
        fprintf(f, " %s", c->args_usage);
    for (const struct cli_opt *o = c->opts; o->name; o++) {
        if (o->takes_value == CLI_VALUES)
            fprintf(f, o->required ? " --%s %s..." : " [--%s %s]...", o->name, o->metavar);
        else if (o->takes_value)
            fprintf(f, o->required ? " --%s %s" : " [--%s %s]", o->name, o->metavar);
        else
            fprintf(f, o->required ? " --%s" : " [--%s]", o->name);
    }
    fprintf(f, "\n      %s\n", c->help);
    for (const struct cli_opt *o = c->opts; o->name; o++)
        fprintf(f, "      --%-16s %s\n", o->name, o->help);
}

void cli_usage(FILE *f, const char *noun)
{
    int one = noun != NULL && cli_noun_known(noun);
    fprintf(f, "usage: firmfleet [-d DATADIR | -A ENDPOINT] [--json] [--user NAME]\n"
               "                 [--timeout SECONDS] [--key FILE --server-key KEY]\n"
               "                 NOUN VERB [ARGS] [OPTIONS]\n");
    if (!one)
        fprintf(f, "\nglobal options:\n"
                   "  -d, --data-dir DIR   controller data directory (admin endpoint\n"
                   "                       ipc://DIR/admin.sock)\n"
                   "  -A, --admin EP       admin endpoint (default $FIRMFLEET_ADMIN, else\n"
                   "                       ipc:///var/lib/firmfleet/admin.sock)\n"
                   "      --json           print results as JSON\n"
                   "      --user NAME      who is acting, for the audit log (default: login)\n"
                   "      --timeout SECS   how long to wait for the controller (default 30)\n"
                   "      --key FILE       operator CURVE secret key for a tcp:// endpoint\n"
                   "                       (default $FIRMFLEET_KEY; key generate --curve)\n"
                   "      --server-key KEY the controller's CURVE public key, Z85 or a file\n"
                   "                       holding it (default $FIRMFLEET_SERVER_KEY)\n"
                   "  -h, --help           this text; 'firmfleet NOUN --help' for one noun\n");
    fprintf(f, "\ncommands:\n");
    for (size_t i = 0; i < N_CMDS; i++)
        if (!one || strcmp(s_cmds[i].noun, noun) == 0)
            s_cmd_usage(f, &s_cmds[i]);
}
