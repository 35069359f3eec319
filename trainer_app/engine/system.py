"""System metrics from rank 0: cpu_percent (the whole machine), ram_mb (resident memory of this node's
engine processes), gpu{i}_mem_mb (memory in use on the device) and gpu{i}_util (needs NVML, the
nvidia-ml-py package; without it only rank 0's own GPU memory is reported).

A background thread samples every ``system_every_seconds`` and emits the values at the current step,
but only once the step has moved since its last point, so (name, step) stays unique.
"""
from __future__ import annotations

import logging
import os
import threading

import psutil

logger = logging.getLogger(__name__)


def _engine_processes() -> list[psutil.Process]:
    """This process and, under torchrun with several local ranks, its sibling ranks."""
    me = psutil.Process()
    if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
        try:
            return [me] + [process for process in me.parent().children() if process.pid != me.pid]
        except (psutil.Error, AttributeError):
            pass
    return [me]


def _nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


class SystemMonitor:
    """Samples system metrics in a thread; ``emit(step, epoch, values)`` receives them.

    GPUs: with NVML, every visible GPU (matched by UUID, no CUDA context created); without it, only this
    rank's own device (``device_index``), whose memory in use torch can read from the context it has.
    """

    def __init__(self, *, interval: float, current_step, emit, device_index: int | None = None):
        self.interval = interval
        self.current_step = current_step
        self.emit = emit
        self.device_index = device_index
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="system-metrics", daemon=True)
        self._last_step = 0
        self._nvml_handles = self._nvml_handles_by_index() if device_index is not None else {}

    @staticmethod
    def _nvml_handles_by_index() -> dict:
        nvml = _nvml()
        if nvml is None:
            return {}
        import torch

        handles = {}
        for index in range(torch.cuda.device_count()):
            try:
                uuid = str(torch.cuda.get_device_properties(index).uuid)
                handles[index] = (nvml, nvml.nvmlDeviceGetHandleByUUID(
                    (uuid if uuid.startswith("GPU-") else f"GPU-{uuid}").encode()))
            except Exception as error:
                logger.debug("no NVML handle for GPU %d: %s", index, error)
        return handles

    def start(self) -> "SystemMonitor":
        psutil.cpu_percent(interval=None)  # the first reading primes the counter
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def sample(self) -> dict[str, float]:
        values = {"cpu_percent": psutil.cpu_percent(interval=None)}
        resident = 0
        for process in _engine_processes():
            try:
                resident += process.memory_info().rss
            except psutil.Error:
                continue
        values["ram_mb"] = resident / 2 ** 20
        try:
            values.update(self._gpu_values())
        except Exception as error:  # a metric must never stop training
            logger.debug("gpu metrics: %s", error)
        return values

    def _gpu_values(self) -> dict[str, float]:
        if self.device_index is None:
            return {}
        if self._nvml_handles:
            values = {}
            for index, (nvml, handle) in self._nvml_handles.items():
                values[f"gpu{index}_mem_mb"] = nvml.nvmlDeviceGetMemoryInfo(handle).used / 2 ** 20
                values[f"gpu{index}_util"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            return values
        import torch

        free, total = torch.cuda.mem_get_info(self.device_index)
        return {f"gpu{self.device_index}_mem_mb": (total - free) / 2 ** 20}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            step, epoch = self.current_step()
            if step <= self._last_step:
                continue
            try:
                self.emit(step, epoch, self.sample())
                self._last_step = step
            except Exception as error:
                logger.debug("system metrics: %s", error)
