"""Per-block extremes kept by the persister, and long series drawn from them (issue 5: a million points
downsampled in <= 300 ms, benchmarks/bench_downsample.py)."""
import json
import random

import numpy as np
import pytest

from trainer_app.models import MetricPoint, MetricRollup
from trainer_app.selectors.metrics import downsample_min_max, metric_series
from trainer_app.services.metrics import _blocks, metrics_persist
from trainer_app.streams import redis_client, run_stream_key

pytestmark = pytest.mark.sqlite_ok


def _send(client, key, points):
    pipe = client.pipeline()
    for step, value in points:
        pipe.xadd(key, {"kind": "metrics", "data": json.dumps({"step": step, "values": {"train_loss": value}})})
    pipe.execute()


def _expected_rollups(run):
    points = MetricPoint.objects.filter(run=run, name="train_loss").values_list("step", "value")
    return {block: tuple(values) for (_, block), values in _blocks(("train_loss", s, v) for s, v in points).items()}


def _rollups(run):
    return {row.block: (row.count, row.min_step, row.min_value, row.max_step, row.max_value)
            for row in MetricRollup.objects.filter(run=run, name="train_loss")}


def test_rollups_follow_the_points_through_appends_and_replaced_steps(run_factory):
    run = run_factory()
    client, key = redis_client(), run_stream_key(run.pk)
    client.delete(key)
    generator = random.Random(1)
    try:
        for start in (1, 701, 1501):  # three persister passes, each ending mid-block
            _send(client, key, [(step, generator.random()) for step in range(start, start + 700 if start < 1501 else 2001)])
            metrics_persist(run_id=run.pk)
        assert _rollups(run) == _expected_rollups(run) and len(_rollups(run)) == 8  # 2,000 steps / 256
        # a resumed run sends steps again with other values (one becomes the block's new extreme, one was it)
        block_of_1000 = _rollups(run)[1000 // 256]
        _send(client, key, [(1000, -5.0), (block_of_1000[1], 0.5), (1990, 0.25)])
        metrics_persist(run_id=run.pk)
        assert _rollups(run) == _expected_rollups(run)
        assert _rollups(run)[1000 // 256][1:3] == (1000, -5.0)
    finally:
        client.delete(key)


def test_a_long_series_is_drawn_from_its_rollups_with_its_spikes_and_both_ends(run_factory, settings):
    run = run_factory()
    client, key = redis_client(), run_stream_key(run.pk)
    client.delete(key)
    steps = np.arange(1, 120_001)
    values = np.sin(steps / 5000.0)
    spikes = {7_777: 50.0, 64_000: -40.0, 119_999: 30.0}
    for step, value in spikes.items():
        values[step - 1] = value
    try:
        for start in range(0, len(steps), 40_000):
            _send(client, key, zip(steps[start:start + 40_000].tolist(), values[start:start + 40_000].tolist()))
            metrics_persist(run_id=run.pk)
        drawn = metric_series(run=run, names=["train_loss"], points=2000)["train_loss"]
        assert len(drawn["step"]) <= 2000 and drawn["step"] == sorted(drawn["step"])
        assert drawn["step"][0] == 1 and drawn["step"][-1] == 120_000
        kept = dict(zip(drawn["step"], drawn["value"]))
        assert all(kept.get(step) == value for step, value in spikes.items()), "every spike survives"
        exact_steps, exact_values = downsample_min_max(steps.astype(float), values, 2000)
        assert max(drawn["value"]) == exact_values.max() and min(drawn["value"]) == exact_values.min()
        assert MetricRollup.objects.filter(run=run).count() == 120_000 // 256 + 1
    finally:
        client.delete(key)
