"""Shared helpers for the issue-5 benchmarks: environment and database set-up, foreign CPU load,
percentiles, a uvicorn server and an `mlflow server` started as subprocesses, and the fixture rows
(user, token, project, dataset, design, queue, run) the benchmarks need.

The foreign-load accounting follows shared/peer-bench/common.py: during each repetition we count the
CPU used by every process on the machine, subtract our own process tree (this script, the uvicorn and
mlflow servers it started) and the PostgreSQL backends connected to our own databases, and report the
rest as "foreign" cores (out of the machine's 2). The shared redis-server and PostgreSQL's background
writers work partly for us and partly for other jobs; they are reported on their own as "services".
Servers we start are stopped by their own process group, never by name.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432"
DEFAULT_DATABASE_URL = f"{PG_ADMIN_URL}/trainyard_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
LIVE_PROCESSES: set = set()

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def _stop_all_and_exit(*_):
    for process in list(LIVE_PROCESSES):
        stop_process(process, timeout=5)
    sys.exit(143)


signal.signal(signal.SIGTERM, _stop_all_and_exit)


# ----------------------------------------------------------------------------- environment
def database_url_for(backend: str, name: str) -> str:
    """`postgres` -> our own PostgreSQL database; `sqlite` -> a file under the scratch folder."""
    if backend == "postgres":
        return f"{PG_ADMIN_URL}/{name}"
    return f"sqlite:///{scratch_dir() / (name + '.sqlite3')}"


def scratch_dir() -> Path:
    directory = Path(os.environ.get("TRAINYARD_BENCH_DIR", Path(tempfile.gettempdir()) / "trainyard-bench"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-tAqc", sql],
                          check=True, capture_output=True, text=True, timeout=120).stdout.strip()


def ensure_pg_database(name: str, *, fresh: bool = False) -> None:
    if fresh:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if not psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        psql(f'CREATE DATABASE "{name}"')


def setup_django(database_url: str | None = None, *, migrate: bool = True) -> dict:
    """Point Django at the benchmark database and Redis, set it up and migrate. Returns the
    environment that child processes (uvicorn) need to see the same services."""
    database_url = database_url or os.environ.get("TRAINYARD_BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    os.environ.setdefault("TRAINYARD_VAR_DIR", str(scratch_dir() / "var"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # a migration edited in place or removed (not a new one) leaves an old schema behind: start afresh
    fingerprint = migrations_fingerprint()
    marker = scratch_dir() / (database_url.rsplit("/", 1)[1] + ".migrations")
    try:
        applied = json.loads(marker.read_text())
    except (OSError, ValueError):
        applied = None
    stale = migrate and (applied is None or any(fingerprint.get(name) != digest for name, digest in applied.items()))
    if database_url.startswith("postgres"):
        ensure_pg_database(database_url.rsplit("/", 1)[1], fresh=stale)
        LoadMonitor.own_databases.add(database_url.rsplit("/", 1)[1])
    else:
        path = Path(database_url.split("sqlite://", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        if stale:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        marker.write_text(json.dumps(fingerprint))
    return {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}


def migrations_fingerprint() -> dict[str, str]:
    import hashlib

    return {str(path.relative_to(REPO)): hashlib.sha1(path.read_bytes()).hexdigest()
            for path in sorted(REPO.glob("*/migrations/*.py"))}


def is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


# ----------------------------------------------------------------------------- statistics
def percentile(values, p: float) -> float:
    """Percentile with linear interpolation between closest ranks (as peer-bench/common.py)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100.0
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def describe(values, unit: str = "ms", digits: int = 1) -> str:
    if not values:
        return "n/a"
    return (f"p50 {percentile(values, 50):.{digits}f} {unit}, p95 {percentile(values, 95):.{digits}f} {unit}, "
            f"max {max(values):.{digits}f} {unit} (n={len(values)})")


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def timed_ms(function, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


# ----------------------------------------------------------------------------- foreign CPU load
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, utime+stime+cutime+cstime jiffies, command name) for every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                data = handle.read()
        except OSError:
            continue
        command = data[data.find("(") + 1:data.rfind(")")]
        rest = data[data.rfind(")") + 2:].split()
        table[int(name)] = (int(rest[1]), sum(int(rest[i]) for i in (11, 12, 13, 14)), command)
    return table


