# firmfleet build. `make` builds the three programs into build/; `make test`
# runs unit and system tests on a normal and on an ASan+UBSan build and ends
# with one line "N passed, N failed"; `make run` starts the demo.
# Every target first makes sure the Debian packages are there (make deps).

SAN ?= 0
ifeq ($(SAN),1)
B ?= build-asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT = -O1
else
B ?= build
SANFLAGS =
OPT = -O2
endif

# the release every program reports (--version, Hello, metrics); packages take it too
FF_VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

PKGS = libzmq libprotobuf-c sqlite3 libuv libsodium jansson
CC ?= cc
WARN = -Wall -Wextra -Wshadow -Wpointer-arith -Wcast-qual -Wstrict-prototypes \
       -Wmissing-prototypes -Werror
CFLAGS_ALL = -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(OPT) -g $(WARN) $(SANFLAGS) \
       -DFF_VERSION='"$(FF_VERSION)"' -MMD -MP -Ilib -Iproto -Idb -Icontroller -Isiteagent -isystem $(B)/gen \
       $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)
LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcsv -lhttp_parser

# The agent links a static libzmq built from Debian's zeromq3 source without
# OpenPGM, NORM and Kerberos (deploy/zmq-slim.sh, run by make deps), and the
# parts of libstdc++ it calls: 2.5 MiB less idle RSS on a branch box.
# ZMQ_SLIM=0 links Debian's shared libzmq instead (FF_ZMQ_SLIM=0 make deps
# then skips building it).
ZMQ_SLIM ?= 1
ZMQ_SLIM_DIR ?= /opt/firmfleet-deps/libzmq-slim
ifeq ($(ZMQ_SLIM),1)
AGENT_ZMQ_A = $(ZMQ_SLIM_DIR)/lib/libzmq.a
AGENT_LIBS = -Wl,--gc-sections $(AGENT_ZMQ_A) -Wl,-Bstatic -lstdc++ -Wl,-Bdynamic -static-libgcc \
       $(shell pkg-config --libs $(filter-out libzmq,$(PKGS)) 2>/dev/null) -lcsv -lhttp_parser -lm -lpthread
else
AGENT_ZMQ_A =
AGENT_LIBS = $(LIBS)
endif

GEN_C = $(B)/gen/firmfleet.pb-c.c
GEN_H = $(B)/gen/firmfleet.pb-c.h

