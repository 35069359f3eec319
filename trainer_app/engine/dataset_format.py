"""The canonical on-disk dataset format: what dataset processing writes and the engine reads.

A dataset version is one directory:

    meta.json            DatasetMeta below, as JSON
    train_X.npy          samples, memory-mappable .npy: uint8 (N, C, H, W) for images,
    train_y.npy          float32 (N, F) for tables; labels int64 (N,) or float32 targets (N,)
    val_X.npy / val_y.npy
    test_X.npy / test_y.npy

Arrays are plain .npy (never pickled), opened with ``numpy.load(mmap_mode="r")`` so a worker reads
only the pages it needs. Normalisation statistics are computed on the training split only.
Pure numpy: no torch, no django, so both dataset processing and the engine import it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "trainyard-canonical/1"
SPLITS = ("train", "val", "test")


@dataclass
class DatasetMeta:
    task: str
    """`classification` or `regression`."""
    modality: str
    """`image` (uint8 N,C,H,W) or `table` (float32 N,F)."""
    input_shape: list[int]
    """Shape of one sample: [C, H, W] for images, [F] for tables."""
    num_classes: int
    """Number of classes (0 for regression)."""
    splits: dict[str, int]
    """Samples per split: {"train": n, "val": n, "test": n}."""
    class_names: list[str] = field(default_factory=list)
    """Label index -> name, for classification."""
    feature_names: list[str] = field(default_factory=list)
    """Column names for tables, after encoding."""
    normalization: dict[str, list[float]] = field(default_factory=dict)
    """{"mean": [...], "std": [...]} per channel (images, on 0..1 pixels) or per feature (tables), train split only."""
    target_normalization: dict[str, float] = field(default_factory=dict)
    """Regression only: {"mean", "std"} of the training targets."""
    sha256: str = ""
    """Content hash over every array file, in split order (see ``content_hash``)."""
    format: str = FORMAT

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise ValueError(f"task must be classification or regression, not {self.task!r}")
        if self.modality not in ("image", "table"):
            raise ValueError(f"modality must be image or table, not {self.modality!r}")
        if self.task == "classification" and self.num_classes < 2:
            raise ValueError("a classification dataset needs at least 2 classes")


def array_paths(directory: Path, split: str) -> tuple[Path, Path]:
    return Path(directory) / f"{split}_X.npy", Path(directory) / f"{split}_y.npy"


def write_split(directory: Path, split: str, features: np.ndarray, labels: np.ndarray) -> None:
    """Write one split; files appear atomically (temporary name, fsync, rename)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    if len(features) != len(labels):
        raise ValueError(f"{split}: {len(features)} samples but {len(labels)} labels")
    for path, array in zip(array_paths(directory, split), (features, labels)):
        _atomic_save(path, np.ascontiguousarray(array))


def _atomic_save(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(path.name + ".part")
    with open(temporary, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_meta(directory: Path, meta: DatasetMeta) -> None:
    path = Path(directory) / "meta.json"
    temporary = path.with_name("meta.json.part")
    temporary.write_text(json.dumps(asdict(meta), indent=2))
    os.replace(temporary, path)


def read_meta(directory: Path) -> DatasetMeta:
    data = json.loads((Path(directory) / "meta.json").read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{directory} is not a {FORMAT} dataset (format {data.get('format')!r})")
    return DatasetMeta(**data)


def open_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-mapped (features, labels) of one split; never unpickles."""
    features_path, labels_path = array_paths(directory, split)
    return (np.load(features_path, mmap_mode="r", allow_pickle=False),
            np.load(labels_path, mmap_mode="r", allow_pickle=False))


def content_hash(directory: Path) -> str:
    """sha256 over every array file in split order: the dataset version's identity."""
    digest = hashlib.sha256()
    for split in SPLITS:
        for path in array_paths(directory, split):
            if path.exists():
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
    return digest.hexdigest()
