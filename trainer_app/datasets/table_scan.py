"""First pass over a CSV: column types, categories, missing values, statistics and the target.

Memory is O(rows) only for the target and two flags per row; everything else is per column.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .csv_reader import MISSING_TOKENS, CsvDialect, iter_blocks
from .errors import DatasetError
from .options import ProcessOptions
from .statistics import RunningMoments

PREVIEW_ROWS = 20


@dataclass
class ColumnScan:
    name: str
    index: int
    kind: str = "numeric"
    """`numeric` or `categorical`."""
    missing: int = 0
    first_missing_line: int | None = None
    categories: Counter = field(default_factory=Counter)
    too_many_categories: bool = False


@dataclass
class TableScan:
    dialect: CsvDialect
    features: list[ColumnScan]
    target: ColumnScan
    rows: int
    moments: RunningMoments
    """Numeric features' moments, in the order of ``numeric_features``."""
    numeric_features: list[int]
    """Positions in ``features`` of the numeric columns."""
    target_values: np.ndarray
    """float64 per row (numeric target, NaN when missing) or int32 code per row (text target, -1 missing)."""
    target_vocabulary: list[str]
    """Text target: code -> value."""
    row_has_missing: np.ndarray
    preview_rows: list[list[str]]


class _TurnedCategorical(Exception):
    def __init__(self, index: int) -> None:
        self.index = index


def to_numbers(values: np.ndarray) -> np.ndarray | None:
    """float64 per value (NaN for missing tokens and infinities), or None if a value is not a number."""
    if values.dtype.kind == "f":  # parsed as numbers already
        numbers = values.astype(np.float64)
        numbers[~np.isfinite(numbers)] = np.nan
        return numbers
    try:
        numbers = values.astype(np.float64)
    except (ValueError, TypeError):
        numbers = np.empty(len(values))
        for position, value in enumerate(values):
            text = value.strip()
            if text in MISSING_TOKENS:
                numbers[position] = np.nan
                continue
            try:
                numbers[position] = float(text)
            except ValueError:
                return None
    numbers[~np.isfinite(numbers)] = np.nan
    return numbers


