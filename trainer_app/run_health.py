"""Run health: the common problems of a training run, named from its numbers, each with what it means and
the usual fix. Pure Python (no Django, no torch): the supervisor's persister calls it through
``trainer_app.services.findings`` after each batch of events, on the per-epoch series only.

The rules, and the thresholds they use (the constants below):

- **nan** — the engine stopped the run because the training loss became NaN or infinite (exit code
  DIVERGED, "diverged at step N: the training loss became nan"). Critical.
- **diverging** — the training loss grows instead of falling: it rose in each of the last
  ``RISING_EPOCHS`` epochs to more than ``DIVERGING_FACTOR`` × its lowest value so far and by more than
  ``DIVERGING_FLOOR`` × the loss scale (a rise from 0.003 to 0.07 is noise near zero), or (classification)
  an epoch's training loss is above ``CHANCE_FACTOR`` × ln(classes), far worse than guessing uniformly.
  Critical.
- **flat_loss** — over the first ``FLAT_EPOCHS`` epochs the training loss moved less than ``FLAT_TOLERANCE``
  (1 %) of its mean, and stayed at or above ``FLAT_CHANCE_SHARE`` × the loss of knowing nothing (ln(classes)
  for a uniform guess; 1 for regression, whose targets are standardised): nothing is being learned. Warning.
- **overfitting** — the validation loss rose in each of the last ``RISING_EPOCHS`` epochs, now exceeds its
  minimum by more than ``OVERFIT_RISE`` (10 %) of that minimum and by more than ``OVERFIT_FLOOR`` (2 %) of
  the loss scale (ln(classes), or 1 for regression on standardised targets), while the training loss is
  lower than at the validation minimum. Warning.
- **underfitting** — once at least half the planned epochs (and ``UNDERFIT_MIN_EPOCHS``) are done, the
  model is still poor on its own training data: training accuracy below ``UNDERFIT_ACCURACY``
  (classification; without accuracy, a training loss above ``UNDERFIT_LOSS_SHARE`` × the loss scale), or
  a training loss above ``UNDERFIT_LOSS_SHARE`` (regression: R² below about 0.5), with the validation loss
  no more than ``UNDERFIT_GAP`` (25 %) above it (both high: not overfitting). Not reported when the loss
  was flat from the start (flat_loss says more). Warning.
- **input_bound** — a GPU run whose GPUs were busy less than ``INPUT_BOUND_UTIL`` % (the median of its last
  ``INPUT_BOUND_POINTS`` samples): the GPU waits for batches. Info.

A finding is a plain dict: ``{code, severity, epoch, step, evidence, explanation, fix}``; ``evidence``
holds the numbers the rule looked at.
"""
from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence

CODES = ("nan", "diverging", "flat_loss", "overfitting", "underfitting", "input_bound")
# The ontology concept each finding is an instance of (kg_app/ontology.py): runs link to it with SHOWED.
FINDING_CONCEPTS = {"nan": "nan-loss", "diverging": "divergence", "flat_loss": "flat-loss",
                    "overfitting": "overfitting", "underfitting": "underfitting", "input_bound": "input-bound"}
SEVERITIES = {"nan": "critical", "diverging": "critical", "flat_loss": "warning", "overfitting": "warning",
              "underfitting": "warning", "input_bound": "info"}

RISING_EPOCHS = 2
DIVERGING_FACTOR = 1.5
DIVERGING_FLOOR = 0.25
CHANCE_FACTOR = 2.0
FLAT_EPOCHS = 3
FLAT_TOLERANCE = 0.01
FLAT_CHANCE_SHARE = 0.95
OVERFIT_RISE = 0.10
OVERFIT_FLOOR = 0.02
UNDERFIT_MIN_EPOCHS = 3
UNDERFIT_ACCURACY = 0.7
UNDERFIT_LOSS_SHARE = 0.5
UNDERFIT_GAP = 0.25
INPUT_BOUND_UTIL = 30.0
INPUT_BOUND_POINTS = 10
INPUT_BOUND_MIN_POINTS = 5

_DIVERGED = re.compile(r"diverged at step (\d+)(?:: the training loss became (\S+))?")


