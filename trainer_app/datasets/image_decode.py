"""Decoding images into uint8 arrays of one size and mode; runs in this process or in worker processes.

Only PNG, JPEG, BMP, GIF and WebP decoders are allowed (never Pillow's other plugins, some of which
call external programs). An image over the pixel limit is an error for the whole upload (Pillow's
DecompressionBombWarning is turned into an error); an undecodable image is skipped with the reason.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .archives import SafeZip
from .errors import DatasetError
from .options import Limits

ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


class BadImage(Exception):
    """One image cannot be used; it is skipped and listed."""


class DirectorySource:
    """Regular files under a directory, read with a size cap; links are never followed."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = Path(root)
        self.limits = limits
        self.links: list[str] = []

    def names(self) -> list[str]:
        names = []
        for directory, folders, files in os.walk(self.root, followlinks=False):
            relative = Path(directory).relative_to(self.root)
            for name in sorted(files) + [f for f in folders if os.path.islink(os.path.join(directory, f))]:
                path = Path(directory) / name
                target = (relative / name).as_posix()
                if path.is_symlink():
                    self.links.append(target)
                elif path.is_file():
                    names.append(target)
            folders.sort()
        return sorted(names)

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        path = self.root / name
        limit = self.limits.max_extracted_bytes if max_bytes is None else max_bytes
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW)) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise DatasetError(f"file {name!r} is larger than {limit:,} bytes", code="too_large")
        return data


@dataclass(frozen=True)
class SourceSpec:
    """Picklable description of an image source, to reopen it in a worker process."""

    kind: str
    """`zip` or `directory`."""
    path: str
    limits: Limits


def open_source(spec: SourceSpec):
    if spec.kind == "zip":
        return SafeZip(Path(spec.path), spec.limits)
    return DirectorySource(Path(spec.path), spec.limits)


def read_header(data: bytes) -> tuple[tuple[int, int], str] | None:
    """((height, width), mode) from an image's header, or None if it is not a readable image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            return (image.height, image.width), image.mode
    except Exception:  # noqa: BLE001 - a sample that cannot be read only does not vote
        return None


def decode_image(data: bytes, size: tuple[int, int], mode: str, max_pixels: int):
    """(array C×H×W uint8, (native height, width, mode)); BadImage to skip, DatasetError to refuse."""
    height, width = size
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise DatasetError(f"an image is larger than the pixel limit ({error}); images this large are "
                               "refused as possible decompression bombs: resize them first",
                               code="image_too_large") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise BadImage("not a PNG, JPEG, BMP, GIF or WebP image (content does not match)") from None
        if image.width * image.height > max_pixels:
            raise DatasetError(f"an image of {image.width}×{image.height} pixels is over the limit of "
                               f"{max_pixels:,} pixels; resize the images first", code="image_too_large")
        native = (image.height, image.width, image.mode)
        try:
            if image.format == "JPEG":
                image.draft(mode, (width, height))
            image.load()
            converted = _to_mode(image, mode)
            if converted.size != (width, height):
                converted = converted.resize((width, height), Image.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, EOFError, IndexError) as error:
            raise BadImage(f"cannot be decoded ({error})") from None
    return (array[None] if mode == "L" else array.transpose(2, 0, 1)), native


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode == mode:
        return image
    if mode == "RGB" and (image.mode in ("P", "PA", "LA", "La") or "A" in image.mode):
        image = image.convert("RGBA")
    if mode == "L" and image.mode.startswith(("I", "F")):
        values = np.asarray(image, dtype=np.float64)
        if values.max(initial=0) > 255:  # 16-bit samples
            values = values / 257
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    return image.convert(mode)


@dataclass
class BatchResult:
    images: np.ndarray
    decoded: list[int]
    """Positions in the batch of the images decoded (rows of ``images``)."""
    natives: list[tuple[int, int, str]]
    failures: list[tuple[int, str]] = field(default_factory=list)
    bytes_read: int = 0
    fatal: tuple[str, str] | None = None
    """(message, code) of an error that refuses the whole upload."""


def decode_batch(source, names: list[str], size: tuple[int, int], mode: str, limits: Limits) -> BatchResult:
    channels = 1 if mode == "L" else 3
    images = np.empty((len(names), channels, *size), dtype=np.uint8)
    result = BatchResult(images=images, decoded=[], natives=[])
    for position, name in enumerate(names):
        try:
            data = source.read(name)
            result.bytes_read += len(data)
            array, native = decode_image(data, size, mode, limits.max_image_pixels)
        except BadImage as reason:
            result.failures.append((position, str(reason)))
            continue
        except DatasetError as error:
            result.fatal = (f"{name!r}: {error.message}", error.code)
            break
        images[len(result.decoded)] = array
        result.decoded.append(position)
        result.natives.append(native)
    result.images = images[:len(result.decoded)]
    return result


_worker_source = None


def worker_start(spec: SourceSpec) -> None:
    global _worker_source
    _worker_source = open_source(spec)


def worker_decode(task: tuple[list[str], tuple[int, int], str, Limits]) -> BatchResult:
    names, size, mode, limits = task
    return decode_batch(_worker_source, names, size, mode, limits)
