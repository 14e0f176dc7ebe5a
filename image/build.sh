#!/usr/bin/env bash
# Builds gitmoor's container image as an OCI image layout, with no Docker
# daemon and no base image pulled from a registry: only Debian's packages,
# PyPI (through uv.lock) and the tool cache of testenv/build.sh are used, which
# is all an air-gapped shop with package mirrors has too.
#
#   image/build.sh       build, print the manifest digest and the pinned reference
#
# Output (IMAGE_OUT, default .local/image):
#   oci/            the OCI image layout, tag = gitmoor's version
#                   (push: skopeo copy oci:.local/image/oci:0.1.0 docker://REGISTRY/gitmoor:0.1.0)
#   digest          sha256:… of the image manifest (what a registry reports after a push)
#   reference       ghcr.io/gitmoor/gitmoor@sha256:… (image/pin.py writes it into deploy/)
#   sbom.json       SPDX 2.3: the Debian packages, the Python packages, the Go tools
#
# Layers, lowest first (a rebuild of gitmoor leaves the Debian layer's digest as it was):
#   1. Debian `minbase` + image/packages.txt, made by mmdebstrap, with the user
#      nonroot (65532:65532) and /cache; cached in $GITMOOR_BIN_CACHE/image/rootfs,
#      keyed by the package list, the mirrors and the day (IMAGE_DEBIAN_DATE).
#   2. /usr/local: the locked Python dependencies and gitmoor for Debian's python3,
#      byte-compiled by that python3; kubectl (kustomize), helm, sops, age; deploy/
#      (unpinned) in /usr/local/share/gitmoor for `gitmoor bootstrap`; and
#      /usr/share/doc/gitmoor/sbom.json.
#
# Needs root (mmdebstrap --mode=root and chroot: no user namespaces needed),
# mmdebstrap and umoci (apt-get install mmdebstrap umoci), uv, and kubectl on PATH.
# Knobs: IMAGE_OUT, IMAGE_CACHE (the rootfs cache), IMAGE_SRC (the tree gitmoor's wheel is built from, default
# this checkout), IMAGE_DEBIAN_SUITE (bookworm), IMAGE_DEBIAN_MIRROR,
# IMAGE_DEBIAN_SECURITY, IMAGE_DEBIAN_DATE (YYYYMMDD, default today UTC),
# IMAGE_KUBECTL (the kubectl binary to ship), SOURCE_DATE_EPOCH (default: the
# last commit's time).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
src="${IMAGE_SRC:-$repo}"
out="${IMAGE_OUT:-$repo/.local/image}"
cache="${IMAGE_CACHE:-${GITMOOR_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitmoor}/image}"
suite="${IMAGE_DEBIAN_SUITE:-bookworm}"
mirror="${IMAGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${IMAGE_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
day="${IMAGE_DEBIAN_DATE:-$(date -u +%Y%m%d)}"
name="ghcr.io/gitmoor/gitmoor"
uid=65532
UV="${UV:-$(command -v uv 2>/dev/null || echo "$HOME/.local/bin/uv")}"

log() { printf '%s event=%s %s\n' "$(date -u +%H:%M:%S)" "$1" "${*:2}" >&2; }
die() { log failed "reason=\"$*\""; exit 1; }

[[ "$(id -u)" == 0 ]] || die "run as root: mmdebstrap --mode=root and chroot need it"
for tool in mmdebstrap umoci; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install mmdebstrap umoci"
done
[[ -x "$UV" ]] || die "uv is missing: make deps"

started=$SECONDS
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$src/pyproject.toml" | head -1)"
revision="$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || echo 0)}"
created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
# The Debian layer's own clock is its day, not gitmoor's commit, so that every
# build of one day shares the layer.
deb_epoch="$(date -u -d "$day" +%s)"

# Files newer than the epoch get the epoch (tar's --clamp-mtime): the layer's
# bytes then depend on what is in it, not on when it was built. Older mtimes
# (those shipped in .debs) stay, so Debian's timestamp-checked .pyc stay valid.
clamp() { # clamp <epoch> <paths...>
  local epoch="$1"; shift
  find "$@" -newermt "@$epoch" -print0 | xargs -0r touch -h -d "@$epoch"
}

