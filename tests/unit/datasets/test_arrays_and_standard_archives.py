""".npz uploads, MNIST/Fashion-MNIST IDX and CIFAR-10/100 binary archives, scikit-learn samples."""
from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pytest

from trainer_app.datasets import SAMPLE_DATASETS, register_directory, sample_dataset
from trainer_app.engine.dataset_format import open_split, read_meta

from .factories import cifar10_files, cifar100_files, mnist_files, npz_file, tar_of, zip_of


def test_npz_table_with_integer_labels(tmp_path, convert):
    rng = np.random.default_rng(0)
    source = npz_file(tmp_path / "d.npz", X=rng.normal(size=(50, 3)), y=np.arange(50) % 2)
    result = convert(source)
    assert result.detected_format == "npz" and result.meta.modality == "table"
    assert result.meta.feature_names == ["x_1", "x_2", "x_3"] and result.meta.class_names == ["0", "1"]
    assert [entry.name for entry in result.feature_statistics] == ["x_1", "x_2", "x_3"]


def test_npz_images_in_channels_last_floats_and_text_labels(tmp_path, convert):
    rng = np.random.default_rng(0)
    source = npz_file(tmp_path / "d.npz", X=rng.random((30, 6, 5, 3)), y=np.array(["ant", "bee", "cow"] * 10))
    result = convert(source)
    assert result.meta.input_shape == [3, 6, 5] and result.meta.class_names == ["ant", "bee", "cow"]
    features, _ = open_split(result.output_dir, "train")
    assert features.dtype == np.uint8 and len(result.preview.images) == 12


def test_npz_regression_target(tmp_path, convert):
    rng = np.random.default_rng(0)
    result = convert(npz_file(tmp_path / "d.npz", X=rng.normal(size=(40, 2)), y=rng.normal(size=40)))
    assert result.meta.task == "regression" and result.meta.target_normalization["std"] > 0


def test_npz_object_array_is_refused_without_unpickling(tmp_path, refused):
    source = tmp_path / "d.npz"
    with open(source, "wb") as handle:
        np.savez(handle, X=np.array([{"a": 1}, None] * 5, dtype=object), y=np.arange(10))
    refused(source, "bad_npz", "holds Python objects")


def test_npz_of_different_lengths_is_refused(tmp_path, refused):
    refused(npz_file(tmp_path / "d.npz", X=np.zeros((5, 2)), y=np.arange(4)), "bad_npz",
            "X has 5 samples but y has 4")


def test_npz_without_x_and_y_is_refused(tmp_path, refused):
    refused(npz_file(tmp_path / "d.npz", features=np.zeros((5, 2))), "bad_npz", "arrays named X and y")


def test_npz_nan_labels_are_refused(tmp_path, refused):
    labels = np.arange(10, dtype=float)
    labels[3] = np.nan
    refused(npz_file(tmp_path / "d.npz", X=np.zeros((10, 2)), y=labels), "bad_labels", "NaN or infinite labels")


def test_npz_with_missing_features_is_filled_from_train(tmp_path, convert):
    features = np.arange(40, dtype=float).reshape(20, 2)
    features[5, 1] = np.nan
    result = convert(npz_file(tmp_path / "d.npz", X=features, y=np.arange(20) % 2))
    for split in ("train", "val", "test"):
        assert not np.isnan(open_split(result.output_dir, split)[0]).any()


@pytest.mark.parametrize("container", ["zip", "tar.gz", "tar"])
def test_mnist_idx_archive_keeps_its_test_split(tmp_path, convert, container):
    files = {f"mnist/{name}": data for name, data in mnist_files().items()}
    source = (zip_of(tmp_path / "mnist.zip", files) if container == "zip"
              else tar_of(tmp_path / f"mnist.{container}", files, gzipped=container == "tar.gz"))
    result = convert(source)
    assert result.detected_format == "mnist_idx"
    assert result.meta.input_shape == [1, 28, 28] and result.meta.splits == {"train": 36, "val": 4, "test": 20}
    assert result.meta.class_names == [str(digit) for digit in range(10)]
    _, test_labels = open_split(result.output_dir, "test")
    assert test_labels.tolist() == [i % 10 for i in range(20)]


def test_fashion_mnist_is_told_by_its_name_and_uncompressed_idx_is_read(tmp_path, convert):
    files = {name.removesuffix(".gz"): gzip.decompress(data) for name, data in mnist_files().items()}
    result = convert(zip_of(tmp_path / "fashion-mnist.zip", files))
    assert result.detected_format == "fashion_mnist_idx" and result.meta.class_names[9] == "Ankle boot"


def test_truncated_idx_file_is_refused(tmp_path, refused):
    files = mnist_files()
    files["t10k-images-idx3-ubyte.gz"] = gzip.compress(gzip.decompress(files["t10k-images-idx3-ubyte.gz"])[:-100])
    refused(zip_of(tmp_path / "m.zip", files), "bad_archive", "truncated or corrupt")


