"""GPU placement at claim time: a worker takes only runs that fit its free GPUs and gives each its own
CUDA_VISIBLE_DEVICES; a CPU job sees no GPU. The workers are rows as a GPU node's heartbeat writes them."""
import threading

import pytest
from celery.exceptions import Retry
from django.db import connection
from django.utils import timezone

from trainer_app.models import Run, RunStatus, Worker, WorkerStatus
from trainer_app.services import runs as run_services
from trainer_app.tasks import run_execute


def gpu_worker(name: str, count: int) -> Worker:
    now = timezone.now()
    gpus = [{"index": index, "name": "NVIDIA H200", "memory_total_mb": 143771, "memory_used_mb": 0,
             "utilization": 0, "temperature_c": 30} for index in range(count)]
    return Worker.objects.create(name=name, hostname=name.split("@")[-1], status=WorkerStatus.ONLINE,
                                 queues=["gpu"], cpu_count=16, ram_mb=131072, gpus=gpus, started_at=now,
                                 last_heartbeat=now)


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_runs_get_disjoint_gpus_and_wait_when_too_few_are_free(run_factory):
    worker = gpu_worker("gpu@node1", 4)
    two_a, two_b, one = (run_factory(resources={"nproc_per_node": n, "gpus_per_node": n}) for n in (2, 2, 1))
    assert run_services.run_claim(run_id=two_a.pk, owner="a", worker_name=worker.name)
    assert run_services.run_claim(run_id=two_b.pk, owner="b", worker_name=worker.name)
    devices = {Run.objects.get(pk=run.pk).resources["cuda_visible_devices"] for run in (two_a, two_b)}
    assert devices == {"0,1", "2,3"}
    assert not run_services.run_claim(run_id=one.pk, owner="c", worker_name=worker.name), "no GPU is free"
    assert Run.objects.get(pk=one.pk).status == RunStatus.QUEUED
    run_services.run_finish(run_id=two_a.pk, owner="a", status=RunStatus.SUCCEEDED)
    assert run_services.run_claim(run_id=one.pk, owner="c", worker_name=worker.name)
    assert Run.objects.get(pk=one.pk).resources["cuda_visible_devices"] in ("0", "1")


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_cpu_job_sees_no_gpu_and_a_gpu_job_never_runs_on_a_cpu_worker(run_factory):
    cpu_only = Worker.objects.create(name="cpu@box", hostname="box", status=WorkerStatus.ONLINE, queues=["cpu"],
                                     cpu_count=2, ram_mb=1000, started_at=timezone.now(),
                                     last_heartbeat=timezone.now())
    cpu_job, gpu_job = run_factory(resources={"nproc_per_node": 1}), run_factory(resources={"gpus_per_node": 1})
    assert run_services.run_claim(run_id=cpu_job.pk, owner="x", worker_name=cpu_only.name)
    assert Run.objects.get(pk=cpu_job.pk).resources["cuda_visible_devices"] == ""
    assert not run_services.run_claim(run_id=gpu_job.pk, owner="y", worker_name=cpu_only.name)
    with pytest.raises(Retry):  # the delivery comes back later, for a worker with a free GPU
        run_execute.run(gpu_job.pk)


@pytest.mark.django_db(transaction=True)
def test_racing_claims_on_one_worker_never_share_a_gpu(run_factory):
    worker = gpu_worker("gpu@race", 8)
    runs = [run_factory(resources={"nproc_per_node": 1, "gpus_per_node": 1}) for _ in range(12)]
    results = {}

    def claim(run):
        try:
            results[run.pk] = run_services.run_claim(run_id=run.pk, owner=f"w{run.pk}", worker_name=worker.name)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = Run.objects.filter(status=RunStatus.STARTING)
    devices = [run.resources["cuda_visible_devices"] for run in claimed]
    assert sum(results.values()) == claimed.count() == 8 and sorted(devices) == [str(index) for index in range(8)]
