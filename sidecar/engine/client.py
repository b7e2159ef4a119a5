"""Talking to the engine (OpenSearch or Elasticsearch): a structured client and a raw pass-through gateway."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import requests
from opensearchpy import OpenSearch, Transport

from sidecar.observability import tracing
from sidecar.engine.wait import read_timeout_s
from sidecar.observability.logs import current_request_id
from sidecar.observability.redact import redact_url

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 §7.6.1) and those the HTTP stack recomputes; never forwarded.
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
})


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

    url: str
    user: str = ""
    password: str = ""
    verify_certs: bool = True
    ca_certs: str = ""
    timeout_s: float = 30.0

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


def make_client(info: ConnectionInfo) -> OpenSearch:
    """Build an opensearch-py client for structured calls (installer, ingest, search flow)."""
    tls = info.url.startswith("https")
    extra = {"ca_certs": info.ca_certs} if tls and info.ca_certs else {}
    return OpenSearch(
        hosts=[info.url],
        http_auth=info.auth,
        verify_certs=info.verify_certs if tls else False,
        ssl_show_warn=False,
        timeout=info.timeout_s,
        http_compress=False,
        transport_class=CorrelatedTransport,
        # gthread workers and msearch entries call concurrently; a pool of 1 (urllib3's default)
        # would drop and reopen connections ("Connection pool is full") under load.
        pool_maxsize=32,
        **extra,
    )


class OpenSearchGateway:
    """Forward raw HTTP requests to the one configured OpenSearch, byte for byte."""

    def __init__(self, info: ConnectionInfo) -> None:
        self._base = info.url.rstrip("/")
        self._info = info
        self._session = requests.Session()
        self._session.trust_env = False  # never route through a proxy picked up from the environment
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def url_for(self, path: str) -> str:
        """Join a request path to the configured base URL (never to another host)."""
        return f"{self._base}/{path.lstrip('/')}"

    def forward(self, method: str, path: str, query_string: bytes, headers: list[tuple[str, str]],
                body: bytes) -> RawResponse:
        """Send one request to OpenSearch and return its response without decoding the body.

        `path` is sent as given (the caller passes the raw, still percent-encoded path). Nothing
        is added that changes the engine's answer: no X-Opaque-Id (OpenSearch deduplicates
        deprecation warnings per opaque id); the request id goes to the log line instead. The read
        timeout covers whatever the request asks the engine to wait (sidecar.engine.wait).
        """
        url = self.url_for(path)
        if query_string:
            url = f"{url}?{query_string.decode('latin-1')}"
        out_headers = {k: v for k, v in headers if k.lower() not in _HOP_BY_HOP}
        # requests adds "Accept-Encoding: gzip" by default; only ask for what the client asked for.
        out_headers.setdefault("Accept-Encoding", "identity")
        parent = tracing.traceparent()
        if parent and not any(k.lower() == "traceparent" for k in out_headers):
            out_headers["traceparent"] = parent
        if self._info.user and not any(k.lower() == "authorization" for k in out_headers):
            auth = self._info.auth
        else:
            auth = None
        read_timeout = read_timeout_s(self._info.timeout_s, method, path, query_string)
        prepared = self._session.prepare_request(
            requests.Request(method, url, data=body or None, headers=out_headers, auth=auth))
        prepared.url = url  # requests would re-quote the path; keep the caller's encoding byte for byte
        started = time.perf_counter()
        try:
            resp = self._session.send(prepared, stream=True, timeout=(self._info.timeout_s, read_timeout),
                                      verify=self._info.verify, allow_redirects=False)
        except requests.RequestException as exc:
            raise OpenSearchUnavailable(f"{type(exc).__name__} talking to OpenSearch at {redact_url(self._base)}") from exc
        try:
            raw = resp.raw.read(decode_content=False)
        finally:
            resp.close()
        # A HEAD answer has no body to recompute Content-Length from: keep the engine's.
        dropped = _HOP_BY_HOP - {"content-length"} if method.upper() == "HEAD" else _HOP_BY_HOP
        kept = [(k, v) for k, v in resp.raw.headers.items() if k.lower() not in dropped]
        log.debug("forward method=%s path=%s status=%d ms=%.1f opaque_id=%s", method, path, resp.status_code,
                  (time.perf_counter() - started) * 1000, current_request_id() or "-")
        return RawResponse(status=resp.status_code, headers=kept, body=raw)

    def ping(self) -> bool:
        """Return whether the cluster answers its root endpoint."""
        try:
            return self.forward("GET", "/", b"", [], b"").status == 200
        except OpenSearchUnavailable:
            return False

    def close(self) -> None:
        self._session.close()