def loss_scale(*, task: str, num_classes: int | None) -> float:
    """The loss of knowing nothing: ln(classes) for cross-entropy, 1 for MSE on standardised targets."""
    if task == "classification" and num_classes and num_classes > 1:
        return math.log(num_classes)
    return 1.0


def _finding(code: str, *, epoch: int | None = None, step: int | None = None, evidence: dict,
             explanation: str, fix: str) -> dict:
    return {"code": code, "severity": SEVERITIES[code], "epoch": epoch, "step": step,
            "evidence": {name: _rounded(value) for name, value in evidence.items()},
            "explanation": explanation, "fix": fix}


def _rounded(value):
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.6g}")
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _present(values: Sequence) -> bool:
    return bool(values) and all(value is not None and math.isfinite(value) for value in values)


# --- one detector per problem ------------------------------------------------------------------------------

def detect_nan(*, failure: str | None) -> dict | None:
    """The engine's own verdict: it stops a run whose training loss is no longer a number."""
    match = _DIVERGED.search(failure or "")
    if not match:
        return None
    step, value = int(match.group(1)), (match.group(2) or "nan").rstrip(".,;")
    return _finding(
        "nan", step=step, evidence={"step": step, "loss": value},
        explanation=f"The training loss became {value} at step {step}, so the engine stopped the run: the updates "
                    "grew until the numbers overflowed. The usual cause is a learning rate far too high; fp16 "
                    "without loss scaling and inputs that contain NaN do the same.",
        fix="Lower the learning rate 3–10× (the learning-rate finder measures a safe one), add gradient clipping "
            "(e.g. 1.0) or a warm-up; check the data for missing values; with fp16, try bf16. Resume is pointless: "
            "the last checkpoint leads to the same blow-up.")


def detect_diverging(*, epochs: Sequence[int], train_loss: Sequence[float], scale: float,
                     classification: bool) -> dict | None:
    """The training loss grows instead of falling (first epoch where it shows)."""
    for index, loss in enumerate(train_loss):
        if classification and loss > CHANCE_FACTOR * scale:
            return _finding(
                "diverging", epoch=epochs[index],
                evidence={"epoch": epochs[index], "train_loss": loss, "chance_loss": scale},
                explanation=f"At epoch {epochs[index]} the training loss was {loss:.4g}, more than {CHANCE_FACTOR:g}× "
                            f"the {scale:.3g} of guessing every class equally: the model is getting worse, not "
                            "better. The learning rate is most likely too high.",
                fix=_DIVERGING_FIX)
        if index >= RISING_EPOCHS and all(train_loss[i] > train_loss[i - 1]
                                          for i in range(index - RISING_EPOCHS + 1, index + 1)):
            lowest = min(train_loss[:index + 1])
            if loss > DIVERGING_FACTOR * lowest and loss - lowest > DIVERGING_FLOOR * scale:
                best = train_loss.index(lowest)
                return _finding(
                    "diverging", epoch=epochs[index],
                    evidence={"epoch": epochs[index], "train_loss": loss, "lowest_train_loss": lowest,
                              "lowest_at_epoch": epochs[best],
                              "last_epochs": list(train_loss[index - RISING_EPOCHS:index + 1])},
                    explanation=f"The training loss rose for {RISING_EPOCHS} epochs in a row to {loss:.4g}, "
                                f"{loss / lowest:.1f}× its lowest ({lowest:.4g} at epoch {epochs[best]}): the steps "
                                "overshoot. The learning rate is most likely too high for this model and batch size.",
                    fix=_DIVERGING_FIX)
    return None


_DIVERGING_FIX = ("Lower the learning rate 3–10× (or run the learning-rate finder), add gradient clipping or a "
                  "warm-up, or a schedule that decays the rate (cosine); a larger batch also steadies the steps.")


