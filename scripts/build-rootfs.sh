#!/usr/bin/env bash
# Builds the root filesystem of the runc end-to-end test the way Dockerfile.example
# builds an image: Debian 13 ("trixie", minbase) made by debootstrap from the Debian
# mirror this machine's apt sources use (read at run time), `apt-get install criu`
# inside it (with a JRE and python3 for the apps of the fresh-container tests), then
# dist/stasis as /usr/local/bin/stasis and the test apps under /app (counter.sh,
# Tick.class compiled by the host's javac, the Python fixtures).
#
# The Debian part is cached in .cache/rootfs/ and reused while its tag matches;
# stasis and the app are copied in again on every run (cheap), so a rebuilt
# dist/stasis is always the one tested. The last line of stdout is the rootfs path.
#
# Needs root, debootstrap and the network to the Debian mirror (first run only).
# Environment (optional): DEBIAN_MIRROR (mirror URI instead of the machine's),
# STASIS_ROOTFS_REBUILD=1 (ignore the cache), STASIS_ROOTFS_BASE_ONLY=1 (only the
# cached Debian part, e.g. in CI before dist/stasis is built).
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd -- "$here/.." && pwd -P)
# shellcheck source=lib/debian-mirror.sh
. "$here/lib/debian-mirror.sh"

SUITE=trixie
CACHE="$repo/.cache/rootfs"
ROOTFS="$CACHE/debian13"
STAMP="$ROOTFS/.stasis-rootfs"
# Change when the recipe below changes: a cached rootfs with another tag is rebuilt.
PACKAGES="criu libatomic1 default-jre-headless python3"
TAG="rootfs v3: debootstrap --variant=minbase $SUITE; apt-get install --no-install-recommends $PACKAGES"
STASIS="$repo/dist/stasis"
FIXTURES="$repo/test/fixtures"

log() { printf 'build-rootfs: %s\n' "$*" >&2; }
die() { printf 'build-rootfs: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot)"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

# Values of apt options as the machine's own apt has them (e.g. a snapshot mirror
# whose Release files have expired needs Check-Valid-Until=false there too).
host_apt_options() {
  local name value
  for name in Acquire::Check-Valid-Until Acquire::Check-Date; do
    value=$(apt-config dump "$name" 2>/dev/null | sed -n "s/^$name \"\(.*\)\";$/\1/p" | head -n1)
    [[ -n "$value" ]] && printf -- '-o\n%s=%s\n' "$name" "$value"
  done
  return 0
}

build_base() {
  command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install debootstrap (see scripts/setup-runc.sh)"
  local mirror new="$CACHE/debian13.new" started=$SECONDS
  mirror=$(debian_mirror) || die "no Debian mirror in /etc/apt/sources.list.d/*.sources or sources.list; set DEBIAN_MIRROR"
  log "debootstrap $SUITE (minbase) from the machine's Debian mirror into $new"
  rm -rf "$new"
  if ! debootstrap --variant=minbase "$SUITE" "$new" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
    tail -n 30 "$CACHE/debootstrap.log" >&2
    die "debootstrap failed (full log: $CACHE/debootstrap.log)"
  fi
  log "apt-get install $PACKAGES inside the rootfs"
  local -a options
  mapfile -t options < <(host_apt_options)
  # A private mount namespace: /proc for apt inside the chroot vanishes with it.
  unshare --mount --propagation private -- sh -euc '
    root=$1; packages=$2; shift 2
    mount -t proc proc "$root/proc"
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -q "$@" update
    chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -q -y --no-install-recommends "$@" install $packages
    chroot "$root" apt-get clean
  ' sh "$new" "$PACKAGES" "${options[@]}" >"$CACHE/apt.log" 2>&1 || {
    tail -n 30 "$CACHE/apt.log" >&2
    die "apt-get install $PACKAGES inside the rootfs failed (full log: $CACHE/apt.log)"
  }
  rm -rf "$new/var/lib/apt/lists/"* "$new/etc/resolv.conf"
  : >"$new/etc/resolv.conf"
  chroot "$new" criu --version >/dev/null || die "criu does not run inside the new rootfs"
  printf '%s\n' "$TAG" >"$new/.stasis-rootfs"
  rm -rf "$ROOTFS"
  mv "$new" "$ROOTFS"
  log "rootfs ready in $((SECONDS - started)) s: $(chroot "$ROOTFS" criu --version | head -n1)"
}

if [[ "${STASIS_ROOTFS_REBUILD:-}" == 1 || ! -f "$STAMP" || "$(cat "$STAMP")" != "$TAG" ]]; then
  build_base
else
  log "cached Debian 13 rootfs: $ROOTFS"
fi

if [[ "${STASIS_ROOTFS_BASE_ONLY:-}" == 1 ]]; then
  printf '%s\n' "$ROOTFS"
  exit 0
fi

# stasis and the apps, as the Dockerfile's final stage copies them.
[[ -x "$STASIS" ]] || die "$STASIS is missing: run npm run build first (the Debian part is cached already)"
command -v javac >/dev/null || die "javac is missing (Tick.class for the JVM test): apt-get install default-jdk-headless (scripts/setup-runc.sh does)"
install -D -m 0755 "$STASIS" "$ROOTFS/usr/local/bin/stasis.new"
mv -f "$ROOTFS/usr/local/bin/stasis.new" "$ROOTFS/usr/local/bin/stasis"
install -D -m 0755 "$FIXTURES/counter.sh" "$ROOTFS/app/counter.sh"
install -m 0755 "$FIXTURES/ghost-counter.sh" "$ROOTFS/app/"
for app in "$FIXTURES"/*.py; do install -m 0755 "$app" "$ROOTFS/app/"; done
# As Dockerfile.example does for non-root pods: criu gets its two capabilities as file
# capabilities (ignored for root, and under no_new_privs).
setcap cap_checkpoint_restore,cap_sys_ptrace,cap_setpcap+eip "$ROOTFS/usr/sbin/criu"
# The rootfs's JRE may be newer than the host's javac, never older: compile for 17.
if [[ ! -f "$ROOTFS/app/Tick.class" || "$FIXTURES/Tick.java" -nt "$ROOTFS/app/Tick.class" ]]; then
  javac --release 17 -d "$ROOTFS/app" "$FIXTURES/Tick.java"
fi
printf '%s\n' "$ROOTFS"
