from __future__ import annotations

from config.env import graph_url
from kg_app.store.base import GraphStore


def get_graph_store(url: str | None = None, *, user: str | None = None, password: str | None = None,
                    graph_name: str | None = None) -> GraphStore:
    """The adapter for ``url`` (default: settings.KG_URL): Neo4j for bolt:// and neo4j://, FalkorDB
    for falkordb://. Drivers are imported only when their adapter is chosen."""
    if url is None:
        from django.conf import settings

        url = settings.KG_URL
        user = user if user is not None else settings.KG_USER
        password = password if password is not None else settings.KG_PASSWORD
        graph_name = graph_name or settings.KG_GRAPH_NAME
    parsed = graph_url(url)
    if parsed.backend == "falkordb":
        from kg_app.store.falkordb_store import FalkorGraphStore

        return FalkorGraphStore(url, graph_name=graph_name or "trainyard")
    from kg_app.store.neo4j_store import Neo4jGraphStore

    return Neo4jGraphStore(url, user=user or "neo4j", password=password or "")
