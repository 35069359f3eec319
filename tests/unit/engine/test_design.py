"""validate_design: output shapes, parameters and multiply-adds per layer, and fixes for designs that do not fit."""
import time

import pytest
import torch

from trainer_app.engine.design import LAYER_PARAMETERS, resolve_layers, validate_design
from trainer_app.engine.models import build_model

TUTORIAL_CNN = [
    {"type": "Conv2d", "out_channels": 6, "kernel_size": 5}, {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2},
    {"type": "Conv2d", "out_channels": 16, "kernel_size": 5}, {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2},
    {"type": "Flatten"},
    {"type": "Linear", "in_features": 400, "out_features": 120}, {"type": "ReLU"},
    {"type": "Linear", "out_features": 84}, {"type": "ReLU"},
    {"type": "Linear", "out_features": 10},
]

EVERY_LAYER_TYPE = [
    {"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": "same"},
    {"type": "BatchNorm"}, {"type": "LeakyReLU", "negative_slope": 0.1},
    {"type": "ResidualBlock", "out_channels": 16, "stride": 2},
    {"type": "SelfAttention", "num_heads": 4, "mlp_ratio": 2},
    {"type": "AvgPool2d", "kernel_size": 2}, {"type": "GELU"},
    {"type": "AdaptiveAvgPool2d", "output_size": 1}, {"type": "Flatten"},
    {"type": "BatchNorm"}, {"type": "ResidualBlock", "hidden_features": 32}, {"type": "Tanh"},
    {"type": "Dropout", "p": 0.2}, {"type": "Linear", "out_features": 12}, {"type": "Sigmoid"},
    {"type": "Linear", "out_features": 10},
]


def test_the_tutorial_cnn_on_cifar_shapes_has_the_known_sizes():
    result = validate_design({"layers": TUTORIAL_CNN}, [3, 32, 32], 10)
    assert result["ok"] and result["error"] is None and result["error_layer"] is None
    shapes = [layer["output_shape"] for layer in result["layers"]]
    assert shapes[:7] == [[6, 28, 28], [6, 28, 28], [6, 14, 14], [16, 10, 10], [16, 10, 10], [16, 5, 5], [400]]
    assert [layer["parameters"] for layer in result["layers"] if layer["parameters"]] == [456, 2416, 48120,
                                                                                         10164, 850]
    assert result["parameters"] == 62006
    # conv1 6*28*28*75 + conv2 16*10*10*150 + 400*120 + 120*84 + 84*10
    assert result["layers"][0]["macs"] == 352_800 and result["layers"][3]["macs"] == 240_000
    assert result["macs"] == 352_800 + 240_000 + 48_000 + 10_080 + 840


def test_a_linear_layer_that_receives_more_inputs_than_it_expects_names_the_layer_and_the_fix():
    design = [{"type": "Conv2d", "out_channels": 16, "kernel_size": 5}, {"type": "MaxPool2d", "kernel_size": 2},
              {"type": "Flatten"}, {"type": "Linear", "in_features": 400, "out_features": 10}]
    result = validate_design({"layers": design}, [3, 16, 16], 10)
    assert not result["ok"]
    assert result["error"] == ("layer 4 Linear expects 400 inputs but receives 576: set in_features to 576 or add "
                               "a pooling layer")
    assert result["error_layer"] == 4
    assert [layer["output_shape"] for layer in result["layers"]] == [[16, 12, 12], [16, 6, 6], [576]]


