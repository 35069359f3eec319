"""The field's ontology: the concepts of large-scale training that runs, sweeps and designs apply.

Seeded into the graph with MERGE on ``concept:<slug>``, so seeding again changes nothing. Admins add
concepts as ``kg_app.Concept`` rows (Django admin); those are projected like any other object.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ConceptSpec:
    slug: str
    name: str
    description: str
    is_a: tuple[str, ...] = ()
    requires: tuple[str, ...] = field(default=())


def _c(slug, name, description, is_a=(), requires=()) -> ConceptSpec:
    return ConceptSpec(slug, name, description, tuple(is_a), tuple(requires))


CONCEPTS: tuple[ConceptSpec, ...] = (
    _c("large-scale-training", "Large-scale model training",
       "Training models whose data or parameters outgrow one device: distribution, tuning and careful data."),
    # Hyperparameter tuning
    _c("hyperparameter-tuning", "Hyperparameter tuning",
       "Searching the settings a model does not learn (learning rate, batch size…) for the best validation score.",
       ["large-scale-training"]),
    _c("grid-search", "Grid search", "Tries every combination of a fixed set of values.", ["hyperparameter-tuning"]),
    _c("random-search", "Random search", "Samples settings at random; beats grids when few settings matter.",
       ["hyperparameter-tuning"]),
    _c("bayesian-optimisation", "Bayesian optimisation",
       "Models the score as a function of the settings and samples where improvement is likely.",
       ["hyperparameter-tuning"]),
    _c("tpe", "TPE", "Tree-structured Parzen Estimator: Bayesian optimisation with density models (Optuna's default).",
       ["bayesian-optimisation"]),
    _c("cma-es", "CMA-ES", "Covariance Matrix Adaptation Evolution Strategy for continuous search spaces.",
       ["hyperparameter-tuning"]),
    _c("nsga-ii", "NSGA-II", "A genetic algorithm for several objectives at once: keeps the Pareto front of trials.",
       ["hyperparameter-tuning"]),
    _c("quasi-monte-carlo", "Quasi-Monte Carlo search", "Low-discrepancy sequences (Sobol, Halton) that cover the "
       "space more evenly than random sampling.", ["hyperparameter-tuning"]),
    _c("multi-objective-optimisation", "Multi-objective optimisation", "Optimising several metrics at once (e.g. "
       "accuracy and model size): the answer is a Pareto front of trade-offs, not one best trial.",
       ["hyperparameter-tuning"]),
    _c("early-stopping-of-trials", "Pruning", "Stops unpromising trials early from their intermediate values.",
       ["hyperparameter-tuning"]),
    _c("asha", "ASHA", "Asynchronous Successive Halving: promotes the best fraction of trials at each rung.",
       ["early-stopping-of-trials"]),
    _c("hyperband", "Hyperband", "Runs successive halving with several budgets to hedge the halving rate.",
       ["early-stopping-of-trials"], ["asha"]),
    _c("median-pruning", "Median stopping rule", "Stops a trial whose intermediate value is worse than the median of "
       "earlier trials at the same step.", ["early-stopping-of-trials"]),
    # Model optimisation
    _c("model-optimisation", "Model optimisation", "Gradient-based minimisation of the training loss.",
       ["large-scale-training"]),
    _c("sgd", "SGD", "Stochastic gradient descent, optionally with momentum and Nesterov.", ["model-optimisation"]),
    _c("adam", "Adam", "Adaptive moment estimation: per-parameter steps from running gradient moments.",
       ["model-optimisation"]),
    _c("adamw", "AdamW", "Adam with weight decay decoupled from the gradient step.", ["adam"]),
    _c("adagrad", "Adagrad", "Per-parameter steps scaled by the sum of past squared gradients.", ["model-optimisation"]),
    _c("rmsprop", "RMSprop", "Per-parameter steps scaled by a running mean of squared gradients.",
       ["model-optimisation"]),
    _c("learning-rate-schedule", "Learning-rate schedule",
       "Changes the learning rate during training: warm-up, step decay, cosine, one-cycle.", ["model-optimisation"]),
    # Distributed computing and system design
    _c("distributed-computing", "Distributed computing", "Spreading training over several processes, devices or nodes.",
       ["large-scale-training"]),
    _c("data-parallelism", "Data parallelism", "Each process holds the whole model and trains on its own shard of data.",
       ["distributed-computing"]),
    _c("ddp", "DDP", "PyTorch DistributedDataParallel: data parallelism with gradients all-reduced each step.",
       ["data-parallelism"], ["nccl"]),
    _c("nccl", "NCCL", "NVIDIA's collective communication library: the GPU backend of torch.distributed.",
       ["distributed-computing"]),
    _c("gloo", "gloo", "The CPU collective communication backend of torch.distributed.", ["distributed-computing"]),
    _c("multi-node", "Multi-node training", "Processes on several machines joined by a rendezvous (torchrun).",
       ["distributed-computing"], ["ddp"]),
    _c("distributed-system-design", "Distributed system design",
       "Leases, idempotency, outboxes and retries: keeping many machines consistent when parts fail.",
       ["large-scale-training"]),
    _c("knowledge-graphs", "Knowledge graphs and domain-knowledge integration",
       "Linking experiments, data and concepts as a graph to answer lineage and 'what worked' questions.",
       ["large-scale-training"]),
    # Transfer learning
    _c("transfer-learning", "Transfer learning",
       "Reusing what a model learned on one task or domain for another (cross-domain transfer).",
       ["large-scale-training"]),
    _c("fine-tuning", "Fine-tuning", "Continuing training from pretrained weights on new data.", ["transfer-learning"]),
    _c("freezing-layers", "Freezing layers", "Keeping pretrained layers fixed while the rest trains.",
       ["transfer-learning"], ["fine-tuning"]),
    # Architectures
    _c("architectures", "Architectures", "The families of neural network a design belongs to.", ["large-scale-training"]),
    _c("mlp", "MLP", "Multi-layer perceptron: stacked fully connected layers.", ["architectures"]),
    _c("cnn", "CNN", "Convolutional neural network: learned local filters shared across an image.", ["architectures"]),
    _c("resnet", "ResNet", "A CNN with residual (skip) connections that make very deep networks trainable.", ["cnn"]),
    _c("rnn", "RNN", "Recurrent neural network: a state carried across the steps of a sequence.", ["architectures"]),
    _c("attention", "Attention", "Weighs every input position by its relevance to each other one.", ["architectures"]),
    _c("transformer", "Transformer", "Stacked self-attention and feed-forward blocks.", ["architectures"], ["attention"]),
    # Data preparation
    _c("data-preparation", "Data preparation", "Turning raw data into clean, comparable training inputs.",
       ["large-scale-training"]),
    _c("data-cleaning", "Cleaning", "Removing broken, duplicate or mislabelled samples.", ["data-preparation"]),
    _c("augmentation", "Augmentation", "Random label-preserving changes (crops, flips…) that enlarge the training set.",
       ["data-preparation"]),
    _c("normalisation", "Normalisation", "Scaling inputs to comparable ranges (mean 0, variance 1).",
       ["data-preparation"]),
    _c("splitting", "Splitting", "Separating train, validation and test data so scores are honest.",
       ["data-preparation"]),
    # The settings of the forms: what each option of the dataset, model, launch and sweep forms is about.
    _c("learning-rate", "Learning rate", "How large a step the optimizer takes along the gradient at each update.",
       ["model-optimisation"]),
    _c("batch-size", "Batch size", "How many samples are averaged into one gradient step.", ["model-optimisation"]),
    _c("epochs", "Epochs", "How many full passes over the training data a run makes.", ["model-optimisation"]),
    _c("momentum", "Momentum", "Keeps part of the previous steps' direction, smoothing noisy gradients.",
       ["model-optimisation"]),
    _c("gradient-clipping", "Gradient clipping", "Caps the size of the gradient so one bad batch cannot throw the "
       "weights far off.", ["model-optimisation"]),
    _c("learning-rate-warmup", "Warm-up", "Raises the learning rate from 0 to its target over the first epochs.",
       ["learning-rate-schedule"]),
    _c("step-decay", "Step decay", "Multiplies the learning rate by a factor (gamma) every few epochs.",
       ["learning-rate-schedule"]),
    _c("cosine-annealing", "Cosine annealing", "Lowers the learning rate along a half cosine curve, to 0 at the end.",
       ["learning-rate-schedule"]),
    _c("one-cycle", "One-cycle policy", "Raises the learning rate to a peak, then lowers it far below the start.",
       ["learning-rate-schedule"]),
    _c("regularisation", "Regularisation", "Techniques that stop a model from memorising its training data, so it "
       "does better on new data.", ["model-optimisation"]),
    _c("weight-decay", "Weight decay", "Pulls every weight a little towards 0 at each step, favouring simpler models.",
       ["regularisation"]),
    _c("label-smoothing", "Label smoothing", "Trains towards slightly softened class labels instead of 100% certainty.",
       ["regularisation"]),
    _c("dropout", "Dropout", "Switches off a random fraction of a layer's units at each training step.",
       ["regularisation"]),
    _c("early-stopping", "Early stopping", "Ends a run when a validation metric has stopped improving.",
       ["regularisation"]),
    _c("mixed-precision-training", "Mixed precision", "Computes in 16-bit numbers (bf16, fp16) where it is safe: "
       "faster, less GPU memory.", ["large-scale-training"]),
    _c("reproducibility", "Reproducibility", "Seeds and deterministic kernels so a run can be repeated exactly.",
       ["large-scale-training"]),
    _c("gpu-training", "GPU training", "Running the training maths on graphics processors instead of the CPU.",
       ["distributed-computing"]),
    _c("job-queue", "Job queues", "Named lines of waiting runs that workers take jobs from, by resource and priority.",
       ["distributed-system-design"]),
    _c("batch-normalisation", "Batch normalisation", "Re-centres and re-scales a layer's outputs over each batch.",
       ["architectures"]),
    _c("activation-function", "Activation function", "The non-linear function (ReLU, GELU…) applied after a layer.",
       ["architectures"]),
    _c("pooling", "Pooling", "Shrinks an image's feature maps by keeping the maximum or average of each patch.",
       ["cnn"]),
    _c("learning-task", "Learning task", "What the model predicts: a class (classification) or a number "
       "(regression).", ["large-scale-training"]),
    _c("classification", "Classification", "Predicting one of a fixed set of labels.", ["learning-task"]),
    _c("regression", "Regression", "Predicting a number on a continuous scale.", ["learning-task"]),
    _c("features-and-target", "Features and target", "The input columns a model learns from and the column it "
       "predicts.", ["data-preparation"]),
    _c("missing-values", "Missing values", "Empty or unreadable cells in a table, filled in or dropped before "
       "training.", ["data-cleaning"]),
    _c("file-parsing", "Reading table files", "How a CSV/TSV file is read: delimiter, text encoding, header row.",
       ["data-preparation"]),
    _c("image-size", "Image size", "The height and width every image is resized to before training.",
       ["data-preparation"]),
    _c("search-space", "Search space", "The settings a sweep varies and the range or choices of each.",
       ["hyperparameter-tuning"]),
    _c("objective-metric", "Objective", "The metric a sweep tries to improve, and whether higher or lower is better.",
       ["hyperparameter-tuning"]),
    _c("trial-budget", "Trial budget", "How much a sweep may spend: a number of trials, a time limit or a target "
       "value.", ["hyperparameter-tuning"]),
    _c("parallel-trials", "Parallel trials", "How many trials of a sweep train at the same time.",
       ["hyperparameter-tuning"]),
    _c("warm-starting", "Warm-starting a sweep", "Running known good settings first so the search starts from "
       "experience.", ["hyperparameter-tuning"]),
    # Training problems: what the run-health rules find in a run (trainer_app/run_health.py); a run links to
    # the one it showed with SHOWED.
    _c("training-problems", "Training problems", "What goes wrong while a model trains, seen in its loss curves and "
       "its hardware: each has a usual cause and fix.", ["large-scale-training"]),
    _c("overfitting", "Overfitting", "The validation loss rises while the training loss keeps falling: the model "
       "memorises its training samples.", ["training-problems"]),
    _c("underfitting", "Underfitting", "The model stays poor even on its training data: too weak, too regularised or "
       "not trained long enough.", ["training-problems"]),
    _c("divergence", "Divergence", "The training loss grows instead of falling: steps overshoot, usually a learning "
       "rate too high.", ["training-problems"]),
    _c("nan-loss", "NaN loss", "The loss overflowed to NaN or infinity and training stopped.", ["divergence"]),
    _c("flat-loss", "Flat loss", "The loss does not move from the start: nothing is learned (learning rate too low, "
       "frozen layers).", ["training-problems"]),
    _c("input-bound", "Input-bound training", "The GPU waits for data: loading and preparing batches limit the "
       "speed, not the model.", ["training-problems"]),
)

CONCEPT_SLUGS = frozenset(concept.slug for concept in CONCEPTS)

# What a run's settings say it applies, by the names of the REST contract (DESIGN.md).
OPTIMIZER_CONCEPTS = {"sgd": "sgd", "adam": "adam", "adamw": "adamw", "adagrad": "adagrad", "rmsprop": "rmsprop"}
FAMILY_CONCEPTS = {"MLP": "mlp", "CNN": "cnn", "ResNet": "resnet", "RNN": "rnn", "Transformer": "transformer"}
SAMPLER_CONCEPTS = {"tpe": "tpe", "random": "random-search", "grid": "grid-search", "cmaes": "cma-es",
                    "nsga2": "nsga-ii", "qmc": "quasi-monte-carlo"}
PRUNER_CONCEPTS = {"asha": "asha", "hyperband": "hyperband", "median": "median-pruning"}
SCHEDULE_CONCEPTS = {"none": "learning-rate-schedule", "step": "step-decay", "cosine": "cosine-annealing",
                     "onecycle": "one-cycle"}

# What each option of the forms is about, for its explanation (kg_app/explanations.py). An option that no
# run "applies" (pruner none, task auto) points at the broader concept that explains the choice.
PRUNER_OPTION_CONCEPTS = {"none": "early-stopping-of-trials", **PRUNER_CONCEPTS}
TASK_CONCEPTS = {"auto": "learning-task", "classification": "classification", "regression": "regression"}
PRESET_CONCEPTS = {"mlp": "mlp", "small_cnn": "cnn", "resnet18": "resnet", "resnet34": "resnet", "resnet50": "resnet",
                   "vit_tiny": "transformer", "tab_transformer": "transformer"}
LAYER_CONCEPTS = {
    "Conv2d": "cnn", "BatchNorm": "batch-normalisation", "BatchNorm1d": "batch-normalisation",
    "BatchNorm2d": "batch-normalisation", "ReLU": "activation-function", "GELU": "activation-function",
    "Tanh": "activation-function", "Sigmoid": "activation-function", "LeakyReLU": "activation-function",
    "MaxPool2d": "pooling", "AvgPool2d": "pooling", "AdaptiveAvgPool2d": "pooling", "Dropout": "dropout",
    "Flatten": "mlp", "Linear": "mlp", "ResidualBlock": "resnet", "SelfAttention": "attention",
}
SETTING_CONCEPTS = {
    # training settings: the launch form's fields and a sweep's parameters of the same name
    "optimizer": "model-optimisation", "lr": "learning-rate", "momentum": "momentum", "nesterov": "momentum",
    "weight_decay": "weight-decay", "batch_size": "batch-size", "epochs": "epochs", "max_steps": "epochs",
    "schedule": "learning-rate-schedule", "step_size": "step-decay", "gamma": "step-decay",
    "warmup_epochs": "learning-rate-warmup", "grad_clip": "gradient-clipping", "label_smoothing": "label-smoothing",
    "amp": "mixed-precision-training", "early_stopping": "early-stopping", "es_metric": "early-stopping",
    "es_mode": "early-stopping", "es_patience": "early-stopping", "es_min_delta": "early-stopping",
    "seed": "reproducibility", "deterministic": "reproducibility", "random_crop": "augmentation",
    "hflip": "augmentation", "rotation": "augmentation", "color_jitter": "augmentation", "nproc_per_node": "ddp",
    "nnodes": "multi-node",
    "gpus_per_node": "gpu-training", "queue": "job-queue", "fine_tune_from": "fine-tuning",
    "freeze": "freezing-layers", "model": "architectures",
    # the dataset form
    "task": "learning-task", "target_column": "features-and-target", "feature_columns": "features-and-target",
    "missing": "missing-values", "delimiter": "file-parsing", "encoding": "file-parsing", "header": "file-parsing",
    "image_size": "image-size", "split_ratios": "splitting", "split_seed": "splitting",
    # the sweep form
    "search_space": "search-space", "objective": "objective-metric", "sampler": "hyperparameter-tuning",
    "pruner": "early-stopping-of-trials", "n_trials": "trial-budget", "timeout": "trial-budget",
    "target_value": "trial-budget", "parallelism": "parallel-trials", "warm_start": "warm-starting",
}
_NESTED_SETTING_CONCEPTS = {
    "schedule.type": "learning-rate-schedule", "schedule.warmup_epochs": "learning-rate-warmup",
    "schedule.step_size": "step-decay", "schedule.gamma": "step-decay", "model.dropout": "dropout",
    "model.batch_norm": "batch-normalisation", "model.activation": "activation-function",
}
EVERY_RUN_CONCEPTS = ("learning-rate", "batch-size", "epochs")
"""Settings every run has: the concept pages list every run with its value instead of linking them in the graph."""


def setting_concept(name: str) -> str | None:
    """The concept a setting is about: a form field, or a search-space parameter (lr, schedule.gamma,
    augmentation.hflip, model.depth…); None for settings that are no concept (a run's name)."""
    if name in SETTING_CONCEPTS:
        return SETTING_CONCEPTS[name]
    if name in _NESTED_SETTING_CONCEPTS:
        return _NESTED_SETTING_CONCEPTS[name]
    prefix = name.partition(".")[0]
    return {"schedule": "learning-rate-schedule", "augmentation": "augmentation", "model": "architectures"}.get(prefix)


def sweep_concepts(*, sampler: str, pruner: str, objectives: int) -> list[str]:
    """A sweep applies hyperparameter tuning, its sampler, its pruner, and multi-objective optimisation when it
    has several objectives."""
    slugs = ["hyperparameter-tuning"]
    if concept := SAMPLER_CONCEPTS.get(sampler):
        slugs.append(concept)
    if concept := PRUNER_CONCEPTS.get(pruner):
        slugs.append(concept)
    if objectives > 1:
        slugs.append("multi-objective-optimisation")
    return slugs


def run_concepts(*, config: dict, resources: dict, family: str, fine_tuned: bool, frozen: bool) -> list[str]:
    """The slugs of the concepts a run applies, from its validated settings."""
    slugs = []
    if optimizer := OPTIMIZER_CONCEPTS.get(str(config.get("optimizer", "")).lower()):
        slugs.append(optimizer)
    if family_concept := FAMILY_CONCEPTS.get(family):
        slugs.append(family_concept)
    schedule = config.get("schedule") or {}
    if isinstance(schedule, dict) and schedule.get("type", "none") not in ("none", "", None):
        slugs.append("learning-rate-schedule")
    processes = _int(resources.get("nproc_per_node"), 1) * _int(resources.get("nnodes"), 1)
    if processes >= 2:
        slugs += ["ddp", "data-parallelism"]
    if _int(resources.get("nnodes"), 1) >= 2:
        slugs.append("multi-node")
    if fine_tuned:
        slugs.append("fine-tuning")
        if frozen:
            slugs.append("freezing-layers")
    augmentation = config.get("augmentation") or {}
    if isinstance(augmentation, dict) and any(augmentation.get(name) for name in
                                              ("random_crop", "hflip", "rotation", "color_jitter")):
        slugs.append("augmentation")
    return slugs + _setting_concepts(config, schedule if isinstance(schedule, dict) else {})


def _setting_concepts(config: dict, schedule: dict) -> list[str]:
    """The regularisation and numerical settings a run switched on (their defaults are off)."""
    slugs = []
    if str(config.get("optimizer", "")).lower() in ("sgd", "rmsprop") and _float(config.get("momentum")) > 0:
        slugs.append("momentum")
    for name, slug in (("weight_decay", "weight-decay"), ("grad_clip", "gradient-clipping"),
                       ("label_smoothing", "label-smoothing")):
        if _float(config.get(name)) > 0:
            slugs.append(slug)
    if _float(schedule.get("warmup_epochs")) > 0 and schedule.get("type") != "onecycle":
        slugs.append("learning-rate-warmup")
    if config.get("amp") in ("bf16", "fp16"):
        slugs.append("mixed-precision-training")
    if config.get("early_stopping"):
        slugs.append("early-stopping")
    if config.get("deterministic") is True:
        slugs.append("reproducibility")
    return slugs


def run_applied_concepts(*, config: dict, resources: dict, family: str, fine_tuned: bool, frozen: bool) -> list[str]:
    """``run_concepts`` plus what the concept pages also count: the schedule's kind (step, cosine, one-cycle)
    and the settings every run has (learning rate, batch size, epochs), which the graph leaves out."""
    slugs = run_concepts(config=config, resources=resources, family=family, fine_tuned=fine_tuned, frozen=frozen)
    schedule = config.get("schedule") if isinstance(config.get("schedule"), dict) else {}
    kind = SCHEDULE_CONCEPTS.get(str(schedule.get("type", "none")))
    if kind and kind != "learning-rate-schedule":
        slugs.append(kind)
    return slugs + list(EVERY_RUN_CONCEPTS)


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
