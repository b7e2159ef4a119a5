"""Structured logs: one JSON object per line, carrying the request id of the request being served.

The request id comes from the caller (X-Request-Id or X-Opaque-Id) or is made up; it is sent to
OpenSearch as X-Opaque-Id (so OpenSearch's slow logs and tasks API show it) and returned to the
caller as X-Request-Id.
"""
from __future__ import annotations

import contextvars
import json
import logging
import math
import re
import time
import uuid

_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("rescore_request_id", default="")
# key=value pairs of our log messages ("rerank_search index=demo status=ok total_ms=12.3").
_PAIR = re.compile(r"(\w+)=(\"[^\"]*\"|'[^']*'|\S+)")
# "event key=value ...": only messages of that shape are split into fields.
_EVENT = re.compile(r"^([a-z][a-z0-9_]*)\s+\w+=")
_ID_OK = re.compile(r"^[\x21-\x7e]{1,200}$")
_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def current_request_id() -> str:
    """Return the id of the request this thread serves ("" outside a request)."""
    return _REQUEST_ID.get()


def bind_request_id(request_id: str) -> contextvars.Token:
    """Make request_id current for this context; return the token to reset it."""
    return _REQUEST_ID.set(request_id)


def reset_request_id(token: contextvars.Token) -> None:
    _REQUEST_ID.reset(token)


def choose_request_id(*candidates: str | None) -> str:
    """Return the first acceptable caller-given id (printable ASCII, <= 200 chars) or a new one."""
    for candidate in candidates:
        if candidate and _ID_OK.match(candidate):
            return candidate
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """Format records as JSON: ts, level, logger, msg, event, request_id and the message's key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": message,
        }
        request_id = _REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        event = _EVENT.match(message)
        if event:
            entry["event"] = event.group(1)
            for key, value in _PAIR.findall(message):
                entry.setdefault(key, _typed(value.strip("\"'")))
        for key, value in vars(record).items():  # logging's `extra=` fields
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    """Append request_id=<id> to text-format records so both formats carry it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _REQUEST_ID.get() or "-"
        return True


def configure_logging(level: str, fmt: str) -> None:
    """Install one root handler writing JSON (fmt="json") or text lines to stderr."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_rescore", False)]:
        root.removeHandler(old)
    handler._rescore = True  # noqa: SLF001 - marks our handler so a second create_app() replaces it
    root.addHandler(handler)
    root.setLevel(level)


def _typed(value: str):
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value
