"""Run health end to end: findings recorded from persisted metrics, served by the API and the run page, and
projected into the knowledge graph as (:Run)-[:SHOWED]->(:Concept); and a real run made to overfit on a
real Celery worker, its warning appearing while it trains."""
import pytest

from kg_app.models import OutboxEvent
from kg_app.selectors import graph_question
from kg_app.services import graph_rebuild, graph_sync
from tests.conftest import wait_until
from trainer_app.models import MetricPoint, RunFinding, RunKind, RunLog, RunStatus
from trainer_app.services.findings import run_findings_update

TRAIN = [1.0, 0.5, 0.3, 0.2, 0.1, 0.05]
VAL = [1.0, 0.6, 0.4, 0.45, 0.55, 0.7]


def add_epochs(run, train, val, accuracy=None, steps_per_epoch=10):
    points = []
    for index, (train_loss, val_loss) in enumerate(zip(train, val)):
        step, epoch = (index + 1) * steps_per_epoch, index + 1
        points += [MetricPoint(run=run, name="train_loss", step=step, value=train_loss, epoch=epoch),
                   MetricPoint(run=run, name="val_loss", step=step, value=val_loss, epoch=epoch),
                   MetricPoint(run=run, name="train_accuracy", step=step,
                               value=(accuracy or [0.9] * len(train))[index], epoch=epoch),
                   # a per-step point between epoch ends must not count as an epoch
                   MetricPoint(run=run, name="train_loss", step=step - 5, value=train_loss * 3, epoch=epoch)]
    MetricPoint.objects.bulk_create(points)


@pytest.fixture
def overfitted(run_factory):
    run = run_factory(status=RunStatus.RUNNING, config={"epochs": 6})
    add_epochs(run, TRAIN, VAL)
    return run


def test_an_overfitting_run_gets_one_finding_with_its_evidence_and_an_outbox_event(overfitted):
    OutboxEvent.objects.all().delete()
    findings = run_findings_update(run_id=overfitted.pk)
    assert [finding.code for finding in findings] == ["overfitting"]
    finding = findings[0]
    assert finding.epoch == 5 and finding.severity == "warning"
    assert finding.details["evidence"]["best_epoch"] == 3 and finding.details["evidence"]["val_loss_min"] == 0.4
    assert "weight decay" in finding.details["fix"]
    assert set(OutboxEvent.objects.values_list("entity", "object_id")) == {("run", str(overfitted.pk))}

    first_seen, last_seen = finding.first_seen_at, finding.last_seen_at
    OutboxEvent.objects.all().delete()
    run_findings_update(run_id=overfitted.pk)  # seen again: no second row, no graph event
    again = RunFinding.objects.get(run=overfitted)
    assert again.first_seen_at == first_seen and again.last_seen_at >= last_seen
    assert not OutboxEvent.objects.exists()


def test_a_healthy_run_and_a_learning_rate_finder_get_no_finding(run_factory):
    healthy = run_factory(status=RunStatus.RUNNING, config={"epochs": 4})
    add_epochs(healthy, [1.0, 0.5, 0.3, 0.2], [1.0, 0.55, 0.35, 0.3])
    assert run_findings_update(run_id=healthy.pk) == []
    finder = run_factory(status=RunStatus.RUNNING, kind=RunKind.LR_FINDER, config={"epochs": 6})
    add_epochs(finder, TRAIN, VAL)
    assert run_findings_update(run_id=finder.pk) == []


def test_a_loss_that_became_nan_is_found_from_the_engines_log_line(run_factory):
    run = run_factory(status=RunStatus.RUNNING, config={"epochs": 5})
    RunLog.objects.create(run=run, entry="1-0", level="error",
                          message="diverged at step 12: the training loss became nan; the last good checkpoint is kept")
    [finding] = run_findings_update(run_id=run.pk)
    assert finding.code == "nan" and finding.step == 12 and finding.severity == "critical"


def test_the_api_and_the_run_page_show_findings_to_members_only(overfitted, api_client, user_factory, client):
    run_findings_update(run_id=overfitted.pk)
    api_client.force_authenticate(overfitted.created_by)
    body = api_client.get(f"/api/runs/{overfitted.pk}/findings/").json()
    assert body["status"] == "running" and [f["code"] for f in body["findings"]] == ["overfitting"]
    finding = body["findings"][0]
    assert finding["title"] == "Overfitting" and finding["concept"] == "overfitting" and finding["epoch"] == 5
    assert finding["explanation"] and finding["fix"] and finding["evidence"]["best_epoch"] == 3
    client.force_login(overfitted.created_by)
    page = client.get(f"/runs/{overfitted.pk}/").content.decode()
    assert 'data-code="overfitting"' in page and "Suggested fix:" in page and "run_findings.js" in page
    stranger = user_factory("stranger")
    api_client.force_authenticate(stranger)
    assert api_client.get(f"/api/runs/{overfitted.pk}/findings/").status_code == 404


