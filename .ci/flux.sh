#!/usr/bin/env bash
# Build Flux's source-controller and kustomize-controller from their Go modules, once, into a cache
# outside the repo, and copy their CRDs beside the binaries. Idempotent: a second run with the binaries
# present and stamped with the right versions does nothing. Prints the cache directory (bin/, crds/).
#
# Each controller gets a go.mod of its own (separate from Kubernetes' one in .ci/k8s.sh): it requires
# the controller's module and carries the replace lines of the controller's own go.mod, with the
# `./api` replace (a local path in their repo) pointed at the published api module of the same version.
#
# notification-controller (the Receiver for `webhook: true`) is not built: the Go module proxy refuses
# github.com/fluxcd/notification-controller ("403 Forbidden ... This module version is not available"),
# so a Flux lane polls (see README, "Flux").
#
#   FLUX_SOURCE_VERSION     source-controller release (default v1.9.6: go 1.26.0; v1.10.x needs Go 1.27)
#   FLUX_KUSTOMIZE_VERSION  kustomize-controller release (default v1.9.6)
#   MLOPSLAB_FLUX_CACHE     cache root (default ~/.cache/mlopslab-flux)
source "$(dirname "${BASH_SOURCE[0]}")/gocache.sh"   # set -euo pipefail; gocache_start, gocache_finish
SRC_V="${FLUX_SOURCE_VERSION:-v1.9.6}"
KUS_V="${FLUX_KUSTOMIZE_VERSION:-v1.9.6}"
CACHE="${MLOPSLAB_FLUX_CACHE:-$HOME/.cache/mlopslab-flux}"
ROOT="$CACHE/source-$SRC_V-kustomize-$KUS_V"
BIN="$ROOT/bin"
CRDS="$ROOT/crds"
gocache_start "$ROOT/.stamp" "source-controller=$SRC_V kustomize-controller=$KUS_V" "$ROOT" \
  flux.sh "Flux's controllers" MLOPSLAB_FLUX_DIR
mkdir -p "$BIN" "$CRDS"

build() {  # build <name> <version>: github.com/fluxcd/<name>@<version> -> $BIN/<name>
  local name="$1" version="$2" mod="github.com/fluxcd/$1"
  local dir="$CACHE/src/$name-$version"
  mkdir -p "$dir"; cd "$dir"
  local gomod_file moddir
  gomod_file="$(go mod download -json "$mod@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  moddir="$(go mod download -json "$mod@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  python3 - "$gomod_file" "$mod" "$version" > go.mod <<'PY'
import re, sys
path, mod, version = sys.argv[1:]
text = open(path).read()
out = ["module mlopslab.local/fluxbuild", ""]
out.append(re.search(r"^go \S+", text, re.M).group(0))
out += ["", f"require {mod} {version}", ""]
# their replace lines, single or in a block; a local path (./api) becomes the published module
lines = []
for block in re.findall(r"^replace \((.*?)^\)", text, re.M | re.S):
    lines += [l.strip() for l in block.splitlines() if "=>" in l]
lines += [l[len("replace "):].strip() for l in text.splitlines() if l.startswith("replace ") and "=>" in l]
for l in lines:
    l = l.split("//")[0].strip()
    old, new = [s.strip() for s in l.split("=>")]
    if new.startswith("./") or new.startswith("../"):
        old_path = old.split()[0]
        new = f"{old_path} {version}"
    out.append(f"replace {old} => {new}")
# module versions the Go module proxy refuses (403 "not available"), each pinned to a served patch
# release of the same minor: their API is the same
for old, new in (("github.com/fluxcd/pkg/artifact", "github.com/fluxcd/pkg/artifact v0.18.0"),):
    if re.search(rf"^\s*{re.escape(old)} v0\.18\.[1-9]", text, re.M):
        out.append(f"replace {old} => {new}")
print("\n".join(out))
PY
  printf '//go:build tools\n\npackage fluxbuild\n\nimport _ "%s"\n' "$mod" > tools.go
  # -e: test-only dependencies of their packages (e.g. fluxcd/pkg/helmtestserver) may be refused by the
  # proxy; they are never built
  go mod tidy -e >/dev/null 2>&1 || true
  go build -trimpath -ldflags "-s -w" -o "$BIN/$name" "$mod"   # they have no --version: the cache path and .stamp say it
  cp "$moddir"/config/crd/bases/*.yaml "$CRDS/"
  chmod u+w "$CRDS"/*.yaml
}

# One go build at a time (2 cores).
build source-controller "$SRC_V"
build kustomize-controller "$KUS_V"
gocache_finish
