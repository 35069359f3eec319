"""The worker's hardware facts. NVML itself is checked on a real GPU by benchmarks/gpu_check.py (an H200: NVML and
nvidia-smi agreed); here the CPU-only path and the nvidia-smi reader, with a stand-in nvidia-smi on PATH."""
import os
import stat

from trainer_app import hardware


def _fake_smi(directory, output: str) -> None:
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'END'\n{output}END\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_cpu_only_node_has_no_gpus_and_no_driver(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi; no NVIDIA driver library on these machines
    assert hardware.gpu_inventory() == []
    assert hardware.software_versions()["cuda_driver"] is None
    facts = hardware.node_facts()
    assert facts["cpu_count"] >= 1 and facts["ram_mb"] > 0 and facts["gpus"] == []


def test_nvidia_smi_rows_become_gpus(monkeypatch, tmp_path):
    _fake_smi(tmp_path, "0, NVIDIA H200, 143771, 4, 0, 30, GPU-9c9d\n"
                        "1, NVIDIA H200, 143771, 61234, 97, 71, GPU-1a2b\n"
                        "garbage line\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(hardware, "_nvml_state", {"module": None})  # as on a node whose NVML cannot start
    gpus = hardware.gpu_inventory()
    assert gpus == [
        {"index": 0, "name": "NVIDIA H200", "memory_total_mb": 143771, "memory_used_mb": 4, "utilization": 0,
         "temperature_c": 30, "uuid": "GPU-9c9d"},
        {"index": 1, "name": "NVIDIA H200", "memory_total_mb": 143771, "memory_used_mb": 61234, "utilization": 97,
         "temperature_c": 71, "uuid": "GPU-1a2b"},
    ]


def test_unreadable_fields_are_none(monkeypatch, tmp_path):
    _fake_smi(tmp_path, "0, Tesla T4, 15360, 0, [N/A], [N/A], GPU-x\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(hardware, "_nvml_state", {"module": None})
    assert hardware.gpu_inventory()[0]["utilization"] is None


def test_the_torch_fallback_sees_no_gpu_on_a_cpu_machine():
    """The child process that reads torch.cuda (for GPU nodes where neither NVML nor nvidia-smi answers; checked
    on an H200 by benchmarks/gpu_check.py) answers an empty list here, without importing torch in this process."""
    import sys

    had_torch = "torch" in sys.modules
    assert hardware._torch_inventory() == []
    assert ("torch" in sys.modules) == had_torch
