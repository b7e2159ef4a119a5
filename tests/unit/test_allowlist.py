"""The pass-through allowlist's classification: every API of OpenSearch's REST spec, Elasticsearch's
own namespaces, and the wildcard/_all deletes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sidecar.api.allowlist import is_wildcard, required_groups
from sidecar.config import PROXY_GROUPS, Settings, SettingsError

# Every API of org.opensearch:rest-api-spec:3.1.0 (api/*.json): {name: [[method, path], ...]}.
SPEC = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "opensearch-rest-api-3.1.0-paths.json")
                  .read_text())

SEARCH = {"count", "create_pit", "delete_all_pits", "delete_pit", "get_all_pits", "clear_scroll", "scroll",
          "explain", "field_caps", "msearch", "msearch_template", "rank_eval", "render_search_template", "search",
          "search_shards", "search_template", "indices.validate_query"}
DOCUMENT = {"bulk", "create", "delete", "delete_by_query", "delete_by_query_rethrottle", "index", "reindex",
            "reindex_rethrottle", "update", "update_by_query", "update_by_query_rethrottle", "indices.refresh"}
INDEX_ADMIN = {"indices.add_block", "indices.clear_cache", "indices.clone", "indices.close", "indices.create",
               "indices.create_data_stream", "indices.delete", "indices.delete_alias", "indices.delete_data_stream",
               "indices.delete_index_template", "indices.delete_template", "indices.flush", "indices.forcemerge",
               "indices.open", "indices.put_alias", "indices.put_index_template", "indices.put_mapping",
               "indices.put_settings", "indices.put_template", "indices.rollover", "indices.shrink",
               "indices.simulate_index_template", "indices.simulate_template", "indices.split",
               "indices.update_aliases", "indices.upgrade", "cluster.put_component_template",
               "cluster.delete_component_template"}
CLUSTER_ADMIN = {"cluster.delete_decommission_awareness", "cluster.delete_voting_config_exclusions",
                 "cluster.delete_weighted_routing", "cluster.post_voting_config_exclusions",
                 "cluster.put_decommission_awareness", "cluster.put_settings", "cluster.put_weighted_routing",
                 "cluster.reroute", "dangling_indices.delete_dangling_index", "dangling_indices.import_dangling_index",
                 "ingest.delete_pipeline", "ingest.put_pipeline", "nodes.reload_secure_settings",
                 "remote_store.restore", "search_pipeline.delete", "search_pipeline.put", "tasks.cancel"}
SCRIPTS = {"put_script", "delete_script", "scripts_painless_execute"}
READ = {"exists", "exists_source", "get", "get_source", "mget", "mtermvectors", "termvectors", "info", "ping",
        "indices.analyze", "cluster.allocation_explain", "cluster.exists_component_template",
        "cluster.get_component_template", "cluster.get_decommission_awareness", "cluster.get_settings",
        "cluster.get_weighted_routing", "cluster.health", "cluster.pending_tasks", "cluster.remote_info",
        "cluster.state", "cluster.stats", "dangling_indices.list_dangling_indices", "get_script",
        "get_script_context", "get_script_languages", "indices.exists", "indices.exists_alias",
        "indices.exists_index_template", "indices.exists_template", "indices.get", "indices.get_alias",
        "indices.get_data_stream", "indices.get_field_mapping", "indices.get_index_template", "indices.get_mapping",
        "indices.get_settings", "indices.get_template", "indices.get_upgrade", "indices.recovery",
        "indices.resolve_index", "indices.segments", "indices.shard_stores", "indices.stats",
        "indices.data_streams_stats", "ingest.get_pipeline", "ingest.processor_grok", "ingest.simulate",
        "nodes.hot_threads", "nodes.info", "nodes.stats", "nodes.usage", "search_pipeline.get", "tasks.get",
        "tasks.list", "wlm_stats_list", "remote_store.stats"}


def expected_group(api: str) -> str:
    if api.startswith("snapshot."):
        return "snapshot"
    if api.startswith("cat."):
        return "read"
    for group, names in (("search", SEARCH), ("document", DOCUMENT), ("index_admin", INDEX_ADMIN),
                         ("cluster_admin", CLUSTER_ADMIN), ("scripts", SCRIPTS), ("read", READ)):
        if api in names:
            return group
    raise AssertionError(f"no expectation for {api}")


def concrete(path: str) -> list[str]:
    """Fill a spec path's {parts} with concrete names (one index, never a wildcard)."""
    filled = re.sub(r"\{(\w+)\}", lambda m: {"index": "idx", "id": "1"}.get(m.group(1), f"x-{m.group(1)}"), path)
    return [s for s in filled.split("/") if s]


def test_the_expectations_cover_the_spec_exactly():
    named = SEARCH | DOCUMENT | INDEX_ADMIN | CLUSTER_ADMIN | SCRIPTS | READ
    in_spec = {api for api in SPEC if not api.startswith(("cat.", "snapshot."))}
    assert named == in_spec, (sorted(named - in_spec), sorted(in_spec - named))
    assert len(SPEC) == 165


@pytest.mark.parametrize("api", sorted(SPEC))
def test_every_spec_api_is_classified_as_expected(api):
    for method, path in SPEC[api]:
        assert required_groups(method, concrete(path)) == (expected_group(api),), (method, path)


