"""Give freed heap memory back to the OS in each worker (glibc's malloc_trim).

glibc keeps memory freed by a thread in that thread's arena and returns only the top of each
heap, so a gthread worker that served large requests (long queries, big responses, tokenizer and
ONNX buffers) keeps its peak RSS forever and creeps upwards as fragments pile up: in the soak a
worker held 1,046 MB of which malloc_trim(0) gave back 678 MB at once. A daemon thread per process
calls malloc_trim(0) every RESCORE_MALLOC_TRIM_S seconds; elsewhere (no glibc) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_STARTED_IN: int | None = None  # pid of the process whose trimmer thread runs
_INTERVAL_S = 0.0  # its interval (the model process, sidecar/backends/model_process.py, uses the same)


def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


def trim() -> bool:
    """Return memory at the top of every malloc arena to the OS; False where that is not possible."""
    function = _malloc_trim()
    return bool(function and function(0))


def start(interval_s: float) -> bool:
    """Start this process's trimmer thread (once per process; 0 = off); return whether one runs."""
    global _STARTED_IN, _INTERVAL_S
    if interval_s <= 0 or _malloc_trim() is None:
        return False
    with _LOCK:
        if _STARTED_IN == os.getpid():
            return True
        _STARTED_IN = os.getpid()
        _INTERVAL_S = interval_s
    function = _malloc_trim()
    wake = threading.Event()

    def loop() -> None:
        while not wake.wait(interval_s):
            function(0)

    threading.Thread(target=loop, name="malloc-trim", daemon=True).start()
    log.info("malloc_trim interval_s=%s", interval_s)
    return True


def interval_s() -> float:
    """Return the interval of this process's trimmer (0 = none runs)."""
    return _INTERVAL_S if _STARTED_IN == os.getpid() else 0.0