@pytest.mark.parametrize("design, shape, classes, message, layer", [
    ([{"type": "Conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "Linear", "out_features": 10}],
     [1, 8, 8], 10, "layer 2 Linear receives a 4x6x6 input: add a Flatten layer before it", 2),
    ([{"type": "Flatten"}, {"type": "Conv2d", "out_channels": 4, "kernel_size": 3}],
     [1, 8, 8], 10, "layer 2 Conv2d needs an image-shaped input", 2),
    ([{"type": "MaxPool2d", "kernel_size": 2}] * 3 + [{"type": "Conv2d", "out_channels": 4, "kernel_size": 5}],
     [1, 8, 8], 10, "layer 4 Conv2d: its 1x1 input (with padding 0) is smaller than the 5x5 kernel", 4),
    ([{"type": "Flatten"}, {"type": "Linear", "out_features": 84}],
     [1, 8, 8], 10, "the last layer outputs 84 values but the dataset has 10 classes: set out_features of layer 2 "
                    "Linear to 10", 2),
    ([{"type": "Conv2d", "out_channels": 4, "kernel_size": 3}], [1, 8, 8], 10,
     "the design ends with a 4x6x6 output but must end with 10 values: add a Flatten and a Linear layer", 1),
    ([{"type": "Flatten"}, {"type": "Linear", "out_features": 3}], [13], 0,
     "regression needs 1 output: set out_features of layer 2 Linear to 1", 2),
    ([{"type": "Conv2D", "out_channels": 6, "kernel_size": 5}, {"type": "Softmax"}], [1, 8, 8], 10,
     "layer 2 has an unknown type 'Softmax': choose one of Conv2d", 2),
    ([{"type": "Conv2d", "out_channels": 6, "kernal_size": 5}], [1, 8, 8], 10,
     "layer 1 Conv2d has no parameter 'kernal_size'", 1),
    ([{"type": "Conv2d", "out_channels": 6, "kernel_size": 3, "in_channels": 3}], [1, 8, 8], 10,
     "layer 1 Conv2d expects 3 input channels but receives 1: set in_channels to 1 or leave it out", 1),
    ([{"type": "Conv2d", "out_channels": 6, "kernel_size": 1}, {"type": "SelfAttention", "num_heads": 4}],
     [1, 8, 8], 10, "layer 2 SelfAttention: 6 channels cannot be split into 4 heads: choose num_heads among 1, 2, "
                    "3, 6", 2),
    ([], [1, 8, 8], 10, "the design has no layers", None),
])
def test_designs_that_do_not_fit_point_at_the_layer(design, shape, classes, message, layer):
    result = validate_design({"layers": design}, shape, classes)
    assert not result["ok"]
    assert message in result["error"]
    assert result["error_layer"] == layer


def test_omitted_input_sizes_are_inferred_and_every_layer_type_resolves():
    layers = resolve_layers(EVERY_LAYER_TYPE, (1, 8, 8), 10)
    assert [layer.type for layer in layers] == [layer["type"] for layer in EVERY_LAYER_TYPE]
    assert set(LAYER_PARAMETERS) >= {layer.type for layer in layers}
    assert layers[0].params["in_channels"] == 1 and layers[13].params["in_features"] == 16
    assert layers[10].params["hidden_features"] == 32 and layers[10].output_shape == (16,)
    assert [layer.output_shape for layer in layers][3:9] == [(16, 4, 4), (16, 4, 4), (16, 2, 2), (16, 2, 2),
                                                             (16, 1, 1), (16,)]


@pytest.mark.parametrize("design, shape", [(TUTORIAL_CNN, (3, 32, 32)), (EVERY_LAYER_TYPE, (1, 8, 8)),
                                           (EVERY_LAYER_TYPE, (3, 12, 10))])
def test_the_arithmetic_matches_the_built_torch_model(design, shape):
    result = validate_design({"layers": design}, shape, 10)
    assert result["ok"], result["error"]
    model = build_model({"layers": design}, shape, 10)
    assert sum(parameter.numel() for parameter in model.parameters()) == result["parameters"]
    captured = []
    hooks = [layer.register_forward_hook(lambda module, inputs, output: captured.append(list(output.shape[1:])))
             for layer in model.children()]
    model.eval()(torch.zeros(2, *shape))
    for hook in hooks:
        hook.remove()
    assert captured == [layer["output_shape"] for layer in result["layers"]]
    assert [name for name, _ in model.named_children()] == [f"layer{index}" for index in range(1, len(design) + 1)]


def test_macs_of_presets_follow_the_same_counting_as_layer_lists():
    preset = validate_design({"preset": "small_cnn"}, [3, 32, 32], 10)
    layers = validate_design({"layers": TUTORIAL_CNN}, [3, 32, 32], 10)
    assert (preset["parameters"], preset["macs"]) == (layers["parameters"], layers["macs"]) == (62006, 651_720)


@pytest.mark.parametrize("preset, shape, classes", [
    ("mlp", [13], 3), ("mlp", [1, 8, 8], 10), ("small_cnn", [1, 8, 8], 10), ("small_cnn", [3, 32, 32], 10),
    ("resnet18", [3, 32, 32], 10), ("resnet34", [1, 8, 8], 10), ("resnet50", [3, 64, 64], 100),
    ("vit_tiny", [1, 8, 8], 10), ("vit_tiny", [3, 32, 32], 10), ("tab_transformer", [13], 3),
    ("tab_transformer", [10], 0),
])
def test_every_preset_validates_with_a_parameter_count_equal_to_the_model(preset, shape, classes):
    result = validate_design({"preset": preset}, shape, classes)
    assert result["ok"], result["error"]
    assert result["layers"][-1]["output_shape"] == [max(classes, 1)]
    assert result["macs"] > 0
    model = build_model({"preset": preset}, shape, max(classes, 1))
    assert result["parameters"] == sum(parameter.numel() for parameter in model.parameters())


def test_known_preset_sizes():
    assert validate_design({"preset": "resnet18"}, [3, 32, 32], 10)["parameters"] == 11_173_962
    assert validate_design({"preset": "resnet50"}, [3, 224, 224], 1000)["parameters"] == 25_557_032
    result = validate_design({"preset": "resnet18"}, [3, 224, 224], 1000)
    assert result["parameters"] == 11_689_512 and abs(result["macs"] - 1.814e9) / 1.814e9 < 0.01


@pytest.mark.parametrize("spec, shape, message", [
    ({"preset": "small_cnn"}, [13], "small_cnn needs images [channels, height, width]; this dataset is a table "
                                    "of 13 features: use mlp or tab_transformer"),
    ({"preset": "tab_transformer"}, [1, 8, 8], "tab_transformer is for tables; for images use vit_tiny"),
    ({"preset": "small_cnn", "options": {"kernel": 3}}, [1, 8, 8], "small_cnn has no option 'kernel'"),
    ({"preset": "small_cnn"}, [1, 2, 2], "small_cnn does not fit 2x2 images"),
    ({"preset": "vit_tiny", "options": {"num_heads": 5}}, [1, 8, 8], "dim 192 cannot be split into 5 heads"),
])
def test_presets_that_do_not_fit_say_why(spec, shape, message):
    result = validate_design(spec, shape, 10)
    assert not result["ok"] and message in result["error"]


def test_validating_a_layer_list_is_fast():
    started = time.perf_counter()
    for _ in range(100):
        validate_design({"layers": EVERY_LAYER_TYPE}, [3, 32, 32], 10)
    assert (time.perf_counter() - started) / 100 < 0.005


def test_a_final_activation_is_allowed_with_a_warning():
    design = [{"type": "Flatten"}, {"type": "Linear", "out_features": 10}, {"type": "ReLU"}]
    result = validate_design({"layers": design}, [1, 8, 8], 10)
    assert result["ok"] and "ends with layer 3 ReLU" in result["warnings"][0]
