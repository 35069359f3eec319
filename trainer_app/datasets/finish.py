"""The steps every converter shares once arrays are written: statistics, metadata, hash, report."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer_app.engine.dataset_format import SPLITS, DatasetMeta, array_paths, content_hash, write_meta

from .result import FeatureStatistics, Preview, ProcessResult, ProcessWarning, SkippedFile
from .statistics import (balance_warnings, class_counts, duplicate_warning, image_channel_ranges, image_normalization,
                         table_normalization, target_normalization)
from .storage import npy_shape


@dataclass
class Converted:
    """What a converter wrote into the staging directory and learnt on the way."""

    detected_format: str
    task: str
    modality: str
    input_shape: list[int]
    class_names: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    warnings: list[ProcessWarning] = field(default_factory=list)
    skipped_files: list[SkippedFile] = field(default_factory=list)
    feature_statistics: list[FeatureStatistics] = field(default_factory=list)
    preview: Preview = field(default_factory=Preview)
    details: dict[str, Any] = field(default_factory=dict)
    duplicates: int = 0


def finish(converted: Converted, data_dir: Path, output_dir: Path, report_dir: Path,
           original_name: str) -> ProcessResult:
    """Compute train-split statistics, write meta.json (with the content hash) and report.json.

    ``data_dir`` holds the arrays (written here unless it is a registered canonical directory);
    ``report_dir`` is where report.json goes (the staging directory that becomes ``output_dir``).
    """
    splits = {split: int(npy_shape(array_paths(data_dir, split)[1])[0][0]) for split in SPLITS}
    total = sum(splits.values())
    image = converted.modality == "image"
    meta = DatasetMeta(
        task=converted.task, modality=converted.modality, input_shape=list(converted.input_shape),
        num_classes=len(converted.class_names) if converted.task == "classification" else 0,
        splits=splits, class_names=list(converted.class_names), feature_names=list(converted.feature_names),
        normalization=image_normalization(data_dir) if image else table_normalization(data_dir),
        target_normalization=target_normalization(data_dir) if converted.task == "regression" else {},
    )
    if image and not converted.feature_statistics:
        converted.feature_statistics = _channel_statistics(meta, splits["train"], data_dir)
    warnings = list(converted.warnings)
    counts: dict[str, list[int]] = {}
    if meta.task == "classification":
        counts = class_counts(data_dir, meta.num_classes)
        warnings += balance_warnings(counts, meta.class_names)
    warnings += duplicate_warning(converted.duplicates, total)
    if converted.skipped_files:
        warnings.append(ProcessWarning("skipped_files", f"{len(converted.skipped_files)} file(s) were skipped; "
                                       "see the list for why"))
    if data_dir == report_dir:
        write_meta(data_dir, meta)
        meta.sha256 = content_hash(data_dir)
        write_meta(data_dir, meta)
    else:
        meta.sha256 = content_hash(data_dir)
    result = ProcessResult(meta=meta, sha256=meta.sha256, detected_format=converted.detected_format,
                           data_dir=data_dir if data_dir != report_dir else output_dir, output_dir=output_dir,
                           warnings=warnings, skipped_files=converted.skipped_files,
                           feature_statistics=converted.feature_statistics, class_counts=counts,
                           preview=converted.preview, details=converted.details, original_name=original_name)
    (report_dir / "report.json").write_text(json.dumps(result.to_dict(), indent=1, default=_json_default))
    return result


def _channel_statistics(meta: DatasetMeta, train_samples: int, data_dir: Path) -> list[FeatureStatistics]:
    """Per channel, on 0..1 pixels, over the training split (the normalisation statistics)."""
    names = ["gray"] if meta.input_shape[0] == 1 else ["red", "green", "blue"]
    pixels = train_samples * meta.input_shape[1] * meta.input_shape[2]
    lows, highs = image_channel_ranges(data_dir)
    return [FeatureStatistics(name=name, kind="channel", count=pixels, mean=mean, std=std, min=low, max=high)
            for name, mean, std, low, high in zip(names, meta.normalization.get("mean", []),
                                                  meta.normalization.get("std", []), lows, highs)]


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_labels(directory: Path, labels: np.ndarray, assignment: np.ndarray) -> None:
    """Write each split's labels, in source order."""
    from .storage import NpyAppender
    for split_id, split in enumerate(SPLITS):
        chosen = labels[assignment == split_id]
        appender = NpyAppender(array_paths(directory, split)[1], labels.dtype, (), len(chosen))
        appender.append(chosen)
        appender.close()
