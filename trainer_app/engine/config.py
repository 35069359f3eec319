"""The run spec: typed dataclasses read from JSON, each field documented and checked where it is defined.

``load_run_spec`` reads and checks a spec on its own; ``check_spec_against_dataset`` adds the checks that
need the dataset's meta and the number of processes (batch size against the training split, the model
against the input shape...). Pure Python, no torch: the web side calls both before it launches anything.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad", "rmsprop")
SCHEDULES = ("none", "step", "cosine", "onecycle")
AMP_MODES = ("none", "bf16", "fp16")
BACKENDS = ("auto", "gloo", "nccl")
CLASSIFICATION_METRICS = ("val_loss", "val_accuracy")
REGRESSION_METRICS = ("val_loss", "val_mae", "val_rmse", "val_r2")
MAXIMISED_METRICS = ("val_accuracy", "val_r2")


class SpecError(ValueError):
    """A run spec that cannot run, with a message a person can act on."""

    def __init__(self, message: str, *, field_name: str | None = None):
        self.field_name = field_name
        super().__init__(f"{field_name} {message}" if field_name else message)

    def under(self, prefix: str) -> "SpecError":
        """The same error with its field named from the spec's root (``training.lr``)."""
        name = f"{prefix}.{self.field_name}" if self.field_name else prefix
        message = str(self)[len(self.field_name) + 1:] if self.field_name else str(self)
        return SpecError(message, field_name=name)


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise SpecError(message, field_name=field_name)


def _positive_number(value, field_name: str, *, allow_zero: bool = False) -> None:
    _require(not math.isnan(value), field_name, "must be a number, not NaN")
    _require(not math.isinf(value), field_name, "must be finite")
    if allow_zero:
        _require(value >= 0, field_name, f"must be 0 or more (got {value})")
    else:
        _require(value > 0, field_name, f"must be greater than 0 (got {value})")


@dataclass
class AugmentationSpec:
    """Random image augmentation, applied to each training batch as tensors (images only)."""

    random_crop: int = 0
    """Pad each side by this many pixels, then crop back to the original size at a random offset; 0 = off."""
    hflip: bool = False
    """Flip each image left-right with probability 1/2."""
    rotation: float = 0.0
    """Rotate each image by an angle drawn uniformly from ±rotation degrees; 0 = off."""
    color_jitter: float = 0.0
    """Scale brightness, contrast and (3 channels) saturation by factors drawn from [1 − j, 1 + j]; 0 = off."""

    def __post_init__(self) -> None:
        _require(self.random_crop >= 0, "random_crop", f"must be 0 or more pixels (got {self.random_crop})")
        _positive_number(self.rotation, "rotation", allow_zero=True)
        _require(self.rotation <= 180, "rotation", f"must be at most 180 degrees (got {self.rotation})")
        _positive_number(self.color_jitter, "color_jitter", allow_zero=True)
        _require(self.color_jitter < 1, "color_jitter", f"must be below 1 (got {self.color_jitter})")

    @property
    def enabled(self) -> bool:
        return bool(self.random_crop or self.hflip or self.rotation or self.color_jitter)


@dataclass
class DataSpec:
    """Where the canonical dataset directory lies and how batches are made from it."""

    path: str
    """A canonical dataset directory (see dataset_format.py): meta.json and {train,val,test}_{X,y}.npy."""
    augmentation: AugmentationSpec = field(default_factory=AugmentationSpec)
    """Image augmentation for the training split; must stay off for tables."""
    num_workers: int = 0
    """0 prepares batches in the training loop; n > 0 prepares them in a background thread, up to n batches ahead."""
    in_memory_limit_mb: int = 4096
    """A split up to this size is read into memory once; a larger one is read batch by batch from the memory map."""

    def __post_init__(self) -> None:
        _require(bool(self.path), "path", "is required: the dataset directory")
        _require(self.num_workers >= 0, "num_workers", f"must be 0 or more (got {self.num_workers})")
        _require(self.in_memory_limit_mb >= 0, "in_memory_limit_mb", "must be 0 or more")