def category_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct values in order of appearance, index into them per value, missing flag per distinct value).

    Dict lookups at C speed: several times faster than sorting Python strings with numpy.unique."""
    items = values.tolist()
    unique = list(dict.fromkeys(items))
    lookup = {value: code for code, value in enumerate(unique)}
    inverse = np.fromiter(map(lookup.__getitem__, items), np.int64, len(items))
    missing = np.fromiter((value.strip() in MISSING_TOKENS for value in unique), bool, len(unique))
    return np.array(unique, dtype=object), inverse, missing


def resolve_columns(dialect: CsvDialect, options: ProcessOptions) -> tuple[int, list[int]]:
    names = list(dialect.columns)
    target = options.target_column if options.target_column is not None else names[-1]
    if target not in names:
        if not dialect.header:
            raise DatasetError(f"no header row was found, so the columns are named col_1 … col_{len(names)}; "
                               f"{target!r} is not one of them. Give the target as col_N, or say that the file "
                               "has a header", code="bad_target")
        raise DatasetError(f"the target column {target!r} is not in the file; its columns are "
                           f"{', '.join(names[:30])}", code="bad_target")
    target_index = names.index(target)
    if options.feature_columns is None:
        features = [i for i in range(len(names)) if i != target_index]
    else:
        unknown = [name for name in options.feature_columns if name not in names]
        if unknown:
            raise DatasetError(f"feature column(s) {', '.join(map(repr, unknown))} are not in the file; its "
                               f"columns are {', '.join(names[:30])}", code="bad_columns")
        features = [names.index(name) for name in options.feature_columns if names.index(name) != target_index]
    if not features:
        raise DatasetError("no feature columns are left besides the target; choose at least one feature column",
                           code="bad_columns")
    return target_index, features


def scan_table(path: Path, dialect: CsvDialect, options: ProcessOptions, progress) -> TableScan:
    """Read the whole file once; restarts (rarely) when a column proves to hold text after numbers."""
    target_index, feature_indices = resolve_columns(dialect, options)
    categorical: set[int] = set()
    while True:
        try:
            return _scan(path, dialect, options, target_index, feature_indices, categorical, progress)
        except _TurnedCategorical as turned:
            categorical.add(turned.index)


def _scan(path, dialect, options, target_index, feature_indices, categorical, progress) -> TableScan:
    names = dialect.columns
    features = [ColumnScan(names[i], i, "categorical" if i in categorical else "numeric") for i in feature_indices]
    target = ColumnScan(names[target_index], target_index, "categorical" if target_index in categorical else "numeric")
    moments = None
    target_parts, missing_parts, preview = [], [], []
    vocabulary: dict[str, int] = {}
    rows = 0
    numeric: set[int] = set()  # filled after the first block; iter_blocks reads it at every block
    for first_line, block, fraction in iter_blocks(path, dialect, options.limits, numeric):
        if not preview:
            preview = block.head(PREVIEW_ROWS)
        row_missing = np.zeros(len(block), dtype=bool)
        numeric_block = []
        for column in features:
            values = block.column(column.index)
            if column.kind == "numeric":
                numbers = to_numbers(values)
                if numbers is None:
                    if rows:
                        raise _TurnedCategorical(column.index)
                    column.kind = "categorical"
                else:
                    numeric_block.append(numbers)
                    _note_missing(column, np.isnan(numbers), row_missing, first_line, options)
                    continue
            _scan_categories(column, values, row_missing, first_line, options)
        if numeric_block:
            moments = moments or RunningMoments(len(numeric_block))
            moments.add(np.stack(numeric_block, axis=1))
        target_parts.append(_scan_target(target, block.column(target.index), vocabulary, rows, first_line, options))
        missing_parts.append(row_missing)
        rows += len(block)
        numeric.clear()
        numeric.update(column.index for column in features + [target] if column.kind == "numeric")
        progress(fraction, f"reading rows ({rows:,} so far)")
    if not rows:
        raise DatasetError("the file has a header but no data rows; upload a file with rows", code="empty")
    numeric_positions = [i for i, column in enumerate(features) if column.kind == "numeric"]
    return TableScan(dialect=dialect, features=features, target=target, rows=rows,
                     moments=moments or RunningMoments(0), numeric_features=numeric_positions,
                     target_values=np.concatenate(target_parts), target_vocabulary=list(vocabulary),
                     row_has_missing=np.concatenate(missing_parts), preview_rows=preview)


def _note_missing(column: ColumnScan, missing: np.ndarray, row_missing: np.ndarray, first_line: int,
                  options: ProcessOptions) -> None:
    count = int(missing.sum())
    if not count:
        return
    if column.first_missing_line is None:
        column.first_missing_line = first_line + int(np.argmax(missing))
    if options.missing == "error":
        raise DatasetError(f"column {column.name!r} has a missing value on line {column.first_missing_line}; "
                           "choose a missing-value policy (drop rows, fill with the mean, fill with the most "
                           "frequent value) or fix the file", code="missing_values")
    column.missing += count
    row_missing |= missing


def _scan_categories(column: ColumnScan, values: np.ndarray, row_missing: np.ndarray, first_line: int,
                     options: ProcessOptions) -> None:
    unique, inverse, missing_unique = category_codes(values)
    _note_missing(column, missing_unique[inverse], row_missing, first_line, options)
    if column.too_many_categories:
        return
    counts = np.bincount(inverse, minlength=len(unique))
    for value, count, missing in zip(unique.tolist(), counts.tolist(), missing_unique.tolist()):
        if not missing:
            column.categories[value] += count
    if len(column.categories) > options.limits.max_categories:
        column.too_many_categories = True
        column.categories = Counter(dict(column.categories.most_common(10)))


def _scan_target(target: ColumnScan, values: np.ndarray, vocabulary: dict[str, int], rows: int,
                 first_line: int, options: ProcessOptions) -> np.ndarray:
    if target.kind == "numeric":
        numbers = to_numbers(values)
        if numbers is not None:
            _count_missing_target(target, np.isnan(numbers), first_line)
            return numbers
        if rows:
            raise _TurnedCategorical(target.index)
        target.kind = "categorical"
    unique, inverse, missing_unique = category_codes(values)
    codes = np.empty(len(unique), dtype=np.int32)
    for position, (value, missing) in enumerate(zip(unique.tolist(), missing_unique.tolist())):
        if missing:
            codes[position] = -1
            continue
        if value not in vocabulary:
            if len(vocabulary) >= options.limits.max_classes:
                raise DatasetError(f"the target column {target.name!r} has more than "
                                   f"{options.limits.max_classes} distinct text values, too many for classes; "
                                   "choose another target column", code="bad_target")
            vocabulary[value] = len(vocabulary)
        codes[position] = vocabulary[value]
    per_row = codes[inverse]
    _count_missing_target(target, per_row < 0, first_line)
    return per_row


def _count_missing_target(target: ColumnScan, missing: np.ndarray, first_line: int) -> None:
    count = int(missing.sum())
    if count and target.first_missing_line is None:
        target.first_missing_line = first_line + int(np.argmax(missing))
    target.missing += count
