"""The engine trains in-process (one process, no torchrun): accuracy, events, divergence, transfer learning,
exact resume, refusals. The torchrun paths (DDP, signals) are in tests/integration/test_engine_*.py."""
import json
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainer_app.engine import exit_codes
from trainer_app.engine.config import ScheduleSpec
from trainer_app.engine.distributed import StopRequest
from trainer_app.engine.optim import schedule_factor
from trainer_app.engine.runner import run
from trainer_app.engine.testing import make_sklearn_dataset, make_spec, read_events

DIGITS_RECIPE = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 32, "epochs": 20,
                 "schedule": {"type": "cosine"}}


def train(directory: Path, dataset: Path, *, augmentation: dict | None = None, stop: StopRequest | None = None,
          **sections) -> tuple[int, list[dict], dict]:
    """Run the engine in this process; returns (exit code, events, result file)."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = make_spec(data=dataset, checkpoint_dir=directory / "checkpoints", jsonl=directory / "events.jsonl",
                     **sections)
    if augmentation:
        spec["data"]["augmentation"] = augmentation
    code = run(spec, stop=stop or StopRequest())
    return code, read_events(directory / "events.jsonl"), json.loads((directory / "checkpoints/result.json").read_text())


def metric_points(events):
    return [event["data"] for event in events if event["kind"] == "metrics"]


def final_values(events) -> dict:
    return next(event["data"]["values"] for event in events if event["kind"] == "summary")


def test_an_mlp_on_wine_reaches_95_percent(tmp_path, wine_dir):
    code, events, result = train(tmp_path, wine_dir, model={"preset": "mlp", "options": {"hidden": [64, 32]}},
                                 training={"optimizer": "adam", "lr": 0.003, "batch_size": 16, "epochs": 30})
    assert code == exit_codes.SUCCEEDED and result["state"] == "succeeded"
    assert final_values(events)["test_accuracy"] >= 0.95
    assert result["summary"]["test_accuracy"] == final_values(events)["test_accuracy"]


def test_events_follow_the_contract(tmp_path, digits_dir):
    code, events, _ = train(tmp_path, digits_dir, training={**DIGITS_RECIPE, "epochs": 3})
    assert code == 0
    kinds = [event["kind"] for event in events]
    statuses = [event["data"]["state"] for event in events if event["kind"] == "status"]
    assert statuses == ["running", "succeeded"] and kinds[-1] == "status" and kinds[-2] == "summary"
    startup = next(event["data"]["startup"] for event in events if event["kind"] == "status")
    assert {"imports_done", "data_loaded", "model_ready"} <= set(startup)
    keys = [(name, point["step"]) for point in metric_points(events) for name in point["values"]]
    assert len(keys) == len(set(keys)), "each (name, step) once"
    train_steps = [step for name, step in keys if name == "train_loss"]
    assert train_steps == sorted(train_steps) and train_steps[0] == 1
    assert train_steps == [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]
    epoch_points = [point for point in metric_points(events) if "val_loss" in point["values"]]
    assert [point["step"] for point in epoch_points] == [40, 80, 120]
    assert set(epoch_points[0]["values"]) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                                              "samples_per_s"}
    test_point = metric_points(events)[-1]
    assert set(test_point["values"]) == {"test_loss", "test_accuracy", "test_macro_f1"} and test_point["step"] == 120
    matrix = next(event["data"] for event in events if event["kind"] == "confusion_matrix")
    assert len(matrix["matrix"]) == 10 and sum(map(sum, matrix["matrix"])) == 260 and matrix["labels"][3] == "3"
    checkpoints = [event["data"] for event in events if event["kind"] == "checkpoint"]
    assert [(point["epoch"], point["step"]) for point in checkpoints] == [(1, 40), (2, 80), (3, 120)]
    progress = [event["data"] for event in events if event["kind"] == "progress"]
    assert progress[-1] == {**progress[-1], "step": 120, "total_steps": 120, "epoch": 3, "epochs": 3}
    summary = final_values(events)
    assert {"train_loss", "val_accuracy", "test_macro_f1", "lr", "samples_per_s"} <= set(summary)


def test_regression_reports_mae_rmse_and_r2(tmp_path, diabetes_dir):
    code, events, _ = train(tmp_path, diabetes_dir, model={"preset": "mlp", "options": {"hidden": [32]}},
                            training={"optimizer": "adam", "lr": 0.01, "batch_size": 32, "epochs": 15})
    assert code == 0
    values = final_values(events)
    assert {"test_loss", "test_mae", "test_rmse", "test_r2", "val_r2", "train_mae"} <= set(values)
    assert values["test_r2"] > 0.3 and 30 < values["test_mae"] < 70


def test_a_loss_that_becomes_nan_stops_as_diverged_and_keeps_the_last_good_checkpoint(tmp_path, digits_dir):
    # one good epoch at lr 0.05, then the step schedule raises the rate to 5e5
    code, events, result = train(tmp_path, digits_dir, training={
        **DIGITS_RECIPE, "epochs": 3, "schedule": {"type": "step", "step_size": 1, "gamma": 1e7}})
    assert code == exit_codes.DIVERGED
    assert result["state"] == "diverged" and result["message"].startswith("diverged at step 4")
    step = int(result["message"].split()[3].rstrip(":"))
    assert 41 <= step <= 80
    assert sorted(path.name for path in (tmp_path / "checkpoints").glob("step-*")) == ["step-00000040"]
    status = [event["data"] for event in events if event["kind"] == "status"][-1]
    assert status["state"] == "diverged" and status["message"] == result["message"]
    assert all(point["step"] < step for point in metric_points(events))


def test_a_huge_learning_rate_diverges_at_a_named_step(tmp_path, digits_dir):
    code, _, result = train(tmp_path, digits_dir, training={**DIGITS_RECIPE, "lr": 1e6, "schedule": {"type": "none"}})
    assert code == exit_codes.DIVERGED
    assert result["message"].startswith("diverged at step ") and "the training loss became" in result["message"]


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory, digits_dir):
    directory = tmp_path_factory.mktemp("pretrained")
    code, _, _ = train(directory, digits_dir, training={**DIGITS_RECIPE, "epochs": 8})
    assert code == 0
    return sorted((directory / "checkpoints").glob("step-*"))[-1] / "model.safetensors"


@pytest.fixture(scope="module")
def upper_digits(tmp_path_factory):
    """Digits 5-9 as a 5-class dataset with a small training split."""
    directory = tmp_path_factory.mktemp("upper-digits")
    make_sklearn_dataset("digits", directory, classes=[5, 6, 7, 8, 9], sizes=(100, 300, 300), seed=1)
    return directory


def first_val_accuracy(events) -> float:
    return next(point["values"]["val_accuracy"] for point in metric_points(events) if "val_accuracy" in point["values"])


def test_fine_tuning_from_a_digits_checkpoint_starts_better_than_from_scratch(tmp_path, digits_checkpoint,
                                                                              upper_digits):
    training = {**DIGITS_RECIPE, "batch_size": 20, "epochs": 1, "schedule": {"type": "none"}}
    code, scratch, _ = train(tmp_path / "scratch", upper_digits, training=training)
    assert code == 0
    code, tuned, _ = train(tmp_path / "tuned", upper_digits, training=training,
                           init={"weights": str(digits_checkpoint), "freeze": ["conv1", "conv2"]})
    assert code == 0
    print("first-epoch val accuracy: scratch", first_val_accuracy(scratch), "fine-tuned", first_val_accuracy(tuned))
    assert first_val_accuracy(tuned) > first_val_accuracy(scratch) + 0.2
    logs = " ".join(event["data"]["message"] for event in tuned if event["kind"] == "log")
    assert "head fc3 replaced" in logs and "frozen: 4 parameter tensors under conv1, conv2" in logs
    pretrained = load_file(digits_checkpoint)
    tuned_weights = load_file(next((tmp_path / "tuned/checkpoints").glob("step-*")) / "model.safetensors")
    assert torch.equal(tuned_weights["conv2.weight"], pretrained["conv2.weight"])
    assert not torch.equal(tuned_weights["fc1.weight"], pretrained["fc1.weight"])


def test_weights_of_another_architecture_are_refused_before_training(tmp_path, digits_checkpoint, digits_dir):
    code, events, result = train(tmp_path, digits_dir, model={"preset": "small_cnn", "options": {"hidden": [64, 32]}},
                                 training=DIGITS_RECIPE, init={"weights": str(digits_checkpoint)})
    assert code == exit_codes.SPEC_REFUSED and result["state"] == "failed"
    assert "fc1.weight: expected [64, 64], found [120, 64]" in result["message"]
    assert not metric_points(events)


def test_a_run_stopped_mid_epoch_resumes_to_the_same_weights(tmp_path, digits_dir):
    """max_steps stops mid-epoch with a checkpoint; the rerun skips the batches done and restores the RNG."""
    training = {"optimizer": "adam", "lr": 0.003, "batch_size": 32, "epochs": 3, "deterministic": True}
    sections = {"model": {"preset": "mlp", "options": {"hidden": [64], "dropout": 0.3}},
                "augmentation": {"random_crop": 1, "rotation": 10}}
    code, _, _ = train(tmp_path / "whole", digits_dir, training=training, **sections)
    assert code == 0
    code, _, first = train(tmp_path / "split", digits_dir, training={**training, "max_steps": 55}, **sections)
    assert code == 0 and first["step"] == 55
    code, events, second = train(tmp_path / "split", digits_dir, training=training, **sections)
    assert code == 0 and second["step"] == 120
    starts = [index for index, event in enumerate(events) if event["data"].get("state") == "running"]
    assert len(starts) == 2, "the JSON-lines file holds both processes' events"
    events = events[starts[1]:]
    assert events[0]["data"]["resumed_from_step"] == 55
    assert min(point["step"] for point in metric_points(events)) == 56
    whole = load_file(tmp_path / "whole/checkpoints/step-00000120/model.safetensors")
    resumed = load_file(tmp_path / "split/checkpoints/step-00000120/model.safetensors")
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)


def test_early_stopping_ends_the_run_and_tests_the_best_weights(tmp_path, digits_dir):
    code, events, result = train(tmp_path, digits_dir, training={
        **DIGITS_RECIPE, "epochs": 10, "early_stopping": {"metric": "val_loss", "patience": 2, "min_delta": 100}})
    assert code == 0 and result["message"] == "early stopping after epoch 3"
    assert [point["step"] for point in metric_points(events) if "val_loss" in point["values"]] == [40, 80, 120]


@pytest.mark.parametrize("optimizer, schedule", [("sgd", {"type": "step", "step_size": 1, "gamma": 0.5}),
                                                 ("adam", {"type": "onecycle"}), ("adamw", {"type": "cosine",
                                                                                            "warmup_epochs": 1}),
                                                 ("adagrad", {"type": "onecycle"}), ("rmsprop", {"type": "none"})])
def test_every_optimizer_and_schedule_trains(tmp_path, digits_dir, optimizer, schedule):
    code, events, _ = train(tmp_path, digits_dir, training={
        "optimizer": optimizer, "lr": 0.001, "batch_size": 64, "epochs": 2, "schedule": schedule,
        "grad_clip": 1.0, "label_smoothing": 0.1, "nesterov": optimizer == "sgd"})
    assert code == 0, [event for event in events if event["kind"] == "status"]
    assert final_values(events)["test_accuracy"] > 0.1


def test_schedule_factors():
    warm = schedule_factor(ScheduleSpec(type="cosine", warmup_epochs=1), steps_per_epoch=10, total_steps=30)
    assert [round(warm(step), 3) for step in (0, 4, 9, 10, 20, 30)] == [0.1, 0.5, 1.0, 1.0, 0.5, 0.0]
    step = schedule_factor(ScheduleSpec(type="step", step_size=2, gamma=0.1), steps_per_epoch=10, total_steps=60)
    assert [round(step(number), 4) for number in (0, 19, 20, 39, 40)] == [1.0, 1.0, 0.1, 0.1, 0.01]


def test_fp16_on_cpu_is_refused_and_bf16_falls_back_to_fp32(tmp_path, digits_dir):
    code, events, result = train(tmp_path / "fp16", digits_dir, training={**DIGITS_RECIPE, "amp": "fp16"})
    assert code == exit_codes.SPEC_REFUSED
    assert result["message"].startswith("training.amp fp16 needs a GPU and this run has none")
    code, events, _ = train(tmp_path / "bf16", digits_dir, training={**DIGITS_RECIPE, "amp": "bf16", "epochs": 1})
    assert code == 0
    assert any("bf16 applies on GPU only" in event["data"]["message"] for event in events if event["kind"] == "log")


def test_a_spec_the_dataset_refuses_ends_with_code_2_and_a_failed_status(tmp_path, digits_dir):
    code, events, result = train(tmp_path, digits_dir, training={**DIGITS_RECIPE, "batch_size": 4096})
    assert code == exit_codes.SPEC_REFUSED
    assert result["state"] == "failed" and "larger than the training split" in result["message"]
    assert [event["data"]["state"] for event in events if event["kind"] == "status"] == ["failed"]


def test_an_exception_ends_with_code_1_and_its_message(tmp_path):
    code, events, result = train(tmp_path, tmp_path / "no-such-dataset", training=DIGITS_RECIPE)
    assert code == exit_codes.FAILED
    assert result["message"].startswith("FileNotFoundError") and "meta.json" in result["message"]
    assert events[-1]["data"]["state"] == "failed" and events[-1]["data"]["exit_code"] == 1


def test_an_unreadable_spec_still_reports_where_it_can(tmp_path):
    spec = {"run_id": "x", "data": {"path": "/d"}, "model": {"preset": "mlp"}, "training": {"lr": -1},
            "metrics": {"jsonl": str(tmp_path / "events.jsonl")}, "result_file": str(tmp_path / "result.json")}
    assert run(spec, stop=StopRequest()) == exit_codes.SPEC_REFUSED
    assert exit_codes.read_result(tmp_path / "result.json")["message"] == "training.lr must be greater than 0 (got -1.0)"
    assert read_events(tmp_path / "events.jsonl")[0]["data"]["state"] == "failed"


def test_a_stop_requested_before_training_cancels_without_training(tmp_path, digits_dir):
    stop = StopRequest()
    stop.signal_number = 15
    spec = make_spec(data=digits_dir, checkpoint_dir=tmp_path / "checkpoints", jsonl=tmp_path / "events.jsonl")
    assert run(spec, stop=stop) == exit_codes.CANCELLED
    result = exit_codes.read_result(tmp_path / "checkpoints/result.json")
    assert result["state"] == "cancelled" and result["message"] == "cancelled before training started"
    assert not list((tmp_path / "checkpoints").glob("step-*"))


class SignalledWhileStarting(StopRequest):
    """A SIGTERM that lands after the engine's start-up check, while the run still starts."""

    def __init__(self):
        super().__init__()
        self.signal_number, self.asked = 15, 0

    @property
    def requested(self) -> bool:
        self.asked += 1
        return self.asked > 1


