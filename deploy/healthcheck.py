#!/usr/bin/env python3
"""Exit 0 when a sidecar endpoint answers 2xx, 1 otherwise (container health checks).

Usage: healthcheck.py [PATH | URL]; a PATH such as /ready is asked of
http://127.0.0.1:$RESCORE_PORT (default 8080). Standard library only, so it runs in the
slim image, which has no curl.
"""
from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def target(arg: str) -> str:
    """Return the URL to ask: ARG itself when it is a URL, else ARG on the local sidecar port."""
    if arg.startswith(("http://", "https://")):
        return arg
    return f"http://127.0.0.1:{os.environ.get('RESCORE_PORT', '8080')}{arg}"


def main(argv: list[str]) -> int:
    url = target(argv[1] if len(argv) > 1 else "/health")
    try:
        # urlopen raises HTTPError (a URLError) for any status outside 2xx
        with urllib.request.urlopen(url, timeout=5):
            return 0
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck url={url} error={exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
