"""What the run-health rules read: a run's per-epoch series and recent system samples, and its findings.

Cheap by design, since the persister asks every few seconds while a run trains: the epoch ends are the
steps that carry ``val_loss`` (one point per epoch), and the other series are read at those steps only,
through the (run, name, step) index; system samples are the last few points of each GPU.
"""
from __future__ import annotations

from trainer_app.models import MetricPoint, Run, RunFinding, RunLog, RunMetric
from trainer_app.run_health import FINDING_CONCEPTS, INPUT_BOUND_POINTS

EPOCH_METRICS = ("train_loss", "train_accuracy")


def run_epoch_series(*, run_id: int) -> dict[str, list]:
    """``{"epoch", "step", "train_loss", "val_loss", "train_accuracy"}``, aligned by index, one entry per
    finished epoch that reported both losses (accuracy None where it is missing)."""
    ends = list(MetricPoint.objects.filter(run_id=run_id, name="val_loss").order_by("step")
                .values_list("step", "epoch", "value"))
    at = {(name, step): value for name, step, value in MetricPoint.objects.filter(
        run_id=run_id, name__in=EPOCH_METRICS, step__in=[step for step, _, _ in ends]).values_list("name", "step", "value")}
    series = {"epoch": [], "step": [], "train_loss": [], "val_loss": [], "train_accuracy": []}
    for step, epoch, value in ends:
        if ("train_loss", step) not in at:
            continue
        series["epoch"].append(int(epoch) if epoch is not None else len(series["epoch"]) + 1)
        series["step"].append(step)
        series["val_loss"].append(value)
        series["train_loss"].append(at[("train_loss", step)])
        series["train_accuracy"].append(at.get(("train_accuracy", step)))
    return series


def run_divergence_message(*, run: Run) -> str:
    """The engine's "diverged at step N…" line: the run's error once it is final, else its log."""
    from trainer_app.engine.exit_codes import DIVERGED

    if run.exit_code == DIVERGED and run.error:
        return run.error
    return (RunLog.objects.filter(run_id=run.pk, message__contains="diverged at step").order_by("-entry")
            .values_list("message", flat=True).first()) or ""


def run_system_samples(*, run_id: int) -> dict:
    """The last samples of GPU utilisation (mean over the run's GPUs at each step) and CPU load, and the
    last throughput."""
    names = list(RunMetric.objects.filter(run_id=run_id).values_list("name", flat=True))
    gpus = [name for name in names if name.startswith("gpu") and name.endswith("_util")]
    by_step: dict[int, list[float]] = {}
    for name in gpus:
        for step, value in MetricPoint.objects.filter(run_id=run_id, name=name).order_by("-step").values_list(
                "step", "value")[:INPUT_BOUND_POINTS]:
            by_step.setdefault(step, []).append(value)
    cpu = list(MetricPoint.objects.filter(run_id=run_id, name="cpu_percent").order_by("-step")
               .values_list("value", flat=True)[:INPUT_BOUND_POINTS]) if gpus else []
    throughput = RunMetric.objects.filter(run_id=run_id, name="samples_per_s").values_list("last", flat=True).first()
    return {"gpu_util": [sum(values) / len(values) for _, values in sorted(by_step.items())],
            "cpu_percent": cpu[::-1], "samples_per_s": throughput}


def run_finding_list(*, run: Run) -> list[RunFinding]:
    return list(RunFinding.objects.filter(run=run).order_by("first_seen_at", "id"))


def finding_payload(finding: RunFinding) -> dict:
    """A finding as the API and the run page show it."""
    details = finding.details or {}
    return {"code": finding.code, "severity": finding.severity, "epoch": finding.epoch, "step": finding.step,
            "title": FINDING_TITLES.get(finding.code, finding.code), "concept": FINDING_CONCEPTS.get(finding.code),
            "evidence": details.get("evidence", {}), "explanation": details.get("explanation", ""),
            "fix": details.get("fix", ""), "first_seen_at": finding.first_seen_at,
            "last_seen_at": finding.last_seen_at}


FINDING_TITLES = {"nan": "Loss became NaN", "diverging": "Loss diverging", "flat_loss": "Loss flat from the start",
                  "overfitting": "Overfitting", "underfitting": "Underfitting",
                  "input_bound": "GPU idle while data loads"}
