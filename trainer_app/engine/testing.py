"""Factories for tests and benchmarks: canonical dataset directories from scikit-learn's bundled datasets
(nothing downloaded), synthetic image datasets, and run specs. No torch, no django."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .dataset_format import DatasetMeta, content_hash, write_meta, write_split

SKLEARN_DATASETS = {"digits": "load_digits", "wine": "load_wine", "iris": "load_iris",
                    "breast_cancer": "load_breast_cancer", "diabetes": "load_diabetes"}


def _split_indices(count: int, sizes: tuple[int, int, int] | None, fractions, seed: int):
    order = np.random.default_rng(seed).permutation(count)
    if sizes is None:
        train = int(round(count * fractions[0]))
        val = int(round(count * fractions[1]))
        sizes = (train, val, count - train - val)
    if sum(sizes) > count:
        raise ValueError(f"split sizes {sizes} exceed the {count} samples")
    train, val, test = sizes
    return order[:train], order[train:train + val], order[train + val:train + val + test]


def write_dataset(directory: str | Path, *, features: np.ndarray, labels: np.ndarray, task: str, modality: str,
                  num_classes: int, sizes: tuple[int, int, int] | None = None,
                  fractions=(0.7, 0.15, 0.15), seed: int = 0, class_names=None, feature_names=None) -> DatasetMeta:
    """Split, compute the train statistics and write a canonical dataset directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    parts = _split_indices(len(features), sizes, fractions, seed)
    for split, indices in zip(("train", "val", "test"), parts):
        write_split(directory, split, features[indices], labels[indices])
    train = features[parts[0]]
    if modality == "image":
        pixels = train.astype(np.float64) / 255
        normalization = {"mean": pixels.mean(axis=(0, 2, 3)).tolist(), "std": pixels.std(axis=(0, 2, 3)).tolist()}
    else:
        normalization = {"mean": train.mean(axis=0).tolist(), "std": train.std(axis=0).tolist()}
    target_normalization = {}
    if task == "regression":
        targets = labels[parts[0]].astype(np.float64)
        target_normalization = {"mean": float(targets.mean()), "std": float(targets.std())}
    meta = DatasetMeta(task=task, modality=modality, input_shape=list(features.shape[1:]),
                       num_classes=num_classes if task == "classification" else 0,
                       splits={name: int(len(indices)) for name, indices in zip(("train", "val", "test"), parts)},
                       class_names=list(class_names or [str(index) for index in range(num_classes)])
                       if task == "classification" else [],
                       feature_names=list(feature_names or []), normalization=normalization,
                       target_normalization=target_normalization)
    meta.sha256 = content_hash(directory)
    write_meta(directory, meta)
    return meta


def make_sklearn_dataset(name: str, directory: str | Path, *, sizes: tuple[int, int, int] | None = None,
                         fractions=(0.7, 0.15, 0.15), seed: int = 0, classes: list[int] | None = None) -> DatasetMeta:
    """A canonical directory from a scikit-learn dataset.

    digits becomes images 1x8x8 uint8 (0..16 scaled to 0..255); wine, iris and breast_cancer tables
    (float32) for classification; diabetes a table for regression. ``classes`` keeps only those labels
    (renumbered from 0 in the given order).
    """
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, SKLEARN_DATASETS[name])()
    features, labels = bunch.data, bunch.target
    if classes is not None:
        keep = np.isin(labels, classes)
        features, labels = features[keep], labels[keep]
        position = {label: index for index, label in enumerate(classes)}
        labels = np.array([position[label] for label in labels])
    if name == "digits":
        images = np.rint(features.reshape(-1, 1, 8, 8) * (255 / 16)).astype(np.uint8)
        count = len(classes) if classes is not None else 10
        return write_dataset(directory, features=images, labels=labels.astype(np.int64), task="classification",
                             modality="image", num_classes=count, sizes=sizes, fractions=fractions, seed=seed)
    if name == "diabetes":
        return write_dataset(directory, features=features.astype(np.float32), labels=labels.astype(np.float32),
                             task="regression", modality="table", num_classes=0, sizes=sizes, fractions=fractions,
                             seed=seed, feature_names=list(bunch.feature_names))
    names = list(getattr(bunch, "target_names", []))
    count = len(classes) if classes is not None else int(labels.max()) + 1
    class_names = [str(names[index]) for index in classes] if classes is not None and names else \
        [str(name) for name in names] or None
    return write_dataset(directory, features=features.astype(np.float32), labels=labels.astype(np.int64),
                         task="classification", modality="table", num_classes=count, sizes=sizes,
                         fractions=fractions, seed=seed, class_names=class_names,
                         feature_names=[str(name) for name in getattr(bunch, "feature_names", [])])


def make_synthetic_images(directory: str | Path, *, count: int = 10_000, shape=(3, 32, 32), classes: int = 10,
                          seed: int = 0) -> DatasetMeta:
    """Random uint8 images whose class shifts their mean brightness (learnable, for throughput benchmarks)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=count).astype(np.int64)
    images = rng.integers(0, 200, size=(count, *shape), dtype=np.uint8)
    images = (images + (labels * (55 // max(classes - 1, 1)))[:, None, None, None]).astype(np.uint8)
    return write_dataset(directory, features=images, labels=labels, task="classification", modality="image",
                         num_classes=classes, fractions=(0.8, 0.1, 0.1), seed=seed)


def make_spec(*, run_id: str = "test", data: str | Path, model: dict | None = None, training: dict | None = None,
              checkpoint_dir: str | Path | None = None, jsonl: str | Path | None = None, redis_url: str | None = None,
              stream: str | None = None, **sections) -> dict:
    """A run spec as a dict, small defaults for tests; any top-level section can be given as a keyword."""
    spec = {"run_id": run_id, "data": {"path": str(data)}, "model": model or {"preset": "small_cnn"},
            "training": {"optimizer": "adam", "lr": 0.003, "batch_size": 64, "epochs": 2, "seed": 0,
                         **(training or {})},
            "checkpoint": {"dir": str(checkpoint_dir) if checkpoint_dir else None, "keep_last": 2, "resume": True},
            "metrics": {"jsonl": str(jsonl) if jsonl else None, "redis_url": redis_url, "stream": stream,
                        "log_every_steps": 10}}
    spec.update(sections)
    return spec


def write_spec(path: str | Path, spec: dict) -> Path:
    path = Path(path)
    path.write_text(json.dumps(spec, indent=2))
    return path


def read_events(path: str | Path) -> list[dict]:
    """The events of a JSON-lines sink: [{"kind", "data"}]."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
