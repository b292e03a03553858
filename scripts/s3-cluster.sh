#!/usr/bin/env bash
# A throw-away one-node Ceph cluster that answers S3 on loopback, for the tests:
#   s3-cluster.sh start DIR ACCESS_KEY SECRET_KEY   prints the endpoint, http://127.0.0.1:PORT
#   s3-cluster.sh stop DIR
#   s3-cluster.sh gateway-kill DIR     (SIGKILL radosgw only: a server dying mid-request)
#   s3-cluster.sh gateway-start DIR
# start: one ceph-mon, one ceph-osd with a memstore object store (data in RAM), one
# radosgw (beast on a free loopback port) and an S3 user with the given keys; the OSD holds
# at most S3_CLUSTER_MEMSTORE_BYTES (default 2 GiB) in RAM. Everything
# (config, keyrings, data, logs, sockets, pid files) lives in DIR; nothing in /etc/ceph
# and no systemd. stop: SIGTERM to every daemon whose pid file is in DIR, SIGKILL to
# what is still there after 2 s (the data is thrown away anyway). Settings: ../shared/docs/s3-facts.md (issue 13).
set -euo pipefail

stop() {
  local dir=$1 pid file pids=()
  for file in "$dir"/run/*.pid; do
    [[ -f $file ]] || continue
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); }
  done
  for _ in $(seq 20); do
    local alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]} == 0)) && return 0
    pids=("${alive[@]}")
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

# A port nothing listens on now (the kernel's pick for an ephemeral bind).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

gateway_start() {
  local dir=$1 s3_port
  s3_port=$(<"$dir/s3-port")
  radosgw -c "$dir/ceph.conf" -n client.rgw.a
  for _ in $(seq 600); do
    curl -s -o /dev/null "http://127.0.0.1:$s3_port/" && return 0
    sleep 0.1
  done
  echo "s3-cluster: radosgw does not answer on 127.0.0.1:$s3_port (logs in $dir/log)" >&2
  return 1
}

gateway_kill() {
  local file=$1/run/client.rgw.a.pid pid
  pid=$(<"$file")
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$file"
}

start() {
  local dir=$1 access=$2 secret=$3
  local fsid conf="$dir/ceph.conf" s3_port mon_port
  fsid=$(cat /proc/sys/kernel/random/uuid)
  mkdir -p "$dir"/{mon,osd.0,run,log,rgw}
  s3_port=$(free_port)
  mon_port=$(free_port)
  echo "$s3_port" >"$dir/s3-port"
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon initial members = a
mon host = v2:127.0.0.1:$mon_port
ms bind msgr1 = false
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
mon data = $dir/mon
osd data = $dir/osd.\$id
osd objectstore = memstore
memstore device bytes = ${S3_CLUSTER_MEMSTORE_BYTES:-2147483648}
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
auth allow insecure global id reclaim = false
[mon]
paxos propose interval = 0.05
keyring = $dir/mon/keyring
[osd]
keyring = $dir/osd.\$id/keyring
[client]
keyring = $dir/admin.keyring
[client.rgw.a]
keyring = $dir/rgw/keyring
rgw data = $dir/rgw
rgw frontends = beast endpoint=127.0.0.1:$s3_port
rgw dns name = localhost
rgw gc obj min wait = 30
rgw gc processor period = 30
CONF
  ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/admin.keyring" >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring"
  ceph-mon -c "$conf" -i a

  local osd_uuid key id
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  key=$(ceph-authtool --gen-print-key)
  id=$(printf '{"cephx_secret": "%s"}' "$key" | ceph -c "$conf" osd new "$osd_uuid" -i -)
  [[ $id == 0 ]] || { echo "s3-cluster: expected osd id 0, got $id" >&2; exit 1; }
  ceph-authtool --create-keyring "$dir/osd.0/keyring" --name osd.0 --add-key "$key" >/dev/null
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>"$dir/log/osd-mkfs.err" >/dev/null
  ceph-osd -c "$conf" -i 0 2>>"$dir/log/osd-start.err"

  ceph -c "$conf" auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' -o "$dir/rgw/keyring"
  gateway_start "$dir"
  radosgw-admin -c "$conf" user create --uid=stasis --display-name=stasis \
    --access-key="$access" --secret-key="$secret" >/dev/null
  echo "http://127.0.0.1:$s3_port"
}

case "${1:-}" in
  start)
    (($# == 4)) || { echo "usage: $0 start DIR ACCESS_KEY SECRET_KEY" >&2; exit 64; }
    # a half-started cluster is stopped again: the caller gets an error and no daemons
    trap 'stop "$2"' ERR
    start "$2" "$3" "$4"
    ;;
  stop)
    (($# == 2)) || { echo "usage: $0 stop DIR" >&2; exit 64; }
    stop "$2"
    ;;
  gateway-kill)
    gateway_kill "$2"
    ;;
  gateway-start)
    gateway_start "$2"
    ;;
  *)
    echo "usage: $0 start DIR ACCESS_KEY SECRET_KEY | stop DIR | gateway-kill DIR | gateway-start DIR" >&2
    exit 64
    ;;
esac
