"""Shared bits of the command-line scripts; they now live in sidecar/commands/common.py."""
from sidecar.commands.common import add_connection_args, client_from_args, setup_logging  # noqa: F401
