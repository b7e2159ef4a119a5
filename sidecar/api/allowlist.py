"""The pass-through allowlist: which engine REST APIs a caller may reach through the sidecar.

Every request of the proxied blueprints (pass-through and the search routes) is classified into
the API groups it needs (config.PROXY_GROUPS); RESCORE_PROXY_ALLOW opens groups. A request that
needs a group that is not open answers 403 naming the setting and the group. The engine's own
security still decides everything an allowed request may do (the caller's credentials reach it).

Classification follows the engines' REST layout (OpenSearch rest-api-spec, Elasticsearch's REST
API reference): a path starting with "_" is a cluster-level API, anything else starts with an
index expression. Unknown APIs fall into an admin group, so the default never opens them.
"""
from __future__ import annotations

from urllib.parse import unquote

from flask import Flask, current_app, request

from sidecar.api.errors import Forbidden

READS = frozenset({"GET", "HEAD", "OPTIONS"})

# Cluster-level (first segment) and index-level (second segment) APIs that are searches whatever
# the method (scroll and point-in-time deletes included).
_SEARCH = frozenset({"_search", "_msearch", "_count", "_field_caps", "_validate", "_render", "_rank_eval",
                     "_search_shards", "_terms_enum", "_knn_search", "_async_search", "_pit", "_sql", "_eql",
                     "_query", "_explain", "_mvt"})
# Document reads (any method: _mget and friends take POST bodies).
_DOC_READS = frozenset({"_mget", "_termvectors", "_mtermvectors", "_analyze"})
# Document writes; _refresh too, which indexing apps call after writing.
_DOC_WRITES = frozenset({"_bulk", "_create", "_update", "_update_by_query", "_delete_by_query", "_reindex",
                         "_refresh"})
# Index metadata: GET/HEAD reads it, any other method administers indices.
_INDEX_META = frozenset({"_mapping", "_mappings", "_settings", "_alias", "_aliases", "_stats", "_segments",
                         "_recovery", "_shard_stores", "_upgrade", "_resolve", "_data_stream", "_index_template",
                         "_template", "_component_template", "_field_usage_stats", "_disk_usage"})
# Cluster information: GET/HEAD reads it, any other method administers the cluster.
_CLUSTER_INFO = frozenset({"_cat", "_list", "_cluster", "_nodes", "_tasks", "_remote", "_dangling", "_wlm", "_xpack",
                           "_license", "_script_context", "_script_language", "_ingest", "_remotestore"})
# The current user's own identity (Elasticsearch): reads in every method.
_WHO_AM_I = (("_security", "_authenticate"), ("_security", "user", "_has_privileges"),
             ("_security", "user", "_privileges"))


def is_wildcard(expression: str) -> bool:
    """Return whether an index expression names indices by pattern (`*`) or all of them (`_all`)."""
    return any("*" in part or part.strip() in ("_all", "") for part in expression.split(","))


def required_groups(method: str, segments: list[str]) -> tuple[str, ...]:
    """Return the API groups a request needs: method and decoded, non-empty path segments."""
    method = method.upper()
    if any(segment in (".", "..") for segment in segments):
        # Dot segments name another API than the one they appear under to anything that resolves them.
        return ("cluster_admin",)
    if not segments:
        return ("read",) if method in READS else ("cluster_admin",)
    first = segments[0]
    if first.startswith("_") and first != "_all":
        return _cluster_level(method, segments)
    return _index_level(method, first, segments[1:])


def _cluster_level(method: str, segments: list[str]) -> tuple[str, ...]:
    first, rest = segments[0], segments[1:]
    if first in ("_plugins", "_opendistro"):
        return ("plugins",)
    if first == "_snapshot":
        return ("snapshot",)
    if first == "_scripts":
        if rest[-1:] == ["_execute"] or method not in READS:
            return ("scripts",)
        return ("read",)
    if first == "_search" and rest[:1] == ["pipeline"]:
        return ("read",) if method in READS else ("cluster_admin",)
    if first in _SEARCH:
        return ("search",)
    if first in _DOC_READS:
        return ("read",)
    if first in _DOC_WRITES:
        return ("document",)
    if first == "_ingest" and rest[-1:] == ["_simulate"]:
        return ("read",)
    if first == "_cluster" and rest[:2] == ["allocation", "explain"]:
        return ("read",)
    if first == "_cluster" and rest[:1] == ["component_template"]:
        return ("read",) if method in READS else ("index_admin",)
    if first in _INDEX_META:
        if method in READS:
            return ("read",)
        if first == "_data_stream" and method == "DELETE" and rest and is_wildcard(rest[0]):
            return ("index_admin", "wildcard_delete")
        return ("index_admin",)
    if first in _CLUSTER_INFO:
        return ("read",) if method in READS else ("cluster_admin",)
    if any(tuple(segments[:len(path)]) == path for path in _WHO_AM_I):
        return ("read",)
    if first in ("_flush", "_forcemerge", "_cache", "_open", "_close"):
        return ("index_admin",)
    # _security, _ml, _ilm, _transform, _watcher, _inference, ... and anything unknown.
    return ("cluster_admin",)


def _index_level(method: str, expression: str, rest: list[str]) -> tuple[str, ...]:
    if not rest:
        if method in READS:
            return ("read",)
        if method == "DELETE" and is_wildcard(expression):
            return ("index_admin", "wildcard_delete")
        return ("index_admin",)
    api = rest[0]
    if api == "_search" and rest[1:2] == ["pipeline"]:
        return ("cluster_admin",)
    if api in _SEARCH:
        return ("search",)
    if api in ("_doc", "_source"):
        return ("read",) if method in READS else ("document",)
    if api in _DOC_READS:
        return ("read",)
    if api == "_delete_by_query" and is_wildcard(expression):
        return ("document", "wildcard_delete")
    if api in _DOC_WRITES:
        return ("document",)
    if api in _INDEX_META:
        return ("read",) if method in READS else ("index_admin",)
    # _open, _close, _block, _flush, _forcemerge, _cache, _rollover, _shrink, _split, _clone, and
    # anything unknown (including legacy type paths).
    return ("index_admin",)


def request_segments() -> list[str]:
    """Return the current request's path segments as the engine will read them (each one decoded)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw and raw.startswith("/"):
        path = raw.split("?", 1)[0]
        return [unquote(segment) for segment in path.split("/") if segment]
    return [segment for segment in request.path.split("/") if segment]


def install(app: Flask, blueprints: frozenset[str]) -> None:
    """Refuse requests of `blueprints` that need an API group RESCORE_PROXY_ALLOW does not open."""

    @app.before_request
    def _check_allowed() -> None:
        if request.blueprint not in blueprints:
            return
        allowed = current_app.extensions["rescore"].settings.proxy_allow_groups
        for group in required_groups(request.method, request_segments()):
            if group not in allowed:
                raise Forbidden(f"{request.method} {request.path} is in the API group {group!r}, which "
                                f"RESCORE_PROXY_ALLOW does not open (open: {', '.join(sorted(allowed))}); add "
                                f"{group} (or all) to RESCORE_PROXY_ALLOW to forward it", group=group)
