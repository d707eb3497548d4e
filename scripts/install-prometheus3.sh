#!/usr/bin/env bash
# Puts Debian's Prometheus 3.x (from unstable, "sid") beside the machine's Debian 12 Prometheus 2.42,
# without installing it: the package is downloaded from deb.debian.org over HTTPS, its SHA-256
# checked, and only its `prometheus` binary unpacked into
#   ${VIGIL_TEST_TOOLS:-$HOME/.cache/vigil/test-tools}/prometheus3/prometheus
# which is where the end-to-end tests look for the PromQL reference (tests/common/mod.rs).
# Idempotent: does nothing when that binary is there and runs.
#
# The pinned build is tried first. sid moves on and its pool drops old builds, so when the pinned
# file is gone, the newest 3.x build listed in sid's package index is taken (checked against the
# SHA-256 in that index) and its version is printed.
set -euo pipefail

PINNED_VERSION="3.5.3+ds1-6"
PINNED_SHA256="593bcced02d8082688ea034dfc543848ad145c5f793aae5aad756c4dbdfa98da"
MIRROR="https://deb.debian.org/debian"

tools="${VIGIL_TEST_TOOLS:-$HOME/.cache/vigil/test-tools}"
target="$tools/prometheus3"

if [ -x "$target/prometheus" ] && "$target/prometheus" --version >/dev/null 2>&1; then
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() { curl --fail --silent --show-error --location --retry 3 --max-time 300 -o "$2" "$1"; }

deb="$work/prometheus.deb"
version="$PINNED_VERSION"
sha256="$PINNED_SHA256"
if ! fetch "$MIRROR/pool/main/p/prometheus/prometheus_${PINNED_VERSION}_amd64.deb" "$deb" 2>/dev/null; then
  echo "install-prometheus3: pinned build $PINNED_VERSION is gone from sid; looking up sid's index" >&2
  fetch "$MIRROR/dists/sid/main/binary-amd64/Packages.xz" "$work/Packages.xz"
  entry="$(xz -dc "$work/Packages.xz" | awk '
    /^Package: /   { pkg = $2 }
    /^Version: /   { ver = $2 }
    /^Filename: /  { file = $2 }
    /^SHA256: /    { sum = $2 }
    /^$/ { if (pkg == "prometheus") { print ver, file, sum }; pkg = "" }')"
  read -r version filename sha256 <<<"$entry"
  case "$version" in
    3.*) ;;
    *) echo "install-prometheus3: sid has prometheus '${version:-none}', not a 3.x build" >&2; exit 1 ;;
  esac
  fetch "$MIRROR/$filename" "$deb"
fi
echo "$sha256  $deb" | sha256sum --check --quiet

dpkg-deb -x "$deb" "$work/root"
mkdir -p "$tools"
rm -rf "$target.new"
mkdir -p "$target.new"
cp "$work/root/usr/bin/prometheus" "$target.new/prometheus"
echo "$version" >"$target.new/VERSION"
"$target.new/prometheus" --version >/dev/null
rm -rf "$target"
mv "$target.new" "$target"
echo "install-prometheus3: Prometheus $version at $target/prometheus"
