"""From the first pass to a plan: task, labels, rows kept, how each column is encoded, the splits."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DatasetError
from .options import ProcessOptions
from .result import FeatureStatistics, ProcessWarning
from .splits import assign_splits
from .table_scan import TableScan

MAX_CLASSES_INFERRED = 20
"""A numeric target with integer values and at most this many distinct values is taken as classes."""


@dataclass
class EncodedColumn:
    name: str
    index: int
    """Column position in the source."""
    encoding: str
    """`numeric`, `one_hot` or `ordinal`."""
    offset: int
    """First output feature of this column."""
    categories: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return len(self.categories) if self.encoding == "one_hot" else 1


@dataclass
class TablePlan:
    task: str
    class_names: list[str]
    labels: np.ndarray
    """int64 class per kept row, or float32 target."""
    keep: np.ndarray
    """bool per source row."""
    assignment: np.ndarray
    """split id per kept row."""
    columns: list[EncodedColumn]
    feature_names: list[str]
    warnings: list[ProcessWarning]
    statistics: list[FeatureStatistics]
    rows_dropped: int


def plan_table(scan: TableScan, options: ProcessOptions) -> TablePlan:
    warnings: list[ProcessWarning] = []
    target_missing = _target_missing(scan)
    if target_missing.all():
        raise DatasetError(f"the target column {scan.target.name!r} has no values; choose another target column",
                           code="bad_target")
    if target_missing.any() and options.missing != "drop_rows":
        raise DatasetError(f"the target column {scan.target.name!r} is missing (NaN or empty) in "
                           f"{int(target_missing.sum())} rows, first on line {scan.target.first_missing_line}; "
                           "every sample needs a label: fix those rows or choose the drop-rows policy",
                           code="bad_target")
    keep = ~target_missing
    if options.missing == "drop_rows":
        keep &= ~scan.row_has_missing
    dropped = int(scan.rows - keep.sum())
    if not keep.any():
        raise DatasetError("every row has a missing value, so dropping rows leaves nothing; choose a fill policy",
                           code="missing_values")
    if dropped:
        warnings.append(ProcessWarning("missing_values", f"{dropped} of {scan.rows} rows were dropped because "
                                       "of missing values"))
    task, class_names, labels = _labels(scan, options, keep)
    columns, dropped_names = _encode_columns(scan, options)
    for name in dropped_names:
        warnings.append(ProcessWarning("dropped_column", f"column {name!r} has more than "
                                       f"{options.limits.max_categories} distinct text values (an identifier or "
                                       "free text?) and was left out"))
    if not columns:
        raise DatasetError("no usable feature column is left; choose other feature columns", code="bad_columns")
    feature_names = [name for column in columns for name in _output_names(column)]
    statistics = _statistics(scan, columns)
    warnings += _constant_and_missing_warnings(statistics, options, dropped)
    stratify = labels if task == "classification" else None
    assignment = assign_splits(len(labels), options.split_ratios, options.seed, stratify)
    return TablePlan(task=task, class_names=class_names, labels=labels, keep=keep, assignment=assignment,
                     columns=columns, feature_names=feature_names, warnings=warnings, statistics=statistics,
                     rows_dropped=dropped)


def _target_missing(scan: TableScan) -> np.ndarray:
    if scan.target.kind == "numeric":
        return np.isnan(scan.target_values)
    return scan.target_values < 0


def _labels(scan: TableScan, options: ProcessOptions, keep: np.ndarray) -> tuple[str, list[str], np.ndarray]:
    name = scan.target.name
    values = scan.target_values[keep]
    if scan.target.kind == "categorical":
        if options.task == "regression":
            raise DatasetError(f"the target column {name!r} holds text, so it can only be used for "
                               "classification; choose classification or a numeric target", code="bad_target")
        codes, inverse = np.unique(values, return_inverse=True)
        vocabulary = scan.target_vocabulary
        order = np.argsort([vocabulary[c] for c in codes], kind="stable")  # class names sorted as text
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        class_names = [vocabulary[codes[i]] for i in order]
        return _check_classes(name, class_names, rank[inverse].astype(np.int64))
    distinct = np.unique(values)
    integral = bool(np.all(distinct == np.round(distinct)))
    task = options.task
    if task == "auto":
        task = "classification" if integral and len(distinct) <= MAX_CLASSES_INFERRED else "regression"
    if task == "regression":
        if len(distinct) < 2:
            raise DatasetError(f"the target column {name!r} is constant ({distinct[0]:g}); a regression target "
                               "must vary: choose another target column", code="bad_target")
        return task, [], values.astype(np.float32)
    if len(distinct) > options.limits.max_classes:
        raise DatasetError(f"the target column {name!r} has {len(distinct)} distinct values, more than "
                           f"{options.limits.max_classes} classes; choose regression or another target",
                           code="bad_target")
    class_names = [f"{int(v)}" if integral else f"{v:g}" for v in distinct]
    return _check_classes(name, class_names, np.searchsorted(distinct, values).astype(np.int64))


def _check_classes(name: str, class_names: list[str], labels: np.ndarray):
    if len(class_names) < 2:
        raise DatasetError(f"the target column {name!r} has a single class ({class_names[0]!r}); a classifier "
                           "needs at least two: check the target column or add data of other classes",
                           code="bad_target")
    return "classification", class_names, labels


def _encode_columns(scan: TableScan, options: ProcessOptions) -> tuple[list[EncodedColumn], list[str]]:
    columns, dropped, offset = [], [], 0
    for column in scan.features:
        if column.kind == "numeric":
            encoded = EncodedColumn(column.name, column.index, "numeric", offset)
        elif column.too_many_categories:
            dropped.append(column.name)
            continue
        else:
            categories = sorted(column.categories)
            one_hot = len(categories) <= options.limits.max_one_hot_categories
            encoded = EncodedColumn(column.name, column.index, "one_hot" if one_hot else "ordinal", offset,
                                    categories)
        columns.append(encoded)
        offset += encoded.width
    return columns, dropped


def _output_names(column: EncodedColumn) -> list[str]:
    if column.encoding == "one_hot":
        return [f"{column.name}={category}" for category in column.categories]
    return [column.name]


def _statistics(scan: TableScan, columns: list[EncodedColumn]) -> list[FeatureStatistics]:
    encodings = {column.index: column.encoding for column in columns}
    numeric_position = {scan.numeric_features[i]: i for i in range(len(scan.numeric_features))}
    statistics = []
    for position, column in enumerate(scan.features + [scan.target]):
        is_target = column is scan.target
        role = "target" if is_target else ("feature" if column.index in encodings else "dropped")
        entry = FeatureStatistics(name=column.name, kind=column.kind, role=role,
                                  missing_share=column.missing / scan.rows,
                                  count=scan.rows - column.missing, encoding=encodings.get(column.index))
        if column.kind == "numeric" and not is_target:
            moment = numeric_position[position]
            if scan.moments.count[moment]:
                entry.min, entry.max = float(scan.moments.min[moment]), float(scan.moments.max[moment])
                entry.mean, entry.std = float(scan.moments.mean[moment]), float(scan.moments.std[moment])
        elif column.kind == "numeric":
            values = scan.target_values[~np.isnan(scan.target_values)]
            entry.min, entry.max = float(values.min()), float(values.max())
            entry.mean, entry.std = float(values.mean()), float(values.std())
        else:
            counts = column.categories if not is_target else _target_counts(scan)
            entry.categories = len(counts) if not column.too_many_categories else None
            entry.top_values = [(str(value), int(count)) for value, count in counts.most_common(5)]
        statistics.append(entry)
    return statistics


def _target_counts(scan: TableScan):
    from collections import Counter
    codes = scan.target_values[scan.target_values >= 0]
    return Counter({scan.target_vocabulary[i]: int(n) for i, n in enumerate(np.bincount(codes)) if n})


def _constant_and_missing_warnings(statistics: list[FeatureStatistics], options: ProcessOptions,
                                   dropped_rows: int) -> list[ProcessWarning]:
    warnings = []
    for entry in statistics:
        if entry.role != "feature":
            continue
        constant = (entry.min is not None and entry.min == entry.max) or entry.categories == 1
        if constant or (entry.count == 0):
            warnings.append(ProcessWarning("constant_column", f"column {entry.name!r} has a single value; it "
                                           "carries no information: consider leaving it out"))
        if entry.missing_share and options.missing != "drop_rows":
            how = {"fill_mean": "filled with the training mean (text: most frequent value)",
                   "fill_most_frequent": "filled with the most frequent training value"}[options.missing]
            warnings.append(ProcessWarning("missing_values", f"column {entry.name!r} is missing in "
                                           f"{100 * entry.missing_share:.1f}% of rows; {how}"))
    return warnings
