"""Graph stores behind one interface: ``get_graph_store(url)`` picks the adapter by URL scheme."""
from kg_app.store.base import GraphStore, GraphStoreError, GraphUnavailable
from kg_app.store.factory import get_graph_store

__all__ = ["GraphStore", "GraphStoreError", "GraphUnavailable", "get_graph_store"]
