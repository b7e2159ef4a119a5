"""Several engine nodes: spread requests over them, skip a dead one, probe it again later.

The pass-through gateway asks `HostPool.order()` for the nodes to try, live ones round-robin first,
then those marked dead (the one down longest first) so a request still has somewhere to go when
every node was marked. A node that fails is marked dead for `retry_after_s`; the first request
after that tries it again (a passive re-probe: no background thread). With discovery on, the
pool also learns the cluster's other HTTP nodes from `GET /_nodes/http`.
"""
from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable

from sidecar.observability.redact import redact_url

log = logging.getLogger(__name__)

# publish_address of /_nodes/http: "127.0.0.1:9201" or "hostname/127.0.0.1:9201".
_PUBLISH = re.compile(r"(?:[^/]*/)?(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d+)$")


class HostPool:
    """Base URLs of the engine's nodes with their liveness."""

    def __init__(self, urls: Iterable[str], *, retry_after_s: float = 10.0) -> None:
        self._urls = [url.rstrip("/") for url in urls]
        if not self._urls:
            raise ValueError("at least one engine URL is needed")
        self._retry_after_s = retry_after_s
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count()

    @property
    def urls(self) -> list[str]:
        with self._lock:
            return list(self._urls)

    def order(self) -> list[str]:
        """Return every node to try for one request: live round-robin, then the dead ones."""
        now = time.monotonic()
        with self._lock:
            start = next(self._counter) % len(self._urls)
            rotated = self._urls[start:] + self._urls[:start]
            live = [url for url in rotated if self._down_until.get(url, 0.0) <= now]
            dead = sorted((url for url in rotated if self._down_until.get(url, 0.0) > now),
                          key=lambda url: self._down_until[url])
        return live + dead

    def mark_dead(self, url: str, reason: str) -> None:
        with self._lock:
            first = self._down_until.get(url, 0.0) <= time.monotonic()
            self._down_until[url] = time.monotonic() + self._retry_after_s
        if first:
            log.warning("engine_node_down url=%s reason=%s retry_after_s=%.0f", redact_url(url), reason,
                        self._retry_after_s)

    def mark_alive(self, url: str) -> None:
        with self._lock:
            was_down = self._down_until.pop(url, None) is not None
        if was_down:
            log.info("engine_node_up url=%s", redact_url(url))

    def state(self) -> list[dict[str, object]]:
        """Return each node (credentials masked) and whether it is considered up."""
        now = time.monotonic()
        with self._lock:
            return [{"url": redact_url(url), "up": self._down_until.get(url, 0.0) <= now} for url in self._urls]

    def discover(self, fetch_nodes: Callable[[str], dict]) -> None:
        """Add the HTTP publish addresses of the cluster's nodes (fetch_nodes(url) -> /_nodes/http body)."""
        for url in self.order():
            try:
                body = fetch_nodes(url)
            except Exception as exc:  # noqa: BLE001 - any failure: try the next node
                log.warning("engine_discovery_failed url=%s error=%s", redact_url(url), type(exc).__name__)
                continue
            scheme, _, rest = url.partition("://")
            userinfo = rest.split("@", 1)[0] + "@" if "@" in rest.split("/", 1)[0] else ""
            found = []
            for node in (body.get("nodes") or {}).values():
                match = _PUBLISH.match(str((node.get("http") or {}).get("publish_address", "")))
                if match:
                    found.append(f"{scheme}://{userinfo}{match['host']}:{match['port']}")
            with self._lock:
                added = [u for u in found if u not in self._urls]
                self._urls.extend(added)
            if added:
                log.info("engine_nodes_discovered added=%s", ",".join(redact_url(u) for u in added))
            return


_READ_ENDPOINT = re.compile(
    r"/(_search(/template|/scroll)?|_msearch(/template)?|_count|_mget|_field_caps|_validate/query|_explain(/[^/]*)?"
    r"|_render/template(/[^/]*)?|_termvectors(/[^/]*)?|_mtermvectors|_search_shards|_rank_eval|_async_search)/?$")


def is_idempotent_read(method: str, path: str) -> bool:
    """Return whether sending the request twice is harmless: GET/HEAD, or a POST to a read endpoint."""
    method = method.upper()
    if method in ("GET", "HEAD"):
        return True
    return method == "POST" and bool(_READ_ENDPOINT.search(path.split("?", 1)[0]))
