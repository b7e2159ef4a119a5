"""Shared bits of the command-line scripts: logging and the OpenSearch connection from settings."""
from __future__ import annotations

import argparse
import logging

from sidecar.config import Settings
from sidecar.search.opensearch import ConnectionInfo, make_client


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="OpenSearch URL (default: RESCORE_OPENSEARCH_URL or http://127.0.0.1:9200)")


def client_from_args(args: argparse.Namespace):
    settings = Settings.from_env()
    info = ConnectionInfo(
        url=args.url or settings.opensearch_url,
        user=settings.opensearch_user,
        password=settings.opensearch_password,
        verify_certs=settings.opensearch_verify_certs,
        timeout_s=max(settings.opensearch_timeout_s, 60.0),
    )
    return make_client(info), settings


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
