#!/usr/bin/env bash
# Installs what retort needs from Debian and PyPI on a fresh machine: the C toolchain
# for llama.cpp (cmake, clang, libclang), Chromium for the report's browser test, and
# pyarrow for the Parquet consumer checks. Safe to run again: it skips what is present.
set -euo pipefail

need=()
for pkg in cmake clang libclang-dev chromium pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "==> apt-get install ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! python3 -c "import pyarrow" >/dev/null 2>&1; then
  echo "==> pip install pyarrow"
  python3 -m pip install -q pyarrow
fi
