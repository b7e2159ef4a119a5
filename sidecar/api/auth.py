"""Optional bearer-key authentication: one key set for the sidecar's own API, one for the proxy.

Keys are compared as SHA-256 digests with hmac.compare_digest against every configured key, so
neither the matching key's position nor its length leaks through timing. Keys are never logged.
"""
from __future__ import annotations

import hashlib
import hmac

from flask import Flask, current_app, request

from sidecar.api.errors import Unauthorized

# Blueprints whose requests end up at OpenSearch (guarded by RESCORE_PROXY_API_KEYS).
_PROXIED = frozenset({"search", "proxy"})
# Endpoints that probes must reach without a key.
# /metrics holds counters and latencies only (no texts, no keys): open like the probes.
# The /ui page's static files are open too: its script sends the key the user types.
_OPEN = frozenset({"admin.health", "admin.ready", "admin.metrics", "openapi.openapi_json",
                   "ui.page", "ui.script", "ui.style"})


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def presented_key() -> str | None:
    """Return the bearer token of the current request, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def key_matches(presented: str | None, keys: tuple[str, ...]) -> bool:
    """Return whether presented equals one of keys, in time independent of which and of their length."""
    if presented is None:
        return False
    digest = _digest(presented)
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(digest, _digest(key))
    return matched


def required_keys() -> tuple[str, ...]:
    """Return the keys that guard the current request's endpoint (empty = open)."""
    settings = current_app.extensions["rescore"].settings
    if request.endpoint in _OPEN:
        return ()
    if request.blueprint in _PROXIED:
        return settings.proxy_api_key_set
    return settings.api_key_set


def is_authenticated() -> bool:
    """Return whether the request carries one of RESCORE_API_KEYS (True when none are set)."""
    keys = current_app.extensions["rescore"].settings.api_key_set
    return not keys or key_matches(presented_key(), keys)


def install(app: Flask) -> None:
    """Check the bearer key before every request whose endpoint is guarded."""

    @app.before_request
    def _check_key() -> None:
        keys = required_keys()
        if keys and not key_matches(presented_key(), keys):
            raise Unauthorized("missing or invalid API key; send 'Authorization: Bearer <key>'",
                               field="Authorization")
