"""CSV/TSV to the canonical table format: two streamed passes, then train-only imputation.

Pass 1 (table_scan) learns types, categories, missing values and the target; the plan (table_plan)
fixes the encoding and the splits; pass 2 here encodes each block and appends it to its split's
.npy file, so memory stays bounded whatever the file size. Missing values are written as NaN and
filled afterwards with statistics of the training split only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer_app.engine.dataset_format import SPLITS, array_paths

from .csv_reader import iter_blocks, sniff_csv
from .errors import DatasetError
from .finish import Converted, write_labels
from .options import ProcessOptions
from .result import Preview
from .statistics import DuplicateCounter, RunningMoments
from .storage import NpyAppender, read_npy_chunks, rewrite_npy_chunks
from .table_plan import EncodedColumn, TablePlan, plan_table
from .table_scan import TableScan, category_codes, scan_table, to_numbers

MODE_BUFFER_VALUES = 32 * 1024 * 1024
"""Training values gathered at once when looking for a column's most frequent value."""


def convert_csv(path: Path, staging: Path, options: ProcessOptions, progress, is_tsv: bool) -> Converted:
    dialect = sniff_csv(path, options, is_tsv=is_tsv)
    scan = scan_table(path, dialect, options, lambda share, text: progress(0.45 * share, text))
    plan = plan_table(scan, options)
    scan.target_values = None  # the plan's labels replace it; frees 8 bytes per row before pass 2
    duplicates = _write_features(path, scan, plan, staging, options,
                                 lambda share, text: progress(0.45 + 0.45 * share, text))
    write_labels(staging, plan.labels, plan.assignment)
    if options.missing in ("fill_mean", "fill_most_frequent") and scan.row_has_missing[plan.keep].any():
        progress(0.92, "filling missing values")
        _fill_missing(staging, plan, options)
    details = dialect.describe()
    details.update(rows=scan.rows, rows_dropped=plan.rows_dropped, missing_policy=options.missing,
                   target_column=scan.target.name,
                   encodings={column.name: column.encoding for column in plan.columns})
    return Converted(detected_format="tsv" if dialect.delimiter == "\t" else "csv", task=plan.task,
                     modality="table", input_shape=[len(plan.feature_names)], class_names=plan.class_names,
                     feature_names=plan.feature_names, warnings=plan.warnings, feature_statistics=plan.statistics,
                     preview=Preview(columns=list(dialect.columns), rows=scan.preview_rows), details=details,
                     duplicates=duplicates)


def _write_features(path: Path, scan: TableScan, plan: TablePlan, staging: Path, options: ProcessOptions,
                    progress) -> int:
    width = len(plan.feature_names)
    appenders = [NpyAppender(array_paths(staging, split)[0], np.float32, (width,),
                             int((plan.assignment == split_id).sum())) for split_id, split in enumerate(SPLITS)]
    lookups = [{value: code for code, value in enumerate(column.categories)} for column in plan.columns]
    duplicates = DuplicateCounter()
    source_row = kept_row = 0
    numeric = frozenset([column.index for column in plan.columns if column.encoding == "numeric"])
    for _, block, fraction in iter_blocks(path, scan.dialect, options.limits, numeric):
        keep = plan.keep[source_row:source_row + len(block)]
        source_row += len(block)
        block = block.take(keep)
        if not len(block):
            continue
        features = _encode_block(block, plan.columns, lookups, width)
        duplicates.add(features)
        split_ids = plan.assignment[kept_row:kept_row + len(block)]
        kept_row += len(block)
        for split_id, appender in enumerate(appenders):
            appender.append(features[split_ids == split_id])
        progress(fraction, f"converting rows ({kept_row:,} written)")
    for appender in appenders:
        appender.close()
    if source_row != scan.rows or kept_row != len(plan.labels):
        raise DatasetError("the file changed while it was being read; upload it again", code="bad_csv")
    return duplicates.duplicates()


def _encode_block(block, columns: list[EncodedColumn], lookups: list[dict], width: int) -> np.ndarray:
    features = np.empty((len(block), width), dtype=np.float32)
    for column, lookup in zip(columns, lookups):
        values = block.column(column.index)
        if column.encoding == "numeric":
            numbers = to_numbers(values)
            if numbers is None:
                raise DatasetError("the file changed while it was being read; upload it again", code="bad_csv")
            features[:, column.offset] = numbers
            continue
        unique, inverse, missing = category_codes(values)
        unique_codes = np.array([-1 if gone else lookup.get(value, -1)
                                 for value, gone in zip(unique.tolist(), missing.tolist())], dtype=np.int64)
        codes = unique_codes[inverse]
        valid = codes >= 0
        if column.encoding == "ordinal":
            features[:, column.offset] = np.where(valid, codes, np.nan)
            continue
        group = features[:, column.offset:column.offset + column.width]
        group[:] = 0.0
        group[np.flatnonzero(valid), codes[valid]] = 1.0
        group[~valid] = np.nan
    return features


def _fill_missing(staging: Path, plan: TablePlan, options: ProcessOptions) -> None:
    """Replace NaN with training-split statistics: mean or most frequent value; text columns always get
    their most frequent value (one-hot: the most frequent category's column set)."""
    train_path = array_paths(staging, "train")[0]
    moments = RunningMoments(len(plan.feature_names))
    for block in read_npy_chunks(train_path):
        moments.add(block)
    fill = np.where(moments.count > 0, moments.mean, 0.0)
    needs_mode = [column.offset for column in plan.columns
                  if column.encoding == "ordinal" or (column.encoding == "numeric"
                                                      and options.missing == "fill_most_frequent")]
    for position, value in _training_modes(train_path, needs_mode).items():
        fill[position] = value
    for column in plan.columns:
        if column.encoding == "one_hot":
            group = moments.mean[column.offset:column.offset + column.width]
            fill[column.offset:column.offset + column.width] = 0.0
            fill[column.offset + int(np.nanargmax(np.nan_to_num(group, nan=-1.0)))] = 1.0
    fill = fill.astype(np.float32)

    def transform(block: np.ndarray) -> np.ndarray:
        missing = np.isnan(block)
        block[missing] = np.broadcast_to(fill, block.shape)[missing]
        return block

    for split in SPLITS:
        rewrite_npy_chunks(array_paths(staging, split)[0], transform)


def _training_modes(train_path: Path, positions: list[int]) -> dict[int, float]:
    """Most frequent non-missing training value per feature position, a few columns at a time."""
    if not positions:
        return {}
    from .storage import npy_shape
    rows = max(npy_shape(train_path)[0][0], 1)
    group_size = max(1, MODE_BUFFER_VALUES // rows)
    modes = {}
    for start in range(0, len(positions), group_size):
        group = positions[start:start + group_size]
        gathered = {position: [] for position in group}
        for block in read_npy_chunks(train_path):
            for position in group:
                column = block[:, position]
                gathered[position].append(column[~np.isnan(column)])
        for position, parts in gathered.items():
            values, counts = np.unique(np.concatenate(parts), return_counts=True)
            modes[position] = float(values[np.argmax(counts)]) if len(values) else 0.0
    return modes
