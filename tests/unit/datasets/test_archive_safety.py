"""Hostile archives and images: traversal, links, bombs, pixel floods, corrupt content."""
from __future__ import annotations

import struct
import zipfile
import zlib

import pytest

from trainer_app.datasets import Limits

from .factories import image_zip, mnist_files, png_bytes, tar_of, zip_bomb, zip_of, zip_with_symlink


@pytest.mark.parametrize("name", ["../evil.png", "cat/../../evil.png", "/etc/evil.png", "C:/evil.png",
                                  "..\\..\\evil.png"])
def test_entries_that_leave_the_archive_are_refused(tmp_path, refused, name):
    source = image_zip(tmp_path / "p.zip", extra={name: png_bytes()})
    refused(source, "unsafe_archive", "unsafe entry name")


def test_zip_symlink_entry_is_refused(tmp_path, refused):
    refused(zip_with_symlink(tmp_path / "p.zip"), "unsafe_archive", "is a symbolic link")


def test_tar_symlink_and_hard_link_are_refused(tmp_path, refused):
    files = mnist_files()
    refused(tar_of(tmp_path / "m.tar.gz", files, links={"evil": "/etc/passwd"}), "unsafe_archive",
            "is a symbolic link")
    refused(tar_of(tmp_path / "h.tar", files, gzipped=False, hard_links={"evil": "/etc/passwd"}),
            "unsafe_archive", "is a hard link")


def test_tar_traversal_is_refused(tmp_path, refused):
    refused(tar_of(tmp_path / "m.tar.gz", {"../../x-images-idx3-ubyte": b"1"}), "unsafe_archive", "unsafe entry")


def test_zip_bomb_is_stopped_by_the_compression_ratio(tmp_path, refused):
    refused(zip_bomb(tmp_path / "bomb.zip"), "zip_bomb", "compression-ratio limit")


def test_zip_bomb_is_stopped_by_the_extracted_bytes_counted_while_streaming(tmp_path, refused):
    limits = Limits(max_extracted_bytes=4 << 20, max_compression_ratio=1e9)
    refused(zip_bomb(tmp_path / "bomb.zip", megabytes=8), "zip_bomb", "expands to more than", limits=limits)


def test_lying_size_header_does_not_fool_the_count(tmp_path, refused):
    """The central directory claims 10 bytes; the entry really inflates to 8 MB."""
    source = zip_bomb(tmp_path / "bomb.zip", megabytes=8)
    data = bytearray(source.read_bytes())
    real = struct.pack("<I", 8 << 20)
    for position in [i for i in range(len(data) - 4) if data[i:i + 4] == real]:
        data[position:position + 4] = struct.pack("<I", 10)
    source.write_bytes(bytes(data))
    limits = Limits(max_extracted_bytes=4 << 20, max_compression_ratio=1e9)
    refused(source, "bad_archive", "corrupt", limits=limits)


def test_too_many_entries_are_refused(tmp_path, refused):
    refused(image_zip(tmp_path / "p.zip", per_class=10), "zip_bomb", "20 entries, more than the limit of 5",
            limits=Limits(max_archive_entries=5))


def test_gzip_bomb_inside_a_tar_is_counted(tmp_path, refused):
    source = tmp_path / "bomb.tar.gz"
    files = {"train-images-idx3-ubyte": b"\x00" * (20 << 20)}
    tar_of(source, files)
    refused(source, "zip_bomb", "compression-ratio limit|expands", limits=Limits(max_compression_ratio=50))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height pixels but whose data is a few bytes (cheap to make)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10_000, 20_000])  # over Pillow's limit (its warning), and over twice it (its error)
def test_image_over_pillows_pixel_limit_is_an_error(tmp_path, refused, side):
    source = image_zip(tmp_path / "p.zip", extra={"cat/flood.png": _png_header_only(side, side)})
    refused(source, "image_too_large", "pixel limit")


def test_image_over_the_configured_pixel_limit_is_an_error(tmp_path, refused):
    source = image_zip(tmp_path / "p.zip", extra={"dog/big.png": png_bytes((40, 40))})
    refused(source, "image_too_large", "over the limit of 1,000 pixels", limits=Limits(max_image_pixels=1000))


def test_too_many_corrupt_images_refuse_the_archive(tmp_path, refused):
    extra = {f"cat/bad{i}.png": b"\x89PNG\r\n\x1a\nbroken" for i in range(5)}
    refused(image_zip(tmp_path / "p.zip", extra=extra), "bad_images", "5 of 17 images cannot be read")


def test_all_images_corrupt_is_refused(tmp_path, refused):
    files = {f"{name}/{i}.png": b"garbage" for name in ("cat", "dog") for i in range(3)}
    refused(zip_of(tmp_path / "p.zip", files), "bad_images", "6 of 6 images")


def test_encrypted_zip_entry_is_refused(tmp_path, refused):
    source = image_zip(tmp_path / "p.zip")
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        offsets = [info.header_offset for info in archive.infolist()]
        directory = data.index(b"PK\x01\x02")
    data[offsets[0] + 6] |= 1
    data[directory + 8] |= 1
    source.write_bytes(bytes(data))
    refused(source, "bad_archive", "encrypted")


def test_corrupt_zip_is_refused(tmp_path, refused):
    source = tmp_path / "p.zip"
    source.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    refused(source, "bad_archive", "cannot be read")


@pytest.mark.parametrize("data,match", [(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "single PNG image"),
                                         (b"%PDF-1.4 hello", "PDF"), (b"\x93NUMPY\x01\x00", "numpy.savez")])
def test_unsupported_single_files_say_what_to_upload(tmp_path, refused, data, match):
    source = tmp_path / "upload"
    source.write_bytes(data)
    refused(source, "unsupported", match)