@pytest.mark.parametrize("method, path, groups", [
    # Elasticsearch's own search APIs and namespaces (not in the OpenSearch spec).
    ("POST", "/idx/_pit", ("search",)), ("DELETE", "/_pit", ("search",)), ("POST", "/idx/_async_search", ("search",)),
    ("GET", "/_async_search/abc", ("search",)), ("POST", "/_query", ("search",)), ("POST", "/_sql", ("search",)),
    ("POST", "/idx/_eql/search", ("search",)), ("POST", "/idx/_terms_enum", ("search",)),
    ("POST", "/idx/_knn_search", ("search",)), ("GET", "/idx/_mvt/geo/1/2/3", ("search",)),
    ("GET", "/_security/_authenticate", ("read",)), ("GET", "/_security/user/_privileges", ("read",)),
    ("POST", "/_security/user/_has_privileges", ("read",)), ("GET", "/_security/user", ("cluster_admin",)),
    ("PUT", "/_security/user/bob", ("cluster_admin",)), ("PUT", "/_security/role/r", ("cluster_admin",)),
    ("POST", "/_security/api_key", ("cluster_admin",)), ("PUT", "/_ml/anomaly_detectors/x", ("cluster_admin",)),
    ("GET", "/_ml/info", ("cluster_admin",)), ("PUT", "/_ilm/policy/p", ("cluster_admin",)),
    ("PUT", "/_inference/rerank/x", ("cluster_admin",)), ("POST", "/_features/_reset", ("cluster_admin",)),
    ("GET", "/_xpack", ("read",)), ("GET", "/_license", ("read",)), ("PUT", "/_license", ("cluster_admin",)),
    ("GET", "/idx/_ilm/explain", ("index_admin",)),
    # OpenSearch plugins, whatever they do.
    ("POST", "/_plugins/_ml/models/_search", ("plugins",)), ("GET", "/_plugins/_security/authinfo", ("plugins",)),
    ("POST", "/_plugins/_asynchronous_search", ("plugins",)), ("GET", "/_opendistro/_security/authinfo", ("plugins",)),
    ("POST", "/_plugins/_sql", ("plugins",)),
    # Scripts: reads are reads, writes and execution are scripts.
    ("GET", "/_scripts/t1", ("read",)), ("PUT", "/_scripts/t1", ("scripts",)), ("POST", "/_scripts/t1/search", ("scripts",)),
    ("DELETE", "/_scripts/t1", ("scripts",)),
    # Wildcard and _all deletes need their own group on top of the API's.
    ("DELETE", "/*", ("index_admin", "wildcard_delete")), ("DELETE", "/_all", ("index_admin", "wildcard_delete")),
    ("DELETE", "/logs-*", ("index_admin", "wildcard_delete")), ("DELETE", "/a,b*", ("index_admin", "wildcard_delete")),
    ("DELETE", "/*,-keep", ("index_admin", "wildcard_delete")), ("DELETE", "/a,b", ("index_admin",)),
    ("POST", "/*/_delete_by_query", ("document", "wildcard_delete")),
    ("POST", "/_all/_delete_by_query", ("document", "wildcard_delete")),
    ("POST", "/logs-*/_delete_by_query", ("document", "wildcard_delete")),
    ("POST", "/idx/_delete_by_query", ("document",)),
    ("DELETE", "/_data_stream/logs-*", ("index_admin", "wildcard_delete")),
    ("DELETE", "/_data_stream/logs", ("index_admin",)),
    # ... but searching, reading and scroll/PIT clean-up over everything stay what they are.
    ("GET", "/*/_search", ("search",)), ("GET", "/_all/_search", ("search",)), ("GET", "/_all", ("read",)),
    ("DELETE", "/_search/scroll/_all", ("search",)), ("DELETE", "/_search/point_in_time/_all", ("search",)),
    ("POST", "/*/_update_by_query", ("document",)), ("POST", "/*/_refresh", ("document",)),
    # Unknown or malformed: never opened by the default.
    ("POST", "/", ("cluster_admin",)), ("GET", "/_nonsense", ("cluster_admin",)),
    ("GET", "/idx/legacy_type/1", ("index_admin",)), ("PATCH", "/idx/_doc/1", ("document",)),
    ("PUT", "/idx/_search/pipeline", ("cluster_admin",)), ("OPTIONS", "/idx/_search", ("search",)),
    ("OPTIONS", "/", ("read",)), ("get", "/idx/_doc/1", ("read",)),
    # Dot segments could resolve to another API further along: never opened by the default.
    ("PUT", "/_search/../_cluster/settings", ("cluster_admin",)), ("GET", "/idx/_search/..", ("cluster_admin",)),
    ("DELETE", "/idx/_doc/./1", ("cluster_admin",)),
])
def test_classification_of_engine_specific_and_dangerous_requests(method, path, groups):
    assert required_groups(method, [s for s in path.split("/") if s]) == groups


def test_wildcard_expressions():
    assert all(is_wildcard(e) for e in ("*", "_all", "a*", "a,*b", "a,_all", "a,"))
    assert not any(is_wildcard(e) for e in ("a", "a,b", "a-b", "all", "_alls"))


def test_proxy_allow_setting():
    assert Settings.from_env({}).proxy_allow_groups == {"search", "read", "document"}
    assert Settings.from_env({"RESCORE_PROXY_ALLOW": "all"}).proxy_allow_groups == set(PROXY_GROUPS)
    assert Settings.from_env({"RESCORE_PROXY_ALLOW": "search, index_admin"}).proxy_allow_groups == {
        "search", "index_admin"}
    for bad in ("", " , ", "search,admin", "everything", "Search"):
        with pytest.raises(SettingsError, match="RESCORE_PROXY_ALLOW"):
            Settings.from_env({"RESCORE_PROXY_ALLOW": bad})
