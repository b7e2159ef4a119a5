"""Start and keep alive the rerank pool: the sidecar's second gunicorn (README "Serving").

The front's gunicorn master (sidecar/gunicorn.conf.py, on_starting) runs a PoolSupervisor: it starts
`gunicorn -c sidecar/gunicorn.conf.py sidecar.wsgi:app` with RESCORE_SERVING_ROLE=pool, bound to a
unix socket in a private directory, in a session of its own (its own autogroup, niced there by
gunicorn.conf.py), and starts it again if it exits. The pool's master gets SIGTERM when the front's
master dies, however it dies (Linux parent-death signal), so no pool outlives its front.
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def gunicorn_argv() -> list[str]:
    """This interpreter's gunicorn with the packaged config and app."""
    config = Path(__file__).resolve().parent / "gunicorn.conf.py"
    return [sys.executable, "-m", "gunicorn", "-c", str(config), "sidecar.wsgi:app"]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor's stop() is the only cleanup
        pass


class PoolSupervisor:
    """One pool gunicorn for the lifetime of the front's master."""

    def __init__(self, env: dict[str, str], logger: Any = log) -> None:
        self._log = logger  # the master's gunicorn logger (its format), or this module's
        self.directory = tempfile.mkdtemp(prefix="rescore-pool-")  # mode 0700: only this user connects
        self.socket_path = os.path.join(self.directory, "pool.sock")
        # The pool binds RESCORE_RERANK_POOL_SOCKET; its role keeps it from handing over or starting a pool.
        self._env = {**env, "RESCORE_SERVING_ROLE": "pool", "RESCORE_RERANK_POOL_SOCKET": self.socket_path}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen | None = None
        self.restarts = 0

    def start(self, ready_timeout_s: float) -> None:
        """Start the pool and its watcher; wait until a pool worker answers (it has loaded its model
        when RESCORE_PRELOAD_MODEL is on), as the front's own workers did before there was a pool."""
        self._spawn()
        threading.Thread(target=self._watch, name="rerank-pool-supervisor", daemon=True).start()
        if not self.wait_ready(ready_timeout_s):
            self._log.warning("rerank_pool_not_ready socket=%s after_s=%.0f; reranks answer in first-stage order "
                              "until it is", self.socket_path, ready_timeout_s)

    def wait_ready(self, timeout_s: float) -> bool:
        """Return whether a pool worker answered GET /health within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            process = self._process
            if process is not None and process.poll() is not None:
                return False  # it exited (bad settings: its own log says why)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    probe.connect(self.socket_path)
                    probe.sendall(b"GET /health HTTP/1.1\r\nHost: rerank-pool\r\nConnection: close\r\n\r\n")
                    if probe.recv(12).startswith(b"HTTP/1.1 200"):
                        return True
                except OSError:
                    pass
            time.sleep(0.1)
        return False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _spawn(self) -> None:
        with self._lock:
            # A pool that died left its socket file behind; the new one binds a fresh one.
            with contextlib.suppress(OSError):
                os.unlink(self.socket_path)
            self._process = subprocess.Popen(gunicorn_argv(), env=self._env, start_new_session=True,
                                             stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self._log.info("rerank_pool_started pid=%d socket=%s", self._process.pid, self.socket_path)

    def _watch(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            process = self._process
            started = time.monotonic()
            if process is not None:
                # The front's arbiter may reap it first (its SIGCHLD handler waits for any child):
                # then the exit status is lost, but not the exit.
                process.wait()
            if self._stopping.is_set():
                return
            failures = 0 if time.monotonic() - started > 60 else failures + 1
            delay = _RESTART_DELAYS_S[min(failures, len(_RESTART_DELAYS_S) - 1)]
            self._log.error("rerank_pool_exited pid=%s restart_in_s=%.0f", getattr(process, "pid", None), delay)
            if self._stopping.wait(delay):
                return
            self.restarts += 1
            self._spawn()

    def stop(self, timeout_s: float) -> None:
        """Stop the pool gracefully (SIGTERM: its workers finish in-flight requests), then remove its directory."""
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

