"""Train/validation/test assignment: seeded, stratified for classification."""
from __future__ import annotations

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")


def assign_splits(count: int, ratios: tuple[float, float, float], seed: int,
                  labels: np.ndarray | None = None) -> np.ndarray:
    """Split id (0 train, 1 val, 2 test) per sample; stratified by ``labels`` when given.

    The split sizes are the ratios of the whole (rounded); with labels they are shared out between
    classes in proportion (largest remainders first), every class keeping at least one training
    sample. Each class is shuffled with ``seed`` and cut.
    """
    assignment = np.zeros(count, dtype=np.int8)
    rng = np.random.default_rng(seed)
    groups = [np.arange(count)] if labels is None else _indices_by_label(labels)
    sizes = np.array([len(group) for group in groups], dtype=np.int64)
    val = _allocate(sizes, ratios[1], round(count * ratios[1]), np.maximum(sizes - 1, 0), rng)
    test = _allocate(sizes, ratios[2], round(count * ratios[2]), np.maximum(sizes - 1 - val, 0), rng)
    for indices, val_count, test_count in zip(groups, val, test):
        shuffled = rng.permutation(indices)
        assignment[shuffled[:val_count]] = VAL
        assignment[shuffled[val_count:val_count + test_count]] = TEST
    return assignment


def _allocate(sizes: np.ndarray, share: float, total: int, capacity: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    ideal = sizes * share
    counts = np.minimum(np.floor(ideal).astype(np.int64), capacity)
    remainder = ideal - counts
    order = np.lexsort((rng.random(len(sizes)), -remainder))
    missing = total - int(counts.sum())
    for group in order:
        if missing <= 0:
            break
        if counts[group] < capacity[group]:
            counts[group] += 1
            missing -= 1
    return counts


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
