"""Security against real processes: the proxy stays on its host, keys and passwords never leak."""
from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess

import pytest
import requests

from sidecar import create_app
from sidecar.config import Settings
from sidecar.engine.client import ConnectionInfo, OpenSearchGateway, OpenSearchUnavailable, make_client
from tests.conftest import BROAD_QUERY, free_port, start_sidecar, stop_process
from tests.servers import RecordingServer

pytestmark = pytest.mark.integration

PASSWORD, API_KEY, PROXY_KEY = "pw-Zq81x7", "apikey-Kw92n3", "proxykey-Hj55t0"
WRONG_KEY = "wrongkey-Lp33m8"


def raw_http(base_url: str, request_line: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Send one hand-written HTTP/1.1 request (absolute-form targets, odd Host) and read the answer."""
    host, port = base_url.removeprefix("http://").split(":")
    head = request_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "Connection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def test_proxy_cannot_be_steered_to_another_host(sidecar_url, demo_index):
    with RecordingServer() as elsewhere:
        target = f"127.0.0.1:{elsewhere.port}"
        tricks = [
            (f"GET http://{target}/_search HTTP/1.1", {"Host": target}),
            (f"GET http://{target}/{demo_index}/_search HTTP/1.1", {"Host": "127.0.0.1"}),
            (f"GET //{target}/_search HTTP/1.1", {"Host": target}),
            (f"GET /@{target}/_search HTTP/1.1", {"Host": target}),
            (f"GET /{demo_index}/_search HTTP/1.1", {"Host": target, "X-Forwarded-Host": target}),
            (f"GET /..%2f..%2f{target}/ HTTP/1.1", {"Host": target}),
            (f"GET /%2F%2F{target}/_search HTTP/1.1", {"Host": target}),
        ]
        answers = [raw_http(sidecar_url, line, headers) for line, headers in tricks]
        assert elsewhere.requests == [], "the sidecar contacted a host other than its OpenSearch"
    for (line, _), (status, body) in zip(tricks, answers):
        assert status < 500, line
        parsed = json.loads(body)
        assert "hits" in parsed or "error" in parsed, line  # OpenSearch's answer, not the recorder's
        assert "recorded" not in parsed


def test_the_sidecar_key_is_dropped_and_its_credentials_never_replace_the_callers():
    with RecordingServer() as upstream:
        # engine fixed: start-up detection (GET / as the service account) is the sidecar's own call,
        # not a caller's; this test looks at callers' requests only.
        settings = Settings.from_env({}, opensearch_url=upstream.url, preload_model=False, engine="opensearch",
                                     opensearch_user="svc", opensearch_password=PASSWORD,
                                     proxy_api_keys=PROXY_KEY, api_keys=API_KEY)
        client = create_app(settings).test_client()
        assert client.get("/idx/_doc/1", headers={"Authorization": f"Bearer {PROXY_KEY}"}).status_code == 200
        open_settings = Settings.from_env({}, opensearch_url=upstream.url, preload_model=False, engine="opensearch",
                                          opensearch_user="svc", opensearch_password=PASSWORD)
        open_client = create_app(open_settings).test_client()
        assert open_client.get("/idx/_doc/2", headers={"Authorization": "Bearer app-token"}).status_code == 200
        assert open_client.get("/idx/_doc/3").status_code == 200
    (_, _, guarded), (_, _, passed), (_, _, anonymous) = upstream.requests
    assert "Authorization" not in guarded, "the sidecar key is consumed, nothing stands in for it"
    assert PROXY_KEY not in json.dumps(guarded) and PASSWORD not in json.dumps(upstream.requests)
    assert passed.get("Authorization") == "Bearer app-token", "the caller's own credentials pass unchanged"
    assert "Authorization" not in anonymous, "an anonymous request stays anonymous"
    basic = base64.b64encode(f"svc:{PASSWORD}".encode()).decode()
    assert basic not in json.dumps(upstream.requests)


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory):
    """An HTTPS server whose self-signed certificate is the CA bundle."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "ca.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with RecordingServer(tls=context) as server:
        yield f"https://localhost:{server.port}", str(cert)


def test_ca_certs_setting_is_used_by_gateway_and_client(tls_upstream):
    url, ca = tls_upstream
    trusted = ConnectionInfo(url=url, ca_certs=ca, timeout_s=5)
    assert OpenSearchGateway(trusted).forward("GET", "/", b"", [], b"").status == 200
    assert make_client(trusted).transport.perform_request("GET", "/")["recorded"] is True
    untrusted = ConnectionInfo(url=url, timeout_s=5)  # system bundle: the self-signed cert fails
    with pytest.raises(OpenSearchUnavailable):
        OpenSearchGateway(untrusted).forward("GET", "/", b"", [], b"")
    settings = Settings.from_env({"RESCORE_OPENSEARCH_URL": url, "RESCORE_OPENSEARCH_CA_CERTS": ca},
                                 preload_model=False)
    ready = create_app(settings).test_client().get("/ready").get_json()
    assert ready["opensearch"]["reachable"] is True


def test_secrets_never_reach_the_log(opensearch_url, demo_index):
    proc, url, log_path = start_sidecar(
        opensearch_url, RESCORE_OPENSEARCH_USER="svc", RESCORE_OPENSEARCH_PASSWORD=PASSWORD,
        RESCORE_API_KEYS=API_KEY, RESCORE_PROXY_API_KEYS=PROXY_KEY, RESCORE_LOG_LEVEL="DEBUG",
        RESCORE_PRELOAD_MODEL="false", RESCORE_BACKEND="remote", RESCORE_REMOTE_API="tei",
        RESCORE_REMOTE_URL=f"http://127.0.0.1:{free_port()}", RESCORE_REMOTE_TIMEOUT_S="1")
    ok, proxy_ok = {"Authorization": f"Bearer {API_KEY}"}, {"Authorization": f"Bearer {PROXY_KEY}"}
    wrong = {"Authorization": f"Bearer {WRONG_KEY}"}
    rerank_body = {"query": BROAD_QUERY,
                   "ext": {"rerank": {"query_context": {"query_text": "solar"}, "window_size": 5}}}
    try:
        statuses = [
            requests.get(f"{url}/{demo_index}/_search", headers=wrong, timeout=30).status_code,
            requests.get(f"{url}/{demo_index}/_search", headers=proxy_ok, timeout=30).status_code,
            requests.post(f"{url}/{demo_index}/_search", json=rerank_body, headers=proxy_ok, timeout=30).status_code,
            requests.get(f"{url}/no-such-index/_search", headers=proxy_ok, timeout=30).status_code,
            requests.post(f"{url}/v1/rerank", json={"query": "q", "documents": ["a"]}, headers=wrong,
                          timeout=30).status_code,
            requests.post(f"{url}/v1/rerank", json={"query": "q", "documents": ["a"]}, headers=ok,
                          timeout=30).status_code,
            requests.post(f"{url}/v1/rescore", data=b"{bad json", headers=ok, timeout=30).status_code,
            requests.get(f"{url}/ready", headers=ok, timeout=30).status_code,
            requests.get(f"{url}/{demo_index}/_search", auth=("svc", PASSWORD), timeout=30).status_code,
        ]
    finally:
        stop_process(proc)
    assert statuses == [401, 200, 200, 404, 401, 503, 400, 200, 401]
    log = log_path.read_text()
    assert "rerank_failed" in log and "sidecar ready settings=" in log and '"status": 401' in log, log[-3000:]
    basic = base64.b64encode(f"svc:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, API_KEY, PROXY_KEY, WRONG_KEY, basic):
        assert secret not in log, f"{secret!r} leaked into the sidecar log"
