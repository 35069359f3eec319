"""What a worker node has: CPUs, RAM, GPUs and software versions. No torch import (it costs seconds).

GPUs come from NVML (the nvidia-ml-py package, a thin ctypes binding: no CUDA context is created) where the
NVIDIA driver's library is present, else from ``nvidia-smi``, else, on a node with NVIDIA device files that
answered neither, from torch.cuda in a child process (once: names and memory totals only); else there are
none (a CPU-only node).
"""
from __future__ import annotations

import glob
import json
import logging
import platform
import shutil
import subprocess
import sys
import threading
from importlib import metadata

import psutil

logger = logging.getLogger(__name__)

NVIDIA_SMI_FIELDS = "index,name,memory.total,memory.used,utilization.gpu,temperature.gpu,uuid"

_nvml_lock = threading.Lock()
_nvml_state: dict = {}


def _nvml():
    """The initialised ``pynvml`` module, or None where NVML cannot start (no driver, no package). Once per process."""
    with _nvml_lock:
        if "module" not in _nvml_state:
            try:
                import pynvml

                pynvml.nvmlInit()
                _nvml_state["module"] = pynvml
            except Exception as error:  # ImportError, or NVMLError_LibraryNotFound/DriverNotLoaded on CPU nodes
                logger.debug("NVML unavailable (%s): falling back to nvidia-smi", error)
                _nvml_state["module"] = None
        return _nvml_state["module"]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_inventory(nvml) -> list[dict]:
    gpus = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        gpu = {"index": index, "name": _text(nvml.nvmlDeviceGetName(handle)),
               "memory_total_mb": int(memory.total // 2 ** 20), "memory_used_mb": int(memory.used // 2 ** 20),
               "utilization": None, "temperature_c": None, "uuid": _text(nvml.nvmlDeviceGetUUID(handle))}
        try:  # some virtualised GPUs answer NOT_SUPPORTED for these two
            gpu["utilization"] = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nvml.NVMLError as error:
            logger.debug("GPU %d utilisation: %s", index, error)
        try:
            gpu["temperature_c"] = int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        except nvml.NVMLError as error:
            logger.debug("GPU %d temperature: %s", index, error)
        gpus.append(gpu)
    return gpus


def _smi_inventory() -> list[dict]:
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
        if len(fields) != 7:
            continue
        index, name, total, used, utilisation, temperature, uuid = fields
        gpus.append({
            "index": _number(index), "name": name, "memory_total_mb": _number(total),
            "memory_used_mb": _number(used), "utilization": _number(utilisation),
            "temperature_c": _number(temperature), "uuid": uuid,
        })
    return gpus


TORCH_PROBE = """
import json, torch
gpus = []
for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
    properties = torch.cuda.get_device_properties(index)
    gpus.append({"index": index, "name": properties.name, "memory_total_mb": properties.total_memory // 2 ** 20,
                 "uuid": str(getattr(properties, "uuid", "") or "")})
print(json.dumps(gpus))
"""


def _torch_inventory() -> list[dict]:
    """The GPUs torch.cuda sees, read in a child process (importing torch in a worker's heartbeat would cost
    seconds and hundreds of MB). Utilisation, memory used and temperature are unknown this way (None)."""
    try:
        output = subprocess.run([sys.executable, "-c", TORCH_PROBE], capture_output=True, text=True, timeout=120,
                                check=True).stdout
        probed = json.loads(output.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:
        logger.warning("no GPU inventory from torch.cuda either: %s", error)
        return []
    return [{**gpu, "memory_used_mb": None, "utilization": None, "temperature_c": None} for gpu in probed]


def gpu_inventory() -> list[dict]:
    """One dict per GPU (index, name, memory_total_mb, memory_used_mb, utilization, temperature_c, uuid):
    from NVML where it starts, else nvidia-smi, else torch.cuda where the node has NVIDIA device files (probed
    once per process); an empty list on CPU-only nodes."""
    nvml = _nvml()
    if nvml is not None:
        try:
            return _nvml_inventory(nvml)
        except Exception as error:  # a driver hiccup must not stop the heartbeat: nvidia-smi may still answer
            logger.warning("NVML failed (%s): reading the GPUs with nvidia-smi", error)
    gpus = _smi_inventory()
    if gpus or not glob.glob("/dev/nvidia[0-9]*"):
        return gpus
    with _nvml_lock:
        if "torch" not in _nvml_state:
            _nvml_state["torch"] = _torch_inventory()
        return [dict(gpu) for gpu in _nvml_state["torch"]]


def _number(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def cuda_driver_version() -> str | None:
    """The CUDA version the NVIDIA driver supports ("12.8"), from NVML; None without a driver."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        version = nvml.nvmlSystemGetCudaDriverVersion()
    except Exception:
        return None
    return f"{version // 1000}.{version % 1000 // 10}"


def software_versions() -> dict:
    versions = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "celery", "django"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["cuda_driver"] = cuda_driver_version()
    return versions


def node_facts() -> dict:
    return {
        "cpu_count": psutil.cpu_count() or 0,
        "ram_mb": psutil.virtual_memory().total // (1024 * 1024),
        "gpus": gpu_inventory(),
        "software": software_versions(),
    }
