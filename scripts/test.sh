#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: `bash scripts/test.sh`.
#   1. Debian packages the integration tests talk to (scripts/install-deps.sh)
#   2. npm install from the lock, when node_modules is missing or stale (always when CI=true)
#   3. typecheck, lint, then vitest (unit + integration)
# Set SPINDLE_CHECK_FORMAT=1 to also run `prettier --check` over the tree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh

# Install from package-lock.json, only when needed. `npm install`, not `npm ci`: the
# registry these machines reach serves only the Linux builds of some optional native
# packages (msgpackr-extract), so npm cannot record the others in the lock and `npm ci`
# refuses every lock as out of sync; `npm install` with the lock installs the same
# pinned versions. When needed: npm records what it installed in
# node_modules/.package-lock.json; a package-lock.json newer than that (changed by a pull or
# checkout) means node_modules is stale.
if [ "${CI:-}" = "true" ] || [ ! -f node_modules/.package-lock.json ] ||
  [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund
fi

# npm scripts run with node_modules/.bin first on PATH, so these use the pinned Node 26
# even though the system node is older.
npm run --silent typecheck
echo "test.sh: typecheck ok"
npm run --silent lint
echo "test.sh: lint ok"
if [ "${SPINDLE_CHECK_FORMAT:-0}" = "1" ]; then
  npm run --silent format:check
  echo "test.sh: format ok"
fi
npm test
