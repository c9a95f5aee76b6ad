# Store benchmark (not a test): build/bench/store_bench. Run it by hand, briefly:
#   build/bench/store_bench [threads] [seconds] [puts-per-batch] [append|spread]
STORE_BENCH := $(BUILD)/bench/store_bench

all: $(STORE_BENCH)

$(STORE_BENCH): tests/bench/store_bench.c $(BUILD)/libsaasd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags $(PKGS)) $(LDFLAGS) -o $@ $< $(BUILD)/libsaasd.a \
	  $(shell pkg-config --libs $(PKGS)) $(LDLIBS)

-include $(STORE_BENCH).d
