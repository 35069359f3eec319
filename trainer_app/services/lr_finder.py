"""The learning-rate finder: a short run (kind lr_finder) that sweeps the learning rate over at most one
epoch and suggests one (the engine's range test, trainer_app/engine/trainer.py `find_lr`)."""
from __future__ import annotations

from trainer_app.models import MetricPoint, Run, RunKind
from trainer_app.services.runs import run_create


def lr_finder_create(*, project, dataset, design, config: dict, resources: dict, queue_name: str, created_by,
                     fine_tune_from=None, freeze: list[str] | None = None) -> Run:
    """Checked like any run (a model that does not fit the data is refused with the designer's message), then
    queued: one epoch at most, no schedule, no early stopping, nothing checkpointed."""
    config = {**config, "epochs": 1, "schedule": {"type": "none"}, "early_stopping": None, "max_steps": None}
    return run_create(project=project, dataset=dataset, design=design, config=config, resources=resources,
                      queue_name=queue_name, created_by=created_by, name=f"learning-rate finder · {design}",
                      fine_tune_from=fine_tune_from, freeze=freeze, kind=RunKind.LR_FINDER)


def lr_finder_result(*, run: Run) -> dict:
    """The curve (lr, smoothed loss) so far and, once finished, the suggestion."""
    points = {}
    for name, step, value in MetricPoint.objects.filter(run=run, name__in=("lr", "lr_finder_loss")).values_list(
            "name", "step", "value"):
        points.setdefault(step, {})[name] = value
    curve = [{"lr": point["lr"], "loss": point["lr_finder_loss"]} for _, point in sorted(points.items())
             if "lr" in point and "lr_finder_loss" in point]
    from trainer_app.selectors.runs import run_summary_values

    summary = run_summary_values(run)
    return {"run": run.pk, "status": run.status, "error": run.error, "curve": curve,
            "suggested_lr": summary.get("lr_finder_suggested_lr"),
            "min_loss_lr": summary.get("lr_finder_min_loss_lr")}
