"""Comparing runs: hyperparameters side by side with the varying ones flagged, one metric's curves
(downsampled), final values; a run of another project makes the whole comparison a 404."""
import pytest

from trainer_app.models import MetricPoint, Role, RunMetric

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]


@pytest.fixture
def three(run_factory, api_client):
    runs = []
    for index, lr in enumerate((0.1, 0.01, 0.001)):
        run = run_factory(name=f"lr-{lr}", config={"lr": lr, "batch_size": 64, "schedule": {"type": "cosine"}})
        MetricPoint.objects.bulk_create([MetricPoint(run=run, name="val_loss", step=step, value=1 / (step + index))
                                         for step in range(1, 3001)])
        RunMetric.objects.create_for(run, name="val_loss",
                                 last=1 / (3000 + index), last_step=3000, min=1 / (3000 + index), max=1 / (1 + index))
        runs.append(run)
    api_client.force_authenticate(run_factory.owner)
    return runs, api_client


def test_three_runs_side_by_side(three):
    runs, client = three
    body = client.get("/api/runs/compare/", {"runs": ",".join(str(run.pk) for run in runs), "points": "500"}).json()
    assert [run["id"] for run in body["runs"]] == [run.pk for run in runs]
    assert body["metric"] == "val_loss" and body["direction"] == "min"
    assert "lr" in body["varying"] and "batch_size" not in body["varying"] and "schedule.type" in body["parameters"]
    assert all(len(series["step"]) <= 500 for series in body["series"].values()) and len(body["series"]) == 3
    assert body["runs"][2]["best"] == pytest.approx(1 / 3002)


def test_the_page_renders_and_keeps_its_state_in_the_url(three, client, run_factory):
    runs, _ = three
    client.force_login(run_factory.owner)
    page = client.get("/runs/compare/", {"runs": ",".join(str(run.pk) for run in runs), "metric": "val_loss"})
    assert page.status_code == 200 and b'data-testid="compare-curves"' in page.content
    assert client.get("/runs/compare/").status_code == 200  # an empty state, not an error


def test_bad_input_and_other_projects(three, user_factory, project_factory, api_client):
    runs, client = three
    assert "runs" in client.get("/api/runs/compare/", {"runs": "a,b"}).json()
    unknown = client.get("/api/runs/compare/", {"runs": str(runs[0].pk), "metric": "accuracy"})
    assert unknown.status_code == 400 and "val_loss" in str(unknown.json()["metric"])
    outsider = user_factory("olga")
    project_factory("other", (outsider, Role.LEAD))
    api_client.force_authenticate(outsider)
    response = api_client.get("/api/runs/compare/", {"runs": ",".join(str(run.pk) for run in runs)})
    assert response.status_code == 404 and "lr-0.1" not in response.content.decode()
