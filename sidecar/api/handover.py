"""Hand requests that need the model to the rerank pool (RESCORE_RERANK_POOL_WORKERS, README "Serving").

The front workers carry every request in; a reranked search, an msearch with a reranked entry and the
model endpoints (/v1/rerank, /rerank, /score, /v1/rescore, /v1/compare) are sent on, as received, to
the pool: the same app under its own gunicorn, in a session of its own at lower CPU priority
(sidecar/gunicorn.conf.py starts it). Why: a reranked search costs the worker about twice a plain
search's CPU even when admission refuses it (first stage of the whole window, its sources, fusion),
and all of a worker's threads share one interpreter lock, so in one process plain searches queue
behind reranks; in a niced process of its own that work yields the CPU to plain traffic.

The pool answers exactly what the front would have (same code, same settings, the caller's own
headers and credentials, the front's request id). If the pool cannot be reached or fails mid-way,
the front serves the request itself; it holds no model then (Services.reranker), so a search comes
back in first-stage order with ext.rerank.status "error", as for any reranker fault.
"""
from __future__ import annotations

import http.client
import logging
import socket
import threading

from flask import Flask, Response, current_app, g, request

from sidecar.api.proxy import raw_path
from sidecar.engine.client import HOP_BY_HOP
from sidecar.observability.http import ARRIVAL_HEADER, REQUEST_ID_HEADER
from sidecar.rerank.deadline import arrival

log = logging.getLogger(__name__)

# Endpoints that always need the model: handed over before their view runs.
MODEL_ENDPOINTS = frozenset({"rerank_compat.rerank_v1", "rerank_compat.rerank_v2", "rerank_compat.rerank_tei",
                             "rerank_compat.score_vllm", "rescore.rescore", "ui.compare"})
# The front's gunicorn writes its own Server and Date on every response: the pool's would repeat them.
_FROM_POOL_DROPPED = HOP_BY_HOP | {"server", "date"}


class PoolUnreachable(RuntimeError):
    """The rerank pool did not answer (not started, restarting, or failed mid-request)."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("rerank-pool", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class PoolClient:
    """Keep-alive HTTP over the pool's unix socket, one connection per front thread."""

    def __init__(self, socket_path: str, timeout_s: float) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self._local = threading.local()

    def send(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
             ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Return (status, headers, body) of the pool's answer; PoolUnreachable when there is none."""
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = self._local.conn = _UnixHTTPConnection(self.socket_path, self.timeout_s)
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                response = conn.getresponse()
                data = response.read()
                if response.will_close:
                    self._drop()
                return response.status, response.getheaders(), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop()
                # A kept-alive connection the pool closed meanwhile (its keepalive ran out): the
                # request never reached a worker, so it is sent once more on a new connection.
                if not (reused and attempt == 1):
                    raise PoolUnreachable(f"{type(exc).__name__}: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise PoolUnreachable(f"{type(exc).__name__}: {exc}") from exc
        raise PoolUnreachable("no answer")  # not reached: the second attempt returns or raises

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()


def pool_of(app: Flask) -> PoolClient | None:
    return app.extensions.get("rescore_pool")


def handover() -> Response | None:
    """Send the current request to the rerank pool and return its answer as this request's response.

    None: there is no pool (this process serves it), or the pool did not answer (logged); the caller
    then serves the request itself.
    """
    pool = pool_of(current_app)
    if pool is None:
        return None
    own = {REQUEST_ID_HEADER.lower(), ARRIVAL_HEADER.lower()}
    headers = [(name, value) for name, value in request.headers.items()
               if name.lower() not in HOP_BY_HOP and name.lower() not in own]
    # The pool uses the front's request id (the caller sees one id in X-Request-Id, ext and the logs)
    # and its arrival time (the rerank deadline covers the handover and the pool's queue).
    headers.append((REQUEST_ID_HEADER, g.rescore_request_id))
    arrived = arrival()
    if arrived is not None:
        headers.append((ARRIVAL_HEADER, repr(arrived)))
    target = raw_path() + (f"?{request.query_string.decode('latin-1')}" if request.query_string else "")
    try:
        status, pool_headers, body = pool.send(request.method, target, headers, request.get_data(cache=True))
    except PoolUnreachable as exc:
        log.warning("rerank_pool_unreachable socket=%s error=%s; serving here", pool.socket_path, exc)
        return None
    response = Response(body, status=status)
    response.headers.clear()
    for name, value in pool_headers:
        if name.lower() not in _FROM_POOL_DROPPED:
            response.headers.add(name, value)
    return response


def install(app: Flask, socket_path: str, timeout_s: float) -> None:
    """Make this app a front that hands model work to the pool listening on socket_path."""
    app.extensions["rescore_pool"] = PoolClient(socket_path, timeout_s)

    @app.before_request
    def _model_endpoints() -> Response | None:
        if request.endpoint in MODEL_ENDPOINTS:
            return handover()
        return None
