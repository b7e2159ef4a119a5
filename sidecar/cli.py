"""The `rescore` command line: one program with a subcommand per task (serve, ingest, evaluate, ...)."""
from __future__ import annotations

import argparse
import importlib

from sidecar.commands import COMMANDS
from sidecar.commands.common import build_parser, execute

EPILOG = """examples:
  rescore serve --port 8080 --opensearch-url http://127.0.0.1:9200
  rescore install-templates --index demo
  rescore ingest demo --index demo --recreate
  rescore evaluate --dataset ../shared/datasets/scifact --modes bm25,hybrid,hybrid+rerank --out scifact.json
  rescore bench --quick --json bench.json

`rescore <command> --help` explains each command. Settings come from RESCORE_* variables (README).
Exit status: 0 ok, 1 failure (e.g. OpenSearch unreachable), 2 bad flags or settings."""


def build_cli() -> tuple[argparse.ArgumentParser, dict[str, tuple[object, argparse.ArgumentParser]]]:
    """Return the top-level parser and {subcommand: (module, its parser)}."""
    parser = argparse.ArgumentParser(
        prog="rescore", description="rescore-sidecar: reranking sidecar for OpenSearch/Elasticsearch search apps.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    commands = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"sidecar.commands.{module_name}")
        sub = subparsers.add_parser(name, help=module.HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
        commands[name] = (module, build_parser(module, sub))
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    """Parse argv (default: sys.argv[1:]) and run the chosen subcommand; return the exit status."""
    parser, commands = build_cli()
    args = parser.parse_args(argv)
    module, sub = commands[args.command]
    return execute(module, sub, args)
