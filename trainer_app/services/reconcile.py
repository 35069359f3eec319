"""The reconciler: SQL says which runs wait; the broker must hold a task message for each.

A run is `queued` in SQL from launch until a delivery claims it, but its message can be lost on the way
(a flushed or restarted Redis without persistence, a failed publish after commit). Such a run would wait
forever, so a periodic pass looks for each queued run's message where kombu's Redis transport keeps
them: a list per queue (one per priority step, `<queue>\\x06\\x16<step>`) for messages waiting, and the
`unacked` hash for messages a worker has reserved (late acks, countdowns). A run found in neither, on
passes at least the grace period apart, is sent again; one whose message waits or is reserved is left
alone, so no run is ever sent twice by the reconciler.

Limits: a message reserved by a worker that died stays in `unacked` until the broker's visibility
timeout restores it (one hour by default): the run waits that long, then runs.
"""
from __future__ import annotations

import base64
import json
import logging
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from trainer_app.models import Queue, Run, RunStatus

logger = logging.getLogger(__name__)

RUN_TASK = "trainer_app.tasks.run_execute"
UNACKED_KEY = "unacked"
MISSING_KEY = "trainyard:reconcile:missing"  # run id -> when a pass first found its message missing
LOCK_KEY = "trainyard:reconcile:lock"
GRACE_SECONDS = 30  # settings.RUN_RECONCILE_GRACE_SECONDS (TRAINYARD_RECONCILE_GRACE_S) overrides it
SCAN_CHUNK = 1000


def _broker() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=3, socket_timeout=10)


def _transport_options() -> tuple[str, str, list[int]]:
    from kombu.transport.redis import Channel

    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    return (options.get("global_keyprefix", ""), options.get("sep", Channel.sep),
            list(options.get("priority_steps", Channel.priority_steps)))


def queue_keys(queue_names) -> list[str]:
    """The Redis lists kombu keeps for these queues, one per priority step (step 0 is the bare name)."""
    prefix, separator, steps = _transport_options()
    return [f"{prefix}{name}{separator}{step}" if step else f"{prefix}{name}"
            for name in sorted(queue_names) for step in steps]


def message_run_id(message: dict) -> int | None:
    """The run a task message is for, or None when it is another task (or not a message we can read)."""
    headers = message.get("headers") or {}
    if headers.get("task") != RUN_TASK:
        return None
    try:
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]  # task protocol 2: [args, kwargs, embed]
        return int(args[0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _read(raw: bytes) -> dict:
    try:
        return json.loads(raw)
    except ValueError:
        return {}


def runs_in_broker(*, queue_names, client: redis.Redis | None = None) -> set[int]:
    """Ids of the runs whose task message waits in one of these queues or is reserved by a worker. The
    lists are read before the unacked hash: a message a worker takes meanwhile moves from one to the
    other, so it is seen in one of them."""
    client = client or _broker()
    found: set[int] = set()
    for key in queue_keys(queue_names):
        start = 0
        while chunk := client.lrange(key, start, start + SCAN_CHUNK - 1):
            found.update(filter(None, (message_run_id(_read(raw)) for raw in chunk)))
            start += SCAN_CHUNK
    prefix = _transport_options()[0]
    for raw in client.hvals(f"{prefix}{UNACKED_KEY}"):
        entry = _read(raw)  # [message, exchange, routing key]
        if isinstance(entry, list) and entry and isinstance(entry[0], dict):
            run_id = message_run_id(entry[0])
            if run_id is not None:
                found.add(run_id)
    return found


def runs_reconcile(*, grace_seconds: float | None = None) -> dict[str, int]:
    """Send again the task of each run queued for longer than the grace period whose message the broker
    no longer holds, once it has been missing for the grace period too. Returns counts: requeued (sent
    again), missing (noticed, waiting out the grace period), present (messages in place)."""
    grace = getattr(settings, "RUN_RECONCILE_GRACE_SECONDS", GRACE_SECONDS) if grace_seconds is None else grace_seconds
    client = _broker()
    lock = client.lock(LOCK_KEY, timeout=120)
    if not lock.acquire(blocking=False):  # another pass is at work (a slow one overlapping the next)
        return {"requeued": 0, "missing": 0, "present": 0}
    try:
        return _reconcile(client=client, grace=grace)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:  # it expired (a pass over 2 minutes) or the broker was flushed
            pass


def _reconcile(*, client: redis.Redis, grace: float) -> dict[str, int]:
    from trainer_app.services.runs import run_enqueue

    waiting = list(Run.objects.filter(status=RunStatus.QUEUED, cancel_requested=False,
                                      created_at__lte=timezone.now() - timedelta(seconds=grace))
                   .select_related("queue"))
    counts = {"requeued": 0, "missing": 0, "present": 0}
    if not waiting:
        client.delete(MISSING_KEY)
        return counts
    names = set(Queue.objects.values_list("name", flat=True)) | {run.queue.name for run in waiting}
    present = runs_in_broker(queue_names=names, client=client)
    missing = {run.pk: run for run in waiting if run.pk not in present}
    counts["present"] = len(waiting) - len(missing)
    now = time.time()
    noticed = {int(run_id): float(since) for run_id, since in client.hgetall(MISSING_KEY).items()}
    found_again = [run_id for run_id in noticed if run_id not in missing]
    if found_again:
        client.hdel(MISSING_KEY, *found_again)
    for run_id, run in missing.items():
        since = noticed.get(run_id, now)
        if now - since < grace:
            client.hsetnx(MISSING_KEY, run_id, since)
            counts["missing"] += 1
            continue
        with transaction.atomic():
            if not Run.objects.select_for_update().filter(pk=run_id, status=RunStatus.QUEUED,
                                                          cancel_requested=False).exists():
                continue  # claimed or cancelled meanwhile
            logger.warning("run %s is queued but the broker holds no message for it; sending it again", run_id)
            run_enqueue(run=run)
        client.hdel(MISSING_KEY, run_id)
        counts["requeued"] += 1
    return counts
