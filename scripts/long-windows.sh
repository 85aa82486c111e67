#!/usr/bin/env bash
# The host <-> plugin windows too long for the test suite: a call from a
# handler made long after its module started (default 10 minutes; give 31m
# to also cross gRPC's default 30-minute idle timeout, which graft disables
# on the call connection). The suite itself crosses the 5 s broker window
# and 30 s; see the package doc of dynamic for every window.
#
# Usage: scripts/long-windows.sh [DURATION]     e.g. scripts/long-windows.sh 31m
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
d="${1:-10m}"
cd "$root"
GRAFT_LONG_WINDOW="$d" go test -race -count=1 -timeout 2h -run 'TestCallLongAfterStart' -v ./dynamic/
