"""Long series are downsampled with min/max buckets: at most N points, every spike kept, nothing cut."""
import numpy as np

from trainer_app.selectors.metrics import downsample_min_max


def test_short_series_are_returned_whole():
    steps, values = np.arange(10.0), np.random.default_rng(0).random(10)
    out_steps, out_values = downsample_min_max(steps, values, 2000)
    assert out_steps.tolist() == steps.tolist() and out_values.tolist() == values.tolist()


def test_long_series_keep_at_most_n_points_the_spikes_and_both_ends():
    rng = np.random.default_rng(1)
    steps = np.arange(1_000_000, dtype=np.float64)
    values = rng.normal(size=steps.size)
    values[123_457] = 50.0  # a spike sampling would hide
    values[876_543] = -40.0
    out_steps, out_values = downsample_min_max(steps, values, 2000)
    assert len(out_steps) <= 2000
    assert 50.0 in out_values and -40.0 in out_values
    assert out_steps[0] <= 500 and out_steps[-1] >= 999_000  # the whole range, not a truncated prefix
    assert np.all(np.diff(out_steps) > 0)  # in step order, no duplicates
