"""Optuna, as Trainyard uses it: the storage in our own database, search spaces, samplers, pruners, and
why a pruner stopped a trial.

Optuna keeps studies in its RDB storage, in the same database as Django (DESIGN.md). It does not store
samplers or pruners: every process rebuilds them from the sweep's row with ``build_sampler`` and
``build_pruner``. The storage tables are created once, by migration 0004, never concurrently.
"""
from __future__ import annotations

import functools
import logging
import math
from urllib.parse import quote

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "grid", "cmaes", "nsga2", "qmc")
PRUNERS = ("none", "median", "asha", "hyperband")
PARAMETER_TYPES = ("float", "int", "categorical")
DIRECTIONS = ("maximize", "minimize")
MODEL_PREFIX = "model."
"""Search-space names under this prefix change the model, not the training settings (a design space)."""
PRUNING_REDUCTION_FACTOR = 3
GRID_LIMIT = 100_000


# --- storage ---------------------------------------------------------------------------------------

def storage_url(settings_dict: dict | None = None) -> str:
    """SQLAlchemy's URL for Django's default database (the test database under pytest)."""
    if settings_dict is None:
        from django.db import connection

        settings_dict = connection.settings_dict
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    if "postgresql" in engine:
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
        credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgresql+psycopg://{credentials}{host}:{port}/{settings_dict['NAME']}"
    raise ValueError(f"Optuna storage is not set up for the database engine {engine}")


@functools.lru_cache(maxsize=4)
def _storage(url: str):
    import optuna

    if url.startswith("sqlite"):
        # SQLite: WAL like Django's connection, and wait for a writer instead of failing with "database is locked"
        from sqlalchemy import event

        storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}},
                                             skip_compatibility_check=True)
        event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # connections made before the listener: gone
        return storage
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True, "pool_size": 2, "max_overflow": 4},
                                      skip_compatibility_check=True)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def storage():
    """The process's Optuna storage on Django's database (created once per process and URL)."""
    url = storage_url()
    _opened.add(url)
    return _storage(url)


def close_storages() -> None:
    """Close every storage's connections (before a database is dropped, e.g. after a test session)."""
    for storage_url_ in list(_opened):
        _storage(storage_url_).engine.dispose()
    _opened.clear()
    _storage.cache_clear()


_opened: set[str] = set()


def create_tables(settings_dict: dict) -> None:
    """Create Optuna's tables (migration 0004): constructing an RDBStorage creates what is missing."""
    import optuna

    optuna.storages.RDBStorage(storage_url(settings_dict), skip_compatibility_check=True).engine.dispose()


# --- search spaces ---------------------------------------------------------------------------------

class SearchSpaceError(ValueError):
    """A search space that cannot be searched; `field` names the parameter."""

    def __init__(self, message: str, field: str = "search_space"):
        self.field = field
        super().__init__(message)


def _number(spec: dict, key: str, name: str) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SearchSpaceError(f"{name}: {key} must be a number (got {value!r}).", name)
    return value


