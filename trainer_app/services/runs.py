"""The run lifecycle: claim, lease, finish, cancel, resume, reap.

Idempotency lives in the database: every transition is a conditional UPDATE that goes on only if it
changed exactly one row, so a redelivered Celery message, a second worker or a reaper racing the
supervisor can never run one job twice at once (DESIGN.md, run liveness).
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F, IntegerField, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThan
from django.utils import timezone

from trainer_app.models import ACTIVE_STATUSES, FINAL_STATUSES, Queue, Run, RunMetric, RunStatus, Worker
from trainer_app.models.runs import queue_order_now

logger = logging.getLogger(__name__)
MAX_DELIVERIES = 3


def run_enqueue(*, run: Run, fresh: bool = False) -> None:
    """Send the run's task to its queue once the current transaction commits. A fresh run first drops
    any stream left under its key (a database reset while Redis kept its data)."""
    from trainer_app.streams import redis_client, run_stream_key
    from trainer_app.tasks import run_execute

    queue_name, priority, run_id = run.queue.name, run.priority, run.pk
    deliveries = int((run.resources or {}).get("nnodes") or 1)  # a multi-node run: one per node (services/nodes.py)

    def send() -> None:
        if fresh:
            redis_client().delete(run_stream_key(run_id))
        for _ in range(deliveries):
            run_execute.apply_async(args=[run_id], queue=queue_name, priority=priority)

    transaction.on_commit(send)


def run_claim(*, run_id: int, owner: str, worker_name: str | None = None, queue_id: int | None = None) -> bool:
    """Take a queued run for this delivery. False when the run is cancelled, finished, or claimed
    by a delivery that is still alive (that delivery does nothing), when it is no longer in `queue_id` (the
    queue the delivery came from: an admin moved it, and its new queue got a message of its own), when its
    queue already has `max_concurrent` runs starting or running, or when this worker has fewer free GPUs than
    the run needs (the task comes back later). A claimed run gets its own CUDA_VISIBLE_DEVICES: GPUs of this worker that
    no other active run holds (none for a CPU job, which then sees no GPU)."""
    now = timezone.now()
    worker = Worker.objects.filter(name=worker_name).first() if worker_name else None
    claimable = Run.objects.filter(id=run_id, status=RunStatus.QUEUED, cancel_requested=False)
    if queue_id is not None:  # a column of the run's own row: the conditional update re-checks it under its lock
        claimable = claimable.filter(queue_id=queue_id)
    changes = {"status": RunStatus.STARTING, "lease_owner": owner, "heartbeat_at": now,
               "deliveries": F("deliveries") + 1, "worker": worker, "error": "", "started_at": now}
    row = claimable.values_list("queue_id", "queue__max_concurrent", "resources").first()
    if row is None:
        return False
    queue_id, limit, resources = row
    needed = int((resources or {}).get("gpus_per_node") or 0)
    if limit is None and not needed:
        changes["resources"] = {**(resources or {}), "cuda_visible_devices": ""}
        return claimable.update(**changes) == 1
    with transaction.atomic():
        if needed:
            devices = _place_gpus(worker, needed)
            if devices is None:
                return False
            changes["resources"] = {**resources, "cuda_visible_devices": devices}
        else:
            changes["resources"] = {**(resources or {}), "cuda_visible_devices": ""}
        if limit is not None:
            # The queue's row lock serialises claims on one capped queue (PostgreSQL); the count and the claim
            # are one statement, so SQLite's single writer cannot interleave them either.
            limit = Queue.all_objects.select_for_update().values_list("max_concurrent", flat=True).get(pk=queue_id)
            if limit is not None:
                claimable = claimable.filter(GreaterThan(Value(limit), _active_count(queue_id)))
        return claimable.update(**changes) == 1


def run_devices(resources: dict | None) -> set[str]:
    """The GPU indices a run was given (its CUDA_VISIBLE_DEVICES), as strings."""
    return {part for part in str((resources or {}).get("cuda_visible_devices") or "").split(",") if part}


def devices_held(worker_id: int) -> set[str]:
    """The GPU indices of a worker that its active runs and its multi-node slots hold."""
    from trainer_app.services.nodes import node_devices_held

    held = node_devices_held(worker_id)
    for resources in Run.objects.filter(worker_id=worker_id, status__in=ACTIVE_STATUSES).values_list(
            "resources", flat=True):
        held |= run_devices(resources)
    return held


def _place_gpus(worker, needed: int) -> str | None:
    """`needed` GPU indices of this worker that no active run holds, as CUDA_VISIBLE_DEVICES ("0,1"), or None
    when there are not enough. Call inside a transaction: the worker's row lock serialises placements on
    one worker, so two deliveries never get the same GPU."""
    if worker is None:
        return None
    worker = Worker.objects.select_for_update().filter(pk=worker.pk).first()
    indices = [gpu.get("index", position) for position, gpu in enumerate(worker.gpus or [])]
    if len(indices) < needed:
        return None
    held = devices_held(worker.pk)
    free = [index for index in indices if str(index) not in held]
    if len(free) < needed:
        return None
    return ",".join(str(index) for index in free[:needed])


def _active_count(queue_id: int):
    active = (Run.objects.filter(queue_id=queue_id, status__in=ACTIVE_STATUSES).order_by()
              .values("queue_id").annotate(count=Count("id")).values("count"))
    return Coalesce(Subquery(active, output_field=IntegerField()), Value(0))


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
    if status in (RunStatus.CANCELLED, RunStatus.FAILED):  # asked to stop and go back (preempted, requeued)?
        from trainer_app.services.steering import run_requeue_after_stop

        if run_requeue_after_stop(run_id=run_id, owner=owner):
            return True
    changes["requeue_requested"] = False
    return Run.objects.filter(id=run_id, lease_owner=owner, status__in=ACTIVE_STATUSES).update(**changes) == 1


def run_cancel(*, run: Run) -> Run:
    """A queued run is cancelled at once; a running one finishes its step, checkpoints and stops."""
    if Run.objects.filter(id=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now()) == 1:
        pass
    elif run.status in ACTIVE_STATUSES or run.status == RunStatus.LOST:
        Run.objects.filter(id=run.pk, status__in=(*ACTIVE_STATUSES, RunStatus.LOST)).update(
            cancel_requested=True, requeue_requested=False)  # a cancel wins over a pending requeue or preemption
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
            status=RunStatus.QUEUED, cancel_requested=False, error="", finished_at=None, deliveries=0,
            queue_order=queue_order_now())  # it waits behind the runs already waiting at its priority
        if changed != 1:
            raise ValidationError({"status": f"Only a cancelled, failed or lost run can be resumed; this one is "
                                             f"{run.status}."})
        run.refresh_from_db()
        run_enqueue(run=run)
    return run


def runs_reap() -> dict[str, int]:
    """Re-queue runs whose lease expired (their worker died); fail those lost too often; a run whose cancel
    was pending when its worker died ends cancelled (re-queued, it would wait forever: no delivery claims a
    run that is asked to cancel)."""
    cutoff = timezone.now() - timedelta(seconds=settings.RUN_LEASE_SECONDS)
    expired = Q(status__in=ACTIVE_STATUSES) & (Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))
    counts = {"requeued": 0, "failed": 0, "cancelled": 0}
    for run in Run.objects.filter(expired).select_related("queue"):
        if run.cancel_requested and not run.requeue_requested:
            counts["cancelled"] += Run.objects.filter(expired, id=run.pk, cancel_requested=True,
                                                      requeue_requested=False).update(
                status=RunStatus.CANCELLED, lease_owner="", finished_at=timezone.now(), cancel_requested=False,
                error="its worker was lost while it stopped; cancelled as asked")
            continue
        if run.deliveries >= MAX_DELIVERIES:
            failed = Run.objects.filter(expired, id=run.pk).update(
                status=RunStatus.FAILED, error=f"worker lost {run.deliveries} times", lease_owner="",
                finished_at=timezone.now())
            counts["failed"] += failed
            continue
        with transaction.atomic():
            if Run.objects.filter(expired, id=run.pk).update(status=RunStatus.QUEUED, lease_owner="",
                                                             **_reaped_requeue_done()) != 1:
                continue  # its supervisor renewed the lease meanwhile
            logger.warning("run %s lost its worker (delivery %s); re-queued to resume from its checkpoint",
                           run.pk, run.deliveries)
            run_enqueue(run=run)
            counts["requeued"] += 1
    return counts


def _reaped_requeue_done() -> dict:
    """A run lost while it stopped to go back to its queue (preempted, requeued) is back there: it must not stay
    cancel_requested, or no delivery would ever claim it."""
    from django.db.models import Case, When

    return {"cancel_requested": Case(When(requeue_requested=True, then=Value(False)), default=F("cancel_requested")),
            "requeue_requested": False}


def run_give_up_attempt(*, run_id: int, owner: str, reason: str, log_tail: list[str] | None = None) -> str:
    """This delivery gives its run up (its engine hung and was killed): back to the queue to resume from its
    last checkpoint, counted like a lost worker, or failed once it has had MAX_DELIVERIES. Returns the new
    status, or "" when this delivery no longer owns the run. A broker that cannot take the message leaves the
    run queued for the reconciler."""
    ours = Q(id=run_id, lease_owner=owner, status__in=ACTIVE_STATUSES)
    deliveries = Run.objects.filter(ours).values_list("deliveries", flat=True).first()
    if deliveries is None:
        return ""
    if deliveries >= MAX_DELIVERIES:
        changed = Run.objects.filter(ours).update(
            status=RunStatus.FAILED, error=f"{reason}; lost {deliveries} times, not retried", lease_owner="",
            finished_at=timezone.now(), cancel_requested=False, log_tail=log_tail or [])
        return RunStatus.FAILED if changed else ""
    if not Run.objects.filter(ours).update(
            status=RunStatus.QUEUED, lease_owner="",
            error=f"{reason}; re-queued to resume from its last checkpoint (attempt {deliveries} of {MAX_DELIVERIES})"):
        return ""
    logger.warning("run %s: %s; re-queued (delivery %s)", run_id, reason, deliveries)
    try:
        run_enqueue(run=Run.objects.select_related("queue").get(id=run_id))
    except Exception:  # noqa: BLE001 - the run is queued in SQL: the reconciler sends it once the broker is back
        logger.exception("run %s: the broker did not take its message; the reconciler will send it", run_id)
    return RunStatus.QUEUED


# --- launching ------------------------------------------------------------------------------------

def config_key(*, dataset_id: int, design_id: int, config: dict, init: dict) -> str:
    """Runs that differ only by their seed share this key (leaderboard seed groups)."""
    import hashlib
    import json

    identity = {"dataset": dataset_id, "design": design_id, "init": init or {},
                "config": {key: value for key, value in config.items() if key != "seed"}}
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _fleet_capacity() -> tuple[object | None, int, int]:
    """The largest registered worker by processes and by GPUs: (worker, cpus, gpus)."""
    workers = list(Worker.objects.all())
    if not workers:
        return None, 0, 0
    largest = max(workers, key=lambda worker: (len(worker.gpus), worker.cpu_count))
    return largest, max(w.cpu_count for w in workers), max(len(w.gpus) for w in workers)


def _resources(raw: dict) -> dict:
    resources = {"nproc_per_node": 1, "gpus_per_node": 0, "nnodes": 1, **(raw or {})}
    for key in ("nproc_per_node", "gpus_per_node", "nnodes"):
        try:
            resources[key] = int(resources[key])
        except (TypeError, ValueError):
            raise ValidationError({"resources": f"{key} must be a whole number, not {resources[key]!r}."}) from None
    if resources["nproc_per_node"] < 1:
        raise ValidationError({"resources": "nproc_per_node must be at least 1."})
    if resources["gpus_per_node"] < 0:
        raise ValidationError({"resources": "gpus_per_node cannot be negative."})
    if resources["nnodes"] < 1:
        raise ValidationError({"resources": f"nnodes must be at least 1 (got {resources['nnodes']}): 1 runs on one "
                                            "worker, 2 or more on that many workers at once."})
    if resources["gpus_per_node"] and resources["gpus_per_node"] < resources["nproc_per_node"]:
        raise ValidationError({"resources": f"{resources['nproc_per_node']} processes need one GPU each: set "
                                            f"gpus_per_node to {resources['nproc_per_node']} or fewer processes."})
    largest, cpus, gpus = _fleet_capacity()
    if largest is not None:
        if resources["gpus_per_node"] > gpus:
            raise ValidationError({"resources": f"{resources['gpus_per_node']} GPUs per node is more than any worker "
                                                f"has: the largest, {largest.name}, has {len(largest.gpus)}."})
        if resources["nproc_per_node"] > cpus:
            raise ValidationError({"resources": f"{resources['nproc_per_node']} processes per node is more than any "
                                                f"worker has CPUs for: the largest, {largest.name}, has "
                                                f"{largest.cpu_count}."})
    return resources


def _engine_spec_check(*, dataset, design, config: dict, resources: dict, init_weights: str | None,
                       model_spec: dict | None = None) -> dict:
    """Run the engine's own spec checks before anything is launched; return the normalised config."""
    import dataclasses

    from trainer_app.engine.config import SpecError, check_spec_against_dataset, load_run_spec
    from trainer_app.engine.dataset_format import read_meta
    from trainer_app.services.designs import design_validate
    from trainer_app.specs import media_path

    model_spec = model_spec or design.spec
    fit = design_validate(spec=model_spec, dataset=dataset)
    if not fit["ok"]:
        raise ValidationError({"model": f"{design} does not fit {dataset}: {fit['error']}"})
    training = {key: value for key, value in config.items() if key not in {"augmentation", "num_workers", "freeze"}}
    draft = {"run_id": "check", "data": {"path": str(media_path(dataset.storage_dir)),
                                         "augmentation": config.get("augmentation") or {}},
             "model": model_spec, "training": training}
    if init_weights:
        draft["init"] = {"weights": init_weights, "freeze": config.get("freeze", [])}
    try:
        spec = load_run_spec(draft)
        check_spec_against_dataset(spec, read_meta(media_path(dataset.storage_dir)),
                                   world_size=resources["nproc_per_node"] * resources["nnodes"])
    except SpecError as error:
        raise ValidationError({"config": str(error)}) from None
    normalised = dataclasses.asdict(spec.training)
    normalised["augmentation"] = dataclasses.asdict(spec.data.augmentation)
    return normalised


