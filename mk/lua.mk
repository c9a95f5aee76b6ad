# The rule engine's build pieces (owner: engine).
#  - lua-cjson: the daemon links Debian's liblua5.4-cjson (ctx.json is lua-cjson, the same
#    library busted specs load as `cjson`). There is no unversioned .so, hence -l:.
#  - src/engine/embedded.c embeds the Lua runtime (lua/saas/*.lua) and rules/default.lua.
#  - build/lua/saas/core.so: the C module busted specs load (limits, real crypto bindings).
#  - build/tests/test_engine_asan: tests/test_engine_reload.c built with AddressSanitizer (and
#    LeakSanitizer), picked up by tests/run-all.sh like every other test program.

LDLIBS += -l:liblua5.4-cjson.so.0

$(BUILD)/src/engine/embedded.o: lua/saas/sandbox.lua lua/saas/contract.lua lua/saas/ctx.lua rules/default.lua

# Lua C module for specs: only what specs need, no LMDB/HTTP (fakes stand in for those).
# Compiled on its own without sanitizers: the stock lua5.4 that runs busted cannot load an
# ASan-instrumented module, even in a `make SANITIZE=address` build.
SPEC_MOD_SRC := src/engine/spec_module.c src/engine/limits.c src/bind/crypto.c src/bind/host.c \
                src/core/crypto.c src/core/err.c
SPEC_MOD_CFLAGS := $(filter-out -fsanitize=%,$(CFLAGS))
$(BUILD)/luamod/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC  $< (lua module)"
	@$(CC) $(SPEC_MOD_CFLAGS) $(shell pkg-config --cflags $(PKGS)) -c $< -o $@
$(BUILD)/lua/saas/core.so: $(SPEC_MOD_SRC:%.c=$(BUILD)/luamod/%.o)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(shell pkg-config --libs libcrypto)
-include $(SPEC_MOD_SRC:%.c=$(BUILD)/luamod/%.d)
LUAMODS += $(BUILD)/lua/saas/core.so

# The reload stress test under AddressSanitizer, in the normal build only (a SANITIZE=address
# build already is; ASan cannot be combined with SANITIZE=thread).
ifeq ($(SANITIZE),)
ASAN_DIR := $(BUILD)/asan
ASAN_CFLAGS := $(filter-out -O2,$(CFLAGS)) -O1 -fsanitize=address -fno-omit-frame-pointer
ASAN_LIB_OBJ := $(LIB_SRC:%.c=$(ASAN_DIR)/%.o)
ASAN_OBJ := $(ASAN_DIR)/tests/test_engine_reload.o $(ASAN_LIB_OBJ)
$(ASAN_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC  $< (asan)"
	@$(CC) $(ASAN_CFLAGS) $(shell pkg-config --cflags $(PKGS)) -c $< -o $@
$(ASAN_DIR)/src/engine/embedded.o: lua/saas/sandbox.lua lua/saas/contract.lua lua/saas/ctx.lua rules/default.lua
$(ASAN_DIR)/libsaasd.a: $(ASAN_LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^
$(BUILD)/tests/test_engine_asan: $(ASAN_DIR)/tests/test_engine_reload.o $(ASAN_DIR)/libsaasd.a
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=address -o $@ $^ $(shell pkg-config --libs $(PKGS)) $(LDLIBS)
LUAMODS += $(BUILD)/tests/test_engine_asan
-include $(ASAN_OBJ:.o=.d)
endif
