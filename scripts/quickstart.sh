#!/usr/bin/env bash
# The main job on a fresh machine: install everything, start OpenSearch and the sidecar,
# index the demo corpus, and answer one search through the sidecar.
#   scripts/quickstart.sh ["query text"]   run it (services stay up afterwards)
#   scripts/quickstart.sh stop             stop the sidecar and OpenSearch
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export OPENSEARCH_PORT=${OPENSEARCH_PORT:-9200}
export RESCORE_PORT=${RESCORE_PORT:-8080}
export RESCORE_OPENSEARCH_URL=${RESCORE_OPENSEARCH_URL:-http://127.0.0.1:$OPENSEARCH_PORT}
# The demo's rerank policy: searches on the demo index are reranked without asking (README "Rerank policies").
export RESCORE_POLICIES_FILE=${RESCORE_POLICIES_FILE-$root/demo/policies.yaml}
run_dir=${RESCORE_RUN_DIR:-/tmp/rescore-sidecar-$RESCORE_PORT}
pidfile=$run_dir/gunicorn.pid

stop_sidecar() {
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$pidfile"
}

if [ "${1:-}" = "stop" ]; then
  stop_sidecar
  bash scripts/opensearch.sh stop
  exit 0
fi

venv=$(bash scripts/setup_env.sh)
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
bash scripts/opensearch.sh start
"$venv/bin/python" scripts/ingest.py demo --index demo --recreate

stop_sidecar
mkdir -p "$run_dir"
echo "quickstart: starting sidecar on 127.0.0.1:$RESCORE_PORT (log: $run_dir/sidecar.log)" >&2
"$venv/bin/gunicorn" -c sidecar/gunicorn.conf.py --pid "$pidfile" --daemon \
  --error-logfile "$run_dir/sidecar.log" --access-logfile "$run_dir/access.log" sidecar.wsgi:app
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$RESCORE_PORT/health" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$RESCORE_PORT/ready" >&2 || { tail -n 40 "$run_dir/sidecar.log" >&2; exit 1; }
echo >&2
"$venv/bin/python" scripts/demo_query.py --sidecar "http://127.0.0.1:$RESCORE_PORT" --index demo ${1:+"$1"}
echo "quickstart: OpenSearch on :$OPENSEARCH_PORT and the sidecar on :$RESCORE_PORT are still running; stop them with: bash scripts/quickstart.sh stop" >&2
