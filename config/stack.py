"""The process supervisor behind `make up` / `python manage.py up`.

It starts the embedded stack (bundled Redis+FalkorDB unless REDIS_URL/KG_URL say otherwise, one
Celery worker, beat, the ASGI web server), prints where to log in, and on Ctrl-C or SIGTERM stops
every process it started. Children run in their own process groups, so a stop reaches their
children too (the worker's pool), and each child gets a parent-death signal, so even a SIGKILL of
the supervisor leaves nothing running.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from config import embedded, env
from config.env import ConfigError, mask_url

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 15


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    critical: bool = True


@dataclass
class StackPlan:
    """What `up` will run, decided from the environment before anything starts."""

    var_dir: Path
    host: str
    port: int
    database_url: str | None
    redis_url: str | None  # None: start the bundled server
    kg_url: str | None  # None: use the bundled server's FalkorDB
    worker_queues: list[str]
    children: list[Child] = field(default_factory=list)

    @property
    def needs_bundled_server(self) -> bool:
        return self.redis_url is None or self.kg_url is None


def plan_from_environment() -> StackPlan:
    """Read and check every setting `up` needs; a bad one raises ConfigError with the fix."""
    var_dir = env.ensure_writable_dir(env.var_dir(), "Trainyard's data directory (TRAINYARD_VAR_DIR)")
    for sub in ("log", "run", "redis", "media", "static"):
        env.ensure_writable_dir(var_dir / sub, f"{sub} directory under {var_dir}")
    database_url = env.get("DATABASE_URL")
    env.database_config(database_url, var_dir)  # validates it
    graph = env.graph_url(env.get("KG_URL"))
    return StackPlan(
        var_dir=var_dir,
        host=env.get("TRAINYARD_HOST", "127.0.0.1"),
        port=env.get_int("TRAINYARD_PORT", 8000, minimum=1, maximum=65535),
        database_url=database_url,
        redis_url=env.redis_url(env.get("REDIS_URL")),
        kg_url=graph.url if graph else None,
        worker_queues=env.get_list("TRAINYARD_WORKER_QUEUES", ["default", "cpu"]),
    )


class Stack:
    def __init__(self, plan: StackPlan, *, out=sys.stdout, python: str = sys.executable):
        self.plan = plan
        self.out = out
        self.python = python
        self.manage = str(env.BASE_DIR / "manage.py")
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.child_env = dict(os.environ)

    # --- output --------------------------------------------------------------------------
    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    # --- start ---------------------------------------------------------------------------
    def start(self) -> None:
        plan = self.plan
        if not embedded.port_is_free(plan.host, plan.port):
            raise ConfigError(f"port {plan.port} on {plan.host} is already taken (another Trainyard?): "
                              f"stop what uses it or set TRAINYARD_PORT to a free port")
        if plan.needs_bundled_server:
            self._start_bundled_server()
        self.child_env.update({
            "REDIS_URL": plan.redis_url,
            "KG_URL": plan.kg_url,
            "TRAINYARD_VAR_DIR": str(plan.var_dir),
            "PYTHONUNBUFFERED": "1",
        })
        self._preflight()
        self._bootstrap()
        queues = ",".join(plan.worker_queues)
        self._spawn(Child("worker", [self.python, "-m", "celery", "-A", "config", "worker", "-Q", queues,
                                     "-n", "cpu@%h", "--pool", "prefork", "--concurrency", "2",
                                     "--without-gossip", "--without-mingle", "--loglevel", "INFO"]))
        # short control tasks (sweep controllers) on their own worker: training never starves them
        self._spawn(Child("control", [self.python, "-m", "celery", "-A", "config", "worker", "-Q", "control",
                                      "-n", "control@%h", "--pool", "prefork", "--concurrency", "1",
                                      "--without-gossip", "--without-mingle", "--loglevel", "INFO"]))
        self._spawn(Child("beat", [self.python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                                   "--schedule", str(plan.var_dir / "run" / "celerybeat-schedule")]))
        self._spawn(Child("web", [self.python, "-m", "uvicorn", "config.asgi:application", "--host", plan.host,
                                  "--port", str(plan.port), "--workers", "1", "--no-server-header",
                                  "--timeout-graceful-shutdown", "5"]))
        self._wait_for_web()

    def _start_bundled_server(self) -> None:
        plan = self.plan
        port = embedded.free_port()
        self.say(f"starting the bundled Redis + FalkorDB on 127.0.0.1:{port} (data in {plan.var_dir / 'redis'})")
        child = Child("redis", embedded.bundled_redis_command(
            port=port, data_dir=plan.var_dir / "redis", log_file=plan.var_dir / "log" / "redis.log"))
        self._spawn(child, capture=False)
        embedded.wait_for_redis(f"redis://127.0.0.1:{port}/0", timeout_s=20, process=child.process)
        bundled = f"redis://127.0.0.1:{port}/0"
        plan.redis_url = plan.redis_url or bundled
        plan.kg_url = plan.kg_url or f"falkordb://127.0.0.1:{port}"
        state = plan.var_dir / "run" / "embedded.json"
        state.write_text(json.dumps({"redis_url": plan.redis_url, "kg_url": plan.kg_url, "pid": os.getpid()}))

    def _preflight(self) -> None:
        """Each external service answers, or one line names it, the URL tried and the fix."""
        self._run_manage(["preflight"], "checking the database, broker and graph")

    def _bootstrap(self) -> None:
        self._run_manage(["migrate", "--noinput"], "migrating the database")
        self._run_manage(["collectstatic", "--noinput"], "collecting static files")
        result = self._run_manage(["seed", "--json"], "seeding the admin account and the demo project")
        self.credentials = json.loads(result.strip().splitlines()[-1])

    def _run_manage(self, arguments: list[str], what: str) -> str:
        self.say(f"… {what}")
        completed = subprocess.run([self.python, self.manage, *arguments], env=self.child_env,
                                   capture_output=True, text=True)
        if completed.returncode != 0:
            lines = [line for line in (completed.stderr or completed.stdout).strip().splitlines() if line.strip()]
            detail = lines[-1] if lines else f"exit code {completed.returncode}"
            raise ConfigError(detail.removeprefix("trainyard: ").removeprefix("CommandError: ") + f" (while {what})")
        return completed.stdout

    def _spawn(self, child: Child, *, capture: bool = True) -> None:
        child.log_path = self.plan.var_dir / "log" / f"{child.name}.log"
        log = open(child.log_path, "ab", buffering=0)  # noqa: SIM115 (kept open for the child's life)
        child.process = subprocess.Popen(
            child.command, env=self.child_env, cwd=str(env.BASE_DIR), stdin=subprocess.DEVNULL,
            stdout=log if capture else subprocess.DEVNULL, stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        log.close()
        self.children.append(child)

    def _wait_for_web(self, timeout_s: float = 90) -> None:
        url = f"http://{self.plan.host}:{self.plan.port}/login/"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_children()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise ConfigError(f"the web server did not answer on {url} within {timeout_s:.0f} s: see var/log/web.log")

    def _check_children(self) -> None:
        for child in self.children:
            if child.process and child.process.poll() is not None and child.critical:
                tail = _tail(child.log_path)
                raise ConfigError(f"{child.name} exited with code {child.process.returncode}"
                                  f"{': ' + tail if tail else ''} (full log: {child.log_path})")

    # --- report ---------------------------------------------------------------------------
    def banner(self) -> str:
        plan = self.plan
        host = "127.0.0.1" if plan.host in ("0.0.0.0", "::") else plan.host
        credentials = self.credentials
        if credentials.get("password"):
            password = f"{credentials['password']}  ({'from TRAINYARD_ADMIN_PASSWORD' if credentials['source'] == 'environment' else 'generated, kept in var/admin-password'})"
        else:
            password = "(changed since it was generated; set TRAINYARD_ADMIN_PASSWORD to reset it)"
        lines = [
            "",
            "Trainyard is running.",
            f"  Open      http://{host}:{plan.port}/",
            f"  User      {credentials['username']}",
            f"  Password  {password}",
            f"  Database  {mask_url(plan.database_url) if plan.database_url else 'SQLite ' + str(plan.var_dir / 'trainyard.sqlite3')}",
            f"  Broker    {mask_url(plan.redis_url)}",
            f"  Graph     {mask_url(plan.kg_url)}",
            f"  Logs      {plan.var_dir / 'log'}",
            "Press Ctrl-C to stop every process.",
        ]
        return "\n".join(lines)

    # --- supervise and stop ------------------------------------------------------------------
    def supervise(self) -> int:
        """Block until a stop signal (exit 0) or a child dies (exit 1)."""
        while not self.stopping.wait(0.5):
            try:
                self._check_children()
            except ConfigError as error:
                self.say(f"trainyard: {error}")
                return 1
        return 0

    def stop(self) -> None:
        """SIGTERM each child's process group, newest first (the servers last), then SIGKILL stragglers."""
        for child in reversed(self.children):
            _signal_group(child.process, signal.SIGTERM)
            if child.name == "web":
                _wait(child.process, 8)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in reversed(self.children):
            if not _wait(child.process, max(0.1, deadline - time.monotonic())):
                _signal_group(child.process, signal.SIGKILL)
                _wait(child.process, 5)
        for child in self.children:  # the process groups too: a pool process may outlive its parent
            _signal_group(child.process, signal.SIGKILL, only_if_alive=False)
        state = self.plan.var_dir / "run" / "embedded.json"
        try:
            if json.loads(state.read_text()).get("pid") == os.getpid():
                state.unlink()
        except (OSError, ValueError):
            pass


def _signal_group(process: subprocess.Popen | None, signum: int, *, only_if_alive: bool = True) -> None:
    if process is None or (only_if_alive and process.poll() is not None):
        return
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(process: subprocess.Popen | None, timeout_s: float) -> bool:
    if process is None:
        return True
    try:
        process.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        return False


def _tail(path: Path | None, lines: int = 3) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])
