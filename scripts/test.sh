#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: Python deps, OpenSearch from Maven Central, pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k proxy).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=$(bash scripts/setup_env.sh)
bash scripts/opensearch.sh install
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$venv/bin/python" -m pytest -q "$@"
