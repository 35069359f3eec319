"""Small synthetic inputs in the exact layouts the library reads: PNGs, ZIPs, CSVs, IDX, CIFAR."""
from __future__ import annotations

import gzip
import io
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(size=(8, 8), mode="RGB", seed=0, image_format="PNG") -> bytes:
    rng = np.random.default_rng(seed)
    height, width = size
    shape = (height, width) if mode == "L" else (height, width, 4 if mode == "RGBA" else 3)
    picture = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), "L" if mode == "L" else
                              ("RGBA" if mode == "RGBA" else "RGB"))
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format)
    return buffer.getvalue()


def image_zip(path: Path, classes=("cat", "dog"), per_class=6, size=(8, 8), mode="RGB", top="", extra=None,
              compression=zipfile.ZIP_STORED) -> Path:
    """A ZIP in ImageFolder layout; ``extra`` maps entry name to bytes added as they are."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for class_index, name in enumerate(classes):
            for number in range(per_class):
                archive.writestr(f"{top}{name}/{number}.png",
                                 png_bytes(size, mode, seed=class_index * 1000 + number))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def zip_with_symlink(path: Path) -> Path:
    image_zip(path)
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo("cat/link.png")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    return path


def zip_bomb(path: Path, megabytes=30) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cat/0.png", png_bytes())
        archive.writestr("dog/bomb.png", b"\x00" * (megabytes << 20))
    return path


def csv_file(path: Path, text: str, encoding="utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def table_text(rows=60, seed=0, delimiter=",", header=True, classes=("a", "b", "c")) -> str:
    rng = np.random.default_rng(seed)
    lines = [delimiter.join(["x1", "x2", "colour", "label"])] if header else []
    for i in range(rows):
        label = classes[i % len(classes)]
        lines.append(delimiter.join([f"{rng.normal() + i % len(classes):.4f}", str(int(rng.integers(0, 100))),
                                     ["red", "green", "blue"][int(rng.integers(0, 3))], label]))
    return "\n".join(lines) + "\n"


def idx_images(images: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", *images.shape) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", len(labels)) + labels.astype(np.uint8).tobytes()


def mnist_files(train=40, test=20, seed=0) -> dict[str, bytes]:
    """The four gzipped IDX files under their standard names."""
    rng = np.random.default_rng(seed)
    files = {}
    for prefix, count in (("train", train), ("t10k", test)):
        files[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(idx_images(rng.integers(0, 256, (count, 28, 28))))
        files[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(idx_labels(np.arange(count) % 10))
    return files


def cifar10_files(per_batch=20, seed=0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)

    def batch(count):
        labels = (np.arange(count) % 10).astype(np.uint8)[:, None]
        return np.hstack([labels, rng.integers(0, 256, (count, 3072), dtype=np.uint8)]).tobytes()

    files = {f"cifar-10-batches-bin/data_batch_{i}.bin": batch(per_batch) for i in range(1, 6)}
    files["cifar-10-batches-bin/test_batch.bin"] = batch(per_batch)
    files["cifar-10-batches-bin/batches.meta.txt"] = "\n".join(
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]).encode() + b"\n\n"
    return files


def cifar100_files(train=200, test=100, seed=0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)

    def records(count):
        fine = (np.arange(count) % 100).astype(np.uint8)[:, None]
        return np.hstack([fine // 5, fine, rng.integers(0, 256, (count, 3072), dtype=np.uint8)]).tobytes()

    return {"cifar-100-binary/train.bin": records(train), "cifar-100-binary/test.bin": records(test),
            "cifar-100-binary/fine_label_names.txt": "\n".join(f"fine{i}" for i in range(100)).encode(),
            "cifar-100-binary/coarse_label_names.txt": "\n".join(f"coarse{i}" for i in range(20)).encode()}


def zip_of(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def tar_of(path: Path, files: dict[str, bytes], gzipped=True, links: dict[str, str] | None = None,
           hard_links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz" if gzipped else "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
        for name, target in (hard_links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.LNKTYPE, target
            archive.addfile(info)
    return path


def npz_file(path: Path, **arrays) -> Path:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path
