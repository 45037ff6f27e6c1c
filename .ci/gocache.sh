# Sourced by .ci/k8s.sh and .ci/flux.sh: the prologue of a Go build cached outside the repo.
#
#   gocache_start STAMP WANT OUT WHO WHAT VARIABLE   first
#   gocache_finish                                   last, once everything is built
#
# When STAMP holds WANT (the versions built there), prints OUT (what the script prints) and exits 0:
# the script is an idempotent no-op. Otherwise it needs Go (WHO, WHAT and VARIABLE, where a person can
# point at binaries built elsewhere, make the message) and exports the build settings both scripts use:
# no VCS stamping, static binaries. Sourcing it sets the shell options both scripts run with.
set -euo pipefail

gocache_start() {
  GOCACHE_STAMP="$1" GOCACHE_WANT="$2" GOCACHE_OUT="$3"
  local who="$4" what="$5" variable="$6"
  if [[ -f "$GOCACHE_STAMP" && "$(cat "$GOCACHE_STAMP")" == "$GOCACHE_WANT" ]]; then
    echo "$GOCACHE_OUT"; exit 0
  fi
  command -v go >/dev/null || { echo "$who: Go is needed to build $what (apt-get install golang, or set $variable)" >&2; exit 1; }
  export GOFLAGS="-buildvcs=false" CGO_ENABLED=0
}

gocache_finish() {  # stamps the cache with the versions built, and prints what the script prints
  echo "$GOCACHE_WANT" > "$GOCACHE_STAMP"
  echo "$GOCACHE_OUT"
}