def test_mnist_with_a_file_missing_is_refused(tmp_path, refused):
    files = mnist_files()
    del files["t10k-labels-idx1-ubyte.gz"]
    refused(zip_of(tmp_path / "m.zip", files), "bad_archive", "t10k-labels-idx1-ubyte")


def test_cifar10_binary_tar_gz(tmp_path, convert):
    result = convert(tar_of(tmp_path / "cifar-10-binary.tar.gz", cifar10_files()))
    assert result.detected_format == "cifar10_binary" and result.meta.input_shape == [3, 32, 32]
    assert result.meta.class_names[0] == "airplane" and len(result.meta.class_names) == 10
    assert result.meta.splits == {"train": 90, "val": 10, "test": 20}
    assert result.class_counts["val"] == [1] * 10


def test_cifar100_binary_uses_fine_labels(tmp_path, convert):
    result = convert(tar_of(tmp_path / "cifar-100-binary.tar.gz", cifar100_files()))
    assert result.detected_format == "cifar100_binary" and len(result.meta.class_names) == 100
    assert result.meta.class_names[7] == "fine7" and result.meta.splits["test"] == 100
    _, labels = open_split(result.output_dir, "test")
    assert labels.max() == 99


def test_cifar_batch_of_the_wrong_size_is_refused(tmp_path, refused):
    files = cifar10_files()
    files["cifar-10-batches-bin/data_batch_3.bin"] = files["cifar-10-batches-bin/data_batch_3.bin"][:-7]
    refused(tar_of(tmp_path / "c.tar.gz", files), "bad_archive", "not a whole number of 3073-byte")


def test_other_tar_content_is_refused(tmp_path, refused):
    refused(tar_of(tmp_path / "x.tar.gz", {"data.csv": b"x,y\n1,2\n"}), "unsupported", "neither the MNIST")


def test_mnist_directory_on_shared_storage_is_registered(tmp_path, datasets_root):
    folder = tmp_path / "shared" / "mnist"
    folder.mkdir(parents=True)
    for name, data in mnist_files().items():
        (folder / name).write_bytes(data)
    result = register_directory(folder, output_dir=datasets_root / "mnist")
    assert result.detected_format == "mnist_idx" and result.data_dir == datasets_root / "mnist"


@pytest.mark.parametrize("name", SAMPLE_DATASETS)
def test_sample_datasets_convert(tmp_path, name):
    result = sample_dataset(name, tmp_path / name)
    meta = read_meta(tmp_path / name)
    assert meta.sha256 == result.sha256 and meta.task == "classification"
    if name == "digits":
        features, _ = open_split(tmp_path / name, "train")
        assert meta.input_shape == [1, 8, 8] and features.dtype == np.uint8 and features.max() == 255
    else:
        assert meta.modality == "table" and len(meta.feature_names) == meta.input_shape[0]


def test_canonical_directory_is_registered_in_place(tmp_path, datasets_root):
    canonical = tmp_path / "shared" / "digits"
    made = sample_dataset("digits", canonical)
    result = register_directory(canonical, output_dir=datasets_root / "registered")
    assert result.detected_format == "canonical" and result.data_dir == canonical
    assert result.sha256 == made.sha256 and result.meta.splits == made.meta.splits
    assert (datasets_root / "registered" / "preview").is_dir() and not (datasets_root / "registered" / "meta.json").exists()
    assert len(result.preview.images) == 40


def test_canonical_directory_whose_arrays_changed_is_refused(tmp_path, datasets_root):
    from trainer_app.datasets import DatasetError
    canonical = tmp_path / "shared" / "iris"
    sample_dataset("iris", canonical)
    features = np.load(canonical / "test_X.npy")
    features[0, 0] += 1
    np.save(canonical / "test_X.npy", features)
    with pytest.raises(DatasetError, match="do not match the sha256"):
        register_directory(canonical, output_dir=datasets_root / "registered")
    assert not (datasets_root / "registered").exists()


def test_npz_members_are_read_with_counted_bytes(tmp_path, refused):
    from trainer_app.datasets import Limits
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4000, 100)))
    source = tmp_path / "d.npz"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", buffer.getvalue())
        archive.writestr("y.npy", buffer.getvalue())
    refused(source, "zip_bomb", "compression-ratio", limits=Limits(max_compression_ratio=20))


def test_a_lone_gzipped_idx_file_says_what_to_upload(tmp_path, refused):
    source = tmp_path / "upload"
    source.write_bytes(mnist_files()["train-images-idx3-ubyte.gz"])
    refused(source, "unsupported", "four MNIST IDX files", original_name="train-images-idx3-ubyte.gz")
