"""Class folders of images (a ZIP or a directory, ImageFolder layout) to the canonical image format.

The target size and mode are guessed from a sample of headers and checked against every decoded
image: if the most common size or the colour mode turns out different, the (rare) archive is decoded
again with the right choice, so the default is exact without a separate full header pass. Images are
decoded by a small process pool when there are many, and streamed into each split's .npy file.
"""
from __future__ import annotations

import logging
import os
import multiprocessing
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from trainer_app.engine.dataset_format import SPLITS, array_paths

from .archives import ByteBudget
from .errors import DatasetError
from .finish import Converted
from .image_decode import (GRAYSCALE_MODES, IMAGE_EXTENSIONS, SourceSpec, decode_batch, read_header, worker_decode,
                           worker_start)
from .options import ProcessOptions
from .result import Preview, PreviewImage, ProcessWarning, SkippedFile
from .splits import TEST, TRAIN, VAL, assign_splits, carve_validation
from .statistics import DuplicateCounter
from .storage import NpyAppender

logger = logging.getLogger(__name__)

HEADER_SAMPLE = 200
POOL_MIN_IMAGES = 2000
BATCH_BYTES = 4 << 20
THUMBNAILS_PER_CLASS = 4
PREVIEW_CLASSES = 100
SPLIT_FOLDERS = {"train": TRAIN, "training": TRAIN, "val": VAL, "valid": VAL, "validation": VAL, "test": TEST,
                 "testing": TEST}
_METADATA_FILES = {".ds_store", "thumbs.db", "desktop.ini"}


@dataclass
class Layout:
    names: list[str]
    labels: np.ndarray
    class_names: list[str]
    splits: np.ndarray | None
    """Split id per image when the folders give it (train/ val/ test/), else None."""
    skipped: list[SkippedFile] = field(default_factory=list)


def find_layout(names: list[str], links: list[str] = ()) -> Layout:
    """ImageFolder layout: class/…/image, optionally under one top folder and/or train|val|test folders."""
    skipped = [SkippedFile(name, "symbolic link (not followed)") for name in links]
    candidates = []
    for name in names:
        parts = tuple(part for part in name.split("/") if part)
        base = parts[-1].lower()
        if "__MACOSX" in parts or base.startswith("._") or base in _METADATA_FILES:
            skipped.append(SkippedFile(name, "operating-system metadata file"))
        elif os.path.splitext(base)[1] not in IMAGE_EXTENSIONS:
            skipped.append(SkippedFile(name, f"not an image (extension {os.path.splitext(base)[1] or 'none'!r})"))
        else:
            candidates.append((name, parts))
    prefix, split_level = _prefix_and_split_level([parts for _, parts in candidates])
    class_depth = prefix + (1 if split_level else 0)
    kept, classes, split_ids = [], [], []
    for name, parts in candidates:
        if len(parts) < class_depth + 2:
            skipped.append(SkippedFile(name, "not inside a class folder"))
            continue
        kept.append(name)
        classes.append(parts[class_depth])
        if split_level:
            split_ids.append(SPLIT_FOLDERS[parts[prefix].lower()])
    class_names = sorted(set(classes))
    if len(class_names) < 2:
        raise DatasetError(f"found {len(class_names)} class folder(s) with images; an image dataset needs at least "
                           "two: put each class's images in its own folder (cat/1.png, dog/2.png) and zip the "
                           "folders", code="bad_layout")
    index = {name: position for position, name in enumerate(class_names)}
    labels = np.array([index[name] for name in classes], dtype=np.int64)
    return Layout(kept, labels, class_names, np.array(split_ids, dtype=np.int8) if split_level else None, skipped)


def _prefix_and_split_level(paths: list[tuple[str, ...]]) -> tuple[int, bool]:
    def split_layout_at(level: int) -> bool:
        tops = {parts[level].lower() for parts in paths if len(parts) > level + 2}
        return bool(tops) and tops <= set(SPLIT_FOLDERS) and "train" in {SPLITS[SPLIT_FOLDERS[t]] for t in tops}

    if not paths:
        return 0, False
    if split_layout_at(0):
        return 0, True
    single_top = len({parts[0] for parts in paths}) == 1 and all(len(parts) >= 3 for parts in paths)
    if single_top:
        return 1, split_layout_at(1)
    return 0, False


