"""Talking to the engine (OpenSearch or Elasticsearch): a structured client and a raw pass-through gateway.

Two identities reach the engine (README "Identity"): a caller's request goes out with the caller's
own auth headers only (the pass-through forwards them as received; the caller client adds the
ones bound to the request being served), and the sidecar's service account (RESCORE_OPENSEARCH_USER)
serves only its own bookkeeping: readiness, the feedback index, the installer and ingest commands.
"""
from __future__ import annotations

import contextvars
import logging
import time
from dataclasses import dataclass

import requests
import urllib3
from opensearchpy import OpenSearch, Transport

from sidecar.engine.hosts import HostPool, is_idempotent_read
from sidecar.engine.wait import read_timeout_s
from sidecar.observability import tracing
from sidecar.observability.logs import current_request_id
from sidecar.observability.redact import redact_url

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 §7.6.1) and those the HTTP stack recomputes; never forwarded
# (to the engine, nor between the sidecar's own processes: api/handover.py).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
})


# The caller's auth headers of the request being served (None outside a request: anonymous).
_CALLER_AUTH: contextvars.ContextVar[tuple[tuple[str, str], ...] | None] = contextvars.ContextVar(
    "rescore_caller_auth", default=None)


def bind_caller_auth(headers: tuple[tuple[str, str], ...]) -> contextvars.Token:
    """Make headers the auth headers the caller client sends in this context; return the reset token."""
    return _CALLER_AUTH.set(headers)


def reset_caller_auth(token: contextvars.Token) -> None:
    _CALLER_AUTH.reset(token)


def caller_auth_headers() -> dict[str, str]:
    """Return the auth headers bound to the request being served ({} = anonymous)."""
    return dict(_CALLER_AUTH.get() or ())


class OpenSearchUnavailable(RuntimeError):
    """OpenSearch could not be reached (connection refused, DNS, timeout)."""


@dataclass(frozen=True)
class RawResponse:
    """An OpenSearch HTTP response, body bytes as sent (possibly compressed)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, kw_only=True)
class ConnectionInfo:
    """Where and how to reach OpenSearch."""

    url: str  # one base URL, or several nodes' URLs comma-separated
    user: str = ""
    password: str = ""
    verify_certs: bool = True
    ca_certs: str = ""
    timeout_s: float = 30.0
    # Several nodes: seconds a failed node is skipped; whether to learn the others from /_nodes/http.
    retry_after_s: float = 10.0
    discover: bool = False

    @property
    def urls(self) -> list[str]:
        """Return the nodes' base URLs."""
        return [url.strip().rstrip("/") for url in self.url.split(",") if url.strip()]

    @property
    def verify(self) -> bool | str:
        """Return requests' `verify`: False, True (system bundle) or the CA bundle path."""
        if not self.url.startswith("https"):
            return True
        if not self.verify_certs:
            return False
        return self.ca_certs or True

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.user, self.password) if self.user else None


def correlation_headers(existing: dict[str, str] | None = None) -> dict[str, str]:
    """Return the headers that tie an OpenSearch call to the request being served.

    X-Opaque-Id (OpenSearch shows it in slow logs and the tasks API) carries the sidecar's request
    id unless the caller already set one; traceparent carries the trace when tracing is on.
    """
    present = {k.lower() for k in (existing or {})}
    headers: dict[str, str] = {}
    request_id = current_request_id()
    if request_id and "x-opaque-id" not in present:
        headers["X-Opaque-Id"] = request_id
    parent = tracing.traceparent()
    if parent and "traceparent" not in present:
        headers["traceparent"] = parent
    return headers


class CorrelatedTransport(Transport):
    """opensearch-py transport that adds correlation_headers() to every call."""

    def perform_request(self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None):
        extra = correlation_headers(headers)
        if extra:
            headers = {**(headers or {}), **extra}
        return super().perform_request(method, url, params=params, body=body, timeout=timeout, ignore=ignore,
                                       headers=headers)


class CallerTransport(CorrelatedTransport):
    """Transport of the caller client: every call carries the bound caller's auth headers, nothing else."""

    def perform_request(self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None):
        caller = caller_auth_headers()
        kept = {k: v for k, v in (headers or {}).items() if k.lower() not in {c.lower() for c in caller}}
        return super().perform_request(method, url, params=params, body=body, timeout=timeout, ignore=ignore,
                                       headers={**kept, **caller} or None)


def make_client(info: ConnectionInfo, *, as_caller: bool = False) -> OpenSearch:
    """Build an opensearch-py client for structured calls.

    as_caller=False: the service account (installer, ingest, readiness, feedback writes).
    as_caller=True: no credentials of its own; each call sends the auth headers bound with
    bind_caller_auth() for the request being served (the search flow, templates, compare).
    """
    tls = info.url.startswith("https")
    extra = {"ca_certs": info.ca_certs} if tls and info.ca_certs else {}
    return OpenSearch(
        hosts=info.urls,
        # Several nodes: opensearch-py round-robins, marks a failed node dead and retries the call on
        # the next one (connection errors and these statuses); discovery adds the cluster's nodes.
        max_retries=len(info.urls) if not info.discover else 3,
        retry_on_status=(502, 503, 504),
        dead_timeout=info.retry_after_s,
        sniff_on_start=info.discover and not as_caller,  # sniffing is a service-account call
        sniff_on_connection_fail=info.discover and not as_caller,
        http_auth=None if as_caller else info.auth,
        verify_certs=info.verify_certs if tls else False,
        ssl_show_warn=False,
        timeout=info.timeout_s,
        http_compress=False,
        transport_class=CallerTransport if as_caller else CorrelatedTransport,
        # gthread workers and msearch entries call concurrently; a pool of 1 (urllib3's default)
        # would drop and reopen connections ("Connection pool is full") under load.
        pool_maxsize=32,
        **extra,
    )


