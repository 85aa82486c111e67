#!/usr/bin/env bash
# build-plugins.sh [v1|v2]: build the ping-pong example's plugins, ping and
# pong at the given version (default v1), into examples/pingpong/bin/, the
# folder examples/pingpong/graft.yaml names and a running core watches.
#
# Each binary is built to a temporary file in that folder and renamed into
# place, so a watching core never sees a half-written binary; a binary whose
# bytes did not change is left alone, so it triggers no upgrade.
#
#   scripts/build-plugins.sh        # ping + pong v1
#   scripts/build-plugins.sh v2     # ping + pong v2: a running core upgrades pong
set -euo pipefail

usage() {
	echo "usage: $(basename "$0") [v1|v2]   (build ping and pong at that version into examples/pingpong/bin; default v1)" >&2
	exit 2
}

if [ "$#" -gt 1 ]; then
	usage
fi
version="${1:-v1}"
case "$version" in
v1 | v2) ;;
-h | --help) usage ;;
*)
	echo "$(basename "$0"): unknown version \"$version\": want v1 or v2" >&2
	usage
	;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/examples/pingpong/bin"
mkdir -p "$out"

tmp=""
cleanup() {
	if [ -n "$tmp" ]; then
		rm -f "$tmp"
	fi
}
trap cleanup EXIT

# build NAME PACKAGE: go build PACKAGE into $out/NAME by temp file + rename.
build() {
	local name="$1" pkg="$2" dst="$out/$1"
	tmp="$(mktemp "$out/.$name.tmp.XXXXXX")"
	# -buildvcs=false: the bytes depend on the sources only, not on the
	# checkout's state, so rebuilding unchanged code yields the same binary.
	(cd "$root" && go build -buildvcs=false -o "$tmp" "$pkg")
	chmod 0755 "$tmp"
	if [ -f "$dst" ] && cmp -s "$tmp" "$dst"; then
		rm -f "$tmp"
		echo "$name: unchanged ($pkg)"
	else
		mv -f "$tmp" "$dst"
		echo "$name: built $dst ($pkg)"
	fi
	tmp=""
}

build ping ./examples/pingpong/ping
build pong "./examples/pingpong/pong/$version"
