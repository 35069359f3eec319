"""The outbox and the sync into the real FalkorDB: idempotent, lossless, equal to a rebuild."""
import uuid

import pytest

from config.embedded import free_port
from kg_app import cypher
from kg_app.models import OutboxEvent
from kg_app.services import graph_rebuild, graph_sync
from kg_app.store import get_graph_store
from trainer_app.models import Checkpoint, RunStatus


@pytest.fixture
def store(falkordb_server):
    graph = get_graph_store(falkordb_server, graph_name=f"kg-test-{uuid.uuid4().hex[:8]}")
    yield graph
    try:
        graph.run("MATCH (n) DETACH DELETE n")
    finally:
        graph.close()


def snapshot(store) -> tuple[set, set]:
    def frozen(value):
        return tuple(value) if isinstance(value, list) else value

    nodes = {(tuple(row["labels"]), frozenset((k, frozen(v)) for k, v in row["properties"].items()))
             for row in store.run(cypher.ALL_NODES)}
    relationships = {(row["source"], row["type"], row["target"]) for row in store.run(cypher.ALL_RELATIONSHIPS)}
    return nodes, relationships


def keys(store, question: str, key: str, column: str) -> list:
    return [row[column] for row in store.run(question, {"key": key}, read_only=True)]


@pytest.fixture
def lineage(run_factory):
    """A parent run with a checkpoint, and a DDP run fine-tuned from it."""
    parent = run_factory(config={"optimizer": "adamw", "lr": 0.01, "schedule": {"type": "cosine"}},
                         resources={"nproc_per_node": 1}, summary={"val_accuracy": 0.9})
    checkpoint = Checkpoint.objects.create(run=parent, epoch=1, step=10, path="x.safetensors", best=True)
    child = run_factory(config={"optimizer": "sgd", "augmentation": {"hflip": True}},
                        resources={"nproc_per_node": 2}, fine_tuned_from=parent)
    return parent, checkpoint, child


def test_every_change_writes_an_outbox_row_in_its_transaction(lineage):
    parent, checkpoint, child = lineage
    pending = set(OutboxEvent.objects.filter(processed_at__isnull=True).values_list("entity", "object_id"))
    assert {("run", str(parent.pk)), ("run", str(child.pk)), ("checkpoint", str(checkpoint.pk)),
            ("dataset", str(parent.dataset_id)), ("design", str(parent.design_id)),
            ("project", str(parent.project_id))} <= pending


def test_lineage_questions_are_answered(store, lineage):
    parent, checkpoint, child = lineage
    assert graph_sync(store=store)["ok"]
    assert keys(store, cypher.RUNS_ON_DATASET_VERSION, f"datasetversion:{parent.dataset_id}", "run") == sorted(
        [f"run:{parent.pk}", f"run:{child.pk}"])
    assert store.run(cypher.CHECKPOINT_ORIGIN, {"key": f"checkpoint:{checkpoint.pk}"}) == [{
        "run": f"run:{parent.pk}", "dataset_version": f"datasetversion:{parent.dataset_id}",
        "design": f"design:{parent.design_id}", "fine_tuned_from": None}]
    assert keys(store, cypher.FINE_TUNED_FROM_RUN, f"run:{parent.pk}", "run") == [f"run:{child.pk}"]


def test_runs_link_to_the_concepts_they_apply(store, lineage):
    parent, _checkpoint, child = lineage
    graph_sync(store=store)
    assert keys(store, cypher.CONCEPTS_OF_RUN, f"run:{parent.pk}", "concept") == [
        "concept:adamw", "concept:learning-rate-schedule", "concept:mlp"]
    assert keys(store, cypher.CONCEPTS_OF_RUN, f"run:{child.pk}", "concept") == [
        "concept:augmentation", "concept:data-parallelism", "concept:ddp", "concept:fine-tuning", "concept:mlp",
        "concept:sgd"]
    run = store.run("MATCH (r:Run {key: $key}) RETURN r", {"key": f"run:{parent.pk}"})[0]["r"]["properties"]
    assert run["optimizer"] == "adamw" and run["lr"] == 0.01 and run["final_val_accuracy"] == 0.9


