"""Run specs: typed fields, clear refusals, and the checks that need the dataset and the process count."""
import json
import math

import pytest

from trainer_app.engine.config import (OPTIMIZERS, RunSpec, SpecError, check_spec_against_dataset, load_run_spec,
                                       resolved_best_metric)
from trainer_app.engine.dataset_format import read_meta


def spec_dict(**training) -> dict:
    return {"run_id": 42, "data": {"path": "/data/digits"}, "model": {"preset": "small_cnn"},
            "training": {"optimizer": "sgd", "lr": 0.01, "batch_size": 64, **training}}


def refusal(data) -> str:
    with pytest.raises(SpecError) as raised:
        load_run_spec(data)
    return str(raised.value)


def test_a_full_spec_reads_into_typed_sections():
    spec = load_run_spec(json.dumps({
        **spec_dict(momentum=0.8, nesterov=True, epochs=3, schedule={"type": "cosine", "warmup_epochs": 1},
                    early_stopping={"metric": "val_accuracy", "patience": 2}, amp="bf16"),
        "data": {"path": "/d", "augmentation": {"random_crop": 2, "hflip": True}, "num_workers": 1},
        "init": {"weights": "/w/model.safetensors", "freeze": ["conv1"]},
        "checkpoint": {"dir": "/ck", "keep_last": 3},
        "metrics": {"redis_url": "redis://127.0.0.1:6379/10", "stream": "trainyard:run:42:events"},
        "distributed": {"backend": "gloo"}}))
    assert isinstance(spec, RunSpec) and spec.run_id == "42"
    assert spec.training.schedule.type == "cosine" and spec.training.early_stopping.mode == "max"
    assert spec.data.augmentation.enabled and spec.init.freeze == ["conv1"]
    assert spec.result_path().as_posix() == "/ck/result.json"
    assert resolved_best_metric(spec) == ("val_accuracy", "max")


@pytest.mark.parametrize("lr", [0, -0.1])
def test_a_learning_rate_of_zero_or_less_is_refused(lr):
    assert refusal(spec_dict(lr=lr)) == f"training.lr must be greater than 0 (got {float(lr)})"


def test_a_nan_learning_rate_is_refused():
    assert "training.lr must be a number, not NaN" in refusal('{"run_id": 1, "data": {"path": "/d"}, '
                                                             '"model": {"preset": "mlp"}, "training": {"lr": NaN}}')
    assert "training.lr must be a number, not NaN" in refusal(spec_dict(lr=math.nan))


def test_an_unknown_optimizer_is_refused_with_the_known_names_listed():
    message = refusal(spec_dict(optimizer="adamx"))
    assert message == "training.optimizer 'adamx' is not one of sgd, adam, adamw, adagrad, rmsprop"
    assert all(name in message for name in OPTIMIZERS)


@pytest.mark.parametrize("change, expected", [
    ({"training": {"lrate": 0.1}}, "training: unknown field 'lrate'"),
    ({"training": {"epochs": 2.5}}, "training.epochs must be a whole number (got 2.5)"),
    ({"training": {"batch_size": "64"}}, "training.batch_size must be a whole number"),
    ({"training": {"nesterov": True, "optimizer": "adam"}}, "training.nesterov applies to sgd only"),
    ({"training": {"amp": "fp8"}}, "training.amp 'fp8' is not one of none, bf16, fp16"),
    ({"training": {"schedule": {"type": "linear"}}}, "training.schedule.type 'linear' is not one of"),
    ({"training": {"early_stopping": {"metric": "val_f1"}}}, "training.early_stopping.metric 'val_f1'"),
    ({"model": {"preset": "resnet101"}}, "model.preset 'resnet101' is not one of mlp, small_cnn"),
    ({"model": {"preset": "mlp", "layers": [{"type": "Linear"}]}}, "model.preset or layers: give exactly one"),
    ({"metrics": {"redis_url": "redis://x"}}, "metrics.stream and redis_url go together"),
    ({"distributed": {"backend": "mpi"}}, "distributed.backend 'mpi' is not one of auto, gloo, nccl"),
    ({"data": {"path": "/d", "augmentation": {"rotation": 270}}}, "data.augmentation.rotation must be at most 180"),
])
def test_field_errors_name_the_field_and_the_fix(change, expected):
    data = spec_dict()
    for section, value in change.items():
        data[section] = {**data.get(section, {}), **value} if section == "training" else value
    assert expected in refusal(data)


def test_missing_required_sections_are_named():
    assert refusal({"run_id": "1", "model": {"preset": "mlp"}}) == "data is required"
    assert refusal({"run_id": "1", "data": {}, "model": {"preset": "mlp"}}) == "data.path is required"


def test_unreadable_spec_files_are_refused(tmp_path):
    assert "cannot read the run spec" in refusal(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    assert "not valid JSON" in refusal(tmp_path / "broken.json")


def test_a_batch_larger_than_the_training_split_is_refused(digits_dir):
    meta = read_meta(digits_dir)
    spec = load_run_spec(spec_dict(batch_size=5000))
    with pytest.raises(SpecError, match=r"training.batch_size 5000 is larger than the training split "
                                        r"\(1280 samples\): choose a batch of at most 1280"):
        check_spec_against_dataset(spec, meta)


def test_a_batch_that_does_not_divide_across_the_processes_is_refused(digits_dir):
    meta = read_meta(digits_dir)
    spec = load_run_spec(spec_dict(batch_size=66))
    check_spec_against_dataset(spec, meta, world_size=2)
    with pytest.raises(SpecError, match="training.batch_size 66 does not divide evenly across 4 processes: "
                                        "choose a multiple of 4 such as 64 or 68"):
        check_spec_against_dataset(spec, meta, world_size=4)


def test_augmentation_on_a_table_and_image_metrics_on_regression_are_refused(wine_dir, diabetes_dir):
    spec = load_run_spec({**spec_dict(batch_size=16), "data": {"path": "/d", "augmentation": {"hflip": True}}})
    with pytest.raises(SpecError, match="data.augmentation applies to images only"):
        check_spec_against_dataset(spec, read_meta(wine_dir))
    spec = load_run_spec(spec_dict(batch_size=16, early_stopping={"metric": "val_accuracy"}))
    with pytest.raises(SpecError, match="'val_accuracy' does not apply to regression"):
        check_spec_against_dataset(spec, read_meta(diabetes_dir))


@pytest.mark.parametrize("backend, processes, gpus, refused", [
    ("auto", 2, 1, True), ("nccl", 3, 2, True), ("nccl", 2, 2, False), ("auto", 1, 1, False),
    ("gloo", 2, 1, False), ("auto", 2, 0, False),
])
def test_nccl_needs_one_gpu_per_process(backend, processes, gpus, refused):
    """Two NCCL ranks on one GPU fail with "Duplicate GPU detected" (benchmarks/gpu_check.py on an H200):
    the engine refuses them first, naming the fix."""
    from trainer_app.engine.distributed import check_one_gpu_per_process

    if not refused:
        check_one_gpu_per_process(backend, processes, gpus)
        return
    with pytest.raises(SpecError) as caught:
        check_one_gpu_per_process(backend, processes, gpus)
    assert caught.value.field_name == "distributed.backend"
    assert f"set nproc_per_node to {gpus} or fewer" in str(caught.value)
