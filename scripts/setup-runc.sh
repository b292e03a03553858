#!/usr/bin/env bash
# Prepares a Debian 12 machine (CI, a developer's) for test/e2e/runc.test.ts:
# installs runc, debootstrap and a JDK (javac) from Debian, then builds the cached Debian 13 root
# filesystem (.cache/rootfs/debian13, ~4 min the first time, then instant).
# Run as root. `npm run build` (dist/stasis) may come before or after; the test
# copies the current dist/stasis in on every run.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) == 0 ]] || { echo "setup-runc: run as root" >&2; exit 1; }
missing=()
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# javac compiles the JVM test app (test/fixtures/Tick.java) into the rootfs
command -v javac >/dev/null || missing+=(default-jdk-headless)
if ((${#missing[@]} > 0)); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # --no-install-recommends: runc recommends Debian 12's criu 3.17, which cannot
  # checkpoint on current kernels and would shadow nothing useful.
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
runc --version | head -n1 >&2
STASIS_ROOTFS_BASE_ONLY=1 bash scripts/build-rootfs.sh >/dev/null
echo "setup-runc: runc, debootstrap, javac and the Debian 13 rootfs are ready" >&2
