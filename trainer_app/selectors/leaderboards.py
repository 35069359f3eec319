"""Leaderboards: runs of one dataset ranked by a metric's best, last, min or max; runs that differ only
by seed grouped into one row with mean ± std and n, compared with a pinned baseline by Welch's t-test."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.db.models import Avg, Count, Window

from trainer_app.models import Dataset, LeaderboardBaseline, Run, RunMetric
from trainer_app.selectors.metrics import distinct_names
from trainer_app.selectors.projects import project_list

AGGREGATES = ("best", "last", "min", "max")
MINIMISED = ("loss", "mae", "rmse", "error")
SIGNIFICANCE = 0.05


def metric_direction(name: str) -> str:
    """`min` for losses and errors, `max` for everything else (accuracy, F1, R², throughput)."""
    return "min" if any(part in name for part in MINIMISED) else "max"


def _column(metric: str, aggregate: str) -> str:
    if aggregate == "best":
        return metric_direction(metric)
    return aggregate


@dataclass
class Leaderboard:
    dataset: Dataset
    metric: str
    aggregate: str
    direction: str
    grouped: bool
    rows: list[dict] = field(default_factory=list)
    total: int = 0
    baseline: dict | None = None


def leaderboard_metrics(*, dataset: Dataset) -> list[str]:
    """The metric names the dataset's runs report."""
    return distinct_names(RunMetric, "dataset_id", dataset.pk)


def leaderboard(*, user, dataset: Dataset, metric: str, aggregate: str = "best", group_seeds: bool = True,
                offset: int = 0, limit: int = 50) -> Leaderboard:
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}")
    column = _column(metric, aggregate)
    direction = metric_direction(metric)
    order = column if direction == "min" else f"-{column}"
    visible = _visible_summaries(dataset, metric, user)
    board = Leaderboard(dataset=dataset, metric=metric, aggregate=aggregate, direction=direction, grouped=group_seeds)
    baseline = LeaderboardBaseline.objects.filter(dataset=dataset, metric=metric).first()
    baseline_values = _group_values(visible, baseline.config_key, column) if baseline else []
    if baseline:
        board.baseline = {"config_key": baseline.config_key, "n": len(baseline_values),
                          "mean": _mean(baseline_values), "std": _std(baseline_values)}
    if not group_seeds:
        board.total = visible.count()
        page = visible.select_related("run", "run__design").order_by(order, "run_id")[offset:offset + limit]
        for rank, summary in enumerate(page, start=offset + 1):
            value = getattr(summary, column)
            board.rows.append({"rank": rank, "run": summary.run_id, "name": str(summary.run),
                               "design": str(summary.run.design), "config_key": summary.run.config_key,
                               "seed": summary.run.config.get("seed"), "value": value,
                               "delta": _delta(value, board.baseline)})
        return board
    groups = visible.values("config_key").annotate(mean=Avg(column), n=Count("run_id"))
    # one aggregation for the page and the number of groups (a separate count aggregated every run again)
    page = list(groups.annotate(groups=Window(Count("*")))
                .order_by("mean" if direction == "min" else "-mean", "config_key")[offset:offset + limit])
    board.total = page[0]["groups"] if page else groups.count()
    keys = [group["config_key"] for group in page]
    members: dict[str, list[tuple[int, float]]] = {}
    for run_id, key, value in visible.filter(config_key__in=keys).values_list("run_id", "config_key", column):
        members.setdefault(key, []).append((run_id, value))
    examples = {run.config_key: run for run in Run.objects.filter(id__in=[m[0][0] for m in members.values() if m])
                .select_related("design")}
    for rank, group in enumerate(page, start=offset + 1):
        key = group["config_key"]
        values = [value for _, value in members.get(key, [])]
        example = examples.get(key)
        row = {"rank": rank, "config_key": key, "runs": sorted(run_id for run_id, _ in members.get(key, [])),
               "design": str(example.design) if example else "", "n": group["n"], "mean": group["mean"],
               "std": _std(values), "delta": _delta(group["mean"], board.baseline),
               "is_baseline": bool(baseline and key == baseline.config_key),
               "config": {k: v for k, v in (example.config if example else {}).items() if k != "seed"}}
        row.update(_welch(values, baseline_values) if baseline and key != baseline.config_key else
                   {"p_value": None, "significant": None})
        board.rows.append(row)
    return board


def _visible_summaries(dataset: Dataset, metric: str, user):
    """The metric's summaries of the dataset's runs the user may see, not archived. Summaries carry their run's
    project, config_key and archived flag (the persister copies them; archiving updates them), so this reads
    one covering index and never joins the runs: at 100,000 runs the join was a scan of every run (~105 ms)."""
    projects = list(project_list(user=user).values_list("id", flat=True))
    return RunMetric.objects.filter(dataset_id=dataset.pk, name=metric, project_id__in=projects, archived=False)


def _group_values(visible, config_key: str, column: str) -> list[float]:
    return list(visible.filter(config_key=config_key).values_list(column, flat=True))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _std(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = _mean(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def _delta(value: float | None, baseline: dict | None) -> float | None:
    if value is None or not baseline or baseline.get("mean") is None:
        return None
    return value - baseline["mean"]


def _welch(values: list[float], baseline: list[float]) -> dict:
    """Welch's t-test (unequal variances) of a group against the baseline; needs 2+ runs on each side.

    The statistic and the Welch-Satterthwaite degrees of freedom are computed here and the two-sided p
    from Student's t distribution (scipy.special.stdtr), as scipy.stats.ttest_ind(equal_var=False) does:
    the same p, without ~1 ms of argument handling per call (50 rows on a page)."""
    if len(values) < 2 or len(baseline) < 2:
        return {"p_value": None, "significant": None}
    from scipy.special import stdtr

    share = _std(values) ** 2 / len(values)
    baseline_share = _std(baseline) ** 2 / len(baseline)
    spread = share + baseline_share
    if spread == 0:  # both groups constant
        p_value = 1.0 if _mean(values) == _mean(baseline) else 0.0
    else:
        t = (_mean(values) - _mean(baseline)) / math.sqrt(spread)
        freedom = spread ** 2 / (share ** 2 / (len(values) - 1) + baseline_share ** 2 / (len(baseline) - 1))
        p_value = float(2 * stdtr(freedom, -abs(t)))
    return {"p_value": p_value, "significant": p_value < SIGNIFICANCE}