def convert_image_source(source, spec: SourceSpec, staging: Path, options: ProcessOptions, progress,
                         detected_format: str) -> Converted:
    layout = find_layout(source.names(), getattr(source, "links", []))
    if layout.splits is None:
        assignment = assign_splits(len(layout.names), options.split_ratios, options.seed, layout.labels)
    else:
        assignment = layout.splits.copy()
        if not (assignment == VAL).any():
            train = np.flatnonzero(assignment == TRAIN)
            carved = carve_validation(layout.labels[train], options.split_ratios[1], options.seed, True)
            assignment[train[carved == VAL]] = VAL
    size, mode = _guess_target(source, layout.names, options)
    outcome = _decode_all(source, spec, layout, assignment, size, mode, staging, options, progress)
    better = _better_target(outcome, size, mode, options)
    if better:
        logger.info("image target %s %s differs from the sample's guess %s %s; decoding again", *better, size, mode)
        size, mode = better
        outcome = _decode_all(source, spec, layout, assignment, size, mode, staging, options, progress)
    _check_failures(outcome.failures, len(layout.names), options)
    preview = write_thumbnails(staging, staging, outcome.labels, layout.class_names)
    warnings = []
    if len(outcome.native_sizes) > 1 or next(iter(outcome.native_sizes), (size[0], size[1])) != tuple(size):
        warnings.append(ProcessWarning("resized", f"images came in {len(outcome.native_sizes)} size(s); all were "
                                       f"resized to {size[0]}×{size[1]} (height×width)"))
    skipped = layout.skipped + [SkippedFile(name, reason) for name, reason in outcome.failures]
    channels = 1 if mode == "L" else 3
    return Converted(
        detected_format=detected_format, task="classification", modality="image",
        input_shape=[channels, *size], class_names=layout.class_names, warnings=warnings, skipped_files=skipped,
        preview=preview, duplicates=outcome.duplicates,
        details={"image_size": list(size), "image_mode": mode, "images": len(layout.names),
                 "native_sizes": {f"{h}x{w}": n for (h, w), n in outcome.native_sizes.most_common(10)},
                 "predefined_splits": layout.splits is not None})


