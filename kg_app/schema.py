"""The graph's schema: the allow-lists of node labels and relationship types, and the stable ids.

Every node carries a ``key`` property, ``"<kind>:<id>"`` (``run:42``, ``concept:ddp``), that never
changes: FalkorDB has no ``elementId()``, so the key is the node's id in the API and in every MERGE.
The kind before the first colon names the label, so a key alone finds its node through the label's
index. Labels and types are only ever put into Cypher from these allow-lists, never from user text.
"""
from __future__ import annotations

NODE_LABELS = (
    "User", "Project", "Dataset", "DatasetVersion", "ModelDesign", "Run", "Sweep", "Checkpoint", "Worker", "Concept",
)

RELATIONSHIP_TYPES = (
    "TRAINED_ON",  # Run -> DatasetVersion
    "USES_DESIGN",  # Run -> ModelDesign
    "PART_OF",  # Run -> Sweep (a trial)
    "PRODUCED",  # Run -> Checkpoint
    "FINE_TUNED_FROM",  # Run -> Run
    "VERSION_OF",  # DatasetVersion -> Dataset
    "LAUNCHED_BY",  # Run -> User
    "RAN_ON",  # Run -> Worker
    "IN_PROJECT",  # Dataset, DatasetVersion, ModelDesign, Run, Sweep -> Project
    "APPLIES",  # Run, ModelDesign, Sweep -> Concept
    "IS_A",  # Concept -> Concept
    "REQUIRES",  # Concept -> Concept
    "SHOWED",  # Run -> Concept: a problem the run showed (overfitting…), with its evidence as properties
)

KEY_PREFIXES = {
    "user": "User",
    "project": "Project",
    "dataset": "Dataset",
    "datasetversion": "DatasetVersion",
    "design": "ModelDesign",
    "run": "Run",
    "sweep": "Sweep",
    "checkpoint": "Checkpoint",
    "worker": "Worker",
    "concept": "Concept",
}
PREFIX_OF_LABEL = {label: prefix for prefix, label in KEY_PREFIXES.items()}

# Nodes that belong to one project carry ``project_id``: the permission filter of every user-facing read.
PROJECT_SCOPED_LABELS = ("Project", "Dataset", "DatasetVersion", "ModelDesign", "Run", "Sweep", "Checkpoint")
# Shown as neighbours of a visible node (who launched a run, where it ran), never searched on their own.
SHARED_LABELS = ("User", "Worker")

# Properties a node's search matches and the property each label shows as its caption.
SEARCH_PROPERTIES = ("name", "key")


def checked_label(label: str) -> str:
    """``label`` if it is on the allow-list; a ``ValueError`` otherwise (a bug, never user input)."""
    if label not in NODE_LABELS:
        raise ValueError(f"{label!r} is not a node label of the knowledge graph")
    return label


def checked_type(relationship_type: str) -> str:
    if relationship_type not in RELATIONSHIP_TYPES:
        raise ValueError(f"{relationship_type!r} is not a relationship type of the knowledge graph")
    return relationship_type


def node_key(label: str, identifier: object) -> str:
    """The stable id of a node: ``node_key("Run", 42) == "run:42"``."""
    return f"{PREFIX_OF_LABEL[checked_label(label)]}:{identifier}"


def label_of_key(key: str) -> str | None:
    """The label a key names, or None for a string that is not a key of this graph."""
    prefix, separator, rest = key.partition(":")
    if not separator or not rest:
        return None
    return KEY_PREFIXES.get(prefix)
