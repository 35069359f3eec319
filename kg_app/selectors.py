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
    elif label_of_key(query):  # an id goes straight to its label's index
        rows = store.run(cypher.find_node(label_of_key(query)), {**params, "key": query}, read_only=True)
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
# FalkorDB builds a range() list whole before any time or memory limit applies: range(1, 1e9) took
# 21 GB and the server was killed by the OOM killer (measured here). The console does without it.
_RANGE = re.compile(r"\brange\s*\(", re.IGNORECASE)


def query_check(statement: str) -> None:
    """Refuse what read-only mode does not cover: reading files or URLs, and procedures outside the
    allow-list (some write or reach outside the graph). Writes themselves are refused by the server."""
    text = _COMMENTS.sub(" ", statement)
    if _LOAD_CSV.search(text):
        raise QueryRefused("LOAD CSV is not allowed in the console: it reads files and URLs.")
    if _RANGE.search(text):
        raise QueryRefused("range() is not allowed in the console: a large range exhausts the graph server's memory.")
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


LINEAGE_DEPTH = 6
LINEAGE_MAX_NODES = 200


def graph_lineage(*, store: GraphStore, user, key: str, direction: str = "both", depth: int = LINEAGE_DEPTH) -> dict | None:
    """Upstream (what it was made from), downstream (what was made from it) or both, breadth first up to
    ``depth`` steps and LINEAGE_MAX_NODES nodes; None if the user may not see the node."""
    label = label_of_key(key)
    if label is None:
        return None
    projects = _project_ids(user)
    found = store.run(cypher.find_node(label), {"projects": projects, "key": key}, read_only=True)
    if not found:
        return None
    nodes = {key: node_payload(found[0]["n"])}
    relationships: dict[str, dict] = {}
    truncated = False
    for way in (("upstream", "downstream") if direction == "both" else (direction,)):
        frontier = {key: label}
        for _ in range(depth):
            reached: dict[str, str] = {}
            for frontier_label in set(frontier.values()):
                keys = [k for k, lab in frontier.items() if lab == frontier_label]
                for statement in cypher.lineage_steps(frontier_label, way):
                    rows = store.run(statement, {"keys": keys, "projects": projects, "limit": LINEAGE_MAX_NODES},
                                     read_only=True)
                    for row in rows:
                        neighbour = node_payload(row["m"])
                        relationship_id = f"{row['source']}-{row['type']}-{row['target']}"
                        relationships[relationship_id] = {"id": relationship_id, "type": row["type"],
                                                          "source": row["source"], "target": row["target"],
                                                          "properties": row["properties"]}
                        if neighbour["id"] not in nodes:
                            if len(nodes) >= LINEAGE_MAX_NODES:
                                truncated = True
                                continue
                            nodes[neighbour["id"]] = neighbour
                            reached[neighbour["id"]] = neighbour["labels"][0]
            if not reached:
                break
            frontier = reached
    relationships = {rid: r for rid, r in relationships.items() if r["source"] in nodes and r["target"] in nodes}
    return {"nodes": list(nodes.values()), "relationships": list(relationships.values()), "truncated": truncated}


QUESTIONS = {
    "runs-on-dataset": {"title": "Runs on this dataset version, ranked by a metric",
                        "labels": ["DatasetVersion"], "parameters": ["node", "metric"]},
    "designs-with-dataset": {"title": "Designs used with this dataset version", "labels": ["DatasetVersion"],
                             "parameters": ["node"]},
    "fine-tuned-from": {"title": "Runs and checkpoints fine-tuned from this one", "labels": ["Run", "Checkpoint"],
                        "parameters": ["node"]},
    "concepts-of-best-runs": {"title": "Concepts our best runs apply", "labels": [],
                              "parameters": ["metric", "top"]},
    "runs-that-showed": {"title": "Runs that showed this problem, when and why", "labels": ["Concept"],
                         "parameters": ["node"]},
}
QUESTION_LIMIT = 100
_METRIC = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def lower_is_better(metric: str) -> bool:
    return bool(re.search(r"(loss|mae|rmse)$", metric))


def graph_question(*, store: GraphStore, user, name: str, node: str = "", metric: str = "val_accuracy",
                   top: int = 10) -> dict | None:
    """A ready-made question over the user's projects: ``{"title", "columns", "rows", "nodes"}``, with
    nodes in rows as API nodes; None when the question's node is not visible to the user. A bad name or
    parameter raises ValueError with a message for a person."""
    question = QUESTIONS.get(name)
    if question is None:
        raise ValueError(f"Unknown question {name!r}; ask one of {', '.join(QUESTIONS)}.")
    if "metric" in question["parameters"] and not _METRIC.match(metric):
        raise ValueError(f"metric must be a metric name such as val_accuracy, not {metric!r}.")
    projects = _project_ids(user)
    params = {"projects": projects, "limit": QUESTION_LIMIT, "property": f"final_{metric}", "top": top}
    if "node" in question["parameters"]:
        label = label_of_key(node)
        if label not in question["labels"]:
            raise ValueError(f"This question needs a node of label {' or '.join(question['labels'])}, not {node!r}.")
        if not store.run(cypher.find_node(label), {"projects": projects, "key": node}, read_only=True):
            return None
        params["node"] = node
    if name in ("runs-on-dataset", "concepts-of-best-runs"):
        statement = cypher.ranked_question(name, ascending=lower_is_better(metric))
    elif name == "fine-tuned-from":
        statement = cypher.fine_tuned_from(label_of_key(node))
    elif name == "runs-that-showed":
        statement = cypher.RUNS_THAT_SHOWED
    else:
        statement = cypher.DESIGNS_WITH_DATASET
    rows = store.run(statement, params, read_only=True)
    columns = list(rows[0].keys()) if rows else []
    nodes: dict[str, dict] = {}

    def cell(value):
        if isinstance(value, dict) and "labels" in value and "properties" in value:
            payload = node_payload(value)
            nodes.setdefault(payload["id"], payload)
            return payload
        return value

    return {"title": question["title"], "columns": columns,
            "rows": [[cell(row[column]) for column in columns] for row in rows], "nodes": list(nodes.values())}
