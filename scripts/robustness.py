#!/usr/bin/env python3
"""Robustness suite: every first stage and rerank fusion on every collection, fusion defaults by leave-one-out.

Same flags and output as `rescore robustness` (sidecar/commands/robustness.py holds the code).
"""
from __future__ import annotations

import sys

from sidecar.commands import robustness as command
from sidecar.commands.common import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(command, argv)


if __name__ == "__main__":
    sys.exit(main())
