"""Metric series for charts: downsampled so that extremes survive (min/max buckets), never truncated."""
from __future__ import annotations

import numpy as np

from trainer_app.models import MetricPoint, Run


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


def metric_names(*, run: Run) -> list[str]:
    return sorted(MetricPoint.objects.filter(run=run).values_list("name", flat=True).distinct())


def metric_series(*, run: Run, names: list[str], points: int) -> dict[str, dict[str, list]]:
    series = {}
    for name in names:
        rows = np.array(MetricPoint.objects.filter(run=run, name=name).order_by("step").values_list("step", "value"),
                        dtype=np.float64).reshape(-1, 2)
        steps, values = downsample_min_max(rows[:, 0], rows[:, 1], points)
        series[name] = {"step": steps.astype(np.int64).tolist(), "value": values.tolist()}
    return series
