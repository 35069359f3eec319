"""Admins steer queued runs, and runs of higher priority preempt lower ones where a queue allows it.

The order: a queue's waiting runs start by priority (0 first), then by `queue_order` (their launch time in
microseconds unless an admin moved them), then id. Every delivery of a run's task is a start token for its
queue: it claims the first waiting run of that queue that fits this worker, which is the run it was sent for
unless one ahead of it could start here too. When it starts another run it sends the run it was for again, so
every waiting run keeps a message (the reconciler's view) and no delivery order, retry or prefetch can let a
later run overtake an earlier one that fits.

Stopping a run to put it back (an admin's requeue of a running run, or a preemption) is a cancel that ends in
the queue: `cancel_requested` makes the supervisor ask the engine to checkpoint and stop, and
`requeue_requested` makes the outcome `queued` again instead of `cancelled` (run_requeue_after_stop), with
its place kept, so it resumes from the checkpoint it just wrote.
"""
from __future__ import annotations

import functools
import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from trainer_app.models import ACTIVE_STATUSES, Queue, Run, RunStatus, Worker
from trainer_app.models.runs import QUEUE_ORDER
from trainer_app.services.runs import (_queue_check_resources, devices_held, run_claim, run_devices, run_enqueue,
                                       run_resume)

logger = logging.getLogger(__name__)

DIRECTIONS = ("up", "down", "top", "bottom")
CANDIDATES = 20  # waiting runs ahead of a delivery's run that are looked at for one that fits this worker
CLAIM_TRIES = 3  # of which at most this many are tried before the delivery's own run


class SteeringConflict(ValidationError):
    """The run's state refuses the move (not queued, already first…): a 409, not a bad request."""


def _waiting(queue_id: int):
    return Run.objects.filter(queue_id=queue_id, status=RunStatus.QUEUED, cancel_requested=False)


def _ahead_of(priority: int, order: int, run_id: int) -> Q:
    return (Q(priority__lt=priority) | Q(priority=priority, queue_order__lt=order)
            | Q(priority=priority, queue_order=order, id__lt=run_id))


def _single_node(resources: dict | None) -> bool:
    return int((resources or {}).get("nnodes") or 1) == 1


def _gpus(resources: dict | None) -> int:
    return int((resources or {}).get("gpus_per_node") or 0)


# --- the order in which waiting runs start ----------------------------------------------------------------------

def _free_gpu_count(worker_name: str | None) -> int:
    """GPUs of this worker that no active run holds (a cheap estimate; the claim itself locks the worker)."""
    worker = Worker.objects.filter(name=worker_name).values("id", "gpus").first() if worker_name else None
    if worker is None:
        return 0
    indices = {str(gpu.get("index", position)) for position, gpu in enumerate(worker["gpus"] or [])}
    return len(indices - devices_held(worker["id"]))


def run_claim_in_order(*, run_id: int, owner: str, worker_name: str | None = None,
                       queue_name: str | None = None) -> int | None:
    """Claim, for this delivery of `run_id`'s task, the first waiting run of its queue that can start on this
    worker: one ahead of it in the queue's order when one fits, else the run itself (services.runs.run_claim
    does each claim, with its checks). Returns the id of the run claimed, or None. A run whose message started
    another run is sent again. Multi-node runs keep their own claim. `queue_name` is the Celery queue the
    delivery came from: a run moved out of it meanwhile is not claimed by it (every claim re-checks the run's
    queue in the same statement, so a move that lands between the task's first check and the claim wins)."""
    row = (Run.objects.filter(id=run_id, status=RunStatus.QUEUED, cancel_requested=False)
           .values("queue_id", "priority", "queue_order", "resources").first())
    if row is None:
        return None
    queue_id = row["queue_id"]
    if queue_name:
        delivered_from = Queue.all_objects.filter(name=queue_name).values_list("id", flat=True).first()
        if delivered_from != queue_id:
            return None  # moved away: its new queue got a message of its own
    claim = functools.partial(run_claim, owner=owner, worker_name=worker_name, queue_id=queue_id)
    if not _single_node(row["resources"]):
        return run_id if claim(run_id=run_id) else None
    free = _free_gpu_count(worker_name)
    ahead = (_waiting(queue_id).filter(_ahead_of(row["priority"], row["queue_order"], run_id))
             .order_by(*QUEUE_ORDER).values_list("id", "resources")[:CANDIDATES])
    fitting = [candidate for candidate, resources in ahead if _single_node(resources) and _gpus(resources) <= free]
    for candidate in [*fitting[:CLAIM_TRIES], run_id]:
        if not claim(run_id=candidate):
            continue
        if candidate != run_id:
            logger.debug("a delivery of run %s started run %s, ahead of it in its queue; run %s is sent again",
                        run_id, candidate, run_id)
            waiting = Run.objects.select_related("queue").filter(pk=run_id, status=RunStatus.QUEUED).first()
            if waiting is not None:
                run_enqueue(run=waiting)
        return candidate
    return None


