#!/usr/bin/env bash
# The checks CI runs before the tests: formatting, vet, tidy go.mod files,
# generated code up to date, the pinned linter, and a short run of every
# fuzz target. Each failure says what to run to fix it.
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
while read -r pkg fn; do
	echo "guardrails: fuzz $pkg $fn" >&2
	go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg" >/dev/null ||
		fail "fuzz target $fn in $pkg found a failure (the input is under testdata/fuzz/$fn in that package)"
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./dynamic/sdk/' | while read -r f; do
	dir="./$(dirname "${f#./}")"
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r fn; do echo "$dir $fn"; done
done)
echo "guardrails: ok" >&2
