#!/usr/bin/env python3
"""Evaluate search modes on a BEIR-layout dataset against a real OpenSearch (NDCG@10, MRR@10, Recall@100).

Same flags and output as `rescore evaluate` (sidecar/commands/evaluate.py holds the code).
"""
from __future__ import annotations

import sys

from sidecar.commands import evaluate as command
from sidecar.commands.common import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(command, argv)


if __name__ == "__main__":
    sys.exit(main())
