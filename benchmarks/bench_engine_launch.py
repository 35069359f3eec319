"""Launch to first metric: the engine started by hand with torchrun, timed to its first point in Redis.

    python benchmarks/bench_engine_launch.py                 # 5 launches, 1 process, digits + small CNN
    python benchmarks/bench_engine_launch.py --launches 10 --processes 2
    python benchmarks/bench_engine_launch.py --launches 8 --compare-direct   # torchrun vs the engine alone, alternating

Each launch starts ``torchrun --standalone -m trainer_app.engine SPEC`` in its own session (as the
supervisor does), reads the run's Redis Stream with a blocking XREAD from the moment of launch, and
stops the run with SIGTERM once the first `metrics` event has arrived. The time to that event is split
with the marks the engine sends in its `status running` event:

    torchrun start   launch → the rank process exists (torchrun's own interpreter, torch import, rendezvous)
    imports          rank process start → the engine's modules (torch) imported
    data load        → spec read, process group joined, dataset opened and read
    model + step 1   → model, optimizer built; first optimizer step done and its point written
    stream           the point's own time → read back from Redis by this script

With ``--compare-direct`` (one process) launches alternate between torchrun and the engine started
directly (``python -m trainer_app.engine SPEC``, what the supervisor does for one process on one node:
torchrun's agent, which imports torch a first time, is then skipped), and both medians are printed side
by side. The web-side comparison (API call → first point, issue 4) adds the queue and the supervisor on top of
these figures. Prints a table, medians and a final SUMMARY line.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trainer_app.engine.testing import make_sklearn_dataset, make_spec, write_spec  # noqa: E402

PARTS = ("torchrun_start", "imports", "data_load", "model_and_first_step", "stream")


def launch_once(client: redis.Redis, redis_url: str, dataset: Path, scratch: Path, *, processes: int,
                number: int, direct: bool = False) -> dict:
    stream = f"trainyard:bench:{uuid.uuid4().hex}:events"
    spec = make_spec(run_id=f"launch-{number}", data=dataset, redis_url=redis_url, stream=stream,
                     training={"optimizer": "sgd", "lr": 0.05, "batch_size": 32, "epochs": 50})
    path = write_spec(scratch / f"launch-{number}.json", spec)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "trainer_app.engine", str(path)]
    if direct:
        command = [sys.executable, "-m", "trainer_app.engine", str(path)]
    launched = time.time()
    process = subprocess.Popen(command, cwd=REPO, env=environment, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last_id, startup, first = "0-0", None, None
    try:
        while first is None:
            if process.poll() is not None:
                raise RuntimeError(f"the engine exited with {process.returncode} before its first metric")
            if time.time() - launched > 120:
                raise RuntimeError("no metric within 120 s")
            for _, entries in client.xread({stream: last_id}, block=200) or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    data = json.loads(fields[b"data"])
                    kind = fields[b"kind"].decode()
                    if kind == "status" and data.get("state") == "running":
                        startup = data["startup"]
                    if kind == "metrics" and first is None:
                        first = (data, time.time())
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        client.delete(stream)
    point, received = first
    return {"total": received - launched,
            "torchrun_start": startup["process_start"] - launched,
            "imports": startup["imports_done"] - startup["process_start"],
            "data_load": startup["data_loaded"] - startup["imports_done"],
            "model_and_first_step": point["time"] - startup["data_loaded"],
            "stream": received - point["time"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--processes", type=int, default=1, help="processes per node")
    parser.add_argument("--compare-direct", action="store_true",
                        help="alternate torchrun and the engine started directly (one process)")
    parser.add_argument("--redis-url", default=os.environ.get("TRAINYARD_BENCH_REDIS_URL",
                                                              "redis://127.0.0.1:6379/12"))
    arguments = parser.parse_args()
    client = redis.Redis.from_url(arguments.redis_url)
    client.ping()
    scratch = Path(tempfile.mkdtemp(prefix="bench-engine-launch-"))
    dataset = scratch / "digits"
    make_sklearn_dataset("digits", dataset, sizes=(1280, 257, 260))
    print(f"{arguments.launches} launches, {arguments.processes} process(es), digits + small_cnn, "
          f"Redis {arguments.redis_url}")
    print(f"{'launch':>6} {'total':>7} " + " ".join(f"{part:>21}" for part in PARTS))
    modes = ("torchrun", "direct") if arguments.compare_direct else ("torchrun",)
    rows = {mode: [] for mode in modes}
    for number in range(arguments.launches * len(modes)):
        mode = modes[(number + number // len(modes)) % len(modes)]  # alternate, and alternate which goes first
        row = launch_once(client, arguments.redis_url, dataset, scratch, processes=arguments.processes,
                          number=number, direct=mode == "direct")
        rows[mode].append(row)
        print(f"{number + 1:>6} {row['total']:>7.2f} " + " ".join(f"{row[part]:>21.3f}" for part in PARTS)
              + (f"  {mode}" if len(modes) > 1 else ""), flush=True)
    medians = {}
    for mode in modes:
        medians[mode] = {name: statistics.median(row[name] for row in rows[mode]) for name in ("total",) + PARTS}
        print(f"{'median':>6} {medians[mode]['total']:>7.2f} "
              + " ".join(f"{medians[mode][part]:>21.3f}" for part in PARTS) + f"  {mode}")
    print("SUMMARY launch_to_first_metric_median={total:.2f}s torchrun_start={torchrun_start:.2f}s "
          "imports={imports:.2f}s data_load={data_load:.2f}s model_and_first_step={model_and_first_step:.2f}s "
          "stream={stream:.3f}s".format(**medians["torchrun"])
          + (" direct_median={:.2f}s saved={:.2f}s".format(
              medians["direct"]["total"], medians["torchrun"]["total"] - medians["direct"]["total"])
             if "direct" in medians else ""))

if __name__ == "__main__":
    main()
