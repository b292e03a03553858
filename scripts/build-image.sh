#!/usr/bin/env bash
# Builds the image of Dockerfile.example with buildah, the way CI tests it under podman
# and containerd (test/e2e/podman.test.ts, test/e2e/containerd.test.ts):
#   1. base: no registry is reachable, so `debian:13-slim` is the cached Debian 13
#      rootfs of scripts/build-rootfs.sh (without its stasis, apps and file
#      capabilities), imported as localhost/debian:13-slim, which the Dockerfile's
#      `FROM debian:13-slim` finds with --pull=never;
#   2. `buildah bud --build-arg BINARY_FROM=prebuilt` with the current dist/stasis
#      (its RUN apt-get reaches the machine's Debian mirror over the host network);
#   3. tagged localhost/stasis-example:HASH, HASH over what goes in (Dockerfile,
#      .dockerignore, dist/stasis, the counter app, the base), so a rebuilt
#      dist/stasis makes a new image and an unchanged one is reused at once.
# Prints the image reference as the last stdout line; with --archive, also saves it
# as a docker-archive for `ctr image import` and prints that file's path instead.
# Needs root, buildah and podman (scripts/setup-runtimes.sh), npm run build.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd -- "$here/.." && pwd -P)
# shellcheck source=lib/containers-env.sh
. "$here/lib/containers-env.sh"

BASE=localhost/debian:13-slim
NAME=localhost/stasis-example
DIR=$STASIS_CONTAINERS_DIR

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root"
for tool in buildah podman; do
  command -v "$tool" >/dev/null || die "$tool is not installed: bash scripts/setup-runtimes.sh"
done
[[ -x "$repo/dist/stasis" ]] || die "$repo/dist/stasis is missing: npm run build"
exec 9>"$DIR/.lock"
flock 9
# buildah bud leaves a working container (and its mount) of a stage behind.
trap 'buildah rm --all >/dev/null 2>&1 || true' EXIT

rootfs=$(STASIS_ROOTFS_BASE_ONLY=1 bash "$repo/scripts/build-rootfs.sh" | tail -n1)
base_stamp="$(cat "$rootfs/.stasis-rootfs")"
if [[ "$(cat "$DIR/base.stamp" 2>/dev/null)" != "$base_stamp" ]] || ! podman image exists "$BASE"; then
  log "importing $rootfs as $BASE"
  # build-rootfs.sh also puts stasis, the test apps and criu's file capabilities in
  # there; the base is Debian alone (plain tar keeps ownership, drops xattrs).
  tar -C "$rootfs" --numeric-owner --exclude=./.stasis-rootfs --exclude=./app \
    --exclude=./usr/local/bin/stasis -c . | podman import --quiet - "$BASE" >/dev/null
  printf '%s\n' "$base_stamp" >"$DIR/base.stamp"
fi

hash=$( (
  cd "$repo"
  sha256sum Dockerfile.example .dockerignore dist/stasis test/fixtures/counter.sh
  printf '%s\n' "$base_stamp"
) | sha256sum | cut -c1-16)
image="$NAME:$hash"
if ! podman image exists "$image"; then
  started=$SECONDS
  log "buildah bud -f Dockerfile.example -> $image"
  buildah bud --quiet --pull=never --layers --network host --build-arg BINARY_FROM=prebuilt \
    -f "$repo/Dockerfile.example" -t "$image" "$repo" >"$DIR/build.log" 2>&1 || {
    tail -n 30 "$DIR/build.log" >&2
    die "buildah bud failed (full log: $DIR/build.log)"
  }
  # Older builds of other dist/stasis binaries: one image of 150 MB each otherwise.
  podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$NAME" |
    grep -vxF "$image" | xargs -r podman rmi --force >/dev/null 2>&1 || true
  podman image prune --force >/dev/null 2>&1 || true
  log "built $image in $((SECONDS - started)) s"
fi

if [[ "${1:-}" == --archive ]]; then
  archive="$DIR/stasis-example-$hash.tar"
  if [[ ! -f "$archive" ]]; then
    rm -f "$DIR"/stasis-example-*.tar
    podman save --quiet --format docker-archive -o "$archive.new" "$image"
    mv "$archive.new" "$archive"
  fi
  printf '%s\n' "$archive"
else
  printf '%s\n' "$image"
fi
