#!/usr/bin/env bash
# Guarantees of `make install` (mk/install.mk) for an operator and for an ISV testing rules in
# their own repository. Built into $BUILD/tests/test_install and run by tests/run-all.sh from
# the top of the source tree; prints TAP lines. Everything happens under $TMPDIR (outside the
# source tree): the tree installed with DESTDIR is copied elsewhere and the staging directory
# removed before the ISV's specs run, so nothing can come from the checkout or the stage.
set -u
src=$PWD
BUILD=${BUILD:-build}
# A sanitizer build tree (make SANITIZE=address|thread) holds instrumented objects: `make
# install` from it would relink them without the sanitizer runtime and break its saasd for the
# tests that run after this one. What gets installed is the normal build's, tested by `make test`.
case "${SANITIZE:-}:$BUILD" in
  ?*:* | *-asan | *-tsan) echo "# skipped: $BUILD is a sanitizer build; make test checks the install"; exit 0 ;;
esac
T=$(mktemp -d "${TMPDIR:-/tmp}/install-XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
check() { # check NAME COMMAND...: ok when COMMAND succeeds, else its output (in $T/out) follows
    local name=$1; shift
    if "$@" >"$T/out" 2>&1; then ok "$name"; else not_ok "$name" "$(tail -15 "$T/out")"; fi
}
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$src" \
    BUILD="$BUILD" SANITIZE= "$@"; }

stage=$T/stage copy=$T/copy isv=$T/isv
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || cc -print-multiarch)
version=$(sed -n 's/^#define SAASD_VERSION "\(.*\)"/\1/p' src/cmd/version.c)

check "make install DESTDIR=... PREFIX=/usr installs" mk install DESTDIR="$stage" PREFIX=/usr

expected() {
    cat <<LIST
etc/saasd/rules/default.lua
etc/saasd/saasd.conf
usr/bin/saasd
usr/bin/saasd-busted
usr/lib/$multiarch/lua/5.4/saas/core.so
usr/lib/systemd/system/saasd.service
usr/lib/sysusers.d/saasd.conf
LIST
    for f in lua/saas/*.lua; do echo "usr/share/lua/5.4/saas/${f##*/}"; done
    echo usr/share/man/man1/saasd.1
    echo usr/share/man/man1/saasd-busted.1
    for f in saasd.conf saasd.conf.production emulator-client-secret landing-template.html; do
        echo "usr/share/saasd/examples/$f"
    done
    for f in rules/*.lua; do echo "usr/share/saasd/examples/rules/${f##*/}"; done
    (cd examples && find isv-repo -type f | sed 's|^|usr/share/saasd/examples/|')
}
expected | sort >"$T/want"
(cd "$stage" && find . -type f | sed 's|^\./||' | sort) >"$T/got"
if diff -u "$T/want" "$T/got" >"$T/diff"; then
    ok "installs exactly the binary, wrapper, Lua runtime, spec module, unit, man pages and examples"
else
    not_ok "installs exactly the expected files" "$(cat "$T/diff")"
fi

if [ -x "$stage/usr/bin/saasd" ] && [ -x "$stage/usr/bin/saasd-busted" ] &&
   [ "$(stat -c %a "$stage/etc/saasd/saasd.conf")" = 644 ]; then
    ok "binaries are executable, the config is 0644"
else
    not_ok "binaries are executable, the config is 0644"
fi

hits=$(grep -rlIF "$src" "$stage" 2>/dev/null)
if [ -z "$hits" ]; then ok "no installed text file names the source tree"
else not_ok "no installed text file names the source tree" "$hits"; fi

unit=$stage/usr/lib/systemd/system/saasd.service
if grep -qx 'ExecStart=/usr/bin/saasd serve --config /etc/saasd/saasd.conf' "$unit"; then
    ok "the unit starts the installed binary with /etc/saasd/saasd.conf"
else
    not_ok "the unit starts the installed binary with /etc/saasd/saasd.conf" "$(grep ExecStart "$unit")"
fi

# The hardening the unit promises (README, Install): each line present, and nothing that would
# stop saasd from starting copies of its own binary as workers.
missing=""
for d in User=saasd StateDirectory=saasd NoNewPrivileges=yes CapabilityBoundingSet= \
    ProtectSystem=strict ProtectHome=yes PrivateTmp=yes MemoryDenyWriteExecute=yes \
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' SystemCallFilter=@system-service \
    'ExecReload=/bin/sh -c '"'"'kill -HUP "$MAINPID"'"'"'' Restart=on-failure; do
    grep -qxF "$d" "$unit" || missing="$missing [$d]"
done
grep -qE '^(NoExecPaths|ExecPaths|ProtectProc=noaccess)' "$unit" && missing="$missing [no exec restrictions]"
if [ -z "$missing" ]; then
    ok "the unit carries its hardening and reload settings and allows exec of its own binary"
else
    not_ok "the unit carries its hardening and reload settings and allows exec of its own binary" "missing:$missing"
fi