def run_delivered_elsewhere(*, run_id: int, queue_name: str | None) -> bool:
    """Whether a delivery from Celery queue `queue_name` is a message left behind in a queue the run was moved
    away from (the move sent a new one to its new queue): that delivery does nothing."""
    if not queue_name:
        return False
    current = Run.objects.filter(id=run_id).values_list("queue__name", flat=True).first()
    return current is not None and current != queue_name


# --- admins move and requeue runs --------------------------------------------------------------------------------

def _target_queue(*, run: Run, queue_name: str) -> Queue:
    """The queue a run may move to: one that exists, takes its resources, and its owner's role may use."""
    from trainer_app.selectors import user_project_role
    from trainer_app.selectors.fleet import queues_usable
    from trainer_app.services.queues import queue_allowed_for

    queue = Queue.objects.filter(name=queue_name).first()
    if queue is None:
        names = ", ".join(Queue.objects.values_list("name", flat=True)) or "none yet"
        raise ValidationError({"queue": f"No queue named {queue_name!r}: choose one of {names}."})
    _queue_check_resources(queue=queue, resources=run.resources)
    role = user_project_role(run.created_by, run.project) if run.created_by_id else None
    if not queue_allowed_for(queue=queue, role=role):
        usable = ", ".join(usable.name for usable in queues_usable(role=role)) or "none"
        owner = run.created_by.username if run.created_by_id else "nobody (the user is gone)"
        raise ValidationError({"queue": f"Queue {queue.name!r} is for {' and '.join(queue.allowed_roles)} members "
                                        f"only, and the run's owner {owner} is {role or 'no member'} of "
                                        f"{run.project.name}: choose one of {usable}."})
    return queue


def _place(run: Run, direction: str) -> tuple[int, int] | None:
    """The (priority, queue_order) that puts a waiting run one place up or down, or first or last, in its queue,
    shifting the runs it passes where needed so that no two share a place; None when it is already there."""
    others = _waiting(run.queue_id).exclude(pk=run.pk)
    if direction in ("top", "bottom"):
        edge = others.order_by(*QUEUE_ORDER if direction == "top" else [f"-{key}" for key in QUEUE_ORDER]).first()
        if edge is None or (direction == "top") == (
                (run.priority, run.queue_order, run.pk) < (edge.priority, edge.queue_order, edge.pk)):
            return None
        return edge.priority, edge.queue_order + (-1 if direction == "top" else 1)
    position = _ahead_of(run.priority, run.queue_order, run.pk)
    if direction == "up":
        neighbour = others.filter(position).order_by(*[f"-{key}" for key in QUEUE_ORDER]).first()
    else:
        neighbour = others.exclude(position).order_by(*QUEUE_ORDER).first()
    if neighbour is None:
        return None
    band = others.filter(priority=neighbour.priority)
    if direction == "up":  # everything ahead of the neighbour in its band steps back by 2; the run takes order-1
        band.filter(Q(queue_order__lt=neighbour.queue_order) | Q(queue_order=neighbour.queue_order,
                                                                 id__lt=neighbour.pk)).update(
            queue_order=F("queue_order") - 2)
        return neighbour.priority, neighbour.queue_order - 1
    band.filter(Q(queue_order__gt=neighbour.queue_order) | Q(queue_order=neighbour.queue_order,
                                                             id__gt=neighbour.pk)).update(
        queue_order=F("queue_order") + 2)
    return neighbour.priority, neighbour.queue_order + 1


