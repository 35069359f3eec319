"""Dataset processing: detect, read safely, validate and convert uploads to the canonical format.

Plain Python, numpy and Pillow; no Django. The web side calls three functions:

- ``process_upload(source, original_name=…, output_dir=…, options=…, progress=…)`` for an upload;
- ``register_directory(path, output_dir=…, options=…, progress=…)`` for a directory on shared storage;
- ``sample_dataset(name, output_dir)`` for scikit-learn's digits, iris, wine and breast_cancer.

Each returns a ``ProcessResult`` or raises ``DatasetError`` (message for people, ``code`` for
programs) and leaves nothing behind. See docs/datasets.md.
"""
from trainer_app.engine.dataset_format import DatasetMeta

from .errors import DatasetError
from .options import MISSING_POLICIES, TASKS, Limits, ProcessOptions
from .pipeline import process_upload, register_directory
from .result import FeatureStatistics, Preview, PreviewImage, ProcessResult, ProcessWarning, SkippedFile
from .samples import SAMPLE_DATASETS, sample_dataset

__all__ = [
    "DatasetError", "DatasetMeta", "FeatureStatistics", "Limits", "MISSING_POLICIES", "Preview", "PreviewImage",
    "ProcessOptions", "ProcessResult", "ProcessWarning", "SAMPLE_DATASETS", "SkippedFile", "TASKS",
    "process_upload", "register_directory", "sample_dataset",
]
