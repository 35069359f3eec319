"""Engine training throughput against a plain hand-written PyTorch loop, side by side in one process.

    python benchmarks/bench_engine_throughput.py                 # small CNN, 3x32x32, batch 64, 1 thread
    python benchmarks/bench_engine_throughput.py --threads 2 --rounds 8 --samples 12500

Both train the same small CNN (PyTorch's CIFAR-10 tutorial network) on the same synthetic 3x32x32
uint8 dataset in the canonical format, with the same batch size, optimizer and thread count, in one
process. The plain loop is the tutorial's, written tightly: the whole training split as one normalised
float tensor in memory, a random permutation per epoch, forward, loss, backward, step. The engine is its
own Trainer built by the runner's builders from a spec (memory-mapped dataset, its own batching and
on-the-fly normalisation, per-step loss window and points to a JSON-lines sink); each timed epoch is
``Trainer._run_epoch``, validation runs between timed epochs. Epochs alternate engine and plain loop
(and which goes first), so both see the same foreign load; besides samples per second, samples per CPU
second of the training thread is reported, which foreign load barely moves. One torch thread by
default: on a shared 2-core machine two threads spin against foreign load and figures swing tenfold.
Target (issue 4): engine ≥ 97% of the plain loop. Prints a final SUMMARY line.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer_app.engine import runner  # noqa: E402
from trainer_app.engine.config import load_run_spec  # noqa: E402
from trainer_app.engine.data import open_splits  # noqa: E402
from trainer_app.engine.dataset_format import open_split, read_meta  # noqa: E402
from trainer_app.engine.distributed import DistributedContext, StopRequest  # noqa: E402
from trainer_app.engine.metrics import EventWriter, build_sink  # noqa: E402
from trainer_app.engine.rng import seed_everything  # noqa: E402
from trainer_app.engine.testing import make_spec, make_synthetic_images  # noqa: E402


class Net(nn.Module):
    """The CIFAR-10 tutorial's network, as a person writes it by hand."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class PlainLoop:
    """The hand-written loop: the training split as one normalised float tensor, a permutation per epoch."""

    def __init__(self, dataset: Path, *, batch_size: int, lr: float):
        meta = read_meta(dataset)
        features, labels = open_split(dataset, "train")
        mean = torch.tensor(meta.normalization["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(meta.normalization["std"]).view(1, -1, 1, 1)
        self.inputs = (torch.from_numpy(np.array(features)).float() / 255 - mean) / std
        self.targets = torch.from_numpy(np.array(labels)).long()
        torch.manual_seed(0)
        self.net = Net()
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=lr, momentum=0.9)
        self.batch_size = batch_size

    def epoch(self) -> int:
        permutation = torch.randperm(len(self.inputs))
        for start in range(0, len(self.inputs), self.batch_size):
            index = permutation[start:start + self.batch_size]
            self.optimizer.zero_grad()
            loss = self.criterion(self.net(self.inputs[index]), self.targets[index])
            loss.backward()
            self.optimizer.step()
        return len(self.inputs)


class EngineLoop:
    """The engine's own Trainer, assembled by the runner's builders from a spec; one epoch per call.

    The timed part is ``Trainer._run_epoch`` (batches from the memory-mapped dataset, normalisation on
    the fly, forward/backward/step, loss window, per-step points to a JSON-lines sink); validation and the
    checkpoint of ``_end_epoch`` run between timed epochs.
    """

    def __init__(self, dataset: Path, scratch: Path, *, batch_size: int, lr: float):
        spec = load_run_spec(make_spec(run_id="bench", data=dataset, jsonl=scratch / "engine.jsonl", training={
            "optimizer": "sgd", "lr": lr, "momentum": 0.9, "batch_size": batch_size, "epochs": 10_000}))
        context = DistributedContext(device=torch.device("cpu"))
        meta = read_meta(dataset)
        seed_everything(0)
        splits = open_splits(dataset, in_memory_limit_mb=spec.data.in_memory_limit_mb)
        module = runner._build_module(spec, meta, context)
        self.events = EventWriter(build_sink(redis_url=None, stream=None, maxlen=1000, jsonl=spec.metrics.jsonl))
        self.trainer = runner._assemble_trainer(spec, context, self.events, StopRequest(), meta, splits, module,
                                                contextlib.nullcontext, None)

    def epoch(self) -> int:
        before = self.trainer.state.step
        assert self.trainer._run_epoch(self.trainer.state.epoch) is None
        return (self.trainer.state.step - before) and self.trainer._epoch_trained_samples

    def between_epochs(self) -> None:
        assert self.trainer._end_epoch() is None


def timed(function) -> tuple[int, float, float]:
    """(samples, wall seconds, this thread's CPU seconds)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    samples = function()
    return samples, time.perf_counter() - wall, time.thread_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=6_000, help="dataset size (80%% train)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8, help="timed epochs of each (after one warm-up each)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    arguments = parser.parse_args()
    logging.getLogger("trainer_app.engine").setLevel(logging.WARNING)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    scratch = Path(tempfile.mkdtemp(prefix="bench-engine-throughput-"))
    dataset = scratch / "images"
    meta = make_synthetic_images(dataset, count=arguments.samples, shape=(3, 32, 32), classes=10)
    print(f"dataset: {meta.splits['train']} training samples 3x32x32 uint8, batch {arguments.batch_size}, "
          f"{torch.get_num_threads()} torch thread(s), {arguments.epochs} timed epochs each, interleaved")
    plain = PlainLoop(dataset, batch_size=arguments.batch_size, lr=0.01)
    engine = EngineLoop(dataset, scratch, batch_size=arguments.batch_size, lr=0.01)
    plain.epoch(), engine.epoch(), engine.between_epochs()  # warm-up
    figures = {"engine": [], "plain": []}
    for number in range(arguments.epochs):
        order = (("engine", engine), ("plain", plain)) if number % 2 == 0 else (("plain", plain), ("engine", engine))
        for name, loop in order:
            figures[name].append(timed(loop.epoch))
        engine.between_epochs()
        (_, engine_wall, engine_cpu), (_, plain_wall, plain_cpu) = figures["engine"][-1], figures["plain"][-1]
        print(f"epoch {number + 1}: engine {figures['engine'][-1][0] / engine_wall:8.0f} samples/s "
              f"({figures['engine'][-1][0] / engine_cpu:8.0f} per cpu-s)   plain {figures['plain'][-1][0] / plain_wall:8.0f}"
              f" samples/s ({figures['plain'][-1][0] / plain_cpu:8.0f} per cpu-s)", flush=True)
    engine.events.close()
    summary = {}
    for name, rows in figures.items():
        summary[f"{name}_samples_per_s"] = statistics.median(samples / wall for samples, wall, _ in rows)
        summary[f"{name}_samples_per_cpu_s"] = statistics.median(samples / cpu for samples, _, cpu in rows)
    wall_ratio = summary["engine_samples_per_s"] / summary["plain_samples_per_s"]
    cpu_ratio = summary["engine_samples_per_cpu_s"] / summary["plain_samples_per_cpu_s"]
    print(json.dumps({**{key: round(value) for key, value in summary.items()}, "ratio": round(wall_ratio, 4),
                      "ratio_cpu": round(cpu_ratio, 4)}))
    print(f"SUMMARY engine={summary['engine_samples_per_s']:.0f} samples/s plain={summary['plain_samples_per_s']:.0f} "
          f"samples/s ratio={wall_ratio:.3f} ratio_per_cpu_second={cpu_ratio:.3f} target>=0.97 "
          f"{'PASS' if wall_ratio >= 0.97 else 'FAIL'}")


if __name__ == "__main__":
    main()
