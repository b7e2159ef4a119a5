#!/usr/bin/env python3
"""Memory soak of the sidecar: mixed traffic with long, distinct texts; per-worker RSS growth.

Same flags and output as `rescore soak` (sidecar/commands/soak.py holds the code).
"""
from __future__ import annotations

import sys

from sidecar.commands import soak as command
from sidecar.commands.common import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(command, argv)


if __name__ == "__main__":
    sys.exit(main())
