"""The fleet: workers register, heartbeat and go offline."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
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
    """Register a worker or renew its heartbeat; a worker that comes back is online again."""
    now = timezone.now()
    worker, _ = Worker.objects.update_or_create(
        name=name,
        defaults={
            "hostname": hostname,
            "queues": queues,
            "pid": pid,
            "cpu_count": cpu_count,
            "ram_mb": ram_mb,
            "gpus": gpus,
            "software": software,
            "started_at": started_at,
            "last_heartbeat": now,
            "status": WorkerStatus.ONLINE,
        },
    )
    return worker


def worker_mark_offline(*, name: str) -> int:
    """A worker that shuts down cleanly says so at once instead of waiting to be noticed."""
    return Worker.objects.filter(name=name).update(status=WorkerStatus.OFFLINE)


def workers_mark_offline_stale() -> int:
    """Mark offline every worker that missed its heartbeats; returns how many changed."""
    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS)
    return (
        Worker.objects.exclude(status=WorkerStatus.OFFLINE)
        .filter(last_heartbeat__lt=cutoff)
        .update(status=WorkerStatus.OFFLINE)
    )