v=$("$stage/usr/bin/saasd" version 2>&1)
deb_v=$(sed -n '1s/^saasd (\([^)-]*\).*/\1/p' debian/changelog 2>/dev/null)
if [ "$v" = "saasd $version" ] && [ "$deb_v" = "$version" ]; then
    ok "the installed binary reports the version debian/changelog packages ($version)"
else
    not_ok "the installed binary reports the version debian/changelog packages" "binary: $v" "changelog: $deb_v" "source: $version"
fi

if grep -q '^\.TH SAASD "1"' "$stage/usr/share/man/man1/saasd.1" &&
   grep -q 'check\\-config' "$stage/usr/share/man/man1/saasd.1" &&
   grep -q '^\.TH SAASD-BUSTED "1"' "$stage/usr/share/man/man1/saasd-busted.1"; then
    ok "man pages saasd(1) and saasd-busted(1) are generated from --help"
else
    not_ok "man pages saasd(1) and saasd-busted(1) are generated from --help" "$(head -5 "$stage/usr/share/man/man1/saasd.1")"
fi

# The production config validates once its secret exists (paths moved into the test dir).
mkdir -p "$T/etc/rules"
echo "test-secret" >"$T/etc/client-secret"
sed -e "s|/etc/saasd/client-secret|$T/etc/client-secret|" -e "s|/etc/saasd/rules|$T/etc/rules|" \
    -e "s|/var/lib/saasd|$T/var|" "$stage/etc/saasd/saasd.conf" >"$T/etc/saasd.conf"
check "the installed /etc/saasd/saasd.conf passes check-config once the client secret exists" \
    "$stage/usr/bin/saasd" check-config --config "$T/etc/saasd.conf"
check "the installed example config passes check-config (its paths are relative to share/saasd)" \
    sh -c "cd '$stage/usr/share/saasd' && '$stage/usr/bin/saasd' check-config --config examples/saasd.conf"
check "the installed example rules pass saasd rules check" \
    "$stage/usr/bin/saasd" rules check "$stage/usr/share/saasd/examples/rules"

# systemd: verify a unit generated for a real prefix (its ExecStart must exist), and score the
# hardening of the /usr one offline.
if command -v systemd-analyze >/dev/null; then
    check "make install PREFIX=<dir> (no DESTDIR) installs" mk install PREFIX="$T/prefix" SYSCONFDIR="$T/prefix/etc"
    out=$(systemd-analyze verify --man=no "$T/prefix/lib/systemd/system/saasd.service" 2>&1)
    if [ $? -eq 0 ] && [ -z "$out" ]; then
        ok "systemd-analyze verify passes on the installed unit, without a warning"
    else
        not_ok "systemd-analyze verify passes on the installed unit, without a warning" "$out"
    fi
    score=$(systemd-analyze security --offline=true --root="$stage" saasd.service 2>/dev/null |
        sed -n 's/.*Overall exposure level for saasd.service: \([0-9.]*\).*/\1/p')
    echo "# systemd-analyze security exposure: ${score:-none}"
    if [ -n "$score" ] && awk "BEGIN { exit !($score <= 2.0) }"; then
        ok "the unit's systemd exposure score is at most 2.0 ($score)"
    else
        not_ok "the unit's systemd exposure score is at most 2.0" "score: ${score:-none}"
    fi
else
    echo "# SKIP systemd-analyze is missing (apt-get install systemd): unit not verified"
fi

# The operator's config is never overwritten by a later install.
echo '-- edited by the operator' >>"$stage/etc/saasd/saasd.conf"
mk install DESTDIR="$stage" PREFIX=/usr >"$T/out" 2>&1
if tail -1 "$stage/etc/saasd/saasd.conf" | grep -q 'edited by the operator'; then
    ok "make install again keeps the operator's edited /etc/saasd/saasd.conf"
else
    not_ok "make install again keeps the operator's edited /etc/saasd/saasd.conf"
fi

# The ISV's repository: copied from the installed example, run against a copy of the installed
# tree; the stage is gone, and no LUA_PATH points anywhere but the copy.
cp -a "$stage" "$copy" && rm -rf "$stage"
cp -R "$copy/usr/share/saasd/examples/isv-repo" "$isv"
cat >"$isv/spec/rules/acme-analytics/where_spec.lua" <<'SPEC'
describe("the installed runtime", function()
  it("runs under Lua 5.4 and resolves saas.testing and saas.core from the installed tree", function()
    assert.are.equal("Lua 5.4", _VERSION)
    assert.are.equal(assert(os.getenv("EXPECT_LUA")), package.searchpath("saas.testing", package.path))
    assert.are.equal(assert(os.getenv("EXPECT_CMOD")), package.searchpath("saas.core", package.cpath))
  end)
end)
SPEC
# Runs a command in the ISV repository with no Lua path of the caller's, expecting the runtime
# in $copy (the installed tree's copy).
isv_run() { (cd "$isv" && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u BUILD \
    EXPECT_LUA="$copy/usr/share/lua/5.4/saas/testing.lua" \
    EXPECT_CMOD="$copy/usr/lib/$multiarch/lua/5.4/saas/core.so" "$@"); }
