"""Sweeps: create one, control it, and the controller that turns an Optuna study into runs.

The controller (``sweep_step``) is a short, idempotent reconciliation, not a long-lived loop: it reads the
study and the sweep's runs, records finished runs in the study (``tell``), launches trials up to the
parallelism, and ends the sweep on its budget or target. It runs whenever a trial finishes, when a user
acts on the sweep, and every few seconds from beat, under a Redis lock so that only one runs per sweep.
A step that finds the lock held asks for one more step a few seconds later, so a kick that comes while
another step runs is never lost; a controller killed mid-step holds the lock at most LOCK_SECONDS (a long
step renews it before each trial it launches).
Killing it at any point loses and duplicates nothing: a trial Optuna handed out but that has no run yet
is launched by the next step (one run per trial is a unique constraint), and a run that ended while no
controller ran is recorded by the next step.
"""
from __future__ import annotations

import logging
import math
import uuid
from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from redis.exceptions import LockError

from trainer_app import studies
from trainer_app.models import (ACTIVE_STATUSES, SWEEP_ACTIVE, SWEEP_FINAL, Run, RunMetric, RunStatus, Sweep,
                                SweepStatus)

logger = logging.getLogger(__name__)

LOCK_SECONDS = 30
"""How long a controller step's lock lives unless renewed: a controller killed mid-step blocks the sweep that long."""
BUSY_RETRY_SECONDS = 5
"""A step that found the lock held runs again this much later (one such retry waits per sweep)."""
EPOCH_METRICS = {
    "classification": ("val_accuracy", "val_loss", "train_accuracy", "train_loss"),
    "regression": ("val_loss", "val_mae", "val_rmse", "val_r2", "train_loss", "train_mae"),
}
FINAL_METRICS = {
    "classification": ("test_accuracy", "test_loss", "test_macro_f1"),
    "regression": ("test_loss", "test_mae", "test_rmse", "test_r2"),
}
MODEL_METRICS = ("parameters",)
TRAINING_PARAMETERS = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "batch_size", "epochs",
                       "grad_clip", "label_smoothing", "seed")
NESTED_PARAMETERS = ("schedule.", "augmentation.")
DESIGN_SPACE_PRESETS = {"mlp": ("hidden", "hidden"), "small_cnn": ("hidden", "hidden"),
                        "vit_tiny": ("depth", "dim"), "tab_transformer": ("depth", "dim")}
"""preset → (what model.depth sets, what model.width sets); for mlp and small_cnn both make `hidden`."""


# --- creating a sweep -------------------------------------------------------------------------------

def _objectives(objectives, task: str, pruner: str) -> list[dict]:
    if isinstance(objectives, dict):
        objectives = [objectives]
    if not isinstance(objectives, list) or not objectives:
        raise ValidationError({"objective": 'Give the metric to optimise and its direction, e.g. {"metric": '
                                            '"val_accuracy", "direction": "maximize"}.'})
    known = EPOCH_METRICS[task] + FINAL_METRICS[task] + MODEL_METRICS
    result = []
    for objective in objectives:
        if not isinstance(objective, dict):
            raise ValidationError({"objective": "Each objective is an object with metric and direction."})
        metric, direction = objective.get("metric"), objective.get("direction") or "maximize"
        if metric not in known:
            raise ValidationError({"objective": f"A {task} run does not produce {metric!r}: choose one of "
                                                f"{', '.join(known)}."})
        if direction not in studies.DIRECTIONS:
            raise ValidationError({"objective": f"direction {direction!r} is not maximize or minimize."})
        if any(existing["metric"] == metric for existing in result):
            raise ValidationError({"objective": f"{metric} is listed twice."})
        result.append({"metric": metric, "direction": direction})
    if len(result) > 1 and pruner != "none":
        raise ValidationError({"pruner": "Optuna cannot prune a search with several objectives: set the pruner to "
                                         "none, or keep one objective."})
    if pruner != "none" and result[0]["metric"] not in EPOCH_METRICS[task]:
        raise ValidationError({"pruner": f"A pruner compares a metric after each epoch, and {result[0]['metric']} "
                                         f"comes only at the end: optimise one of {', '.join(EPOCH_METRICS[task])}, "
                                         "or set the pruner to none."})
    return result


