#!/usr/bin/env bash
# Runs every test from nothing: npm packages, the native addon, TypeScript and
# single-executable build, CRIU (scripts/install-criu.sh: Debian 13's 4.1.1, and
# sid's >= 4.2 for the TCP tests, both unpacked into .cache), runc, debootstrap
# and the cached Debian 13 rootfs for the runc test (scripts/setup-runc.sh),
# buildah, podman and containerd for the image tests (scripts/setup-runtimes.sh), then
# vitest with bin/stasis, the end-to-end tests once more against the single
# executable dist/stasis, the preStop stress test (test/stress), and the
# benchmark's smoke variant (so the bench scripts
# cannot rot; it installs tini, dumb-init and hyperfine with apt-get when
# missing). Needs root. Arguments go to the first vitest run.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
npm run build
npm run typecheck # src, test and bench
scripts/install-criu.sh >/dev/null
CRIU_DEBIAN_SUITE=sid CRIU_CACHE=.cache/criu-sid CRIU_MIN_VERSION=4.2 scripts/install-criu.sh >/dev/null
scripts/setup-runc.sh
scripts/setup-runtimes.sh # buildah, podman, containerd for the image tests
scripts/setup-s3.sh # Ceph (mon, osd, radosgw) for the object-storage tests
export PATH="$PWD/node_modules/.bin:$PATH" # node and vitest: the pinned Node 26
vitest run --project unit --project e2e "$@"
# runc (store-runc too), podman and containerd tests always run dist/stasis inside their containers; no need to repeat them.
STASIS_BIN=dist/stasis vitest run --project e2e --exclude test/e2e/runc.test.ts --exclude test/e2e/store-runc.test.ts \
  --exclude test/e2e/podman.test.ts --exclude test/e2e/containerd.test.ts
# Alone: it keeps both CPUs busy while 200 preStop hooks run under runc (about 2 minutes).
vitest run --project stress
npm run bench:smoke
