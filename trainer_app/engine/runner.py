"""The entry point's body: read the spec, join the process group, build everything, train, report.

``run(spec)`` returns the process's exit code (exit_codes). It is the only place that sets up and tears
down the process group, builds the collaborators and hands them to the Trainer. Rank 0 sends the
events and writes the result file; every rank returns the same code.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import exit_codes
from .checkpoint import CheckpointManager, WeightsError, load_init_weights
from .config import MetricsSpec, RunSpec, SpecError, check_spec_against_dataset, load_run_spec, \
    resolved_best_metric
from .data import Preprocessor, TrainBatches, open_splits
from .dataset_format import read_meta
from .design import DesignError
from .distributed import DistributedContext, StopRequest, init_distributed, teardown
from .evaluation import Evaluator
from .metrics import EventLogHandler, EventWriter, MetricSink, build_sink
from .models import build_model, freeze
from .optim import build_optimizer, build_scheduler
from .rng import restore_rng_state, seed_everything, set_deterministic
from .system import SystemMonitor
from .gate import EpochGate
from .liveness import Liveness
from .trainer import Outcome, Trainer, TrainState

logger = logging.getLogger("trainer_app.engine")
REFUSALS = (SpecError, DesignError, WeightsError)


def configure_logging(rank: int) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("trainer_app.engine")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def run(source, *, stop: StopRequest | None = None, marks: dict | None = None,
        liveness: Liveness | None = None) -> int:
    """Train the run a spec describes (a path, JSON text or a dict); returns the exit code. `liveness` is the
    rank's heartbeat (engine/liveness.py), started by the entry point before the slow imports."""
    liveness = liveness or Liveness()
    marks = dict(marks or {})
    marks.setdefault("imports_done", time.time())
    stop = stop or StopRequest().install()
    try:
        spec = load_run_spec(source)
        if os.environ.get("RANK", "0") == "0" and spec.result_path() is not None:
            spec.result_path().unlink(missing_ok=True)  # an earlier attempt's result must not outlive this one
    except SpecError as error:
        configure_logging(int(os.environ.get("RANK", "0")))
        logger.error("run spec refused: %s", error)
        _report_unreadable_spec(source, str(error))
        return exit_codes.SPEC_REFUSED
    try:
        context = init_distributed(spec.distributed.backend)
    except Exception as error:  # a refused backend, or a rendezvous that failed
        configure_logging(int(os.environ.get("RANK", "0")))
        logger.error("cannot join the job: %s", error)
        context = DistributedContext(rank=int(os.environ.get("RANK", "0")))
        outcome = Outcome(exit_codes.SPEC_REFUSED, "failed", str(error), 0, 0) if isinstance(error, SpecError) \
            else _failed(error, stop)
        return _report(spec, context, _events_for(spec, context), outcome)
    configure_logging(context.rank)
    events = _events_for(spec, context)
    handler = None
    if context.is_main:
        handler = EventLogHandler(events)
        logger.addHandler(handler)
    try:
        if context.any(stop.requested):  # cancelled while starting: skip loading and building
            outcome = Outcome(exit_codes.CANCELLED, "cancelled", "cancelled before training started", 0, 0)
        else:
            outcome = _train(spec, context, events, stop, marks, liveness)
    except REFUSALS as error:
        logger.error("refused: %s", error)
        outcome = Outcome(exit_codes.SPEC_REFUSED, "failed", str(error), 0, 0)
    except Exception as error:
        logger.exception("training failed")
        outcome = _failed(error, stop)
    finally:
        if handler is not None:
            logger.removeHandler(handler)
    liveness.wait("finishing")  # flushing events and tearing down make no steps
    return _report(spec, context, events, outcome)


def _failed(error: Exception, stop: StopRequest) -> Outcome:
    """The outcome of an exception. After this rank's SIGTERM it is the cancel's: a cancel or preemption that
    lands while the job still starts can break its rendezvous or a peer that had no handler yet, and the
    user asked it to stop (the error stays in the message)."""
    message = f"{type(error).__name__}: {error}"
    if stop.requested:
        return Outcome(exit_codes.CANCELLED, "cancelled", f"cancelled ({stop.signal_name}); it stopped on {message}",
                       0, 0)
    return Outcome(exit_codes.FAILED, "failed", message, 0, 0)


