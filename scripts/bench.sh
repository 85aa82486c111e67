#!/usr/bin/env bash
# bench.sh runs every benchmark of graft, one package at a time (-p 1; the
# machine has few cores and the figures must not compete), and rewrites
# docs/BENCHMARKS.md with each figure beside its baseline from the same
# run, the ratio, the machine, the date and the commands. The notes after
# the marker line of docs/BENCHMARKS.md are kept.
#
#   scripts/bench.sh            # takes about 5-10 minutes
#   BENCH_KEEP=1 scripts/bench.sh  # keep the raw outputs (path printed)
set -euo pipefail
cd "$(dirname "$0")/.."
raw="$(mktemp -d)"
if [[ -z "${BENCH_KEEP:-}" ]]; then trap 'rm -rf "$raw"' EXIT; fi
cmds="$raw/commands"
: >"$cmds"

n=0
bench() { # bench PACKAGE REGEX BENCHTIME
	n=$((n + 1))
	local cmd="go test -p 1 -run '^\$' -bench '$2' -benchtime $3 -timeout 60m $1"
	echo "$cmd" >>"$cmds"
	echo "bench: $cmd" >&2
	# The previous benchmark's dirty pages (a million-actor store is
	# hundreds of MiB) would otherwise be written back under this one's
	# fsyncs: the upgrade's pause figures tripled that way.
	sync
	go test -p 1 -run '^$' -bench "$2" -benchtime "$3" -timeout 60m "$1" | tee "$raw/$n.txt" >&2
}

bench ./mailbox/pebblestore/ 'Enqueue|Baseline|Commit' 200000x
bench ./mailbox/pebblestore/ 'SpaceReclaim' 1000000x
bench ./dynamic/ '.' 2s
bench ./core/ '^Benchmark(E2EBaseline|EndToEnd)' 100000x
bench ./core/ 'Etcd' 5000x
bench ./cmd/graft/ 'Cluster' 3x
bench ./core/ 'Start100kActors' 1x
bench ./core/ 'VirtualFirstSend|Timers' 100000x
bench ./core/ 'MillionActors' 1x
bench ./upgrade/ 'Upgrade' 3x
bench ./upgrade/ 'DryRunUnderLoad' 1x
bench ./internal/chaos/ 'PingPong' 2000x
bench ./internal/chaos/ 'Recovery1M' 1x

go run ./internal/chaos/benchdoc --in "$raw" --out docs/BENCHMARKS.md --commands "$cmds"
echo "bench: docs/BENCHMARKS.md rewritten${BENCH_KEEP:+; raw outputs in $raw}" >&2
