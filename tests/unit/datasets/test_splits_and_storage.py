"""Split assignment, the streamed .npy writer, and the all-or-nothing output directory."""
from __future__ import annotations

import numpy as np
import pytest

from trainer_app.datasets import DatasetError
from trainer_app.datasets.splits import TEST, TRAIN, VAL, assign_splits, carve_validation
from trainer_app.datasets.storage import NpyAppender, read_npy_chunks, rewrite_npy_chunks, staged_output


def test_stratified_split_keeps_class_shares_and_overall_ratios():
    labels = np.repeat(np.arange(10), [4, 4, 4, 4, 4, 40, 40, 40, 40, 40])
    assignment = assign_splits(len(labels), (0.8, 0.1, 0.1), seed=1, labels=labels)
    assert (assignment == VAL).sum() == 22 and (assignment == TEST).sum() == 22
    for label in range(5, 10):
        assert (assignment[labels == label] == VAL).sum() == 4
    assert all((assignment[labels == label] == TRAIN).any() for label in range(10))


def test_split_is_seeded():
    labels = np.arange(100) % 3
    first = assign_splits(100, (0.7, 0.15, 0.15), 5, labels)
    assert np.array_equal(first, assign_splits(100, (0.7, 0.15, 0.15), 5, labels))
    assert not np.array_equal(first, assign_splits(100, (0.7, 0.15, 0.15), 6, labels))


def test_a_class_with_one_sample_stays_in_train():
    labels = np.array([0] * 30 + [1])
    assignment = assign_splits(31, (0.5, 0.25, 0.25), 0, labels)
    assert assignment[-1] == TRAIN


def test_validation_carved_from_a_predefined_train_split():
    carved = carve_validation(np.arange(600) % 10, 0.1, 0, True)
    assert (carved == VAL).sum() == 60 and not (carved == TEST).any()


def test_appender_writes_a_plain_npy_and_shrinks_its_header(tmp_path):
    path = tmp_path / "a.npy"
    appender = NpyAppender(path, np.float32, (3,), capacity=10_000_000_000)
    appender.append(np.ones((2, 3)))
    appender.append(np.zeros((1, 3)))
    appender.close()
    loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    assert loaded.shape == (3, 3) and loaded.dtype == np.float32 and loaded[:2].sum() == 6
    assert [block.shape for block in read_npy_chunks(path, rows_per_chunk=2)] == [(2, 3), (1, 3)]
    rewrite_npy_chunks(path, lambda block: block + 1, rows_per_chunk=2)
    assert np.load(path).sum() == 9 + 6


def test_failed_processing_leaves_no_staging_directory(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_output(tmp_path / "out") as staging:
            (staging / "train_X.npy").write_bytes(b"partial")
            raise RuntimeError("cancelled")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_directory_is_never_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "meta.json").write_text("{}")
    with pytest.raises(DatasetError, match="already exists"):
        with staged_output(tmp_path / "out"):
            pass
    assert (tmp_path / "out" / "meta.json").read_text() == "{}"


def test_options_are_validated_with_a_message():
    from trainer_app.datasets import ProcessOptions
    with pytest.raises(DatasetError, match="split ratios"):
        ProcessOptions(split_ratios=(0.5, 0.2, 0.2))
    with pytest.raises(DatasetError, match="missing-value policy"):
        ProcessOptions(missing="guess")
    with pytest.raises(DatasetError, match="unknown encoding"):
        ProcessOptions(encoding="klingon")


def test_library_imports_no_django():
    import subprocess
    import sys
    code = "import sys, trainer_app.datasets; print(any(m.startswith('django') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
