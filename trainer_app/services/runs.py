"""The run lifecycle: claim, lease, finish, cancel, resume, reap.

Idempotency lives in the database: every transition is a conditional UPDATE that goes on only if it
changed exactly one row, so a redelivered Celery message, a second worker or a reaper racing the
supervisor can never run one job twice at once (DESIGN.md, run liveness).
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from trainer_app.models import ACTIVE_STATUSES, FINAL_STATUSES, Run, RunStatus, Worker

logger = logging.getLogger(__name__)
MAX_DELIVERIES = 3


def run_enqueue(*, run: Run) -> None:
    """Send the run's task to its queue once the current transaction commits."""
    from trainer_app.tasks import run_execute

    queue_name, priority, run_id = run.queue.name, run.priority, run.pk
    transaction.on_commit(lambda: run_execute.apply_async(args=[run_id], queue=queue_name, priority=priority))


def run_claim(*, run_id: int, owner: str, worker_name: str | None = None) -> bool:
    """Take a queued run for this delivery. False when the run is cancelled, finished, or claimed
    by a delivery that is still alive: that delivery does nothing."""
    now = timezone.now()
    worker = Worker.objects.filter(name=worker_name).first() if worker_name else None
    claimed = Run.objects.filter(id=run_id, status=RunStatus.QUEUED, cancel_requested=False).update(
        status=RunStatus.STARTING, lease_owner=owner, heartbeat_at=now, deliveries=F("deliveries") + 1,
        worker=worker, error="", started_at=now,
    )
    return claimed == 1


def run_mark_running(*, run_id: int, owner: str) -> bool:
    return Run.objects.filter(id=run_id, lease_owner=owner, status=RunStatus.STARTING).update(
        status=RunStatus.RUNNING, heartbeat_at=timezone.now()) == 1


def run_heartbeat(*, run_id: int, owner: str) -> tuple[bool, bool]:
    """Renew the lease. Returns (still_ours, cancel_requested)."""
    renewed = Run.objects.filter(id=run_id, lease_owner=owner, status__in=ACTIVE_STATUSES).update(
        heartbeat_at=timezone.now())
    if renewed != 1:
        return False, False
    return True, Run.objects.filter(id=run_id, cancel_requested=True).exists()


def run_finish(*, run_id: int, owner: str, status: str, error: str = "", exit_code: int | None = None,
               log_tail: list[str] | None = None) -> bool:
    """Record the outcome, only if this delivery still owns the run."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"{status!r} is not a final status")
    changes = {"status": status, "error": error, "exit_code": exit_code, "finished_at": timezone.now(),
               "lease_owner": "", "cancel_requested": False}
    if log_tail is not None:
        changes["log_tail"] = log_tail
    return Run.objects.filter(id=run_id, lease_owner=owner, status__in=ACTIVE_STATUSES).update(**changes) == 1


def run_cancel(*, run: Run) -> Run:
    """A queued run is cancelled at once; a running one finishes its step, checkpoints and stops."""
    if Run.objects.filter(id=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now()) == 1:
        pass
    elif run.status in ACTIVE_STATUSES or run.status == RunStatus.LOST:
        Run.objects.filter(id=run.pk, status__in=(*ACTIVE_STATUSES, RunStatus.LOST)).update(cancel_requested=True)
        Run.objects.filter(id=run.pk, status=RunStatus.LOST).update(status=RunStatus.CANCELLED,
                                                                    finished_at=timezone.now())
    else:
        raise ValidationError({"status": f"This run is already {run.status}: there is nothing to cancel."})
    run.refresh_from_db()
    return run


def run_resume(*, run: Run) -> Run:
    """Continue a cancelled, failed or lost run from its last checkpoint, as a new delivery."""
    resumable = (RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.LOST)
    with transaction.atomic():
        changed = Run.objects.filter(id=run.pk, status__in=resumable).update(
            status=RunStatus.QUEUED, cancel_requested=False, error="", finished_at=None, deliveries=0)
        if changed != 1:
            raise ValidationError({"status": f"Only a cancelled, failed or lost run can be resumed; this one is "
                                             f"{run.status}."})
        run.refresh_from_db()
        run_enqueue(run=run)
    return run


def runs_reap() -> dict[str, int]:
    """Re-queue runs whose lease expired (their worker died); fail those lost too often."""
    cutoff = timezone.now() - timedelta(seconds=settings.RUN_LEASE_SECONDS)
    expired = Q(status__in=ACTIVE_STATUSES) & (Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))
    counts = {"requeued": 0, "failed": 0}
    for run in Run.objects.filter(expired).select_related("queue"):
        if run.deliveries >= MAX_DELIVERIES:
            failed = Run.objects.filter(expired, id=run.pk).update(
                status=RunStatus.FAILED, error=f"worker lost {run.deliveries} times", lease_owner="",
                finished_at=timezone.now())
            counts["failed"] += failed
            continue
        with transaction.atomic():
            if Run.objects.filter(expired, id=run.pk).update(status=RunStatus.QUEUED, lease_owner="") != 1:
                continue  # its supervisor renewed the lease meanwhile
            logger.warning("run %s lost its worker (delivery %s); re-queued to resume from its checkpoint",
                           run.pk, run.deliveries)
            run_enqueue(run=run)
            counts["requeued"] += 1
    return counts
