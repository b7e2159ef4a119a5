"""scripts/elasticsearch.sh: a secured node with file-realm users and roles, and a stop that leaves nothing."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import requests

from tests.conftest import ROOT, free_port, start_elasticsearch, stop_elasticsearch

SCRIPT = str(ROOT / "scripts" / "elasticsearch.sh")
ROLES = """\
docs_reader:
  cluster: [monitor]
  indices:
    - names: ["docs*"]
      privileges: [read, view_index_metadata]
"""
OTHER_ROLE = """\
cluster: [monitor]
indices:
  - names: ["other*"]
    privileges: [read]
"""


def _node_processes(run_dir: str) -> list[str]:
    """PIDs of java processes whose command line or environment names this instance's config dir."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes() if os.geteuid() == 0 else b""
        except OSError:
            continue
        conf = f"{run_dir}/config".encode()
        if b"java" in cmdline.split(b"\0")[0] and (conf in cmdline or conf in environ):
            found.append(entry.name)
    return found


def test_secured_node_users_roles_and_clean_stop(tmp_path):
    roles = tmp_path / "roles.yml"
    roles.write_text(ROLES)
    port = free_port()
    run_dir = f"/tmp/rescore-elasticsearch-{port}"  # the script's default; readable by its node user
    env = start_elasticsearch(
        port, free_port(),
        ELASTICSEARCH_SECURITY="true", ELASTICSEARCH_ROLES_FILE=str(roles),
        ELASTICSEARCH_USERS="alice:alice-pw:docs_reader",
    )
    url = f"http://127.0.0.1:{port}"
    admin = ("rescore-admin", "rescore-admin-pw")
    try:
        assert _node_processes(run_dir), "no node process found for the run dir"
        assert requests.get(f"{url}/_cluster/health", timeout=10).status_code == 401
        for index in ("docs-1", "secret-1"):
            r = requests.put(f"{url}/{index}/_doc/1?refresh=true", json={"t": index}, auth=admin, timeout=30)
            assert r.status_code == 201, r.text
        alice = ("alice", "alice-pw")
        assert requests.get(f"{url}/docs-1/_search", auth=alice, timeout=10).json()["hits"]["total"]["value"] == 1
        denied = requests.get(f"{url}/secret-1/_search", auth=alice, timeout=10)
        assert denied.status_code == 403 and "security_exception" in denied.text

        # Roles and users added to the running node (the file realm re-reads its files).
        role_file = tmp_path / "other.yml"
        role_file.write_text(OTHER_ROLE)
        for args in (["add-role", "other_reader", str(role_file)], ["add-user", "bob", "bob-pw", "other_reader"]):
            done = subprocess.run(["bash", SCRIPT, *args], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        bob = ("bob", "bob-pw")
        deadline_ok = False
        for _ in range(60):
            who = requests.get(f"{url}/_security/_authenticate", auth=bob, timeout=10)
            if who.status_code == 200 and who.json()["roles"] == ["other_reader"]:
                deadline_ok = True
                break
            time.sleep(0.5)
        assert deadline_ok, who.text
        assert requests.get(f"{url}/docs-1/_search", auth=bob, timeout=10).status_code == 403
        status = subprocess.run(["bash", SCRIPT, "status"], env=env, capture_output=True, text=True)
        assert status.returncode == 0 and '"status"' in status.stdout
    finally:
        stopped = stop_elasticsearch(env)
    assert stopped.returncode == 0, stopped.stderr
    assert not _node_processes(run_dir)
    status = subprocess.run(["bash", SCRIPT, "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 1 and "not running" in status.stderr
