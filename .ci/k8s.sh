#!/usr/bin/env bash
# Build the Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl) from upstream Go modules, once, into a cache outside the repo. Idempotent: a second run with
# the binaries present and stamped with the right version does nothing. Prints the bin directory.
#
#   K8S_VERSION   upstream release (default v1.34.4)
#   ETCD_VERSION  etcd server release (default v3.6.13)
#   MLOPSLAB_K8S_CACHE  cache root (default ~/.cache/mlopslab-k8s)
source "$(dirname "${BASH_SOURCE[0]}")/gocache.sh"   # set -euo pipefail; gocache_start, gocache_finish
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.13}"
CACHE="${MLOPSLAB_K8S_CACHE:-$HOME/.cache/mlopslab-k8s}"
BIN="$CACHE/$K8S_VERSION/bin"
gocache_start "$BIN/.stamp" "kubernetes=$K8S_VERSION etcd=$ETCD_VERSION" "$BIN" k8s.sh Kubernetes MLOPSLAB_K8S_BIN
mkdir -p "$BIN" "$CACHE/src/kubernetes" "$CACHE/src/etcd"

# --- Kubernetes: require k8s.io/kubernetes and point each staging module (a ./staging path in its own
# go.mod) at the published module of the same minor: v1.X.Y -> v0.X.Y.
cd "$CACHE/src/kubernetes"
staging_version="v0.${K8S_VERSION#v1.}"
gomod_file="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
{
  echo "module mlopslab.local/k8sbuild"
  echo
  grep -m1 -E '^go [0-9]' "$gomod_file"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod_file" \
    | sed -E "s#^\s*(k8s\.io/[a-z0-9-]+) => .*#replace \1 => \1 $staging_version#"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
go mod tidy -e >/dev/null 2>&1 || true
go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >/dev/null
go mod tidy >/dev/null
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ld=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=module-$K8S_VERSION"
  ld+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
go build -trimpath -ldflags "-s -w $ld" -o "$BIN/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl

# --- etcd: a three-line main over its server module, in a go.mod of its own.
cd "$CACHE/src/etcd"
cat > go.mod <<GO
module mlopslab.local/etcdbuild

go 1.24
GO
cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
go mod tidy >/dev/null
go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module" -o "$BIN/etcd" .

"$BIN/kube-apiserver" --version >&2
gocache_finish
