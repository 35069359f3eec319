"""The run-health rules on synthetic per-epoch series: each problem found where it is, and only there."""
import math

from trainer_app import run_health
from trainer_app.run_health import (detect_diverging, detect_flat_loss, detect_input_bound, detect_nan,
                                    detect_overfitting, detect_underfitting, run_findings)

TEN = math.log(10)  # the cross-entropy of a uniform guess over 10 classes


def epochs(count):
    return list(range(1, count + 1))


def test_a_loss_that_became_nan_is_named_from_the_engines_message():
    found = detect_nan(failure="diverged at step 37: the training loss became nan")
    assert found["code"] == "nan" and found["severity"] == "critical" and found["step"] == 37
    assert found["evidence"] == {"step": 37, "loss": "nan"} and "learning rate" in found["fix"]
    assert detect_nan(failure="diverged at step 5: the training loss became inf")["evidence"]["loss"] == "inf"
    assert detect_nan(failure="") is None and detect_nan(failure="CUDA out of memory") is None


def test_a_training_loss_that_keeps_rising_past_its_minimum_is_diverging():
    losses = [2.0, 1.2, 1.0, 1.3, 1.7]
    found = detect_diverging(epochs=epochs(5), train_loss=losses, scale=TEN, classification=True)
    assert found["code"] == "diverging" and found["epoch"] == 5
    assert found["evidence"]["lowest_train_loss"] == 1.0 and found["evidence"]["lowest_at_epoch"] == 3


def test_a_loss_far_worse_than_guessing_is_diverging_at_once():
    found = detect_diverging(epochs=[1], train_loss=[9.0], scale=TEN, classification=True)
    assert found["code"] == "diverging" and found["epoch"] == 1
    assert math.isclose(found["evidence"]["chance_loss"], TEN, rel_tol=1e-5)


def test_a_falling_or_noisy_loss_is_not_diverging():
    assert detect_diverging(epochs=epochs(5), train_loss=[2.0, 1.0, 0.8, 0.6, 0.5], scale=TEN,
                            classification=True) is None
    # two rises in a row, but still below 1.5x the minimum: noise, not divergence
    assert detect_diverging(epochs=epochs(5), train_loss=[2.0, 1.0, 0.9, 1.0, 1.1], scale=TEN,
                            classification=True) is None
    # near zero, tripling is noise (breast cancer, 512x512 MLP: 0.0035 -> 0.011 -> 0.068)
    assert detect_diverging(epochs=epochs(4), train_loss=[0.1, 0.0035, 0.0109, 0.0677], scale=math.log(2),
                            classification=True) is None
    # a regression loss above 2 is not judged against a chance level
    assert detect_diverging(epochs=[1, 2], train_loss=[5.0, 3.0], scale=1.0, classification=False) is None


def test_a_loss_stuck_at_chance_from_the_start_is_flat():
    found = detect_flat_loss(epochs=epochs(4), train_loss=[2.303, 2.302, 2.301, 2.301], scale=TEN,
                             classification=True)
    assert found["code"] == "flat_loss" and found["epoch"] == 3 and found["evidence"]["spread_share"] < 0.01
    assert "learning rate" in found["fix"].lower() and "frozen" in found["fix"]


def test_a_loss_that_moves_or_settled_low_is_not_flat():
    assert detect_flat_loss(epochs=epochs(3), train_loss=[2.3, 2.0, 1.6], scale=TEN, classification=True) is None
    # within 1%, but far below chance: it learned in the first epoch and settled
    assert detect_flat_loss(epochs=epochs(3), train_loss=[0.050, 0.0500, 0.0499], scale=TEN,
                            classification=True) is None
    assert detect_flat_loss(epochs=epochs(2), train_loss=[2.3, 2.3], scale=TEN, classification=True) is None
    # regression: flat at the mean's MSE (1.0) is flat; flat at 0.3 is a converged model
    assert detect_flat_loss(epochs=epochs(3), train_loss=[1.0, 0.999, 0.998], scale=1.0, classification=False)
    assert detect_flat_loss(epochs=epochs(3), train_loss=[0.3, 0.299, 0.298], scale=1.0, classification=False) is None


def test_validation_loss_rising_while_training_loss_falls_is_overfitting():
    train = [1.0, 0.5, 0.3, 0.2, 0.1, 0.05]
    val = [1.0, 0.6, 0.4, 0.45, 0.55, 0.7]
    found = detect_overfitting(epochs=epochs(6), train_loss=train, val_loss=val, scale=TEN)
    assert found["code"] == "overfitting" and found["epoch"] == 5
    assert found["evidence"]["best_epoch"] == 3 and found["evidence"]["val_loss_min"] == 0.4
    assert found["evidence"]["val_loss"] == 0.55 and "weight decay" in found["fix"] and "epoch 3" in found["fix"]


def test_a_tiny_minimum_needs_an_absolute_rise_too():
    """Wine with a large MLP: the validation loss reaches 0.0002, then climbs: 0.005 is noise, 0.04 is not."""
    train = [0.5, 0.03, 0.13, 0.25, 0.0002, 0.0003, 0.0001, 0.0001]
    val = [0.002, 1.3, 0.024, 0.0002, 0.005, 0.006, 0.04, 0.13]
    found = detect_overfitting(epochs=epochs(8), train_loss=train, val_loss=val, scale=math.log(3))
    assert found["epoch"] == 7 and found["evidence"]["best_epoch"] == 4


