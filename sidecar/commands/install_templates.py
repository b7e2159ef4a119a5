"""Install the document index, stored search templates and hybrid pipelines (idempotent)."""
from __future__ import annotations

import argparse

from sidecar.commands.common import add_connection_args, client_from_args, setup_logging

HELP = "install the index mapping, stored search templates and hybrid pipelines"
EPILOG = """examples:
  rescore install-templates                          # templates and pipelines only
  rescore install-templates --index demo             # also create the index "demo" if absent
  rescore install-templates --index demo --recreate --url https://search.internal:9200

Templates come from es_templates/search/*.mustache.json, pipelines from es_templates/pipelines/.
Credentials and TLS: RESCORE_OPENSEARCH_USER/PASSWORD/VERIFY_CERTS/CA_CERTS."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_args(parser)
    parser.add_argument("--index", help="also create this document index if it does not exist")
    parser.add_argument("--recreate", action="store_true", help="delete and recreate --index")


def run(args: argparse.Namespace) -> int:
    from sidecar.engine import engine_for_client
    from sidecar.search.templates import install

    setup_logging()
    client, settings = client_from_args(args)
    report = install(client, args.index, recreate=args.recreate, engine=engine_for_client(client, settings.engine))
    print(f"{report.engine}: index {args.index or '-'}: {'created' if report.index_created else 'kept'}; "
          f"templates: {', '.join(report.templates) or '-'}; pipelines: {', '.join(report.pipelines) or '-'}")
    for template_id, reason in report.failed.items():
        print(f"  template {template_id} refused by the engine: {reason}")
    if report.analysis:
        print(f"  index {args.index}: {report.analysis}")
    return 1 if report.failed else 0
