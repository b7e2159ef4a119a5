from sidecar.search.retrievers import has_nested_reranker, hits_retriever, replace_nested

TSR = {"text_similarity_reranker": {"retriever": {"standard": {"query": {"match_all": {}}}}, "inference_text": "q"}}


def test_nested_rerankers_are_found_under_retriever_and_retrievers():
    assert not has_nested_reranker(TSR)
    assert has_nested_reranker({"rrf": {"retrievers": [TSR, {"standard": {}}]}})
    assert has_nested_reranker({"linear": {"retrievers": [{"retriever": TSR, "weight": 2}]}})
    assert has_nested_reranker({"rescorer": {"retriever": {"rrf": {"retrievers": [TSR]}}}})


def test_replace_nested_puts_each_rerankers_hits_in_its_place():
    served = []

    def serve(node, path):
        served.append(path)
        return {"hits": {"hits": [{"_id": "a", "_index": "i", "_score": -2.0}, {"_id": "b", "_index": "i", "_score": 1.0}]},
                "ext": {"rerank": {"status": "ok", "window": 2}}}

    tree = {"linear": {"retrievers": [{"retriever": TSR, "weight": 2}, {"retriever": {"rrf": {"retrievers": [TSR]}}}]}}
    out, outcomes = replace_nested(tree, serve)
    assert served == ["retriever.linear.retrievers[0].retriever",
                      "retriever.linear.retrievers[1].retriever.rrf.retrievers[0]"]
    assert out["linear"]["retrievers"][0]["weight"] == 2
    should = out["linear"]["retrievers"][0]["retriever"]["standard"]["query"]["bool"]["should"]
    boosts = [c["constant_score"]["boost"] for c in should]
    assert boosts[0] > 0 and boosts[1] - boosts[0] == 3.0  # shifted positive, gaps kept
    assert "text_similarity_reranker" in tree["linear"]["retrievers"][0]["retriever"]  # input untouched
    assert [o["status"] for o in outcomes] == ["ok", "ok"]
    assert hits_retriever([]) == {"standard": {"query": {"match_none": {}}}}
