#!/bin/bash -eu
# SPDX-License-Identifier: MIT
# Builds every fuzz/fuzz_*.cc with the OSS-Fuzz conventions: $CXX, $CXXFLAGS (the chosen
# sanitizer and coverage flags), $LIB_FUZZING_ENGINE (the engine's link flags), results in
# $OUT: each target, its seed corpus as <target>_seed_corpus.zip (corpus/<target> and the
# regression inputs), its dictionary and its .options. Also runs outside the image, e.g.
#   CXX=clang++-19 CXXFLAGS="-fsanitize=address,fuzzer-no-link" \
#   LIB_FUZZING_ENGINE=-fsanitize=fuzzer SRC=$PWD OUT=/tmp/out bash .clusterfuzzlite/build.sh
src=${SRC}/blkcg-torture
[ -f "$src/CMakeLists.txt" ] || src=${SRC}
work=${WORK:-/tmp}/blkcg-torture-build
cmake -S "$src" -B "$work" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_CXX_FLAGS="$CXXFLAGS" \
  -DBLKCG_FUZZ_ENGINE=external -DBLKCG_LIB_FUZZING_ENGINE="$LIB_FUZZING_ENGINE" \
  -DBLKCG_BUILD_TESTS=OFF -DBLKCG_BUILD_STRESS=OFF
cmake --build "$work" -j "$(nproc)"
mkdir -p "$OUT"
for bin in "$work"/fuzz/fuzz_*; do
  t=$(basename "$bin")
  cp "$bin" "$OUT/$t"
  cp "$src/fuzz/$t.dict" "$OUT/$t.dict"
  cp "$src/fuzz/$t.options" "$OUT/$t.options"
  rm -f "$OUT/${t}_seed_corpus.zip"
  inputs=()
  for d in "$src/corpus/$t" "$src/corpus/regressions/$t"; do
    [ -d "$d" ] && for f in "$d"/*; do [ -f "$f" ] && inputs+=("$f"); done
  done
  if [ ${#inputs[@]} -gt 0 ]; then
    if command -v zip >/dev/null; then
      zip -q -j "$OUT/${t}_seed_corpus.zip" "${inputs[@]}"
    else
      python3 -c 'import sys, zipfile, os
with zipfile.ZipFile(sys.argv[1], "w") as z:
    [z.write(f, os.path.basename(f)) for f in sys.argv[2:]]' "$OUT/${t}_seed_corpus.zip" "${inputs[@]}"
    fi
  fi
done