# --- 1. the Debian root filesystem (cached) -------------------------------------
mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt")
include="$(IFS=,; echo "${packages[*]}")"
recipe="rootfs-v2 $suite $mirror $security $include uid=$uid"
key="$(printf '%s\n' "$recipe" "$day" | sha256sum | cut -c1-12)"
rootfs_dir="$cache/rootfs/$suite-$day-$key"
mkdir -p "$cache/rootfs"
exec 9>"$cache/rootfs/.lock"
flock 9   # two builds at once (make image while the tests build theirs) share one rootfs
if [[ -f "$rootfs_dir/.done" ]]; then
  log cached component=rootfs dir="$rootfs_dir"
else
  log building component=rootfs suite="$suite" packages="$include" note="a cold build takes about a minute"
  t=$SECONDS
  rm -rf "$rootfs_dir.tmp"
  mkdir -p "$rootfs_dir.tmp"
  # minbase: Essential packages and apt only. Docs, man pages and locales are left
  # out; the copyright files stay (they are the packages' licences).
  SOURCE_DATE_EPOCH="$deb_epoch" nice -n 10 mmdebstrap --mode=root --variant=minbase --format=directory \
    --include="$include" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="echo 'nonroot:x:$uid:$uid:gitmoor:/cache:/usr/sbin/nologin' >> \"\$1/etc/passwd\"" \
    --customize-hook="echo 'nonroot:x:$uid:' >> \"\$1/etc/group\"" \
    --customize-hook="echo 'nonroot:!:0::::::' >> \"\$1/etc/shadow\"" \
    --customize-hook="install -d -m 0755 -o $uid -g $uid \"\$1/cache\"" \
    --customize-hook='rm -rf "$1"/var/log/* "$1"/var/cache/ldconfig/aux-cache "$1"/var/lib/dpkg/*-old "$1"/etc/machine-id' \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/partial "$1"/var/lib/apt/lists/partial' \
    "$suite" "$rootfs_dir.tmp/rootfs" \
    "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main" \
    >"$rootfs_dir.tmp/mmdebstrap.log" 2>&1 || { tail -20 "$rootfs_dir.tmp/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
  # A container runtime mounts its own /dev; device nodes in a layer only trouble
  # rootless unpackers (no mknod in a user namespace).
  find "$rootfs_dir.tmp/rootfs/dev" -mindepth 1 -delete
  clamp "$deb_epoch" "$rootfs_dir.tmp/rootfs"
  touch "$rootfs_dir.tmp/.done"
  # One rootfs per recipe is enough: yesterday's goes.
  find "$cache/rootfs" -mindepth 1 -maxdepth 1 -type d -name "$suite-*" ! -name "$suite-$day-$key*" -exec rm -rf {} +
  mv "$rootfs_dir.tmp" "$rootfs_dir"
  log built component=rootfs seconds=$((SECONDS - t))
fi
exec 9>&-
base="$rootfs_dir/rootfs"
pyver="$(readlink "$base/usr/bin/python3")"   # python3.11 on bookworm
pyver="${pyver#python}"
[[ "$pyver" =~ ^3\.[0-9]+$ ]] || die "no python3 in the Debian rootfs"
[[ "${pyver#3.}" -ge 11 ]] || die "Debian $suite has Python $pyver; gitmoor needs 3.11 or later"

# --- 2. the OCI layout, and the Debian layer -------------------------------------
# umoci, daemonless and without user namespaces when run as root: `unpack` makes a
# bundle whose rootfs we fill, and each `repack --refresh-bundle` adds a layer of
# what changed since the last one. (Not `umoci insert`: Debian's umoci 0.4.7 never
# closes the tar stream of an inserted layer, umoci#436, so the last file's
# padding and the end-of-archive blocks are missing, and Go's archive/tar in
# containerd and Docker stop with "unexpected EOF" on such a layer.)
t=$SECONDS
work="$out/work"
oci="$out/oci.tmp"
rm -rf "$work" "$oci"
mkdir -p "$work/dist"
umoci init --layout "$oci"
umoci new --image "$oci:$version"
umoci unpack --image "$oci:$version" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
# Hard links: nothing below writes into a file of the Debian tree (new files
# land in /usr/local and /usr/share/doc/gitmoor), so the copy costs no space.
rm -rf "$rootfs"
cp -al "$base" "$rootfs" 2>/dev/null || cp -a "$base" "$rootfs"
hist=(--history.created "$created" --history.author gitmoor)
umoci repack --refresh-bundle "${hist[@]}" \
  --history.created_by "mmdebstrap --variant=minbase $suite ($day): $include" \
  --image "$oci:$version" "$work/bundle" >/dev/null
