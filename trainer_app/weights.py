"""Weights to fine-tune from: uploaded safetensors files checked on arrival, and a compatibility check
at launch so that a run whose weights cannot fit is refused before anything starts. Imports torch
lazily: only these (rare) actions pay for it in the web process."""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path


class WeightsProblem(ValueError):
    """The weights cannot be used; the message lists what does not fit."""


def header_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes from a safetensors header, without reading the tensors."""
    from trainer_app.engine.checkpoint import WeightsError, check_safetensors_file

    try:
        check_safetensors_file(path)
    except WeightsError as error:
        raise WeightsProblem(str(error)) from None
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return {name.removeprefix("module."): list(entry["shape"]) for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict) and "shape" in entry}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_fit(*, model_spec: dict, input_shape, outputs: int, path: Path, freeze: list[str]) -> str | None:
    """None when the weights load into this design (only the head may differ, as when the number of
    classes changed); else raise WeightsProblem listing every mismatched tensor."""
    import torch

    from trainer_app.engine.models import build_model, head_name, layer_names

    found = header_shapes(path)
    with torch.device("meta"):
        model = build_model(model_spec, input_shape, max(int(outputs), 1))
    expected = {name: list(value.shape) for name, value in model.state_dict().items()}
    head = head_name(model)
    head_keys = {f"{head}.weight", f"{head}.bias"}
    mismatched = [f"{name}: expected {shape}, found {found[name]}" for name, shape in expected.items()
                  if name in found and found[name] != shape and name not in head_keys]
    missing = [f"{name}: expected {shape}, missing from the file" for name, shape in expected.items()
               if name not in found]
    unexpected = [f"{name}: found {shape}, not in this model" for name, shape in found.items() if name not in expected]
    problems = mismatched + missing + unexpected
    if problems:
        shown = "; ".join(problems[:12]) + (f"; … and {len(problems) - 12} more" if len(problems) > 12 else "")
        raise WeightsProblem(f"{path.name} does not fit this model design ({len(problems)} tensors differ): {shown}")
    parameter_names = [name for name, _ in model.named_parameters()]
    for prefix in freeze:
        if not any(name == prefix or name.startswith(prefix + ".") for name in parameter_names):
            available = ", ".join(entry["name"] for entry in layer_names(model, depth=1))
            raise WeightsProblem(f"no layer named {prefix!r} to freeze; top-level layers: {available}")
    head_changed = any(found.get(key) not in (None, expected[key]) for key in head_keys if key in expected)
    return f"head {head} replaced" if head_changed else None