def test_findings_reach_the_graph_as_showed_with_their_evidence(overfitted, configured_graph, user_factory):
    run_findings_update(run_id=overfitted.pk)
    assert graph_sync(store=configured_graph)["ok"]
    rows = configured_graph.run("MATCH (r:Run {key: $key})-[s:SHOWED]->(c:Concept) RETURN c.key AS concept, "
                                "properties(s) AS evidence", {"key": f"run:{overfitted.pk}"})
    assert [row["concept"] for row in rows] == ["concept:overfitting"]
    evidence = rows[0]["evidence"]
    assert evidence["code"] == "overfitting" and evidence["epoch"] == 5 and evidence["best_epoch"] == 3
    assert evidence["val_loss_min"] == 0.4 and evidence["fix"]
    # the ready-made question, asked of the broader concept too, by a member only
    answer = graph_question(store=configured_graph, user=overfitted.created_by, name="runs-that-showed",
                            node="concept:overfitting")
    assert [row[0]["id"] for row in answer["rows"]] == [f"run:{overfitted.pk}"]
    assert answer["columns"] == ["run", "problem", "epoch", "why", "fix"]
    broader = graph_question(store=configured_graph, user=overfitted.created_by, name="runs-that-showed",
                             node="concept:training-problems")
    assert len(broader["rows"]) == 1
    assert graph_question(store=configured_graph, user=user_factory("outsider"), name="runs-that-showed",
                          node="concept:overfitting")["rows"] == []
    # a rebuild draws the same relationship
    graph_rebuild(store=configured_graph)
    assert configured_graph.run(
        "MATCH (:Run {key: $key})-[s:SHOWED]->(:Concept {key: 'concept:overfitting'}) RETURN s.best_epoch AS best",
        {"key": f"run:{overfitted.pk}"}) == [{"best": 3}]


# --- a real run, made to overfit ------------------------------------------------------------------------------

@pytest.fixture
def lab(transactional_db, user_factory, project_factory, api_client):
    from trainer_app.models import Dataset, Role
    from trainer_app.services.datasets import datasets_seed_samples
    from trainer_app.services.queues import queues_ensure_defaults

    user = user_factory("ana")
    project = project_factory("lab", (user, Role.ANALYST))
    datasets_seed_samples(project=project, created_by=user)
    queues_ensure_defaults()
    api_client.force_authenticate(user)
    return {"client": api_client, "project": project, "user": user,
            "iris": Dataset.objects.get(project=project, name="iris").id}


@pytest.mark.timeout(540)  # its 400 epochs took 3 minutes on a busy 2-core host; each of its two waits has 4
@pytest.mark.usefixtures("celery_worker_process")
def test_a_run_made_to_overfit_shows_the_warning_while_it_trains_and_in_the_graph(lab, configured_graph):
    """Iris (120 training rows, 15 for validation) with a 512×512 MLP, Adam at 0.01, batch 8 and no weight
    decay: the training loss falls to ~0.0003 while the validation loss climbs from ~0.02 (epoch 7) to ~0.2."""
    client = lab["client"]
    design = client.post("/api/models/", {"project": lab["project"].id, "name": "big-mlp",
                                          "spec": {"preset": "mlp", "options": {"hidden": [512, 512]}}},
                         format="json").json()
    response = client.post("/api/runs/", {
        "project": lab["project"].id, "dataset": lab["iris"], "model": design["id"], "queue": "cpu",
        "config": {"optimizer": "adam", "lr": 0.01, "batch_size": 8, "epochs": 400, "seed": 0}}, format="json")
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]

    def overfitting_seen():
        body = client.get(f"/api/runs/{run_id}/findings/").json()
        codes = [finding["code"] for finding in body["findings"]]
        return (body["status"], codes) if "overfitting" in codes or body["status"] in ("succeeded", "failed") else None

    status, codes = wait_until(overfitting_seen, timeout_s=240, interval_s=0.5, message="an overfitting finding")
    from trainer_app.selectors.run_health import run_epoch_series

    assert "overfitting" in codes, run_epoch_series(run_id=run_id)
    assert status == "running", f"seen only after the run ended ({status})"
    final = wait_until(lambda: (lambda body: body if body["status"] in ("succeeded", "failed") else None)(
        client.get(f"/api/runs/{run_id}/").json()), timeout_s=240, interval_s=1, message="the run to end")
    assert final["status"] == "succeeded", (final["error"], final["log_tail"])
    assert graph_sync(store=configured_graph)["ok"]
    rows = configured_graph.run("MATCH (:Run {key: $key})-[s:SHOWED]->(c:Concept) RETURN c.key AS concept, "
                                "s.best_epoch AS best", {"key": f"run:{run_id}"})
    assert any(row["concept"] == "concept:overfitting" and row["best"] for row in rows), rows
