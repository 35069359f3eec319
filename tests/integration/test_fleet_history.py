"""A worker's GPU history: heartbeat samples rolled into one SQL row per GPU and minute when a new minute
opens, served per GPU (bucketed over long spans) to admins, drawn on the worker's page with its job history,
and pruned after FLEET_HISTORY_DAYS."""
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from trainer_app.models import RunStatus, Worker, WorkerGpuMinute
from trainer_app.services.fleet import (worker_heartbeat, worker_minutes_record, worker_sample_record,
                                        worker_samples_key, workers_mark_offline_stale)
from trainer_app.streams import redis_client

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]

NAN = float("nan")


def gpus(utilisations, memories=None):
    return [{"index": index, "name": "NVIDIA H200", "memory_total_mb": 143771,
             "memory_used_mb": (memories or [1000] * len(utilisations))[index], "utilization": value,
             "temperature_c": 40} for index, value in enumerate(utilisations)]


@pytest.fixture
def gpu_worker():
    worker = worker_heartbeat(name="gpu@history", hostname="node", queues=["gpu"], pid=1, cpu_count=16,
                              ram_mb=1000, gpus=gpus([0, 0]), software={"torch": "2.14.1"}, started_at=timezone.now())
    key = worker_samples_key(worker.pk, 2)
    redis_client().delete(key, f"{key}:count", f"{key}:minute")
    yield worker
    redis_client().delete(key, f"{key}:count", f"{key}:minute")


def test_closed_minutes_become_rows_with_mean_max_and_memory(gpu_worker):
    start = 1_800_000_000.0 - 1_800_000_000.0 % 60  # a minute's start
    rows = np.array([
        [start + 5, 10, 1000, NAN, NAN],
        [start + 35, 30, 3000, 50, 500],
        [start + 65, 90, 2000, 70, 700],  # the next minute, still open: not written
    ])
    assert worker_minutes_record(worker=gpu_worker, rows=rows, before=start + 60) == 2
    first, second = WorkerGpuMinute.objects.filter(worker=gpu_worker).order_by("gpu_index")
    assert first.minute.timestamp() == start and first.samples == 2
    assert (first.utilization_mean, first.utilization_max, first.memory_used_mb_max) == (20, 30, 3000)
    assert (second.utilization_mean, second.utilization_max, second.memory_used_mb_max) == (50, 50, 500)
    assert worker_minutes_record(worker=gpu_worker, rows=rows, before=start + 120) == 4
    assert WorkerGpuMinute.objects.filter(worker=gpu_worker).count() == 4, "a minute is written once"


def test_the_first_sample_of_a_minute_writes_the_minute_before(gpu_worker):
    start = timezone.now().timestamp() // 60 * 60 - 600
    for offset, values in ((1, [10, 80]), (20, [30, 60]), (59, [50, 40])):
        worker_sample_record(worker=gpu_worker, gpus=gpus(values, [1000, 2000]), now=start + offset)
    assert not WorkerGpuMinute.objects.filter(worker=gpu_worker).exists(), "the minute is still open"
    worker_sample_record(worker=gpu_worker, gpus=gpus([99, 99]), now=start + 61)
    rows = {row.gpu_index: row for row in WorkerGpuMinute.objects.filter(worker=gpu_worker)}
    assert rows[0].utilization_mean == 30 and rows[0].utilization_max == 50 and rows[0].samples == 3
    assert rows[1].utilization_mean == 60 and rows[1].memory_used_mb_max == 2000
    assert {row.minute.timestamp() for row in rows.values()} == {start}


def test_admins_read_the_history_bucketed_over_long_spans(client, admin_user, gpu_worker):
    now = timezone.now().replace(second=0, microsecond=0)
    WorkerGpuMinute.objects.bulk_create([
        WorkerGpuMinute(worker=gpu_worker, gpu_index=0, minute=now - timedelta(minutes=minutes), samples=12,
                        utilization_mean=minutes % 100, utilization_max=100, memory_used_mb_max=minutes)
        for minutes in range(1, 3001)])
    client.force_login(admin_user)
    url = reverse("api-worker-gpu-history", args=[gpu_worker.pk])
    hour = client.get(url, {"hours": 1}).json()
    assert hour["minutes_per_point"] == 1 and len(hour["gpus"]) == 1
    assert 59 <= len(hour["gpus"][0]["time"]) <= 60 and hour["gpus"][0]["name"] == "NVIDIA H200"
    week = client.get(url, {"hours": 168}).json()
    series = week["gpus"][0]
    assert week["minutes_per_point"] == 14 and len(series["time"]) <= 720
    assert max(series["memory_used_mb_max"]) == 3000, "the maximum survives the buckets"
    assert set(series["utilization_max"]) == {100}
    for bad in ("abc", "0", "1000", ""):
        answer = client.get(url, {"hours": bad})
        assert answer.status_code == 400 and "hours must be a whole number from 1 to 168" in answer.json()["hours"][0]
    assert client.get(reverse("api-worker-gpu-history", args=[999_999])).status_code == 404


def test_only_admins_see_a_worker(client, user_factory, gpu_worker):
    client.force_login(user_factory("analyst"))
    assert client.get(reverse("api-worker-gpu-history", args=[gpu_worker.pk])).status_code == 403
    assert client.get(reverse("worker-detail", args=[gpu_worker.pk])).status_code == 403


def test_the_worker_page_has_the_chart_and_the_job_history(client, admin_user, gpu_worker, run_factory):
    done = run_factory(name="trained-here", status=RunStatus.SUCCEEDED, worker=gpu_worker,
                       resources={"gpus_per_node": 1, "cuda_visible_devices": "1"},
                       started_at=timezone.now() - timedelta(seconds=90), finished_at=timezone.now())
    client.force_login(admin_user)
    page = client.get(reverse("worker-detail", args=[gpu_worker.pk])).content.decode()
    assert 'data-testid="gpu-history"' in page and f'/api/workers/{gpu_worker.pk}/gpu-history/' in page
    assert f'href="/runs/{done.pk}/">trained-here</a>' in page and "90 s" in page
    fleet = client.get(reverse("fleet")).content.decode()
    assert f'href="/fleet/workers/{gpu_worker.pk}/"' in fleet
    cpu = Worker.objects.create(name="cpu@history", hostname="node", started_at=timezone.now(),
                                last_heartbeat=timezone.now())
    empty = client.get(reverse("worker-detail", args=[cpu.pk])).content.decode()
    assert 'data-testid="no-gpu"' in empty and "No job has run on this worker yet." in empty
    assert client.get(reverse("worker-detail", args=[999_999])).status_code == 404


def test_history_older_than_its_retention_is_pruned(gpu_worker, settings):
    now = timezone.now().replace(second=0, microsecond=0)
    for days in (1, settings.FLEET_HISTORY_DAYS + 1):
        WorkerGpuMinute.objects.create(worker=gpu_worker, gpu_index=0, minute=now - timedelta(days=days), samples=1)
    workers_mark_offline_stale()
    assert list(WorkerGpuMinute.objects.values_list("minute", flat=True)) == [now - timedelta(days=1)]
