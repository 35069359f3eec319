"""Reading the canonical format vs the small CNN consuming it, side by side (issue 3).

    .venv/bin/python benchmarks/bench_dataset_read.py [--samples 50000] [--threads 1]

Writes a CIFAR-sized canonical dataset (uint8 3×32×32), then measures in one run, alternating:
- read: the engine's own training batches (DistributedSampler order, gather, normalisation), batch 64,
  from memory-mapped arrays (as a worker reads a split larger than its memory limit) and from memory;
- train: the engine's small CNN (PyTorch's CIFAR-10 tutorial network) taking SGD steps on the same
  batches, on the CPU.
Target: reading feeds samples at ≥ 10× the rate the small CNN consumes them. Prints a SUMMARY line.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from trainer_app.engine.data import Preprocessor, SplitSource, TrainBatches  # noqa: E402
from trainer_app.engine.dataset_format import DatasetMeta, read_meta, write_meta, write_split  # noqa: E402
from trainer_app.engine.models import build_model  # noqa: E402

BATCH = 64


def make_dataset(directory: Path, samples: int) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", samples), ("val", 1000), ("test", 1000)):
        write_split(directory, split, rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8),
                    rng.integers(0, 10, count).astype(np.int64))
    write_meta(directory, DatasetMeta(task="classification", modality="image", input_shape=[3, 32, 32],
                                      num_classes=10, splits={"train": samples, "val": 1000, "test": 1000},
                                      class_names=[str(i) for i in range(10)],
                                      normalization={"mean": [0.5] * 3, "std": [0.25] * 3}))


def batches(directory: Path, *, in_memory: bool, epoch: int) -> TrainBatches:
    meta = read_meta(directory)
    source = SplitSource(directory, "train", in_memory_limit_bytes=(1 << 40) if in_memory else 0)
    loader = TrainBatches(source, Preprocessor(meta, torch.device("cpu")), batch_size=BATCH, rank=0, world_size=1,
                          seed=epoch, augmentation=None)
    return loader


def read_rate(directory: Path, *, in_memory: bool, epoch: int) -> float:
    loader = batches(directory, in_memory=in_memory, epoch=epoch)
    started, count = time.perf_counter(), 0
    for features, _ in loader.epoch(epoch, first_step=0):
        count += len(features)
    return count / (time.perf_counter() - started)


def train_rate(directory: Path, *, steps: int, epoch: int) -> float:
    torch.manual_seed(0)
    model = build_model({"preset": "small_cnn"}, [3, 32, 32], 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_function = torch.nn.CrossEntropyLoss()
    loader = batches(directory, in_memory=True, epoch=epoch)
    started, count = time.perf_counter(), 0
    for step, (features, targets) in enumerate(loader.epoch(epoch, first_step=0)):
        if step == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss_function(model(features), targets).backward()
        optimizer.step()
        count += len(features)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the CNN (the engine's default: 1 per rank)")
    parser.add_argument("--reps", type=int, default=3)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    with tempfile.TemporaryDirectory(prefix="bench-dataset-read-") as scratch:
        directory = Path(scratch)
        make_dataset(directory, arguments.samples)
        mapped, memory, train = [], [], []
        for rep in range(arguments.reps):
            mapped.append(read_rate(directory, in_memory=False, epoch=rep))
            memory.append(read_rate(directory, in_memory=True, epoch=rep))
            train.append(train_rate(directory, steps=150, epoch=rep))
            print(f"rep {rep + 1}: read memory-mapped {mapped[-1]:,.0f} samples/s, read in memory "
                  f"{memory[-1]:,.0f} samples/s, small CNN training {train[-1]:,.0f} samples/s", flush=True)
    m, r, t = statistics.median(mapped), statistics.median(memory), statistics.median(train)
    print(f"SUMMARY dataset_read: memory-mapped {m:,.0f}/s ({m / t:.1f}x the CNN), in memory {r:,.0f}/s "
          f"({r / t:.1f}x), small CNN {t:,.0f}/s; target >= 10x {'PASS' if min(m, r) / t >= 10 else 'MISS'}")


if __name__ == "__main__":
    main()
