"""Reads about the fleet."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.utils import timezone

from trainer_app.models import ACTIVE_STATUSES, FINAL_STATUSES, Queue, Run, RunStatus, Worker, WorkerStatus


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


def _seconds(total) -> float:
    return total.total_seconds() if total is not None else 0.0


def fleet_metrics() -> dict:
    """The figures /metrics exports: queue depths, workers by status, GPUs busy (held by a starting or
    running run on a worker that is not offline) and free, runs by status, and the count and sum of run
    durations (started to finished) and waits (created to started)."""
    queues = {queue.name: {"queued": queue.queued, "active": queue.active, "paused": queue.paused,
                           "max_concurrent": queue.max_concurrent} for queue in queue_list()}
    workers = dict.fromkeys(WorkerStatus.values, 0)
    workers.update(Worker.objects.values_list("status").annotate(count=Count("id")).order_by())
    live = list(Worker.objects.exclude(status=WorkerStatus.OFFLINE).only("id", "gpus"))
    held: dict[int, int] = {}
    for worker_id, resources in Run.objects.filter(status__in=ACTIVE_STATUSES, worker__in=live).values_list(
            "worker_id", "resources"):
        held[worker_id] = held.get(worker_id, 0) + int((resources or {}).get("gpus_per_node") or 0)
    total = sum(len(worker.gpus or []) for worker in live)
    busy = sum(min(held.get(worker.pk, 0), len(worker.gpus or [])) for worker in live)
    runs = dict.fromkeys(RunStatus.values, 0)
    runs.update(Run.objects.values_list("status").annotate(count=Count("id")).order_by())
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    finished = Run.objects.filter(status__in=FINAL_STATUSES, started_at__isnull=False, finished_at__isnull=False)
    durations = finished.aggregate(count=Count("id"), total=Sum(duration))
    wait = ExpressionWrapper(F("started_at") - F("created_at"), output_field=DurationField())
    waits = Run.objects.filter(started_at__isnull=False).aggregate(count=Count("id"), total=Sum(wait))
    return {"queues": queues, "workers": workers, "gpus": {"busy": busy, "free": total - busy}, "runs": runs,
            "run_duration": {"count": durations["count"], "sum": _seconds(durations["total"])},
            "run_wait": {"count": waits["count"], "sum": _seconds(waits["total"])}}


RECENT_FINISHED = 20  # the queue's latest finished runs make its average run duration


def queue_slots(queue: Queue) -> int:
    """How many runs the queue can run at once now: the pool sizes of the online workers consuming it,
    capped by its max_concurrent."""
    slots = sum(int((worker.software or {}).get("concurrency") or 1)
                for worker in workers_online() if queue.name in (worker.queues or []))
    return min(slots, queue.max_concurrent) if queue.max_concurrent is not None else slots


def run_queue_place(*, run: Run) -> dict | None:
    """For a queued run: its position in its queue (runs ahead of it by priority, then age) and an estimated
    start, the queue's average recent run duration × (runs ahead + runs it runs now) / its slots; None as
    the estimate, with the reason, when there is no history, no worker or the queue is paused."""
    if run.status != RunStatus.QUEUED:
        return None
    queue = run.queue
    same_queue = Run.objects.filter(queue_id=queue.pk)
    earlier = (Q(priority__lt=run.priority) | Q(priority=run.priority, created_at__lt=run.created_at)
               | Q(priority=run.priority, created_at=run.created_at, id__lt=run.pk))
    ahead = same_queue.filter(earlier, status=RunStatus.QUEUED).count()
    place = {"position": ahead + 1, "ahead": ahead, "estimated_start": None, "wait_seconds": None, "estimate": ""}
    finished = list(same_queue.filter(status__in=FINAL_STATUSES, started_at__isnull=False, finished_at__isnull=False)
                    .order_by("-finished_at").values_list("started_at", "finished_at")[:RECENT_FINISHED])
    slots = queue_slots(queue)
    if queue.paused:
        place["estimate"] = "unknown: the queue is paused"
    elif not finished:
        place["estimate"] = "unknown: no run has finished on this queue yet"
    elif not slots:
        place["estimate"] = "unknown: no online worker consumes this queue"
    else:
        average = sum((end - start).total_seconds() for start, end in finished) / len(finished)
        active = same_queue.filter(status__in=ACTIVE_STATUSES).count()
        wait = average * (ahead + active) / slots
        place["estimated_start"], place["wait_seconds"] = timezone.now() + timedelta(seconds=wait), wait
        place["estimate"] = (f"from the last {len(finished)} run(s) on this queue ({average:.0f} s each on average) "
                             f"and {slots} worker slot(s)")
    return place
