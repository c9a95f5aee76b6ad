# The "acting on events" benchmark's loader (not a test): queues events in a daemon's inbox.
DRAIN_BENCH := $(BUILD)/bench/drain_load

all: $(DRAIN_BENCH)

$(DRAIN_BENCH): tests/bench/drain_load.c $(BUILD)/libsaasd.a
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) $(shell pkg-config --cflags $(PKGS)) $(LDFLAGS) -o $@ $< $(BUILD)/libsaasd.a \
	  $(shell pkg-config --libs $(PKGS)) $(LDLIBS)
