"""The epoch gate: after each epoch, ask someone outside the engine whether to go on.

A sweep's pruner is the judge (trainer_app/sweeps), but the engine knows nothing of it: rank 0 writes
``epoch-<n>.json`` (the epoch's values) into the gate's directory and waits for ``decision-<n>.json``
(``{"action": "continue" | "prune", "reason": "..."}``); then every rank agrees on the answer, so all of
them stop at the same epoch. A judge that does not answer within the timeout lets the run go on: a gate
never hangs training. Plain files keep it usable by hand and by any supervisor.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.02


def request_path(directory: str | os.PathLike, epoch: int) -> Path:
    return Path(directory) / f"epoch-{epoch}.json"


def decision_path(directory: str | os.PathLike, epoch: int) -> Path:
    return Path(directory) / f"decision-{epoch}.json"


def write_json_atomically(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


class EpochGate:
    """Asks after each epoch; ``ask`` returns the reason to stop, or None to go on."""

    def __init__(self, directory: str, *, timeout_s: float, context, stop):
        self.directory = Path(directory)
        self.timeout_s = timeout_s
        self.context = context
        self.stop = stop
        if context.is_main:
            self.directory.mkdir(parents=True, exist_ok=True)

    def ask(self, epoch: int, values: dict) -> str | None:
        prune, reason = False, ""
        if self.context.is_main:
            prune, reason = self._wait_for_decision(epoch, values)
        if self.context.any(prune):
            return reason or "stopped by the epoch gate's judge"
        return None

    def _wait_for_decision(self, epoch: int, values: dict) -> tuple[bool, str]:
        answer = decision_path(self.directory, epoch)
        if not answer.exists():  # a resumed run may find the decision already there
            write_json_atomically(request_path(self.directory, epoch),
                                  {"epoch": epoch, "values": values, "time": time.time()})
        deadline = time.monotonic() + self.timeout_s
        while not answer.exists():
            if time.monotonic() > deadline:
                logger.warning("epoch gate: no decision for epoch %d within %.0f s; going on", epoch, self.timeout_s)
                return False, ""
            if self.stop.requested:
                return False, ""
            time.sleep(POLL_SECONDS)
        try:
            decision = json.loads(answer.read_text())
        except (OSError, json.JSONDecodeError) as error:
            logger.warning("epoch gate: unreadable decision for epoch %d (%s); going on", epoch, error)
            return False, ""
        if decision.get("action") == "prune":
            return True, str(decision.get("reason") or "")
        return False, ""
