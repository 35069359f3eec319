"""Reading ZIP and tar archives without trusting them.

Every entry name is checked (no ``..``, no absolute path, no drive letter, no NUL), links and
special files are refused, and bytes are counted as they are decompressed: an entry's ratio of
output to input, the archive's total output and its number of entries each have a limit. Header
sizes are never trusted; reading stops as soon as a limit is passed.
"""
from __future__ import annotations

import gzip
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from .errors import DatasetError
from .options import Limits

CHUNK = 1 << 20


def check_entry_name(name: str) -> str:
    """The entry's path with forward slashes; refuses paths that could leave the extraction root."""
    normalised = name.replace("\\", "/")
    parts = normalised.split("/")
    if ("\x00" in name or normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":")
            or ".." in parts):
        raise DatasetError(f"the archive holds an unsafe entry name {name!r} (absolute or with '..'); "
                           "archives must only hold relative paths inside them: re-create the archive from "
                           "the dataset's folder", code="unsafe_archive")
    return normalised


class ByteBudget:
    """Bytes extracted from one archive so far, against ``max_extracted_bytes``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.used = 0

    def spend(self, count: int) -> None:
        self.used += count
        if self.used > self.limits.max_extracted_bytes:
            raise DatasetError(f"the archive expands to more than {self.limits.max_extracted_bytes:,} bytes "
                               "(limit); it may be a zip bomb. Upload a smaller archive or ask an admin to "
                               "raise the limit", code="zip_bomb")


def check_ratio(name: str, produced: int, consumed: int, limits: Limits) -> None:
    if produced > limits.ratio_check_min_bytes and produced > limits.max_compression_ratio * max(consumed, 1):
        raise DatasetError(f"entry {name!r} expands more than {limits.max_compression_ratio:.0f} times "
                           "(compression-ratio limit); it looks like a zip bomb, so the archive is refused",
                           code="zip_bomb")


class SafeZip:
    """A ZIP archive whose entries were checked; members are read with counted bytes."""

    def __init__(self, path: Path, limits: Limits, budget: ByteBudget | None = None) -> None:
        self.limits = limits
        self.budget = budget or ByteBudget(limits)
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise DatasetError(f"the ZIP archive cannot be read ({error}); upload it again or re-create it",
                               code="bad_archive") from None
        infos = self._zip.infolist()
        if len(infos) > limits.max_archive_entries:
            raise DatasetError(f"the archive has {len(infos):,} entries, more than the limit of "
                               f"{limits.max_archive_entries:,}", code="zip_bomb")
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = check_entry_name(info.filename)
            mode = info.external_attr >> 16
            file_type = stat.S_IFMT(mode)
            if info.create_system == 3 and file_type and file_type not in (stat.S_IFREG, stat.S_IFDIR):
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "a special file"
                raise DatasetError(f"the archive entry {info.filename!r} is {kind}; archives may only hold "
                                   "regular files and folders: re-create it without links", code="unsafe_archive")
            if info.flag_bits & 0x1:
                raise DatasetError(f"the archive entry {info.filename!r} is encrypted; upload an archive "
                                   "without a password", code="bad_archive")
            if not info.is_dir():
                self.members[name] = info

    def names(self) -> list[str]:
        return list(self.members)

    def open(self, name: str, max_bytes: int | None = None) -> "_ZipMemberStream":
        """A stream over one member that counts bytes while decompressing (never trusting header sizes)."""
        info = self.members[name]
        limit = self.limits.max_extracted_bytes if max_bytes is None else max_bytes
        return _ZipMemberStream(self._zip.open(info), name, info.compress_size, limit, self)

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        with self.open(name, max_bytes) as stream:
            pieces = []
            while chunk := stream.read(CHUNK):
                pieces.append(chunk)
        return b"".join(pieces)

    def close(self) -> None:
        self._zip.close()


class _ZipMemberStream:
    def __init__(self, stream, name: str, compressed: int, limit: int, archive: SafeZip) -> None:
        self._stream, self._name, self._compressed, self._limit = stream, name, compressed, limit
        self._archive = archive
        self.produced = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            pieces = []
            while chunk := self.read(CHUNK):
                pieces.append(chunk)
            return b"".join(pieces)
        try:
            data = self._stream.read(min(size, CHUNK))
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
            raise DatasetError(f"the archive entry {self._name!r} is corrupt ({error}); re-create the archive",
                               code="bad_archive") from None
        self.produced += len(data)
        self._archive.budget.spend(len(data))
        check_ratio(self._name, self.produced, self._compressed, self._archive.limits)
        if self.produced > self._limit:
            raise DatasetError(f"entry {self._name!r} is larger than {self._limit:,} bytes", code="too_large")
        return data

    def readable(self) -> bool:
        return True

    def __enter__(self) -> "_ZipMemberStream":
        return self

    def __exit__(self, *exc) -> None:
        self._stream.close()


class _CountingReader:
    """A read-only stream wrapper that counts bytes and calls ``on_read`` after each read."""

    def __init__(self, stream, on_read: Callable[[int], None]) -> None:
        self._stream = stream
        self._on_read = on_read
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(CHUNK if size is None or size < 0 else size)
        self.count += len(data)
        self._on_read(len(data))
        return data

    def readable(self) -> bool:
        return True


def read_tar_members(path: Path, wanted: Callable[[str], bool], limits: Limits,
                     budget: ByteBudget | None = None) -> dict[str, bytes]:
    """Stream a .tar/.tar.gz once; refuse links and unsafe names; return the wanted regular files' bytes.

    The decompressed stream is counted (total bytes and ratio to the compressed bytes read).
    """
    budget = budget or ByteBudget(limits)
    raw = open(path, "rb")
    compressed = _CountingReader(raw, lambda _: None)
    is_gzip = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)

    def after_read(count: int) -> None:
        budget.spend(count)
        if is_gzip:
            check_ratio(Path(path).name, expanded.count, compressed.count, limits)

    inner = gzip.GzipFile(fileobj=compressed, mode="rb") if is_gzip else compressed
    expanded = _CountingReader(inner, after_read)
    found: dict[str, bytes] = {}
    entries = 0
    try:
        with tarfile.open(fileobj=expanded, mode="r|") as archive:
            for member in archive:
                entries += 1
                if entries > limits.max_archive_entries:
                    raise DatasetError(f"the archive has more than {limits.max_archive_entries:,} entries",
                                       code="zip_bomb")
                name = check_entry_name(member.name)
                if member.issym() or member.islnk():
                    kind = "a symbolic link" if member.issym() else "a hard link"
                    raise DatasetError(f"the archive entry {member.name!r} is {kind}; archives may only hold "
                                       "regular files and folders: re-create it without links",
                                       code="unsafe_archive")
                if not (member.isfile() or member.isdir()):
                    raise DatasetError(f"the archive entry {member.name!r} is a special file (device or pipe); "
                                       "re-create the archive with regular files only", code="unsafe_archive")
                if member.isfile() and wanted(name):
                    found[name] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DatasetError(f"the tar archive cannot be read ({error}); upload it again or re-create it",
                           code="bad_archive") from None
    finally:
        raw.close()
    return found


def gunzip(name: str, data: bytes, limits: Limits, budget: ByteBudget) -> bytes:
    """Decompress a gzip member in chunks, counting output and ratio as it grows."""
    decompressor = zlib.decompressobj(wbits=31)
    pieces, produced, offset = [], 0, 0
    try:
        while offset < len(data) or decompressor.unconsumed_tail:
            source = decompressor.unconsumed_tail or data[offset:offset + CHUNK]
            if not decompressor.unconsumed_tail:
                offset += CHUNK
            piece = decompressor.decompress(source, CHUNK)
            produced += len(piece)
            budget.spend(len(piece))
            check_ratio(name, produced, min(offset, len(data)), limits)
            pieces.append(piece)
            if decompressor.eof:
                break
        pieces.append(decompressor.flush())
    except zlib.error as error:
        raise DatasetError(f"{name!r} is not valid gzip data ({error})", code="bad_archive") from None
    if not decompressor.eof:
        raise DatasetError(f"{name!r} is truncated gzip data; upload the complete file", code="bad_archive")
    return b"".join(pieces)


def copy_counted(stream, destination: Path) -> None:
    """Copy a counted stream (a ZIP member) to a file in 1 MiB chunks."""
    with open(destination, "wb") as output:
        while chunk := stream.read(CHUNK):
            output.write(chunk)


def gunzip_file(path: Path, destination: Path, limits: Limits) -> None:
    """Decompress a .gz file to ``destination``, counting output bytes and the ratio while streaming."""
    budget = ByteBudget(limits)
    with open(path, "rb") as raw:
        compressed = _CountingReader(raw, lambda _: None)
        expanded = 0
        try:
            with gzip.GzipFile(fileobj=compressed, mode="rb") as source, open(destination, "wb") as output:
                while chunk := source.read(CHUNK):
                    expanded += len(chunk)
                    budget.spend(len(chunk))
                    check_ratio(Path(path).name, expanded, compressed.count, limits)
                    output.write(chunk)
        except (OSError, EOFError, zlib.error) as error:
            raise DatasetError(f"the gzip file cannot be read ({error}); upload it again", code="bad_archive") from None
