"""The GPU checks, in one run on a machine with an NVIDIA GPU: what the CPU-only CI machines cannot test.

    python benchmarks/gpu_check.py --out DIR            # on a GPU node (a few minutes)
    python benchmarks/gpu_check.py --out DIR --cpu      # the same steps on the CPU, to check the script itself

It runs the engine exactly as a worker starts it (``torchrun --standalone … -m trainer_app.engine SPEC``) and checks:

1. the worker's GPU inventory (``trainer_app.hardware``): NVML, nvidia-smi and the torch.cuda fallback agree
   on name and memory;
2. NCCL DDP: a run with ``distributed.backend = nccl`` trains, and its events report the GPU's utilisation and
   memory (system metrics through NVML);
3. AMP: fp32, bf16 and fp16 (GradScaler) runs of a ResNet-18 each learn (validation accuracy above chance), with
   their samples per second side by side;
4. one process started directly (``python -m trainer_app.engine SPEC``, as the supervisor starts one process
   on one node) trains on the GPU; resume on the GPU: a run extended by one epoch resumes from its checkpoint
   and runs only that epoch;
5. placement: with ``CUDA_VISIBLE_DEVICES`` empty (what a CPU job is given) an NCCL spec is refused with the
   engine's message, and an ``auto`` spec trains on the CPU with gloo;
6. two ranks on one GPU with NCCL: what happens (NCCL refuses a GPU shared by two ranks of one communicator);
7. throughput of the engine against a plain PyTorch loop with the data already on the GPU (the best case);
8. preemption on the GPU: an fp16 run of one process on the GPU, started as the supervisor starts it
   (directly, in a process group of its own), gets SIGTERM on its group mid-epoch (what the supervisor sends
   when a run is cancelled or preempted), stops with the engine's CANCELLED code and a checkpoint at that
   step, and the same spec started again resumes there (GradScaler state included) and ends at the planned
   step count with no step trained twice.

``--only preempt`` (names: inventory, ddp, direct, resume, placement, plain, preempt) runs a subset.

Prints one line per check and a final SUMMARY JSON line; writes everything to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer_app.engine import exit_codes  # noqa: E402
from trainer_app.engine.testing import make_spec, make_synthetic_images, read_events, write_spec  # noqa: E402

RESULTS: dict = {}
CHECKS = ("inventory", "ddp", "direct", "resume", "placement", "plain", "preempt")


def report(name: str, ok: bool, **figures) -> None:
    RESULTS[name] = {"ok": ok, **figures}
    print(f"{'PASS' if ok else 'FAIL'} {name}: {json.dumps(figures, default=str)}", flush=True)


def engine_run(work: Path, name: str, spec: dict, *, nproc: int = 1, env: dict | None = None,
               timeout: float = 300, direct: bool = False) -> dict:
    """Start the engine under torchrun as the worker does; its exit code, wall time, events and log."""
    run_dir = work / name
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "run_id": name}
    spec["checkpoint"] = {**spec["checkpoint"], "dir": spec["checkpoint"]["dir"] or str(run_dir / "checkpoints")}
    spec["metrics"] = {**spec["metrics"], "jsonl": str(run_dir / "events.jsonl")}
    spec_path = write_spec(run_dir / "spec.json", spec)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc-per-node", str(nproc), "-m", "trainer_app.engine", str(spec_path)]
    if direct:  # what the supervisor starts for one process on one node
        command = [sys.executable, "-m", "trainer_app.engine", str(spec_path)]
    environment = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, cwd=str(ROOT), env=environment, capture_output=True, text=True,
                                   timeout=timeout)
        code, output = completed.returncode, completed.stdout + completed.stderr
    except subprocess.TimeoutExpired as error:
        code, output = "timeout", f"{error.stdout or ''}{error.stderr or ''}"
    wall = time.perf_counter() - started
    (run_dir / "output.log").write_text(output if isinstance(output, str) else output.decode(errors="replace"))
    events = read_events(run_dir / "events.jsonl") if (run_dir / "events.jsonl").exists() else []
    result_file = Path(spec["checkpoint"]["dir"]) / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    return {"code": code, "wall_s": round(wall, 1), "events": events, "output": output, "result": result}


def metric_values(events: list[dict], name: str) -> list[float]:
    return [event["data"]["values"][name] for event in events
            if event["kind"] == "metrics" and name in event["data"].get("values", {})]


def train_steps(events: list[dict]) -> list[int]:
    """The steps a run trained and logged (its train_loss points)."""
    return [event["data"]["step"] for event in events
            if event["kind"] == "metrics" and "train_loss" in event["data"]["values"]]


def last_metric(events: list[dict], name: str):
    values = metric_values(events, name)
    return values[-1] if values else None


def median(values: list[float]):
    values = sorted(values)
    return values[len(values) // 2] if values else None


def epochs_run(events: list[dict]) -> list[int]:
    return sorted({event["data"]["epoch"] for event in events
                   if event["kind"] == "metrics" and "val_loss" in event["data"].get("values", {})})


def check_inventory() -> None:
    from trainer_app import hardware

    nvml = hardware._nvml()
    via_nvml = hardware._nvml_inventory(nvml) if nvml is not None else []
    via_smi = hardware._smi_inventory()
    agree = bool(via_nvml) and len(via_nvml) == len(via_smi) and all(
        a["name"] == b["name"] and abs(a["memory_total_mb"] - b["memory_total_mb"]) <= 2
        for a, b in zip(via_nvml, via_smi))
    via_torch = hardware._torch_inventory()  # the fallback for nodes where neither NVML nor nvidia-smi answers
    torch_agrees = len(via_torch) == len(via_nvml) and all(
        a["name"] == b["name"] and abs(a["memory_total_mb"] - b["memory_total_mb"]) <= 0.02 * b["memory_total_mb"]
        for a, b in zip(via_torch, via_nvml))
    report("inventory", agree and (torch_agrees or not via_nvml), nvml=via_nvml, nvidia_smi=via_smi,
           torch_cuda=via_torch, chosen=hardware.gpu_inventory(), software=hardware.software_versions())


def base_spec(data: Path, *, preset: str, amp: str, backend: str, epochs: int, batch: int) -> dict:
    return make_spec(data=data, model={"preset": preset},
                     training={"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": batch, "epochs": epochs,
                               "amp": amp, "seed": 0},
                     distributed={"backend": backend}) | {
        "metrics": {"jsonl": None, "redis_url": None, "stream": None, "log_every_steps": 10,
                    "system_every_seconds": 1.0}}


def plain_loop_throughput(data: Path, *, preset_builder, batch: int, epochs: int, amp: str, device: str) -> float:
    """Samples per second of a hand-written loop with the whole training split already on the device."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from trainer_app.engine.dataset_format import open_split, read_meta

    meta = read_meta(data)
    features, labels = open_split(data, "train")
    mean = torch.tensor(meta.normalization["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(meta.normalization["std"], device=device).view(1, -1, 1, 1)
    inputs = ((torch.from_numpy(np.array(features)).to(device).float() / 255) - mean) / std
    targets = torch.from_numpy(np.array(labels)).long().to(device)
    torch.manual_seed(0)
    model = preset_builder().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler(enabled=amp == "fp16")
    timed, samples = 0.0, 0
    for epoch in range(epochs + 1):  # the first epoch warms up (cuDNN autotuning, allocator)
        order = torch.randperm(len(inputs), device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        for begin in range(0, len(order) - batch + 1, batch):
            index = order[begin:begin + batch]
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = F.cross_entropy(model(inputs[index]), targets[index])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if epoch:
            timed += time.perf_counter() - started
            samples += (len(order) // batch) * batch
    return samples / timed


def check_preempt(work: Path, data: Path, *, preset: str, batch: int, cpu: bool) -> None:
    """SIGTERM to the engine's process group mid-epoch, then the same spec again: it resumes at that step."""
    import signal

    epochs = 6
    spec = base_spec(data, preset=preset, amp="bf16" if cpu else "fp16", backend="auto", epochs=epochs, batch=batch)
    spec["metrics"]["log_every_steps"] = 1
    first_dir = work / "preempted"
    first_dir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "run_id": "preempted"}
    spec["checkpoint"] = {**spec["checkpoint"], "dir": str(first_dir / "checkpoints")}
    spec["metrics"] = {**spec["metrics"], "jsonl": str(first_dir / "events.jsonl")}
    spec_path = write_spec(first_dir / "spec.json", spec)
    command = [sys.executable, "-m", "trainer_app.engine", str(spec_path)]  # one process: started directly
    log = open(first_dir / "output.log", "w")
    process = subprocess.Popen(command, cwd=str(ROOT), env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # its own group, as a worker's run
    events_path = first_dir / "events.jsonl"
    steps_per_epoch, signalled_at, epoch_ends = None, None, {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        events = read_events(events_path) if events_path.exists() else []
        total = [event["data"]["total_steps"] for event in events if event["kind"] == "progress"]
        steps = [event["data"]["step"] for event in events if event["kind"] == "metrics"]
        if total and steps:
            steps_per_epoch = total[0] // epochs
            epoch_ends.setdefault(steps[-1] // steps_per_epoch, time.monotonic())  # events come at epoch ends
            if 1 in epoch_ends and 2 in epoch_ends:  # the third epoch began: signal it in its middle
                time.sleep((epoch_ends[2] - epoch_ends[1]) / 2)
                signalled_at = steps[-1]
                os.killpg(process.pid, signal.SIGTERM)  # what the supervisor sends on cancel and preemption
                break
        time.sleep(0.02)
    try:
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        code = "timeout"
    log.close()
    result = exit_codes.read_result(first_dir / "checkpoints" / exit_codes.RESULT_FILE_NAME) or {}
    first_events = read_events(events_path) if events_path.exists() else []
    stopped_at = result.get("step")
    # the same spec again, in its own folder but on the same checkpoints: what a requeued run's next start does
    resumed = engine_run(work, "preempted-resume", {**spec, "metrics": {**spec["metrics"], "jsonl": None}},
                         direct=True)
    total_steps = epochs * steps_per_epoch if steps_per_epoch else None
    trained_before, trained_after = train_steps(first_events), train_steps(resumed["events"])
    last_step = max(trained_after, default=None)
    accuracy = last_metric(resumed["events"], "val_accuracy")
    ok = (signalled_at is not None and result.get("exit_code") == exit_codes.CANCELLED and stopped_at is not None
          and stopped_at > signalled_at and stopped_at % steps_per_epoch != 0  # stopped mid-epoch
          and resumed["code"] == 0 and bool(trained_after)
          and min(trained_after) > stopped_at and last_step == total_steps
          and not set(trained_before) & set(trained_after) and accuracy is not None and accuracy > 0.2)
    report("preempt_and_resume", ok, signalled_at_step=signalled_at, stopped=result.get("message"),
           stopped_at_step=stopped_at, exit_code=code, first_step_after_resume=min(trained_after, default=None),
           last_step=last_step, planned_steps=total_steps,
           steps_trained_twice=sorted(set(trained_before) & set(trained_after)),
           val_accuracy=accuracy, resume_wall_s=resumed["wall_s"],
           tail=None if ok else (first_dir / "output.log").read_text()[-1500:] + resumed["output"][-1500:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where logs, events and the summary go")
    parser.add_argument("--cpu", action="store_true", help="check the script on a CPU-only machine (tiny sizes)")
    parser.add_argument("--samples", type=int, default=40_000, help="synthetic 3x32x32 images (80%% train)")
    parser.add_argument("--only", nargs="+", metavar="CHECK", choices=CHECKS,
                        help="run only these checks (resume and plain need ddp's runs)")
    arguments = parser.parse_args()
    wanted = set(arguments.only or CHECKS)
    work = arguments.out
    work.mkdir(parents=True, exist_ok=True)
    cpu = arguments.cpu
    samples = 1_200 if cpu else arguments.samples
    preset, batch, epochs = ("small_cnn", 64, 2) if cpu else ("resnet18", 512, 3)
    backend = "gloo" if cpu else "nccl"
    data = work / "data"
    if not (data / "meta.json").exists():
        make_synthetic_images(data, count=samples, shape=(3, 32, 32), classes=10)

    import torch

    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}, "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}", flush=True)
    if "inventory" in wanted:
        check_inventory()

    throughput = {}  # samples/s of the ddp runs, by amp: the plain loop's comparison
    if "ddp" in wanted:
        # 2 and 3: NCCL DDP with fp32, bf16, fp16; GPU system metrics in the events.
        for amp in ("none", "bf16") if cpu else ("none", "bf16", "fp16"):
            spec = base_spec(data, preset=preset, amp=amp, backend=backend, epochs=epochs, batch=batch)
            outcome = engine_run(work, f"amp-{amp}", spec)
            accuracy = last_metric(outcome["events"], "val_accuracy")
            speed = metric_values(outcome["events"], "samples_per_s")
            throughput[amp] = median(speed[len(speed) // 3:])  # past the first epoch's warm-up
            gpu_keys = sorted({key for event in outcome["events"] if event["kind"] == "metrics"
                               for key in event["data"].get("values", {}) if key.startswith("gpu")})
            ok = outcome["code"] == 0 and accuracy is not None and accuracy > 0.2 and (cpu or bool(gpu_keys))
            report(f"ddp_{backend}_amp_{amp}", ok, exit_code=outcome["code"], wall_s=outcome["wall_s"],
                   val_accuracy=accuracy, samples_per_s_median=throughput[amp], gpu_metrics=gpu_keys,
                   gpu0_util_max=max(metric_values(outcome["events"], "gpu0_util") or [None], key=lambda v: v or 0),
                   gpu0_mem_mb_max=max(metric_values(outcome["events"], "gpu0_mem_mb") or [None], key=lambda v: v or 0),
                   tail=None if ok else outcome["output"][-1500:])

    if "direct" in wanted:
        # 3b: one process started directly, without torchrun (what the supervisor does for one process on one node)
        spec = base_spec(data, preset=preset, amp="bf16", backend="auto", epochs=1, batch=batch)
        outcome = engine_run(work, "direct-bf16", spec, direct=True)
        gpu_keys = sorted({key for event in outcome["events"] if event["kind"] == "metrics"
                           for key in event["data"].get("values", {}) if key.startswith("gpu")})
        accuracy = last_metric(outcome["events"], "val_accuracy")
        report("direct_launch_bf16", outcome["code"] == 0 and accuracy is not None and (cpu or bool(gpu_keys)),
               exit_code=outcome["code"], wall_s=outcome["wall_s"], val_accuracy=accuracy, gpu_metrics=gpu_keys,
               samples_per_s_median=median(metric_values(outcome["events"], "samples_per_s")),
               tail=None if outcome["code"] == 0 else outcome["output"][-1500:])

    if "resume" in wanted:
        # 4: resume on the GPU: the fp32 run again with one more epoch continues from its checkpoint.
        spec = base_spec(data, preset=preset, amp="none", backend=backend, epochs=epochs + 1, batch=batch)
        spec["checkpoint"]["dir"] = str(work / "amp-none" / "checkpoints")
        outcome = engine_run(work, "resume", spec)
        ran = epochs_run(outcome["events"])
        report("resume", outcome["code"] == 0 and ran == [epochs + 1], exit_code=outcome["code"], epochs_run=ran,
               wall_s=outcome["wall_s"], tail=None if outcome["code"] == 0 else outcome["output"][-1500:])

    if not cpu and "placement" in wanted:
        # 5: a CPU job (CUDA_VISIBLE_DEVICES empty) is refused NCCL, and trains with auto (gloo on the CPU).
        spec = base_spec(data, preset="small_cnn", amp="none", backend="nccl", epochs=1, batch=64)
        refused = engine_run(work, "cpu-job-nccl", spec, env={"CUDA_VISIBLE_DEVICES": ""})
        message = (refused["result"] or {}).get("message", "")
        report("cpu_job_refuses_nccl", refused["code"] != 0 and "nccl" in message, exit_code=refused["code"],
               message=message)
        spec = base_spec(data, preset="small_cnn", amp="none", backend="auto", epochs=1, batch=64)
        auto = engine_run(work, "cpu-job-auto", spec, env={"CUDA_VISIBLE_DEVICES": ""})
        gpu_keys = [key for event in auto["events"] if event["kind"] == "metrics"
                    for key in event["data"].get("values", {}) if key.startswith("gpu")]
        report("cpu_job_auto_trains_on_cpu", auto["code"] == 0 and not gpu_keys, exit_code=auto["code"],
               wall_s=auto["wall_s"])

        # 6: two ranks sharing the one GPU under NCCL.
        spec = base_spec(data, preset="small_cnn", amp="none", backend="nccl", epochs=1, batch=128)
        shared = engine_run(work, "two-ranks-one-gpu", spec, nproc=2, timeout=90)
        report("two_ranks_one_gpu_nccl", True, exit_code=shared["code"], wall_s=shared["wall_s"],
               result=shared["result"], tail=shared["output"][-800:])

    if "plain" in wanted:
        # 7: the engine against a plain loop with the data on the device (fp32 and bf16).
        device = "cpu" if cpu else "cuda:0"
        from trainer_app.engine.models import build_model
        from trainer_app.engine.dataset_format import read_meta

        meta = read_meta(data)

        def builder():
            return build_model({"preset": preset}, meta.input_shape, meta.num_classes)

        for amp in ("none",) if cpu else ("none", "bf16"):
            plain = plain_loop_throughput(data, preset_builder=builder, batch=batch, epochs=2, amp=amp, device=device)
            engine = throughput.get(amp)
            report(f"engine_vs_plain_{amp}", engine is not None, engine_samples_per_s=engine,
                   plain_samples_per_s=round(plain, 1), ratio=round(engine / plain, 3) if engine else None)

    if "preempt" in wanted:  # 8
        check_preempt(work, data, preset=preset, batch=batch, cpu=cpu)

    ok = all(entry["ok"] for entry in RESULTS.values())
    (work / "summary.json").write_text(json.dumps(RESULTS, indent=2, default=str))
    print("SUMMARY " + json.dumps({name: {key: value for key, value in entry.items() if key != "tail"}
                                   for name, entry in RESULTS.items()}, default=str), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
