"""The persister: moves a run's events from its Redis Stream into SQL, in batches.

Points are keyed by (run, name, step) and upserted, so reading the same entries twice (a redelivered
job, a resumed run that re-sends steps after its last checkpoint) never duplicates a point.
"""
from __future__ import annotations

import math

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest

from trainer_app.models import Checkpoint, MetricPoint, Run, RunLog, RunMetric
from trainer_app.specs import relative_to_media
from trainer_app.streams import decode_entry, redis_client, run_stream_key

BATCH_ENTRIES = 2_000


def metrics_persist(*, run_id: int, client=None) -> int:
    """Persist every entry after the run's saved stream position; returns how many entries were read."""
    client = client or redis_client()
    key = run_stream_key(run_id)
    position = Run.objects.filter(id=run_id).values_list("stream_position", flat=True).first() or "0-0"
    total = 0
    while True:
        entries = client.xrange(key, min=f"({position}" if position != "0-0" else "-", count=BATCH_ENTRIES)
        if not entries:
            return total
        position = entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else entries[-1][0]
        _apply(run_id, entries, position)
        total += len(entries)
        if len(entries) < BATCH_ENTRIES:
            return total


def _apply(run_id: int, entries: list, position: str) -> None:
    points: dict[tuple[str, int], MetricPoint] = {}
    run_changes: dict = {}
    summary_updates: dict = {}
    checkpoints = []
    logs = []
    for entry_id, fields in entries:
        kind, data = decode_entry(fields)
        if kind == "metrics":
            for name, value in (data.get("values") or {}).items():
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                    continue
                step = int(data.get("step", 0))
                points[(name, step)] = MetricPoint(run_id=run_id, name=name, step=step, value=float(value),
                                                   epoch=data.get("epoch"), time=data.get("time"))
        elif kind == "progress":
            run_changes.update(step=int(data.get("step", 0)), total_steps=int(data.get("total_steps", 0)),
                               epoch=int(data.get("epoch", 0)))
        elif kind == "summary":
            summary_updates.update({key: value for key, value in (data.get("values") or {}).items()
                                    if isinstance(value, (int, float)) and math.isfinite(value)})
        elif kind == "checkpoint":
            checkpoints.append(Checkpoint(run_id=run_id, epoch=int(data.get("epoch", 0)), step=int(data.get("step", 0)),
                                          path=relative_to_media(str(data.get("path", ""))), best=bool(data.get("best"))))
        elif kind == "confusion_matrix":
            run_changes["confusion_matrix"] = data
        elif kind == "log":
            entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            logs.append(RunLog(run_id=run_id, entry=entry, time=data.get("time"), level=str(data.get("level", "info"))[:16],
                               message=str(data.get("message", ""))))
    with transaction.atomic():
        if points:
            MetricPoint.objects.bulk_create(points.values(), update_conflicts=True,
                                            unique_fields=["run", "name", "step"],
                                            update_fields=["value", "epoch", "time"], batch_size=1000)
        if checkpoints:
            Checkpoint.objects.bulk_create(checkpoints, update_conflicts=True, unique_fields=["run", "step"],
                                           update_fields=["epoch", "path", "best"])
        if logs:
            RunLog.objects.bulk_create(logs, ignore_conflicts=True)
        updates = {"stream_position": position}
        if "confusion_matrix" in run_changes:
            updates["confusion_matrix"] = run_changes.pop("confusion_matrix")
        if run_changes:
            updates.update(step=Greatest(F("step"), run_changes["step"]), total_steps=run_changes["total_steps"],
                           epoch=run_changes["epoch"])
        Run.objects.filter(id=run_id).update(**updates)
        if points:
            _update_summaries(run_id, points.values())
        if summary_updates:
            run = Run.objects.select_for_update().get(id=run_id)
            run.summary = {**run.summary, **summary_updates}
            run.save(update_fields=["summary"])


def _update_summaries(run_id: int, points) -> None:
    """Merge this batch into the run's per-metric last/min/max rows (one persister per run)."""
    batch: dict[str, dict] = {}
    for point in points:
        entry = batch.setdefault(point.name, {"last": point.value, "last_step": point.step, "min": point.value,
                                              "max": point.value, "count": 0})
        entry["count"] += 1
        entry["min"], entry["max"] = min(entry["min"], point.value), max(entry["max"], point.value)
        if point.step >= entry["last_step"]:
            entry["last"], entry["last_step"] = point.value, point.step
    run = Run.objects.only("dataset_id", "project_id").get(id=run_id)
    existing = {row.name: row for row in RunMetric.objects.filter(run_id=run_id, name__in=batch)}
    rows = []
    for name, entry in batch.items():
        old = existing.get(name)
        if old is not None:
            entry["min"], entry["max"] = min(entry["min"], old.min), max(entry["max"], old.max)
            entry["count"] += old.count
            if old.last_step > entry["last_step"]:
                entry["last"], entry["last_step"] = old.last, old.last_step
        rows.append(RunMetric(run_id=run_id, dataset_id=run.dataset_id, project_id=run.project_id, name=name, **entry))
    RunMetric.objects.bulk_create(rows, update_conflicts=True, unique_fields=["run", "name"],
                                  update_fields=["last", "last_step", "min", "max", "count"])
