"""The training loop. The Trainer gets every collaborator injected (model, optimizer, batches, evaluator,
checkpoints, events, the distributed context, the stop request) and owns only the loop's logic.

Steps are global optimizer steps, counted from 1 and continued across resumes. Per-step metrics
(train_loss = mean over the steps since the last point, lr, samples_per_s) go out at the first step a
process runs and every ``log_every_steps``; an epoch's last step instead carries the epoch's values
(train_loss over the epoch, train_accuracy or train_mae, val_*, lr, samples_per_s), so each
(name, step) appears once per process. The loss is checked for NaN/inf at each such point, on values
averaged across ranks, so every rank stops at the same step.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import exit_codes
from .checkpoint import CheckpointManager
from .config import RunSpec
from .data import Splits, TrainBatches
from .distributed import DistributedContext, StopRequest
from .evaluation import Evaluator
from .liveness import Liveness
from .metrics import EventWriter
from .rng import capture_rng_state

logger = logging.getLogger(__name__)


def suggest_learning_rate(curve: list[tuple[float, float]]) -> tuple[float, float]:
    """(suggested, min_loss_lr) from a range test's (lr, smoothed loss) points: a tenth of the rate where the
    loss was lowest (Smith's rule of thumb, safe before the loss turns), or the rate where the loss fell
    fastest if that is lower still. When the smoothed loss never fell by 2 % (a test too short for this model
    and optimizer to move: its lowest point is noise), a twentieth of the rate where it started to diverge
    (or of the last rate tried): safely below that edge, whatever the optimizer."""
    rates = [rate for rate, _ in curve]
    losses = [loss for _, loss in curve]
    lowest = min(range(len(losses)), key=losses.__getitem__)
    min_loss_lr = rates[lowest]
    if losses[lowest] > 0.98 * losses[0]:
        edge = next((rate for rate, loss in curve if loss > 1.1 * losses[lowest]), rates[-1])
        return edge / 20, min_loss_lr
    logs = [math.log10(rate) for rate in rates[:lowest + 1]]
    slopes = [(losses[index + 1] - losses[index - 1]) / (logs[index + 1] - logs[index - 1])
              for index in range(1, len(logs) - 1)]
    steepest = rates[1 + min(range(len(slopes)), key=slopes.__getitem__)] if slopes else min_loss_lr
    return min(min_loss_lr / 10, steepest), min_loss_lr


@dataclass
class TrainState:
    """What a checkpoint needs to continue exactly where it was written."""

    epoch: int = 0
    """The epoch in progress or next to run, from 0."""
    step: int = 0
    """Optimizer steps done."""
    batches_done: int = 0
    """Batches of `epoch` already done (non-zero for a checkpoint written mid-epoch)."""
    best_value: float | None = None
    best_step: int | None = None
    stop_value: float | None = None
    epochs_without_improvement: int = 0
    epoch_loss: float = 0.0
    """Σ (step loss × samples) over the epoch so far."""
    epoch_samples: int = 0
    epoch_correct: float = 0.0
    """Classification: correct predictions this epoch; regression: Σ |error| in target units."""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainState":
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


@dataclass
class Outcome:
    exit_code: int
    state: str
    message: str
    step: int
    epoch: int


class Trainer:
    """Trains one model; ``fit`` returns how the run ended."""

    def __init__(self, *, model: nn.Module, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                 scaler, loss_fn, batches: TrainBatches, splits: Splits, evaluator: Evaluator,
                 checkpoints: CheckpointManager | None, events: EventWriter, context: DistributedContext,
                 stop: StopRequest, spec: RunSpec, state: TrainState, best_metric: tuple[str, str],
                 class_names: list[str], autocast=contextlib.nullcontext, gate=None, liveness: Liveness | None = None):
        self.model = model  # what trains (DDP-wrapped with several ranks)
        self.module = module  # the bare model: evaluation, checkpoints
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.loss_fn = loss_fn
        self.batches = batches
        self.splits = splits
        self.evaluator = evaluator
        self.checkpoints = checkpoints
        self.events = events
        self.context = context
        self.stop = stop
        self.spec = spec
        self.training = spec.training
        self.state = state
        self.best_metric, self.best_mode = best_metric
        self.class_names = class_names
        self.autocast = autocast
        self.gate = gate  # engine/gate.py: asked after each epoch whether to go on (a sweep's pruner)
        self.liveness = liveness or Liveness()  # engine/liveness.py: steps are the progress a supervisor watches
        self._pruned_reason = ""
        self.regression = evaluator.preprocessor.regression
        self.epochs = self.training.epochs
        self.steps_per_epoch = len(batches)
        self.total_steps = min(self.epochs * self.steps_per_epoch, self.training.max_steps or math.inf)
        self._trainable = [parameter for parameter in module.parameters() if parameter.requires_grad]
        self._best_weights: dict | None = None
        self._trained_since_checkpoint = False
        self._logged_first = False
        self._last_lr = optimizer.param_groups[0]["lr"]
        self._reset_window()
        self._local_correct = torch.zeros((), device=context.device)

    # --- the loop ---------------------------------------------------------------------------------

    def fit(self) -> Outcome:
        state = self.state
        self.liveness.progress("training")
        self.events.progress(step=state.step, total_steps=int(self.total_steps), epoch=min(state.epoch + 1,
                             self.epochs), epochs=self.epochs)
        ending = None
        while ending is None:
            if self._stop_agreed():
                ending = "cancelled"
            elif state.step >= self.total_steps:
                ending = "max_steps" if state.epoch < self.epochs else "completed"
            elif state.epoch >= self.epochs:
                ending = "completed"
            else:
                ending = self._run_epoch(state.epoch) or self._end_epoch()
        return self._finish(ending)

    def _run_epoch(self, epoch: int) -> str | None:
        """Train the rest of one epoch; returns an ending when the run must stop before the epoch's end."""
        state = self.state
        self.model.train()
        self._reset_window()
        self._epoch_clock = time.perf_counter()
        self._epoch_trained_samples = 0
        batches = self.batches.epoch(epoch, first_step=state.step + 1, skip=state.batches_done)
        for features, targets in batches:
            loss, correct = self._run_batch(features, targets)
            state.step += 1
            state.batches_done += 1
            self._trained_since_checkpoint = True
            samples = features.shape[0] * self.context.world_size
            self._epoch_trained_samples += samples
            self._window_losses.append(loss)
            self._window_samples += samples
            self._local_correct += correct
            if state.batches_done >= self.steps_per_epoch:
                break  # the epoch's end point carries this step
            if not self._logged_first or state.step % self.spec.metrics.log_every_steps == 0:
                if self._flush_window(emit=True):
                    return "diverged"
            if state.step >= self.total_steps:
                return "max_steps"
            if self._stop_agreed():
                return "cancelled"
            every = self.spec.checkpoint.every_steps
            if every and state.step % every == 0:
                if self._flush_window(emit=False):
                    return "diverged"
                self._save_checkpoint(best=False)
        self._epoch_seconds = time.perf_counter() - self._epoch_clock
        return None

    def _run_batch(self, features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the detached loss and the batch's correct count (or Σ|error|)."""
        self._last_lr = self.optimizer.param_groups[0]["lr"]
        with self.autocast():
            outputs = self.model(features)
            if self.regression:
                outputs = outputs.reshape(-1)
            loss = self.loss_fn(outputs, targets)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.training.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self._trainable, self.training.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.training.grad_clip:
                nn.utils.clip_grad_norm_(self._trainable, self.training.grad_clip)
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        with torch.no_grad():
            if self.regression:
                preprocessor = self.evaluator.preprocessor
                correct = (outputs.detach().float() - targets).abs().sum() * preprocessor.target_std
            else:
                correct = (outputs.detach().argmax(1) == targets).sum()
        self.liveness.beat()
        return loss.detach(), correct

    # --- the learning-rate range test -----------------------------------------------------------------

    def find_lr(self, finder) -> Outcome:
        """Leslie Smith's range test: one optimizer step per rate, the rate growing exponentially from
        ``start_lr`` towards ``end_lr`` over at most one epoch; stops early once the smoothed loss has
        diverged. Emits ``lr_finder_loss`` (smoothed), ``train_loss`` (raw) and ``lr`` at each step, then
        ``lr_finder_suggested_lr`` and ``lr_finder_min_loss_lr``. Nothing is checkpointed."""
        self.liveness.progress("finding the learning rate")
        steps = max(3, min(finder.steps or min(self.steps_per_epoch, 100), self.steps_per_epoch))
        ratio = finder.end_lr / finder.start_lr
        rates = [finder.start_lr * ratio ** (index / (steps - 1)) for index in range(steps)]
        # the moving average must follow the loss within a few steps however short the test is
        smoothing = min(finder.smoothing, 1 - 4 / steps)
        self.model.train()
        average, lowest, curve = 0.0, math.inf, []
        ending = "completed"
        for index, (features, targets) in enumerate(self.batches.epoch(0, first_step=1, skip=0)):
            if index >= steps:
                break
            if self._stop_agreed():
                ending = "cancelled"
                break
            for group in self.optimizer.param_groups:
                group["lr"] = rates[index]
            loss, _ = self._run_batch(features, targets)
            loss = float(self.context.all_reduce_sum(loss.float().reshape(1))[0]) / self.context.world_size
            self.state.step = index + 1
            if not math.isfinite(loss):
                break  # every rank sees the same averaged loss: all stop here
            average = smoothing * average + (1 - smoothing) * loss
            smoothed = average / (1 - smoothing ** (index + 1))
            curve.append((rates[index], smoothed))
            self.events.metrics(step=index + 1, epoch=1, values={"lr_finder_loss": smoothed, "train_loss": loss,
                                                                 "lr": rates[index]})
            lowest = min(lowest, smoothed)
            if index >= 3 and smoothed > finder.stop_factor * lowest:
                break
        if ending == "cancelled":
            return Outcome(exit_codes.CANCELLED, "cancelled", f"cancelled at step {self.state.step}",
                           self.state.step, 1)
        if len(curve) < 3:
            message = (f"the learning-rate range test diverged after {len(curve)} step(s), at lr "
                       f"{rates[len(curve)]:.3g}: lower start_lr")
            return Outcome(exit_codes.FAILED, "failed", message, self.state.step, 1)
        suggested, min_loss_lr = suggest_learning_rate(curve)
        self.events.metrics(step=self.state.step, epoch=1, values={"lr_finder_suggested_lr": suggested,
                                                                   "lr_finder_min_loss_lr": min_loss_lr})
        message = (f"learning-rate range test: {len(curve)} steps from {curve[0][0]:.3g} to {curve[-1][0]:.3g}; "
                   f"suggested lr {suggested:.3g} (the loss was lowest at {min_loss_lr:.3g})")
        logger.info(message)
        return Outcome(exit_codes.SUCCEEDED, "succeeded", message, self.state.step, 1)

    # --- per-step points ---------------------------------------------------------------------------

    def _reset_window(self) -> None:
        self._window_losses: list[torch.Tensor] = []
        self._window_samples = 0
        self._window_clock = time.perf_counter()

    def _flush_window(self, *, emit: bool) -> bool:
        """Average the window's losses across ranks, add them to the epoch, emit a point; True if diverged."""
        if not self._window_losses:
            return False
        state = self.state
        losses = self.context.all_reduce_sum(torch.stack(self._window_losses).float())
        losses = (losses / self.context.world_size).tolist()
        first_step = state.step - len(losses) + 1
        for offset, value in enumerate(losses):
            if not math.isfinite(value):
                self._diverged = (first_step + offset, value)
                return True
        per_step_samples = self._window_samples / len(losses)
        state.epoch_loss += sum(losses) * per_step_samples
        state.epoch_samples += self._window_samples
        if emit:
            seconds = max(time.perf_counter() - self._window_clock, 1e-9)
            self.events.metrics(step=state.step, epoch=state.epoch + 1, values={
                "train_loss": sum(losses) / len(losses), "lr": self._last_lr,
                "samples_per_s": self._window_samples / seconds})
            self.events.progress(step=state.step, total_steps=int(self.total_steps), epoch=state.epoch + 1,
                                 epochs=self.epochs)
            self._logged_first = True
        self._reset_window()
        return False

    def _sync_correct(self) -> None:
        total = self.context.all_reduce_sum(self._local_correct.double())
        self.state.epoch_correct += float(total)
        self._local_correct = torch.zeros((), device=self.context.device)

    # --- epoch end ---------------------------------------------------------------------------------

    def _end_epoch(self) -> str | None:
        """Validate, emit the epoch's point, checkpoint, decide on early stopping."""
        state = self.state
        if self._flush_window(emit=False):
            return "diverged"
        self._sync_correct()
        samples = max(state.epoch_samples, 1)
        values = {"train_loss": state.epoch_loss / samples, "lr": self._last_lr}
        values["train_mae" if self.regression else "train_accuracy"] = state.epoch_correct / samples
        if self._epoch_trained_samples:
            values["samples_per_s"] = self._epoch_trained_samples / max(self._epoch_seconds, 1e-9)
        validation, _ = self.evaluator.evaluate(self.module, self.splits.val)
        values.update({f"val_{name}": value for name, value in validation.items() if name != "macro_f1"})
        self.events.metrics(step=state.step, epoch=state.epoch + 1, values=values)
        improved = self._track_best(values)
        stop_early = self._track_early_stopping(values)
        state.epoch += 1
        state.batches_done = 0
        state.epoch_loss, state.epoch_samples, state.epoch_correct = 0.0, 0, 0.0
        self.events.progress(step=state.step, total_steps=int(self.total_steps), epoch=state.epoch,
                             epochs=self.epochs)
        self._save_checkpoint(best=improved, epoch=state.epoch)
        with self.liveness.waiting("sending events"):  # bounded by the sink's flush timeout
            self.events.flush()
        if self.gate is not None:
            with self.liveness.waiting("waiting for the epoch gate"):  # bounded by the gate's timeout
                reason = self.gate.ask(state.epoch, values)  # asked after the last epoch too: the judge records it
            if reason is not None and state.epoch < self.epochs:
                self._pruned_reason = reason
                logger.info("pruned after epoch %d: %s", state.epoch, reason)
                return "pruned"
        if stop_early:
            logger.info("early stopping after epoch %d: %s has not improved for %d epochs", state.epoch,
                        self.training.early_stopping.metric, self.training.early_stopping.patience)
            return "early_stopped"
        return None

    def _better(self, value: float, best: float | None, mode: str, delta: float = 0.0) -> bool:
        if best is None:
            return True
        return value < best - delta if mode == "min" else value > best + delta

    def _track_best(self, values: dict) -> bool:
        value = values.get(self.best_metric)
        if value is None or not math.isfinite(value) or not self._better(value, self.state.best_value,
                                                                           self.best_mode):
            return False
        self.state.best_value, self.state.best_step = value, self.state.step
        return True

    def _track_early_stopping(self, values: dict) -> bool:
        rule = self.training.early_stopping
        if rule is None:
            return False
        value = values.get(rule.metric)
        if value is not None and math.isfinite(value) and self._better(value, self.state.stop_value, rule.mode,
                                                                       rule.min_delta):
            self.state.stop_value = value
            self.state.epochs_without_improvement = 0
            self._best_weights = {name: tensor.detach().to("cpu", copy=True)
                                  for name, tensor in self.module.state_dict().items()}
            return False
        self.state.epochs_without_improvement += 1
        return self.state.epochs_without_improvement >= rule.patience

    # --- checkpoints -----------------------------------------------------------------------------

    def _save_checkpoint(self, *, best: bool, epoch: int | None = None) -> None:
        """Every rank calls this (RNG states are gathered); rank 0 writes."""
        if self.checkpoints is None:
            return
        with self.liveness.waiting("checkpointing"):
            self._write_checkpoint(best=best, epoch=epoch)

    def _write_checkpoint(self, *, best: bool, epoch: int | None) -> None:
        if self.state.batches_done:
            self._sync_correct()
        rng_states = self.context.gather_to_main(capture_rng_state())
        self._trained_since_checkpoint = False
        if not self.context.is_main:
            return
        state = {"run_id": self.spec.run_id, "trainer": self.state.as_dict(),
                 "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                 "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                 "rng": rng_states, "world_size": self.context.world_size, "time": time.time()}
        path = self.checkpoints.save(step=self.state.step, weights=self.module.state_dict(), state=state,
                                     best=best, best_metric=(self.best_metric, self.state.best_value)
                                     if best else None)
        self.events.checkpoint(epoch=epoch if epoch is not None else self.state.epoch + 1, step=self.state.step,
                               path=str(path), best=best)

    # --- the end -----------------------------------------------------------------------------------

    def _stop_agreed(self) -> bool:
        return self.context.any(self.stop.requested)

    def _finish(self, ending: str) -> Outcome:
        state = self.state
        epoch = min(state.epoch + (1 if state.batches_done else 0), self.epochs) or 1
        if ending in ("cancelled", "max_steps") and self._flush_window(emit=True):
            ending = "diverged"
        if ending == "diverged":
            step, value = self._diverged
            message = f"diverged at step {step}: the training loss became {value}"
            logger.error("%s; the last good checkpoint is kept", message)
            return Outcome(exit_codes.DIVERGED, "diverged", message, state.step, epoch)
        if ending == "pruned":
            return Outcome(exit_codes.PRUNED, "pruned", f"pruned after epoch {state.epoch}: {self._pruned_reason}",
                           state.step, state.epoch)
        if ending == "cancelled":
            if self._trained_since_checkpoint:
                self._save_checkpoint(best=False)
            reason = f" ({self.stop.signal_name})" if self.stop.requested else " (another rank was stopped)"
            message = f"cancelled at step {state.step}{reason}"
            logger.info(message)
            return Outcome(exit_codes.CANCELLED, "cancelled", message, state.step, epoch)
        if ending == "max_steps" and self._trained_since_checkpoint:
            self._save_checkpoint(best=False)
        if ending == "early_stopped" and self._best_weights is not None:
            self.module.load_state_dict(self._best_weights)
            logger.info("testing the weights of the best epoch (%s = %.6g)", self.training.early_stopping.metric,
                        self.state.stop_value)
        self._test(epoch)
        message = {"completed": f"finished {self.epochs} epochs", "max_steps": f"reached max_steps {state.step}",
                   "early_stopped": f"early stopping after epoch {state.epoch}"}[ending]
        return Outcome(exit_codes.SUCCEEDED, "succeeded", message, state.step, epoch)

    def _test(self, epoch: int) -> None:
        values, confusion = self.evaluator.evaluate(self.module, self.splits.test)
        self.events.metrics(step=self.state.step, epoch=epoch,
                            values={f"test_{name}": value for name, value in values.items()})
        if confusion is not None:
            self.events.confusion_matrix(step=self.state.step, split="test", labels=self.class_names,
                                         matrix=confusion)
        logger.info("test: %s", ", ".join(f"{name} {value:.4f}" for name, value in values.items()))
