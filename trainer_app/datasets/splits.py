"""Train/validation/test assignment: seeded, stratified for classification."""
from __future__ import annotations

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")


def assign_splits(count: int, ratios: tuple[float, float, float], seed: int,
                  labels: np.ndarray | None = None) -> np.ndarray:
    """Split id (0 train, 1 val, 2 test) per sample; stratified by ``labels`` when given.

    Each class is shuffled with ``seed`` and cut by the ratios, so every split keeps the class
    balance; a class too small to share keeps its samples in train.
    """
    assignment = np.zeros(count, dtype=np.int8)
    rng = np.random.default_rng(seed)
    groups = [np.arange(count)] if labels is None else _indices_by_label(labels)
    for indices in groups:
        shuffled = rng.permutation(indices)
        val_count, test_count = _cut(len(shuffled), ratios)
        assignment[shuffled[:val_count]] = VAL
        assignment[shuffled[val_count:val_count + test_count]] = TEST
    return assignment


def carve_validation(labels_or_count, val_share: float, seed: int, stratify: bool) -> np.ndarray:
    """For sources with their own train/test split: split id per training sample, VAL for a
    ``val_share`` of them (stratified when asked), TRAIN for the rest."""
    if stratify:
        labels = np.asarray(labels_or_count)
        return assign_splits(len(labels), (1 - val_share, val_share, 0.0), seed, labels)
    return assign_splits(int(labels_or_count), (1 - val_share, val_share, 0.0), seed)


def _indices_by_label(labels: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    _, starts = np.unique(labels[order], return_index=True)
    return np.split(order, starts[1:])


def _cut(size: int, ratios: tuple[float, float, float]) -> tuple[int, int]:
    val_count = int(round(size * ratios[1]))
    test_count = int(round(size * ratios[2]))
    while val_count + test_count >= size and (val_count or test_count):
        if test_count >= val_count and test_count:
            test_count -= 1
        else:
            val_count -= 1
    return val_count, test_count
