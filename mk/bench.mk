# Benchmark programs (not tests): built with `all`, run by `make bench` (tests/bench/run.sh).
BENCH_BIN := $(BUILD)/bench/rule_bench $(BUILD)/bench/load_subs $(BUILD)/bench/replay_bench \
  $(BUILD)/bench/outbox_park

all: $(BENCH_BIN)

$(BENCH_BIN): $(BUILD)/bench/%: tests/bench/%.c $(BUILD)/libsaasd.a
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) $(shell pkg-config --cflags $(PKGS)) $(LDFLAGS) -o $@ $< $(BUILD)/libsaasd.a \
	  $(shell pkg-config --libs $(PKGS)) $(LDLIBS)

-include $(BENCH_BIN:=.d)