def test_an_error_after_a_stop_request_ends_the_run_cancelled_with_the_error_in_its_message(tmp_path):
    code, events, result = train(tmp_path, tmp_path / "no-such-dataset", training=DIGITS_RECIPE,
                                 stop=SignalledWhileStarting())
    assert code == exit_codes.CANCELLED
    assert result["state"] == "cancelled"
    assert result["message"].startswith("cancelled (SIGTERM); it stopped on FileNotFoundError") and "meta.json" in \
        result["message"]
    assert events[-1]["data"]["state"] == "cancelled" and events[-1]["data"]["exit_code"] == exit_codes.CANCELLED


def _judge(gate_dir: Path, prune_at: int, stop: threading.Event, seen: list) -> None:
    """An outside judge: answers each epoch's request, says prune at `prune_at`."""
    from trainer_app.engine.gate import decision_path, request_path, write_json_atomically

    epoch = 1
    while not stop.is_set():
        request = request_path(gate_dir, epoch)
        if request.exists():
            seen.append(json.loads(request.read_text()))
            action = "prune" if epoch == prune_at else "continue"
            write_json_atomically(decision_path(gate_dir, epoch), {"action": action, "reason": "below the median"})
            epoch += 1
        time.sleep(0.01)


def test_the_epoch_gate_prunes_after_the_judged_epoch_with_its_reason(tmp_path, digits_dir):
    gate_dir = tmp_path / "gate"
    stop, seen = threading.Event(), []
    judge = threading.Thread(target=_judge, args=(gate_dir, 2, stop, seen), daemon=True)
    judge.start()
    try:
        code, events, result = train(tmp_path, digits_dir, training={**DIGITS_RECIPE, "epochs": 5},
                                     control={"epoch_gate": str(gate_dir), "gate_timeout_s": 30})
    finally:
        stop.set()
    assert code == exit_codes.PRUNED and result["state"] == "pruned"
    assert result["message"] == "pruned after epoch 2: below the median"
    assert [request["epoch"] for request in seen] == [1, 2]
    assert 0 < seen[1]["values"]["val_accuracy"] <= 1
    epochs = {point["epoch"] for point in metric_points(events)}
    assert max(epochs) == 2, "nothing trained after the pruned epoch"
    assert not any("test_accuracy" in point["values"] for point in metric_points(events)), "no test after a prune"
    assert (tmp_path / "checkpoints").exists()


