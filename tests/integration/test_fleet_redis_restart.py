"""Redis restarted while runs are going, on a stack of its own: a redis-server without persistence as broker and
metric streams, a real Celery worker and a real beat pointed at it. The server is killed mid-run and started
again on the same port: the running run finishes and SQL holds exactly the points rank 0 wrote (the stream's
lost entries come back from the engine's events file, none twice); the run whose queued message died with
the server is sent again by the reconciler on the beat and finishes; a run launched afterwards finishes too;
no run is left queued, starting or running, and no engine process is left."""
import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from config.embedded import free_port
from tests.conftest import REPO, child_environment, start_worker, stop_worker, wait_until
from tests.integration.test_runs_end_to_end import engine_processes, lab, launch, wait_status  # noqa: F401
from trainer_app.models import ACTIVE_STATUSES, MetricPoint, Queue, Run, RunStatus

FINAL = {"succeeded", "failed", "cancelled"}


class RedisServer:
    """A redis-server of this module's own on a free port, without persistence: a restart loses everything."""

    def __init__(self, directory: Path, *, append_only: bool = False):
        self.append_only = append_only  # with an append-only file, a restart keeps the data instead
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.directory / "redis.log", "ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.append_only else "no", "--appendfsync", "everysec",
             "--dir", str(self.directory)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        wait_until(lambda: _answers(client), timeout_s=20, message="redis-server to answer")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def _answers(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis-restart"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def restart_stack(own_redis, django_db_setup, django_db_blocker, tmp_path_factory):
    """A worker (queues `restart` and `control`) and a beat on the module's Redis; the reconciler every 2 s,
    sending a run whose message has been missing for 3 s."""
    logs = tmp_path_factory.mktemp("restart-stack")
    environment = {"REDIS_URL": own_redis.url, "TRAINYARD_RECONCILE_EVERY_S": "2", "TRAINYARD_RECONCILE_GRACE_S": "3"}
    with django_db_blocker.unblock():
        worker = start_worker(queues="restart,control", name="restart", log=logs / "worker.log",
                              environment=environment)
        with open(logs / "beat.log", "wb") as log:
            beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                                     "-s", str(logs / "beat-schedule")], cwd=REPO,
                                    env=child_environment(**environment), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    yield {"worker": worker, "beat": beat, "logs": logs}
    stop_worker(beat)
    stop_worker(worker)


@contextlib.contextmanager
def launches_to(url: str):
    """This test process's Celery app sends to `url` (the web side of the stack launches the runs)."""
    from config.celery import app

    saved = app.conf.broker_url
    app.conf.broker_url = url
    app._pool, app.amqp._producer_pool = None, None
    try:
        yield
    finally:
        app.conf.broker_url = saved
        app._pool, app.amqp._producer_pool = None, None


def unpersisted_points(server: RedisServer, run_id: int) -> int:
    """Points in the run's stream past what the persister moved to SQL: a restart now loses them."""
    position = Run.objects.get(id=run_id).stream_position or "0-0"
    client = redis.Redis.from_url(server.url)
    entries = client.xrange(f"trainyard:run:{run_id}:events", min=f"({position}" if position != "0-0" else "-")
    return sum(len(json.loads(fields[b"data"])["values"]) for _, fields in entries if fields[b"kind"] == b"metrics")


def emitted_points(run_id: int) -> set[tuple[str, int]]:
    """Every (name, step) rank 0 wrote to its events file (the stream's copy)."""
    path = Path(settings.MEDIA_ROOT) / "runs" / str(run_id) / "events.jsonl"
    points = set()
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "metrics":
            points |= {(name, event["data"]["step"]) for name in event["data"]["values"]}
    return points


