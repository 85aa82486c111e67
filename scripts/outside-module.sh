#!/usr/bin/env bash
# Replays the README's "Your own behaviour, in your own repository" path as a
# new user would: a Go module in a temporary folder outside the checkout,
# the README's setup lines, its main.go, its build lines and its config, a
# real `graft run`, and then every `graft call` line of the README's "use"
# block, checked against the result its comment promises (a reply, or
# "exit N: text"). The calls start more than 10 s after the core started,
# past go-plugin's 5 s broker window, where handler calls used to fail.
#
# Usage: scripts/outside-module.sh        (from anywhere; CI runs it)
# Env:   GRAFT_OUTSIDE_DELAY  seconds to wait after the core is ready (12)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readme="$root/README.md"
delay="${GRAFT_OUTSIDE_DELAY:-12}"
work="$(mktemp -d "${TMPDIR:-/tmp}/graft-outside.XXXXXX")"
core_pid=""
cleanup() {
	if [ -n "$core_pid" ] && kill -0 "$core_pid" 2>/dev/null; then
		kill -TERM "$core_pid" 2>/dev/null || true
		wait "$core_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
fail() {
	echo "outside-module: FAIL: $*" >&2
	if [ -f "$work/core.log" ]; then
		echo "--- graft run log ---" >&2
		tail -n 40 "$work/core.log" >&2
	fi
	exit 1
}

# block NAME prints the fenced block that follows "<!-- outside-module: NAME -->".
block() {
	awk -v marker="<!-- outside-module: $1 -->" '
		$0 == marker { want = 1; next }
		want && /^```/ { if (inside) exit; inside = 1; next }
		inside { print }' "$readme"
}
for b in setup main.go build graft.yaml use upgrade; do
	[ -n "$(block "$b")" ] || fail "README.md has no \"outside-module: $b\" block"
done

echo "outside-module: building graft from $root" >&2
mkdir -p "$work/bin"
(cd "$root" && go build -o "$work/bin/graft" ./cmd/graft)
export PATH="$work/bin:$PATH" GRAFT="$root"

echo "outside-module: the README's setup, in $work (outside the checkout)" >&2
(cd "$work" && bash -euo pipefail -c "$(block setup)") || fail "the setup lines failed"
mod="$work/bank"
[ -f "$mod/go.mod" ] || fail "the setup lines made no bank/go.mod"
block main.go >"$mod/main.go"
(cd "$mod" && bash -euo pipefail -c "$(block build)") || fail "the build lines failed"
# The behaviour depends on the SDK alone: nothing of the core's module or its
# dependencies. (A go.yaml.in/yaml line can appear: go-hclog, which go-plugin
# requires, is an unpruned module whose tests use testify.)
if grep -q "graft-host/graft " "$mod/go.mod" || grep -qE "pebble|cobra|prometheus" "$mod/go.mod"; then
	fail "the behaviour's go.mod pulls in the core: $(cat "$mod/go.mod")"
fi
block graft.yaml >"$mod/graft.yaml"

echo "outside-module: graft run" >&2
start_line="$(block use | grep -m1 '^graft run')"
run_args="${start_line%%&*}"
(cd "$mod" && exec $run_args) >"$work/core.log" 2>&1 &
core_pid=$!
ready=""
for _ in $(seq 1 300); do
	if (cd "$mod" && graft status --config graft.yaml --json 2>/dev/null | grep -q '"running"'); then
		ready=1
		break
	fi
	kill -0 "$core_pid" 2>/dev/null || fail "graft run exited early"
	sleep 0.1
done
[ -n "$ready" ] || fail "the core's actors were not running within 30 s"
started=$(date +%s)
echo "outside-module: core ready; waiting ${delay}s before the first call" >&2
while [ $(($(date +%s) - started)) -lt "$delay" ]; do sleep 0.5; done

# Each "graft call ..." line of the use block, checked against its comment.
checked=0
while IFS= read -r line; do
	case "$line" in graft\ call*) ;; *) continue ;; esac
	cmd="${line%%#*}"
	want="$(printf '%s' "${line#*#}" | sed 's/^ *//')"
	set +e
	out="$(cd "$mod" && eval "$cmd" 2>"$work/stderr")"
	code=$?
	set -e
	err="$(cat "$work/stderr")"
	case "$want" in
	exit\ *)
		wcode="${want#exit }"
		wcode="${wcode%%:*}"
		wtext="${want#*: }"
		[ "$code" = "$wcode" ] || fail "$cmd: exit $code, want $wcode (stderr: $err)"
		case "$err" in *"$wtext"*) ;; *) fail "$cmd: stderr \"$err\" lacks \"$wtext\"" ;; esac
		;;
	*)
		[ "$code" = 0 ] || fail "$cmd: exit $code (stderr: $err)"
		[ "$out" = "$want" ] || fail "$cmd: reply \"$out\", want \"$want\""
		;;
	esac
	echo "outside-module: ok: $cmd-> ${out:-$err}" >&2
	checked=$((checked + 1))
done < <(block use)
[ "$checked" -ge 4 ] || fail "only $checked graft call lines checked"

# A refused call retried with the same id gets the same refusal, and is not
# applied twice: bob's balance does not move.
before="$(cd "$mod" && graft call bob balance --config graft.yaml)"
for _ in 1 2; do
	set +e
	err="$(cd "$mod" && graft call alice "pay 500 bob" --id big-pay --config graft.yaml 2>&1 >/dev/null)"
	code=$?
	set -e
	[ "$code" = 3 ] || fail "retried refusal: exit $code ($err)"
	case "$err" in *"insufficient funds"*) ;; *) fail "retried refusal said: $err" ;; esac
done
after="$(cd "$mod" && graft call bob balance --config graft.yaml)"
[ "$before" = "$after" ] || fail "bob's balance moved from $before to $after on a refused payment"

# The upgrade block: a new version, its dry run and a canary of alice,
# line by line; then every account runs 1.1.0, the balances are kept, and
# the history has the dry run and the promoted canary.
echo "outside-module: the README's upgrade block" >&2
while IFS= read -r line; do
	case "$line" in '' | \#*) continue ;; esac
	cmd="${line%%#*}"
	set +e
	out="$(cd "$mod" && eval "$cmd" 2>"$work/stderr")"
	code=$?
	set -e
	[ "$code" = 0 ] || fail "$cmd: exit $code (stderr: $(cat "$work/stderr"))"
	case "$line" in
	*"# "[0-9]*) want="$(printf '%s' "${line#*# }")"; [ "$out" = "$want" ] || fail "$cmd: \"$out\", want \"$want\"" ;;
	esac
	echo "outside-module: ok: $cmd" >&2
	printf '%s\n' "$out" | sed 's/^/    /' >&2
done < <(block upgrade)
status_table="$(cd "$mod" && graft status --config graft.yaml)"
for a in alice bob; do
	printf '%s\n' "$status_table" | grep -qE "^$a +account +1\.1\.0 " || fail "$a does not run 1.1.0 after the canary: $status_table"
done
history="$(cd "$mod" && graft history --config graft.yaml)"
case "$history" in *"dry-run"*) ;; *) fail "no dry run in the history: $history" ;; esac
case "$history" in *"completed (canary 1 actor for 5s: promoted"*) ;; *) fail "no promoted canary in the history: $history" ;; esac

kill -TERM "$core_pid"
wait "$core_pid" || fail "graft run did not stop cleanly on SIGTERM"
core_pid=""
echo "outside-module: PASS ($checked README calls, a refusal retried by id, a dry run and a canary)" >&2
