"""``.npz`` archives with arrays ``X`` and ``y``, read without pickle and with counted bytes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .archives import SafeZip
from .arrays import image_array, labels_from_values, split_arrays, write_arrays
from .errors import DatasetError
from .finish import Converted
from .options import ProcessOptions


def convert_npz(archive: SafeZip, staging: Path, options: ProcessOptions, progress) -> Converted:
    members = {name.rsplit("/", 1)[-1]: name for name in archive.names()}
    missing = [key for key in ("X.npy", "y.npy") if key not in members]
    if missing:
        present = ", ".join(sorted(name.removesuffix(".npy") for name in members)) or "none"
        raise DatasetError(f"the .npz must hold arrays named X and y (found: {present}); save it with "
                           "numpy.savez(path, X=features, y=labels)", code="bad_npz")
    features = _read_array(archive, members["X.npy"], "X")
    progress(0.3, "read X")
    values = _read_array(archive, members["y.npy"], "y")
    if len(features) != len(values):
        raise DatasetError(f"X has {len(features)} samples but y has {len(values)}; they must have the same "
                           "length", code="bad_npz")
    if not len(features):
        raise DatasetError("X and y are empty; the .npz holds no samples", code="empty")
    task, class_names, labels = labels_from_values(values, options, "the .npz's y")
    if features.ndim == 2:
        features, labels, dropped = _table_features(features, labels, options)
        converted = Converted(detected_format="npz", task=task, modality="table", input_shape=[features.shape[1]],
                              class_names=class_names,
                              feature_names=[f"x_{i + 1}" for i in range(features.shape[1])],
                              details={"rows_dropped": dropped})
        splits = split_arrays(features, labels, task, options)
        _fill_from_train(splits, options)
    elif features.ndim in (3, 4):
        images = image_array(features, "the .npz's X")
        converted = Converted(detected_format="npz", task=task, modality="image", input_shape=list(images.shape[1:]),
                              class_names=class_names)
        splits = split_arrays(images, labels, task, options)
    else:
        raise DatasetError(f"X has shape {features.shape}; use (N, features) for a table or (N, H, W), "
                           "(N, C, H, W) or (N, H, W, C) for images", code="bad_npz")
    progress(0.6, "writing splits")
    return write_arrays(staging, splits, converted)


def _read_array(archive: SafeZip, name: str, key: str) -> np.ndarray:
    with archive.open(name) as stream:
        try:
            return np.lib.format.read_array(stream, allow_pickle=False)
        except ValueError as error:
            if "allow_pickle" in str(error) or "Object arrays" in str(error):
                raise DatasetError(f"array {key} holds Python objects, which would need unpickling; it was "
                                   "refused (pickle can run code). Save numeric or text arrays instead",
                                   code="bad_npz") from None
            raise DatasetError(f"array {key} cannot be read ({error})", code="bad_npz") from None
        except EOFError:
            raise DatasetError(f"array {key} is truncated; save the .npz again", code="bad_npz") from None


def _table_features(features: np.ndarray, labels: np.ndarray, options: ProcessOptions):
    if features.dtype.kind not in "biuf":
        raise DatasetError(f"X has type {features.dtype}; table features must be numbers", code="bad_npz")
    features = features.astype(np.float32)
    features[~np.isfinite(features)] = np.nan
    missing = np.isnan(features).any(axis=1)
    if not missing.any():
        return features, labels, 0
    if options.missing == "error":
        raise DatasetError(f"X has NaN or infinite values in {int(missing.sum())} samples (first at sample "
                           f"{int(np.argmax(missing))}); choose a missing-value policy or clean the data",
                           code="missing_values")
    if options.missing == "drop_rows":
        if missing.all():
            raise DatasetError("every sample of X has a missing value; choose a fill policy", code="missing_values")
        return features[~missing], labels[~missing], int(missing.sum())
    return features, labels, 0


def _fill_from_train(splits: dict, options: ProcessOptions) -> None:
    train = splits["train"][0]
    fill = np.zeros(train.shape[1], dtype=np.float32)
    for column in range(train.shape[1]):
        values = train[:, column][~np.isnan(train[:, column])]
        if not len(values):
            continue
        if options.missing == "fill_most_frequent":
            unique, counts = np.unique(values, return_counts=True)
            fill[column] = unique[np.argmax(counts)]
        else:
            fill[column] = values.mean()
    for features, _ in splits.values():
        missing = np.isnan(features)
        features[missing] = np.broadcast_to(fill, features.shape)[missing]

