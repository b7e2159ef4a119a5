"""Shared pieces of the subcommands: OpenSearch connection flags, logging, and running one command."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from types import ModuleType
from urllib.parse import urlsplit

import requests
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

from sidecar.config import Settings, SettingsError
from sidecar.observability.redact import redact_url
from sidecar.rerank.options import OptionsError
from sidecar.engine.client import ConnectionInfo, make_client


class UsageError(Exception):
    """A flag value or combination that run() rejects; reported like an argparse error (exit 2)."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _bounded_int(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _bounded_int(text, 0)


def _bounded_int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """Add --url (the OpenSearch to talk to)."""
    parser.add_argument("--url", help="OpenSearch URL (default: RESCORE_OPENSEARCH_URL or http://127.0.0.1:9200)")


def client_from_args(args: argparse.Namespace) -> tuple[OpenSearch, Settings]:
    """Return an OpenSearch client for --url (credentials and TLS from RESCORE_*) and the settings.

    The settings carry --url as their opensearch_url, so whatever a command builds from them (the
    reranker's Services, a pool of engine hosts) talks to the same engine as the client.
    """
    settings = Settings.from_env()
    if args.url:
        settings = dataclasses.replace(settings, opensearch_url=args.url)
    info = ConnectionInfo(
        url=settings.opensearch_url,
        user=settings.opensearch_user,
        password=settings.opensearch_password,
        verify_certs=settings.opensearch_verify_certs,
        ca_certs=settings.opensearch_ca_certs,
        retry_after_s=settings.opensearch_retry_after_s,
        discover=settings.opensearch_discover,
        # Bulk indexing and template installs are slower than one search: never below a minute.
        timeout_s=max(settings.opensearch_timeout_s, 60.0),
    )
    return make_client(info), settings


def setup_logging(verbose: bool = False) -> None:
    """Log warnings (everything with verbose) to stderr."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not verbose:
        # opensearch-py logs every failed attempt with a traceback; execute() reports the failure in one line.
        logging.getLogger("opensearch").setLevel(logging.ERROR)


def build_parser(command: ModuleType, parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Return a parser (new, or the given subparser) with the command's description, examples and flags."""
    if parser is None:
        parser = argparse.ArgumentParser(formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.description = command.__doc__
    parser.epilog = command.EPILOG
    command.add_arguments(parser)
    return parser


def execute(command: ModuleType, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run a parsed command; expected failures become one line on stderr and an exit code, no traceback."""
    try:
        return command.run(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except (SettingsError, OptionsError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except OpenSearchConnectionError as exc:
        print(f"{parser.prog}: error: cannot reach OpenSearch at {_opensearch_url(args)} ({_reason(exc)})",
              file=sys.stderr)
        return 1
    except requests.ConnectionError as exc:
        url = exc.request.url if exc.request is not None else "the server"
        print(f"{parser.prog}: error: cannot reach {_origin(url)} ({_reason(exc)})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout went away (`rescore ... | head`); point it at devnull so the exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def script_main(command: ModuleType, argv: list[str] | None = None) -> int:
    """Run one command as a standalone script (scripts/*.py keep their own names and flags)."""
    parser = build_parser(command)
    return execute(command, parser, parser.parse_args(argv))


def _opensearch_url(args: argparse.Namespace) -> str:
    if getattr(args, "url", None):
        return redact_url(args.url)
    try:
        return redact_url(Settings.from_env().opensearch_url)
    except (SettingsError, OptionsError):
        return "RESCORE_OPENSEARCH_URL"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return redact_url(f"{parts.scheme}://{parts.netloc}" if parts.netloc else url)


def _reason(exc: BaseException) -> str:
    """Return the innermost OS-level reason ("Connection refused", "timed out") of a connection error."""
    current: BaseException | None = exc
    deepest = exc
    for _ in range(10):  # bounded: exception chains can be cyclic
        if current is None:
            break
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        deepest = current
        current = (getattr(current, "info", None) if isinstance(current, OpenSearchConnectionError)
                   else getattr(current, "reason", None) or current.__cause__ or current.__context__
                   or (current.args[0] if current.args and isinstance(current.args[0], BaseException) else None))
    return str(deepest) or type(deepest).__name__