def _events_for(spec: RunSpec, context: DistributedContext) -> EventWriter:
    """Rank 0's sinks; the no-op base elsewhere, or when the sinks cannot be opened (training goes on)."""
    metrics = spec.metrics
    if not context.is_main:
        return EventWriter(MetricSink())
    try:
        return EventWriter(build_sink(redis_url=metrics.redis_url, stream=metrics.stream, maxlen=metrics.maxlen,
                                      jsonl=metrics.jsonl))
    except Exception as error:
        logging.getLogger("trainer_app.engine").error("metrics sinks unavailable, no events will be sent: %s",
                                                      error)
        return EventWriter(MetricSink())


def _report(spec: RunSpec, context: DistributedContext, events: EventWriter, outcome: Outcome) -> int:
    """The summary and final status events, the result file, teardown; returns the exit code."""
    if context.is_main:
        events.summary(step=max(outcome.step, events.last_step), state=outcome.state)
        events.status(outcome.state, outcome.message, exit_code=outcome.exit_code)
        events.close()
        path = spec.result_path()
        if path is not None:
            exit_codes.write_result(path, exit_code=outcome.exit_code, state=outcome.state, message=outcome.message,
                                    run_id=spec.run_id, step=outcome.step, epoch=outcome.epoch,
                                    summary=events.last_values)
    teardown(context)
    return outcome.exit_code


def _report_unreadable_spec(source, message: str) -> None:
    """Best effort for a refused spec: tell the stream and the result file if the spec says where they are."""
    try:
        raw = source if isinstance(source, dict) else json.loads(Path(source).read_text())
        metrics = MetricsSpec(**raw.get("metrics", {}))
        events = EventWriter(build_sink(redis_url=metrics.redis_url, stream=metrics.stream, maxlen=metrics.maxlen,
                                        jsonl=metrics.jsonl))
        events.status("failed", message, exit_code=exit_codes.SPEC_REFUSED)
        events.close()
        result = raw.get("result_file") or (Path(raw["checkpoint"]["dir"]) / exit_codes.RESULT_FILE_NAME
                                            if (raw.get("checkpoint") or {}).get("dir") else None)
        if result:
            exit_codes.write_result(result, exit_code=exit_codes.SPEC_REFUSED, state="failed", message=message,
                                    run_id=str(raw.get("run_id", "")))
    except Exception:  # the spec is broken: there may be nothing to report to
        pass


def _amp(spec: RunSpec, device: torch.device):
    """(autocast context factory, GradScaler or None) for the spec's amp mode on this device."""
    mode = spec.training.amp
    if mode == "none":
        return contextlib.nullcontext, None
    if device.type != "cuda":
        if mode == "fp16":
            raise SpecError("fp16 needs a GPU and this run has none: choose none (or bf16, which falls back to "
                            "fp32 on CPU)", field_name="training.amp")
        logger.warning("training.amp bf16 applies on GPU only: this CPU run trains in fp32")
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def _train(spec: RunSpec, context: DistributedContext, events: EventWriter, stop: StopRequest,
           marks: dict, liveness: Liveness) -> Outcome:
    meta = read_meta(Path(spec.data.path))
    check_spec_against_dataset(spec, meta, world_size=context.world_size)
    autocast, scaler = _amp(spec, context.device)
    if spec.distributed.cpu_threads:
        torch.set_num_threads(spec.distributed.cpu_threads)
    set_deterministic(spec.training.deterministic)
    seed_everything(spec.training.seed)
    splits = open_splits(spec.data.path, in_memory_limit_mb=spec.data.in_memory_limit_mb)
    marks["data_loaded"] = time.time()
    module = _build_module(spec, meta, context)
    trainer = _assemble_trainer(spec, context, events, stop, meta, splits, module, autocast, scaler, liveness)
    marks["model_ready"] = time.time()
    events.status("running", f"training on {context.world_size} process(es), {context.device}",
                  startup=marks, resumed_from_step=trainer.state.step or None)
    logger.info("run %s: %d steps per epoch, %d epochs, global batch %d on %d process(es)", spec.run_id,
                trainer.steps_per_epoch, spec.training.epochs, spec.training.batch_size, context.world_size)
    monitor = None
    if context.is_main:
        monitor = SystemMonitor(interval=spec.metrics.system_every_seconds,
                                device_index=context.device.index if context.device.type == "cuda" else None,
                                current_step=lambda: (trainer.state.step, trainer.state.epoch + 1),
                                emit=lambda step, epoch, values: events.metrics(step=step, epoch=epoch,
                                                                                values=values)).start()
    try:
        return trainer.find_lr(spec.lr_finder) if spec.lr_finder is not None else trainer.fit()
    finally:
        if monitor is not None:
            monitor.stop()


