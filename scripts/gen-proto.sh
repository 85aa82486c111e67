#!/usr/bin/env bash
# Regenerates the Go code of graft's behaviour protocol (dynamic/sdk/proto/graftv1)
# from behaviour.proto with pinned tool versions. The tools are installed
# through the Go module proxy into a local bin dir, and buf's built-in
# compiler is used, so no protoc is needed.
#
# Usage: scripts/gen-proto.sh            (from anywhere inside the repo)
# Env:   GRAFT_TOOLS_BIN  where to install the tools (default: .cache/protogen/bin
#                         under the user cache dir)
set -euo pipefail

# Pinned versions. protoc-gen-go must match google.golang.org/protobuf in dynamic/sdk/go.mod.
BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${GRAFT_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/graft/protogen-${BUF_VERSION}-${PROTOC_GEN_GO_VERSION}-${PROTOC_GEN_GO_GRPC_VERSION}/bin}"
mkdir -p "$bin"

install() { # module@version binary
  if [ ! -x "$bin/$2" ]; then
    echo "installing $1 into $bin" >&2
    (cd "$root/dynamic/sdk" && GOBIN="$bin" go install "$1")
  fi
}
install "github.com/bufbuild/buf/cmd/buf@${BUF_VERSION}" buf
install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}" protoc-gen-go
install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}" protoc-gen-go-grpc

cd "$root/dynamic/sdk/proto"
PATH="$bin:$PATH" buf generate
echo "generated: $(cd "$root" && ls dynamic/sdk/proto/graftv1/*.go | tr '\n' ' ')" >&2
