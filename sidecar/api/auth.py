"""Optional key authentication (one key set for the sidecar's own API, one for the proxy) and the
caller's engine credentials.

A key comes as "Authorization: Bearer <key>" or "X-Rescore-Api-Key: <key>". Keys are compared as
SHA-256 digests with hmac.compare_digest against every configured key, so neither the matching
key's position nor its length leaks through timing. Keys are never logged and never forwarded.

Everything else that identifies the caller to the engine (Authorization when it is not a sidecar
key, cookies, Elasticsearch API-key/run-as/JWT headers, OpenSearch proxy-auth and tenant headers)
reaches the engine: as received on the pass-through, and bound to the request for the structured
calls made on the caller's behalf (search flow, templates, msearch entries, compare, feedback report).
"""
from __future__ import annotations

import hashlib
import hmac

from flask import Flask, current_app, g, request

from sidecar.api.errors import Unauthorized
from sidecar.engine.client import bind_caller_auth, reset_caller_auth

KEY_HEADER = "X-Rescore-Api-Key"
# Headers by which an engine identifies a caller (lower case): Authorization (Basic, Bearer, ApiKey,
# JWT), Cookie (Dashboards/Kibana sessions), Elasticsearch's secondary auth, run-as and JWT client
# authentication, OpenSearch's tenant and proxy-authentication headers.
ENGINE_AUTH_HEADERS = frozenset({
    "authorization", "cookie", "es-secondary-authorization", "es-security-runas-user",
    "es-client-authentication", "securitytenant", "x-proxy-user", "x-proxy-roles", "x-forwarded-for",
})

# Blueprints whose requests end up at the engine (guarded by RESCORE_PROXY_API_KEYS).
_PROXIED = frozenset({"search", "proxy"})
# The sidecar's own endpoints that read or write the engine: guarded by a key of either set
# whenever any key is set (they act for the caller, like the proxy).
_ENGINE_OWN = frozenset({"ui.compare", "ui.options", "feedback.feedback", "feedback.feedback_report"})
# Endpoints that probes must reach without a key.
# /metrics holds counters and latencies only (no texts, no keys): open like the probes.
# The /ui page's static files are open too: its script sends the key the user types.
_OPEN = frozenset({"admin.health", "admin.ready", "admin.metrics", "openapi.openapi_json",
                   "ui.page", "ui.script", "ui.style"})


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def presented_key() -> str | None:
    """Return the key of the current request (X-Rescore-Api-Key, else the bearer token), or None."""
    dedicated = request.headers.get(KEY_HEADER, "").strip()
    return dedicated or _bearer()


def _all_keys() -> tuple[str, ...]:
    settings = current_app.extensions["rescore"].settings
    return settings.api_key_set + settings.proxy_api_key_set


def authorization_is_a_key() -> bool:
    """Return whether the request's Authorization header carries a configured sidecar key."""
    keys = _all_keys()
    return bool(keys) and key_matches(_bearer(), keys)


def forward_headers() -> list[tuple[str, str]]:
    """Return the request's headers for the engine: all but the sidecar's key (in either header)."""
    drop_authorization = authorization_is_a_key()
    return [(name, value) for name, value in request.headers.items()
            if name.lower() != KEY_HEADER.lower() and not (drop_authorization and name.lower() == "authorization")]


def engine_auth_headers() -> tuple[tuple[str, str], ...]:
    """Return the caller's own engine credentials: its identity headers, minus any sidecar key."""
    return tuple((name, value) for name, value in forward_headers() if name.lower() in ENGINE_AUTH_HEADERS)


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
    if request.endpoint in _ENGINE_OWN:
        return settings.api_key_set + settings.proxy_api_key_set
    return settings.api_key_set


def is_authenticated() -> bool:
    """Return whether the request carries one of RESCORE_API_KEYS (True when none are set)."""
    keys = current_app.extensions["rescore"].settings.api_key_set
    return not keys or key_matches(presented_key(), keys)


def install(app: Flask) -> None:
    """Check the key before every request whose endpoint is guarded; bind the caller's engine credentials."""

    @app.before_request
    def _check_key() -> None:
        keys = required_keys()
        if keys and not key_matches(presented_key(), keys):
            raise Unauthorized(f"missing or invalid API key; send 'Authorization: Bearer <key>' or "
                               f"'{KEY_HEADER}: <key>'", field="Authorization")
        g.rescore_caller_token = bind_caller_auth(engine_auth_headers())

    @app.teardown_request
    def _unbind(_exc) -> None:
        token = g.pop("rescore_caller_token", None)
        if token is not None:
            reset_caller_auth(token)
