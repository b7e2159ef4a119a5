"""Store and read click-feedback events in an OpenSearch index (RESCORE_FEEDBACK_INDEX)."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import RequestError

from sidecar.search.templates import TEMPLATES_DIR

log = logging.getLogger(__name__)

FEEDBACK_MAPPING = TEMPLATES_DIR / "index" / "feedback.json"


class FeedbackStoreError(RuntimeError):
    """OpenSearch refused to store events; none of the batch was kept."""


def feedback_index_body(path: Path = FEEDBACK_MAPPING) -> dict:
    """Return the feedback index settings and its explicit (strict) mapping."""
    return json.loads(path.read_text())


class FeedbackStore:
    """Append feedback events (as dicts) to one index, created with its mapping on first use.

    `client` writes (and creates the index); `reader` (default: client) reads events for reports,
    so a report shows what the reader may see.
    """

    def __init__(self, client: OpenSearch, index: str, *, mapping_path: Path = FEEDBACK_MAPPING,
                 reader: OpenSearch | None = None) -> None:
        self.client = client
        self.reader = reader or client
        self.index = index
        self._mapping_path = mapping_path
        self._ready = False
        self._lock = threading.Lock()

    def ensure_index(self) -> bool:
        """Create the index with the explicit mapping if it is missing; return whether it was created.

        An index template with the same mapping is put first, so an index deleted while the sidecar
        runs is auto-created by the next bulk request with the explicit mapping, not a guessed one.
        """
        if self._ready:
            return False
        with self._lock:
            if self._ready:
                return False
            body = feedback_index_body(self._mapping_path)
            self.client.indices.put_index_template(name=f"{self.index}-template", body={
                "index_patterns": [self.index], "priority": 500, "template": body,
                "_meta": {"managed_by": "rescore-sidecar", "source": "es_templates/index/feedback.json"}})
            created = False
            if not self.client.indices.exists(index=self.index):
                try:
                    self.client.indices.create(index=self.index, body=body)
                    created = True
                except RequestError as exc:
                    # Another worker created it between exists() and create(): that is fine.
                    if exc.error != "resource_already_exists_exception":
                        raise
            self._ready = True
            log.info("feedback_index index=%s created=%s", self.index, created)
            return created

    def add(self, documents: list[dict[str, Any]], *, refresh: bool = False) -> int:
        """Index all documents or none (a partial bulk failure is rolled back); return how many."""
        if not documents:
            return 0
        self.ensure_index()
        started = time.perf_counter()
        ids = [uuid.uuid4().hex for _ in documents]
        body: list[dict[str, Any]] = []
        for doc_id, document in zip(ids, documents, strict=True):
            body.append({"index": {"_index": self.index, "_id": doc_id}})
            body.append(document)
        response = self.client.bulk(body=body, params={"refresh": "true" if refresh else "false"})
        if response.get("errors"):
            items = [item.get("index", {}) for item in response.get("items", [])]
            failed = [(i, item.get("error")) for i, item in enumerate(items) if item.get("error")]
            stored = [ids[i] for i, item in enumerate(items) if not item.get("error")]
            if stored:  # keep the batch all-or-nothing for the caller
                self.client.delete_by_query(index=self.index, body={"query": {"ids": {"values": stored}}},
                                            params={"refresh": "true"})
            first, error = failed[0]
            reason = error.get("reason") if isinstance(error, dict) else error
            raise FeedbackStoreError(f"OpenSearch rejected {len(failed)} of {len(documents)} events "
                                     f"(first: event {first}: {reason}); none were stored")
        log.info("feedback_stored index=%s events=%d ms=%.1f", self.index, len(documents),
                 (time.perf_counter() - started) * 1000)
        return len(documents)

    def refresh(self) -> None:
        """Make everything stored so far visible to searches (tests, reports)."""
        self.client.indices.refresh(index=self.index)

    def iter_events(self, *, experiment: str | None = None, page_size: int = 2000) -> Iterator[dict[str, Any]]:
        """Yield stored events (their _source), optionally of one experiment only."""
        if not self.reader.indices.exists(index=self.index):
            return
        query = {"term": {"experiment": experiment}} if experiment else {"match_all": {}}
        for hit in helpers.scan(self.reader, index=self.index, query={"query": query}, size=page_size):
            yield hit["_source"]
