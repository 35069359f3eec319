"""Issue 6: does TPE with ASHA find what a full grid finds, for less compute?

On digits with the small CNN, side by side in one run: a full grid search over a learning-rate × batch-size
grid (every point trained for all its epochs), then TPE + ASHA over the same space and budget of epochs per
trial, for several sampler seeds. Each trial's value is its best validation accuracy over its epochs (what
a sweep records, trainer_app/services/sweeps.objective_values). Reported: each search's best, the epochs it
trained, and the ratio of epochs to the grid's.

The pieces are the product's: the engine trains each trial in this process (trainer_app.engine.runner.run)
and asks its epoch gate after every epoch; a judge thread answers like a trial's supervisor does (report the
epoch to the study, ask the pruner: trainer_app.services.sweeps.trial_judge); the sampler and pruner come
from trainer_app.studies. Only Django, Celery and torchrun are left out: they change when a trial starts,
not what it learns.

    .venv/bin/python benchmarks/bench_sweeps.py [--epochs 10] [--trials 15] [--seeds 3]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402

from trainer_app import studies  # noqa: E402
from trainer_app.engine.distributed import StopRequest  # noqa: E402
from trainer_app.engine.gate import decision_path, request_path, write_json_atomically  # noqa: E402
from trainer_app.engine.runner import run as engine_run  # noqa: E402
from trainer_app.engine.testing import make_sklearn_dataset, make_spec, read_events  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"lr": {"type": "categorical", "choices": [0.0003, 0.001, 0.003, 0.01, 0.03]},
         "batch_size": {"type": "categorical", "choices": [32, 64, 128]}}
METRIC = "val_accuracy"


def train(data: Path, directory: Path, params: dict, epochs: int, judge=None) -> list[float]:
    """Train one trial; returns its validation accuracy per epoch (as many epochs as it ran)."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = make_spec(data=data, model={"preset": "small_cnn"}, jsonl=directory / "events.jsonl",
                     training={"optimizer": "adam", "epochs": epochs, "seed": 0, **params},
                     control={"epoch_gate": str(directory / "gate"), "gate_timeout_s": 60} if judge else {})
    spec["distributed"] = {"cpu_threads": 2}
    stop = threading.Event()
    thread = None
    if judge:
        thread = threading.Thread(target=_answer, args=(directory / "gate", judge, stop), daemon=True)
        thread.start()
    try:
        engine_run(spec, stop=StopRequest())
    finally:
        stop.set()
        if thread:
            thread.join()
    return [event["data"]["values"][METRIC] for event in read_events(directory / "events.jsonl")
            if event["kind"] == "metrics" and METRIC in event["data"]["values"]]


def _answer(gate: Path, judge, stop: threading.Event) -> None:
    """The supervisor's side of the epoch gate (trainer_app/runner.RunSupervisor._judge_epochs)."""
    epoch = 1
    while not stop.is_set():
        request = request_path(gate, epoch)
        if request.exists():
            values = json.loads(request.read_text())["values"]
            write_json_atomically(decision_path(gate, epoch), judge(epoch, values))
            epoch += 1
        else:
            time.sleep(0.005)


def grid_search(data: Path, scratch: Path, epochs: int) -> dict:
    best, used, started = 0.0, 0, time.perf_counter()
    space, _ = studies.normalise_search_space(SPACE)
    points = [{"lr": lr, "batch_size": batch} for lr in studies.grid_values(space)["lr"]
              for batch in studies.grid_values(space)["batch_size"]]
    for index, params in enumerate(points):
        curve = train(data, scratch / f"grid-{index}", params, epochs)
        used += len(curve)
        best = max(best, max(curve))
        print(f"  grid {index + 1:2d}/{len(points)} {params}: best {max(curve):.4f}", flush=True)
    return {"best": best, "epochs": used, "trials": len(points), "seconds": time.perf_counter() - started}


def tpe_asha(data: Path, scratch: Path, epochs: int, n_trials: int, seed: int) -> dict:
    """A sweep with the product's sampler and pruner, one trial at a time (parallelism 1)."""
    space, _ = studies.normalise_search_space(SPACE)
    study = optuna.create_study(direction="maximize")
    best, used, pruned, reused, started = 0.0, 0, 0, 0, time.perf_counter()
    for number in range(n_trials):
        study.sampler = studies.build_sampler("tpe", space=space, seed=seed, trials_so_far=number, n_trials=n_trials)
        study.pruner = studies.build_pruner("asha", epochs=epochs)
        trial = study.ask(studies.distributions(space))
        if studies.reuse_finished_twin(study, trial) is not None:  # as the controller does: no training
            reused += 1
            continue
        decisions = {}

        def judge(epoch, values, trial=trial):  # trainer_app.services.sweeps.trial_judge
            trial.report(values[METRIC], epoch)
            decisions[epoch] = "prune" if trial.should_prune() else "continue"
            return {"action": decisions[epoch], "reason": "asha"}

        curve = train(data, scratch / f"tpe-{seed}-{number}", trial.params, epochs, judge=judge)
        used += len(curve)
        value = max(curve)
        if "prune" in decisions.values() and len(curve) < epochs:
            pruned += 1
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
        best = max(best, value)
    return {"best": best, "epochs": used, "trials": n_trials, "pruned": pruned, "reused": reused,
            "seconds": time.perf_counter() - started, "seed": seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial (default 10)")
    parser.add_argument("--trials", type=int, default=15, help="TPE trials per search (default 15)")
    parser.add_argument("--seeds", type=int, default=3, help="TPE sampler seeds (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as scratch:
        scratch = Path(scratch)
        data = scratch / "digits"
        make_sklearn_dataset("digits", data)
        print(f"digits (1,797 images 8x8, 70/15/15 split), small_cnn, adam, {args.epochs} epochs per trial; "
              f"space lr x batch_size = {5 * 3} points", flush=True)
        grid = grid_search(data, scratch, args.epochs)
        searches = []
        for seed in range(args.seeds):
            result = tpe_asha(data, scratch, args.epochs, args.trials, seed)
            searches.append(result)
            print(f"  TPE+ASHA seed {seed}: best {result['best']:.4f}, {result['epochs']} epochs, "
                  f"{result['pruned']}/{result['trials']} pruned, {result['reused']} reused a twin's result", flush=True)
    print()
    print(f"{'search':<22}{'best val_accuracy':>18}{'gap (points)':>14}{'epochs':>8}{'of grid':>9}{'time s':>8}")
    print(f"{'grid (full)':<22}{grid['best']:>18.4f}{0:>14.2f}{grid['epochs']:>8}{1:>9.0%}{grid['seconds']:>8.1f}")
    for result in searches:
        gap = 100 * (grid["best"] - result["best"])
        print(f"{'TPE+ASHA seed ' + str(result['seed']):<22}{result['best']:>18.4f}{gap:>14.2f}{result['epochs']:>8}"
              f"{result['epochs'] / grid['epochs']:>9.0%}{result['seconds']:>8.1f}")
    mean_ratio = sum(result["epochs"] for result in searches) / len(searches) / grid["epochs"]
    worst_gap = max(100 * (grid["best"] - result["best"]) for result in searches)
    print(f"\nTPE+ASHA used {mean_ratio:.0%} of the grid's epochs on average (target <= 40%); worst gap to the grid's "
          f"best {worst_gap:.2f} points (target <= 0.5)")


if __name__ == "__main__":
    main()
