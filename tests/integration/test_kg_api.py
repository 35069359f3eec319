"""The knowledge-graph API on the real FalkorDB: scoped to the user's projects, console read-only."""

import pytest
from rest_framework.test import APIClient

from config.embedded import free_port
from kg_app.services import graph_counts, graph_sync
from kg_app.store import get_graph_store
from trainer_app.models import Dataset, ModelDesign, Role


@pytest.fixture
def graph(configured_graph):
    return configured_graph


@pytest.fixture
def world(graph, run_factory, user_factory, project_factory):
    """Our run (in run_factory's project) and a stranger's run in a project we do not belong to."""
    ours = run_factory(name="ours-resnet", config={"optimizer": "adam"})
    stranger = user_factory("stranger")
    other = project_factory("other-project", (stranger, Role.ANALYST))
    dataset = Dataset.objects.create(project=other, name="secret-data")
    design = ModelDesign.objects.create(project=other, name="secret-design", spec={"preset": "mlp"})
    theirs = run_factory(project=other, dataset=dataset, design=design, name="theirs-resnet", created_by=stranger)
    graph_sync(store=graph)
    client = APIClient()
    client.force_authenticate(run_factory.owner)
    return client, ours, theirs


def test_search_finds_nodes_of_my_projects_and_concepts_only(world):
    client, ours, theirs = world
    answer = client.get("/api/kg/search/", {"q": "RESNET"}).json()
    ids = {node["id"] for node in answer["nodes"]}
    assert f"run:{ours.pk}" in ids and "concept:resnet" in ids
    assert f"run:{theirs.pk}" not in ids
    node = next(node for node in answer["nodes"] if node["id"] == f"run:{ours.pk}")
    assert node["labels"] == ["Run"] and node["properties"]["name"] == "ours-resnet"


def test_search_by_id_and_by_label(world):
    client, ours, theirs = world
    assert [n["id"] for n in client.get("/api/kg/search/", {"q": f"run:{ours.pk}"}).json()["nodes"]] == [
        f"run:{ours.pk}"]
    assert client.get("/api/kg/search/", {"q": f"run:{theirs.pk}"}).json()["nodes"] == []
    runs = {n["id"] for n in client.get("/api/kg/search/", {"q": "run"}).json()["nodes"]}
    assert runs == {f"run:{ours.pk}"}
    assert client.get("/api/kg/search/").status_code == 400


def test_neighbourhood_of_a_run_shows_its_lineage(world):
    client, ours, _theirs = world
    answer = client.get(f"/api/kg/nodes/run:{ours.pk}/neighbourhood/").json()
    ids = {node["id"] for node in answer["nodes"]}
    assert {f"run:{ours.pk}", f"datasetversion:{ours.dataset_id}", f"design:{ours.design_id}", "concept:adam",
            f"user:{ours.created_by_id}"} <= ids
    assert {"source": f"run:{ours.pk}", "type": "TRAINED_ON", "target": f"datasetversion:{ours.dataset_id}"} in [
        {k: r[k] for k in ("source", "type", "target")} for r in answer["relationships"]]


def test_neighbourhood_outside_my_projects_is_404_and_concepts_hide_other_projects(world):
    client, ours, theirs = world
    assert client.get(f"/api/kg/nodes/run:{theirs.pk}/neighbourhood/").status_code == 404
    assert client.get("/api/kg/nodes/nonsense/neighbourhood/").status_code == 404
    mlp = client.get("/api/kg/nodes/concept:mlp/neighbourhood/").json()
    ids = {node["id"] for node in mlp["nodes"]}
    assert f"run:{ours.pk}" in ids and f"run:{theirs.pk}" not in ids and f"design:{theirs.design_id}" not in ids


def test_neighbourhood_is_capped_with_show_more(world):
    client, _ours, _theirs = world
    first = client.get("/api/kg/nodes/concept:large-scale-training/neighbourhood/", {"limit": 3}).json()
    assert len(first["relationships"]) == 3 and first["more"] is True
    second = client.get("/api/kg/nodes/concept:large-scale-training/neighbourhood/",
                        {"limit": 3, "skip": first["next_skip"]}).json()
    assert not {r["id"] for r in first["relationships"]} & {r["id"] for r in second["relationships"]}