def _init_weights(*, dataset, design, project, fine_tune_from, init_weights, freeze: list[str]) -> dict:
    """Where a fine-tuned run starts from, checked against the design before anything is launched."""
    from trainer_app.specs import best_checkpoint_path, media_path
    from trainer_app.weights import WeightsProblem, check_fit

    if fine_tune_from is None and init_weights is None:
        if freeze:
            raise ValidationError({"freeze": "Freezing layers only makes sense when fine-tuning: choose weights to "
                                             "start from."})
        return {}
    if fine_tune_from is not None and init_weights is not None:
        raise ValidationError({"fine_tune_from": "Start from an earlier run or from uploaded weights, not both."})
    if fine_tune_from is not None:
        if fine_tune_from.project_id != project.pk:
            raise ValidationError({"fine_tune_from": "That run belongs to another project."})
        path = best_checkpoint_path(fine_tune_from)
        if path is None:
            raise ValidationError({"fine_tune_from": f"{fine_tune_from} has no checkpoint yet: pick a run that "
                                                     "finished at least one epoch."})
        field = "fine_tune_from"
    else:
        if init_weights.project_id != project.pk:
            raise ValidationError({"init_weights": "Those weights belong to another project."})
        path, field = media_path(init_weights.path), "init_weights"
    outputs = dataset.num_classes if dataset.task == "classification" else 1
    try:
        check_fit(model_spec=design.spec, input_shape=dataset.input_shape, outputs=outputs or 1, path=path,
                  freeze=freeze)
    except WeightsProblem as error:
        raise ValidationError({field if "freeze" not in str(error) else "freeze": str(error)}) from None
    return {"weights": str(path), "freeze": freeze}


