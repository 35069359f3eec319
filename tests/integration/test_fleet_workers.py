"""Worker actions on real Celery worker processes: drain (the worker finishes its jobs and takes no more),
resume, and a warm shutdown; the heartbeat never undoes a drain."""
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tests.conftest import start_worker, stop_worker, wait_until
from tests.integration.test_runs_end_to_end import engine_processes, lab, launch  # noqa: F401  (lab: a fixture)
from trainer_app.models import Queue, Run, RunStatus, Worker, WorkerStatus
from trainer_app.services import runs as run_services
from trainer_app.services.fleet import worker_heartbeat


@pytest.fixture
def fleet_worker(transactional_db, tmp_path):
    """start(name, queues) -> (process, its registered Worker row); every worker started is stopped after."""
    started = []

    def start(name: str, queues: str, environment: dict | None = None):
        process = start_worker(queues=queues, name=name, log=tmp_path / f"{name}.log", environment=environment)
        started.append(process)
        worker = wait_until(lambda: Worker.objects.filter(name__startswith=f"{name}@",
                                                          status=WorkerStatus.ONLINE).first(),
                            timeout_s=90, message=f"worker {name} to register")
        return process, worker

    yield start
    for process in started:
        stop_worker(process)


@pytest.fixture
def admin_client(api_client, user_factory):
    api_client.force_authenticate(user_factory("root", staff=True))
    return api_client


def test_a_drained_worker_takes_no_new_run_until_it_is_resumed(fleet_worker, admin_client, run_factory):
    queue = Queue.objects.create(name="fleet-drain")
    _, worker = fleet_worker("drainer", "fleet-drain")
    asked = time.monotonic()
    drained = admin_client.post(f"/api/workers/{worker.id}/drain/")
    assert drained.status_code == 200, drained.json()
    assert drained.json()["status"] == "draining" and time.monotonic() - asked < 2
    listed = {entry["name"]: entry["status"] for entry in admin_client.get("/api/workers/").json()}
    assert listed[worker.name] == "draining"

    run = run_factory(queue=queue)
    run_services.run_enqueue(run=run)
    time.sleep(settings.WORKER_HEARTBEAT_SECONDS + 2)  # a heartbeat went by and nothing took the run
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    assert Worker.objects.get(pk=worker.pk).status == WorkerStatus.DRAINING

    resumed = admin_client.post(f"/api/workers/{worker.id}/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "online"
    taken = wait_until(lambda: Run.objects.exclude(status=RunStatus.QUEUED).filter(pk=run.pk).first(),
                       timeout_s=30, message="the resumed worker to take the run")
    assert taken.worker_id == worker.id and taken.deliveries == 1


def test_a_shut_down_worker_exits_and_says_it_is_offline(fleet_worker, admin_client):
    process, worker = fleet_worker("stopper", "fleet-stop")
    response = admin_client.post(f"/api/workers/{worker.id}/shutdown/")
    assert response.status_code == 200 and response.json()["status"] == "draining"
    assert process.wait(timeout=30) == 0
    assert Worker.objects.get(pk=worker.pk).status == WorkerStatus.OFFLINE
    refused = admin_client.post(f"/api/workers/{worker.id}/resume/")
    assert refused.status_code == 400 and "is offline" in refused.json()["detail"][0]


def test_a_worker_that_does_not_answer_is_left_as_it_was(admin_client):
    now = timezone.now()
    ghost = Worker.objects.create(name="ghost@nowhere", hostname="nowhere", queues=["cpu"], started_at=now,
                                  last_heartbeat=now)
    response = admin_client.post(f"/api/workers/{ghost.id}/drain/")
    assert response.status_code == 400 and "did not answer" in response.json()["detail"][0]
    assert Worker.objects.get(pk=ghost.pk).status == WorkerStatus.ONLINE


def test_analysts_cannot_steer_workers(api_client, user_factory, db):
    now = timezone.now()
    worker = Worker.objects.create(name="w@h", hostname="h", started_at=now, last_heartbeat=now)
    api_client.force_authenticate(user_factory("ana"))
    assert api_client.post(f"/api/workers/{worker.id}/drain/").status_code == 403


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_the_heartbeat_keeps_a_drain_but_a_restarted_or_returning_worker_is_online():
    started = timezone.now()
    beat = {"name": "gpu@node", "hostname": "node", "queues": ["gpu"], "pid": 1, "cpu_count": 2, "ram_mb": 1,
            "gpus": [], "software": {}, "started_at": started}
    worker = worker_heartbeat(**beat)
    assert worker.status == WorkerStatus.ONLINE
    Worker.objects.filter(pk=worker.pk).update(status=WorkerStatus.DRAINING)
    assert worker_heartbeat(**beat).status == WorkerStatus.DRAINING
    restarted = {**beat, "started_at": started + timedelta(minutes=1)}
    assert worker_heartbeat(**restarted).status == WorkerStatus.ONLINE
    Worker.objects.filter(pk=worker.pk).update(status=WorkerStatus.OFFLINE)
    back = worker_heartbeat(**restarted)
    assert back.status == WorkerStatus.ONLINE and Worker.objects.count() == 1


def test_a_warm_shutdown_lets_the_running_run_go_on_then_the_worker_exits(fleet_worker, lab, user_factory):  # noqa: F811
    """Celery's warm shutdown waits for the task: the run is not cut short, it keeps training while its worker
    drains, and the worker exits once the run has ended (here by a cancel: a natural end of a run long enough
    to still be going at the shutdown took minutes on a busy 2-core host). A killed worker's run is the
    reaper's, resumed elsewhere from its checkpoint: test_runs_end_to_end."""
    from rest_framework.test import APIClient

    Queue.objects.create(name="fleet-busy")
    process, worker = fleet_worker("busy", "fleet-busy", {"TRAINYARD_ENGINE_CPU_THREADS": "1"})
    epochs = 5000
    response = launch(lab, dataset="wine", model="mlp", batch_size=16, queue="fleet-busy", epochs=epochs)
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    wait_until(lambda: Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, step__gt=0).exists(), timeout_s=120,
               message="the run to report its first steps")
    engines = engine_processes(run_id)
    assert engines and {engine.environ().get("OMP_NUM_THREADS") for engine in engines} == {"1"}, "the admin's cap"
    admin = APIClient()
    admin.force_authenticate(user_factory("root", staff=True))
    assert admin.post(f"/api/workers/{worker.id}/shutdown/").json()["status"] == "draining"
    step_at_shutdown = Run.objects.get(pk=run_id).step
    wait_until(lambda: Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, step__gt=step_at_shutdown + 50)
               .exists(), timeout_s=60, message="the run to go on training after the shutdown")
    assert process.poll() is None and Worker.objects.get(pk=worker.pk).status == WorkerStatus.DRAINING
    assert lab["client"].post(f"/api/runs/{run_id}/cancel/").status_code == 200  # its analyst cancels it
    assert process.wait(timeout=120) == 0
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.deliveries, run.worker_id) == (RunStatus.CANCELLED, 1, worker.id)
    assert 0 < run.epoch < epochs
    assert Worker.objects.get(pk=worker.pk).status == WorkerStatus.OFFLINE
