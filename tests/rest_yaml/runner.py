"""A runner for the OpenSearch REST API YAML tests (the `rest-api-spec` artifact), engine-neutral.

It implements the test DSL documented in the artifact's test/README.md: setup/teardown, `do`
(catch, headers, warnings, allowed_warnings[_regex], node_selector on a single node, ignore),
match, length, is_true/is_false, gt/gte/lt/lte, set, transform_and_set (base64 credentials),
contains, close_to, skip (version ranges, features) and the `$var` / `${var}` stash, and it uses
the API spec JSON files to build each request's method and path the way the Java runner does.

Nothing here knows about the sidecar: `run_test(base_url, ...)` runs one test against whatever
HTTP endpoint it is given, and `wipe_cluster(admin_url)` resets the cluster between tests.
"""
from __future__ import annotations

import base64
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import requests
import yaml

SUPPORTED_FEATURES = frozenset({
    "headers", "warnings", "warnings_regex", "allowed_warnings", "allowed_warnings_regex", "contains",
    "close_to", "stash_in_key", "stash_in_path", "embedded_stash_key", "catch_unauthorized", "default_shards",
    "arbitrary_key", "node_selector", "transform_and_set", "yaml", "regex",
})
_CATCH_STATUS = {"bad_request": 400, "unauthorized": 401, "forbidden": 403, "missing": 404,
                 "request_timeout": 408, "conflict": 409, "unavailable": 503}
_ASSERTIONS = ("match", "length", "is_true", "is_false", "gt", "gte", "lt", "lte", "contains", "close_to")
_MISSING = object()


class StepFailed(AssertionError):
    """A test assertion or request expectation did not hold."""


class SkipTest(Exception):
    """The test's skip section applies to this engine and runner."""


class _Loader(yaml.SafeLoader):
    """YAML as the Java runner reads it: timestamps stay strings (`2019-10-10T10:10:10Z`)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# --- loading ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ApiSpec:
    """One API's paths ({path, methods, parts}) and accepted params, from api/<name>.json."""

    name: str
    paths: list[dict]
    params: frozenset[str]


def load_api_specs(api_dir: Path) -> dict[str, ApiSpec]:
    common = json.loads((api_dir / "_common.json").read_text()).get("params", {})
    specs = {}
    for path in sorted(api_dir.glob("*.json")):
        if path.name.startswith("_"):
            continue
        for name, spec in json.loads(path.read_text()).items():
            params = set(spec.get("params", {})) | set(common)
            specs[name] = ApiSpec(name, spec["url"]["paths"], frozenset(params))
    return specs


@dataclass(frozen=True)
class YamlTest:
    """One test section of one file, with the file's setup and teardown."""

    file: str  # relative path, e.g. "indices.create/10_basic.yml"
    name: str
    steps: list[dict]
    setup: list[dict]
    teardown: list[dict]

    @property
    def test_id(self) -> str:
        return f"{self.file}::{self.name}"


def load_tests(test_dir: Path) -> list[YamlTest]:
    """Return every test of every YAML file under test_dir, in a stable order."""
    tests: list[YamlTest] = []
    for path in sorted(test_dir.rglob("*.yml")) + sorted(test_dir.rglob("*.yaml")):
        rel = str(path.relative_to(test_dir))
        documents = [d for d in yaml.load_all(path.read_text(), Loader=_Loader) if d]
        setup: list[dict] = []
        teardown: list[dict] = []
        sections: list[tuple[str, list[dict]]] = []
        for doc in documents:
            for name, steps in doc.items():
                steps = steps or []
                if name == "setup":
                    setup = steps
                elif name == "teardown":
                    teardown = steps
                else:
                    sections.append((str(name), steps))
        tests.extend(YamlTest(rel, name, steps, setup, teardown) for name, steps in sections)
    return tests


# --- skip ---------------------------------------------------------------------------------------------

def _version_tuple(text: str) -> tuple[int, ...]:
    """Order versions the way OpenSearch does: legacy Elasticsearch 5.x-7.x come before OpenSearch 1.0."""
    numbers = [int(n) for n in re.findall(r"\d+", text.split("-")[0])[:3]] if text else []
    if not numbers:
        return (0,)
    legacy = 1 if numbers[0] >= 5 else 0  # the spec's tests still skip on Elasticsearch 7.x numbers
    return (1 - legacy, *numbers)