log built component=layer layer=debian seconds=$((SECONDS - t))

# --- 3. gitmoor, its locked dependencies and the tools ------------------------------
site="/usr/local/lib/python$pyver/dist-packages"   # on Debian python3's default sys.path
t=$SECONDS
(cd "$src" && nice -n 10 "$UV" build --quiet --wheel --out-dir "$work/dist" .)
wheel="$(ls "$work/dist"/gitmoor-*.whl)"
(cd "$src" && "$UV" export --quiet --frozen --no-dev --no-emit-project --format requirements-txt) > "$work/requirements.txt"
# Wheels only (nothing is compiled), for Debian's glibc and Python, checked
# against the hashes in uv.lock.
pip_target=(--target "$rootfs$site" --python-version "$pyver" --python-platform x86_64-manylinux_2_36
  --only-binary :all: --no-deps --quiet)
nice -n 10 "$UV" pip install "${pip_target[@]}" --require-hashes -r "$work/requirements.txt"
nice -n 10 "$UV" pip install "${pip_target[@]}" "$wheel"
# uv's console scripts name the build machine's interpreter; PEP 610's
# direct_url.json names the build directory and uv_cache.json the time of the
# install. None belongs in the image (and the last two would change its digest).
rm -rf "$rootfs$site/bin"
for f in "$rootfs$site"/gitmoor-*.dist-info/{direct_url,uv_cache}.json; do
  [[ -f "$f" ]] || continue
  rm -f "$f" && sed -i "/\.dist-info\/$(basename "$f" .json)\\.json,/d" "$(dirname "$f")/RECORD"
done
cat > "$rootfs/usr/local/bin/gitmoor" <<EOF
#!/usr/bin/python3
import sys

from gitmoor.cli.main import app

sys.exit(app())
EOF
chmod 0755 "$rootfs/usr/local/bin/gitmoor"
# Byte-compiled by the image's own python3, checked by hash rather than mtime:
# the root filesystem is read-only at run time, so a .pyc missing or stale there
# would be recompiled at every start.
nice -n 10 chroot "$rootfs" /usr/bin/python3 -m compileall -q -j 1 \
  --invalidation-mode unchecked-hash "$site" >/dev/null || die "compileall failed in the rootfs"
log built component=python seconds=$((SECONDS - t)) python="$pyver" wheel="$(basename "$wheel")"

# The binaries the tests use. kubectl renders Kustomize (`kubectl kustomize`);
# gitmoor finds every tool on PATH (gitmoor.render.proc.command_from_env).
tools_dir="$(bash "$repo/testenv/build.sh" tools | tr ':' '\n' | grep '/tools/')"
kubectl_bin="${IMAGE_KUBECTL:-}"
if [[ -z "$kubectl_bin" ]]; then
  kubectl_bin="$(readlink -f "$(command -v kubectl || die "kubectl is missing")")"
  # Google Cloud SDK's kubectl is a dispatcher that runs kubectl.<minor> beside it;
  # ship the binary it runs for a command that talks to no server.
  client="$("$kubectl_bin" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
  if [[ "$client" == *-dispatcher ]]; then
    minor="$(echo "$client" | sed -E 's/^v([0-9]+\.[0-9]+).*/\1/')"
    kubectl_bin="$(dirname "$kubectl_bin")/kubectl.$minor"
  fi
fi
[[ -x "$kubectl_bin" ]] || die "no kubectl binary at $kubectl_bin"
for tool in helm sops age age-keygen; do
  install -m 0755 "$tools_dir/$tool" "$rootfs/usr/local/bin/$tool"
done
install -m 0755 "$kubectl_bin" "$rootfs/usr/local/bin/kubectl"
# `gitmoor bootstrap` run from the image installs the deploy/ it carries
# ($GITMOOR_DEPLOY_DIR). Unpinned: an image cannot name its own digest, and a
# pinned copy would change the digest at every `make image-pin`.
mkdir -p "$rootfs/usr/local/share/gitmoor"
cp -r "$src/deploy" "$rootfs/usr/local/share/gitmoor/deploy"
python3 "$here/pin.py" --unpin "$rootfs/usr/local/share/gitmoor/deploy"
find "$rootfs/usr/local/share/gitmoor" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +

