"""The fleet: workers register, heartbeat and go offline; admins drain, resume and shut them down.

Drain and resume go through Celery's remote control (cancel_consumer / add_consumer for each of the
worker's queues), and the worker's row says `draining` so that the fleet page and the placement see it.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from trainer_app.models import Worker, WorkerStatus


def worker_heartbeat(
    *,
    name: str,
    hostname: str,
    queues: list[str],
    pid: int,
    cpu_count: int,
    ram_mb: int,
    gpus: list[dict],
    software: dict,
    started_at,
) -> Worker:
    """Register a worker or renew its heartbeat; a worker that comes back is online again. A draining
    worker stays draining while it is the same process (same started_at): its heartbeat must not undo an
    admin's drain, but a restarted worker consumes its queues again, so it is online."""
    now = timezone.now()
    facts = {"hostname": hostname, "queues": queues, "pid": pid, "cpu_count": cpu_count, "ram_mb": ram_mb,
             "gpus": gpus, "software": software, "last_heartbeat": now}
    still_draining = When(status=WorkerStatus.DRAINING, started_at=started_at, then=Value(WorkerStatus.DRAINING))
    status = Case(still_draining, default=Value(WorkerStatus.ONLINE))
    for _ in range(2):
        if Worker.objects.filter(name=name).update(status=status, started_at=started_at, **facts):
            break
        try:
            with transaction.atomic():
                Worker.objects.create(name=name, status=WorkerStatus.ONLINE, started_at=started_at, **facts)
            break
        except IntegrityError:  # registered meanwhile: update it
            continue
    worker = Worker.objects.get(name=name)
    worker_sample_record(worker=worker, gpus=gpus)
    return worker


SAMPLES_KEPT = 180  # 15 minutes of 5-second heartbeats


def worker_samples_key(worker_id: int, gpu_count: int) -> str:
    return f"trainyard:worker:{worker_id}:samples:{gpu_count}"


