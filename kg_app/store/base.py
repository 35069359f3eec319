"""The graph store interface.

Guarantees every adapter keeps (the contract tests in tests/integration/test_graph_store_contract.py
prove them against each reachable server):

- ``run(cypher, params)`` executes one parameterised Cypher statement and returns its rows as a list
  of dicts keyed by the RETURN columns, with nodes as ``{"labels", "properties"}`` and relationships as
  ``{"type", "properties"}``: plain Python values, never driver objects.
- ``run(..., read_only=True)`` is enforced by the server: a statement that writes fails with
  ``GraphStoreError`` and changes nothing.
- A server that cannot be reached raises ``GraphUnavailable`` (a ``GraphStoreError``) within the
  connection timeout, never hangs.
- ``health()`` answers ``{"ok", "latency_ms", "url", "error"?}`` and never raises.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

from config.env import mask_url


class GraphStoreError(Exception):
    """A statement failed; the message says why."""


class GraphUnavailable(GraphStoreError):
    """The graph server could not be reached."""


class GraphStore(ABC):
    backend: str = ""

    def __init__(self, url: str):
        self.url = url

    @abstractmethod
    def run(self, cypher: str, params: dict[str, Any] | None = None, *, read_only: bool = False) -> list[dict]:
        """Execute one statement and return its rows."""

    @abstractmethod
    def close(self) -> None:
        """Release connections. The store is unusable afterwards."""

    def health(self) -> dict:
        started = time.perf_counter()
        try:
            rows = self.run("RETURN 1 AS ok", read_only=True)
            ok = rows == [{"ok": 1}]
            error = None if ok else f"unexpected answer {rows!r}"
        except GraphStoreError as exc:
            ok, error = False, str(exc)
        report = {
            "ok": ok,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "url": mask_url(self.url),
            "backend": self.backend,
        }
        if error:
            report["error"] = error
        return report

    def __enter__(self) -> "GraphStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
