"""Leaderboard actions: leads pin a baseline; exports are safe to open in a spreadsheet."""
from __future__ import annotations

import csv
import io

from django.core.exceptions import PermissionDenied, ValidationError

from trainer_app.models import Dataset, LeaderboardBaseline, Role, Run
from trainer_app.selectors import user_project_role

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def leaderboard_pin_baseline(*, user, dataset: Dataset, metric: str, config_key: str) -> LeaderboardBaseline:
    """Only a project's leads and admins pin the baseline the others are compared with."""
    if user_project_role(user, dataset.project) not in (Role.LEAD, Role.ADMIN):
        raise PermissionDenied("Only the project's leads and admins can pin a baseline.")
    if not Run.objects.filter(dataset=dataset, config_key=config_key).exists():
        raise ValidationError({"config_key": "No run of this dataset has that configuration: pin a row of the "
                                             "leaderboard."})
    baseline, _ = LeaderboardBaseline.objects.update_or_create(
        dataset=dataset, metric=metric, defaults={"config_key": config_key, "project": dataset.project,
                                                  "pinned_by": user})
    return baseline


def spreadsheet_safe(value) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def leaderboard_csv(board) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if board.grouped:
        writer.writerow(["rank", "design", "runs", "n", f"{board.metric} mean", f"{board.metric} std",
                         "delta vs baseline", "p (Welch)", "significant", "config"])
        for row in board.rows:
            writer.writerow([spreadsheet_safe(cell) for cell in (
                row["rank"], row["design"], " ".join(map(str, row["runs"])), row["n"], row["mean"], row["std"],
                row["delta"], row["p_value"], row["significant"], row["config"])])
    else:
        writer.writerow(["rank", "run", "name", "design", "seed", board.metric, "delta vs baseline"])
        for row in board.rows:
            writer.writerow([spreadsheet_safe(cell) for cell in (
                row["rank"], row["run"], row["name"], row["design"], row["seed"], row["value"], row["delta"])])
    return buffer.getvalue()
