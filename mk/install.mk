# Installing saasd (owner: ship): `make install` / `make uninstall`, PREFIX (default
# /usr/local) and DESTDIR as usual. What goes where:
#   $(BINDIR)/saasd, $(BINDIR)/saasd-busted       the daemon; busted for rule specs (Lua 5.4)
#   $(LUADIR)/saas/*.lua                          the Lua runtime (saas.testing for specs)
#   $(LUACDIR)/saas/core.so                       the spec C module (src/engine/spec_module.c)
#   $(EXAMPLEDIR)/                                config, rules, landing template, isv-repo/
#   $(MANDIR)/man1/saasd.1, saasd-busted.1        generated with help2man from --help
#   $(UNITDIR)/saasd.service                      from dist/saasd.service.in, for this prefix
#   $(SYSUSERSDIR)/saasd.conf                     the saasd system user (systemd-sysusers)
#   $(SYSCONFDIR)/saasd/saasd.conf, rules/        only when absent: never overwrites a config
# LUADIR and LUACDIR are Lua 5.4's default module paths for /usr and /usr/local, so plain
# lua5.4 finds the runtime there; saasd-busted finds it relative to itself (DESTDIR, copies).

VERSION     := $(shell sed -n 's/^\#define SAASD_VERSION "\(.*\)"/\1/p' src/cmd/version.c)
PREFIX      ?= /usr/local
BINDIR      := $(PREFIX)/bin
DATADIR     := $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
LUADIR      := $(DATADIR)/lua/5.4
MULTIARCH   := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || $(CC) -print-multiarch)
LUACDIR     := $(if $(filter /usr,$(PREFIX)),$(PREFIX)/lib/$(MULTIARCH),$(PREFIX)/lib)/lua/5.4
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR  ?= /etc
EXAMPLEDIR  := $(DATADIR)/saasd/examples
INSTALL     ?= install

# help2man makes the man pages; systemd-analyze checks the installed unit (tests/test_install.sh).
DEB_INSTALL := help2man systemd
DEB_ALL     += $(DEB_INSTALL)

