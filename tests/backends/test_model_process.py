"""The model in a child process (RESCORE_MODEL_PROCESS): same scores, own session, restarts, errors."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from sidecar.backends import create_backend
from sidecar.backends.base import BackendError, ModelNotFoundError
from sidecar.backends.model_process import ModelProcessBackend
from sidecar.rerank.options import RerankerOptions
from sidecar.rerank.prompt import build_encoder
from sidecar.rerank.service import build_reranker

QUERY = "how do solar panels make electricity"
DOCS = ["Photovoltaic cells turn sunlight into electric current.", "Sourdough bread needs a starter culture.",
        "Wind turbines convert the kinetic energy of wind.", "Solar panels are made of silicon cells that "
        "produce direct current when light hits them, and an inverter turns it into alternating current."]


@pytest.fixture(scope="module")
def child():
    backend = ModelProcessBackend(RerankerOptions(model_nice=7))
    yield backend
    backend.close()


def _batch(backend):
    return build_encoder(backend.input_format, backend.tokenizer_spec()).encode(QUERY, DOCS, "")


def test_scores_equal_the_in_process_backend(child):
    local = create_backend(RerankerOptions())
    try:
        batch = _batch(local)
        assert child.model_key == local.model_key and child.device == local.device == "cpu"
        assert child.score(batch) == pytest.approx(local.score(batch), abs=1e-4)
    finally:
        local.close()


def test_child_has_its_own_session_and_niceness(child):
    pid = child.health()["model_process"]["pid"]
    assert pid != os.getpid() and os.getsid(pid) == pid != os.getsid(0)  # own session: own autogroup
    assert os.getpriority(os.PRIO_PROCESS, pid) >= 7
    with open(f"/proc/{pid}/stat") as fh:
        assert int(fh.read().rsplit(")", 1)[1].split()[1]) == os.getpid()  # a child of this process


def test_childs_autogroup_is_niced_too(child):
    """Autogroups are weighed by the group's own nice value; without it the niced child would still
    take as much CPU as the whole worker's session (measured: plain searches ~2x slower)."""
    if not os.path.exists("/proc/self/autogroup"):
        pytest.skip("kernel without autogroups (a container's cgroup ranks by process niceness)")
    pid = child.health()["model_process"]["pid"]
    with open(f"/proc/{pid}/autogroup") as fh:
        assert fh.read().split()[-1] == "7"
    with open("/proc/self/autogroup") as fh:
        # the worker's own group is left as it was; an empty file means this process sits in a cgroup
        # other than the root, where the kernel ranks by cgroup and prints no autogroup (CI runners)
        own = fh.read().split()
    assert not own or own[-1] != "7"


def test_a_dead_child_is_restarted_and_a_batch_it_dies_in_fails(child):
    batch = _batch(child)
    want = child.score(batch)
    pid = child.health()["model_process"]["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    assert child.score(batch) == pytest.approx(want, abs=1e-6)  # found dead before sending: restarted
    assert child.health()["model_process"]["restarts"] == 1
    # Killed while scoring a long batch: that batch fails as a model fault, the next one is scored.
    encoder = build_encoder(child.input_format, child.tokenizer_spec())
    long_batch = encoder.encode(QUERY, [" ".join(DOCS * 12) + f" {n}" for n in range(96)], "")
    pid = child.health()["model_process"]["pid"]
    killer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
    killer.start()
    started = time.monotonic()
    with pytest.raises(BackendError, match="model process exited"):
        child.score(long_batch)
    assert time.monotonic() - started < 30
    killer.join()
    assert child.score(batch) == pytest.approx(want, abs=1e-6)
    health = child.health()["model_process"]
    assert health["restarts"] == 2 and health["alive"] and health["pid"] != pid


def test_close_ends_the_child():
    backend = ModelProcessBackend(RerankerOptions())
    pid = backend.health()["model_process"]["pid"]
    backend.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped by close(): nothing left running


def test_load_errors_keep_their_class_and_message(tmp_path):
    with pytest.raises(ModelNotFoundError, match="RESCORE_MODEL"):
        ModelProcessBackend(RerankerOptions(model=str(tmp_path / "missing")))


def test_service_uses_the_child_by_default_and_not_when_off():
    on = build_reranker(RerankerOptions())
    off = build_reranker(RerankerOptions(model_process=False))
    try:
        assert isinstance(on.backend, ModelProcessBackend)
        assert not isinstance(off.backend, ModelProcessBackend)
        a, b = on.score(QUERY, DOCS), off.score(QUERY, DOCS)
        assert a.status == b.status == "ok" and a.scores == pytest.approx(b.scores, abs=1e-4)
    finally:
        on.close()
        off.close()
