"""Optimizers and learning-rate schedules from the spec.

Every schedule steps once per optimizer step. For none, step and cosine the rate is lr × factor(step)
(a LambdaLR): linear warm-up over ``warmup_epochs`` (from lr / warmup steps up to lr), then constant (none),
× gamma every ``step_size`` epochs (step), or half a cosine down to 0 at the last step (cosine).
onecycle is torch's OneCycleLR with max_lr = lr over the run's total steps (it warms up on its own and
cycles momentum as well, when the optimizer has one).
"""
from __future__ import annotations

import math

import torch

from .config import ScheduleSpec, SpecError, TrainingSpec


def build_optimizer(parameters, spec: TrainingSpec) -> torch.optim.Optimizer:
    parameters = [parameter for parameter in parameters if parameter.requires_grad]
    if not parameters:
        raise SpecError("froze every parameter: nothing would train; leave at least the head unfrozen",
                        field_name="init.freeze")
    decay = spec.weight_decay
    if spec.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                               weight_decay=decay)
    if spec.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=spec.lr, weight_decay=decay)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=spec.lr, weight_decay=decay)
    if spec.optimizer == "adagrad":
        return torch.optim.Adagrad(parameters, lr=spec.lr, weight_decay=decay)
    if spec.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=spec.lr, momentum=spec.momentum, weight_decay=decay)
    raise ValueError(f"unknown optimizer {spec.optimizer!r}")


def schedule_factor(schedule: ScheduleSpec, *, steps_per_epoch: int, total_steps: int):
    """factor(step) for the LambdaLR schedules (step counts optimizer steps done, from 0)."""
    warmup = int(round(schedule.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule.type == "step":
            return schedule.gamma ** ((step // steps_per_epoch) // schedule.step_size)
        if schedule.type == "cosine":
            span = max(total_steps - warmup, 1)
            return 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span))
        return 1.0

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, spec: TrainingSpec, *, steps_per_epoch: int,
                    total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    if spec.schedule.type == "onecycle":
        # one step of headroom: OneCycleLR refuses to be stepped past total_steps
        defaults = optimizer.defaults
        cycle_momentum = "betas" in defaults or defaults.get("momentum", 0) > 0
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec.lr, total_steps=total_steps + 1,
                                                   cycle_momentum=cycle_momentum)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, schedule_factor(spec.schedule, steps_per_epoch=steps_per_epoch, total_steps=total_steps))
