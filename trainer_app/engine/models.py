"""Model presets and the one function that builds any model spec.

Presets (options in brackets, defaults shown):

- ``mlp`` [hidden=[256, 128], dropout=0.0, activation="relu", batch_norm=false]: flattens its input;
  children ``flatten, fc1, act1, (bn1, drop1,) fc2, …, head``.
- ``small_cnn`` [channels=[6, 16], hidden=[120, 84], padding=null, dropout=0.0]: PyTorch's CIFAR-10 tutorial
  network (conv 6@5x5, max-pool 2, conv 16@5x5, max-pool 2, fc 120, fc 84, fc classes), children
  ``conv1, act1, pool1, conv2, act2, pool2, flatten, fc1, act3, fc2, act4, fc3``. padding null picks 0 for
  images of at least 16 px (the tutorial's exact layers: 32x32 gives 16x5x5) and 2 below that, so each
  convolution keeps the size and only the pools halve it (digits 8x8 → 6x8x8 → 6x4x4 → 16x4x4 → 16x2x2).
- ``resnet18``, ``resnet34``, ``resnet50`` [small_input=null]: torchvision's networks (weights=None,
  nothing downloaded) with ``conv1`` taking the dataset's channels and ``fc`` its classes; small_input
  (default: images under 64 px) swaps the 7x7/2 stem for a 3x3/1 one and drops the max-pool.
- ``vit_tiny`` [patch_size=null, dim=192, depth=12, num_heads=3, mlp_ratio=4.0, dropout=0.0]: a ViT-Ti/x;
  patch_size null picks the largest power of two up to min(H, W) / 8 (at most 16): 8x8 → 1, 32x32 → 4,
  224x224 → 16. Pixels beyond a whole number of patches are dropped.
- ``tab_transformer`` [dim=32, depth=3, num_heads=4, mlp_ratio=2.0, dropout=0.1]: one token per feature
  (value × learned vector + learned bias) plus a class token, transformer blocks, a head on the class token.

The head (the last Linear) is what transfer learning replaces when only the number of classes differs.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .design import PRESET_OPTIONS, PRESETS, DesignError, resolve_layers
from .layers import Attention, GlobalAvgPool2d, TransformerBlock, build_designed_model

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


def build_model(model_spec: dict, input_shape, outputs: int) -> nn.Module:
    """The module for a model spec ({"preset", "options"} or {"layers"}); ``outputs`` = classes, or 1.

    Raises DesignError when the spec does not fit the input shape.
    """
    input_shape = tuple(int(size) for size in input_shape)
    if "layers" in model_spec and model_spec.get("layers") is not None:
        return build_designed_model(resolve_layers(model_spec["layers"], input_shape, outputs))
    preset = model_spec.get("preset")
    if preset not in PRESETS:
        raise DesignError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    options = _options(preset, model_spec.get("options") or {})
    try:
        return _BUILDERS[preset](input_shape, outputs, options)
    except (TypeError, ValueError) as error:
        if isinstance(error, DesignError):
            raise
        raise DesignError(f"{preset} options {options} do not build a model: {error}") from None


def _options(preset: str, given: dict) -> dict:
    known = PRESET_OPTIONS[preset]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise DesignError(f"{preset} has no option {unknown[0]!r} (its options: {', '.join(known) or 'none'})")
    return {**known, **{key: value for key, value in given.items()}}


def _needs_image(preset: str, input_shape) -> None:
    if len(input_shape) != 3:
        raise DesignError(f"{preset} needs images [channels, height, width]; this dataset is a table of "
                          f"{input_shape[0]} features: use mlp or tab_transformer")


def _positive_ints(preset: str, name: str, values) -> list[int]:
    if not isinstance(values, (list, tuple)) or not values or not all(
            isinstance(value, int) and not isinstance(value, bool) and value > 0 for value in values):
        raise DesignError(f"{preset} option {name} must be a non-empty list of positive whole numbers")
    return [int(value) for value in values]


def _mlp(input_shape, outputs, options) -> nn.Module:
    hidden = _positive_ints("mlp", "hidden", options["hidden"])
    activation = _ACTIVATIONS.get(options["activation"])
    if activation is None:
        raise DesignError(f"mlp option activation must be one of {', '.join(_ACTIVATIONS)}")
    width = 1
    for size in input_shape:
        width *= size
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    for number, size in enumerate(hidden, start=1):
        layers.append((f"fc{number}", nn.Linear(width, size)))
        if options["batch_norm"]:
            layers.append((f"bn{number}", nn.BatchNorm1d(size)))
        layers.append((f"act{number}", activation()))
        if options["dropout"]:
            layers.append((f"drop{number}", nn.Dropout(float(options["dropout"]))))
        width = size
    layers.append(("head", nn.Linear(width, outputs)))
    return nn.Sequential(OrderedDict(layers))


def small_cnn_padding(input_shape, padding=None) -> int:
    """The convolutions' padding: the option if given, else 0 from 16 px up and 2 below."""
    if padding is not None:
        return int(padding)
    return 0 if min(input_shape[1:]) >= 16 else 2


