#!/usr/bin/env bash
# chaos.sh runs graft's chaos harness: the real graft core under a steady
# load of sends and calls, with kill -9 of the core, kill -9 and SIGSTOP of
# module processes, upgrades and rollbacks and poison messages at random
# times from a seed, then a check of the whole history (exactly-once,
# per-sender order, dead letters, versions, leaks, linearizability).
#
#   scripts/chaos.sh                         # about 50 events (CI), random seed
#   scripts/chaos.sh --seed 42 --events 1000 # the long run
#   scripts/chaos.sh --seed 42 --keep        # keep config, store and core.log
#
# Exit status: 0 all checks held, 1 a violation (the seed is printed), 2 the
# harness failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/graft-chaos" ./cmd/graft-chaos
"$bin/graft-chaos" "$@"
