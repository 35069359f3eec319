"""FalkorDB through the ``falkordb`` client (the embedded default)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kg_app.store.base import GraphStore, GraphStoreError, GraphUnavailable

CONNECT_TIMEOUT_S = 3
SOCKET_TIMEOUT_S = 30
QUERY_TIMEOUT_MS = 10_000
EMPTY_KEY = "empty key"


class FalkorGraphStore(GraphStore):
    backend = "falkordb"

    def __init__(self, url: str, *, graph_name: str = "trainyard"):
        super().__init__(url)
        import redis

        self._redis_errors = (redis.ConnectionError, redis.TimeoutError)
        self._response_error = redis.ResponseError
        parts = urlsplit(url)
        scheme = "rediss" if parts.scheme == "falkordbs" else "redis"
        self._redis_url = urlunsplit(parts._replace(scheme=scheme))
        self._graph_name = graph_name
        self.query_timeout_ms = QUERY_TIMEOUT_MS
        # Connected on first use: the client talks to the server when built, and building a store must
        # not fail or block (the app keeps working while the graph server is down).
        self._db = None
        self._graph = None

    def run(self, cypher: str, params: dict[str, Any] | None = None, *, read_only: bool = False) -> list[dict]:
        try:
            try:
                result = self._execute(cypher, params or {}, read_only)
            except self._response_error as exc:
                if not (read_only and EMPTY_KEY in str(exc)):
                    raise
                # A graph never written does not exist yet, and GRAPH.RO_QUERY refuses a missing key.
                # Creating the empty graph changes no data; then the read-only statement runs as asked.
                self._execute("RETURN 0", {}, False)
                result = self._execute(cypher, params or {}, read_only)
        except self._response_error as exc:
            raise GraphStoreError(str(exc)) from None
        columns = [column[1] if isinstance(column, (list, tuple)) else column for column in result.header]
        return [dict(zip(columns, (_plain(value) for value in row))) for row in result.result_set]

    def _execute(self, cypher: str, params: dict, read_only: bool):
        try:
            if self._graph is None:
                from falkordb import FalkorDB

                self._db = FalkorDB.from_url(self._redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S,
                                             socket_timeout=SOCKET_TIMEOUT_S)
                self._graph = self._db.select_graph(self._graph_name)
            if read_only:
                return self._graph.ro_query(cypher, params, timeout=self.query_timeout_ms)
            return self._graph.query(cypher, params, timeout=self.query_timeout_ms)
        except self._redis_errors as exc:
            raise GraphUnavailable(f"FalkorDB at {self.url_masked} is unreachable: {exc}") from None

    def ensure_schema(self, labels) -> None:
        """A range index and a unique constraint on ``key`` for each label. FalkorDB builds a unique
        constraint on top of an index, through its own command rather than Cypher; both are idempotent here."""
        for label in labels:
            self._idempotent(self.run, f"CREATE INDEX FOR (n:{label}) ON (n.key)")
            self._idempotent(self._graph.create_node_unique_constraint, label, "key")

    def _idempotent(self, create, *args) -> None:
        try:
            create(*args)
        except (GraphStoreError, self._response_error) as exc:
            if "already" not in str(exc):
                raise GraphStoreError(str(exc)) from None

    @property
    def url_masked(self) -> str:
        from config.env import mask_url

        return mask_url(self.url)

    def close(self) -> None:
        if self._db is not None:
            self._db.connection.close()


def _plain(value: Any) -> Any:
    from falkordb import Edge, Node, Path

    if isinstance(value, Node):
        return {"labels": list(value.labels or []), "properties": dict(value.properties)}
    if isinstance(value, Edge):
        return {"type": value.relation, "properties": dict(value.properties)}
    if isinstance(value, Path):
        return {"nodes": [_plain(node) for node in value.nodes()], "relationships": [_plain(e) for e in value.edges()]}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
