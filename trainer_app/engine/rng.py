"""Seeding, deterministic mode, and random-number-generator states in a form ``torch.load(weights_only=True)``
accepts (tensors, numbers, lists, dicts: no numpy arrays, nothing to unpickle)."""
from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Deterministic algorithms (and no cuDNN autotuning), or the fastest ones.

    An operation with no deterministic implementation on the device logs a warning and runs anyway
    (torch's warn_only), rather than failing the run; on the CPU every operation the engine uses has one.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # the same switch as torch.use_deterministic_algorithms(enabled, warn_only=True), without its import of
    # torch._inductor (~3 s); the engine does not compile, so inductor's own setting does not apply
    torch.set_deterministic_debug_mode("warn" if enabled else "default")
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def capture_rng_state() -> dict:
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)), "position": int(numpy_state[2]),
                       "has_gauss": int(numpy_state[3]), "cached_gaussian": float(numpy_state[4])},
             "python": {"version": python_state[0], "state": list(python_state[1]), "gauss": python_state[2]}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
