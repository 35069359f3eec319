"""Issue 9: does a sweep warm-started from the recommendations reach a cold sweep's best in fewer trials?

History: on dataset A, digits restricted to the classes 0–4 (≈900 images 1×8×8, 70/15/15 split), a team's
runs and a sweep with the small CNN: a small grid of optimizer × learning rate (adam, sgd × 0.0003, 0.003,
0.03; batch 32), two seeds each, then a TPE sweep of N trials over the same space as below; each recorded as a
succeeded run (kind trial for the sweep's) with its validation accuracy (Run and RunMetric rows in a scratch
SQLite database, as the persister leaves them).

The similar dataset: B, digits restricted to the classes 5–9: the same input shape, the same number of
classes and about the same size, but other digits and no history. The product's selector
(trainer_app/selectors/recommendations.py) is asked for B's recommendations: it finds A (similarity shown)
and its best seed groups; their settings restricted to the search space are what a sweep enqueues.

Then per sampler seed, side by side on B, with the product's TPE sampler (trainer_app/studies.py), one
trial at a time, no pruner, each trial's value its best validation accuracy over its epochs (what a sweep
records): a cold sweep of N trials, and a warm one of N trials that first enqueues the top recommendations
(study.enqueue_trial, as sweep_create does with warm_start) and then lets TPE go on. Reported: the cold
sweep's best and the trial that first reached it; the trial at which the warm sweep reached that value
(trials from history count: they train too); the ratio warm / cold; and, for both, the mean best value
after 1, 3, 5, 10 and N trials.

Training is the product's engine in this process (trainer_app.engine.runner.run), as in bench_sweeps.py.

    .venv/bin/python benchmarks/bench_recommendations.py [--trials 15] [--epochs 5] [--seeds 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

SPACE = {"lr": {"type": "float", "low": 0.0001, "high": 0.3, "log": True},
         "batch_size": {"type": "categorical", "choices": [16, 32, 64, 128]},
         "optimizer": {"type": "categorical", "choices": ["adam", "sgd", "rmsprop"]}}
HISTORY = [{"optimizer": optimizer, "lr": lr, "batch_size": 32} for optimizer in ("adam", "sgd")
           for lr in (0.0003, 0.003, 0.03)]
HISTORY_SEEDS = (0, 1)
CLASSES_A, CLASSES_B = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
METRIC = "val_accuracy"


def train(data: Path, directory: Path, params: dict, *, epochs: int, seed: int = 0) -> list[float]:
    """One run of the small CNN; its validation accuracy per epoch."""
    from trainer_app.engine.distributed import StopRequest
    from trainer_app.engine.runner import run as engine_run
    from trainer_app.engine.testing import make_spec, read_events

    directory.mkdir(parents=True, exist_ok=True)
    spec = make_spec(data=data, model={"preset": "small_cnn"}, jsonl=directory / "events.jsonl",
                     training={"optimizer": "adam", "epochs": epochs, "seed": seed, **params})
    spec["distributed"] = {"cpu_threads": 1}
    spec["metrics"]["log_every_steps"] = 10_000
    engine_run(spec, stop=StopRequest())
    return [event["data"]["values"][METRIC] for event in read_events(directory / "events.jsonl")
            if event["kind"] == "metrics" and METRIC in event["data"]["values"]]


def dataset_row(project, name: str, directory: Path, meta):
    from trainer_app.models import Dataset, DatasetStatus

    return Dataset.objects.create(project=project, name=name, status=DatasetStatus.READY, task=meta.task,
                                  modality=meta.modality, input_shape=list(meta.input_shape),
                                  num_classes=meta.num_classes, num_samples=sum(meta.splits.values()),
                                  splits=meta.splits, storage_dir=str(directory))


def record_run(context: dict, settings: dict, curve: list[float], *, seed: int, epochs: int, kind: str) -> None:
    """A finished run as the persister leaves it: a succeeded Run and its val_accuracy summary."""
    from trainer_app.models import Run, RunMetric, RunStatus
    from trainer_app.services.runs import config_key

    dataset, design = context["dataset"], context["design"]
    config = {**settings, "epochs": epochs, "seed": seed}
    run = Run.objects.create(project=context["project"], dataset=dataset, design=design, queue=context["queue"],
                             created_by=context["user"], status=RunStatus.SUCCEEDED, config=config, kind=kind,
                             summary={METRIC: curve[-1]},
                             config_key=config_key(dataset_id=dataset.pk, design_id=design.pk, config=config, init={}))
    RunMetric.objects.create_for(run, name=METRIC,
                             last=curve[-1], last_step=epochs, min=min(curve), max=max(curve), count=epochs)


def record_history(context: dict, data: Path, scratch: Path, *, epochs: int, n_trials: int) -> None:
    """Train the history on A (a grid of runs, then a TPE sweep) and store every run."""
    for index, settings in enumerate(HISTORY):
        for seed in HISTORY_SEEDS:
            curve = train(data, scratch / f"history-{index}-{seed}", settings, epochs=epochs, seed=seed)
            record_run(context, settings, curve, seed=seed, epochs=epochs, kind="run")
            print(f"  run {settings} seed {seed}: best {max(curve):.4f}", flush=True)
    sweep(data, scratch, seed=100, n_trials=n_trials, epochs=epochs, warm=[], tag="history sweep",
          record=lambda params, curve: record_run(context, params, curve, seed=0, epochs=epochs, kind="trial"))


def enqueueable(params: dict, space: dict) -> dict:
    """A recommendation's settings that the sweep searches, with values its space holds (a categorical
    value outside the choices is left to the sampler)."""
    kept = {}
    for name, spec in space.items():
        if name not in params:
            continue
        value = params[name]
        if spec["type"] == "categorical" and value not in spec["choices"]:
            continue
        if spec["type"] != "categorical" and not spec["low"] <= value <= spec["high"]:
            continue
        kept[name] = value
    return kept


def sweep(data: Path, scratch: Path, *, seed: int, n_trials: int, epochs: int, warm: list[dict], tag: str,
          record=None) -> list[float]:
    """A TPE sweep, one trial at a time; each trial's value (best validation accuracy)."""
    import optuna

    from trainer_app import studies

    space, _ = studies.normalise_search_space(SPACE)
    study = optuna.create_study(direction="maximize")
    for params in warm:
        study.enqueue_trial(params, user_attrs={"source": "history"}, skip_if_exists=True)
    values = []
    for number in range(n_trials):
        study.sampler = studies.build_sampler("tpe", space=space, seed=seed, trials_so_far=number, n_trials=n_trials)
        trial = study.ask(studies.distributions(space))
        curve = train(data, scratch / f"{tag}-{seed}-{number}".replace(" ", "-"), trial.params, epochs=epochs)
        value = max(curve)
        study.tell(trial, value)
        values.append(value)
        if record is not None:
            record(trial.params, curve)
        source = " (from history)" if trial.user_attrs.get("source") == "history" else ""
        print(f"    {tag} seed {seed} trial {number + 1:2d}{source}: {trial.params} -> {value:.4f}", flush=True)
    return values