def _check_parameter_names(space: dict, design) -> None:
    preset = design.spec.get("preset")
    for name in space:
        if name.startswith(studies.MODEL_PREFIX):
            option = name[len(studies.MODEL_PREFIX):]
            if preset is None:
                raise ValidationError({"search_space": f"{name}: a design space needs a preset design (mlp, "
                                                       f"small_cnn, vit_tiny, tab_transformer); {design} is a "
                                                       "list of layers."})
            from trainer_app.engine.design import PRESET_OPTIONS

            allowed = set(PRESET_OPTIONS.get(preset, {}))
            if preset in DESIGN_SPACE_PRESETS:
                allowed |= {"depth", "width"}
            if option not in allowed:
                raise ValidationError({"search_space": f"{name}: the {preset} preset has no option {option!r} "
                                                       f"(searchable: {', '.join(sorted(allowed))})."})
        elif name not in TRAINING_PARAMETERS and not name.startswith(NESTED_PARAMETERS):
            raise ValidationError({"search_space": f"{name} is not a training setting: use one of "
                                                   f"{', '.join(TRAINING_PARAMETERS)}, schedule.<option>, "
                                                   "augmentation.<option> or model.<option>."})


def trial_settings(sweep_config: dict, design_spec: dict, params: dict) -> tuple[dict, dict | None]:
    """A trial's training config and model spec (None = the design's own) from its parameters."""
    config = {key: (dict(value) if isinstance(value, dict) else value) for key, value in sweep_config.items()}
    model_options = {}
    for name, value in params.items():
        if name.startswith(studies.MODEL_PREFIX):
            model_options[name[len(studies.MODEL_PREFIX):]] = value
        elif "." in name:
            section, option = name.split(".", 1)
            config.setdefault(section, {})[option] = value
        else:
            config[name] = value
    if not model_options:
        return config, None
    preset = design_spec.get("preset")
    options = dict(design_spec.get("options") or {})
    depth, width = model_options.pop("depth", None), model_options.pop("width", None)
    if depth is not None or width is not None:
        depth_key, width_key = DESIGN_SPACE_PRESETS[preset]
        if depth_key == width_key:  # mlp, small_cnn: `hidden` = [width] * depth
            from trainer_app.engine.design import PRESET_OPTIONS

            current = list(options.get("hidden") or PRESET_OPTIONS[preset]["hidden"])
            depth = int(depth if depth is not None else len(current))
            width = int(width if width is not None else (current[0] if current else 64))
            options["hidden"] = [width] * depth
        else:
            if depth is not None:
                options[depth_key] = int(depth)
            if width is not None:
                options[width_key] = int(width)
    options.update(model_options)
    return config, {"preset": preset, "options": options}


