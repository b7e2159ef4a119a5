#!/usr/bin/env bash
# The production model path on a GPU, in one command for the device machine (no network there).
#
#   bash scripts/gpu_check.sh             # on a CUDA machine: tests/backends/test_gpu.py, then
#                                         # bench on the real Qwen3-8B config with random weights
#   bash scripts/gpu_check.sh --dry-run   # the same steps on the CPU with the tiny random Qwen3 (CI)
#
# Packages the device machine lacks travel as wheels in .whl/ (made here by scripts/gpu_wheels.sh)
# and are installed into a private target directory. The machine's own torch and transformers
# (5.x there) are used: the torch/quanto backends support transformers 4.57 and 5.x.
# Writes to $OUT (default ./gpu-check-out): gpu_check.log, env.json, test_gpu.xml, bench_gpu.json,
# summary.json. Each step has its own time limit; the whole run stays under 8 minutes.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dry_run=0
case "${1:-}" in
  --dry-run) dry_run=1 ;;
  "") ;;
  *) echo "usage: bash scripts/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
out=${OUT:-$root/gpu-check-out}
mkdir -p "$out"
python=${PYTHON:-python3}
log="$out/gpu_check.log"
: > "$log"
say() { echo "[gpu_check] $*" | tee -a "$log" >&2; }
started=$(date +%s)

if compgen -G "$root/.whl/*.whl" >/dev/null; then
  site=${RESCORE_GPU_SITE:-/tmp/rescore-gpu-site}
  say "installing carried wheels from .whl/ into $site"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$root"/.whl/*.whl >>"$log" 2>&1 || { say "ERROR: could not install the carried wheels"; exit 1; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if (( dry_run )); then
  export RESCORE_GPU_CHECK_DEVICE=cpu
  bench_args=(--device cuda --dry-run)
  tests_limit=300 bench_limit=300
else
  bench_args=(--device cuda --arch qwen3-8b --random-weights)
  tests_limit=150 bench_limit=330
fi

"$python" - "$out/env.json" "$dry_run" >>"$log" 2>&1 <<'PY' || { say "ERROR: the Python environment is not usable (see gpu_check.log)"; exit 1; }
import json, platform, sys
import torch, transformers
import optimum.quanto  # noqa: F401  (fails here, not later, when the quanto wheel did not travel)
from sidecar.rerank.random_models import qwen_tokenizer_dir
info = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "cuda": torch.version.cuda, "dry_run": sys.argv[2] == "1", "qwen_tokenizer": str(qwen_tokenizer_dir())}
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    info.update(gpu=props.name, capability=list(torch.cuda.get_device_capability(0)),
                gpu_memory_gb=round(props.total_memory / 2**30, 1))
elif sys.argv[2] != "1":
    sys.exit("no CUDA device visible to torch: run with --dry-run on a CPU machine")
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(json.dumps(info))
PY
say "environment: $(cat "$out/env.json" | tr -d '\n ')"

say "step 1/2: tests/backends/test_gpu.py (limit ${tests_limit}s)"
timeout "$tests_limit" "$python" -m pytest -q -p no:cacheprovider tests/backends/test_gpu.py \
  --junitxml "$out/test_gpu.xml" >>"$log" 2>&1
tests_rc=$?
say "tests exit code $tests_rc"

say "step 2/2: rescore bench ${bench_args[*]} (limit ${bench_limit}s)"
timeout "$bench_limit" "$python" -m sidecar bench "${bench_args[@]}" --json "$out/bench_gpu.json" >>"$log" 2>&1
bench_rc=$?
say "bench exit code $bench_rc"

"$python" - "$out" "$tests_rc" "$bench_rc" "$(( $(date +%s) - started ))" <<'PY' | tee -a "$log"
import json, sys
from pathlib import Path
out, tests_rc, bench_rc, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
records = json.loads((out / "bench_gpu.json").read_text()) if (out / "bench_gpu.json").is_file() else []
summary = {"tests_rc": tests_rc, "bench_rc": bench_rc, "seconds": seconds, "records": len(records),
           "engines": sorted({r["engine"] for r in records})}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary))
PY
(( tests_rc == 0 && bench_rc == 0 ))
