"""Each adapter's ensure_schema: idempotent, and a key is unique per label (FalkorDB always, Neo4j when
NEO4J_URI is set)."""
import os
import time
import uuid

import pytest

from kg_app.schema import NODE_LABELS
from kg_app.store import GraphStoreError, get_graph_store


def _adapters():
    yield pytest.param("falkordb", id="falkordb")
    yield pytest.param("neo4j", id="neo4j", marks=[pytest.mark.neo4j, pytest.mark.skipif(
        not os.environ.get("NEO4J_URI"), reason="NEO4J_URI is not set: no Neo4j 5 server is reachable here")])


@pytest.fixture(params=list(_adapters()))
def store(request, falkordb_server):
    if request.param == "falkordb":
        graph = get_graph_store(falkordb_server, graph_name=f"kg-schema-{uuid.uuid4().hex[:8]}")
    else:
        graph = get_graph_store(os.environ["NEO4J_URI"], user=os.environ.get("KG_USER", "neo4j"),
                                password=os.environ.get("KG_PASSWORD", ""))
    graph.scope = f"kg-schema-{uuid.uuid4().hex[:8]}"
    yield graph
    try:
        graph.run("MATCH (n {scope: $scope}) DETACH DELETE n", {"scope": graph.scope})
    finally:
        graph.close()


def test_ensure_schema_is_idempotent_and_keys_are_unique(store):
    store.ensure_schema(NODE_LABELS)
    store.ensure_schema(NODE_LABELS)
    key = f"run:{store.scope}"
    store.run("CREATE (:Run {key: $key, scope: $scope})", {"key": key, "scope": store.scope})
    deadline = time.monotonic() + 10  # FalkorDB builds a new constraint in the background
    while True:
        try:
            store.run("CREATE (:Run {key: $key, scope: $scope})", {"key": key, "scope": store.scope})
        except GraphStoreError:
            break
        store.run("MATCH (n:Run {key: $key}) WITH n SKIP 1 DELETE n", {"key": key})
        assert time.monotonic() < deadline, "a second node with the same key was accepted"
        time.sleep(0.2)
    assert store.run("MATCH (n:Run {key: $key}) RETURN count(n) AS c", {"key": key}) == [{"c": 1}]
