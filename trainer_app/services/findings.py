"""Run health findings: the rules of trainer_app/run_health.py applied to a run's persisted numbers, kept
as RunFinding rows (one per kind of problem, with when it was first and last seen).

Called by the run's supervisor after each batch of events it persists (trainer_app/runner.py), so a
problem shows on the run page within a heartbeat of the epoch that revealed it.
"""
from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from trainer_app import run_health
from trainer_app.models import Run, RunFinding, RunKind
from trainer_app.selectors.run_health import (run_divergence_message, run_epoch_series, run_finding_list,
                                              run_system_samples)

logger = logging.getLogger(__name__)


def run_findings_check(*, run: Run) -> list[dict]:
    """What the rules say about the run now (nothing is saved). A learning-rate finder is left alone: it
    raises the rate until the loss blows up on purpose."""
    if run.kind == RunKind.LR_FINDER:
        return []
    system = run_system_samples(run_id=run.pk) if int((run.resources or {}).get("gpus_per_node") or 0) > 0 else {}
    return run_health.run_findings(
        series=run_epoch_series(run_id=run.pk), task=run.dataset.task, num_classes=run.dataset.num_classes,
        planned_epochs=_int((run.config or {}).get("epochs")), failure=run_divergence_message(run=run),
        gpu_util=system.get("gpu_util", ()), cpu_percent=system.get("cpu_percent", ()),
        samples_per_s=system.get("samples_per_s"))


def run_findings_update(*, run_id: int) -> list[RunFinding]:
    """Check the run and record what is new. A new finding is saved with save(), so its post_save signal
    tells the knowledge graph; one seen again only moves its last-seen time and numbers (an update, no
    graph event: the run's own next event carries them there)."""
    run = Run.objects.select_related("dataset").only(
        "id", "kind", "config", "resources", "exit_code", "error", "dataset__id", "dataset__task",
        "dataset__num_classes").get(id=run_id)
    found = run_findings_check(run=run)
    if not found:
        return run_finding_list(run=run)
    existing = {finding.code: finding for finding in run_finding_list(run=run)}
    now = timezone.now()
    for item in found:
        details = {name: item[name] for name in ("evidence", "explanation", "fix")}
        known = existing.get(item["code"])
        if known is not None:
            RunFinding.objects.filter(pk=known.pk).update(last_seen_at=now, details=details)
            continue
        try:
            with transaction.atomic():
                RunFinding(run=run, code=item["code"], severity=item["severity"], epoch=item["epoch"],
                           step=item["step"], details=details).save()
        except IntegrityError:  # another delivery of the same run recorded it a moment ago
            pass
        else:
            logger.info("run %s: %s (%s)", run_id, item["code"], item["explanation"])
    return run_finding_list(run=run)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
