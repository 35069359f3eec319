"""Graph-store fixtures shared by the contract, schema and knowledge-graph tests."""
import os
import uuid

import pytest

from kg_app.store import get_graph_store


def _adapters():
    yield pytest.param("falkordb", id="falkordb")
    yield pytest.param("neo4j", id="neo4j", marks=[pytest.mark.neo4j, pytest.mark.skipif(
        not os.environ.get("NEO4J_URI"), reason="NEO4J_URI is not set: no Neo4j 5 server is reachable here")])


@pytest.fixture(params=list(_adapters()))
def adapter_store(request, falkordb_server):
    """Each reachable adapter in turn (FalkorDB always, Neo4j when NEO4J_URI is set). Tests tag what they
    write with `store.scope`, and only that is deleted afterwards (a Neo4j may hold other data)."""
    if request.param == "falkordb":
        graph = get_graph_store(falkordb_server, graph_name=f"test-{uuid.uuid4().hex[:8]}")
    else:
        graph = get_graph_store(os.environ["NEO4J_URI"], user=os.environ.get("KG_USER", "neo4j"),
                                password=os.environ.get("KG_PASSWORD", ""))
    graph.scope = f"test-{uuid.uuid4().hex[:8]}"
    yield graph
    try:
        graph.run("MATCH (n {scope: $scope}) DETACH DELETE n", {"scope": graph.scope})
    finally:
        graph.close()


@pytest.fixture
def configured_graph(settings, falkordb_server):
    """The app's own graph (settings.KG_URL) on the test FalkorDB, a fresh graph per test."""
    settings.KG_URL = falkordb_server
    settings.KG_GRAPH_NAME = f"test-{uuid.uuid4().hex[:8]}"
    store = get_graph_store()
    yield store
    try:
        store.run("MATCH (n) DETACH DELETE n")
    finally:
        store.close()