def _queue_check_role(*, queue, role: str, project) -> None:
    """Refuse a queue the member's project role may not use, naming the ones they may."""
    from trainer_app.selectors.fleet import queues_usable
    from trainer_app.services.queues import queue_allowed_for

    if queue_allowed_for(queue=queue, role=role):
        return
    usable = ", ".join(usable.name for usable in queues_usable(role=role)) or "none (ask an admin)"
    raise ValidationError({"queue": f"Queue {queue.name!r} is for {' and '.join(queue.allowed_roles)} members only; "
                                    f"as {role} of {project.name} you may use: {usable}."})


def _queue_check_resources(*, queue, resources: dict) -> None:
    """A job that needs GPUs goes to a gpu-class queue: a CPU worker would never run it."""
    from trainer_app.models import Queue

    if resources.get("gpus_per_node") and getattr(queue, "resource_class", "gpu") == "cpu":
        gpu_queues = ", ".join(Queue.objects.filter(resource_class="gpu").values_list("name", flat=True)) or \
            "none yet (ask an admin to create one)"
        raise ValidationError({"queue": f"{resources['gpus_per_node']} GPU(s) per node need a GPU queue, and "
                                        f"{queue.name!r} is a CPU queue: choose one of {gpu_queues}, or set "
                                        "gpus_per_node to 0."})


