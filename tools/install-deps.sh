#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages blkcg-torture needs, only those that are missing.
set -euo pipefail

packages=(cmake ninja-build clang-19 libclang-rt-19-dev llvm-19
          clang-14 libclang-rt-14-dev llvm-14 lld-14
          afl++ librapidcheck-dev libgtest-dev libgmock-dev libbenchmark-dev ccache
          python3 git)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
