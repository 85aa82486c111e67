#!/usr/bin/env bash
# Runs golangci-lint at the pinned version on both modules (the core and
# the SDK), with the committed .golangci.yml. The linter is installed once
# through the Go module proxy into the user cache.
#
# Usage: scripts/lint.sh
set -euo pipefail
GOLANGCI_LINT_VERSION=v2.15.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${GRAFT_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/graft/golangci-lint-$GOLANGCI_LINT_VERSION}"
if [ ! -x "$bin/golangci-lint" ]; then
	echo "installing golangci-lint $GOLANGCI_LINT_VERSION into $bin" >&2
	mkdir -p "$bin"
	GOBIN="$bin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"
fi
cd "$root"
"$bin/golangci-lint" run --config "$root/.golangci.yml" ./...
cd "$root/dynamic/sdk"
"$bin/golangci-lint" run --config "$root/.golangci.yml" ./...