FF_SRC    = $(wildcard lib/*.c) $(wildcard proto/*.c)
DB_SRC    = $(wildcard db/*.c)
CTL_SRC   = $(wildcard controller/ctl_*.c) controller/imgstore.c
CLI_SRC   = $(wildcard controller/cli_*.c)
AGENT_SRC = $(filter-out siteagent/agent_main.c,$(wildcard siteagent/*.c))
SIM_SRC   = $(wildcard sim/sim_*.c)
UNIT_SRC  = $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
FF_OBJ    = $(call obj,$(FF_SRC)) $(B)/obj/gen/firmfleet.pb-c.o
DB_OBJ    = $(call obj,$(DB_SRC))
CTL_OBJ   = $(call obj,$(CTL_SRC))
CLI_OBJ   = $(call obj,$(CLI_SRC))
AGENT_OBJ = $(call obj,$(AGENT_SRC))
ARCHIVES  = $(B)/libctl.a $(B)/libcli.a $(B)/libagent.a $(B)/libffdb.a $(B)/libff.a
PROGS     = $(B)/firmfleetd $(B)/firmfleet $(B)/firmfleet-agent
UNITS     = $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
TOOLS     = $(patsubst tests/tools/%.c,$(B)/tests/tools/%,$(wildcard tests/tools/*.c))

.PHONY: all deps test test-unit test-system run bench fuzz format clean install units
all: $(PROGS)
all: $(B)/firmfleet-sim

DEPS_STAMP = $(B)/.deps-ok
$(DEPS_STAMP): deploy/deps.sh deploy/zmq-slim.sh
	@sh deploy/deps.sh
	@mkdir -p $(B) && touch $@
ifneq ($(AGENT_ZMQ_A),)
$(AGENT_ZMQ_A): | $(DEPS_STAMP)
	@sh deploy/zmq-slim.sh $(ZMQ_SLIM_DIR)
endif
deps:
	@sh deploy/deps.sh

$(GEN_C) $(GEN_H): proto/firmfleet.proto | $(DEPS_STAMP)
	@mkdir -p $(B)/gen
	protoc-c --proto_path=proto --c_out=$(B)/gen proto/firmfleet.proto

$(B)/obj/gen/firmfleet.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) -std=c11 $(OPT) -g $(SANFLAGS) -isystem $(B)/gen -c $< -o $@

$(B)/obj/%.o: %.c $(GEN_H) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/libff.a: $(FF_OBJ)
	@rm -f $@; ar rcs $@ $^
$(B)/libffdb.a: $(DB_OBJ)
	@rm -f $@; ar rcs $@ $^
$(B)/libctl.a: $(CTL_OBJ)
	@rm -f $@; ar rcs $@ $^ $(if $^,,/dev/null)
$(B)/libcli.a: $(CLI_OBJ)
	@rm -f $@; ar rcs $@ $^
$(B)/libagent.a: $(AGENT_OBJ)
	@rm -f $@; ar rcs $@ $^

$(B)/firmfleetd: $(B)/obj/controller/firmfleetd.o $(ARCHIVES)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $< $(ARCHIVES) $(LIBS)
$(B)/firmfleet: $(B)/obj/controller/firmfleet.o $(ARCHIVES)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $< $(ARCHIVES) $(LIBS)
$(B)/firmfleet-agent: $(B)/obj/siteagent/agent_main.o $(ARCHIVES) $(AGENT_ZMQ_A)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $< $(ARCHIVES) $(AGENT_LIBS)

$(B)/firmfleet-sim: $(B)/obj/sim/firmfleet-sim.o $(call obj,$(SIM_SRC)) $(ARCHIVES)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $< $(call obj,$(SIM_SRC)) $(ARCHIVES) $(LIBS)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(ARCHIVES)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $< $(ARCHIVES) $(LIBS) -lcmocka

$(B)/tests/tools/%: $(B)/obj/tests/tools/%.o $(ARCHIVES)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $< $(ARCHIVES) $(LIBS)

units: $(UNITS) $(TOOLS)

# make test: both builds, unit tests on both, system tests on the sanitizer
# build (what passes there passes on the plain one; `make run` uses the plain).
test: | $(DEPS_STAMP)
	$(MAKE) all units
	$(MAKE) SAN=1 all units
	@tests/run.sh --unit build --unit build-asan --system build-asan

test-unit: all units
	@tests/run.sh --unit $(B)

test-system: all units
	@tests/run.sh --system $(B)

run: all
	@deploy/demo.sh $(B)

bench: all
	@tests/bench/run.sh $(B)

# make fuzz: libFuzzer (clang, ASan+UBSan) on every parser that reads the
# network or operator input: DHCP packets and classification, TFTP requests,
# HTTP requests, window specs, controller-link and admin protobufs, the
# device import CSV, vendor profiles. Each target runs FUZZ_SECONDS from its
# committed seeds (tests/fuzz/corpus/NAME, read only); the corpus grows
# under $(B)/fuzz/, and a crashing input is written there as
# corpus-NAME-crash-*. A failing target does not stop the others; `make
# fuzz` fails at the end, naming them.
FUZZ_SECONDS ?= 60
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -Ilib -Iproto -Idb -Isiteagent \
             -Icontroller -isystem $(B)/gen
FUZZ_BINS = $(B)/fuzz/fuzz_dhcp $(B)/fuzz/fuzz_tftp_pkt $(B)/fuzz/fuzz_http_req \
            $(B)/fuzz/fuzz_window $(B)/fuzz/fuzz_envelope $(B)/fuzz/fuzz_csv \
            $(if $(wildcard lib/profile.c),$(B)/fuzz/fuzz_profile) $(B)/fuzz/fuzz_path \
            $(B)/fuzz/fuzz_config $(B)/fuzz/fuzz_template
$(B)/fuzz/fuzz_dhcp: tests/fuzz/fuzz_dhcp.c siteagent/dhcp_pkt.c siteagent/dhcp_class.c $(GEN_C)
	@mkdir -p $(dir $@) && sh deploy/deps.sh fuzz
	clang $(FUZZ_FLAGS) $^ -lprotobuf-c -o $@
$(B)/fuzz/fuzz_tftp_pkt: tests/fuzz/fuzz_tftp_pkt.c siteagent/tftp_pkt.c
	@mkdir -p $(dir $@) && sh deploy/deps.sh fuzz
	clang $(FUZZ_FLAGS) $^ -o $@
$(B)/fuzz/fuzz_http_req: tests/fuzz/fuzz_http_req.c siteagent/http_req.c lib/util.c
	@mkdir -p $(dir $@) && sh deploy/deps.sh fuzz
	clang $(FUZZ_FLAGS) $^ -lhttp_parser -o $@
$(B)/fuzz/fuzz_window: tests/fuzz/fuzz_window.c lib/window.c lib/util.c
	@mkdir -p $(dir $@) && sh deploy/deps.sh fuzz
	clang $(FUZZ_FLAGS) $^ -o $@
$(B)/fuzz/fuzz_envelope: tests/fuzz/fuzz_envelope.c $(GEN_C)
	@mkdir -p $(dir $@) && sh deploy/deps.sh fuzz
	clang $(FUZZ_FLAGS) $^ -lprotobuf-c -o $@
$(B)/fuzz/fuzz_csv: tests/fuzz/fuzz_csv.c controller/cli_csv.c lib/dhcpopt.c lib/util.c
	@mkdir -p $(dir $@) && sh deploy/deps.sh fuzz
	clang $(FUZZ_FLAGS) $^ -lcsv -ljansson -o $@
$(B)/fuzz/fuzz_profile: tests/fuzz/fuzz_profile.c lib/profile.c lib/dhcpopt.c lib/util.c
	@mkdir -p $(dir $@) && sh deploy/deps.sh fuzz
	clang $(FUZZ_FLAGS) $^ -ljansson -o $@
# the canonicaliser, templates and the credential reader live in the agent: link its modules
$(B)/fuzz/fuzz_path $(B)/fuzz/fuzz_config $(B)/fuzz/fuzz_template: $(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(filter-out siteagent/agent_main.c,$(wildcard siteagent/*.c)) \
                     $(wildcard lib/*.c) $(wildcard proto/*.c) $(wildcard db/*.c) $(GEN_C) \
                     $(wildcard controller/ctl_*.c) controller/imgstore.c
	@mkdir -p $(dir $@) && sh deploy/deps.sh fuzz
	clang $(FUZZ_FLAGS) $^ $(LIBS) -o $@
fuzz: $(FUZZ_BINS)
	@bad=""; for f in $(FUZZ_BINS); do \
	  n=$$(basename $$f); c=$(B)/fuzz/corpus-$$n; mkdir -p $$c; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  if $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=$$c- \
	       $$c tests/fuzz/corpus/$$n 2>$$c.log; then \
	    grep -E 'stat::number_of_executed_units|stat::new_units_added' $$c.log | tr '\n' ' '; echo; \
	  else \
	    tail -40 $$c.log; echo "fuzz: $$n FAILED (log $$c.log)"; bad="$$bad $$n"; \
	  fi; \
	done; [ -z "$$bad" ] || { echo "fuzz: failed:$$bad"; exit 1; }

# Corpus replay without clang: each tests/fuzz/fuzz_NAME.c linked with
# tests/fuzz/replay_main.c into $(B)/tests/test_fuzz_NAME, built by `units`
# and run by tests/run.sh like any unit test, so `make test` replays every
# committed seed and saved crash on the plain and the ASan+UBSan build.
FUZZ_REPLAY = $(patsubst tests/fuzz/%.c,$(B)/tests/test_%,$(wildcard tests/fuzz/fuzz_*.c))
units: $(FUZZ_REPLAY)
$(FUZZ_REPLAY): $(B)/tests/test_%: $(B)/obj/tests/fuzz/%.o $(B)/obj/tests/fuzz/replay_main.o $(ARCHIVES)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(ARCHIVES) $(LIBS)

format:
	clang-format -i $(wildcard */*.c */*.h tests/*/*.c)

