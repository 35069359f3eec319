"""Statistics computed on the written arrays: normalisation (train only), class balance, duplicates."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer_app.engine.dataset_format import SPLITS, array_paths

from .result import ProcessWarning
from .storage import read_npy_chunks

IMBALANCE_RATIO = 10.0
"""Largest/smallest class above this ratio is reported as imbalanced."""


class RunningMoments:
    """Count, mean, M2, min and max per column, combined block by block (Chan et al.)."""

    def __init__(self, width: int) -> None:
        self.count = np.zeros(width, dtype=np.int64)
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)
        self.min = np.full(width, np.inf)
        self.max = np.full(width, -np.inf)

    def add(self, block: np.ndarray) -> None:
        """``block``: (rows, width); NaN values are left out."""
        block = np.asarray(block, dtype=np.float64)
        valid = ~np.isnan(block)
        count = valid.sum(axis=0)
        if not count.any():
            return
        filled = np.where(valid, block, 0.0)
        safe = np.maximum(count, 1)
        mean = filled.sum(axis=0) / safe
        m2 = (np.where(valid, block - mean, 0.0) ** 2).sum(axis=0)
        self.min = np.fmin(self.min, np.where(valid, block, np.inf).min(axis=0))
        self.max = np.fmax(self.max, np.where(valid, block, -np.inf).max(axis=0))
        total = self.count + count
        delta = mean - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean = np.where(total > 0, self.mean + delta * count / np.maximum(total, 1), 0.0)
            self.m2 = self.m2 + m2 + delta ** 2 * self.count * count / np.maximum(total, 1)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / np.maximum(self.count, 1))


def table_normalization(directory: Path) -> dict[str, list[float]]:
    """Per-feature mean and std of the training split (std 1 where a feature is constant)."""
    features_path, _ = array_paths(directory, "train")
    moments = None
    for block in read_npy_chunks(features_path):
        moments = moments or RunningMoments(block.shape[1])
        moments.add(block)
    if moments is None:
        return {}
    std = np.where(moments.std > 0, moments.std, 1.0)
    return {"mean": [float(v) for v in moments.mean], "std": [float(v) for v in std]}


def image_normalization(directory: Path) -> dict[str, list[float]]:
    """Per-channel mean and std of the training images, on 0..1 pixels (exact integer sums)."""
    features_path, _ = array_paths(directory, "train")
    total = squares = None
    count = 0
    for block in read_npy_chunks(features_path, rows_per_chunk=4096):
        channels = block.shape[1]
        flat = block.transpose(1, 0, 2, 3).reshape(channels, -1)
        block_total = flat.sum(axis=1, dtype=np.uint64)
        block_squares = np.einsum("ij,ij->i", flat.astype(np.uint32), flat.astype(np.uint32), dtype=np.uint64)
        total = block_total if total is None else total + block_total
        squares = block_squares if squares is None else squares + block_squares
        count += flat.shape[1]
    if not count:
        return {}
    mean = total.astype(np.float64) / count / 255.0
    variance = np.maximum(squares.astype(np.float64) / count / 255.0 ** 2 - mean ** 2, 0.0)
    std = np.sqrt(variance)
    return {"mean": [float(v) for v in mean], "std": [float(v) if v > 0 else 1.0 for v in std]}


def image_channel_ranges(directory: Path) -> tuple[list[float], list[float]]:
    """Per-channel minimum and maximum of the training images, on 0..1 pixels."""
    features_path, _ = array_paths(directory, "train")
    low = high = None
    for block in read_npy_chunks(features_path, rows_per_chunk=4096):
        block_low, block_high = block.min(axis=(0, 2, 3)), block.max(axis=(0, 2, 3))
        low = block_low if low is None else np.minimum(low, block_low)
        high = block_high if high is None else np.maximum(high, block_high)
    if low is None:
        return [], []
    return [float(v) / 255.0 for v in low], [float(v) / 255.0 for v in high]


def target_normalization(directory: Path) -> dict[str, float]:
    _, labels_path = array_paths(directory, "train")
    targets = np.load(labels_path, allow_pickle=False).astype(np.float64)
    std = float(targets.std()) if len(targets) else 1.0
    return {"mean": float(targets.mean()) if len(targets) else 0.0, "std": std if std > 0 else 1.0}


def class_counts(directory: Path, num_classes: int) -> dict[str, list[int]]:
    counts = {}
    for split in SPLITS:
        _, labels_path = array_paths(directory, split)
        labels = np.load(labels_path, allow_pickle=False)
        counts[split] = [int(v) for v in np.bincount(labels, minlength=num_classes)]
    return counts


def balance_warnings(counts: dict[str, list[int]], class_names: list[str]) -> list[ProcessWarning]:
    totals = np.sum([counts[split] for split in SPLITS], axis=0)
    warnings = []
    empty = [class_names[i] for i in np.flatnonzero(totals == 0)]
    if empty:
        warnings.append(ProcessWarning("empty_class", f"{len(empty)} class(es) have no samples: "
                                       f"{', '.join(empty[:10])}"))
    present = totals[totals > 0]
    if len(present) >= 2 and present.max() / present.min() > IMBALANCE_RATIO:
        largest, smallest = int(np.argmax(totals)), int(np.argmin(np.where(totals > 0, totals, totals.max() + 1)))
        warnings.append(ProcessWarning(
            "class_imbalance",
            f"classes are imbalanced: {class_names[largest]!r} has {totals[largest]} samples, "
            f"{class_names[smallest]!r} only {totals[smallest]} (ratio {totals[largest] / totals[smallest]:.0f}:1); "
            "consider class weights, resampling or more data for the small classes"))
    return warnings


class DuplicateCounter:
    """Counts samples whose bytes equal an earlier sample's, with a vectorised 64-bit row hash."""

    def __init__(self) -> None:
        self._hashes: list[np.ndarray] = []
        self._coefficients: np.ndarray | None = None

    def add(self, block: np.ndarray) -> None:
        if not len(block):
            return
        rows = np.ascontiguousarray(block).reshape(len(block), -1).view(np.uint8)
        if rows.shape[1] % 4 == 0:
            rows = rows.view(np.uint32)
        width = rows.shape[1]
        if self._coefficients is None or len(self._coefficients) != width:
            self._coefficients = np.random.default_rng(12345).integers(1, 2 ** 63, size=width, dtype=np.uint64) | 1
        hashes = np.zeros(len(rows), dtype=np.uint64)
        for start in range(0, width, 1024):
            part = rows[:, start:start + 1024].astype(np.uint64) + np.uint64(1)
            hashes += (part * self._coefficients[start:start + 1024]).sum(axis=1, dtype=np.uint64)
        self._hashes.append(hashes)

    def duplicates(self) -> int:
        if not self._hashes:
            return 0
        hashes = np.concatenate(self._hashes)
        return int(len(hashes) - len(np.unique(hashes)))


def duplicate_warning(duplicates: int, total: int) -> list[ProcessWarning]:
    if not duplicates:
        return []
    return [ProcessWarning("duplicates", f"{duplicates} of {total} samples ({100 * duplicates / total:.1f}%) are "
                           "exact duplicates of another sample; duplicates across splits inflate validation "
                           "and test scores")]
