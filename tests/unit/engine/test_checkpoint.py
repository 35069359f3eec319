"""Checkpoints: atomic, pruned to the last k plus the best, checked on load; foreign weights: safetensors only."""
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from trainer_app.engine.checkpoint import (CheckpointManager, WeightsError, check_safetensors_file,
                                           load_init_weights)
from trainer_app.engine.models import build_model


def small_cnn(classes=10):
    torch.manual_seed(0)
    return build_model({"preset": "small_cnn"}, (1, 8, 8), classes)


def save(manager, step, *, best=False, value=1.0):
    model = small_cnn()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.zeros(2, 1, 8, 8)).sum().backward()
    optimizer.step()
    return manager.save(step=step, weights=model.state_dict(), state={"optimizer": optimizer.state_dict(),
                        "rng": [{"torch": torch.get_rng_state()}], "trainer": {"step": step}}, best=best,
                        best_metric=("val_loss", value) if best else None)


def test_checkpoints_keep_the_last_k_and_the_best(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    save(manager, 10, best=True, value=0.5)
    for step in (20, 30, 40):
        save(manager, step)
    assert [name for _, name in manager.names()] == ["step-00000010", "step-00000030", "step-00000040"]
    assert manager.best_name() == "step-00000010" and manager.best().step == 10
    assert manager.latest().step == 40
    assert not [entry for entry in os.listdir(tmp_path) if entry.endswith(".tmp")]


def test_state_files_load_with_weights_only_and_hold_what_resume_needs(tmp_path):
    path = save(CheckpointManager(tmp_path), 7)
    state = torch.load(path / "state.pt", weights_only=True)
    assert state["step"] == 7 and state["trainer"] == {"step": 7}
    assert state["optimizer"]["state"] and state["weights"]["sha256"]
    checkpoint = CheckpointManager(tmp_path).load("step-00000007")
    assert set(checkpoint.weights()) == set(small_cnn().state_dict())


def test_a_damaged_latest_checkpoint_is_skipped(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=3)
    save(manager, 1)
    latest = save(manager, 2)
    with open(latest / "model.safetensors", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    assert manager.latest().step == 1
    (tmp_path / "step-00000003").mkdir()  # an empty directory: no state file
    assert manager.latest().step == 1


@pytest.mark.parametrize("writer", ["torch_save", "raw_pickle"])
def test_a_pickle_disguised_as_safetensors_is_refused(tmp_path, writer):
    path = tmp_path / "model.safetensors"
    if writer == "torch_save":
        torch.save(small_cnn().state_dict(), path)
    else:
        path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(WeightsError, match="model.safetensors is a pickle .* refused"):
        load_init_weights(small_cnn(), path)


def test_garbage_under_the_safetensors_name_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(WeightsError, match="not a safetensors file"):
        check_safetensors_file(path)


def test_weights_of_another_architecture_list_the_mismatched_tensors(tmp_path):
    path = tmp_path / "other.safetensors"
    other = build_model({"preset": "small_cnn", "options": {"channels": [8, 16]}}, (1, 8, 8), 10)
    save_file(other.state_dict(), path)
    with pytest.raises(WeightsError) as raised:
        load_init_weights(small_cnn(), path)
    message = str(raised.value)
    assert "do not fit this model's architecture (3 tensors differ)" in message
    assert "conv1.weight: expected [6, 1, 5, 5], found [8, 1, 5, 5]" in message
    assert "conv1.bias: expected [6], found [8]; conv2.weight: expected [16, 6, 5, 5], found [16, 8, 5, 5]" in message


def test_missing_and_unexpected_tensors_are_listed(tmp_path):
    path = tmp_path / "mlp.safetensors"
    save_file(build_model({"preset": "mlp"}, (1, 8, 8), 10).state_dict(), path)
    with pytest.raises(WeightsError, match=r"fc1.weight: expected \[120, 64\], found \[256, 64\].*conv1.bias: "
                                           r"expected \[6\], missing from the file.*head.weight: found \[10, 128\], "
                                           r"not in this model"):
        load_init_weights(small_cnn(), path)


def test_only_the_head_differs_so_it_is_replaced_and_the_rest_loaded(tmp_path):
    path = tmp_path / "digits.safetensors"
    source = small_cnn(10)
    save_file({f"module.{name}": value for name, value in source.state_dict().items()}, path)
    target = small_cnn(5)
    fresh_head = target.fc3.weight.detach().clone()
    result = load_init_weights(target, path)
    assert result["replaced_head"] == "fc3"
    assert torch.equal(target.conv1.weight, source.conv1.weight) and torch.equal(target.fc2.bias, source.fc2.bias)
    assert torch.equal(target.fc3.weight, fresh_head)