def normalise_search_space(raw) -> tuple[dict, list[str]]:
    """Check a search space as the user wrote it; returns (the normalised space, warnings)."""
    if not isinstance(raw, dict) or not raw:
        raise SearchSpaceError('The search space is empty: add at least one parameter, e.g. {"lr": {"type": '
                               '"float", "low": 0.0001, "high": 0.1, "log": true}}.')
    space, warnings = {}, []
    for name, spec in raw.items():
        if not isinstance(name, str) or not name or len(name) > 64:
            raise SearchSpaceError(f"{name!r}: a parameter name is 1 to 64 characters.")
        if not isinstance(spec, dict):
            raise SearchSpaceError(f"{name}: give an object with a type (float, int or categorical).", name)
        kind = spec.get("type")
        if kind not in PARAMETER_TYPES:
            raise SearchSpaceError(f"{name}: type {kind!r} is not one of {', '.join(PARAMETER_TYPES)}.", name)
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise SearchSpaceError(f"{name}: a categorical parameter needs a non-empty list of choices.", name)
            if any(not isinstance(choice, (str, int, float, bool)) and choice is not None for choice in choices):
                raise SearchSpaceError(f"{name}: choices must be strings, numbers, booleans or null.", name)
            if len({repr(choice) for choice in choices}) != len(choices):
                raise SearchSpaceError(f"{name}: a choice is listed twice.", name)
            if len(choices) == 1:
                warnings.append(f"{name} has one choice ({choices[0]!r}): it is fixed, not searched. Move it to the "
                                "training settings or add choices.")
            space[name] = {"type": "categorical", "choices": list(choices)}
            continue
        low, high = _number(spec, "low", name), _number(spec, "high", name)
        log = bool(spec.get("log", False))
        step = spec.get("step")
        if kind == "int":
            if int(low) != low or int(high) != high:
                raise SearchSpaceError(f"{name}: an int parameter needs whole-number bounds (got {low}..{high}).", name)
            low, high = int(low), int(high)
            step = 1 if step is None else step
        if low > high:
            raise SearchSpaceError(f"{name}: low ({low}) is greater than high ({high}); swap them.", name)
        if log and low <= 0:
            raise SearchSpaceError(f"{name}: a log scale needs low > 0 (got {low}); use e.g. 1e-5, or turn log off.",
                                   name)
        if step is not None:
            step = _number({"step": step}, "step", name)
            if step <= 0:
                raise SearchSpaceError(f"{name}: step must be greater than 0 (got {step}).", name)
            if log and not (kind == "int" and step == 1):
                raise SearchSpaceError(f"{name}: a log scale cannot have a step; drop one of the two.", name)
            if kind == "int" and int(step) != step:
                raise SearchSpaceError(f"{name}: an int parameter needs a whole-number step (got {step}).", name)
        if low == high:
            warnings.append(f"{name} has low = high = {low}: it is fixed, not searched.")
        entry = {"type": kind, "low": low, "high": high, "log": log}
        if step is not None:
            entry["step"] = int(step) if kind == "int" else step
        space[name] = entry
    return space, warnings


def distributions(space: dict) -> dict:
    """Optuna's distributions for a normalised search space (what `study.ask` takes)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    result = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            result[name] = CategoricalDistribution(spec["choices"])
        elif spec["type"] == "int":
            result[name] = IntDistribution(spec["low"], spec["high"], log=spec["log"], step=spec.get("step", 1))
        else:
            result[name] = FloatDistribution(spec["low"], spec["high"], log=spec["log"], step=spec.get("step"))
    return result


def grid_values(space: dict) -> dict[str, list]:
    """Each parameter's grid points; a float without a step has none (it is continuous)."""
    grid = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            grid[name] = list(spec["choices"])
        elif spec["type"] == "int":
            grid[name] = list(range(spec["low"], spec["high"] + 1, spec["step"]))
        elif spec.get("step"):
            count = int(math.floor((spec["high"] - spec["low"]) / spec["step"] + 1e-9)) + 1
            if count > GRID_LIMIT:
                raise SearchSpaceError(f"{name}: {count} grid points; raise the step.", name)
            grid[name] = [round(spec["low"] + index * spec["step"], 12) for index in range(count)]
        else:
            raise SearchSpaceError(f"{name}: a grid needs a step for a float parameter (or make it categorical).", name)
    return grid


def grid_size(space: dict) -> int:
    return math.prod(len(values) for values in grid_values(space).values())


# --- samplers and pruners ----------------------------------------------------------------------------

def build_sampler(sampler: str, *, space: dict, seed: int, trials_so_far: int, n_trials: int):
    """The sampler, rebuilt in each process. Its seed moves on with the number of trials, so a sampler
    rebuilt for each decision never draws the same "random" point twice."""
    import optuna

    moving_seed = seed * 1_000_003 + trials_so_far
    if sampler == "tpe":
        # random start-up trials: a third of the budget, between 2 and 10; constant_liar spreads parallel trials
        return optuna.samplers.TPESampler(seed=moving_seed, n_startup_trials=max(2, min(10, n_trials // 3)),
                                          multivariate=True, constant_liar=True)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=moving_seed)
    if sampler == "grid":
        return optuna.samplers.GridSampler(grid_values(space), seed=moving_seed)
    if sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False,
                                            independent_sampler=optuna.samplers.RandomSampler(seed=moving_seed))
    if sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=moving_seed)
    if sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"unknown sampler {sampler!r}")


