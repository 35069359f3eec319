"""CSV/TSV: detection of encoding, delimiter and header; targets, tasks, encodings, missing values."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trainer_app.engine.dataset_format import open_split, read_meta

from .factories import csv_file, table_text


def test_csv_becomes_a_stratified_table_with_one_hot_colours(tmp_path, convert):
    result = convert(csv_file(tmp_path / "data.csv", table_text(rows=90)))
    meta = read_meta(result.output_dir)
    assert result.detected_format == "csv"
    assert meta.task == "classification" and meta.modality == "table"
    assert meta.class_names == ["a", "b", "c"]
    assert meta.feature_names == ["x1", "x2", "colour=blue", "colour=green", "colour=red"]
    assert meta.splits == {"train": 72, "val": 9, "test": 9}
    assert result.class_counts["val"] == [3, 3, 3]
    features, labels = open_split(result.output_dir, "train")
    assert features.dtype == np.float32 and features.shape == (72, 5) and labels.dtype == np.int64
    assert np.all(features[:, 2:].sum(axis=1) == 1)
    assert result.sha256 == meta.sha256 and len(result.sha256) == 64
    assert result.details["header"] is True and result.details["delimiter"] == "comma"
    assert result.preview.columns == ["x1", "x2", "colour", "label"] and len(result.preview.rows) == 20
    stats = {entry.name: entry for entry in result.feature_statistics}
    assert stats["x2"].min >= 0 and stats["x2"].max < 100 and stats["colour"].categories == 3
    assert stats["label"].role == "target"
    assert json.loads((result.output_dir / "report.json").read_text())["sha256"] == result.sha256


def test_normalisation_comes_from_the_training_split_only(tmp_path, convert):
    result = convert(csv_file(tmp_path / "data.csv", table_text(rows=90)))
    train, _ = open_split(result.output_dir, "train")
    assert np.allclose(result.meta.normalization["mean"], train.mean(axis=0), atol=1e-4)
    assert np.allclose(result.meta.normalization["std"][:2], train.std(axis=0)[:2], rtol=1e-4)


def test_same_seed_gives_the_same_split_and_hash(tmp_path, convert):
    source = csv_file(tmp_path / "data.csv", table_text(rows=90))
    first, second = convert(source, seed=3), convert(source, seed=3)
    assert first.sha256 == second.sha256
    assert convert(source, seed=4).sha256 != first.sha256


def test_tsv_semicolons_and_cp1252_are_detected(tmp_path, convert):
    tsv = convert(csv_file(tmp_path / "data.tsv", table_text(delimiter="\t")))
    assert tsv.detected_format == "tsv"
    text = table_text(delimiter=";").replace("red", "rouge café")
    semicolons = convert(csv_file(tmp_path / "european.csv", text, encoding="cp1252"))
    assert semicolons.details["delimiter"] == "semicolon" and semicolons.details["encoding"] == "cp1252"
    assert "colour=rouge café" in semicolons.meta.feature_names


def test_utf16_with_bom_is_read(tmp_path, convert):
    result = convert(csv_file(tmp_path / "data.csv", table_text(), encoding="utf-16"))
    assert result.details["encoding"] == "utf-16" and result.meta.splits["train"] > 0


def test_headerless_file_gets_generated_column_names(tmp_path, convert):
    source = csv_file(tmp_path / "data.csv", table_text(header=False, classes=("1", "2")))
    result = convert(source)
    assert result.details["header"] is False
    assert result.details["columns"] == ["col_1", "col_2", "col_3", "col_4"]
    assert convert(source, target_column="col_2").meta.task == "regression"


def test_numeric_target_with_few_integers_is_classification_and_can_be_overridden(tmp_path, convert):
    text = "x,y\n" + "".join(f"{i * 0.5},{i % 3}\n" for i in range(60))
    source = csv_file(tmp_path / "data.csv", text)
    assert convert(source).meta.task == "classification"
    regression = convert(source, task="regression")
    assert regression.meta.task == "regression" and regression.meta.num_classes == 0
    assert set(regression.meta.target_normalization) == {"mean", "std"}
    _, targets = open_split(regression.output_dir, "train")
    assert targets.dtype == np.float32


def test_continuous_target_is_regression(tmp_path, convert):
    text = "x,price\n" + "".join(f"{i},{i * 1.37 + 0.5}\n" for i in range(50))
    assert convert(csv_file(tmp_path / "d.csv", text)).meta.task == "regression"


def test_feature_columns_choose_a_subset(tmp_path, convert):
    result = convert(csv_file(tmp_path / "d.csv", table_text()), feature_columns=("x1",), target_column="label")
    assert result.meta.feature_names == ["x1"]


def test_many_categories_are_ordinal_encoded(tmp_path, convert):
    text = "city,label\n" + "".join(f"town{i % 30},{i % 2}\n" for i in range(120))
    result = convert(csv_file(tmp_path / "d.csv", text))
    assert result.meta.feature_names == ["city"] and result.details["encodings"] == {"city": "ordinal"}
    features, _ = open_split(result.output_dir, "train")
    assert features.min() >= 0 and features.max() <= 29


@pytest.mark.parametrize("policy", ["fill_mean", "fill_most_frequent"])
def test_missing_values_are_filled_from_training_statistics(tmp_path, convert, policy):
    text = "x,colour,label\n" + "".join(
        f"{'' if i % 10 == 0 else i % 4},{'NA' if i % 7 == 0 else ['red', 'red', 'blue'][i % 3]},{i % 2}\n"
        for i in range(100))
    result = convert(csv_file(tmp_path / "d.csv", text), missing=policy)
    for split in ("train", "val", "test"):
        features, _ = open_split(result.output_dir, split)
        assert not np.isnan(features).any()
        assert np.all(features[:, 1:].sum(axis=1) == 1)
    assert any(warning.code == "missing_values" for warning in result.warnings)
    assert {entry.name: entry.missing_share for entry in result.feature_statistics}["x"] == pytest.approx(0.1)


def test_drop_rows_policy_drops_rows_with_missing_values_and_labels(tmp_path, convert):
    text = "x,label\n" + "".join(f"{'' if i % 10 == 0 else i},{'' if i % 25 == 1 else i % 2}\n" for i in range(100))
    result = convert(csv_file(tmp_path / "d.csv", text), missing="drop_rows")
    assert sum(result.meta.splits.values()) == 100 - 10 - 4
    assert result.details["rows_dropped"] == 14


def test_constant_column_and_imbalance_and_duplicates_are_warned(tmp_path, convert):
    text = "same,x,label\n" + "".join(f"1,{i % 5},{'rare' if i < 3 else 'common'}\n" for i in range(100))
    codes = {warning.code for warning in convert(csv_file(tmp_path / "d.csv", text)).warnings}
    assert {"constant_column", "class_imbalance", "duplicates"} <= codes


def test_column_that_turns_to_text_late_is_categorical(tmp_path, convert, monkeypatch):
    from trainer_app.datasets import csv_reader
    monkeypatch.setattr(csv_reader, "BLOCK_CHARS", 64)
    text = "code,label\n" + "".join(f"{i % 4},{i % 2}\n" for i in range(60)) + "x9,1\n"
    result = convert(csv_file(tmp_path / "d.csv", text))
    assert result.details["encodings"] == {"code": "one_hot"}
    assert sum(result.meta.splits.values()) == 61


def test_progress_is_reported_up_to_one(tmp_path, convert):
    seen = []
    convert(csv_file(tmp_path / "d.csv", table_text()), progress=lambda share, message: seen.append(share))
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_csv_inside_a_zip_or_gzip_is_converted(tmp_path, convert):
    import gzip
    import zipfile
    with zipfile.ZipFile(tmp_path / "table.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export/data.csv", table_text())
    assert convert(tmp_path / "table.zip").detected_format == "csv"
    (tmp_path / "table.tsv.gz").write_bytes(gzip.compress(table_text(delimiter="\t").encode()))
    assert convert(tmp_path / "table.tsv.gz").detected_format == "tsv"


def test_small_blocks_and_the_numeric_fast_path_give_the_same_dataset(tmp_path, convert):
    """Blocks of ~300 characters mix the fast numeric parse and the general one (missing values)."""
    from trainer_app.datasets import Limits
    lines = table_text(rows=200).splitlines()
    lines[150] = lines[150].replace(lines[150].split(",")[1], "", 1)
    source = csv_file(tmp_path / "d.csv", "\n".join(lines) + "\n")
    small, whole = convert(source, limits=Limits(max_line_chars=300)), convert(source)
    assert small.sha256 == whole.sha256
    for piecewise, at_once in zip(small.feature_statistics, whole.feature_statistics):
        assert (piecewise.count, piecewise.min, piecewise.max) == (at_once.count, at_once.min, at_once.max)
        assert piecewise.mean == pytest.approx(at_once.mean) and piecewise.std == pytest.approx(at_once.std)


def test_ragged_row_in_a_later_block_is_found(tmp_path, refused):
    from trainer_app.datasets import Limits
    lines = table_text(rows=200).splitlines()
    lines[170] += ",1"
    refused(csv_file(tmp_path / "d.csv", "\n".join(lines) + "\n"), "bad_csv", "line 171 has 5 fields",
            limits=Limits(max_line_chars=300))
