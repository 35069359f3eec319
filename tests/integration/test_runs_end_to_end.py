"""Runs through the API on a real Celery worker supervising real torchrun jobs: success, cancel with a
checkpoint, resume without duplicate points, a worker killed mid-run, and launches refused with the fix."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, child_environment, wait_until
from trainer_app.models import Dataset, MetricPoint, Role, Run, RunStatus
from trainer_app.services import runs as run_services
from trainer_app.services.datasets import datasets_seed_samples
from trainer_app.services.queues import queues_ensure_defaults

FINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def lab(transactional_db, user_factory, project_factory, api_client):
    user = user_factory("ana")
    project = project_factory("lab", (user, Role.ANALYST))
    datasets_seed_samples(project=project, created_by=user)
    queues_ensure_defaults()
    api_client.force_authenticate(user)
    design = api_client.post("/api/models/", {"project": project.id, "name": "cnn", "spec": {"preset": "small_cnn"}},
                             format="json").json()
    mlp = api_client.post("/api/models/", {"project": project.id, "name": "mlp", "spec": {"preset": "mlp"}},
                          format="json").json()
    return {"client": api_client, "project": project, "user": user, "cnn": design["id"], "mlp": mlp["id"],
            "digits": Dataset.objects.get(project=project, name="digits").id,
            "wine": Dataset.objects.get(project=project, name="wine").id}


def launch(lab, *, dataset="digits", model="cnn", queue="cpu", **config):
    body = {"project": lab["project"].id, "dataset": lab[dataset], "model": lab[model],
            "config": {"optimizer": "adam", "lr": 0.003, "batch_size": 64, "epochs": 2, "seed": 0, **config},
            "queue": queue}
    return lab["client"].post("/api/runs/", body, format="json")


def wait_status(lab, run_id, statuses, timeout_s=180):
    def reached():
        body = lab["client"].get(f"/api/runs/{run_id}/").json()
        return body if body["status"] in statuses else None

    return wait_until(reached, timeout_s=timeout_s, interval_s=0.5, message=f"run {run_id} to reach {statuses}")


def engine_processes(run_id):
    """This test session's engine processes of the run (by its spec's full path: other sessions on the machine
    have runs of the same id under their own MEDIA_ROOT)."""
    from django.conf import settings

    spec = str(Path(settings.MEDIA_ROOT) / "runs" / str(run_id) / "spec.json")
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "trainer_app.engine" in cmdline and spec in cmdline:
            found.append(process)
    return found


@pytest.mark.usefixtures("celery_worker_process")
def test_a_run_succeeds_and_its_metrics_checkpoints_and_summary_land_in_sql(lab):
    response = launch(lab)
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    body = wait_status(lab, run_id, FINAL)
    assert body["status"] == "succeeded", (body["error"], body["log_tail"])
    assert body["summary"]["test_accuracy"] > 0.5 and body["step"] == body["total_steps"] > 0
    series = lab["client"].get(f"/api/runs/{run_id}/metrics/?names=train_loss,val_accuracy&points=100").json()["series"]
    assert len(series["val_accuracy"]["step"]) == 2 and series["train_loss"]["step"] == sorted(series["train_loss"]["step"])
    run = Run.objects.get(id=run_id)
    assert run.confusion_matrix["matrix"] and run.log_lines.exists() and run.dataset.is_locked
    checkpoint = run.checkpoints.order_by("-step").first()
    weights = lab["client"].get(f"/api/runs/{run_id}/checkpoints/{checkpoint.id}/")
    assert weights.status_code == 200 and b"".join(weights.streaming_content)[8:9] == b"{"  # a safetensors header
    assert not engine_processes(run_id)


@pytest.mark.usefixtures("celery_worker_process")
def test_cancel_checkpoints_and_stops_and_resume_continues_without_duplicates(lab):
    run_id = launch(lab, epochs=600, batch_size=32).json()["id"]  # cancelled long before its end
    wait_until(lambda: Run.objects.get(id=run_id).checkpoints.exists(), timeout_s=120, message="a first checkpoint")
    cancelled = lab["client"].post(f"/api/runs/{run_id}/cancel/")
    assert cancelled.status_code == 200
    body = wait_status(lab, run_id, FINAL, timeout_s=90)
    assert body["status"] == "cancelled", (body["error"], body["log_tail"])
    wait_until(lambda: not engine_processes(run_id), timeout_s=10, message="no engine process left")
    stopped_at = Run.objects.get(id=run_id).step
    assert Run.objects.get(id=run_id).checkpoints.filter(step__gte=stopped_at - 45).exists()
    points_before = MetricPoint.objects.filter(run_id=run_id, name="train_loss").count()
    assert lab["client"].post(f"/api/runs/{run_id}/resume/").json()["status"] == "queued"
    wait_until(lambda: Run.objects.get(id=run_id).step > stopped_at + 10, timeout_s=120, message="progress after resume")
    lab["client"].post(f"/api/runs/{run_id}/cancel/")
    wait_status(lab, run_id, FINAL, timeout_s=90)
    steps = list(MetricPoint.objects.filter(run_id=run_id, name="train_loss").order_by("step").values_list("step", flat=True))
    assert len(steps) == len(set(steps)) and len(steps) > points_before
    assert not engine_processes(run_id)


def test_a_run_whose_worker_is_killed_is_requeued_and_resumes_from_its_checkpoint(lab, tmp_path, settings):
    from trainer_app.models import Queue

    Queue.objects.create(name="isolated")  # only this test's workers consume it

    def start_worker(name):
        log = open(tmp_path / f"{name}.log", "wb")
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "isolated", "-n",
                                 f"{name}@%h", "--pool", "prefork", "--concurrency", "1", "--without-gossip",
                                 "--without-mingle"], cwd=REPO, env=child_environment(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    first = start_worker("doomed")
    try:
        # long enough to be still running after the resume (the test cancels it)
        run_id = launch(lab, dataset="wine", model="mlp", queue="isolated", epochs=5000, batch_size=16).json()["id"]
        wait_until(lambda: Run.objects.get(id=run_id).checkpoints.exists(), timeout_s=120, message="a checkpoint")
        os.killpg(first.pid, signal.SIGKILL)  # the whole worker dies, as with a lost machine
        first.wait()
        wait_until(lambda: not engine_processes(run_id), timeout_s=20,
                   message=f"the ranks to die with their worker: {[p.info['cmdline'] for p in engine_processes(run_id)]}")
        lost_at = Run.objects.get(id=run_id).step
        Run.objects.filter(id=run_id).update(heartbeat_at=Run.objects.get(id=run_id).heartbeat_at
                                             - __import__("datetime").timedelta(seconds=settings.RUN_LEASE_SECONDS + 1))
        assert run_services.runs_reap() == {"requeued": 1, "failed": 0, "cancelled": 0}
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    second = start_worker("rescuer")
    try:
        wait_until(lambda: Run.objects.get(id=run_id).step > lost_at + 5, timeout_s=120, message="the resumed run")
        run = Run.objects.get(id=run_id)
        assert run.deliveries == 2 and run.status == RunStatus.RUNNING and run.lease_owner.startswith("rescuer@")
        lab["client"].post(f"/api/runs/{run_id}/cancel/")
        wait_status(lab, run_id, FINAL, timeout_s=90)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)


@pytest.mark.parametrize(("config", "field", "fragment"), [
    ({"lr": 0}, "config", "lr"),
    ({"lr": "nan"}, "config", "lr"),
    ({"optimizer": "adamax"}, "config", "sgd"),
    ({"batch_size": 100000}, "config", "larger than the training split"),
])
def test_bad_launches_are_refused_with_the_fix_and_launch_nothing(lab, config, field, fragment):
    response = launch(lab, **config)
    assert response.status_code == 400 and fragment in str(response.json()[field]), response.json()
    assert not Run.objects.exists()


def test_a_design_that_does_not_fit_is_refused_naming_the_layer(lab):
    bad = lab["client"].post("/api/models/", {"project": lab["project"].id, "name": "bad", "spec": {"layers": [
        {"type": "Flatten"}, {"type": "Linear", "in_features": 100, "out_features": 10}]}}, format="json").json()
    lab["bad"] = bad["id"]
    response = launch(lab, model="bad")
    assert response.status_code == 400 and "layer 2 Linear" in response.json()["model"][0]
    assert not Run.objects.exists()


def test_more_processes_than_any_worker_has_is_refused_naming_the_largest(lab):
    from django.utils import timezone

    from trainer_app.models import Worker

    now = timezone.now()
    Worker.objects.create(name="big@host", hostname="host", cpu_count=8, started_at=now, last_heartbeat=now)
    body = {"project": lab["project"].id, "dataset": lab["digits"], "model": lab["cnn"], "queue": "cpu",
            "config": {"epochs": 1}, "resources": {"nproc_per_node": 64}}
    response = lab["client"].post("/api/runs/", body, format="json")
    assert response.status_code == 400 and "big@host" in response.json()["resources"][0]
    gpus = lab["client"].post("/api/runs/", {**body, "resources": {"nproc_per_node": 1, "gpus_per_node": 2}},
                              format="json")
    assert gpus.status_code == 400 and "has 0" in gpus.json()["resources"][0]
    unknown_queue = lab["client"].post("/api/runs/", {**body, "resources": {}, "queue": "tpu"}, format="json")
    assert unknown_queue.status_code == 400 and "cpu" in unknown_queue.json()["queue"][0]
    assert not Run.objects.exists()
