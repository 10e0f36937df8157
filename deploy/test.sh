#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (CTest labels: unit, sim, integration,
# nemesis, and fuzz in a clang build of its own, build-fuzz: see fuzz/CMakeLists.txt). The main
# build also checks the libraries' layering and, with clang, their locks (-Wthread-safety):
# see cmake/.
# Exits non-zero on any failure.
#   deploy/test.sh                  everything
#   deploy/test.sh -L unit          one group of the main build (any ctest arguments pass through)
#   deploy/test.sh -L fuzz          only the fuzz targets
#   SKEP_SIM_SEEDS=20000 deploy/test.sh -L sim     a longer simulator soak
set -euo pipefail
cd "$(dirname "$0")/.."

main=1
fuzz=1
if [ $# -gt 0 ]; then
  if [ "$*" = "-L fuzz" ]; then main=0; else fuzz=0; fi
fi

deploy/install-deps.sh
status=0
if [ "$main" = 1 ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j2
  (cd build && ctest --output-on-failure -j2 "$@") || status=1
fi
if [ "$fuzz" = 1 ]; then
  # Builds only the fuzz targets and what they link, with libFuzzer, ASan and UBSan.
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DSKEP_FUZZ=ON >/dev/null
  cmake --build build-fuzz -j2
  (cd build-fuzz && ctest --output-on-failure -j2 -L fuzz) || status=1
fi
exit "$status"
