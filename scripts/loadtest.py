#!/usr/bin/env python3
"""Load-test the sidecar on loopback: N clients for T seconds mixing plain, template and rerank searches.

Same flags and output as `rescore loadtest` (sidecar/commands/loadtest.py holds the code).
"""
from __future__ import annotations

import sys

from sidecar.commands import loadtest as command
from sidecar.commands.common import script_main
from sidecar.experiments.loadtest import run_load  # noqa: F401  (tests and callers use it from here)


def main(argv: list[str] | None = None) -> int:
    return script_main(command, argv)


if __name__ == "__main__":
    sys.exit(main())
