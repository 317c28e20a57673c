#!/usr/bin/env bash
# `npm run demo`: install what is missing, build, then run weft's demo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
ensure_debian_packages
ensure_node_modules
ensure_build
exec node bin/weft demo "$@"