# make install [DESTDIR=...]: programs, man pages, the vendor profiles (the
# controller's default --profiles), the systemd units, and the /etc/default
# files the units read (an existing one is left alone).
UNITDIR ?= /lib/systemd/system
install: all
	install -d $(DESTDIR)/usr/sbin $(DESTDIR)/usr/bin $(DESTDIR)/usr/share/man/man1 $(DESTDIR)/usr/share/man/man8 \
	  $(DESTDIR)/usr/share/man/man5 \
	  $(DESTDIR)/usr/share/firmfleet/profiles $(DESTDIR)$(UNITDIR) $(DESTDIR)/etc/default
	install -m 0755 $(B)/firmfleetd $(B)/firmfleet-agent $(DESTDIR)/usr/sbin/
	install -m 0755 $(B)/firmfleet $(B)/firmfleet-sim $(DESTDIR)/usr/bin/
	install -m 0644 man/*.1 $(DESTDIR)/usr/share/man/man1/
	install -m 0644 man/*.8 $(DESTDIR)/usr/share/man/man8/
	install -m 0644 man/*.5 $(DESTDIR)/usr/share/man/man5/
	install -m 0644 profiles/*.json profiles/README.md $(DESTDIR)/usr/share/firmfleet/profiles/
	install -m 0644 deploy/systemd/firmfleetd.service 'deploy/systemd/firmfleet-agent@.service' $(DESTDIR)$(UNITDIR)/
	@for f in firmfleetd firmfleet-agent; do \
	  [ -e $(DESTDIR)/etc/default/$$f ] || install -m 0644 deploy/systemd/$$f.default $(DESTDIR)/etc/default/$$f; \
	done

# make deb: the Debian packages firmfleet-controller and firmfleet-agent
# (deploy/debian/mkdeb.sh) from a staged `make install`, into DEB_DIR.
DEB_DIR ?= $(B)/deb
.PHONY: deb
deb: all
	@rm -rf $(DEB_DIR)/stage
	@$(MAKE) --no-print-directory B=$(B) SAN=$(SAN) DESTDIR=$(abspath $(DEB_DIR))/stage install >/dev/null
	@sh deploy/debian/mkdeb.sh $(DEB_DIR)/stage $(DEB_DIR)

clean:
	rm -rf build build-asan

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
.SECONDARY:

# make soak: the crash tests at full size (issue 6), not in `make test`:
#  - t_crash_rollout: SOAK_DEVICES simulated phones (5 sites, one agent and
#    one firmfleet-sim each), SOAK_KILLS kill -9 of the controller at random
#    moments during the rollout; the rollout must complete with no event
#    lost or doubled. The phones power on over 4 minutes so that every kill
#    falls inside the rollout. About 5 minutes.
#  - t_crash_dhcp: SOAK_DHCP_CYCLES kill -9 of the agent under DHCP load; no
#    acknowledged lease lost, no address held twice. About 4 minutes.
SOAK_DEVICES ?= 10000
SOAK_KILLS ?= 50
SOAK_DHCP_CYCLES ?= 100
.PHONY: soak
soak: all
	@FF_CRASH_DEVICES=$(SOAK_DEVICES) FF_CRASH_KILLS=$(SOAK_KILLS) FF_CRASH_MIN_DURING=$(SOAK_KILLS) \
	  FF_CRASH_RAMP=$${FF_CRASH_RAMP:-240s} FF_CRASH_GAP=$${FF_CRASH_GAP:-6} FF_CRASH_TIMEOUT=$${FF_CRASH_TIMEOUT:-700} \
	  FF_CRASH_CYCLES=$(SOAK_DHCP_CYCLES) FF_CRASH_SECONDS=$$(( $(SOAK_DHCP_CYCLES) * 3 )) \
	  tests/run.sh --system $(B) --only t_crash_
