"""Process-group setup and teardown (called from the entry point only), the parent-death signal, and
the stop request that SIGTERM raises.

torchrun starts each rank in its own session, so a SIGKILL to torchrun would orphan the ranks: each rank
asks the kernel (prctl PR_SET_PDEATHSIG) to SIGKILL it when its parent dies. SIGTERM and SIGINT only
set a flag; the trainer finishes the current step, all ranks agree on the step to stop at, rank 0
writes a checkpoint, and every rank exits with exit_codes.CANCELLED.
"""
from __future__ import annotations

import ctypes
import datetime
import logging
import os
import signal
import sys
from dataclasses import dataclass

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(signal_number: int = signal.SIGKILL) -> bool:
    """Die with `signal_number` when the parent process dies (Linux). Returns whether it was set.

    If the parent already died before this call (we were re-parented), exit at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal_number), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent == 1 or os.getppid() != parent:
        os._exit(128 + int(signal_number))
    return True


class StopRequest:
    """Set by SIGTERM or SIGINT; the trainer polls it after each step."""

    def __init__(self):
        self.signal_number: int | None = None

    def install(self) -> "StopRequest":
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._handle)
        return self

    def _handle(self, number, frame) -> None:
        # Only set the flag: logging here could deadlock on a lock the interrupted code holds.
        if self.signal_number is None:
            self.signal_number = number

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name if self.signal_number else ""

    @property
    def requested(self) -> bool:
        return self.signal_number is not None


@dataclass
class DistributedContext:
    """This process's place in the job, and the few collectives the engine uses outside DDP."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: object = None
    backend: str | None = None
    control_group: object = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor):
        """Sum a device tensor over all ranks, in place."""
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool) -> bool:
        """Whether any rank's flag is set (a CPU collective on the control group: no device sync)."""
        if not self.distributed:
            return flag
        import torch
        import torch.distributed as dist

        value = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.control_group)
        return bool(value.item())

    def gather_to_main(self, item) -> list | None:
        """Every rank's `item` (our own picklable state), on rank 0; None elsewhere."""
        if not self.distributed:
            return [item]
        import torch.distributed as dist

        gathered = [None] * self.world_size if self.is_main else None
        dist.gather_object(item, gathered, dst=0, group=self.control_group)
        return gathered


def check_one_gpu_per_process(backend: str, local_processes: int, gpus: int) -> None:
    """NCCL refuses two ranks of one job on the same GPU ("Duplicate GPU detected", seen on an H200): say so
    before the job starts, in words that name the fix."""
    from .config import SpecError

    if backend in ("auto", "nccl") and gpus and local_processes > gpus:
        raise SpecError(f"{local_processes} processes per node share {gpus} visible GPU(s), and NCCL needs one GPU "
                        f"per process: set nproc_per_node to {gpus} or fewer (or gpus_per_node to {local_processes}), "
                        "or choose the gloo backend", field_name="distributed.backend")


def choose_device(backend: str):
    """(device, backend) for this rank: the local GPU and NCCL when there are GPUs, else the CPU and gloo."""
    import torch

    from .config import SpecError

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    has_gpu = torch.cuda.is_available()
    if backend == "nccl" and not has_gpu:
        raise SpecError("nccl needs GPUs and this worker has none: use auto or gloo",
                        field_name="distributed.backend")
    if has_gpu:
        check_one_gpu_per_process(backend, int(os.environ.get("LOCAL_WORLD_SIZE", "1")), torch.cuda.device_count())
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if backend == "auto":
        backend = "nccl" if has_gpu else "gloo"
    return device, backend


def init_distributed(backend: str = "auto", *, timeout_minutes: float = 30) -> DistributedContext:
    """Join the job torchrun started (RANK, WORLD_SIZE… in the environment), or run alone without them."""
    device, backend = choose_device(backend)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistributedContext(device=device)
    import torch.distributed as dist

    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    control = dist.new_group(backend="gloo") if backend != "gloo" and world_size > 1 else None
    logger.debug("rank %d of %d on %s (%s)", rank, world_size, device, backend)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device,
                              backend=backend, control_group=control)


def teardown(context: DistributedContext) -> None:
    if context.backend is None:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