class OpenSearchGateway:
    """Forward raw HTTP requests to the one configured OpenSearch, byte for byte."""

    def __init__(self, info: ConnectionInfo) -> None:
        self._info = info
        # Connection failures so far: the engine layer re-detects the engine after one (EngineRef).
        self.failures = 0
        self._pool = HostPool(info.urls, retry_after_s=info.retry_after_s)
        self._session = requests.Session()
        self._session.trust_env = False  # never route through a proxy picked up from the environment
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    @property
    def nodes(self) -> HostPool:
        """The engine nodes this gateway spreads requests over."""
        return self._pool

    def discover(self) -> None:
        """Learn the cluster's other HTTP nodes (RESCORE_OPENSEARCH_DISCOVER)."""
        def fetch(base: str) -> dict:
            resp = self._session.get(f"{base}/_nodes/http", auth=self._info.auth, verify=self._info.verify,
                                     timeout=self._info.timeout_s)
            resp.raise_for_status()
            return resp.json()
        self._pool.discover(fetch)

    def forward(self, method: str, path: str, query_string: bytes, headers: list[tuple[str, str]],
                body: bytes, *, service_account: bool = False) -> RawResponse:
        """Send one request to OpenSearch and return its response without decoding the body.

        `path` is sent as given (the caller passes the raw, still percent-encoded path). Nothing
        is added that changes the engine's answer: no X-Opaque-Id (OpenSearch deduplicates
        deprecation warnings per opaque id); the request id goes to the log line instead. The read
        timeout covers whatever the request asks the engine to wait (sidecar.engine.wait).
        The request carries exactly the given headers' credentials; only service_account=True (the
        sidecar's own calls, never a caller's request) adds RESCORE_OPENSEARCH_USER/PASSWORD.
        """
        target = f"/{path.lstrip('/')}" + (f"?{query_string.decode('latin-1')}" if query_string else "")
        out_headers = {k: v for k, v in headers if k.lower() not in HOP_BY_HOP}
        # requests adds "Accept-Encoding: gzip" by default; only ask for what the client asked for.
        out_headers.setdefault("Accept-Encoding", "identity")
        parent = tracing.traceparent()
        if parent and not any(k.lower() == "traceparent" for k in out_headers):
            out_headers["traceparent"] = parent
        auth = self._info.auth if service_account else None
        read_timeout = read_timeout_s(self._info.timeout_s, method, path, query_string)
        retry_sent = is_idempotent_read(method, path)
        started = time.perf_counter()
        failures: list[str] = []
        for base in self._pool.order():
            url = base + target
            prepared = self._session.prepare_request(
                requests.Request(method, url, data=body or None, headers=out_headers, auth=auth))
            prepared.url = url  # requests would re-quote the path; keep the caller's encoding byte for byte
            try:
                resp = self._session.send(prepared, stream=True, timeout=(self._info.timeout_s, read_timeout),
                                          verify=self._info.verify, allow_redirects=False)
            except (requests.ConnectionError, requests.ConnectTimeout) as exc:
                # The node is gone. Retry on another node when the request never reached it, or when
                # it is a read that is safe to send twice; a write that may have landed is not resent.
                self._pool.mark_dead(base, type(exc).__name__)
                failures.append(f"{type(exc).__name__} at {redact_url(base)}")
                never_sent = isinstance(exc, requests.ConnectTimeout) or _refused(exc)
                if never_sent or retry_sent:
                    continue
                self.failures += 1
                raise OpenSearchUnavailable(f"{failures[-1]} talking to OpenSearch") from exc
            except requests.RequestException as exc:
                self.failures += 1
                raise OpenSearchUnavailable(
                    f"{type(exc).__name__} talking to OpenSearch at {redact_url(base)}") from exc
            self._pool.mark_alive(base)
            break
        else:
            self.failures += 1
            raise OpenSearchUnavailable(f"no OpenSearch node answered: {'; '.join(failures)}")
        try:
            raw = resp.raw.read(decode_content=False)
        finally:
            resp.close()
        # A HEAD answer has no body to recompute Content-Length from: keep the engine's.
        dropped = HOP_BY_HOP - {"content-length"} if method.upper() == "HEAD" else HOP_BY_HOP
        kept = [(k, v) for k, v in resp.raw.headers.items() if k.lower() not in dropped]
        log.debug("forward method=%s path=%s status=%d ms=%.1f opaque_id=%s", method, path, resp.status_code,
                  (time.perf_counter() - started) * 1000, current_request_id() or "-")
        return RawResponse(status=resp.status_code, headers=kept, body=raw)

    def ping(self) -> bool:
        """Return whether the cluster answers its health endpoint (both engines have it; an
        Elasticsearch build without the rest-root module answers `GET /` with 405)."""
        try:
            return self.forward("GET", "/_cluster/health", b"", [], b"", service_account=True).status == 200
        except OpenSearchUnavailable:
            return False

    def close(self) -> None:
        self._session.close()


def _refused(exc: BaseException) -> bool:
    """Return whether a connection error happened before anything was sent (refused, no route, DNS)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ConnectionRefusedError, urllib3.exceptions.NewConnectionError,
                            urllib3.exceptions.NameResolutionError)):
            return True
        exc = exc.__cause__ or exc.__context__ or (exc.args[0] if exc.args and isinstance(exc.args[0],
                                                                                         BaseException) else None)
    return False
