#!/usr/bin/env bash
# cluster-demo.sh: the ping-pong demonstration on a cluster, from a fresh
# clone with only Go.
#
# Starts a 3-member etcd cluster on loopback (members built from the
# module's own etcd server source: internal/etcdtest/member), starts 3
# graft cores on it, each with its own control socket and module cache,
# and runs ping-pong across them: the balls cross members through the
# shared store. Mid-stream it kills the core that runs pong with kill -9;
# pong moves to another member within the lease and goes on from its
# committed state. Then pong is rebuilt as v2 and upgraded in place on its
# new member. It ends with the demo's summary plus the failover time, and
# exits non-zero if anything was lost or duplicated or pong was not
# upgraded. Every process it starts is stopped on exit, Ctrl-C included.
#
#   scripts/cluster-demo.sh        # GRAFT_DEMO_KEEP=1 keeps the temporary folder
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/graft-cluster-demo.XXXXXX")"
pids=()
demo_pid=""

cleanup() {
	if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
		kill -TERM "$demo_pid" 2>/dev/null || true
		wait "$demo_pid" 2>/dev/null || true
	fi
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -z "${GRAFT_DEMO_KEEP:-}" ]; then
		rm -rf "$work"
	else
		echo "kept $work"
	fi
}
trap cleanup EXIT
trap 'echo "cluster demo: interrupted"; exit 130' INT TERM

# free_port prints a loopback port that is free right now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

cd "$root"
echo "building the graft core, the demo driver and the etcd member"
go build -o "$work/graft" ./cmd/graft
go build -o "$work/demo" ./cmd/graft-demo
go build -o "$work/etcd-member" ./internal/etcdtest/member
echo "building ping and pong v1"
scripts/build-plugins.sh v1

clients=()
peers=()
initial=""
for i in 0 1 2; do
	clients+=("http://127.0.0.1:$(free_port)")
	peers+=("http://127.0.0.1:$(free_port)")
	initial="${initial:+$initial,}e$i=${peers[$i]}"
done
for i in 0 1 2; do
	"$work/etcd-member" -name "e$i" -dir "$work/etcd$i" -client "${clients[$i]}" -peer "${peers[$i]}" \
		-cluster "$initial" >"$work/etcd$i.log" 2>&1 &
	pids+=("$!")
done
endpoints="$(IFS=,; echo "${clients[*]}")"
for i in 0 1 2; do
	for _ in $(seq 1 300); do
		if grep -q '^ready' "$work/etcd$i.log" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	grep -q '^ready' "$work/etcd$i.log" || { echo "etcd member e$i did not start: $(cat "$work/etcd$i.log")" >&2; exit 1; }
done
echo "etcd cluster of 3 members up: $endpoints"

"$work/demo" --graft "$work/graft" --work "$work" --root "$root" --etcd "$endpoints" --cores 3 &
demo_pid=$!
status=0
wait "$demo_pid" || status=$?
demo_pid=""
if [ "$status" -ne 0 ]; then
	echo "cluster demo: FAILED (core logs: $work/m*/core.log)" >&2
	GRAFT_DEMO_KEEP=1
fi
exit "$status"
