"""Launch to first metric through the product vs by hand (issue 4), side by side in one run.

    .venv/bin/python benchmarks/bench_launch_api.py [--launches 10]

Starts the embedded stack (`manage.py up`: SQLite, the bundled Redis, one Celery worker), then
alternates two ways of starting the same engine spec (digits, small CNN, SGD, batch 32):
- by hand: `torchrun --standalone -m trainer_app.engine SPEC` (benchmarks/bench_engine_launch.py);
- the product: `POST /api/runs/` → Celery → the supervising task → torchrun → the engine,
timed from the API call to the first `metrics` entry read back from the run's Redis Stream, with its
parts: queue and claim (call → the supervisor's claim), torchrun start, imports, data load, model and
first step. Each run is cancelled once its first point arrives. Prints a table and a SUMMARY line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import redis  # noqa: E402
import requests  # noqa: E402
from bench_engine_launch import launch_once  # noqa: E402

from tests.stack import EmbeddedStack  # noqa: E402

PARTS = ("queue_and_claim", "torchrun_start", "imports", "data_load", "model_and_first_step")
TRAINING = {"optimizer": "sgd", "lr": 0.05, "batch_size": 32, "epochs": 50}


def api_launch(session: requests.Session, stack: EmbeddedStack, client: redis.Redis, ids: dict) -> dict:
    called = time.time()
    response = session.post(f"{stack.url}/api/runs/", json={"project": ids["project"], "dataset": ids["digits"],
                                                             "model": ids["design"], "config": TRAINING,
                                                             "queue": "cpu"}, timeout=30)
    response.raise_for_status()
    run_id = response.json()["id"]
    stream, last_id, startup, first = f"trainyard:run:{run_id}:events", "0-0", None, None
    while first is None:
        if time.time() - called > 180:
            raise RuntimeError(f"run {run_id}: no metric within 180 s")
        for _, entries in client.xread({stream: last_id}, block=200) or []:
            for entry_id, fields in entries:
                last_id = entry_id
                data = json.loads(fields[b"data"])
                kind = fields[b"kind"].decode()
                if kind == "status" and data.get("state") == "running":
                    startup = data["startup"]
                if kind == "metrics" and first is None:
                    first = (data, time.time())
    run = session.get(f"{stack.url}/api/runs/{run_id}/", timeout=30).json()
    session.post(f"{stack.url}/api/runs/{run_id}/cancel/", timeout=30)
    while session.get(f"{stack.url}/api/runs/{run_id}/", timeout=30).json()["status"] not in (
            "cancelled", "succeeded", "failed"):
        time.sleep(0.5)
    claimed = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")).timestamp()
    point, received = first
    return {"total": received - called, "queue_and_claim": claimed - called,
            "torchrun_start": startup["process_start"] - claimed,
            "imports": startup["imports_done"] - startup["process_start"],
            "data_load": startup["data_loaded"] - startup["imports_done"],
            "model_and_first_step": point["time"] - startup["data_loaded"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launches", type=int, default=10)
    arguments = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-launch-api-"))
    stack = EmbeddedStack(scratch / "var", TRAINYARD_ADMIN_PASSWORD="bench-admin-pass-1").start()
    try:
        session = requests.Session()
        token = session.post(f"{stack.url}/api/auth/token/", json={"username": "admin",
                                                                   "password": "bench-admin-pass-1"}).json()["token"]
        session.headers["Authorization"] = f"Token {token}"
        project = session.get(f"{stack.url}/api/projects/").json()[0]["id"]
        digits = next(d for d in session.get(f"{stack.url}/api/datasets/").json() if d["name"] == "digits")
        design = session.post(f"{stack.url}/api/models/", json={"project": project, "name": "bench-cnn",
                                                                "spec": {"preset": "small_cnn"}}).json()["id"]
        ids = {"project": project, "digits": digits["id"], "design": design}
        redis_url = json.loads((scratch / "var" / "run" / "embedded.json").read_text())["redis_url"]
        client = redis.Redis.from_url(redis_url)
        dataset_dir = scratch / "var" / "media" / "datasets" / str(digits["id"])
        by_hand, product = [], []
        print(f"{arguments.launches} launches each, alternating; digits + small_cnn, 1 process")
        for number in range(arguments.launches):
            by_hand.append(launch_once(client, redis_url, dataset_dir, scratch, processes=1, number=number))
            product.append(api_launch(session, stack, client, ids))
            print(f"{number + 1:>3}: by hand {by_hand[-1]['total']:.2f} s, through the API "
                  f"{product[-1]['total']:.2f} s (queue+claim {product[-1]['queue_and_claim']:.3f} s)", flush=True)
    finally:
        stack.stop()
    hand = statistics.median(row["total"] for row in by_hand)
    api = statistics.median(row["total"] for row in product)
    parts = {part: statistics.median(row[part] for row in product) for part in PARTS}
    print("median parts through the API: " + ", ".join(f"{part} {value:.3f} s" for part, value in parts.items()))
    hand_parts = {part: statistics.median(row[part] for row in by_hand)
                  for part in ("torchrun_start", "imports", "data_load", "model_and_first_step", "stream")}
    print("median parts by hand:         " + ", ".join(f"{part} {value:.3f} s" for part, value in hand_parts.items()))
    print(f"SUMMARY launch_api: by hand {hand:.2f} s, through the API {api:.2f} s, overhead {api - hand:+.2f} s "
          f"(target ≤ +1.00 s) {'PASS' if api - hand <= 1.0 else 'MISS'}")


if __name__ == "__main__":
    main()
