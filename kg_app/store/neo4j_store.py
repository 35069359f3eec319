"""Neo4j 5 through the official ``neo4j`` driver (production). Kept thin on purpose: what the
contract tests prove on FalkorDB carries over because this adapter adds no behaviour of its own."""
from __future__ import annotations

from typing import Any

from config.env import mask_url
from kg_app.store.base import GraphStore, GraphStoreError, GraphUnavailable

CONNECT_TIMEOUT_S = 3
QUERY_TIMEOUT_S = 10


class Neo4jGraphStore(GraphStore):
    backend = "neo4j"

    def __init__(self, url: str, *, user: str = "neo4j", password: str = "", database: str | None = None):
        super().__init__(url)
        import neo4j

        self._neo4j = neo4j
        self._database = database
        self.query_timeout_s = QUERY_TIMEOUT_S
        self._driver = neo4j.GraphDatabase.driver(
            url, auth=(user, password), connection_timeout=CONNECT_TIMEOUT_S, max_transaction_retry_time=5
        )

    def run(self, cypher: str, params: dict[str, Any] | None = None, *, read_only: bool = False) -> list[dict]:
        neo4j = self._neo4j
        query = neo4j.Query(cypher, timeout=self.query_timeout_s)
        try:
            with self._driver.session(
                database=self._database,
                default_access_mode=neo4j.READ_ACCESS if read_only else neo4j.WRITE_ACCESS,
            ) as session:
                if read_only:
                    # Access mode alone does not stop a write on a single server: check the plan's
                    # query type first, then run it in a READ transaction.
                    plan = session.run(neo4j.Query("EXPLAIN " + cypher), params or {}).consume()
                    if plan.query_type != "r":
                        raise GraphStoreError("this statement writes to the graph; only read-only queries are allowed")
                    return session.execute_read(_collect, query, params or {})
                return session.execute_write(_collect, query, params or {})
        except (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired) as exc:
            raise GraphUnavailable(f"Neo4j at {mask_url(self.url)} is unreachable: {exc}") from None
        except neo4j.exceptions.Neo4jError as exc:
            raise GraphStoreError(exc.message or str(exc)) from None

    def ensure_schema(self, labels) -> None:
        """A unique constraint on ``key`` for each label (Neo4j backs it with an index)."""
        for label in labels:
            self.run(f"CREATE CONSTRAINT {label.lower()}_key IF NOT EXISTS FOR (n:{label}) REQUIRE n.key IS UNIQUE")

    def close(self) -> None:
        self._driver.close()


def _collect(tx, query, params) -> list[dict]:
    result = tx.run(query, params)
    return [{key: _plain(value) for key, value in record.items()} for record in result]


def _plain(value: Any) -> Any:
    from neo4j.graph import Node, Path, Relationship

    if isinstance(value, Node):
        return {"labels": sorted(value.labels), "properties": dict(value)}
    if isinstance(value, Relationship):
        return {"type": value.type, "properties": dict(value)}
    if isinstance(value, Path):
        return {"nodes": [_plain(n) for n in value.nodes], "relationships": [_plain(r) for r in value.relationships]}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
