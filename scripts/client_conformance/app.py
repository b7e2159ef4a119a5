"""A typical search app written against one Python client; run once per client in its own subprocess.

    PYTHONPATH=<client dir> python app.py {es7|es8|es9|opensearch} URL INDEX

It imports only the client library given by PYTHONPATH (never the sidecar), runs the operations a
search app does — index, bulk, search, each rerank syntax through the client's own parameters and
through body=, msearch with a rerank entry, search_template, count, scroll/scan, get, delete, and
the client's DSL — and prints one JSON object per operation:
{"op", "outcome": "ok" | "error" | "n/a", "result" (what was answered), "error" (class, status, reason)}.
Judging the outcomes (against the engine direct) is matrix.py's job.
"""
from __future__ import annotations

import json
import sys
import traceback
import warnings

QUERY = "how do I repair a flat bicycle tire"
DOCS = [
    ("bike-tyre", "Fixing a punctured bike tyre",
     "Take the wheel off, find the hole in the inner tube with soapy water, glue on a patch and pump it up."),
    ("chain-lube", "Chain lubrication", "A clean, lubricated bicycle chain shifts smoothly; one drop of oil per link."),
    ("tire-pressure", "Tire pressure for road bikes", "Road bike tires run at 80 to 100 psi; check them weekly."),
    ("bread", "Baking sourdough bread", "Sourdough relies on a starter of wild yeast and a long fermentation."),
    ("espresso", "Pulling an espresso shot", "Grind fine, tamp evenly and extract 36 g in about 28 seconds."),
    ("car-flat", "Changing a flat car tire", "Loosen the lug nuts, jack up the car and mount the spare wheel."),
    ("tubeless", "Tubeless bicycle tires", "Sealant in a tubeless tire plugs small punctures while you ride."),
    ("garden", "Watering a vegetable garden", "Water early in the morning at the roots, not on the leaves."),
]
# Body fields each client's search() takes as parameters of its own (7.15+ has a few; opensearch-py none).
SEARCH_PARAMS = {
    "es7": frozenset({"query", "size", "rescore"}),
    "es8": frozenset({"query", "size", "rescore", "ext", "retriever"}),
    "es9": frozenset({"query", "size", "rescore", "ext", "retriever"}),
    "opensearch": frozenset(),
}
MATCH = {"match": {"text": QUERY}}
RERANK_EXT = {"rerank": {"query_context": {"query_text": QUERY}}}
RESCORE = {"window_size": 10, "rerank": {"query_text": QUERY, "fields": ["title", "text"]}}
RETRIEVER = {"text_similarity_reranker": {"retriever": {"standard": {"query": MATCH}}, "field": "text",
                                          "inference_text": QUERY, "rank_window_size": 10}}
TEMPLATE_SOURCE = {"query": {"match": {"text": "{{q}}"}}, "ext": {"rerank": {"query_context": {"query_text": "{{q}}"}}}}


def _body(response) -> dict:
    """Return a response as a plain dict (8.x/9.x wrap it in ObjectApiResponse; DSL in Response)."""
    if hasattr(response, "body") and isinstance(response.body, dict):
        return response.body
    if hasattr(response, "to_dict"):
        return response.to_dict()
    return dict(response)


def _hits(response) -> dict:
    body = _body(response)
    rerank = (body.get("ext") or {}).get("rerank") or {}
    return {"ids": [h["_id"] for h in body["hits"]["hits"]], "rerank_status": rerank.get("status")}


def _error(exc: BaseException) -> dict:
    status = getattr(exc, "status_code", None)
    if status is None:
        meta = getattr(exc, "meta", None)
        status = getattr(meta, "status", None)
    if not isinstance(status, int):
        status = None
    text = str(exc)
    return {"class": type(exc).__name__, "status": status, "reason": text[:300]}


