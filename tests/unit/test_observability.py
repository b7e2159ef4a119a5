"""JSON log lines, request ids, metric recording and the scheduler's queue/model timings."""
from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from prometheus_client.parser import text_string_to_metric_families

from sidecar.observability.logs import (BackgroundWriter, JsonFormatter, bind_request_id, choose_request_id,
                                        reset_request_id)
from sidecar.observability.metrics import Metrics, read_eval_metrics
from sidecar.rerank.scheduler import BatchPolicy, BatchStats, Scheduler


def _record(message: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("sidecar.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


class _SlowStream:
    """A stream that is slow to write, so records pile up behind the writer thread."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        time.sleep(0.02)
        self.writes.append(text)

    def flush(self) -> None:
        pass


def test_background_writer_keeps_every_line_in_order_with_its_own_request_id():
    stream = _SlowStream()
    writer = BackgroundWriter(JsonFormatter(), stream=stream, capacity=8)  # small: loggers must wait, not drop
    logger = logging.getLogger("sidecar.test.writer")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(writer)
    try:
        def log_lines(thread: int) -> None:
            token = bind_request_id(f"req-{thread}")
            try:
                for i in range(25):
                    logger.info("line thread=%d i=%d", thread, i)
            finally:
                reset_request_id(token)

        threads = [threading.Thread(target=log_lines, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed step=%s", "x")
        writer.flush()  # returns once everything queued so far is written
    finally:
        logger.removeHandler(writer)
    entries = [json.loads(line) for chunk in stream.writes for line in chunk.splitlines()]
    assert len(entries) == 101 and len(stream.writes) < 101  # several lines per write
    for thread in range(4):
        mine = [e for e in entries if e.get("thread") == thread]
        assert [e["i"] for e in mine] == list(range(25))  # in order
        assert {e["request_id"] for e in mine} == {f"req-{thread}"}  # the logging thread's id, not the writer's
    assert "ValueError: boom" in entries[-1]["exc"] and "request_id" not in entries[-1]


def test_json_lines_carry_request_id_and_key_value_fields():
    token = bind_request_id("abc-123")
    try:
        line = JsonFormatter().format(_record("rerank_search index=%s status=%s total_ms=%.1f nan_ms=nan",
                                              "docs", "ok", 12.34))
    finally:
        reset_request_id(token)
    entry = json.loads(line)
    assert entry["request_id"] == "abc-123" and entry["level"] == "INFO" and entry["logger"] == "sidecar.test"
    assert entry["event"] == "rerank_search"
    assert entry["index"] == "docs" and entry["status"] == "ok" and entry["total_ms"] == 12.3
    assert entry["nan_ms"] == "nan"  # non-finite numbers stay strings: the line must stay valid JSON
    assert entry["msg"].startswith("rerank_search index=docs")


def test_plain_sentences_are_not_split_and_extra_fields_are_kept():
    entry = json.loads(JsonFormatter().format(_record("sidecar ready settings={'a': 1}", user="u1")))
    assert "event" not in entry and "settings" not in entry and "request_id" not in entry
    assert entry["user"] == "u1"


def test_request_id_accepts_sane_caller_ids_only():
    assert choose_request_id("from-header", "other") == "from-header"
    assert choose_request_id(None, "opaque") == "opaque"
    minted = choose_request_id("bad id with spaces", "x" * 201, "")
    assert len(minted) == 32 and int(minted, 16) >= 0


def _samples(metrics: Metrics) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            key = sample.name + json.dumps(sample.labels, sort_keys=True)
            out[key] = sample.value
    return out


def test_rerank_ext_batches_and_cache_are_recorded(tmp_path):
    metrics = Metrics()
    metrics.observe_rerank({"status": "partial", "first_stage_ms": 12.0, "queue_ms": 1.0, "model_ms": 30.0,
                            "fusion_ms": 0.2, "rerank_ms": 31.5, "took_ms": 45.0,
                            "experiment": {"name": "e", "variant": "wide"}})
    metrics.observe_rerank({"status": "ok", "first_stage_ms": 5.0})
    metrics.observe_batch(BatchStats(size=4, tokens=400, padded_tokens=480, seconds=0.5))
    metrics.observe_cache(hits=3, misses=1)
    eval_file = tmp_path / "cranfield.json"
    eval_file.write_text(json.dumps({"bm25": {"ndcg_cut_10": 0.3072}, "note": "ignored"}))
    metrics.eval_file = str(eval_file)
    s = _samples(metrics)
    assert s['rescore_rerank_requests_total{"status": "partial", "variant": "wide"}'] == 1
    assert s['rescore_rerank_requests_total{"status": "ok", "variant": "none"}'] == 1
    assert s['rescore_degraded_total{"reason": "partial"}'] == 1
    assert s['rescore_stage_duration_seconds_count{"stage": "first_stage"}'] == 2
    assert abs(s['rescore_stage_duration_seconds_sum{"stage": "first_stage"}'] - 0.017) < 1e-9
    assert s['rescore_stage_duration_seconds_count{"stage": "model"}'] == 1
    assert s['rescore_model_tokens_total{}'] == 400 and s['rescore_model_pairs_total{}'] == 4
    assert s['rescore_model_tokens_per_second{}'] == 800
    assert s['rescore_batch_padded_tokens_sum{}'] == 480
    assert s['rescore_cache_hit_ratio{}'] == 0.75
    assert s['rescore_eval_quality{"dataset": "cranfield", "metric": "ndcg_cut_10", "mode": "bm25"}'] == 0.3072


def test_unreadable_eval_file_exports_nothing(tmp_path):
    assert read_eval_metrics(str(tmp_path / "missing.json")) == []
    (tmp_path / "bad.json").write_text("{not json")
    assert read_eval_metrics(str(tmp_path / "bad.json")) == []


def test_scheduler_reports_queue_wait_and_model_time():
    gate = threading.Event()
    batches: list[BatchStats] = []

    def slow_score(items):
        gate.wait(5)
        time.sleep(0.05)
        return [float(i) for i in items]

    scheduler = Scheduler(slow_score, cost_fn=lambda item: 10, policy=BatchPolicy(token_budget=10_000,
                                                                                   max_batch_size=64),
                          queue_size=100, on_batch=batches.append)
    try:
        first = threading.Thread(target=scheduler.run, args=([1, 2],))
        first.start()
        time.sleep(0.05)
        result: dict = {}
        second = threading.Thread(target=lambda: result.setdefault("o", scheduler.run([3, 4, 5])))
        second.start()
        time.sleep(0.1)
        gate.set()
        first.join(5)
        second.join(5)
    finally:
        scheduler.close()
    outcome = result["o"]
    assert outcome.scores == [3.0, 4.0, 5.0] and outcome.complete
    # The second request waited behind the first batch (>= 0.1 s) and then ran its own (>= 0.05 s).
    assert outcome.queue_ms >= 100 and 45 <= outcome.model_ms < 1000
    assert [b.size for b in batches] == [2, 3] and batches[1].tokens == 30 and batches[1].padded_tokens == 30


# --- log hygiene and bounded labels (issue 16 item 7) -------------------------------------------

from sidecar.config import Settings, SettingsError  # noqa: E402
from sidecar.observability.logs import TextFormatter  # noqa: E402
from sidecar.observability.redact import redact_text, redact_url  # noqa: E402

ACCESS = "request method=%s path=%s endpoint=%s status=%d duration_ms=%.1f bytes=%s remote=%s peer=%s"


def test_request_data_cannot_overwrite_or_add_fields():
    path = '/x status=200 endpoint=admin.health level=DEBUG request_id=forged" extra=1\nFAKE line'
    record = _record(ACCESS, "GET", path, "proxy.passthrough", 401, 1.25, 10, "127.0.0.1", "127.0.0.1")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["status"] == 401 and entry["endpoint"] == "proxy.passthrough" and entry["level"] == "INFO"
    assert entry["path"] == path and "extra" not in entry and "request_id" not in entry
    assert entry["duration_ms"] == 1.2  # "%.1f" % 1.25
    assert json.dumps(path)[1:-1] in entry["msg"]  # quoted inside the message
    text = TextFormatter().format(_record(ACCESS, "GET", path, "proxy.passthrough", 401, 1.0, 10, "-", "-"))
    assert "\n" not in text and "status=401" in text and 'path="/x status=200' in text


def test_literal_pairs_and_plain_arguments_still_make_fields():
    entry = json.loads(JsonFormatter().format(_record("rerank_failed status=error error=%s: %s", "Boom", "x=1 y")))
    assert entry["event"] == "rerank_failed" and entry["status"] == "error" and entry["error"] == "Boom"
    assert "x" not in entry and "y" not in entry


def test_url_credentials_are_masked_in_messages_fields_and_exceptions():
    assert redact_url("https://admin:pa@ss@es.example:9200/x") == "https://***@es.example:9200/x"
    assert redact_url("http://127.0.0.1:9200") == "http://127.0.0.1:9200"
    assert redact_text("see x@y and http://u:p@h/") == "see x@y and http://***@h/"
    try:
        raise ConnectionError("cannot reach http://admin:hunter2@10.0.0.1:9200/_search")
    except ConnectionError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "forward_failed url=%s", ("http://a:hunter2@h/",),
                                   sys.exc_info())
    record.upstream = "http://admin:hunter2@h:9200"
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(record)
        assert "hunter2" not in line and "***@" in line


def test_settings_mask_url_credentials_and_secrets():
    settings = Settings.from_env({}, opensearch_url="https://admin:hunter2@os:9200", opensearch_password="pw",
                                 api_keys="k1")
    redacted = json.dumps(settings.redacted())
    assert "hunter2" not in redacted and '"pw"' not in redacted and "k1" not in redacted
    assert "hunter2" not in repr(settings)


def test_metric_labels_stay_bounded_for_random_methods_and_statuses():
    metrics = Metrics()
    for n in range(300):
        metrics.observe_request("proxy.passthrough", f"M{n}", 200 + n, 0.01)
        metrics.observe_rerank({"status": f"s{n}", "experiment": {"variant": "control"}})
    series = [k for k in _samples(metrics) if k.startswith("rescore_http_requests_total")]
    methods = {json.loads(k[len("rescore_http_requests_total"):])["method"] for k in series}
    assert methods == {"other"}
    assert len(series) <= 400  # statuses 200..499 and "other"; no method or path dimension growth
    statuses = {json.loads(k[len("rescore_rerank_requests_total"):])["status"]
                for k in _samples(metrics) if k.startswith("rescore_rerank_requests_total")}
    assert statuses == {"other"}


def test_access_remote_is_the_client_behind_a_trusted_proxy_only():
    from ipaddress import ip_network

    from sidecar.observability.http import client_address

    loopback = (ip_network("127.0.0.1/32"), ip_network("::1/128"))
    assert client_address("127.0.0.1", "203.0.113.7", loopback) == "203.0.113.7"  # nginx on loopback
    assert client_address("::1", "203.0.113.7", loopback) == "203.0.113.7"
    # The client put a forged entry first; nginx appended the address it saw: that one counts.
    assert client_address("127.0.0.1", "10.9.9.9, 198.51.100.2", loopback) == "198.51.100.2"
    # Several trusted proxies in a row are skipped from the right.
    chain = (ip_network("10.0.0.0/8"), *loopback)
    assert client_address("127.0.0.1", "198.51.100.2, 10.1.2.3", chain) == "198.51.100.2"
    # A peer that is not trusted cannot choose the logged address.
    assert client_address("192.0.2.5", "203.0.113.7", loopback) == "192.0.2.5"
    assert client_address("127.0.0.1", "not-an-ip", loopback) == "127.0.0.1"
    assert client_address("127.0.0.1", None, loopback) == "127.0.0.1"
    assert client_address(None, "203.0.113.7", loopback) == "-"


def test_trusted_proxies_setting_is_validated():
    assert [str(n) for n in Settings.from_env({}).trusted_proxy_networks] == ["127.0.0.1/32", "::1/128"]
    assert [str(n) for n in Settings.from_env({"RESCORE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1"})
            .trusted_proxy_networks] == ["10.0.0.0/8", "192.168.1.1/32"]
    with pytest.raises(SettingsError, match="RESCORE_TRUSTED_PROXIES"):
        Settings.from_env({"RESCORE_TRUSTED_PROXIES": "nginx"})
