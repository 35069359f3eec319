"""Writing a dataset version safely: a staging directory renamed into place, streamed .npy files.

Nothing half-written is ever visible: every file goes into a hidden staging directory beside the
output directory, which is renamed to the output directory only when processing succeeded, and
removed on any failure (including cancellation).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import DatasetError

_HEADER_BYTES = 128
"""Fixed .npy header size, so a header can be rewritten in place when fewer rows were written."""


@contextlib.contextmanager
def staged_output(output_dir: Path) -> Iterator[Path]:
    """Yield an empty staging directory; rename it to ``output_dir`` on success, delete it on failure."""
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise DatasetError(f"the output directory {output_dir} already exists and is not empty; "
                           "process into a new directory", code="output_exists")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.parent / f".{output_dir.name}.staging-{secrets.token_hex(6)}"
    staging.mkdir()
    try:
        yield staging
        _fsync_directory(staging)
        if output_dir.exists():
            output_dir.rmdir()
        os.rename(staging, output_dir)
        _fsync_directory(output_dir.parent)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise DatasetError("the storage ran out of space while writing the dataset; free space or ask an "
                               "admin, then try again", code="no_space") from error
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": tuple(shape)})
    prefix = b"\x93NUMPY\x01\x00"
    body_length = _HEADER_BYTES - len(prefix) - 2
    body = text.encode("latin1").ljust(body_length - 1) + b"\n"
    if len(body) != body_length:
        raise ValueError(f"shape {shape} does not fit a {_HEADER_BYTES}-byte .npy header")
    return prefix + body_length.to_bytes(2, "little") + body


class NpyAppender:
    """A .npy file written row block by row block with O(block) memory.

    The header states ``capacity`` rows up front; ``close()`` rewrites it if fewer were appended
    (skipped images) and truncates the file. The result is a plain .npy that ``numpy.load`` maps.
    """

    def __init__(self, path: Path, dtype, sample_shape: tuple[int, ...], capacity: int) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.sample_shape = tuple(sample_shape)
        self.capacity = capacity
        self.rows = 0
        self._handle = open(self.path, "wb")
        self._handle.write(_header(self.dtype, (capacity, *self.sample_shape)))

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.sample_shape:
            raise ValueError(f"{self.path.name}: block of shape {block.shape}, expected (*, {self.sample_shape})")
        if self.rows + len(block) > self.capacity:
            raise ValueError(f"{self.path.name}: more than {self.capacity} rows appended")
        self._handle.write(block.data)
        self.rows += len(block)

    def close(self) -> None:
        if self._handle.closed:
            return
        if self.rows != self.capacity:
            self._handle.seek(0)
            self._handle.write(_header(self.dtype, (self.rows, *self.sample_shape)))
            self._handle.truncate(_HEADER_BYTES + self.rows * self.dtype.itemsize * int(np.prod(self.sample_shape)))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()


def _open_npy(path: Path):
    handle = open(path, "rb")
    try:
        version = np.lib.format.read_magic(handle)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran_order, dtype = read_header(handle)
    except ValueError as error:
        handle.close()
        raise DatasetError(f"{path.name} is not a readable .npy file ({error})", code="bad_canonical") from None
    if fortran_order or dtype.hasobject:
        handle.close()
        raise DatasetError(f"{path.name} is not a plain C-ordered numeric array", code="bad_canonical")
    return handle, shape, dtype


def npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    handle, shape, dtype = _open_npy(path)
    handle.close()
    return shape, dtype


def read_npy_chunks(path: Path, rows_per_chunk: int = 65536) -> Iterator[np.ndarray]:
    """Read a .npy file block by block with plain reads (no memory map, so resident memory stays small)."""
    handle, shape, dtype = _open_npy(path)
    with handle:
        sample_shape = shape[1:]
        row_bytes = dtype.itemsize * int(np.prod(sample_shape))
        remaining = shape[0] if shape else 0
        while remaining > 0:
            count = min(rows_per_chunk, remaining)
            block = np.empty((count, *sample_shape), dtype=dtype)
            if handle.readinto(memoryview(block).cast("B")) != count * row_bytes:
                raise DatasetError(f"{path.name} is shorter than its header says", code="bad_canonical")
            remaining -= count
            yield block


def rewrite_npy_chunks(path: Path, transform, rows_per_chunk: int = 65536) -> None:
    """Apply ``transform(block) -> block`` to every block of a .npy file, in place."""
    handle, shape, dtype = _open_npy(path)
    data_start = handle.tell()
    handle.close()
    offset_rows = 0
    with open(path, "r+b") as writer:
        for block in read_npy_chunks(path, rows_per_chunk):
            row_bytes = block.nbytes // max(len(block), 1)
            writer.seek(data_start + offset_rows * row_bytes)
            writer.write(np.ascontiguousarray(transform(block), dtype=dtype).data)
            offset_rows += len(block)
        writer.flush()
        os.fsync(writer.fileno())
