#!/usr/bin/env bash
# Installs what retort needs from Debian and PyPI on a fresh machine: the C toolchain
# for llama.cpp (cmake, clang, libclang), Chromium for the report's browser test, and
# the Python packages of the export consumer checks (pyarrow; TRL's dataset helpers with
# datasets, transformers and tokenizers). Safe to run again: it skips what is present.
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

# TRL's dataset helpers (trl.data_utils) need no torch, but TRL's own requirements pull
# it in through accelerate; so TRL goes in without its dependencies, after the ones
# trl.data_utils imports. The pin is the version the checks were written against.
# huggingface_hub (and pyyaml) are also what the dataset-card and `retort push` checks
# use: tests/consumer/check_card.py and hub_upload.py, the official client against the
# Hub stand-in.
if ! python3 -c "import datasets, huggingface_hub, yaml, tokenizers, transformers, trl.data_utils" >/dev/null 2>&1; then
  echo "==> pip install datasets transformers tokenizers, then trl without dependencies"
  python3 -m pip install -q "datasets>=4.7" "transformers>=4.56.2" tokenizers jinja2 \
    "pandas>=2.1.1" "pyyaml>=6.0.1" packaging "huggingface_hub>=0.34"
  python3 -m pip install -q --no-deps "trl==1.16.0"
fi
