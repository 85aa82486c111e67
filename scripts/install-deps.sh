#!/usr/bin/env bash
# Installs what the tests need beyond Go: Debian's chromium, the headless
# browser the web view's test drives (cmd/graft/web_test.go). It does
# nothing when a chromium is already on PATH. Needs root (or sudo) and the
# Debian archive; CI runs it before the tests.
set -euo pipefail
for b in chromium chromium-browser google-chrome; do
	if command -v "$b" >/dev/null 2>&1; then
		echo "install-deps: $b is installed ($(command -v "$b"))" >&2
		exit 0
	fi
done
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo"
fi
echo "install-deps: installing chromium from the Debian archive" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null || { echo "install-deps: chromium did not install" >&2; exit 1; }
