"""Reads about the fleet."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from trainer_app.models import ACTIVE_STATUSES, Queue, RunStatus, Worker, WorkerStatus


def worker_list() -> QuerySet[Worker]:
    return Worker.objects.order_by("name")


def workers_online() -> QuerySet[Worker]:
    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS)
    return Worker.objects.filter(status=WorkerStatus.ONLINE, last_heartbeat__gte=cutoff)


def queue_list() -> QuerySet[Queue]:
    """Every queue (deleted ones aside) with how many runs wait on it and how many it runs now."""
    return Queue.objects.annotate(
        queued=Count("runs", filter=Q(runs__status=RunStatus.QUEUED)),
        active=Count("runs", filter=Q(runs__status__in=ACTIVE_STATUSES)),
    )


def queues_usable(*, role: str | None) -> list[Queue]:
    """The queues a project member with this role may launch on."""
    from trainer_app.services.queues import queue_allowed_for

    return [queue for queue in Queue.objects.all() if queue_allowed_for(queue=queue, role=role)]