def test_an_epoch_gate_nobody_answers_lets_the_run_go_on(tmp_path, digits_dir):
    code, events, result = train(tmp_path, digits_dir, training={**DIGITS_RECIPE, "epochs": 2},
                                 control={"epoch_gate": str(tmp_path / "gate"), "gate_timeout_s": 0.2})
    assert code == exit_codes.SUCCEEDED
    assert sorted(path.name for path in (tmp_path / "gate").iterdir()) == ["epoch-1.json", "epoch-2.json"]


def test_the_learning_rate_finder_sweeps_one_epoch_at_most_and_suggests_a_rate(tmp_path, digits_dir):
    code, events, result = train(tmp_path, digits_dir, training={"optimizer": "adam", "batch_size": 32, "epochs": 1},
                                 lr_finder={"start_lr": 1e-5, "end_lr": 10})
    assert code == exit_codes.SUCCEEDED, result
    points = [point for point in metric_points(events) if "lr_finder_loss" in point["values"]]
    rates = [point["values"]["lr"] for point in points]
    assert 3 <= len(points) <= 100 and rates == sorted(rates) and rates[0] == pytest.approx(1e-5)
    final = final_values(events)
    assert 1e-4 < final["lr_finder_suggested_lr"] < final["lr_finder_min_loss_lr"] <= rates[-1]
    assert 1e-4 <= final["lr_finder_suggested_lr"] <= 3e-2, "Adam on digits trains well around 1e-3"
    assert "suggested lr" in result["message"]
    assert not any((tmp_path / "checkpoints").glob("step-*")), "a range test writes no checkpoint"


def test_the_suggestion_is_a_tenth_of_the_lowest_loss_or_the_steepest_descent():
    from trainer_app.engine.trainer import suggest_learning_rate

    curve = [(10 ** exponent, loss) for exponent, loss in
             [(-5, 2.30), (-4, 2.29), (-3, 2.0), (-2, 1.0), (-1, 0.6), (0, 3.0)]]
    suggested, lowest = suggest_learning_rate(curve)
    assert lowest == 0.1 and suggested == pytest.approx(0.01)  # steepest fall at 1e-3..1e-2 is >= 0.01
    flat = [(10 ** exponent, loss) for exponent, loss in [(-4, 2.30), (-3, 2.30), (-2, 2.29), (-1, 2.30), (0, 2.8)]]
    assert suggest_learning_rate(flat) == (pytest.approx(0.05), 0.01), "never fell: a twentieth of where it diverged"