def _nodes_check_fleet(*, queue, resources: dict) -> None:
    """A multi-node run needs that many distinct online workers on its queue, each able to fit one node (its
    processes and GPUs); refuse one the fleet could never place, naming the workers it has."""
    from trainer_app.selectors.fleet import workers_online

    nnodes = resources["nnodes"]
    if nnodes < 2:
        return
    online = [worker for worker in workers_online() if queue.name in (worker.queues or [])]
    fitting = [worker for worker in online if worker.cpu_count >= resources["nproc_per_node"]
               and len(worker.gpus or []) >= resources["gpus_per_node"]]
    if len(fitting) >= nnodes:
        return
    need = f"{resources['nproc_per_node']} process(es)" + (f" and {resources['gpus_per_node']} GPU(s)"
                                                           if resources["gpus_per_node"] else "")
    fleet = ", ".join(f"{worker.name} ({worker.cpu_count} CPUs, {len(worker.gpus or [])} GPUs)" for worker in online)
    raise ValidationError({"resources": f"{nnodes} nodes need {nnodes} online workers on queue {queue.name!r} that "
                                        f"each fit {need}; the fleet has {len(fitting)}: "
                                        f"{fleet or 'no online worker consumes this queue'}. Lower nnodes (and raise "
                                        f"nproc_per_node) or start more workers."})