def sweep_create(*, project, dataset, design, config: dict, search_space, objective=None, objectives=None,
                 sampler: str = "tpe", pruner: str = "none", n_trials: int = 20, parallelism: int = 2,
                 timeout_s: int | None = None, target_value: float | None = None, queue_name: str = "cpu",
                 resources: dict | None = None, created_by, name: str = "", confirm_partial_grid: bool = False,
                 max_retries: int = 2, seed: int = 0, warm_start: list | None = None) -> Sweep:
    """Check everything a sweep needs, create its study and start its controller."""
    from trainer_app.models import DatasetStatus, Queue
    from trainer_app.selectors import user_project_role
    from trainer_app.services.runs import _engine_spec_check, _resources

    if user_project_role(created_by, project) is None:
        raise PermissionDenied("You are not a member of this project.")
    if dataset.project_id != project.pk or design.project_id != project.pk:
        raise ValidationError({"project": "The dataset and the model design must belong to the sweep's project."})
    if dataset.status != DatasetStatus.READY:
        raise ValidationError({"dataset": f"{dataset} is {dataset.status}: wait until it is ready, or fix it."})
    if sampler not in studies.SAMPLERS:
        raise ValidationError({"sampler": f"{sampler!r} is not one of {', '.join(studies.SAMPLERS)}."})
    if pruner not in studies.PRUNERS:
        raise ValidationError({"pruner": f"{pruner!r} is not one of {', '.join(studies.PRUNERS)}."})
    for field, value, low in (("n_trials", n_trials, 1), ("parallelism", parallelism, 1),
                              ("max_retries", max_retries, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValidationError({field: f"{field} must be a whole number of at least {low} (got {value!r})."})
    if n_trials > 10_000:
        raise ValidationError({"n_trials": "At most 10,000 trials in one sweep."})
    if timeout_s is not None and (not isinstance(timeout_s, int) or isinstance(timeout_s, bool) or timeout_s < 1):
        raise ValidationError({"timeout_s": f"timeout_s is a whole number of seconds, at least 1 (got {timeout_s!r})."})
    objectives = _objectives(objectives if objectives is not None else objective, dataset.task, pruner)
    if target_value is not None:
        if len(objectives) > 1:
            raise ValidationError({"target_value": "A target value ends a sweep with one objective; with several, "
                                                   "use the trial budget."})
        if isinstance(target_value, bool) or not isinstance(target_value, (int, float)) or \
                not math.isfinite(target_value):
            raise ValidationError({"target_value": f"target_value must be a number (got {target_value!r})."})
    try:
        space, warnings = studies.normalise_search_space(search_space)
    except studies.SearchSpaceError as error:
        raise ValidationError({"search_space": str(error)}) from None
    _check_parameter_names(space, design)
    if sampler == "grid":
        try:
            size = studies.grid_size(space)
        except studies.SearchSpaceError as error:
            raise ValidationError({"search_space": str(error)}) from None
        if size > n_trials and not confirm_partial_grid:
            raise ValidationError({"n_trials": f"The grid has {size} points but the budget is {n_trials} trials: only "
                                               f"{n_trials} of them would run. Raise n_trials to {size}, or confirm "
                                               f"(confirm_partial_grid) to run {n_trials} of them.",
                                   "grid_size": size})
        if size < n_trials:
            warnings.append(f"The grid has {size} points: the sweep runs {size} trials, not {n_trials}.")
            n_trials = size
    if sampler == "cmaes" and any(spec["type"] == "categorical" for spec in space.values()):
        warnings.append("CMA-ES searches numbers only: categorical parameters are drawn at random.")
    if sampler == "nsga2" and len(objectives) == 1:
        warnings.append("NSGA-II is made for several objectives; TPE usually does better with one.")
    if not isinstance(config, dict):
        raise ValidationError({"config": "config is an object of training settings."})
    base = {key: value for key, value in config.items() if key not in space}
    resources = _resources(resources or {})
    queue = Queue.objects.filter(name=queue_name).first()
    if queue is None:
        names = ", ".join(Queue.objects.values_list("name", flat=True)) or "none yet"
        raise ValidationError({"queue": f"No queue named {queue_name!r}: choose one of {names}."})
    from trainer_app.services.runs import _queue_check_resources, _queue_check_role

    _queue_check_role(queue=queue, role=user_project_role(created_by, project), project=project)
    _queue_check_resources(queue=queue, resources=resources)
    # the base settings with the first value of each parameter must make a run the engine accepts
    first = {name: (spec["choices"][0] if spec["type"] == "categorical" else spec["low"]) for name, spec in space.items()}
    sample_config, _ = trial_settings(base, design.spec, first)
    # the model is checked per trial (a design space may hold models that do not fit: those trials fail fast)
    _engine_spec_check(dataset=dataset, design=design, config=sample_config, resources=resources, init_weights=None)
    from trainer_app.selectors.fleet import queue_slots

    slots = queue_slots(queue)
    if slots and parallelism > slots:
        warnings.append(f"Parallelism {parallelism} is more than the fleet runs at once ({slots} slot(s) online): "
                        f"{parallelism - slots} trial(s) will wait in the {queue.name} queue.")
    elif not slots:
        warnings.append("No worker is online: the trials wait in the queue until one starts.")
    sweep = Sweep.objects.create(
        project=project, name=name[:200], dataset=dataset, design=design, config=base, search_space=space,
        objectives=objectives, sampler=sampler, pruner=pruner, n_trials=n_trials, timeout_s=timeout_s,
        target_value=target_value, parallelism=parallelism, max_retries=max_retries, seed=int(seed or 0),
        resources=resources, queue=queue, study_name=f"trainyard-{uuid.uuid4().hex}", warnings=warnings,
        warm_start=list(warm_start or []), created_by=created_by)
    try:
        import optuna

        study = optuna.create_study(storage=studies.storage(), study_name=sweep.study_name,
                                    directions=[objective["direction"] for objective in objectives])
        study.set_user_attr("sweep_id", sweep.pk)
        for params in sweep.warm_start:
            study.enqueue_trial(params, user_attrs={"source": "history"}, skip_if_exists=True)
    except Exception as error:
        sweep.delete()
        logger.exception("creating the study of a sweep failed")
        raise ValidationError({"detail": f"The sweep's Optuna study could not be created: {error}"}) from None
    sweep_kick(sweep_id=sweep.pk)
    return sweep


# --- controlling it ---------------------------------------------------------------------------------

def sweep_kick(*, sweep_id: int) -> None:
    """Ask for a controller step once the current transaction commits."""
    from trainer_app.tasks import sweep_step as task

    transaction.on_commit(lambda: task.apply_async(args=[sweep_id], queue="control"))


def sweep_pause(*, sweep: Sweep) -> Sweep:
    """No new trials start; running ones finish."""
    if Sweep.objects.filter(pk=sweep.pk, status__in=(SweepStatus.QUEUED, SweepStatus.RUNNING)).update(
            status=SweepStatus.PAUSED) != 1:
        raise ValidationError({"status": f"Only a queued or running sweep can be paused; this one is {sweep.status}."})
    sweep.refresh_from_db()
    return sweep


def sweep_resume(*, sweep: Sweep) -> Sweep:
    if Sweep.objects.filter(pk=sweep.pk, status=SweepStatus.PAUSED).update(status=SweepStatus.RUNNING) != 1:
        raise ValidationError({"status": f"Only a paused sweep can be resumed; this one is {sweep.status}."})
    sweep_kick(sweep_id=sweep.pk)
    sweep.refresh_from_db()
    return sweep


def sweep_stop(*, sweep: Sweep, reason: str = "stopped by a user") -> Sweep:
    """End the sweep now: queued trials are cancelled, running ones checkpoint and stop."""
    if Sweep.objects.filter(pk=sweep.pk, status__in=SWEEP_ACTIVE).update(
            status=SweepStatus.STOPPED, end_reason=reason, finished_at=timezone.now()) != 1:
        raise ValidationError({"status": f"This sweep is already {sweep.status}."})
    _cancel_trials(sweep)
    sweep_kick(sweep_id=sweep.pk)
    sweep.refresh_from_db()
    return sweep


def sweep_update(*, sweep: Sweep, parallelism=None, name: str | None = None) -> Sweep:
    """Change the parallelism while the sweep runs (more trials start at once, or fewer as they end)."""
    fields = []
    if parallelism is not None:
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or not 1 <= parallelism <= 1000:
            raise ValidationError({"parallelism": f"parallelism is a whole number from 1 to 1000 (got {parallelism!r})."})
        sweep.parallelism = parallelism
        fields.append("parallelism")
    if name is not None:
        sweep.name = name[:200]
        fields.append("name")
    if fields:
        sweep.save(update_fields=fields)
        sweep_kick(sweep_id=sweep.pk)
    return sweep


def trial_stop(*, sweep: Sweep, number: int) -> Run:
    """Stop one trial: its run is cancelled and the trial recorded as failed, stopped by a user (not retried)."""
    from trainer_app.services.runs import run_cancel

    run = Run.objects.filter(sweep=sweep, trial_number=number).first()
    if run is None:
        raise ValidationError({"trial": f"Trial {number} of this sweep has no run."})
    run = run_cancel(run=run)
    studies.storage().set_trial_user_attr(_trial_id(sweep, number), "stopped_by_user", True)
    sweep_kick(sweep_id=sweep.pk)
    return run


def _cancel_trials(sweep: Sweep) -> None:
    from trainer_app.services.runs import run_cancel

    for run in Run.objects.filter(sweep=sweep, status__in=(RunStatus.QUEUED, *ACTIVE_STATUSES, RunStatus.LOST)):
        try:
            run_cancel(run=run)
        except ValidationError:
            pass  # it ended meanwhile


# --- the controller -----------------------------------------------------------------------------------

def _study(sweep: Sweep, *, trials_so_far: int = 0):
    import optuna

    epochs = int(sweep.config.get("epochs") or sweep.search_space.get("epochs", {}).get("high") or 10)
    return optuna.load_study(
        study_name=sweep.study_name, storage=studies.storage(),
        sampler=studies.build_sampler(sweep.sampler, space=sweep.search_space, seed=sweep.seed,
                                      trials_so_far=trials_so_far, n_trials=sweep.n_trials),
        pruner=studies.build_pruner(sweep.pruner, epochs=epochs))


def _trial_id(sweep: Sweep, number: int) -> int:
    return studies.storage().get_trial_id_from_study_id_trial_number(
        studies.storage().get_study_id_from_name(sweep.study_name), number)


def _lock(sweep_id: int):
    from trainer_app.streams import redis_client

    return redis_client().lock(f"trainyard:sweep:{sweep_id}:controller", timeout=LOCK_SECONDS, blocking=False)


def sweep_step(*, sweep_id: int) -> str:
    """One controller step (see the module's docstring). Returns what it did, for logs and tests."""
    lock = _lock(sweep_id)
    if not lock.acquire(blocking=False):
        _step_again_later(sweep_id, lock.redis)
        return "busy"

    def keep_alive() -> bool:
        try:
            lock.reacquire()
            return True
        except LockError:  # expired and taken by another step: that one goes on from here
            return False

    try:
        return _step(sweep_id, keep_alive=keep_alive)
    finally:
        try:
            lock.release()
        except Exception:  # expired: a step longer than LOCK_SECONDS; the next one reconciles
            pass


def _step_again_later(sweep_id: int, redis) -> None:
    """The lock is held (another step runs, or a killed controller's lock has yet to expire): one more step in
    BUSY_RETRY_SECONDS, unless one is already waiting, so that what this kick was for is not lost."""
    from trainer_app.tasks import sweep_step as task

    if redis.set(f"trainyard:sweep:{sweep_id}:retry", "1", nx=True, ex=BUSY_RETRY_SECONDS - 1):
        task.apply_async(args=[sweep_id], queue="control", countdown=BUSY_RETRY_SECONDS)


def _step(sweep_id: int, *, keep_alive=lambda: True) -> str:
    from optuna.trial import TrialState

    sweep = Sweep.objects.select_related("dataset", "design", "queue", "project", "created_by").filter(
        pk=sweep_id).first()
    if sweep is None:
        return "gone"
    study = _study(sweep)
    actions = []
    # 1. record what ended; adopt trials a killed controller handed out but never launched
    _reconcile(sweep, study, actions)
    trials = study.get_trials(deepcopy=False)
    active = [trial for trial in trials if trial.state == TrialState.RUNNING]
    waiting = [trial for trial in trials if trial.state == TrialState.WAITING]
    counted = [trial for trial in trials if not trial.user_attrs.get("retried")]
    done = [trial for trial in counted if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]

    # 2. is it over?
    if sweep.status in SWEEP_ACTIVE:
        now = timezone.now()
        ending = None
        if sweep.target_value is not None and _target_reached(sweep, study):
            ending = (SweepStatus.FINISHED, f"a trial reached the target {sweep.target_value:g}")
        elif sweep.timeout_s and sweep.started_at and now - sweep.started_at > timedelta(seconds=sweep.timeout_s):
            ending = (SweepStatus.FINISHED, f"the time budget of {sweep.timeout_s} s ran out")
        elif len(done) >= sweep.n_trials and not active:
            ending = (SweepStatus.FINISHED, f"all {sweep.n_trials} trials ran")
        elif sweep.sampler == "grid" and not active and not waiting and _grid_exhausted(sweep, study):
            ending = (SweepStatus.FINISHED, "every grid point ran")
        if ending is not None:
            Sweep.objects.filter(pk=sweep.pk, status__in=SWEEP_ACTIVE).update(
                status=ending[0], end_reason=ending[1], finished_at=now)
            sweep.refresh_from_db()
            _cancel_trials(sweep)
            actions.append(f"ended: {ending[1]}")
            _reconcile(sweep, study, actions)  # queued trials were cancelled at once: record them now

    # 3. start trials up to the parallelism
    if sweep.status == SweepStatus.QUEUED:
        Sweep.objects.filter(pk=sweep.pk, status=SweepStatus.QUEUED).update(status=SweepStatus.RUNNING,
                                                                          started_at=timezone.now())
        sweep.refresh_from_db()
    if sweep.status == SweepStatus.RUNNING:
        launched = len([trial for trial in counted if trial.state != TrialState.WAITING])  # ask() takes waiting first
        running_now = len(active)
        while running_now < sweep.parallelism and launched < sweep.n_trials:
            if not keep_alive():  # a long step renews its lock before each trial; one that lost it stops here
                actions.append("the lock expired: the next step goes on")
                break
            if sweep.sampler == "grid" and _grid_exhausted(sweep, study):
                break
            study = _study(sweep, trials_so_far=launched)
            trial = study.ask(studies.distributions(sweep.search_space))
            launched += 1
            twin = studies.reuse_finished_twin(study, trial)
            if twin is not None:
                actions.append(f"trial {trial.number} reused the result of trial {twin.number} (same parameters)")
                continue
            run = _launch(sweep, study, trial)
            if run is not None:
                running_now += 1
                actions.append(f"trial {trial.number} launched as run {run.pk}")
            else:
                actions.append(f"trial {trial.number} failed fast")
    elif sweep.status in SWEEP_FINAL:
        _cancel_trials(sweep)  # nothing of an ended sweep stays queued or holds a worker

    _cache_summary(sweep, study)
    if actions:
        logger.info("sweep %s: %s", sweep.pk, "; ".join(actions))
    return "; ".join(actions) or "idle"


def _reconcile(sweep: Sweep, study, actions: list[str]) -> None:
    from optuna.trial import TrialState

    runs = {run.trial_number: run for run in Run.objects.filter(sweep=sweep)}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run = runs.get(trial.number)
        if run is None:
            if sweep.status in SWEEP_FINAL:
                studies.storage().set_trial_user_attr(trial._trial_id, "error", "the sweep ended before this trial started")
                study.tell(trial.number, state=TrialState.FAIL)
                actions.append(f"trial {trial.number} abandoned")
            elif _launch(sweep, study, trial) is not None:
                actions.append(f"trial {trial.number} adopted")
            continue
        if run.status in (RunStatus.SUCCEEDED, RunStatus.PRUNED, RunStatus.FAILED, RunStatus.CANCELLED):
            actions.append(_record(sweep, study, trial, run))


def _grid_exhausted(sweep: Sweep, study) -> bool:
    from optuna.trial import TrialState

    seen = {tuple(sorted((key, repr(value)) for key, value in trial.params.items()))
            for trial in study.get_trials(deepcopy=False)
            if trial.state != TrialState.FAIL or not trial.user_attrs.get("retried")}
    return len(seen) >= studies.grid_size(sweep.search_space)


def _target_reached(sweep: Sweep, study) -> bool:
    try:
        best = study.best_value
    except ValueError:
        return False
    direction = sweep.objectives[0]["direction"]
    return best >= sweep.target_value if direction == "maximize" else best <= sweep.target_value


def _launch(sweep: Sweep, study, trial) -> Run | None:
    """The trial's run, created once (a unique constraint); a trial whose settings cannot make a run fails
    at once with the reason, and the sweep goes on."""
    from optuna.trial import TrialState

    from trainer_app.services.designs import design_validate
    from trainer_app.services.runs import run_create

    existing = Run.objects.filter(sweep=sweep, trial_number=trial.number).first()
    if existing is not None:
        return existing
    config, model_spec = trial_settings(sweep.config, sweep.design.spec, trial.params)
    try:
        fit = design_validate(spec=model_spec or sweep.design.spec, dataset=sweep.dataset)
        if fit.get("parameters"):
            studies.storage().set_trial_user_attr(trial._trial_id, "parameters", fit["parameters"])
        run = run_create(project=sweep.project, dataset=sweep.dataset, design=sweep.design, config=config,
                         resources=sweep.resources, queue_name=sweep.queue.name, created_by=sweep.created_by,
                         name=f"{sweep} · trial {trial.number}", kind="trial", model_spec=model_spec,
                         sweep=sweep, trial_number=trial.number)
    except ValidationError as error:
        message = "; ".join(f"{key}: {' '.join(map(str, value))}" for key, value in error.message_dict.items()) \
            if hasattr(error, "message_dict") else " ".join(error.messages)
        studies.storage().set_trial_user_attr(trial._trial_id, "error", message)
        study.tell(trial.number, state=TrialState.FAIL)
        return None
    except IntegrityError:  # another controller launched it a moment ago
        return Run.objects.filter(sweep=sweep, trial_number=trial.number).first()
    return run


def objective_values(sweep: Sweep, run: Run, trial) -> list[float] | None:
    """A finished trial's objective values: the best epoch of a per-epoch metric (its best checkpoint), the
    final value of a test metric, the model's parameter count. None when the run did not produce one."""
    from trainer_app.selectors.runs import run_summary_values

    summaries = {metric.name: metric for metric in RunMetric.objects.filter(run=run)}
    values = []
    for objective in sweep.objectives:
        metric = objective["metric"]
        if metric == "parameters":
            value = trial.user_attrs.get("parameters")
        elif metric in summaries and metric.split("_", 1)[0] in ("val", "train"):
            summary = summaries[metric]
            value = summary.max if objective["direction"] == "maximize" else summary.min
        elif metric in run_summary_values(run):
            value = run_summary_values(run)[metric]
        elif metric in summaries:
            value = summaries[metric].last
        else:
            return None
        if value is None or not math.isfinite(float(value)):
            return None
        values.append(float(value))
    return values


def _record(sweep: Sweep, study, trial, run: Run) -> str:
    """Tell the study how a trial's run ended; retry a trial whose run was lost, within max_retries."""
    from optuna.trial import TrialState

    if run.status == RunStatus.SUCCEEDED:
        values = objective_values(sweep, run, trial)
        if values is None:
            studies.storage().set_trial_user_attr(trial._trial_id, "error", f"the run ended without "
                                      f"{', '.join(o['metric'] for o in sweep.objectives)}")
            study.tell(trial.number, state=TrialState.FAIL)
            return f"trial {trial.number} failed (no objective value)"
        study.tell(trial.number, values=values if sweep.multi_objective else values[0])
        return f"trial {trial.number} complete: {values}"
    if run.status == RunStatus.PRUNED:
        studies.storage().set_trial_user_attr(trial._trial_id, "pruned_message", run.error)
        study.tell(trial.number, state=TrialState.PRUNED)
        return f"trial {trial.number} pruned"
    studies.storage().set_trial_user_attr(trial._trial_id, "error", run.error or run.status)
    lost = run.status == RunStatus.FAILED and run.error.startswith("worker lost")
    retries = int(trial.user_attrs.get("retry", 0))
    retry = lost and retries < sweep.max_retries and sweep.status in (SweepStatus.RUNNING, SweepStatus.PAUSED)
    if retry:
        studies.storage().set_trial_user_attr(trial._trial_id, "retried", True)
    study.tell(trial.number, state=TrialState.FAIL)
    if retry:
        study.enqueue_trial(trial.params, user_attrs={"retry": retries + 1, "retry_of": trial.number,
                                                      **({"source": trial.user_attrs["source"]}
                                                         if "source" in trial.user_attrs else {})})
        return f"trial {trial.number} lost; retried ({retries + 1}/{sweep.max_retries})"
    return f"trial {trial.number} {run.status}"


def _cache_summary(sweep: Sweep, study) -> None:
    from optuna.trial import TrialState

    counts: dict[str, int] = {}
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        state = studies.trial_state_name(trial.state)
        counts[state] = counts.get(state, 0) + 1
    best = {}
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    if complete and not sweep.multi_objective:
        chosen = study.best_trial
        run = Run.objects.filter(sweep=sweep, trial_number=chosen.number).values_list("pk", flat=True).first()
        best = {"number": chosen.number, "run": run, "value": chosen.value, "params": chosen.params}
    elif complete:
        front = study.best_trials
        best = {"pareto": [{"number": trial.number, "values": trial.values, "params": trial.params} for trial in front]}
    if counts != sweep.counts or best != sweep.best:
        sweep.counts, sweep.best = counts, best
        sweep.save(update_fields=["counts", "best"])  # a save: listeners (the knowledge graph) hear of it


# --- pruning, asked by a trial's supervisor ---------------------------------------------------------------

def trial_judge(*, run: Run, epoch: int, values: dict) -> dict:
    """Report a trial's epoch to its study and ask the pruner: {"action", "reason", "why"}."""
    import optuna

    sweep = run.sweep
    metric = sweep.objectives[0]["metric"]
    value = values.get(metric)
    if value is None or sweep.multi_objective or not isinstance(value, (int, float)):
        return {"action": "continue", "reason": ""}
    study = _study(sweep)
    trial_id = _trial_id(sweep, run.trial_number)
    trial = optuna.trial.Trial(study, trial_id)
    try:
        trial.report(float(value), step=epoch)
    except (NotImplementedError, RuntimeError, ValueError) as error:
        logger.warning("run %s: could not report epoch %s to its study: %s", run.pk, epoch, error)
        return {"action": "continue", "reason": ""}
    if sweep.pruner == "none" or Sweep.objects.filter(pk=sweep.pk, status__in=SWEEP_FINAL).exists():
        return {"action": "continue", "reason": ""}
    if not trial.should_prune():
        return {"action": "continue", "reason": ""}
    why = studies.prune_reason(sweep.pruner, study=study, trial_id=trial_id, step=epoch, value=float(value),
                               direction=sweep.objectives[0]["direction"])
    why["metric"] = metric
    studies.storage().set_trial_user_attr(trial_id, "pruned_why", why)
    return {"action": "prune", "reason": f"{metric} {why['text']}", "why": why}


# --- promoting -----------------------------------------------------------------------------------------------

def sweep_promote(*, sweep: Sweep, created_by, number: int | None = None, epochs: int | None = None,
                  queue_name: str | None = None) -> Run:
    """A full run from a trial's settings (the best by default), with more epochs."""
    from optuna.trial import TrialState

    from trainer_app.services.runs import run_create

    study = _study(sweep)
    if number is None:
        if sweep.multi_objective:
            raise ValidationError({"trial": "With several objectives there is no single best: name the trial to "
                                            "promote (one on the Pareto front)."})
        try:
            trial = study.best_trial
        except ValueError:
            raise ValidationError({"trial": "No trial has finished yet: promote once one is complete."}) from None
    else:
        matching = [trial for trial in study.get_trials(deepcopy=False) if trial.number == number]
        if not matching:
            raise ValidationError({"trial": f"This sweep has no trial {number}."})
        trial = matching[0]
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            raise ValidationError({"trial": f"Trial {number} is {studies.trial_state_name(trial.state)}: promote a "
                                            "complete or pruned trial."})
    config, model_spec = trial_settings(sweep.config, sweep.design.spec, trial.params)
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValidationError({"epochs": f"epochs must be a whole number of at least 1 (got {epochs!r})."})
        config["epochs"] = epochs
    else:
        config["epochs"] = int(config.get("epochs", 10)) * 2
    run = run_create(project=sweep.project, dataset=sweep.dataset, design=sweep.design, config=config,
                     resources=sweep.resources, queue_name=queue_name or sweep.queue.name, created_by=created_by,
                     name=f"{sweep} · trial {trial.number} promoted", model_spec=model_spec)
    Run.objects.filter(pk=run.pk).update(notes=f"Promoted from sweep {sweep.pk} ({sweep}), trial {trial.number}, "
                                               f"with {config['epochs']} epochs.")
    run.refresh_from_db()
    return run


def sweeps_tick() -> int:
    """Periodic (beat): a controller step for every sweep that is active or still has trials to record."""
    from trainer_app.tasks import sweep_step as task

    ids = set(Sweep.objects.filter(status__in=SWEEP_ACTIVE).values_list("pk", flat=True))
    # ended sweeps whose trials are still being recorded (runs stopping after a stop)
    ids |= set(Sweep.objects.filter(status__in=SWEEP_FINAL, counts__running__gt=0).values_list("pk", flat=True))
    for sweep_id in ids:
        task.apply_async(args=[sweep_id], queue="control")
    return len(ids)
