# saasd — one Makefile. Outputs go to build/ (override with BUILD=dir).
# `make deps` installs Debian packages; every other entry point depends on it.

BUILD    ?= build
CC       ?= cc
PKGS     := lua5.4 libcurl libcrypto lmdb libmicrohttpd jansson yajl libsystemd
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wpointer-arith -Wcast-qual -Wvla -Wno-unused-parameter
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -fPIC $(WARN) -MMD -MP -Isrc
LDLIBS   += -lpthread -lm

ifeq ($(SANITIZE),address)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
BUILD    := $(BUILD)-asan
endif
ifeq ($(SANITIZE),thread)
CFLAGS   += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=thread
BUILD    := $(BUILD)-tsan
endif

# jemalloc for the saasd executable (daemon, rule workers, emulator): the allocations of jansson
# trees, libcurl buffers and Lua values cost fewer instructions than with glibc's malloc (callgrind,
# an 800-event drain: -6 % of the daemon's). Not with a sanitizer, which brings its own allocator.
ifeq ($(SANITIZE),)
MALLOC_LIB := -ljemalloc
endif

# Debian packages, by what needs them.
DEB_BUILD := build-essential pkg-config liblua5.4-dev libcurl4-openssl-dev libssl-dev \
             liblmdb-dev libmicrohttpd-dev libjansson-dev libyajl-dev libjemalloc-dev libsystemd-dev
DEB_RUN   := lua5.4 lua-cjson lua-busted lua-check lmdb-utils curl openssl
DEB_BENCH := wrk nginx-light procps
DEB_BROWSER := chromium chromium-driver python3-selenium
DEB_FUZZ  := clang-14 libclang-rt-14-dev
DEB_ALL   := $(DEB_BUILD) $(DEB_RUN) $(DEB_BENCH) $(DEB_BROWSER) $(DEB_FUZZ)

LIB_SRC  := $(sort $(wildcard src/core/*.c src/engine/*.c src/bind/*.c src/emu/*.c src/daemon/*.c src/cmd/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all deps test ctest spec browser lint run demo bench systemd-check clean

all: deps $(BUILD)/saasd $(TEST_BIN) luamod

-include mk/*.mk

deps:
	@missing=""; for p in $(DEB_ALL); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	@$(CC) $(CFLAGS) $(shell pkg-config --cflags $(PKGS)) -c $< -o $@

$(BUILD)/libsaasd.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/saasd: $(BUILD)/src/main.o $(BUILD)/libsaasd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs $(PKGS)) $(LDLIBS) $(MALLOC_LIB)

$(TEST_BIN): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libsaasd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs $(PKGS)) $(LDLIBS)
# test_events runs a TLS SMTP relay of its own (libssl); saasd reaches TLS only through libcurl
$(BUILD)/tests/test_events: LDLIBS += $(shell pkg-config --libs libssl)
# test_inbox_order_lost makes the inbox's sub_set_add fail (the guarantee under out of memory)
$(BUILD)/tests/test_inbox_order_lost: LDFLAGS += -Wl,--wrap=sub_set_add
# test_watchdog_wedged holds the public event loop in webhook_handle (the watchdog must stop pinging)
$(BUILD)/tests/test_watchdog_wedged: LDFLAGS += -Wl,--wrap=webhook_handle

# Lua C modules for busted specs are added by mk/*.mk; this target collects them.
LUAMODS ?=
luamod: $(LUAMODS)

test: all
	@BUILD=$(BUILD) tests/run-all.sh

ctest: all
	@BUILD=$(BUILD) ONLY=c tests/run-all.sh

spec: all
	@BUILD=$(BUILD) ONLY=spec tests/run-all.sh

browser: all
	@BUILD=$(BUILD) ONLY=browser tests/run-all.sh

lint: deps
	@if grep -rnE '#only' spec; then echo "lint: a spec still carries #only"; exit 1; fi
	luacheck --codes lua rules spec

run: all
	$(BUILD)/saasd run --config examples/saasd.conf

demo: all
	$(BUILD)/saasd run --config examples/demo.conf --demo
	@rm -rf $(BUILD)/demo-candidate && mkdir -p $(BUILD)/demo-candidate && cp rules/*.lua $(BUILD)/demo-candidate/
	@sed -i 's/if wanted < in_use then/if wanted + 5 < in_use then/' $(BUILD)/demo-candidate/seats-pro.lua
	@echo; echo "shadow replay of the demo's history with a candidate seats-pro.lua that lets a customer go 5 seats below the seats in use:"
	$(BUILD)/saasd rules replay --config examples/demo.conf --candidate $(BUILD)/demo-candidate --allow-diff

bench: all
	tests/bench/run.sh

# The packaged service under a real systemd (root; not part of `make test`): builds the .deb,
# boots a cached Debian 12 root (build/systemd-root) with systemd-nspawn and checks the service.
systemd-check:
	BUILD=$(BUILD) tests/systemd_boot.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(LIB_OBJ:.o=.d) $(BUILD)/src/main.d $(TEST_BIN:=.d)
