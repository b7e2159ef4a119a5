#!/usr/bin/env python3
"""Install the document index, stored search templates and hybrid pipelines (idempotent).

Same flags and output as `rescore install-templates` (sidecar/commands/install_templates.py holds the code).
"""
from __future__ import annotations

import sys

from sidecar.commands import install_templates as command
from sidecar.commands.common import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(command, argv)


if __name__ == "__main__":
    sys.exit(main())