def _guess_target(source, names: list[str], options: ProcessOptions) -> tuple[tuple[int, int], str]:
    step = max(1, len(names) // HEADER_SAMPLE)
    headers = [read_header(source.read(name, max_bytes=options.limits.max_extracted_bytes))
               for name in names[::step][:HEADER_SAMPLE]]
    headers = [header for header in headers if header]
    sizes = Counter(size for size, _ in headers)
    size = options.image_size or _capped(sizes.most_common(1)[0][0] if sizes else (32, 32), options)
    gray = all(mode in GRAYSCALE_MODES for _, mode in headers)
    return tuple(size), options.image_mode or ("L" if gray else "RGB")


def _capped(size: tuple[int, int], options: ProcessOptions) -> tuple[int, int]:
    height, width = size
    cap = options.limits.max_image_side
    if max(height, width) <= cap:
        return height, width
    scale = cap / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass
class _Outcome:
    labels: list[np.ndarray]
    """Labels written, per split."""
    native_sizes: Counter
    any_color: bool
    failures: list[tuple[str, str]]
    duplicates: int


def _better_target(outcome: _Outcome, size, mode, options: ProcessOptions):
    if not outcome.native_sizes:
        return None
    best_size = options.image_size or _capped(outcome.native_sizes.most_common(1)[0][0], options)
    best_mode = options.image_mode or ("RGB" if outcome.any_color else "L")
    if tuple(best_size) != tuple(size) or best_mode != mode:
        return tuple(best_size), best_mode
    return None


def _decode_all(source, spec, layout: Layout, assignment, size, mode, staging, options, progress) -> _Outcome:
    channels = 1 if mode == "L" else 3
    per_image = channels * size[0] * size[1]
    batch = int(np.clip(BATCH_BYTES // per_image, 16, 512))
    tasks, metadata = [], []
    for split_id in range(len(SPLITS)):
        chosen = np.flatnonzero(assignment == split_id)
        for start in range(0, len(chosen), batch):
            rows = chosen[start:start + batch]
            tasks.append(([layout.names[i] for i in rows], tuple(size), mode, options.limits))
            metadata.append((split_id, layout.labels[rows]))
    appenders = [NpyAppender(array_paths(staging, split)[0], np.uint8, (channels, *size),
                             int((assignment == split_id).sum())) for split_id, split in enumerate(SPLITS)]
    labels: list[list[np.ndarray]] = [[] for _ in SPLITS]
    natives, failures, any_color = Counter(), [], False
    duplicates, budget, done = DuplicateCounter(), ByteBudget(options.limits), 0
    try:
        for (split_id, batch_labels), task, result in zip(metadata, tasks, _run(source, spec, tasks, options)):
            if result.fatal:
                raise DatasetError(result.fatal[0], code=result.fatal[1])
            budget.spend(result.bytes_read)
            appenders[split_id].append(result.images)
            labels[split_id].append(batch_labels[result.decoded])
            duplicates.add(result.images)
            natives.update((height, width) for height, width, _ in result.natives)
            any_color = any_color or any(native_mode not in GRAYSCALE_MODES for _, _, native_mode in result.natives)
            failures += [(task[0][position], reason) for position, reason in result.failures]
            done += len(task[0])
            progress(0.9 * done / max(len(layout.names), 1), f"decoding images ({done:,} of {len(layout.names):,})")
    finally:
        for appender in appenders:
            appender.close()
    written = [np.concatenate(parts) if parts else np.zeros(0, np.int64) for parts in labels]
    for split, split_labels in zip(SPLITS, written):
        appender = NpyAppender(array_paths(staging, split)[1], np.int64, (), len(split_labels))
        appender.append(split_labels)
        appender.close()
    return _Outcome(written, natives, any_color, failures, duplicates.duplicates())


def _run(source, spec: SourceSpec, tasks: list, options: ProcessOptions):
    """Batch results in task order: from a process pool for large jobs, else in this process.

    A process that may not have children (a daemonic worker) or a pool that fails to start decodes
    in this process instead."""
    images = sum(len(task[0]) for task in tasks)
    workers = options.workers or default_workers()
    use_pool = workers > 1 and images >= POOL_MIN_IMAGES and not multiprocessing.current_process().daemon
    if use_pool:
        context = multiprocessing.get_context("spawn")  # no inherited locks, sockets or database connections
        executor = ProcessPoolExecutor(workers, mp_context=context, initializer=worker_start,
                                       initargs=(spec,))
        try:
            first = executor.submit(worker_decode, tasks[0]).result()
        except (AssertionError, OSError, BrokenProcessPool) as error:
            logger.warning("image decoding processes could not start (%s); decoding in this process", error)
            executor.shutdown(cancel_futures=True)
        else:
            with executor:
                yield first
                yield from _pooled(executor, tasks[1:], workers)
            return
    for names, size, mode, limits in tasks:
        yield decode_batch(source, names, size, mode, limits)


def default_workers() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if cpus <= 2 else min(4, cpus - 1)


def _pooled(executor: ProcessPoolExecutor, tasks: list, workers: int):
    """At most a few batches in flight, so decoded images never pile up in memory."""
    pending = deque()
    try:
        for task in tasks:
            pending.append(executor.submit(worker_decode, task))
            if len(pending) >= 3 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _check_failures(failures: list[tuple[str, str]], total: int, options: ProcessOptions) -> None:
    if not failures:
        return
    if len(failures) == total or len(failures) > options.limits.max_bad_image_share * total:
        examples = "; ".join(f"{name!r}: {reason}" for name, reason in failures[:3])
        raise DatasetError(f"{len(failures)} of {total} images cannot be read (for example {examples}); more than "
                           f"{options.limits.max_bad_image_share:.0%} are bad, so the archive is refused: check "
                           "that the files are complete PNG/JPEG images", code="bad_images")


def write_thumbnails(output: Path, data_dir: Path, labels: list[np.ndarray], class_names: list[str]) -> Preview:
    """A few PNG thumbnails per class under ``output/preview/``, taken from the arrays in ``data_dir``."""
    folder = output / "preview"
    folder.mkdir()
    images = []
    arrays = {split: np.load(array_paths(data_dir, split)[0], mmap_mode="r") for split in SPLITS}
    for class_index, class_name in enumerate(class_names[:PREVIEW_CLASSES]):
        chosen = []
        for split, split_labels in zip(SPLITS, labels):
            rows = np.flatnonzero(split_labels == class_index)[:THUMBNAILS_PER_CLASS - len(chosen)]
            chosen += [(split, int(row)) for row in rows]
        for number, (split, row) in enumerate(chosen):
            relative = f"preview/class{class_index:04d}_{number}.png"
            save_thumbnail(np.asarray(arrays[split][row]), output / relative)
            images.append(PreviewImage(class_index, class_name, split, row, relative))
    del arrays
    return Preview(images=images)


def save_thumbnail(sample: np.ndarray, path: Path) -> None:
    """A C×H×W uint8 sample as a PNG of 64..128 pixels on its longer side (nearest pixels when enlarged)."""
    picture = Image.fromarray(sample[0] if sample.shape[0] == 1 else sample.transpose(1, 2, 0))
    longest = max(picture.size)
    if longest < 64:
        factor = -(-64 // longest)
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)
    elif longest > 128:
        picture.thumbnail((128, 128))
    picture.save(path, format="PNG")