@dataclass
class ModelSpec:
    """A preset with options, or an ordered list of layers (exactly one of the two)."""

    preset: str | None = None
    """One of mlp, small_cnn, resnet18, resnet34, resnet50, vit_tiny, tab_transformer."""
    options: dict = field(default_factory=dict)
    """Preset options (see docs/engine.md), e.g. {"hidden": [128, 64]} for mlp."""
    layers: list | None = None
    """Layer builder: [{"type": "Conv2d", "out_channels": 6, "kernel_size": 5}, ...]."""

    def __post_init__(self) -> None:
        from .design import PRESETS

        _require((self.preset is None) != (self.layers is None), "preset",
                 "or layers: give exactly one (a preset name, or a list of layers)")
        if self.preset is not None:
            _require(self.preset in PRESETS, "preset", f"{self.preset!r} is not one of {', '.join(PRESETS)}")
        if self.layers is not None:
            _require(len(self.layers) > 0, "layers", "is empty: add at least one layer")
            _require(all(isinstance(layer, dict) and "type" in layer for layer in self.layers), "layers",
                     'must be a list of objects, each with a "type"')

    def as_dict(self) -> dict:
        if self.preset is not None:
            return {"preset": self.preset, "options": dict(self.options)}
        return {"layers": [dict(layer) for layer in self.layers]}


@dataclass
class ScheduleSpec:
    """The learning-rate schedule, stepped once per optimizer step."""

    type: str = "none"
    """none (constant), step (times gamma every step_size epochs), cosine (to 0 at the end), onecycle."""
    step_size: int = 1
    """step: epochs between two decays."""
    gamma: float = 0.1
    """step: the factor applied at each decay."""
    warmup_epochs: float = 0.0
    """Linear warm-up from 0 to lr over this many epochs (none, step, cosine); onecycle warms up on its own."""

    def __post_init__(self) -> None:
        _require(self.type in SCHEDULES, "type", f"{self.type!r} is not one of {', '.join(SCHEDULES)}")
        _require(self.step_size >= 1, "step_size", f"must be 1 or more epochs (got {self.step_size})")
        _positive_number(self.gamma, "gamma")
        _positive_number(self.warmup_epochs, "warmup_epochs", allow_zero=True)


@dataclass
class EarlyStoppingSpec:
    """Stop when a validation metric has not improved for `patience` epochs."""

    metric: str = "val_loss"
    """val_loss, val_accuracy (classification), val_mae, val_rmse, val_r2 (regression)."""
    mode: str | None = None
    """min or max; by default max for val_accuracy and val_r2, min otherwise."""
    patience: int = 3
    """Epochs without improvement before stopping."""
    min_delta: float = 0.0
    """The smallest change that counts as an improvement."""

    def __post_init__(self) -> None:
        known = sorted(set(CLASSIFICATION_METRICS + REGRESSION_METRICS))
        _require(self.metric in known, "metric", f"{self.metric!r} is not one of {', '.join(known)}")
        if self.mode is None:
            self.mode = "max" if self.metric in MAXIMISED_METRICS else "min"
        _require(self.mode in ("min", "max"), "mode", f"must be min or max (got {self.mode!r})")
        _require(self.patience >= 1, "patience", f"must be 1 or more epochs (got {self.patience})")
        _positive_number(self.min_delta, "min_delta", allow_zero=True)


