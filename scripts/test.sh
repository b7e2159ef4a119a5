#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: Python deps, OpenSearch and Elasticsearch from Maven Central, pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k proxy).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=$(bash scripts/setup_env.sh)
bash scripts/opensearch.sh install
bash scripts/elasticsearch.sh install
# Debian packages the tests run as real processes; nothing is downloaded at run time:
# chromium + chromium-driver (tests/e2e browser test), nginx (tests/integration/test_serving.py: the
# buffering proxy in front of gunicorn), redis-server (tests/integration/test_shared_cache.py).
need_packages=()
{ command -v chromium && command -v chromedriver; } >/dev/null || need_packages+=(chromium chromium-driver)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_packages+=(nginx)
command -v redis-server >/dev/null || need_packages+=(redis-server)
if (( ${#need_packages[@]} )); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test: installing ${need_packages[*]} with apt-get" >&2
  if ! { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}"; } >&2; then
    echo "test: ERROR: could not install ${need_packages[*]}; the tests need them" >&2
    exit 1
  fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$venv/bin/python" -m pytest -q "$@"