def build_pruner(pruner: str, *, epochs: int):
    import optuna

    if pruner == "none":
        return optuna.pruners.NopPruner()
    if pruner == "median":
        # epochs count from 1: the first epoch is warm-up, judged from the second on
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=PRUNING_REDUCTION_FACTOR)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1),
                                              reduction_factor=PRUNING_REDUCTION_FACTOR)
    raise ValueError(f"unknown pruner {pruner!r}")


def _better(direction: str, value: float, other: float) -> bool:
    return value > other if direction == "maximize" else value < other


def prune_reason(pruner: str, *, study, trial_id: int, step: int, value: float, direction: str) -> dict:
    """Why the pruner stopped this trial at this step, recomputed from the study: the rule, what it
    compared and the value. A dict with `text` for people and the figures for the trials table."""
    import optuna

    frozen = [trial for trial in study.get_trials(deepcopy=False) if trial._trial_id == trial_id]
    this = frozen[0] if frozen else None
    others = [trial for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                          optuna.trial.TrialState.PRUNED))
              if trial._trial_id != trial_id and step in trial.intermediate_values]
    if pruner == "median":
        values = sorted(trial.intermediate_values[step] for trial in others
                        if math.isfinite(trial.intermediate_values[step]))
        median = values[len(values) // 2] if len(values) % 2 else (
            (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2 if values else float("nan"))
        side = "below" if direction == "maximize" else "above"
        return {"rule": "median", "step": step, "value": value, "threshold": median, "compared_with": len(values),
                "text": f"at epoch {step}, {value:.4g} is {side} the median {median:.4g} of {len(values)} earlier "
                        f"trials at that epoch"}
    if pruner in ("asha", "hyperband"):
        attrs = this.system_attrs if this is not None else {}
        rung_keys = sorted(key for key in attrs if "completed_rung_" in key)
        rung_key = rung_keys[-1] if rung_keys else None
        rung = int(rung_key.rsplit("_", 1)[-1]) if rung_key else 0
        prefix = rung_key[: -len(f"completed_rung_{rung}")] if rung_key else ""
        competing = [trial.system_attrs[rung_key] for trial in study.get_trials(deepcopy=False)
                     if rung_key and rung_key in trial.system_attrs]
        keep = max(1, len(competing) // PRUNING_REDUCTION_FACTOR)
        ordered = sorted(competing, reverse=direction == "maximize")
        cutoff = ordered[keep - 1] if ordered else float("nan")
        bracket = f" (bracket {prefix.strip('_')})" if prefix else ""
        return {"rule": pruner, "rung": rung, "step": step, "value": value, "threshold": cutoff,
                "compared_with": len(competing), "percentile": round(100 / PRUNING_REDUCTION_FACTOR, 1),
                "text": f"rung {rung}{bracket} at epoch {step}: {value:.4g} is not in the top "
                        f"1/{PRUNING_REDUCTION_FACTOR} of {len(competing)} trials (cut-off {cutoff:.4g})"}
    return {"rule": pruner, "step": step, "value": value, "text": f"pruned by {pruner} at epoch {step}"}


def reuse_finished_twin(study, trial) -> object | None:
    """If a finished trial had exactly these parameters, record its result on this trial instead of training
    again (a sampler over a small discrete space proposes points it already tried; training is deterministic
    for a given config and seed). Returns the twin, or None when there is none. Failed twins are not reused."""
    from optuna.trial import TrialState

    params = trial.params
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if other.number == trial.number or other.params != params:
            continue
        storage = study._storage
        storage.set_trial_user_attr(trial._trial_id, "reused_from", other.number)
        for key in ("parameters", "pruned_why", "pruned_message"):
            if key in other.user_attrs:
                storage.set_trial_user_attr(trial._trial_id, key, other.user_attrs[key])
        for step, value in other.intermediate_values.items():
            storage.set_trial_intermediate_value(trial._trial_id, step, value)
        if other.state == TrialState.COMPLETE:
            study.tell(trial.number, values=other.values if len(other.values) > 1 else other.values[0])
        else:
            study.tell(trial.number, state=TrialState.PRUNED)
        return other
    return None


def trial_state_name(state) -> str:
    """Optuna's state in lower case, as the REST contract names trials' states."""
    return {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail", "RUNNING": "running",
            "WAITING": "waiting"}[state.name]
