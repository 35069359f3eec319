"""Datasets: accept an upload, convert it once (a Celery task), version it by name, lock it when used."""
from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from trainer_app.models import Dataset, DatasetSource, DatasetStatus, Project, SiteSettings, Upload
from trainer_app.selectors import user_project_role

logger = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.5
SAMPLE_DATASETS = ("digits", "iris", "wine", "breast_cancer")
# Options a form or API call may pass through to processing, with their types.
OPTION_FIELDS = {
    "target_column": str, "task": str, "delimiter": str, "encoding": str, "header": bool, "missing": str,
    "feature_columns": list, "image_size": list, "image_mode": str, "split_ratios": list, "seed": int,
}


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)


def _require_member(user, project: Project) -> None:
    if user_project_role(user, project) is None:
        raise PermissionDenied("You are not a member of this project.")


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the dataset a name, e.g. 'flowers'."})
    if len(name) > 120 or any(ord(character) < 32 for character in name):
        raise ValidationError({"name": "Use at most 120 printable characters for the name."})
    return name


def dataset_options(raw: dict) -> dict:
    """Keep the known processing options, typed; say which value is wrong and how."""
    options = {}
    for key, kind in OPTION_FIELDS.items():
        value = raw.get(key)
        if value in (None, "", []):
            continue
        if kind is bool and isinstance(value, str):
            if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValidationError({key: f"{key} must be true or false, not {value!r}."})
            value = value.lower() in {"true", "1", "yes"}
        elif kind is int:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ValidationError({key: f"{key} must be a whole number, not {value!r}."}) from None
        elif kind is list and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        options[key] = value
    if "image_size" in options:
        try:
            options["image_size"] = [int(side) for side in options["image_size"]]
        except (TypeError, ValueError):
            raise ValidationError({"image_size": "image_size is two whole numbers: height, width (e.g. 32,32)."}) from None
    if "split_ratios" in options:
        try:
            options["split_ratios"] = [float(share) for share in options["split_ratios"]]
        except (TypeError, ValueError):
            raise ValidationError({"split_ratios": "split_ratios is three shares: train, val, test (e.g. 0.8,0.1,0.1)."}) from None
    return options


def max_upload_bytes() -> int:
    return SiteSettings.current().max_upload_bytes


def check_upload_size(size: int) -> None:
    limit = max_upload_bytes()
    if size > limit:
        raise ValidationError({"file": f"The file is {_human(size)}, over the {_human(limit)} limit: "
                                       "split it, or ask an admin to raise the upload limit."})
    if size == 0:
        raise ValidationError({"file": "The file is empty: choose the file that holds your data."})