@pytest.fixture
def admin_client(user_factory):
    client = APIClient()
    client.force_authenticate(user_factory("site-admin", staff=True))
    return client


def test_console_is_for_site_admins_only(world):
    client, _ours, _theirs = world
    assert client.post("/api/kg/query/", {"cypher": "RETURN 1 AS one"}, format="json").status_code == 403


def test_console_answers_columns_and_rows(world, admin_client):
    answer = admin_client.post("/api/kg/query/", {"cypher": "MATCH (c:Concept {key: $key}) RETURN c.name AS name, 1 AS n",
                                                  "params": {"key": "concept:ddp"}}, format="json")
    assert answer.status_code == 200
    assert answer.json() == {"columns": ["name", "n"], "rows": [["DDP", 1]], "truncated": False}


REFUSED = [
    "CREATE (n:Run {key: 'run:evil'})",
    "MERGE (n:Run {key: 'run:evil'})",
    "MATCH (n:Concept) SET n.name = 'x'",
    "MATCH (n) DETACH DELETE n",
    "MATCH (n:Concept) REMOVE n.name",
    "CREATE INDEX FOR (n:Evil) ON (n.key)",
    "DROP INDEX ON :Run(key)",
    "CREATE CONSTRAINT evil IF NOT EXISTS FOR (n:Run) REQUIRE n.name IS UNIQUE",
    "DROP CONSTRAINT evil",
    "MATCH (n) CALL { CREATE (:Evil) } RETURN 1",
    "LOAD CSV FROM 'http://example.com/x.csv' AS row RETURN row",
    "LOAD /* hidden */ csv FROM 'file:///etc/passwd' AS row RETURN row",
    "CALL dbms.procedures()",
    "CALL db.idx.fulltext.drop('Run')",
    "CALL `db`.`idx`.fulltext.createNodeIndex('Run', 'name')",
    "UNWIND range(1, 1000000000) AS x RETURN count(x)",
]


def test_console_refuses_writes_files_and_unknown_procedures(world, admin_client, graph):
    before = graph_counts(store=graph)
    for statement in REFUSED:
        answer = admin_client.post("/api/kg/query/", {"cypher": statement}, format="json")
        assert answer.status_code == 400, (statement, answer.content)
        assert answer.json()["cypher"], statement
    assert graph_counts(store=graph) == before
    assert graph.run("MATCH (n:Concept {key: 'concept:ddp'}) RETURN n.name AS name") == [{"name": "DDP"}]


def test_console_allows_listed_procedures(world, admin_client):
    answer = admin_client.post("/api/kg/query/", {"cypher": "CALL db.labels()"}, format="json")
    assert answer.status_code == 200 and ["Run"] in answer.json()["rows"]


def test_graph_down_answers_503_with_a_clear_message(settings, run_factory):
    settings.KG_URL = f"falkordb://127.0.0.1:{free_port()}"
    client = APIClient()
    client.force_authenticate(run_factory.owner)
    answer = client.get("/api/kg/search/", {"q": "x"})
    assert answer.status_code == 503 and "unreachable" in answer.json()["detail"]


