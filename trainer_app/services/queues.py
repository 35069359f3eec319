"""Queues admins can pause, resume and reprioritise. A paused queue accepts runs but starts none."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.text import slugify

from trainer_app.models import Queue

DEFAULT_QUEUES = {"cpu": "CPU-only jobs", "gpu": "jobs that need GPUs"}


def queue_create(*, name: str, description: str = "", priority: int = 5) -> Queue:
    slug = slugify(name)
    if not slug or slug != name:
        raise ValidationError({"name": f"Queue names are lower-case letters, digits and dashes: try {slug or 'cpu'!r}."})
    if not 0 <= priority <= 9:
        raise ValidationError({"priority": "Priority goes from 0 (highest) to 9 (lowest)."})
    if Queue.objects.filter(name=name).exists():
        raise ValidationError({"name": f"A queue named {name!r} already exists."})
    return Queue.objects.create(name=name, description=description, priority=priority)


def queue_set_paused(*, queue: Queue, paused: bool) -> Queue:
    Queue.objects.filter(pk=queue.pk).update(paused=paused)
    queue.refresh_from_db()
    return queue


def queues_ensure_defaults() -> None:
    for name, description in DEFAULT_QUEUES.items():
        Queue.objects.get_or_create(name=name, defaults={"description": description})
