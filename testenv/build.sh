#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) and the helper binaries (kwok, helm, sops, age) into a
# versioned cache outside the work tree, once per machine.
#
#   testenv/build.sh            build whatever is missing, print the bin dir
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

what="${1:-all}"
k8s_dir="$cache_root/k8s/$k8s_version"
tools_dir="$cache_root/tools/kwok-$kwok_version-helm-$helm_version-sops-$sops_version-age-$age_version"
if [[ "$what" == all || "$what" == k8s ]]; then
  ensure kubernetes "$k8s_dir" "$(stamp_of "$here/go.mod" "$here/go.sum" "$here/cmd/etcd/main.go")" build_k8s
fi
if [[ "$what" == all || "$what" == tools ]]; then
  ensure tools "$tools_dir" "$(stamp_of "$here/kwok/go.mod" "$here/kwok/go.sum")-$helm_version-$sops_version-$age_version" build_tools
fi
echo "$k8s_dir/bin:$tools_dir/bin"
