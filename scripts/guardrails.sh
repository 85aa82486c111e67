#!/usr/bin/env bash
# The checks CI runs before the tests: formatting, vet, no failpoints in
# the release binary, tidy go.mod files, generated code up to date, the
# pinned linter, and a short run of every fuzz target. Each failure says
# what to run to fix it.
#
# Usage: scripts/guardrails.sh            (FUZZTIME=10s for a longer fuzz)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
fuzztime="${FUZZTIME:-3s}"
fail() {
	echo "guardrails: FAIL: $*" >&2
	exit 1
}

echo "guardrails: gofmt" >&2
unformatted="$(gofmt -l . | grep -v '^dynamic/sdk/proto/' || true)"
[ -z "$unformatted" ] || fail "not gofmt'ed (run gofmt -w on them): $unformatted"

echo "guardrails: go vet" >&2
go vet ./... || fail "go vet ./... (core module)"
(cd dynamic/sdk && go vet ./...) || fail "go vet ./... (SDK module)"

echo "guardrails: no failpoints in the release binary" >&2
# Failpoints (upgrade/failpoint_on.go) kill the core on GRAFT_FAILPOINT;
# only a build with -tags graftfailpoints may have them. The tagged build
# must have the string, or this check could not see them.
release="$(mktemp -d)"
trap 'rm -rf "$release"' EXIT
failpoints() { # prints how many strings of the binary $1 name GRAFT_FAILPOINT
	if command -v strings >/dev/null; then
		strings "$1" >"$release/strings" || return 1
	else
		cp "$1" "$release/strings" || return 1
	fi
	grep -a -c GRAFT_FAILPOINT "$release/strings" || true # grep -c exits 1 on a count of 0
}
go build -o "$release/graft" ./cmd/graft || fail "go build ./cmd/graft"
n="$(failpoints "$release/graft")" || fail "could not read the strings of $release/graft"
[ "$n" = 0 ] ||
	fail "the release graft names GRAFT_FAILPOINT ($n times): failpoint code belongs in files built only with //go:build graftfailpoints"
go build -tags graftfailpoints -o "$release/graft-failpoints" ./cmd/graft || fail "go build -tags graftfailpoints ./cmd/graft"
n="$(failpoints "$release/graft-failpoints")" || fail "could not read the strings of $release/graft-failpoints"
[ "$n" -gt 0 ] ||
	fail "a graft built with -tags graftfailpoints does not name GRAFT_FAILPOINT: the check above would not see failpoints"

echo "guardrails: go mod tidy -diff" >&2
go mod tidy -diff || fail "the core module's go.mod/go.sum are not tidy: run go mod tidy"
(cd dynamic/sdk && go mod tidy -diff) || fail "the SDK module's go.mod/go.sum are not tidy: run (cd dynamic/sdk && go mod tidy)"

echo "guardrails: generated protocol code" >&2
scripts/gen-proto.sh
git diff --exit-code -- dynamic/sdk/proto >/dev/null ||
	fail "dynamic/sdk/proto is out of date with behaviour.proto: run scripts/gen-proto.sh and commit the result"

echo "guardrails: golangci-lint" >&2
scripts/lint.sh || fail "golangci-lint: fix the findings above (scripts/lint.sh)"

echo "guardrails: fuzz ($fuzztime each)" >&2
# Every Fuzz function of the core module, found by listing them.
# A failing input is written under the package's testdata/fuzz/FN: that is
# a finding, and fails at once. A failure that wrote none is the fuzzing
# engine's own (a worker it lost on a loaded machine): its output is
# shown and the run tried once more.
fuzzlog="$(mktemp)"
trap 'rm -rf "$release" "$fuzzlog"' EXIT
while read -r pkg fn; do
	echo "guardrails: fuzz $pkg $fn" >&2
	for try in 1 2; do
		if go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg" >"$fuzzlog" 2>&1; then
			break
		fi
		tail -n 30 "$fuzzlog" >&2
		if [ -n "$(git status --porcelain -- "$pkg/testdata/fuzz/$fn" 2>/dev/null)" ] || [ "$try" = 2 ]; then
			fail "fuzz target $fn in $pkg found a failure (the input is under testdata/fuzz/$fn in that package; output above)"
		fi
		echo "guardrails: fuzz $fn stopped without a failing input (output above); trying once more" >&2
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./dynamic/sdk/' | while read -r f; do
	dir="./$(dirname "${f#./}")"
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r fn; do echo "$dir $fn"; done
done)
echo "guardrails: ok" >&2
