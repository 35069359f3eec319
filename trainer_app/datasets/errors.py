"""The one exception that dataset processing raises for bad input."""
from __future__ import annotations


class DatasetError(Exception):
    """Input that cannot become a dataset. The message says what is wrong and what to do.

    ``code`` is a short, stable word for programs (``too_large``, ``unsafe_archive``, ``bad_csv``…);
    the message is for people and may change.
    """

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message
