"""Reads about the fleet."""
from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.utils import timezone

from trainer_app.models import ACTIVE_STATUSES, FINAL_STATUSES, Queue, Run, RunStatus, Worker, WorkerStatus
from trainer_app.models.runs import QUEUE_ORDER


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
    for row in _member_node_runs([worker.pk for worker in live]):  # node 1, 2… of multi-node runs
        held[row["worker_id"]] = held.get(row["worker_id"], 0) + int(row["resources"].get("gpus_per_node") or 0)
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


def recent_run_seconds(queue: Queue) -> tuple[int, float | None]:
    """(how many, their average duration in seconds) of the queue's last RECENT_FINISHED finished runs."""
    spans = list(Run.objects.filter(queue_id=queue.pk, status__in=FINAL_STATUSES, started_at__isnull=False,
                                    finished_at__isnull=False).order_by("-finished_at")
                 .values_list("started_at", "finished_at")[:RECENT_FINISHED])
    if not spans:
        return 0, None
    return len(spans), sum((end - start).total_seconds() for start, end in spans) / len(spans)


def run_queue_place(*, run: Run) -> dict | None:
    """For a queued run: its position in its queue (runs ahead of it by priority, then age or where an admin
    moved it: services/steering.py) and an estimated start, the queue's average recent run duration × (runs
    ahead + runs it runs now) / its slots; None as the estimate, with the reason, when there is no history, no
    worker or the queue is paused."""
    if run.status != RunStatus.QUEUED:
        return None
    queue = run.queue
    same_queue = Run.objects.filter(queue_id=queue.pk)
    earlier = (Q(priority__lt=run.priority) | Q(priority=run.priority, queue_order__lt=run.queue_order)
               | Q(priority=run.priority, queue_order=run.queue_order, id__lt=run.pk))
    ahead = same_queue.filter(earlier, status=RunStatus.QUEUED, cancel_requested=False).count()
    place = {"position": ahead + 1, "ahead": ahead, "estimated_start": None, "wait_seconds": None, "estimate": ""}
    finished, average = recent_run_seconds(queue)
    slots = queue_slots(queue)
    if queue.paused:
        place["estimate"] = "unknown: the queue is paused"
    elif not finished:
        place["estimate"] = "unknown: no run has finished on this queue yet"
    elif not slots:
        place["estimate"] = "unknown: no online worker consumes this queue"
    else:
        active = same_queue.filter(status__in=ACTIVE_STATUSES).count()
        wait = average * (ahead + active) / slots
        place["estimated_start"], place["wait_seconds"] = timezone.now() + timedelta(seconds=wait), wait
        place["estimate"] = (f"from the last {finished} run(s) on this queue ({average:.0f} s each on average) "
                             f"and {slots} worker slot(s)")
    return place


WAITING_SHOWN = 10  # the fleet page lists this many waiting runs per queue, in the order they start


def queue_waiting(*, queue: Queue) -> QuerySet[Run]:
    """The queue's waiting runs in the order they start: priority, then age or where an admin moved them."""
    return (Run.objects.filter(queue_id=queue.pk, status=RunStatus.QUEUED, cancel_requested=False)
            .select_related("project").order_by(*QUEUE_ORDER))


# --- the fleet page ---------------------------------------------------------------------------------------

SPARK_WIDTH, SPARK_HEIGHT, SPARK_POINTS = 120, 24, 24


