"""Drive `python manage.py up` as a user would: start it, read its banner, stop it with Ctrl-C."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from config.embedded import free_port

REPO = Path(__file__).resolve().parent.parent
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "KG_URL", "TRAINYARD_ADMIN_PASSWORD", "TRAINYARD_PORT",
                     "TRAINYARD_TEST_FALKORDB_PORT")


class EmbeddedStack:
    """One `manage.py up` on embedded defaults in its own var/ directory and port."""

    def __init__(self, var_dir: Path, *, port: int | None = None, **environment: str):
        self.var_dir = var_dir
        self.port = port or free_port()
        self.env = {key: value for key, value in os.environ.items() if key not in SERVICE_VARIABLES}
        self.env.update({"TRAINYARD_VAR_DIR": str(var_dir), "TRAINYARD_PORT": str(self.port)}, **environment)
        self.lines: list[str] = []
        self.stderr = ""
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180) -> "EmbeddedStack":
        self.started_at = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "manage.py", "up"], cwd=REPO, env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def read_stdout():
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("Press Ctrl-C"):
                    ready.set()
            ready.set()

        threading.Thread(target=read_stdout, daemon=True).start()
        came_up = ready.wait(timeout_s) and any(line.startswith("Press Ctrl-C") for line in self.lines)
        if not came_up or self.process.poll() is not None:
            self.stop()
            raise AssertionError(f"`manage.py up` did not come up: {self.output}")
        return self

    @property
    def output(self) -> str:
        return "\n".join(self.lines) + ("\nSTDERR: " + self.stderr if self.stderr else "")

    @property
    def password(self) -> str:
        match = re.search(r"Password\s+(\S+)", "\n".join(self.lines))
        assert match, self.output
        return match.group(1)

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, signum: int = signal.SIGINT, timeout_s: float = 60) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr and not self.process.stderr.closed:
            self.stderr = self.process.stderr.read()
            self.process.stderr.close()
        return self.process.returncode


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    living = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                living.append(process)
        except psutil.NoSuchProcess:
            pass
    return living
