"""Engine unit tests: small datasets from scikit-learn, one torch thread (the machines are shared)."""
from __future__ import annotations

import pytest

from trainer_app.engine.testing import make_sklearn_dataset

DIGITS_SIZES = (1280, 257, 260)
"""Digits split so that 1280 divides by the batch sizes the tests use."""


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("digits")
    make_sklearn_dataset("digits", directory, sizes=DIGITS_SIZES)
    return directory


@pytest.fixture(scope="session")
def wine_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("wine")
    make_sklearn_dataset("wine", directory, fractions=(0.5, 0.2, 0.3))
    return directory


@pytest.fixture(scope="session")
def diabetes_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("diabetes")
    make_sklearn_dataset("diabetes", directory)
    return directory
