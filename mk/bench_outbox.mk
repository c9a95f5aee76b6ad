# The "acting on events" benchmark's outbox filler (not a test): parks events in a daemon's
# outbox, so the drain shows CPU per event with many entries waiting there (issue 14, item 4).
OUTBOX_BENCH := $(BUILD)/bench/outbox_park

all: $(OUTBOX_BENCH)

$(OUTBOX_BENCH): tests/bench/outbox_park.c $(BUILD)/libsaasd.a
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) $(shell pkg-config --cflags $(PKGS)) $(LDFLAGS) -o $@ $< $(BUILD)/libsaasd.a \
	  $(shell pkg-config --libs $(PKGS)) $(LDLIBS)