def worker_sample_record(*, worker: Worker, gpus: list[dict], now: float | None = None) -> None:
    """Keep the worker's recent GPU utilisation and memory (the fleet page's sparklines) in Redis: a cache of
    the last minutes, not history SQL must keep. A ring of SAMPLES_KEPT fixed-size records in one string
    (packed float64s: time, then each GPU's utilisation and memory used, NaN where unknown) plus a counter,
    so the page reads a whole fleet's samples as one string per worker. A broker hiccup loses a sample,
    never the heartbeat. The first sample of a new minute writes the minutes before it to SQL (the history)."""
    import struct

    from trainer_app.streams import redis_client

    values = [timezone.now().timestamp() if now is None else now]
    for gpu in gpus or []:
        for key in ("utilization", "memory_used_mb"):
            value = gpu.get(key)
            values.append(float(value) if isinstance(value, (int, float)) else float("nan"))
    record = struct.pack(f"<{len(values)}d", *values)
    key = worker_samples_key(worker.pk, len(gpus or []))
    minute = int(values[0] // 60)
    try:
        client = redis_client()
        slot = (client.incr(f"{key}:count") - 1) % SAMPLES_KEPT
        pipe = client.pipeline()
        pipe.setrange(key, slot * len(record), record)
        pipe.expire(key, 24 * 3600)
        pipe.expire(f"{key}:count", 24 * 3600)
        pipe.getset(f"{key}:minute", minute)  # the minute of the previous sample
        pipe.expire(f"{key}:minute", 24 * 3600)
        previous = pipe.execute()[3]
        if gpus and previous is not None and int(previous) < minute:
            ring, count = client.mget(key, f"{key}:count")
            worker_minutes_record(worker=worker, rows=ring_rows(ring, count, 1 + 2 * len(gpus)),
                                  before=minute * 60)
    except Exception:  # noqa: BLE001 - the sample is a cache; the heartbeat itself went to SQL
        pass


def ring_rows(ring: bytes | None, count, width: int):
    """A worker's ring of samples as a (samples × width) float64 array, oldest first (None if empty)."""
    import numpy as np

    if not ring or not count:
        return None
    rows = np.frombuffer(ring[:len(ring) - len(ring) % (8 * width)], dtype="<f8").reshape(-1, width)
    written = int(count)
    if written > SAMPLES_KEPT:  # the ring wrapped: the oldest record is the next one to be overwritten
        start = written % SAMPLES_KEPT
        rows = np.concatenate([rows[start:], rows[:start]])
    return rows[:min(written, SAMPLES_KEPT)]


def worker_minutes_record(*, worker: Worker, rows, before: float) -> int:
    """Write the per-minute history of the worker's GPUs for the closed minutes in ``rows`` (samples ×
    (time, then utilisation and memory per GPU)) that end at or before ``before`` (epoch seconds) and are not
    in SQL yet. Idempotent: a minute already written stays as it is. Returns how many rows it wrote."""
    from datetime import datetime, timezone as dt_timezone

    import numpy as np

    from trainer_app.models import WorkerGpuMinute

    if rows is None or not len(rows):
        return 0
    rows = rows[rows[:, 0] < before]
    minutes = np.floor(rows[:, 0] / 60).astype(np.int64)
    objects = []
    for minute in np.unique(minutes):
        block = rows[minutes == minute]
        start = datetime.fromtimestamp(int(minute) * 60, tz=dt_timezone.utc)
        for gpu in range((rows.shape[1] - 1) // 2):
            utilisation, memory = block[:, 1 + 2 * gpu], block[:, 2 + 2 * gpu]
            known, known_memory = utilisation[~np.isnan(utilisation)], memory[~np.isnan(memory)]
            objects.append(WorkerGpuMinute(
                worker=worker, gpu_index=gpu, minute=start, samples=len(block),
                utilization_mean=float(known.mean()) if len(known) else None,
                utilization_max=float(known.max()) if len(known) else None,
                memory_used_mb_max=float(known_memory.max()) if len(known_memory) else None))
    WorkerGpuMinute.objects.bulk_create(objects, ignore_conflicts=True)
    return len(objects)


def worker_history_prune() -> int:
    """Drop GPU history older than FLEET_HISTORY_DAYS; returns how many rows went."""
    from trainer_app.models import WorkerGpuMinute

    cutoff = timezone.now() - timedelta(days=settings.FLEET_HISTORY_DAYS)
    return WorkerGpuMinute.objects.filter(minute__lt=cutoff).delete()[0]


def worker_mark_offline(*, name: str) -> int:
    """A worker that shuts down cleanly says so at once instead of waiting to be noticed."""
    return Worker.objects.filter(name=name).update(status=WorkerStatus.OFFLINE)


def workers_mark_offline_stale() -> int:
    """Mark offline every worker that missed its heartbeats (and drop GPU history past its retention);
    returns how many workers changed."""
    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS)
    worker_history_prune()
    return (
        Worker.objects.exclude(status=WorkerStatus.OFFLINE)
        .filter(last_heartbeat__lt=cutoff)
        .update(status=WorkerStatus.OFFLINE)
    )


CONTROL_REPLY_SECONDS = 1.5


def _control_app():
    from config.celery import app

    return app


def _answered(replies, worker: Worker) -> bool:
    return any(worker.name in reply for reply in replies or [])


def _consumers(*, worker: Worker, command: str) -> None:
    """Send add_consumer or cancel_consumer for each of the worker's queues; refuse if it does not answer."""
    if worker.status == WorkerStatus.OFFLINE:
        seen = f"{worker.last_heartbeat:%Y-%m-%d %H:%M:%S}"
        raise ValidationError({"detail": f"{worker.name} is offline (last heartbeat {seen} UTC): start it again "
                                         "on its machine; it registers online."})
    control = _control_app().control
    for queue in worker.queues:
        replies = getattr(control, command)(queue, destination=[worker.name], reply=True,
                                            timeout=CONTROL_REPLY_SECONDS)
        if not _answered(replies, worker):
            raise ValidationError({"detail": f"{worker.name} did not answer within {CONTROL_REPLY_SECONDS} s: it may "
                                             "be down or cut off from the broker. Its status is unchanged."})


def worker_drain(*, worker: Worker) -> Worker:
    """Finish the current jobs, take no more: the worker stops consuming each of its queues."""
    _consumers(worker=worker, command="cancel_consumer")
    Worker.objects.filter(pk=worker.pk).update(status=WorkerStatus.DRAINING)
    worker.refresh_from_db()
    return worker


def worker_resume(*, worker: Worker) -> Worker:
    """A drained worker consumes its queues again."""
    _consumers(worker=worker, command="add_consumer")
    Worker.objects.filter(pk=worker.pk).update(status=WorkerStatus.ONLINE)
    worker.refresh_from_db()
    return worker


def worker_shutdown(*, worker: Worker) -> Worker:
    """Warm shutdown: the worker takes no more jobs, lets the ones it runs finish, then exits (and marks
    itself offline). A run cut short anyway (the process killed) is resumed elsewhere from its last
    checkpoint by the reaper."""
    worker_drain(worker=worker)
    _control_app().control.shutdown(destination=[worker.name])
    return worker
