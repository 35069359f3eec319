"""The one seam between database rows and the engine: a Run becomes the engine's JSON spec."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from trainer_app.models import Run
from trainer_app.streams import STREAM_MAXLEN, run_stream_key


def media_path(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


def run_directory(run: Run) -> Path:
    """Where a run keeps its spec, log and checkpoints (under MEDIA_ROOT, shared across workers)."""
    return Path(settings.MEDIA_ROOT) / "runs" / str(run.pk)


def run_spec(run: Run) -> dict:
    directory = run_directory(run)
    return {
        "run_id": str(run.pk),
        "data": {"path": str(media_path(run.dataset.storage_dir)),
                 "augmentation": run.config.get("augmentation", {}),
                 "num_workers": int(run.config.get("num_workers", 0))},
        "model": run.effective_model_spec,
        "training": {key: value for key, value in run.config.items() if key not in {"augmentation", "num_workers"}},
        "init": run.init or None,
        "checkpoint": {"dir": str(directory / "checkpoints"), "keep_last": 2, "resume": True},
        "metrics": {"redis_url": settings.REDIS_URL, "stream": run_stream_key(run.pk), "maxlen": STREAM_MAXLEN,
                    "jsonl": str(directory / "events.jsonl"), "log_every_steps": 10},
        "distributed": {"backend": "auto"},
        "result_file": str(directory / "result.json"),
        # a sweep trial asks its pruner after each epoch (the supervisor answers: trainer_app/runner.py)
        "control": {"epoch_gate": str(gate_directory(run)) if run.sweep_id else None, "gate_timeout_s": 120,
                    # each rank shows it makes progress; the supervisor stops a hung engine (trainer_app/runner.py)
                    "heartbeat_dir": str(heartbeat_directory(run)),
                    "heartbeat_every_s": min(2.0, max(0.2, settings.RUN_HANG_TIMEOUT_SECONDS / 5))},
        # a learning-rate finder sweeps the rate over one epoch instead of training (engine/trainer.py find_lr)
        # (1e-6 .. 1: six decades, so that even a one-epoch test of 20-50 steps has a few steps per decade)
        "lr_finder": {"start_lr": 1e-6, "end_lr": 1.0} if run.kind == "lr_finder" else None,
    }


def gate_directory(run: Run) -> Path:
    return run_directory(run) / "gate"


def heartbeat_directory(run: Run) -> Path:
    return run_directory(run) / "heartbeat"


WEIGHTS_FILE = "model.safetensors"  # inside each checkpoint directory (trainer_app/engine/checkpoint.py)


def relative_to_media(path: str) -> str:
    """Paths are stored relative to MEDIA_ROOT when they lie under it, so shared storage can move."""
    try:
        return str(Path(path).resolve().relative_to(Path(settings.MEDIA_ROOT).resolve()))
    except ValueError:
        return path


def checkpoint_weights(checkpoint) -> Path:
    directory = Path(checkpoint.path)
    directory = directory if directory.is_absolute() else Path(settings.MEDIA_ROOT) / directory
    return directory / WEIGHTS_FILE if directory.suffix != ".safetensors" else directory


def best_checkpoint_path(run: Run) -> Path | None:
    """The weights file of a run's best checkpoint still on disk, else its latest one."""
    for checkpoint in run.checkpoints.order_by("-best", "-step"):
        weights = checkpoint_weights(checkpoint)
        if weights.exists():
            return weights
    return None
