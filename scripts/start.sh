#!/usr/bin/env bash
# Starts the demo target from a fresh machine: `bash scripts/start.sh`.
# Serves examples/demo.yaml: a 256 MiB RAM disk as LUN 0 of iqn.2026-11.io.spindle:demo
# on 127.0.0.1:3260. Extra arguments are passed on, e.g. `bash scripts/start.sh --pretty`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Same staleness rule as scripts/test.sh.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund
fi

# exec: signals (Ctrl-C, SIGTERM from a supervisor) go straight to npm and on to spindle.
if [ "$#" -gt 0 ]; then exec npm start -- "$@"; else exec npm start; fi