# --- 4. the SBOM ------------------------------------------------------------------
tool_args=()
for tool in helm sops age; do
  mod="$(go version -m "$tools_dir/$tool" 2>/dev/null | awk '$1 == "mod" {print $2 "@" $3; exit}')"
  [[ -n "$mod" ]] && tool_args+=(--go-tool "$tool=$mod")
done
kjson="$("$rootfs/usr/local/bin/kubectl" version --client -o json)"
kver="$(echo "$kjson" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
kzver="$(echo "$kjson" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("kustomizeVersion", ""))')"
tool_args+=(--go-tool "kubectl=k8s.io/kubernetes@$kver")
[[ -n "$kzver" ]] && tool_args+=(--go-tool "kustomize=sigs.k8s.io/kustomize/kustomize/v5@$kzver")
doc="$rootfs/usr/share/doc/gitmoor"
mkdir -p "$doc"
python3 "$here/sbom.py" --rootfs "$rootfs" --site "$site" --lock "$src/uv.lock" \
  --name "$name" --version "$version" --created "$created" "${tool_args[@]}" > "$doc/sbom.json"
chmod 0644 "$doc/sbom.json"

# A smoke test before anything is packed: the entrypoint as the image's user.
chroot --userspec=$uid:$uid "$rootfs" /usr/bin/env -i HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin \
  /usr/local/bin/gitmoor version >/dev/null || die "gitmoor version failed inside the rootfs"

clamp "$SOURCE_DATE_EPOCH" "$rootfs/usr/local" "$doc"
touch -h -r "$base/usr/share/doc" "$rootfs/usr/share/doc"   # its mtime changed with the new child

# --- 5. the gitmoor layer (SBOM included), the image config -----------------------
t=$SECONDS
umoci repack --refresh-bundle "${hist[@]}" \
  --history.created_by "gitmoor $version, Python packages of uv.lock, kubectl helm sops age, deploy/" \
  --image "$oci:$version" "$work/bundle" >/dev/null
labels=(
  "org.opencontainers.image.title=gitmoor"
  "org.opencontainers.image.description=GitOps engine: controller, API server and CLI"
  "org.opencontainers.image.version=$version"
  "org.opencontainers.image.revision=$revision"
  "org.opencontainers.image.created=$created"
  "org.opencontainers.image.licenses=Apache-2.0"
  "org.opencontainers.image.source=https://github.com/gitmoor/gitmoor"
)
label_args=()
for l in "${labels[@]}"; do label_args+=(--config.label "$l" --manifest.annotation "$l"); done
# The root filesystem may be mounted read-only: everything gitmoor writes goes to
# the two volumes (deploy/ mounts emptyDirs there), as deploy/README.md lists.
umoci config --image "$oci:$version" --no-history --created "$created" \
  --config.user "$uid:$uid" \
  --config.entrypoint /usr/local/bin/gitmoor --config.cmd --help \
  --config.workingdir /cache \
  --config.env PATH=/usr/local/bin:/usr/bin:/bin \
  --config.env HOME=/cache --config.env XDG_CACHE_HOME=/cache \
  --config.env GITMOOR_CACHE_DIR=/cache/gitmoor --config.env TMPDIR=/tmp \
  --config.env GITMOOR_DEPLOY_DIR=/usr/local/share/gitmoor/deploy \
  --config.env PYTHONDONTWRITEBYTECODE=1 --config.env PYTHONUNBUFFERED=1 \
  --config.volume /cache --config.volume /tmp \
  "${label_args[@]}"
umoci gc --layout "$oci"
rm -rf "$out/oci" && mv "$oci" "$out/oci"
digest="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$out/oci/index.json")"
cp "$doc/sbom.json" "$out/sbom.json"
echo "$digest" > "$out/digest"
echo "$name@$digest" > "$out/reference"
rm -rf "$work"
log built component=image seconds=$((SECONDS - t)) total_seconds=$((SECONDS - started)) \
  layout="$out/oci" tag="$version" size_mb="$(du -sm "$out/oci" | cut -f1)"
echo "$digest"
echo "$name@$digest"
