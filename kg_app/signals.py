"""Outbox rows for the domain changes the graph shows, written by ``post_save``/``post_delete``.

Signals run inside the saving transaction, so the row commits or rolls back with the change, and
trainer_app stays unaware of the graph. Changes made without ``save()`` (queryset updates, bulk
inserts) are found by ``outbox_catch_up`` instead.
"""
from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from kg_app.services import outbox_record


def _recorder(entity: str, *, created_only: bool = False, id_field: str = "pk"):
    def record(sender, instance, created: bool = False, **kwargs) -> None:
        if created_only and not created and kwargs.get("signal") is post_save:
            return
        outbox_record(entity=entity, object_id=getattr(instance, id_field))

    return record


_RECEIVERS: list = []


def connect() -> None:
    from kg_app.models import Concept
    from trainer_app.models import Checkpoint, Dataset, ModelDesign, Project, Run, RunFinding, Sweep, Worker

    watched = [
        (Project, _recorder("project")),
        (Dataset, _recorder("dataset")),
        (ModelDesign, _recorder("design")),
        (Sweep, _recorder("sweep")),
        (Run, _recorder("run")),
        (Checkpoint, _recorder("checkpoint")),
        # A run's finding (overfitting…) is part of its run's node: SHOWED -> the concept.
        (RunFinding, _recorder("run", id_field="run_id")),
        # A heartbeat saves the worker every few seconds: only its registration is news to the graph.
        (Worker, _recorder("worker", created_only=True)),
        (Concept, _recorder("concept", id_field="slug")),
    ]
    for model, receiver in watched:
        _RECEIVERS.append(receiver)  # signals hold weak references
        uid = f"kg-outbox-{model._meta.label_lower}"
        post_save.connect(receiver, sender=model, dispatch_uid=uid + "-save")
        post_delete.connect(receiver, sender=model, dispatch_uid=uid + "-delete")