@pytest.mark.timeout(600)  # 2.5 minutes on a busy 2-core host; its waits add up to 7
def test_runs_finish_and_none_is_stuck_when_redis_restarts_mid_run(lab, own_redis, restart_stack):  # noqa: F811
    Queue.objects.create(name="restart")
    with launches_to(own_redis.url):
        running = launch(lab, dataset="wine", model="mlp", queue="restart", epochs=200, batch_size=16).json()["id"]
        waiting = launch(lab, dataset="wine", model="mlp", queue="restart", epochs=1).json()["id"]
        wait_until(lambda: unpersisted_points(own_redis, running) >= 3, timeout_s=120, interval_s=0.05,
                   message="the first run's points in the stream, not yet in SQL")
        assert Run.objects.get(id=waiting).status == RunStatus.QUEUED  # one slot: its message waits in Redis

        own_redis.kill()  # its queued message, the running one's reservation and its stream die with it
        time.sleep(2)
        own_redis.start()
        stepped_at_restart = Run.objects.get(id=running).step

        body = wait_status(lab, running, FINAL, timeout_s=180)
        assert body["status"] == "succeeded", (body["error"], body["log_tail"])
        assert body["step"] > stepped_at_restart
        body = wait_status(lab, waiting, FINAL, timeout_s=120)
        assert body["status"] == "succeeded", (body["error"], body["log_tail"])
        after = launch(lab, dataset="wine", model="mlp", queue="restart", epochs=1).json()["id"]
        body = wait_status(lab, after, FINAL, timeout_s=120)
        assert body["status"] == "succeeded", (body["error"], body["log_tail"])

    for run_id in (running, waiting, after):
        stored = list(MetricPoint.objects.filter(run_id=run_id).values_list("name", "step"))
        assert len(stored) == len(set(stored)), "no point twice"
        assert set(stored) == emitted_points(run_id), f"run {run_id}: SQL holds exactly the points rank 0 wrote"
    assert not Run.objects.filter(status__in=(RunStatus.QUEUED, *ACTIVE_STATUSES)).exists()
    assert not any(engine_processes(run_id) for run_id in (running, waiting, after))
    log = (restart_stack["logs"] / "worker.log").read_text()
    assert "sending it again" in log
    restored = re.search(rf"run {running}: (\d+) metric points the stream lost restored", log)
    assert restored and int(restored.group(1)) >= 3, "the points the stream lost came from the events file"


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_the_backfill_adds_only_what_sql_lacks_and_the_last_attempts_value(run_factory, tmp_path):
    from trainer_app.models import Checkpoint, RunMetric
    from trainer_app.services.metrics import metrics_backfill

    run = run_factory(status=RunStatus.RUNNING, stream_position="1700000000000-5")
    MetricPoint.objects.create(run=run, name="train_loss", step=10, value=1.0)
    RunMetric.objects.create(run=run, dataset_id=run.dataset_id, project_id=run.project_id, name="train_loss",
                             last=1.0, last_step=10, min=1.0, max=1.0, count=1)
    events = [{"kind": "metrics", "data": {"step": 10, "epoch": 1, "values": {"train_loss": 9.0}}},  # SQL has it
              {"kind": "metrics", "data": {"step": 20, "epoch": 1, "values": {"train_loss": 0.8, "lr": 0.1}}},
              {"kind": "checkpoint", "data": {"epoch": 1, "step": 20, "path": str(tmp_path / "c"), "best": True}},
              {"kind": "log", "data": {"level": "info", "message": "not replayed"}},
              {"kind": "metrics", "data": {"step": 20, "epoch": 1, "values": {"train_loss": 0.7}}},  # resumed
              {"kind": "progress", "data": {"step": 20, "total_steps": 40, "epoch": 1, "epochs": 2}}]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(event) for event in events) + '\n{"kind": "metr')  # cut short by a kill
    assert metrics_backfill(run_id=run.pk, path=path) == 2
    points = {(name, step): value for name, step, value in
              MetricPoint.objects.filter(run=run).values_list("name", "step", "value")}
    assert points == {("train_loss", 10): 1.0, ("train_loss", 20): 0.7, ("lr", 20): 0.1}
    run.refresh_from_db()
    assert (run.step, run.total_steps, run.stream_position) == (20, 40, "1700000000000-5")
    assert Checkpoint.objects.filter(run=run, step=20, best=True).exists() and not run.log_lines.exists()
    assert RunMetric.objects.get(run=run, name="train_loss").last_step == 20
    assert metrics_backfill(run_id=run.pk, path=path) == 0  # twice: nothing more
    assert MetricPoint.objects.filter(run=run).count() == 3
