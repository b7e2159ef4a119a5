"""The `rescore` CLI: help for every subcommand, flag validation, exit codes, the installed entry points."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.commands import COMMANDS
from sidecar.commands.evaluate import mode_list, parse_mode
from sidecar.commands.serve import FLAG_FIELDS, gunicorn_argv
from sidecar.config import Settings
from sidecar.rerank.options import RerankerOptions
from tests.conftest import ROOT, free_port

# Subcommand -> flags its --help must mention (the ones README and DESIGN.md §7 promise).
KEY_FLAGS = {
    "serve": ["--host", "--port", "--workers", "--opensearch-url", "--backend", "--model", "--check"],
    "install-templates": ["--url", "--index", "--recreate"],
    "ingest": ["corpus", "--index", "--batch-size", "--recreate", "--no-embed", "--url"],
    "evaluate": ["--dataset", "--modes", "--out", "--index", "--sidecar", "--window", "--max-queries"],
    "bench": ["--device", "--json", "--arch", "--random-weights", "--quick"],
    "install-ml-pipeline": ["--sidecar-url", "--index", "--pipeline", "--fields"],
    "loadtest": ["--sidecar", "--opensearch", "--index", "--clients", "--seconds", "--json"],
    "robustness": ["--datasets", "--cache", "--window", "--max-queries", "--out", "--url"],
    "soak": ["--opensearch", "--index", "--corpus", "--minutes", "--warmup-s", "--max-growth-pct", "--json"],
}
# The scripts stay thin wrappers with their old flags (README, DESIGN.md §7, docker-compose call them).
SCRIPT_FLAGS = {
    "ingest.py": KEY_FLAGS["ingest"],
    "install_templates.py": KEY_FLAGS["install-templates"],
    "install_ml_pipeline.py": KEY_FLAGS["install-ml-pipeline"],
    "evaluate.py": KEY_FLAGS["evaluate"] + ["--runs-out"],
    "bench_rerank.py": KEY_FLAGS["bench"],
    "loadtest.py": KEY_FLAGS["loadtest"],
    "robustness.py": KEY_FLAGS["robustness"],
    "soak.py": KEY_FLAGS["soak"],
}


def rescore_executable() -> str:
    """Return the console script installed next to this interpreter (pip install -e . creates it)."""
    path = shutil.which("rescore", path=str(Path(sys.executable).parent))
    assert path, f"no rescore console script next to {sys.executable}: run pip install -e ."
    return path


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed `rescore` in a clean RESCORE_* environment (outside the checkout)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RESCORE_")}
    return subprocess.run([rescore_executable(), *args], env={**base, **(env or {})}, cwd="/",
                          capture_output=True, text=True, timeout=120)


def help_text(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_subcommand(capsys):
    text = help_text(capsys, ["--help"])
    assert set(COMMANDS) == set(KEY_FLAGS)
    for name in COMMANDS:
        assert f"\n    {name}" in text, name
    assert "examples:" in text


@pytest.mark.parametrize("name", sorted(KEY_FLAGS))
def test_subcommand_help_has_description_examples_and_key_flags(capsys, name):
    text = help_text(capsys, [name, "--help"])
    assert f"usage: rescore {name}" in text
    assert "examples:" in text and f"rescore {name}" in text.split("examples:")[1]
    for flag in KEY_FLAGS[name]:
        assert flag in text, f"{name} --help does not mention {flag}"


@pytest.mark.parametrize("argv", [
    ["serve", "--port", "0"],
    ["serve", "--port", "65536"],
    ["serve", "--workers", "many"],
    ["serve", "--backend", "gpt"],
    ["ingest", "demo", "--index", "x", "--batch-size", "0"],
    ["evaluate", "--dataset", "d", "--modes", "bm25,vector"],
    ["evaluate", "--dataset", "d", "--modes", "bm25+rerank:average"],
    ["bench", "--device", "tpu"],
    ["nonsense"],
])
def test_bad_flag_values_are_argparse_errors(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_bench_rejects_8b_on_cpu_before_loading_anything(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--arch", "qwen3-8b"])
    assert exited.value.code == 2
    assert "--device cuda" in capsys.readouterr().err


def test_ingest_missing_corpus_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["ingest", str(tmp_path / "missing.jsonl"), "--index", "x"])
    assert exited.value.code == 2
    assert "corpus file not found" in capsys.readouterr().err


def test_evaluate_needs_a_beir_layout(capsys, tmp_path):
    (tmp_path / "corpus.jsonl").write_text("")
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "--dataset", str(tmp_path), "--modes", "bm25"])
    assert exited.value.code == 2
    assert "queries.jsonl not found" in capsys.readouterr().err


def test_modes_parse_first_stage_rerank_and_fusion():
    assert parse_mode("hybrid") == ("hybrid", False, None)
    assert parse_mode("bm25+rerank") == ("bm25", True, None)
    assert parse_mode("hybrid-rrf+rerank:replace") == ("hybrid-rrf", True, "replace")
    assert mode_list(" bm25, knn+rerank:rrf ,") == ["bm25", "knn+rerank:rrf"]


def test_serve_check_with_bad_port_exits_2_naming_the_variable():
    result = run_cli("serve", "--check", env={"RESCORE_PORT": "eighty"})
    assert result.returncode == 2, result
    assert "RESCORE_PORT" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    out_of_range = run_cli("serve", env={"RESCORE_PORT": "70000"})  # validated before gunicorn starts
    assert out_of_range.returncode == 2 and "RESCORE_PORT" in out_of_range.stderr


def test_serve_check_applies_flags_over_env_and_masks_secrets():
    result = run_cli("serve", "--check", "--port", "9123", "--workers", "3", "--opensearch-url", "https://os:9200",
                     "--backend", "cross-encoder", env={"RESCORE_PORT": "8000", "RESCORE_API_KEYS": "top-secret-key",
                                                        "RESCORE_THREADS": "5"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["port"], shown["workers"], shown["threads"]) == (9123, 3, 5)
    assert shown["opensearch_url"] == "https://os:9200"
    assert shown["reranker"]["backend"] == "cross-encoder"
    assert shown["api_keys"] == "***" and "top-secret-key" not in result.stdout + result.stderr


def test_serve_flags_map_onto_real_settings_fields():
    names = {f.name for f in dataclasses.fields(Settings)} | {f.name for f in dataclasses.fields(RerankerOptions)}
    assert set(FLAG_FIELDS) <= names


def test_serve_runs_this_interpreters_gunicorn_with_the_packaged_config():
    argv = gunicorn_argv()
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    config = Path(argv[argv.index("-c") + 1])
    assert config.is_file() and config == Path(__import__("sidecar").__file__).parent / "gunicorn.conf.py"
    assert argv[-1] == "sidecar.wsgi:app"


def test_unreachable_opensearch_is_one_line_and_exit_1():
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("install-templates", "--url", url)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"rescore install-templates: error: cannot reach OpenSearch at {url} (Connection refused)"]
    loadtest = run_cli("loadtest", "--opensearch", url, "--seconds", "1")
    assert loadtest.returncode == 1 and "Traceback" not in loadtest.stderr
    assert f"cannot reach {url}" in loadtest.stderr


def test_installed_console_script_and_python_m_sidecar_run():
    result = run_cli("--help")
    assert result.returncode == 0 and all(name in result.stdout for name in COMMANDS)
    module = subprocess.run([sys.executable, "-m", "sidecar", "serve", "--help"], capture_output=True, text=True,
                            timeout=60, cwd="/")
    assert module.returncode == 0 and "usage: rescore serve" in module.stdout


@pytest.mark.parametrize("script", sorted(SCRIPT_FLAGS))
def test_scripts_keep_their_flags(script):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script}")
    for flag in SCRIPT_FLAGS[script]:
        assert flag in result.stdout, f"{script} lost {flag}"


def test_script_wrapper_reports_unreachable_opensearch_like_the_cli():
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "ingest.py"), str(ROOT / "demo"), "--index", "x",
                             "--no-embed", "--url", url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ingest.py: error: cannot reach OpenSearch at {url} (Connection refused)"]


def test_url_flag_becomes_the_settings_url(monkeypatch):
    # Commands build more than the client from the settings (the robustness suite's reranker Services):
    # all of it must talk to --url, not to RESCORE_OPENSEARCH_URL or the default 127.0.0.1:9200.
    import argparse

    from sidecar.commands.common import client_from_args

    monkeypatch.delenv("RESCORE_OPENSEARCH_URL", raising=False)
    _, settings = client_from_args(argparse.Namespace(url="http://127.0.0.1:9218"))
    assert settings.opensearch_url == "http://127.0.0.1:9218"
    _, settings = client_from_args(argparse.Namespace(url=None))
    assert settings.opensearch_url == Settings().opensearch_url
