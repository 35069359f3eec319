"""The entry points: process an upload, register a directory on shared storage."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from trainer_app.engine.dataset_format import SPLITS, array_paths, content_hash, read_meta

from .archives import SafeZip, copy_counted, gunzip_file, read_tar_members
from .detect import check_size, detect
from .errors import DatasetError
from .finish import Converted, finish
from .image_decode import IMAGE_EXTENSIONS, DirectorySource, SourceSpec
from .images import convert_image_source, write_thumbnails
from .npz import convert_npz
from .options import ProcessOptions
from .result import ProcessResult
from .standard import convert_standard, is_standard_file, recognise
from .storage import npy_shape, staged_output
from .table_convert import convert_csv

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]


class _Progress:
    """Forwards progress at most every 1% or every 2 seconds, and never backwards."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._last = (-1.0, 0.0)

    def __call__(self, fraction: float, message: str) -> None:
        if self._callback is None:
            return
        fraction = max(0.0, min(1.0, fraction))
        last_fraction, last_time = self._last
        now = time.monotonic()
        if fraction >= 1.0 or fraction - last_fraction >= 0.01 or now - last_time >= 2.0:
            self._last = (max(fraction, last_fraction), now)
            self._callback(max(fraction, last_fraction), message)


def process_upload(source: Path, *, original_name: str, output_dir: Path, options: ProcessOptions | None = None,
                   progress: ProgressCallback | None = None) -> ProcessResult:
    """Convert one uploaded file into a canonical dataset directory at ``output_dir``.

    ``source`` is the stored upload (any name); ``original_name`` is the user's file name, used only to
    cross-check the content's type and shown as metadata, never as a path. ``output_dir`` must not exist
    (or be empty); it appears only when everything succeeded. Raises DatasetError for bad input.
    ``progress(fraction 0..1, message)`` is called as work advances.
    """
    options = options or ProcessOptions()
    report = _Progress(progress)
    source = Path(source)
    size = check_size(source, options.limits)
    detected = detect(source, original_name)
    report(0.0, "reading the upload")
    with staged_output(output_dir) as staging:
        stage = _Stage(report, 0.0, 0.9)
        if detected.kind == "text":
            converted = convert_csv(source, staging, options, stage, is_tsv=detected.extension_kind == "tsv")
        elif original_name.lower().endswith((".csv.gz", ".tsv.gz")):
            extracted = staging / ".source-table"
            gunzip_file(source, extracted, options.limits)
            converted = _convert_extracted_table(extracted, original_name.lower()[:-3], staging, options, stage)
        elif detected.kind == "tar":
            _refuse_lone_gzip(original_name, detected.head)
            converted = _convert_tar(source, staging, options, stage, original_name)
        else:
            converted = _convert_zip(source, staging, options, stage, original_name, detected.kind == "npz")
        converted.details["source_bytes"] = size
        report(0.92, "computing statistics and the content hash")
        result = finish(converted, staging, Path(output_dir), staging, original_name)
    report(1.0, "ready")
    return result


class _Stage:
    """Maps a converter's 0..1 progress onto a slice of the whole."""

    def __init__(self, report: _Progress, start: float, end: float) -> None:
        self._report, self._start, self._end = report, start, end

    def __call__(self, fraction: float, message: str) -> None:
        self._report(self._start + (self._end - self._start) * fraction, message)


def _convert_zip(source: Path, staging: Path, options: ProcessOptions, progress, original_name: str,
                 named_npz: bool) -> Converted:
    archive = SafeZip(source, options.limits)
    try:
        names = archive.names()
        if named_npz or (names and all(name.endswith(".npy") for name in names)):
            return convert_npz(archive, staging, options, progress)
        standard = recognise(names)
        if standard:
            kind, files = standard
            return convert_standard(kind, files, archive.read, staging, options, progress,
                                    hint=original_name + " " + " ".join(files.values()))
        tables = [name for name in names if name.lower().endswith((".csv", ".tsv")) and "__MACOSX" not in name]
        if len(tables) == 1 and not any(PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS for name in names):
            extracted = staging / ".source-table"
            with archive.open(tables[0]) as stream:
                copy_counted(stream, extracted)
            return _convert_extracted_table(extracted, tables[0], staging, options, progress)
        spec = SourceSpec("zip", str(source), options.limits)
        return convert_image_source(archive, spec, staging, options, progress, "image_zip")
    finally:
        archive.close()


def _refuse_lone_gzip(original_name: str, head: bytes) -> None:
    name = original_name.lower()
    if head[:2] == b"\x1f\x8b" and name.endswith(".gz") and not name.endswith((".tar.gz", ".tgz")):
        raise DatasetError("a single gzipped file is not a dataset by itself: put the four MNIST IDX files in one "
                           ".zip or .tar.gz, or name a gzipped table name.csv.gz", code="unsupported")