def _machine_busy_jiffies() -> int:
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]


class LoadMonitor:
    """Context manager: `.foreign` = average cores used by other people's processes, `.own` by ours,
    `.services` by the shared redis-server and PostgreSQL's background processes (ours and theirs)."""

    own_databases: ClassVar[set[str]] = set()

    def __enter__(self):
        self._started = time.monotonic()
        self._busy = _machine_busy_jiffies()
        self._table = _process_table()
        return self

    def __exit__(self, *exc):
        elapsed = time.monotonic() - self._started
        busy = _machine_busy_jiffies() - self._busy
        table = _process_table()
        own_pids, service_pids = self._classify(table)

        def used(pids):
            total = 0
            for pid in pids:
                before = self._table.get(pid)
                total += table[pid][1] - (before[1] if before and before[0] == table[pid][0] else 0)
            return total

        scale = _CLOCK_TICKS * elapsed if elapsed > 0 else 1
        self.total = busy / scale
        self.own = used(own_pids) / scale
        self.services = used(service_pids) / scale
        self.foreign = max(0.0, self.total - self.own - self.services)
        return False

    def _classify(self, table) -> tuple[set[int], set[int]]:
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        own, stack = set(), [os.getpid()]
        while stack:
            pid = stack.pop()
            if pid in own or pid not in table:
                continue
            own.add(pid)
            stack.extend(children.get(pid, ()))
        our_backends, pg_background = _postgres_pids()
        own |= our_backends & table.keys()
        services = {pid for pid, (_, _, command) in table.items() if command.startswith("redis-server")}
        services |= pg_background & table.keys()
        return own, services - own


def _postgres_pids() -> tuple[set[int], set[int]]:
    """(backends connected to our databases, PostgreSQL background processes)."""
    try:
        rows = psql("SELECT pid, coalesce(datname, ''), backend_type FROM pg_stat_activity").splitlines()
    except Exception:
        return set(), set()
    ours, background = set(), set()
    for row in rows:
        pid, database, kind = row.split("|")
        if kind != "client backend":
            background.add(int(pid))
        elif database in LoadMonitor.own_databases:
            ours.add(int(pid))
    return ours, background


def wait_quiet(max_wait_s: float = 3.0, threshold: float = 0.3) -> float:
    """Wait (bounded) until other people's processes use less than `threshold` cores over 0.5 s."""
    deadline = time.monotonic() + max_wait_s
    while True:
        with LoadMonitor() as monitor:
            time.sleep(0.5)
        if monitor.foreign < threshold or time.monotonic() >= deadline:
            return monitor.foreign


def load_note(monitors) -> str:
    foreign = [round(m.foreign, 2) for m in monitors]
    services = [round(m.services, 2) for m in monitors]
    return f"foreign CPU (cores of 2) {foreign}; redis+postgres services {services}"


