"""Celery tasks: thin callers of services, taking ids, owning their retries."""
from celery import shared_task

from trainer_app import services

PAUSED_QUEUE_RETRY_SECONDS = 5
FULL_QUEUE_RETRY_SECONDS = 5


@shared_task(name="trainer_app.tasks.fleet_mark_offline", ignore_result=True)
def fleet_mark_offline() -> int:
    """Periodic (beat): workers that missed their heartbeats are marked offline."""
    return services.workers_mark_offline_stale()


@shared_task(name="trainer_app.tasks.runs_reap", ignore_result=True)
def runs_reap() -> dict:
    """Periodic (beat): runs whose lease expired are re-queued to resume, or failed after 3 losses."""
    from trainer_app.services.runs import runs_reap as reap

    return reap()


@shared_task(bind=True, name="trainer_app.tasks.run_execute", ignore_result=True, acks_late=True)
def run_execute(self, run_id: int) -> str:
    """Start and supervise the first waiting run of this run's queue that fits this worker: this run unless an
    earlier one fits too (services/steering.py). A delivery of a run that is already claimed and alive, or was
    moved to another queue, does nothing."""
    from trainer_app.runner import RunSupervisor
    from trainer_app.services.steering import run_claim_in_order, run_delivered_elsewhere, runs_preempt_for

    from trainer_app.models import Run

    queue_name = (self.request.delivery_info or {}).get("routing_key")
    if run_delivered_elsewhere(run_id=run_id, queue_name=queue_name):
        return "moved"  # an admin moved the run to another queue, which got a message of its own
    if Run.objects.filter(id=run_id, queue__paused=True, status="queued").exists():
        # A paused queue accepts runs but starts none: come back later, without holding this worker.
        raise self.retry(countdown=PAUSED_QUEUE_RETRY_SECONDS, max_retries=None)
    resources = Run.objects.filter(id=run_id).values_list("resources", flat=True).first()
    if int((resources or {}).get("nnodes") or 1) > 1:  # one node of a gang (trainer_app/gang.py)
        from trainer_app.gang import gang_execute

        return gang_execute(self, run_id)
    worker_name = self.request.hostname
    owner = f"{worker_name}:{self.request.id}"
    # The first waiting run of the queue that fits here starts, which may be another than run_id (steering.py).
    claimed = run_claim_in_order(run_id=run_id, owner=owner, worker_name=worker_name, queue_name=queue_name)
    if claimed is None:
        if run_delivered_elsewhere(run_id=run_id, queue_name=queue_name):
            return "moved"  # it was moved while this delivery was on its way to the claim
        if Run.objects.filter(id=run_id, status="queued", cancel_requested=False).exists():
            # Still queued, so its queue is at max_concurrent or this worker has too few free GPUs: like a
            # paused queue, come back later (to this worker or another), once lower-priority runs of
            # preemptible queues in the way were asked to make room.
            runs_preempt_for(run_id=run_id, worker_name=worker_name)
            raise self.retry(countdown=FULL_QUEUE_RETRY_SECONDS, max_retries=None)
        return "not-claimed"
    return RunSupervisor(claimed, owner).execute()


@shared_task(name="trainer_app.tasks.dataset_process", ignore_result=True, acks_late=True)
def dataset_process(dataset_id: int) -> str:
    """Convert one uploaded dataset into the canonical format (progress is written to its row)."""
    from trainer_app.services.datasets import dataset_process as process

    return process(dataset_id=dataset_id).status


@shared_task(name="trainer_app.tasks.sweep_step", ignore_result=True, acks_late=True)
def sweep_step(sweep_id: int) -> str:
    """One step of a sweep's controller (routed to the `control` queue, so trials never starve it)."""
    from trainer_app.services.sweeps import sweep_step as step

    return step(sweep_id=sweep_id)


@shared_task(name="trainer_app.tasks.sweeps_tick", ignore_result=True)
def sweeps_tick() -> int:
    """Periodic (beat): a controller step for each active sweep (budgets in time, missed kicks)."""
    from trainer_app.services.sweeps import sweeps_tick as tick

    return tick()


@shared_task(name="trainer_app.tasks.runs_reconcile", ignore_result=True)
def runs_reconcile() -> dict:
    """Periodic (beat, `control` queue): runs queued in SQL whose task message the broker lost (a flushed
    or restarted Redis) are sent again, once."""
    from trainer_app.services.reconcile import runs_reconcile as reconcile

    return reconcile()


@shared_task(name="trainer_app.tasks.runs_preempt", ignore_result=True)
def runs_preempt() -> dict:
    """Periodic (beat, `control` queue): a waiting run of higher priority kept out by lower-priority runs of a
    preemptible queue has them checkpoint and go back to their queue (services/steering.py)."""
    from trainer_app.services.steering import runs_preempt as preempt

    return preempt()
