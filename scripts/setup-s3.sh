#!/usr/bin/env bash
# Prepares a Debian 12 machine (CI, a developer's) for the object-storage tests
# (test/e2e/store*.test.ts): installs Ceph's monitor, OSD and RADOS Gateway (S3) from
# Debian, without recommends; nothing is started or enabled here. The tests start a
# one-node cluster of their own on loopback with scripts/s3-cluster.sh. Idempotent.
set -euo pipefail

[[ $(id -u) == 0 ]] || { echo "setup-s3: run as root" >&2; exit 1; }
missing=()
command -v ceph-mon >/dev/null || missing+=(ceph-mon)
command -v ceph-osd >/dev/null || missing+=(ceph-osd)
command -v radosgw >/dev/null || missing+=(radosgw)
command -v ceph >/dev/null || missing+=(ceph-common)
command -v python3 >/dev/null || missing+=(python3-minimal) # s3-cluster.sh picks free ports with it
if ((${#missing[@]} > 0)); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "setup-s3: $(radosgw --version | head -n1)" >&2
