"""The runs list: filters, metric orderings, tags, notes, stars, bulk actions; bad parameters named;
other projects' runs never listed, never acted on."""
from datetime import timedelta

import pytest
from django.utils import timezone

from trainer_app.models import Role, Run, RunMetric, RunStatus

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]


@pytest.fixture
def runs(run_factory, api_client):
    made = []
    for index, (status, accuracy) in enumerate([("succeeded", 0.9), ("failed", None), ("succeeded", 0.95),
                                                 ("queued", None)]):
        run = run_factory(status=status, name=f"run-{index}", notes="tried cosine" if index == 2 else "")
        if accuracy is not None:
            RunMetric.objects.create_for(run,
                                     name="val_accuracy", last=accuracy, last_step=10, min=0.1, max=accuracy)
        made.append(run)
    Run.objects.filter(pk=made[0].pk).update(created_at=timezone.now() - timedelta(days=10))
    api_client.force_authenticate(run_factory.owner)
    return made, api_client


def ids(response):
    assert response.status_code == 200, response.json()
    return [run["id"] for run in response.json()]


def test_filters_by_status_search_date_and_user(runs):
    made, client = runs
    assert ids(client.get("/api/runs/", {"status": "succeeded"})) == [made[2].pk, made[0].pk]
    assert ids(client.get("/api/runs/", {"search": "cosine"})) == [made[2].pk]
    recent = (timezone.now() - timedelta(days=1)).date().isoformat()
    assert made[0].pk not in ids(client.get("/api/runs/", {"created_after": recent}))
    assert len(ids(client.get("/api/runs/", {"user": "runner"}))) == 4
    assert ids(client.get("/api/runs/", {"user": "nobody"})) == []


def test_orders_by_a_metric_with_runs_lacking_it_last(runs):
    made, client = runs
    order = ids(client.get("/api/runs/", {"order": "metric:val_accuracy:best"}))
    assert order[:2] == [made[2].pk, made[0].pk] and set(order[2:]) == {made[1].pk, made[3].pk}
    ascending = ids(client.get("/api/runs/", {"order": "metric:val_accuracy:last"}))
    assert ascending[:2] == [made[0].pk, made[2].pk]


def test_tags_notes_stars_and_bulk_actions(runs):
    made, client = runs
    patched = client.patch(f"/api/runs/{made[0].pk}/", {"tags": ["baseline"], "notes": "the reference",
                                                        "starred": True}, format="json")
    assert patched.json()["tags"] == ["baseline"] and patched.json()["starred"] is True
    assert ids(client.get("/api/runs/", {"tag": "baseline"})) == [made[0].pk]
    bulk = client.post("/api/runs/bulk/", {"runs": [made[1].pk, made[2].pk], "action": "tag", "tag": "sweep-a"},
                       format="json")
    assert bulk.json() == {"updated": 2, "refused": {}}
    assert set(ids(client.get("/api/runs/", {"tag": "sweep-a"}))) == {made[1].pk, made[2].pk}
    cancel = client.post("/api/runs/bulk/", {"runs": [made[2].pk, made[3].pk], "action": "cancel"}, format="json")
    assert cancel.json()["updated"] == 1 and str(made[2].pk) in cancel.json()["refused"]
    assert Run.objects.get(pk=made[3].pk).status == RunStatus.CANCELLED
    client.post("/api/runs/bulk/", {"runs": [made[1].pk], "action": "archive"}, format="json")
    assert made[1].pk not in ids(client.get("/api/runs/"))
    assert ids(client.get("/api/runs/", {"archived": "true"})) == [made[1].pk]


@pytest.mark.parametrize(("params", "parameter"), [
    ({"status": "done"}, "status"), ({"order": "accuracy"}, "order"), ({"order": "metric:val_accuracy:median"}, "order"),
    ({"created_after": "yesterday"}, "created_after"), ({"dataset": "wine"}, "dataset"), ({"limit": "0"}, "limit"),
    ({"starred": "yes"}, "starred"),
])
def test_malformed_filters_and_orderings_are_400s_naming_the_parameter(runs, params, parameter):
    _, client = runs
    response = client.get("/api/runs/", params)
    assert response.status_code == 400 and parameter in response.json()


def test_other_projects_runs_are_neither_listed_nor_touched(runs, user_factory, project_factory, api_client):
    made, _ = runs
    outsider = user_factory("olga")
    project_factory("other", (outsider, Role.LEAD))
    api_client.force_authenticate(outsider)
    assert ids(api_client.get("/api/runs/")) == []
    refused = api_client.post("/api/runs/bulk/", {"runs": [made[3].pk], "action": "cancel"}, format="json")
    assert refused.status_code == 404 and "run-3" not in refused.content.decode()
    assert api_client.patch(f"/api/runs/{made[0].pk}/", {"notes": "x"}, format="json").status_code == 404
    assert Run.objects.get(pk=made[3].pk).status == RunStatus.QUEUED


def test_unknown_metric_names_are_listed_back(runs):
    from trainer_app.models import MetricPoint

    made, client = runs
    MetricPoint.objects.create(run=made[0], name="val_accuracy", step=10, value=0.9)
    response = client.get(f"/api/runs/{made[0].pk}/metrics/", {"names": "val_acc"})
    assert response.status_code == 400 and "val_accuracy" in str(response.json()["names"])
