"""Reading CSV/TSV text safely and fast: encoding, delimiter and header detection, streamed blocks.

Blocks of text are cut at line ends and parsed by numpy's C tokenizer into string arrays, so a
file of any size is read with bounded memory. A line longer than the limit, NUL bytes, text that
does not decode, and rows with the wrong number of fields are errors naming the line.
"""
from __future__ import annotations

import codecs
import csv
import io
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .options import Limits, ProcessOptions

SAMPLE_BYTES = 1 << 18
BLOCK_CHARS = 1 << 22
CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
TRIED_ENCODINGS = ("utf-8", "cp1252")
MISSING_TOKENS = frozenset({"", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "null", "NULL", "Null", "None",
                            "none", "?", "#N/A"})
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


class Rows:
    """A block of parsed rows, column by column: float64 arrays for columns parsed as numbers, object arrays
    of str for the others."""

    def __init__(self, columns: list[np.ndarray]) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def column(self, index: int) -> np.ndarray:
        return self.columns[index]

    def take(self, selection: np.ndarray) -> "Rows":
        return Rows([column[selection] for column in self.columns])

    def head(self, count: int) -> list[list[str]]:
        return [[str(column[row]) for column in self.columns] for row in range(min(count, len(self)))]


@dataclass(frozen=True)
class CsvDialect:
    encoding: str
    delimiter: str
    header: bool
    columns: tuple[str, ...]
    """Column names: from the header, or col_1, col_2, … without one."""

    def describe(self) -> dict:
        return {"encoding": self.encoding, "delimiter": _DELIMITER_NAMES.get(self.delimiter, self.delimiter),
                "header": self.header, "columns": list(self.columns)}


def sniff_csv(path: Path, options: ProcessOptions, is_tsv: bool = False) -> CsvDialect:
    """Detect encoding, delimiter and header from the start of the file (options override each)."""
    csv.field_size_limit(max(csv.field_size_limit(), options.limits.max_line_chars))
    with open(path, "rb") as handle:
        raw = handle.read(SAMPLE_BYTES)
    truncated = len(raw) == SAMPLE_BYTES
    encoding = options.encoding or _detect_encoding(raw)
    text = _decode_sample(raw, encoding, truncated, explicit=options.encoding is not None)
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise DatasetError(f"line {line} holds NUL bytes: this is binary data, not a CSV. If it is UTF-16 text, "
                           "choose the encoding utf-16 (or save it as UTF-8)", code="bad_csv")
    if truncated and "\n" in text:
        text = text[:text.rindex("\n") + 1]
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()][:200]
    if not lines:
        raise DatasetError("the file holds no data lines; upload a CSV with a header and rows", code="empty")
    if len(lines[0]) > options.limits.max_line_chars:
        _line_too_long(1, options.limits)
    delimiter = options.delimiter or _detect_delimiter(lines, "\t" if is_tsv else None)
    rows = [row for row in csv.reader(lines, delimiter=delimiter)][:100]
    header = options.header if options.header is not None else _looks_like_header(rows)
    width = len(rows[0])
    if width < 2:
        raise DatasetError("only one column was found; a table needs feature columns and a target column. If "
                           "the columns are separated by another character, choose the delimiter",
                           code="bad_csv")
    columns = _column_names(rows[0]) if header else tuple(f"col_{i + 1}" for i in range(width))
    return CsvDialect(encoding=encoding, delimiter=delimiter, header=header, columns=columns)


def _detect_encoding(raw: bytes) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in TRIED_ENCODINGS:
        try:
            codecs.getincrementaldecoder(encoding)().decode(raw, final=False)
        except UnicodeDecodeError:
            continue
        return encoding
    _undecodable(raw, None)


def _decode_sample(raw: bytes, encoding: str, truncated: bool, explicit: bool) -> str:
    try:
        return codecs.getincrementaldecoder(encoding)().decode(raw, final=not truncated)
    except UnicodeDecodeError as error:
        _undecodable(raw, encoding if explicit else None, error)


def _undecodable(raw: bytes, chosen: str | None, error: UnicodeDecodeError | None = None):
    if chosen:
        position = error.start if error else 0
        line = raw[:position].count(b"\n") + 1
        raise DatasetError(f"the file is not valid {chosen} text (byte 0x{raw[position]:02x} on line {line}); "
                           "choose the encoding it was saved with", code="encoding")
    position = _first_bad_utf8(raw)
    line = raw[:position].count(b"\n") + 1
    raise DatasetError(f"the file's encoding is unknown: it is not valid in any of the encodings tried "
                       f"({', '.join(TRIED_ENCODINGS)}; byte 0x{raw[position]:02x} on line {line}). Choose its "
                       "encoding in the upload options (for example latin-1, shift_jis, gb18030 or utf-16), "
                       "or save it as UTF-8", code="encoding")


def _first_bad_utf8(raw: bytes) -> int:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return 0


