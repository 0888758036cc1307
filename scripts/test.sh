#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, typecheck, lint,
# format check, build, unit and end-to-end tests (root: real namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run --silent typecheck
npm run --silent lint
npm run --silent format:check
node scripts/run-tests.mjs
