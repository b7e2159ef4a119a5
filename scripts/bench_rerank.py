#!/usr/bin/env python3
"""Benchmark the rerank engine against a naive implementation on the same inputs.

Same flags and output as `rescore bench` (sidecar/commands/bench.py holds the code).
"""
from __future__ import annotations

import sys

from sidecar.commands import bench as command
from sidecar.commands.common import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(command, argv)


if __name__ == "__main__":
    sys.exit(main())
