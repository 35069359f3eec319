"""The knowledge-graph API on the real FalkorDB: scoped to the user's projects, console read-only."""
import uuid

import pytest
from rest_framework.test import APIClient

from config.embedded import free_port
from kg_app.services import graph_counts, graph_sync
from kg_app.store import get_graph_store
from trainer_app.models import Dataset, ModelDesign, Role


@pytest.fixture
def graph(settings, falkordb_server):
    settings.KG_URL = falkordb_server
    settings.KG_GRAPH_NAME = f"kg-api-{uuid.uuid4().hex[:8]}"
    store = get_graph_store()
    yield store
    try:
        store.run("MATCH (n) DETACH DELETE n")
    finally:
        store.close()


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
    "MATCH (n) CALL { CREATE (:Evil) } RETURN 1",
    "LOAD CSV FROM 'http://example.com/x.csv' AS row RETURN row",
    "LOAD /* hidden */ csv FROM 'file:///etc/passwd' AS row RETURN row",
    "CALL dbms.procedures()",
    "CALL db.idx.fulltext.drop('Run')",
    "CALL `db`.`idx`.fulltext.createNodeIndex('Run', 'name')",
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
