"""Queues are rows admins create, change, pause, resume and delete. A paused queue accepts runs but starts
none; a queue with `max_concurrent` never has more runs starting or running at once; a queue with
`allowed_roles` takes runs only from members with one of those project roles."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from trainer_app.models import Queue, Role, RunStatus
from trainer_app.models.runs import QueueResourceClass

DEFAULT_QUEUES = {"cpu": ("CPU-only jobs", QueueResourceClass.CPU), "gpu": ("jobs that need GPUs", QueueResourceClass.GPU)}
UNFINISHED = (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING)
UPDATABLE = ("description", "resource_class", "paused", "priority", "max_concurrent", "allowed_roles",
             "preemptible")


def _clean(fields: dict) -> dict:
    """Check the fields an admin may set; say how to fix each one that is wrong."""
    if "priority" in fields and not 0 <= int(fields["priority"]) <= 9:
        raise ValidationError({"priority": "Priority goes from 0 (highest) to 9 (lowest)."})
    if "resource_class" in fields and fields["resource_class"] not in QueueResourceClass.values:
        raise ValidationError({"resource_class": f"A queue is for {' or '.join(QueueResourceClass.values)} jobs, "
                                                 f"not {fields['resource_class']!r}."})
    if fields.get("max_concurrent") is not None and int(fields["max_concurrent"]) < 1:
        raise ValidationError({"max_concurrent": "At least 1 run at a time (leave it empty for no limit; pause the "
                                                 "queue to start none)."})
    if "allowed_roles" in fields:
        roles = list(dict.fromkeys(fields["allowed_roles"] or []))
        unknown = [role for role in roles if role not in Role.values]
        if unknown:
            raise ValidationError({"allowed_roles": f"Unknown role(s) {', '.join(map(repr, unknown))}: use "
                                                    f"{', '.join(Role.values)}, or none for everyone."})
        fields["allowed_roles"] = roles
    return fields


def queue_create(*, name: str, description: str = "", priority: int = 5, resource_class: str = "cpu",
                 max_concurrent: int | None = None, allowed_roles: list[str] | None = None,
                 paused: bool = False, preemptible: bool = False) -> Queue:
    """A new queue; a deleted queue of that name comes back with these settings (its history kept)."""
    slug = slugify(name)
    if not slug or slug != name:
        raise ValidationError({"name": f"Queue names are lower-case letters, digits and dashes: try {slug or 'cpu'!r}."})
    fields = _clean({"description": description, "priority": priority, "resource_class": resource_class,
                     "max_concurrent": max_concurrent, "allowed_roles": allowed_roles or [], "paused": paused,
                     "preemptible": bool(preemptible)})
    existing = Queue.all_objects.filter(name=name).first()
    if existing is not None and existing.deleted_at is None:
        raise ValidationError({"name": f"A queue named {name!r} already exists."})
    if existing is not None:
        Queue.all_objects.filter(pk=existing.pk).update(deleted_at=None, **fields)
        return Queue.objects.get(pk=existing.pk)
    return Queue.objects.create(name=name, **fields)


def queue_update(*, queue: Queue, **fields) -> Queue:
    """Change any of description, resource_class, paused, priority, max_concurrent, allowed_roles, preemptible.
    The name stays: workers consume a queue by its name."""
    if "name" in fields and fields["name"] != queue.name:
        raise ValidationError({"name": "A queue keeps its name (workers consume it by name): create a new queue "
                                       "and move the runs, then delete this one."})
    unknown = set(fields) - set(UPDATABLE) - {"name"}
    if unknown:
        raise ValidationError({"detail": f"Cannot change {', '.join(sorted(unknown))}: only {', '.join(UPDATABLE)}."})
    changes = _clean({key: value for key, value in fields.items() if key in UPDATABLE})
    if changes:
        Queue.objects.filter(pk=queue.pk).update(**changes)
    queue.refresh_from_db()
    return queue


def queue_set_paused(*, queue: Queue, paused: bool) -> Queue:
    return queue_update(queue=queue, paused=paused)


def queue_delete(*, queue: Queue) -> None:
    """Delete a queue no unfinished run uses. One that finished runs still name is hidden instead (their
    history keeps its name); one no run ever used is removed."""
    with transaction.atomic():
        Queue.objects.select_for_update().filter(pk=queue.pk).first()  # no run is queued on it meanwhile
        unfinished = list(queue.runs.filter(status__in=UNFINISHED).order_by("id").values_list("id", "status"))
        if unfinished:
            shown = ", ".join(f"{run_id} ({status})" for run_id, status in unfinished[:20])
            more = f" and {len(unfinished) - 20} more" if len(unfinished) > 20 else ""
            raise ValidationError({"detail": f"{len(unfinished)} unfinished run(s) use queue {queue.name!r}: "
                                             f"{shown}{more}. Cancel them, or wait until they finish, then delete "
                                             f"the queue."})
        if queue.runs.exists():
            Queue.objects.filter(pk=queue.pk).update(deleted_at=timezone.now(), paused=True)
        else:
            queue.delete()


def queue_allowed_for(*, queue: Queue, role: str | None) -> bool:
    """Whether a project member with this role may launch on the queue (empty allowed_roles: everyone)."""
    return not queue.allowed_roles or role in queue.allowed_roles


def queues_ensure_defaults() -> None:
    for name, (description, resource_class) in DEFAULT_QUEUES.items():
        Queue.all_objects.get_or_create(name=name, defaults={"description": description,
                                                         "resource_class": resource_class})
