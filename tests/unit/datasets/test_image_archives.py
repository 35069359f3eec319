"""ZIPs of images in class folders (ImageFolder layout), and image directories on shared storage."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trainer_app.datasets import register_directory
from trainer_app.engine.dataset_format import open_split, read_meta

from .factories import image_zip, png_bytes


def test_zip_of_class_folders_becomes_images_with_thumbnails(tmp_path, convert):
    result = convert(image_zip(tmp_path / "pets.zip", classes=("cat", "dog", "eel"), per_class=10, size=(12, 10)))
    meta = read_meta(result.output_dir)
    assert result.detected_format == "image_zip"
    assert meta.modality == "image" and meta.input_shape == [3, 12, 10] and meta.class_names == ["cat", "dog", "eel"]
    assert meta.splits == {"train": 24, "val": 3, "test": 3}
    features, labels = open_split(result.output_dir, "train")
    assert features.dtype == np.uint8 and features.shape == (24, 3, 12, 10)
    assert np.bincount(labels).tolist() == [8, 8, 8]
    assert len(meta.normalization["mean"]) == 3 and 0.3 < meta.normalization["mean"][0] < 0.7
    assert result.details["image_size"] == [12, 10] and result.details["image_mode"] == "RGB"
    assert len(result.preview.images) == 12
    first = result.preview.images[0]
    assert first.class_name == "cat" and first.path.startswith("preview/")
    thumbnail = Image.open(result.output_dir / first.path)
    assert thumbnail.format == "PNG" and max(thumbnail.size) >= 64
    stored = open_split(result.output_dir, first.split)[0][first.index]
    assert np.array_equal(np.asarray(thumbnail.resize((10, 12), Image.Resampling.NEAREST)).transpose(2, 0, 1),
                          stored)


def test_one_top_level_folder_is_allowed(tmp_path, convert):
    result = convert(image_zip(tmp_path / "pets.zip", top="my-pets/"))
    assert result.meta.class_names == ["cat", "dog"]


def test_train_and_test_folders_are_kept_as_splits(tmp_path, convert):
    extra = {f"test/{name}/t{i}.png": png_bytes(seed=500 + i) for name in ("cat", "dog") for i in range(3)}
    result = convert(image_zip(tmp_path / "pets.zip", top="train/", per_class=10, extra=extra))
    assert result.meta.class_names == ["cat", "dog"]
    assert result.meta.splits == {"train": 18, "val": 2, "test": 6}


def test_grayscale_images_are_stored_with_one_channel(tmp_path, convert):
    result = convert(image_zip(tmp_path / "g.zip", mode="L"))
    assert result.meta.input_shape == [1, 8, 8] and result.details["image_mode"] == "L"


def test_mixed_sizes_and_modes_become_the_most_common_size_in_rgb(tmp_path, convert):
    extra = {"cat/big.png": png_bytes((20, 30), "RGBA"), "dog/gray.png": png_bytes((5, 5), "L"),
             "dog/photo.jpg": png_bytes((16, 16), image_format="JPEG")}
    result = convert(image_zip(tmp_path / "m.zip", mode="L", extra=extra))
    assert result.meta.input_shape == [3, 8, 8]
    assert any(warning.code == "resized" for warning in result.warnings)
    assert result.details["native_sizes"]["8x8"] == 12


def test_chosen_size_and_mode_override_the_defaults(tmp_path, convert):
    result = convert(image_zip(tmp_path / "p.zip"), image_size=(4, 6), image_mode="L")
    assert result.meta.input_shape == [1, 4, 6]


def test_large_images_are_capped_to_the_side_limit(tmp_path, convert):
    from trainer_app.datasets import Limits
    result = convert(image_zip(tmp_path / "p.zip", size=(40, 20), per_class=4), limits=Limits(max_image_side=16))
    assert result.meta.input_shape == [3, 16, 8]


def test_non_images_and_metadata_files_are_skipped_and_listed(tmp_path, convert):
    extra = {"cat/notes.txt": b"hello", "__MACOSX/cat/._0.png": b"\x00\x05", "README.md": b"# pets",
             "stray.png": png_bytes()}
    result = convert(image_zip(tmp_path / "p.zip", extra=extra))
    reasons = {skipped.name: skipped.reason for skipped in result.skipped_files}
    assert reasons["cat/notes.txt"] == "not an image (extension '.txt')"
    assert reasons["__MACOSX/cat/._0.png"] == "operating-system metadata file"
    assert reasons["stray.png"] == "not inside a class folder"
    assert any(warning.code == "skipped_files" for warning in result.warnings)
    assert sum(result.meta.splits.values()) == 12


def test_a_few_corrupt_images_are_skipped_with_the_reason(tmp_path, convert):
    truncated = png_bytes((8, 8), seed=9)[:60]
    extra = {"cat/truncated.png": truncated, "dog/fake.jpg": b"this is not a jpeg at all"}
    result = convert(image_zip(tmp_path / "p.zip", per_class=20, extra=extra))
    reasons = {skipped.name: skipped.reason for skipped in result.skipped_files}
    assert reasons["dog/fake.jpg"].startswith("not a PNG, JPEG")
    assert reasons["cat/truncated.png"].startswith("cannot be decoded")
    assert sum(result.meta.splits.values()) == 40


def test_duplicate_images_are_warned(tmp_path, convert):
    extra = {"cat/copy.png": png_bytes(seed=0)}
    result = convert(image_zip(tmp_path / "p.zip", extra=extra))
    assert any(warning.code == "duplicates" for warning in result.warnings)


def test_process_pool_gives_the_same_dataset_as_one_process(tmp_path, convert, monkeypatch):
    from trainer_app.datasets import images
    monkeypatch.setattr(images, "POOL_MIN_IMAGES", 10)
    monkeypatch.setattr(images, "BATCH_BYTES", 8 * 8 * 3 * 16)
    source = image_zip(tmp_path / "p.zip", per_class=40)
    pooled, serial = convert(source, workers=2), convert(source, workers=1)
    assert pooled.sha256 == serial.sha256


def test_image_folder_directory_is_registered_without_following_links(tmp_path, datasets_root):
    root = tmp_path / "shared" / "pets"
    for index, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for number in range(5):
            (root / name / f"{number}.png").write_bytes(png_bytes(seed=index * 10 + number))
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes(seed=99))
    (root / "cat" / "link.png").symlink_to(outside)
    result = register_directory(root, output_dir=datasets_root / "pets")
    assert result.detected_format == "image_folder" and sum(result.meta.splits.values()) == 10
    assert {skipped.name: skipped.reason for skipped in result.skipped_files} == {
        "cat/link.png": "symbolic link (not followed)"}


@pytest.mark.parametrize("layout", [{"cat/0.png": png_bytes()}, {"0.png": png_bytes(), "1.png": png_bytes(seed=1)}])
def test_fewer_than_two_class_folders_is_refused(tmp_path, refused, layout):
    from .factories import zip_of
    refused(zip_of(tmp_path / "p.zip", layout), "bad_layout", "at least\\s+two")


def test_channel_statistics_come_with_images(tmp_path, convert):
    result = convert(image_zip(tmp_path / "p.zip"))
    assert [entry.name for entry in result.feature_statistics] == ["red", "green", "blue"]
    assert result.feature_statistics[0].mean == result.meta.normalization["mean"][0]


def test_cancelling_through_progress_leaves_nothing(tmp_path, datasets_root):
    from trainer_app.datasets import process_upload

    class Cancelled(Exception):
        pass

    def cancel_midway(share, message):
        if share > 0.3:
            raise Cancelled

    with pytest.raises(Cancelled):
        process_upload(image_zip(tmp_path / "p.zip", per_class=30), original_name="p.zip",
                       output_dir=datasets_root / "cancelled", progress=cancel_midway)
    assert not datasets_root.exists() or list(datasets_root.iterdir()) == []


def test_hostile_folder_and_file_names_are_only_metadata(tmp_path, convert):
    from .factories import zip_of
    tag = "<img src=x onerror=alert(1)>"
    hostile = {f"{tag}/a\nb.png": png_bytes(seed=1), f"{tag}/x.png": png_bytes(),
               "$(rm -rf ~)/ .png": png_bytes(seed=3), "ok class/1.png": png_bytes(seed=4)}
    result = convert(zip_of(tmp_path / "p.zip", hostile))
    assert result.meta.class_names == ["$(rm -rf ~)", tag, "ok class"]
    written = {path.relative_to(result.output_dir).as_posix() for path in result.output_dir.rglob("*")}
    assert all(name.isascii() and "<" not in name and " " not in name for name in written)
    assert {image.path for image in result.preview.images} <= written
