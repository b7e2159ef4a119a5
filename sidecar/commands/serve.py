"""Run the sidecar in the foreground: gunicorn with sidecar/gunicorn.conf.py and sidecar.wsgi:app.

Flags override the matching RESCORE_* variables for the server; every other setting is read from
the environment by sidecar/config.py (see README, "Settings").
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from sidecar.commands.common import positive_int
from sidecar.config import ENV_PREFIX, Settings
from sidecar.observability.redact import redact_url
from sidecar.pool_process import gunicorn_argv
from sidecar.rerank.options import BACKENDS

HELP = "run the sidecar under gunicorn (or --check its settings)"
EPILOG = """examples:
  rescore serve                                         # 127.0.0.1:8080, settings from RESCORE_*
  rescore serve --host 0.0.0.0 --port 9000 --workers 2 --opensearch-url https://search:9200
  rescore serve --backend onnx --model Qwen/Qwen3-Reranker-0.6B
  RESCORE_API_KEYS=k1 rescore serve --check             # validate and print settings (secrets masked)

Same as: RESCORE_PORT=9000 ... gunicorn -c sidecar/gunicorn.conf.py sidecar.wsgi:app
Exit status of --check: 0 valid, 2 invalid (the message names the variable)."""

# Flag (argparse dest) -> Settings / RerankerOptions field; the variable is RESCORE_<FIELD>.
FLAG_FIELDS = ("host", "port", "workers", "opensearch_url", "backend", "model")


def port_number(text: str) -> int:
    """argparse type: a TCP port."""
    port = positive_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"must be in 1..65535, got {port}")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (RESCORE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, help="bind port (RESCORE_PORT, default 8080)")
    parser.add_argument("--workers", type=positive_int,
                        help="gunicorn worker processes, one model each (RESCORE_WORKERS, default 1)")
    parser.add_argument("--opensearch-url", help="the OpenSearch behind the sidecar (RESCORE_OPENSEARCH_URL)")
    parser.add_argument("--backend", choices=BACKENDS, help="reranker backend (RESCORE_BACKEND)")
    parser.add_argument("--model", help="hub id or local path of the reranker (RESCORE_MODEL)")
    parser.add_argument("--check", action="store_true",
                        help="validate the settings, print them (secrets masked) and exit")


def env_overrides(args: argparse.Namespace) -> dict[str, str]:
    """Return the RESCORE_* variables the given flags set."""
    return {ENV_PREFIX + name.upper(): str(getattr(args, name))
            for name in FLAG_FIELDS if getattr(args, name) is not None}


def run(args: argparse.Namespace) -> int:
    # The child (gunicorn.conf.py, create_app) reads its settings through sidecar/config.py from the
    # environment, so the flags are handed over as RESCORE_* variables rather than arguments.
    os.environ.update(env_overrides(args))
    settings = Settings.from_env()  # SettingsError / OptionsError -> exit 2 (common.execute)
    if args.check:
        print(json.dumps(settings.redacted(), indent=2, sort_keys=True))
        return 0
    print(f"rescore serve: http://{settings.host}:{settings.port} -> {redact_url(settings.opensearch_url)} "
          f"(backend {settings.reranker.backend}, {settings.workers} worker(s), "
          f"rerank pool of {settings.rerank_pool_workers} worker(s) at nice {settings.rerank_pool_nice})",
          file=sys.stderr, flush=True)
    argv = gunicorn_argv()
    sys.stdout.flush()
    os.execv(argv[0], argv)
    return 0  # not reached: execv replaces this process
