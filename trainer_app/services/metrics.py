"""The persister: moves a run's events from its Redis Stream into SQL, in batches.

Points are keyed by (run, name, step) and upserted, so reading the same entries twice (a redelivered
job, a resumed run that re-sends steps after its last checkpoint) never duplicates a point.
"""
from __future__ import annotations

import math

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest

from trainer_app.models import Checkpoint, MetricPoint, MetricRollup, Run, RunLog, RunMetric
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


BACKFILLED_KINDS = ("metrics", "checkpoint", "progress", "summary", "confusion_matrix")


def metrics_backfill(*, run_id: int, path) -> int:
    """Persist what rank 0's JSON-lines file (the spec's metrics.jsonl) holds and SQL lacks: the points and
    checkpoints a Redis that restarted without them lost from the stream before they were persisted. Only
    missing (name, step) points and checkpoint steps are added, so nothing is counted twice; progress, summary
    and confusion matrix are replayed (idempotent). Log lines are not: they have no stable id outside the
    stream (engine.log keeps them). Returns the number of points added."""
    import json
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return 0
    have_points = set(MetricPoint.objects.filter(run_id=run_id).values_list("name", "step"))
    have_checkpoints = set(Checkpoint.objects.filter(run_id=run_id).values_list("step", flat=True))
    entries, added = [], set()
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines):
            try:
                event = json.loads(line)
                kind, data = event["kind"], event["data"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a killed engine
            if kind not in BACKFILLED_KINDS or not isinstance(data, dict):
                continue
            step = data.get("step", 0)
            if kind == "metrics":
                missing = {name: value for name, value in (data.get("values") or {}).items()
                           if (name, step) not in have_points}
                if not missing:
                    continue
                added.update((name, step) for name in missing)  # a later line (a resumed attempt) wins
                data = {**data, "values": missing}
            elif kind == "checkpoint":
                if step in have_checkpoints:
                    continue
                have_checkpoints.add(step)
            entries.append((f"jsonl-{number}", {"kind": kind, "data": json.dumps(data)}))
    position = Run.objects.filter(id=run_id).values_list("stream_position", flat=True).first() or "0-0"
    for start in range(0, len(entries), BATCH_ENTRIES):
        _apply(run_id, entries[start:start + BATCH_ENTRIES], position)
    return len(added)


def _apply(run_id: int, entries: list, position: str) -> None:
    points: dict[tuple[str, int], tuple[float, float | None, float | None]] = {}
    run_changes: dict = {}
    summary_updates: dict = {}
    checkpoints = []
    logs = []
    for entry_id, fields in entries:
        kind, data = decode_entry(fields)
        if kind == "metrics":
            step, epoch, time = int(data.get("step", 0)), _number(data.get("epoch")), _number(data.get("time"))
            for name, value in (data.get("values") or {}).items():
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                    continue
                points[(name, step)] = (float(value), epoch, time)
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
            summaries = {row.name: row for row in RunMetric.objects.filter(run_id=run_id,
                                                                          name__in={name for name, _ in points})}
            only_new = _only_new_steps(points, summaries)
            _upsert_points(run_id, points, only_new=only_new)
            _update_rollups(run_id, points, only_new=only_new)
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
            _update_summaries(run_id, points, summaries)
        if summary_updates:
            run = Run.objects.select_for_update().get(id=run_id)
            run.summary = {**run.summary, **summary_updates}
            run.save(update_fields=["summary"])


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _only_new_steps(points: dict, summaries: dict) -> bool:
    """Whether every point is past the last step already persisted for its metric (the usual case: a run
    streaming forward). RunMetric.last_step is that step: it is written in the same transaction as the points."""
    return all(step > summaries[name].last_step for name, step in points if name in summaries)


def _upsert_points(run_id: int, points: dict, *, only_new: bool) -> None:
    """Insert or replace the batch's points, keyed by (run, name, step).

    On PostgreSQL the rows go through COPY (binary) into a temporary table and one INSERT … SELECT, where
    bulk_create spent most of its time building model instances and quoting parameters: the persister went
    from ~24,000 to ~85,000 points/s (benchmarks/bench_metrics_ingest.py). A batch of new steps is inserted
    without ON CONFLICT, whose speculative insertion made the INSERT ~1.6x slower; should a row exist anyway
    (written by something other than this persister) the savepoint rolls back and the upsert runs.
    Elsewhere: one executemany upsert."""
    table = connection.ops.quote_name(MetricPoint._meta.db_table)
    upsert = ("ON CONFLICT (run_id, name, step) DO UPDATE SET value = excluded.value, epoch = excluded.epoch, "
              "time = excluded.time")
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.executemany(f"INSERT INTO {table} (run_id, name, step, value, epoch, time) "
                               f"VALUES (%s, %s, %s, %s, %s, %s) {upsert}",
                               [(run_id, name, step, *rest) for (name, step), rest in points.items()])
            return
        # the batch table lives until the end of the transaction; a second batch in the same one reuses it
        cursor.execute("CREATE TEMPORARY TABLE IF NOT EXISTS trainyard_point_batch (name varchar(64), step bigint, "
                       "value double precision, epoch double precision, time double precision) ON COMMIT DROP")
        cursor.execute("TRUNCATE trainyard_point_batch")
        columns = "name, step, value, epoch, time"
        with cursor.copy(f"COPY trainyard_point_batch ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["varchar", "int8", "float8", "float8", "float8"])
            write_row = copy.write_row
            for (name, step), (value, epoch, time) in points.items():
                write_row((name, step, value, epoch, time))
        insert = (f"INSERT INTO {table} (run_id, name, step, value, epoch, time) "
                  f"SELECT %s, name, step, value, epoch, time FROM trainyard_point_batch")
        if only_new:
            try:
                with transaction.atomic():
                    cursor.execute(insert, [run_id])
                return
            except IntegrityError:
                pass
        cursor.execute(f"{insert} {upsert}", [run_id])


def _blocks(points) -> dict[tuple[str, int], list]:
    """(name, block) -> [count, min_step, min_value, max_step, max_value] over (name, step, value) triples."""
    size = MetricRollup.ROLLUP_STEPS
    blocks: dict[tuple[str, int], list] = {}
    for name, step, value in points:
        key = (name, step // size)
        block = blocks.get(key)
        if block is None:
            blocks[key] = [1, step, value, step, value]
            continue
        block[0] += 1
        if value < block[2] or (value == block[2] and step < block[1]):
            block[1], block[2] = step, value
        if value > block[4] or (value == block[4] and step < block[3]):
            block[3], block[4] = step, value
    return blocks


def _update_rollups(run_id: int, points: dict, *, only_new: bool) -> None:
    """Keep each series' per-block extremes (MetricRollup) in step with its points, in the same transaction.
    New steps merge into their blocks; a batch that replaced steps recomputes the blocks it touched."""
    table = connection.ops.quote_name(MetricRollup._meta.db_table)
    columns = "run_id, name, block, count, min_step, min_value, max_step, max_value"
    if only_new:
        blocks = _blocks((name, step, value) for (name, step), (value, _epoch, _time) in points.items())
        conflict = (f"ON CONFLICT (run_id, name, block) DO UPDATE SET count = {table}.count + excluded.count, "
                    f"min_step = CASE WHEN excluded.min_value < {table}.min_value THEN excluded.min_step "
                    f"ELSE {table}.min_step END, "
                    f"min_value = CASE WHEN excluded.min_value < {table}.min_value THEN excluded.min_value "
                    f"ELSE {table}.min_value END, "
                    f"max_step = CASE WHEN excluded.max_value > {table}.max_value THEN excluded.max_step "
                    f"ELSE {table}.max_step END, "
                    f"max_value = CASE WHEN excluded.max_value > {table}.max_value THEN excluded.max_value "
                    f"ELSE {table}.max_value END")
    else:
        size = MetricRollup.ROLLUP_STEPS
        touched: dict[str, set[int]] = {}
        for name, step in points:
            touched.setdefault(name, set()).add(step // size)
        point_table = connection.ops.quote_name(MetricPoint._meta.db_table)
        blocks = {}
        with connection.cursor() as cursor:
            for name, numbers in touched.items():
                cursor.execute(f"SELECT step, value FROM {point_table} WHERE run_id = %s AND name = %s "
                               f"AND step >= %s AND step < %s",
                               [run_id, name, min(numbers) * size, (max(numbers) + 1) * size])
                blocks.update(_blocks((name, step, value) for step, value in cursor.fetchall()))
        conflict = ("ON CONFLICT (run_id, name, block) DO UPDATE SET count = excluded.count, "
                    "min_step = excluded.min_step, min_value = excluded.min_value, max_step = excluded.max_step, "
                    "max_value = excluded.max_value")
    if not blocks:
        return
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) {conflict}",
                           [(run_id, name, block, *values) for (name, block), values in blocks.items()])


def metric_rollups_rebuild(*, run_id: int, name: str, point_model=MetricPoint, rollup_model=MetricRollup) -> int:
    """Rebuild one series' rollups from its points (migration 0005 for points written before rollups
    existed). Returns the number of blocks."""
    points = point_model.objects.filter(run_id=run_id, name=name).order_by("step").values_list("step", "value")
    blocks = _blocks((name, step, value) for step, value in points.iterator(chunk_size=50_000))
    rollup_model.objects.filter(run_id=run_id, name=name).delete()
    rollup_model.objects.bulk_create(
        [rollup_model(run_id=run_id, name=name, block=block, count=count, min_step=min_step, min_value=min_value,
                      max_step=max_step, max_value=max_value)
         for (_name, block), (count, min_step, min_value, max_step, max_value) in blocks.items()], batch_size=5_000)
    return len(blocks)


def _update_summaries(run_id: int, points: dict, existing: dict) -> None:
    """Merge this batch into the run's per-metric last/min/max rows (one persister per run)."""
    batch: dict[str, dict] = {}
    for (name, step), (value, _epoch, _time) in points.items():
        entry = batch.get(name)
        if entry is None:
            batch[name] = {"last": value, "last_step": step, "min": value, "max": value, "count": 1}
            continue
        entry["count"] += 1
        entry["min"], entry["max"] = min(entry["min"], value), max(entry["max"], value)
        if step >= entry["last_step"]:
            entry["last"], entry["last_step"] = value, step
    run = Run.objects.only("dataset_id", "project_id", "config_key", "archived").get(id=run_id)
    rows = []
    for name, entry in batch.items():
        old = existing.get(name)
        if old is not None:
            entry["min"], entry["max"] = min(entry["min"], old.min), max(entry["max"], old.max)
            entry["count"] += old.count
            if old.last_step > entry["last_step"]:
                entry["last"], entry["last_step"] = old.last, old.last_step
        rows.append(RunMetric(run_id=run_id, dataset_id=run.dataset_id, project_id=run.project_id,
                              config_key=run.config_key, archived=run.archived, name=name, **entry))
    RunMetric.objects.bulk_create(rows, update_conflicts=True, unique_fields=["run", "name"],
                                  update_fields=["last", "last_step", "min", "max", "count"])