def version_in_ranges(version: str, ranges: str) -> bool:
    """Return whether version lies in a skip range ('all', 'a - b', ' - b', 'a - ', comma-separated)."""
    if ranges.strip() == "all":
        return True
    current = _version_tuple(version)
    for part in ranges.split(","):
        if "-" not in part:
            continue
        low, _, high = part.partition(" - ") if " - " in part else part.partition("-")
        low_v = _version_tuple(low.strip()) if low.strip() else (-1,)
        high_v = _version_tuple(high.strip()) if high.strip() else (10**9,)
        if low_v <= current <= high_v:
            return True
    return False


def check_skip(skip: dict, version: str) -> None:
    features = skip.get("features", [])
    features = [features] if isinstance(features, str) else features
    unsupported = [f for f in features if f not in SUPPORTED_FEATURES]
    if unsupported:
        raise SkipTest(f"unsupported features {unsupported}")
    if "version" in skip and version_in_ranges(version, str(skip["version"])):
        raise SkipTest(f"version {version} in {skip['version']!r}: {skip.get('reason', '')}")
    os_names = skip.get("os")
    if os_names and "linux" in ([os_names] if isinstance(os_names, str) else os_names):
        raise SkipTest("skipped on this OS")


# --- stash and paths ----------------------------------------------------------------------------------