def test_draining_twice_changes_nothing(store, lineage):
    graph_sync(store=store)
    before = snapshot(store)
    OutboxEvent.objects.update(processed_at=None)  # replay every event
    assert graph_sync(store=store)["synced"] >= 6
    assert snapshot(store) == before


def test_rebuild_equals_incremental_sync(store, lineage):
    graph_sync(store=store)
    incremental = snapshot(store)
    graph_rebuild(store=store)
    assert snapshot(store) == incremental


def test_changes_that_bypass_save_are_caught_up(store, run_factory):
    from trainer_app.services.runs import run_finish

    run = run_factory(status=RunStatus.RUNNING, lease_owner="w1")
    graph_sync(store=store)
    assert run_finish(run_id=run.pk, owner="w1", status=RunStatus.SUCCEEDED)  # a queryset update: no signal
    Checkpoint.objects.bulk_create([Checkpoint(run=run, epoch=1, step=5, path="c.safetensors")])
    graph_sync(store=store)
    node = store.run("MATCH (r:Run {key: $key})-[:PRODUCED]->(c:Checkpoint) RETURN r.status AS status, count(c) AS c",
                     {"key": f"run:{run.pk}"})
    assert node == [{"status": "succeeded", "c": 1}]


def test_graph_down_keeps_the_app_working_and_the_outbox_catches_up(store, run_factory):
    down = get_graph_store(f"falkordb://127.0.0.1:{free_port()}", graph_name="down")
    runs = [run_factory(name=f"while-down-{n}") for n in range(3)]  # the app keeps working
    answer = graph_sync(store=down)
    assert answer["ok"] is False and "unreachable" in answer["error"]
    assert OutboxEvent.objects.filter(processed_at__isnull=True).count() >= 3
    assert graph_sync(store=store)["ok"]  # the server is back
    assert OutboxEvent.objects.filter(processed_at__isnull=True).count() == 0
    found = store.run("MATCH (r:Run) WHERE r.key IN $keys RETURN count(r) AS c", {"keys": [f"run:{r.pk}" for r in runs]})
    assert found == [{"c": 3}]


def test_a_deleted_object_leaves_the_graph(store, lineage):
    _parent, checkpoint, _child = lineage
    graph_sync(store=store)
    key = f"checkpoint:{checkpoint.pk}"
    checkpoint.delete()
    graph_sync(store=store)
    assert store.run("MATCH (c:Checkpoint {key: $key}) RETURN c", {"key": key}) == []


def test_names_with_cypher_in_them_are_stored_as_plain_text(store, run_factory):
    hostile = "x'}) DETACH DELETE n //"
    run = run_factory(name=hostile)
    graph_sync(store=store)
    assert store.run("MATCH (r:Run {key: $key}) RETURN r.name AS name", {"key": f"run:{run.pk}"}) == [{"name": hostile}]
    assert store.run("MATCH (n:Concept) RETURN count(n) AS c")[0]["c"] > 30


def test_schema_and_ontology_are_idempotent(store):
    from kg_app.services import graph_prepare

    graph_prepare(store)
    before = snapshot(store)
    graph_prepare(store)
    assert snapshot(store) == before
    assert store.run("MATCH (:Concept {key: 'concept:ddp'})-[:IS_A]->(c) RETURN c.key AS k") == [
        {"k": "concept:data-parallelism"}]