class App:
    """The operations, each written the way an app using this client writes it."""

    def __init__(self, flavor: str, url: str, index: str) -> None:
        self.flavor = flavor
        self.index = index
        self.native_kwargs = flavor in ("es8", "es9")  # 8.x/9.x take every body field as a parameter
        self.search_params = SEARCH_PARAMS[flavor]
        self.url = url
        if flavor == "opensearch":
            from opensearchpy import helpers
        else:
            from elasticsearch import helpers
        self.helpers = helpers
        self.client = self.new_client()

    def new_client(self, **options):
        """Return a new client for the URL, constructed as an app using this client version does."""
        if self.flavor == "opensearch":
            from opensearchpy import OpenSearch

            return OpenSearch(hosts=[self.url], timeout=60, **options)
        from elasticsearch import Elasticsearch

        if self.flavor == "es7":
            return Elasticsearch([self.url], timeout=60, **options)
        return Elasticsearch(self.url, request_timeout=60, **options)

    # -- plumbing ---------------------------------------------------------------------------
    def search(self, **fields):
        """Search the way an app using this client does: its own parameters where it has them."""
        if set(fields) <= self.search_params:
            return self.client.search(index=self.index, **fields)
        return self.client.search(index=self.index, body=fields)

    def search_params_only(self, **fields):
        """Search through the client's own parameters; None when it has no parameter for one of them."""
        if not set(fields) <= self.search_params:
            return None
        return _hits(self.client.search(index=self.index, **fields))

    def search_body(self, body: dict):
        return self.client.search(index=self.index, body=body)

    def dsl_search(self):
        if self.flavor == "opensearch":
            from opensearchpy import Search
        elif self.flavor == "es7":
            from elasticsearch_dsl import Search
        else:
            from elasticsearch.dsl import Search
        return Search(using=self.client, index=self.index)

    # -- operations -------------------------------------------------------------------------
    def op_info(self):
        body = _body(self.client.info())
        return {"version": body["version"]["number"]}

    def op_create_index(self):
        if self.client.indices.exists(index=self.index):
            self.client.indices.delete(index=self.index)
        settings = {"number_of_shards": 1, "number_of_replicas": 0}
        mappings = {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
        if self.native_kwargs:
            response = self.client.indices.create(index=self.index, settings=settings, mappings=mappings)
        else:
            response = self.client.indices.create(index=self.index, body={"settings": settings, "mappings": mappings})
        return {"acknowledged": _body(response)["acknowledged"]}

    def op_exists(self):
        return {"exists": bool(self.client.indices.exists(index=self.index))}

    def op_bulk(self):
        actions = [{"_index": self.index, "_id": doc_id, "title": title, "text": text} for doc_id, title, text in DOCS]
        indexed, errors = self.helpers.bulk(self.client, actions, refresh=True)
        return {"indexed": indexed, "errors": errors}

    def op_search(self):
        return _hits(self.search(query=MATCH, size=5))

    def op_rerank_ext_params(self):
        return self.search_params_only(query=MATCH, size=5, ext=RERANK_EXT)

    def op_rerank_ext_body(self):
        return _hits(self.search_body({"query": MATCH, "size": 5, "ext": RERANK_EXT}))

    def op_rerank_rescore_params(self):
        return self.search_params_only(query=MATCH, size=5, rescore=RESCORE)

    def op_rerank_rescore_body(self):
        return _hits(self.search_body({"query": MATCH, "size": 5, "rescore": RESCORE}))

    def op_rerank_retriever_params(self):
        return self.search_params_only(size=5, retriever=RETRIEVER)

    def op_rerank_retriever_body(self):
        return _hits(self.search_body({"size": 5, "retriever": RETRIEVER}))

    def op_fresh_client_rerank(self):
        """A new client whose first call is a reranked search (8.x/9.x check the product on that answer)."""
        return _hits(self.new_client().search(index=self.index, body={"query": MATCH, "size": 5, "ext": RERANK_EXT}))

    def op_rerank_ext_compressed(self):
        """http_compress=True, as many apps configure it: every request body is gzipped."""
        client = self.new_client(http_compress=True)
        return _hits(client.search(index=self.index, body={"query": MATCH, "size": 5, "ext": RERANK_EXT}))

    def op_msearch_rerank(self):
        searches = [{"index": self.index}, {"query": MATCH, "size": 3},
                    {"index": self.index}, {"query": MATCH, "size": 3, "ext": RERANK_EXT}]
        response = (self.client.msearch(searches=searches) if self.native_kwargs
                    else self.client.msearch(body=searches))
        entries = _body(response)["responses"]
        return {"entries": [{"status": e.get("status"), **(_hits(e) if "hits" in e else {"error": e.get("error")})}
                            for e in entries]}

    def op_search_template_rerank(self):
        params = {"q": QUERY}
        if self.native_kwargs:
            response = self.client.search_template(index=self.index, source=TEMPLATE_SOURCE, params=params)
        else:
            response = self.client.search_template(index=self.index, body={"source": TEMPLATE_SOURCE, "params": params})
        return _hits(response)

    def op_count(self):
        response = (self.client.count(index=self.index, query=MATCH) if self.native_kwargs
                    else self.client.count(index=self.index, body={"query": MATCH}))
        return {"count": _body(response)["count"]}

    def op_scan(self):
        ids = [hit["_id"] for hit in self.helpers.scan(self.client, index=self.index, size=3, scroll="1m",
                                                         query={"query": {"match_all": {}}})]
        return {"ids": sorted(ids)}

    def op_get(self):
        return {"title": _body(self.client.get(index=self.index, id="bike-tyre"))["_source"]["title"]}

    def op_dsl_search(self):
        return _hits(self.dsl_search().query("match", text=QUERY)[:5].execute())

    def op_dsl_rescore(self):
        return _hits(self.dsl_search().query("match", text=QUERY).extra(rescore=RESCORE)[:5].execute())

    def op_dsl_ext(self):
        return _hits(self.dsl_search().query("match", text=QUERY).extra(ext=RERANK_EXT)[:5].execute())

    def op_dsl_retriever(self):
        return _hits(self.dsl_search().extra(retriever=RETRIEVER)[:5].execute())

    def op_delete(self):
        return {"result": _body(self.client.delete(index=self.index, id="garden", refresh=True))["result"]}

    def op_delete_index(self):
        return {"acknowledged": _body(self.client.indices.delete(index=self.index))["acknowledged"]}


OPERATIONS = ["info", "create_index", "exists", "bulk", "fresh_client_rerank", "search",
              "rerank_ext_params", "rerank_ext_body", "rerank_rescore_params", "rerank_rescore_body",
              "rerank_retriever_params", "rerank_retriever_body", "rerank_ext_compressed", "msearch_rerank",
              "search_template_rerank",
              "count", "scan", "get", "dsl_search", "dsl_rescore", "dsl_ext", "dsl_retriever",
              "delete", "delete_index"]


def main(argv: list[str]) -> int:
    flavor, url, index = argv
    warnings.simplefilter("ignore")  # client deprecation warnings are not what this app checks
    app = App(flavor, url, index)
    for op in OPERATIONS:
        record: dict = {"op": op}
        try:
            result = getattr(app, f"op_{op}")()
            if result is None:
                record.update(outcome="n/a", reason="the client's search() has no parameter for it; body= only")
            else:
                record.update(outcome="ok", result=result)
        except Exception as exc:  # one failing operation must not hide the next ones
            record.update(outcome="error", error=_error(exc), trace=traceback.format_exc(limit=3)[-600:])
        print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
