"""Run the model below the request threads' CPU priority (Linux thread niceness).

On a busy CPU the model's threads then yield to the threads that carry plain traffic, so a rerank
costs plain searches little; on an idle CPU the model still gets every cycle. Threads inherit the
niceness of the thread that created them, so a library's thread pool is lowered by naming the
threads that appeared while it was built. Nothing happens where the OS has no per-thread nice.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)
_TASKS = "/proc/self/task"


def lower_current_thread(nice: int) -> None:
    """Set this thread's niceness to `nice` (0 = leave it)."""
    if nice > 0:
        _set_nice(threading.get_native_id(), nice)


@contextlib.contextmanager
def lowered_new_threads(nice: int) -> Iterator[None]:
    """Lower every thread created inside the block (e.g. ONNX Runtime's intra-op pool) to `nice`."""
    before = _tasks() if nice > 0 else set()
    yield
    if nice > 0:
        for tid in _tasks() - before:
            _set_nice(tid, nice)


def lower_process_priority(nice: int) -> None:
    """Rank this process (started in a session of its own) below the request threads of the process
    that started it, when both want the CPU: the model's child, the rerank pool.

    Its own session is its own autogroup on a plain host, and the kernel weighs autogroups against
    each other by the group's nice value, not by the niceness of the processes inside: without the
    group's value the process would take as much CPU as the whole worker. Inside a container's cgroup
    autogroups do not apply and the process niceness does the ranking.
    """
    os.nice(max(0, nice - os.nice(0)))
    try:
        with open("/proc/self/autogroup", "w") as group:
            group.write(str(nice))
    except OSError:  # a kernel without autogroups (or not Linux): the niceness above is what counts
        pass


def _tasks() -> set[int]:
    try:
        return {int(name) for name in os.listdir(_TASKS)}
    except OSError:
        return set()


def _set_nice(tid: int, nice: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))
    except (OSError, AttributeError) as exc:  # not Linux, or not allowed: run at normal priority
        logger.debug("model_nice_skipped tid=%d error=%s", tid, exc)
