"""One contract for every graph store adapter: FalkorDB always, Neo4j when NEO4J_URI is set.

Run against the compose Neo4j: see docs/operations.md.
"""
import time
import uuid

import pytest

from config.embedded import free_port
from kg_app.store import GraphStoreError, GraphUnavailable, get_graph_store


@pytest.fixture
def store(adapter_store):
    return adapter_store


def test_returns_rows_as_plain_dicts_keyed_by_column(store):
    assert store.run("RETURN 1 AS one, 'two' AS two, [1, 2] AS three") == [{"one": 1, "two": "two", "three": [1, 2]}]


def test_parameters_are_passed_not_interpolated(store):
    hostile = "x'}) DETACH DELETE n //"
    rows = store.run("CREATE (n:Probe {scope: $scope, name: $name}) RETURN n.name AS name",
                     {"scope": store.scope, "name": hostile})
    assert rows == [{"name": hostile}]
    assert store.run("MATCH (n:Probe {scope: $scope}) RETURN count(n) AS c", {"scope": store.scope}) == [{"c": 1}]


def test_nodes_and_relationships_come_back_as_labels_type_and_properties(store):
    store.run("CREATE (:Dataset {scope: $s, key: 'd1'})-[:VERSION_OF {n: 2}]->(:Dataset {scope: $s, key: 'd0'})",
              {"s": store.scope})
    rows = store.run("MATCH (a {scope: $s, key: 'd1'})-[r]->(b) RETURN a, r, b", {"s": store.scope})
    assert rows == [{
        "a": {"labels": ["Dataset"], "properties": {"scope": store.scope, "key": "d1"}},
        "r": {"type": "VERSION_OF", "properties": {"n": 2}},
        "b": {"labels": ["Dataset"], "properties": {"scope": store.scope, "key": "d0"}},
    }]


def test_merge_on_a_stable_id_is_idempotent(store):
    for _ in range(3):
        store.run("MERGE (n:Run {scope: $s, key: 'run-1'}) SET n.status = 'running'", {"s": store.scope})
    assert store.run("MATCH (n:Run {scope: $s}) RETURN count(n) AS c", {"s": store.scope}) == [{"c": 1}]


def test_read_only_statements_cannot_write(store):
    with pytest.raises(GraphStoreError):
        store.run("CREATE (:Probe {scope: $s})", {"s": store.scope}, read_only=True)
    assert store.run("MATCH (n:Probe {scope: $s}) RETURN count(n) AS c", {"s": store.scope}, read_only=True) == [{"c": 0}]


def test_syntax_errors_raise_a_graph_store_error(store):
    with pytest.raises(GraphStoreError):
        store.run("MATCH (n RETURN n")


def test_health_reports_ok_latency_and_the_url(store):
    report = store.health()
    assert report["ok"] is True and report["latency_ms"] >= 0 and report["url"]


def test_read_only_query_on_a_graph_never_written_returns_no_rows(falkordb_server):
    with get_graph_store(falkordb_server, graph_name=f"fresh-{uuid.uuid4().hex[:8]}") as fresh:
        assert fresh.run("MATCH (n) RETURN n", read_only=True) == []


def test_unreachable_falkordb_fails_fast_with_graph_unavailable():
    graph = get_graph_store(f"falkordb://127.0.0.1:{free_port()}", graph_name="nowhere")
    started = time.monotonic()
    with pytest.raises(GraphUnavailable, match="unreachable"):
        graph.run("RETURN 1")
    assert time.monotonic() - started < 5
    report = graph.health()
    assert report["ok"] is False and "unreachable" in report["error"]


def test_unreachable_neo4j_fails_fast_with_graph_unavailable():
    graph = get_graph_store(f"bolt://127.0.0.1:{free_port()}", user="neo4j", password="x")
    started = time.monotonic()
    with pytest.raises(GraphUnavailable, match="unreachable"):
        graph.run("RETURN 1")
    assert time.monotonic() - started < 10
    graph.close()
