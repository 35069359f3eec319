"""Reading the graph for a user: search, neighbourhoods and the read-only console.

Every user-facing read is filtered by the projects the user belongs to (SQL memberships, read at
request time), so a graph that is behind never widens what anyone sees.
"""
from __future__ import annotations

import re

from kg_app import cypher
from kg_app.schema import NODE_LABELS, label_of_key
from kg_app.store import GraphStore, GraphStoreError

SEARCH_LIMIT = 50
NEIGHBOURHOOD_LIMIT = 25
QUERY_ROW_LIMIT = 1000
QUERY_TIMEOUT_S = 5
# Procedures the console may call: they only describe the graph.
ALLOWED_PROCEDURES = frozenset({"db.labels", "db.relationshiptypes", "db.propertykeys", "db.indexes",
                                "db.constraints"})


def _project_ids(user) -> list[int]:
    from trainer_app.selectors import project_list

    return list(project_list(user=user).values_list("id", flat=True))


def node_payload(node: dict) -> dict:
    """A node as the API gives it: its stable key is its id."""
    return {"id": node["properties"].get("key"), "labels": node["labels"], "properties": node["properties"]}


def graph_search(*, store: GraphStore, user, query: str, limit: int = SEARCH_LIMIT) -> list[dict]:
    """Nodes whose name contains ``query`` (any case) or whose key is ``query``; a label's name lists
    that label's nodes ("run", "Concept")."""
    query = query.strip()
    params = {"projects": _project_ids(user), "limit": limit}
    labels = {label.lower(): label for label in NODE_LABELS}
    if query.lower() in labels:
        rows = store.run(cypher.search_label(labels[query.lower()]), params, read_only=True)
    else:
        rows = store.run(cypher.SEARCH, {**params, "query": query, "needle": query.lower()}, read_only=True)
    return [node_payload(row["n"]) for row in rows]


def graph_neighbourhood(*, store: GraphStore, user, key: str, skip: int = 0,
                        limit: int = NEIGHBOURHOOD_LIMIT) -> dict | None:
    """The node, its visible neighbours and the relationships between them, ``limit`` neighbours at a
    time (``more`` says whether another page exists); None if the user may not see the node."""
    label = label_of_key(key)
    if label is None:
        return None
    params = {"projects": _project_ids(user), "key": key}
    found = store.run(cypher.find_node(label), params, read_only=True)
    if not found:
        return None
    rows = store.run(cypher.neighbourhood(label), {**params, "skip": skip, "limit": limit + 1}, read_only=True)
    more, rows = len(rows) > limit, rows[:limit]
    nodes = {key: node_payload(found[0]["n"])}
    relationships = []
    for row in rows:
        neighbour = node_payload(row["m"])
        nodes.setdefault(neighbour["id"], neighbour)
        relationships.append({"id": f"{row['source']}-{row['type']}-{row['target']}", "type": row["type"],
                              "source": row["source"], "target": row["target"], "properties": row["properties"]})
    return {"nodes": list(nodes.values()), "relationships": relationships, "more": more, "next_skip": skip + limit}


class QueryRefused(ValueError):
    """A console statement the server will not run; the message says why."""


_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_LOAD_CSV = re.compile(r"\bLOAD\s+CSV\b", re.IGNORECASE)
_CALL = re.compile(r"\bCALL\s*([^\s({][^\s(]*)", re.IGNORECASE)


def query_check(statement: str) -> None:
    """Refuse what read-only mode does not cover: reading files or URLs, and procedures outside the
    allow-list (some write or reach outside the graph). Writes themselves are refused by the server."""
    text = _COMMENTS.sub(" ", statement)
    if _LOAD_CSV.search(text):
        raise QueryRefused("LOAD CSV is not allowed in the console: it reads files and URLs.")
    for match in _CALL.finditer(text):
        name = match.group(1).replace("`", "").rstrip(";").lower()
        if name not in ALLOWED_PROCEDURES:
            raise QueryRefused(f"The procedure {match.group(1)} is not allowed; the console may call "
                               f"{', '.join(sorted(ALLOWED_PROCEDURES))}.")


def graph_query(*, store: GraphStore, statement: str, params: dict) -> dict:
    """Run a console statement read-only, enforced by the server, within a time and a row limit."""
    query_check(statement)
    if hasattr(store, "query_timeout_ms"):
        store.query_timeout_ms = QUERY_TIMEOUT_S * 1000
    if hasattr(store, "query_timeout_s"):
        store.query_timeout_s = QUERY_TIMEOUT_S
    try:
        rows = store.run(statement, params, read_only=True)
    except GraphStoreError as exc:
        if "timed out" in str(exc).lower() or "timeout" in str(exc).lower():
            raise QueryRefused(f"The query ran longer than {QUERY_TIMEOUT_S} s and was stopped.") from None
        raise
    columns = list(rows[0].keys()) if rows else []
    return {"columns": columns, "rows": [[row[column] for column in columns] for row in rows[:QUERY_ROW_LIMIT]],
            "truncated": len(rows) > QUERY_ROW_LIMIT}


def graph_overview(*, store: GraphStore, user) -> dict:
    """What the browse page needs before any search: is the graph reachable, and does it hold any node
    of the user's projects yet."""
    from kg_app.services import outbox_lag

    lag = outbox_lag()
    try:
        rows = store.run(cypher.COUNT_VISIBLE, {"projects": _project_ids(user)}, read_only=True)
    except GraphStoreError as exc:
        return {"ok": False, "error": str(exc), "nodes": 0, **lag}
    return {"ok": True, "nodes": rows[0]["nodes"] if rows else 0, **lag}
