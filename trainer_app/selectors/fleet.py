"""Reads about the fleet."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from trainer_app.models import Worker, WorkerStatus


def worker_list() -> QuerySet[Worker]:
    return Worker.objects.order_by("name")


def workers_online() -> QuerySet[Worker]:
    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS)
    return Worker.objects.filter(status=WorkerStatus.ONLINE, last_heartbeat__gte=cutoff)
