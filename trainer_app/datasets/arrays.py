"""In-memory arrays (npz, MNIST, CIFAR, scikit-learn) to the canonical format."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer_app.engine.dataset_format import SPLITS, write_split

from .errors import DatasetError
from .finish import Converted
from .images import write_thumbnails
from .options import ProcessOptions
from .result import FeatureStatistics, Preview
from .splits import TRAIN, VAL, assign_splits, carve_validation
from .statistics import DuplicateCounter, RunningMoments
from .table_plan import MAX_CLASSES_INFERRED

PREVIEW_ROWS = 20


def labels_from_values(values: np.ndarray, options: ProcessOptions, source: str) -> tuple[str, list[str], np.ndarray]:
    """Task, class names and labels (int64 classes or float32 targets) from raw label values."""
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise DatasetError(f"{source} labels must be one value per sample (shape (N,)), not shape "
                           f"{values.shape}", code="bad_labels")
    if values.dtype.kind in "US":
        if options.task == "regression":
            raise DatasetError(f"{source} labels are text, so the task can only be classification",
                               code="bad_labels")
        names, labels = np.unique(values.astype(str), return_inverse=True)
        return _classes(list(map(str, names)), labels.astype(np.int64), source)
    if values.dtype.kind not in "biuf":
        raise DatasetError(f"{source} labels have type {values.dtype}; use numbers or text", code="bad_labels")
    numbers = values.astype(np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        raise DatasetError(f"{source} has {int(bad.sum())} NaN or infinite labels (first at sample "
                           f"{int(np.argmax(bad))}); every sample needs a label: remove those samples",
                           code="bad_labels")
    distinct = np.unique(numbers)
    integral = bool(np.all(distinct == np.round(distinct)))
    task = options.task
    if task == "auto":
        task = "classification" if integral and len(distinct) <= MAX_CLASSES_INFERRED else "regression"
    if task == "regression":
        if len(distinct) < 2:
            raise DatasetError(f"{source} labels are constant; a regression target must vary", code="bad_labels")
        return task, [], numbers.astype(np.float32)
    if len(distinct) > options.limits.max_classes:
        raise DatasetError(f"{source} labels have {len(distinct)} distinct values, more than "
                           f"{options.limits.max_classes} classes; choose regression", code="bad_labels")
    names = [f"{int(v)}" if integral else f"{v:g}" for v in distinct]
    return _classes(names, np.searchsorted(distinct, numbers).astype(np.int64), source)


def _classes(names: list[str], labels: np.ndarray, source: str):
    if len(names) < 2:
        raise DatasetError(f"{source} labels have a single class ({names[0]!r}); a classifier needs at least "
                           "two", code="bad_labels")
    return "classification", names, labels


def split_arrays(features: np.ndarray, labels: np.ndarray, task: str, options: ProcessOptions,
                 test: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split in memory; with ``test`` (a predefined test split) only validation is carved from train."""
    stratify = labels if task == "classification" else None
    if test is None:
        assignment = assign_splits(len(labels), options.split_ratios, options.seed, stratify)
        return {split: (features[assignment == i], labels[assignment == i]) for i, split in enumerate(SPLITS)}
    carved = carve_validation(labels if stratify is not None else len(labels), options.split_ratios[1],
                              options.seed, stratify is not None)
    return {"train": (features[carved == TRAIN], labels[carved == TRAIN]),
            "val": (features[carved == VAL], labels[carved == VAL]), "test": test}


def write_arrays(staging: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], converted: Converted) -> Converted:
    """Write the splits, count duplicates, and build the preview (thumbnails or first rows)."""
    duplicates = DuplicateCounter()
    for split in SPLITS:
        features, labels = splits[split]
        write_split(staging, split, features, labels)
        for start in range(0, len(features), 4096):
            duplicates.add(features[start:start + 4096])
    converted.duplicates = duplicates.duplicates()
    if converted.modality == "image":
        if converted.task == "classification":
            converted.preview = write_thumbnails(staging, staging, [splits[split][1] for split in SPLITS],
                                                 converted.class_names)
    else:
        converted.preview = _table_preview(splits, converted.feature_names)
        converted.feature_statistics = _table_statistics(splits, converted.feature_names)
    return converted


def _table_preview(splits, feature_names: list[str]) -> Preview:
    features, labels = splits["train"]
    rows = [[f"{value:g}" for value in row] + [str(label)] for row, label in
            zip(features[:PREVIEW_ROWS].tolist(), labels[:PREVIEW_ROWS].tolist())]
    return Preview(columns=list(feature_names) + ["target"], rows=rows)


def _table_statistics(splits, feature_names: list[str]) -> list[FeatureStatistics]:
    moments = RunningMoments(len(feature_names))
    total = 0
    for features, _ in splits.values():
        if len(features):
            moments.add(features)
            total += len(features)
    return [FeatureStatistics(name=name, kind="numeric", count=int(moments.count[i]),
                              missing_share=1 - moments.count[i] / max(total, 1),
                              min=float(moments.min[i]), max=float(moments.max[i]), mean=float(moments.mean[i]),
                              std=float(moments.std[i]), encoding="numeric")
            for i, name in enumerate(feature_names) if moments.count[i]]


def image_array(features: np.ndarray, source: str) -> np.ndarray:
    """N×H×W, N×C×H×W or N×H×W×C (C 1 or 3) of uint8, 0..255 integers or 0..1 floats → uint8 N×C×H×W."""
    if features.ndim == 3:
        features = features[:, None]
    elif features.shape[1] not in (1, 3) and features.shape[3] in (1, 3):
        features = features.transpose(0, 3, 1, 2)
    if features.shape[1] not in (1, 3):
        raise DatasetError(f"{source} images must have 1 or 3 channels (N,C,H,W or N,H,W,C), not shape "
                           f"{features.shape}", code="bad_features")
    if features.dtype == np.uint8:
        return np.ascontiguousarray(features)
    if features.dtype.kind not in "biuf":
        raise DatasetError(f"{source} images have type {features.dtype}; use uint8", code="bad_features")
    low, high = (float(features.min()), float(features.max())) if features.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise DatasetError(f"{source} images hold NaN or infinite pixels", code="bad_features")
    if features.dtype.kind == "f" and low >= 0 and high <= 1:
        return np.rint(features * 255).astype(np.uint8)
    if low >= 0 and high <= 255:
        return np.rint(features).astype(np.uint8)
    raise DatasetError(f"{source} image pixels range from {low:g} to {high:g}; use 0..255 (uint8) or 0..1 floats",
                       code="bad_features")
