"""Fixtures for the dataset-processing tests: convert a file, and check a refusal leaves no trace."""
from __future__ import annotations

import itertools

import pytest

from trainer_app.datasets import DatasetError, ProcessOptions, process_upload, sample_dataset
from trainer_app.engine.dataset_format import content_hash


@pytest.fixture
def datasets_root(tmp_path):
    return tmp_path / "datasets"


@pytest.fixture
def convert(datasets_root):
    """process_upload a file into a fresh output directory; options as keyword fields."""
    counter = itertools.count()

    def run(source, original_name=None, options=None, progress=None, **option_fields):
        return process_upload(source, original_name=original_name or source.name,
                              output_dir=datasets_root / f"upload{next(counter)}",
                              options=options or ProcessOptions(**option_fields), progress=progress)

    return run


@pytest.fixture
def refused(datasets_root):
    """Assert that processing fails with DatasetError(code) matching ``match``, writes nothing, and leaves an
    existing dataset beside it untouched. Returns the error."""
    existing = datasets_root / "existing"
    sample_dataset("iris", existing)
    before = content_hash(existing)

    def check(source, code, match, original_name=None, **option_fields):
        output = datasets_root / "refused"
        with pytest.raises(DatasetError, match=match) as caught:
            process_upload(source, original_name=original_name or source.name, output_dir=output,
                           options=ProcessOptions(**option_fields))
        assert caught.value.code == code, caught.value
        assert not output.exists()
        assert sorted(path.name for path in datasets_root.iterdir()) == ["existing"]
        assert content_hash(existing) == before
        return caught.value

    return check
