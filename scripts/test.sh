#!/usr/bin/env bash
# Runs every test from nothing: npm packages, the native addon, TypeScript and
# single-executable build, CRIU (scripts/install-criu.sh), then vitest and the
# benchmark's smoke variant (so the bench scripts cannot rot; it installs tini,
# dumb-init and hyperfine with apt-get when missing). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
npm run build
scripts/install-criu.sh >/dev/null
PATH="$PWD/node_modules/.bin:$PATH" vitest run "$@"
npm run bench:smoke
