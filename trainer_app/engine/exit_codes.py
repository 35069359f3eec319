"""How an engine process ends: exit codes, final states and the result file.

Every rank exits with one of these codes. torchrun folds any non-zero code of its ranks into its own exit
code 1, so rank 0 also writes a small JSON result file (see ``write_result``) that a supervisor reads to
tell a cancel from a divergence from a crash. Pure Python: the web side imports it without torch.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

SUCCEEDED = 0
"""Training finished (all epochs, ``max_steps`` reached, or early stopping)."""
FAILED = 1
"""An exception stopped the run; the status event and the result file carry its message."""
SPEC_REFUSED = 2
"""The run spec, or the spec against its dataset, was refused before training began: nothing was trained."""
CANCELLED = 3
"""SIGTERM or SIGINT: the current step finished, a checkpoint was written, the run stopped."""
DIVERGED = 4
"""The training loss became NaN or infinite: stopped, the last good checkpoint kept, none written after it."""

PRUNED = 5
"""The epoch gate's judge (a sweep's pruner) stopped the run after an epoch: a checkpoint was written, no test."""

STATE_BY_EXIT_CODE = {
    SUCCEEDED: "succeeded",
    FAILED: "failed",
    SPEC_REFUSED: "failed",
    CANCELLED: "cancelled",
    DIVERGED: "diverged",
    PRUNED: "pruned",
}
"""The final `status` event's state for each exit code."""

RESULT_FILE_NAME = "result.json"


def write_result(path: str | os.PathLike, *, exit_code: int, state: str, message: str, **details) -> None:
    """Write the result file atomically (temporary name, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(temporary, "w") as handle:
        json.dump({"exit_code": exit_code, "state": state, "message": message, **details}, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_result(path: str | os.PathLike) -> dict | None:
    """The result a run left, or None when it left none (killed, or never started)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