def _human(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"


def _stored_upload_path(original_name: str) -> str:
    """A generated name under uploads/: the original name is metadata only, never a path."""
    suffix = "".join(Path(original_name).suffixes[-2:]).lower()
    suffix = "".join(character for character in suffix if character.isalnum() or character == ".")[:16]
    return f"uploads/{uuid.uuid4().hex}{suffix}"


def _next_version(project: Project, name: str) -> tuple[int, Dataset | None]:
    previous = Dataset.objects.filter(project=project, name=name).order_by("-version").first()
    return ((previous.version + 1) if previous else 1), previous


@transaction.atomic
def dataset_create(*, project: Project, name: str, created_by, options: dict, file=None, upload: Upload | None = None,
                   ) -> Dataset:
    """Store an uploaded file under a generated name and queue its processing. Uploading under an
    existing name makes the next version, linked to the previous one."""
    _require_member(created_by, project)
    name = _clean_name(name)
    options = dataset_options(options)
    if (file is None) == (upload is None):
        raise ValidationError({"file": "Send the dataset as `file`, or the id of a finished chunked `upload`."})
    if upload is not None:
        if upload.project_id != project.pk or upload.created_by_id != created_by.pk:
            raise ValidationError({"upload": "That upload belongs to another project or user."})
        if not upload.complete:
            raise ValidationError({"upload": f"That upload has {upload.received} of {upload.size} bytes: "
                                             "send the rest first."})
        original_name, relative, size = upload.filename, upload.path, upload.size
    else:
        original_name, size = os.path.basename(getattr(file, "name", "") or "upload"), file.size
        check_upload_size(size)
        relative = _stored_upload_path(original_name)
        target = media_root() / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            for chunk in file.chunks():
                handle.write(chunk)
    Project.objects.select_for_update().filter(pk=project.pk).first()  # serialise version numbers per project
    version, previous = _next_version(project, name)
    dataset = Dataset.objects.create(
        project=project, name=name, version=version, previous=previous, source=DatasetSource.UPLOAD,
        original_filename=original_name[:255], upload_path=relative, size_bytes=size, options=options,
        created_by=created_by, progress_message="queued for processing",
    )
    if upload is not None:
        upload.delete()
    dataset_id = dataset.pk
    transaction.on_commit(lambda: _enqueue_processing(dataset_id))
    return dataset


def _enqueue_processing(dataset_id: int) -> None:
    from trainer_app.tasks import dataset_process

    dataset_process.apply_async(args=[dataset_id], queue="default")


def dataset_output_dir(dataset: Dataset) -> Path:
    return media_root() / "datasets" / str(dataset.pk)


class _ProgressReporter:
    """Writes progress to the row at most every PROGRESS_INTERVAL_S, so the page can show it live."""

    def __init__(self, dataset_id: int):
        self.dataset_id = dataset_id
        self.last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL_S and fraction < 1:
            return
        self.last = now
        Dataset.objects.filter(pk=self.dataset_id, status=DatasetStatus.PROCESSING).update(
            progress=max(0.0, min(1.0, float(fraction))), progress_message=str(message)[:255])


def dataset_process(*, dataset_id: int) -> Dataset:
    """Convert the stored upload into the canonical format. Nothing is half-written: the library
    stages into a temporary directory and renames it into place only on success."""
    from trainer_app.datasets import DatasetError, Limits, ProcessOptions, process_upload, register_directory

    dataset = Dataset.objects.get(pk=dataset_id)
    if dataset.status != DatasetStatus.PROCESSING:
        return dataset  # a redelivered task for a dataset already processed
    output_dir = dataset_output_dir(dataset)
    try:
        options = ProcessOptions(**_library_options(dataset.options),
                                 limits=Limits(max_upload_bytes=max_upload_bytes()))
        if dataset.source == DatasetSource.DIRECTORY:
            result = register_directory(Path(dataset.upload_path), output_dir=output_dir, options=options,
                                        progress=_ProgressReporter(dataset.pk))
        else:
            result = process_upload(media_root() / dataset.upload_path, original_name=dataset.original_filename,
                                    output_dir=output_dir, options=options, progress=_ProgressReporter(dataset.pk))
    except DatasetError as error:
        return _fail(dataset, str(error))
    except Exception as error:  # a bug, not bad input: say so, keep the details in the log
        logger.exception("processing dataset %s failed", dataset.pk)
        return _fail(dataset, f"Processing failed unexpectedly ({type(error).__name__}: {error}). "
                              "This is a bug in Trainyard, not your file: report it to an admin.")
    return _apply_result(dataset, result)


def _library_options(options: dict) -> dict:
    converted = dict(options)
    for key in ("image_size", "split_ratios", "feature_columns"):
        if key in converted:
            converted[key] = tuple(converted[key])
    return converted


def _fail(dataset: Dataset, message: str) -> Dataset:
    shutil.rmtree(dataset_output_dir(dataset), ignore_errors=True)
    Dataset.objects.filter(pk=dataset.pk).update(status=DatasetStatus.FAILED, error=message, progress=0.0,
                                                 progress_message="", processed_at=timezone.now())
    dataset.refresh_from_db()
    return dataset


def _apply_result(dataset: Dataset, result) -> Dataset:
    report = result.to_dict()
    meta = report["meta"]
    dataset.status = DatasetStatus.READY
    dataset.error = ""
    dataset.progress, dataset.progress_message = 1.0, "ready"
    dataset.detected_format = result.detected_format
    dataset.task, dataset.modality = meta["task"], meta["modality"]
    dataset.num_samples = sum(meta["splits"].values())
    dataset.num_classes = meta["num_classes"]
    dataset.input_shape, dataset.splits = meta["input_shape"], meta["splits"]
    dataset.class_names, dataset.feature_names = meta["class_names"], meta["feature_names"]
    dataset.sha256 = result.sha256
    dataset.storage_dir = str(Path(result.data_dir).resolve().relative_to(media_root().resolve())) \
        if Path(result.data_dir).resolve().is_relative_to(media_root().resolve()) else str(result.data_dir)
    dataset.statistics = {"features": report["feature_statistics"], "details": report["details"],
                          "normalization": meta["normalization"]}
    dataset.class_balance = report["class_counts"]
    dataset.warnings = report["warnings"] + [{"code": "skipped_file", "message": f"{item['name']}: {item['reason']}"}
                                             for item in report["skipped_files"]]
    dataset.preview = report["preview"]
    dataset.processed_at = timezone.now()
    dataset.save()
    return dataset


def dataset_delete(*, dataset: Dataset, actor) -> None:
    """Delete a version no run or sweep uses; its files go with it."""
    _require_member(actor, dataset.project)
    if dataset.is_locked or dataset.runs.exists():
        raise ValidationError({"dataset": f"{dataset} is used by runs and cannot be deleted: archive the runs "
                                          "or upload a new version instead."})
    paths = [dataset_output_dir(dataset)]
    # a registered directory is someone else's shared data: only our own converted copy goes
    is_upload = dataset.upload_path and dataset.source == DatasetSource.UPLOAD
    upload = media_root() / dataset.upload_path if is_upload else None
    dataset.delete()
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    if upload is not None:
        upload.unlink(missing_ok=True)


def dataset_lock(*, dataset: Dataset) -> None:
    """A version used by a run can no longer change."""
    Dataset.objects.filter(pk=dataset.pk, locked_at__isnull=True).update(locked_at=timezone.now())


def datasets_seed_samples(*, project: Project, created_by) -> list[Dataset]:
    """The scikit-learn sample datasets as ready datasets, once per project."""
    from trainer_app.datasets import sample_dataset

    seeded = []
    for name in SAMPLE_DATASETS:
        if Dataset.objects.filter(project=project, name=name).exists():
            continue
        dataset = Dataset.objects.create(project=project, name=name, source=DatasetSource.SAMPLE,
                                         original_filename=f"scikit-learn {name}", created_by=created_by)
        try:
            result = sample_dataset(name, dataset_output_dir(dataset))
        except Exception:
            dataset.delete()
            raise
        seeded.append(_apply_result(dataset, result))
    return seeded


def dataset_register_directory(*, project: Project, name: str, path: str, created_by, options: dict) -> Dataset:
    """Admins register a directory already on shared storage (ImageFolder or canonical); it is checked
    and converted by the same Celery task as an upload, and the source is never copied or changed."""
    from trainer_app.selectors import user_is_site_admin

    if not user_is_site_admin(created_by):
        raise PermissionDenied("Only admins can register directories on shared storage.")
    directory = Path(path)
    if not directory.is_absolute() or not directory.is_dir():
        raise ValidationError({"path": f"{path!r} is not an absolute path to a directory on the server: give the "
                                       "directory as the workers see it, e.g. /data/datasets/flowers."})
    name = _clean_name(name)
    options = dataset_options(options)
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        version, previous = _next_version(project, name)
        dataset = Dataset.objects.create(project=project, name=name, version=version, previous=previous,
                                         source=DatasetSource.DIRECTORY, original_filename=str(directory)[:255],
                                         upload_path=str(directory), options=options, created_by=created_by,
                                         progress_message="queued for processing")
        dataset_id = dataset.pk
        transaction.on_commit(lambda: _enqueue_processing(dataset_id))
    return dataset


# --- chunked, resumable uploads ------------------------------------------------------------------

def upload_start(*, project: Project, created_by, filename: str, size: int) -> Upload:
    _require_member(created_by, project)
    check_upload_size(size)
    relative = _stored_upload_path(filename)
    (media_root() / relative).parent.mkdir(parents=True, exist_ok=True)
    (media_root() / relative).touch()
    return Upload.objects.create(project=project, created_by=created_by, filename=os.path.basename(filename)[:255],
                                 size=size, path=relative)


def upload_append(*, upload: Upload, offset: int, chunk: bytes) -> Upload:
    """Append a chunk at `offset`, which must be where the upload stands (so a retried chunk is
    never written twice); returns the upload with its new `received`."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if offset != upload.received:
            raise ValidationError({"offset": f"This upload has {upload.received} bytes; send the chunk that "
                                             f"starts at {upload.received}, not {offset}."})
        if upload.received + len(chunk) > upload.size:
            raise ValidationError({"offset": f"That chunk goes past the declared size of {upload.size} bytes."})
        with open(media_root() / upload.path, "r+b") as handle:
            handle.seek(offset)
            handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        upload.received = offset + len(chunk)
        if upload.complete:
            upload.completed_at = timezone.now()
        upload.save(update_fields=["received", "completed_at"])
    return upload
