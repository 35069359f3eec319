"""Every Cypher statement the app sends to the graph, in the subset FalkorDB and Neo4j 5 both accept.

Values are always parameters. Labels and relationship types cannot be parameters in Cypher, so the
builders below take them only through ``checked_label``/``checked_type`` (the schema's allow-lists).
"""
from __future__ import annotations

from kg_app.schema import SHARED_LABELS, checked_label, checked_type

# --- writes (the sync and the rebuild) ---------------------------------------------------------------

def upsert_nodes(label: str) -> str:
    """Rows ``{key, properties}``; the node's properties become exactly ``properties`` (which hold the key)."""
    return f"UNWIND $rows AS row MERGE (n:{checked_label(label)} {{key: row.key}}) SET n = row.properties"


def link_nodes(from_label: str, relationship_type: str, to_label: str) -> str:
    """Rows ``{source, target}``. A target not synced yet is created with its key alone and filled in
    when its own event arrives, so events may be drained in any order."""
    return (f"UNWIND $rows AS row MATCH (a:{checked_label(from_label)} {{key: row.source}}) "
            f"MERGE (b:{checked_label(to_label)} {{key: row.target}}) "
            f"MERGE (a)-[:{checked_type(relationship_type)}]->(b)")


def link_nodes_with_properties(from_label: str, relationship_type: str, to_label: str) -> str:
    """Rows ``{source, target, properties}``: like ``link_nodes``, and the relationship's properties become
    exactly ``properties`` (a run's finding and its evidence on SHOWED)."""
    return (f"UNWIND $rows AS row MATCH (a:{checked_label(from_label)} {{key: row.source}}) "
            f"MERGE (b:{checked_label(to_label)} {{key: row.target}}) "
            f"MERGE (a)-[r:{checked_type(relationship_type)}]->(b) SET r = row.properties")


def delete_nodes(label: str) -> str:
    return f"UNWIND $keys AS key MATCH (n:{checked_label(label)} {{key: key}}) DETACH DELETE n"


# Deleting a large graph in one statement would outlast the query time limit: a slice at a time.
DELETE_SOME_NODES = "MATCH (n) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"

# --- reads (the API and the page) ----------------------------------------------------------------------

# A node is visible to a user when it belongs to one of their projects (``$projects``) or is a concept.
# Users and workers only appear as neighbours of a visible node.
_VISIBLE = "(n.project_id IN $projects OR n:Concept)"
_VISIBLE_NEIGHBOUR = ("(m.project_id IN $projects OR m:Concept OR "
                      + " OR ".join(f"m:{checked_label(label)}" for label in SHARED_LABELS) + ")")

SEARCH = (f"MATCH (n) WHERE {_VISIBLE} AND (n.key = $query OR toLower(n.name) CONTAINS $needle) "
          "RETURN n ORDER BY n.name LIMIT $limit")


def search_label(label: str) -> str:
    """Nodes of one label (a search for "run" lists runs)."""
    return f"MATCH (n:{checked_label(label)}) WHERE {_VISIBLE} RETURN n ORDER BY n.name LIMIT $limit"


def find_node(label: str) -> str:
    return f"MATCH (n:{checked_label(label)} {{key: $key}}) WHERE {_VISIBLE} RETURN n"


def neighbourhood(label: str) -> str:
    """A visible node's relationships to its visible neighbours, capped at ``$limit`` after ``$skip``.
    No ORDER BY: sorting a hub's thousands of neighbours cost 40-70 ms on 100,000 nodes, and the
    traversal order is stable between pages while the graph does not change."""
    return (f"MATCH (n:{checked_label(label)} {{key: $key}})-[r]-(m) WHERE {_VISIBLE_NEIGHBOUR} "
            "RETURN m, type(r) AS type, startNode(r).key AS source, endNode(r).key AS target, properties(r) AS properties "
            "SKIP $skip LIMIT $limit")


# --- lineage questions ---------------------------------------------------------------------------------

RUNS_ON_DATASET_VERSION = (
    "MATCH (r:Run)-[:TRAINED_ON]->(d:DatasetVersion {key: $key}) RETURN r.key AS run ORDER BY run")
CHECKPOINT_ORIGIN = (
    "MATCH (c:Checkpoint {key: $key})<-[:PRODUCED]-(r:Run) "
    "OPTIONAL MATCH (r)-[:TRAINED_ON]->(d:DatasetVersion) OPTIONAL MATCH (r)-[:USES_DESIGN]->(m:ModelDesign) "
    "OPTIONAL MATCH (r)-[:FINE_TUNED_FROM]->(p:Run) "
    "RETURN r.key AS run, d.key AS dataset_version, m.key AS design, p.key AS fine_tuned_from")
FINE_TUNED_FROM_RUN = (
    "MATCH (r:Run)-[:FINE_TUNED_FROM*1..]->(p:Run {key: $key}) RETURN DISTINCT r.key AS run ORDER BY run")