def detect_flat_loss(*, epochs: Sequence[int], train_loss: Sequence[float], scale: float,
                     classification: bool) -> dict | None:
    """The training loss has not moved since the start."""
    if len(train_loss) < FLAT_EPOCHS:
        return None
    first = list(train_loss[:FLAT_EPOCHS])
    mean = sum(first) / len(first)
    spread = max(first) - min(first)
    if mean <= 0 or spread > FLAT_TOLERANCE * mean:
        return None
    if min(first) < FLAT_CHANCE_SHARE * scale:
        return None  # a loss that settled fast, low, is learning done, not learning missing
    chance = (f", at the {scale:.3g} of guessing every class equally" if classification else
              ", at the 1.0 of predicting the mean")
    return _finding(
        "flat_loss", epoch=epochs[FLAT_EPOCHS - 1],
        evidence={"epochs": list(epochs[:FLAT_EPOCHS]), "train_loss": first, "spread": spread,
                  "spread_share": spread / mean, "chance_loss": scale},
        explanation=f"Over the first {FLAT_EPOCHS} epochs the training loss stayed within {100 * spread / mean:.2g}% of "
                    f"{mean:.4g}{chance}: the model is not learning. Either the steps are too small (learning rate "
                    "too low), or nothing can change (frozen layers, a model too small for the inputs).",
        fix="Raise the learning rate about 10× (the learning-rate finder shows where the loss starts to fall); if "
            "the run fine-tunes, check which layers are frozen; check that the labels match the inputs.")


def detect_overfitting(*, epochs: Sequence[int], train_loss: Sequence[float], val_loss: Sequence[float],
                       scale: float) -> dict | None:
    """The validation loss climbs while the training loss keeps falling (first epoch where it shows)."""
    for index in range(RISING_EPOCHS, len(val_loss)):
        if not all(val_loss[i] > val_loss[i - 1] for i in range(index - RISING_EPOCHS + 1, index + 1)):
            continue
        lowest = min(val_loss[:index + 1])
        best = val_loss.index(lowest)
        rise = val_loss[index] - lowest
        if best >= index or rise <= OVERFIT_RISE * lowest or rise <= OVERFIT_FLOOR * scale:
            continue
        if not train_loss[index] < train_loss[best]:
            continue
        return _finding(
            "overfitting", epoch=epochs[index],
            evidence={"epoch": epochs[index], "best_epoch": epochs[best], "val_loss_min": lowest,
                      "val_loss": val_loss[index], "rise": rise, "train_loss_at_best": train_loss[best],
                      "train_loss": train_loss[index]},
            explanation=f"Since epoch {epochs[best]} the validation loss rose from {lowest:.4g} to {val_loss[index]:.4g} "
                        f"while the training loss kept falling ({train_loss[best]:.4g} → {train_loss[index]:.4g}): the "
                        "model is memorising its training samples instead of learning what carries over to new ones.",
            fix=f"Keep the weights of epoch {epochs[best]} (early stopping on val_loss does that), and regularise: "
                "weight decay (e.g. 1e-4 with AdamW), data augmentation for images, dropout or a smaller model; "
                "more training data helps most.")
    return None


def detect_underfitting(*, epochs: Sequence[int], planned_epochs: int | None, train_loss: Sequence[float],
                        val_loss: Sequence[float], train_accuracy: Sequence[float] | None, scale: float,
                        classification: bool) -> dict | None:
    """Well into the run, the model still does poorly on the data it trains on."""
    done = len(train_loss)
    if done < UNDERFIT_MIN_EPOCHS or (planned_epochs and done < planned_epochs / 2):
        return None
    loss, validation = train_loss[-1], val_loss[-1]
    if validation > loss * (1 + UNDERFIT_GAP):
        return None  # a large gap is overfitting's sign, not underfitting's
    evidence = {"epoch": epochs[-1], "train_loss": loss, "val_loss": validation}
    if classification and train_accuracy:
        accuracy = train_accuracy[-1]
        if accuracy >= UNDERFIT_ACCURACY:
            return None
        evidence["train_accuracy"] = accuracy
        level = f"training accuracy is only {100 * accuracy:.1f}%"
    else:
        if loss <= UNDERFIT_LOSS_SHARE * scale:
            return None
        level = (f"training loss is still {loss:.4g}, over {UNDERFIT_LOSS_SHARE:g}× the {scale:.3g} of knowing nothing"
                 if classification else f"training loss (MSE on standardised targets) is still {loss:.4g}: R² on "
                                        f"the training data is about {1 - loss:.2f}")
    previous = train_loss[-2]
    improving = previous > 0 and (previous - loss) / previous > 0.01
    evidence["improvement_last_epoch"] = (previous - loss) / previous if previous > 0 else 0.0
    fix = ("It is still improving: train for more epochs, or raise the learning rate. " if improving else
           "It has stopped improving: ")
    fix += ("use a larger model (more or wider layers), less regularisation (weight decay, dropout, label "
            "smoothing), or better inputs (normalised, informative features).")
    return _finding(
        "underfitting", epoch=epochs[-1], evidence=evidence,
        explanation=f"After {done} of {planned_epochs or done} epochs the {level}, and the validation loss "
                    f"({validation:.4g}) is about as high: the model is too weak for the task, or has not trained "
                    "long enough.",
        fix=fix)


