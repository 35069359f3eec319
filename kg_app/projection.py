"""SQL rows to graph nodes and relationships: the one place that decides what the graph shows.

The sync (one event at a time) and ``kg_rebuild`` (everything) both build a ``GraphBatch`` here and
write it with ``graph_write``, so a rebuilt graph equals an incrementally synced one by construction.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from kg_app import cypher
from kg_app.ontology import CONCEPTS, run_concepts, sweep_concepts
from kg_app.schema import node_key
from kg_app.store import GraphStore

WRITE_CHUNK = 1000


@dataclass
class GraphBatch:
    """Nodes by label (key -> properties), relationships by (from label, type, to label), deletions."""

    nodes: dict = field(default_factory=lambda: defaultdict(dict))
    links: dict = field(default_factory=lambda: defaultdict(set))
    deletions: dict = field(default_factory=lambda: defaultdict(set))
    # relationships that carry properties: (from label, type, to label) -> {(source, target): properties}
    rich_links: dict = field(default_factory=lambda: defaultdict(dict))

    def node(self, label: str, identifier, **properties) -> str:
        key = node_key(label, identifier)
        self.nodes[label][key] = {"key": key, **{name: _plain(value) for name, value in properties.items()
                                                 if _plain(value) is not None}}
        return key

    def link(self, from_label: str, source: str, relationship_type: str, to_label: str, target_identifier) -> None:
        self.links[(from_label, relationship_type, to_label)].add((source, node_key(to_label, target_identifier)))

    def link_with(self, from_label: str, source: str, relationship_type: str, to_label: str, target_identifier,
                  properties: dict) -> None:
        """A relationship whose properties are exactly ``properties`` (scalars and lists of scalars)."""
        self.rich_links[(from_label, relationship_type, to_label)][(source, node_key(to_label, target_identifier))] = {
            name: _plain(value) for name, value in properties.items() if _plain(value) is not None}

    def delete(self, label: str, identifier) -> None:
        self.deletions[label].add(node_key(label, identifier))

    def __len__(self) -> int:
        return sum(map(len, self.nodes.values())) + sum(map(len, self.links.values())) + \
            sum(map(len, self.rich_links.values())) + sum(map(len, self.deletions.values()))


def graph_write(store: GraphStore, batch: GraphBatch) -> None:
    """Write a batch: deletions, then nodes, then relationships, each as UNWIND over chunks. MERGE on
    keys makes writing the same batch twice change nothing."""
    for label, keys in batch.deletions.items():
        for chunk in _chunks(sorted(keys)):
            store.run(cypher.delete_nodes(label), {"keys": chunk})
    for label, nodes in batch.nodes.items():
        rows = [{"key": key, "properties": properties} for key, properties in sorted(nodes.items())]
        for chunk in _chunks(rows):
            store.run(cypher.upsert_nodes(label), {"rows": chunk})
    for (from_label, relationship_type, to_label), pairs in batch.links.items():
        rows = [{"source": source, "target": target} for source, target in sorted(pairs)]
        for chunk in _chunks(rows):
            store.run(cypher.link_nodes(from_label, relationship_type, to_label), {"rows": chunk})
    for (from_label, relationship_type, to_label), links in batch.rich_links.items():
        rows = [{"source": source, "target": target, "properties": properties}
                for (source, target), properties in sorted(links.items())]
        for chunk in _chunks(rows):
            store.run(cypher.link_nodes_with_properties(from_label, relationship_type, to_label), {"rows": chunk})


# --- one function per kind of object -----------------------------------------------------------------

def add_project(batch: GraphBatch, project) -> None:
    batch.node("Project", project.pk, name=project.name, project_id=project.pk)


def add_dataset(batch: GraphBatch, dataset) -> None:
    """A version row is a DatasetVersion; the named dataset all its versions share is a Dataset."""
    scope = dataset.project_id
    named = f"{scope}:{dataset.name}"
    batch.node("Dataset", named, name=dataset.name, project_id=scope)
    key = batch.node("DatasetVersion", dataset.pk, name=f"{dataset.name} v{dataset.version}", dataset=dataset.name,
                     version=dataset.version, status=dataset.status, task=dataset.task, modality=dataset.modality,
                     num_samples=dataset.num_samples, num_classes=dataset.num_classes, sha256=dataset.sha256,
                     created_at=dataset.created_at, project_id=scope, object_id=dataset.pk)
    batch.link("DatasetVersion", key, "VERSION_OF", "Dataset", named)
    batch.link("DatasetVersion", key, "IN_PROJECT", "Project", scope)
    batch.link("Dataset", node_key("Dataset", named), "IN_PROJECT", "Project", scope)


def add_design(batch: GraphBatch, design) -> None:
    from kg_app.ontology import FAMILY_CONCEPTS

    key = batch.node("ModelDesign", design.pk, name=f"{design.name} v{design.version}", design=design.name,
                     version=design.version, family=design.family, preset=design.spec.get("preset"),
                     created_at=design.created_at, project_id=design.project_id, object_id=design.pk)
    batch.link("ModelDesign", key, "IN_PROJECT", "Project", design.project_id)
    if concept := FAMILY_CONCEPTS.get(design.family):
        batch.link("ModelDesign", key, "APPLIES", "Concept", concept)


def add_run(batch: GraphBatch, run) -> None:
    """A run with its key hyperparameters and final metrics (``final_<metric>``) as properties.
    Needs ``design``, ``created_by`` and ``worker`` loaded (select_related)."""
    config, resources = run.config or {}, run.resources or {}
    schedule = config.get("schedule") if isinstance(config.get("schedule"), dict) else {}
    finals = {f"final_{name}": value for name, value in (run.summary or {}).items()
              if isinstance(value, (int, float)) and not isinstance(value, bool)}
    key = batch.node(
        "Run", run.pk, name=str(run), status=run.status, kind=run.kind, optimizer=config.get("optimizer"),
        lr=config.get("lr"), batch_size=config.get("batch_size"), epochs=config.get("epochs"), seed=config.get("seed"),
        schedule=schedule.get("type"), nproc_per_node=resources.get("nproc_per_node"), nnodes=resources.get("nnodes"),
        created_at=run.created_at, finished_at=run.finished_at, project_id=run.project_id, object_id=run.pk, **finals)
    batch.link("Run", key, "TRAINED_ON", "DatasetVersion", run.dataset_id)
    batch.link("Run", key, "USES_DESIGN", "ModelDesign", run.design_id)
    batch.link("Run", key, "IN_PROJECT", "Project", run.project_id)
    if run.created_by_id:
        batch.node("User", run.created_by_id, name=run.created_by.get_username())
        batch.link("Run", key, "LAUNCHED_BY", "User", run.created_by_id)
    if run.worker_id:
        batch.node("Worker", run.worker_id, name=run.worker.name, hostname=run.worker.hostname,
                   status=run.worker.status)
        batch.link("Run", key, "RAN_ON", "Worker", run.worker_id)
    if run.fine_tuned_from_id:
        batch.link("Run", key, "FINE_TUNED_FROM", "Run", run.fine_tuned_from_id)
    if run.sweep_id:
        batch.link("Run", key, "PART_OF", "Sweep", run.sweep_id)
    fine_tuned = bool(run.fine_tuned_from_id or run.init_weights_id)
    for slug in run_concepts(config=config, resources=resources, family=run.design.family, fine_tuned=fine_tuned,
                             frozen=bool((run.init or {}).get("freeze"))):
        batch.link("Run", key, "APPLIES", "Concept", slug)
    add_run_findings(batch, run, key)


def add_run_findings(batch: GraphBatch, run, key: str) -> None:
    """Each problem the run showed (trainer_app/run_health.py) as SHOWED to its concept, with the evidence:
    a lead asks the graph which runs overfitted, when, and why."""
    from trainer_app.run_health import FINDING_CONCEPTS

    for finding in run.findings.all():
        concept = FINDING_CONCEPTS.get(finding.code)
        if concept is None:
            continue
        details = finding.details or {}
        batch.link_with("Run", key, "SHOWED", "Concept", concept, {
            **(details.get("evidence") or {}), "code": finding.code, "severity": finding.severity,
            "epoch": finding.epoch, "step": finding.step, "explanation": details.get("explanation", ""),
            "fix": details.get("fix", ""), "first_seen_at": finding.first_seen_at})


def add_sweep(batch: GraphBatch, sweep) -> None:
    """A sweep with its search (sampler, pruner, objectives, budget) and best value; its trials link to it
    with PART_OF (add_run). Needs ``created_by`` loaded."""
    objectives = sweep.objectives or []
    best = sweep.best or {}
    key = batch.node(
        "Sweep", sweep.pk, name=str(sweep), status=sweep.status, sampler=sweep.sampler, pruner=sweep.pruner,
        objective=", ".join(f"{o.get('direction', '')} {o.get('metric', '')}".strip() for o in objectives),
        n_trials=sweep.n_trials, parallelism=sweep.parallelism, parameters=", ".join(sorted(sweep.search_space or {})),
        best_value=best.get("value"), best_trial=best.get("number"), created_at=sweep.created_at,
        finished_at=sweep.finished_at, project_id=sweep.project_id, object_id=sweep.pk)
    batch.link("Sweep", key, "TRAINED_ON", "DatasetVersion", sweep.dataset_id)
    batch.link("Sweep", key, "USES_DESIGN", "ModelDesign", sweep.design_id)
    batch.link("Sweep", key, "IN_PROJECT", "Project", sweep.project_id)
    if sweep.created_by_id:
        batch.node("User", sweep.created_by_id, name=sweep.created_by.get_username())
        batch.link("Sweep", key, "LAUNCHED_BY", "User", sweep.created_by_id)
    for slug in sweep_concepts(sampler=sweep.sampler, pruner=sweep.pruner, objectives=len(objectives)):
        batch.link("Sweep", key, "APPLIES", "Concept", slug)


def add_checkpoint(batch: GraphBatch, checkpoint) -> None:
    """Needs ``run`` loaded: a checkpoint belongs to its run's project."""
    batch.node("Checkpoint", checkpoint.pk, name=f"{checkpoint.run} step {checkpoint.step}",
                     epoch=checkpoint.epoch, step=checkpoint.step, best=checkpoint.best,
                     created_at=checkpoint.created_at, project_id=checkpoint.run.project_id, object_id=checkpoint.pk,
                     run_id=checkpoint.run_id)
    batch.link("Run", node_key("Run", checkpoint.run_id), "PRODUCED", "Checkpoint", checkpoint.pk)


