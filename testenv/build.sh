#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler), the helper binaries (kwok, helm, sops, age) and a Prometheus
# server (the rollout analysis tests query a real one) into a versioned cache
# outside the work tree, once per machine.
#
#   testenv/build.sh            build whatever is missing, print the bin dirs
#                               ("<k8s>/bin:<tools>/bin")
#   testenv/build.sh k8s|tools  build only that component (same output)
#   testenv/build.sh prometheus build only Prometheus, print its bin dir
#   GITMOOR_BIN_CACHE=/path     override the cache root (default ~/.cache/gitmoor)
#
# A component is rebuilt only when its stamp (the go.mod/go.sum it was built
# from, the Go version and this script's component list) changes, so a warm
# call returns in milliseconds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${GITMOOR_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitmoor}"
k8s_version="v1.37.2"
kwok_version="v0.8.0"
helm_version="v3.22.0"
sops_version="v3.13.3"
age_version="v1.3.2"
# Prometheus publishes its Go module as v0.3MM.P for release 3.MM.P.
prometheus_version="v0.316.0"
# Upstream's own build tag that leaves out every service-discovery plugin but
# file and http (static_configs are core): the tests scrape a fixed loopback
# target, and the cloud SDKs (AWS, Azure, GCE, Kubernetes, ...) are a third of
# the packages it compiles (1518 without the tag, 1044 with it).
prometheus_tags="remove_all_sd"

log() { printf '%s event=%s %s\n' "$(date -u +%H:%M:%S)" "$1" "${*:2}" >&2; }

stamp_of() { # stamp_of <files...>
  { go env GOVERSION; for f in "$@"; do cat "$f"; done; } | sha256sum | cut -c1-16
}

ensure() { # ensure <name> <dir> <stamp> <build-fn>
  local name="$1" dir="$2" stamp="$3" fn="$4"
  if [[ -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$stamp" ]]; then
    log cached component="$name" dir="$dir"
    return 0
  fi
  log building component="$name" dir="$dir" note="a cold build takes minutes"
  local start=$SECONDS
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/bin"
  "$fn" "$dir.tmp/bin"
  echo "$stamp" > "$dir.tmp/.stamp"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log built component="$name" seconds=$((SECONDS - start))
}

build_k8s() {
  local out="$1" pkg=k8s.io/component-base/version
  local ld="-s -w -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=37 -X $pkg.gitTreeState=clean"
  (cd "$here" && go build -trimpath -ldflags "$ld" -o "$out/" \
    ./cmd/etcd \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler)
}

build_tools() {
  local out="$1"
  (cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$out/" sigs.k8s.io/kwok/cmd/kwok)
  # kwok's fast stages (node init/heartbeat, pod ready/complete/delete) ship in
  # its module; render them once so the launcher needs no network.
  local kdir
  kdir="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  kubectl kustomize "$kdir/kustomize/stage/fast" > "$out/kwok-stages-fast.yaml"
  GOBIN="$out" GOFLAGS=-trimpath go install -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$helm_version"
  GOBIN="$out" GOFLAGS=-trimpath go install -ldflags "-s -w" "github.com/getsops/sops/v3/cmd/sops@$sops_version"
  GOBIN="$out" GOFLAGS=-trimpath go install -ldflags "-s -w" "filippo.io/age/cmd/...@$age_version"
}

build_prometheus() {
  # `go install pkg@version` builds with the module's own go.mod and go.sum
  # (checked against the checksum database), so no go.sum of ours pins it.
  # Without the `builtinassets` tag the web UI is read from disk and absent
  # here; the HTTP API (/api/v1/query, /-/ready) is all the tests use.
  local out="$1" minor="${prometheus_version#v0.}"
  minor="${minor%%.*}"
  local release="${minor:0:1}.$((10#${minor:1})).${prometheus_version##*.}"
  local ld="-s -w -X github.com/prometheus/common/version.Version=$release"
  GOBIN="$out" GOFLAGS=-trimpath nice -n 10 go install -tags "$prometheus_tags" -ldflags "$ld" \
    "github.com/prometheus/prometheus/cmd/prometheus@$prometheus_version"
}

what="${1:-all}"
k8s_dir="$cache_root/k8s/$k8s_version"
tools_dir="$cache_root/tools/kwok-$kwok_version-helm-$helm_version-sops-$sops_version-age-$age_version"
prometheus_dir="$cache_root/prometheus/$prometheus_version"
if [[ "$what" == all || "$what" == k8s ]]; then
  ensure kubernetes "$k8s_dir" "$(stamp_of "$here/go.mod" "$here/go.sum" "$here/cmd/etcd/main.go")" build_k8s
fi
if [[ "$what" == all || "$what" == tools ]]; then
  ensure tools "$tools_dir" "$(stamp_of "$here/kwok/go.mod" "$here/kwok/go.sum")-$helm_version-$sops_version-$age_version" build_tools
fi
if [[ "$what" == all || "$what" == prometheus ]]; then
  # A separate component, so that its stamp never forces a rebuild of the others.
  ensure prometheus "$prometheus_dir" \
    "$(stamp_of <(printf '%s\n' "$prometheus_version" "$prometheus_tags"))" build_prometheus
fi
# gitmoor.testenv reads "<k8s>:<tools>" off the last line: keep its shape.
if [[ "$what" == prometheus ]]; then
  echo "$prometheus_dir/bin"
else
  echo "$k8s_dir/bin:$tools_dir/bin"
fi
