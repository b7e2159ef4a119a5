"""Subcommands of the `rescore` CLI; each module has HELP, EPILOG, add_arguments(parser) and run(args) -> int.

scripts/*.py are thin wrappers over the same modules, so both keep the same flags and behaviour.
"""
from __future__ import annotations

# Subcommand name -> module under sidecar.commands, in the order `rescore --help` lists them.
COMMANDS: dict[str, str] = {
    "serve": "serve",
    "install-templates": "install_templates",
    "ingest": "ingest",
    "evaluate": "evaluate",
    "bench": "bench",
    "install-ml-pipeline": "install_ml_pipeline",
    "loadtest": "loadtest",
    "robustness": "robustness",
    "soak": "soak",
}