class Stash:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.body: Any = None

    def get(self, name: str) -> Any:
        if name == "body":
            return self.body
        if name not in self.values:
            raise StepFailed(f"stashed value ${name} is not set")
        return self.values[name]

    def replace(self, value: Any) -> Any:
        """Replace $name and ${name} references in value (recursively, keys included)."""
        if isinstance(value, str):
            if re.fullmatch(r"\$[A-Za-z_][\w.]*", value) and (value[1:] in self.values or value == "$body"):
                return self.get(value[1:])
            if "${" in value:
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.get(m.group(1))), value)
            return value
        if isinstance(value, dict):
            return {self.replace(k) if isinstance(k, str) else k: self.replace(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.replace(v) for v in value]
        return value


def _split_path(path: str) -> list[str]:
    parts, current, i = [], "", 0
    while i < len(path):
        if path[i] == "\\" and i + 1 < len(path) and path[i + 1] == ".":
            current += "."
            i += 2
            continue
        if path[i] == ".":
            parts.append(current)
            current = ""
        else:
            current += path[i]
        i += 1
    parts.append(current)
    return parts


def evaluate(response: Any, path: str, stash: Stash) -> Any:
    """Return the value at a dotted path of the response ('' = the whole response); _MISSING if absent."""
    if path == "$body":
        return stash.body
    if path.startswith("$") and "." not in path:
        return stash.get(path[1:])
    value = response
    if path == "":
        return value
    for part in _split_path(path):
        if part.startswith("$") and part[1:] in stash.values:
            part = str(stash.get(part[1:]))
        elif "${" in part:
            part = stash.replace(part)
        if part == "_arbitrary_key_":
            if not isinstance(value, dict) or not value:
                return _MISSING
            return next(iter(value))
        if isinstance(value, dict):
            if part not in value:
                return _MISSING
            value = value[part]
        elif isinstance(value, list):
            try:
                value = value[int(part)]
            except (ValueError, IndexError):
                return _MISSING
        else:
            return _MISSING
    return value


# --- requests -----------------------------------------------------------------------------------------

def _encode_part(value: Any) -> str:
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    elif isinstance(value, bool):
        value = str(value).lower()
    return quote(str(value), safe="!$&'()*+,;=:@")


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(_param_value(v) for v in value)
    return str(value)


@dataclass
class HttpResult:
    status: int
    headers: requests.structures.CaseInsensitiveDict
    text: str
    body: Any
    method: str
    url: str


def build_request(spec: ApiSpec, args: dict) -> tuple[str, str, dict[str, str], Any]:
    """Return (method, path, query params, body) for an API call, choosing the path like the Java runner."""
    args = dict(args)
    body = args.pop("body", None)
    part_names = {name for p in spec.paths for name in p.get("parts", {})}
    present = {k for k in args if k in part_names}
    candidates = [p for p in spec.paths if set(p.get("parts", {})) <= present]
    if not candidates:
        raise StepFailed(f"no path of {spec.name} fits the parts {sorted(present)}")
    best = max(len(p.get("parts", {})) for p in candidates)
    chosen = next(p for p in candidates if len(p.get("parts", {})) == best)
    path = chosen["path"]
    for name in chosen.get("parts", {}):
        path = path.replace("{" + name + "}", _encode_part(args.pop(name)))
    for name in part_names - set(chosen.get("parts", {})):
        args.pop(name, None)
    methods = chosen["methods"]
    if body is not None:
        method = next((m for m in ("POST", "PUT") if m in methods), methods[0])
    else:
        method = methods[0]
    params = {k: _param_value(v) for k, v in args.items()}
    return method, path, params, body


def _encode_body(body: Any, headers: dict[str, str]) -> bytes | None:
    if body is None:
        return None
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if isinstance(body, list):
        lines = [item if isinstance(item, str) else json.dumps(item) for item in body]
        headers.setdefault("Content-Type", "application/x-ndjson")
        return ("\n".join(lines) + "\n").encode()
    if content_type and "yaml" in content_type:
        return (body if isinstance(body, str) else yaml.safe_dump(body)).encode()
    headers.setdefault("Content-Type", "application/json")
    return (body if isinstance(body, str) else json.dumps(body)).encode()


def _parse_body(resp: requests.Response, method: str) -> Any:
    if method == "HEAD":
        return resp.status_code == 200
    content_type = resp.headers.get("Content-Type", "")
    text = resp.text
    if "json" in content_type and text:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if "yaml" in content_type and text:
        return yaml.safe_load(text)
    return text


def send(session: requests.Session, base_url: str, method: str, path: str, params: dict[str, str],
         headers: dict[str, str], body: Any, timeout_s: float) -> HttpResult:
    headers = dict(headers)
    data = _encode_body(body, headers)
    url = base_url.rstrip("/") + path + (f"?{urlencode(params)}" if params else "")
    resp = session.request(method, url, data=data, headers=headers, timeout=timeout_s, allow_redirects=False)
    return HttpResult(resp.status_code, resp.headers, resp.text, _parse_body(resp, method), method, url)


# --- warnings -----------------------------------------------------------------------------------------

def response_warnings(headers) -> list[str]:
    """Return the messages of the response's Warning headers (299 Agent "message" [date])."""
    raw = headers.get("Warning")
    if not raw:
        return []
    messages = []
    for match in re.finditer(r'\d{3} [^ ]+ "((?:[^"\\]|\\.)*)"', raw):
        messages.append(re.sub(r"\\(.)", r"\1", match.group(1)))
    return messages


# --- execution ----------------------------------------------------------------------------------------

@dataclass
class Context:
    base_url: str
    specs: dict[str, ApiSpec]
    version: str
    session: requests.Session
    timeout_s: float = 120.0
    stash: Stash = field(default_factory=Stash)
    response: Any = None
    requests_sent: int = 0


def do_step(ctx: Context, args: dict) -> None:
    args = dict(args)
    catch = args.pop("catch", None)
    headers = {str(k): str(v) for k, v in (ctx.stash.replace(args.pop("headers", None) or {})).items()}
    expected_warnings = args.pop("warnings", None) or []
    allowed = args.pop("allowed_warnings", None) or []
    allowed_regex = args.pop("allowed_warnings_regex", None) or []
    expected_regex = args.pop("warnings_regex", None) or []
    args.pop("node_selector", None)  # one node: every selector selects it
    if len(args) != 1:
        raise StepFailed(f"do must name exactly one API, got {sorted(args)}")
    api, api_args = next(iter(args.items()))
    spec = ctx.specs.get(api)
    if spec is None:
        raise StepFailed(f"unknown API {api}")
    api_args = {k: v for k, v in ctx.stash.replace(api_args or {}).items() if v is not None}
    ignore = api_args.pop("ignore", None)
    ignored = {int(i) for i in (ignore if isinstance(ignore, list) else [ignore])} if ignore is not None else set()
    unknown = [k for k in api_args if k != "body" and k not in spec.params
               and not any(k in p.get("parts", {}) for p in spec.paths)]
    if unknown:
        if catch == "param":
            ctx.response = None
            return
        raise StepFailed(f"{api} does not accept {unknown} (runner-side param check)")
    try:
        method, path, params, body = build_request(spec, api_args)
    except StepFailed:
        if catch == "param":  # a required path part is missing: the client refuses the call
            ctx.response = None
            return
        raise
    ctx.requests_sent += 1
    result = send(ctx.session, ctx.base_url, method, path, params, headers, body, ctx.timeout_s)
    ctx.response = result.body
    ctx.stash.body = result.body
    status = result.status
    where = f"{method} {path}{'?' + urlencode(params) if params else ''} -> {status}"
    is_error = status >= 400 and status not in ignored and not (method == "HEAD" and status == 404)
    if catch is not None:
        if catch == "param":
            raise StepFailed(f"expected a client-side param error, but {where}")
        if catch in _CATCH_STATUS:
            if status != _CATCH_STATUS[catch]:
                raise StepFailed(f"expected {catch} ({_CATCH_STATUS[catch]}), got {where}: {result.text[:300]}")
        elif catch == "request":
            if status < 400 or status in _CATCH_STATUS.values():
                raise StepFailed(f"expected an error status other than {sorted(_CATCH_STATUS.values())}, "
                                  f"got {where}: {result.text[:300]}")
        elif isinstance(catch, str) and catch.startswith("/") and catch.endswith("/"):
            if status < 400:
                raise StepFailed(f"expected an error matching {catch}, got {where}")
            if not re.search(catch[1:-1], result.text):  # the Java runner: no COMMENTS flag for catch
                raise StepFailed(f"error body does not match {catch}: {where}: {result.text[:300]}")
        else:
            raise StepFailed(f"unknown catch {catch!r}")
    elif is_error:
        raise StepFailed(f"request failed: {where}: {result.text[:300]}")
    _check_warnings(response_warnings(result.headers), expected_warnings, allowed, expected_regex, allowed_regex,
                    where)


def _check_warnings(got: list[str], expected: list[str], allowed: list[str], expected_regex: list[str],
                    allowed_regex: list[str], where: str) -> None:
    missing = [w for w in expected if w not in got]
    missing += [r for r in expected_regex if not any(re.search(r, w) for w in got)]
    unexpected = [w for w in got if w not in expected and w not in allowed
                  and not any(re.search(r, w) for r in expected_regex + allowed_regex)]
    if missing:
        raise StepFailed(f"expected warnings {missing} not returned ({where}); got {got}")
    if unexpected:
        raise StepFailed(f"unexpected warnings {unexpected} ({where})")


def _is_regex(value: Any) -> bool:
    return isinstance(value, str) and len(value) > 1 and value.strip().startswith("/") and value.strip().endswith("/")


def _values_equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return float(actual) == float(expected) or actual == expected
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(_values_equal(actual[k], expected[k]) for k in expected)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(_values_equal(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, str) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return str(actual) == expected
    return actual == expected


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or value is _MISSING or value is None:
        raise StepFailed(f"{what} is not a number: {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StepFailed(f"{what} is not a number: {value!r}") from None


def _truthy(value: Any) -> bool:
    if value is _MISSING or value is None:
        return False
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text not in ("", "false", "0")


def assert_step(ctx: Context, kind: str, args: Any) -> None:
    if kind in ("is_true", "is_false"):
        path = ctx.stash.replace(args) if isinstance(args, str) and args.startswith("$") and "." not in args \
            else args
        value = evaluate(ctx.response, path if isinstance(path, str) else str(path), ctx.stash)
        if (kind == "is_true") != _truthy(value):
            raise StepFailed(f"{kind} {args!r}: value is {_short(value)}")
        return
    if not isinstance(args, dict) or len(args) != 1:
        raise StepFailed(f"{kind} takes one {{path: value}} pair, got {args!r}")
    path, expected = next(iter(args.items()))
    actual = evaluate(ctx.response, str(path), ctx.stash)
    expected = ctx.stash.replace(expected)
    if kind == "match":
        if _is_regex(expected):
            if actual is _MISSING or not re.search(expected.strip()[1:-1], str(actual), re.X):
                raise StepFailed(f"match {path}: {_short(actual)} does not match {expected.strip()}")
        elif actual is _MISSING or not _values_equal(actual, expected):
            raise StepFailed(f"match {path}: expected {_short(expected)}, got {_short(actual)}")
    elif kind == "length":
        if actual is _MISSING or not hasattr(actual, "__len__") or len(actual) != int(expected):
            raise StepFailed(f"length {path}: expected {expected}, got "
                              f"{len(actual) if hasattr(actual, '__len__') else _short(actual)}")
    elif kind in ("gt", "gte", "lt", "lte"):
        a, e = _number(actual, path), _number(expected, "expected")
        ok = {"gt": a > e, "gte": a >= e, "lt": a < e, "lte": a <= e}[kind]
        if not ok:
            raise StepFailed(f"{kind} {path}: {a} vs {e}")
    elif kind == "contains":
        if not isinstance(actual, list):
            raise StepFailed(f"contains {path}: not a list: {_short(actual)}")
        if isinstance(expected, dict):
            found = any(isinstance(item, dict) and all(_values_equal(item.get(k, _MISSING), v)
                                                       for k, v in expected.items()) for item in actual)
        else:
            found = any(_values_equal(item, expected) for item in actual)
        if not found:
            raise StepFailed(f"contains {path}: {_short(expected)} not in {_short(actual)}")
    elif kind == "close_to":
        value, error = _number(expected.get("value"), "value"), _number(expected.get("error"), "error")
        a = _number(actual, path)
        if not math.isfinite(a) or abs(a - value) > error:
            raise StepFailed(f"close_to {path}: {a} not within {error} of {value}")


def _short(value: Any) -> str:
    if value is _MISSING:
        return "<missing>"
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) < 300 else text[:300] + "..."


def _set_step(ctx: Context, args: dict) -> None:
    for path, name in args.items():
        value = evaluate(ctx.response, str(path), ctx.stash)
        if value is _MISSING:
            raise StepFailed(f"set: {path} is missing in the response")
        ctx.stash.values[str(name)] = value


def _transform_and_set(ctx: Context, args: dict) -> None:
    for name, expr in args.items():
        match = re.fullmatch(r"#base64EncodeCredentials\((\w+),(\w+)\)", str(expr).strip())
        if not match:
            ctx.stash.values[name] = expr
            continue
        user = evaluate(ctx.response, match.group(1), ctx.stash)
        password = evaluate(ctx.response, match.group(2), ctx.stash)
        ctx.stash.values[name] = base64.b64encode(f"{user}:{password}".encode()).decode()


def run_steps(ctx: Context, steps: list[dict], *, allow_skip: bool = True) -> None:
    for step in steps:
        if not isinstance(step, dict) or len(step) != 1:
            raise StepFailed(f"malformed step {step!r}")
        kind, args = next(iter(step.items()))
        if kind == "skip":
            if allow_skip:
                check_skip(args or {}, ctx.version)
        elif kind == "do":
            do_step(ctx, args)
        elif kind == "set":
            _set_step(ctx, args)
        elif kind == "transform_and_set":
            _transform_and_set(ctx, args)
        elif kind in _ASSERTIONS:
            assert_step(ctx, kind, args)
        else:
            raise StepFailed(f"unknown step {kind!r}")


def preflight_skip(test: YamlTest, version: str) -> str | None:
    """Return the skip reason of a test (setup's or the section's leading skip), or None."""
    for steps in (test.setup, test.steps):
        for step in steps[:1]:
            if isinstance(step, dict) and "skip" in step:
                try:
                    check_skip(step["skip"] or {}, version)
                except SkipTest as exc:
                    return str(exc)
    return None


@dataclass(frozen=True)
class Outcome:
    test_id: str
    status: str  # pass | fail | skip
    reason: str = ""
    seconds: float = 0.0


def run_test(test: YamlTest, base_url: str, specs: dict[str, ApiSpec], version: str,
             session: requests.Session | None = None, timeout_s: float = 120.0) -> Outcome:
    """Run setup, the test and teardown against base_url; never raises for a test failure."""
    started = time.perf_counter()
    skip = preflight_skip(test, version)
    if skip:
        return Outcome(test.test_id, "skip", skip)
    ctx = Context(base_url, specs, version, session or requests.Session(), timeout_s)
    try:
        try:
            run_steps(ctx, test.setup)
            run_steps(ctx, test.steps)
        finally:
            if test.teardown:
                try:
                    run_steps(ctx, test.teardown)
                except (StepFailed, requests.RequestException):
                    pass
    except SkipTest as exc:
        return Outcome(test.test_id, "skip", str(exc), time.perf_counter() - started)
    except StepFailed as exc:
        return Outcome(test.test_id, "fail", str(exc), time.perf_counter() - started)
    except requests.RequestException as exc:
        return Outcome(test.test_id, "fail", f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
    except Exception as exc:  # a runner limitation on one test must not end the whole run
        return Outcome(test.test_id, "fail", f"runner error {type(exc).__name__}: {exc}",
                       time.perf_counter() - started)
    return Outcome(test.test_id, "pass", "", time.perf_counter() - started)


# --- cluster reset ------------------------------------------------------------------------------------

@dataclass
class Baseline:
    """Dot-named templates that existed before the suite ran (installed by plugins); never wiped.

    Indices are all wiped, plugin system indices too (a plugin's config index would otherwise show
    up in `_cat/indices`, `_all` shard counts and wildcard searches that the tests count).
    """

    index_templates: set[str]
    component_templates: set[str]
    legacy_templates: set[str]


def _names(session: requests.Session, url: str) -> dict:
    resp = session.get(url, timeout=60)
    return resp.json() if resp.status_code == 200 else {}


def take_baseline(admin_url: str, session: requests.Session | None = None) -> Baseline:
    """Remember the engine's own (dot-named, plugin-installed) templates; everything else gets wiped."""
    session = session or requests.Session()
    own = lambda names: {n for n in names if n.startswith(".")}  # noqa: E731
    return Baseline(
        index_templates=own(t["name"] for t in
                            _names(session, f"{admin_url}/_index_template").get("index_templates", [])),
        component_templates=own(t["name"] for t in
                                _names(session, f"{admin_url}/_component_template").get("component_templates", [])),
        legacy_templates=own(_names(session, f"{admin_url}/_template")),
    )


_STATE = ("/_cluster/state/metadata?filter_path=metadata.templates,metadata.index_template,"
          "metadata.component_template,metadata.repositories,metadata.data_stream,metadata.indices.*.state")


def wipe_cluster(admin_url: str, baseline: Baseline, session: requests.Session | None = None) -> None:
    """Delete what tests leave behind: data streams, indices, templates, snapshots, repositories, settings.

    One cluster-state read tells what exists, so a clean cluster costs two GETs.
    """
    s = session or requests.Session()
    meta = s.get(admin_url + _STATE, timeout=60).json().get("metadata", {})
    if meta.get("data_stream", {}).get("data_stream"):
        s.delete(f"{admin_url}/_data_stream/*?expand_wildcards=all", timeout=60)
    indices = sorted(meta.get("indices", {}))
    for start in range(0, len(indices), 50):
        names = ",".join(quote(n, safe="") for n in indices[start:start + 50])
        s.delete(f"{admin_url}/{names}?expand_wildcards=all&ignore_unavailable=true", timeout=60)
    for kind, key, keep in (("_index_template", "index_template", baseline.index_templates),
                            ("_component_template", "component_template", baseline.component_templates)):
        for name in set(meta.get(key, {}).get(key, {})) - keep:
            s.delete(f"{admin_url}/{kind}/{quote(name, safe='')}", timeout=60)
    for name in set(meta.get("templates", {})) - baseline.legacy_templates:
        s.delete(f"{admin_url}/_template/{quote(name, safe='')}", timeout=60)
    for repo in meta.get("repositories", {}):
        snaps = _names(s, f"{admin_url}/_snapshot/{quote(repo, safe='')}/_all").get("snapshots", [])
        for snap in snaps:
            s.delete(f"{admin_url}/_snapshot/{quote(repo, safe='')}/{quote(snap['snapshot'], safe='')}", timeout=120)
        s.delete(f"{admin_url}/_snapshot/{quote(repo, safe='')}", timeout=60)
    settings = _names(s, f"{admin_url}/_cluster/settings")
    if settings.get("persistent") or settings.get("transient"):
        s.put(f"{admin_url}/_cluster/settings", json={"persistent": {"*": None}, "transient": {"*": None}},
              timeout=60)
    if indices:
        s.get(f"{admin_url}/_cluster/health?wait_for_no_initializing_shards=true&timeout=10s", timeout=30)


def subset(tests: list[YamlTest], count: int) -> list[YamlTest]:
    """Pick `count` tests spread evenly over the API families (directories), deterministically."""
    families: dict[str, list[YamlTest]] = {}
    for test in tests:
        families.setdefault(test.file.split("/")[0], []).append(test)
    picked: list[YamlTest] = []
    round_ = 0
    while len(picked) < count and any(len(v) > round_ for v in families.values()):
        for name in sorted(families):
            if len(picked) < count and len(families[name]) > round_:
                picked.append(families[name][round_])
        round_ += 1
    return picked