def add_worker(batch: GraphBatch, worker) -> None:
    batch.node("Worker", worker.pk, name=worker.name, hostname=worker.hostname, status=worker.status)


def add_concept(batch: GraphBatch, *, slug: str, name: str, description: str, is_a=(), requires=()) -> None:
    key = batch.node("Concept", slug, name=name, description=description)
    for broader in is_a:
        batch.link("Concept", key, "IS_A", "Concept", broader)
    for needed in requires:
        batch.link("Concept", key, "REQUIRES", "Concept", needed)


def add_builtin_concepts(batch: GraphBatch) -> None:
    for concept in CONCEPTS:
        add_concept(batch, slug=concept.slug, name=concept.name, description=concept.description,
                    is_a=concept.is_a, requires=concept.requires)


def add_admin_concept(batch: GraphBatch, concept) -> None:
    add_concept(batch, slug=concept.slug, name=concept.name, description=concept.description,
                is_a=[concept.is_a] if concept.is_a else [], requires=[slug for slug in concept.requires if slug])


# --- helpers -------------------------------------------------------------------------------------------

def _plain(value):
    """A value both servers store as a property: dates as ISO strings, lists of scalars; maps dropped."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, (str, int, float, bool)) for item in value):
        return list(value)
    return None


def _chunks(rows: list) -> list[list]:
    return [rows[start:start + WRITE_CHUNK] for start in range(0, len(rows), WRITE_CHUNK)]
