"""Evaluation metrics agree with scikit-learn."""
import numpy as np
import torch
from sklearn.metrics import f1_score

from trainer_app.engine.evaluation import macro_f1


def test_macro_f1_matches_scikit_learn_including_absent_classes():
    rng = np.random.default_rng(0)
    for classes in (2, 5, 10):
        truth = rng.integers(0, classes - 1, size=200)  # the last class never occurs in the labels
        predicted = np.where(rng.random(200) < 0.7, truth, rng.integers(0, classes, size=200))
        confusion = torch.zeros(classes, classes)
        for true, guess in zip(truth, predicted):
            confusion[true, guess] += 1
        assert abs(macro_f1(confusion) - f1_score(truth, predicted, average="macro", zero_division=0)) < 1e-12