isv_run "$copy/usr/bin/saasd-busted" -o TAP >"$T/out" 2>&1
rc=$?
passes=$(grep -c '^ok ' "$T/out")
if [ $rc -eq 0 ] && [ "$passes" -ge 6 ] && ! grep -q '^not ok' "$T/out"; then
    ok "saasd-busted runs the ISV repository's specs green from a copy of the installed tree ($passes specs)"
else
    not_ok "saasd-busted runs the ISV repository's specs green from a copy of the installed tree" "$(tail -15 "$T/out")"
fi
if grep -q '^ok .*resolves saas.testing and saas.core from the installed tree' "$T/out"; then
    ok "the ISV's specs load saas.testing and saas.core from the installed copy, under Lua 5.4"
else
    not_ok "the ISV's specs load saas.testing and saas.core from the installed copy, under Lua 5.4"
fi
check "saasd rules check rules passes in the ISV repository" isv_run "$copy/usr/bin/saasd" rules check rules
check "saasd test DIR runs the ISV repository's specs with the installed copy's runtime" \
    isv_run "$copy/usr/bin/saasd" test "$isv" -o TAP
# From a build tree, saasd test uses the checkout's runtime (lua/ and $BUILD/lua/).
case $BUILD in /*) bdir=$BUILD ;; *) bdir=$src/$BUILD ;; esac
bdir=$(readlink -f "$bdir")
check "saasd test from the build tree runs them with the checkout's runtime" \
    env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 \
    EXPECT_LUA="$bdir/../lua/saas/testing.lua" EXPECT_CMOD="$bdir/lua/saas/core.so" \
    "$bdir/saasd" test "$isv" -o TAP

# Plain busted: the repository's .busted re-runs it under Lua 5.4. LUA_PATH_5_4 stands in for
# Lua's default path, where an install under /usr or /usr/local puts the runtime.
(cd "$isv" && env -u LUA_PATH -u LUA_CPATH EXPECT_LUA="$copy/usr/share/lua/5.4/saas/testing.lua" \
    EXPECT_CMOD="$copy/usr/lib/$multiarch/lua/5.4/saas/core.so" \
    LUA_PATH_5_4="$copy/usr/share/lua/5.4/?.lua;;" \
    LUA_CPATH_5_4="$copy/usr/lib/$multiarch/lua/5.4/?.so;;" busted -o TAP) >"$T/out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q '^ok .*resolves saas.testing' "$T/out" && ! grep -q '^not ok' "$T/out"; then
    ok "plain busted in the ISV repository runs under Lua 5.4 thanks to its .busted"
else
    not_ok "plain busted in the ISV repository runs under Lua 5.4 thanks to its .busted" "$(tail -10 "$T/out")"
fi

# Failures must fail: a failing spec and a broken rule file.
cat >"$isv/spec/rules/acme-analytics/broken_spec.lua" <<'SPEC'
local t = require("saas.testing")
describe("a wrong expectation", function()
  it("expects an upgrade to be refused", function()
    local rule = t.load_rule("rules/acme-analytics.lua")
    local sub = t.subscription({ planId = "starter" })
    assert.rejected(t.call(rule, "change_plan", sub, t.change_plan(sub, "team"), t.ctx()))
  end)
end)
SPEC
isv_run "$copy/usr/bin/saasd-busted" -o TAP >"$T/out" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q '^not ok .*expects an upgrade to be refused' "$T/out"; then
    ok "saasd-busted exits non-zero and names the spec that failed"
else
    not_ok "saasd-busted exits non-zero and names the spec that failed" "exit $rc" "$(tail -5 "$T/out")"
fi
out=$(isv_run "$copy/usr/bin/saasd" test 2>&1)
rc=$?
if [ $rc -eq 1 ] && printf '%s' "$out" | grep -q '1 failure'; then
    ok "saasd test exits 1 and prints busted's summary when a spec fails"
else
    not_ok "saasd test exits 1 and prints busted's summary when a spec fails" "exit $rc" "$(printf '%s' "$out" | tail -5)"
fi
printf 'local r = {}\nfunction r.provison(sub, ctx) end\nreturn r\n' >"$isv/rules/typo.lua"
out=$(isv_run "$copy/usr/bin/saasd" rules check rules 2>&1)
rc=$?
if [ $rc -ne 0 ] && printf '%s' "$out" | grep -q "typo.lua:2: unknown handler 'provison'"; then
    ok "saasd rules check fails on a broken rule file with file:line"
else
    not_ok "saasd rules check fails on a broken rule file with file:line" "exit $rc" "$out"
fi

check "make uninstall runs" mk uninstall DESTDIR="$copy" PREFIX=/usr
left=$(cd "$copy" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')
if [ "$left" = "etc/saasd/rules/default.lua etc/saasd/saasd.conf " ]; then
    ok "make uninstall removes everything but the operator's /etc/saasd"
else
    not_ok "make uninstall removes everything but the operator's /etc/saasd" "left: $left"
fi
echo "1..$n"
exit $failed
