#!/usr/bin/env bash
# Runs every test from nothing: npm packages, the native addon and TypeScript
# build, CRIU (scripts/install-criu.sh), then vitest. Needs root (namespaces, criu).
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
npm run build
scripts/install-criu.sh >/dev/null
PATH="$PWD/node_modules/.bin:$PATH" vitest run "$@"
