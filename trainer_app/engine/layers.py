"""torch modules for the layer builder, and the blocks the presets share.

``build_designed_model`` turns a layer list that design.resolve_layers accepted into a module whose layers
are named ``layer1`` … ``layerN`` (the designer's 1-based numbering), so parameter names read
``layer4.weight`` and a freeze prefix ``layer4`` means "layer 4" in the form.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .design import ResolvedLayer


class GlobalAvgPool2d(nn.AdaptiveAvgPool2d):
    """AdaptiveAvgPool2d(1) computed as a mean, whose backward is deterministic on GPUs (the pool's is not)."""

    def __init__(self):
        super().__init__(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean((2, 3), keepdim=True)


class Attention(nn.Module):
    """Multi-head self-attention over tokens (N, T, D) with explicit projections."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, count, dim = tokens.shape
        query, key, value = (self.qkv(tokens).view(batch, count, 3, self.num_heads, dim // self.num_heads)
                             .permute(2, 0, 3, 1, 4))
        mixed = F.scaled_dot_product_attention(query, key, value,
                                               dropout_p=self.dropout if self.training else 0.0)
        return self.proj(mixed.transpose(1, 2).reshape(batch, count, dim))


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block: tokens + attention, then tokens + MLP (no MLP when hidden is 0)."""

    def __init__(self, dim: int, num_heads: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = Attention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim) if hidden else None
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout)) if hidden else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.attention(self.norm1(tokens))
        if self.mlp is not None:
            tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens


class SelfAttention2d(nn.Module):
    """A transformer block over the pixels of a feature map: each pixel a token of `channels` values."""

    def __init__(self, dim: int, num_heads: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.block = TransformerBlock(dim, num_heads, hidden, dropout)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = images.shape
        tokens = self.block(images.flatten(2).transpose(1, 2))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class ResidualBlock2d(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with BatchNorm, a projected shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(images)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(images))


class ResidualBlock1d(nn.Module):
    """Two linear layers around a ReLU, added to the input: relu(x + fc2(relu(fc1(x))))."""

    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, features)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return F.relu(values + self.fc2(F.relu(self.fc1(values))))


def _pool_arguments(params: dict) -> dict:
    return {"kernel_size": tuple(params["kernel_size"]), "stride": tuple(params["stride"]),
            "padding": tuple(params["padding"])}


def build_layer(layer: ResolvedLayer) -> nn.Module:
    """The module for one resolved layer."""
    params, kind = layer.params, layer.type
    if kind == "Conv2d":
        return nn.Conv2d(params["in_channels"], params["out_channels"], params["kernel_size"],
                         params["stride"], tuple(params["padding"]), bias=params["bias"])
    if kind.startswith("BatchNorm"):
        return nn.BatchNorm2d(params["num_features"]) if len(layer.input_shape) == 3 else \
            nn.BatchNorm1d(params["num_features"])
    if kind == "LeakyReLU":
        return nn.LeakyReLU(params["negative_slope"])
    if kind in ("ReLU", "GELU", "Tanh", "Sigmoid"):
        return getattr(nn, kind)()
    if kind == "MaxPool2d":
        return nn.MaxPool2d(**_pool_arguments(params))
    if kind == "AvgPool2d":
        return nn.AvgPool2d(**_pool_arguments(params))
    if kind == "AdaptiveAvgPool2d":
        size = tuple(params["output_size"])
        return GlobalAvgPool2d() if size == (1, 1) else nn.AdaptiveAvgPool2d(size)
    if kind == "Dropout":
        return nn.Dropout(params["p"])
    if kind == "Flatten":
        return nn.Flatten()
    if kind == "Linear":
        return nn.Linear(params["in_features"], params["out_features"], bias=params["bias"])
    if kind == "ResidualBlock":
        if len(layer.input_shape) == 1:
            return ResidualBlock1d(layer.input_shape[0], params["hidden_features"])
        return ResidualBlock2d(params["in_channels"], params["out_channels"], params["stride"])
    if kind == "SelfAttention":
        return SelfAttention2d(params["dim"], params["num_heads"], params["hidden"], params["dropout"])
    raise ValueError(f"no module for layer type {kind!r}")


class DesignedModel(nn.Sequential):
    """A model from the layer builder; its children are layer1 … layerN."""

    def __init__(self, layers: list[ResolvedLayer]):
        super().__init__(OrderedDict((f"layer{layer.index}", build_layer(layer)) for layer in layers))


def build_designed_model(layers: list[ResolvedLayer]) -> DesignedModel:
    return DesignedModel(layers)