def detect_input_bound(*, gpu_util: Sequence[float], cpu_percent: Sequence[float] = (),
                       samples_per_s: float | None = None) -> dict | None:
    """A GPU that mostly waits: the data pipeline cannot feed it."""
    recent = [value for value in gpu_util[-INPUT_BOUND_POINTS:] if value is not None]
    if len(recent) < INPUT_BOUND_MIN_POINTS:
        return None
    median = statistics.median(recent)
    if median >= INPUT_BOUND_UTIL:
        return None
    evidence = {"gpu_util_median": median, "points": len(recent)}
    cpu = [value for value in cpu_percent[-INPUT_BOUND_POINTS:] if value is not None]
    if cpu:
        evidence["cpu_percent_median"] = statistics.median(cpu)
    if samples_per_s is not None:
        evidence["samples_per_s"] = samples_per_s
    return _finding(
        "input_bound", evidence=evidence,
        explanation=f"The GPU was busy only {median:.0f}% of the time (median of the last {len(recent)} samples): it "
                    "spends most of each step waiting for the next batch, so the run is limited by loading and "
                    "preparing data, not by the model.",
        fix="Prepare batches in the background (num_workers 2–8), keep the dataset on local disk or in memory, "
            "use a larger batch, and move augmentation off the critical path; a bigger model would cost "
            "almost nothing extra here.")


# --- all of them ---------------------------------------------------------------------------------------------

def run_findings(*, series: dict, task: str, num_classes: int | None = None, planned_epochs: int | None = None,
                 failure: str | None = None, gpu_util: Sequence[float] = (), cpu_percent: Sequence[float] = (),
                 samples_per_s: float | None = None) -> list[dict]:
    """Every problem the run shows. ``series`` holds the per-epoch lists ``epoch``, ``train_loss``,
    ``val_loss`` and, for classification, ``train_accuracy``, aligned by index (an epoch missing any of
    the losses is left out by the caller)."""
    classification = task == "classification"
    scale = loss_scale(task=task, num_classes=num_classes)
    epochs = list(series.get("epoch") or [])
    train_loss = list(series.get("train_loss") or [])
    val_loss = list(series.get("val_loss") or [])
    accuracy = list(series.get("train_accuracy") or [])
    findings = []
    if found := detect_nan(failure=failure):
        findings.append(found)
    if _present(train_loss) and len(epochs) == len(train_loss):
        flat = detect_flat_loss(epochs=epochs, train_loss=train_loss, scale=scale, classification=classification)
        findings += [found for found in (
            detect_diverging(epochs=epochs, train_loss=train_loss, scale=scale, classification=classification),
            flat) if found]
        if _present(val_loss) and len(val_loss) == len(train_loss):
            findings += [found for found in (
                detect_overfitting(epochs=epochs, train_loss=train_loss, val_loss=val_loss, scale=scale),
                None if flat else detect_underfitting(
                    epochs=epochs, planned_epochs=planned_epochs, train_loss=train_loss, val_loss=val_loss,
                    train_accuracy=accuracy if _present(accuracy) and len(accuracy) == len(train_loss) else None,
                    scale=scale, classification=classification)) if found]
    if found := detect_input_bound(gpu_util=gpu_util, cpu_percent=cpu_percent, samples_per_s=samples_per_s):
        findings.append(found)
    return findings
