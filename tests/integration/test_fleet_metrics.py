"""GET /api/metrics/: Prometheus' text format, for admins only, with the fleet's numbers."""
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from trainer_app.models import Queue, Run, RunStatus, Worker, WorkerStatus

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)\})? (?P<value>[-+]?(?:\d+(?:\.\d*)?(?:e[-+]?\d+)?'
                    r'|NaN|[-+]Inf))$')


def parse(text: str) -> dict:
    """{(name, frozenset(labels)): value}, checking the format as Prometheus reads it: every sample's family
    has a HELP and a TYPE line before it, each only once."""
    assert text.endswith("\n")
    samples, typed, helped = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helped, f"two HELP lines for {name}"
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in {"counter", "gauge", "summary", "histogram", "untyped"} and name not in typed
            typed[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            family = re.sub(r"_(count|sum)$", "", match["name"]) if match["name"] not in typed else match["name"]
            assert family in typed and family in helped, f"{match['name']} has no TYPE/HELP before it"
            labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
            samples[(match["name"], labels)] = float(match["value"])
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_only_admins_read_the_metrics_by_session_or_token(client, api_client, user_factory):
    assert api_client.get("/api/metrics/").status_code in (401, 403)
    client.force_login(user_factory("ana"))
    assert client.get("/api/metrics/").status_code == 403
    admin = user_factory("root", staff=True)
    token = Token.objects.create(user=admin)
    response = api_client.get("/api/metrics/", HTTP_AUTHORIZATION=f"Token {token.key}",
                              HTTP_ACCEPT="text/plain;version=0.0.4;q=0.5")
    assert response.status_code == 200 and response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    client.force_login(admin)
    assert client.get("/api/metrics/").content.decode().startswith("# HELP trainyard_queue_depth ")


def gpus(count: int) -> list[dict]:
    return [{"name": "H100", "memory_total_mb": 81559} for _ in range(count)]


def test_the_metrics_count_queues_workers_gpus_runs_durations_and_waits(client, user_factory, run_factory):
    now = timezone.now()
    cpu, _ = Queue.objects.get_or_create(name="cpu")
    gpu = Queue.objects.create(name="gpu", resource_class="gpu", paused=True)
    node = Worker.objects.create(name="gpu@a", hostname="a", gpus=gpus(2), started_at=now, last_heartbeat=now)
    Worker.objects.create(name="gpu@b", hostname="b", gpus=gpus(1), status=WorkerStatus.DRAINING, started_at=now,
                          last_heartbeat=now)
    Worker.objects.create(name="gpu@c", hostname="c", gpus=gpus(4), status=WorkerStatus.OFFLINE, started_at=now,
                          last_heartbeat=now)
    for _ in range(2):
        run_factory(queue=cpu)
    run_factory(queue=gpu, status=RunStatus.RUNNING, worker=node, resources={"gpus_per_node": 1},
                started_at=now)
    for seconds in (10, 30):
        finished = run_factory(status=RunStatus.SUCCEEDED)
        Run.objects.filter(pk=finished.pk).update(
            created_at=now - timedelta(seconds=100), started_at=now - timedelta(seconds=100 - 5),
            finished_at=now - timedelta(seconds=100 - 5 - seconds))
    running = Run.objects.get(status=RunStatus.RUNNING)
    Run.objects.filter(pk=running.pk).update(created_at=now - timedelta(seconds=7))
    client.force_login(user_factory("root", staff=True))
    samples = parse(client.get("/api/metrics/").content.decode())

    assert value(samples, "trainyard_queue_depth", queue="cpu") == 2
    assert value(samples, "trainyard_queue_depth", queue="gpu") == 0
    assert value(samples, "trainyard_queue_active", queue="gpu") == 1
    assert value(samples, "trainyard_queue_paused", queue="gpu") == 1
    assert [value(samples, "trainyard_workers", status=status) for status in ("online", "draining", "offline")] == [
        1, 1, 1]
    assert value(samples, "trainyard_gpus", state="busy") == 1 and value(samples, "trainyard_gpus", state="free") == 2
    assert value(samples, "trainyard_runs", status="queued") == 2
    assert value(samples, "trainyard_runs", status="succeeded") == 2
    assert value(samples, "trainyard_runs", status="lost") == 0
    assert value(samples, "trainyard_run_duration_seconds_count") == 2
    assert value(samples, "trainyard_run_duration_seconds_sum") == pytest.approx(40)
    assert value(samples, "trainyard_run_wait_seconds_count") == 3
    assert value(samples, "trainyard_run_wait_seconds_sum") == pytest.approx(5 + 5 + 7)
