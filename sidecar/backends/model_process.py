"""Run a local backend in a child process of its own (RESCORE_MODEL_PROCESS, on by default).

Why a process and not only lower thread priority: with the model in the worker, plain searches
through the sidecar were ~50 ms (p50) and ~150-250 ms (p99) slower than the same searches sent
straight to OpenSearch under scripts/bench_serving.py's mixed load, although the model threads were
niced (RESCORE_MODEL_NICE) and admission shed almost every rerank; with the model out of the worker's
process the same load gave p50 +17 ms. Two things a niced thread cannot escape: the worker's Python
interpreter lock around the model's batch preparation, and Linux sharing CPU time between scheduling
groups (a session's autogroup on a plain host, a cgroup) before it looks at the niceness of threads
inside a group, so a busy model charges the worker's group. The child starts its own session (its
own autogroup) and sets both its own niceness and its group's (an autogroup with the default group
nice weighs as much as the worker's whole session: same load, plain p50 92 ms with it vs 72 ms with
the group niced, direct OpenSearch 73 vs 30 ms); under Docker or Kubernetes it stays in the
container's cgroup, where the process niceness ranks it below the request threads.

The worker keeps everything else (cache, tokenization, admission, batching); only already encoded
batches cross the pipe (token ids out, one float per pair back). The child exits when the worker's
end of the pipe closes (the worker stopped or died). A child found dead is restarted before the next
batch; a batch the child dies in fails as a BackendError (a model fault for the circuit breaker).
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sidecar import memtrim
from sidecar.backends import base
from sidecar.backends.base import Backend, BackendError, BatchItem, InputFormat, TokenizerSpec
from sidecar.observability.logs import JsonFormatter
from sidecar.rerank.priority import lower_process_priority
from sidecar.rerank.options import OptionsError, RerankerOptions

logger = logging.getLogger(__name__)

# Errors the child may report, re-raised in the worker as the same class (anything else: BackendError).
_ERRORS: dict[str, type[Exception]] = {cls.__name__: cls for cls in (
    base.BackendError, base.BackendTimeoutError, base.ModelNotFoundError, base.MissingExtraError, OptionsError)}
# Longest wait for the child to load its model (an 8B model from disk takes minutes).
LOAD_TIMEOUT_S = 900.0


class ModelProcessBackend(Backend):
    """A Backend whose model lives in a child process; same contract as the backend it wraps."""

    def __init__(self, options: RerankerOptions) -> None:
        self._options = replace(options, model_process=False)
        self._lock = threading.Lock()  # one batch at a time on the pipe (the scheduler has one worker)
        self._conn: Connection | None = None
        self._process: subprocess.Popen | None = None
        self._info: dict[str, Any] = {}
        self.restarts = 0
        self._start()

    @classmethod
    def from_options(cls, options: Any) -> ModelProcessBackend:
        return cls(options)

    # --- the contract -------------------------------------------------------------------------

    @property
    def input_format(self) -> InputFormat:  # type: ignore[override]
        return InputFormat(self._info["input_format"])

    @property
    def model_key(self) -> str:
        return self._info["model_key"]

    @property
    def device(self) -> str:
        return self._info["device"]

    def tokenizer_spec(self) -> TokenizerSpec | None:
        spec = self._info["tokenizer_spec"]
        return None if spec is None else TokenizerSpec(tokenizer_file=Path(spec[0]), max_length=spec[1])

    def score(self, batch: list[BatchItem]) -> list[float]:
        return self._call("score", batch)

    def warmup(self) -> None:
        self._call("warmup", None)

    def health(self) -> dict[str, Any]:
        # Answered from what the child said at start: a health probe must not wait behind a batch.
        process = self._process
        alive = process is not None and process.poll() is None
        return {**self._info["health"], "model_process": {"pid": process.pid if process else None,
                                                           "alive": alive, "restarts": self.restarts}}

    def close(self) -> None:
        with self._lock:
            self._stop()

    # --- the child ------------------------------------------------------------------------------

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])  # the directory holding the sidecar package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        try:
            # start_new_session: its own session, hence its own autogroup (see the module docstring).
            self._process = subprocess.Popen(
                [sys.executable, "-m", "sidecar.backends.model_process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=env, start_new_session=True, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        json_logs = any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
        self._conn.send(("init", self._options, {"level": logging.getLogger().level,
                                                 "format": "json" if json_logs else "text",
                                                 "malloc_trim_s": memtrim.interval_s()}))
        if not self._conn.poll(LOAD_TIMEOUT_S):
            self._stop()
            raise BackendError(f"the model process did not load its model within {LOAD_TIMEOUT_S:.0f} s")
        self._info = self._receive()
        logger.info("model_process_started pid=%d model=%s device=%s", self._process.pid,
                    self._info["model_key"], self._info["device"])

    def _call(self, command: str, payload: Any) -> Any:
        with self._lock:
            if self._conn is None or (self._process is not None and self._process.poll() is not None):
                self._restart()
            try:
                self._conn.send((command, payload))
                return self._receive()
            except (EOFError, OSError) as exc:
                code = self._process.poll() if self._process else None
                self._stop()
                raise BackendError(f"the model process exited (code {code}) during {command}: "
                                   f"{type(exc).__name__}") from exc

    def _receive(self) -> Any:
        assert self._conn is not None
        kind, *rest = self._conn.recv()
        if kind == "ok":
            return rest[0]
        name, message = rest
        raise _ERRORS.get(name, BackendError)(message)

    def _restart(self) -> None:
        self._stop()
        self.restarts += 1
        logger.warning("model_process_restart restarts=%d", self.restarts)
        self._start()

    def _stop(self) -> None:
        conn, process, self._conn = self._conn, self._process, None
        if conn is not None:
            try:
                conn.send(("close", None))
            except OSError:
                pass
            conn.close()
        if process is not None and process.poll() is None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _serve(conn: Connection) -> None:
    """The child's loop: build the backend from the first message, then answer batches until closed."""
    from sidecar.backends import create_backend
    from sidecar.observability.logs import configure_logging

    command, options, worker = conn.recv()
    configure_logging(logging.getLevelName(worker["level"]), worker["format"])  # as the worker logs
    memtrim.start(worker["malloc_trim_s"])  # ONNX Runtime's freed buffers go back to the OS here too
    if options.model_nice:
        lower_process_priority(options.model_nice)
    try:
        backend = create_backend(options)
        spec = backend.tokenizer_spec()
        conn.send(("ok", {"model_key": backend.model_key, "device": backend.device,
                          "input_format": backend.input_format.value, "health": backend.health(),
                          "tokenizer_spec": None if spec is None else (str(spec.tokenizer_file), spec.max_length)}))
    except Exception as exc:  # reported to the worker, which raises it as the same class
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    while True:
        try:
            command, payload = conn.recv()
        except (EOFError, OSError):  # the worker is gone
            break
        if command == "close":
            break
        started = time.perf_counter()
        try:
            result = backend.score(payload) if command == "score" else backend.warmup()
            conn.send(("ok", result))
        except Exception as exc:  # a model fault: the worker's breaker counts it
            logger.warning("model_process_batch_failed command=%s error=%s: %s after %.1f ms", command,
                           type(exc).__name__, exc, (time.perf_counter() - started) * 1e3)
            conn.send(("error", type(exc).__name__, f"{type(exc).__name__}: {exc}"))
    backend.close()


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
