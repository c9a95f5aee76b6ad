#!/usr/bin/env bash
# Starts the packaged service under a real systemd, once (`make systemd-check`, not `make test`;
# root, Debian 12). Builds the .deb (`make deb`), boots a minimal Debian 12 root with
# `systemd-nspawn -b` (systemd is PID 1 in the container; the host needs none), installs the
# package there with dpkg -i, points it at `saasd emulate` (a transient unit in the same
# container) and checks what an operator relies on: start, health, the journal, the user and the
# hardening, a webhook, stop, restart, and the data directory lock against a second daemon.
#
# The Debian root is made once by debootstrap (Debian's mirror is the only network it uses) and
# kept in build/systemd-root with the package's Depends already installed; each run boots a
# throw-away overlay of it, so the cached root never sees saasd. Prints TAP-like lines and
# "N passed, N failed"; exits 1 on a failure, 2 when the machine cannot run the check at all.
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
ROOT=$BUILD/systemd-root
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the cached root gets besides the package's Depends: systemd as init and the bus systemctl uses.
BASE_PKGS=systemd,systemd-sysv,dbus
started=$(date +%s)

[ "$(id -u)" = 0 ] || { echo "systemd_boot.sh: run as root (debootstrap, mount, systemd-nspawn)"; exit 2; }

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
check() { # check NAME COMMAND...: ok when the command succeeds, else its last output lines
    local name=$1; shift
    if "$@" >"$T/out" 2>&1; then ok "$name"; else not_ok "$name" "$(tail -8 "$T/out")"; fi
}
finish() {
    echo "1..$n"
    echo "$((n - failed)) passed, $failed failed ($(($(date +%s) - started)) s)"
    [ "$failed" = 0 ]
    exit $?
}
die() { echo "# systemd_boot.sh: $*"; not_ok "$1"; finish; }

