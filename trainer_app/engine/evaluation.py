"""Validation and test metrics, computed on every rank's share of a split and summed across ranks.

Classification: loss (plain cross-entropy, without label smoothing, so runs compare), accuracy, and from
the summed confusion matrix (rows true class, columns prediction) macro-F1, averaged like scikit-learn's
``f1_score(average="macro")`` over the classes that occur in the labels or the predictions.
Regression: loss (mean squared error on normalised targets, as in training), MAE, RMSE and R² in the
targets' own units.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .data import Preprocessor, SplitSource, eval_batches
from .distributed import DistributedContext
from .liveness import Liveness


def macro_f1(confusion: torch.Tensor) -> float:
    confusion = confusion.double()
    true_positive = confusion.diagonal()
    support, predicted = confusion.sum(1), confusion.sum(0)
    precision = torch.where(predicted > 0, true_positive / predicted.clamp(min=1), torch.zeros_like(predicted))
    recall = torch.where(support > 0, true_positive / support.clamp(min=1), torch.zeros_like(support))
    denominator = precision + recall
    f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp(min=1e-300),
                     torch.zeros_like(denominator))
    present = (support > 0) | (predicted > 0)
    return float(f1[present].mean()) if present.any() else 0.0


class Evaluator:
    """Evaluates the unwrapped model on a split; every rank calls it, each on its share."""

    def __init__(self, *, preprocessor: Preprocessor, context: DistributedContext, num_classes: int,
                 batch_size: int, autocast=contextlib.nullcontext, liveness: Liveness | None = None):
        self.preprocessor = preprocessor
        self.context = context
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.autocast = autocast
        self.liveness = liveness or Liveness()  # each batch counts as progress: a long validation is no hang

    @torch.no_grad()
    def evaluate(self, model: nn.Module, source: SplitSource) -> tuple[dict[str, float], list[list[int]] | None]:
        """({"loss", "accuracy", "macro_f1"} or {"loss", "mae", "rmse", "r2"}, confusion matrix or None)."""
        was_training = model.training
        model.eval()
        try:
            if self.preprocessor.regression:
                return self._regression(model, source), None
            return self._classification(model, source)
        finally:
            model.train(was_training)

    def _batches(self, source: SplitSource):
        for batch in eval_batches(source, self.preprocessor, batch_size=self.batch_size, rank=self.context.rank,
                                  world_size=self.context.world_size):
            yield batch
            self.liveness.beat()

    def _classification(self, model, source):
        device = self.preprocessor.device
        classes = self.num_classes
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        confusion = torch.zeros(classes * classes, dtype=torch.float64, device=device)
        for features, labels in self._batches(source):
            with self.autocast():
                logits = model(features)
            labels = labels.long()
            loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").double()
            predictions = logits.argmax(1)
            confusion += torch.bincount(labels * classes + predictions, minlength=classes * classes).double()
        totals = self.context.all_reduce_sum(torch.cat([loss_sum.view(1), confusion]))
        matrix = totals[1:].view(classes, classes).cpu()
        count = float(matrix.sum())
        values = {"loss": float(totals[0]) / max(count, 1.0),
                  "accuracy": float(matrix.diagonal().sum()) / max(count, 1.0),
                  "macro_f1": macro_f1(matrix)}
        return values, matrix.long().tolist()

    def _regression(self, model, source):
        device = self.preprocessor.device
        sums = torch.zeros(6, dtype=torch.float64, device=device)
        for features, targets in self._batches(source):
            with self.autocast():
                outputs = model(features)
            predictions = outputs.float().reshape(-1)
            targets = targets.float().reshape(-1)
            normalised = self.preprocessor.targets(targets)
            error = self.preprocessor.denormalise(predictions) - targets
            sums += torch.stack([F.mse_loss(predictions, normalised, reduction="sum"), error.abs().sum(),
                                 error.square().sum(), targets.sum(), targets.square().sum(),
                                 torch.tensor(float(len(targets)), device=device)]).double()
        loss, absolute, squared, total, total_squares, count = self.context.all_reduce_sum(sums).tolist()
        count = max(count, 1.0)
        spread = total_squares - total * total / count
        return {"loss": loss / count, "mae": absolute / count, "rmse": (squared / count) ** 0.5,
                "r2": 1.0 - squared / spread if spread > 0 else 0.0}
