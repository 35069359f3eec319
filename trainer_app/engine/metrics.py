"""Where rank 0's events go: a no-op ``MetricSink``, a Redis Stream, a JSON-lines file, and a fan-out.

An event is a kind and a JSON object. In the Redis Stream each entry has two fields, ``kind`` and ``data``
(the JSON text); in the JSON-lines file each line is {"kind": …, "data": {…}}. ``EventWriter`` builds the
events the engine sends (metrics, log, status, progress, checkpoint, confusion_matrix, summary; see
docs/engine.md) and remembers each metric's last value for the summary.

Sinks guarantee: ``emit`` never waits on I/O (the Redis sink hands events to a writer thread that sends
them in pipelined batches), ``flush`` returns once everything emitted so far is written or its timeout
has passed, ``close`` flushes and releases. Pure Python; redis is imported only by the Redis sink.
"""
from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)  # the sinks' own problems: never forwarded as log events


class MetricSink:
    """Receives events and does nothing: what non-zero ranks and runs without metrics get."""

    def emit(self, kind: str, data: dict) -> None:
        pass

    def flush(self, timeout: float = 10.0) -> None:
        pass

    def close(self, timeout: float = 10.0) -> None:
        pass


class SinkGroup(MetricSink):
    """Sends every event to each of its sinks."""

    def __init__(self, sinks: list[MetricSink]):
        self.sinks = list(sinks)

    def emit(self, kind: str, data: dict) -> None:
        for sink in self.sinks:
            sink.emit(kind, data)

    def flush(self, timeout: float = 10.0) -> None:
        for sink in self.sinks:
            sink.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        for sink in self.sinks:
            sink.close(timeout)


