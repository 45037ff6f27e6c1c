#!/usr/bin/env bash
# Makes a Docker engine and mlopslab's offline base images available; idempotent. Run it (do not source it):
#   eval "$(.ci/docker.sh)"   (exports MLOPSLAB_BASE_IMAGE and MLOPSLAB_AGENT_BASE_IMAGE; progress goes to stderr)
# Needs root, apt (Debian's docker.io + debootstrap) and a Debian mirror; no container registry.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
DEB_CACHE=${MLOPSLAB_DEB_CACHE:-/var/cache/mlopslab/debs}
export MLOPSLAB_BASE_IMAGE=${MLOPSLAB_BASE_IMAGE:-mlopslab/base:bookworm}
export MLOPSLAB_AGENT_BASE_IMAGE=${MLOPSLAB_AGENT_BASE_IMAGE:-mlopslab/agent-base:bookworm}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { echo "[docker.sh] $*" >&2; }

# 1. packages
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v iptables >/dev/null || missing+=(iptables)
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. the engine: start dockerd in the background unless one answers. If the sandbox refuses the defaults
#    (no iptables, no overlayfs), retry with --iptables=false and then with the vfs storage driver.
start_dockerd() {
  say "starting dockerd $* (log: $DOCKERD_LOG)"
  nohup dockerd "$@" >>"$DOCKERD_LOG" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    kill -0 $! 2>/dev/null || return 1
    sleep 1
  done
  kill $! 2>/dev/null || true
  return 1
}
if ! docker info >/dev/null 2>&1; then
  rm -f /var/run/docker.pid
  start_dockerd ${DOCKERD_OPTS:-} \
    || start_dockerd --iptables=false ${DOCKERD_OPTS:-} \
    || start_dockerd --iptables=false --storage-driver=vfs ${DOCKERD_OPTS:-} \
    || { say "dockerd did not come up; last log lines:"; tail -20 "$DOCKERD_LOG" >&2; exit 1; }
fi
say "engine: Docker $(docker version --format '{{.Server.Version}}')"

# 3. offline base images (debootstrap + docker import), built once and kept as images
if ! docker image inspect "$MLOPSLAB_BASE_IMAGE" >/dev/null 2>&1 \
   || ! docker image inspect "$MLOPSLAB_AGENT_BASE_IMAGE" >/dev/null 2>&1; then
  say "building offline base images (debootstrap, about a minute each)"
  (cd "$REPO" && python3 -m mlopslab images build-base --base "$MLOPSLAB_BASE_IMAGE" \
      --agent-base "$MLOPSLAB_AGENT_BASE_IMAGE" --cache-dir "$DEB_CACHE" >&2)
fi
say "base images: $MLOPSLAB_BASE_IMAGE, $MLOPSLAB_AGENT_BASE_IMAGE"
echo "export MLOPSLAB_BASE_IMAGE=$MLOPSLAB_BASE_IMAGE"
echo "export MLOPSLAB_AGENT_BASE_IMAGE=$MLOPSLAB_AGENT_BASE_IMAGE"
