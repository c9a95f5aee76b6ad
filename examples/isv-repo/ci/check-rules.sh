#!/bin/sh
# CI step for a repository of saasd rules, on a Debian/Ubuntu runner with the saasd package
# (or `make install`) present: every rule file loads in the daemon's sandbox, every spec passes.
set -eu
saasd rules check rules
saasd-busted -o TAP