def run_move(*, run: Run, direction: str | None = None, priority: int | None = None,
             queue_name: str | None = None) -> Run:
    """Move a waiting run: one place up or down in its queue, to its top or bottom (taking the priority of the
    runs it joins), to another priority (0 highest .. 9), or to another queue (that takes its resources and its
    owner's role; it keeps its age there and takes the queue's priority unless one is given)."""
    if direction is None and priority is None and not queue_name:
        raise ValidationError({"detail": "Say where to move the run: direction (up, down, top or bottom), priority "
                                         "(0 highest .. 9 lowest) or queue (a queue's name)."})
    if direction is not None and direction not in DIRECTIONS:
        raise ValidationError({"direction": f"Unknown direction {direction!r}: use up, down, top or bottom."})
    if direction is not None and (priority is not None or queue_name):
        raise ValidationError({"direction": "Give a direction alone; to change the priority or the queue, leave "
                                            "it out."})
    if priority is not None and not (isinstance(priority, int) and 0 <= priority <= 9):
        raise ValidationError({"priority": f"Priority goes from 0 (highest) to 9 (lowest), not {priority!r}."})
    target = _target_queue(run=run, queue_name=queue_name) if queue_name else None
    with transaction.atomic():
        # The queue's row lock serialises moves within one queue; the run's row lock, a claim of this run.
        queues = {run.queue_id, target.pk if target else run.queue_id}
        list(Queue.all_objects.select_for_update().filter(pk__in=queues).order_by("pk"))
        locked = Run.objects.select_for_update().filter(pk=run.pk).first()
        if locked is None or locked.status != RunStatus.QUEUED:
            state = locked.status if locked else "gone"
            raise SteeringConflict({"status": f"Only a waiting run can be moved; run {run.pk} is {state}."})
        changes = {}
        if direction is not None:
            place = _place(locked, direction)
            if place is None and direction in ("up", "down"):
                end = "first" if direction == "up" else "last"
                raise SteeringConflict({"direction": f"Run {run.pk} is already {end} in queue {locked.queue.name}."})
            if place is not None:
                changes["priority"], changes["queue_order"] = place
        if priority is not None:
            changes["priority"] = priority
        if target is not None and target.pk != locked.queue_id:
            changes["queue"] = target
            changes.setdefault("priority", target.priority)
        if changes:
            Run.objects.filter(pk=run.pk).update(**changes)
        run.refresh_from_db()
        if "queue" in changes:  # its message waits in the old queue (where it will do nothing): send one here
            run_enqueue(run=run)
    return run


def run_requeue(*, run: Run) -> Run:
    """Put a run back in its queue: a running one checkpoints and stops first, then waits at its place; a
    cancelled, failed or lost one waits behind the runs already waiting at its priority and resumes from its
    last checkpoint."""
    if run.status == RunStatus.QUEUED:
        raise SteeringConflict({"status": f"Run {run.pk} is already waiting in queue {run.queue.name}."})
    if run.status in ACTIVE_STATUSES:
        if Run.objects.filter(pk=run.pk, status__in=ACTIVE_STATUSES, cancel_requested=False).update(
                cancel_requested=True, requeue_requested=True) != 1:
            raise SteeringConflict({"status": f"Run {run.pk} is already stopping (cancelled, requeued or "
                                              "preempted), or has just finished."})
    elif run.status in (RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.LOST):
        run_resume(run=run)
    else:
        raise SteeringConflict({"status": f"Run {run.pk} is {run.status}: there is nothing to resume. Launch a new "
                                          "run from it (its page's Clone) instead."})
    run.refresh_from_db()
    return run


def run_requeue_after_stop(*, run_id: int, owner: str) -> bool:
    """Called when a supervised run stopped cancelled or failed: if it was asked to go back (requeued or
    preempted), it is waiting again at its place, with its delivery count reset (a preemption is no failure),
    and resumes from the checkpoint it wrote when it stopped (a run stopped while it still started has none
    and starts over). False when nobody asked for it."""
    with transaction.atomic():
        if Run.objects.filter(id=run_id, lease_owner=owner, status__in=ACTIVE_STATUSES, cancel_requested=True,
                              requeue_requested=True).update(
                status=RunStatus.QUEUED, lease_owner="", cancel_requested=False, requeue_requested=False,
                deliveries=0, error="", exit_code=None, finished_at=None) != 1:
            return False
        run = Run.objects.select_related("queue").get(pk=run_id)
        logger.info("run %s checkpointed and went back to queue %s%s", run_id, run.queue.name,
                    f" (preempted by run {run.preempted_by_id})" if run.preempted_by_id else "")
        run_enqueue(run=run)
    return True


# --- preemption ---------------------------------------------------------------------------------------------------

def _stop_for(victims: list[Run], head: Run) -> list[int]:
    """Ask each victim to checkpoint, stop and wait again; only a run not already stopping is asked."""
    stopped = []
    for victim in victims:
        if Run.objects.filter(pk=victim.pk, status__in=ACTIVE_STATUSES, cancel_requested=False).update(
                cancel_requested=True, requeue_requested=True, preempted_by=head, preempted_at=timezone.now(),
                preemptions=F("preemptions") + 1) == 1:
            logger.warning("run %s (priority %s, queue %s) is preempted by run %s (priority %s): it checkpoints and "
                           "goes back to its queue", victim.pk, victim.priority, victim.queue_id, head.pk,
                           head.priority)
            stopped.append(victim.pk)
    return stopped