def encode(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


class JsonlSink(MetricSink):
    """Appends one JSON line per event ({"kind", "data"}) to a file; flush forces it to disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", buffering=1 << 16)
        self._lock = threading.RLock()

    def emit(self, kind: str, data: dict) -> None:
        line = json.dumps({"kind": kind, "data": data}, separators=(",", ":"), allow_nan=False)
        with self._lock:
            self._handle.write(line + "\n")

    def flush(self, timeout: float = 10.0) -> None:
        import os

        with self._lock:
            if not self._handle.closed:
                self._handle.flush()
                os.fsync(self._handle.fileno())

    def close(self, timeout: float = 10.0) -> None:
        self.flush()
        with self._lock:
            self._handle.close()


class RedisStreamSink(MetricSink):
    """XADD to one stream (``MAXLEN ~ maxlen``) from a writer thread, in pipelined batches.

    Events wait in memory while Redis is unreachable (up to ``max_pending``; the oldest are dropped past
    that, with a warning) and are retried with a growing pause, so an outage never stops training: while the
    last write failed, ``flush`` returns at once instead of waiting its timeout (at each epoch's end), and only
    ``close`` waits for Redis to come back, up to its timeout.
    """

    def __init__(self, url: str, stream: str, *, maxlen: int = 200_000, client=None, batch: int = 500,
                 max_pending: int = 500_000):
        if client is None:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self.batch = batch
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: collections.deque = collections.deque()
        self._in_flight = 0
        self._closing = False
        self._failing = False  # the last write failed: Redis is away
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._write_loop, name="redis-stream-sink", daemon=True)
        self._thread.start()

    def emit(self, kind: str, data: dict) -> None:
        entry = {"kind": kind, "data": encode(data)}
        with self._condition:
            if len(self._pending) >= self.max_pending:
                self._pending.popleft()
                self.dropped += 1
            self._pending.append(entry)
            self._condition.notify_all()

    def _take(self) -> list[dict] | None:
        with self._condition:
            while not self._pending and not self._closing:
                self._condition.wait()
            if not self._pending:
                return None
            count = min(self.batch, len(self._pending))
            entries = [self._pending.popleft() for _ in range(count)]
            self._in_flight = count
            return entries

    def _write_loop(self) -> None:
        pause = 0.2
        while True:
            entries = self._take()
            if entries is None:
                return
            try:
                pipeline = self.client.pipeline(transaction=False)
                for entry in entries:
                    pipeline.xadd(self.stream, entry, maxlen=self.maxlen, approximate=True)
                pipeline.execute()
                pause = 0.2
                with self._condition:
                    self._in_flight = 0
                    self._failing = False
                    self._condition.notify_all()
            except Exception as error:  # redis errors, connection loss: keep the events, retry
                with self._condition:
                    self._pending.extendleft(reversed(entries))
                    self._in_flight = 0
                    self._failing = True
                    self._condition.notify_all()
                    closing = self._closing
                logger.warning("metric stream %s: %s; retrying in %.1f s", self.stream, error, pause)
                if closing:
                    return
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def flush(self, timeout: float = 10.0) -> None:
        self._drain(timeout, while_failing=False)

    def _drain(self, timeout: float, *, while_failing: bool) -> None:
        deadline = time.monotonic() + timeout
        with self._condition:
            while (self._pending or self._in_flight) and self._thread.is_alive():
                if self._failing and not while_failing:
                    return  # Redis is away: the events wait in memory, training goes on
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning("metric stream %s: %d events not written after %.0f s", self.stream,
                                   len(self._pending) + self._in_flight, timeout)
                    return
                self._condition.wait(min(left, 0.1))

    def close(self, timeout: float = 10.0) -> None:
        self._drain(timeout, while_failing=True)
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._thread.join(timeout=1.0)
        if self.dropped:
            logger.warning("metric stream %s: %d events dropped while Redis was unreachable", self.stream,
                           self.dropped)


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class EventWriter:
    """Builds the engine's events on a sink and keeps each metric's last value for the summary."""

    def __init__(self, sink: MetricSink):
        self.sink = sink
        self.last_values: dict[str, float] = {}
        self.last_step = 0

    def metrics(self, *, step: int, epoch: int, values: dict) -> None:
        """Non-finite values are left out (JSON has no NaN); the status event says when a loss diverged."""
        clean = {name: number for name, value in values.items() if (number := _finite(value)) is not None}
        if not clean:
            return
        self.last_values.update(clean)
        self.last_step = max(self.last_step, step)
        self.sink.emit("metrics", {"step": step, "epoch": epoch, "time": time.time(), "values": clean})

    def log(self, level: str, message: str) -> None:
        self.sink.emit("log", {"time": time.time(), "level": level, "message": message})

    def status(self, state: str, message: str = "", **extra) -> None:
        self.sink.emit("status", {"time": time.time(), "state": state, "message": message, **extra})

    def progress(self, *, step: int, total_steps: int, epoch: int, epochs: int) -> None:
        self.sink.emit("progress", {"step": step, "total_steps": total_steps, "epoch": epoch, "epochs": epochs,
                                    "time": time.time()})

    def checkpoint(self, *, epoch: int, step: int, path: str, best: bool) -> None:
        self.sink.emit("checkpoint", {"epoch": epoch, "step": step, "path": path, "best": best,
                                      "time": time.time()})

    def confusion_matrix(self, *, step: int, split: str, labels: list[str], matrix: list[list[int]]) -> None:
        self.sink.emit("confusion_matrix", {"step": step, "split": split, "labels": labels, "matrix": matrix,
                                            "time": time.time()})

    def summary(self, *, step: int, state: str) -> None:
        self.sink.emit("summary", {"step": step, "state": state, "time": time.time(),
                                   "values": dict(sorted(self.last_values.items()))})

    def flush(self, timeout: float = 10.0) -> None:
        self.sink.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.sink.close(timeout)


class EventLogHandler(logging.Handler):
    """Forwards the engine's log records (INFO and up) as `log` events; the sinks' own records stay local."""

    def __init__(self, events: EventWriter, level: int = logging.INFO):
        super().__init__(level)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == logger.name:
            return
        try:
            self.events.log(record.levelname.lower(), record.getMessage())
        except Exception:  # a log line must never break training
            self.handleError(record)


def build_sink(*, redis_url: str | None, stream: str | None, maxlen: int, jsonl: str | None) -> MetricSink:
    """The sink a MetricsSpec asks for: a group of the configured sinks, or the no-op base."""
    sinks: list[MetricSink] = []
    if redis_url and stream:
        sinks.append(RedisStreamSink(redis_url, stream, maxlen=maxlen))
    if jsonl:
        sinks.append(JsonlSink(jsonl))
    if not sinks:
        return MetricSink()
    return sinks[0] if len(sinks) == 1 else SinkGroup(sinks)
