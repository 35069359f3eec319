"""Kept-alive vs new connection (issue 5, target 4): a small GET answered on a reused connection must
not pay the ~40 ms delayed-ACK stall that `mlflow server` shows at its defaults (shared/peer-bench
RESULTS.md, finding A); the two must be within a few milliseconds of each other. Measured in the same
run on MLflow's server (default workers) for comparison.

    .venv/bin/python benchmarks/bench_keepalive.py            # 300 calls per figure
    .venv/bin/python benchmarks/bench_keepalive.py --quick    # 50 calls

Trainyard is served as `make up` serves it (uvicorn, one worker) against the benchmark PostgreSQL database;
the GET is GET /api/runs/{id}/ with a token (one run's JSON: authentication, a visibility query, DRF).
benchmarks/bench_stack_startup.py measures the same on the whole embedded stack (GET /api/health/).
Calls alternate between blocks of 10 kept-alive and 10 new-connection calls, so that both see the same
load; the last kept-alive response is also read segment by segment, to show whether its body waits for
an ACK.
"""
from __future__ import annotations

import argparse
import http.client
import re
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def alternate(port: int, path: str, headers: dict, calls: int) -> tuple[list[float], list[float]]:
    reused, fresh = [], []
    kept = http.client.HTTPConnection("127.0.0.1", port)
    for block in range(0, calls, 10):
        for keep_alive, out in ((True, reused), (False, fresh)):
            for _ in range(min(10, calls - block)):
                connection = kept if keep_alive else http.client.HTTPConnection("127.0.0.1", port)
                started = time.perf_counter()
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                out.append((time.perf_counter() - started) * 1000)
                assert response.status == 200, response.status
                if not keep_alive:
                    connection.close()
    kept.close()
    return reused, fresh


def session_calls(url: str, headers: dict, calls: int) -> list[float]:
    """Kept-alive through requests.Session, as Python SDKs (MlflowClient) call; peer-bench saw the stall there."""
    import requests

    session, samples = requests.Session(), []
    for _ in range(calls):
        started = time.perf_counter()
        response = session.get(url, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    session.close()
    return samples


def segments(port: int, path: str, headers: dict) -> list[tuple[float, int]]:
    """(ms since the request, bytes) of each recv of the second response on one kept-alive socket."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    extra = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode()
    seen = []
    for _ in range(2):
        sock.sendall(request)
        buffer, seen, started = b"", [], time.perf_counter()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
            seen.append((round((time.perf_counter() - started) * 1000, 1), len(chunk)))
            head, _, body = buffer.partition(b"\r\n\r\n")
            length = re.search(rb"content-length: *(\d+)", head.lower())
            if length and len(body) >= int(length.group(1)):
                break
    sock.close()
    return seen


def report(label: str, reused: list[float], fresh: list[float], session: list[float], segs, monitor) -> float:
    difference = harness.percentile(reused, 50) - harness.percentile(fresh, 50)
    print(f"{label}: kept-alive (http.client) {harness.describe(reused, digits=2)}; new connection "
          f"{harness.describe(fresh, digits=2)}; p50 difference {difference:+.2f} ms; kept-alive requests.Session "
          f"{harness.describe(session, digits=2)}; kept-alive response segments (ms, bytes) {segs}; foreign CPU "
          f"{monitor.foreign:.2f} cores", flush=True)
    return difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 calls per figure")
    parser.add_argument("--calls", type=int, help="calls per figure (default 300; quick 50)")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--database-url", help=f"default {harness.DEFAULT_DATABASE_URL}")
    args = parser.parse_args()
    calls = args.calls or (50 if args.quick else 300)
    env = harness.setup_django(args.database_url)
    print(f"machine: {harness.machine_line()}; {calls} calls per figure")
    fixtures = harness.bench_fixtures("keepalive")
    run = harness.new_run(fixtures, name="keepalive")
    headers = {"Authorization": f"Token {fixtures['token']}"}
    path = f"/api/runs/{run.pk}/"
    with harness.Uvicorn(env, log_name="uvicorn-keepalive") as server:
        alternate(server.port, path, headers, 20)  # warm-up
        harness.wait_quiet(2.0)
        with harness.LoadMonitor() as monitor:
            reused, fresh = alternate(server.port, path, headers, calls)
            session = session_calls(server.url + path, headers, calls)
        ours = report(f"Trainyard GET {path} (uvicorn)", reused, fresh, session,
                      segments(server.port, path, headers), monitor)
    theirs = None
    if not args.no_mlflow and harness.mlflow_available():
        with harness.MlflowServer("sqlite", "keepalive") as server:
            alternate(server.port, "/health", {}, 20)
            harness.wait_quiet(2.0)
            with harness.LoadMonitor() as monitor:
                reused_m, fresh_m = alternate(server.port, "/health", {}, calls)
                session_m = session_calls(server.url + "/health", {}, calls)
            theirs = report("MLflow GET /health (mlflow server, default workers)", reused_m, fresh_m, session_m,
                            segments(server.port, "/health", {}), monitor)
            theirs = (theirs, harness.percentile(session_m, 50) - harness.percentile(fresh_m, 50))
    session_difference = harness.percentile(session, 50) - harness.percentile(fresh, 50)
    mlflow_part = (f"MLflow server kept-alive minus new {theirs[0]:+.1f} ms (requests.Session {theirs[1]:+.1f} ms)"
                   if theirs is not None else "MLflow not measured")
    print(f"SUMMARY keepalive: Trainyard kept-alive p50 {harness.percentile(reused, 50):.2f} ms vs new connection "
          f"{harness.percentile(fresh, 50):.2f} ms, difference {ours:+.2f} ms (requests.Session "
          f"{session_difference:+.2f} ms; target: kept-alive no more than 3 ms slower, i.e. no stall: "
          f"{harness.verdict(ours <= 3 and session_difference <= 3)}); {mlflow_part}")


if __name__ == "__main__":
    main()
