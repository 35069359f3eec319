"""Image augmentation on batches of tensors (N, C, H, W) with pixels in [0, 1], on any device.

Random draws come from a CPU ``torch.Generator`` that the loader seeds from (seed, step, rank), so a run
resumed at step s draws exactly what an uninterrupted run drew at step s.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AugmentationSpec

_GRAY = (0.299, 0.587, 0.114)


def _uniform(count: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(count, generator=generator) * (high - low) + low).to(device)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` on each side, then crop each image back at its own random offset."""
    count, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, count), generator=generator).to(images.device)
    rows = (offsets[0, :, None] + torch.arange(height, device=images.device))[:, None, :, None]
    columns = (offsets[1, :, None] + torch.arange(width, device=images.device))[:, None, None, :]
    samples = torch.arange(count, device=images.device)[:, None, None, None]
    planes = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[samples, planes, rows, columns]


def horizontal_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def rotate(images: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image about its centre by an angle in ±degrees (bilinear, zeros outside)."""
    angles = _uniform(images.shape[0], -degrees, degrees, generator, images.device) * (math.pi / 180)
    cosine, sine, zero = angles.cos(), angles.sin(), torch.zeros_like(angles)
    theta = torch.stack([torch.stack([cosine, -sine, zero], 1), torch.stack([sine, cosine, zero], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gray(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] != 3:
        return images.mean(1, keepdim=True)
    weights = torch.tensor(_GRAY, device=images.device, dtype=images.dtype)[None, :, None, None]
    return (images * weights).sum(1, keepdim=True)


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and (3 channels) saturation, each scaled by a factor in [1 − strength, 1 + strength]."""
    count = images.shape[0]
    low, high = 1 - strength, 1 + strength
    factors = [_uniform(count, low, high, generator, images.device)[:, None, None, None] for _ in range(3)]
    images = (images * factors[0]).clamp(0, 1)
    mean = _gray(images).mean((1, 2, 3), keepdim=True)
    images = ((images - mean) * factors[1] + mean).clamp(0, 1)
    if images.shape[1] == 3:
        gray = _gray(images)
        images = ((images - gray) * factors[2] + gray).clamp(0, 1)
    return images


def augment(images: torch.Tensor, spec: AugmentationSpec, generator: torch.Generator) -> torch.Tensor:
    """Every augmentation the spec turns on, in a fixed order: crop, flip, rotation, colour."""
    if spec.random_crop:
        images = random_crop(images, spec.random_crop, generator)
    if spec.hflip:
        images = horizontal_flip(images, generator)
    if spec.rotation:
        images = rotate(images, spec.rotation, generator)
    if spec.color_jitter:
        images = color_jitter(images, spec.color_jitter, generator)
    return images
