"""How long `manage.py up` takes to serve the login page and to be fully healthy, and whether a
kept-alive connection pays the ~40 ms delayed-ACK stall (finding A in shared/peer-bench/RESULTS.md).

    .venv/bin/python benchmarks/bench_stack_startup.py [--reps 3] [--calls 200]

Starts the embedded stack in a temporary var/ each repetition (a fresh start: migrations included).
"""
from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from tests.stack import EmbeddedStack  # noqa: E402


def time_to_healthy(stack: EmbeddedStack, started: float) -> float:
    token = requests.post(f"{stack.url}/api/auth/token/", json={"username": "admin", "password": stack.password},
                          timeout=10).json()["token"]
    while True:
        response = requests.get(f"{stack.url}/api/health/", headers={"Authorization": f"Token {token}"}, timeout=10)
        if response.status_code == 200:
            return time.monotonic() - started
        time.sleep(0.2)


def latency_ms(port: int, calls: int, keep_alive: bool) -> tuple[float, float]:
    samples = []
    connection = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(calls):
        if not keep_alive:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port)
        started = time.perf_counter()
        connection.request("GET", "/api/health/")
        response = connection.getresponse()
        response.read()
        samples.append((time.perf_counter() - started) * 1000)
    connection.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    arguments = parser.parse_args()
    banners, healthy, reused, fresh = [], [], [], []
    for rep in range(arguments.reps):
        with tempfile.TemporaryDirectory() as directory:
            started = time.monotonic()
            stack = EmbeddedStack(Path(directory) / "var").start()
            try:
                banners.append(time.monotonic() - started)
                healthy.append(time_to_healthy(stack, started))
                reused.append(latency_ms(stack.port, arguments.calls, keep_alive=True))
                fresh.append(latency_ms(stack.port, arguments.calls, keep_alive=False))
            finally:
                stack.stop()
        print(f"rep {rep + 1}: login page served {banners[-1]:.1f} s, all healthy {healthy[-1]:.1f} s, "
              f"GET /api/health/ p50 kept-alive {reused[-1][0]:.2f} ms vs new connection {fresh[-1][0]:.2f} ms")
    p50_reused = statistics.median(r[0] for r in reused)
    p50_fresh = statistics.median(f[0] for f in fresh)
    print(f"SUMMARY stack_startup: login page {statistics.median(banners):.1f} s, all healthy "
          f"{statistics.median(healthy):.1f} s (budget 180 s); GET p50 kept-alive {p50_reused:.2f} ms, "
          f"new connection {p50_fresh:.2f} ms, difference {p50_reused - p50_fresh:+.2f} ms")


if __name__ == "__main__":
    main()
