"""Small real HTTP servers the tests run in-process: a request recorder and a TEI-shaped reranker.

They stand in for things *around* the unit under test (an upstream that records what it gets,
a remote rerank server that can be made slow or failing); OpenSearch itself is always real.
"""
from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _send_json(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class RecordingServer(_Server):
    """Answer every request with 200 {"recorded": true} and remember (method, path, headers).

    answers: {path prefix: JSON payload} answered instead for matching paths (first match wins).
    """

    def __init__(self, tls: ssl.SSLContext | None = None, answers: dict[str, object] | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.answers = answers or {}

        class Handler(_Quiet):
            def _record(self) -> None:
                self._body()
                owner = self.server.owner
                owner.requests.append((self.command, self.path, dict(self.headers.items())))
                payload = next((answer for prefix, answer in owner.answers.items() if self.path.startswith(prefix)),
                               {"recorded": True, "name": "recorder", "version": {"number": "0"}})
                self._send_json(200, payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _record

        super().__init__(Handler, tls)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class TeiReranker(_Server):
    """TEI /rerank: score = number of query words in the document; mode ok | sleep | fail."""

    def __init__(self, sleep_s: float = 3.0) -> None:
        self.mode = "ok"
        self.calls = 0
        self.sleep_s = sleep_s

        class Handler(_Quiet):
            def do_POST(self) -> None:
                owner = self.server.owner
                body = json.loads(self._body())
                owner.calls += 1
                if owner.mode == "fail":
                    self._send_json(500, {"error": "model crashed", "error_type": "backend"})
                    return
                if owner.mode == "sleep":
                    time.sleep(owner.sleep_s)
                words = set(body["query"].lower().split())
                scores = [float(sum(w in words for w in t.lower().split())) for t in body["texts"]]
                self._send_json(200, [{"index": i, "score": s} for i, s in enumerate(scores)])

        super().__init__(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
