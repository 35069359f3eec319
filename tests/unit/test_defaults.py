"""Settings proposed from the data: each rule and its reason."""
import pytest

from trainer_app.selectors.defaults import training_defaults


def propose(**overrides):
    values = {"train_samples": 1257, "input_shape": [1, 8, 8], "task": "classification", "num_classes": 10,
              "preset": "small_cnn", "optimizer": "adam", "processes": 1}
    return training_defaults(**{**values, **overrides})


@pytest.mark.parametrize("samples, batch", [(120, 8), (1257, 32), (15_000, 64), (50_000, 128), (1_000_000, 256)])
def test_the_batch_grows_with_the_data_and_never_passes_a_tenth_of_it(samples, batch):
    proposal = propose(train_samples=samples)
    assert proposal["batch_size"] == batch and proposal["reasons"]["batch_size"]


def test_the_batch_divides_by_the_processes():
    assert propose(train_samples=15_000, processes=3)["batch_size"] % 3 == 0
    assert "3 processes" in propose(train_samples=15_000, processes=3)["reasons"]["batch_size"]


@pytest.mark.parametrize("overrides, lr, words", [
    ({}, 1e-3, "usual starting point"),
    ({"preset": "vit_tiny"}, 3e-4, "transformers"),
    ({"optimizer": "sgd"}, 0.05, "momentum"),
    ({"optimizer": "sgd", "preset": "resnet18", "train_samples": 50_000}, 0.05, "linear scaling"),
    ({"optimizer": "adagrad"}, 0.01, "Adagrad"),
])
def test_the_learning_rate_follows_the_optimizer_and_the_architecture(overrides, lr, words):
    proposal = propose(**overrides)
    assert proposal["lr"] == pytest.approx(lr) and words in proposal["reasons"]["lr"]


def test_epochs_aim_at_a_few_thousand_steps_within_bounds():
    small = propose(train_samples=1257)  # 40 steps an epoch at batch 32
    assert small["epochs"] == 75 and "40 steps an epoch" in small["reasons"]["epochs"]
    assert propose(train_samples=1_000_000)["epochs"] == 5
    assert propose(train_samples=200)["epochs"] == 100
    assert propose(train_samples=1257, preset="tab_transformer")["epochs"] > small["epochs"]
