#!/usr/bin/env bash
# strata's main job, from a fresh machine: set-up, then the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/bin/strata demo