def _sparklines(samples, gpu_count: int, totals: list[float]) -> list[tuple[str, str]]:
    """(utilisation points, memory points) per GPU from a (samples × (1 + 2·GPUs)) array, oldest first,
    averaged into at most SPARK_POINTS buckets and scaled into the SVG box; "" with fewer than two samples."""
    import numpy as np

    if samples is None or len(samples) < 2 or not gpu_count:
        return [("", "")] * gpu_count
    values = samples[:, 1:1 + 2 * gpu_count]
    buckets = min(SPARK_POINTS, len(samples))
    starts = np.linspace(0, len(samples), buckets + 1).astype(int)[:-1]
    present = ~np.isnan(values)
    counts = np.add.reduceat(present, starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty bucket is a gap (NaN)
        means = np.add.reduceat(np.where(present, values, 0.0), starts, axis=0) / counts
    xs = [f"{x:.0f}" for x in np.linspace(0, SPARK_WIDTH, buckets)]
    tops = np.array([[100.0, float(total or 0)] for total in totals]).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ys = np.round(SPARK_HEIGHT - np.clip(means, 0, tops) / tops * SPARK_HEIGHT, 1)
    lines = []
    for gpu in range(gpu_count):
        pair = []
        for column in (2 * gpu, 2 * gpu + 1):
            series = ys[:, column]
            keep = np.flatnonzero(np.isfinite(series))
            pair.append(" ".join(f"{xs[i]},{series[i]}" for i in keep) if len(keep) >= 2 else "")
        lines.append(tuple(pair))
    return lines


def _samples(workers: list[Worker]) -> dict[int, object]:
    """Each worker's recent samples as a (samples × (1 + 2·GPUs)) float64 array, oldest first: one string and
    one counter per worker, read in one Redis round trip for the whole fleet."""
    from trainer_app.services.fleet import ring_rows, worker_samples_key
    from trainer_app.streams import redis_client

    try:
        pipe = redis_client().pipeline()
        for worker in workers:
            key = worker_samples_key(worker.pk, len(worker.gpus or []))
            pipe.get(key)
            pipe.get(f"{key}:count")
        raw = pipe.execute()
    except Exception:  # noqa: BLE001 - no sparklines beats no page
        return {}
    arrays = {}
    for worker, ring, count in zip(workers, raw[0::2], raw[1::2]):
        rows = ring_rows(ring, count, 1 + 2 * len(worker.gpus or []))
        if rows is not None:
            arrays[worker.pk] = rows
    return arrays


def _member_node_runs(worker_ids: list[int]) -> list[dict]:
    """The active multi-node runs whose node 1, 2… these workers hold (node 0's worker is the run's own), shaped
    like fleet_overview's active runs, with that node's GPUs."""
    from trainer_app.models import RunNode, RunNodeState

    rows = (RunNode.objects.filter(worker_id__in=worker_ids, node_rank__gt=0, state=RunNodeState.RUNNING,
                                   run__status__in=ACTIVE_STATUSES)
            .values("worker_id", "node_rank", "cuda_visible_devices", "run_id", "run__name", "run__status",
                    "run__resources", "run__step", "run__total_steps"))
    return [{"id": row["run_id"], "name": f"{row['run__name'] or 'run %s' % row['run_id']} (node {row['node_rank']})",
             "worker_id": row["worker_id"], "status": row["run__status"], "step": row["run__step"],
             "total_steps": row["run__total_steps"],
             "resources": {**(row["run__resources"] or {}), "cuda_visible_devices": row["cuda_visible_devices"]}}
            for row in rows]


def fleet_overview() -> dict:
    """The fleet page: each worker with its GPUs (now, recent utilisation and memory, the run on each), the
    CPU runs it runs, its recent job history; each queue's depth and estimated wait."""
    from collections import defaultdict

    workers = list(Worker.objects.order_by("status", "name"))
    ids = [worker.pk for worker in workers]
    active = list(Run.objects.filter(worker_id__in=ids, status__in=ACTIVE_STATUSES)
                  .values("id", "name", "worker_id", "status", "resources", "step", "total_steps"))
    active += _member_node_runs(ids)
    by_worker = defaultdict(list)
    for run in active:
        run["label"] = run["name"] or f"run {run['id']}"
        run["percent"] = round(100 * run["step"] / run["total_steps"]) if run["total_steps"] else 0
        by_worker[run["worker_id"]].append(run)
    history = defaultdict(list)
    recent = (Run.objects.filter(worker_id__in=ids, status__in=FINAL_STATUSES).order_by("-finished_at")
              .values("id", "name", "worker_id", "status", "started_at", "finished_at")[:len(ids) * 5 + 50])
    for run in recent:
        if len(history[run["worker_id"]]) < 5:
            run["label"] = run["name"] or f"run {run['id']}"
            run["seconds"] = (run["finished_at"] - run["started_at"]).total_seconds() \
                if run["started_at"] and run["finished_at"] else None
            history[run["worker_id"]].append(run)
    samples = _samples(workers)
    rows = []
    for worker in workers:
        runs = by_worker.get(worker.pk, [])
        holders = {}
        for run in runs:
            for index in str((run["resources"] or {}).get("cuda_visible_devices") or "").split(","):
                if index:
                    holders[index] = run
        series = samples.get(worker.pk)
        gpus = []
        lines = _sparklines(series, len(worker.gpus or []),
                            [gpu.get("memory_total_mb") or 0 for gpu in worker.gpus or []])
        for position, gpu in enumerate(worker.gpus or []):
            index = gpu.get("index", position)
            total = gpu.get("memory_total_mb") or 0
            gpus.append({**gpu, "index": index, "run": holders.get(str(index)),
                         "util_points": lines[position][0], "mem_points": lines[position][1],
                         "memory_percent": round(100 * (gpu.get("memory_used_mb") or 0) / total) if total else None})
        rows.append({"worker": worker, "gpus": gpus, "cpu_runs": [run for run in runs if not
                                                                  (run["resources"] or {}).get("gpus_per_node")],
                     "runs": runs, "history": history.get(worker.pk, []),
                     "samples": 0 if series is None else len(series)})
    queues = []
    for queue in queue_list():
        queued = Run.objects.filter(queue_id=queue.pk, status=RunStatus.QUEUED).count()
        running = Run.objects.filter(queue_id=queue.pk, status__in=ACTIVE_STATUSES).count()
        slots = queue_slots(queue)
        finished, average = recent_run_seconds(queue)
        wait = None
        if finished and slots and not queue.paused:
            wait = average * (queued + running) / slots
        queues.append({"queue": queue, "queued": queued, "running": running, "slots": slots, "wait_seconds": wait,
                       "waiting": list(queue_waiting(queue=queue)[:WAITING_SHOWN]) if queued else []})
    return {"rows": rows, "queues": queues, "online": sum(1 for worker in workers if worker.status == "online"),
            "gpus": sum(len(worker.gpus or []) for worker in workers),
            "busy_gpus": sum(1 for row in rows for gpu in row["gpus"] if gpu["run"])}


# --- one worker's page -------------------------------------------------------------------------------------

HISTORY_POINTS = 720  # per series on the chart: 12 h of minutes as they are, longer spans in buckets


def worker_gpu_history(*, worker: Worker, hours: int) -> dict:
    """Per GPU of the worker, its utilisation (mean and max) and memory used (max) over the last ``hours``,
    one point per minute, or per bucket of minutes (mean of the means, max of the maxima) when the span holds
    more than HISTORY_POINTS minutes. Gaps (the worker was off) stay gaps: no point is invented."""
    from collections import defaultdict

    from trainer_app.models import WorkerGpuMinute

    since = timezone.now() - timedelta(hours=hours)
    bucket = max(1, -(-hours * 60 // HISTORY_POINTS))  # minutes per point
    rows = (WorkerGpuMinute.objects.filter(worker=worker, minute__gte=since).order_by("gpu_index", "minute")
            .values_list("gpu_index", "minute", "utilization_mean", "utilization_max", "memory_used_mb_max"))
    grouped: dict[int, dict] = defaultdict(dict)
    for gpu, minute, mean, high, memory in rows.iterator(chunk_size=5_000):
        epoch_minute = int(minute.timestamp() // 60)
        key = epoch_minute - epoch_minute % bucket
        entry = grouped[gpu].setdefault(key, [[], [], []])
        for values, value in zip(entry, (mean, high, memory)):
            if value is not None:
                values.append(value)
    gpus = []
    names = {gpu.get("index"): gpu.get("name", "") for gpu in worker.gpus or []}
    totals = {gpu.get("index"): gpu.get("memory_total_mb") for gpu in worker.gpus or []}
    for gpu in sorted(grouped):
        keys = sorted(grouped[gpu])
        series = {"time": [], "utilization_mean": [], "utilization_max": [], "memory_used_mb_max": []}
        for key in keys:
            means, highs, memories = grouped[gpu][key]
            series["time"].append(datetime.fromtimestamp(key * 60, tz=dt_timezone.utc).isoformat())
            series["utilization_mean"].append(round(sum(means) / len(means), 2) if means else None)
            series["utilization_max"].append(max(highs) if highs else None)
            series["memory_used_mb_max"].append(max(memories) if memories else None)
        gpus.append({"index": gpu, "name": names.get(gpu, ""), "memory_total_mb": totals.get(gpu), **series})
    return {"worker": worker.pk, "hours": hours, "minutes_per_point": bucket, "gpus": gpus}


def worker_jobs(*, worker: Worker, limit: int = 50) -> list[dict]:
    """The worker's jobs, newest first: what ran here, for how long, on which GPUs, and how it ended."""
    jobs = []
    for run in (Run.objects.filter(worker=worker).order_by("-started_at", "-id")
                .values("id", "name", "status", "kind", "started_at", "finished_at", "resources", "error")[:limit]):
        run["label"] = run["name"] or f"run {run['id']}"
        run["gpus"] = (run["resources"] or {}).get("cuda_visible_devices", "")
        run["seconds"] = ((run["finished_at"] - run["started_at"]).total_seconds()
                          if run["started_at"] and run["finished_at"] else None)
        jobs.append(run)
    return jobs
