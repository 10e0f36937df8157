#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (CTest labels: unit, sim, integration).
# Exits non-zero on any failure.
#   deploy/test.sh                  everything
#   deploy/test.sh -L unit          one group (any ctest arguments pass through)
#   SKEP_SIM_SEEDS=20000 deploy/test.sh -L sim     a longer simulator soak
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
cd build
ctest --output-on-failure -j2 "$@"
