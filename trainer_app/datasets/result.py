"""What processing hands back: the metadata written, warnings, statistics and preview data."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer_app.engine.dataset_format import DatasetMeta


@dataclass
class SkippedFile:
    """A file of the source that is not in the dataset, and why."""

    name: str
    reason: str


@dataclass
class ProcessWarning:
    """Something the analyst should know; the dataset is still usable."""

    code: str
    """`class_imbalance`, `duplicates`, `constant_column`, `skipped_files`, `missing_values`,
    `dropped_column`, `empty_class`, `resized`."""
    message: str


@dataclass
class FeatureStatistics:
    """One source column (tables) or channel (images), over every sample of every split."""

    name: str
    kind: str
    """`numeric` or `categorical` (tables), `channel` (images, on 0..1 pixels)."""
    role: str = "feature"
    """`feature`, `target` or `dropped`."""
    count: int = 0
    missing_share: float = 0.0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    categories: int | None = None
    """Distinct values (categorical columns)."""
    top_values: list[tuple[str, int]] = field(default_factory=list)
    """Most frequent values with their counts (categorical columns)."""
    encoding: str | None = None
    """`one_hot`, `ordinal` or `numeric` for features that are kept."""


@dataclass
class PreviewImage:
    class_index: int
    class_name: str
    split: str
    index: int
    """Row of the sample in that split's arrays."""
    path: str
    """PNG thumbnail, relative to the output directory (``preview/…``)."""


@dataclass
class Preview:
    columns: list[str] = field(default_factory=list)
    """Table: the source column names."""
    rows: list[list[str]] = field(default_factory=list)
    """Table: the first rows of the source, as strings."""
    images: list[PreviewImage] = field(default_factory=list)
    """Images: a few samples per class."""


@dataclass
class ProcessResult:
    """Everything processing learnt. ``to_dict()`` is JSON-ready (also written as ``report.json``)."""

    meta: DatasetMeta
    sha256: str
    detected_format: str
    """`csv`, `tsv`, `image_zip`, `image_folder`, `npz`, `mnist_idx`, `fashion_mnist_idx`, `cifar10_binary`,
    `cifar100_binary`, `canonical` or `sklearn_<name>`."""
    data_dir: Path
    """Where the canonical arrays and meta.json lie (the output directory, or a registered canonical one)."""
    output_dir: Path
    warnings: list[ProcessWarning] = field(default_factory=list)
    skipped_files: list[SkippedFile] = field(default_factory=list)
    feature_statistics: list[FeatureStatistics] = field(default_factory=list)
    class_counts: dict[str, list[int]] = field(default_factory=dict)
    """Split -> samples per class, aligned with ``meta.class_names`` (classification only)."""
    preview: Preview = field(default_factory=Preview)
    details: dict[str, Any] = field(default_factory=dict)
    """How the source was read: encoding, delimiter, header, image size and mode, rows dropped…"""
    original_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["data_dir"] = str(self.data_dir)
        data["output_dir"] = str(self.output_dir)
        return data