MAN_PAGES   := $(BUILD)/man/saasd.1 $(BUILD)/man/saasd-busted.1
LUA_RUNTIME := $(sort $(wildcard lua/saas/*.lua))
EXAMPLE_RULES := $(sort $(wildcard rules/*.lua))
ISV_REPO    := examples/isv-repo

.PHONY: install uninstall
# The build tree's wrapper (`saasd test` from build/ uses it, help2man reads its --help).
all: $(BUILD)/tests/test_install $(BUILD)/dist/saasd-busted

$(BUILD)/tests/test_install: tests/test_install.sh
	@mkdir -p $(dir $@)
	@cp $< $@ && chmod 755 $@

# The wrapper finds the runtime relative to itself: these paths depend on PREFIX (multiarch
# under /usr), so `install` writes it afresh for its PREFIX.
WRAPPER_SED := sed -e 's|@VERSION@|$(VERSION)|' -e 's|@LUADIR_REL@|$(LUADIR:$(PREFIX)/%=%)|' \
	    -e 's|@LUACDIR_REL@|$(LUACDIR:$(PREFIX)/%=%)|' dist/saasd-busted.in
$(BUILD)/dist/saasd-busted: dist/saasd-busted.in src/cmd/version.c
	@mkdir -p $(dir $@)
	@$(WRAPPER_SED) >$@.tmp && chmod 755 $@.tmp && mv $@.tmp $@

$(BUILD)/man/saasd.1: $(BUILD)/saasd dist/saasd.h2m
	@mkdir -p $(dir $@)
	help2man --no-info --version-string=$(VERSION) --include=dist/saasd.h2m \
	  --name="Microsoft commercial marketplace SaaS fulfillment daemon" -o $@ $(abspath $(BUILD)/saasd)
$(BUILD)/man/saasd-busted.1: $(BUILD)/dist/saasd-busted dist/saasd-busted.h2m
	@mkdir -p $(dir $@)
	help2man --no-info --include=dist/saasd-busted.h2m \
	  --name="run busted specs of saasd rule files under Lua 5.4" -o $@ $(abspath $(BUILD)/dist/saasd-busted)

install: $(BUILD)/saasd $(BUILD)/lua/saas/core.so $(BUILD)/dist/saasd-busted $(MAN_PAGES)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)/saas $(DESTDIR)$(LUACDIR)/saas \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(EXAMPLEDIR)/rules $(DESTDIR)$(SYSCONFDIR)/saasd/rules
	$(INSTALL) -m 755 $(BUILD)/saasd $(DESTDIR)$(BINDIR)/saasd
	$(WRAPPER_SED) >$(DESTDIR)$(BINDIR)/saasd-busted
	chmod 755 $(DESTDIR)$(BINDIR)/saasd-busted
	$(INSTALL) -m 644 $(LUA_RUNTIME) $(DESTDIR)$(LUADIR)/saas/
	$(INSTALL) -m 644 $(BUILD)/lua/saas/core.so $(DESTDIR)$(LUACDIR)/saas/core.so
	$(INSTALL) -m 644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man1/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/saasd.service.in \
	  >$(DESTDIR)$(UNITDIR)/saasd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/saasd.service
	$(INSTALL) -m 644 dist/saasd.sysusers $(DESTDIR)$(SYSUSERSDIR)/saasd.conf
	$(INSTALL) -m 644 examples/emulator-client-secret examples/landing-template.html $(DESTDIR)$(EXAMPLEDIR)/
	@# paths in a config are relative to it: there the example rules sit next to it, in rules/
	sed 's|"\.\./rules"|"rules"|' examples/saasd.conf >$(DESTDIR)$(EXAMPLEDIR)/saasd.conf
	chmod 644 $(DESTDIR)$(EXAMPLEDIR)/saasd.conf
	$(INSTALL) -m 644 dist/saasd.conf $(DESTDIR)$(EXAMPLEDIR)/saasd.conf.production
	$(INSTALL) -m 644 $(EXAMPLE_RULES) $(DESTDIR)$(EXAMPLEDIR)/rules/
	rm -rf $(DESTDIR)$(EXAMPLEDIR)/isv-repo
	cp -R $(ISV_REPO) $(DESTDIR)$(EXAMPLEDIR)/isv-repo
	chmod -R u=rwX,go=rX $(DESTDIR)$(EXAMPLEDIR)/isv-repo
	chmod 755 $(DESTDIR)$(EXAMPLEDIR)/isv-repo/ci/check-rules.sh
	@# The config and the rules are the operator's: installed once, never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/saasd/saasd.conf || \
	  $(INSTALL) -m 644 dist/saasd.conf $(DESTDIR)$(SYSCONFDIR)/saasd/saasd.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/saasd/rules/default.lua || \
	  $(INSTALL) -m 644 rules/default.lua $(DESTDIR)$(SYSCONFDIR)/saasd/rules/default.lua

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/saasd $(DESTDIR)$(BINDIR)/saasd-busted \
	  $(addprefix $(DESTDIR)$(LUADIR)/saas/,$(notdir $(LUA_RUNTIME))) \
	  $(DESTDIR)$(LUACDIR)/saas/core.so $(DESTDIR)$(MANDIR)/man1/saasd.1 \
	  $(DESTDIR)$(MANDIR)/man1/saasd-busted.1 $(DESTDIR)$(UNITDIR)/saasd.service \
	  $(DESTDIR)$(SYSUSERSDIR)/saasd.conf
	rm -rf $(DESTDIR)$(DATADIR)/saasd
	-rmdir $(DESTDIR)$(LUADIR)/saas $(DESTDIR)$(LUACDIR)/saas 2>/dev/null
	@echo "uninstall: kept $(DESTDIR)$(SYSCONFDIR)/saasd (your config and rules) and /var/lib/saasd (the store)"
