"""Bad CSVs: each refused with a message that says what is wrong and what to do, leaving nothing."""
from __future__ import annotations

import zipfile

from .factories import csv_file, table_text


def test_ragged_row_names_its_line(tmp_path, refused):
    text = table_text(rows=30).splitlines()
    text[17] += ",extra"
    error = refused(csv_file(tmp_path / "d.csv", "\n".join(text) + "\n"), "bad_csv", "line 18 has 5 fields")
    assert "header has 4" in str(error)


def test_missing_target_column_by_name(tmp_path, refused):
    refused(csv_file(tmp_path / "d.csv", table_text()), "bad_target", "'price' is not in the file",
            target_column="price")


def test_headerless_file_with_a_named_target_explains_the_generated_names(tmp_path, refused):
    refused(csv_file(tmp_path / "d.csv", table_text(header=False)), "bad_target",
            "no header row was found.*col_1.*col_4", target_column="label")


def test_unknown_encoding_lists_the_encodings_tried(tmp_path, refused):
    source = tmp_path / "d.csv"
    source.write_bytes(b"x,label\n1,\x81\x8d\xff\n2,b\n")
    error = refused(source, "encoding", r"tried \(utf-8, cp1252")
    assert "Choose its encoding" in str(error)


def test_wrong_encoding_choice_is_explained(tmp_path, refused):
    source = csv_file(tmp_path / "d.csv", table_text().replace("red", "café"), encoding="cp1252")
    refused(source, "encoding", "not valid utf-8", encoding="utf-8")


def test_nul_bytes_are_refused(tmp_path, refused):
    source = tmp_path / "d.csv"
    source.write_bytes(b"x,label\n1,a\n2,\x00b\n")
    refused(source, "bad_csv", "line 3 holds NUL bytes")


def test_one_enormous_line_hits_the_line_length_limit(tmp_path, refused):
    from trainer_app.datasets import Limits
    source = csv_file(tmp_path / "d.csv", "x,label\n1,a\n" + "9" * 5000 + ",b\n")
    refused(source, "bad_csv", "line 3 is longer than 1,000 characters", limits=Limits(max_line_chars=1000))


def test_constant_target_is_refused(tmp_path, refused):
    text = "x,y\n" + "".join(f"{i},5.5\n" for i in range(20))
    refused(csv_file(tmp_path / "d.csv", text), "bad_target", "constant", task="regression")


def test_single_class_is_refused(tmp_path, refused):
    text = "x,label\n" + "".join(f"{i},yes\n" for i in range(20))
    refused(csv_file(tmp_path / "d.csv", text), "bad_target", "single class")


def test_nan_labels_are_refused_unless_rows_may_be_dropped(tmp_path, refused, convert):
    text = "x,label\n" + "".join(f"{i},{'NaN' if i == 7 else i % 2}\n" for i in range(20))
    source = csv_file(tmp_path / "d.csv", text)
    refused(source, "bad_target", "missing \\(NaN or empty\\) in 1 rows, first on line 9")
    assert sum(convert(source, missing="drop_rows").meta.splits.values()) == 19


def test_missing_values_with_the_error_policy(tmp_path, refused):
    text = "x,label\n" + "".join(f"{'' if i == 4 else i},{i % 2}\n" for i in range(20))
    refused(csv_file(tmp_path / "d.csv", text), "missing_values", "'x' has a missing value on line 6",
            missing="error")


def test_text_target_cannot_be_regression(tmp_path, refused):
    refused(csv_file(tmp_path / "d.csv", table_text()), "bad_target", "only be used for classification",
            task="regression")


def test_single_column_file(tmp_path, refused):
    refused(csv_file(tmp_path / "d.csv", "label\n" + "a\nb\n" * 10), "bad_csv", "only one column")


def test_header_only_file(tmp_path, refused):
    refused(csv_file(tmp_path / "d.csv", "x,label\n"), "empty", "no data rows")


def test_empty_file_is_refused_before_reading(tmp_path, refused):
    (tmp_path / "d.csv").write_bytes(b"")
    refused(tmp_path / "d.csv", "empty", "empty")


def test_file_over_the_limit_is_refused_from_its_size(tmp_path, refused, monkeypatch):
    from trainer_app.datasets import Limits
    source = csv_file(tmp_path / "d.csv", table_text())

    real_open = open

    def open_anything_but_the_upload(path, *args, **kwargs):
        assert str(path) != str(source), "the upload was opened"
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_anything_but_the_upload)
    refused(source, "too_large", "over the limit of 100 bytes", limits=Limits(max_upload_bytes=100))


def test_executable_named_csv_is_refused(tmp_path, refused):
    source = tmp_path / "data.csv"
    source.write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 200)
    refused(source, "content_mismatch", "ELF executable")
    source.write_bytes(b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200)
    refused(source, "content_mismatch", "Windows")


def test_zip_named_csv_is_refused(tmp_path, refused):
    source = tmp_path / "data.csv"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("x.csv", table_text())
    refused(source, "content_mismatch", "named like a CSV file but its content is a ZIP archive")


def test_csv_named_zip_is_refused(tmp_path, refused):
    refused(csv_file(tmp_path / "data.zip", table_text()), "content_mismatch", "named like a ZIP archive")


def test_hostile_original_name_is_only_metadata(tmp_path, convert):
    source = csv_file(tmp_path / "stored-upload", table_text())
    name = "../../etc/<script>alert(1)</script>.csv"
    result = convert(source, original_name=name)
    assert result.original_name == name
    assert sorted(path.name for path in result.output_dir.iterdir()) == sorted(
        ["meta.json", "report.json"] + [f"{split}_{part}.npy" for split in ("train", "val", "test") for part in "Xy"])
