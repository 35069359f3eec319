"""Issue 9: the learning-rate finder finishes within the time of one epoch of the same run.

Side by side in one process, alternating, 3 repetitions: the engine training one epoch (its validation and
test included, as a run's first epoch has them) and the engine's range test with the same dataset, model,
optimizer and batch size (the finder's spec as the product writes it: 1e-6 .. 1, at most one epoch's steps).
Both in process (trainer_app.engine.runner.run): torchrun's start-up, the same for both, is left out.

    .venv/bin/python benchmarks/bench_lr_finder.py
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer_app.engine.distributed import StopRequest  # noqa: E402
from trainer_app.engine.runner import run as engine_run  # noqa: E402
from trainer_app.engine.testing import make_sklearn_dataset, make_spec  # noqa: E402

CASES = [("digits", {"preset": "small_cnn"}, "adam", 32), ("digits", {"preset": "mlp"}, "sgd", 64),
         ("breast_cancer", {"preset": "mlp"}, "adam", 16)]


def timed(spec: dict) -> float:
    started = time.perf_counter()
    code = engine_run(spec, stop=StopRequest())
    assert code == 0, code
    return time.perf_counter() - started


def main() -> None:
    print(f"{'dataset':<14}{'model':<10}{'optimizer':<10}{'batch':>6}{'one epoch s':>13}{'finder s':>10}{'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-lrf-") as scratch:
        scratch = Path(scratch)
        ratios = []
        for dataset, model, optimizer, batch in CASES:
            data = scratch / dataset
            if not data.exists():
                make_sklearn_dataset(dataset, data)
            epochs, finders = [], []
            for repetition in range(3):
                training = {"optimizer": optimizer, "batch_size": batch, "epochs": 1, "seed": repetition}
                epochs.append(timed(make_spec(data=data, model=model, training=training)))
                finders.append(timed(make_spec(data=data, model=model, training=training,
                                               lr_finder={"start_lr": 1e-6, "end_lr": 1.0})))
            epoch, finder = statistics.median(epochs), statistics.median(finders)
            ratios.append(finder / epoch)
            print(f"{dataset:<14}{model['preset']:<10}{optimizer:<10}{batch:>6}{epoch:>13.3f}{finder:>10.3f}"
                  f"{finder / epoch:>7.2f}")
    print(f"\nSUMMARY lr_finder: finder / one epoch, median of 3: {', '.join(f'{r:.2f}' for r in ratios)} "
          f"(target <= 1.00: {'MET' if max(ratios) <= 1 else 'MISSED'})")


if __name__ == "__main__":
    main()
