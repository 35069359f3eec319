"""System metrics from rank 0: cpu_percent (the whole machine), ram_mb (resident memory of this node's
engine processes), and per visible GPU gpu{i}_mem_mb (used memory on the device) and gpu{i}_util (when
NVML, the nvidia-ml-py package, is installed).

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
    """Samples system metrics in a thread; ``emit(step, values)`` receives them."""

    def __init__(self, *, interval: float, current_step, emit):
        self.interval = interval
        self.current_step = current_step
        self.emit = emit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="system-metrics", daemon=True)
        self._last_step = 0
        self._gpus = self._gpu_count()
        self._nvml = _nvml() if self._gpus else None

    @staticmethod
    def _gpu_count() -> int:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0

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
        values.update(self._gpu_values())
        return values

    def _gpu_values(self) -> dict[str, float]:
        values = {}
        if not self._gpus:
            return values
        import torch

        for index in range(self._gpus):
            try:
                free, total = torch.cuda.mem_get_info(index)
                values[f"gpu{index}_mem_mb"] = (total - free) / 2 ** 20
                if self._nvml is not None:
                    handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                    values[f"gpu{index}_util"] = float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception as error:  # a metric must never stop training
                logger.debug("gpu %d metrics: %s", index, error)
        return values

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
