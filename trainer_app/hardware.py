"""What a worker node has: CPUs, RAM, GPUs and software versions. No torch import (it costs seconds)."""
from __future__ import annotations

import platform
import shutil
import subprocess
from importlib import metadata

import psutil

NVIDIA_SMI_FIELDS = "index,name,memory.total,memory.used,utilization.gpu,temperature.gpu"


def gpu_inventory() -> list[dict]:
    """One dict per GPU from nvidia-smi; an empty list on CPU-only nodes."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        output = subprocess.run(
            [smi, f"--query-gpu={NVIDIA_SMI_FIELDS}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in output.strip().splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 6:
            continue
        index, name, total, used, utilisation, temperature = fields
        gpus.append({
            "index": _number(index), "name": name, "memory_total_mb": _number(total),
            "memory_used_mb": _number(used), "utilization": _number(utilisation), "temperature_c": _number(temperature),
        })
    return gpus


def _number(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def software_versions() -> dict:
    versions = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "celery", "django"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def node_facts() -> dict:
    return {
        "cpu_count": psutil.cpu_count() or 0,
        "ram_mb": psutil.virtual_memory().total // (1024 * 1024),
        "gpus": gpu_inventory(),
        "software": software_versions(),
    }
