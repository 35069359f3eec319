"""The sample datasets that scikit-learn ships, converted to the canonical format for seeding."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .arrays import split_arrays, write_arrays
from .errors import DatasetError
from .finish import Converted, finish
from .options import ProcessOptions
from .result import ProcessResult
from .storage import staged_output

SAMPLE_DATASETS = ("digits", "iris", "wine", "breast_cancer")


def sample_dataset(name: str, output_dir: Path, *, options: ProcessOptions | None = None,
                   progress: Callable[[float, str], None] | None = None) -> ProcessResult:
    """Convert one of scikit-learn's bundled datasets (no download) into ``output_dir``.

    digits becomes images (1×8×8 uint8, 0..16 scaled to 0..255); iris, wine and breast_cancer tables.
    """
    if name not in SAMPLE_DATASETS:
        raise DatasetError(f"unknown sample dataset {name!r}; choose one of {', '.join(SAMPLE_DATASETS)}",
                           code="not_found")
    from sklearn import datasets as sklearn_datasets

    options = options or ProcessOptions()
    bunch = getattr(sklearn_datasets, f"load_{name}")()
    labels = np.asarray(bunch.target, dtype=np.int64)
    class_names = [str(label) for label in bunch.target_names]
    with staged_output(output_dir) as staging:
        if name == "digits":
            images = np.rint(np.asarray(bunch.images) * (255 / 16)).astype(np.uint8)[:, None]
            converted = Converted(detected_format=f"sklearn_{name}", task="classification", modality="image",
                                  input_shape=[1, 8, 8], class_names=class_names)
            splits = split_arrays(images, labels, "classification", options)
        else:
            features = np.asarray(bunch.data, dtype=np.float32)
            converted = Converted(detected_format=f"sklearn_{name}", task="classification", modality="table",
                                  input_shape=[features.shape[1]], class_names=class_names,
                                  feature_names=[str(feature) for feature in bunch.feature_names])
            splits = split_arrays(features, labels, "classification", options)
        if progress:
            progress(0.5, "writing splits")
        write_arrays(staging, splits, converted)
        result = finish(converted, staging, Path(output_dir), staging, f"scikit-learn {name}")
    if progress:
        progress(1.0, "ready")
    return result
