"""Metric series for charts: downsampled so that extremes survive (min/max buckets), never truncated."""
from __future__ import annotations

import numpy as np
from django.db import connection

from trainer_app.models import MetricPoint, MetricRollup, Run, RunMetric

ROLLUP_ABOVE = 50_000
"""Series longer than this are drawn from their per-block extremes (MetricRollup) when those are complete."""

# one point as int8send(step) || float8send(value) packs it: big-endian
_PACKED_POINT = np.dtype([("step", ">i8"), ("value", ">f8")])


def downsample_min_max(steps: np.ndarray, values: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `points` points: the first and the last, and between them (points - 2) / 2 buckets of
    equal width in index, each keeping its minimum and its maximum, in step order. Spikes survive;
    nothing is cut off."""
    count = len(steps)
    if count <= points:
        return steps, values
    buckets = max(1, (points - 2) // 2)
    edges = np.linspace(0, count, buckets + 1).astype(np.int64)
    starts, ends = edges[:-1], edges[1:]
    keep = np.empty(buckets * 2, dtype=np.int64)
    for bucket, (start, end) in enumerate(zip(starts, ends)):
        window = values[start:end]
        low, high = start + int(np.argmin(window)), start + int(np.argmax(window))
        keep[2 * bucket], keep[2 * bucket + 1] = (low, high) if low <= high else (high, low)
    keep = np.unique(np.concatenate([keep, [0, count - 1]]))
    return steps[keep], values[keep]


def distinct_names(model, column: str, value: int) -> list[str]:
    """The distinct `name`s of `model`'s rows whose `column` equals `value`, by a loose index scan on
    (column, name, …): one index probe per name, where DISTINCT reads every row (2,000,000 points of a
    long run, or 2,000,000 summaries at 100,000 runs)."""
    table = connection.ops.quote_name(model._meta.db_table)
    first = f"SELECT name FROM {table} WHERE {connection.ops.quote_name(column)} = %s"
    with connection.cursor() as cursor:
        cursor.execute(f"WITH RECURSIVE names(name) AS ("
                       f"SELECT ({first} ORDER BY name LIMIT 1) UNION ALL "
                       f"SELECT ({first} AND name > names.name ORDER BY name LIMIT 1) FROM names "
                       f"WHERE names.name IS NOT NULL) SELECT name FROM names WHERE name IS NOT NULL",
                       [value, value])
        return sorted(name for (name,) in cursor.fetchall())


def metric_names(*, run: Run) -> list[str]:
    """The run's series names."""
    return distinct_names(MetricPoint, "run_id", run.pk)


def metric_series(*, run: Run, names: list[str], points: int) -> dict[str, dict[str, list]]:
    series = {}
    counts = dict(RunMetric.objects.filter(run=run, name__in=names).values_list("name", "count"))
    for name in names:
        drawn = None
        if counts.get(name, 0) > max(points, ROLLUP_ABOVE):
            drawn = _from_rollups(run.pk, name, points)
        if drawn is None:
            drawn = downsample_min_max(*_read_series(run.pk, name), points)
        steps, values = drawn
        series[name] = {"step": steps.astype(np.int64).tolist(), "value": values.tolist()}
    return series


def _from_rollups(run_id: int, name: str, points: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A long series downsampled from its per-block extremes: the first and the last point, and between them
    (points - 2) / 2 groups of consecutive blocks, each keeping its minimum and its maximum — the same
    min/max buckets as downsample_min_max, in equal step ranges instead of equal point counts. A million
    points read ~4,000 rows instead of a million. The persister keeps the rollups in the transaction that
    writes the points, and migration 0005 built them for the points written before; None when a series has
    none: the caller reads its points."""
    rows = np.array(MetricRollup.objects.filter(run_id=run_id, name=name).order_by("block").values_list(
        "count", "min_step", "min_value", "max_step", "max_value"), dtype=np.float64)
    if not len(rows):
        return None
    ends = MetricPoint.objects.filter(run_id=run_id, name=name)
    first = ends.order_by("step").values_list("step", "value").first()
    last = ends.order_by("-step").values_list("step", "value").first()
    groups = max(1, (points - 2) // 2)
    edges = np.linspace(0, len(rows), min(groups, len(rows)) + 1).astype(np.int64)
    chosen = []
    for start, end in zip(edges[:-1], edges[1:]):
        window = rows[start:end]
        low, high = window[int(np.argmin(window[:, 2]))], window[int(np.argmax(window[:, 4]))]
        chosen += [(low[1], low[2]), (high[3], high[4])]
    kept = dict(chosen + [first, last])  # step -> value: a point chosen twice is kept once
    steps = np.array(sorted(kept), dtype=np.float64)
    return steps, np.array([kept[step] for step in sorted(kept)], dtype=np.float64)


def _read_series(run_id: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one series in step order, straight into arrays. Through the ORM a million points
    took ~1.3 s here, as Python tuples; on PostgreSQL they now come as one binary value of packed
    (int8, float8) pairs that numpy reads in place (benchmarks/bench_downsample.py)."""
    table = connection.ops.quote_name(MetricPoint._meta.db_table)
    series = f"SELECT step, value FROM {table} WHERE run_id = %s AND name = %s ORDER BY step"
    if connection.vendor == "postgresql":
        import psycopg

        connection.ensure_connection()
        # binary results (Django's cursor reads text); never prepared: the best plan depends on the series' length
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(f"SELECT string_agg(int8send(step) || float8send(value), ''::bytea) "
                           f"FROM ({series}) AS series", [run_id, name], binary=True, prepare=False)
            packed = cursor.fetchone()[0] or b""
        rows = np.frombuffer(packed, dtype=_PACKED_POINT)
        steps, values = rows["step"].astype(np.float64), rows["value"].astype(np.float64)
        if len(steps) > 1 and not np.all(steps[1:] > steps[:-1]):  # an aggregate's input order is not promised
            order = np.argsort(steps, kind="stable")
            steps, values = steps[order], values[order]
        return steps, values
    with connection.cursor() as cursor:
        cursor.execute(series, [run_id, name])
        rows = np.fromiter(cursor.cursor, dtype=[("step", np.float64), ("value", np.float64)])
    return rows["step"], rows["value"]