def test_a_runaway_query_is_stopped_by_the_time_limit_while_other_reads_stay_fast(world, graph, falkordb_server,
                                                                                  run_factory):
    import threading
    import time

    from kg_app import selectors

    outcome = {}

    def runaway():
        with get_graph_store(falkordb_server, graph_name=graph._graph_name) as console_store:
            started = time.perf_counter()
            try:
                selectors.graph_query(store=console_store, params={},
                                      statement="MATCH (a), (b), (c), (d), (e) RETURN count(*) AS c")
            except selectors.QueryRefused as exc:
                outcome["refused"] = str(exc)
            outcome["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=runaway)
    thread.start()
    time.sleep(0.5)
    started = time.perf_counter()
    nodes = selectors.graph_search(store=graph, user=run_factory.owner, query="ddp")
    assert time.perf_counter() - started < 1.0 and nodes
    thread.join(timeout=30)
    assert "longer than 5 s" in outcome["refused"] and outcome["seconds"] < selectors.QUERY_TIMEOUT_S + 3


def test_lineage_of_a_checkpoint_goes_up_to_its_datasets_and_down_to_fine_tuned_runs(graph, run_factory):
    from trainer_app.models import Checkpoint

    parent = run_factory(name="parent")
    checkpoint = Checkpoint.objects.create(run=parent, epoch=1, step=3, path="p.safetensors")
    child = run_factory(name="child", fine_tuned_from=parent)
    graph_sync(store=graph)
    client = APIClient()
    client.force_authenticate(run_factory.owner)
    up = client.get("/api/kg/paths/", {"node": f"checkpoint:{checkpoint.pk}", "direction": "upstream"}).json()
    assert {n["id"] for n in up["nodes"]} == {f"checkpoint:{checkpoint.pk}", f"run:{parent.pk}",
                                              f"datasetversion:{parent.dataset_id}", f"design:{parent.design_id}",
                                              f"dataset:{parent.project_id}:d"}
    down = client.get("/api/kg/paths/", {"node": f"run:{parent.pk}", "direction": "downstream"}).json()
    assert {n["id"] for n in down["nodes"]} == {f"run:{parent.pk}", f"checkpoint:{checkpoint.pk}", f"run:{child.pk}"}
    assert {(r["source"], r["type"], r["target"]) for r in down["relationships"]} == {
        (f"run:{parent.pk}", "PRODUCED", f"checkpoint:{checkpoint.pk}"),
        (f"run:{child.pk}", "FINE_TUNED_FROM", f"run:{parent.pk}")}
    both = client.get("/api/kg/paths/", {"node": f"run:{parent.pk}"}).json()
    assert {n["id"] for n in both["nodes"]} == {n["id"] for n in up["nodes"] + down["nodes"]}
    assert client.get("/api/kg/paths/", {"node": "run:999999"}).status_code == 404
    assert client.get("/api/kg/paths/", {"node": f"run:{parent.pk}", "direction": "sideways"}).status_code == 400


def test_ready_made_questions_answer_over_my_projects(graph, run_factory, user_factory, project_factory):
    from trainer_app.models import Checkpoint

    good = run_factory(name="good", summary={"val_accuracy": 0.9, "val_loss": 0.1}, config={"optimizer": "adamw"})
    bad = run_factory(name="bad", summary={"val_accuracy": 0.5, "val_loss": 0.7}, config={"optimizer": "sgd"})
    checkpoint = Checkpoint.objects.create(run=good, epoch=1, step=3, path="g.safetensors")
    child = run_factory(name="child", fine_tuned_from=good)
    graph_sync(store=graph)
    client = APIClient()
    client.force_authenticate(run_factory.owner)
    version = f"datasetversion:{good.dataset_id}"

    def ask(name, **params):
        answer = client.get(f"/api/kg/questions/{name}/", params)
        assert answer.status_code == 200, answer.content
        return answer.json()

    ranked = ask("runs-on-dataset", node=version, metric="val_accuracy")
    assert [(row[0]["id"], row[1]) for row in ranked["rows"]] == [(f"run:{good.pk}", 0.9), (f"run:{bad.pk}", 0.5)]
    by_loss = ask("runs-on-dataset", node=version, metric="val_loss")  # lower is better
    assert [row[0]["id"] for row in by_loss["rows"]] == [f"run:{good.pk}", f"run:{bad.pk}"]
    assert [row[0]["id"] for row in ask("fine-tuned-from", node=f"checkpoint:{checkpoint.pk}")["rows"]] == [
        f"run:{child.pk}"]
    best = ask("concepts-of-best-runs", metric="val_accuracy", top=1)
    assert {row[0]["id"] for row in best["rows"]} == {"concept:adamw", "concept:mlp"}
    assert ask("designs-with-dataset", node=version)["rows"][0][1] == 3
    assert client.get("/api/kg/questions/runs-on-dataset/", {"node": f"run:{good.pk}"}).status_code == 400
    assert client.get("/api/kg/questions/nonsense/").status_code == 400
    assert client.get("/api/kg/questions/runs-on-dataset/", {"node": version, "metric": "x') //"}).status_code == 400
    assert len(client.get("/api/kg/questions/").json()["questions"]) == 5
    stranger = APIClient()
    stranger.force_authenticate(user_factory("outsider"))
    assert stranger.get("/api/kg/questions/runs-on-dataset/", {"node": version}).status_code == 404
    assert stranger.get("/api/kg/questions/concepts-of-best-runs/").json()["rows"] == []
