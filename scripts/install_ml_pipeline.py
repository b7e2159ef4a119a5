#!/usr/bin/env python3
"""Make OpenSearch call the sidecar itself: ML Commons connector + model + rerank search pipeline.

Same flags and output as `rescore install-ml-pipeline` (sidecar/commands/install_ml_pipeline.py holds the code).
"""
from __future__ import annotations

import sys

from sidecar.commands import install_ml_pipeline as command
from sidecar.commands.common import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(command, argv)


if __name__ == "__main__":
    sys.exit(main())