def _small_cnn(input_shape, outputs, options) -> nn.Module:
    _needs_image("small_cnn", input_shape)
    channels = _positive_ints("small_cnn", "channels", options["channels"])
    hidden = _positive_ints("small_cnn", "hidden", options["hidden"])
    if len(channels) != 2:
        raise DesignError("small_cnn option channels must list two numbers (the two convolutions)")
    padding = small_cnn_padding(input_shape, options["padding"])
    height, width = input_shape[1:]
    for _ in range(2):
        height, width = (height + 2 * padding - 4) // 2, (width + 2 * padding - 4) // 2
    if height < 1 or width < 1:
        raise DesignError(f"small_cnn does not fit {input_shape[1]}x{input_shape[2]} images with padding "
                          f"{padding}: images need at least 4 px (padding 2) or 16 px (padding 0)")
    layers = [("conv1", nn.Conv2d(input_shape[0], channels[0], 5, padding=padding)), ("act1", nn.ReLU()),
              ("pool1", nn.MaxPool2d(2, 2)),
              ("conv2", nn.Conv2d(channels[0], channels[1], 5, padding=padding)), ("act2", nn.ReLU()),
              ("pool2", nn.MaxPool2d(2, 2)), ("flatten", nn.Flatten())]
    features = channels[1] * height * width
    for number, size in enumerate(hidden, start=1):
        layers.append((f"fc{number}", nn.Linear(features, size)))
        layers.append((f"act{number + 2}", nn.ReLU()))
        if options["dropout"]:
            layers.append((f"drop{number}", nn.Dropout(float(options["dropout"]))))
        features = size
    layers.append((f"fc{len(hidden) + 1}", nn.Linear(features, outputs)))
    return nn.Sequential(OrderedDict(layers))


def _resnet(depth: int):
    def build(input_shape, outputs, options) -> nn.Module:
        import torchvision  # imported here: it costs seconds and only ResNets need it

        _needs_image(f"resnet{depth}", input_shape)
        constructor = getattr(torchvision.models, f"resnet{depth}")
        model = constructor(weights=None, num_classes=outputs)
        small = options["small_input"]
        if small is None:
            small = min(input_shape[1:]) < 64
        if small:
            model.conv1 = nn.Conv2d(input_shape[0], 64, 3, 1, 1, bias=False)
            model.maxpool = nn.Identity()
        elif input_shape[0] != 3:
            model.conv1 = nn.Conv2d(input_shape[0], 64, 7, 2, 3, bias=False)
        if not small and min(input_shape[1:]) < 32:
            raise DesignError(f"resnet{depth} with the large stem needs images of at least 32 px: "
                              f"set small_input to true")
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.avgpool = GlobalAvgPool2d()
        return model
    return build