# ----------------------------------------------------------------------------- subprocesses
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process group of a process we started with start_new_session=True, then SIGKILL."""
    LIVE_PROCESSES.discard(process)
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def spawn(command: list[str], *, env: dict | None = None, log_name: str) -> subprocess.Popen:
    log = open(scratch_dir() / f"{log_name}.log", "w")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    LIVE_PROCESSES.add(process)
    return process


def wait_http(url: str, process: subprocess.Popen, timeout_s: float, log_name: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{log_name} exited with {process.returncode}; see {scratch_dir() / log_name}.log")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered (401/403 is fine: the server is up)
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s; see {scratch_dir() / log_name}.log")


class Uvicorn:
    """The ASGI app served as `make up` serves it (config/stack.py): uvicorn, one worker process."""

    def __init__(self, env: dict, *, log_name: str = "uvicorn"):
        self.env, self.log_name = env, log_name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.process = spawn([PYTHON, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                              "--port", str(self.port), "--workers", "1", "--no-server-header",
                              "--timeout-graceful-shutdown", "2", "--log-level", "warning"],
                             env=self.env, log_name=self.log_name)
        wait_http(self.url + "/api/projects/", self.process, 60, self.log_name)
        return self

    def __exit__(self, *exc):
        stop_process(self.process)
        return False


class MlflowServer:
    """`mlflow server` on 127.0.0.1 with MLflow's default workers (4, uvicorn), as peer-bench starts it,
    on a fresh store: a SQLite file or our own PostgreSQL database."""

    def __init__(self, backend: str, tag: str, *, workers: int | None = None, fresh: bool = True):
        self.backend, self.tag, self.workers, self.fresh = backend, tag, workers, fresh
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store_uri = mlflow_store_uri(backend, tag, fresh=fresh)

    def __enter__(self):
        artifacts = scratch_dir() / f"mlflow-artifacts-{self.tag}"
        artifacts.mkdir(exist_ok=True)
        command = [str(Path(PYTHON).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--backend-store-uri", self.store_uri, "--default-artifact-root", str(artifacts)]
        if self.workers:
            command += ["--workers", str(self.workers)]
        started = time.monotonic()
        env = {key: value for key, value in os.environ.items() if key not in ("DJANGO_SETTINGS_MODULE",)}
        self.process = spawn(command, env=env, log_name=f"mlflow-{self.backend}-{self.tag}")
        wait_http(self.url + "/health", self.process, 180, f"mlflow-{self.backend}-{self.tag}")
        self.startup_s = time.monotonic() - started
        return self

    def __exit__(self, *exc):
        stop_process(self.process)
        return False


def mlflow_store_uri(backend: str, tag: str, *, fresh: bool) -> str:
    if backend == "postgres":
        name = f"mlflow_bench_{tag}"
        ensure_pg_database(name, fresh=fresh)
        LoadMonitor.own_databases.add(name)
        # the driver peer-bench measured MLflow with, when it is installed
        driver = "psycopg2" if importlib.util.find_spec("psycopg2") else "psycopg"
        return f"postgresql+{driver}://postgres@127.0.0.1:5432/{name}"
    path = scratch_dir() / f"mlflow_{tag}.db"
    if fresh:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def mlflow_available() -> bool:
    return importlib.util.find_spec("mlflow") is not None


# ----------------------------------------------------------------------------- fixture rows
def bench_fixtures(tag: str) -> dict:
    """A user with an API token, a project they belong to, a dataset, a model design and a queue."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from trainer_app.models import (
        Dataset,
        DatasetStatus,
        Membership,
        ModelDesign,
        Project,
        Queue,
        Role,
    )

    user, _ = get_user_model().objects.get_or_create(username="bench")
    token, _ = Token.objects.get_or_create(user=user)
    project, _ = Project.objects.get_or_create(name=f"bench-{tag}")
    Membership.objects.get_or_create(project=project, user=user, defaults={"role": Role.LEAD})
    dataset, _ = Dataset.objects.get_or_create(project=project, name=f"bench-{tag}", defaults=dict(
        status=DatasetStatus.READY, task="classification", input_shape=[32], num_classes=10))
    design, _ = ModelDesign.objects.get_or_create(project=project, name=f"bench-{tag}",
                                                  defaults={"spec": {"preset": "mlp"}})
    queue, _ = Queue.objects.get_or_create(name="cpu")
    return {"user": user, "token": token.key, "project": project, "dataset": dataset, "design": design,
            "queue": queue}


def new_run(fixtures: dict, **fields):
    from trainer_app.models import Run, RunStatus

    values = {"project": fixtures["project"], "dataset": fixtures["dataset"], "design": fixtures["design"],
              "queue": fixtures["queue"], "created_by": fixtures["user"], "status": RunStatus.RUNNING}
    return Run.objects.create(**{**values, **fields})


def machine_line() -> str:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}"
