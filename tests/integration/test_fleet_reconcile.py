"""The reconciler against the real broker: a run queued in SQL whose task message is gone (FLUSHDB) is sent
again exactly once; a run whose message waits in its queue or is reserved by a worker is left alone."""
import json
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from trainer_app.models import Queue, Run
from trainer_app.services import reconcile
from trainer_app.services.runs import run_enqueue

pytestmark = [pytest.mark.django_db(transaction=True)]  # run_enqueue sends on commit


@pytest.fixture
def broker():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    if client.connection_pool.connection_kwargs.get("db", 0) == 0:
        pytest.skip("the broker is Redis db 0: these tests flush it, point REDIS_URL at a db of their own")
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def waiting_run(run_factory):
    """make() -> a run queued a minute ago on a queue no worker consumes, its message sent."""
    queue, _ = Queue.objects.get_or_create(name="fleet-reconcile")

    def make():
        run = run_factory(queue=queue)
        Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=1))
        run_enqueue(run=run)  # no transaction around it: sent at once
        return Run.objects.get(pk=run.pk)

    return make


def messages_for(client, run_id: int) -> int:
    keys = reconcile.queue_keys(["fleet-reconcile"])
    waiting = [json.loads(raw) for key in keys for raw in client.lrange(key, 0, -1)]
    reserved = [json.loads(raw)[0] for raw in client.hvals("unacked")]
    return sum(reconcile.message_run_id(message) == run_id for message in waiting + reserved)


def test_a_flushed_broker_gets_its_queued_run_back_exactly_once(broker, waiting_run):
    run = waiting_run()
    assert messages_for(broker, run.pk) == 1
    broker.flushdb()
    assert messages_for(broker, run.pk) == 0
    assert reconcile.runs_reconcile(grace_seconds=0) == {"requeued": 1, "missing": 0, "present": 0}
    assert messages_for(broker, run.pk) == 1
    assert reconcile.runs_reconcile(grace_seconds=0) == {"requeued": 0, "missing": 0, "present": 1}
    assert messages_for(broker, run.pk) == 1


def test_runs_whose_message_waits_or_is_reserved_are_left_alone(broker, waiting_run):
    waits, reserved = waiting_run(), waiting_run()
    for key in reconcile.queue_keys(["fleet-reconcile"]):  # a worker takes `reserved` (late ack): kombu's way
        for raw in broker.lrange(key, 0, -1):
            if reconcile.message_run_id(json.loads(raw)) == reserved.pk:
                broker.lrem(key, 1, raw)
                broker.hset("unacked", "tag-1", json.dumps([json.loads(raw), "", "fleet-reconcile"]))
    assert messages_for(broker, reserved.pk) == 1 and broker.hlen("unacked") == 1
    assert reconcile.runs_reconcile(grace_seconds=0) == {"requeued": 0, "missing": 0, "present": 2}
    assert (messages_for(broker, waits.pk), messages_for(broker, reserved.pk)) == (1, 1)


def test_a_missing_message_is_sent_again_only_after_the_grace_period(broker, waiting_run, run_factory):
    run = waiting_run()
    young = run_factory(queue=run.queue)  # just launched: its message may still be on its way
    broker.flushdb()
    assert reconcile.runs_reconcile(grace_seconds=30) == {"requeued": 0, "missing": 1, "present": 0}
    assert reconcile.runs_reconcile(grace_seconds=30)["missing"] == 1 and messages_for(broker, run.pk) == 0
    broker.hset(reconcile.MISSING_KEY, run.pk, time.time() - 31)  # the first pass was half a minute ago
    assert reconcile.runs_reconcile(grace_seconds=30) == {"requeued": 1, "missing": 0, "present": 0}
    assert messages_for(broker, run.pk) == 1 and messages_for(broker, young.pk) == 0


def test_the_reconciler_runs_on_the_beat_on_the_control_queue():
    assert settings.CELERY_BEAT_SCHEDULE["runs-reconcile"]["task"] == "trainer_app.tasks.runs_reconcile"
    assert settings.CELERY_TASK_ROUTES["trainer_app.tasks.runs_reconcile"] == {"queue": "control"}
