#!/usr/bin/env bash
# Prepares a Debian 12 machine (CI, a developer's) for test/e2e/podman.test.ts and
# test/e2e/containerd.test.ts: installs buildah, podman and containerd from Debian
# (runc comes from scripts/setup-runc.sh, which also builds the cached Debian 13
# rootfs that scripts/build-image.sh imports as the image's base), and writes the
# tests' containers.conf and storage.conf (scripts/lib/containers-env.sh).
# The tests build the image themselves (scripts/build-image.sh, cached). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) == 0 ]] || { echo "setup-runtimes: run as root" >&2; exit 1; }
missing=()
for tool in buildah podman containerd; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
# podman kube play builds its pod's pause image around catatonit (a Recommends only)
command -v catatonit >/dev/null || missing+=(catatonit)
if ((${#missing[@]} > 0)); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # --no-install-recommends: only what the tests use (runc: crun refuses this
  # host's hybrid cgroups; no fuse-overlayfs or dbus, native overlay and cgroupfs).
  apt-get install -y -q --no-install-recommends buildah podman containerd runc conmon \
    catatonit netavark aardvark-dns slirp4netns uidmap >/dev/null
fi
bash scripts/lib/containers-env.sh >/dev/null
echo "setup-runtimes: $(podman --version), $(buildah --version | cut -d' ' -f1-3), $(containerd --version | cut -d' ' -f3)" >&2
