"""Model designs checked against an input shape, without training and (for layer lists) without torch.

``validate_design(model_spec, input_shape, num_classes)`` answers what the model designer shows live:
each layer's output shape, parameter count and multiply-adds, and, for a design that does not fit, the
layer at fault and the fix. Layer lists are checked by arithmetic here (fast, no torch import); presets
are built on torch's meta device by models.describe_preset (no memory, no computation).

Counting conventions (the same for both paths): parameters are trainable tensors (BatchNorm's running
statistics are buffers and not counted); multiply-adds (MACs) count convolutions, linear layers and the
two attention products, per sample; normalisation, activations and pooling count 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PRESETS = ("mlp", "small_cnn", "resnet18", "resnet34", "resnet50", "vit_tiny", "tab_transformer")
# each preset's options and their defaults (built in engine/models.py; here so the web side needs no torch)
PRESET_OPTIONS = {
    "mlp": {"hidden": [256, 128], "dropout": 0.0, "activation": "relu", "batch_norm": False},
    "small_cnn": {"channels": [6, 16], "hidden": [120, 84], "padding": None, "dropout": 0.0},
    "resnet18": {"small_input": None},
    "resnet34": {"small_input": None},
    "resnet50": {"small_input": None},
    "vit_tiny": {"patch_size": None, "dim": 192, "depth": 12, "num_heads": 3, "mlp_ratio": 4.0, "dropout": 0.0},
    "tab_transformer": {"dim": 32, "depth": 3, "num_heads": 4, "mlp_ratio": 2.0, "dropout": 0.1},
}

_REQUIRED = object()
LAYER_PARAMETERS: dict[str, dict] = {
    "Conv2d": {"out_channels": _REQUIRED, "kernel_size": _REQUIRED, "stride": 1, "padding": 0, "bias": True,
               "in_channels": None},
    "BatchNorm": {"num_features": None},
    "BatchNorm1d": {"num_features": None},
    "BatchNorm2d": {"num_features": None},
    "ReLU": {},
    "GELU": {},
    "Tanh": {},
    "Sigmoid": {},
    "LeakyReLU": {"negative_slope": 0.01},
    "MaxPool2d": {"kernel_size": _REQUIRED, "stride": None, "padding": 0},
    "AvgPool2d": {"kernel_size": _REQUIRED, "stride": None, "padding": 0},
    "AdaptiveAvgPool2d": {"output_size": 1},
    "Dropout": {"p": 0.5},
    "Flatten": {},
    "Linear": {"out_features": _REQUIRED, "in_features": None, "bias": True},
    "ResidualBlock": {"out_channels": None, "stride": 1, "hidden_features": None},
    "SelfAttention": {"num_heads": 1, "mlp_ratio": 2.0, "dropout": 0.0},
}
"""Every layer type of the layer builder and its parameters (None = optional or inferred)."""
ACTIVATIONS = ("ReLU", "GELU", "Tanh", "Sigmoid", "LeakyReLU")
_ALIASES = {name.lower(): name for name in LAYER_PARAMETERS}
_ALIASES.update({"selfattentionblock": "SelfAttention", "attention": "SelfAttention", "residual": "ResidualBlock",
                 "batchnorm": "BatchNorm", "conv": "Conv2d", "dense": "Linear"})


class DesignError(ValueError):
    """A design that does not fit; ``layer`` is the 1-based index of the layer at fault (None: the whole design)."""

    def __init__(self, message: str, layer: int | None = None):
        super().__init__(message)
        self.layer = layer


@dataclass
class ResolvedLayer:
    """One layer with every parameter filled in (defaults, inferred input sizes) and its shapes."""

    index: int
    type: str
    params: dict
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int = 0
    macs: int = 0

    def summary(self) -> dict:
        return {"type": self.type, "output_shape": list(self.output_shape), "parameters": self.parameters,
                "macs": self.macs}


@dataclass
class _Walk:
    layers: list[ResolvedLayer] = field(default_factory=list)
    pooled: bool = False


def validate_design(model_spec: dict, input_shape, num_classes: int) -> dict:
    """The designer's answer for one design on one input shape.

    ``num_classes`` is the number of classes, or 0 (or 1) for regression (one output).
    Returns {"ok", "error", "error_layer", "layers": [{"type", "output_shape", "parameters", "macs"}],
    "parameters", "macs", "warnings"}; on an error, "layers" holds the layers that fit before it.
    """
    outputs = max(int(num_classes), 1)
    input_shape = tuple(int(size) for size in input_shape)
    if not isinstance(model_spec, dict):
        return _answer([], error=DesignError("the design must be an object with a preset or layers"))
    if "preset" in model_spec:
        from .models import describe_preset  # torch is imported only for presets

        try:
            layers = describe_preset(model_spec["preset"], model_spec.get("options") or {}, input_shape, outputs)
        except DesignError as error:
            return _answer([], error=error)
        return _answer(layers)
    if "layers" not in model_spec:
        return _answer([], error=DesignError('the design needs a "preset" or a list of "layers"'))
    walk = _Walk()
    try:
        resolve_layers(model_spec["layers"], input_shape, outputs, walk=walk)
    except DesignError as error:
        return _answer([layer.summary() for layer in walk.layers], error=error)
    return _answer([layer.summary() for layer in walk.layers], warnings=_warnings(walk.layers))


def _answer(layers: list[dict], *, error: DesignError | None = None, warnings=()) -> dict:
    return {"ok": error is None, "error": str(error) if error else None,
            "error_layer": error.layer if error else None, "layers": layers,
            "parameters": sum(layer["parameters"] for layer in layers),
            "macs": sum(layer["macs"] for layer in layers), "warnings": list(warnings)}


def _warnings(layers: list[ResolvedLayer]) -> list[str]:
    if layers and layers[-1].type in ACTIVATIONS + ("Dropout",):
        return [f"the design ends with layer {layers[-1].index} {layers[-1].type}: the loss expects raw scores, "
                f"so the last layer is usually Linear"]
    return []


def resolve_layers(layers: list, input_shape: tuple[int, ...], outputs: int, *,
                   walk: _Walk | None = None) -> list[ResolvedLayer]:
    """Every layer resolved in order; raises DesignError at the first that does not fit."""
    walk = walk or _Walk()
    if not layers:
        raise DesignError("the design has no layers: add at least a Flatten and a Linear layer")
    shape = tuple(input_shape)
    for index, raw in enumerate(layers, start=1):
        layer = _resolve_one(index, raw, shape, walk)
        walk.layers.append(layer)
        shape = layer.output_shape
    _check_output(walk.layers, outputs)
    return walk.layers


def _check_output(layers: list[ResolvedLayer], outputs: int) -> None:
    final = layers[-1].output_shape
    if len(final) != 1:
        raise DesignError(f"the design ends with a {_shape_text(final)} output but must end with {outputs} "
                          f"values: add a Flatten and a Linear layer with out_features={outputs}", len(layers))
    if final[0] != outputs:
        last_width = next((layer for layer in reversed(layers) if layer.type == "Linear"), layers[-1])
        needed = f"the dataset has {outputs} classes" if outputs > 1 else "regression needs 1 output"
        raise DesignError(f"the last layer outputs {final[0]} values but {needed}: set out_features of layer "
                          f"{last_width.index} {last_width.type} to {outputs}"
                          if last_width.type == "Linear" else
                          f"the design outputs {final[0]} values but {needed}: end with a Linear layer with "
                          f"out_features={outputs}", last_width.index)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(size) for size in shape)


def _layer_type(index: int, raw) -> str:
    if not isinstance(raw, dict) or "type" not in raw:
        raise DesignError(f"layer {index} must be an object with a \"type\"", index)
    name = str(raw["type"])
    canonical = _ALIASES.get(name.lower())
    if canonical is None:
        raise DesignError(f"layer {index} has an unknown type {name!r}: choose one of "
                          f"{', '.join(LAYER_PARAMETERS)}", index)
    return canonical


def _parameters(index: int, kind: str, raw: dict) -> dict:
    schema = LAYER_PARAMETERS[kind]
    unknown = sorted(set(raw) - set(schema) - {"type", "name"})
    if unknown:
        known = ", ".join(schema) or "none"
        raise DesignError(f"layer {index} {kind} has no parameter {unknown[0]!r} (its parameters: {known})", index)
    params = {}
    for name, default in schema.items():
        if name in raw and raw[name] is not None:
            params[name] = raw[name]
        elif default is _REQUIRED:
            raise DesignError(f"layer {index} {kind} needs {name}", index)
        else:
            params[name] = default
    return params


def _integer(index: int, kind: str, name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise DesignError(f"layer {index} {kind}: {name} must be a whole number of at least {minimum} "
                          f"(got {value!r})", index)
    return int(value)


def _pair(index: int, kind: str, name: str, value, *, minimum: int = 1) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise DesignError(f"layer {index} {kind}: {name} must be a number or a pair [height, width]", index)
        return (_integer(index, kind, name, value[0], minimum=minimum),
                _integer(index, kind, name, value[1], minimum=minimum))
    size = _integer(index, kind, name, value, minimum=minimum)
    return size, size


def _number(index: int, kind: str, name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
        raise DesignError(f"layer {index} {kind}: {name} must be a number in [{low}, {high}) (got {value!r})", index)
    return float(value)


def _needs_image(index: int, kind: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 3:
        raise DesignError(f"layer {index} {kind} needs an image-shaped input [channels, height, width] but "
                          f"receives {_shape_text(shape)} values: move it before the Flatten, or use Linear "
                          f"layers on flat inputs", index)


def _resolve_one(index: int, raw, shape: tuple[int, ...], walk: _Walk) -> ResolvedLayer:
    kind = _layer_type(index, raw)
    params = _parameters(index, kind, raw)
    resolver = _RESOLVERS[kind if not kind.startswith("BatchNorm") else "BatchNorm"]
    output, parameters, macs = resolver(index, kind, params, shape, walk)
    if kind in ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"):
        walk.pooled = True
    return ResolvedLayer(index=index, type=kind, params=params, input_shape=shape, output_shape=tuple(output),
                         parameters=int(parameters), macs=int(macs))


def _conv2d(index, kind, params, shape, walk):
    _needs_image(index, kind, shape)
    channels, height, width = shape
    out_channels = _integer(index, kind, "out_channels", params["out_channels"])
    kernel = _pair(index, kind, "kernel_size", params["kernel_size"])
    stride = _pair(index, kind, "stride", params["stride"])
    if params["padding"] == "same":
        if stride != (1, 1):
            raise DesignError(f"layer {index} {kind}: padding 'same' needs stride 1", index)
        padding = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
        if kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
            raise DesignError(f"layer {index} {kind}: padding 'same' needs an odd kernel_size", index)
    else:
        padding = _pair(index, kind, "padding", params["padding"], minimum=0)
    params["padding"] = list(padding)
    if params["in_channels"] is not None:
        expected = _integer(index, kind, "in_channels", params["in_channels"])
        if expected != channels:
            raise DesignError(f"layer {index} {kind} expects {expected} input channels but receives {channels}: "
                              f"set in_channels to {channels} or leave it out", index)
    params["in_channels"] = channels
    out_height = (height + 2 * padding[0] - kernel[0]) // stride[0] + 1
    out_width = (width + 2 * padding[1] - kernel[1]) // stride[1] + 1
    if out_height < 1 or out_width < 1:
        raise DesignError(f"layer {index} {kind}: its {height}x{width} input (with padding {padding[0]}) is "
                          f"smaller than the {kernel[0]}x{kernel[1]} kernel: use a smaller kernel_size, add "
                          f"padding, or remove a pooling layer before it", index)
    weights = out_channels * channels * kernel[0] * kernel[1]
    parameters = weights + (out_channels if params["bias"] else 0)
    return (out_channels, out_height, out_width), parameters, weights * out_height * out_width


def _batchnorm(index, kind, params, shape, walk):
    if kind == "BatchNorm2d" and len(shape) != 3:
        raise DesignError(f"layer {index} BatchNorm2d needs an image-shaped input but receives "
                          f"{_shape_text(shape)} values: use BatchNorm (chosen by shape) or BatchNorm1d", index)
    if kind == "BatchNorm1d" and len(shape) != 1:
        raise DesignError(f"layer {index} BatchNorm1d needs a flat input but receives {_shape_text(shape)}: "
                          f"use BatchNorm (chosen by shape) or BatchNorm2d", index)
    features = shape[0]
    if params["num_features"] is not None and params["num_features"] != features:
        raise DesignError(f"layer {index} {kind} expects {params['num_features']} features but receives "
                          f"{features}: set num_features to {features} or leave it out", index)
    params["num_features"] = features
    return shape, 2 * features, 0


def _activation(index, kind, params, shape, walk):
    if kind == "LeakyReLU":
        params["negative_slope"] = _number(index, kind, "negative_slope", params["negative_slope"], 0.0, 1.0)
    return shape, 0, 0


def _pool(index, kind, params, shape, walk):
    _needs_image(index, kind, shape)
    channels, height, width = shape
    kernel = _pair(index, kind, "kernel_size", params["kernel_size"])
    stride = _pair(index, kind, "stride", params["stride"] if params["stride"] is not None else list(kernel))
    padding = _pair(index, kind, "padding", params["padding"], minimum=0)
    if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
        raise DesignError(f"layer {index} {kind}: padding must be at most half the kernel_size", index)
    params.update(kernel_size=list(kernel), stride=list(stride), padding=list(padding))
    out_height = (height + 2 * padding[0] - kernel[0]) // stride[0] + 1
    out_width = (width + 2 * padding[1] - kernel[1]) // stride[1] + 1
    if out_height < 1 or out_width < 1:
        raise DesignError(f"layer {index} {kind}: its {height}x{width} input is smaller than the "
                          f"{kernel[0]}x{kernel[1]} window: use a smaller kernel_size or remove this layer", index)
    return (channels, out_height, out_width), 0, 0


def _adaptive_pool(index, kind, params, shape, walk):
    _needs_image(index, kind, shape)
    size = _pair(index, kind, "output_size", params["output_size"])
    params["output_size"] = list(size)
    return (shape[0], size[0], size[1]), 0, 0


def _dropout(index, kind, params, shape, walk):
    params["p"] = _number(index, kind, "p", params["p"], 0.0, 1.0)
    return shape, 0, 0


def _flatten(index, kind, params, shape, walk):
    total = 1
    for size in shape:
        total *= size
    return (total,), 0, 0


def _linear(index, kind, params, shape, walk):
    if len(shape) != 1:
        raise DesignError(f"layer {index} Linear receives a {_shape_text(shape)} input: add a Flatten layer "
                          f"before it", index)
    received = shape[0]
    out_features = _integer(index, kind, "out_features", params["out_features"])
    if params["in_features"] is not None:
        expected = _integer(index, kind, "in_features", params["in_features"])
        if expected != received:
            if received > expected:
                fix = "add a pooling layer"
            elif walk.pooled:
                fix = "remove a pooling layer"
            else:
                fix = "leave in_features out"
            raise DesignError(f"layer {index} Linear expects {expected} inputs but receives {received}: "
                              f"set in_features to {received} or {fix}", index)
    params["in_features"] = received
    weights = received * out_features
    return (out_features,), weights + (out_features if params["bias"] else 0), weights


def _residual(index, kind, params, shape, walk):
    if len(shape) == 1:
        if params["out_channels"] is not None:
            raise DesignError(f"layer {index} ResidualBlock on a flat input keeps its width: remove out_channels "
                              f"(set hidden_features to change the inner width)", index)
        if params["stride"] != 1:
            raise DesignError(f"layer {index} ResidualBlock on a flat input has no stride: remove it", index)
        features = shape[0]
        hidden = _integer(index, kind, "hidden_features", params["hidden_features"] or features)
        params["hidden_features"] = hidden
        weights = 2 * features * hidden
        return shape, weights + hidden + features, weights
    _needs_image(index, kind, shape)
    if params["hidden_features"] is not None:
        raise DesignError(f"layer {index} ResidualBlock on an image uses out_channels, not hidden_features", index)
    channels, height, width = shape
    out_channels = _integer(index, kind, "out_channels", params["out_channels"] or channels)
    stride = _integer(index, kind, "stride", params["stride"])
    params.update(out_channels=out_channels, stride=stride, in_channels=channels)
    out_height, out_width = (height - 1) // stride + 1, (width - 1) // stride + 1
    pixels = out_height * out_width
    parameters = 9 * channels * out_channels + 9 * out_channels * out_channels + 4 * out_channels
    macs = pixels * out_channels * 9 * (channels + out_channels)
    if stride != 1 or channels != out_channels:
        parameters += channels * out_channels + 2 * out_channels
        macs += pixels * out_channels * channels
    return (out_channels, out_height, out_width), parameters, macs


def _attention(index, kind, params, shape, walk):
    if len(shape) != 3:
        raise DesignError(f"layer {index} SelfAttention needs an image-shaped input [channels, height, width] "
                          f"(each pixel a token) but receives {_shape_text(shape)} values: move it before the "
                          f"Flatten; for tables use the tab_transformer preset", index)
    dim, height, width = shape
    heads = _integer(index, kind, "num_heads", params["num_heads"])
    if dim % heads:
        divisors = [str(size) for size in range(1, dim + 1) if dim % size == 0]
        raise DesignError(f"layer {index} SelfAttention: {dim} channels cannot be split into {heads} heads: "
                          f"choose num_heads among {', '.join(divisors)}", index)
    ratio = _number(index, kind, "mlp_ratio", params["mlp_ratio"], 0.0, 64.0)
    params["dropout"] = _number(index, kind, "dropout", params["dropout"], 0.0, 1.0)
    hidden = int(dim * ratio)
    params.update(num_heads=heads, mlp_ratio=ratio, dim=dim, hidden=hidden)
    tokens = height * width
    parameters = 2 * dim + 3 * dim * dim + 3 * dim + dim * dim + dim
    macs = tokens * 4 * dim * dim + 2 * tokens * tokens * dim
    if hidden:
        parameters += 2 * dim + dim * hidden + hidden + hidden * dim + dim
        macs += 2 * tokens * dim * hidden
    return shape, parameters, macs


_RESOLVERS = {
    "Conv2d": _conv2d, "BatchNorm": _batchnorm, "MaxPool2d": _pool, "AvgPool2d": _pool,
    "AdaptiveAvgPool2d": _adaptive_pool, "Dropout": _dropout, "Flatten": _flatten, "Linear": _linear,
    "ResidualBlock": _residual, "SelfAttention": _attention,
    **{name: _activation for name in ACTIVATIONS},
}
