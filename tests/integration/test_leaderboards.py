"""Leaderboards: ranked by a metric's aggregate, seed groups with mean ± std and n, Welch's t-test
against a pinned baseline, bad parameters named, CSV safe from formula injection."""
import csv
import io

import pytest

from trainer_app.models import ModelDesign, Role, RunMetric

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]


@pytest.fixture
def board(run_factory, user_factory, api_client):
    lead = user_factory("lena")
    run_factory.project.memberships.create(user=lead, role=Role.LEAD)
    evil = ModelDesign.objects.create(project=run_factory.project, name="=HYPERLINK(\"x\")", spec={"preset": "mlp"})
    runs = {}
    for key, design, accuracies, losses in (("a" * 40, None, [0.90, 0.91, 0.92], [0.30, 0.28, 0.26]),
                                            ("b" * 40, evil, [0.80, 0.81, 0.79], [0.50, 0.52, 0.49])):
        for seed, (accuracy, loss) in enumerate(zip(accuracies, losses)):
            extra = {"design": design} if design else {}
            run = run_factory(config_key=key, config={"seed": seed, "lr": 0.1}, **extra)
            for name, value in (("test_accuracy", accuracy), ("val_loss", loss)):
                RunMetric.objects.create_for(run, name=name,
                                         last=value, last_step=100, min=value - 0.01 if "loss" in name else 0.1,
                                         max=value if "loss" not in name else value + 0.2, count=10)
            runs.setdefault(key, []).append(run)
    api_client.force_authenticate(run_factory.owner)
    return {"runs": runs, "dataset": run.dataset, "client": api_client, "lead": lead}


def get(board, **params):
    return board["client"].get("/api/leaderboards/", {"dataset": board["dataset"].id, **params})


def test_seed_groups_rank_by_mean_with_std_and_n(board):
    body = get(board, metric="test_accuracy").json()
    assert body["direction"] == "max" and body["grouped"] is True and body["total"] == 2
    first, second = body["rows"]
    assert first["config_key"] == "a" * 40 and first["n"] == 3
    assert first["mean"] == pytest.approx(0.91) and first["std"] == pytest.approx(0.01)
    assert second["mean"] == pytest.approx(0.80)


def test_losses_rank_lowest_first_and_min_aggregate_reads_the_min_column(board):
    body = get(board, metric="val_loss", aggregate="min", group="none").json()
    values = [row["value"] for row in body["rows"]]
    assert body["direction"] == "min" and values == sorted(values) and values[0] == pytest.approx(0.25)


def test_a_lead_pins_a_baseline_and_rows_show_delta_and_welch_p(board):
    client = board["client"]
    pin = {"dataset": board["dataset"].id, "metric": "test_accuracy", "config_key": "b" * 40}
    assert client.post("/api/leaderboards/baseline/", pin, format="json").status_code == 403  # analysts cannot
    client.force_authenticate(board["lead"])
    assert client.post("/api/leaderboards/baseline/", pin, format="json").status_code == 200
    body = get(board, metric="test_accuracy").json()
    assert body["baseline"]["mean"] == pytest.approx(0.80) and body["baseline"]["n"] == 3
    best, baseline = body["rows"]
    assert best["delta"] == pytest.approx(0.11) and best["p_value"] < 0.01 and best["significant"] is True
    assert baseline["is_baseline"] is True and baseline["p_value"] is None


@pytest.mark.parametrize(("params", "field", "fragment"), [
    ({"aggregate": "median"}, "aggregate", "best, last, min, max"),
    ({"group": "lr"}, "group", "seed or none"),
    ({"limit": "0"}, "limit", "from 1 to"),
    ({"offset": "-1"}, "offset", "whole number"),
    ({"metric": "accuracy"}, "metric", "test_accuracy, val_loss"),
])
def test_bad_parameters_are_400s_that_name_them(board, params, field, fragment):
    response = get(board, **params)
    assert response.status_code == 400 and fragment in response.json()[field]


def test_missing_dataset_and_other_projects_are_refused_without_leaking(board, user_factory, project_factory):
    client = board["client"]
    assert "dataset" in client.get("/api/leaderboards/").json()
    outsider = user_factory("olga")
    project_factory("elsewhere", (outsider, Role.LEAD))
    client.force_authenticate(outsider)
    response = get(board)
    assert response.status_code == 404 and "runs-project" not in response.content.decode()
    assert client.get("/api/leaderboards/export.csv", {"dataset": board["dataset"].id}).status_code == 404


def test_csv_export_neutralises_formula_injection(board):
    response = board["client"].get("/api/leaderboards/export.csv", {"dataset": board["dataset"].id,
                                                                    "metric": "test_accuracy"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    designs = [row[1] for row in rows[1:]]
    assert "'=HYPERLINK(\"x\") v1" in designs
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows[1:] for cell in row)


def test_the_page_ranks_groups_and_a_lead_pins_from_it(board, client):
    client.force_login(board["lead"])
    page = client.get("/leaderboards/", {"dataset": board["dataset"].id, "metric": "test_accuracy"})
    html = page.content.decode()
    assert page.status_code == 200 and 'data-testid="leaderboard"' in html and html.count('data-rank="') == 2
    assert html.count('data-testid="pin"') == 2
    pinned = client.post("/leaderboards/pin/", {"dataset": board["dataset"].id, "metric": "test_accuracy",
                                                "config_key": "b" * 40}, HTTP_HX_REQUEST="true")
    assert pinned.status_code == 204
    html = client.get("/leaderboards/", {"dataset": board["dataset"].id}).content.decode()
    assert "significant" in html and "baseline" in html


def test_the_page_has_a_helpful_empty_state(client, user_factory):
    client.force_login(user_factory("newbie"))
    assert b"Nothing to rank yet" in client.get("/leaderboards/").content


def test_a_configuration_run_once_has_no_std_on_any_database(run_factory, api_client):
    """SQLite's sample standard deviation of one value fails inside the aggregate: std comes from Python."""
    run = run_factory(config_key="c" * 40, config={"seed": 0})
    RunMetric.objects.create_for(run, name="test_accuracy",
                             last=0.5, last_step=1, min=0.5, max=0.5, count=1)
    api_client.force_authenticate(run_factory.owner)
    body = api_client.get("/api/leaderboards/", {"dataset": run.dataset_id}).json()
    assert body["rows"][0]["n"] == 1 and body["rows"][0]["std"] is None


def test_archived_runs_leave_the_board_and_come_back(board):
    """Summaries carry their run's archived flag: archiving a run (alone or in bulk) hides it from both boards,
    un-archiving brings it back, and the totals follow."""
    client, (first, second, _third) = board["client"], board["runs"]["a" * 40]
    assert client.patch(f"/api/runs/{first.pk}/", {"archived": True}, format="json").status_code == 200
    assert client.post("/api/runs/bulk/", {"runs": [second.pk], "action": "archive"}, format="json").status_code == 200
    grouped = get(board, metric="test_accuracy").json()
    assert [(row["config_key"][0], row["n"]) for row in grouped["rows"]] == [("a", 1), ("b", 3)]
    per_run = get(board, metric="test_accuracy", group="none").json()
    assert per_run["total"] == 4 and {row["run"] for row in per_run["rows"]}.isdisjoint({first.pk, second.pk})
    client.post("/api/runs/bulk/", {"runs": [first.pk, second.pk], "action": "unarchive"}, format="json")
    assert get(board, metric="test_accuracy", group="none").json()["total"] == 6
    assert RunMetric.objects.filter(run=first, archived=False).count() == 2
