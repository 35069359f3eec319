"""The learning-rate finder through the API and the launch form, on a real Celery worker and torchrun, and the
settings proposed from the data."""
import pytest

from tests.conftest import wait_until
from trainer_app.models import Dataset, Role, Run
from trainer_app.services.datasets import datasets_seed_samples
from trainer_app.services.queues import queues_ensure_defaults


@pytest.fixture
def lab(transactional_db, user_factory, project_factory, api_client):
    user = user_factory("lia")
    project = project_factory("lr-lab", (user, Role.ANALYST))
    datasets_seed_samples(project=project, created_by=user)
    queues_ensure_defaults()
    api_client.force_authenticate(user)
    cnn = api_client.post("/api/models/", {"project": project.id, "name": "cnn", "spec": {"preset": "small_cnn"}},
                          format="json").json()
    return {"client": api_client, "project": project, "user": user, "cnn": cnn["id"],
            "digits": Dataset.objects.get(project=project, name="digits"),
            "wine": Dataset.objects.get(project=project, name="wine")}


def finder(lab, **overrides):
    body = {"project": lab["project"].id, "dataset": lab["digits"].id, "model": lab["cnn"],
            "config": {"optimizer": "adam", "lr": 0.001, "batch_size": 32, "epochs": 10, "seed": 0}, "queue": "cpu"}
    return lab["client"].post("/api/runs/lr-finder/", {**body, **overrides}, format="json")


@pytest.mark.usefixtures("celery_worker_process")
def test_the_finder_runs_one_epoch_at_most_and_suggests_a_learning_rate(lab):
    response = finder(lab)
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    assert response.json()["kind"] == "lr_finder" and response.json()["config"]["epochs"] == 1

    def finished():
        result = lab["client"].get(f"/api/runs/{run_id}/lr-finder/").json()
        return result if result["status"] in ("succeeded", "failed") else None

    result = wait_until(finished, timeout_s=180, interval_s=1, message="the finder to end")
    assert result["status"] == "succeeded", result
    rates = [point["lr"] for point in result["curve"]]
    steps_per_epoch = -(-int(lab["digits"].splits["train"]) // 32)
    assert 3 <= len(rates) <= steps_per_epoch and rates == sorted(rates)
    assert 1e-5 <= result["suggested_lr"] <= 0.1, "a rate Adam can train a small CNN with"
    assert result["min_loss_lr"] in rates
    run = Run.objects.get(id=run_id)
    assert not run.checkpoints.exists(), "a range test writes no checkpoint"
    assert run.summary["lr_finder_suggested_lr"] == result["suggested_lr"]


def test_a_model_that_does_not_fit_is_refused_at_once_with_the_designers_message(lab):
    response = finder(lab, dataset=lab["wine"].id)  # a CNN on a table
    assert response.status_code == 400
    assert "small_cnn needs images" in str(response.json()["model"])
    assert not Run.objects.filter(kind="lr_finder").exists()


def test_the_result_of_a_run_that_is_not_a_finder_is_refused(lab, run_factory):
    from trainer_app.models import Membership

    other = run_factory()
    Membership.objects.create(user=lab["user"], project=other.project, role=Role.ANALYST)
    assert lab["client"].get(f"/api/runs/{other.id}/lr-finder/").status_code == 400
    assert lab["client"].get("/api/runs/999999/lr-finder/").status_code == 404


def test_the_launch_form_starts_a_finder_or_says_what_is_wrong(lab, client):
    from frontend.views.launch import default_values

    client.force_login(lab["user"])
    defaults = {name: value for name, value in default_values().items() if value is not None and value is not False}
    form = {**defaults, "dataset": lab["digits"].id, "model": "preset:small_cnn", "batch_size": "32", "queue": "cpu",
            "nproc_per_node": "1", "gpus_per_node": "0", "name": ""}
    started = client.post(f"/runs/new/lr-finder/?project={lab['project'].id}", form)
    assert started.status_code == 201, started.content
    assert Run.objects.get(id=started.json()["run"]).kind == "lr_finder"
    refused = client.post(f"/runs/new/lr-finder/?project={lab['project'].id}", {**form, "dataset": lab["wine"].id})
    assert refused.status_code == 400 and "small_cnn needs images" in str(refused.json()["errors"])
    page = client.get(f"/runs/new/?project={lab['project'].id}").content.decode()
    assert 'data-testid="find-lr"' in page and 'data-testid="suggest-settings"' in page


def test_settings_proposed_from_the_data_with_reasons_and_the_bad_parameters(lab):
    client = lab["client"]
    digits = lab["digits"]
    proposal = client.get(f"/api/datasets/{digits.id}/defaults/?model={lab['cnn']}&optimizer=sgd").json()
    assert proposal["batch_size"] == 32 and proposal["lr"] == 0.05 and proposal["epochs"] >= 5
    assert set(proposal["reasons"]) == {"batch_size", "lr", "epochs"}
    for query, field in (("optimizer=lion", "optimizer"), ("processes=0", "processes"), ("model=abc", "model"),
                         ("model=999999", "model"), ("preset=gpt5", "preset")):
        response = client.get(f"/api/datasets/{digits.id}/defaults/?{query}")
        assert response.status_code == 400 and field in response.json(), (query, response.json())
    assert client.get("/api/datasets/999999/defaults/").status_code == 404
