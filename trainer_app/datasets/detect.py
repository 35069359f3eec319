"""What an upload is, judged by its first bytes; the name's extension must agree with the content."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError
from .options import Limits

SNIFF_BYTES = 8192

_EXECUTABLES = (
    (b"\x7fELF", "an ELF executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O or Java class file"),
    (b"#!", "a script"),
)
_OTHER_BINARIES = (
    (b"\x93NUMPY", "npy", "a single .npy array"),
    (b"\x89PNG\r\n\x1a\n", "image", "a single PNG image"),
    (b"\xff\xd8\xff", "image", "a single JPEG image"),
    (b"%PDF", "other", "a PDF document"),
    (b"BZh", "other", "a bzip2 file"),
    (b"\xfd7zXZ\x00", "other", "an xz file"),
    (b"7z\xbc\xaf\x27\x1c", "other", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "other", "a RAR archive"),
    (b"SQLite format 3\x00", "other", "an SQLite database"),
)
_TEXT_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".tab": "tsv", ".data": "csv"}
_CONTAINER_EXTENSIONS = {".zip": "zip", ".npz": "npz", ".tar": "tar", ".tgz": "gzip", ".gz": "gzip"}


@dataclass(frozen=True)
class Detected:
    kind: str
    """`text` (CSV/TSV), `zip`, `npz`, `tar` (plain or gzipped)."""
    extension_kind: str | None
    """What the name's extension suggests (`csv`, `tsv`, `zip`, `npz`, `tar`, `gzip`), or None."""
    head: bytes


def check_size(path: Path, limits: Limits) -> int:
    """Refuse empty files and files over the limit using stat alone, before reading anything."""
    size = os.stat(path).st_size
    if size == 0:
        raise DatasetError("the file is empty; upload a file with data in it", code="empty")
    if size > limits.max_upload_bytes:
        raise DatasetError(f"the file is {size:,} bytes, over the limit of {limits.max_upload_bytes:,} bytes; "
                           "upload a smaller file or ask an admin to raise the limit", code="too_large")
    return size


def extension_kind(original_name: str) -> str | None:
    name = original_name.lower().strip()
    if name.endswith((".tar.gz", ".tgz")):
        return "gzip"
    suffix = os.path.splitext(name)[1]
    return _TEXT_EXTENSIONS.get(suffix) or _CONTAINER_EXTENSIONS.get(suffix)


def detect(path: Path, original_name: str) -> Detected:
    """Classify the upload by magic bytes and refuse content that is unsafe or does not match its name."""
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    expected = extension_kind(original_name)
    executables = _EXECUTABLES
    if head.startswith(b"MZ") and b"\x00" in head[:64]:  # a DOS/PE header; text never holds NUL bytes
        executables = ((b"MZ", "a Windows (PE) executable"),)
    for magic, description in executables:
        if head.startswith(magic):
            raise DatasetError(f"the file is {description}, not a dataset; it was refused. Upload a CSV/TSV, "
                               "a ZIP of images, an .npz, or an MNIST/CIFAR archive", code="content_mismatch")
    kind = _content_kind(head)
    if kind is None:
        for magic, _, description in _OTHER_BINARIES:
            if head.startswith(magic):
                hint = (" Save X and y together with numpy.savez as an .npz" if magic == b"\x93NUMPY" else
                        " Put images in class folders and upload them as one ZIP" if _ == "image" else "")
                raise DatasetError(f"the file is {description}, which is not a supported dataset format.{hint}",
                                   code="unsupported")
        kind = "text"
    _check_agreement(kind, expected, head)
    if kind == "zip" and expected == "npz":
        kind = "npz"
    return Detected(kind=kind, extension_kind=expected, head=head)


def _content_kind(head: bytes) -> str | None:
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    return None


_DESCRIPTIONS = {"zip": "a ZIP archive", "tar": "a tar or gzip archive", "text": "text",
                 "csv": "a CSV file", "tsv": "a TSV file", "npz": "an .npz archive", "gzip": "a gzip archive"}


def _check_agreement(kind: str, expected: str | None, head: bytes) -> None:
    if expected is None:
        return
    agrees = {"csv": kind == "text", "tsv": kind == "text", "zip": kind == "zip", "npz": kind == "zip",
              "tar": kind == "tar", "gzip": kind == "tar"}[expected]
    if not agrees:
        raise DatasetError(f"the file is named like {_DESCRIPTIONS[expected]} but its content is "
                           f"{_DESCRIPTIONS[kind]}; it was refused. Rename it to match its content or upload "
                           "the right file", code="content_mismatch")
