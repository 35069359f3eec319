"""The standard archives of MNIST / Fashion-MNIST (IDX, gzipped) and CIFAR-10/100 (binary version).

Recognised by their files' standard names, wherever they sit in the archive or directory; their own
train/test split is kept and validation is carved from train, stratified.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from .archives import ByteBudget, gunzip
from .arrays import split_arrays, write_arrays
from .errors import DatasetError
from .finish import Converted
from .options import ProcessOptions

IDX_FILES = {"train-images-idx3-ubyte": "train_images", "train-labels-idx1-ubyte": "train_labels",
             "t10k-images-idx3-ubyte": "test_images", "t10k-labels-idx1-ubyte": "test_labels"}
CIFAR10_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin", "batches.meta.txt"]
CIFAR100_FILES = ["train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt"]
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]


def _idx_key(base: str) -> str | None:
    name = base.lower().removesuffix(".gz").replace(".", "-")
    return IDX_FILES.get(name)


def is_standard_file(name: str) -> bool:
    base = PurePosixPath(name).name
    return _idx_key(base) is not None or base in CIFAR10_FILES or base in CIFAR100_FILES


def recognise(names: list[str]) -> tuple[str, dict[str, str]] | None:
    """(kind, {role: entry name}) when the names are a standard archive's, else None."""
    by_base = {PurePosixPath(name).name: name for name in names}
    idx = {_idx_key(base): name for base, name in by_base.items() if _idx_key(base)}
    if len(idx) == 4:
        return "mnist_idx", idx
    if idx:
        missing = sorted(set(IDX_FILES) - {base for base in IDX_FILES if IDX_FILES[base] in idx})
        raise DatasetError(f"this looks like an MNIST archive but {', '.join(missing)} (.gz) is missing; the four "
                           "IDX files must all be there", code="bad_archive")
    if "test_batch.bin" in by_base or "data_batch_1.bin" in by_base:
        missing = [name for name in CIFAR10_FILES[:6] if name not in by_base]
        if missing:
            raise DatasetError(f"this looks like CIFAR-10 (binary version) but {', '.join(missing)} is missing",
                               code="bad_archive")
        return "cifar10_binary", {base: by_base[base] for base in CIFAR10_FILES if base in by_base}
    if "train.bin" in by_base and "test.bin" in by_base:
        return "cifar100_binary", {base: by_base[base] for base in CIFAR100_FILES if base in by_base}
    return None


def convert_standard(kind: str, files: dict[str, str], read: Callable[[str], bytes], staging: Path,
                     options: ProcessOptions, progress, hint: str) -> Converted:
    """``read(entry name) -> bytes``; ``hint`` (names seen) tells Fashion-MNIST from MNIST."""
    budget = ByteBudget(options.limits)
    if kind == "mnist_idx":
        fashion = "fashion" in hint.lower()
        arrays = {role: _read_idx(name, read(name), options, budget) for role, name in files.items()}
        train, test = _pair(arrays, "train"), _pair(arrays, "test")
        class_names = FASHION_NAMES if fashion else [str(digit) for digit in range(10)]
        kind = "fashion_mnist_idx" if fashion else kind
    elif kind == "cifar10_binary":
        batches = [_read_cifar(files[name], read(files[name]), 1) for name in CIFAR10_FILES[:5]]
        train = (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
        test = _read_cifar(files["test_batch.bin"], read(files["test_batch.bin"]), 1)
        class_names = _names(files.get("batches.meta.txt"), read, CIFAR10_NAMES)
    else:
        train = _read_cifar(files["train.bin"], read(files["train.bin"]), 2)
        test = _read_cifar(files["test.bin"], read(files["test.bin"]), 2)
        class_names = _names(files.get("fine_label_names.txt"), read, [str(i) for i in range(100)])
    progress(0.5, "read the archive")
    highest = int(max(train[1].max(initial=0), test[1].max(initial=0)))
    if highest >= len(class_names):
        raise DatasetError(f"a label is {highest} but there are only {len(class_names)} class names",
                           code="bad_labels")
    converted = Converted(detected_format=kind, task="classification", modality="image",
                          input_shape=list(train[0].shape[1:]), class_names=class_names,
                          details={"predefined_splits": True})
    splits = split_arrays(train[0], train[1], "classification", options, test=test)
    progress(0.6, "writing splits")
    return write_arrays(staging, splits, converted)


def _pair(arrays: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.ndim != 3 or labels.ndim != 1:
        raise DatasetError(f"the {split} IDX files have the wrong shapes (images {images.shape}, labels "
                           f"{labels.shape})", code="bad_archive")
    if len(images) != len(labels):
        raise DatasetError(f"the {split} IDX files disagree: {len(images)} images but {len(labels)} labels",
                           code="bad_archive")
    return images[:, None], labels.astype(np.int64)


def _read_idx(name: str, data: bytes, options: ProcessOptions, budget: ByteBudget) -> np.ndarray:
    if data[:2] == b"\x1f\x8b":
        data = gunzip(name, data, options.limits, budget)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DatasetError(f"{name!r} is not an unsigned-byte IDX file (bad magic number)", code="bad_archive")
    dimensions = data[3]
    header = 4 + 4 * dimensions
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dimensions))
    if len(data) != header + int(np.prod(shape, dtype=np.int64)):
        raise DatasetError(f"{name!r} holds {len(data) - header} bytes of data but its header says shape {shape}; "
                           "the file is truncated or corrupt", code="bad_archive")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _read_cifar(name: str, data: bytes, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    record = label_bytes + 3072
    if not data or len(data) % record:
        raise DatasetError(f"{name!r} is {len(data)} bytes, not a whole number of {record}-byte CIFAR records; the "
                           "file is truncated or not the binary version", code="bad_archive")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), rows[:, label_bytes - 1].astype(np.int64)


def _names(entry: str | None, read: Callable[[str], bytes], default: list[str]) -> list[str]:
    if entry is None:
        return default
    names = [line.strip() for line in read(entry).decode("utf-8", "replace").splitlines() if line.strip()]
    return names or default
