"""The rules behind recommendations, without a database: how alike two datasets are and why, and which of a
run's settings a sweep takes as a trial to try first."""
import pytest

from trainer_app.models import Dataset
from trainer_app.selectors.recommendations import dataset_similarity, warm_start_params


def dataset(pk, *, task="classification", shape=(1, 8, 8), classes=10, samples=1797, name="d", project=1):
    return Dataset(pk=pk, project_id=project, name=name, version=1, task=task, input_shape=list(shape),
                   num_classes=classes, num_samples=samples)


def test_a_dataset_is_fully_similar_to_itself():
    digits = dataset(1)
    assert dataset_similarity(target=digits, other=digits)["score"] == 1.0


def test_another_task_is_never_compared():
    assert dataset_similarity(target=dataset(1), other=dataset(2, task="regression", classes=0)) is None


def test_images_of_another_size_count_half_for_the_shape():
    similarity = dataset_similarity(target=dataset(1), other=dataset(2, shape=(1, 28, 28)))
    assert similarity["parts"]["shape"] == 0.5
    assert "images with 1 channel(s), 8×8 against 28×28" in similarity["reasons"]
    assert similarity["score"] == pytest.approx(0.4 * 0.5 + 0.3 + 0.3)


def test_tables_compare_their_column_counts_and_an_image_is_not_a_table():
    wine = dataset(1, shape=(13,), classes=3, samples=178)
    iris = dataset(2, shape=(4,), classes=3, samples=150)
    similarity = dataset_similarity(target=wine, other=iris)
    assert 0 < similarity["parts"]["shape"] < 0.5 and "4 features against 13" in similarity["reasons"]
    image = dataset_similarity(target=wine, other=dataset(3, classes=3, samples=178))
    assert image["parts"]["shape"] == 0.0 and image["score"] == pytest.approx(0.6)


def test_size_and_classes_fall_off_with_their_ratio():
    far = dataset_similarity(target=dataset(1, samples=1_000), other=dataset(2, samples=100_000, classes=100))
    assert far["parts"]["size"] == 0.0 and far["parts"]["classes"] == pytest.approx(0.1)
    assert "100 classes against 10" in far["reasons"]
    assert "100,000 samples against 1,000 (100.0× more)" in far["reasons"]
    close = dataset_similarity(target=dataset(1, samples=1000), other=dataset(2, samples=1020))
    assert "about the same size (1,020 samples against 1,000)" in close["reasons"]


def test_another_version_of_the_same_dataset_says_so():
    similarity = dataset_similarity(target=dataset(1, name="digits"), other=dataset(2, name="digits"))
    assert similarity["reasons"][0] == "another version of digits (v1)"


def test_warm_start_takes_the_settings_that_do_something():
    normalised = {"optimizer": "adam", "lr": 0.01, "batch_size": 8, "momentum": 0.9, "weight_decay": 0.0,
                  "label_smoothing": 0.0, "nesterov": False, "epochs": 30, "schedule": {"type": "none"}}
    assert warm_start_params(normalised) == {"optimizer": "adam", "lr": 0.01, "batch_size": 8}
    sgd = {**normalised, "optimizer": "sgd", "weight_decay": 0.0005, "label_smoothing": 0.1}
    assert warm_start_params(sgd) == {"optimizer": "sgd", "lr": 0.01, "batch_size": 8, "momentum": 0.9,
                                      "weight_decay": 0.0005, "label_smoothing": 0.1}
