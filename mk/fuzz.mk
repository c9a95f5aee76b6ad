# libFuzzer targets (owner: fuzz). `make fuzz` builds build-fuzz/fuzz_<target> with clang,
# ASan and UBSan (every UB report aborts, so it counts as a crash); `make fuzz FUZZ_SECONDS=N`
# then runs each target for N seconds, one after another, from its seed corpus fuzz/corpus/<target>/
# (new inputs go to build-fuzz/corpus/<target>/, crashes to build-fuzz/artifacts/).
# The library is compiled again with clang into build-fuzz/ so it never mixes with gcc's build/.
# `make test` runs each target for a few seconds through fuzz/smoke.sh.

FUZZ_BUILD   := build-fuzz
# Which clang is decided when a recipe runs (after `make deps` may have installed it).
FUZZ_FIND_CC := command -v clang-14 || command -v clang
FUZZ_CC      ?= clang-14
FUZZ_TARGETS := jwt json_lenient webhook_body landing_token mp_response config
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=c11 -D_GNU_SOURCE -fPIC -Wall -Wextra -Wno-unused-parameter -Isrc \
                $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_OBJ     := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_SECONDS ?=

.PHONY: fuzz fuzz-build

fuzz: deps
	@cc=$$($(FUZZ_FIND_CC)); if [ -z "$$cc" ]; then echo "fuzz: clang not found (make deps installs clang-14)"; exit 1; fi; \
	$(MAKE) --no-print-directory FUZZ_CC=$$cc $(FUZZ_BINS)
	@if [ -n "$(FUZZ_SECONDS)" ]; then FUZZ_BUILD=$(FUZZ_BUILD) fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS); fi

# For `make test`: builds the fuzzers when clang is there (make deps installs it); without
# clang fuzz/smoke.sh reports every target as skipped.
fuzz-build: deps
	@cc=$$($(FUZZ_FIND_CC)); if [ -z "$$cc" ]; then echo "fuzz: clang not installed, fuzzers not built"; \
	else $(MAKE) --no-print-directory FUZZ_CC=$$cc $(FUZZ_BINS); fi

test ctest: fuzz-build

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC  $< (fuzz)"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP $(shell pkg-config --cflags $(PKGS)) -c $< -o $@

$(FUZZ_BUILD)/libsaasd.a: $(FUZZ_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_BUILD)/libsaasd.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(shell pkg-config --libs $(PKGS)) $(LDLIBS)

# Keep the harness objects (make would delete them as intermediates and relink every time).
.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%.o)

-include $(FUZZ_OBJ:.o=.d) $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%.d)