def test_no_overfitting_when_training_loss_rises_too_or_validation_only_wobbles():
    # both rise: instability (a learning rate too high), not memorising
    assert detect_overfitting(epochs=epochs(5), train_loss=[1.0, 0.5, 0.4, 0.45, 0.5],
                              val_loss=[1.0, 0.5, 0.4, 0.5, 0.6], scale=TEN) is None
    # a single rise
    assert detect_overfitting(epochs=epochs(5), train_loss=[1.0, 0.5, 0.4, 0.3, 0.2],
                              val_loss=[1.0, 0.5, 0.4, 0.6, 0.5], scale=TEN) is None
    # two small rises (under 10% of the minimum)
    assert detect_overfitting(epochs=epochs(5), train_loss=[1.0, 0.5, 0.4, 0.3, 0.2],
                              val_loss=[1.0, 0.5, 0.4, 0.41, 0.42], scale=TEN) is None
    # steadily falling
    assert detect_overfitting(epochs=epochs(4), train_loss=[1.0, 0.5, 0.4, 0.3],
                              val_loss=[1.0, 0.6, 0.5, 0.45], scale=TEN) is None


def test_poor_training_accuracy_late_in_the_run_with_validation_as_poor_is_underfitting():
    found = detect_underfitting(epochs=epochs(6), planned_epochs=10, train_loss=[2.2, 2.0, 1.9, 1.85, 1.8, 1.78],
                                val_loss=[2.2, 2.0, 1.9, 1.86, 1.82, 1.8],
                                train_accuracy=[0.2, 0.3, 0.35, 0.38, 0.4, 0.41], scale=TEN, classification=True)
    assert found["code"] == "underfitting" and found["epoch"] == 6 and found["evidence"]["train_accuracy"] == 0.41
    assert "still improving" in found["fix"]
    stalled = detect_underfitting(epochs=epochs(6), planned_epochs=6, train_loss=[1.5] * 6, val_loss=[1.5] * 6,
                                  train_accuracy=[0.5] * 6, scale=TEN, classification=True)
    assert "stopped improving" in stalled["fix"] and "larger model" in stalled["fix"]


def test_underfitting_waits_for_half_the_epochs_and_ignores_good_or_overfitting_runs():
    poor = dict(train_loss=[2.0, 1.9, 1.8], val_loss=[2.0, 1.9, 1.8], train_accuracy=[0.3, 0.35, 0.4], scale=TEN,
                classification=True)
    assert detect_underfitting(epochs=epochs(3), planned_epochs=10, **poor) is None
    assert detect_underfitting(epochs=epochs(3), planned_epochs=6, **poor)
    assert detect_underfitting(epochs=epochs(4), planned_epochs=4, train_loss=[1, 0.5, 0.3, 0.2],
                               val_loss=[1, 0.5, 0.3, 0.25], train_accuracy=[0.6, 0.8, 0.9, 0.95], scale=TEN,
                               classification=True) is None
    # a big gap between validation and training loss is not underfitting
    assert detect_underfitting(epochs=epochs(4), planned_epochs=4, train_loss=[2, 1.8, 1.7, 1.6],
                               val_loss=[2, 2.1, 2.2, 2.4], train_accuracy=[0.3, 0.4, 0.5, 0.6], scale=TEN,
                               classification=True) is None


def test_regression_underfitting_reads_the_standardised_loss():
    found = detect_underfitting(epochs=epochs(4), planned_epochs=4, train_loss=[0.95, 0.9, 0.85, 0.8],
                                val_loss=[0.95, 0.9, 0.86, 0.82], train_accuracy=None, scale=1.0,
                                classification=False)
    assert found and "R²" in found["explanation"]
    assert detect_underfitting(epochs=epochs(4), planned_epochs=4, train_loss=[0.5, 0.3, 0.2, 0.1],
                               val_loss=[0.5, 0.3, 0.2, 0.12], train_accuracy=None, scale=1.0,
                               classification=False) is None


def test_an_idle_gpu_is_input_bound():
    found = detect_input_bound(gpu_util=[12, 8, 15, 10, 9, 11], cpu_percent=[98, 99, 97], samples_per_s=850.0)
    assert found["code"] == "input_bound" and found["severity"] == "info"
    assert found["evidence"]["gpu_util_median"] == 10.5 and found["evidence"]["cpu_percent_median"] == 98
    assert "num_workers" in found["fix"]


def test_a_busy_gpu_or_too_few_samples_is_not_input_bound():
    assert detect_input_bound(gpu_util=[85, 90, 88, 92, 95]) is None
    assert detect_input_bound(gpu_util=[5, 5, 5]) is None
    assert detect_input_bound(gpu_util=[]) is None


def test_run_findings_gathers_what_applies_and_prefers_flat_over_underfitting():
    flat = {"epoch": epochs(6), "train_loss": [2.303] * 6, "val_loss": [2.303] * 6, "train_accuracy": [0.1] * 6}
    codes = [finding["code"] for finding in run_findings(series=flat, task="classification", num_classes=10,
                                                          planned_epochs=6)]
    assert codes == ["flat_loss"]
    healthy = {"epoch": epochs(4), "train_loss": [1.0, 0.5, 0.3, 0.2], "val_loss": [1.0, 0.55, 0.35, 0.3],
               "train_accuracy": [0.7, 0.85, 0.9, 0.93]}
    assert run_findings(series=healthy, task="classification", num_classes=10, planned_epochs=4) == []
    both = run_findings(series={"epoch": [], "train_loss": [], "val_loss": []}, task="classification",
                        num_classes=10, failure="diverged at step 3: the training loss became nan",
                        gpu_util=[1, 2, 1, 2, 1])
    assert [finding["code"] for finding in both] == ["nan", "input_bound"]


def test_every_code_has_a_severity_and_a_concept_of_the_ontology():
    from kg_app.ontology import CONCEPT_SLUGS

    assert set(run_health.CODES) == set(run_health.SEVERITIES) == set(run_health.FINDING_CONCEPTS)
    assert set(run_health.FINDING_CONCEPTS.values()) <= CONCEPT_SLUGS
