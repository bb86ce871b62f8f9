/* sim_fleet.h: the simulated site: N devices of given families sharing one
 * interface, on one libuv loop in one thread. Each device boots (DHCP with
 * its family's option 60), takes its lease onto the interface, fetches its
 * family's files over TFTP or HTTP from its own address, downloads what the
 * served config names, "reboots" into the new version and reports it, or
 * polls again while it is held; it answers SIP NOTIFY check-sync and polls
 * at once. Failures are injected per device, chosen from the seed.
 *
 * Invariants: everything runs on the fleet's loop; every wait has a timer
 * and the whole run ends at config.timeout_s at the latest; the fleet stops
 * by itself once every device has settled (on its expected version with its
 * config fetched, or in its injected failure); addresses it added are
 * removed by sim_fleet_destroy().
 */
#ifndef FF_SIM_FLEET_H
#define FF_SIM_FLEET_H

#include <stdint.h>
#include <stdio.h>

#include "sim_family.h"

#define SIM_VERSION_MAX 64
#define SIM_MODEL_MAX 32

struct sim_group {
    const struct sim_family *fam;
    unsigned count;
    char model[SIM_MODEL_MAX];
    char start[SIM_VERSION_MAX];  /* running version at power-on */
    char expect[SIM_VERSION_MAX]; /* where each device should end */
};

struct sim_config {
    const char *iface;
    uint32_t server_be; /* 0: the DHCP server (option 150/66, else its id) */
    uint16_t http_port, tftp_port, sip_port;
    struct sim_group groups[SIM_FAM_N]; /* one per family, in the order given */
    unsigned n_groups;
    uint8_t mac_prefix[6];
    unsigned prefix_len; /* 1..5 bytes; the rest is the device number */
    uint64_t seed;
    unsigned poll_ms, reboot_ms, ramp_ms, blksize;
    unsigned timeout_s;
    /* injected failures, percent of each family's devices (0..100) */
    unsigned fail_never_return, fail_old_version, fail_abort, fail_malformed;
    int progress; /* print a progress line per second on stderr */
    int verbose;  /* one line per device event on stderr */
};

typedef struct sim_fleet sim_fleet_t;

/* Makes the devices (MACs, injected failures) without touching the network.
 * 0, or -errno with a one-line reason in err. */
int sim_fleet_new(const struct sim_config *cfg, sim_fleet_t **out, char *err, size_t errlen);
/* Frees the fleet and removes the addresses it added; nulls *self_p. */
void sim_fleet_destroy(sim_fleet_t **self_p);
/* Prints one CSV line per device: mac,family,model,start_version,injected. */
void sim_fleet_list(const sim_fleet_t *f, FILE *out);
/* Runs the site until every device settles or the timeout. Returns 0 when
 * every device ended where expected, 1 when not, or -errno (with err) when
 * the run could not start (no interface, port 68 taken, no privilege). */
int sim_fleet_run(sim_fleet_t *f, char *err, size_t errlen);
/* The summary: a table per family and the devices that did not end where
 * expected, or the same as one JSON object. */
void sim_fleet_summary(const sim_fleet_t *f, FILE *out, int json);

#endif
