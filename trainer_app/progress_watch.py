"""The supervisor's side of the engine's heartbeat (trainer_app/engine/liveness.py): is the engine still
making progress?

Each rank rewrites ``rank-<RANK>.json`` while it makes progress (steps, evaluation batches) or sits in a phase
without steps that is bounded (starting, checkpointing, the epoch gate, finishing). The watch notes, on its
own monotonic clock, when each file's ``seq`` last changed; the engine hung when the oldest of those is more
than ``timeout_s`` ago. A rank writes its first file before it imports torch, but torchrun's own agent imports
torch before it starts any rank: while no rank wrote, the engine counts as hung only ``startup_s`` after the
launch. The agent starts its ranks together, so once one rank wrote, one that has not yet counts as hung
``timeout_s`` after that first word.
A rank whose last word is ``done`` is not watched any more. Pure Python, no Django: it reads files.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from trainer_app.engine.liveness import HEARTBEAT_PATTERN


class ProgressWatch:
    """Watches one attempt's heartbeat directory; ``hung()`` says why the engine counts as hung, or None."""

    def __init__(self, directory: str | Path, *, ranks: int, timeout_s: float, startup_s: float | None = None):
        self.directory = Path(directory)
        self.ranks = ranks
        self.timeout_s = timeout_s
        self.startup_s = max(timeout_s, startup_s or 0)
        self.launched: float | None = None
        self.first_word: float | None = None  # when this attempt's first rank file was seen
        self.seen: dict[str, tuple[int, float, str]] = {}  # file -> (seq, when it last changed, phase)

    def reset(self) -> None:
        """Before a launch: an earlier attempt's files must not count for this one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for path in self.directory.glob(HEARTBEAT_PATTERN):
            path.unlink(missing_ok=True)
        self.seen.clear()
        self.launched = None
        self.first_word = None

    def start(self, now: float | None = None) -> None:
        self.launched = time.monotonic() if now is None else now

    def _read(self, now: float) -> None:
        for path in self.directory.glob(HEARTBEAT_PATTERN):
            try:
                record = json.loads(path.read_text())
                seq, phase = int(record["seq"]), str(record.get("phase", ""))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # vanished or unreadable this time: the next look counts
            known = self.seen.get(path.name)
            if known is None or known[0] != seq:
                self.seen[path.name] = (seq, now, phase)
            if self.first_word is None:
                self.first_word = now

    def hung(self, now: float | None = None) -> str | None:
        """Why the engine counts as hung ("no progress for N s: the engine hung (rank 1 training)"), or None."""
        if self.launched is None:
            return None
        now = time.monotonic() if now is None else now
        self._read(now)
        watched = {name: (changed, phase) for name, (_, changed, phase) in self.seen.items() if phase != "done"}
        stale = sorted(name for name, (changed, _) in watched.items() if now - changed > self.timeout_s)
        missing = max(0, self.ranks - len(self.seen))
        if missing:
            since, allowance = ((self.launched, self.startup_s) if self.first_word is None
                                else (self.first_word, self.timeout_s))  # its peers started: it should have too
            if now - since > allowance:
                return (f"no progress for {allowance:g} s: the engine hung ({missing} rank(s) never started; "
                        f"{len(self.seen)} did)")
        if not stale:
            return None
        where = ", ".join(f"{name.removesuffix('.json').replace('-', ' ')} {watched[name][1]}" for name in stale)
        return f"no progress for {self.timeout_s:g} s: the engine hung ({where})"
