#!/usr/bin/env python3
"""Bulk-index a BEIR-layout corpus.jsonl (with embeddings for kNN) into OpenSearch.

Same flags and output as `rescore ingest` (sidecar/commands/ingest.py holds the code).
"""
from __future__ import annotations

import sys

from sidecar.commands import ingest as command
from sidecar.commands.common import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(command, argv)


if __name__ == "__main__":
    sys.exit(main())
