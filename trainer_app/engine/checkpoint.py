"""Checkpoints we write, and weights we accept from elsewhere.

Layout of ``checkpoint.dir``::

    step-00000120/model.safetensors   the model's state dict (parameters and buffers), unwrapped from DDP
    step-00000120/state.pt            optimizer, scheduler, grad scaler, RNG states, trainer state, metrics
    best.json                         {"name", "step", "metric", "value"}: which checkpoint is the best
    result.json                       the run's result (exit_codes.write_result)

A checkpoint is written by rank 0 into a hidden temporary directory, each file fsynced, then renamed into
place (and the parent directory fsynced): it exists whole or not at all. ``state.pt`` records the size
and sha256 of its weights; a checkpoint whose files are missing or do not match is skipped on resume.
``state.pt`` holds only tensors and plain containers and is read with ``torch.load(weights_only=True)``:
nothing is ever unpickled. Weights from elsewhere (an upload, another run) must be safetensors; a pickle
under that name is refused before any byte of it is interpreted.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from .models import head_name

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.pt"
BEST_FILE = "best.json"
STATE_FORMAT = 1
_NAME = re.compile(r"^step-(\d{8,})$")


class WeightsError(ValueError):
    """Weights that cannot be used, with a message a person can act on."""


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict

    def weights(self) -> dict[str, torch.Tensor]:
        return load_safetensors_bytes((self.path / WEIGHTS_FILE).read_bytes())


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_file(path: Path, payload: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _state_bytes(state: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


class CheckpointManager:
    """Writes, lists, prunes and reads the checkpoints of one run directory."""

    def __init__(self, directory: str | Path, *, keep_last: int = 2):
        self.directory = Path(directory)
        self.keep_last = keep_last

    def save(self, *, step: int, weights: dict[str, torch.Tensor], state: dict, best: bool,
             best_metric: tuple[str, float] | None = None) -> Path:
        """Write one checkpoint atomically (rank 0 only); prune older ones; returns its directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:08d}"
        final = self.directory / name
        temporary = self.directory / f".{name}.{os.getpid()}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        weights_payload = save_safetensors_bytes({key: value.detach().cpu().contiguous()
                                                  for key, value in weights.items()})
        _write_file(temporary / WEIGHTS_FILE, weights_payload)
        state = {**state, "format": STATE_FORMAT, "step": step,
                 "weights": {"file": WEIGHTS_FILE, "bytes": len(weights_payload),
                             "sha256": _sha256(weights_payload)}}
        _write_file(temporary / STATE_FILE, _state_bytes(state))
        _fsync_directory(temporary)
        if final.exists():  # a leftover at the same step (an earlier, unfinished attempt): replace it
            shutil.rmtree(final)
        os.rename(temporary, final)
        _fsync_directory(self.directory)
        if best and best_metric is not None:
            self._write_best(name, step, *best_metric)
        self.prune()
        return final

    def _write_best(self, name: str, step: int, metric: str, value: float) -> None:
        path = self.directory / BEST_FILE
        temporary = self.directory / f".{BEST_FILE}.{os.getpid()}.tmp"
        _write_file(temporary, json.dumps({"name": name, "step": step, "metric": metric,
                                           "value": value}).encode())
        os.replace(temporary, path)

    def best_name(self) -> str | None:
        try:
            return json.loads((self.directory / BEST_FILE).read_text())["name"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def names(self) -> list[tuple[int, str]]:
        """(step, name) of every checkpoint directory, oldest first (valid or not)."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in self.directory.iterdir():
            match = _NAME.match(entry.name)
            if match and entry.is_dir():
                found.append((int(match.group(1)), entry.name))
        return sorted(found)

    def prune(self) -> None:
        """Keep the last `keep_last` checkpoints and the best one; remove the rest and stale temporaries."""
        names = self.names()
        keep = {name for _, name in names[-self.keep_last:]}
        best = self.best_name()
        if best:
            keep.add(best)
        for _, name in names:
            if name not in keep:
                shutil.rmtree(self.directory / name, ignore_errors=True)
        for entry in self.directory.glob(".step-*.tmp"):
            if not entry.name.endswith(f".{os.getpid()}.tmp"):
                shutil.rmtree(entry, ignore_errors=True)

    def load(self, name: str) -> Checkpoint:
        """One checkpoint, checked whole; raises WeightsError when it is not."""
        path = self.directory / name
        try:
            state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise WeightsError(f"{path}: no {STATE_FILE}") from None
        except Exception as error:
            raise WeightsError(f"{path}/{STATE_FILE} cannot be read: {error}") from None
        expected = state.get("weights", {})
        weights_path = path / WEIGHTS_FILE
        if not weights_path.exists():
            raise WeightsError(f"{path}: no {WEIGHTS_FILE}")
        payload = weights_path.read_bytes()
        if len(payload) != expected.get("bytes") or _sha256(payload) != expected.get("sha256"):
            raise WeightsError(f"{weights_path} does not match its state file (size or sha256)")
        return Checkpoint(path=path, step=int(state["step"]), state=state)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint that is whole; broken ones are skipped with a warning."""
        for _, name in reversed(self.names()):
            try:
                return self.load(name)
            except WeightsError as error:
                logger.warning("skipping checkpoint %s: %s", name, error)
        return None

    def best(self) -> Checkpoint | None:
        name = self.best_name()
        if name is None:
            return None
        try:
            return self.load(name)
        except WeightsError as error:
            logger.warning("best checkpoint %s unusable: %s", name, error)
            return None


# --- weights from elsewhere ---------------------------------------------------------------------

def check_safetensors_file(path: str | Path) -> None:
    """Raise WeightsError unless `path` looks like a safetensors file (8-byte header length, JSON header).

    Pickles (PyTorch .pt/.pth, zip or raw) are recognised and refused by name: unpickling can run code.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            size = path.stat().st_size
            if head[:2] == b"PK" or head[:1] == b"\x80":
                raise WeightsError(
                    f"{path.name} is a pickle (a PyTorch .pt/.pth file), not safetensors; pickles can run code "
                    f"when loaded, so it is refused. Convert it where you trust it: "
                    f"safetensors.torch.save_file(torch.load(path), 'model.safetensors')")
            if len(head) < 8:
                raise WeightsError(f"{path.name} is not a safetensors file (too short)")
            (header_length,) = struct.unpack("<Q", head)
            if header_length < 2 or header_length > min(size - 8, 100 << 20):
                raise WeightsError(f"{path.name} is not a safetensors file (bad header length)")
            header = handle.read(header_length)
    except FileNotFoundError:
        raise WeightsError(f"weights file {path} not found") from None
    try:
        parsed = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WeightsError(f"{path.name} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(parsed, dict):
        raise WeightsError(f"{path.name} is not a safetensors file (its header is not a JSON object)")


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a checked safetensors file, with any DDP ``module.`` prefix removed."""
    check_safetensors_file(path)
    try:
        tensors = load_safetensors_bytes(Path(path).read_bytes())
    except Exception as error:
        raise WeightsError(f"{Path(path).name} cannot be read as safetensors: {error}") from None
    return {key.removeprefix("module."): value for key, value in tensors.items()}


def _shape(value) -> list[int]:
    return list(value.shape)


def load_init_weights(model: nn.Module, path: str | Path) -> dict:
    """Load weights for transfer learning into `model`; returns what was done.

    When only the head (the last Linear) differs in shape, as when the number of classes changed, the head
    keeps its fresh initialisation and everything else is loaded. Any other difference raises WeightsError
    listing every mismatched tensor (name, expected shape, found shape) and missing or unexpected names.
    """
    tensors = read_safetensors(path)
    expected = model.state_dict()
    mismatched = [(name, _shape(value), _shape(tensors[name])) for name, value in expected.items()
                  if name in tensors and tuple(value.shape) != tuple(tensors[name].shape)]
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    head = head_name(model)
    head_keys = {f"{head}.weight", f"{head}.bias"}
    head_only = bool(mismatched) and {name for name, _, _ in mismatched} <= head_keys
    if (mismatched and not head_only) or missing or unexpected:
        lines = [f"{name}: expected {want}, found {found}" for name, want, found in mismatched]
        lines += [f"{name}: expected {_shape(expected[name])}, missing from the file" for name in missing]
        lines += [f"{name}: found {_shape(tensors[name])}, not in this model" for name in unexpected]
        shown = "; ".join(lines[:20]) + (f"; … and {len(lines) - 20} more" if len(lines) > 20 else "")
        raise WeightsError(f"the weights in {Path(path).name} do not fit this model's architecture "
                           f"({len(lines)} tensors differ): {shown}")
    replaced = []
    if head_only:
        replaced = sorted(head_keys & set(tensors))
        found = dict((name, shape) for name, _, shape in mismatched)
        for name in replaced:
            tensors.pop(name)
        logger.info("transfer learning: head %s replaced (%s outputs in the file, %s here)", head,
                    found.get(f"{head}.weight", ["?"])[0], _shape(expected[f"{head}.weight"])[0])
    model.load_state_dict(tensors, strict=False)
    return {"source": str(path), "loaded": len(tensors), "replaced_head": head if replaced else None}
