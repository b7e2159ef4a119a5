"""Structured logs: one JSON object per line, carrying the request id of the request being served.

The request id comes from the caller (X-Request-Id or X-Opaque-Id) or is made up; it is sent to
OpenSearch as X-Opaque-Id (so OpenSearch's slow logs and tasks API show it) and returned to the
caller as X-Request-Id.

Fields come from the message *template* ("request method=%s path=%s status=%d"): `key=%s` takes the
argument's value, literal `key=value` is taken as written. The rendered arguments are never parsed,
so request data (a path "/x status=200", a header) stays inside its own field and cannot set or
shadow another one; in the rendered message, arguments with spaces, "=", quotes or control
characters are written as JSON strings, so a text line cannot be forged either. URL credentials
(user:pass@) are masked in every line (sidecar/observability/redact.py).
"""
from __future__ import annotations

import contextvars
import json
import logging
import math
import os
import queue
import re
import sys
import threading
import time
import uuid
from typing import Any

from sidecar.observability.redact import redact_text

_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("rescore_request_id", default="")
# key=value pairs of our message templates ("rerank_search index=%s status=ok total_ms=%.1f").
_PAIR = re.compile(r"(\w+)=(\"[^\"]*\"|'[^']*'|\S+)")
# "event key=value ...": only templates of that shape are split into fields.
_EVENT = re.compile(r"^([a-z][a-z0-9_]*)\s+\w+=")
# One printf conversion of a template (logging's %-style), "%%" included so it can be skipped.
_CONVERSION = re.compile(r"%(?:\((\w+)\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?[hlL]?([diouxXeEfFgGcrsa%])")
_KEY_BEFORE = re.compile(r"(\w+)=\Z")
_NEEDS_QUOTES = re.compile(r"[\s=\"'\x00-\x1f\x7f\u2028\u2029]")
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


def safe_message(record: logging.LogRecord) -> str:
    """Return the record's message with string arguments quoted where needed and URL credentials masked."""
    args = record.args
    if isinstance(args, tuple) and args:
        try:
            message = str(record.msg) % tuple(_quoted(arg) for arg in args)
        except (TypeError, ValueError):  # a template that wants a number got something else
            message = record.getMessage()
    else:
        message = record.getMessage()
    return redact_text(message)


def template_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Return the key=value fields of the record's template, values taken from its arguments."""
    template = record.msg if isinstance(record.msg, str) else ""
    event = _EVENT.match(template)
    if not event:
        return {}
    fields: dict[str, Any] = {"event": event.group(1)}
    args = record.args if isinstance(record.args, tuple) else (record.args,) if record.args else ()
    position = 0
    for match in _CONVERSION.finditer(template):
        if match.group(4) == "%":
            continue
        if match.group(1) or "*" in (match.group(2) or "") + (match.group(3) or ""):
            return fields  # mapping or starred templates: keep the event only
        key = _KEY_BEFORE.search(template, 0, match.start())
        if key and position < len(args):
            fields.setdefault(key.group(1), _field_value(match.group(0), args[position]))
        position += 1
    for key, value in _PAIR.findall(template):  # literal pairs ("status=ok")
        if "%" not in value:
            fields.setdefault(key, _typed(value.strip("\"'")))
    return fields


