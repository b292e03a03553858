#!/usr/bin/env bash
# Demo: a counter app under stasis as PID 1 of a new PID namespace ("container 1")
# is dumped on SIGUSR2 and restored in container 2, whose fresh pipes receive the
# rest of its output; then once more into container 3. Needs root (unshare, criu).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

[ -d node_modules ] || npm ci --no-audit --no-fund
[ -f build/Release/stasis.node ] && [ -f dist/js/main.js ] || npm run build
criu=$(scripts/install-criu.sh | tail -1)

work=$(mktemp -d /tmp/stasis-demo.XXXXXX)
trap 'pkill -P $$ sleep 2>/dev/null; rm -rf "$work"' EXIT
export STASIS_DIR="$work/checkpoints" STASIS_CRIU="$criu" STASIS_LOG_FORMAT=json

# Starts a "container": stasis as PID 1 of new PID and mount namespaces, its
# stdin, stdout and stderr anonymous pipes (as a container runtime gives them).
container() {
  local n=$1
  (
    { STASIS_DEMO_CONTAINER=$n unshare --pid --fork --mount-proc "$root/bin/stasis" -- "$root/test/fixtures/counter.sh"; } \
      < <(exec sleep 3600 2>/dev/null) > >(exec cat > "$work/out$n") 2> >(exec cat > "$work/err$n")
    rc=$?
    pkill -P "$BASHPID" -x sleep
    exit "$rc"
  ) &
  container_pid=$!
}

# Host PID of container N's stasis: the process that is PID 1 of its namespace.
stasis_pid() {
  local status
  for _ in $(seq 200); do
    for status in /proc/[0-9]*/status; do
      grep -qE '^NSpid:.*[[:space:]]1$' "$status" 2>/dev/null || continue
      { tr '\0' '\n' < "${status%/status}/environ"; } 2>/dev/null | grep -qx "STASIS_DEMO_CONTAINER=$1" || continue
      basename "${status%/status}"
      return
    done
    sleep 0.05
  done
  echo "stasis did not start" >&2
  exit 1
}

event() { grep -h "\"msg\":\"$2\"" "$work/err$1" | tail -1; }
field() { sed -n "s/.*\"$1\":\\([^,}]*\\).*/\\1/p"; }

for n in 1 2 3; do
  container "$n"
  pid=$(stasis_pid "$n")
  sleep 1.5
  echo "== container $n: stasis is PID 1 (host PID $pid)"
  [ "$n" = 1 ] || echo "   restored generation $(event "$n" restored | field generation) in $(event "$n" restored | field duration_ms) ms; first line in this container's pipe: $(head -n 1 "$work/out$n")"
  echo "   last output lines:"
  tail -n 2 "$work/out$n" | sed 's/^/   stdout: /'
  [ "$n" = 3 ] && break
  kill -USR2 "$pid"
  wait "$container_pid" || true
  sleep 0.2
  dump=$(event "$n" "dump committed")
  echo "   dumped: generation $(echo "$dump" | field generation), $(echo "$dump" | field duration_ms) ms," \
       "$(( $(echo "$dump" | field bytes) / 1024 )) KiB of images; last line before the dump: $(tail -n 1 "$work/out$n")"
done
kill -TERM "$pid"; wait "$container_pid" && code=0 || code=$?
echo "== SIGTERM to stasis: exit status $code (143 = 128 + SIGTERM)"