def run_create(*, project, dataset, design, config: dict, resources: dict, queue_name: str, created_by,
               name: str = "", fine_tune_from=None, init_weights=None, freeze: list[str] | None = None,
               kind: str = "run", model_spec: dict | None = None, sweep=None, trial_number: int | None = None) -> Run:
    """Validate everything a run needs, refuse with the fix if anything does not fit, then queue it.
    Nothing is launched for a run that would fail at once."""
    from trainer_app.models import DatasetStatus, Queue
    from trainer_app.selectors import user_project_role
    from trainer_app.services.datasets import dataset_lock

    role = user_project_role(created_by, project)
    if role is None:
        raise PermissionDenied("You are not a member of this project.")
    if dataset.project_id != project.pk or design.project_id != project.pk:
        raise ValidationError({"project": "The dataset and the model design must belong to the run's project."})
    if dataset.status != DatasetStatus.READY:
        raise ValidationError({"dataset": f"{dataset} is {dataset.status}: wait until it is ready, or fix it."})
    queue = Queue.objects.filter(name=queue_name).first()
    if queue is None:
        names = ", ".join(Queue.objects.values_list("name", flat=True)) or "none yet"
        raise ValidationError({"queue": f"No queue named {queue_name!r}: choose one of {names}."})
    _queue_check_role(queue=queue, role=role, project=project)
    resources = _resources(resources)
    _queue_check_resources(queue=queue, resources=resources)
    _nodes_check_fleet(queue=queue, resources=resources)
    init = _init_weights(dataset=dataset, design=design, project=project, fine_tune_from=fine_tune_from,
                         init_weights=init_weights, freeze=list(freeze or []))
    normalised = _engine_spec_check(dataset=dataset, design=design, config={**config, "freeze": init.get("freeze")},
                                    resources=resources, init_weights=init.get("weights"), model_spec=model_spec)
    with transaction.atomic():
        run = Run.objects.create(project=project, dataset=dataset, design=design, name=name[:200], kind=kind,
                                 config=normalised, resources=resources, queue=queue, priority=queue.priority,
                                 fine_tuned_from=fine_tune_from, init_weights=init_weights, init=init,
                                 created_by=created_by, model_spec=model_spec or {}, sweep=sweep,
                                 trial_number=trial_number,
                                 config_key=config_key(dataset_id=dataset.pk, design_id=design.pk, config=normalised,
                                                       init={**init, **({"model": model_spec} if model_spec else {})}))
        dataset_lock(dataset=dataset)
        run_enqueue(run=run, fresh=True)
    return run