def _build_module(spec: RunSpec, meta, context: DistributedContext) -> nn.Module:
    """The model on this rank's device, with initial weights loaded and layers frozen as the spec says."""
    outputs = meta.num_classes if meta.task == "classification" else 1
    module = build_model(spec.model.as_dict(), meta.input_shape, outputs)
    if spec.init is not None:
        loaded = load_init_weights(module, spec.init.weights)
        logger.info("initial weights from %s (%d tensors%s)", spec.init.weights, loaded["loaded"],
                    f", head {loaded['replaced_head']} replaced" if loaded["replaced_head"] else "")
        if spec.init.freeze:
            try:
                frozen = freeze(module, spec.init.freeze)
            except ValueError as error:
                raise SpecError(str(error)) from None
            logger.info("frozen: %d parameter tensors under %s", len(frozen), ", ".join(spec.init.freeze))
    if context.rank:
        torch.manual_seed(spec.training.seed + context.rank)  # distinct dropout masks on each rank
    return module.to(context.device)


def _assemble_trainer(spec: RunSpec, context: DistributedContext, events: EventWriter, stop: StopRequest, meta,
                      splits, module: nn.Module, autocast, scaler, liveness: Liveness | None = None) -> Trainer:
    """The Trainer and every collaborator it gets: batches, optimizer, schedule, checkpoints, evaluator."""
    per_rank_batch = spec.training.batch_size // context.world_size
    preprocessor = Preprocessor(meta, context.device)
    batches = TrainBatches(splits.train, preprocessor, batch_size=per_rank_batch, rank=context.rank,
                           world_size=context.world_size, seed=spec.training.seed,
                           augmentation=spec.data.augmentation, num_workers=spec.data.num_workers)
    total_steps = min(spec.training.epochs * len(batches), spec.training.max_steps or 1 << 62)
    optimizer = build_optimizer(module.parameters(), spec.training)
    scheduler = None
    if spec.training.schedule.type != "none" or spec.training.schedule.warmup_epochs:
        scheduler = build_scheduler(optimizer, spec.training, steps_per_epoch=len(batches), total_steps=total_steps)
    checkpoints = CheckpointManager(spec.checkpoint.dir, keep_last=spec.checkpoint.keep_last) \
        if spec.checkpoint.dir else None
    state = _resume(spec, context, checkpoints, module, optimizer, scheduler, scaler)
    model = module
    if context.distributed:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    if meta.task == "classification":
        loss_fn = nn.CrossEntropyLoss(label_smoothing=spec.training.label_smoothing)
    else:
        loss_fn = F.mse_loss
    evaluator = Evaluator(preprocessor=preprocessor, context=context, num_classes=meta.num_classes,
                          batch_size=max(2 * per_rank_batch, 64), autocast=autocast, liveness=liveness)
    gate = EpochGate(spec.control.epoch_gate, timeout_s=spec.control.gate_timeout_s, context=context, stop=stop) \
        if spec.control.epoch_gate else None
    return Trainer(model=model, module=module, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                   loss_fn=loss_fn, batches=batches, splits=splits, evaluator=evaluator, checkpoints=checkpoints,
                   events=events, context=context, stop=stop, spec=spec, state=state,
                   best_metric=resolved_best_metric(spec),
                   class_names=meta.class_names or [str(index) for index in range(meta.num_classes)],
                   autocast=autocast, gate=gate, liveness=liveness)


def _resume(spec: RunSpec, context: DistributedContext, checkpoints: CheckpointManager | None, module: nn.Module,
            optimizer, scheduler, scaler) -> TrainState:
    """Load the latest whole checkpoint into every collaborator; a fresh TrainState when there is none."""
    if checkpoints is None or not spec.checkpoint.resume:
        return TrainState()
    checkpoint = checkpoints.latest()
    if checkpoint is None:
        return TrainState()
    state = checkpoint.state
    module.load_state_dict(checkpoint.weights())
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    rng_states = state.get("rng") or []
    if len(rng_states) == context.world_size:
        restore_rng_state(rng_states[context.rank])
    else:
        logger.warning("the checkpoint was written by %d process(es), this run has %d: random streams restart, "
                       "so the run will not repeat exactly", len(rng_states), context.world_size)
    trainer_state = TrainState.from_dict(state["trainer"])
    logger.info("resumed from %s (epoch %d, step %d)", checkpoint.path, trainer_state.epoch + 1, trainer_state.step)
    return trainer_state
