"""The engine as the supervisor runs it: `python -m trainer_app.engine SPEC` under torchrun, in its own
process group, on the CPU (gloo). Accuracy, DDP equivalence, SIGKILL and resume, SIGTERM and cancel."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import redis
import torch
from safetensors.torch import load_file

from trainer_app.engine import exit_codes
from trainer_app.engine.distributed import StopRequest
from trainer_app.engine.models import build_model
from trainer_app.engine.rng import seed_everything
from trainer_app.engine.runner import run
from trainer_app.engine.testing import make_sklearn_dataset, make_spec, read_events, write_spec

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/10"
RECIPE = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 32, "epochs": 20,
          "schedule": {"type": "cosine"}, "seed": 0, "deterministic": True}


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("digits")
    make_sklearn_dataset("digits", directory, sizes=(1280, 257, 260))
    return directory


def launch(directory: Path, spec: dict, *, processes: int = 1) -> subprocess.Popen:
    """torchrun in its own session, as the Celery supervisor starts it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = write_spec(directory / "spec.json", spec)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             f"--nproc-per-node={processes}", "-m", "trainer_app.engine", str(path)],
                            cwd=REPO, env=environment, start_new_session=True, stdout=open(directory / "output.log", "w"),
                            stderr=subprocess.STDOUT)


def spec_for(directory: Path, digits: Path, **training) -> dict:
    return make_spec(run_id=directory.name, data=digits, checkpoint_dir=directory / "checkpoints",
                     jsonl=directory / "events.jsonl", training={**RECIPE, **training})


def finish(process: subprocess.Popen, directory: Path, timeout: float = 240) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"torchrun did not finish:\n{(directory / 'output.log').read_text()[-3000:]}")


def result_of(directory: Path) -> dict:
    result = exit_codes.read_result(directory / "checkpoints" / "result.json")
    assert result is not None, (directory / "output.log").read_text()[-3000:]
    return result


def final_weights(directory: Path) -> dict[str, torch.Tensor]:
    latest = sorted((directory / "checkpoints").glob("step-*"))[-1]
    return load_file(latest / "model.safetensors")