def vit_patch_size(input_shape, patch_size=None) -> int:
    """The ViT patch: the option if given, else the largest power of two up to min(H, W) / 8, at most 16."""
    if patch_size is not None:
        return int(patch_size)
    size = 1
    while size * 2 <= min(input_shape[1:]) / 8 and size < 16:
        size *= 2
    return size


class PatchEmbedding(nn.Module):
    """Image → patch tokens with a class token and learned position embeddings."""

    def __init__(self, channels: int, dim: int, patch: int, count: int):
        super().__init__()
        self.projection = nn.Conv2d(channels, dim, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.empty(1, count + 1, dim))
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.projection(images).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens + self.position


class FeatureTokenizer(nn.Module):
    """Table row → one token per feature (value × vector + bias), plus a class token."""

    def __init__(self, features: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(features, dim))
        self.bias = nn.Parameter(torch.zeros(features, dim))
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.weight, std=dim ** -0.5)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        tokens = values.unsqueeze(-1) * self.weight + self.bias
        return torch.cat([self.class_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)


class TokenTransformer(nn.Module):
    """Tokens from an embedding, transformer blocks, a final LayerNorm and a head on the class token."""

    def __init__(self, embedding: nn.Module, dim: int, depth: int, num_heads: int, hidden: int, dropout: float,
                 outputs: int):
        super().__init__()
        self.embedding = embedding
        self.blocks = nn.Sequential(*[TransformerBlock(dim, num_heads, hidden, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, outputs)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(self.blocks(self.embedding(inputs)))
        return self.head(tokens[:, 0])


def _transformer_sizes(preset: str, options) -> tuple[int, int, int, int, float]:
    dim, depth, heads = (int(options[name]) for name in ("dim", "depth", "num_heads"))
    if min(dim, depth, heads) < 1:
        raise DesignError(f"{preset} options dim, depth and num_heads must be at least 1")
    if dim % heads:
        raise DesignError(f"{preset}: dim {dim} cannot be split into {heads} heads: choose num_heads dividing {dim}")
    dropout = float(options["dropout"])
    if not 0 <= dropout < 1:
        raise DesignError(f"{preset} option dropout must be in [0, 1)")
    return dim, depth, heads, int(dim * float(options["mlp_ratio"])), dropout


def _vit_tiny(input_shape, outputs, options) -> nn.Module:
    _needs_image("vit_tiny", input_shape)
    dim, depth, heads, hidden, dropout = _transformer_sizes("vit_tiny", options)
    patch = vit_patch_size(input_shape, options["patch_size"])
    count = (input_shape[1] // patch) * (input_shape[2] // patch)
    if count < 1:
        raise DesignError(f"vit_tiny: patch_size {patch} is larger than the {input_shape[1]}x{input_shape[2]} "
                          f"images: choose a smaller patch_size")
    return TokenTransformer(PatchEmbedding(input_shape[0], dim, patch, count), dim, depth, heads, hidden, dropout,
                            outputs)


def _tab_transformer(input_shape, outputs, options) -> nn.Module:
    if len(input_shape) != 1:
        raise DesignError("tab_transformer is for tables; for images use vit_tiny")
    dim, depth, heads, hidden, dropout = _transformer_sizes("tab_transformer", options)
    return TokenTransformer(FeatureTokenizer(input_shape[0], dim), dim, depth, heads, hidden, dropout, outputs)


_BUILDERS = {"mlp": _mlp, "small_cnn": _small_cnn, "resnet18": _resnet(18), "resnet34": _resnet(34),
             "resnet50": _resnet(50), "vit_tiny": _vit_tiny, "tab_transformer": _tab_transformer}


# --- describing a model: shapes, parameters, multiply-adds ----------------------------------------

def _described_parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's children, with Sequential containers opened one level (ResNet stages, ViT blocks)."""
    parts = []
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential) and len(child) and not isinstance(model, nn.Sequential):
            parts.extend((f"{name}.{inner}", module) for inner, module in child.named_children())
        else:
            parts.append((name, child))
    return parts


def _leaf_macs(module: nn.Module, inputs, output) -> int:
    if isinstance(module, nn.Conv2d):
        return output[0].numel() * (module.in_channels // module.groups) * module.kernel_size[0] * \
            module.kernel_size[1]
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features
    if isinstance(module, Attention):
        _, count, dim = inputs[0].shape
        return 2 * count * count * dim
    return 0


def describe_model(model: nn.Module, input_shape) -> list[dict]:
    """Per part: {"type", "name", "output_shape", "parameters", "macs"}, from one forward pass on the meta device."""
    model = model.to("meta").eval()
    macs_by_module: dict[nn.Module, int] = {}
    shapes: dict[str, list[int]] = {}
    handles = []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, Attention)):
            handles.append(module.register_forward_hook(
                lambda module, inputs, output: macs_by_module.__setitem__(
                    module, macs_by_module.get(module, 0) + _leaf_macs(module, inputs, output))))
    parts = _described_parts(model)
    for name, module in parts:
        handles.append(module.register_forward_hook(
            lambda module, inputs, output, name=name: shapes.__setitem__(name, list(output.shape[1:]))))
    try:
        with torch.no_grad():
            model(torch.empty((1, *input_shape), device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    described = []
    for name, module in parts:
        described.append({"type": type(module).__name__, "name": name, "output_shape": shapes.get(name, []),
                          "parameters": sum(parameter.numel() for parameter in module.parameters()),
                          "macs": sum(macs_by_module.get(inner, 0) for inner in module.modules())})
    return described


def describe_preset(preset: str, options: dict, input_shape, outputs: int) -> list[dict]:
    """describe_model for a preset built on the meta device (no memory, no computation)."""
    with torch.device("meta"):
        model = build_model({"preset": preset, "options": options}, input_shape, outputs)
    return describe_model(model, input_shape)


# --- naming: heads and freezable layers -------------------------------------------------------------

def head_name(model: nn.Module) -> str:
    """The qualified name of the classification head: the model's last Linear module."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError("the model has no Linear layer to act as its head")
    return names[-1]


def layer_names(model: nn.Module, depth: int = 2) -> list[dict]:
    """Names usable as freeze prefixes: modules up to `depth` dots deep that hold parameters."""
    names = []
    for name, module in model.named_modules():
        if name and name.count(".") < depth:
            count = sum(parameter.numel() for parameter in module.parameters())
            if count:
                names.append({"name": name, "type": type(module).__name__, "parameters": count})
    return names


def freezable_layers(model_spec: dict, input_shape, num_classes: int) -> list[dict]:
    """The layer names the UI can offer to freeze, for a spec on an input shape: [{"name", "type", "parameters"}].

    A name freezes every parameter whose name is that name or starts with it followed by a dot
    (``layer1`` freezes ``layer1.0.conv1.weight`` but not ``layer10.weight``).
    """
    with torch.device("meta"):
        model = build_model(model_spec, input_shape, max(int(num_classes), 1))
    return layer_names(model)


def freeze(model: nn.Module, prefixes: list[str]) -> list[str]:
    """Fix the parameters under each prefix; returns the frozen parameter names. Unknown prefixes raise ValueError."""
    names = [name for name, _ in model.named_parameters()]
    frozen = []
    for prefix in prefixes:
        matched = [name for name in names if name == prefix or name.startswith(prefix + ".")]
        if not matched:
            available = ", ".join(entry["name"] for entry in layer_names(model, depth=1))
            raise ValueError(f"init.freeze: no layer named {prefix!r} in this model (top-level layers: {available})")
        frozen.extend(matched)
    for name, parameter in model.named_parameters():
        if name in frozen:
            parameter.requires_grad_(False)
    return sorted(set(frozen))