def _convert_extracted_table(extracted: Path, name: str, staging: Path, options: ProcessOptions,
                             progress) -> Converted:
    """A CSV/TSV that came inside a ZIP or a .gz: checked like an upload, converted, then removed."""
    try:
        check_size(extracted, options.limits)
        detected = detect(extracted, name)
        return convert_csv(extracted, staging, options, progress, is_tsv=detected.extension_kind == "tsv")
    finally:
        extracted.unlink(missing_ok=True)


def _convert_tar(source: Path, staging: Path, options: ProcessOptions, progress, original_name: str) -> Converted:
    members = read_tar_members(source, is_standard_file, options.limits)
    standard = recognise(list(members))
    if not standard:
        raise DatasetError("this tar archive holds neither the MNIST IDX files nor CIFAR binary batches; other "
                           "data must be a ZIP (images in class folders), a CSV or an .npz", code="unsupported")
    kind, files = standard
    return convert_standard(kind, files, members.__getitem__, staging, options, progress,
                            hint=original_name + " " + " ".join(files))


def register_directory(path: Path, *, output_dir: Path, options: ProcessOptions | None = None,
                       progress: ProgressCallback | None = None) -> ProcessResult:
    """Register a directory that already sits on shared storage.

    A canonical directory (meta.json + arrays) is validated and stays where it is
    (``result.data_dir == path``); only the preview and report.json are written to ``output_dir``.
    An ImageFolder directory or a directory of MNIST/CIFAR files is converted into ``output_dir``.
    Symbolic links inside the directory are never followed.
    """
    options = options or ProcessOptions()
    report = _Progress(progress)
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        raise DatasetError(f"{path} is not a directory; give the path of a folder on shared storage",
                           code="not_found")
    with staged_output(output_dir) as staging:
        stage = _Stage(report, 0.0, 0.9)
        if (path / "meta.json").is_file():
            converted = _validate_canonical(path, staging, stage)
            report(0.92, "computing the content hash")
            result = finish(converted, path, Path(output_dir), staging, path.name)
        else:
            source = DirectorySource(path, options.limits)
            names = source.names()
            standard = recognise(names)
            if standard:
                kind, files = standard
                converted = convert_standard(kind, files, source.read, staging, options, stage,
                                             hint=str(path) + " " + " ".join(files.values()))
            else:
                spec = SourceSpec("directory", str(path), options.limits)
                converted = convert_image_source(source, spec, staging, options, stage, "image_folder")
            report(0.92, "computing statistics and the content hash")
            result = finish(converted, staging, Path(output_dir), staging, path.name)
    report(1.0, "ready")
    return result


def _validate_canonical(path: Path, staging: Path, progress) -> Converted:
    try:
        meta = read_meta(path)
    except (ValueError, TypeError, KeyError) as error:
        raise DatasetError(f"{path}/meta.json is not valid canonical metadata ({error})", code="bad_canonical") from None
    labels = {}
    for split in SPLITS:
        features_path, labels_path = array_paths(path, split)
        if not features_path.is_file() or not labels_path.is_file():
            raise DatasetError(f"{path} lacks {features_path.name} or {labels_path.name}", code="bad_canonical")
        (features_shape, features_dtype), (labels_shape, _) = npy_shape(features_path), npy_shape(labels_path)
        expected = np.uint8 if meta.modality == "image" else np.float32
        if features_dtype != expected or list(features_shape[1:]) != list(meta.input_shape):
            raise DatasetError(f"{features_path.name} is {features_dtype} {features_shape}, but meta.json says "
                               f"{np.dtype(expected)} samples of shape {meta.input_shape}", code="bad_canonical")
        if features_shape[0] != labels_shape[0] or features_shape[0] != meta.splits.get(split):
            raise DatasetError(f"{split}: {features_shape[0]} samples, {labels_shape[0]} labels, meta.json says "
                               f"{meta.splits.get(split)}", code="bad_canonical")
        labels[split] = np.load(labels_path, allow_pickle=False)
        if meta.task == "classification" and len(labels[split]) and labels[split].max() >= meta.num_classes:
            raise DatasetError(f"{split} has label {labels[split].max()} but meta.json says {meta.num_classes} "
                               "classes", code="bad_canonical")
    progress(0.5, "checking the content hash")
    if meta.sha256 and content_hash(path) != meta.sha256:
        raise DatasetError(f"the arrays in {path} do not match the sha256 in its meta.json: they changed after "
                           "it was written; regenerate meta.json or restore the arrays", code="bad_canonical")
    converted = Converted(detected_format="canonical", task=meta.task, modality=meta.modality,
                          input_shape=meta.input_shape, class_names=meta.class_names,
                          feature_names=meta.feature_names)
    if meta.modality == "image" and meta.task == "classification":
        converted.preview = write_thumbnails(staging, path, [labels[split] for split in SPLITS], meta.class_names)
    return converted

