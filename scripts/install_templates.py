#!/usr/bin/env python3
"""Install the document index, stored search templates and hybrid pipelines (idempotent)."""
from __future__ import annotations

import argparse
import sys

from _common import add_connection_args, client_from_args, setup_logging

from sidecar.search.templates import install


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_connection_args(parser)
    parser.add_argument("--index", help="also create this document index if it does not exist")
    parser.add_argument("--recreate", action="store_true", help="delete and recreate --index")
    args = parser.parse_args(argv)
    setup_logging()
    client, _ = client_from_args(args)
    report = install(client, args.index, recreate=args.recreate)
    print(f"index {args.index or '-'}: {'created' if report.index_created else 'kept'}; "
          f"templates: {', '.join(report.templates)}; pipelines: {', '.join(report.pipelines)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
