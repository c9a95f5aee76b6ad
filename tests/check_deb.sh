#!/usr/bin/env bash
# Checks a built saasd .deb (run by `make deb`, not by `make test`): unpacked into a throw-away
# root with dpkg -x (nothing is installed on this machine), then its metadata, conffiles and
# maintainer scripts, its unit, and the unpacked saasd-busted running the example ISV
# repository's specs. Prints the package's file list and TAP lines; exit 1 on any failure.
set -u
deb=$1
T=$(mktemp -d "${TMPDIR:-/tmp}/deb-XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
expect() { # expect NAME COMMAND...
    local name=$1; shift
    if "$@" >"$T/out" 2>&1; then ok "$name"; else not_ok "$name" "$(tail -10 "$T/out")"; fi
}
version=$(sed -n 's/^#define SAASD_VERSION "\(.*\)"/\1/p' src/cmd/version.c)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

echo "# dpkg -c $deb"
dpkg -c "$deb" | sed 's/^/#   /'
dpkg-deb -x "$deb" "$T/root"
dpkg-deb -e "$deb" "$T/ctl"

field() { dpkg-deb -f "$deb" "$1"; }
echo "# Depends: $(field Depends)"
echo "# Recommends: $(field Recommends)"
deps=$(field Depends)
if [[ $deps == *lua5.4* && $deps == *lua-cjson* && $deps == *adduser* && $deps == *liblua5.4-0* &&
      $deps == *libmicrohttpd* && $(field Recommends) == *lua-busted* ]]; then
    ok "Depends carries the shared libraries (shlibs), lua5.4, lua-cjson, adduser; Recommends lua-busted"
else
    not_ok "Depends carries shlibs, lua5.4, lua-cjson, adduser; Recommends lua-busted" "$deps"
fi
if [ "$(sort "$T/ctl/conffiles")" = "$(printf '/etc/saasd/rules/default.lua\n/etc/saasd/saasd.conf')" ]; then
    ok "/etc/saasd/saasd.conf and /etc/saasd/rules/default.lua are conffiles"
else
    not_ok "/etc/saasd/saasd.conf and /etc/saasd/rules/default.lua are conffiles" "$(cat "$T/ctl/conffiles")"
fi
post=$T/ctl/postinst
if grep -q 'adduser --system --group' "$post" && grep -q "deb-systemd-helper enable 'saasd.service'" "$post" &&
   ! grep -qE 'deb-systemd-invoke (start|restart|\$_dh_action)' "$post" &&
   grep -q "deb-systemd-invoke try-restart 'saasd.service'" "$post"; then
    ok "postinst creates the saasd system user, enables the unit without starting it, restarts it on upgrade only if it runs"
else
    not_ok "postinst creates the saasd system user, enables the unit without starting it, try-restarts it" "$(grep -n 'adduser\|systemd' "$post")"
fi
# An upgrade must not leave the service stopped, a removal must not leave it running.
if ! grep -q 'deb-systemd-invoke stop' "$T/ctl/preinst" 2>/dev/null &&
   grep -q "deb-systemd-invoke stop 'saasd.service'" "$T/ctl/prerm" 2>/dev/null; then
    ok "the package stops the service on removal (prerm) and not before an upgrade (preinst)"
else
    not_ok "the package stops the service on removal (prerm) and not before an upgrade (preinst)" \
        "$(grep -Hn 'deb-systemd-invoke' "$T/ctl/preinst" "$T/ctl/prerm" 2>&1)"
fi
unit=$T/root/lib/systemd/system/saasd.service
if grep -qx 'ExecStart=/usr/bin/saasd serve --config /etc/saasd/saasd.conf' "$unit" &&
   grep -qx 'User=saasd' "$unit" && grep -qx 'StateDirectory=saasd' "$unit"; then
    ok "the packaged unit runs /usr/bin/saasd as saasd with /var/lib/saasd as its state directory"
else
    not_ok "the packaged unit runs /usr/bin/saasd as saasd" "$(grep -E 'Exec|User|State' "$unit")"
fi
# Readiness and the watchdog go through libsystemd (sd_notify): the unit waits for READY=1.
if grep -qx 'Type=notify' "$unit" && grep -qx 'NotifyAccess=main' "$unit" && grep -qx 'WatchdogSec=30s' "$unit" &&
   [[ $deps == *libsystemd0* ]]; then
    ok "the packaged unit is Type=notify, NotifyAccess=main, WatchdogSec=30s, and Depends has libsystemd0"
else
    not_ok "the packaged unit is Type=notify with a watchdog, Depends has libsystemd0" \
        "$(grep -E 'Type|Notify|Watchdog' "$unit")" "$deps"
fi
expect "the unpacked binary runs: saasd version = $version" \
    sh -c "'$T/root/usr/bin/saasd' version | grep -qx 'saasd $version'"
if command -v systemd-analyze >/dev/null; then
    score=$(systemd-analyze security --offline=true --root="$T/root" saasd.service 2>/dev/null |
        sed -n 's/.*Overall exposure level for saasd.service: \([0-9.]*\).*/\1/p')
    echo "# systemd-analyze security exposure: ${score:-none}"
fi

cp -R "$T/root/usr/share/saasd/examples/isv-repo" "$T/isv"
(cd "$T/isv" && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 \
    "$T/root/usr/bin/saasd-busted" -o TAP) >"$T/out" 2>&1
if [ $? -eq 0 ] && grep -q '^ok ' "$T/out" && ! grep -q '^not ok' "$T/out"; then
    ok "the packaged saasd-busted runs the example ISV repository's specs green ($(grep -c '^ok ' "$T/out"))"
else
    not_ok "the packaged saasd-busted runs the example ISV repository's specs green" "$(tail -10 "$T/out")"
fi
expect "the packaged saasd test passes on the example ISV repository" \
    env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 "$T/root/usr/bin/saasd" test "$T/isv"
expect "the packaged saasd rules check passes on the example ISV repository" \
    sh -c "cd '$T/isv' && '$T/root/usr/bin/saasd' rules check rules"
if [ -f "$T/root/usr/lib/$multiarch/lua/5.4/saas/core.so" ] && [ -f "$T/root/usr/share/lua/5.4/saas/testing.lua" ]; then
    ok "the runtime is on Lua 5.4's default paths (/usr/share/lua/5.4, /usr/lib/$multiarch/lua/5.4)"
else
    not_ok "the runtime is on Lua 5.4's default paths"
fi
echo "1..$n"
exit $failed
