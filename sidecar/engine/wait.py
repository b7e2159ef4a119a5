"""How long a pass-through request may legitimately keep the engine busy before it answers.

The proxy's read timeout must never be shorter than what the request itself asks the engine to
wait: `?timeout=`, `master_timeout`/`cluster_manager_timeout`, `wait_for_active_shards`,
`_cluster/health?wait_for_status=`, `wait_for_completion`, `refresh=wait_for`, hot threads
sampling. Engine-neutral: OpenSearch and Elasticsearch share these parameters and defaults.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl

# Parameters whose value is a time the engine may wait (ack, cluster-manager, search timeouts).
_TIME_PARAMS = ("timeout", "master_timeout", "cluster_manager_timeout", "wait_for_timeout")
# Parameters that make the engine wait for something, up to `timeout` (default below) when absent.
_WAIT_PARAMS = ("wait_for_active_shards", "wait_for_status", "wait_for_nodes", "wait_for_events",
                "wait_for_no_relocating_shards", "wait_for_no_initializing_shards")
# The engines' own defaults for those waits are 30 s (ack, cluster manager) or 1 m (bulk/index
# `timeout` with wait_for_active_shards): count the larger one whenever the request waits implicitly.
IMPLICIT_WAIT_S = 60.0
# APIs that run until the work is done unless wait_for_completion=false.
_BLOCKING_BY_DEFAULT = re.compile(r"/_(reindex|update_by_query|delete_by_query|forcemerge|upgrade)(/|$)")
_UNITS = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TIME = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(nanos|micros|ms|s|m|h|d)?\s*$")


def parse_time_s(value: str) -> float | None:
    """Return a time value ('30s', '1m', '500ms', '-1') in seconds; None for infinite or unparseable."""
    match = _TIME.match(value or "")
    if not match:
        return None
    number = float(match.group(1))
    if number < 0:
        return None  # -1: wait forever
    return number * _UNITS[match.group(2) or "ms"]


def requested_wait_s(method: str, path: str, query_string: bytes | str) -> tuple[float, bool]:
    """Return (seconds the engine may wait on this request, unbounded?).

    Unbounded means the request asks the engine to wait until work is done with no time limit
    (wait_for_completion without timeout, a blocking _reindex, refresh=wait_for, a -1 timeout):
    the proxy must then wait as long as the engine does.
    """
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    params: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        params[key] = value
    wait = 0.0
    for key in _TIME_PARAMS:
        if key in params:
            seconds = parse_time_s(params[key])
            if seconds is None:
                if params[key].strip().startswith("-"):
                    return 0.0, True
                continue  # malformed: the engine answers 400 at once
            wait += seconds
    if "timeout" not in params and any(k in params for k in _WAIT_PARAMS):
        wait += IMPLICIT_WAIT_S
    completion = params.get("wait_for_completion")
    if completion is not None and completion.lower() not in ("false", "0", "no", "off"):
        if "timeout" not in params:
            return wait, True
    elif completion is None and method.upper() == "POST" and _BLOCKING_BY_DEFAULT.search(path):
        return wait, True
    if params.get("refresh") == "wait_for":
        return wait, True
    if "hot_threads" in path or "hotthreads" in path:
        interval = parse_time_s(params.get("interval", "500ms")) or 0.5
        try:
            snapshots = int(params.get("snapshots", "10"))
        except ValueError:
            snapshots = 10
        wait += interval * max(snapshots, 1)
    return wait, False


def read_timeout_s(base_s: float, method: str, path: str, query_string: bytes | str) -> float | None:
    """Return the read timeout for a forwarded request: base + what it asks to wait; None = unbounded."""
    wait, unbounded = requested_wait_s(method, path, query_string)
    if unbounded:
        return None
    return base_s + wait