@dataclass
class TrainingSpec:
    """Optimisation: optimizer, batch, epochs, schedule and the numerical settings."""

    optimizer: str = "adam"
    """One of sgd, adam, adamw, adagrad, rmsprop."""
    lr: float = 0.001
    """Learning rate (the peak rate for onecycle); greater than 0."""
    momentum: float = 0.9
    """sgd and rmsprop momentum."""
    nesterov: bool = False
    """sgd only: Nesterov momentum (needs momentum > 0)."""
    weight_decay: float = 0.0
    """L2 penalty (decoupled for adamw)."""
    batch_size: int = 64
    """The GLOBAL batch, split evenly across all processes: it must divide by their number."""
    epochs: int = 10
    """Passes over the training split."""
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    """The learning-rate schedule."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value; null = no clipping."""
    label_smoothing: float = 0.0
    """Classification only: cross-entropy label smoothing in [0, 1)."""
    amp: str = "none"
    """Mixed precision on GPU: none, bf16 or fp16. On CPU, fp16 is refused and bf16 falls back to fp32 with a warning."""
    early_stopping: EarlyStoppingSpec | None = None
    """Stop when a validation metric stops improving; null = train all epochs."""
    seed: int = 0
    """Seeds model initialisation, the data order and augmentation."""
    deterministic: bool = False
    """Deterministic algorithms only (slower on GPU): a resumed run then ends with the same weights."""
    max_steps: int | None = None
    """Stop after this many optimizer steps in all (across resumes); null = no limit."""

    def __post_init__(self) -> None:
        _require(self.optimizer in OPTIMIZERS, "optimizer",
                 f"{self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        _positive_number(self.lr, "lr")
        _positive_number(self.momentum, "momentum", allow_zero=True)
        _require(self.momentum < 1, "momentum", f"must be below 1 (got {self.momentum})")
        if self.nesterov:
            _require(self.optimizer == "sgd", "nesterov", f"applies to sgd only, not {self.optimizer}")
            _require(self.momentum > 0, "nesterov", "needs momentum greater than 0")
        _positive_number(self.weight_decay, "weight_decay", allow_zero=True)
        _require(self.batch_size >= 1, "batch_size", f"must be 1 or more (got {self.batch_size})")
        _require(self.epochs >= 1, "epochs", f"must be 1 or more (got {self.epochs})")
        if self.grad_clip is not None:
            _positive_number(self.grad_clip, "grad_clip")
        _positive_number(self.label_smoothing, "label_smoothing", allow_zero=True)
        _require(self.label_smoothing < 1, "label_smoothing", f"must be below 1 (got {self.label_smoothing})")
        _require(self.amp in AMP_MODES, "amp", f"{self.amp!r} is not one of {', '.join(AMP_MODES)}")
        if self.max_steps is not None:
            _require(self.max_steps >= 1, "max_steps", f"must be 1 or more (got {self.max_steps})")


@dataclass
class InitSpec:
    """Start from earlier weights (transfer learning) instead of a random initialisation."""

    weights: str
    """A .safetensors file: a checkpoint of an earlier run (model.safetensors) or an upload."""
    freeze: list[str] = field(default_factory=list)
    """Layer names whose parameters stay fixed (prefixes, see models.freezable_layers)."""

    def __post_init__(self) -> None:
        _require(bool(self.weights), "weights", "is required: a .safetensors file")
        _require(all(isinstance(name, str) and name for name in self.freeze), "freeze",
                 "must be a list of layer names")


@dataclass
class CheckpointSpec:
    """Where checkpoints go, how many are kept and whether a run resumes from them."""

    dir: str | None = None
    """The run's checkpoint directory; null = no checkpoints (and no resume)."""
    keep_last: int = 2
    """How many of the latest checkpoints to keep (the best one is kept as well)."""
    resume: bool = True
    """Continue from the latest valid checkpoint in dir, if there is one."""
    best_metric: str | None = None
    """The validation metric that picks the best checkpoint; by default the early-stopping metric, else val_loss."""
    best_mode: str | None = None
    """min or max for best_metric; by default max for val_accuracy and val_r2, min otherwise."""
    every_steps: int | None = None
    """Also checkpoint every this many optimizer steps (long epochs); null = at each epoch's end only."""

    def __post_init__(self) -> None:
        _require(self.keep_last >= 1, "keep_last", f"must be 1 or more (got {self.keep_last})")
        if self.best_metric is not None:
            known = sorted(set(CLASSIFICATION_METRICS + REGRESSION_METRICS))
            _require(self.best_metric in known, "best_metric",
                     f"{self.best_metric!r} is not one of {', '.join(known)}")
        _require(self.best_mode in (None, "min", "max"), "best_mode", f"must be min or max (got {self.best_mode!r})")
        if self.every_steps is not None:
            _require(self.every_steps >= 1, "every_steps", f"must be 1 or more (got {self.every_steps})")


@dataclass
class MetricsSpec:
    """Where rank 0 sends events: a Redis Stream, a JSON-lines file, both or neither."""

    redis_url: str | None = None
    """redis://host:port/db; null = no stream."""
    stream: str | None = None
    """The stream key, by convention trainyard:run:<run_id>:events."""
    maxlen: int = 200_000
    """Approximate cap on the stream's length (XADD MAXLEN ~)."""
    jsonl: str | None = None
    """A file that receives every event as one JSON line; null = none."""
    log_every_steps: int = 10
    """Per-step metrics (train_loss, lr, samples_per_s) every this many steps, and at the first step."""
    system_every_seconds: float = 5.0
    """System metrics (cpu_percent, ram_mb, gpu*) at most this often."""

    def __post_init__(self) -> None:
        _require((self.redis_url is None) == (self.stream is None), "stream",
                 "and redis_url go together: give both or neither")
        if self.redis_url is not None:
            _require(self.redis_url.startswith(("redis://", "rediss://", "unix://")), "redis_url",
                     f"must start with redis://, rediss:// or unix:// (got {self.redis_url!r})")
        _require(self.maxlen >= 1000, "maxlen", f"must be at least 1000 (got {self.maxlen})")
        _require(self.log_every_steps >= 1, "log_every_steps", f"must be 1 or more (got {self.log_every_steps})")
        _positive_number(self.system_every_seconds, "system_every_seconds")


@dataclass
class DistributedSpec:
    """How the processes torchrun started talk to each other."""

    backend: str = "auto"
    """auto (nccl with GPUs, gloo without), gloo or nccl."""
    cpu_threads: int | None = None
    """torch threads per process; null = torch's default (torchrun sets 1 per process when it starts several)."""

    def __post_init__(self) -> None:
        _require(self.backend in BACKENDS, "backend", f"{self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.cpu_threads is not None:
            _require(self.cpu_threads >= 1, "cpu_threads", f"must be 1 or more (got {self.cpu_threads})")


@dataclass
class LrFinderSpec:
    """A learning-rate range test instead of training: the rate grows exponentially from start_lr to end_lr,
    one optimizer step each, over at most one epoch; the loss is recorded and a rate suggested."""

    start_lr: float = 1e-7
    """The first step's learning rate."""
    end_lr: float = 10.0
    """The rate the last step would reach."""
    steps: int | None = None
    """Steps in the test; null = one epoch's steps, at most 100 (the test never takes longer than an epoch)."""
    stop_factor: float = 4.0
    """Stop once the smoothed loss exceeds this many times its lowest value (the loss has diverged)."""
    smoothing: float = 0.98
    """The exponential moving average's weight on the past (bias-corrected), 0 = raw losses."""

    def __post_init__(self) -> None:
        _positive_number(self.start_lr, "start_lr")
        _positive_number(self.end_lr, "end_lr")
        _require(self.end_lr > self.start_lr, "end_lr", f"must be greater than start_lr ({self.start_lr})")
        if self.steps is not None:
            _require(self.steps >= 3, "steps", f"must be 3 or more (got {self.steps})")
        _require(self.stop_factor > 1, "stop_factor", f"must be greater than 1 (got {self.stop_factor})")
        _require(0 <= self.smoothing < 1, "smoothing", f"must be in [0, 1) (got {self.smoothing})")


@dataclass
class ControlSpec:
    """Outside control of the loop beyond SIGTERM: the epoch gate a sweep's pruner answers (engine/gate.py), and
    the heartbeat a supervisor watches (engine/liveness.py)."""

    epoch_gate: str | None = None
    """A directory: after each epoch rank 0 writes epoch-<n>.json there and waits for decision-<n>.json
    (continue or prune); null = no gate."""
    gate_timeout_s: float = 60.0
    """How long to wait for a decision before going on without one."""
    heartbeat_dir: str | None = None
    """A directory: each rank keeps rank-<RANK>.json there, rewritten while it makes progress, so that a
    supervisor can tell a hung engine from a slow one (engine/liveness.py); null = none."""
    heartbeat_every_s: float = 2.0
    """How often each rank rewrites its heartbeat file."""

    def __post_init__(self) -> None:
        _positive_number(self.gate_timeout_s, "gate_timeout_s")
        _positive_number(self.heartbeat_every_s, "heartbeat_every_s")


@dataclass
class RunSpec:
    """Everything one training run needs; the engine's only input."""

    run_id: str
    """The run's id, echoed in the result file and the logs."""
    data: DataSpec
    """The dataset and its batches."""
    model: ModelSpec
    """The model: a preset or a list of layers."""
    training: TrainingSpec = field(default_factory=TrainingSpec)
    """Optimisation settings."""
    init: InitSpec | None = None
    """Initial weights for transfer learning; null = random initialisation."""
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    """Checkpoints and resume."""
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    """Where events go."""
    distributed: DistributedSpec = field(default_factory=DistributedSpec)
    """Process-group settings."""
    control: ControlSpec = field(default_factory=ControlSpec)
    """Outside control: the epoch gate."""
    lr_finder: LrFinderSpec | None = None
    """A learning-rate range test instead of training (nothing is checkpointed or tested); null = train."""
    result_file: str | None = None
    """Where rank 0 writes the result JSON at exit; by default result.json in checkpoint.dir (none without one)."""

    def __post_init__(self) -> None:
        _require(bool(str(self.run_id)), "run_id", "is required")
        self.run_id = str(self.run_id)

    @classmethod
    def from_dict(cls, data: dict) -> "RunSpec":
        return _build(cls, data, "")

    def result_path(self) -> Path | None:
        if self.result_file:
            return Path(self.result_file)
        if self.checkpoint.dir:
            return Path(self.checkpoint.dir) / "result.json"
        return None


def load_run_spec(source: str | Path | dict) -> RunSpec:
    """A checked RunSpec from a JSON file path, a JSON string or a dict; SpecError says what is wrong."""
    if isinstance(source, dict):
        data = source
    else:
        text = str(source)
        if not text.lstrip().startswith("{"):
            try:
                text = Path(source).read_text()
            except OSError as error:
                raise SpecError(f"cannot read the run spec {source}: {error.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SpecError(f"the run spec is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise SpecError("the run spec must be a JSON object")
    return RunSpec.from_dict(data)


def resolved_best_metric(spec: RunSpec) -> tuple[str, str]:
    """(metric, mode) that picks the best checkpoint."""
    metric = spec.checkpoint.best_metric or (spec.training.early_stopping.metric
                                            if spec.training.early_stopping else "val_loss")
    mode = spec.checkpoint.best_mode or ("max" if metric in MAXIMISED_METRICS else "min")
    return metric, mode


def check_spec_against_dataset(spec: RunSpec, meta, *, world_size: int = 1) -> None:
    """The checks that need the dataset's meta and the process count; raises SpecError.

    ``meta`` is a dataset_format.DatasetMeta. Model fit (shapes, head width) is checked by
    design.validate_design, which the engine runs as well.
    """
    training = spec.training
    train_size = meta.splits.get("train", 0)
    if training.batch_size > train_size:
        raise SpecError(f"{training.batch_size} is larger than the training split ({train_size} samples): "
                        f"choose a batch of at most {train_size}", field_name="training.batch_size")
    if world_size < 1:
        raise SpecError(f"the number of processes must be 1 or more (got {world_size})")
    if training.batch_size % world_size:
        lower = training.batch_size - training.batch_size % world_size
        raise SpecError(f"{training.batch_size} does not divide evenly across {world_size} processes: "
                        f"choose a multiple of {world_size} such as {lower or world_size} or "
                        f"{lower + world_size}", field_name="training.batch_size")
    for split in ("val", "test"):
        if meta.splits.get(split, 0) < 1:
            raise SpecError(f"the dataset has no {split} split: the engine validates and tests on it")
    if meta.modality != "image" and spec.data.augmentation.enabled:
        raise SpecError("applies to images only; this dataset is a table: turn augmentation off",
                        field_name="data.augmentation")
    if meta.task == "regression":
        if training.label_smoothing:
            raise SpecError("applies to classification only", field_name="training.label_smoothing")
        allowed = REGRESSION_METRICS
    else:
        allowed = CLASSIFICATION_METRICS
    metric, _ = resolved_best_metric(spec)
    if training.early_stopping and training.early_stopping.metric not in allowed:
        raise SpecError(f"{training.early_stopping.metric!r} does not apply to {meta.task}: choose one of "
                        f"{', '.join(allowed)}", field_name="training.early_stopping.metric")
    if metric not in allowed:
        raise SpecError(f"{metric!r} does not apply to {meta.task}: choose one of {', '.join(allowed)}",
                        field_name="checkpoint.best_metric")


# --- a small typed reader for the dataclasses above -------------------------------------------------

def _build(cls, data, path: str):
    if not isinstance(data, dict):
        raise SpecError(f"must be a JSON object, not {type(data).__name__}", field_name=path or None)
    hints = typing.get_type_hints(cls)
    fields = {item.name: item for item in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}: " if path else ""
        raise SpecError(f"{where}unknown field {unknown[0]!r} (known: {', '.join(fields)})")
    values = {}
    for name, item in fields.items():
        if name not in data:
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                raise SpecError("is required", field_name=_join(path, name))
            continue
        values[name] = _convert(hints[name], data[name], _join(path, name))
    try:
        return cls(**values)
    except SpecError as error:
        raise error.under(path) if path else error from None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _convert(hint, value, path: str):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [option for option in typing.get_args(hint) if option is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, path)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if hint is bool:
        if not isinstance(value, bool):
            raise SpecError(f"must be true or false (got {value!r})", field_name=path)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not value.is_integer()):
            raise SpecError(f"must be a whole number (got {value!r})", field_name=path)
        return int(value)
    if hint is float:
        if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "infinity"):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"must be a number (got {value!r})", field_name=path)
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise SpecError(f"must be a string (got {value!r})", field_name=path)
        return str(value)
    if origin is list or hint is list:
        if not isinstance(value, list):
            raise SpecError(f"must be a list (got {value!r})", field_name=path)
        return list(value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise SpecError(f"must be an object (got {value!r})", field_name=path)
        return dict(value)
    return value