CONCEPTS_OF_RUN = "MATCH (r:Run {key: $key})-[:APPLIES]->(c:Concept) RETURN c.key AS concept ORDER BY concept"

# --- the whole graph, for comparisons (tests, rebuild checks) ------------------------------------------

ALL_NODES = "MATCH (n) RETURN labels(n) AS labels, properties(n) AS properties"
ALL_RELATIONSHIPS = "MATCH (a)-[r]->(b) RETURN a.key AS source, type(r) AS type, b.key AS target"
COUNTS = "MATCH (n) OPTIONAL MATCH (n)-[r]->() RETURN count(DISTINCT n) AS nodes, count(r) AS relationships"

# Nodes of the user's projects (concepts are always there, so they do not count).
COUNT_VISIBLE = "MATCH (n) WHERE n.project_id IN $projects RETURN count(n) AS nodes"

# --- lineage: what an object came from (upstream) and what came from it (downstream) ----------------
# (a)-[:TRAINED_ON|USES_DESIGN|FINE_TUNED_FROM|VERSION_OF]->(b): a derives from b.
# (a)-[:PRODUCED]->(b): b derives from a.
_DERIVES_FROM = "TRAINED_ON|USES_DESIGN|FINE_TUNED_FROM|VERSION_OF"
_LINEAGE_RETURN = ("RETURN m, type(r) AS type, startNode(r).key AS source, endNode(r).key AS target, "
                   "properties(r) AS properties LIMIT $limit")


def lineage_steps(label: str, direction: str) -> list[str]:
    """One step of lineage from the nodes ``$keys`` of ``label``, to visible nodes only."""
    label = checked_label(label)
    where = "WHERE n.key IN $keys AND m.project_id IN $projects "
    if direction == "upstream":
        patterns = [f"(n:{label})-[r:{_DERIVES_FROM}]->(m)", f"(n:{label})<-[r:PRODUCED]-(m)"]
    elif direction == "downstream":
        patterns = [f"(n:{label})<-[r:{_DERIVES_FROM}]-(m)", f"(n:{label})-[r:PRODUCED]->(m)"]
    else:
        raise ValueError(f"direction must be upstream or downstream, not {direction!r}")
    return [f"MATCH {pattern} {where}{_LINEAGE_RETURN}" for pattern in patterns]

# --- ready-made questions ---------------------------------------------------------------------------------
# ``$property`` is a run's final metric property (final_<metric>); ORDER BY's direction cannot be a
# parameter, so each ranked question has an ascending and a descending text.
_RANKED = {
    "runs-on-dataset": ("MATCH (r:Run)-[:TRAINED_ON]->(:DatasetVersion {key: $node}) "
                        "WHERE r.project_id IN $projects AND r[$property] IS NOT NULL "
                        "RETURN r AS run, r[$property] AS value ORDER BY value {direction} LIMIT $limit"),
    "concepts-of-best-runs": ("MATCH (r:Run) WHERE r.project_id IN $projects AND r[$property] IS NOT NULL "
                              "WITH r ORDER BY r[$property] {direction} LIMIT $top "
                              "MATCH (r)-[:APPLIES]->(c:Concept) "
                              "RETURN c AS concept, count(r) AS runs ORDER BY runs DESC, concept.name LIMIT $limit"),
}
_FINE_TUNED = ("MATCH {start}<-[:FINE_TUNED_FROM*1..]-(r:Run) WHERE r.project_id IN $projects "
               "OPTIONAL MATCH (r)-[:PRODUCED]->(c:Checkpoint) "
               "RETURN r AS run, c AS checkpoint ORDER BY run.key, checkpoint.step LIMIT $limit")
# A problem and its narrower ones: "divergence" finds the runs whose loss became NaN too.
RUNS_THAT_SHOWED = (
    "MATCH (r:Run)-[s:SHOWED]->(c:Concept)-[:IS_A*0..3]->(:Concept {key: $node}) WHERE r.project_id IN $projects "
    "RETURN DISTINCT r AS run, c.name AS problem, s.epoch AS epoch, s.explanation AS why, s.fix AS fix "
    "ORDER BY run.key LIMIT $limit")
DESIGNS_WITH_DATASET = (
    "MATCH (:DatasetVersion {key: $node})<-[:TRAINED_ON]-(r:Run)-[:USES_DESIGN]->(m:ModelDesign) "
    "WHERE r.project_id IN $projects RETURN m AS design, count(r) AS runs ORDER BY runs DESC LIMIT $limit")


def ranked_question(name: str, *, ascending: bool) -> str:
    return _RANKED[name].replace("{direction}", "ASC" if ascending else "DESC")


def fine_tuned_from(label: str) -> str:
    """Runs fine-tuned, directly or not, from a run or from the run that produced a checkpoint."""
    start = {"Run": "(:Run {key: $node})", "Checkpoint": "(:Checkpoint {key: $node})<-[:PRODUCED]-(:Run)"}[label]
    return _FINE_TUNED.replace("{start}", start)
