"""Each adapter's ensure_schema: idempotent, and a key is unique per label (FalkorDB always, Neo4j when
NEO4J_URI is set)."""
import time

import pytest

from kg_app.schema import NODE_LABELS
from kg_app.store import GraphStoreError


@pytest.fixture
def store(adapter_store):
    return adapter_store


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
