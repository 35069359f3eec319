"""Batches: memory-mapped and in-memory splits give the same normalised tensors; ranks share each global batch."""
import torch

from trainer_app.engine.config import AugmentationSpec
from trainer_app.engine.data import Preprocessor, TrainBatches, open_splits
from trainer_app.engine.dataset_format import read_meta


def batches(directory, *, limit_mb, workers=0, rank=0, world=1, batch=32, augmentation=None):
    meta = read_meta(directory)
    splits = open_splits(directory, in_memory_limit_mb=limit_mb)
    return TrainBatches(splits.train, Preprocessor(meta, torch.device("cpu")), batch_size=batch, rank=rank,
                        world_size=world, seed=3, augmentation=augmentation, num_workers=workers), splits


def test_memory_mapped_prefetched_batches_equal_in_memory_batches(digits_dir):
    in_memory, splits = batches(digits_dir, limit_mb=64)
    mapped, mapped_splits = batches(digits_dir, limit_mb=0, workers=2)
    assert splits.train.in_memory and not mapped_splits.train.in_memory
    pairs = list(zip(in_memory.epoch(1, first_step=1), mapped.epoch(1, first_step=1)))
    assert len(pairs) == len(in_memory) == 40
    for (features, labels), (mapped_features, mapped_labels) in pairs:
        assert torch.equal(features, mapped_features) and torch.equal(labels, mapped_labels)


def test_features_are_normalised_with_the_training_statistics(digits_dir):
    loader, _ = batches(digits_dir, limit_mb=64, batch=1280)
    features, labels = next(loader.epoch(0, first_step=1))
    assert features.dtype == torch.float32 and labels.dtype == torch.int64
    assert abs(features.mean().item()) < 1e-4 and abs(features.std().item() - 1) < 1e-3


def test_two_ranks_split_each_global_batch_of_one_process(digits_dir):
    single, _ = batches(digits_dir, limit_mb=64, batch=32)
    ranks = [batches(digits_dir, limit_mb=64, batch=16, rank=rank, world=2)[0] for rank in range(2)]
    for (whole, _), (first, _), (second, _) in zip(single.epoch(2, first_step=1), ranks[0].epoch(2, first_step=1),
                                                   ranks[1].epoch(2, first_step=1)):
        as_set = lambda tensor: sorted(map(tuple, tensor.flatten(1).tolist()))  # noqa: E731
        assert as_set(whole) == as_set(torch.cat([first, second]))


def test_resuming_mid_epoch_skips_the_batches_done_and_repeats_the_augmentation(digits_dir):
    augmentation = AugmentationSpec(random_crop=1, hflip=True)
    loader, _ = batches(digits_dir, limit_mb=64, augmentation=augmentation)
    everything = list(loader.epoch(0, first_step=1))
    rest = list(loader.epoch(0, first_step=11, skip=10))
    assert len(rest) == 30
    assert all(torch.equal(a[0], b[0]) for a, b in zip(everything[10:], rest))
