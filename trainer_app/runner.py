"""The supervisor of one run: writes the engine's spec, starts the engine in its own process group (under
`torchrun` for several processes, directly for one), renews the run's lease, persists its events, relays a
cancel, stops a hung engine, and records the outcome.

It never trains: the engine does, in the ranks torchrun starts or in the one engine process (DESIGN.md). It
runs inside a Celery prefork task, which cannot fork torch workers itself, hence the subprocess.
"""
from __future__ import annotations

import collections
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

from trainer_app.models import Run, RunStatus
from trainer_app.progress_watch import ProgressWatch
from trainer_app.services import findings as finding_services
from trainer_app.services import metrics as metric_services
from trainer_app.services import runs as run_services
from trainer_app.specs import gate_directory, heartbeat_directory, run_directory, run_spec

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
LOG_TAIL_LINES = 40
POLL_SECONDS = 0.5
GATE_POLL_SECONDS = 0.05  # a trial waits for its pruner's decision after each epoch


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def torchrun_command(spec_path: Path, nproc_per_node: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
            "--nproc-per-node", str(nproc_per_node), "-m", "trainer_app.engine", str(spec_path)]


def engine_threads(nproc_per_node: int) -> int:
    """torch threads for each of a run's processes on this worker: TRAINYARD_ENGINE_CPU_THREADS where an admin
    set it (a worker running several jobs at once, or sharing its CPUs), else its CPUs shared among the run's
    processes. More threads than cores spin against each other and slow every run on the machine."""
    return settings.ENGINE_CPU_THREADS or max(1, (os.cpu_count() or 1) // max(1, nproc_per_node))


def engine_environment(nproc_per_node: int, cuda_visible_devices: str) -> dict:
    """The environment a run's engine starts with on this worker (one node of a gang too)."""
    return dict(os.environ, OMP_NUM_THREADS=str(engine_threads(nproc_per_node)), PYTHONUNBUFFERED="1",
                CUDA_VISIBLE_DEVICES=cuda_visible_devices)


def engine_command(spec_path: Path, nproc_per_node: int) -> list[str]:
    """How the engine starts: under torchrun for several processes; one process on one node runs the engine
    directly, which skips torchrun's agent and its own `import torch` (launch to first metric 7.7 s → 3.9 s
    here, benchmarks/bench_engine_launch.py --compare-direct). The engine is the same either way."""
    if nproc_per_node == 1:
        return [sys.executable, "-m", "trainer_app.engine", str(spec_path)]
    return torchrun_command(spec_path, nproc_per_node)


class RunSupervisor:
    def __init__(self, run_id: int, owner: str):
        self.run_id = run_id
        self.owner = owner
        self.log_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.process: subprocess.Popen | None = None
        self.terminated_at: float | None = None
        self.gate: Path | None = None  # a sweep trial's epoch gate: the supervisor asks the pruner
        self.judged: set[int] = set()
        self.watch: ProgressWatch | None = None  # the ranks' heartbeats: a hung engine is stopped and re-queued
        self.watched_at = 0.0
        self.broker_id: str | None = None  # the Redis server's run_id: another one means it restarted
        self.stream_in_doubt = False  # Redis restarted or was away: the stream may have lost events

    def execute(self) -> str:
        run = Run.objects.select_related("dataset", "design", "queue", "fine_tuned_from").get(id=self.run_id)
        directory = run_directory(run)
        directory.mkdir(parents=True, exist_ok=True)
        spec = run_spec(run)
        spec_path = directory / "spec.json"
        self.result_path = Path(spec["result_file"])
        self.result_path.unlink(missing_ok=True)  # a result left by an earlier delivery is not this one's
        self.events_path = Path(spec["metrics"]["jsonl"]) if spec["metrics"].get("jsonl") else None
        spec_path.write_text(json.dumps(spec, indent=2))
        if run.sweep_id:
            self.gate = gate_directory(run)
            self.gate.mkdir(parents=True, exist_ok=True)
        nproc = int(run.resources.get("nproc_per_node", 1))
        environment = engine_environment(nproc, run.resources.get("cuda_visible_devices", ""))
        log_path = directory / "engine.log"
        self.watch = ProgressWatch(heartbeat_directory(run), ranks=nproc, timeout_s=settings.RUN_HANG_TIMEOUT_SECONDS,
                                   startup_s=settings.RUN_HANG_STARTUP_SECONDS)
        self.watch.reset()
        self.process = subprocess.Popen(
            self._command(spec_path, nproc), cwd=str(settings.BASE_DIR), env=environment,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        self.watch.start()
        run_services.run_mark_running(run_id=self.run_id, owner=self.owner)
        reader = threading.Thread(target=self._read_output, args=(log_path,), daemon=True)
        reader.start()
        outcome = self._supervise()
        reader.join(timeout=10)
        return outcome

    def _command(self, spec_path: Path, nproc: int) -> list[str]:
        return engine_command(spec_path, nproc)

    def _beat(self, code: int | None) -> None:
        """Called at each lease renewal; a multi-node run's node 0 watches its peers here (trainer_app/gang.py)."""

    def _read_output(self, log_path: Path) -> None:
        with open(log_path, "ab") as log:
            for line in self.process.stdout:
                log.write(line)
                self.log_tail.append(line.decode(errors="replace").rstrip())

    def _supervise(self) -> str:
        last_beat = 0.0
        while True:
            code = self.process.poll()
            now = time.monotonic()
            if now - last_beat >= settings.RUN_HEARTBEAT_SECONDS or code is not None:
                last_beat = now
                close_old_connections()
                ours, cancel = run_services.run_heartbeat(run_id=self.run_id, owner=self.owner)
                self._persist()
                self._watch_broker()
                if not ours:
                    logger.warning("run %s: lease lost to another delivery; stopping this one", self.run_id)
                    self._stop(signal.SIGKILL)
                    return "lease-lost"
                if cancel and self.terminated_at is None and code is None:
                    logger.info("run %s: cancel requested; asking the engine to checkpoint and stop", self.run_id)
                    self._stop(signal.SIGTERM)
                self._beat(code)
            if (self.terminated_at is not None and code is None
                    and now - self.terminated_at > settings.RUN_CANCEL_GRACE_SECONDS):
                self._stop(signal.SIGKILL)
            if self.gate is not None and code is None:
                self._judge_epochs()
            if code is None and self.terminated_at is None:
                hung = self._hung(now)
                if hung:
                    return self._give_up_hung(hung)
            if code is not None:
                self._stop(signal.SIGKILL)  # leave no rank behind, whatever torchrun did
                self._persist()
                self._backfill()
                outcome = self._finish(code)
                self._expire_stream()
                return outcome
            time.sleep(GATE_POLL_SECONDS if self.gate is not None else POLL_SECONDS)

    def _judge_epochs(self) -> None:
        """Answer the engine's epoch gate: report the epoch to the sweep's study and ask its pruner. Any
        failure answers "continue": a broken judge must never hang or kill a trial."""
        from trainer_app.engine.gate import decision_path, request_path, write_json_atomically
        from trainer_app.services.sweeps import trial_judge

        for request in sorted(self.gate.glob("epoch-*.json")):
            epoch = int(request.stem.split("-", 1)[1])
            answer = decision_path(self.gate, epoch)
            if epoch in self.judged or answer.exists():
                continue
            try:
                values = json.loads(request_path(self.gate, epoch).read_text())["values"]
                close_old_connections()
                run = Run.objects.select_related("sweep").get(id=self.run_id)
                decision = trial_judge(run=run, epoch=epoch, values=values)
            except Exception as error:
                logger.exception("run %s: judging epoch %s failed; the trial goes on", self.run_id, epoch)
                decision = {"action": "continue", "reason": f"judge failed: {error}"}
            write_json_atomically(answer, decision)
            self.judged.add(epoch)

    def _hung(self, now: float) -> str | None:
        """Why the engine counts as hung (no rank made progress for RUN_HANG_TIMEOUT_SECONDS), or None;
        its heartbeat files are read about once a second."""
        if self.watch is None or now - self.watched_at < 1.0:
            return None
        self.watched_at = now
        return self.watch.hung(now)

    def _give_up_hung(self, reason: str) -> str:
        """Kill the hung engine (every process of it), then hand the run back: re-queued to resume from its last
        checkpoint, or failed after MAX_DELIVERIES attempts (trainer_app/services/runs.py)."""
        logger.error("run %s: %s; stopping it", self.run_id, reason)
        self._kill_engine()
        self._persist()
        self._backfill()
        status = run_services.run_give_up_attempt(run_id=self.run_id, owner=self.owner, reason=reason,
                                                  log_tail=list(self.log_tail))
        what = "re-queued to resume from its last checkpoint" if status == RunStatus.QUEUED else "failed"
        self._stream_log("error", f"{reason}: the engine was stopped and the run {what}")
        self._persist()
        if status == RunStatus.FAILED:
            self._expire_stream()
            if self.gate is not None:
                from trainer_app.services.sweeps import sweep_kick

                sweep_kick(sweep_id=Run.objects.values_list("sweep_id", flat=True).get(id=self.run_id))
        return f"hung, {status}" if status else "lease-lost"

    def _kill_engine(self) -> None:
        """SIGTERM to the engine's process group (torchrun's, or the one engine process's), SIGKILL after
        RUN_HANG_KILL_GRACE_SECONDS to it and to every rank (torchrun starts each rank in a session of its own;
        a stopped rank dies only of SIGKILL)."""
        import psutil

        try:
            ranks = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            ranks = []
        self._stop(signal.SIGTERM)
        deadline = time.monotonic() + settings.RUN_HANG_KILL_GRACE_SECONDS
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        self._stop(signal.SIGKILL)
        for process in ranks:
            try:
                process.kill()
            except psutil.Error:
                pass
        deadline = time.monotonic() + 10
        while any(_running(process) for process in ranks) and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logger.error("run %s: torchrun (pid %s) did not exit after SIGKILL", self.run_id, self.process.pid)

    def _watch_broker(self) -> None:
        """Note the Redis server's run_id at each beat: a new one means the server restarted, and the stream may
        have lost entries the persister had not read yet (a server without persistence loses all of them)."""
        from trainer_app.streams import redis_client

        try:
            server = redis_client().info("server").get("run_id")
        except Exception:  # noqa: BLE001 - away for now (the engine keeps its events): the next beat looks again
            self.stream_in_doubt = True
            return
        if self.broker_id is not None and server != self.broker_id:
            logger.warning("run %s: Redis restarted (server %s, now %s); its lost events will be restored from "
                           "rank 0's events file when the engine stops", self.run_id, self.broker_id, server)
            self.stream_in_doubt = True
        self.broker_id = server

    def _backfill(self) -> None:
        """After Redis restarted or was away during this attempt (down at its end, the engine's last events never
        reached the stream): SQL takes what rank 0's JSON-lines file holds and the stream lost."""
        if not self.stream_in_doubt or self.events_path is None:
            return
        try:
            added = metric_services.metrics_backfill(run_id=self.run_id, path=self.events_path)
        except Exception:  # noqa: BLE001 - the run's outcome matters more than a gap in its charts
            logger.exception("run %s: restoring events from %s failed", self.run_id, self.events_path)
            return
        logger.warning("run %s: %d metric points the stream lost restored from %s", self.run_id, added,
                       self.events_path)

    def _stream_log(self, level: str, message: str) -> None:
        """A line in the run's log, beside the engine's (the persister moves it to SQL)."""
        from trainer_app.engine.metrics import encode
        from trainer_app.streams import STREAM_MAXLEN, redis_client, run_stream_key

        try:
            redis_client().xadd(run_stream_key(self.run_id), {"kind": "log", "data": encode(
                {"time": time.time(), "level": level, "message": message})}, maxlen=STREAM_MAXLEN, approximate=True)
        except Exception:  # noqa: BLE001 - the run's error field says it too
            logger.warning("run %s: could not write to its event stream: %s", self.run_id, message)

    def _persist(self) -> None:
        try:
            persisted = metric_services.metrics_persist(run_id=self.run_id)
        except Exception:  # the stream is a cache of the run's progress: retry at the next beat
            logger.exception("run %s: persisting events failed; will retry", self.run_id)
            self.stream_in_doubt = True
            return
        if not persisted:
            return
        try:  # new numbers: check the run's health (overfitting, divergence…) on its per-epoch series
            finding_services.run_findings_update(run_id=self.run_id)
        except Exception:  # a broken check must never stop the supervision of a run
            logger.exception("run %s: checking the run's health failed", self.run_id)

    def _expire_stream(self) -> None:
        """SQL now holds everything: the stream stays a while for late viewers, then goes."""
        from trainer_app.streams import redis_client, run_stream_key

        try:
            redis_client().expire(run_stream_key(self.run_id), settings.RUN_STREAM_TTL_SECONDS)
        except Exception:
            logger.warning("run %s: could not set the stream's expiry", self.run_id)

    def _stop(self, signum: int) -> None:
        if signum == signal.SIGTERM:
            self.terminated_at = time.monotonic()
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self, code: int) -> str:
        """Map the engine's outcome to the run's status. torchrun folds every rank's non-zero code into
        its own 1, so rank 0's result file is read first; the exit code is the fallback."""
        from trainer_app.engine import exit_codes

        tail = list(self.log_tail)
        result = exit_codes.read_result(self.result_path) or {}
        engine_code = result.get("exit_code", code)
        message = str(result.get("message") or "")
        if engine_code == exit_codes.SUCCEEDED:
            # Rank 0 writes its result last, after every rank finished: a rank that crashes in its teardown
            # afterwards (seen here: gloo's SIGABRT at exit under load) makes torchrun exit 1, not the run fail.
            status, error = RunStatus.SUCCEEDED, ""
        elif engine_code == exit_codes.CANCELLED or (self.terminated_at is not None and not result):
            status, error = RunStatus.CANCELLED, ""
        elif engine_code == exit_codes.PRUNED:
            status, error = RunStatus.PRUNED, message
        elif engine_code == exit_codes.DIVERGED:
            status, error = RunStatus.FAILED, message or _last_matching(tail, "diverged") or "diverged"
        else:
            status = RunStatus.FAILED
            error = message or _engine_error(tail) or f"engine exited with code {code}"
        run_services.run_finish(run_id=self.run_id, owner=self.owner, status=status, error=error,
                                exit_code=engine_code, log_tail=tail if status == RunStatus.FAILED else [])
        if self.gate is not None:  # a trial ended: its sweep's controller records it and starts the next
            from trainer_app.services.sweeps import sweep_kick

            sweep_kick(sweep_id=Run.objects.values_list("sweep_id", flat=True).get(id=self.run_id))
        return status


def _running(process) -> bool:
    """Whether a process still runs (a zombie waiting for its new parent to reap it does not)."""
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _last_matching(lines: list[str], needle: str) -> str:
    for line in reversed(lines):
        if needle in line:
            return line.split("] ", 1)[-1].strip()
    return ""


def _engine_error(lines: list[str]) -> str:
    """The exception line of a traceback, else the last non-empty line."""
    for line in reversed(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith(("File ", "^", "[rank", "torch.distributed", "Traceback")) \
                and ("Error" in stripped or "Exception" in stripped):
            return stripped
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