class JsonFormatter(logging.Formatter):
    """Format records as JSON: ts, level, logger, msg, request_id, event and the template's key=value fields.

    role: written as "role" on every line of a rerank pool's processes ("pool"), which share the
    front's output; the front's lines carry none.
    """

    def __init__(self, role: str = "") -> None:
        super().__init__()
        self._role = role

    def format(self, record: logging.LogRecord) -> str:
        entry: dict = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": safe_message(record),
        }
        if self._role:
            entry["role"] = self._role
        request_id = _request_id_of(record)
        if request_id:
            entry["request_id"] = request_id
        for key, value in template_fields(record).items():
            entry.setdefault(key, value)
        for key, value in vars(record).items():  # logging's `extra=` fields
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry.setdefault(key, _masked(value))
        exc = _exception_text(self, record)
        if exc:
            entry["exc"] = redact_text(exc)
        return json.dumps(entry, default=lambda value: redact_text(str(value)), ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Format records as one text line: time, level, logger, [request id], safe message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = safe_message(record)
        record.asctime = self.formatTime(record)
        record.request_id = _request_id_of(record) or "-"
        line = self.formatMessage(record)
        exc = _exception_text(self, record)
        if exc:
            line = f"{line}\n{redact_text(exc)}"
        return line


def _request_id_of(record: logging.LogRecord) -> str:
    # The writer thread formats the record later: the id was taken where the line was logged.
    return getattr(record, "_rescore_request_id", None) or _REQUEST_ID.get()


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return record.exc_text or ""


class BackgroundWriter(logging.Handler):
    """Hand each record to one writer thread that formats it and writes it to stderr.

    A request thread that writes its own line gives up the interpreter lock for the write and then
    queues behind every busy thread to get it back, once per line: under load that wait, not the
    formatting, is what logging cost a search (measured: plain-search p99 through the sidecar 40 ms
    lower with logging off). The writer drains everything queued into one write. The queue is
    bounded; when the writer falls that far behind, a logging thread waits for room instead of
    dropping lines. flush() (called at exit and by logging.shutdown) returns once every line queued
    so far is written. The thread is started by the first line of each process, so a forked child
    writes its own lines.
    """

    def __init__(self, formatter: logging.Formatter, stream=None, capacity: int = 10_000) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self._stream = sys.stderr if stream is None else stream  # bound here, as logging.StreamHandler does
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue(capacity)
        self._owner = 0  # pid whose writer thread is running
        self._start_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        record._rescore_request_id = _REQUEST_ID.get()  # noqa: SLF001 - read back by the formatter
        if record.exc_info:  # tracebacks hold live frames: render them now
            record.exc_text = self.formatter.formatException(record.exc_info)
            record.exc_info = None
        if self._owner != os.getpid():
            self._start()
        self._queue.put(record)

    def _start(self) -> None:
        with self._start_lock:
            if self._owner != os.getpid():
                self._queue = queue.Queue(self._queue.maxsize)  # a fork copies a queue whose lock may be held
                threading.Thread(target=self._write_forever, name="log-writer", daemon=True).start()
                self._owner = os.getpid()

    def _write_forever(self) -> None:
        pending = self._queue
        while True:
            records = [pending.get()]
            while len(records) < 512:
                try:
                    records.append(pending.get_nowait())
                except queue.Empty:
                    break
            lines = []
            for record in records:
                try:
                    lines.append(self.format(record) + "\n")
                except Exception:  # noqa: BLE001 - one bad record must not stop the writer
                    self.handleError(record)
            try:
                self._stream.write("".join(lines))
                self._stream.flush()
            except Exception:  # noqa: BLE001 - a closed stderr: report as logging does, keep draining
                self.handleError(records[-1])
            for _ in records:
                pending.task_done()

    def flush(self) -> None:
        if self._owner == os.getpid():
            self._queue.join()


def configure_logging(level: str, fmt: str, role: str = "") -> None:
    """Install one root handler writing JSON (fmt="json") or text lines to stderr, from a writer thread.

    role: "pool" in a rerank pool's processes (JsonFormatter)."""
    handler = BackgroundWriter(JsonFormatter(role) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_rescore", False)]:
        old.flush()
        root.removeHandler(old)
    handler._rescore = True  # noqa: SLF001 - marks our handler so a second create_app() replaces it
    root.addHandler(handler)
    root.setLevel(level)
    # opensearch-py logs every call at INFO ("POST http://... [status:200 request:0.023s]"): a second
    # line per first stage that the sidecar's own rerank_search/request lines already carry.
    logging.getLogger("opensearch").setLevel(max(logging.WARNING, root.level))


def _quoted(arg: Any) -> Any:
    if arg is None or isinstance(arg, (bool, int, float)):
        return arg
    text = str(arg)
    return json.dumps(text, ensure_ascii=False) if not text or _NEEDS_QUOTES.search(text) else text


def _field_value(conversion: str, arg: Any) -> Any:
    if isinstance(arg, bool) or arg is None:
        return arg
    if isinstance(arg, (int, float)):
        try:
            return _typed(conversion % (arg,))
        except (TypeError, ValueError):
            return arg
    return _masked(arg)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact_text(str(value))


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