def _detect_delimiter(lines: list[str], preferred: str | None) -> str:
    best, best_score = None, (0.0, 0)
    for delimiter in ((preferred,) if preferred else ()) + CANDIDATE_DELIMITERS:
        widths = [len(row) for row in csv.reader(lines[:50], delimiter=delimiter)]
        width, frequency = Counter(widths).most_common(1)[0]
        score = (frequency / len(widths), width)
        if width >= 2 and score > best_score:
            best, best_score = delimiter, score
        if delimiter == preferred and width >= 2 and score[0] == 1.0:
            return delimiter
    return best or ","


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _looks_like_header(rows: list[list[str]]) -> bool:
    first, rest = rows[0], [row for row in rows[1:] if len(row) == len(rows[0])]
    if not rest:
        return not all(_is_number(cell) for cell in first)
    for index, cell in enumerate(first):
        values = [row[index] for row in rest if row[index].strip() not in MISSING_TOKENS]
        if values and not _is_number(cell) and cell.strip() not in MISSING_TOKENS:
            if sum(_is_number(value) for value in values) >= 0.9 * len(values):
                return True
    if any(_is_number(cell) for cell in first) or len(set(first)) != len(first) or not all(c.strip() for c in first):
        return False
    return all(cell not in {row[index] for row in rest} for index, cell in enumerate(first))


def _column_names(cells: list[str]) -> tuple[str, ...]:
    names, seen = [], Counter()
    for index, cell in enumerate(cells):
        name = cell.strip() or f"col_{index + 1}"
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return tuple(names)


def _line_too_long(line: int, limits: Limits):
    raise DatasetError(f"line {line} is longer than {limits.max_line_chars:,} characters (limit); check that "
                       "the file is a table with one row per line", code="bad_csv")


def iter_blocks(path: Path, dialect: CsvDialect, limits: Limits,
                numeric: set[int] | frozenset[int] = frozenset()) -> Iterator[tuple[int, Rows, float]]:
    """Yield (line number of the block's first row, its rows, share of the file read), the header skipped.

    Columns in ``numeric`` are parsed straight to float64 when every value of the block is a plain number
    (the fast path); otherwise the block's columns are all str."""
    size = max(Path(path).stat().st_size, 1)
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding=dialect.encoding, errors="strict", newline="")
        line_number = 1
        if dialect.header:
            header = text.readline(limits.max_line_chars + 1)
            if len(header) > limits.max_line_chars:
                _line_too_long(1, limits)
            line_number = 2
        rest = ""
        while True:
            try:
                chunk = text.read(min(BLOCK_CHARS, limits.max_line_chars))
            except UnicodeDecodeError:
                raise DatasetError(f"the text stops being valid {dialect.encoding} after about line "
                                   f"{line_number + rest.count(chr(10))}; choose the encoding the file was saved "
                                   "with in the upload options (for example cp1252 or latin-1)",
                                   code="encoding") from None
            first_line_length = len(rest) + (chunk.find("\n") if "\n" in chunk else len(chunk))
            if first_line_length > limits.max_line_chars:  # later lines fit in one read, so within the limit
                _line_too_long(line_number, limits)
            block, rest = _cut_block(rest + chunk, final=not chunk)
            if block:
                _check_block(block, line_number)
                rows = parse_block(block, dialect, line_number, numeric)
                if len(rows):
                    yield line_number, rows, min(raw.tell() / size, 1.0)
                line_number += block.count("\n")
            if not chunk:
                return


def _cut_block(text: str, final: bool) -> tuple[str, str]:
    if final:
        return text, ""
    cut = text.rfind("\n")
    return (text[:cut + 1], text[cut + 1:]) if cut >= 0 else ("", text)


def _check_block(block: str, line_number: int) -> None:
    if "\x00" in block:
        line = line_number + block[:block.index("\x00")].count("\n")
        raise DatasetError(f"line {line} holds NUL bytes: the file is binary or corrupt, not a CSV",
                           code="bad_csv")


def parse_block(block: str, dialect: CsvDialect, line_number: int,
                numeric: set[int] | frozenset[int] = frozenset()) -> Rows:
    width = len(dialect.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data" for blank blocks
        if numeric:
            # One structured parse: numbers straight to float64, no str objects for them (about 3x faster).
            fields = np.dtype([(f"c{i}", np.float64 if i in numeric else object) for i in range(width)])
            try:
                parsed = np.loadtxt(io.StringIO(block), delimiter=dialect.delimiter, quotechar='"', dtype=fields,
                                    comments=None, ndmin=1)
                return Rows([parsed[f"c{i}"] for i in range(width)])
            except ValueError:
                pass  # a missing value, text, or a ragged row: the general path sorts it out
        try:
            rows = np.loadtxt(io.StringIO(block), delimiter=dialect.delimiter, quotechar='"', dtype=object,
                              comments=None, ndmin=2)
        except ValueError as error:
            _locate_bad_row(block, dialect, line_number, error)
    if rows.size and rows.shape[1] != width:
        _locate_bad_row(block, dialect, line_number, None)
    return Rows([rows[:, i] for i in range(width)] if rows.size else [])


def _locate_bad_row(block: str, dialect: CsvDialect, line_number: int, error: Exception | None):
    width = len(dialect.columns)
    reader = csv.reader(io.StringIO(block, newline=""), delimiter=dialect.delimiter)
    try:
        for row in reader:
            if row and len(row) != width:
                raise DatasetError(f"line {line_number + reader.line_num - 1} has {len(row)} fields but the "
                                   f"{'header' if dialect.header else 'first line'} has {width}; fix that line "
                                   "(a stray delimiter or quote?) or check the delimiter", code="bad_csv")
    except csv.Error as csv_error:
        raise DatasetError(f"line {line_number + reader.line_num - 1} cannot be parsed ({csv_error})",
                           code="bad_csv") from None
    raise DatasetError(f"the lines from {line_number} on cannot be parsed ({error}); check quotes and the "
                       "delimiter", code="bad_csv")
