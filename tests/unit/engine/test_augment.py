"""Augmentation on tensors: shapes kept, pixels in range, draws repeatable from the per-step seed."""
import torch

from trainer_app.engine.augment import augment, random_crop, rotate
from trainer_app.engine.config import AugmentationSpec
from trainer_app.engine.data import augmentation_seed

ALL = AugmentationSpec(random_crop=2, hflip=True, rotation=15, color_jitter=0.3)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_every_augmentation_keeps_shape_and_range():
    images = torch.rand(16, 3, 12, 12)
    out = augment(images, ALL, generator(0))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, images)


def test_the_same_seed_draws_the_same_augmentation():
    images = torch.rand(8, 1, 8, 8)
    assert torch.equal(augment(images, ALL, generator(3)), augment(images, ALL, generator(3)))
    assert not torch.equal(augment(images, ALL, generator(3)), augment(images, ALL, generator(4)))


def test_random_crop_shifts_the_content_by_at_most_the_padding():
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 4, 4] = 1
    for seed in range(10):
        out = random_crop(image, 2, generator(seed))
        row, column = (out[0, 0] == 1).nonzero()[0].tolist()
        assert abs(row - 4) <= 2 and abs(column - 4) <= 2


def test_zero_rotation_is_the_identity():
    images = torch.rand(4, 3, 8, 8)
    assert torch.allclose(rotate(images, 0.0, generator(0)), images, atol=1e-5)


def test_augmentation_seeds_differ_by_step_and_rank():
    seeds = {augmentation_seed(0, step, rank) for step in range(100) for rank in range(4)}
    assert len(seeds) == 400