def _slot_victims(head: Run) -> list[Run]:
    """On a preemptible queue at max_concurrent: its youngest run of the lowest priority below the head's, unless
    a run of it is already stopping (that frees the slot)."""
    queue = head.queue
    if queue.max_concurrent is None or not queue.preemptible:
        return []
    active = Run.objects.filter(queue_id=queue.pk, status__in=ACTIVE_STATUSES)
    if active.filter(cancel_requested=False).count() < queue.max_concurrent:
        return []
    victim = (active.filter(cancel_requested=False, priority__gt=head.priority)
              .order_by("-priority", F("started_at").desc(nulls_last=True)).first())
    return [victim] if victim else []


def _gpu_victims(head: Run, worker_name: str | None) -> list[Run]:
    """The head needs GPUs no online worker of its queue has free: lower-priority runs of preemptible queues on
    this worker whose GPUs, with the free ones and those already being freed, make up what it needs (the
    lowest priority and youngest first); none when they cannot."""
    from trainer_app.selectors.fleet import workers_online

    needed = _gpus(head.resources)
    worker = Worker.objects.filter(name=worker_name).first() if worker_name and needed else None
    if worker is None or head.queue.name not in (worker.queues or []):
        return []
    candidates = [w for w in workers_online() if head.queue.name in (w.queues or [])]
    if any(_free_gpu_count(w.name) >= needed for w in candidates):
        return []  # it starts there at its next delivery
    free = _free_gpu_count(worker.name)
    active = list(Run.objects.filter(worker=worker, status__in=ACTIVE_STATUSES).select_related("queue")
                  .order_by("-priority", F("started_at").desc(nulls_last=True)))
    free += sum(len(run_devices(run.resources)) for run in active if run.cancel_requested)
    chosen = []
    for run in active:
        if free >= needed:
            break
        if (not run.cancel_requested and run.queue.preemptible and run.priority > head.priority
                and run_devices(run.resources)):
            chosen.append(run)
            free += len(run_devices(run.resources))
    return chosen if free >= needed and chosen else []


def runs_preempt_for(*, run_id: int, worker_name: str | None = None) -> list[int]:
    """A delivery of `run_id` could not start anything: if the first waiting run of its queue is kept out by
    lower-priority runs of preemptible queues (its queue's max_concurrent slots, or the GPUs it needs on this
    worker), ask them to checkpoint and go back to their queue. Returns the ids asked. Idempotent: nothing
    more is asked while earlier asks are still freeing room, and each run is asked once (a conditional update)."""
    if not Queue.objects.filter(preemptible=True).exists():
        return []
    row = Run.objects.filter(id=run_id, status=RunStatus.QUEUED).values("queue_id").first()
    if row is None:
        return []
    with transaction.atomic():
        head = (_waiting(row["queue_id"]).select_for_update(of=("self",)).select_related("queue")
                .order_by(*QUEUE_ORDER).first())
        if head is None or head.queue.paused or not _single_node(head.resources):
            return []
        victims = _slot_victims(head) or _gpu_victims(head, worker_name)
        return _stop_for(victims, head)


def runs_preempt() -> dict[str, int]:
    """Periodic (beat, `control` queue): the same decision for the first waiting run of every active queue. A
    worker whose every process runs a job takes no delivery, so a waiting run of higher priority would not get
    to ask for room itself; this pass asks for it (for GPUs, on the first worker of its queue where preempting
    frees enough)."""
    from trainer_app.selectors.fleet import workers_online

    counts = {"queues": 0, "preempted": 0}
    if not Queue.objects.filter(preemptible=True).exists():
        return counts
    online = None
    for queue in Queue.objects.filter(paused=False):
        head = _waiting(queue.pk).order_by(*QUEUE_ORDER).values("id", "resources").first()
        if head is None:
            continue
        counts["queues"] += 1
        names: list[str | None] = [None]
        if _gpus(head["resources"]):
            online = online if online is not None else list(workers_online())
            names = [worker.name for worker in online if queue.name in (worker.queues or [])]
        for name in names:
            asked = runs_preempt_for(run_id=head["id"], worker_name=name)
            counts["preempted"] += len(asked)
            if asked:
                break
    return counts


__all__ = ["DIRECTIONS", "SteeringConflict", "run_claim_in_order", "run_delivered_elsewhere",
           "run_move", "run_requeue", "run_requeue_after_stop", "runs_preempt", "runs_preempt_for"]
