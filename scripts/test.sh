#!/usr/bin/env bash
# Vigil's test command: installs what the end-to-end tests need (only what is missing), then runs
# formatting, lint, build and every test of the workspace. Idempotent; runs from any directory.
#
# Needs: a Rust toolchain (cargo, rustfmt, clippy), python3 with pip, and root with apt for the
# first run on a fresh Debian 12 machine (Prometheus 2.42 from Debian; Prometheus 3.x unpacked from
# Debian's package by scripts/install-prometheus3.sh; pyarrow, moto, boto3 from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- Prometheus (a real remote-write client for tests/prometheus_remote_write.rs) -------------
if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then
  say "installing prometheus from Debian"
  # Keep the package's service from starting (it would sit on :9090): policy-rc.d denies every
  # invoke-rc.d start for the duration of the install.
  policy=/usr/sbin/policy-rc.d
  had_policy=0
  if [ -e "$policy" ]; then had_policy=1; as_root cp "$policy" "$policy.vigil-backup"; fi
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
  as_root chmod 755 "$policy"
  restore_policy() {
    if [ "$had_policy" -eq 1 ]; then as_root mv "$policy.vigil-backup" "$policy"; else as_root rm -f "$policy"; fi
  }
  trap restore_policy EXIT
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
  restore_policy
  trap - EXIT
fi
# Whatever happened before (an install without policy-rc.d), leave no Debian Prometheus service
# running or enabled at boot: the tests start their own instances on random ports.
if [ -x /etc/init.d/prometheus ] || [ -e /lib/systemd/system/prometheus.service ]; then
  if [ -d /run/systemd/system ]; then
    as_root systemctl stop prometheus >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
  if command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable prometheus >/dev/null 2>&1 || true
  fi
fi

# --- Prometheus 3.x (the PromQL reference of tests/promql_compare.rs and tests/query_api.rs) ---
bash scripts/install-prometheus3.sh

# --- Python tools (block reader, S3 server) ----------------------------------------------------
if ! python3 -c 'import pyarrow, moto, boto3, flask, flask_cors, logging_loki' >/dev/null 2>&1; then
  say "installing pyarrow, moto[server], boto3, python-logging-loki from PyPI"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pip
  fi
  pip_flags=(--quiet --disable-pip-version-check)
  # Debian's own python3 is "externally managed" (PEP 668); these are test tools for this machine.
  if python3 -c 'import os, sys, sysconfig; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
    pip_flags+=(--break-system-packages)
  fi
  python3 -m pip install "${pip_flags[@]}" 'pyarrow' 'moto[server]' 'boto3' 'python-logging-loki'
fi

# --- Rust ----------------------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

say "cargo build"
cargo build --workspace --all-targets

say "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