# --- tools on the host, idempotent like `make deps` ----------------------------------------
need_tools() {
    local missing="" p
    for p in debootstrap systemd-container; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "# installing$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# --- the package ----------------------------------------------------------------------------
build_deb() {
    local version arch
    version=$(sed -n 's/^#define SAASD_VERSION "\(.*\)"/\1/p' src/cmd/version.c)
    arch=$(dpkg --print-architecture)
    DEB=$BUILD/deb/saasd_${version}_${arch}.deb
    echo "# make deb (log: $BUILD/systemd-deb.log)"
    make --no-print-directory deb >"$BUILD/systemd-deb.log" 2>&1 && [ -f "$DEB" ]
}

# The Depends of the package as package names (first of each alternative, no versions).
deb_depends() {
    dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep -v '^$' | sort -u
}

# --- the cached Debian root -----------------------------------------------------------------
make_root() {
    if [ ! -x "$ROOT/lib/systemd/systemd" ]; then
        echo "# debootstrap $SUITE into $ROOT (once; log: $BUILD/systemd-debootstrap.log)"
        rm -rf "$ROOT.tmp"
        debootstrap --variant=minbase --include=$BASE_PKGS "$SUITE" "$ROOT.tmp" "$MIRROR" \
            >"$BUILD/systemd-debootstrap.log" 2>&1 || return 1
        mv "$ROOT.tmp" "$ROOT"
    fi
    local want have
    want=$(deb_depends | tr '\n' ' ')
    have=$(cat "$ROOT/.saasd-depends" 2>/dev/null)
    [ "$want" = "$have" ] && return 0
    echo "# installing the package's Depends into $ROOT: $want"
    systemd-nspawn -q --register=no --keep-unit -D "$ROOT" --pipe sh -c \
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $want" \
        >"$BUILD/systemd-depends.log" 2>&1 || return 1
    echo "$want" >"$ROOT/.saasd-depends"
}

# --- one booted container on an overlay of the cached root ----------------------------------
mount_overlay() {
    mkdir -p "$T/upper" "$T/work" "$T/merged"
    mount -t overlay overlay -o "lowerdir=$PWD/$ROOT,upperdir=$T/upper,workdir=$T/work" "$T/merged" || return 1
    MOUNTED=1
    cp "$DEB" "$T/merged/root/saasd.deb"
}
boot() {
    systemd-nspawn -q -b -D "$T/merged" --register=no --keep-unit --machine="saasd-check-$$" \
        --console=passive >"$T/boot.log" 2>&1 &
    NSPAWN=$!
    for _ in $(seq 100); do # the container's PID 1 is nspawn's child, systemd once it has exec'd
        LEADER=$(pgrep -x -P "$NSPAWN" systemd | head -1)
        [ -n "$LEADER" ] && inside true 2>/dev/null && break
        LEADER=
        kill -0 "$NSPAWN" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$LEADER" ]
}
# Runs a command inside the container (all its namespaces), with a clean environment.
inside() { nsenter -t "$LEADER" -a -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

power_off() { # SIGTERM makes nspawn ask the container's systemd to power off; 0 when it did in 20 s
    kill -0 "$NSPAWN" 2>/dev/null || return 0
    kill -TERM "$NSPAWN"
    for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$NSPAWN" 2>/dev/null; then
        echo "# the container did not power off in 20 s: killed"
        kill -KILL "$NSPAWN"; wait "$NSPAWN" 2>/dev/null
        return 1
    fi
    wait "$NSPAWN" 2>/dev/null
}
cleanup() {
    [ -n "${NSPAWN:-}" ] && power_off
    [ -n "${MOUNTED:-}" ] && umount "$T/merged"
    rm -rf "$T"
}

free_port() { # free_port [TAKEN...]: a loopback port nobody listens on (the container shares the host's network)
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        case " $* " in *" $p "*) continue ;; esac
        ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
wait_for() { # wait_for SECONDS COMMAND...
    local end=$(($(date +%s) + $1)); shift
    until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.2; done
}

# ===========================================================================================
need_tools || { echo "# could not install debootstrap systemd-container"; exit 2; }
mkdir -p "$BUILD"
T=$(mktemp -d "$PWD/$BUILD/systemd-run.XXXXXX") # the overlay's upper dir: same filesystem as the root
trap cleanup EXIT

build_deb || die "make deb builds the package" "$(tail -5 "$BUILD/systemd-deb.log")"
ok "make deb builds $DEB"
make_root || die "a Debian $SUITE root with systemd and the package's Depends is ready in $ROOT"
ok "a Debian $SUITE root with systemd and the package's Depends is ready in $ROOT"

mount_overlay || die "an overlay of the cached root mounts"
boot || die "systemd-nspawn -b boots the root" "$(tail -10 "$T/boot.log")"
check "systemd is PID 1 in the container" sh -c "[ \"\$(cat /proc/$LEADER/comm)\" = systemd ]"
booted() { inside systemctl is-system-running --wait >"$T/state" 2>&1; grep -qE '^(running|degraded)$' "$T/state"; }
wait_for 60 booted
check "the container's boot finishes (system state: $(cat "$T/state"))" grep -qE '^(running|degraded)$' "$T/state"
inside systemctl --failed --no-legend | sed 's/^/# failed unit in the container: /'

check "dpkg -i installs the package under the running systemd" inside dpkg -i /root/saasd.deb
check "the package enabled the unit and did not start it" \
    sh -c "[ \"\$(nsenter -t $LEADER -a systemctl is-enabled saasd)\" = enabled ] &&
           ! nsenter -t $LEADER -a systemctl -q is-active saasd"

PE=$(free_port) # emulator, saasd's listener, saasd's admin listener
PL=$(free_port "$PE")
PA=$(free_port "$PE" "$PL")
EMU=http://127.0.0.1:$PE
check "the emulator runs in the container as a transient unit" \
    inside systemd-run -q --unit=saasd-emulator /usr/bin/saasd emulate --port "$PE" \
        --webhook-url "http://127.0.0.1:$PL/webhook"
wait_for 10 curl -sf "$EMU/_emulator/health" || not_ok "the emulator answers on $EMU"

# The shipped config with the emulator's tenant, app and URLs and free ports added at its end
# (plain Lua: later assignments win); the secret as the README's Install section says.
cat >>"$T/merged/etc/saasd/saasd.conf" <<EOF

-- systemd_boot.sh: against the emulator in this container
listen = "127.0.0.1:$PL"
admin.listen = "127.0.0.1:$PA"
entra.authority = "$EMU"
entra.tenant_id = "11111111-1111-4111-8111-111111111111"
entra.client_id = "22222222-2222-4222-8222-222222222222"
marketplace = { base_url = "$EMU", api_version = "2018-08-31" }
EOF
echo emulator-secret | inside install -o root -g saasd -m 640 /dev/stdin /etc/saasd/client-secret
check "saasd check-config accepts the configuration" inside saasd check-config --config /etc/saasd/saasd.conf

t0=$(date +%s.%N)
check "systemctl start saasd" inside systemctl start saasd
# Type=notify: start returns only after READY=1, which saasd sends once it serves; so /healthz
# answers at once, with no wait loop (the wait for /readyz below is only a fallback).
check "when systemctl start returns, GET /healthz already answers 200 (READY=1 came after the listeners)" \
    [ "$(http_status "http://127.0.0.1:$PL/healthz")" = 200 ]
wait_for 15 curl -sf "http://127.0.0.1:$PL/readyz"
echo "# ready $(elapsed "$t0") s after systemctl start"
check "systemctl is-active saasd" inside systemctl -q is-active saasd
# WatchdogUSec is the started service's (infinity before a start).
inside systemctl show saasd -p Type -p NotifyAccess -p WatchdogUSec >"$T/unit-props" 2>&1
echo "# the running unit: $(sort "$T/unit-props" | tr '\n' ' ')"
check "the running unit is Type=notify, NotifyAccess=main, with a 30 s watchdog" \
    sh -c "sort '$T/unit-props' | tr '\n' ' ' | grep -qx 'NotifyAccess=main Type=notify WatchdogUSec=30s '"
inside systemctl show -P StatusText saasd >"$T/status-text" 2>&1
echo "# StatusText: $(cat "$T/status-text")"
check "systemctl show -p StatusText: saasd's STATUS= line (listen address, admin listener, offers)" \
    grep -q "^serving 127.0.0.1:$PL (admin 127.0.0.1:$PA); rules generation [0-9]*, [0-9]* offers\?$" "$T/status-text"
check "GET /readyz answers 200 (rules loaded, no failed token fetch)" \
    [ "$(http_status "http://127.0.0.1:$PL/readyz")" = 200 ]
check "journalctl -u saasd has the start line (serving)" \
    sh -c "nsenter -t $LEADER -a journalctl -q -u saasd --no-pager | grep -q serving"

PID=$(inside systemctl show -P MainPID saasd)
echo "# main PID in the container: $PID; $(inside systemctl show saasd -p User -p NoNewPrivileges -p ProtectSystem | tr '\n' ' ')"
check "the process runs as the saasd user" sh -c "[ \"\$(nsenter -t $LEADER -a stat -c %U /proc/$PID)\" = saasd ]"
inside grep -E '^(NoNewPrivs|CapEff|CapBnd|Seccomp):' "/proc/$PID/status" >"$T/status" 2>&1
echo "# /proc/$PID/status: $(tr '\t\n' '  ' <"$T/status")"
check "the unit's hardening is in force: NoNewPrivs 1, no capabilities, a seccomp filter" \
    sh -c "grep -qx 'NoNewPrivs:.1' '$T/status' && grep -qx 'CapEff:.0000000000000000' '$T/status' &&
           grep -qx 'CapBnd:.0000000000000000' '$T/status' && grep -qx 'Seccomp:.2' '$T/status'"
check "systemctl show: User=saasd NoNewPrivileges=yes ProtectSystem=strict" \
    sh -c "nsenter -t $LEADER -a systemctl show saasd -p User -p NoNewPrivileges -p ProtectSystem |
           sort | tr '\n' ' ' | grep -qx 'NoNewPrivileges=yes ProtectSystem=strict User=saasd '"
# In the service's mount namespace the last mount on a path is the one it sees.
mount_opts() { inside awk -v p="$1" '$5 == p { o = $6 } END { print o }' "/proc/$PID/mountinfo"; }
check "the service sees / read-only and /var/lib/saasd writable (ProtectSystem=strict, StateDirectory)" \
    sh -c "case '$(mount_opts /)' in ro*) ;; *) exit 1;; esac && case '$(mount_opts /var/lib/saasd)' in rw*) ;; *) exit 1;; esac"
score=$(inside systemd-analyze security saasd 2>/dev/null | sed -n 's/.*Overall exposure level for saasd.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security on the running unit: exposure ${score:-none}, at most 2.0" \
    awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'

# A purchase in the emulator: its Subscribe webhook goes to the service, which answers only once
# the event is durable; then the admin API (key in /var/lib/saasd) lists the subscription.
sub=$(curl -sf -X POST -H 'Content-Type: application/json' -d '{"autoActivate": true}' \
    "$EMU/_emulator/purchases" | sed -n 's/.*"subscriptionId": *"\([^"]*\)".*/\1/p')
delivered() { curl -sf "$EMU/_emulator/webhooks?subscriptionId=$sub" | grep -q '"status": *"delivered"'; }
check "the emulator's webhook for a purchase is delivered to the service (200)" wait_for 10 delivered
check "saasd admin (as root, the key from /var/lib/saasd) shows the subscription" \
    wait_for 10 inside saasd admin --config /etc/saasd/saasd.conf show "$sub"
check "GET /readyz then reports the token from the emulator's Entra ID as ok" \
    sh -c "curl -sf http://127.0.0.1:$PL/readyz | grep -q '\"token\": *\"ok\"'"

check "systemctl reload saasd: the service logs the SIGHUP rules reload and stays active" \
    sh -c "nsenter -t $LEADER -a systemctl reload saasd && sleep 0.5 &&
           nsenter -t $LEADER -a systemctl -q is-active saasd &&
           nsenter -t $LEADER -a journalctl -q -u saasd --no-pager | grep -q 'SIGHUP: reloading rules'"
# RELOADING=1 then READY=1: the unit goes back to active (not stuck in reloading), with its status line.
reloaded() { [ "$(inside systemctl show -P ActiveState saasd)" = active ] &&
             inside systemctl show -P StatusText saasd | grep -q "^serving 127.0.0.1:$PL "; }
check "after systemctl reload the unit is active again (READY=1 followed RELOADING=1) with its status line" \
    wait_for 10 reloaded
# The watchdog under the real systemd (seccomp, AF_UNIX to /run/systemd/notify): saasd pings
# every 15 s once its own /healthz answered; systemd moves WatchdogTimestamp at each ping.
WD0=$(inside systemctl show -P WatchdogTimestampMonotonic saasd)
pinged() { [ "$(inside systemctl show -P WatchdogTimestampMonotonic saasd)" != "$WD0" ]; }
check "systemd receives saasd's watchdog pings (WatchdogTimestamp moves within 20 s)" wait_for 20 pinged
check "journalctl -u saasd has the watchdog's start line" \
    sh -c "nsenter -t $LEADER -a journalctl -q -u saasd --no-pager | grep -q 'watchdog: pinging systemd'"

check "a second saasd serve on the same data directory is refused while the service runs" \
    sh -c "! nsenter -t $LEADER -a runuser -u saasd -- saasd serve --config /etc/saasd/saasd.conf \
           >'$T/second' 2>&1 && grep -q 'in use by another saasd' '$T/second'"
echo "# second daemon said: $(grep -o 'the data directory[^"]*' "$T/second" | head -1)"

check "systemctl restart saasd: active again, ready, with a new PID" \
    sh -c "nsenter -t $LEADER -a systemctl restart saasd &&
           nsenter -t $LEADER -a systemctl -q is-active saasd &&
           [ \"\$(nsenter -t $LEADER -a systemctl show -P MainPID saasd)\" != '$PID' ]"
wait_for 15 curl -sf "http://127.0.0.1:$PL/readyz" || not_ok "ready again after restart"

# A reboot of the container: systemd stops the service on the way down, starts the enabled unit
# on the way up, and the subscription the webhook stored is still there.
check "the container powers off cleanly within 20 s with the service running" power_off
boot || die "systemd-nspawn -b boots the root again" "$(tail -10 "$T/boot.log")"
wait_for 60 booted
inside systemd-run -q --unit=saasd-emulator /usr/bin/saasd emulate --port "$PE" \
    --webhook-url "http://127.0.0.1:$PL/webhook" >/dev/null 2>&1
check "after a reboot the enabled service is active and ready by itself" \
    sh -c "nsenter -t $LEADER -a systemctl -q is-active saasd && curl -sf --retry 30 --retry-delay 1 \
           --retry-connrefused -o /dev/null http://127.0.0.1:$PL/readyz"
check "after a reboot saasd admin still shows the subscription (the store survived)" \
    wait_for 10 inside saasd admin --config /etc/saasd/saasd.conf show "$sub"

# An upgrade (dpkg -i of the package over itself) must not leave a running service stopped.
PID=$(inside systemctl show -P MainPID saasd)
check "dpkg -i over the installed package while the service runs: active afterwards, restarted" \
    sh -c "nsenter -t $LEADER -a dpkg -i /root/saasd.deb && nsenter -t $LEADER -a systemctl -q is-active saasd &&
           [ \"\$(nsenter -t $LEADER -a systemctl show -P MainPID saasd)\" != '$PID' ]"
wait_for 15 curl -sf "http://127.0.0.1:$PL/readyz" || not_ok "ready again after the upgrade"

t0=$(date +%s.%N)
check "systemctl stop saasd returns within 5 s" timeout 5 nsenter -t "$LEADER" -a systemctl stop saasd
echo "# stopped in $(elapsed "$t0") s"
check "after stop: inactive, not failed (Result=success)" \
    sh -c "[ \"\$(nsenter -t $LEADER -a systemctl is-active saasd)\" = inactive ] &&
           [ \"\$(nsenter -t $LEADER -a systemctl show -P Result saasd)\" = success ]"
check "journalctl -u saasd has the stop line (SIGTERM)" \
    sh -c "nsenter -t $LEADER -a journalctl -q -u saasd --no-pager | grep -q 'stopping.*SIGTERM'"
# Removing the package while the service runs must not leave a daemon behind whose binary and
# unit are gone.
inside systemctl start saasd
PID=$(inside systemctl show -P MainPID saasd)
inside dpkg --remove saasd >"$T/remove" 2>&1
check "dpkg --remove saasd while the service runs stops it (its process $PID is gone)" \
    sh -c "[ '$PID' != 0 ] && grep -q 'Removing saasd' '$T/remove' && ! nsenter -t $LEADER -a test -e /proc/$PID"
inside systemctl status saasd --no-pager 2>&1 | sed -n '1,3s/^/# after remove: /p'
check "dpkg --purge saasd removes the conffiles and the unit's enablement" \
    sh -c "nsenter -t $LEADER -a dpkg --purge saasd && [ ! -e '$T/merged/etc/saasd/saasd.conf' ] &&
           [ ! -e '$T/merged/etc/systemd/system/multi-user.target.wants/saasd.service' ]"
echo "# after purge, kept: $(cd "$T/merged" && ls -d etc/saasd/* var/lib/saasd 2>/dev/null | tr '\n' ' ')"
check "the journal of the service and the emulator never shows the client secret" \
    sh -c "! nsenter -t $LEADER -a journalctl -q --no-pager | grep -q emulator-secret"
finish
