"""Presets build for the dataset's shape; layer names for freezing; the head that transfer learning replaces."""
import pytest
import torch

from trainer_app.engine.models import (build_model, freezable_layers, freeze, head_name, small_cnn_padding,
                                       vit_patch_size)


@pytest.mark.parametrize("preset, shape", [("mlp", (1, 8, 8)), ("small_cnn", (1, 8, 8)), ("small_cnn", (3, 32, 32)),
                                           ("resnet18", (1, 8, 8)), ("vit_tiny", (1, 8, 8)),
                                           ("tab_transformer", (13,)), ("mlp", (13,))])
def test_presets_train_one_step_on_their_input_shape(preset, shape):
    torch.manual_seed(0)
    options = {"depth": 2, "dim": 32, "num_heads": 2} if preset == "vit_tiny" else {}
    model = build_model({"preset": preset, "options": options}, shape, 5)
    inputs, labels = torch.randn(4, *shape), torch.tensor([0, 1, 2, 3])
    loss = torch.nn.functional.cross_entropy(model(inputs), labels)
    loss.backward()
    assert model(inputs).shape == (4, 5) and torch.isfinite(loss)
    assert all(parameter.grad is not None for parameter in model.parameters())


def test_small_cnn_keeps_the_tutorial_layers_from_16_pixels_and_pads_below():
    assert small_cnn_padding((3, 32, 32)) == 0 and small_cnn_padding((1, 8, 8)) == 2
    model = build_model({"preset": "small_cnn"}, (3, 32, 32), 10)
    assert [name for name, _ in model.named_children()] == ["conv1", "act1", "pool1", "conv2", "act2", "pool2",
                                                            "flatten", "fc1", "act3", "fc2", "act4", "fc3"]
    assert model.fc1.in_features == 400
    assert build_model({"preset": "small_cnn"}, (1, 8, 8), 10).fc1.in_features == 64


def test_resnets_take_the_dataset_channels_and_a_small_stem_for_small_images():
    small = build_model({"preset": "resnet18"}, (1, 28, 28), 7)
    assert small.conv1.in_channels == 1 and small.conv1.kernel_size == (3, 3)
    assert isinstance(small.maxpool, torch.nn.Identity) and small.fc.out_features == 7
    large = build_model({"preset": "resnet18"}, (3, 96, 96), 7)
    assert large.conv1.kernel_size == (7, 7) and isinstance(large.maxpool, torch.nn.MaxPool2d)


def test_vit_patch_size_follows_the_image_size():
    assert [vit_patch_size((3, size, size)) for size in (8, 28, 32, 64, 224, 512)] == [1, 2, 4, 8, 16, 16]


def test_freezable_layers_are_named_as_the_parameters_are():
    names = [entry["name"] for entry in freezable_layers({"preset": "small_cnn"}, [1, 8, 8], 10)]
    assert names == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    resnet = [entry["name"] for entry in freezable_layers({"preset": "resnet18"}, [3, 32, 32], 10)]
    assert {"conv1", "bn1", "layer1", "layer1.0", "layer4.1", "fc"} <= set(resnet)
    designed = freezable_layers({"layers": [{"type": "Flatten"}, {"type": "Linear", "out_features": 10}]}, [13], 10)
    assert designed == [{"name": "layer2", "type": "Linear", "parameters": 140}]


def test_freezing_fixes_exactly_the_parameters_under_a_prefix():
    model = build_model({"preset": "resnet18"}, (1, 8, 8), 10)
    frozen = freeze(model, ["conv1", "layer1"])
    assert "conv1.weight" in frozen and "layer1.0.conv1.weight" in frozen and "layer2.0.conv1.weight" not in frozen
    assert not model.conv1.weight.requires_grad and model.layer2[0].conv1.weight.requires_grad
    with pytest.raises(ValueError, match="no layer named 'layer9' in this model"):
        freeze(model, ["layer9"])


def test_the_head_is_the_last_linear_layer():
    assert head_name(build_model({"preset": "small_cnn"}, (1, 8, 8), 10)) == "fc3"
    assert head_name(build_model({"preset": "resnet18"}, (1, 8, 8), 10)) == "fc"
    assert head_name(build_model({"preset": "tab_transformer"}, (13,), 3)) == "head"