def test_admin_concepts_and_registered_workers_reach_the_graph(store, db):
    from django.utils import timezone

    from kg_app.models import Concept
    from trainer_app.services.fleet import worker_heartbeat

    Concept.objects.create(slug="mixed-precision", name="Mixed precision", description="fp16/bf16 compute",
                           is_a="model-optimisation", requires=["sgd"])
    beat = {"name": "gpu@node", "hostname": "node", "queues": ["cpu"], "pid": 1, "cpu_count": 2, "ram_mb": 1,
            "gpus": [], "software": {}, "started_at": timezone.now()}
    worker = worker_heartbeat(**beat)
    worker_heartbeat(**beat)  # a heartbeat is not news to the graph
    assert OutboxEvent.objects.filter(entity="worker").count() == 1
    graph_sync(store=store)
    assert store.run("MATCH (c:Concept {key: 'concept:mixed-precision'})-[r]->(o) RETURN type(r) AS t, o.key AS o "
                     "ORDER BY t") == [{"t": "IS_A", "o": "concept:model-optimisation"},
                                       {"t": "REQUIRES", "o": "concept:sgd"}]
    assert store.run("MATCH (w:Worker {key: $key}) RETURN w.name AS name", {"key": f"worker:{worker.pk}"}) == [
        {"name": "gpu@node"}]
    Concept.objects.filter(slug="mixed-precision").delete()  # a queryset delete still sends post_delete
    graph_sync(store=store)
    assert store.run("MATCH (c:Concept {key: 'concept:mixed-precision'}) RETURN c") == []


def test_kg_rebuild_command_rebuilds_the_configured_graph(store, lineage, settings, falkordb_server):
    from io import StringIO

    from django.core.management import call_command

    settings.KG_URL, settings.KG_GRAPH_NAME = falkordb_server, store._graph_name
    graph_sync(store=store)
    synced = snapshot(store)
    store.run("MATCH (n:Run) DETACH DELETE n")  # damage the projection
    out = StringIO()
    call_command("kg_rebuild", stdout=out)
    assert "rebuilt the knowledge graph" in out.getvalue()
    assert snapshot(store) == synced


def test_a_sweep_its_trials_and_its_search_concepts_reach_the_graph(store, run_factory):
    from django.utils import timezone

    from trainer_app.models import Sweep

    parent = run_factory()
    sweep = Sweep.objects.create(project=parent.project, dataset=parent.dataset, design=parent.design,
                                 queue=parent.queue, created_by=run_factory.owner, name="lr search",
                                 study_name=f"kg-{uuid.uuid4().hex}", sampler="tpe", pruner="asha",
                                 objectives=[{"metric": "val_accuracy", "direction": "maximize"}],
                                 search_space={"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}})
    trials = [run_factory(kind="trial", sweep=sweep, trial_number=number) for number in range(2)]
    graph_sync(store=store)
    node = store.run("MATCH (s:Sweep {key: $key}) RETURN s", {"key": f"sweep:{sweep.pk}"})[0]["s"]["properties"]
    assert node["sampler"] == "tpe" and node["pruner"] == "asha" and node["objective"] == "maximize val_accuracy"
    assert sorted(row["run"] for row in store.run(
        "MATCH (r:Run)-[:PART_OF]->(:Sweep {key: $key}) RETURN r.key AS run", {"key": f"sweep:{sweep.pk}"})) == \
        sorted(f"run:{trial.pk}" for trial in trials)
    assert sorted(row["concept"] for row in store.run(
        "MATCH (:Sweep {key: $key})-[:APPLIES]->(c:Concept) RETURN c.key AS concept", {"key": f"sweep:{sweep.pk}"})) \
        == ["concept:asha", "concept:hyperparameter-tuning", "concept:tpe"]
    # ended by a queryset update (the controller's way): the catch-up scan notices
    Sweep.objects.filter(pk=sweep.pk).update(status="finished", started_at=timezone.now(), finished_at=timezone.now(),
                                             best={"value": 0.97, "number": 1})
    graph_sync(store=store)
    node = store.run("MATCH (s:Sweep {key: $key}) RETURN s", {"key": f"sweep:{sweep.pk}"})[0]["s"]["properties"]
    assert node["status"] == "finished" and node["best_value"] == 0.97
