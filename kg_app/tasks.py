"""The graph sync, scheduled by beat every few seconds (kg_app/apps.py)."""
from __future__ import annotations

from celery import shared_task

from kg_app.services import graph_sync


@shared_task(name="kg_app.tasks.kg_sync", queue="default", ignore_result=True)
def kg_sync() -> dict:
    """Drain the outbox into the graph. If the graph is down the events wait for the next beat."""
    return graph_sync()
