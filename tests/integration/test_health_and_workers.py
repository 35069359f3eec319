"""GET /api/health/ against the real services, and a real Celery worker registering and heartbeating."""
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from config.embedded import free_port
from tests.conftest import wait_until
from trainer_app.models import Worker, WorkerStatus
from trainer_app.services import workers_mark_offline_stale

COMPONENTS = {"database", "broker", "graph", "workers"}


@pytest.fixture
def online_worker(celery_worker_process, transactional_db):
    def registered():
        return Worker.objects.filter(name__startswith="test@", status=WorkerStatus.ONLINE).first()

    return wait_until(registered, timeout_s=60, message="the Celery worker to register")


def test_a_real_worker_registers_with_its_queues_and_hardware(online_worker):
    assert online_worker.queues == ["cpu", "default"]
    assert online_worker.cpu_count >= 1 and online_worker.ram_mb > 100
    assert online_worker.software["python"].startswith("3.")
    assert online_worker.gpus == []  # this machine has no GPU
    first = online_worker.last_heartbeat
    wait_until(lambda: Worker.objects.get(pk=online_worker.pk).last_heartbeat > first, timeout_s=15,
               message="a second heartbeat")


def test_health_is_all_ok_with_every_service_up(api_client, online_worker, user_factory):
    api_client.force_authenticate(user_factory("root", staff=True))
    response = api_client.get("/api/health/")
    body = response.json()
    assert response.status_code == 200, body
    assert set(body) == COMPONENTS
    for name, part in body.items():
        assert part["ok"] is True, (name, part)
        assert part["latency_ms"] >= 0
    assert body["graph"]["backend"] == "falkordb" and body["graph"]["url"].startswith("falkordb://")
    assert body["broker"]["url"].startswith("redis://")
    assert online_worker.name in body["workers"]["names"]


def test_anonymous_health_says_only_ok_and_latency(api_client, online_worker):
    body = api_client.get("/api/health/").json()
    assert set(body) == COMPONENTS
    assert all(set(part) == {"ok", "latency_ms"} for part in body.values())


@pytest.mark.django_db
def test_unreachable_broker_and_graph_are_reported_with_url_and_error(api_client, user_factory, settings):
    port = free_port()
    settings.CELERY_BROKER_URL = f"redis://:hunter2@127.0.0.1:{port}/0"
    settings.KG_URL = f"falkordb://127.0.0.1:{port}"
    api_client.force_authenticate(user_factory("root", staff=True))
    response = api_client.get("/api/health/")
    body = response.json()
    assert response.status_code == 503
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is False and "hunter2" not in str(body) and ":***@" in body["broker"]["url"]
    assert "Connection" in body["broker"]["error"]
    assert body["graph"]["ok"] is False and "unreachable" in body["graph"]["error"]
    assert body["workers"]["ok"] is False and "make up starts one" in body["workers"]["error"]


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_workers_that_miss_heartbeats_are_marked_offline(settings):
    now = timezone.now()
    stale = Worker.objects.create(name="old@h", hostname="h", started_at=now, last_heartbeat=now - timedelta(minutes=5))
    fresh = Worker.objects.create(name="new@h", hostname="h", started_at=now, last_heartbeat=now)
    assert workers_mark_offline_stale() == 1
    stale.refresh_from_db(), fresh.refresh_from_db()
    assert (stale.status, fresh.status) == (WorkerStatus.OFFLINE, WorkerStatus.ONLINE)


def test_status_page_shows_each_component_to_admins(client, online_worker, user_factory):
    client.force_login(user_factory("root", staff=True))
    page = client.get(reverse("status")).content.decode()
    for name in COMPONENTS:
        assert f'data-component="{name}"' in page
    assert page.count('data-state="ok"') == 4
    partial = client.get(reverse("status"), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and 'data-testid="status-table"' in partial


def test_workers_api_lists_the_fleet_for_admins(api_client, online_worker, user_factory):
    api_client.force_authenticate(user_factory("root", staff=True))
    workers = api_client.get("/api/workers/").json()
    entry = next(worker for worker in workers if worker["name"] == online_worker.name)
    assert {"name", "status", "last_heartbeat", "queues", "gpus"} <= set(entry) and entry["status"] == "online"
