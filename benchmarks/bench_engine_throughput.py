"""Engine training throughput against a plain hand-written PyTorch loop, side by side in one process.

    python benchmarks/bench_engine_throughput.py                 # small CNN, 3x32x32, batch 64, 1 thread
    python benchmarks/bench_engine_throughput.py --threads 2 --rounds 8 --samples 12500

Both train the same small CNN (PyTorch's CIFAR-10 tutorial network) on the same synthetic 3x32x32
uint8 dataset in the canonical format, with the same batch size, optimizer and thread count. The plain
loop is the tutorial's: the whole training split as one normalised float tensor in memory, a random
permutation per epoch, forward, loss, backward, step. The engine runs in-process through
``trainer_app.engine.runner.run`` (spec, memory-mapped dataset, its own batching and normalisation,
per-step metrics, a JSON-lines sink) and reports samples/s per epoch (training time only, validation
excluded). Rounds alternate engine and plain loop so both see the same foreign load; the first epoch of
each run is a warm-up and is not counted. One torch thread by default: on a shared 2-core machine two
threads spin against foreign load and the figures swing tenfold. Target (issue 4): engine ≥ 97% of
the plain loop.
Prints a final SUMMARY line.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer_app.engine.dataset_format import open_split, read_meta  # noqa: E402
from trainer_app.engine.distributed import StopRequest  # noqa: E402
from trainer_app.engine.runner import run  # noqa: E402
from trainer_app.engine.testing import make_spec, make_synthetic_images, read_events  # noqa: E402


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


def plain_loop(dataset: Path, *, epochs: int, batch_size: int, lr: float) -> list[float]:
    """Samples/s of each epoch of the hand-written loop."""
    meta = read_meta(dataset)
    features, labels = open_split(dataset, "train")
    mean = torch.tensor(meta.normalization["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta.normalization["std"]).view(1, -1, 1, 1)
    inputs = (torch.from_numpy(np.array(features)).float() / 255 - mean) / std
    targets = torch.from_numpy(np.array(labels)).long()
    torch.manual_seed(0)
    net = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    rates = []
    for _ in range(epochs):
        started = time.perf_counter()
        permutation = torch.randperm(len(inputs))
        for start in range(0, len(inputs), batch_size):
            index = permutation[start:start + batch_size]
            optimizer.zero_grad()
            loss = criterion(net(inputs[index]), targets[index])
            loss.backward()
            optimizer.step()
        rates.append(len(inputs) / (time.perf_counter() - started))
    return rates


def engine(dataset: Path, scratch: Path, *, epochs: int, batch_size: int, lr: float, round_number: int) -> list[float]:
    """Samples/s of each epoch as the engine reports them (the epoch points' samples_per_s)."""
    events_path = scratch / f"engine-{round_number}.jsonl"
    spec = make_spec(run_id=f"bench-{round_number}", data=dataset, jsonl=events_path,
                     training={"optimizer": "sgd", "lr": lr, "momentum": 0.9, "batch_size": batch_size,
                               "epochs": epochs})
    assert run(spec, stop=StopRequest()) == 0
    return [event["data"]["values"]["samples_per_s"] for event in read_events(events_path)
            if event["kind"] == "metrics" and "val_loss" in event["data"]["values"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=6_000, help="dataset size (80%% train)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is a warm-up)")
    parser.add_argument("--rounds", type=int, default=5, help="engine/plain alternations")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    arguments = parser.parse_args()
    logging.getLogger("trainer_app.engine").setLevel(logging.WARNING)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    scratch = Path(tempfile.mkdtemp(prefix="bench-engine-throughput-"))
    dataset = scratch / "images"
    meta = make_synthetic_images(dataset, count=arguments.samples, shape=(3, 32, 32), classes=10)
    print(f"dataset: {meta.splits['train']} training samples 3x32x32 uint8, batch {arguments.batch_size}, "
          f"{torch.get_num_threads()} torch threads, {arguments.rounds} rounds x {arguments.epochs} epochs")
    engine_rates, plain_rates = [], []
    for round_number in range(arguments.rounds):
        psutil.cpu_percent(interval=None)
        ours = psutil.Process().cpu_times()
        rates = engine(dataset, scratch, epochs=arguments.epochs, batch_size=arguments.batch_size, lr=0.01,
                       round_number=round_number)[1:]
        plain = plain_loop(dataset, epochs=arguments.epochs, batch_size=arguments.batch_size, lr=0.01)[1:]
        machine = psutil.cpu_percent(interval=None) / 100 * psutil.cpu_count()
        own = psutil.Process().cpu_times()
        engine_rates += rates
        plain_rates += plain
        print(f"round {round_number + 1}: engine {statistics.median(rates):9.0f} samples/s   plain loop "
              f"{statistics.median(plain):9.0f} samples/s   ratio {statistics.median(rates) / statistics.median(plain):.3f}"
              f"   (machine busy {machine:.2f} cores, ours {(own.user + own.system - ours.user - ours.system):.0f} "
              f"cpu-s)")
    engine_median, plain_median = statistics.median(engine_rates), statistics.median(plain_rates)
    ratio = engine_median / plain_median
    print(json.dumps({"engine_samples_per_s": round(engine_median), "plain_samples_per_s": round(plain_median),
                      "ratio": round(ratio, 4)}))
    print(f"SUMMARY engine={engine_median:.0f} samples/s plain={plain_median:.0f} samples/s ratio={ratio:.3f} "
          f"target>=0.97 {'PASS' if ratio >= 0.97 else 'FAIL'}")


if __name__ == "__main__":
    main()
