"""What the caller may choose: processing options and safety limits."""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import DatasetError

TASKS = ("auto", "classification", "regression")
MISSING_POLICIES = ("drop_rows", "fill_mean", "fill_most_frequent", "error")
GIB = 1024 ** 3


@dataclass(frozen=True)
class Limits:
    """Safety limits; every one is checked while data streams, never trusted from a header."""

    max_upload_bytes: int = 5 * GIB
    """Largest file accepted (checked with stat before anything is read)."""
    max_extracted_bytes: int = 20 * GIB
    """Most bytes that may come out of an archive, counted as they are decompressed."""
    max_archive_entries: int = 1_000_000
    """Most entries an archive may hold."""
    max_compression_ratio: float = 200.0
    """Largest ratio of decompressed to compressed bytes for one entry (or a whole .tar.gz)."""
    ratio_check_min_bytes: int = 1 << 20
    """The ratio is enforced once an entry has produced this many bytes (tiny files compress well)."""
    max_line_chars: int = 1 << 20
    """Longest line a CSV may have."""
    max_image_pixels: int = 89_478_485
    """Largest image (width × height) accepted; Pillow's own default limit. Larger is an error."""
    max_bad_image_share: float = 0.1
    """Share of unreadable images above which the whole archive is refused."""
    max_image_side: int = 224
    """Cap on the default image size's longer side (the most common size is scaled down to fit)."""
    max_classes: int = 1000
    """Most classes a classification target may have."""
    max_categories: int = 1000
    """Most distinct values a text feature column may have; above it the column is dropped."""
    max_one_hot_categories: int = 16
    """Text columns with at most this many values are one-hot encoded; more are ordinal encoded."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value or value < 0:
                raise DatasetError(f"limit {name} must be positive, not {value!r}", code="invalid_option")


@dataclass(frozen=True)
class ProcessOptions:
    """How to read and convert one upload. Defaults suit most data; each field can be set from a form."""

    task: str = "auto"
    """`auto` (inferred), `classification` or `regression`."""
    target_column: str | None = None
    """Name of the target column of a table (default: the last column). Headerless files name columns
    col_1, col_2, …"""
    feature_columns: tuple[str, ...] | None = None
    """Columns used as features (default: every column but the target)."""
    delimiter: str | None = None
    """CSV delimiter (default: detected among , ; tab |)."""
    encoding: str | None = None
    """Text encoding (default: detected; utf-8, utf-16 with a BOM, then cp1252)."""
    header: bool | None = None
    """Whether the first CSV line names the columns (default: detected)."""
    missing: str = "fill_mean"
    """Missing values: `drop_rows`, `fill_mean` (numbers; text columns get their most frequent value),
    `fill_most_frequent` or `error`. Fill values come from the training split only."""
    image_size: tuple[int, int] | None = None
    """(height, width) every image is resized to (default: the most common size, capped)."""
    image_mode: str | None = None
    """`RGB` or `L` (default: `L` when every image is grayscale, else `RGB`)."""
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """train, validation and test shares; sources with their own train/test split keep it."""
    seed: int = 0
    """Seed of the split shuffle."""
    workers: int | None = None
    """Processes that decode images; 1 = in this process; None = one per CPU beyond the second, at most 4
    (measured: on 2 busy cores, extra processes cost more than they win)."""
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        _check(self.task in TASKS, f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        _check(self.missing in MISSING_POLICIES,
               f"missing-value policy must be one of {', '.join(MISSING_POLICIES)}, not {self.missing!r}")
        _check(self.delimiter is None or len(self.delimiter) == 1,
               f"the delimiter must be one character, not {self.delimiter!r}")
        _check(self.image_mode in (None, "RGB", "L"), f"image mode must be RGB or L, not {self.image_mode!r}")
        if self.image_size is not None:
            _check(len(self.image_size) == 2 and all(isinstance(s, int) and 1 <= s <= 4096 for s in self.image_size),
                   f"image size must be (height, width) between 1 and 4096 pixels, not {self.image_size!r}")
        ratios = self.split_ratios
        _check(len(ratios) == 3 and all(r >= 0 for r in ratios) and abs(sum(ratios) - 1) < 1e-6 and ratios[0] > 0,
               f"split ratios must be three shares (train, val, test) that add up to 1 with train above 0, "
               f"not {ratios!r}")
        _check(self.workers is None or self.workers >= 1, "workers must be at least 1")
        if self.encoding is not None:
            import codecs
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise DatasetError(f"unknown encoding {self.encoding!r}; use a name such as utf-8, cp1252, "
                                   "latin-1 or utf-16", code="invalid_option") from None


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise DatasetError(message, code="invalid_option")