def wait_for_checkpoint(directory: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list((directory / "checkpoints").glob("step-*")):
        assert process.poll() is None, (directory / "output.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.01)


def engine_processes(process: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(process.pid).children(recursive=True)


def assert_all_gone(processes: list[psutil.Process], timeout: float = 10) -> None:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"left behind: {[process.pid for process in alive]}"


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, digits):
    """The reference run: one process under torchrun, events to a Redis Stream and a JSON-lines file."""
    directory = tmp_path_factory.mktemp("one-process")
    stream = f"trainyard:test:{uuid.uuid4().hex}:events"
    spec = spec_for(directory, digits)
    spec["metrics"].update(redis_url=REDIS_URL, stream=stream)
    code = finish(launch(directory, spec), directory)
    client = redis.Redis.from_url(REDIS_URL)
    entries = client.xrange(stream)
    client.delete(stream)
    return {"directory": directory, "code": code, "result": result_of(directory), "stream": entries}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, digits):
    directory = tmp_path_factory.mktemp("two-processes")
    code = finish(launch(directory, spec_for(directory, digits), processes=2), directory)
    return {"directory": directory, "code": code, "result": result_of(directory)}


def test_the_small_cnn_on_digits_under_torchrun_reaches_97_percent(one_process):
    assert one_process["code"] == 0
    result = one_process["result"]
    assert result["exit_code"] == exit_codes.SUCCEEDED and result["state"] == "succeeded"
    assert result["summary"]["test_accuracy"] >= 0.97


def test_the_redis_stream_holds_the_run_in_order(one_process):
    entries = one_process["stream"]
    events = [{"kind": fields[b"kind"].decode(), "data": json.loads(fields[b"data"])} for _, fields in entries]
    assert events == read_events(one_process["directory"] / "events.jsonl")
    statuses = [event["data"]["state"] for event in events if event["kind"] == "status"]
    assert statuses == ["running", "succeeded"]
    startup = next(event["data"]["startup"] for event in events if event["kind"] == "status")
    assert startup["process_start"] <= startup["imports_done"] <= startup["data_loaded"] <= startup["model_ready"]
    steps = [event["data"]["step"] for event in events if event["kind"] == "metrics"
             and "train_loss" in event["data"]["values"]]
    assert steps == sorted(set(steps)) and steps[-1] == 800
    assert events[-2]["kind"] == "summary" and events[-2]["data"]["values"]["test_accuracy"] >= 0.97


def test_two_processes_reach_the_same_accuracy_within_one_point(one_process, two_processes):
    assert two_processes["code"] == 0
    one = one_process["result"]["summary"]["test_accuracy"]
    two = two_processes["result"]["summary"]["test_accuracy"]
    assert abs(one - two) <= 0.01, (one, two)


def test_a_two_process_step_equals_a_one_process_step_on_the_same_global_batch(tmp_path, digits):
    """Gradient averaging: two ranks of 16 samples each step exactly like one process with the 32."""
    torch.set_num_threads(1)
    code = finish(launch(tmp_path / "ddp", spec_for(tmp_path / "ddp", digits, max_steps=1), processes=2),
                  tmp_path / "ddp")
    assert code == 0, (tmp_path / "ddp/output.log").read_text()[-3000:]
    assert run(spec_for(tmp_path / "single", digits, max_steps=1), stop=StopRequest()) == 0
    distributed, single = final_weights(tmp_path / "ddp"), final_weights(tmp_path / "single")
    seed_everything(0)
    initial = build_model({"preset": "small_cnn"}, (1, 8, 8), 10).state_dict()
    for name, value in single.items():
        assert (value - initial[name]).abs().max() > 1e-4, f"{name} did not move"
        assert torch.allclose(distributed[name], value, rtol=0, atol=1e-6), \
            f"{name}: {(distributed[name] - value).abs().max()}"


def test_a_run_killed_with_sigkill_resumes_to_the_same_weights_as_an_uninterrupted_run(tmp_path, digits,
                                                                                        one_process):
    directory = tmp_path / "killed"
    spec = spec_for(directory, digits)
    process = launch(directory, spec)
    wait_for_checkpoint(directory, process)
    ranks = engine_processes(process)
    os.killpg(process.pid, signal.SIGKILL)  # the worker dies: torchrun and, by the parent-death signal, the ranks
    process.wait(timeout=30)
    assert_all_gone(ranks)
    assert exit_codes.read_result(directory / "checkpoints" / "result.json") is None, "the run finished before the kill"

    code = finish(launch(directory, spec), directory)
    assert code == 0
    events = read_events(directory / "events.jsonl")
    running = [event["data"] for event in events if event["kind"] == "status"
               and event["data"]["state"] == "running"][-1]
    assert running["resumed_from_step"] >= 40
    resumed, uninterrupted = final_weights(directory), final_weights(one_process["directory"])
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[name], uninterrupted[name]) for name in resumed)


def test_sigterm_checkpoints_and_exits_with_the_cancel_code_leaving_no_process(tmp_path, digits):
    directory = tmp_path / "cancelled"
    process = launch(directory, spec_for(directory, digits, epochs=200), processes=2)
    wait_for_checkpoint(directory, process)
    ranks = engine_processes(process)
    assert len([rank for rank in ranks if "trainer_app.engine" in " ".join(rank.cmdline())]) == 2
    os.killpg(process.pid, signal.SIGTERM)  # what the supervisor does on cancel
    finish(process, directory, timeout=60)
    assert_all_gone(ranks)
    result = result_of(directory)
    assert result["exit_code"] == exit_codes.CANCELLED and result["state"] == "cancelled"
    assert result["message"] == f"cancelled at step {result['step']} (SIGTERM)"
    assert (directory / "checkpoints" / f"step-{result['step']:08d}" / "model.safetensors").exists()
    events = read_events(directory / "events.jsonl")
    assert events[-1]["kind"] == "status" and events[-1]["data"]["state"] == "cancelled"
    assert events[-1]["data"]["exit_code"] == exit_codes.CANCELLED
