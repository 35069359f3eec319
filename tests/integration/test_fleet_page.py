"""The fleet page: workers with their GPUs (now, sparklines from heartbeat samples, the run on each GPU), CPU
runs, job history, queues with depth and estimated wait; admins only; the htmx partial for live refresh."""
import pytest
from django.urls import reverse
from django.utils import timezone

from trainer_app.models import Queue, Run, RunStatus, Worker
from trainer_app.services.fleet import worker_heartbeat, worker_samples_key
from trainer_app.streams import redis_client


def heartbeat(name: str, utilisations: list[int]):
    gpus = [{"index": index, "name": "NVIDIA H200", "memory_total_mb": 1000, "memory_used_mb": 100 * index,
             "utilization": value, "temperature_c": 40} for index, value in enumerate(utilisations)]
    return worker_heartbeat(name=name, hostname="node", queues=["gpu"], pid=1, cpu_count=16, ram_mb=1000, gpus=gpus,
                            software={"torch": "2.14.1", "concurrency": 2}, started_at=timezone.now())


@pytest.mark.django_db
def test_the_fleet_page_shows_gpus_their_jobs_sparklines_and_queue_depths(client, admin_user, run_factory):
    worker = None
    for value in (10, 50, 90):
        worker = heartbeat("gpu@node", [value, 0])
    try:
        busy = run_factory(name="on-gpu-zero", status=RunStatus.RUNNING, worker=worker,
                           resources={"gpus_per_node": 1, "cuda_visible_devices": "0"}, step=5, total_steps=10)
        run_factory(name="done-before", status=RunStatus.SUCCEEDED, worker=worker, started_at=timezone.now(),
                    finished_at=timezone.now())
        queue = Queue.objects.get(name="cpu")
        run_factory(name="waiting")
        client.force_login(admin_user)
        page = client.get(reverse("fleet")).content.decode()
        assert 'data-worker="gpu@node"' in page and "90 %" in page and "50 %" in page
        assert f'href="/runs/{busy.pk}/">on-gpu-zero</a>' in page and "idle" in page
        assert page.count('class="spark-util"') == 2, "a sparkline per GPU"
        assert "done-before" in page and "1 worker(s) online · 1 of 2 GPU(s) busy" in page
        assert f'data-testid="queue-{queue.name}"' in page
        partial = client.get(reverse("fleet"), HTTP_HX_REQUEST="true").content.decode()
        assert "<html" not in partial and 'data-worker="gpu@node"' in partial
    finally:
        redis_client().delete(worker_samples_key(worker.pk, 2), worker_samples_key(worker.pk, 2) + ":count")


@pytest.mark.django_db
def test_heartbeats_keep_a_ring_of_the_latest_samples_oldest_first():
    from trainer_app.selectors.fleet import _samples
    from trainer_app.services.fleet import SAMPLES_KEPT

    worker = heartbeat("gpu@window", [0])
    key = worker_samples_key(worker.pk, 1)
    try:
        for value in range(1, SAMPLES_KEPT + 10):
            heartbeat("gpu@window", [value])
        worker.refresh_from_db()
        samples = _samples([worker])[worker.pk]
        assert samples.shape == (SAMPLES_KEPT, 3) and redis_client().strlen(key) == SAMPLES_KEPT * 3 * 8
        assert list(samples[:, 1]) == list(range(10, SAMPLES_KEPT + 10)), "the latest, oldest first"
    finally:
        redis_client().delete(key, key + ":count")


@pytest.mark.django_db
def test_the_fleet_page_without_workers_says_how_to_start_one(client, admin_user):
    Worker.objects.all().delete()
    client.force_login(admin_user)
    page = client.get(reverse("fleet")).content.decode()
    assert 'data-testid="empty-state"' in page and "celery -A config worker" in page
    assert Run.objects.count() == 0
