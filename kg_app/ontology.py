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
)

CONCEPT_SLUGS = frozenset(concept.slug for concept in CONCEPTS)

# What a run's settings say it applies, by the names of the REST contract (DESIGN.md).
OPTIMIZER_CONCEPTS = {"sgd": "sgd", "adam": "adam", "adamw": "adamw", "adagrad": "adagrad", "rmsprop": "rmsprop"}
FAMILY_CONCEPTS = {"MLP": "mlp", "CNN": "cnn", "ResNet": "resnet", "RNN": "rnn", "Transformer": "transformer"}
SAMPLER_CONCEPTS = {"tpe": "tpe", "random": "random-search", "grid": "grid-search", "cmaes": "cma-es",
                    "nsga2": "nsga-ii", "qmc": "quasi-monte-carlo"}
PRUNER_CONCEPTS = {"asha": "asha", "hyperband": "hyperband", "median": "median-pruning"}


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
    return slugs


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