# --- organising runs --------------------------------------------------------------------------------

BULK_ACTIONS = ("tag", "untag", "archive", "unarchive", "star", "unstar", "cancel")


def _clean_tag(tag: str) -> str:
    tag = (tag or "").strip()
    if not tag or len(tag) > 64 or any(ord(character) < 32 for character in tag):
        raise ValidationError({"tag": "A tag is 1 to 64 printable characters, e.g. 'baseline'."})
    return tag


def run_update(*, run: Run, name: str | None = None, notes: str | None = None, starred: bool | None = None,
               archived: bool | None = None, tags: list[str] | None = None) -> Run:
    """Change what people write about a run; its training record never changes."""
    from trainer_app.models import RunTag

    with transaction.atomic():
        for field, value in (("name", name), ("notes", notes), ("starred", starred), ("archived", archived)):
            if value is not None:
                setattr(run, field, value[:200] if field == "name" else value)
        run.save(update_fields=["name", "notes", "starred", "archived"])
        if archived is not None:  # the leaderboards read the flag from the summaries
            RunMetric.objects.filter(run=run).update(archived=run.archived)
        if tags is not None:
            wanted = {_clean_tag(tag) for tag in tags}
            RunTag.objects.filter(run=run).exclude(name__in=wanted).delete()
            RunTag.objects.bulk_create([RunTag(run=run, name=tag) for tag in sorted(wanted)], ignore_conflicts=True)
    return run


def runs_bulk(*, runs, action: str, tag: str | None = None) -> dict:
    """Apply one action to many runs (already scoped to what the user may see). Returns how many changed
    and, for cancel, which runs could not be cancelled and why."""
    from trainer_app.models import RunTag

    if action not in BULK_ACTIONS:
        raise ValidationError({"action": f"Unknown action {action!r}: use one of {', '.join(BULK_ACTIONS)}."})
    runs = list(runs)
    refused = {}
    if action in ("tag", "untag"):
        tag = _clean_tag(tag)
        if action == "tag":
            RunTag.objects.bulk_create([RunTag(run=run, name=tag) for run in runs], ignore_conflicts=True)
        else:
            RunTag.objects.filter(run__in=runs, name=tag).delete()
    elif action in ("archive", "unarchive", "star", "unstar"):
        field = "archived" if action.endswith("archive") else "starred"
        with transaction.atomic():
            Run.objects.filter(pk__in=[run.pk for run in runs]).update(**{field: not action.startswith("un")})
            if field == "archived":  # the leaderboards read the flag from the summaries
                RunMetric.objects.filter(run__in=[run.pk for run in runs]).update(archived=not action.startswith("un"))
    else:
        for run in runs:
            try:
                run_cancel(run=run)
            except ValidationError as error:
                refused[run.pk] = error.message_dict["status"][0]
    return {"updated": len(runs) - len(refused), "refused": refused}
