#!/usr/bin/env bash
# demo.sh: the ping-pong demonstration, from a fresh clone with only Go.
#
# Builds the graft core and the v1 plugins, starts the core on a fresh store
# in a temporary folder, starts two ping actors bouncing balls off pong,
# rebuilds pong as v2 into the folder the core watches (the watcher upgrades
# it mid-stream), keeps exchanging, and ends with a summary: pings sent,
# pongs received, lost, duplicated, pong's version before and after, the
# pause, the state carried over. Beside them, reminder/demo (examples/
# reminders: a virtual actor, made by its first message) ticks on a durable
# timer that re-arms itself, until a send scheduled with --after 1s stops
# it. Exits non-zero if anything was lost or duplicated, the upgrade did not
# happen or the reminder never ticked. Every process it starts is stopped on
# exit, Ctrl-C included.
#
#   scripts/demo.sh            # GRAFT_DEMO_KEEP=1 keeps the temporary folder
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/graft-demo.XXXXXX")"
demo_pid=""

cleanup() {
	if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
		kill -TERM "$demo_pid" 2>/dev/null || true
		wait "$demo_pid" 2>/dev/null || true
	fi
	if [ -z "${GRAFT_DEMO_KEEP:-}" ]; then
		rm -rf "$work"
	else
		echo "kept $work"
	fi
}
trap cleanup EXIT
trap 'echo "demo: interrupted"; exit 130' INT TERM

cd "$root"
echo "building the graft core and the demo driver"
go build -o "$work/graft" ./cmd/graft
go build -o "$work/demo" ./cmd/graft-demo
echo "building ping and pong v1, and the reminder"
scripts/build-plugins.sh v1
go build -o "$work/reminder" ./examples/reminders/reminder

# The driver runs in the background so this shell can forward Ctrl-C to it
# and still clean up; it stops the core it started, whatever happens.
"$work/demo" --graft "$work/graft" --work "$work" --root "$root" --reminder "$work/reminder" &
demo_pid=$!
status=0
wait "$demo_pid" || status=$?
demo_pid=""
if [ "$status" -ne 0 ]; then
	echo "demo: FAILED (core log: $work/core.log)" >&2
	GRAFT_DEMO_KEEP=1
fi
exit "$status"
