"""The engine's liveness signal: each rank keeps a small heartbeat file that advances only while the rank
makes progress, so that a supervisor can tell a hung engine (a deadlock, a stuck collective, a stopped
rank) from a slow one.

Each rank writes ``rank-<RANK>.json`` in the heartbeat directory, ``{"rank", "pid", "seq", "phase",
"beats", "time"}``, replaced atomically at most every ``every_s`` seconds by a background thread. The thread
writes (and ``seq`` grows) only when the loop counted progress since the last write (``beat()``: a training
step, an evaluation batch) or while the rank is in a phase that makes no steps but is bounded or needed
(``waiting``: starting up and the first ``import torch``, writing a checkpoint, waiting for the epoch gate,
flushing events, finishing). A rank that stops (SIGSTOP), or whose loop stops advancing (a deadlock, a
collective waiting for a stopped peer), stops writing; so does a process whose thread cannot run. The
last write says ``"phase": "done"``: the rank finished and is not watched any more.

A supervisor watches ``seq`` change (trainer_app/progress_watch.py), never the file's time, so clocks on
other machines do not matter. Pure Python: no torch, no Django.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

HEARTBEAT_PATTERN = "rank-*.json"


def heartbeat_path(directory: str | os.PathLike, rank: int) -> Path:
    return Path(directory) / f"rank-{rank}.json"


class Liveness:
    """Counts progress and does nothing with it: what a run without a heartbeat directory gets."""

    def beat(self) -> None:
        """The loop made progress (a step, an evaluation batch)."""

    def progress(self, phase: str) -> None:
        """From now on, only beats show this rank is alive (a phase made of steps)."""

    def wait(self, phase: str) -> None:
        """From now on, the rank is alive as long as its process runs (a phase without steps)."""

    @contextlib.contextmanager
    def waiting(self, phase: str):
        """A bounded stretch without steps (a checkpoint, the epoch gate); the phase before it comes back."""
        yield

    def done(self) -> None:
        """The rank finished: its last word."""


class HeartbeatFile(Liveness):
    """The heartbeat file of one rank, written by a daemon thread (the loop only counts beats)."""

    def __init__(self, directory: str | os.PathLike, *, rank: int, every_s: float = 2.0, phase: str = "starting"):
        self.path = heartbeat_path(directory, rank)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rank = rank
        self.every_s = every_s
        self._beats = 0
        self._written_beats = -1
        self._phase = phase
        self._waiting = True  # starting: the slow imports and loading make no steps
        self._seq = 0
        self._failed = False
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._loop, name="engine-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        self._beats += 1  # the loop's only cost: one integer

    def progress(self, phase: str) -> None:
        self._phase, self._waiting = phase, False
        self._beats += 1

    def wait(self, phase: str) -> None:
        self._phase, self._waiting = phase, True

    @contextlib.contextmanager
    def waiting(self, phase: str):
        before = (self._phase, self._waiting)
        self.wait(phase)
        try:
            yield
        finally:
            self._phase, self._waiting = before
            self._beats += 1

    def done(self) -> None:
        self._phase, self._waiting = "done", False
        self._stopped.set()
        self._write()

    def _loop(self) -> None:
        while not self._stopped.wait(self.every_s):
            if self._waiting or self._beats != self._written_beats:
                self._write()

    def _write(self) -> None:
        with self._lock:
            self._seq += 1
            beats = self._beats
            record = {"rank": self.rank, "pid": os.getpid(), "seq": self._seq, "phase": self._phase,
                      "beats": beats, "time": time.time()}
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
            try:
                temporary.write_text(json.dumps(record))
                os.replace(temporary, self.path)
            except OSError as error:  # a full or vanished disk must not stop training; the watcher will see it
                if not self._failed:
                    logger.warning("heartbeat %s: %s", self.path, error)
                    self._failed = True
                return
            self._written_beats = beats


def start_heartbeat(spec_source, *, rank: int | None = None) -> Liveness:
    """The heartbeat a spec asks for (``control.heartbeat_dir``), started before the slow imports; the no-op
    base when it asks for none or cannot be read (the engine reports a bad spec itself)."""
    try:
        raw = spec_source if isinstance(spec_source, dict) else json.loads(Path(spec_source).read_text())
        control = raw.get("control") or {}
        directory = control.get("heartbeat_dir")
        if not directory:
            return Liveness()
        every = float(control.get("heartbeat_every_s") or 2.0)
        rank = int(os.environ.get("RANK", "0")) if rank is None else rank
        return HeartbeatFile(directory, rank=rank, every_s=max(every, 0.05))
    except Exception as error:  # noqa: BLE001 - liveness is a service to the supervisor, never a reason to fail
        logger.warning("no heartbeat: %s", error)
        return Liveness()