def first_reaching(values: list[float], target: float) -> int | None:
    return next((index + 1 for index, value in enumerate(values) if value >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=15, help="trials per sweep (default 15)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per trial and per history run (default 5)")
    parser.add_argument("--seeds", type=int, default=3, help="sampler seeds (default 3)")
    parser.add_argument("--top", type=int, default=3, help="recommendations enqueued (default 3, as the API)")
    args = parser.parse_args()
    database = harness.scratch_dir() / "trainyard_bench_recommendations.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(database) + suffix).unlink(missing_ok=True)
    harness.setup_django(f"sqlite:///{database}")
    import optuna
    from django.contrib.auth import get_user_model

    from trainer_app.engine.testing import make_sklearn_dataset
    from trainer_app.models import Membership, ModelDesign, Project, Queue, Role
    from trainer_app.selectors.recommendations import dataset_recommendations, recommendation_warm_start

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-recommendations-") as scratch:
        scratch = Path(scratch)
        user = get_user_model().objects.create_user("bench")
        project = Project.objects.create(name="bench")
        Membership.objects.create(project=project, user=user, role=Role.ANALYST)
        queue, _ = Queue.objects.get_or_create(name="cpu")
        design = ModelDesign.objects.create(project=project, name="small_cnn", spec={"preset": "small_cnn"})
        data_a, data_b = scratch / "digits-0-4", scratch / "digits-5-9"
        dataset_a = dataset_row(project, "digits-0-4", data_a, make_sklearn_dataset("digits", data_a, classes=CLASSES_A))
        dataset_b = dataset_row(project, "digits-5-9", data_b, make_sklearn_dataset("digits", data_b, classes=CLASSES_B))
        print(f"A = digits 0-4 ({dataset_a.num_samples} images, split {dataset_a.splits}); B = digits 5-9 "
              f"({dataset_b.num_samples} images, split {dataset_b.splits}); small_cnn, {args.epochs} epochs a run")
        print("history on A:", flush=True)
        context = {"project": project, "user": user, "dataset": dataset_a, "design": design, "queue": queue}
        record_history(context, data_a, scratch, epochs=args.epochs, n_trials=args.trials)

        answer = dataset_recommendations(user=user, dataset=dataset_b)
        print(f"\nrecommendations for B: {answer['message']}")
        for entry in answer["recommendations"]:
            print(f"  #{entry['rank']} on {entry['dataset']['name']} (similarity {entry['similarity']['score']:.2f}: "
                  f"{'; '.join(entry['similarity']['reasons'])}): {entry['params']} {METRIC} {entry['mean']:.4f}"
                  f"{' ± %.4f' % entry['std'] if entry['std'] is not None else ''} over runs {entry['runs']}")
        warm = [params for params in (enqueueable(entry, SPACE)
                                      for entry in recommendation_warm_start(answer, limit=args.top)) if params]
        print(f"  enqueued: {warm}\n", flush=True)

        results = []
        for seed in range(args.seeds):
            cold = sweep(data_b, scratch, seed=seed, n_trials=args.trials, epochs=args.epochs, warm=[], tag="cold")
            target = max(cold)
            warmed = sweep(data_b, scratch, seed=seed, n_trials=args.trials, epochs=args.epochs, warm=warm,
                           tag="warm")
            results.append({"seed": seed, "cold_best": target, "cold_trials": first_reaching(cold, target),
                            "warm_trials": first_reaching(warmed, target), "warm_best": max(warmed),
                            "warm_first": warmed[0], "cold": cold, "warm": warmed})
    print(f"\n{'seed':>4}{'cold best':>11}{'cold: trials to it':>20}{'warm: trials to it':>20}{'ratio':>8}"
          f"{'warm best':>11}")
    ratios = []
    for row in results:
        reached = row["warm_trials"]
        ratio = reached / row["cold_trials"] if reached else None
        if ratio is not None:
            ratios.append(ratio)
        print(f"{row['seed']:>4}{row['cold_best']:>11.4f}{row['cold_trials']:>20}"
              f"{(str(reached) if reached else '>' + str(args.trials)):>20}"
              f"{(f'{ratio:.2f}' if ratio is not None else '—'):>8}{row['warm_best']:>11.4f}")
    missed = sum(1 for row in results if not row["warm_trials"])
    mean_cold = sum(row["cold_trials"] for row in results) / len(results)
    mean_warm = sum(row["warm_trials"] or args.trials for row in results) / len(results)
    checkpoints = [k for k in (1, 3, 5, 10, args.trials) if k <= args.trials]
    print(f"\nmean best {METRIC} after k trials (over the seeds):")
    print(f"{'k':>4}" + "".join(f"{k:>9}" for k in checkpoints))
    for name in ("cold", "warm"):
        means = [sum(max(row[name][:k]) for row in results) / len(results) for k in checkpoints]
        print(f"{name:>4}" + "".join(f"{mean:>9.4f}" for mean in means))
    print(f"\nmean trials to the cold sweep's best: cold {mean_cold:.1f}, warm {mean_warm:.1f}"
          f"{f' (counting {missed} miss(es) as {args.trials})' if missed else ''}; {time.perf_counter() - started:.0f} s "
          "in all")
    print(f"SUMMARY recommendations: trials to the cold sweep's best, warm/cold per seed "
          f"{', '.join(f'{ratio:.2f}' for ratio in ratios) or '—'}"
          f"{f' ({missed} of {len(results)} seed(s) never reached it in {args.trials} trials)' if missed else ''}; "
          f"mean trials {mean_warm:.1f} warm against {mean_cold:.1f} cold")


if __name__ == "__main__":
    main()
