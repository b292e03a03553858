# Sourced (or run) by everything that drives podman or buildah for stasis: writes a
# containers.conf and a storage.conf of our own and exports CONTAINERS_CONF and
# CONTAINERS_STORAGE_CONF, so podman and buildah work on this kind of host and never
# touch the machine's own container storage:
#   - runtime "runc": crun refuses hybrid cgroups (v1 + a v2 mount), runc does not;
#   - cgroupfs and a file events log: no systemd;
#   - default_ulimits within what root may set here (no CAP_SYS_RESOURCE: podman's
#     own 1048576 fails, and conmon's nproc hard limit is 32768);
#   - k8s-file logs (podman logs works without journald);
#   - native overlay storage under STASIS_CONTAINERS_DIR (default
#     /var/tmp/stasis-containers), run state under /run/stasis-containers.
# CONTAINERS_CONF replaces the packaged containers.conf, so the default capability
# set is podman's built-in one; the tests always give the exact set they want.
#
# Run as a program, it prints the variables as KEY=VALUE lines (what the tests read);
# with --cleanup, it removes every container of that storage (podman's and buildah's
# working containers) and unmounts whatever of it is still mounted.

stasis_containers_env() {
  local dir=${STASIS_CONTAINERS_DIR:-/var/tmp/stasis-containers}
  local run=${STASIS_CONTAINERS_RUN:-/run/stasis-containers}
  mkdir -p "$dir/conf" "$run"
  cat >"$dir/conf/containers.conf.$$" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$run/events.log"
tmp_dir = "$run/libpod"
CONF
  cat >"$dir/conf/storage.conf.$$" <<CONF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$run/storage"
CONF
  mv -f "$dir/conf/containers.conf.$$" "$dir/conf/containers.conf"
  mv -f "$dir/conf/storage.conf.$$" "$dir/conf/storage.conf"
  export CONTAINERS_CONF="$dir/conf/containers.conf"
  export CONTAINERS_STORAGE_CONF="$dir/conf/storage.conf"
  export STASIS_CONTAINERS_DIR="$dir"
}

stasis_containers_cleanup() {
  podman container rm --all --force --time 0 >/dev/null 2>&1 || true
  buildah rm --all >/dev/null 2>&1 || true
  podman unmount --all >/dev/null 2>&1 || true
  # containers/storage mounts its overlay folder on itself; the last one out unmounts it.
  local mount
  while read -r mount; do umount "$mount" 2>/dev/null || umount -l "$mount" || true; done < <(
    awk -v root="$STASIS_CONTAINERS_DIR/storage" 'index($5, root) == 1 { print $5 }' /proc/self/mountinfo | sort -r
  )
}

stasis_containers_env
if [[ "${BASH_SOURCE[0]}" == "$0" && "${1:-}" == --cleanup ]]; then
  # not while scripts/build-image.sh works in the same storage
  exec 9>"$STASIS_CONTAINERS_DIR/.lock"
  flock 9
  stasis_containers_cleanup
elif [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  printf '%s=%s\n' CONTAINERS_CONF "$CONTAINERS_CONF" CONTAINERS_STORAGE_CONF "$CONTAINERS_STORAGE_CONF" STASIS_CONTAINERS_DIR "$STASIS_CONTAINERS_DIR"
fi
