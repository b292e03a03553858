#!/usr/bin/env bash
# N consecutive migrations of the counter between runc containers (default 100):
# the runc end-to-end test's migration loop with a bigger count. Prints the time
# taken. Needs what test/e2e/runc.test.ts needs (root, scripts/setup-runc.sh, npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
STASIS_RUNC_MIGRATIONS=$n npx vitest run test/e2e/runc.test.ts -t "$n consecutive migrations" 2>&1 | grep -E "runc: [0-9]+ migrations|✓|×|Tests|Error" 
