"""Celery tasks: thin callers of services, taking ids, owning their retries."""
from celery import shared_task

from trainer_app import services


@shared_task(name="trainer_app.tasks.fleet_mark_offline", ignore_result=True)
def fleet_mark_offline() -> int:
    """Periodic (beat): workers that missed their heartbeats are marked offline."""
    return services.workers_mark_offline_stale()

