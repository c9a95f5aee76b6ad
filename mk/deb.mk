# The Debian package (owner: ship): `make deb` builds build/deb/saasd_<version>_<arch>.deb
# with Debian's own tools (debian/: dh, dpkg-buildpackage -us -uc -b) from a copy of this tree,
# so the tree itself gets no debian/saasd, debian/files or ../*.deb. Then it checks the
# package (tests/check_deb.sh: its files, conffiles, maintainer scripts, the unit, and the
# extracted binaries running an ISV's specs) and runs lintian, failing on any error.
# Also run by `make test` (tests/run-all.sh, part "deb"; about a minute on two cores).
DEB_PACKAGING := debhelper lintian help2man dpkg-dev fakeroot
DEB_DIR := $(BUILD)/deb

.PHONY: deb deb-deps
deb-deps:
	@$(MAKE) --no-print-directory deps DEB_ALL="$(DEB_PACKAGING) $(DEB_BUILD) lua-cjson lua-busted lua5.4"

deb: deb-deps
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/saasd-$(VERSION)
	tar -c --exclude=./build --exclude=./build-* --exclude=./.git --exclude=./var \
	  --exclude=./debian/build . | tar -x -C $(DEB_DIR)/saasd-$(VERSION)
	cd $(DEB_DIR)/saasd-$(VERSION) && dpkg-buildpackage -us -uc -b
	tests/check_deb.sh $(DEB_DIR)/saasd_$(VERSION)_$(shell dpkg --print-architecture).deb
	lintian --fail-on error --info $(DEB_DIR)/saasd_$(VERSION)_*.changes
